"""Mail failures: every one names the server and its reply, never the password (exit 3)."""

from __future__ import annotations

from ..errors import AuthError, UnreachableError


class MailError(UnreachableError):
    """The SMTP server cannot be reached, or refused a letter (its reply is in the message)."""


class MailAuthError(AuthError, MailError):
    """The SMTP server refused the username and password."""
