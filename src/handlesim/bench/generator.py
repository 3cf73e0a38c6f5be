"""The open-loop load generator: one process, many keep-alive connections, requests timed from their intended send.

Each connection has its own schedule (constant spacing or Poisson arrivals at rate/connections, as wrk2 does). A
request due while the previous one is still in flight goes out late, and its latency still counts from when it was
due, so queueing anywhere (generator, network, server) shows in the percentiles instead of being omitted.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import random
import time
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import msgpack

from ..core.cache import ResolutionCache
from ..core.codes import OpCode
from ..core.handle import Handle
from ..core.messages import Request
from ..core.resolution import Resolution
from ..core.transport import drive
from ..core.values import SiteInfo
from ..net import rest
from ..net.keepalive import KeepAlivePool, KeepAliveTransport, build_request
from ..net.nativeclient import NativeTransport, encode_request
from ..net.shaping import SOURCE_HEADER, NetPath
from ..net.tls import client_context
from ..net.transport import SYSTEM_CLOCK, ConnectionBroken
from ..wire import codec
from .recording import Recorder
from .scenario import fire_events
from .workload import KeyChooser, Target

LATE_AFTER = 0.001
MODES = ("direct", "iterative-cold", "iterative-warm", "resolver", "mixed", "baseline")
PROTOCOLS = ("rest", "native")
NATIVE_MODES = ("direct", "iterative-cold", "iterative-warm", "resolver")
"""What the generator does over the native protocol (mixed needs authenticated writes, which it sends over REST)."""


@dataclass
class WorkerSpec:
    """Everything one generator process needs (picklable)."""

    mode: str
    rate: float
    duration: float
    warmup: float
    connections: int
    targets: list[Target]
    arrival: str = "constant"
    distribution: str = "uniform"
    zipf_s: float = 1.0
    seed: int = 1
    timeout: float = 5.0
    resolver: tuple[str, int] | None = None
    baseline: tuple[str, int] | None = None
    root_sites: list[SiteInfo] = field(default_factory=list)
    write_fraction: float = 0.0
    credentials: dict[str, str] = field(default_factory=dict)
    """Basic Authorization header per enterprise prefix (mixed mode)."""
    worker: int = 0
    progress: Any = None
    """A queue (multiprocessing manager proxy) receiving one report a second, or None."""
    net: NetPath | None = None
    """The network model between the generator and the nodes (None: loopback); each worker draws its own stream."""
    events: list[dict[str, Any]] = field(default_factory=list)
    """Scenario events the first worker fires ({"at", "label", "body"}), timed from the measured window's start."""
    control_url: str = ""
    """Where scenario events go (the topology's control port)."""
    protocol: str = "rest"
    """`rest` (msgpack GETs over keep-alive HTTP) or `native` (RFC 3652 resolutions, see `native_transport`)."""
    native_transport: str = "udp"
    """With the native protocol: `udp` (Handle.Net's retries, then TCP) or `tcp` (kept-open connections)."""
    resolver_native: int | None = None
    """The resolver's native port (resolver mode over the native protocol)."""
    ca_file: str = ""
    """The topology's CA certificate when it serves HTTPS (`up --tls`): every connection is TLS, pinning it. A
    path, not an SSLContext: the spec travels to other processes (and Ray tasks), a context cannot."""


class Worker:
    def __init__(self, spec: WorkerSpec) -> None:
        self.spec = spec
        self.pool = KeepAlivePool(spec.timeout, ssl_context=client_context(spec.ca_file) if spec.ca_file else None)
        self.keys = KeyChooser(len(spec.targets), spec.distribution, spec.zipf_s, spec.seed * 7919 + spec.worker)
        self.rng = random.Random(spec.seed * 104729 + spec.worker)
        self.recorder = Recorder()
        self.cache = ResolutionCache(capacity=1 << 20) if spec.mode == "iterative-warm" else None
        self._gets: dict[int, bytes] = {}
        self.writes = 0
        self.measure_from = 0.0
        self.net = spec.net
        if self.net is not None:
            self.net = NetPath.create(self.net.source, self.net.region, self.net.model, timeout=spec.timeout,
                                      endpoints=self.net.endpoints, stream=f"worker-{spec.worker}")
        self._headers = {SOURCE_HEADER: self.net.header} if self.net is not None else None
        self.native = NativeTransport(spec.native_transport, timeout=spec.timeout, net=self.net) \
            if spec.protocol == "native" else None
        self.transport: KeepAliveTransport | NativeTransport = self.native or KeepAliveTransport(self.pool, self.net)
        self._messages: dict[int, bytes] = {}

    async def run(self) -> dict[str, Any]:
        spec = self.spec
        start = time.perf_counter() + 0.05
        self.measure_from = start + spec.warmup
        end = self.measure_from + spec.duration
        per_connection = spec.rate / spec.connections
        reporter = asyncio.ensure_future(self._report_every_second(end)) if spec.progress is not None else None
        events = asyncio.ensure_future(fire_events(spec.events, spec.control_url, self.measure_from)) \
            if spec.events and spec.worker == 0 else None
        announcer = asyncio.ensure_future(self._announce_window()) if spec.progress is not None else None
        try:
            await asyncio.gather(*(self._connection(c, start, end, per_connection) for c in range(spec.connections)))
        finally:
            self.pool.close()
            if self.native is not None:
                self.native.close()
            if reporter is not None:
                reporter.cancel()
            if announcer is not None:
                announcer.cancel()
        fired = await events if events is not None else []
        result = self.recorder.export()
        result.update({"worker": spec.worker, "writes": self.writes, "events": fired})
        return result

    async def _connection(self, number: int, start: float, end: float, rate: float) -> None:
        # perf_counter, not loop.time(): uvloop's clock ticks in whole milliseconds
        clock = time.perf_counter
        rng = random.Random(self.spec.seed * 31 + self.spec.worker * 1009 + number)
        first = start + (number / self.spec.connections) / rate
        due, sent = first, 0
        while due < end:
            now = clock()
            origin = due
            if due > now:
                await asyncio.sleep(due - now)
                # the event loop's millisecond timer may wake a little early: then time it from when it went out
                origin = max(due, clock())
            elif now - due > LATE_AFTER and due >= self.measure_from:
                self.recorder.late += 1
            outcome, ok = await self._one()
            if due >= self.measure_from and clock() <= end:
                self.recorder.in_window += 1
            if due >= self.measure_from:
                self.recorder.record(int(due - self.measure_from), int((clock() - origin) * 1e6), outcome, ok)
            sent += 1
            # constant arrivals are computed, not accumulated: summing 1/rate drifts and can add one request
            due = due + rng.expovariate(rate) if self.spec.arrival == "poisson" else first + sent / rate

    async def _report_every_second(self, end: float) -> None:
        """(worker, measured seconds, completed, errors, p99 ms of the last full second) for the live line."""
        while time.perf_counter() < end:
            await asyncio.sleep(1.0)
            elapsed = time.perf_counter() - self.measure_from
            completed, errors = self.recorder.completed_and_errors()
            p99 = self.recorder.last_second_p99(int(elapsed) - 1)
            with contextlib.suppress(Exception):
                self.spec.progress.put((self.spec.worker, elapsed, completed, errors, p99))

    async def _announce_window(self) -> None:
        """Tell the runner when this worker's measured window opens (it snapshots the nodes' own timers then)."""
        await asyncio.sleep(max(self.measure_from - time.perf_counter(), 0.0))
        with contextlib.suppress(Exception):
            self.spec.progress.put((self.spec.worker, "window"))

    async def _one(self) -> tuple[str, bool]:
        try:
            mode = self.spec.mode
            if mode == "mixed" and self.rng.random() < self.spec.write_fraction:
                return await self._write()
            if mode in ("iterative-cold", "iterative-warm"):
                return await self._iterative()
            if self.native is not None:
                return await self._native_get(self.native)
            return await self._get()
        except (ConnectionBroken, OSError):
            return "transport", False
        except TimeoutError:
            return "timeout", False

    async def _get(self) -> tuple[str, bool]:
        index = self.keys.next()
        target = self.spec.targets[index]
        host, port = {"resolver": self.spec.resolver, "baseline": self.spec.baseline}.get(
            self.spec.mode, None) or (target.host, target.port)
        raw = self._gets.get(index)
        if raw is None:
            raw = self._gets[index] = build_request("GET", host, port, target.path, headers=self._headers)
        status, body = await self._send(host, port, raw)
        return _outcome(status, body)

    async def _native_get(self, native: NativeTransport) -> tuple[str, bool]:
        """One native resolution of a drawn key: at its enterprise (direct), or at the resolver with RECU."""
        index = self.keys.next()
        target = self.spec.targets[index]
        via_resolver = self.spec.mode == "resolver"
        if via_resolver:
            host, port = self.spec.resolver or ("", 0)
            native_port = self.spec.resolver_native or 0
        else:
            host, native_port = target.host, target.native_port or 0
        message = self._messages.get(index)
        if message is None:  # encoded once per key, as the REST path builds its request bytes once
            request = Request(OpCode.RESOLUTION, Handle.from_text(target.handle), recursive=via_resolver)
            message = self._messages[index] = encode_request(request, 0)[1]
        code = await native.answer_code(host, native_port, native_port, message)
        return str(code), code == 1

    async def _send(self, host: str, port: int, raw: bytes) -> tuple[int, bytes]:
        if self.net is None:
            return await self.pool.request(host, port, raw)
        answer, _ = await self.net.exchange(host, port, partial(self.pool.request, host, port, raw))
        return answer

    async def _iterative(self) -> tuple[str, bool]:
        target = self.spec.targets[self.keys.next()]
        resolution = Resolution(Handle.from_text(target.handle), self.spec.root_sites, cache=self.cache)
        await drive(resolution, self.transport, SYSTEM_CLOCK)
        self.recorder.hops += resolution.hops
        self.recorder.lookups += 1
        result = resolution.result
        assert result is not None
        return str(int(result.code)), result.ok

    async def _write(self) -> tuple[str, bool]:
        target = self.spec.targets[self.keys.next()]
        prefix = target.handle.split("/", 1)[0]
        self.writes += 1
        handle = f"{prefix}/BENCH-{self.spec.worker}-{self.writes}"
        values = [{"index": 1, "type": "URL", "data": f"https://id.example.cn/{handle}"},
                  {"index": 2, "type": "BATCH", "data": str(self.writes)}]
        body = msgpack.packb({"values": values}, use_bin_type=True)
        headers = {"Content-Type": codec.MSGPACK, "Authorization": self.spec.credentials.get(prefix, ""),
                   **(self._headers or {})}
        raw = build_request("PUT", target.host, target.port, rest.path_for(Handle.from_text(handle)), body=body,
                            headers=headers)
        status, answer = await self._send(target.host, target.port, raw)
        return _outcome(status, answer)


def _outcome(status: int, body: bytes) -> tuple[str, bool]:
    try:
        code = msgpack.unpackb(body, raw=False).get("responseCode") if body else None
    except Exception:  # a baseline route or a broken answer: fall back to the HTTP status
        code = None
    if code is None:
        return f"http-{status}", status < 400
    return str(code), code == 1


def run_worker(spec: WorkerSpec) -> dict[str, Any]:
    """Process entry point: run one generator on its own event loop (uvloop where installed).

    The cyclic garbage collector is paused for the run, as pyperf and timeit do: the iterative-warm client cache
    holds ~100k tracked objects, and a full collection in the generator stalled its sends for ~200 ms, which the
    open-loop timing then charged to the server. Reference counting still frees almost everything; a run is
    seconds long."""
    gc.disable()
    try:
        with contextlib.suppress(ImportError):
            import uvloop

            return uvloop.run(Worker(spec).run())
        return asyncio.run(Worker(spec).run())
    finally:
        gc.enable()
