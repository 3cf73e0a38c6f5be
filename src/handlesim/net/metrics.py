"""Prometheus exposition of the nodes a process hosts: a custom collector that reads their NodeStats at scrape time.

Nothing here runs per request: the nodes keep plain counters and bucket lists, and a scrape turns each node's
NodeStats (net/stats.py) into metric families labelled with node id, role, industry and prefix. A process serves
them on one loopback port (`MetricsServer`), and every node also answers `GET /metrics` with its own
(`metrics_route`).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Iterable, Iterator

import msgspec
from aiohttp import web
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import CollectorRegistry

from ..core.latency import cumulative
from .apps import AppServer
from .routes import Route
from .stats import HasStats, NodeStats

NODE_LABELS = ["node", "role", "industry", "prefix"]
NODES_PER_SLICE = 100
"""Nodes read per event-loop turn during a scrape (a thousand-node scrape must not stall every node at once)."""
NodeSource = Callable[[], Iterable[HasStats]]
"""The nodes a process hosts now (each read once per scrape)."""


def _labels(stats: NodeStats) -> list[str]:
    meta = stats.meta
    return [stats.node, str(meta.get("role") or ""), str(meta.get("industry") or ""), str(meta.get("prefix") or "")]


class NodeCollector:
    """Collects the statistics of the nodes `source()` returns (the nodes this process hosts)."""

    def __init__(self, source: NodeSource) -> None:
        self.source = source

    def collect(self) -> Iterator[Metric]:
        families = _Families()
        for node in self.source():
            families.add_node(node.stats())
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
        self.native_messages = CounterMetricFamily("handlesim_native_messages", "Native Handle protocol messages "
                                                   "received, by transport.", labels=[*labels, "transport"])
        self.native_events = CounterMetricFamily("handlesim_native_events", "Native interface events: protocol "
                                                 "errors, dropped input, challenges, failed authentications, "
                                                 "held and refused requests.", labels=[*labels, "event"])

    def add_node(self, stats: NodeStats) -> None:
        labels = _labels(stats)
        for op, codes in stats.requests.items():
            for code, count in codes.items():
                self.requests.add_metric([*labels, op, code], count)
        for op, times in stats.latency.items():  # idle nodes add no histogram series (a plan has a thousand)
            buckets = [("+Inf" if bound == float("inf") else repr(bound), float(n))
                       for bound, n in cumulative(times.counts)]
            self.duration.add_metric([*labels, op], buckets, times.total_seconds)
        self.in_flight.add_metric(labels, stats.in_flight)
        self.rejected.add_metric(labels, stats.rejected_busy)
        self.handles.add_metric(labels, stats.store_handles)
        self.prefixes.add_metric(labels, len(stats.homed_prefixes))
        self.answers.add_metric(labels, stats.answer_cache_entries)
        self.uptime.add_metric(labels, stats.uptime_s)
        cache = stats.resolver_cache
        if cache is not None and (cache["hits"] or cache["misses"] or stats.meta.get("role") == "resolver"):
            for event, key in (("hit", "hits"), ("miss", "misses"), ("eviction", "evictions")):
                self.cache_events.add_metric([*labels, event], cache[key])
            self.cache_size.add_metric(labels, cache["size"])
        for url, peer in (stats.replication or {}).items():  # from the durable replication log
            self.repl_pending.add_metric([*labels, url], peer["pending"])
            self.repl_lag.add_metric([*labels, url], peer["lag_s"])
            self.repl_failures.add_metric([*labels, url], peer["failures"])
        if stats.reports_received:
            self.reports.add_metric(labels, stats.reports_received)
            self._add_national(stats)
        native = stats.native
        if native is not None and (native["udp_messages"] or native["tcp_messages"]):  # idle interfaces add nothing
            self.native_messages.add_metric([*labels, "udp"], native["udp_messages"])
            self.native_messages.add_metric([*labels, "tcp"], native["tcp_messages"])
            for event in ("protocol_errors", "dropped", "challenges", "authentication_failures", "held",
                          "rejected_busy"):
                self.native_events.add_metric([*labels, event], native[event])

    def _add_national(self, stats: NodeStats) -> None:
        node = stats.node
        sums: dict[tuple[str, str, str], float] = {}
        now = stats.at
        stale = 0
        reports = stats.reported
        for report in reports:
            key = (report.role, report.industry)
            for figure, value in (("requests", report.total_requests), ("resolutions", report.resolutions),
                                  ("registrations", report.registrations), ("errors", report.errors),
                                  ("store_handles", report.store_handles), ("nodes", 1)):
                sums[(*key, figure)] = sums.get((*key, figure), 0.0) + value
            if now - report.sent_at > stats.stale_after_intervals * max(report.interval_s, 0.001):
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


def exposition(nodes: Iterable[HasStats]) -> tuple[bytes, str]:
    """The text format body and its content type for `nodes` (a node's own `/metrics`)."""
    listed = list(nodes)
    return generate_latest(registry_for(lambda: listed, with_process=False)), CONTENT_TYPE_PLAIN_0_0_4


def metrics_route(node: HasStats) -> Route:
    """`GET /metrics` of one node: its own statistics in the Prometheus text format."""

    async def metrics(request: web.Request) -> web.StreamResponse:
        body, content_type = exposition([node])
        return web.Response(body=body, headers={"Content-Type": content_type})

    return Route("GET", "/metrics", metrics)


class _Collected:
    """Metric families already read from the nodes (formatting them then needs no access to the nodes)."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


class MetricsServer(AppServer):
    """`GET /metrics` for every node of this process on one loopback port (what Prometheus scrapes), and
    `GET /timers`: every node's server-side timers in one JSON answer, with the process's CPU seconds so far (for
    the benchmark: what the topology spent per lookup)."""

    def __init__(self, source: NodeSource) -> None:
        super().__init__(web.Application())
        self.source = source
        self.app.add_routes([web.get("/metrics", self._metrics), web.get("/timers", self._timers)])

    async def _metrics(self, request: web.Request) -> web.StreamResponse:
        """Read the nodes a hundred at a time, letting them serve in between; format the text in a thread."""
        families = _Families()
        for count, node in enumerate(self.source(), 1):
            families.add_node(node.stats())
            if count % NODES_PER_SLICE == 0:
                await asyncio.sleep(0)
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Collected(list(families.all())))
        ProcessCollector(registry=registry)
        body = await asyncio.to_thread(generate_latest, registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4})

    async def _timers(self, request: web.Request) -> web.StreamResponse:
        """Every node's timers (cheap ones: `stats.node_timers`), a hundred nodes at a time; encoded with msgspec (a
        thousand nodes' timers take the json module ~3 ms of the loop, msgspec a tenth of that)."""
        timers = []
        for count, node in enumerate(self.source(), 1):
            timers.append(node.timers())
            if count % NODES_PER_SLICE == 0:
                await asyncio.sleep(0)
        process = {"pid": os.getpid(), "cpu_seconds": time.process_time()}
        return web.Response(body=msgspec.json.encode({"nodes": timers, "process": process}),
                            content_type="application/json")
