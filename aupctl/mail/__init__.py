"""Outgoing mail: Letter, render (MIME from the templates), Postbox (one SMTP connection), parse_address.

The engine only: no click, no printing. The password comes from aupctl.credentials.mail_password.
Templates ship in aupctl/mail/templates/ (NAME.txt and NAME.html); a school overrides one by putting a
file of the same name in the `templates/` folder beside its config file ([mail] templates).
"""

from .address import Address, check_email, parse_address
from .errors import MailAuthError, MailError
from .letter import Letter, render
from .postbox import Postbox, port_of

__all__ = [
    "Address",
    "Letter",
    "MailAuthError",
    "MailError",
    "Postbox",
    "check_email",
    "parse_address",
    "port_of",
    "render",
]
