"""Prometheus exposition of the nodes a process hosts: a custom collector that reads the NodeServers at scrape time.

Nothing here runs per request: the nodes keep plain counters and bucket lists, and a scrape turns them into metric
families labelled with node id, role, industry and prefix. A process serves them on one loopback port
(`MetricsServer`), and every node also answers `GET /metrics` with its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from aiohttp import web
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import CollectorRegistry

from ..core.latency import cumulative
from .apps import AppServer

if TYPE_CHECKING:
    from .server import NodeServer

NODE_LABELS = ["node", "role", "industry", "prefix"]
NODES_PER_SLICE = 100
"""Nodes read per event-loop turn during a scrape (a thousand-node scrape must not stall every node at once)."""
NodeSource = Callable[[], Iterable["NodeServer"]]


def _labels(server: NodeServer) -> list[str]:
    meta = server.meta
    return [server.service.config.node_id, str(meta.get("role") or ""), str(meta.get("industry") or ""),
            str(meta.get("prefix") or "")]


class NodeCollector:
    """Collects the statistics of the nodes `source()` returns (the nodes this process hosts)."""

    def __init__(self, source: NodeSource) -> None:
        self.source = source

    def collect(self) -> Iterator[Metric]:
        families = _Families()
        for server in self.source():
            families.add_node(server)
        yield from families.all()


class _Families:
    def __init__(self) -> None:
        labels = NODE_LABELS
        self.requests = CounterMetricFamily("handlesim_requests", "Answers since the node started, by operation "
                                            "and Handle response code.", labels=[*labels, "op", "code"])
        self.duration = HistogramMetricFamily("handlesim_request_duration_seconds", "Server-side time per request, "
                                              "by operation (HTTP edge to answer built).", labels=[*labels, "op"])
        self.in_flight = GaugeMetricFamily("handlesim_in_flight_requests", "Requests being served.", labels=labels)
        self.rejected = CounterMetricFamily("handlesim_rejected_busy", "Requests refused because the node was "
                                            "overloaded.", labels=labels)
        self.handles = GaugeMetricFamily("handlesim_store_handles", "Handle records in the node's store.",
                                         labels=labels)
        self.prefixes = GaugeMetricFamily("handlesim_homed_prefixes", "Prefixes the node homes.", labels=labels)
        self.answers = GaugeMetricFamily("handlesim_answer_cache_entries", "Encoded answers cached by the node.",
                                         labels=labels)
        self.uptime = GaugeMetricFamily("handlesim_uptime_seconds", "Seconds since the node started.", labels=labels)
        self.cache_events = CounterMetricFamily("handlesim_resolver_cache", "Resolution cache lookups and "
                                                "evictions (server-side walks).", labels=[*labels, "event"])
        self.cache_size = GaugeMetricFamily("handlesim_resolver_cache_entries", "Answers in the resolution cache.",
                                            labels=labels)
        self.repl_pending = GaugeMetricFamily("handlesim_replication_pending", "Changes not yet delivered to a "
                                              "replica.", labels=[*labels, "peer"])
        self.repl_lag = GaugeMetricFamily("handlesim_replication_lag_seconds", "Age of the oldest undelivered "
                                          "change to a replica.", labels=[*labels, "peer"])
        self.repl_failures = CounterMetricFamily("handlesim_replication_failures", "Failed pushes to a replica.",
                                                 labels=[*labels, "peer"])
        self.reports = CounterMetricFamily("handlesim_reports_received", "Operating reports accepted from nodes "
                                           "below (direct and forwarded).", labels=labels)
        self.national = GaugeMetricFamily("handlesim_reported", "What the nodes below reported (cumulative since "
                                          "each reporter started), summed by tier and industry.",
                                          labels=["node", "tier", "industry", "figure"])
        self.reporting = GaugeMetricFamily("handlesim_reporting_nodes", "Nodes below that reported, and those "
                                           "whose last report is stale.", labels=["node", "state"])

    def add_node(self, server: NodeServer) -> None:
        labels = _labels(server)
        for op, codes in server.request_counts().items():
            for code, count in codes.items():
                self.requests.add_metric([*labels, op, code], count)
        for op, histogram in server.latency.items():
            if histogram.count:  # idle nodes add no histogram series (a plan topology has a thousand of them)
                buckets = [("+Inf" if bound == float("inf") else repr(bound), float(n))
                           for bound, n in cumulative(histogram.counts)]
                self.duration.add_metric([*labels, op], buckets, histogram.total_seconds)
        self.in_flight.add_metric(labels, server.in_flight)
        self.rejected.add_metric(labels, server.rejected_busy)
        self.handles.add_metric(labels, len(server.service.store))
        self.prefixes.add_metric(labels, len(server.service.homed_prefixes))
        self.answers.add_metric(labels, server.answer_cache_size)
        self.uptime.add_metric(labels, server.clock() - server.started_at)
        if server.resolver is not None and (server.resolver.cache.hits or server.resolver.cache.misses
                                            or server.meta.get("role") == "resolver"):
            cache = server.resolver.cache
            for event, count in (("hit", cache.hits), ("miss", cache.misses), ("eviction", cache.evictions)):
                self.cache_events.add_metric([*labels, event], count)
            self.cache_size.add_metric(labels, len(cache))
        if server.replicator is not None:
            for url, peer in server.replicator.snapshot().items():  # from the durable replication log
                self.repl_pending.add_metric([*labels, url], peer["pending"])
                self.repl_lag.add_metric([*labels, url], peer["lag_s"])
                self.repl_failures.add_metric([*labels, url], peer["failures"])
        if server.reports.received:
            self.reports.add_metric(labels, server.reports.received)
            self._add_national(server)

    def _add_national(self, server: NodeServer) -> None:
        node = server.service.config.node_id
        sums: dict[tuple[str, str, str], float] = {}
        now = server.clock()
        stale = 0
        reports = server.reports.latest()
        for report in reports:
            key = (report.role, report.industry)
            for figure, value in (("requests", report.total_requests), ("resolutions", report.resolutions),
                                  ("registrations", report.registrations), ("errors", report.errors),
                                  ("store_handles", report.store_handles), ("nodes", 1)):
                sums[(*key, figure)] = sums.get((*key, figure), 0.0) + value
            if now - report.sent_at > server.reports.stale_after_intervals * max(report.interval_s, 0.001):
                stale += 1
        for (tier, industry, figure), total in sorted(sums.items()):
            self.national.add_metric([node, tier, industry, figure], total)
        self.reporting.add_metric([node, "reporting"], len(reports) - stale)
        self.reporting.add_metric([node, "stale"], stale)

    def all(self) -> Iterator[Metric]:
        for family in vars(self).values():
            if family.samples:
                yield family


def registry_for(source: NodeSource, *, with_process: bool = True) -> CollectorRegistry:
    """A registry over the nodes `source()` returns (plus the process's CPU and memory with `with_process`)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(NodeCollector(source))
    if with_process:
        ProcessCollector(registry=registry)
    return registry


def exposition(nodes: Iterable[NodeServer]) -> tuple[bytes, str]:
    """The text format body and its content type for `nodes` (a node's own `/metrics`)."""
    listed = list(nodes)
    return generate_latest(registry_for(lambda: listed, with_process=False)), CONTENT_TYPE_PLAIN_0_0_4


def timer_snapshot(server: NodeServer) -> dict[str, Any]:
    """A node's server-side timers and request total (what a benchmark compares before and after its window)."""
    return {"node": server.service.config.node_id, "role": server.meta.get("role", ""),
            "requests_total": sum(n for codes in server.request_counts().values() for n in codes.values()),
            "latency": {op: h.snapshot() for op, h in server.latency.items() if h.count}}


class _Collected:
    """Metric families already read from the nodes (formatting them then needs no access to the nodes)."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


class MetricsServer(AppServer):
    """`GET /metrics` for every node of this process on one loopback port (what Prometheus scrapes), and
    `GET /timers`: every node's server-side timers in one JSON answer (for the benchmark)."""

    def __init__(self, source: NodeSource) -> None:
        super().__init__(web.Application())
        self.source = source
        self.app.add_routes([web.get("/metrics", self._metrics), web.get("/timers", self._timers)])

    async def _metrics(self, request: web.Request) -> web.StreamResponse:
        """Read the nodes a hundred at a time, letting them serve in between; format the text in a thread."""
        families = _Families()
        for count, server in enumerate(self.source(), 1):
            families.add_node(server)
            if count % NODES_PER_SLICE == 0:
                await asyncio.sleep(0)
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Collected(list(families.all())))
        ProcessCollector(registry=registry)
        body = await asyncio.to_thread(generate_latest, registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4})

    async def _timers(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({"nodes": [timer_snapshot(server) for server in self.source()]})
