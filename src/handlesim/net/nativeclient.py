"""The native Handle protocol from the client side: resolution steps over UDP and TCP (the other side of
net/native.py), behind the same transport seam as the REST clients (core/transport.py).

`NativeTransport` sends a step to the server's UDP interface first and waits as Handle.Net's resolver does (0.5 s,
then 1 s, then 1.5 s, resending the same request each time), then falls back to its TCP interface; with
`protocol="tcp"` it goes to TCP at once. One UDP socket carries every exchange (answers are matched by request id,
multi-packet answers reassembled), and TCP connections are kept open and reused, one request in flight each.
Failures are worded by net/transport.py's one mapping, and the network model frames the exchange as for REST.

Resolutions are sent with PUBL (public values only), as the Handle.Net client sends them unless it authenticates:
a node challenges a resolution that asks for restricted values, and this transport carries no credentials.
"""

from __future__ import annotations

import asyncio
import itertools
import socket
import time
from collections import deque
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from ..core.cache import ResolutionCache
from ..core.errors import HandleError
from ..core.handle import Handle
from ..core.health import ServerHealth
from ..core.messages import Request, Response
from ..core.resolution import Resolution, Step
from ..core.transport import Exchange, drive
from ..core.values import ServerInfo, SiteInfo
from ..wire.native.body import decode_message, encode_message
from ..wire.native.envelope import Envelope
from ..wire.native.header import OpFlag
from ..wire.native.mapping import message_from_request, response_from_message
from ..wire.native.packets import Reassembler, StreamDecoder, frame, to_datagrams
from .shaping import NetPath
from .transport import (
    SYSTEM_CLOCK,
    ConnectFailed,
    ConnectionBroken,
    OneRequestConnection,
    UnreadableNative,
    exchange_over_network,
)

UDP_WAITS = (0.5, 1.0, 1.5)
"""Seconds Handle.Net's resolver waits for a UDP answer before resending, then before giving up on UDP
(HandleResolver.udpRetryScheme since 8.1)."""
PROTOCOLS = ("udp", "tcp")
"""`udp`: UDP with retries, then TCP (what Handle.Net clients do); `tcp`: TCP only."""
_request_ids = itertools.count(1)


class NoNativeInterface(ConnectionBroken):
    """The server lists no interface for the native protocol asked for (a REST-only node)."""


def next_request_id() -> int:
    """A request id for a new message (positive 31-bit, as Java ints on the other side)."""
    return next(_request_ids) % 0x7FFFFFFF or next(_request_ids)


def encode_request(request: Request, request_id: int) -> tuple[Envelope, bytes]:
    """The envelope and message bytes of a core request (resolutions ask for public values only)."""
    flags = OpFlag.PUBL if request.public_only else OpFlag(0)
    return Envelope(request_id=request_id), encode_message(message_from_request(request, flags=flags))


def decode_answer(data: bytes) -> Response:
    """The core response a native answer carries; UnreadableNative when it does not decode."""
    try:
        message, _ = decode_message(data)
    except HandleError as exc:
        raise UnreadableNative(exc.message) from None
    if message.header.is_request:
        raise UnreadableNative(f"the answer is a request (operation {message.header.op})")
    return response_from_message(message)


def native_port(server: ServerInfo, protocol: str) -> int:
    """The server's port for `protocol` (`udp` or `tcp`); NoNativeInterface when it lists none."""
    interface = server.interface(protocol)
    if interface is None or not interface.query:
        raise NoNativeInterface(f"{server.address} lists no native {protocol.upper()} interface")
    return interface.port


# -- UDP -------------------------------------------------------------------------------------------------------------


class _UdpEndpoint(asyncio.DatagramProtocol):
    """One UDP socket for every exchange: answers go to the waiter of their request id."""

    def __init__(self, max_pending: int) -> None:
        self.transport: Any = None
        self.waiters: dict[int, asyncio.Future[bytes]] = {}
        self.reassembler = Reassembler(max_pending=max_pending)
        self.unreadable = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        try:
            whole = self.reassembler.feed(addr, data, time.monotonic())
        except HandleError:
            self.unreadable += 1  # not a packet of any answer: nothing waits for it
            return
        if whole is None:
            return
        envelope, message = whole
        waiter = self.waiters.get(envelope.request_id)
        if waiter is not None and not waiter.done():
            waiter.set_result(message)

    def error_received(self, exc: Exception) -> None:
        pass  # an unconnected socket cannot tell which exchange an ICMP error belongs to: that one times out


class UdpExchanger:
    """Native requests over one UDP socket, with Handle.Net's resend timing."""

    def __init__(self, waits: tuple[float, ...] = UDP_WAITS, *, max_pending: int = 4096) -> None:
        self.waits = waits
        self.max_pending = max_pending
        self._endpoint: _UdpEndpoint | None = None
        self._opening: asyncio.Future[_UdpEndpoint] | None = None

    async def _open(self) -> _UdpEndpoint:
        if self._endpoint is not None:
            return self._endpoint
        if self._opening is None:
            self._opening = asyncio.ensure_future(self._bind())
        return await asyncio.shield(self._opening)

    async def _bind(self) -> _UdpEndpoint:
        loop = asyncio.get_running_loop()
        _, endpoint = await loop.create_datagram_endpoint(lambda: _UdpEndpoint(self.max_pending),
                                                          local_addr=("127.0.0.1", 0), family=socket.AF_INET)
        self._endpoint = endpoint
        return endpoint

    async def send(self, host: str, port: int, envelope: Envelope, message: bytes,
                   waits: tuple[float, ...] | None = None) -> bytes:
        """The answer's message bytes; TimeoutError when every wait passed without one. The same request (same
        id) is resent after each wait, and an answer to any of the sends counts."""
        endpoint = await self._open()
        rid = envelope.request_id
        waiter: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        endpoint.waiters[rid] = waiter
        packets = to_datagrams(envelope, message)
        try:
            for wait in waits if waits is not None else self.waits:
                for packet in packets:
                    endpoint.transport.sendto(packet, (host, port))
                done, _ = await asyncio.wait((waiter,), timeout=wait)
                if done:
                    return waiter.result()
            raise TimeoutError
        finally:
            endpoint.waiters.pop(rid, None)
            if not waiter.done():
                waiter.cancel()

    def close(self) -> None:
        if self._endpoint is not None and self._endpoint.transport is not None:
            self._endpoint.transport.close()
        self._endpoint = None
        self._opening = None


# -- TCP -------------------------------------------------------------------------------------------------------------


class _TcpConnection(OneRequestConnection[bytes]):
    def __init__(self) -> None:
        super().__init__()
        self.decoder = StreamDecoder()

    def data_received(self, data: bytes) -> None:
        try:
            frames = self.decoder.feed(data)
        except HandleError as exc:
            self._fail(UnreadableNative(exc.message))
            return
        for _, message in frames:
            if self.waiter is not None and not self.waiter.done():
                self.waiter.set_result(message)
            # an answer nobody waits for (a late one after a timeout) is dropped

    def _fail(self, exc: Exception) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc)
        if self.transport is not None:
            self.transport.close()

    def request(self, raw: bytes) -> asyncio.Future[bytes]:
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(raw)
        return self.waiter


class TcpExchanger:
    """Native requests over kept-open TCP connections per (host, port), one request in flight on each."""

    def __init__(self, timeout: float, max_idle: int = 1024) -> None:
        self.timeout = timeout
        self.max_idle = max_idle
        self._idle: dict[tuple[str, int], deque[_TcpConnection]] = {}
        self._all: set[_TcpConnection] = set()
        self.opened = 0

    async def send(self, host: str, port: int, envelope: Envelope, message: bytes) -> bytes:
        """The answer's message bytes; TimeoutError after the exchanger's `timeout`."""
        idle = self._idle.setdefault((host, port), deque())
        while idle and idle[-1].closed:
            idle.pop()
        conn = idle.pop() if idle else await self._open(host, port)
        loop = asyncio.get_running_loop()
        waiter = conn.request(frame(envelope, message))
        timer = loop.call_later(self.timeout, _time_out, waiter)  # one timer, no task per request
        try:
            answer = await waiter
        except BaseException:
            conn.transport.close()  # a late answer must not be read as the next request's
            self._all.discard(conn)
            raise
        finally:
            timer.cancel()
        if not conn.closed and len(idle) < self.max_idle:
            idle.append(conn)
        return answer

    async def _open(self, host: str, port: int) -> _TcpConnection:
        loop = asyncio.get_running_loop()
        try:
            _, conn = await asyncio.wait_for(loop.create_connection(_TcpConnection, host, port), self.timeout)
        except TimeoutError:
            raise
        except OSError as exc:
            raise ConnectFailed(host, port, exc) from None
        self._all.add(conn)
        self.opened += 1
        return conn

    def close(self) -> None:
        for conn in self._all:
            if conn.transport is not None:
                conn.transport.close()
        self._all.clear()
        self._idle.clear()


def _time_out(waiter: asyncio.Future[Any]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


# -- the transport ---------------------------------------------------------------------------------------------------


@dataclass
class NativeTransport:
    """Resolution steps (and single requests) over the native protocol: UDP with retries then TCP, or TCP only.

    `timeout` bounds the TCP exchange; the UDP waits are Handle.Net's, cut short so the whole UDP phase never
    takes longer than `timeout` either. Close it (or use it as an async context manager) when done."""

    protocol: str = "udp"
    timeout: float = 5.0
    net: NetPath | None = None
    """The network model between this client and the nodes (None: plain loopback)."""
    udp_waits: tuple[float, ...] = UDP_WAITS
    udp: UdpExchanger = field(init=False)
    tcp: TcpExchanger = field(init=False)
    fallbacks: int = 0
    """Exchanges UDP did not answer that went on over TCP."""
    health: ServerHealth = field(default_factory=ServerHealth)
    """Response times and recent failures of the servers asked (orders failover, as for the REST client)."""

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"native transport {self.protocol!r}: use one of {', '.join(PROTOCOLS)}")
        self.udp = UdpExchanger(_within(self.udp_waits, self.timeout))
        self.tcp = TcpExchanger(self.timeout)

    async def __aenter__(self) -> NativeTransport:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.udp.close()
        self.tcp.close()

    async def resolve(self, handle: Handle, root_sites: list[SiteInfo], *, types: tuple[str, ...] = (),
                      indexes: tuple[int, ...] = (), cache: ResolutionCache | None = None) -> Resolution:
        """Walk the hierarchy iteratively from the roots over the native protocol (the REST client's `resolve`)."""
        resolution = Resolution(handle, root_sites, types=types, indexes=indexes, cache=cache, health=self.health,
                                now=time.time())
        await drive(resolution, self, SYSTEM_CLOCK)
        return resolution

    async def exchange(self, step: Step) -> Exchange:
        """The Transport side: one resolution step to its server's native interface."""
        return await self.exchange_with(step.server, step.request)

    async def exchange_with(self, server: ServerInfo, request: Request) -> Exchange:
        """`request` to `server` over the native protocol; a failure in words, never an exception."""
        first = "udp" if self.protocol == "udp" and server.interface("udp") is not None else "tcp"
        try:
            port = native_port(server, first)
        except NoNativeInterface as exc:
            return Exchange.failed(str(exc))
        exchange = await exchange_over_network(server.address, port, partial(self._send, server, request, first),
                                               net=self.net, timeout_s=self.timeout)
        return exchange

    async def answer_code(self, host: str, udp_port: int, tcp_port: int, message: bytes) -> int:
        """Send an encoded request (the load generator encodes each key once) and return only the answer's response
        code: UDP with its retries then TCP (`udp` transport), or TCP; the network model frames it as any exchange.
        Raises TimeoutError / ConnectionBroken / OSError as the generator counts them."""
        envelope = Envelope(request_id=next_request_id())
        if self.net is None:
            return await self._code(host, udp_port, tcp_port, envelope, message)
        code, _ = await self.net.exchange(host, udp_port if self.protocol == "udp" else tcp_port,
                                          partial(self._code, host, udp_port, tcp_port, envelope, message))
        return code

    async def _code(self, host: str, udp_port: int, tcp_port: int, envelope: Envelope, message: bytes) -> int:
        if self.protocol == "udp":
            try:
                answer = await self.udp.send(host, udp_port, envelope, message)
                return int.from_bytes(answer[4:8], "big")
            except TimeoutError:
                self.fallbacks += 1
        answer = await self.tcp.send(host, tcp_port, envelope, message)
        return int.from_bytes(answer[4:8], "big")

    async def _send(self, server: ServerInfo, request: Request, first: str) -> Response:
        envelope, message = encode_request(request, next_request_id())
        if first == "udp":
            try:
                return decode_answer(await self.udp.send(server.address, native_port(server, "udp"), envelope,
                                                         message))
            except TimeoutError:
                if server.interface("tcp") is None:
                    raise
                self.fallbacks += 1  # as Handle.Net's resolver does: no answer over UDP, try TCP
        return decode_answer(await self.tcp.send(server.address, native_port(server, "tcp"), envelope, message))


def _within(waits: tuple[float, ...], budget: float) -> tuple[float, ...]:
    """`waits` cut so they add up to at most `budget` seconds (at least one wait)."""
    kept: list[float] = []
    for wait in waits:
        if sum(kept) + wait > budget:
            kept.append(max(budget - sum(kept), 0.0))
            break
        kept.append(wait)
    return tuple(w for w in kept if w > 0) or (budget,)

