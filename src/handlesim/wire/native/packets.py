"""Moving whole messages over UDP (512-byte packets, split and reassembled) and TCP (envelope-framed stream).

UDP: a message that fits in one packet goes as envelope + message. A longer one is cut into packets of at most 512
bytes, each with its own envelope: the same ids, TRUNCATED set, MessageId the packet's sequence number (0, 1, ...),
MessageLength the length of the whole message; every packet but the last carries 492 message bytes.
TCP: envelope + message, one after another on the stream.

Both receivers are bounded: a message may announce at most `MAX_MESSAGE_LENGTH` bytes, a reassembler keeps at most
`max_pending` partial messages and `max_pending_bytes` bytes for at most `timeout` seconds, so no sender can make it
hold more than that, whatever it sends.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field, replace

from ...core.errors import ProtocolError
from .envelope import ENVELOPE_SIZE, MAX_MESSAGE_LENGTH, Envelope, decode_envelope

UDP_PACKET_SIZE = 512
"""Largest UDP packet either side sends (Common.MAX_UDP_PACKET_SIZE)."""
UDP_DATA_SIZE = UDP_PACKET_SIZE - ENVELOPE_SIZE


def to_datagrams(envelope: Envelope, message: bytes) -> list[bytes]:
    """The packets that carry `message` (envelope ids taken from `envelope`; length and sequence set here)."""
    if len(message) > MAX_MESSAGE_LENGTH:
        raise ProtocolError(f"message of {len(message)} bytes is over the {MAX_MESSAGE_LENGTH}-byte limit")
    if len(message) <= UDP_DATA_SIZE:
        return [replace(envelope, truncated=False, sequence=0, length=len(message)).encode() + message]
    packets = []
    for sequence, start in enumerate(range(0, len(message), UDP_DATA_SIZE)):
        head = replace(envelope, truncated=True, sequence=sequence, length=len(message)).encode()
        packets.append(head + message[start:start + UDP_DATA_SIZE])
    return packets


def frame(envelope: Envelope, message: bytes) -> bytes:
    """Envelope + message, as a TCP stream carries it."""
    if len(message) > MAX_MESSAGE_LENGTH:
        raise ProtocolError(f"message of {len(message)} bytes is over the {MAX_MESSAGE_LENGTH}-byte limit")
    return replace(envelope, truncated=False, sequence=0, length=len(message)).encode() + message


@dataclass
class _Partial:
    envelope: Envelope
    started: float
    pieces: dict[int, bytes] = field(default_factory=dict)
    size: int = 0


class Reassembler:
    """Collects the packets of multi-packet UDP messages, per sender and request, within bounds."""

    def __init__(self, *, max_pending: int = 256, max_pending_bytes: int = 4 * MAX_MESSAGE_LENGTH,
                 timeout: float = 10.0) -> None:
        self.max_pending = max_pending
        self.max_pending_bytes = max_pending_bytes
        self.timeout = timeout
        self._partials: dict[tuple[Hashable, int, int], _Partial] = {}
        self._bytes = 0
        self.dropped = 0
        """Partial messages given up on (timed out, or pushed out to stay within the bounds)."""

    @property
    def pending(self) -> int:
        return len(self._partials)

    @property
    def pending_bytes(self) -> int:
        return self._bytes

    def feed(self, sender: Hashable, packet: bytes, now: float) -> tuple[Envelope, bytes] | None:
        """The whole message once `packet` completes one, else None. ProtocolError for a packet that cannot be part
        of any message (the sender can be told); a packet is never kept beyond the bounds."""
        envelope = decode_envelope(packet)
        data = packet[ENVELOPE_SIZE:]
        if len(packet) > UDP_PACKET_SIZE:
            raise ProtocolError(f"UDP packet of {len(packet)} bytes is over the {UDP_PACKET_SIZE}-byte limit")
        if not envelope.truncated and len(data) == envelope.length:
            return envelope, data
        return self._piece(sender, envelope, data, now)

    def _piece(self, sender: Hashable, envelope: Envelope, data: bytes, now: float) -> tuple[Envelope, bytes] | None:
        expected = -(-envelope.length // UDP_DATA_SIZE)
        last = expected - 1
        wanted = envelope.length - UDP_DATA_SIZE * last if envelope.sequence == last else UDP_DATA_SIZE
        if envelope.length <= UDP_DATA_SIZE or envelope.sequence > last or len(data) != wanted:
            raise ProtocolError(f"packet {envelope.sequence} carries {len(data)} bytes of a {envelope.length}-byte "
                                f"message; a message split into {max(expected, 1)} packets needs {wanted} here")
        self.expire(now)
        key = (sender, envelope.session_id, envelope.request_id)
        partial = self._partials.get(key)
        if partial is not None and partial.envelope.length != envelope.length:
            self._drop(key)
            partial = None
        if partial is None:
            self._make_room(envelope.length)
            partial = self._partials[key] = _Partial(replace(envelope, sequence=0), now)
        if envelope.sequence not in partial.pieces:
            partial.pieces[envelope.sequence] = data
            partial.size += len(data)
            self._bytes += len(data)
        if len(partial.pieces) < expected:
            return None
        del self._partials[key]
        self._bytes -= partial.size
        message = b"".join(partial.pieces[n] for n in range(expected))
        return replace(partial.envelope, truncated=False), message

    def expire(self, now: float) -> None:
        for key in [k for k, p in self._partials.items() if now - p.started > self.timeout]:
            self._drop(key)

    def _make_room(self, length: int) -> None:
        while self._partials and (len(self._partials) >= self.max_pending
                                  or self._bytes + length > self.max_pending_bytes):
            self._drop(next(iter(self._partials)))  # the oldest: it is the likeliest to be lost already

    def _drop(self, key: tuple[Hashable, int, int]) -> None:
        partial = self._partials.pop(key)
        self._bytes -= partial.size
        self.dropped += 1


class StreamDecoder:
    """Cuts a TCP byte stream into (envelope, message) pairs. Keeps at most one message's bytes plus a read."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._envelope: Envelope | None = None

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def feed(self, data: bytes) -> list[tuple[Envelope, bytes]]:
        """Whole messages completed by `data`; ProtocolError for an envelope no message can follow (the caller
        answers it and closes the connection: the stream cannot be resynchronised)."""
        self._buffer += data
        out: list[tuple[Envelope, bytes]] = []
        while True:
            if self._envelope is None:
                if len(self._buffer) < ENVELOPE_SIZE:
                    return out
                self._envelope = decode_envelope(bytes(self._buffer[:ENVELOPE_SIZE]))
                del self._buffer[:ENVELOPE_SIZE]
            length = self._envelope.length
            if len(self._buffer) < length:
                return out
            out.append((self._envelope, bytes(self._buffer[:length])))
            del self._buffer[:length]
            self._envelope = None
