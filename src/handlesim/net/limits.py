"""What one node's HTTP face accepts: body size and time, connections, in-flight work, per-client request rate.

The Handle-level limits (handle and suffix length, values per handle, value size, filter lists, page size, admin
group depth) live in `core.service.ServiceLimits`; both are set from a topology file's `[limits]` table.
Every refusal is a Handle answer naming the limit: code 3 (server too busy) with HTTP 503 for load, code 4 (protocol
error) with 413 / 408 for bodies.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from ..core.codes import ResponseCode

MAX_BODY_BYTES = 1024 * 1024


@dataclass(frozen=True)
class ServerLimits:
    """Bounds on the HTTP side of a node; exceeding one is answered (never a crash, never a silent drop)."""

    max_body_bytes: int = MAX_BODY_BYTES
    """Largest request body (bytes); a larger one gets 413 with response code 4."""
    body_timeout_s: float = 10.0
    """Seconds a request body may take to arrive; a slower or incomplete one gets 408 (code 4) and the connection
    is closed, so a stalled client holds nothing for longer."""
    max_connections: int = 1024
    """Open client connections per node; a connection beyond it is answered 503 (code 3) and closed."""
    max_in_flight: int = 64
    """Requests a node works on at once (a request counts from its handler's start to its answer, so waiting
    walks, body reads and replication count); beyond it the node answers 503 with code 3 at once."""
    rate_per_client: float = 0.0
    """Requests per second one client IP may send (token bucket; 0 = no limit); beyond it 503 with code 3."""
    rate_burst: int = 100
    """Requests one client IP may send at once before `rate_per_client` applies (the bucket's size)."""
    encoded_ahead: int = 10_000
    """Records whose public answers (JSON and msgpack) a node encodes once its topology serves, before any client
    asks, in the background (0: none; each answer is then encoded at its first lookup). A first lookup of such a
    handle costs what a repeated one does, as an authoritative DNS server compiles its answers at zone load. Costs
    ~1.5 KB of memory and 25-40 us of CPU per record (answers are held as value fragments they share; the plan's
    100,000 identifiers: ~150 MB, 2.5-4 s in the background).
    A write drops the handle's answers; its next lookup encodes them again."""
    idle_timeout_s: float = 75.0
    """Seconds a connection may stay open without a complete request (idle keep-alive, or headers that never
    finish); then it is closed, so stalled clients cannot hold `max_connections` for long."""


class ClientRateLimiter:
    """Token buckets per client IP: `rate` tokens a second up to `burst`. Forgets idle clients to stay bounded."""

    def __init__(self, rate: float, burst: int, max_clients: int = 65_536) -> None:
        self.rate = rate
        self.burst = float(max(burst, 1))
        self.max_clients = max_clients
        self._buckets: dict[str, tuple[float, float]] = {}  # ip -> (tokens, when last refilled)

    def admit(self, client: str, now: float) -> bool:
        tokens, then = self._buckets.get(client, (self.burst, now))
        tokens = min(self.burst, tokens + (now - then) * self.rate)
        admitted = tokens >= 1.0
        if len(self._buckets) >= self.max_clients and client not in self._buckets:
            self._buckets.clear()  # a flood of distinct addresses must not grow memory without bound
        self._buckets[client] = (tokens - 1.0 if admitted else tokens, now)
        return admitted


def canned_answer(status: int, reason: str, code: int, message: str) -> bytes:
    """A complete HTTP/1.1 answer (JSON body, connection closed) for refusals made before aiohttp sees a request."""
    body = json.dumps({"responseCode": code, "handle": "", "message": message}).encode()
    head = (f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")
    return head.encode("ascii") + body


class RefusedConnection(asyncio.Protocol):
    """A connection over the node's connection limit: answer the first request with 503 / code 3, then close.

    It answers on the first bytes (closing a socket with unread data would reset it and the client would see no
    answer), or closes after `wait_s` if the client sends nothing."""

    def __init__(self, answer: bytes, wait_s: float) -> None:
        self.answer = answer
        self.wait_s = wait_s
        self.transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not asyncio subclasses
        self._timer = asyncio.get_running_loop().call_later(self.wait_s, self.transport.close)

    def data_received(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(self.answer)
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()


def too_many_connections(limit: int, wait_s: float) -> Callable[[], RefusedConnection]:
    answer = canned_answer(503, "Service Unavailable", int(ResponseCode.SERVER_TOO_BUSY),
                           f"server too busy: this node already has {limit} open connections "
                           "(limit max_connections); retry later or at another server of the site")
    return lambda: RefusedConnection(answer, wait_s)


def keep_alive_answer(status: int, reason: str, body: bytes, media: str) -> bytes:
    """A complete HTTP/1.1 answer that keeps the connection open (the front door's refusals beyond max_in_flight)."""
    head = f"HTTP/1.1 {status} {reason}\r\nContent-Type: {media}\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode("ascii") + body
