"""Typed, bounded reading of decoded JSON/msgpack objects from outside: every problem is a HandleError saying where."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from ..core.errors import HandleError, InvalidValue

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1
UINT32_MAX = 2**32 - 1

_INTEGER_TEXT = re.compile(r"-?[0-9]{1,20}")  # ASCII digits only: str.isdigit() also passes '²', which int() refuses
_MAX_TIME_TEXT = 64


@lru_cache(maxsize=4096)
def iso_time(epoch: int) -> str:
    """Epoch seconds as Handle.Net writes times: `2024-05-01T12:00:00Z`."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


@lru_cache(maxsize=4096)
def iso_seconds(text: str) -> int | None:
    """Epoch seconds of an ISO 8601 time (naive means UTC), or None. Cached: a record's values share timestamps."""
    try:
        moment = datetime.fromisoformat(text)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return int(moment.timestamp())
    except (ValueError, OverflowError):
        return None


def json_type(raw: object) -> str:
    """The JSON name of a decoded item's type, for messages a client author understands."""
    if raw is None:
        return "null"
    if isinstance(raw, bool):
        return "true/false"
    if isinstance(raw, int | float):
        return "a number"
    if isinstance(raw, str):
        return "text"
    if isinstance(raw, list):
        return "a list"
    if isinstance(raw, dict):
        return "an object"
    return type(raw).__name__


def as_integer(raw: object) -> int | None:
    """An integer given as a number or as ASCII digit text ("200", as pyhandle sends admin indexes); else None."""
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and _INTEGER_TEXT.fullmatch(raw):
        return int(raw)
    return None


def checked_text(raw: str, what: str, error: type[HandleError] = InvalidValue) -> str:
    """`raw` unchanged if it can be written as UTF-8 (JSON escapes can smuggle in lone surrogates, which cannot)."""
    if not raw.isascii():
        try:
            raw.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise error(f"{what} is not valid UTF-8 text (lone surrogate at position {exc.start})") from None
    return raw


def _shown(number: int) -> str:
    text = str(number)
    return text if len(text) <= 24 else f"{text[:12]}... ({len(text)} digits)"


class FieldReader:
    """Typed access to one decoded object. JSON null counts as missing; `error` is the class raised on problems."""

    __slots__ = ("raw", "where", "error")

    def __init__(self, raw: object, where: str, error: type[HandleError] = InvalidValue) -> None:
        if not isinstance(raw, dict):
            raise error(f"{where} must be a JSON object, not {json_type(raw)}")
        self.raw: dict[Any, Any] = raw
        self.where = where
        self.error = error

    def fail(self, name: str, problem: str) -> HandleError:
        return self.error(f"{self.where}: field {name!r} {problem}")

    def has(self, name: str) -> bool:
        return self.raw.get(name) is not None

    def optional(self, name: str) -> Any:
        return self.raw.get(name)

    def required(self, name: str) -> Any:
        raw = self.raw.get(name)
        if raw is None:
            raise self.fail(name, "is missing")
        return raw

    def text(self, name: str, default: str | None = None) -> str:
        raw = self.raw.get(name)
        if raw is None:
            if default is None:
                raise self.fail(name, "is missing")
            return default
        if not isinstance(raw, str):
            raise self.fail(name, f"must be text, not {json_type(raw)}")
        return checked_text(raw, f"{self.where}: field {name!r}", self.error)

    def integer(self, name: str, default: int | None = None, *, lo: int = INT32_MIN, hi: int = INT32_MAX) -> int:
        raw = self.raw.get(name)
        if raw is None:
            if default is None:
                raise self.fail(name, "is missing")
            return default
        number = as_integer(raw)
        if number is None:
            raise self.fail(name, f"must be an integer, not {json_type(raw)}")
        if not lo <= number <= hi:
            raise self.fail(name, f"= {_shown(number)} is outside {lo}..{hi}")
        return number

    def flag(self, name: str, default: bool) -> bool:
        raw = self.raw.get(name)
        if raw is None:
            return default
        if not isinstance(raw, bool):
            raise self.fail(name, f"must be true or false, not {json_type(raw)}")
        return raw

    def items(self, name: str) -> list[Any]:
        """A list field; missing means empty."""
        raw = self.raw.get(name)
        if raw is None:
            return []
        if not isinstance(raw, list):
            raise self.fail(name, f"must be a list, not {json_type(raw)}")
        return raw

    def epoch(self, name: str, default: int) -> int:
        """A time as epoch seconds, given as an ISO 8601 string or as integer seconds (0 .. 2^32-1)."""
        raw = self.raw.get(name)
        if raw is None:
            return default
        if as_integer(raw) is not None:
            return self.integer(name, lo=0, hi=UINT32_MAX)
        if not isinstance(raw, str):
            raise self.fail(name, f"must be an ISO 8601 time or integer seconds, not {json_type(raw)}")
        return self._iso_seconds(name, raw)

    def _iso_seconds(self, name: str, text: str) -> int:
        seconds = iso_seconds(text) if len(text) <= _MAX_TIME_TEXT else None
        if seconds is None:
            raise self.fail(name, f"{text[:_MAX_TIME_TEXT]!r} is not an ISO 8601 time")
        if not 0 <= seconds <= UINT32_MAX:
            raise self.fail(name, f"{text!r} is outside 1970-01-01 .. 2106-02-07")
        return seconds
