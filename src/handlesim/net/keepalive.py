"""A pool of HTTP/1.1 keep-alive connections (resolver walks, reports, load generation): one request in flight per
connection; and the transport that carries resolution steps over it.

aiohttp's client costs ~200 us of CPU per request on this machine kind, which would make the generator the bottleneck;
this one builds request bytes once and parses only the status line and Content-Length.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from dataclasses import dataclass
from functools import partial
from urllib.parse import urlencode

from ..core.errors import HandleError
from ..core.messages import Response
from ..core.resolution import Step
from ..core.transport import Exchange
from ..wire import codec
from . import rest
from .shaping import SOURCE_HEADER, NetPath
from .transport import ConnectFailed, ConnectionBroken, OneRequestConnection, UnreadableAnswer, exchange_over_network

MAX_RESPONSE = 8 * 1024 * 1024


class _Connection(OneRequestConnection[tuple[int, bytes]]):
    def __init__(self) -> None:
        super().__init__()
        self.buffer = bytearray()
        self.sent_at = 0.0

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.waiter is None or self.waiter.done():
            return
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buffer[:end])
        length = _content_length(head)
        if length is None or length > MAX_RESPONSE:
            self.waiter.set_exception(ConnectionBroken("answer without a usable Content-Length"))
            return
        total = end + 4 + length
        if len(self.buffer) < total:
            return
        body = bytes(self.buffer[end + 4:total])
        del self.buffer[:total]
        try:
            status = int(head[9:12])
        except ValueError:
            self.waiter.set_exception(ConnectionBroken(f"bad status line {head[:40]!r}"))
            return
        self.waiter.set_result((status, body))

    def request(self, raw: bytes) -> asyncio.Future[tuple[int, bytes]]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.sent_at = time.perf_counter()
        self.transport.write(raw)
        return self.waiter

    def expire(self, now: float, timeout: float) -> None:
        """Fail the request in flight if it has waited longer than `timeout` (the pool's sweeper calls this)."""
        if self.waiter is not None and not self.waiter.done() and now - self.sent_at > timeout:
            self.waiter.set_exception(TimeoutError())
            if self.transport is not None:
                self.transport.close()


def _content_length(head: bytes) -> int | None:
    lower = head.lower()
    at = lower.find(b"\r\ncontent-length:")
    if at < 0:
        return None
    start = at + 17
    stop = lower.find(b"\r\n", start)
    try:
        return int(lower[start:stop if stop > 0 else None])
    except ValueError:
        return None


def build_request(method: str, host: str, port: int, path: str, *, body: bytes = b"",
                  headers: dict[str, str] | None = None) -> bytes:
    """Request bytes, built once per distinct request and reused."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}", "Accept: application/msgpack"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if body or method in ("PUT", "POST"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + body


class KeepAlivePool:
    """Idle keep-alive connections per (host, port); a request borrows one (or opens one) and gives it back.

    At most `max_idle` connections stay open while idle (the least recently used are closed), so spreading load
    over a thousand nodes does not pile up tens of thousands of sockets.
    """

    def __init__(self, timeout: float = 5.0, max_idle: int = 4096, ssl_context: ssl.SSLContext | None = None) -> None:
        self.timeout = timeout
        self.ssl_context = ssl_context
        """Set for a TLS topology: every connection is then HTTPS, verified against this context."""
        self.max_idle = max_idle
        self.opened = 0
        self._idle: dict[tuple[str, int], list[_Connection]] = {}
        self._idle_order: deque[_Connection] = deque()
        self._all: list[_Connection] = []
        self._sweeper: asyncio.TimerHandle | None = None

    def _sweep(self) -> None:
        """One timer for all timeouts: cheaper than a wait_for per request."""
        now = time.perf_counter()
        for conn in self._all:
            conn.expire(now, self.timeout)
        self._all = [c for c in self._all if not c.closed]
        self._sweeper = asyncio.get_running_loop().call_later(min(self.timeout / 4, 0.25), self._sweep)

    async def request(self, host: str, port: int, raw: bytes) -> tuple[int, bytes]:
        idle = self._idle.setdefault((host, port), [])
        while idle and idle[-1].closed:
            idle.pop()
        conn = idle.pop() if idle else await self._open(host, port)
        try:
            status, body = await conn.request(raw)
        except BaseException:
            if conn.transport is not None:
                conn.transport.close()
            raise
        if not conn.closed:
            idle.append(conn)
            self._idle_order.append(conn)
            if len(self._idle_order) > 2 * self.max_idle:
                self._trim()
        return status, body

    def _trim(self) -> None:
        """Close least recently used idle connections until at most `max_idle` remain idle."""
        live = [c for c in self._idle_order if not c.closed and c.waiter is not None and c.waiter.done()]
        seen: set[int] = set()
        newest_first = []
        for conn in reversed(live):
            if id(conn) not in seen:
                seen.add(id(conn))
                newest_first.append(conn)
        for conn in newest_first[self.max_idle:]:
            if conn.transport is not None:
                conn.transport.close()
            conn.closed = True
        self._idle_order = deque(reversed(newest_first[: self.max_idle]))

    async def _open(self, host: str, port: int) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            _, conn = await asyncio.wait_for(loop.create_connection(
                _Connection, host, port, ssl=self.ssl_context,
                server_hostname=host if self.ssl_context is not None else None), self.timeout)
        except TimeoutError:
            raise  # the pool's timeout, worded as such
        except OSError as exc:  # ssl.SSLError included
            raise ConnectFailed(host, port, exc) from None
        self._all.append(conn)
        self.opened += 1
        if self._sweeper is None:
            self._sweeper = loop.call_later(min(self.timeout / 4, 0.25), self._sweep)
        return conn

    def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for conn in self._all:
            if conn.transport is not None:
                conn.transport.close()
        self._all.clear()
        self._idle.clear()


@dataclass(frozen=True, slots=True)
class KeepAliveTransport:
    """Resolution steps over a KeepAlivePool's connections (one msgpack GET per step), seen through `net`.

    The pool is shared (a resolver node's walks and its identity checks use one); each view names its own place in
    the network model. The recursive resolver and the benchmark's iterative mode walk this way; it costs about a
    third of the CPU of the aiohttp client per hop, which is what a resolver's cache misses are made of."""

    pool: KeepAlivePool
    net: NetPath | None = None
    """The network model between the sender and the nodes (None: plain loopback, and no source header)."""

    async def exchange(self, step: Step) -> Exchange:
        call = rest.http_call(step.request, codec.MSGPACK)
        path = call.path + ("?" + urlencode(call.params) if call.params else "")
        host, port = step.server.address, step.server.http_interface().port
        net = self.net
        raw = build_request("GET", host, port, path, headers={SOURCE_HEADER: net.header} if net is not None else None)
        return await exchange_over_network(host, port, partial(self._send, host, port, raw), net=net,
                                           timeout_s=self.pool.timeout)

    async def _send(self, host: str, port: int, raw: bytes) -> Response:
        status, body = await self.pool.request(host, port, raw)
        try:
            return codec.decode_response(body, codec.MSGPACK)
        except HandleError as exc:
            raise UnreadableAnswer(status, exc.message) from None
