"""A node as an aiohttp application: the REST routes call the node's HandleService; `/_sim/` serves the simulator.

Per request the route does only HTTP work: parse, authenticate, call `service.handle`, encode. Encoded public
resolution answers are cached per (path, query, media type) and dropped when the record changes, so a warm GET costs
about what a bare route costs.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from time import perf_counter
from typing import Any

from aiohttp import web

from ..core.codes import WRITE_OPS, OpCode, ResponseCode, http_status
from ..core.errors import HandleError, ProtocolError
from ..core.handle import Handle
from ..core.latency import LatencyHistogram
from ..core.messages import Request, Response, error_response
from ..core.search import reverse_lookup
from ..core.service import HandleService
from ..wire import codec, mapping
from ..wire.fields import FieldReader
from . import reporting, rest
from .authroutes import AuthRoutes
from .credentials import Authenticator
from .faults import FAULT_ROUTE, FaultController, fault_action, fault_state, other_sim_route
from .limits import (
    MAX_BODY_BYTES,
    ClientRateLimiter,
    ServerLimits,
    SheddingProtocol,
    keep_alive_answer,
    too_many_connections,
)
from .openapi import OPENAPI_ROUTE, openapi_spec
from .recursion import RecursiveResolver
from .replication import REPLICATION_ROUTE, Replicator
from .reporting import REPORT_ROUTE, REPORTS_ROUTE
from .verify import RemoteVerifier, VerificationDesk

log = logging.getLogger(__name__)

Clock = Callable[[], float]
ANSWER_CACHE_LIMIT = 50_000
_UNCACHEABLE_PARAMS = frozenset({"auth", "pretty", "trace", "publicOnly"})
TIMED_ROUTES = {"get_handle": "resolution", "put_handle": "put", "delete_handle": "delete_handle",
                "list_handles": "list_handles", "list_prefixes": "list_homed_nas", "reverse_lookup": "search",
                "replicate": "replication", "receive_report": "report"}
"""Routes whose server-side time is recorded, and the operation name their histogram and edge errors go under."""
_OP_NAMES = {int(op): op.name.lower() for op in OpCode}


def media_of(header: str | None) -> str:
    return codec.MSGPACK if header and codec.MSGPACK in header else codec.JSON


class NodeServer:
    """One node's HTTP face. Build with a service, then `await start(host, port)`."""

    def __init__(self, service: HandleService, *, clock: Clock = time.time, meta: dict[str, Any] | None = None,
                 max_body_bytes: int = MAX_BODY_BYTES, resolver: RecursiveResolver | None = None,
                 replicator: Replicator | None = None, ssl_context: ssl.SSLContext | None = None,
                 limits: ServerLimits | None = None) -> None:
        self.limits = limits or ServerLimits(max_body_bytes=max_body_bytes)
        """HTTP-side bounds: body size and time, connections, in-flight requests, per-client rate."""
        self.in_flight = 0
        """Requests being worked on now (handler started, answer not yet returned)."""
        self.rejected_busy = 0
        """Requests answered 503 / code 3 because of `limits` (in flight, per-client rate, connections)."""
        self.max_in_flight = self.limits.max_in_flight
        busy = error_response(ResponseCode.SERVER_TOO_BUSY,
                              f"server too busy: {self.max_in_flight} requests in progress (limit max_in_flight); "
                              "retry later or at another server of the site")
        self._busy_bodies = {media: codec.encode_response(busy, media) for media in (codec.JSON, codec.MSGPACK)}
        """The answer beyond max_in_flight, encoded once: shedding load must cost as little as possible."""
        self.busy_http = {wants_msgpack: keep_alive_answer(503, "Service Unavailable", self._busy_bodies[media], media)
                          for wants_msgpack, media in ((False, codec.JSON), (True, codec.MSGPACK))}
        self._rate_limiter = ClientRateLimiter(self.limits.rate_per_client, self.limits.rate_burst) \
            if self.limits.rate_per_client > 0 else None
        self.service = service
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
        self._answers: dict[tuple[str, str], tuple[int, bytes, int, float | None]] = {}
        """Encoded public answers by (raw path, media type): status, body, response code, expiry (None: until the
        record changes; walked answers expire with the resolver cache's TTL)."""
        self.fast_answers: Counter[int] = Counter()
        """Resolutions answered from the encoded-answer cache, by response code (the service never saw them)."""
        self._answer_keys: dict[str, tuple[tuple[str, str], ...]] = {}
        """The memo keys of each handle's cached answers (tuples, not sets: the collector untracks tuples of
        strings, so a node that has answered many handles does not slow every full collection)."""
        service.listeners.append(self._forget_answers)
        self.app = web.Application(client_max_size=self.limits.max_body_bytes,
                                   middlewares=[self._errors_as_protocol_answers])
        self.app.add_routes([
            web.get(rest.HANDLE_ROUTE, self.get_handle),
            web.put(rest.HANDLE_ROUTE, self.put_handle),
            web.delete(rest.HANDLE_ROUTE, self.delete_handle),
            web.get(rest.LIST_ROUTE, self.list_handles),
            web.get(rest.PREFIXES_ROUTE, self.list_prefixes),
            web.get("/hrls/handles", self.reverse_lookup),
            web.get("/hrls/handles/", self.reverse_lookup),
            web.put(REPLICATION_ROUTE, self.replicate),
            web.get("/_sim/health", self.health),
            web.get("/_sim/stats", self.stats),
            web.get(FAULT_ROUTE, self.fault_state),
            web.post(FAULT_ROUTE, self.fault_action),
            web.get(OPENAPI_ROUTE, self.openapi),
        ])
        self.app.add_routes(AuthRoutes(self.authenticator, VerificationDesk(service, clock, os.urandom)).routes())
        self._runner: web.AppRunner | None = None
        self._listener: asyncio.Server | None = None
        self.port = 0
        self.faults: FaultController | None = None
        """The topology's fault injection (None: off; mutating /_sim/ requests answer 403)."""
        self.latency: dict[str, LatencyHistogram] = {}
        """Server-side time by operation: from the middleware's entry to the answer being built."""
        self.edge_errors: Counter[tuple[str, int]] = Counter()
        """Requests refused before reaching the service (bad handle, failed authentication, ...), by (operation,
        response code)."""
        self.reports = reporting.new_report_book()
        """The latest operating reports of the nodes below this one (the national picture at a root)."""
        self.report_interval = 0.0
        """Seconds between this node's own reports upward (0: it does not report)."""
        self.setup_requests: dict[str, dict[str, int]] = {}
        """What the node answered while its topology was set up (the delegation writes), by operation and code."""
        self.app.add_routes([
            web.put(REPORT_ROUTE, self.receive_report),
            web.get(REPORTS_ROUTE, self.national_picture),
            web.get("/metrics", self.metrics),
        ])
        self._timed_routes: dict[Any, LatencyHistogram] = {}
        for route in self.app.router.routes():
            operation = TIMED_ROUTES.get(getattr(route.handler, "__name__", ""))
            if operation is not None:
                self._timed_routes[route] = self.latency.setdefault(operation, LatencyHistogram())

    # -- lifecycle ----------------------------------------------------------------------------------------------

    async def start(self, host: str, port: int) -> int:
        # last, so every /_sim/ route added before start wins over this catch-all (changes answer 403 unless faults);
        # once: a node stopped and started again (the teaching page's Stop/Start) keeps its frozen router
        if not self.app.router.frozen:
            self.app.router.add_route("*", "/_sim/{tail:.*}", self.other_sim_route)
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False,
                                     keepalive_timeout=self.limits.idle_timeout_s)
        await self._runner.setup()
        return await self.listen(host, port)

    async def listen(self, host: str, port: int) -> int:
        """Open the listener (at start, and when a fault restarts the node on its old port).

        Our own listener rather than aiohttp's TCPSite, so connections past `max_connections` are refused and
        plain GETs past `max_in_flight` are shed before aiohttp parses them (net/limits.py)."""
        assert self._runner is not None
        connections = self._runner.server
        assert connections is not None
        refuse = too_many_connections(self.limits.max_connections, self.limits.body_timeout_s)
        limit = self.limits.max_connections

        def protocol() -> asyncio.BaseProtocol:
            """aiohttp's handler for a new connection, or a refusal once the node holds `max_connections`."""
            if len(connections.connections) >= limit:
                self.rejected_busy += 1
                return refuse()
            return SheddingProtocol(connections(), self)

        loop = asyncio.get_running_loop()
        self._listener = await loop.create_server(protocol, host, port, reuse_address=True, backlog=1024,
                                                  ssl=self.ssl_context)
        self.port = self._listener.sockets[0].getsockname()[1] if self._listener.sockets else port
        return self.port

    @property
    def serving(self) -> bool:
        """Whether the node listens now (False after `stop()`, until `start()` again)."""
        return self._runner is not None

    @property
    def runner(self) -> web.AppRunner | None:
        return self._runner

    def close_listener(self) -> bool:
        """Stop accepting connections (open ones stay); False when the node was not listening."""
        if self._listener is None:
            return False
        self._listener.close()
        self._listener = None
        return True

    async def stop(self) -> None:
        if self.resolver is not None:
            self.resolver.close()
        if self.replicator is not None:
            await self.replicator.close()
        self.close_listener()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- Handle routes ------------------------------------------------------------------------------------------

    async def get_handle(self, request: web.Request) -> web.StreamResponse:
        media = media_of(request.headers.get("Accept"))
        memo = (request.raw_path, media)
        hit = self._answers.get(memo)
        if hit is not None and "Authorization" not in request.headers and (hit[3] is None or hit[3] > self.clock()):
            self.fast_answers[hit[2]] += 1
            if hit[3] is not None and self.resolver is not None:
                self.resolver.note_encoded_hit()
            return web.Response(status=hit[0], body=hit[1], content_type=media)
        query = request.rel_url.query
        cacheable = "Authorization" not in request.headers and not _UNCACHEABLE_PARAMS.intersection(query)
        handle = self._handle_in_path(request)
        core_request = rest.resolution_request(handle, query, query.getall("type", []), query.getall("index", []))
        if core_request.authoritative or "Authorization" in request.headers:
            core_request = await self._with_identity(request, core_request)
        answer = self.service.handle(core_request, self.clock())
        expires: float | None = None
        if answer.code == ResponseCode.SERVER_NOT_RESPONSIBLE and core_request.recursive and self.resolver:
            answer = await self.resolver.resolve(core_request, with_trace=rest.parse_flag(query, "trace", False))
            # a walked answer may be reused only as long as the resolver's cache would keep it
            expires = self.resolver.cache.expiry_of(answer, self.clock())
            cacheable = cacheable and expires is not None
        status = http_status(answer.code, is_read=True)
        body = codec.encode_response(answer, media, pretty=rest.parse_flag(query, "pretty", False))
        if cacheable and answer.code in (ResponseCode.SUCCESS, ResponseCode.HANDLE_NOT_FOUND):
            self._remember(memo, handle.key, status, body, int(answer.code), expires)
        return web.Response(status=status, body=body, content_type=media)

    async def put_handle(self, request: web.Request) -> web.StreamResponse:
        handle = self._handle_in_path(request)
        body = await self._read_body(request)
        query = request.rel_url.query
        core_request = rest.put_request(handle, query, query.getall("index", []), body,
                                        media_of(request.headers.get("Content-Type")))
        return self._answer(request, await self._with_identity(request, core_request))

    async def delete_handle(self, request: web.Request) -> web.StreamResponse:
        handle = self._handle_in_path(request)
        core_request = rest.delete_request(handle, request.rel_url.query.getall("index", []))
        return self._answer(request, await self._with_identity(request, core_request))

    async def list_handles(self, request: web.Request) -> web.StreamResponse:
        core_request = rest.list_request(request.rel_url.query)
        return self._answer(request, await self._with_identity(request, core_request))

    async def list_prefixes(self, request: web.Request) -> web.StreamResponse:
        return self._answer(request, Request(OpCode.LIST_HOMED_NAS))

    async def reverse_lookup(self, request: web.Request) -> web.StreamResponse:
        """`GET /hrls/handles?URL=*example*` as pyhandle's searcher calls it: a JSON list of matching handles."""
        query = request.rel_url.query
        limit = rest.parse_int(query.get("limit", "1000"), "limit", minimum=1, maximum=100_000)
        criteria = [(k, v) for k, v in query.items() if k not in ("limit", "prefix")]
        found = reverse_lookup(self.service.store.records(), criteria, limit)
        prefix = query.get("prefix")
        if prefix:
            found = [h for h in found if h.split("/", 1)[0].upper() == prefix.upper()]
        return web.json_response(found)

    async def replicate(self, request: web.Request) -> web.StreamResponse:
        """A change a peer primary committed (authenticated as one of this node's server admins)."""
        header = request.headers.get("Authorization")
        identity = await self.authenticator.authenticate(header) if header else None
        fields = FieldReader(codec.decode_body(await self._read_body(request),
                                               media_of(request.headers.get("Content-Type"))),
                             "replicated change", ProtocolError)
        handle = Handle.from_text(fields.text("handle"))
        raw_values = fields.optional("values")
        values = None if raw_values is None else tuple(mapping.values_from_body({"values": raw_values}))
        deleted_at = fields.integer("deletedAt", 0) if values is None else 0
        return self._reply(request, self.service.apply_replicated(handle, values, deleted_at, identity))

    def _answer(self, request: web.Request, core_request: Request) -> web.Response:
        answer = self.service.handle(core_request, self.clock())
        if answer.ok and self.replicator is not None and core_request.handle is not None \
                and core_request.op in WRITE_OPS:
            changed = Handle.from_text(answer.handle) if answer.handle else core_request.handle
            self.replicator.changed(changed, deleted=core_request.op == OpCode.DELETE_HANDLE)
        return self._reply(request, answer, is_read=core_request.op in (OpCode.LIST_HANDLES, OpCode.LIST_HOMED_NAS))

    def _reply(self, request: web.Request, answer: Response, *, is_read: bool = False) -> web.Response:
        media = media_of(request.headers.get("Accept"))
        status = http_status(answer.code, is_read=is_read, created=answer.created)
        pretty = request.rel_url.query.get("pretty", "") in ("true", "1")
        return web.Response(status=status, body=codec.encode_response(answer, media, pretty=pretty), content_type=media)

    async def _with_identity(self, request: web.Request, core_request: Request) -> Request:
        header = request.headers.get("Authorization")
        if header is None:
            return core_request
        from dataclasses import replace

        return replace(core_request, identity=await self.authenticator.authenticate(header))

    # -- simulator routes ---------------------------------------------------------------------------------------

    async def openapi(self, request: web.Request) -> web.StreamResponse:
        """The OpenAPI 3 description of these routes (net/openapi.py)."""
        return web.json_response(openapi_spec(self.limits, f"{request.scheme}://{request.host}"))

    async def health(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({"status": "ok", "node": self.service.config.node_id})

    async def fault_state(self, request: web.Request) -> web.StreamResponse:
        return await fault_state(self.faults)

    async def fault_action(self, request: web.Request) -> web.StreamResponse:
        return await fault_action(self.faults, request)

    async def other_sim_route(self, request: web.Request) -> web.StreamResponse:
        return await other_sim_route(self.faults, request)

    async def stats(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self.stats_snapshot())

    def request_counts(self) -> dict[str, dict[str, int]]:
        """Answers since start by operation name and response code: the service's, the encoded-answer cache's and
        the ones refused at the HTTP edge."""
        by_op: dict[str, dict[str, int]] = {}
        counts = Counter(self.service.counts)
        for code, count in self.fast_answers.items():
            counts[(int(OpCode.RESOLUTION), code)] += count
        for (op, code), count in sorted(counts.items()):
            by_op.setdefault(_OP_NAMES.get(op) or str(op), {})[str(code)] = count
        for (op_name, code), count in sorted(self.edge_errors.items()):
            codes = by_op.setdefault(op_name, {})
            codes[str(code)] = codes.get(str(code), 0) + count
        return by_op

    def end_setup(self) -> None:
        """The topology is ready: keep what the node answered while it was set up apart (`setup_requests`), so its
        requests, registrations and latencies count what users and benchmarks did, not the delegations."""
        self.setup_requests = self.request_counts()
        self.service.counts.clear()
        self.fast_answers.clear()
        self.edge_errors.clear()
        for histogram in self.latency.values():
            histogram.reset()

    def stats_snapshot(self) -> dict[str, Any]:
        by_op = self.request_counts()
        return {
            "node": self.service.config.node_id,
            **self.meta,
            "uptime_s": round(self.clock() - self.started_at, 3),
            "requests": by_op,
            "requests_total": sum(n for codes in by_op.values() for n in codes.values()),
            "in_flight": self.in_flight,
            "rejected_busy": self.rejected_busy,
            "latency": {op: h.snapshot() for op, h in self.latency.items() if h.count},
            "reports_received": self.reports.received,
            "setup_requests": self.setup_requests,
            "store_handles": len(self.service.store),
            "homed_prefixes": [p.text for p in self.service.homed_prefixes],
            "answer_cache_entries": len(self._answers),
            "auth": self.authenticator.snapshot(),
            **({"resolver_cache": self.resolver.snapshot()} if self.resolver is not None else {}),
            **({"replication": self.replicator.snapshot()} if self.replicator is not None else {}),
        }

    async def receive_report(self, request: web.Request) -> web.StreamResponse:
        """`PUT /api/reports/{prefix}`: a child node's operating report (authenticated as the child's owner)."""
        header = request.headers.get("Authorization")
        identity = await self.authenticator.authenticate(header) if header else None
        body = codec.decode_body(await self._read_body(request), media_of(request.headers.get("Content-Type")))
        return self._reply(request, reporting.accept(self, identity, request.match_info["prefix"], body))

    async def national_picture(self, request: web.Request) -> web.StreamResponse:
        """`GET /api/reports`: what this node knows of the nodes below it (the national picture at a root)."""
        return web.json_response(reporting.picture(self))

    async def metrics(self, request: web.Request) -> web.StreamResponse:
        """`GET /metrics`: this node's statistics in the Prometheus text format."""
        from .metrics import exposition

        body, content_type = exposition([self])
        return web.Response(body=body, headers={"Content-Type": content_type})

    # -- errors and caches --------------------------------------------------------------------------------------

    @web.middleware
    async def _errors_as_protocol_answers(self, request: web.Request,
                                          handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
                                          ) -> web.StreamResponse:
        """Every failure is a Handle protocol answer with the right code and status, never an HTML error page.

        It also bounds the node's work: beyond `max_in_flight` requests (or a client's rate) the answer is code 3
        (server too busy, HTTP 503) at once, which clients and resolvers take as 'try another server'."""
        # an injected fault holds the request first: held requests are not the node's work, and a paused node must
        # keep silent rather than start answering 503
        faults = self.faults
        if faults is not None and faults.active:  # a pause, slow or partition is in effect somewhere
            await faults.admit(self.service.config.node_id, request)
        if self.in_flight >= self.max_in_flight:
            self.rejected_busy += 1
            media = media_of(request.headers.get("Accept"))
            return web.Response(status=503, body=self._busy_bodies[media], content_type=media)
        if self._rate_limiter is not None and not self._rate_limiter.admit(request.remote or "", self.clock()):
            self.rejected_busy += 1
            return self._http_error(request, 503, ResponseCode.SERVER_TOO_BUSY,
                                    f"server too busy: more than {self.limits.rate_per_client:g} requests/s from "
                                    f"{request.remote} (limit rate_per_client, burst {self.limits.rate_burst})")
        self.in_flight += 1
        started = perf_counter()
        try:
            return await handler(request)
        except HandleError as exc:
            self._count_edge_error(request, int(exc.response_code))
            answer = error_response(exc.response_code, exc.message, exc.handle or _path_handle(request))
            return self._reply(request, answer)
        except web.HTTPRequestEntityTooLarge:
            self._count_edge_error(request, int(ResponseCode.PROTOCOL_ERROR))
            return self._http_error(request, 413, ResponseCode.PROTOCOL_ERROR,
                                    f"request body larger than {self.limits.max_body_bytes} bytes "
                                    "(limit max_body_bytes); the request changed nothing")
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            code = ResponseCode.PROTOCOL_ERROR if exc.status < 500 else ResponseCode.ERROR
            self._count_edge_error(request, int(code))
            return self._http_error(request, exc.status, code, f"{exc.reason}: {request.method} {request.path}")
        except BodyTimeout as exc:
            self._count_edge_error(request, int(ResponseCode.PROTOCOL_ERROR))
            refusal = self._http_error(request, 408, ResponseCode.PROTOCOL_ERROR, str(exc))
            # answer, then close at once: aiohttp would otherwise linger up to 10 s reading the rest of the body
            await refusal.prepare(request)
            await refusal.write_eof()
            if request.protocol is not None:
                request.protocol.force_close()
            return refusal
        except ConnectionResetError:  # the client hung up mid-request (Ctrl-C, its timeout): nobody to answer
            return web.Response(status=400, text="connection lost before the request arrived whole")
        except Exception:  # the boundary: a bug must not take the node down or leak a stack trace
            log.exception("unexpected error on %s %s", request.method, request.path)
            self._count_edge_error(request, int(ResponseCode.ERROR))
            return self._http_error(request, 500, ResponseCode.ERROR, "internal error; the request changed nothing")
        finally:
            self.in_flight -= 1
            timed = self._timed_routes.get(request.match_info.route)
            if timed is not None:
                timed.record(perf_counter() - started)

    @property
    def answer_cache_size(self) -> int:
        return len(self._answers)

    def _count_edge_error(self, request: web.Request, code: int) -> None:
        route = request.match_info.route
        name = TIMED_ROUTES.get(getattr(route.handler, "__name__", ""), "other")
        self.edge_errors[(name, code)] += 1

    async def _read_body(self, request: web.Request) -> bytes:
        """The request body, or BodyTimeout when it does not arrive within `body_timeout_s` (slow or cut off)."""
        try:
            return await asyncio.wait_for(request.read(), self.limits.body_timeout_s)
        except TimeoutError:
            raise BodyTimeout(f"the request body did not arrive within {self.limits.body_timeout_s:g} s "
                              "(limit body_timeout_s); the request changed nothing") from None

    def _handle_in_path(self, request: web.Request) -> Handle:
        return rest.handle_from_raw_path(request.rel_url.raw_path,
                                         max_bytes=self.service.config.limits.max_handle_bytes)

    def _http_error(self, request: web.Request, status: int, code: int, message: str) -> web.Response:
        media = media_of(request.headers.get("Accept"))
        body = codec.encode_response(error_response(code, message, _path_handle(request)), media)
        return web.Response(status=status, body=body, content_type=media)

    def _remember(self, memo: tuple[str, str], handle_key: str, status: int, body: bytes, code: int,
                  expires: float | None = None) -> None:
        if len(self._answers) >= ANSWER_CACHE_LIMIT:  # (0 disables the cache)
            self._answers.clear()
            self._answer_keys.clear()
        self._answers[memo] = (status, body, code, expires)
        known = self._answer_keys.get(handle_key, ())
        if memo not in known:
            self._answer_keys[handle_key] = (*known, memo)

    def _forget_answers(self, key: str) -> None:
        if not key or key.startswith("0.NA/"):
            self._answers.clear()  # prefix records and homing steer referrals for many handles
            self._answer_keys.clear()
            return
        for memo in self._answer_keys.pop(key, ()):
            self._answers.pop(memo, None)


class BodyTimeout(Exception):
    """A request body that did not arrive in time."""


def _path_handle(request: web.Request) -> str:
    """The handle an error reply names: the one in the path of a handle route, as far as it can be read."""
    matched = request.match_info.get("handle", "") if request.match_info else ""
    if not matched:
        return ""
    try:
        return rest.handle_from_raw_path(request.rel_url.raw_path).text
    except (HandleError, ProtocolError):
        return matched
