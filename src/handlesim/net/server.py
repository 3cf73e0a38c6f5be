"""A node as an aiohttp application: its parts wired together, and the listener that serves them.

What a request meets, in order (docs/architecture-node.md): the listener (a connection beyond `max_connections` is
refused), the front door (net/frontdoor.py: a plain GET whose answer the AnswerCache holds is answered there, below
aiohttp; a plain GET beyond `max_in_flight` is refused there), then, for everything else, aiohttp: the edge gate
(net/gate.py: faults, overload, rate, in-flight count, timing, failures as Handle answers), then one route. A node
started with a native port also answers the native Handle protocol on UDP and TCP (net/native.py), through the same
edge gate, authenticator, resolver and replicator. The routes come from their own modules (handle routes, `/_sim/`,
sessions, reports, metrics, OpenAPI), each declaring its operation; the handle routes call the node's HandleService
and keep public answers encoded in an AnswerCache (net/answers.py).
The node's figures are read as one NodeStats value (net/stats.py).
"""

from __future__ import annotations

import asyncio
import os
import ssl
import time
from collections.abc import Callable, Iterator
from typing import Any

from aiohttp import web

from ..core.reports import ReportBook
from ..core.service import HandleService
from .answers import AnswerCache
from .authroutes import AuthRoutes
from .credentials import Authenticator
from .faults import FaultController
from .frontdoor import FrontDoor
from .gate import EdgeGate
from .handleroutes import HandleRoutes
from .limits import MAX_BODY_BYTES, ServerLimits, too_many_connections
from .metrics import metrics_route
from .native import NativeLimits, NativeListener
from .openapi import openapi_route
from .recursion import RecursiveResolver
from .replication import Replicator
from .reporting import ReportDesk
from .routes import Route
from .simroutes import SimRoutes
from .stats import NodeStats, node_stats, node_timers
from .verify import RemoteVerifier, VerificationDesk


class NodeServer:
    """One node's HTTP face. Build with a service, then `await start(host, port)`."""

    def __init__(self, service: HandleService, *, clock: Callable[[], float] = time.time,
                 meta: dict[str, Any] | None = None, max_body_bytes: int = MAX_BODY_BYTES,
                 resolver: RecursiveResolver | None = None, replicator: Replicator | None = None,
                 ssl_context: ssl.SSLContext | None = None, limits: ServerLimits | None = None,
                 native: NativeLimits | None = None) -> None:
        self.service = service
        self.limits = limits or ServerLimits(max_body_bytes=max_body_bytes)
        """HTTP-side bounds: body size and time, connections, in-flight requests, per-client rate."""
        self.ssl_context = ssl_context
        """Serve HTTPS with this context (None: plain HTTP)."""
        self.replicator = replicator
        """Pushes the changes this node accepts to its peer primaries (None: a single primary)."""
        self.resolver = resolver
        """Walks the hierarchy for GETs of handles this node does not home (None: answer 301 instead)."""
        self.clock = clock
        self.meta = meta or {}
        self.started_at = clock()
        self.authenticator = Authenticator(service, clock=clock,
                                           remote=RemoteVerifier(resolver) if resolver is not None else None)
        self.answers = AnswerCache()
        service.listeners.append(self.answers.forget)
        self.gate = EdgeGate(service.config.node_id, self.limits, clock)
        self.native = NativeListener(service, resolver=resolver, authenticator=self.authenticator,
                                     replicator=replicator, clock=clock, limits=native, edge=self.gate) \
            if native is not None else None
        """The node's native Handle protocol interface (None: REST only); it listens once `start` gets a port."""
        self.reports = ReportBook()
        """The latest operating reports of the nodes below this one (the national picture at a root)."""
        self.report_interval = 0.0
        """Seconds between this node's own reports upward (0: it does not report)."""
        self.setup_requests: dict[str, dict[str, int]] = {}
        """What the node answered while its topology was set up (the delegation writes), by operation and code."""
        self.app = web.Application(client_max_size=self.limits.max_body_bytes, middlewares=[self.gate.middleware])
        self._handle_routes = HandleRoutes(service, self.answers, self.authenticator, clock=clock,
                                           body_timeout_s=self.limits.body_timeout_s, resolver=resolver,
                                           replicator=replicator)
        for route in self._routes():
            self._add(route)
        self.front_door = FrontDoor(self.answers, self.gate, clock, resolver, keepalive_s=self.limits.idle_timeout_s,
                                    answer_now=self._handle_routes.answer_now,
                                    walk_now=self._handle_routes.walk_now)
        """Answers plain public GETs before aiohttp sees them (net/frontdoor.py); its `counters` say how many."""
        self._runner: web.AppRunner | None = None
        self._listener: asyncio.Server | None = None
        self._reuse_port = False
        self.port = 0

    def _routes(self) -> list[Route]:
        body_timeout_s = self.limits.body_timeout_s
        handles = self._handle_routes
        sim = SimRoutes(self.service.config.node_id, self.stats, lambda: self.gate.faults)
        auth = AuthRoutes(self.authenticator, VerificationDesk(self.service, self.clock, os.urandom))
        reports = ReportDesk(self.service, self.reports, self.authenticator, clock=self.clock, stats=self.stats,
                             body_timeout_s=body_timeout_s)
        return [*handles.routes(), *sim.routes(), openapi_route(self.limits), *auth.routes(), *reports.routes(),
                metrics_route(self),
                sim.catch_all()]  # last, so every /_sim/ route above wins over it

    def _add(self, route: Route) -> None:
        """Add `route` (a GET answers HEAD too, as aiohttp's `web.get` does) and tell the gate its operation."""
        resource = self.app.router.add_resource(route.path)
        for method in ("HEAD", "GET") if route.method == "GET" else (route.method,):
            self.gate.watch(resource.add_route(method, route.handler), route.operation)

    def stats(self) -> NodeStats:
        """This node's figures now (what `/_sim/stats`, `/metrics` and the upward reports show)."""
        return node_stats(self)

    def timers(self) -> dict[str, Any]:
        """`stats().timers()`, cheaply (what a benchmark reads from every node as its window opens and closes)."""
        return node_timers(self)

    def encoding_ahead(self) -> Iterator[None]:
        """Encode the public answers of up to `limits.encoded_ahead` of the node's records (HandleRoutes.
        encode_ahead), one record per step, so their first lookups are answered as repeated ones are."""
        if self.limits.encoded_ahead > 0:
            yield from self._handle_routes.encode_ahead(self.limits.encoded_ahead)

    def encode_ahead(self) -> int:
        """`encoding_ahead` all at once; returns how many records' answers are now encoded ahead."""
        for _ in self.encoding_ahead():
            pass
        return self._handle_routes.encoded_ahead

    def end_setup(self) -> None:
        """The topology is ready: keep what the node answered while it was set up apart (`setup_requests`), so its
        requests, registrations and latencies count what users and benchmarks did, not the delegations."""
        self.setup_requests = {op: dict(codes) for op, codes in self.stats().requests.items()}
        self.service.counts.clear()
        self.answers.hits.clear()
        self.gate.edge_errors.clear()
        for histogram in self.gate.latency.values():
            histogram.reset()
        if self.native is not None:  # nothing asks natively during set-up, but what did is set-up too
            self.native.counters.cache_hits.clear()
            self.native.counters.own_answers.clear()

    @property
    def faults(self) -> FaultController | None:
        """The topology's fault injection (None: off; mutating /_sim/ requests answer 403)."""
        return self.gate.faults

    @faults.setter
    def faults(self, controller: FaultController | None) -> None:
        self.gate.faults = controller

    # -- lifecycle ----------------------------------------------------------------------------------------------

    async def start(self, host: str, port: int, native_port: int | None = None, *, reuse_port: bool = False) -> int:
        """Serve REST on host:port and, when the node has a native interface, the native protocol on `native_port`
        (UDP and TCP; 0: one free number for both). Returns the REST port (`native_port` says the other).

        `reuse_port` (SO_REUSEPORT): several processes may listen on the same REST port, and the kernel spreads new
        connections over them; that is how one node uses more than one core (each process holds its own copy of
        the node, so only read-only traffic belongs there; benchmarks/node_vs_bare.py)."""
        self._reuse_port = reuse_port
        # a node stopped and started again (the teaching page's Stop/Start) keeps its app and its frozen router
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False,
                                     keepalive_timeout=self.limits.idle_timeout_s)
        await self._runner.setup()
        port = await self._listen_http(host, port)
        if native_port is not None:
            try:
                await self.start_native(host, native_port)
            except OSError:
                self.close_listener()
                raise
        return port

    async def start_native(self, host: str, port: int) -> int:
        """Start the native interface on `port` (UDP and TCP; 0: one free number for both); returns the port."""
        if self.native is None:
            raise ValueError(f"node {self.service.config.node_id} was built without a native interface")
        return await self.native.start_on(host, port)

    @property
    def native_port(self) -> int:
        """The port of the native interface, UDP and TCP (0: none, or not started)."""
        return self.native.tcp_port if self.native is not None else 0

    async def listen(self, host: str, port: int) -> int:
        """Listen again after a fault closed the listeners: REST on `port`, the native interface on its old port."""
        port = await self._listen_http(host, port)
        if self.native is not None:
            await self.native.reopen()
        return port

    async def _listen_http(self, host: str, port: int) -> int:
        """Open the REST listener (at start, and when a fault restarts the node on its old port).

        Our own listener rather than aiohttp's TCPSite, so connections past `max_connections` are refused
        (net/limits.py) and every other connection meets the front door first (net/frontdoor.py)."""
        assert self._runner is not None
        connections = self._runner.server
        assert connections is not None
        refuse = too_many_connections(self.limits.max_connections, self.limits.body_timeout_s)
        limit = self.limits.max_connections
        gate = self.gate
        door = self.front_door

        def protocol() -> asyncio.BaseProtocol:
            """The front door before aiohttp's handler for a new connection, or a refusal once the node holds
            `max_connections`."""
            if len(connections.connections) >= limit:
                gate.rejected_busy += 1
                return refuse()
            return door.connection(connections())

        loop = asyncio.get_running_loop()
        self._listener = await loop.create_server(protocol, host, port, reuse_address=True, backlog=1024,
                                                  ssl=self.ssl_context, reuse_port=self._reuse_port or None)
        self.port = self._listener.sockets[0].getsockname()[1] if self._listener.sockets else port
        return self.port

    @property
    def serving(self) -> bool:
        """Whether the node listens now (False after `stop()`, until `start()` again)."""
        return self._runner is not None

    def close_listener(self) -> bool:
        """Stop accepting connections and datagrams (open connections stay); False when the node was not
        listening."""
        native = self.native.close_listeners() if self.native is not None else False
        if self._listener is None:
            return native
        self._listener.close()
        self._listener = None
        return True

    def close_connections(self, *, abrupt: bool) -> None:
        """Close every open client connection: reset at once (`abrupt`), or after the requests in progress."""
        connections = self._runner.server if self._runner is not None else None
        for connection in connections.connections if connections is not None else ():
            if abrupt:
                connection.force_close()
            else:
                connection.close()
        if self.native is not None:
            self.native.close_connections(abrupt=abrupt)

    async def stop(self) -> None:
        self.front_door.cancel_walks()
        if self.native is not None:
            await self.native.stop()
        if self.resolver is not None:
            self.resolver.close()
        if self.replicator is not None:
            await self.replicator.close()
        self.close_listener()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
