"""Reverse lookup (the Handle.Net `hrls` servlet pyhandle's searcher calls): handles whose values match KEY=pattern."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import lru_cache

from .errors import ProtocolError
from .handle import ascii_upper
from .storage import HandleRecord

MAX_CRITERIA = 8
MAX_PATTERN = 512


@lru_cache(maxsize=256)
def _pattern(text: str) -> re.Pattern[str]:
    """`*` matches any run of characters; everything else literally (case-insensitive, as a search box would)."""
    return re.compile(".*".join(re.escape(part) for part in text.split("*")), re.IGNORECASE | re.DOTALL)


def check_criteria(criteria: Sequence[tuple[str, str]]) -> None:
    if not criteria:
        raise ProtocolError("reverse lookup needs at least one KEY=value term, e.g. ?URL=*example.cn*")
    if len(criteria) > MAX_CRITERIA:
        raise ProtocolError(f"reverse lookup takes at most {MAX_CRITERIA} KEY=value terms")
    for key, value in criteria:
        if not key or len(value) > MAX_PATTERN:
            raise ProtocolError(f"reverse lookup term {key!r} is empty or its pattern is over {MAX_PATTERN} chars")


def reverse_lookup(records: Iterable[HandleRecord], criteria: Sequence[tuple[str, str]],
                   limit: int = 1000) -> list[str]:
    """Handles (text) having, for every (type, pattern), a public string value of that type matching the pattern."""
    check_criteria(criteria)
    wanted = [(ascii_upper(key), _pattern(value)) for key, value in criteria]
    found: list[str] = []
    for record in records:
        if all(_has_match(record, key, pattern) for key, pattern in wanted):
            found.append(record.handle.text)
            if len(found) >= limit:
                break
    return sorted(found)


def _has_match(record: HandleRecord, type_key: str, pattern: re.Pattern[str]) -> bool:
    return any(v.type_key == type_key and v.permissions.public_read and isinstance(v.data, str)
               and pattern.fullmatch(v.data) is not None for v in record.values)
