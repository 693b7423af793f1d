"""Lean decoding of search result entries for raw bulk reads (thousands of people or group members).

ldap3 decodes each entry with a general BER walker and then builds two dicts (raw and formatted values),
about 40 us an entry: more than half of reading 10,000 people. A raw search needs neither the
formatting nor the generality, so on a SYNC connection `install` lets `Directory.search(raw=True)` decode
each SearchResultEntry straight from its bytes (messageID, DN, {attribute: [bytes]}). Anything else (the
search's result with its paging cookie, references, ranged attributes that ldap3's auto_range follows,
odd encodings) goes through ldap3 as before, so paging, referrals and errors behave exactly as they did.
"""

from __future__ import annotations

from typing import Any

from ldap3.core.exceptions import LDAPExtensionError, LDAPSocketReceiveError
from ldap3.strategy.base import RESPONSE_COMPLETE, SESSION_TERMINATED_BY_SERVER, TRANSACTION_ERROR
from ldap3.strategy.sync import SyncStrategy
from ldap3.utils.asn1 import decode_message_fast

_MORE_TYPES = ("searchResEntry", "searchResRef", "intermediateResponse")  # more responses follow these


def _length(msg: bytes, i: int) -> tuple[int, int]:
    """BER definite length at msg[i] -> (length, offset of the value)."""
    b = msg[i]
    if b < 0x80:
        return b, i + 1
    n = b & 0x7F
    return int.from_bytes(msg[i + 1 : i + 1 + n], "big"), i + 1 + n


def decode_entry(msg: bytes) -> tuple[int, str, dict[str, list[bytes]]] | None:
    """(messageID, DN, {attribute: [raw values]}) of an LDAPMessage holding a SearchResultEntry (RFC 4511
    4.5.2); None for any other message or anything unusual, which the caller leaves to ldap3."""
    # One function over 80 lines on purpose: it runs once per entry of searches of thousands, and a helper
    # call per attribute or value would cost a Python call each, more than the decoding it does.
    # Lengths under 128 (one byte: nearly every name and value) are read inline; _length does the rest.
    try:
        if msg[0] != 0x30:
            return None
        total, i = _length(msg, 1)
        if i + total != len(msg):  # receiving() hands over whole messages: anything else is not ours
            return None
        if msg[i] != 0x02:  # messageID INTEGER (0 .. 2^31-1)
            return None
        n = msg[i + 1]
        if n < 0x80:
            i += 2
        else:
            n, i = _length(msg, i + 1)
        mid = int.from_bytes(msg[i : i + n], "big")
        i += n
        if msg[i] != 0x64:  # [APPLICATION 4] SearchResultEntry
            return None
        n = msg[i + 1]
        if n < 0x80:
            i += 2
        else:
            n, i = _length(msg, i + 1)
        end_op = i + n
        if msg[i] != 0x04:  # objectName LDAPDN
            return None
        n = msg[i + 1]
        if n < 0x80:
            i += 2
        else:
            n, i = _length(msg, i + 1)
        dn = msg[i : i + n].decode("utf-8")
        i += n
        if msg[i] != 0x30:  # attributes PartialAttributeList
            return None
        n = msg[i + 1]
        if n < 0x80:
            i += 2
        else:
            n, i = _length(msg, i + 1)
        end = i + n
        attrs: dict[str, list[bytes]] = {}
        while i < end:
            if msg[i] != 0x30:  # PartialAttribute
                return None
            n = msg[i + 1]
            if n < 0x80:
                i += 2
            else:
                n, i = _length(msg, i + 1)
            attr_end = i + n
            if msg[i] != 0x04:  # type AttributeDescription
                return None
            n = msg[i + 1]
            if n < 0x80:
                i += 2
            else:
                n, i = _length(msg, i + 1)
            name = msg[i : i + n].decode("utf-8")
            if ";range=" in name:  # AD's ranged values: ldap3's auto_range reads the rest
                return None
            i += n
            if msg[i] != 0x31:  # vals SET OF AttributeValue
                return None
            n = msg[i + 1]
            if n < 0x80:
                i += 2
            else:
                n, i = _length(msg, i + 1)
            if i + n != attr_end:  # the values are the rest of the attribute
                return None
            vals: list[bytes] = []
            while i < attr_end:
                if msg[i] != 0x04:
                    return None
                n = msg[i + 1]
                if n < 0x80:
                    i += 2
                else:
                    n, i = _length(msg, i + 1)
                vals.append(msg[i : i + n])
                i += n
            if i != attr_end:
                return None
            attrs[name] = vals
        if i != end or end != end_op or end_op != len(msg):  # controls after the entry: ldap3 decodes them
            return None
        return mid, dn, attrs
    except (IndexError, UnicodeDecodeError):
        return None


def _get_response(strategy: Any, message_id: int, timeout: Any) -> Any:
    """SyncStrategy._get_response with searchResEntry messages decoded by decode_entry while
    `strategy.lean_entries` is set; every other message is decoded and checked as ldap3 does."""
    if not strategy.lean_entries:
        return SyncStrategy._get_response(strategy, message_id, timeout)
    connection = strategy.connection
    out: list[Any] = []
    while True:
        messages = strategy.receiving()
        if not messages:
            return SESSION_TERMINATED_BY_SERVER
        for msg in messages:
            if not msg:
                continue
            if connection.usage:
                connection._usage.update_received_message(len(msg))
            entry = decode_entry(msg)
            if entry is not None and entry[0] == message_id:
                _, dn, attrs = entry
                out.append(
                    {"type": "searchResEntry", "dn": dn, "raw_attributes": attrs, "attributes": attrs, "lean": True}
                )
                continue
            ldap_resp = decode_message_fast(msg)
            response = strategy.decode_response_fast(ldap_resp)
            mid = int(ldap_resp["messageID"])
            if mid == message_id:
                out.append(response)
                if response["type"] not in _MORE_TYPES:
                    out.append(RESPONSE_COMPLETE)
                    return out
            elif mid == 0:  # unsolicited notification (RFC 4511 4.4)
                if response.get("responseName") == "1.3.6.1.4.1.1466.20036":  # notice of disconnection
                    return SESSION_TERMINATED_BY_SERVER
                if response.get("responseName") == "2.16.840.1.113719.1.27.103.4":  # Novell transaction error
                    return TRANSACTION_ERROR
                connection.last_error = "unknown unsolicited notification from server"
                raise LDAPSocketReceiveError(connection.last_error)
            elif response["type"] == "extendedResp":
                connection.last_error = "multiple extended responses to a single extended request"
                raise LDAPExtensionError(connection.last_error)
            else:
                connection.last_error = "invalid messageId received"
                raise LDAPSocketReceiveError(connection.last_error)


def install(connection: Any) -> bool:
    """Let raw searches on this connection decode entries leanly; False (nothing done) unless plain SYNC."""
    strategy = connection.strategy
    if type(strategy) is not SyncStrategy or not connection.fast_decoder:
        return False
    strategy.lean_entries = False
    strategy._get_response = lambda message_id, timeout: _get_response(strategy, message_id, timeout)
    return True
