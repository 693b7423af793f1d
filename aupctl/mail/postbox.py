"""Postbox: one SMTP connection (smtplib), TLS verified by default, sending rendered Letters.

Every failure is a MailError (exit 3) naming the server and what it replied; the password is handed
to smtplib's login and to nothing else (no message, no log, no audit entry holds it).
"""

from __future__ import annotations

import smtplib
import socket
import ssl
from types import TracebackType
from typing import TYPE_CHECKING

from ..errors import ConfigError
from .errors import MailAuthError, MailError
from .letter import Letter, render

if TYPE_CHECKING:
    from ..config import Mail

DEFAULT_PORTS = {"starttls": 587, "tls": 465, "none": 25}


def port_of(settings: Mail) -> int:
    return settings.port or DEFAULT_PORTS[settings.security]


def tls_context(settings: Mail) -> ssl.SSLContext:
    """Certificate and host name checked; with ca_file, against that CA (a school's own) instead of the system's."""
    try:
        return ssl.create_default_context(cafile=settings.ca_file or None)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"mail.ca_file {settings.ca_file}: cannot be read as a CA certificate: {exc}") from None


def _reply(exc: smtplib.SMTPResponseException) -> str:
    text = exc.smtp_error.decode("utf-8", "replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
    return f"{exc.smtp_code} {' '.join(text.split())}"


class Postbox:
    """`with Postbox(settings, secret) as box: box.send(letter)`: one connection for many letters."""

    def __init__(self, settings: Mail, secret: str | None) -> None:
        if not settings.host:
            raise ConfigError("no mail server: set [mail] host (docs/notify.md)")
        if settings.security == "none" and not settings.allow_insecure:
            raise ConfigError('mail.security = "none" is refused without mail.allow_insecure = true')
        if settings.username and not secret:
            raise ConfigError(f"no mail password for {settings.username!r} (docs/notify.md)")
        self.settings = settings
        self._secret = secret
        self.server = f"{settings.host}:{port_of(settings)}"
        self._smtp: smtplib.SMTP | None = None

    def __repr__(self) -> str:  # never the secret
        return f"Postbox({self.server!r}, {self.settings.security})"

    def __enter__(self) -> Postbox:
        self.open()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    @property
    def is_open(self) -> bool:
        return self._smtp is not None

    def open(self) -> None:
        s = self.settings
        where = f"mail server {self.server}"
        smtp: smtplib.SMTP | None = None
        try:
            if s.security == "tls":
                smtp = smtplib.SMTP_SSL(s.host, port_of(s), timeout=s.timeout, context=tls_context(s))
            else:
                smtp = smtplib.SMTP(s.host, port_of(s), timeout=s.timeout)
                if s.security == "starttls":
                    smtp.ehlo()
                    if not smtp.has_extn("starttls"):
                        raise MailError(f"{where} does not offer STARTTLS; nothing was sent")
                    smtp.starttls(context=tls_context(s))
                    smtp.ehlo()
            if s.username:
                try:
                    smtp.login(s.username, self._secret or "")
                except smtplib.SMTPAuthenticationError as exc:
                    raise MailAuthError(
                        f"{where} refused the login of {s.username!r}: {_reply(exc)}; nothing was sent",
                        hint="check the mail password (AUPCTL_MAIL_PASSWORD, mail.password_file or the keyring)",
                    ) from None
                except smtplib.SMTPNotSupportedError:
                    raise MailError(f"{where} offers no AUTH to log in as {s.username!r}; nothing was sent") from None
        except MailError:
            _quietly_close(smtp)
            raise
        except ssl.SSLCertVerificationError as exc:
            _quietly_close(smtp)
            raise MailError(
                f"{where}: its certificate is not trusted ({exc.verify_message}); nothing was sent",
                hint="set [mail] ca_file to the CA that signed it",
            ) from None
        except smtplib.SMTPResponseException as exc:
            _quietly_close(smtp)
            raise MailError(f"{where} refused the connection: {_reply(exc)}; nothing was sent") from None
        except (OSError, smtplib.SMTPException) as exc:  # refused, timed out, TLS failed, closed
            _quietly_close(smtp)
            why = "timed out" if isinstance(exc, socket.timeout | TimeoutError) else (str(exc) or type(exc).__name__)
            raise MailError(f"cannot reach {where}: {why}; nothing was sent") from None
        self._smtp = smtp

    def close(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            try:
                smtp.quit()
            except (OSError, smtplib.SMTPException):
                _quietly_close(smtp)

    def send(self, letter: Letter) -> None:
        """Render and send one letter; returns only when the server accepted it for every recipient."""
        msg = render(letter, self.settings)
        if self._smtp is None:
            self.open()
        assert self._smtp is not None
        envelope_to = [a.email for a in letter.recipients()]
        sender = msg["From"].addresses[0].addr_spec
        where = f"mail server {self.server}"
        try:
            refused = self._smtp.send_message(msg, from_addr=sender, to_addrs=envelope_to)
        except smtplib.SMTPRecipientsRefused as exc:
            who = "; ".join(
                f"{addr}: {_reply(smtplib.SMTPResponseException(*r))}" for addr, r in exc.recipients.items()
            )
            self.close()
            raise MailError(f"{where} refused every recipient of {letter.subject!r} ({who})") from None
        except smtplib.SMTPResponseException as exc:
            self.close()
            raise MailError(f"{where} refused {letter.subject!r}: {_reply(exc)}") from None
        except (OSError, smtplib.SMTPException) as exc:
            self.close()
            raise MailError(f"lost {where} while sending {letter.subject!r}: {exc or type(exc).__name__}") from None
        if refused:
            # accepted for some: still a failure to report, so the caller does not record it as delivered
            who = "; ".join(f"{addr}: {_reply(smtplib.SMTPResponseException(*r))}" for addr, r in refused.items())
            raise MailError(f"{where} refused some recipients of {letter.subject!r} ({who})")


def _quietly_close(smtp: smtplib.SMTP | None) -> None:
    if smtp is not None:
        try:
            smtp.close()
        except OSError:
            pass
