"""Server-side recursion: a node walks the hierarchy for a client and caches the answers for everyone.

This is what the `resolver` role (the public recursive node) does for every GET, and what any node does for a REST
GET of a handle it does not home (as Handle.Net's HTTP interface does; pyhandle relies on it at start-up).
Iterative requests between nodes say `recursive=false`, so a walk never recurses again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

from ..core.cache import ResolutionCache
from ..core.codes import ResponseCode
from ..core.health import DEFAULT_TIMEOUT, ServerHealth
from ..core.messages import Request, Response
from ..core.resolution import Resolution
from ..core.transport import drive
from ..core.values import SiteInfo
from ..wire import codec
from .keepalive import KeepAlivePool, KeepAliveTransport
from .shaping import NetPath
from .transport import SYSTEM_CLOCK


def encoded_cache(capacity: int, negative_ttl: float = 0.0) -> ResolutionCache:
    """A resolver's shared cache holding its answers as msgpack, the node-to-node encoding they arrived in: it lives
    as long as the node, and the garbage collector then has nothing in it to walk (core/cache.py)."""
    return ResolutionCache(capacity, negative_ttl, encode=lambda answer: codec.encode_response(answer, codec.MSGPACK),
                           decode=lambda body: codec.decode_response(body, codec.MSGPACK))


@dataclass
class RecursionStats:
    walks: int = 0
    answered_from_cache: int = 0
    upstream_requests: int = 0


@dataclass
class RecursiveResolver:
    """Walks from `root_sites` with one shared cache over its own keep-alive connections."""

    root_sites: list[SiteInfo]
    cache: ResolutionCache = field(default_factory=ResolutionCache)
    stats: RecursionStats = field(default_factory=RecursionStats)
    pool: KeepAlivePool = field(default_factory=lambda: KeepAlivePool(timeout=DEFAULT_TIMEOUT))
    health: ServerHealth = field(default_factory=ServerHealth)
    """Which upstream servers answer fastest and which failed lately (orders failover for every walk)."""
    net: NetPath | None = None
    """The network model between this node and the ones it asks (None: plain loopback)."""

    async def resolve(self, request: Request, *, with_trace: bool = False) -> Response:
        """The final answer for `request` (values or an error); with `with_trace`, the hops in `extra["trace"]`."""
        assert request.handle is not None
        resolution = Resolution(request.handle, self.root_sites, types=request.types, indexes=request.indexes,
                                cache=self.cache, authoritative=request.authoritative, health=self.health,
                                now=time.time())
        await drive(resolution, KeepAliveTransport(self.pool, self.net), SYSTEM_CLOCK)
        self.stats.walks += 1
        if resolution.hops == 0:
            self.stats.answered_from_cache += 1
        self.stats.upstream_requests += resolution.hops
        result = resolution.result
        assert result is not None
        if with_trace:
            trace = [hop.to_dict() for hop in resolution.trace]
            result = replace(result, extra={**result.extra, "trace": trace, "hops": resolution.hops,
                                            "cacheHit": resolution.hops == 0})
        return result

    def close(self) -> None:
        self.pool.close()

    def note_encoded_hit(self) -> None:
        """The node answered a walk's result from its encoded-answer cache: a cache hit with no work at all."""
        self.stats.walks += 1
        self.stats.answered_from_cache += 1
        self.cache.hits += 1

    def snapshot(self) -> dict[str, object]:
        return {**self.cache.stats(), "walks": self.stats.walks, "answered_from_cache": self.stats.answered_from_cache,
                "upstream_requests": self.stats.upstream_requests, "at": time.time()}


def walk_needed(answer: Response, request: Request, resolver: RecursiveResolver | None) -> bool:
    """Whether a node answers `request` by walking the hierarchy for the client: it asked recursively (a REST GET,
    a native request with RECU) for a handle this node does not home, and the node has a resolver."""
    return resolver is not None and request.recursive and answer.code == ResponseCode.SERVER_NOT_RESPONSIBLE
