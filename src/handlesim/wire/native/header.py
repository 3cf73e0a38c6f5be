"""The 24-byte Message Header (RFC 3652 section 2.2.2) and the message it opens: header, body, credential.

    0-3 OpCode   4-7 ResponseCode (0 in requests)   8-11 OpFlag
    12-13 SiteInfoSerialNumber   14 RecursionCount   15 reserved
    16-19 ExpirationTime (epoch seconds)   20-23 BodyLength

A message is the header, BodyLength bytes of body, then the credential section: a 4-byte length and that many bytes
(length 0: no credential). The envelope's MessageLength counts all three.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from enum import IntFlag

from ...core.errors import ProtocolError
from .envelope import MAX_MESSAGE_LENGTH

HEADER_SIZE = 24
_LAYOUT = struct.Struct(">IIIHBBII")
_CREDENTIAL_LENGTH = struct.Struct(">I")


class OpFlag(IntFlag):
    """Operation flags; the names and bits of Handle.Net's Encoder.MSG_FLAG_* (RFC 3652 section 2.2.2.3)."""

    AUTH = 0x80000000
    """Authoritative: skip caches, ask a primary."""
    CERT = 0x40000000
    """Certify: the server should sign its answer."""
    ENCR = 0x20000000
    """Encrypt the answer (needs a session)."""
    RECU = 0x10000000
    """Recursive: a server not responsible for the handle may resolve it for the client."""
    CACR = 0x08000000
    """Cache certify: a caching server should sign its answers too."""
    CONT = 0x04000000
    """Continuous: more messages of this answer follow."""
    KPAL = 0x02000000
    """Keep alive: keep the TCP connection open for more requests."""
    PUBL = 0x01000000
    """Public only: answer only publicly readable values (no authentication)."""
    RRDG = 0x00800000
    """Return request digest: answers start with a digest of the request."""
    OVRW = 0x00400000
    """Overwrite: create or add values even where some already exist."""
    MINT = 0x00200000
    """Mint a new suffix (create)."""
    DNRF = 0x00100000
    """Do not refer: resolve for the client rather than answer with a referral."""


NO_FLAGS = OpFlag(0)
KNOWN_FLAGS = OpFlag(0)
for _flag in OpFlag:
    KNOWN_FLAGS |= _flag


@dataclass(frozen=True, slots=True)
class Header:
    op: int
    code: int = 0
    flags: OpFlag = OpFlag(0)
    site_serial: int = 0
    """The serial number of the sender's site information (a 16-bit field; the reference sends -1 as unknown)."""
    recursion_count: int = 0
    expiration: int = 0
    """When the message stops being valid (epoch seconds)."""

    @property
    def is_request(self) -> bool:
        return self.code == 0

    def encode(self, body_length: int) -> bytes:
        return _LAYOUT.pack(self.op & 0xFFFFFFFF, self.code & 0xFFFFFFFF, int(self.flags) & 0xFFFFFFFF,
                            self.site_serial & 0xFFFF, self.recursion_count & 0xFF, 0, self.expiration & 0xFFFFFFFF,
                            body_length)


@dataclass(frozen=True, slots=True)
class RawMessage:
    """A message split into its parts, the body still encoded (see body.py for the bodies)."""

    header: Header
    body: bytes
    credential: bytes = b""
    received: bytes = field(default=b"", compare=False, repr=False)
    """Header and body exactly as they arrived (a decoded message's digest must cover the sender's bytes)."""

    def encode(self) -> bytes:
        return b"".join((self.header.encode(len(self.body)), self.body,
                         _CREDENTIAL_LENGTH.pack(len(self.credential)), self.credential))

    @property
    def signed_part(self) -> bytes:
        """Header and body as sent: what request digests and signatures cover."""
        return self.received or self.header.encode(len(self.body)) + self.body


def split_message(data: bytes) -> RawMessage:
    """Header, body and credential of one whole message; ProtocolError when any length disagrees with the bytes.

    The credential section may be left out entirely (the reference decoder reads it only "if there is room")."""
    if len(data) > MAX_MESSAGE_LENGTH:
        raise ProtocolError(f"message is {len(data)} bytes, over the {MAX_MESSAGE_LENGTH}-byte limit")
    if len(data) < HEADER_SIZE:
        raise ProtocolError(f"message header: {len(data)} bytes, need {HEADER_SIZE}")
    op, code, flags, serial, recursion, _reserved, expiration, body_length = _LAYOUT.unpack_from(data)
    end = HEADER_SIZE + body_length
    if end > len(data):
        raise ProtocolError(f"message header: body length {body_length} is more than the "
                            f"{len(data) - HEADER_SIZE} bytes that follow the header")
    credential = b""
    rest = len(data) - end
    if rest:
        if rest < _CREDENTIAL_LENGTH.size:
            raise ProtocolError(f"credential section: {rest} bytes, need {_CREDENTIAL_LENGTH.size} for its length")
        (length,) = _CREDENTIAL_LENGTH.unpack_from(data, end)
        if length != rest - _CREDENTIAL_LENGTH.size:
            raise ProtocolError(f"credential section: length {length} but {rest - _CREDENTIAL_LENGTH.size} bytes "
                                "follow")
        credential = data[end + _CREDENTIAL_LENGTH.size:]
    serial_signed = serial - 0x10000 if serial & 0x8000 else serial
    header = Header(op, code, OpFlag(flags & int(KNOWN_FLAGS)), serial_signed, recursion, expiration)
    return RawMessage(header, data[HEADER_SIZE:end], credential, data[:end])
