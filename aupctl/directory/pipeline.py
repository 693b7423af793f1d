"""Many independent writes on one bound connection, sent together and answered together (pipelined).

The intake makes hundreds of accounts, each one request. One at a time through ldap3 each costs a
round trip plus ~0.5 ms of ldap3's pure-Python BER encoding; here the few request shapes the intake
needs (Add, Modify) are encoded directly, a group of them is written in one go on the Directory's own
bound TLS socket, and the answers are read back and matched by message ID.

Only for requests that do not depend on each other: slapd may run a connection's outstanding operations
side by side, so an entry's add and a change to that entry never travel in the same group. One thread
only (OpenSSL does not allow two threads on one TLS socket). The connection is left as ldap3 expects:
every answer read, nothing outstanding.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ldap3.core.results import RESULT_CODES

from ..errors import UnreachableError

if TYPE_CHECKING:
    from .connection import Connection

MODIFY_ADD = 0
MODIFY_DELETE = 1
MODIFY_REPLACE = 2
MAX_OUTSTANDING = 100  # well under slapd's conn_max_pending_auth (1000 by default)


def _len(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(body),)) + body


def _tlv(tag: int, body: bytes) -> bytes:
    return bytes((tag,)) + _len(len(body)) + body


def _octets(value: Any) -> bytes:
    if isinstance(value, bytes):
        return _tlv(0x04, value)
    return _tlv(0x04, str(value).encode("utf-8"))


def _attribute(name: str, values: Any) -> bytes:
    vals = values if isinstance(values, list | tuple) else [values]
    return _tlv(0x30, _octets(name) + _tlv(0x31, b"".join(_octets(v) for v in vals)))


def add_request(dn: str, object_classes: Sequence[str], attributes: dict[str, Any]) -> bytes:
    """AddRequest ([APPLICATION 8]): the entry with its object classes and attributes (empty values left out)."""
    attrs = [_attribute("objectClass", list(object_classes))]
    attrs += [_attribute(k, v) for k, v in attributes.items() if v not in (None, "", [])]
    return _tlv(0x68, _octets(dn) + _tlv(0x30, b"".join(attrs)))


def modify_request(dn: str, changes: Iterable[tuple[int, str, list[Any]]]) -> bytes:
    """ModifyRequest ([APPLICATION 6]): (operation, attribute, values) in order, applied atomically."""
    body = b"".join(_tlv(0x30, _tlv(0x0A, bytes((op,))) + _attribute(attr, vals)) for op, attr, vals in changes)
    return _tlv(0x66, _octets(dn) + _tlv(0x30, body))


def compare_request(dn: str, attribute: str, value: Any) -> bytes:
    """CompareRequest ([APPLICATION 14]): does the entry hold this value (compareTrue/compareFalse)?"""
    return _tlv(0x6E, _octets(dn) + _tlv(0x30, _octets(attribute) + _octets(value)))


def message(msgid: int, op: bytes) -> bytes:
    """LDAPMessage: the message ID (INTEGER) and the operation (no controls)."""
    return _tlv(0x30, _tlv(0x02, msgid.to_bytes((msgid.bit_length() + 8) // 8, "big")) + op)


@dataclass
class Result:
    code: int
    name: str  # as ldap3 names it: "success", "entryAlreadyExists", ...
    message: str

    @property
    def ok(self) -> bool:
        return self.code == 0


def _read_tlv(data: bytes | memoryview, pos: int) -> tuple[int, int, int]:
    """(tag, start of the value, end of the value) of the element at pos."""
    tag = data[pos]
    first = data[pos + 1]
    pos += 2
    if first < 0x80:
        return tag, pos, pos + first
    n = first & 0x7F
    length = int.from_bytes(bytes(data[pos : pos + n]), "big")
    return tag, pos + n, pos + n + length


def _message_size(buf: bytearray) -> int | None:
    """The whole size of the first message in buf, or None while its header is incomplete."""
    if len(buf) < 2:
        return None
    first = buf[1]
    if first < 0x80:
        return 2 + first
    n = first & 0x7F
    if len(buf) < 2 + n:
        return None
    return 2 + n + int.from_bytes(bytes(buf[2 : 2 + n]), "big")


def _decode(message: bytes) -> tuple[int, int, Result]:
    """(message ID, protocolOp tag, its LDAPResult) of one response."""
    _, start, _ = _read_tlv(message, 0)  # LDAPMessage SEQUENCE
    _, s, e = _read_tlv(message, start)  # messageID
    msgid = int.from_bytes(message[s:e], "big")
    op_tag, s, _ = _read_tlv(message, e)  # protocolOp
    _, cs, ce = _read_tlv(message, s)  # resultCode ENUMERATED
    code = int.from_bytes(message[cs:ce], "big")
    _, ms, me = _read_tlv(message, ce)  # matchedDN
    _, ds, de = _read_tlv(message, me)  # diagnosticMessage
    text = message[ds:de].decode("utf-8", "replace")
    return msgid, op_tag, Result(code, RESULT_CODES.get(code, str(code)), text)


class Pipeline:
    """Writes on the Directory's bound connection, MAX_OUTSTANDING at a time in flight."""

    def __init__(self, directory: Connection) -> None:
        self.directory = directory

    def run(self, requests: Sequence[bytes], what: str = "writing") -> list[Result]:
        """Each request's result, in the order given."""
        return self.send(requests, what).wait()

    def send(self, requests: Sequence[bytes], what: str = "writing") -> Pending:
        """Send (the first MAX_OUTSTANDING of) the requests now; Pending.wait() reads the answers. In between
        the caller may do other work while the server does this."""
        pending = Pending(self.directory, requests, what)
        pending.guarded(pending.send_more)
        return pending


class Pending:
    """Requests sent and answers to come. A lost connection is reconnected (with failover) once and the
    unanswered requests sent again: safe for what the intake sends, since an add that was in fact made
    comes back entryAlreadyExists and a member already added attributeOrValueExists, which the caller
    handles. Lost again: UnreachableError (some requests may have been carried out: the caller's plan says
    so and a re-run finishes)."""

    def __init__(self, directory: Connection, requests: Sequence[bytes], what: str) -> None:
        self.directory = directory
        self.requests = requests
        self.what = what
        self.results: list[Result | None] = [None] * len(requests)
        self.ids: dict[int, int] = {}  # message ID in flight -> request index
        self.todo = list(range(len(requests)))  # not yet sent (on this connection)
        self.retried = False

    def guarded(self, step: Any) -> None:
        d = self.directory
        while True:
            try:
                step()
                return
            except OSError as exc:  # ssl.SSLError and socket.timeout too
                d.close()  # half-read answers: the next request starts on a fresh connection
                if self.retried:
                    raise UnreachableError(
                        f"lost the directory while {self.what}: {exc or type(exc).__name__}"
                    ) from None
                self.retried = True
                d.connect()  # raises UnreachableError when no server answers
                self.todo = sorted(set(self.todo) | set(self.ids.values()))
                self.ids = {}
                step = self._resend(step)
            except BaseException:  # Ctrl-C with answers unread: ldap3 must never read them as its own
                d.close()
                raise

    def _resend(self, step: Any) -> Any:
        def again() -> None:
            self.send_more()
            if step != self.send_more:
                step()

        return again

    def send_more(self) -> None:
        d = self.directory
        if d.conn is None or d.conn.closed:
            d.connect()
        conn = d.conn
        assert conn is not None
        room = MAX_OUTSTANDING - len(self.ids)
        chunk, self.todo = self.todo[:room], self.todo[room:]
        if not chunk:
            return
        out = bytearray()
        for i in chunk:
            msgid = conn.server.next_message_id()
            self.ids[msgid] = i
            out += message(msgid, self.requests[i])
        conn.socket.sendall(out)

    def wait(self) -> list[Result]:
        """Each request's result, in the order given."""
        self.guarded(self._receive_all)
        return [r for r in self.results if r is not None]

    def _receive_all(self) -> None:
        conn = self.directory.conn
        assert conn is not None
        sock = conn.socket
        buf = bytearray()
        while self.ids or self.todo:
            if not self.ids:
                self.send_more()
            data = sock.recv(65536)
            if not data:
                raise ConnectionError("the directory closed the connection")
            buf += data
            while True:
                size = _message_size(buf)
                if size is None or len(buf) < size:
                    break
                try:
                    msgid, _, result = _decode(bytes(buf[:size]))
                except (IndexError, ValueError):
                    raise ConnectionError("an answer that is not LDAP") from None
                del buf[:size]
                if msgid == 0:  # an unsolicited notice (of disconnection): the server is going away
                    raise ConnectionError(f"the directory ended the session ({result.name} {result.message})".strip())
                index = self.ids.pop(msgid, None)
                if index is None:
                    raise ConnectionError(f"an answer to a request never sent (message {msgid})")
                self.results[index] = result
            if len(self.ids) < MAX_OUTSTANDING // 2 and self.todo:
                self.send_more()
        if buf:
            raise ConnectionError("unexpected data after the last answer")
