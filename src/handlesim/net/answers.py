"""A node's encoded-answer cache: the bytes of public resolution answers, sent again without asking the service.

A warm GET is a dict lookup and a write of bytes that were encoded when the record last changed, so it costs about
what a bare route costs. Entries are keyed by (raw path with query, media type), dropped when their handle changes
(the service calls `forget`), and bounded in number. Answers a walk produced expire with the resolver cache's TTL.

Everything held is a plain dict of tuples of str / bytes / int / float: the cyclic garbage collector untracks such
tuples, so a node that has answered 100k identifiers does not slow every full collection (benchmarks/gc_pauses.py).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator

ANSWER_CACHE_LIMIT = 50_000
"""Entries kept before the cache starts over (a full cache is cleared whole: cheaper than any eviction order)."""

Memo = tuple[str, str]
"""(raw path with query, media type)."""
CachedAnswer = tuple[int, bytes, int, float | None]
"""(HTTP status, encoded body, Handle response code, expiry: None until the record changes, else a clock time)."""


class AnswerCache:
    """Encoded answers by `Memo`, with an index by handle key for invalidation and hit counts by response code."""

    def __init__(self, limit: int = ANSWER_CACHE_LIMIT) -> None:
        self.limit = limit
        self._entries: dict[Memo, CachedAnswer] = {}
        self._memos_of: dict[str, tuple[Memo, ...]] = {}
        """Each handle's memos (tuples, not sets: the collector untracks tuples of strings)."""
        self.lookup: Callable[[Memo], CachedAnswer | None] = self._entries.get
        """The cached answer for a memo, or None: the bare dict lookup, as the warm path must cost nothing more
        (whether the entry is still fresh, and whether the request may use it, is the caller's check)."""
        self.hits: Counter[int] = Counter()
        """Answers sent from this cache, by response code (the service never saw those requests)."""

    def __len__(self) -> int:
        return len(self._entries)

    def remember(self, memo: Memo, handle_key: str, status: int, body: bytes, code: int,
                 expires: float | None = None) -> None:
        if len(self._entries) >= self.limit:
            self.clear()
        self._entries[memo] = (status, body, code, expires)
        known = self._memos_of.get(handle_key, ())
        if memo not in known:
            self._memos_of[handle_key] = (*known, memo)

    def forget(self, handle_key: str) -> None:
        """A record changed: drop its answers. An empty key or a prefix record (`0.NA/...`) drops every answer, as
        homing and prefix records steer the referrals of many handles."""
        if not handle_key or handle_key.startswith("0.NA/"):
            self.clear()
            return
        for memo in self._memos_of.pop(handle_key, ()):
            self._entries.pop(memo, None)

    def clear(self) -> None:
        # in place: `lookup` is bound to this very dict
        self._entries.clear()
        self._memos_of.clear()

    def held_objects(self) -> Iterator[object]:
        """Every container the cache holds (keys, entries, index tuples): what the garbage collector must not walk."""
        for memo, entry in self._entries.items():
            yield memo
            yield entry
        yield from self._memos_of.values()
