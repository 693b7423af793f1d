"""A throwaway SMTP server on loopback for the demo and the tests: STARTTLS with the sandbox's own CA,
AUTH (PLAIN/LOGIN) checking one username and password, every letter kept in memory and written to
DIR/mail/NNNN.eml. Built on aiosmtpd (the `test` extra). `aupctl sandbox mail --dir DIR` runs one in the
foreground (commands/sandbox.py); DIR/smtp/ holds ca.pem, the password file and `port` (written once it
listens). Linux only, like the rest of the sandbox.
"""

from __future__ import annotations

import email
import email.policy
import os
import socket
import ssl
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

assert sys.platform.startswith("linux"), "the aupctl sandbox runs on Linux only"

from .tls import _make_tls

USERNAME = "aupctl-sandbox"
PASSWORD = "Sandbox-Mail-Pass-2026"  # the sandbox's, like its bind password: throwaway


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    login: str | None

    @property
    def message(self) -> email.message.EmailMessage:
        return email.message_from_bytes(self.data, policy=email.policy.default)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class MailCatcher:
    """aiosmtpd in a thread: start(), stop(), start() again on the same port; `received` keeps every letter."""

    def __init__(
        self, directory: Path, *, port: int | None = None, username: str = USERNAME, password: str = PASSWORD
    ) -> None:
        self.dir = Path(directory)
        self.tls_dir = self.dir / "smtp"
        self.spool = self.dir / "mail"
        self.tls_dir.mkdir(parents=True, exist_ok=True)
        self.spool.mkdir(parents=True, exist_ok=True)
        if not (self.tls_dir / "ca.pem").exists():
            _make_tls(self.tls_dir, "127.0.0.1")
        self.ca_file = str(self.tls_dir / "ca.pem")
        self.password_file = self.tls_dir / "password"
        fd = os.open(self.password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(password + "\n")
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.username, self.password = username, password
        self.received: list[Received] = []
        self.reject: set[str] = set()  # recipients answered 550 (to test a refusal)
        self.auth_failures = 0
        self._lock = threading.Lock()
        self._controller: Any = None

    # -- aiosmtpd's hooks --
    def _authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> Any:
        from aiosmtpd.smtp import AuthResult, LoginPassword

        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode("utf-8", "replace") == self.username
            and auth_data.password.decode("utf-8", "replace") == self.password
        )
        if not ok:
            self.auth_failures += 1
        return AuthResult(
            success=ok, handled=False, auth_data=auth_data.login.decode("utf-8", "replace") if ok else None
        )

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: list[str]) -> str:
        if address.lower() in self.reject:
            return "550 5.1.1 no such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        login = session.auth_data if isinstance(session.auth_data, str) else None
        got = Received(envelope.mail_from, tuple(envelope.rcpt_tos), bytes(envelope.original_content), login)
        with self._lock:
            self.received.append(got)
            n = len(self.received)
        (self.spool / f"{n:04d}.eml").write_bytes(got.data)
        return "250 OK: queued"

    # -- running --
    def start(self) -> MailCatcher:
        import logging

        from aiosmtpd.controller import Controller

        logging.getLogger("mail.log").setLevel(logging.ERROR)  # aiosmtpd's own deprecation chatter
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(str(self.tls_dir / "server.pem"), str(self.tls_dir / "server.key"))
        self._controller = Controller(
            self,
            hostname=self.host,
            port=self.port,
            server_hostname="localhost",
            tls_context=ctx,
            require_starttls=True,
            authenticator=self._authenticate,
            auth_required=True,
            auth_require_tls=True,
        )
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    @property
    def running(self) -> bool:
        return self._controller is not None

    def mail_toml(self) -> str:
        """A [mail] section for aupctl.toml that reaches this server."""
        return (
            "\n[mail]\n"
            f'host = "{self.host}"\n'
            f"port = {self.port}\n"
            'security = "starttls"\n'
            f'username = "{self.username}"\n'
            f'password_file = "{self.password_file}"\n'
            f'ca_file = "{self.ca_file}"\n'
            'from = "Hollybank ICT <ict@hollybank.test>"\n'
            'reply_to = "ICT Support <ict@hollybank.test>"\n'
        )
