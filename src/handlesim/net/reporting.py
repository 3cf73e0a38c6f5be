"""Upward operating reports over the nodes' own API: enterprises to their secondary, secondaries to the roots.

`PUT /api/reports/{prefix}` (msgpack or JSON, HTTP Basic as the reporting prefix's owner `300:0.NA/<prefix>`)
carries `{"report": <NodeReport>, "children": [<NodeReport>, ...]}`; a secondary's `children` are the latest reports
of its enterprises, so the roots see every enterprise. `GET /api/reports` answers the receiving node's picture.
The aggregation is pure (core/reports.py); this module moves the reports (`ReportSender`), checks who sent them
and serves both routes (`ReportDesk`). A node's own report is built from its NodeStats (net/stats.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

from aiohttp import web

from ..core.codes import ResponseCode
from ..core.errors import AuthenticationNeeded, ProtocolError
from ..core.handle import NA_PREFIX, Prefix
from ..core.messages import Response
from ..core.reports import MAX_CHILDREN, NodeReport, ReportBook, check_forwarded, check_reporter, report_from_data
from ..core.service import HandleService
from ..core.values import PREFIX_SITE_TYPES, SITE_TYPES, ValueReference
from ..wire import codec
from .client import basic_authorization
from .credentials import Authenticator
from .gate import read_body
from .keepalive import KeepAlivePool, build_request
from .routes import Route, answer_reply, media_of
from .stats import NodeStats
from .transport import ConnectionBroken

log = logging.getLogger(__name__)

REPORT_ROUTE = "/api/reports/{prefix}"
REPORTS_ROUTE = "/api/reports"
REPORT_TIMEOUT_S = 2.0
CONCURRENT_REPORTS = 32
LEAF_SHARE = 0.8
"""Share of a paced round's interval over which the enterprises' reports spread (the secondaries' get the rest)."""
PACING_TICK_S = 0.02
"""A paced round sends a slice of its reports every tick. A report costs its sender and receiver ~0.3 ms (the first
round ~0.8 ms: each secret is verified once), all on the nodes' shared loop; slices of a few reports keep that
under a millisecond or two at a time, where 0.1 s slices held the loop ~4-9 ms and showed in every p99."""


class ReportingNode(Protocol):
    """What the report sender needs of a node (net/server.py's NodeServer)."""

    meta: dict[str, Any]
    reports: ReportBook
    """The latest reports of the nodes below (a secondary forwards its enterprises')."""
    report_interval: float
    """Seconds between the node's reports (set by `ReportSender.add`)."""

    def stats(self) -> NodeStats: ...


def own_report(stats: NodeStats) -> NodeReport:
    """A node's statistics, as it reports them upward."""
    meta = stats.meta
    # a resolver homes no prefix: it reports as the root operator's node, under 0.NA as the roots do
    return NodeReport(
        node=stats.node, role=str(meta.get("role", "")), prefix=str(meta.get("prefix") or NA_PREFIX.text),
        industry=str(meta.get("industry") or ""), sent_at=stats.at, interval_s=stats.report_interval_s,
        requests=stats.requests, store_handles=stats.store_handles, uptime_s=round(stats.uptime_s, 3),
        in_flight=stats.in_flight, rejected_busy=stats.rejected_busy, latency=stats.latency_json(),
        replication=stats.replication or {})


def accept(service: HandleService, reports: ReportBook, now: float, identity: ValueReference | None,
           prefix_text: str, body: Any) -> Response:
    """Check and keep a child's report (and, from a secondary, its enterprises' latest reports)."""
    if identity is None:
        raise AuthenticationNeeded("a report must be authenticated as the reporting prefix's owner (HTTP Basic)")
    if not isinstance(body, Mapping):
        raise ProtocolError("a report body must be a map with 'report' and optional 'children'")
    report = report_from_data(body.get("report"))
    if report.prefix != prefix_text:
        raise ProtocolError(f"the route names {prefix_text} but the report is about {report.prefix}")
    check_reporter(identity.handle, report, _delegated_here(service, report.prefix), service.homed_prefixes)
    children = body.get("children", [])
    if not isinstance(children, list) or len(children) > MAX_CHILDREN:
        raise ProtocolError(f"report.children must be a list of at most {MAX_CHILDREN} reports")
    forwarded = [report_from_data(child) for child in children]
    for child in forwarded:
        check_forwarded(report, child)
    reports.receive(report, now, service.config.node_id)
    for child in forwarded:
        reports.receive(child, now, report.node)
    return Response(ResponseCode.SUCCESS, handle=Prefix.from_text(report.prefix).prefix_handle().text,
                    message=f"report of {report.node} accepted with {len(forwarded)} forwarded")


def _delegated_here(service: HandleService, prefix_text: str) -> bool:
    """This node holds the prefix handle with site values: it delegated the prefix (the reporter is its child)."""
    record = service.store.get(Prefix.from_text(prefix_text).prefix_handle().key)
    return record is not None and any(v.type_key in SITE_TYPES + PREFIX_SITE_TYPES for v in record.values)


class ReportDesk:
    """A node's report routes: `PUT /api/reports/{prefix}` (a child's report) and `GET /api/reports`."""

    def __init__(self, service: HandleService, reports: ReportBook, authenticator: Authenticator, *,
                 clock: Callable[[], float], stats: Callable[[], NodeStats], body_timeout_s: float) -> None:
        self.service = service
        self.reports = reports
        self.authenticator = authenticator
        self.clock = clock
        self.stats = stats
        """The node's own figures (its row in the picture)."""
        self.body_timeout_s = body_timeout_s

    def routes(self) -> list[Route]:
        return [Route("PUT", REPORT_ROUTE, self.receive_report, operation="report"),
                Route("GET", REPORTS_ROUTE, self.national_picture)]

    async def receive_report(self, request: web.Request) -> web.StreamResponse:
        """A child node's operating report (authenticated as the child's owner)."""
        header = request.headers.get("Authorization")
        identity = await self.authenticator.authenticate(header) if header else None
        body = codec.decode_body(await read_body(request, self.body_timeout_s),
                                 media_of(request.headers.get("Content-Type")))
        answer = accept(self.service, self.reports, self.clock(), identity, request.match_info["prefix"], body)
        return answer_reply(request, answer)

    async def national_picture(self, request: web.Request) -> web.StreamResponse:
        """What this node knows of the nodes below it (the national picture at a root)."""
        return web.json_response(self.picture())

    def picture(self) -> dict[str, Any]:
        stats = self.stats()
        return {"receiver": stats.node, "role": stats.meta.get("role", ""),
                **self.reports.picture(stats.at, own=own_report(stats))}


class _Refused(Exception):
    """The parent answered the report with an error (wrong credentials, not its child, ...)."""


@dataclass
class _Reporter:
    server: ReportingNode
    targets: list[tuple[str, int]]
    """(host, port) of the parent tier's nodes (a secondary; or every root)."""
    authorization: str
    forwards_children: bool
    sent: int = 0
    failures: int = 0
    last_error: str = ""


class ReportSender:
    """Sends the reports of every reporting node this process hosts, every `interval` seconds.

    Each round sends the enterprises' reports first, so the secondaries forward this round's figures. A periodic
    round is paced: the enterprises' reports spread over most of the interval and the secondaries' over the rest,
    so a thousand reports never arrive as one burst in the middle of a benchmark. Reports travel over a
    keep-alive pool (one idle connection per parent, no reconnects)."""

    def __init__(self, interval: float, *, timeout: float = REPORT_TIMEOUT_S,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.interval = interval
        self.timeout = timeout
        self.ssl_context = ssl_context
        """The topology's pinned CA when its nodes serve HTTPS (`up --tls`)."""
        self.reporters: list[_Reporter] = []
        self.rounds = 0
        self._task: asyncio.Task[None] | None = None
        self._pool: KeepAlivePool | None = None

    def add(self, server: ReportingNode, targets: list[str], identity: ValueReference, secret: str) -> None:
        """`targets`: base URLs (http://host:port) of the nodes `server` reports to."""
        server.report_interval = self.interval
        addresses = [(url.hostname or "127.0.0.1", url.port or 80) for url in map(urlsplit, targets)]
        self.reporters.append(_Reporter(server, addresses, basic_authorization(identity, secret),
                                        forwards_children=server.meta.get("role") == "secondary"))
        self.reporters.sort(key=lambda r: r.forwards_children)

    def start(self) -> None:
        if self._task is None and self.interval > 0 and self.reporters:
            self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    async def _run(self) -> None:
        await asyncio.sleep(self.interval)  # the first round one interval after start: there are figures by then
        while True:
            started = time.monotonic()
            try:
                await self.send_round(paced=True)
            except Exception:  # a bug in one round must not end reporting for the process
                log.exception("report round failed")
            # an overloaded process stretches its rounds; it still rests half an interval, so reporting backs off
            await asyncio.sleep(max(self.interval - (time.monotonic() - started), self.interval / 2))

    async def send_round(self, *, paced: bool = False) -> int:
        """Send every node's report once (enterprises, then secondaries); returns how many were delivered.
        `paced`: spread the sends over the interval (LEAF_SHARE of it for the enterprises) instead of at once."""
        if self._pool is None:
            self._pool = KeepAlivePool(timeout=self.timeout, max_idle=1024, ssl_context=self.ssl_context)
        semaphore = asyncio.Semaphore(CONCURRENT_REPORTS)
        delivered = 0
        for forwarding, share in ((False, LEAF_SHARE), (True, 1.0 - LEAF_SHARE)):
            tier = [r for r in self.reporters if r.forwards_children == forwarding]
            span = self.interval * share if paced else 0.0
            ticks = max(int(span / PACING_TICK_S), 1)
            size = -(-len(tier) // ticks)  # ceiling: every reporter within the span
            for tick, first in enumerate(range(0, len(tier), size or 1)):
                tick_started = time.monotonic()
                results = await asyncio.gather(*(self._send(r, semaphore) for r in tier[first:first + size]))
                delivered += sum(results)
                if paced and tick < ticks - 1:
                    await asyncio.sleep(max(PACING_TICK_S - (time.monotonic() - tick_started), 0.0))
        self.rounds += 1
        return delivered

    async def _send(self, reporter: _Reporter, semaphore: asyncio.Semaphore) -> int:
        server = reporter.server
        report = own_report(server.stats())
        body: dict[str, Any] = {"report": report.to_data()}
        if reporter.forwards_children:
            body["children"] = [r.to_data() for r in server.reports.latest("enterprise")]
        payload = codec.encode_body(body, codec.MSGPACK)
        headers = {"Content-Type": codec.MSGPACK, "Authorization": reporter.authorization}
        path = REPORT_ROUTE.replace("{prefix}", report.prefix)
        delivered = 0
        async with semaphore:
            for host, port in reporter.targets:
                try:
                    assert self._pool is not None
                    status, answer = await self._pool.request(
                        host, port, build_request("PUT", host, port, path, body=payload, headers=headers))
                    if status != 200:
                        raise _Refused(f"HTTP {status}: {answer[:200]!r}")
                    delivered += 1
                    reporter.sent += 1
                except (ConnectionBroken, OSError, TimeoutError, _Refused) as exc:
                    reporter.failures += 1
                    reporter.last_error = f"{host}:{port}: {exc or type(exc).__name__}"
        return delivered

    def snapshot(self) -> dict[str, Any]:
        return {"interval_s": self.interval, "rounds": self.rounds,
                "reporters": len(self.reporters), "sent": sum(r.sent for r in self.reporters),
                "failures": sum(r.failures for r in self.reporters),
                "last_errors": [r.last_error for r in self.reporters if r.last_error][:10]}
