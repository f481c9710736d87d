"""STUN messages (RFC 5389), sans-I/O: enough for Binding requests and responses.

:class:`StunMessage` is the 20-byte header (type, length, magic cookie, transaction ID) and the attributes as
``(type, value)`` pairs. ``StunMessage.parse(data)`` reads a datagram and ``bytes(message)`` writes one; a
message with :attr:`~StunMessage.key` set is written with MESSAGE-INTEGRITY (HMAC-SHA1 keyed by it,
section 15.4), and with :attr:`~StunMessage.fingerprint` set, with FINGERPRINT (CRC-32, section 15.5).
Parsing checks FINGERPRINT when present and keeps what MESSAGE-INTEGRITY covers, so that
:meth:`~StunMessage.check_integrity` can verify it against a key known only later (after USERNAME has named
whose key it is). Attributes after MESSAGE-INTEGRITY other than FINGERPRINT are ignored, as the RFC says.

Typed accessors read USERNAME, SOFTWARE, XOR-MAPPED-ADDRESS, MAPPED-ADDRESS and ERROR-CODE; helpers build
the Binding request and success response conf's RTP transport uses. Malformed input raises
:class:`conf_cli.errors.ProtocolError` with an exact message; every length is checked against the datagram.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import struct
import zlib
from dataclasses import dataclass, field

from conf_cli.errors import ProtocolError
from conf_cli.protocol.rtp import Buffer

__all__ = [
    "BINDING",
    "CLASS_ERROR",
    "CLASS_INDICATION",
    "CLASS_REQUEST",
    "CLASS_SUCCESS",
    "MAGIC_COOKIE",
    "MAX_STUN_BYTES",
    "StunMessage",
    "binding_request",
    "binding_success",
    "is_stun",
    "pad_to",
]

MAGIC_COOKIE = 0x2112A442
HEADER_SIZE = 20
MAX_STUN_BYTES = 1500
"""Longer datagrams are refused (a Binding message is well under 200 bytes)."""
MAX_ATTRIBUTES = 64
MAX_USERNAME_BYTES = 512  # RFC 5389 section 15.3: less than 513 bytes

BINDING = 0x001
CLASS_REQUEST = 0b00
CLASS_INDICATION = 0b01
CLASS_SUCCESS = 0b10
CLASS_ERROR = 0b11

ATTR_MAPPED_ADDRESS = 0x0001
ATTR_USERNAME = 0x0006
ATTR_MESSAGE_INTEGRITY = 0x0008
ATTR_ERROR_CODE = 0x0009
ATTR_XOR_MAPPED_ADDRESS = 0x0020
ATTR_PADDING = 0x0026  # RFC 5780 section 7.6
ATTR_SOFTWARE = 0x8022
ATTR_FINGERPRINT = 0x8028

FINGERPRINT_XOR = 0x5354554E
_HEADER = struct.Struct("!HHI12s")
_ATTR = struct.Struct("!HH")
_INTEGRITY_SIZE = 4 + 20
_FINGERPRINT_SIZE = 4 + 4


def _message_type(method: int, message_class: int) -> int:
    """Interleave the 12 method bits and 2 class bits as in RFC 5389 section 6 (figure 3)."""
    return (
        (method & 0x000F)
        | ((method & 0x0070) << 1)
        | ((method & 0x0F80) << 2)
        | ((message_class & 0b01) << 4)
        | ((message_class & 0b10) << 7)
    )


def _split_type(message_type: int) -> tuple[int, int]:
    method = (message_type & 0x000F) | ((message_type & 0x00E0) >> 1) | ((message_type & 0x3E00) >> 2)
    message_class = ((message_type >> 4) & 0b01) | ((message_type >> 7) & 0b10)
    return method, message_class


def is_stun(data: Buffer) -> bool:
    """True for what looks like a STUN message: top two bits 0 and the magic cookie (RFC 5389 section 6).

    On a port shared with RTP/RTCP (whose first two bits are ``10``) this demultiplexes (RFC 7983).
    """
    return len(data) >= HEADER_SIZE and data[0] < 0x40 and int.from_bytes(data[4:8], "big") == MAGIC_COOKIE


def _pad(length: int) -> int:
    return -length % 4


@dataclass(slots=True)
class StunMessage:
    """One STUN message.

    ``attributes`` holds every attribute except MESSAGE-INTEGRITY and FINGERPRINT, which are written from
    ``key`` and ``fingerprint`` and, on parsing, checked (FINGERPRINT) or kept in ``integrity`` with the
    bytes it covers (MESSAGE-INTEGRITY). ``padding_byte`` fills attribute values to 32-bit boundaries.
    """

    method: int
    message_class: int
    transaction_id: bytes
    attributes: list[tuple[int, bytes]] = field(default_factory=list)
    key: bytes | None = None
    fingerprint: bool = False
    padding_byte: int = 0
    integrity: bytes | None = None
    """The MESSAGE-INTEGRITY value of a parsed message, or None."""
    _signed: bytes = b""

    # -- reading ----------------------------------------------------------------------------------------

    @classmethod
    def parse(cls, data: Buffer) -> StunMessage:
        """Read one STUN message; raise ProtocolError if it is malformed or its FINGERPRINT is wrong."""
        size = len(data)
        if size < HEADER_SIZE:
            raise ProtocolError(f"STUN message too short: {size} bytes, the header needs 20")
        if size > MAX_STUN_BYTES:
            raise ProtocolError(f"STUN message of {size} bytes exceeds {MAX_STUN_BYTES}")
        message_type, length, cookie, transaction_id = _HEADER.unpack_from(data)
        if message_type & 0xC000:
            raise ProtocolError("STUN message type has its top two bits set")
        if cookie != MAGIC_COOKIE:
            raise ProtocolError(f"STUN magic cookie is {cookie:#010x}, not {MAGIC_COOKIE:#010x}")
        if length % 4:
            raise ProtocolError(f"STUN message length {length} is not a multiple of 4")
        if HEADER_SIZE + length != size:
            raise ProtocolError(
                f"STUN length field says {HEADER_SIZE + length} bytes but the datagram has {size}"
            )
        method, message_class = _split_type(message_type)
        message = cls(method, message_class, bytes(transaction_id))
        offset = HEADER_SIZE
        count = 0
        while offset < size:
            if size - offset < 4:
                raise ProtocolError(f"STUN attribute header at byte {offset} runs past the end")
            kind, value_length = _ATTR.unpack_from(data, offset)
            start = offset + 4
            end = start + value_length
            if end > size:
                raise ProtocolError(
                    f"STUN attribute {kind:#06x} of {value_length} bytes runs past the end of the "
                    f"{size}-byte message"
                )
            count += 1
            if count > MAX_ATTRIBUTES:
                raise ProtocolError(f"STUN message has more than {MAX_ATTRIBUTES} attributes")
            value = bytes(data[start:end])
            next_offset = end + _pad(value_length)
            if kind == ATTR_FINGERPRINT:
                if value_length != 4 or next_offset != size:
                    raise ProtocolError("STUN FINGERPRINT must be 4 bytes and the last attribute")
                expected = _crc(bytes(data[:offset]), offset + _FINGERPRINT_SIZE)
                if int.from_bytes(value, "big") != expected:
                    raise ProtocolError("STUN FINGERPRINT does not match the message")
                message.fingerprint = True
            elif message.integrity is not None:
                pass  # after MESSAGE-INTEGRITY only FINGERPRINT counts (RFC 5389 section 15.4)
            elif kind == ATTR_MESSAGE_INTEGRITY:
                if value_length != 20:
                    raise ProtocolError(f"STUN MESSAGE-INTEGRITY is {value_length} bytes, not 20")
                message.integrity = value
                message._signed = _with_length(bytes(data[:offset]), offset + _INTEGRITY_SIZE)
            else:
                message.attributes.append((kind, value))
            offset = next_offset
        if offset != size:
            raise ProtocolError("STUN attribute padding runs past the end of the message")
        return message

    def check_integrity(self, key: bytes) -> bool:
        """True if this parsed message carries a MESSAGE-INTEGRITY made with ``key``."""
        if self.integrity is None:
            return False
        digest = hmac.new(key, self._signed, hashlib.sha1).digest()
        return hmac.compare_digest(digest, self.integrity)

    def get(self, kind: int) -> bytes | None:
        """The value of the first attribute of type ``kind``, or None."""
        for attr, value in self.attributes:
            if attr == kind:
                return value
        return None

    @property
    def username(self) -> str | None:
        value = self.get(ATTR_USERNAME)
        if value is None:
            return None
        if len(value) > MAX_USERNAME_BYTES:
            raise ProtocolError(f"STUN USERNAME of {len(value)} bytes exceeds {MAX_USERNAME_BYTES}")
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError("STUN USERNAME is not UTF-8") from None

    @property
    def software(self) -> str | None:
        value = self.get(ATTR_SOFTWARE)
        return None if value is None else value.decode("utf-8", errors="replace")

    @property
    def xor_mapped_address(self) -> tuple[str, int] | None:
        value = self.get(ATTR_XOR_MAPPED_ADDRESS)
        return None if value is None else _read_address(value, self.transaction_id, xor=True)

    @property
    def mapped_address(self) -> tuple[str, int] | None:
        value = self.get(ATTR_MAPPED_ADDRESS)
        return None if value is None else _read_address(value, self.transaction_id, xor=False)

    @property
    def error_code(self) -> tuple[int, str] | None:
        value = self.get(ATTR_ERROR_CODE)
        if value is None:
            return None
        if len(value) < 4:
            raise ProtocolError(f"STUN ERROR-CODE is {len(value)} bytes, needs at least 4")
        return (value[2] & 0x07) * 100 + value[3], value[4:].decode("utf-8", errors="replace")

    # -- writing ----------------------------------------------------------------------------------------

    def __bytes__(self) -> bytes:
        """Write the message; raise ValueError if a field does not fit."""
        if len(self.transaction_id) != 12:
            raise ValueError(f"STUN transaction ID is {len(self.transaction_id)} bytes, not 12")
        if not 0 <= self.method <= 0xFFF or not 0 <= self.message_class <= 3:
            raise ValueError(f"STUN method {self.method} or class {self.message_class} out of range")
        pad = bytes((self.padding_byte,)) * 3
        parts: list[bytes] = []
        for kind, value in self.attributes:
            if len(value) > 0xFFFF or not 0 <= kind <= 0xFFFF:
                raise ValueError(f"STUN attribute {kind} of {len(value)} bytes does not fit")
            parts.append(_ATTR.pack(kind, len(value)) + value + pad[: _pad(len(value))])
        body = b"".join(parts)
        message_type = _message_type(self.method, self.message_class)
        header = _HEADER.pack(message_type, 0, MAGIC_COOKIE, self.transaction_id)
        data = header + body
        if self.key is not None:
            signed = _with_length(data, len(data) + _INTEGRITY_SIZE)
            digest = hmac.new(self.key, signed, hashlib.sha1).digest()
            data = signed + _ATTR.pack(ATTR_MESSAGE_INTEGRITY, 20) + digest
        if self.fingerprint:
            data = _with_length(data, len(data) + _FINGERPRINT_SIZE)
            data += _ATTR.pack(ATTR_FINGERPRINT, 4) + _crc(data, len(data) + _FINGERPRINT_SIZE).to_bytes(
                4, "big"
            )
        data = _with_length(data, len(data))
        if len(data) > MAX_STUN_BYTES:
            raise ValueError(f"STUN message of {len(data)} bytes exceeds {MAX_STUN_BYTES}")
        return data


def _with_length(data: bytes, total: int) -> bytes:
    """``data`` with the header's length field set as if the message were ``total`` bytes long."""
    return data[:2] + (total - HEADER_SIZE).to_bytes(2, "big") + data[4:]


def _crc(data: bytes, total: int) -> int:
    return (zlib.crc32(_with_length(data, total)) ^ FINGERPRINT_XOR) & 0xFFFFFFFF


def _read_address(value: bytes, transaction_id: bytes, *, xor: bool) -> tuple[str, int]:
    if len(value) < 4:
        raise ProtocolError(f"STUN address attribute is {len(value)} bytes, needs at least 4")
    family = value[1]
    port = int.from_bytes(value[2:4], "big")
    raw = value[4:]
    if family == 0x01:
        if len(raw) != 4:
            raise ProtocolError(f"STUN IPv4 address is {len(raw)} bytes, not 4")
    elif family == 0x02:
        if len(raw) != 16:
            raise ProtocolError(f"STUN IPv6 address is {len(raw)} bytes, not 16")
    else:
        raise ProtocolError(f"STUN address family {family:#04x} is neither IPv4 nor IPv6")
    if xor:
        port ^= MAGIC_COOKIE >> 16
        mask = (MAGIC_COOKIE.to_bytes(4, "big") + transaction_id)[: len(raw)]
        raw = bytes(a ^ b for a, b in zip(raw, mask, strict=True))
    return str(ipaddress.ip_address(raw)), port


def _write_address(host: str, port: int, transaction_id: bytes, *, xor: bool) -> bytes:
    address = ipaddress.ip_address(host.split("%", 1)[0])
    raw = address.packed
    family = 0x01 if address.version == 4 else 0x02
    if xor:
        port ^= MAGIC_COOKIE >> 16
        mask = (MAGIC_COOKIE.to_bytes(4, "big") + transaction_id)[: len(raw)]
        raw = bytes(a ^ b for a, b in zip(raw, mask, strict=True))
    return bytes((0, family)) + port.to_bytes(2, "big") + raw


def binding_request(
    transaction_id: bytes, username: str, key: bytes | None, software: str | None = None
) -> StunMessage:
    """A Binding request naming ``username``, signed with ``key`` (if any), with a FINGERPRINT."""
    attributes = [(ATTR_USERNAME, username.encode())]
    if software:
        attributes.insert(0, (ATTR_SOFTWARE, software.encode()))
    return StunMessage(BINDING, CLASS_REQUEST, transaction_id, attributes, key=key, fingerprint=True)


def pad_to(message: StunMessage, size: int) -> StunMessage:
    """``message`` with a PADDING attribute (RFC 5780) that makes it at least ``size`` bytes long: an
    answerer that sends no answer larger than its request (conf_cli.reflection) can then answer it."""
    missing = size - len(bytes(message))
    if missing > 0:
        message.attributes.append((ATTR_PADDING, bytes(max(0, missing - 4))))
    return message


def binding_success(
    transaction_id: bytes, host: str, port: int, key: bytes | None, software: str | None = None
) -> StunMessage:
    """A Binding success response telling the requester its address as seen (XOR-MAPPED-ADDRESS)."""
    attributes = [(ATTR_XOR_MAPPED_ADDRESS, _write_address(host, port, transaction_id, xor=True))]
    if software:
        attributes.insert(0, (ATTR_SOFTWARE, software.encode()))
    return StunMessage(BINDING, CLASS_SUCCESS, transaction_id, attributes, key=key, fingerprint=True)
