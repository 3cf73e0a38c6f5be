"""A node's statistics as one frozen value, taken in one place (`node_stats`) from the counters its parts keep.

The nodes count cheaply where the work happens (the service by operation and code, the answer cache its hits, the
edge gate its refusals, in-flight requests and timers); nothing is added up per request. `/_sim/stats`, a node's
`/metrics` and the process's metrics port (net/metrics.py), the upward reports (net/reporting.py) and the
benchmark's `/timers` all read a `NodeStats`, so they cannot disagree about what a figure means.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from ..core.codes import OpCode
from ..core.latency import snapshot_of
from ..core.reports import NodeReport, ReportBook
from ..core.service import HandleService
from .answers import AnswerCache
from .credentials import Authenticator
from .gate import EdgeGate
from .native import NativeListener
from .recursion import RecursiveResolver
from .replication import Replicator

_OP_NAMES = {int(op): op.name.lower() for op in OpCode}


@dataclass(frozen=True, slots=True)
class OperationTimes:
    """One operation's server-side time histogram (buckets of core.latency.BOUNDS) when the stats were taken."""

    counts: tuple[int, ...]
    total_seconds: float

    @property
    def count(self) -> int:
        return sum(self.counts)

    def to_json(self) -> dict[str, Any]:
        return snapshot_of(self.counts, self.total_seconds)


@dataclass(frozen=True, slots=True)
class NodeStats:
    """One node's figures at one instant (`at`, the node's clock)."""

    node: str
    meta: Mapping[str, Any]
    """What the topology says of the node: role, prefix, industry, region (site and server when partitioned)."""
    at: float
    started_at: float
    requests: Mapping[str, Mapping[str, int]]
    """Answers since start by operation name and response code (as text), over REST and the native protocol: the
    service's, the encoded-answer caches' and the ones refused or made at the edges (HTTP and native)."""
    in_flight: int
    rejected_busy: int
    latency: Mapping[str, OperationTimes]
    """Server-side time by operation (operations with at least one request only)."""
    reports_received: int
    store_handles: int
    homed_prefixes: tuple[str, ...]
    answer_cache_entries: int
    auth: Mapping[str, int]
    resolver_cache: Mapping[str, Any] | None
    """The node's recursive resolver: cache size, hits, misses, evictions, walks (None: it has none)."""
    replication: Mapping[str, Mapping[str, Any]] | None
    """The node's replication pushers by peer URL (None: a single primary)."""
    report_interval_s: float
    """Seconds between the node's own reports upward (0: it does not report)."""
    reported: tuple[NodeReport, ...]
    """The latest report of every node below this one."""
    stale_after_intervals: float
    """A report older than this many of its sender's intervals is stale."""
    setup_requests: Mapping[str, Mapping[str, int]]
    """What the node answered while its topology was set up (delegations), kept apart from `requests`."""
    native: Mapping[str, Any] | None = None
    """The native interface: ports, packets, messages, connections, answers by code, protocol errors, challenges,
    held and refused requests (None: the node speaks REST only)."""

    @property
    def uptime_s(self) -> float:
        return self.at - self.started_at

    @property
    def requests_total(self) -> int:
        return sum(n for codes in self.requests.values() for n in codes.values())

    def to_json(self) -> dict[str, Any]:
        """The `/_sim/stats` answer."""
        return {
            "node": self.node,
            **self.meta,
            "uptime_s": round(self.uptime_s, 3),
            "requests": self.requests,
            "requests_total": self.requests_total,
            "in_flight": self.in_flight,
            "rejected_busy": self.rejected_busy,
            "latency": self.latency_json(),
            "reports_received": self.reports_received,
            "setup_requests": self.setup_requests,
            "store_handles": self.store_handles,
            "homed_prefixes": list(self.homed_prefixes),
            "answer_cache_entries": self.answer_cache_entries,
            "auth": self.auth,
            **({"resolver_cache": self.resolver_cache} if self.resolver_cache is not None else {}),
            **({"replication": self.replication} if self.replication is not None else {}),
            **({"native": self.native} if self.native is not None else {}),
        }

    def latency_json(self) -> dict[str, dict[str, Any]]:
        return {op: times.to_json() for op, times in self.latency.items()}

    def timers(self) -> dict[str, Any]:
        """The server-side timers and request total (what a benchmark compares before and after its window)."""
        return {"node": self.node, "role": self.meta.get("role", ""), "requests_total": self.requests_total,
                "latency": self.latency_json()}


class CountingNode(Protocol):
    """Where a node keeps its counters (net/server.py's NodeServer): what `node_stats` reads."""

    service: HandleService
    gate: EdgeGate
    answers: AnswerCache
    authenticator: Authenticator
    resolver: RecursiveResolver | None
    replicator: Replicator | None
    reports: ReportBook
    native: NativeListener | None
    meta: dict[str, Any]
    started_at: float
    report_interval: float
    setup_requests: dict[str, dict[str, int]]
    clock: Callable[[], float]


class HasStats(Protocol):
    """Anything that can tell its NodeStats (a NodeServer)."""

    def stats(self) -> NodeStats: ...

    def timers(self) -> dict[str, Any]:
        """`stats().timers()`, read without building the whole NodeStats (`node_timers`)."""


def node_stats(node: CountingNode) -> NodeStats:
    """The one place a node's counters become a NodeStats."""
    service, gate, resolver, replicator, native = node.service, node.gate, node.resolver, node.replicator, node.native
    cache_hits: Mapping[int, int] = node.answers.hits
    edge: Mapping[tuple[str, int], int] = gate.edge_errors
    waiting = 0
    if native is not None:
        counters = native.counters
        cache_hits = Counter(cache_hits) + counters.cache_hits
        edge = Counter(edge) + counters.own_answers
        waiting = native.responder.waiting
    return NodeStats(
        node=service.config.node_id, meta=dict(node.meta), at=node.clock(), started_at=node.started_at,
        requests=request_counts(service.counts, cache_hits, edge),
        in_flight=gate.in_flight + waiting, rejected_busy=gate.rejected_busy,
        latency={op: OperationTimes(tuple(h.counts), h.total_seconds) for op, h in gate.latency.items() if h.count},
        reports_received=node.reports.received, store_handles=len(service.store),
        homed_prefixes=tuple(p.text for p in service.homed_prefixes), answer_cache_entries=len(node.answers),
        auth=node.authenticator.snapshot(),
        resolver_cache=resolver.snapshot() if resolver is not None else None,
        replication=replicator.snapshot() if replicator is not None else None,
        report_interval_s=node.report_interval, reported=tuple(node.reports.latest()),
        stale_after_intervals=node.reports.stale_after_intervals, setup_requests=node.setup_requests,
        native=native.snapshot() if native is not None else None)


def request_counts(service_counts: Mapping[tuple[int, int], int], cache_hits: Mapping[int, int],
                   edge_errors: Mapping[tuple[str, int], int]) -> dict[str, dict[str, int]]:
    """Answers by operation name and response code (as text): the service's (by op code), the answer cache's
    (resolutions) and the edge gate's (by operation name)."""
    by_op: dict[str, dict[str, int]] = {}
    counts = Counter(service_counts)
    for code, count in cache_hits.items():
        counts[(int(OpCode.RESOLUTION), code)] += count
    for (op, code), count in sorted(counts.items()):
        by_op.setdefault(_OP_NAMES.get(op) or str(op), {})[str(code)] = count
    for (op_name, code), count in sorted(edge_errors.items()):
        codes = by_op.setdefault(op_name, {})
        codes[str(code)] = codes.get(str(code), 0) + count
    return by_op


def node_timers(node: CountingNode) -> dict[str, Any]:
    """`node_stats(node).timers()` without building the NodeStats: a benchmark reads this from every node of a
    process as its window opens and closes, and a thousand full NodeStats hold the process's loop for ~0.4 s,
    which the first requests measured would pay."""
    service, gate, native = node.service, node.gate, node.native
    total = sum(service.counts.values()) + sum(node.answers.hits.values()) + sum(gate.edge_errors.values())
    if native is not None:
        total += sum(native.counters.cache_hits.values()) + sum(native.counters.own_answers.values())
    latency = {op: OperationTimes(tuple(h.counts), h.total_seconds).to_json()
               for op, h in gate.latency.items() if h.count}
    return {"node": service.config.node_id, "role": node.meta.get("role", ""), "requests_total": total,
            "latency": latency}
