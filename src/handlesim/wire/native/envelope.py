"""The 20-byte Message Envelope (RFC 3652 section 2.2.1) that precedes every native message and every UDP packet.

    octet 0  major version          octet 1  minor version
    octet 2  flags: 0x80 compressed, 0x40 encrypted, 0x20 truncated; low 2 bits: suggested major version
    octet 3  suggested minor version (Handle.Net v7+; 0/0 means "the same as the version above")
    4-7 SessionId   8-11 RequestId   12-15 MessageId (sequence number of a UDP packet)
    16-19 MessageLength (header + body + credential of the whole message, not this packet)
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ...core.errors import ProtocolError

ENVELOPE_SIZE = 20
MAX_MESSAGE_LENGTH = 262_144
"""The reference implementation's limit (Common.MAX_MESSAGE_LENGTH, 256 KB): larger messages are refused."""
MAJOR_VERSION = 2
MINOR_VERSION = 11
"""The protocol version this implementation speaks (Handle.Net v9's Common.MAJOR/MINOR_VERSION)."""
OLDEST_MINOR_VERSION = 5
"""Oldest 2.x answer format supported: before 2.5 a prefix referral could not be expressed (303 meant 'backup')."""

FLAG_COMPRESSED = 0x80
FLAG_ENCRYPTED = 0x40
FLAG_TRUNCATED = 0x20
_SUGGEST_MAJOR_MASK = 0x03

_LAYOUT = struct.Struct(">BBBBIIII")


@dataclass(frozen=True, slots=True)
class Envelope:
    major: int = MAJOR_VERSION
    minor: int = MINOR_VERSION
    suggest_major: int = MAJOR_VERSION
    """Highest version the sender speaks; answers use min(ours, this). 0..3 (two bits on the wire)."""
    suggest_minor: int = MINOR_VERSION
    compressed: bool = False
    encrypted: bool = False
    truncated: bool = False
    """Set on every packet of a message split over several UDP packets."""
    session_id: int = 0
    request_id: int = 0
    sequence: int = 0
    """MessageId: the packet's position in a multi-packet UDP message (0 for a single packet or on TCP)."""
    length: int = 0
    """MessageLength of the whole message (header, body and credential)."""

    @property
    def answer_version(self) -> tuple[int, int]:
        """The version an answer to this message uses: what the sender suggests, capped at ours."""
        return min((self.suggest_major, self.suggest_minor), (MAJOR_VERSION, MINOR_VERSION))

    def encode(self) -> bytes:
        flags = ((FLAG_COMPRESSED if self.compressed else 0) | (FLAG_ENCRYPTED if self.encrypted else 0)
                 | (FLAG_TRUNCATED if self.truncated else 0) | (self.suggest_major & _SUGGEST_MAJOR_MASK))
        return _LAYOUT.pack(self.major & 0xFF, self.minor & 0xFF, flags, self.suggest_minor & 0xFF,
                            self.session_id & 0xFFFFFFFF, self.request_id & 0xFFFFFFFF,
                            self.sequence & 0xFFFFFFFF, self.length & 0xFFFFFFFF)


def decode_envelope(data: bytes, *, check_length: bool = True) -> Envelope:
    """The envelope at the start of `data`; ProtocolError when short or (unless `check_length` is off, to answer
    such a message) when it announces an impossible length.

    Session and request ids are Java ints on the reference implementation, so they are read as signed."""
    if len(data) < ENVELOPE_SIZE:
        raise ProtocolError(f"message envelope: {len(data)} bytes, need {ENVELOPE_SIZE}")
    major, minor, flags, suggest_minor, session, request, sequence, length = _LAYOUT.unpack_from(data)
    suggest_major = flags & _SUGGEST_MAJOR_MASK
    if suggest_major == 0:  # a sender that does not suggest speaks only the version it used
        suggest_major, suggest_minor = major, minor
    if check_length and length > MAX_MESSAGE_LENGTH:
        raise ProtocolError(f"message envelope: message length {length} is over the {MAX_MESSAGE_LENGTH}-byte limit")
    return Envelope(major, minor, suggest_major, suggest_minor, bool(flags & FLAG_COMPRESSED),
                    bool(flags & FLAG_ENCRYPTED), bool(flags & FLAG_TRUNCATED), _signed(session), _signed(request),
                    sequence, length)


def check_version(envelope: Envelope) -> None:
    """ProtocolError unless the message is protocol 2.x and an answer can be written in 2.5 or later."""
    if envelope.major != MAJOR_VERSION:
        raise ProtocolError(f"protocol version {envelope.major}.{envelope.minor} is not supported "
                            f"(this server speaks {MAJOR_VERSION}.{OLDEST_MINOR_VERSION}..{MAJOR_VERSION}."
                            f"{MINOR_VERSION})")
    if envelope.answer_version < (MAJOR_VERSION, OLDEST_MINOR_VERSION):
        major, minor = envelope.answer_version
        raise ProtocolError(f"answers in protocol {major}.{minor} are not supported (oldest: "
                            f"{MAJOR_VERSION}.{OLDEST_MINOR_VERSION})")
    if envelope.compressed or envelope.encrypted:
        raise ProtocolError("compressed or encrypted messages are not supported (no sessions here)")


def _signed(value: int) -> int:
    return value - (1 << 32) if value & 0x80000000 else value
