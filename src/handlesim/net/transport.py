"""The network side of the transport seam (core/transport.py): the system clock, the one mapping from network
exceptions to failure reasons, and one exchange with a node framed by the network model.

Every network transport (the aiohttp client, the keep-alive pool, the native protocol) sends a step through
`exchange_over_network`, so delays, loss and the wording of failures are the same whichever carries the bytes.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

import aiohttp

from ..core.messages import Response
from ..core.transport import Clock, Exchange
from .shaping import MessageLost, NetPath

SYSTEM_CLOCK = Clock(time.time, time.perf_counter)
"""Wall-clock time for cache expiry and health; perf_counter for hop durations (uvloop's clock ticks in whole ms)."""


class ConnectionBroken(Exception):
    """The connection broke, or answered something that is not HTTP/1.1 with a Content-Length."""


class ConnectFailed(ConnectionBroken):
    """No connection could be opened (refused, unreachable, TLS handshake failed)."""

    def __init__(self, host: str, port: int, os_error: OSError) -> None:
        super().__init__(f"cannot connect to {host}:{port}: {os_error.strerror or os_error}")
        self.os_error = os_error


class UnreadableAnswer(Exception):
    """A node answered with bytes that do not decode as a Handle response."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"unreadable answer (HTTP {status}: {message})")


class UnreadableNative(UnreadableAnswer):
    """A node's native-protocol answer does not decode (net/nativeclient.py)."""

    def __init__(self, message: str) -> None:
        Exception.__init__(self, f"unreadable native answer ({message})")


T = TypeVar("T")


class OneRequestConnection(asyncio.Protocol, Generic[T]):
    """A client connection carrying one request at a time (the keep-alive pool's HTTP, the native protocol's TCP):
    no Nagle delay, and a connection that breaks fails the request waiting on it."""

    def __init__(self) -> None:
        self.transport: Any = None  # asyncio's or uvloop's transport (uvloop's is not an asyncio.Transport)
        self.waiter: asyncio.Future[T] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:  # small request/answer exchanges: Nagle + delayed ACKs would add 40 ms stalls
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionBroken(f"connection closed ({exc or 'by peer'})"))


NETWORK_FAILURES = (TimeoutError, OSError, aiohttp.ClientError, ConnectionBroken, UnreadableAnswer)
"""What a network transport turns into a failed Exchange (anything else is a bug and propagates)."""


def failure_reason(exc: BaseException, timeout: float) -> str:
    """The words for a failed exchange, as traces and error messages show them."""
    if type(exc) is TimeoutError:  # the transport's own timeout
        return f"timed out after {timeout:g} s"
    if isinstance(exc, MessageLost):  # a message the network model lost is a timeout too, but says so
        return f"timed out ({exc})"
    if isinstance(exc, TimeoutError):  # aiohttp's connect/read timeouts
        return "timed out"
    if isinstance(exc, aiohttp.ClientConnectorError | ConnectFailed):
        return f"connection refused ({exc.os_error.strerror or exc.os_error})"
    if isinstance(exc, ConnectionBroken | UnreadableAnswer):
        return str(exc)
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


async def exchange_over_network(host: str, port: int, send: Callable[[], Awaitable[Response]], *,
                                net: NetPath | None, timeout_s: float) -> Exchange:
    """`send()` to the node at host:port, framed by the network model when there is one; a failure in words
    (`timeout_s`: the sender's own timeout, which `send` enforces, named in the words)."""
    try:
        if net is None:
            return Exchange.answered(await send())
        response, modelled = await net.exchange(host, port, send)
        return Exchange.answered(response, modelled)
    except NETWORK_FAILURES as exc:
        return Exchange.failed(failure_reason(exc, timeout_s))
