"""A node's encoded-answer cache: the bytes of public resolution answers, sent again without asking the service.

A warm GET is a dict lookup and a write of bytes that were encoded when the record last changed, so it costs about
what a bare route costs. Entries are keyed by (raw path with query, media type), dropped when their handle changes
(the service calls `forget`), and bounded in number. Answers a walk produced expire with the resolver cache's TTL.

Everything held is a plain dict of tuples of str / bytes / int / float (and tuples of those): the cyclic garbage
collector untracks such tuples, so a node that has answered 100k identifiers does not slow every full collection
(benchmarks/gc_pauses.py).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable, Iterator
from typing import Generic, TypeVar

ANSWER_CACHE_LIMIT = 50_000
"""Entries kept before the cache starts over (a full cache is cleared whole: cheaper than any eviction order)."""

Memo = tuple[str, str]
"""(raw path with query, media type)."""
Key = TypeVar("Key", bound=Hashable)
Entry = TypeVar("Entry")
CachedAnswer = tuple[int, tuple[bytes, ...], int, float | None, int]
"""(HTTP status, the encoded body as the parts `b"".join` makes it of, Handle response code, expiry: None until the
record changes, else a clock time; the body's length). A success answer's parts are its values' encoded fragments,
shared with every other answer holding the same values (codec.encode_response_parts): a node's answers encoded ahead
keep each distinct value once, not once per answer."""


def cached_answer(status: int, body: tuple[bytes, ...], code: int, expires: float | None = None) -> CachedAnswer:
    """The entry for an answer whose body joins from the parts `body` (its length worked out once, here)."""
    return status, body, code, expires, sum(map(len, body))


class EncodedAnswers(Generic[Key, Entry]):
    """Encoded answers by a request key, with an index by handle key for invalidation; bounded in number. The REST
    routes' `AnswerCache` and the native listener's cache (keyed by the request's version, flags and body) are
    both one of these."""

    def __init__(self, limit: int = ANSWER_CACHE_LIMIT) -> None:
        self.limit = limit
        self._entries: dict[Key, Entry] = {}
        self._keys_of: dict[str, tuple[Key, ...]] = {}
        """Each handle's request keys (tuples, not sets: the collector untracks tuples of strings)."""
        self.lookup: Callable[[Key], Entry | None] = self._entries.get
        """The cached answer for a key, or None: the bare dict lookup, as the warm path must cost nothing more
        (whether the entry is still fresh, and whether the request may use it, is the caller's check)."""

    def __len__(self) -> int:
        return len(self._entries)

    def keep(self, key: Key, handle_key: str, entry: Entry) -> None:
        """Hold `entry`, the answer to `key` about the handle `handle_key` (a limit of 0 or less holds nothing)."""
        if self.limit <= 0:
            return
        if len(self._entries) >= self.limit:
            self.clear()
        self._entries[key] = entry
        known = self._keys_of.get(handle_key, ())
        if key not in known:
            self._keys_of[handle_key] = (*known, key)

    def forget(self, handle_key: str) -> None:
        """A record changed: drop its answers. An empty key or a prefix record (`0.NA/...`) drops every answer, as
        homing and prefix records steer the referrals of many handles."""
        if not handle_key or handle_key.startswith("0.NA/"):
            self.clear()
            return
        for key in self._keys_of.pop(handle_key, ()):
            self._entries.pop(key, None)

    def clear(self) -> None:
        # in place: `lookup` is bound to this very dict
        self._entries.clear()
        self._keys_of.clear()

    def held_objects(self) -> Iterator[object]:
        """Every container the cache holds (keys, entries, index tuples): what the garbage collector must not walk."""
        for key, entry in self._entries.items():
            yield key
            yield entry
        yield from self._keys_of.values()


class AnswerCache(EncodedAnswers[Memo, CachedAnswer]):
    """A node's REST answers by `Memo`, with hit counts by response code."""

    def __init__(self, limit: int = ANSWER_CACHE_LIMIT) -> None:
        super().__init__(limit)
        self.hits: Counter[int] = Counter()
        """Answers sent from this cache, by response code (the service never saw those requests)."""

    def remember(self, memo: Memo, handle_key: str, status: int, body: tuple[bytes, ...], code: int,
                 expires: float | None = None) -> CachedAnswer:
        """Hold the answer whose body joins from the parts `body`; returns the entry (held or not)."""
        entry = cached_answer(status, body, code, expires)
        self.keep(memo, handle_key, entry)
        return entry
