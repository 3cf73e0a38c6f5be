"""The edge gate every request to a node crosses (an aiohttp middleware) before any route sees it.

In order: an injected fault may hold the request (pause, slow, partition); beyond `max_in_flight` requests at once,
or beyond a client's rate, the answer is code 3 (server too busy, HTTP 503) at once, which clients and resolvers
take as 'try another server'; otherwise the request counts as in flight while its route works, and its server-side
time goes to its route's operation. Every failure leaves as a Handle answer with the right code and status, never
an HTML page or a stack trace, and is counted by (operation, code).

The node's front door (net/frontdoor.py) answers plain warm GETs before aiohttp parses them, and refuses them
beyond `max_in_flight`; it admits by this gate's rules (`faults`, `in_flight`, `max_in_flight`, `rate_limiter`),
counts into its `rejected_busy` and `latency`, and sends its `busy_http`.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from time import perf_counter

from aiohttp import web

from ..core.codes import ResponseCode
from ..core.errors import HandleError, ServerTooBusy
from ..core.latency import LatencyHistogram
from ..core.messages import error_response
from ..wire import codec
from .faults import FaultController
from .limits import ClientRateLimiter, ServerLimits, keep_alive_answer
from .routes import Handler, answer_reply, media_of, path_handle, refusal
from .shaping import CLIENT_SOURCE

log = logging.getLogger(__name__)

OTHER_OPERATION = "other"
"""Where edge errors of routes without an operation (and of unmatched paths) are counted."""


class BodyTimeout(Exception):
    """A request body that did not arrive within `body_timeout_s` (answered 408, connection closed)."""


async def read_body(request: web.Request, timeout_s: float) -> bytes:
    """The request body, or BodyTimeout when it does not arrive within `timeout_s` (slow or cut off)."""
    try:
        return await asyncio.wait_for(request.read(), timeout_s)
    except TimeoutError:
        raise BodyTimeout(f"the request body did not arrive within {timeout_s:g} s "
                          "(limit body_timeout_s); the request changed nothing") from None


class EdgeGate:
    """Admission (fault hold, overload, per-client rate), the in-flight count, per-operation timing and the mapping
    of every failure to a protocol answer, for one node."""

    def __init__(self, node_id: str, limits: ServerLimits, clock: Callable[[], float]) -> None:
        self.node_id = node_id
        self.limits = limits
        self.clock = clock
        self.faults: FaultController | None = None
        """The topology's fault injection (None: off)."""
        self.in_flight = 0
        """Requests being worked on now (handler started, answer not yet returned)."""
        self.max_in_flight = limits.max_in_flight
        self.rejected_busy = 0
        """Requests answered 503 / code 3 because of `limits` (in flight, per-client rate, connections)."""
        busy = error_response(ResponseCode.SERVER_TOO_BUSY,
                              f"server too busy: {self.max_in_flight} requests in progress (limit max_in_flight); "
                              "retry later or at another server of the site")
        self._busy_bodies = {media: codec.encode_response(busy, media) for media in (codec.JSON, codec.MSGPACK)}
        """The answer beyond max_in_flight, encoded once: shedding load must cost as little as possible."""
        self.busy_http = {wants_msgpack: keep_alive_answer(503, "Service Unavailable", self._busy_bodies[media], media)
                          for wants_msgpack, media in ((False, codec.JSON), (True, codec.MSGPACK))}
        """The same as complete HTTP answers, by 'the client accepts msgpack' (for the front door)."""
        self.rate_limiter = ClientRateLimiter(limits.rate_per_client, limits.rate_burst) \
            if limits.rate_per_client > 0 else None
        self.latency: dict[str, LatencyHistogram] = {}
        """Server-side time by operation: from the gate's entry to the answer being built."""
        self.edge_errors: Counter[tuple[str, int]] = Counter()
        """Requests refused before reaching the service (bad handle, failed authentication, ...), by (operation,
        response code)."""
        self._timers: dict[web.AbstractRoute, LatencyHistogram] = {}
        self._operations: dict[web.AbstractRoute, str] = {}

    def watch(self, route: web.AbstractRoute, operation: str | None) -> None:
        """Time `route` and count its edge errors under `operation` (None: untimed, errors under `other`)."""
        if operation is not None:
            self._operations[route] = operation
            self._timers[route] = self.latency.setdefault(operation, LatencyHistogram())

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        # an injected fault holds the request first: held requests are not the node's work, and a paused node must
        # keep silent rather than start answering 503
        faults = self.faults
        if faults is not None and faults.active:  # a pause, slow or partition is in effect somewhere
            await faults.admit(self.node_id, request)
        if self.in_flight >= self.max_in_flight:
            self.rejected_busy += 1
            media = media_of(request.headers.get("Accept"))
            return web.Response(status=503, body=self._busy_bodies[media], content_type=media)
        if self.rate_limiter is not None and not self.rate_limiter.admit(request.remote or "", self.clock()):
            self.rejected_busy += 1
            return refusal(request, 503, ResponseCode.SERVER_TOO_BUSY,
                           f"server too busy: more than {self.limits.rate_per_client:g} requests/s from "
                           f"{request.remote} (limit rate_per_client, burst {self.limits.rate_burst})")
        self.in_flight += 1
        started = perf_counter()
        try:
            return await handler(request)
        except Exception as exc:  # the boundary: a bug must not take the node down or leak a stack trace
            return await self._as_protocol_answer(request, exc)
        finally:
            self.in_flight -= 1
            timer = self._timers.get(request.match_info.route)
            if timer is not None:
                timer.record(perf_counter() - started)

    async def _as_protocol_answer(self, request: web.Request, exc: Exception) -> web.StreamResponse:
        """The Handle answer for a failure, counted by (operation, code); redirects (HTTP < 400) pass through."""
        if isinstance(exc, HandleError):
            self._count_edge_error(request, int(exc.response_code))
            return answer_reply(request, error_response(exc.response_code, exc.message,
                                                        exc.handle or path_handle(request)))
        if isinstance(exc, web.HTTPRequestEntityTooLarge):
            self._count_edge_error(request, int(ResponseCode.PROTOCOL_ERROR))
            return refusal(request, 413, ResponseCode.PROTOCOL_ERROR,
                           f"request body larger than {self.limits.max_body_bytes} bytes "
                           "(limit max_body_bytes); the request changed nothing")
        if isinstance(exc, web.HTTPException):
            if exc.status < 400:
                raise exc
            code = ResponseCode.PROTOCOL_ERROR if exc.status < 500 else ResponseCode.ERROR
            self._count_edge_error(request, int(code))
            return refusal(request, exc.status, code, f"{exc.reason}: {request.method} {request.path}")
        if isinstance(exc, BodyTimeout):
            self._count_edge_error(request, int(ResponseCode.PROTOCOL_ERROR))
            answer = refusal(request, 408, ResponseCode.PROTOCOL_ERROR, str(exc))
            # answer, then close at once: aiohttp would otherwise linger up to 10 s reading the rest of the body
            await answer.prepare(request)
            await answer.write_eof()
            if request.protocol is not None:
                request.protocol.force_close()
            return answer
        if isinstance(exc, ConnectionResetError):  # the client hung up mid-request (Ctrl-C, its timeout)
            return web.Response(status=400, text="connection lost before the request arrived whole")  # nobody reads it
        log.error("unexpected error on %s %s", request.method, request.path, exc_info=exc)
        self._count_edge_error(request, int(ResponseCode.ERROR))
        return refusal(request, 500, ResponseCode.ERROR, "internal error; the request changed nothing")

    # -- the same edge for the native listener (net/native.py's NativeEdge) -------------------------------------------

    def native_hold(self) -> Awaitable[None] | None:
        """A fault holding this node's native requests. They carry no sender header, so they count as from
        `client` (nodes talk REST to each other; native senders are clients)."""
        faults = self.faults
        if faults is None or not faults.active or not faults.delays(self.node_id, CLIENT_SOURCE):
            return None
        return faults.hold(self.node_id, CLIENT_SOURCE)

    def native_refusal(self, peer: str, waiting: int) -> HandleError | None:
        """Code 3 beyond `max_in_flight` requests (REST in flight plus `waiting` native ones) or beyond the rate
        of `peer`, as for REST."""
        if self.in_flight + waiting >= self.max_in_flight:
            self.rejected_busy += 1
            return ServerTooBusy(f"server too busy: {self.max_in_flight} requests in progress (limit max_in_flight); "
                                 "retry later or at another server of the site")
        if self.rate_limiter is not None and not self.rate_limiter.admit(peer, self.clock()):
            self.rejected_busy += 1
            return ServerTooBusy(f"server too busy: more than {self.limits.rate_per_client:g} requests/s from {peer} "
                                 f"(limit rate_per_client, burst {self.limits.rate_burst})")
        return None

    def record(self, operation: str, seconds: float) -> None:
        """Server-side time of one native request (REST requests are timed by the middleware)."""
        timer = self.latency.get(operation)
        if timer is None:
            timer = self.latency[operation] = LatencyHistogram()
        timer.record(seconds)

    def _count_edge_error(self, request: web.Request, code: int) -> None:
        self.edge_errors[(self._operations.get(request.match_info.route, OTHER_OPERATION), code)] += 1
