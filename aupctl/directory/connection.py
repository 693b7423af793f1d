"""Connect, verify TLS, bind, paged search, failover across URLs, reconnect once on a lost connection.

Connection knows LDAP, not the dialect: the flavour (flavour.py) is given one to read and write through,
and Directory (session.py) is a Connection that carries the flavour of its server.
"""

from __future__ import annotations

import math
import socket
import ssl
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Self

import ldap3
from ldap3.core import exceptions as lx

from ..errors import AupctlError, AuthError, ConfigError, UnreachableError
from . import entries
from .dn import first_rdn
from .values import Attrs

if TYPE_CHECKING:
    from ..config import Config

# Connection-level failures: worth one reconnect (and the next URL), never a traceback.
_LOST = (
    lx.LDAPSocketOpenError,
    lx.LDAPSocketReceiveError,
    lx.LDAPSocketSendError,
    lx.LDAPSessionTerminatedByServerError,
    lx.LDAPSocketCloseError,
    lx.LDAPStartTLSError,
    lx.LDAPCommunicationError,
    lx.LDAPResponseTimeoutError,
    lx.LDAPMaximumRetriesError,
    socket.timeout,
    ConnectionError,
)


class DirectoryError(AupctlError):
    """The directory answered but refused an operation (names the result and the entry)."""

    def __init__(self, message: str, *, result: str = "", code: int = 0) -> None:
        super().__init__(message)
        self.result = result
        self.code = code


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if "CERTIFICATE_VERIFY_FAILED" in text or isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate not trusted ({text}); check directory.ca_file"
    if "timed out" in text.lower():
        return "timed out"
    if "refused" in text.lower():
        return "connection refused"
    return text


class Connection:
    """One bound connection to the directory (the dialect is the flavour's business, not this one's)."""

    def __init__(self, cfg: Config, password: str, *, strategy: str = ldap3.SYNC) -> None:
        self.cfg = cfg
        self.d = cfg.directory
        self._password = password
        self._strategy = strategy
        self.conn: ldap3.Connection | None = None
        self.url: str | None = None

    # -- connecting --
    def _tls(self) -> ldap3.Tls:
        if self.d.ca_file:
            try:
                open(self.d.ca_file, "rb").close()
            except OSError as exc:
                raise ConfigError(f"directory.ca_file {self.d.ca_file} cannot be read: {exc.strerror}") from None
            try:  # a file of something else fails here, not later as "cannot reach" at the TLS handshake
                # a bare context: create_default_context() would also load the system's trust store (~20 ms,
                # paid per school by a trust's --all-schools run) only to be thrown away
                ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=self.d.ca_file)
            except (ssl.SSLError, ValueError, UnicodeDecodeError) as exc:
                raise ConfigError(
                    f"directory.ca_file {self.d.ca_file} is not a PEM certificate ({exc})",
                    hint="it must hold the CA certificate in PEM form (-----BEGIN CERTIFICATE-----)",
                ) from None
            return ldap3.Tls(ca_certs_file=self.d.ca_file, validate=ssl.CERT_REQUIRED)
        return ldap3.Tls(validate=ssl.CERT_REQUIRED)  # the system's trust store

    def _open_one(self, url: str) -> ldap3.Connection:
        secure = url.lower().startswith("ldaps://") or self.d.start_tls
        if not secure and not self.d.allow_insecure:
            raise ConfigError(
                f"{url} is plain LDAP and directory.start_tls is false: the bind password would cross the network "
                "in clear",
                hint="use ldaps://, set start_tls = true, or (test labs only) allow_insecure = true",
            )
        server = ldap3.Server(
            url,
            use_ssl=url.lower().startswith("ldaps://"),
            tls=self._tls() if secure else None,
            connect_timeout=self.d.timeout,
            get_info=ldap3.NONE,
        )
        conn = ldap3.Connection(
            server,
            user=self.d.bind_dn,
            password=self._password,
            client_strategy=self._strategy,
            # ldap3 packs SO_RCVTIMEO as whole seconds ('LL'): a float such as 5.0 raises struct.error
            receive_timeout=max(1, math.ceil(self.d.timeout)),
            raise_exceptions=False,
            auto_range=True,
            return_empty_attributes=False,
            read_only=False,
        )
        entries.install(conn)  # raw searches decode entries leanly (bulk reads of thousands)
        conn.open()
        try:
            # Without it the bind after the TLS handshake waits ~40 ms (Nagle behind the server's delayed ACK).
            conn.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (OSError, AttributeError):
            pass  # not TCP (ldapi://): nothing to tune
        if self.d.start_tls and not url.lower().startswith("ldaps://"):
            if not conn.start_tls():
                raise lx.LDAPStartTLSError(f"StartTLS refused: {conn.result.get('description')}")
        if not conn.bind():
            result = conn.result or {}
            desc = result.get("description", "")
            message = result.get("message", "")
            conn.unbind()
            if desc in ("invalidCredentials", "inappropriateAuthentication", "strongerAuthRequired"):
                detail = f" ({message.strip()})" if message else ""
                raise AuthError(
                    f"the directory at {url} refused the bind as {self.d.bind_dn!r}: {desc}{detail}",
                    hint="check the bind password (aupctl config set-password) and directory.bind_dn",
                )
            raise UnreachableError(f"bind to {url} failed: {desc} {message}".strip())
        return conn

    def connect(self) -> Self:
        failures: list[str] = []
        for url in self.d.url:
            try:
                self.conn = self._open_one(url)
                self.url = url
                return self
            except (AuthError, ConfigError):
                raise
            except (*_LOST, OSError, lx.LDAPException) as exc:
                failures.append(f"{url}: {_reason(exc)}")
        raise UnreachableError(
            "cannot reach the directory: " + "; ".join(failures),
            hint="is the server up and the URL right? `aupctl doctor` checks each step",
        )

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.unbind()
            except Exception:  # noqa: BLE001 - closing a dead socket is not news
                pass
            self.conn = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, what: str, fn: Any) -> Any:
        """Run one operation; on a lost connection reconnect (with failover) once and retry."""
        if self.conn is None:
            self.connect()
        try:
            return fn(self.conn)
        except _LOST:
            self.close()
            self.connect()
            try:
                return fn(self.conn)
            except _LOST as exc:
                raise UnreachableError(f"lost the directory during {what}: {_reason(exc)}") from None

    def _check(self, ok: bool, what: str, tolerate: tuple[str, ...] = ()) -> str:
        assert self.conn is not None
        result = self.conn.result or {}
        desc = result.get("description", "")
        if ok or desc in tolerate:
            return desc or "success"
        if desc in ("busy", "unavailable", "unwillingToPerform") and "connection" in str(result).lower():
            raise UnreachableError(f"{what}: the directory is {desc}")
        message = (result.get("message") or "").strip()
        raise DirectoryError(
            f"{what}: {desc}" + (f" ({message})" if message else ""), result=desc, code=result.get("result", 0)
        )

    # -- reading --
    def search(
        self,
        base: str,
        ldap_filter: str,
        attributes: list[str] | None = None,
        scope: str = ldap3.SUBTREE,
        *,
        raw: bool = False,
    ) -> Iterator[tuple[str, Attrs]]:
        """Paged search (AD gives at most 1,000 a page); yields (dn, {attr: [values]}) without Entry objects."""
        attrs = attributes if attributes is not None else [ldap3.NO_ATTRIBUTES]
        cookie: bytes | None = None
        yielded = False
        retried = False
        while True:
            try:
                if self.conn is None:
                    self.connect()
                assert self.conn is not None
                strategy = self.conn.strategy
                lean = raw and getattr(strategy, "lean_entries", None) is False  # entries.install'ed
                if lean:
                    strategy.lean_entries = True
                try:
                    ok = self.conn.search(
                        base,
                        ldap_filter,
                        search_scope=scope,
                        attributes=attrs,
                        paged_size=self.d.page_size,
                        paged_cookie=cookie,
                    )
                finally:
                    if lean:
                        strategy.lean_entries = False
            except _LOST as exc:
                if yielded or retried:
                    raise UnreachableError(f"lost the directory while reading {base}: {_reason(exc)}") from None
                retried = True
                self.close()
                continue
            desc = (self.conn.result or {}).get("description", "")
            if not ok and desc == "noSuchObject":
                return
            self._check(ok or desc == "success", f"search under {base}")
            for item in self.conn.response or []:
                if item.get("type") != "searchResEntry":
                    continue
                yielded = True
                if "lean" in item:  # entries.decode_entry's: already {name: [bytes]}
                    yield item["dn"], item["raw_attributes"]
                    continue
                values = item["raw_attributes"] if raw else item["attributes"]
                yield item["dn"], {k: (v if isinstance(v, list) else [v]) for k, v in values.items()}
            controls = (self.conn.result or {}).get("controls", {})
            cookie = controls.get("1.2.840.113556.1.4.319", {}).get("value", {}).get("cookie")
            if not cookie:
                return

    def read(self, dn: str, attributes: list[str] | None = None, *, raw: bool = False) -> Attrs | None:
        """One entry by DN, or None if it is not there."""
        for _, attrs in self.search(dn, "(objectClass=*)", attributes or ["*"], ldap3.BASE, raw=raw):
            return attrs
        return None

    def exists(self, dn: str) -> bool:
        return self.read(dn, ["1.1"]) is not None

    # -- writing --
    def add(self, dn: str, object_class: list[str], attributes: dict[str, Any]) -> str:
        ok = self._call(f"add {dn}", lambda c: c.add(dn, object_class, attributes))
        return self._check(ok, f"cannot create {dn}", tolerate=("entryAlreadyExists",))

    def modify(
        self, dn: str, changes: dict[str, list[tuple[str, list[Any]]]], *, tolerate: tuple[str, ...] = ()
    ) -> str:
        ok = self._call(f"modify {dn}", lambda c: c.modify(dn, changes))
        return self._check(ok, f"cannot change {dn}", tolerate)

    def move(self, dn: str, new_parent: str) -> str:
        rdn = first_rdn(dn)
        ok = self._call(f"move {dn}", lambda c: c.modify_dn(dn, rdn, new_superior=new_parent))
        return self._check(ok, f"cannot move {dn} to {new_parent}")

    def rename(self, dn: str, new_rdn: str, new_parent: str | None = None) -> str:
        """modrdn: a new first RDN (the old RDN value deleted), and a new parent if given, in one request."""
        ok = self._call(f"rename {dn}", lambda c: c.modify_dn(dn, new_rdn, delete_old_dn=True, new_superior=new_parent))
        return self._check(ok, f"cannot rename {dn} to {new_rdn}" + (f" under {new_parent}" if new_parent else ""))

    def password_modify(self, dn: str, new_password: str) -> None:
        def op(c: ldap3.Connection) -> Any:
            return c.extend.standard.modify_password(user=dn, new_password=new_password)

        ok = self._call(f"set password of {dn}", op)
        self._check(bool(ok), f"cannot set the password of {dn}")
