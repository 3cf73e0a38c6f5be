"""Identifier value types: `Prefix` (dotted naming authority) and `Handle` (prefix/suffix).

Matching is case-insensitive for ASCII letters only, as the Handle.Net server does by default; each value keeps the
spelling it was parsed with (`text`) and compares by `key` (ASCII upper-cased).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .errors import InvalidHandle

NA_PREFIX_TEXT = "0.NA"
"""Prefix under which every prefix handle lives (`0.NA/88.101` describes prefix `88.101`)."""

DEFAULT_MAX_HANDLE_BYTES = 1024
"""Default limit on a handle's UTF-8 length; configurable per node (see the node limits)."""

_CONTROL = re.compile("[\x00-\x1f\x7f]")
_ASCII_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def ascii_upper(text: str) -> str:
    """Upper-case ASCII letters only (non-ASCII letters stay as written, as Handle.Net folds them)."""
    return text.translate(_ASCII_UPPER)


def _check_text(text: str, what: str, max_bytes: int) -> None:
    if not isinstance(text, str):
        raise InvalidHandle(f"{what} must be text, not {type(text).__name__}")
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise InvalidHandle(f"{what} {text!r} is not valid UTF-8 (bad character at position {exc.start})") from None
    if size > max_bytes:
        raise InvalidHandle(f"{what} is {size} bytes long; the limit is {max_bytes} bytes (limit max_handle_bytes)")
    bad = _CONTROL.search(text)
    if bad is not None:
        pos = bad.start()
        raise InvalidHandle(f"{what} {text!r} contains control character U+{ord(text[pos]):04X} at position {pos}")


@dataclass(frozen=True, slots=True)
class Prefix:
    """A dotted naming authority such as `88`, `88.101` or `88.101.2001`."""

    text: str = field(compare=False)
    key: str = field(init=False, repr=False, compare=True)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", ascii_upper(self.text))

    @classmethod
    def from_text(cls, text: str, *, max_bytes: int = DEFAULT_MAX_HANDLE_BYTES) -> Prefix:
        _check_text(text, "prefix", max_bytes)
        if not text:
            raise InvalidHandle("prefix is empty")
        if "/" in text:
            raise InvalidHandle(f"prefix {text!r} contains '/' at position {text.index('/')}")
        pos = 0
        for number, segment in enumerate(text.split(".")):
            if not segment:
                raise InvalidHandle(f"prefix {text!r} has an empty segment (segment {number + 1}, position {pos})")
            pos += len(segment) + 1
        return cls(text)

    def __str__(self) -> str:
        return self.text

    @property
    def segments(self) -> tuple[str, ...]:
        return tuple(self.text.split("."))

    def parent(self) -> Prefix | None:
        """`88.101.2001` -> `88.101` -> `88` -> None."""
        head, dot, _ = self.text.rpartition(".")
        return Prefix(head) if dot else None

    def ancestors(self) -> list[Prefix]:
        """Proper ancestors, nearest first: `88.101.2001` -> [`88.101`, `88`]."""
        out: list[Prefix] = []
        node = self.parent()
        while node is not None:
            out.append(node)
            node = node.parent()
        return out

    def is_under(self, other: Prefix) -> bool:
        """True when self equals `other` or is derived from it (`88.101.2001` is under `88.101`)."""
        return self.key == other.key or self.key.startswith(other.key + ".")

    def child(self, segment: str) -> Prefix:
        return Prefix.from_text(f"{self.text}.{segment}")

    def prefix_handle(self) -> Handle:
        """The handle that describes this prefix: `0.NA/<prefix>`."""
        return Handle(NA_PREFIX, self.text)


NA_PREFIX = Prefix(NA_PREFIX_TEXT)


@dataclass(frozen=True, slots=True)
class Handle:
    """An identifier `prefix/suffix`. The suffix may contain '/' (only the first one separates)."""

    prefix: Prefix = field(compare=False)
    suffix: str = field(compare=False)
    key: str = field(init=False, repr=False, compare=True)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", f"{self.prefix.key}/{ascii_upper(self.suffix)}")

    @classmethod
    def from_text(cls, text: str, *, max_bytes: int = DEFAULT_MAX_HANDLE_BYTES) -> Handle:
        _check_text(text, "handle", max_bytes)
        if not text:
            raise InvalidHandle("handle is empty")
        prefix_text, slash, suffix = text.partition("/")
        if not slash:
            raise InvalidHandle(f"handle {text!r} has no '/' between prefix and suffix")
        if not prefix_text:
            raise InvalidHandle(f"handle {text!r} has an empty prefix (nothing before the '/')")
        if not suffix:
            raise InvalidHandle(
                f"handle {text!r} has an empty suffix (nothing after the '/' at position {len(prefix_text)})")
        prefix = Prefix.from_text(prefix_text, max_bytes=max_bytes)
        handle = cls(prefix, suffix)
        if handle.is_prefix_handle:
            Prefix.from_text(suffix, max_bytes=max_bytes)  # 0.NA/<x>: x must itself be a valid prefix
        return handle

    @classmethod
    def from_bytes(cls, raw: bytes, *, max_bytes: int = DEFAULT_MAX_HANDLE_BYTES) -> Handle:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidHandle(f"handle bytes are not valid UTF-8 (bad byte at position {exc.start})") from None
        return cls.from_text(text, max_bytes=max_bytes)

    @property
    def text(self) -> str:
        return f"{self.prefix.text}/{self.suffix}"

    def __str__(self) -> str:
        return self.text

    @property
    def is_prefix_handle(self) -> bool:
        """True for `0.NA/<prefix>` handles, which carry a prefix's site information."""
        return self.prefix.key == NA_PREFIX.key

    def described_prefix(self) -> Prefix:
        """For `0.NA/88.101` the prefix it describes, `88.101`."""
        if not self.is_prefix_handle:
            raise InvalidHandle(f"{self.text} is not a prefix handle (0.NA/<prefix>)")
        return Prefix(self.suffix)

    def prefix_handle(self) -> Handle:
        """The prefix handle of this handle's prefix: `88.101.2001/X` -> `0.NA/88.101.2001`."""
        return self.prefix.prefix_handle()

    def parent(self) -> Handle | None:
        """The handle one step up the naming hierarchy: the prefix handle that governs this one.

        `88.101.2001/X` -> `0.NA/88.101.2001` -> `0.NA/88.101` -> `0.NA/88` -> None.
        """
        if not self.is_prefix_handle:
            return self.prefix_handle()
        above = self.described_prefix().parent()
        return above.prefix_handle() if above is not None else None

    def is_under(self, prefix: Prefix) -> bool:
        """True when this handle's prefix is `prefix` or derived from it (prefix handles: the prefix they describe)."""
        own = self.described_prefix() if self.is_prefix_handle else self.prefix
        return own.is_under(prefix)

    def part_for_hash(self, hash_option: int) -> str:
        """The upper-cased part hashed to pick a server in a site (0 prefix, 1 suffix, 2 whole handle)."""
        if hash_option == 0:
            return self.prefix.key
        if hash_option == 1:
            return ascii_upper(self.suffix)
        return self.key
