"""Big-endian fields of the native Handle protocol (RFC 3652 section 2.1), read with hard bounds.

Every length and count read from the wire is checked against the bytes that are actually left before anything is
allocated or looped over, so a short hostile message can never make a decoder build something large: the input
itself (at most `MAX_MESSAGE_LENGTH` bytes) bounds all the work.
"""

from __future__ import annotations

import struct

from ...core.errors import HandleError, ProtocolError

_INT2 = struct.Struct(">H")
_INT4 = struct.Struct(">I")
_SINT4 = struct.Struct(">i")

INT4_SIZE = 4


class Reader:
    """Consumes one buffer front to back; every problem is `error` (a ProtocolError unless told otherwise)."""

    __slots__ = ("data", "pos", "end", "what", "error")

    def __init__(self, data: bytes, what: str, *, start: int = 0, end: int | None = None,
                 error: type[HandleError] = ProtocolError) -> None:
        self.data = data
        self.pos = start
        self.end = len(data) if end is None else end
        self.what = what
        self.error = error

    @property
    def remaining(self) -> int:
        return self.end - self.pos

    def fail(self, problem: str) -> HandleError:
        return self.error(f"{self.what}: {problem} (at byte {self.pos})")

    def _need(self, size: int, field: str) -> int:
        if size > self.end - self.pos:
            raise self.fail(f"{field} needs {size} bytes, only {self.end - self.pos} left")
        start = self.pos
        self.pos += size
        return start

    def byte(self, field: str) -> int:
        return self.data[self._need(1, field)]

    def int2(self, field: str) -> int:
        """An unsigned 16-bit integer."""
        value: int = _INT2.unpack_from(self.data, self._need(2, field))[0]
        return value

    def uint4(self, field: str) -> int:
        value: int = _INT4.unpack_from(self.data, self._need(4, field))[0]
        return value

    def int4(self, field: str) -> int:
        """A signed 32-bit integer (indexes, TTLs: Java ints on the reference implementation)."""
        value: int = _SINT4.unpack_from(self.data, self._need(4, field))[0]
        return value

    def raw(self, size: int, field: str) -> bytes:
        start = self._need(size, field)
        return self.data[start:start + size]

    def byte_string(self, field: str, limit: int | None = None) -> bytes:
        """A 4-byte length and that many bytes; the length may not pass the end of the buffer nor `limit`."""
        size = self.uint4(f"{field} length")
        if limit is not None and size > limit:
            raise self.fail(f"{field} is {size} bytes long, more than the {limit} allowed")
        return self.raw(size, field)

    def text(self, field: str, limit: int | None = None) -> str:
        """A UTF8-String: length-prefixed UTF-8."""
        raw = self.byte_string(field, limit)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise self.fail(f"{field} is not valid UTF-8 (byte {exc.start})") from None

    def count(self, field: str, item_size: int, limit: int) -> int:
        """A 4-byte item count, refused when more items than `limit` or than the bytes left could hold."""
        number = self.uint4(field)
        if number > limit:
            raise self.fail(f"{field} = {number} is more than the {limit} allowed")
        if number * item_size > self.remaining:
            raise self.fail(f"{field} = {number} cannot fit in the {self.remaining} bytes left")
        return number

    def int_list(self, field: str, limit: int) -> tuple[int, ...]:
        number = self.count(field, 4, limit)
        start = self._need(4 * number, field)
        return struct.unpack_from(f">{number}i", self.data, start)

    def text_list(self, field: str, limit: int, item_limit: int | None = None) -> tuple[str, ...]:
        number = self.count(field, 4, limit)
        return tuple(self.text(f"{field} item {i}", item_limit) for i in range(number))

    def done(self) -> None:
        """Nothing may follow the last field."""
        if self.pos != self.end:
            raise self.fail(f"{self.end - self.pos} unexpected bytes after the last field")


class Writer:
    """Builds one big-endian buffer."""

    __slots__ = ("parts",)

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def byte(self, value: int) -> Writer:
        self.parts.append(bytes((value & 0xFF,)))
        return self

    def int2(self, value: int) -> Writer:
        self.parts.append(_INT2.pack(value & 0xFFFF))
        return self

    def int4(self, value: int) -> Writer:
        """Any value in -2**31 .. 2**32-1, written as its 32-bit pattern."""
        self.parts.append(_INT4.pack(value & 0xFFFFFFFF))
        return self

    def raw(self, data: bytes) -> Writer:
        self.parts.append(data)
        return self

    def byte_string(self, data: bytes) -> Writer:
        self.parts.append(_INT4.pack(len(data)))
        self.parts.append(data)
        return self

    def text(self, value: str) -> Writer:
        return self.byte_string(value.encode("utf-8"))

    def int_list(self, values: tuple[int, ...] | list[int]) -> Writer:
        self.parts.append(_INT4.pack(len(values)))
        self.parts.append(struct.pack(f">{len(values)}I", *(v & 0xFFFFFFFF for v in values)))
        return self

    def text_list(self, values: tuple[str, ...] | list[str]) -> Writer:
        self.int4(len(values))
        for value in values:
            self.text(value)
        return self

    def getvalue(self) -> bytes:
        return b"".join(self.parts)


def int4(value: int) -> bytes:
    return _INT4.pack(value & 0xFFFFFFFF)
