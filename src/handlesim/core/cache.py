"""TTL cache of resolution answers, keyed as the Handle client keys it (handle + types + indexes), bounded LRU.

A cache that lives as long as a node process (a resolver's shared cache) can hold its answers to ordinary handles
encoded, as bytes (`encode` / `decode`, injected by the adapter: net/recursion.py gives msgpack). Those are the bulk
of it (one per identifier looked up), and held so they are str, bytes, numbers and tuples of them, which the cyclic
garbage collector does not walk: a full collection no longer pays for every cached answer. Their hits are rare
(the node's encoded-answer cache answers repeated GETs before any walk) and cost one decode. Prefix handles
(`0.NA/...`) and referrals stay decoded: every walk reads them, there are few (one per prefix), and decoding one
costs ~0.1 ms.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from .codes import ResponseCode
from .handle import ascii_upper
from .messages import Response

CacheKey = tuple[str, tuple[str, ...], tuple[int, ...]]

MAX_TTL = 2 * 86400
"""TTLs are clamped to two days, as the Handle.Net client does."""


def cache_key(handle_key: str, types: tuple[str, ...], indexes: tuple[int, ...]) -> CacheKey:
    return (handle_key, tuple(sorted(ascii_upper(t) for t in types)), tuple(sorted(indexes)))


_Entry = tuple[Response | bytes, float]
"""(the answer, or its encoding; when it expires)."""


class ResolutionCache:
    """Positive answers live as long as their shortest value TTL; negative answers `negative_ttl` seconds (0 = off)."""

    def __init__(self, capacity: int = 16_384, negative_ttl: float = 0.0, max_ttl: float = MAX_TTL, *,
                 encode: Callable[[Response], bytes] | None = None,
                 decode: Callable[[bytes], Response] | None = None) -> None:
        self.capacity = capacity
        self.negative_ttl = negative_ttl
        self.max_ttl = max_ttl
        self._encode = encode
        self._decode = decode if encode is not None else None
        """Hold answers as `encode` gives them and `decode` them on a hit (both, or neither)."""
        self._entries: OrderedDict[CacheKey, _Entry] = OrderedDict()
        self._by_handle: dict[str, tuple[CacheKey, ...]] = {}
        """Each handle's keys (tuples, not sets: the collector untracks tuples of strings)."""
        self.hits = 0
        self.misses = 0
        self.evictions = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: CacheKey, now: float) -> Response | None:
        entry = self._entries.get(key)
        if entry is None or entry[1] <= now:
            if entry is not None:
                self._drop(key)
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        held = entry[0]
        if isinstance(held, bytes):
            assert self._decode is not None
            return self._decode(held)
        return held

    def put(self, key: CacheKey, response: Response, now: float) -> None:
        expires = self._expiry(response, now)
        if expires is None or expires <= now:
            return
        if key in self._entries:
            self._drop(key)
        steers = key[0].startswith("0.NA/") or response.code != ResponseCode.SUCCESS
        self._entries[key] = (response if self._encode is None or steers else self._encode(response), expires)
        self._by_handle[key[0]] = (*self._by_handle.get(key[0], ()), key)
        while len(self._entries) > self.capacity:
            oldest = next(iter(self._entries))
            self._drop(oldest)
            self.evictions += 1

    def invalidate(self, handle_key: str) -> None:
        """Forget everything cached for a handle (after any create/delete/add/modify/remove)."""
        for key in list(self._by_handle.get(handle_key, ())):
            self._drop(key)

    def clear(self) -> None:
        self._entries.clear()
        self._by_handle.clear()

    def held_objects(self) -> list[object]:
        """The containers that hold answers to ordinary handles (their keys, entries and index tuples): what the
        garbage collector must not walk when those are held encoded."""
        held = [(key, entry) for key, entry in self._entries.items() if isinstance(entry[0], bytes)]
        return [o for key, entry in held for o in (key, entry, self._by_handle[key[0]])]

    def stats(self) -> dict[str, int]:
        return {"size": len(self), "capacity": self.capacity, "hits": self.hits, "misses": self.misses,
                "evictions": self.evictions}

    def expiry_of(self, response: Response, now: float) -> float | None:
        """When an answer stops being cacheable (None: never cache it)."""
        return self._expiry(response, now)

    def _expiry(self, response: Response, now: float) -> float | None:
        code = response.code
        if code in (ResponseCode.SUCCESS, ResponseCode.PREFIX_REFERRAL, ResponseCode.SERVICE_REFERRAL):
            if not response.values:
                return None
            earliest = min(v.expires_at(now) for v in response.values)
            return min(earliest, now + self.max_ttl)
        if code in (ResponseCode.HANDLE_NOT_FOUND, ResponseCode.VALUES_NOT_FOUND) and self.negative_ttl > 0:
            return now + self.negative_ttl
        return None

    def _drop(self, key: CacheKey) -> None:
        self._entries.pop(key, None)
        keys = self._by_handle.get(key[0])
        if keys is not None:
            kept = tuple(k for k in keys if k != key)
            if kept:
                self._by_handle[key[0]] = kept
            else:
                del self._by_handle[key[0]]
