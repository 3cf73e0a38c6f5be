"""TTL cache of resolution answers, keyed as the Handle client keys it (handle + types + indexes), bounded LRU."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from .codes import ResponseCode
from .handle import ascii_upper
from .messages import Response

CacheKey = tuple[str, tuple[str, ...], tuple[int, ...]]

MAX_TTL = 2 * 86400
"""TTLs are clamped to two days, as the Handle.Net client does."""


def cache_key(handle_key: str, types: tuple[str, ...], indexes: tuple[int, ...]) -> CacheKey:
    return (handle_key, tuple(sorted(ascii_upper(t) for t in types)), tuple(sorted(indexes)))


@dataclass(slots=True)
class _Entry:
    response: Response
    expires: float


class ResolutionCache:
    """Positive answers live as long as their shortest value TTL; negative answers `negative_ttl` seconds (0 = off)."""

    def __init__(self, capacity: int = 16_384, negative_ttl: float = 0.0, max_ttl: float = MAX_TTL) -> None:
        self.capacity = capacity
        self.negative_ttl = negative_ttl
        self.max_ttl = max_ttl
        self._entries: OrderedDict[CacheKey, _Entry] = OrderedDict()
        self._by_handle: dict[str, set[CacheKey]] = {}
        self.hits = 0
        self.misses = 0
        self.evictions = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: CacheKey, now: float) -> Response | None:
        entry = self._entries.get(key)
        if entry is None or entry.expires <= now:
            if entry is not None:
                self._drop(key)
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return entry.response

    def put(self, key: CacheKey, response: Response, now: float) -> None:
        expires = self._expiry(response, now)
        if expires is None or expires <= now:
            return
        if key in self._entries:
            self._drop(key)
        self._entries[key] = _Entry(response, expires)
        self._by_handle.setdefault(key[0], set()).add(key)
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
            keys.discard(key)
            if not keys:
                del self._by_handle[key[0]]
