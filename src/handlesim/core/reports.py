"""Operating reports going up the hierarchy, and the picture a receiving node keeps of them.

Enterprises report their own statistics to their secondary; a secondary reports its own and forwards the latest
report of each of its enterprises to the roots; a root therefore holds the national picture: per tier, industry and
node, registrations, resolutions, errors, rates and when each node last reported.

Reports carry cumulative counters (since the reporter started), so a receiver that restarts rebuilds its whole
picture from the next round of reports, and a report that is lost costs nothing but freshness. Rates come from two
consecutive reports of the same node. Pure: the caller passes the clock's `now` and plain data.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .codes import ResponseCode
from .errors import InsufficientPermissions, ProtocolError
from .handle import NA_PREFIX, Handle, Prefix
from .latency import counts_from_snapshot, merge, percentile

NOT_ERRORS = frozenset({int(ResponseCode.SUCCESS), int(ResponseCode.HANDLE_NOT_FOUND),
                        int(ResponseCode.VALUES_NOT_FOUND), int(ResponseCode.SERVER_NOT_RESPONSIBLE),
                        int(ResponseCode.SERVICE_REFERRAL), int(ResponseCode.PREFIX_REFERRAL)})
"""Answers that are the protocol working (values, not found, referrals); every other code counts as an error."""
REPORTING_ROLES = ("secondary", "enterprise")
OPERATOR_ROLES = ("root", "resolver")
"""The root operator's own nodes: they report to every other root as the operator (300:0.NA/0.NA), under 0.NA."""
MAX_CHILDREN = 100_000
LAG_THRESHOLD_S = 1.0
"""A replica whose pusher has had changes pending longer than this is lagging."""


@dataclass(frozen=True)
class NodeReport:
    """One node's statistics at `sent_at` (its clock), as it reports them upward."""

    node: str
    role: str
    prefix: str
    industry: str
    sent_at: float
    interval_s: float
    """How often the node reports (the receiver calls it stale after a few missed intervals)."""
    requests: Mapping[str, Mapping[str, int]]
    """Answers since the node started, by operation name and response code (as in `/_sim/stats`)."""
    store_handles: int = 0
    uptime_s: float = 0.0
    in_flight: int = 0
    rejected_busy: int = 0
    latency: Mapping[str, Any] = field(default_factory=dict)
    """Server-side time histograms by operation (`LatencyHistogram.snapshot()`)."""
    replication: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """The node's replication pushers by peer URL: pending, lag_s, failures (see Replicator.snapshot)."""

    @property
    def resolutions(self) -> int:
        return sum(self.requests.get("resolution", {}).values())

    @property
    def registrations(self) -> int:
        return int(self.requests.get("create_handle", {}).get(str(int(ResponseCode.SUCCESS)), 0))

    @property
    def total_requests(self) -> int:
        return sum(n for codes in self.requests.values() for n in codes.values())

    @property
    def errors(self) -> int:
        return sum(n for codes in self.requests.values() for code, n in codes.items()
                   if not code.isdigit() or int(code) not in NOT_ERRORS)

    def to_data(self) -> dict[str, Any]:
        return {"node": self.node, "role": self.role, "prefix": self.prefix, "industry": self.industry,
                "sent_at": self.sent_at, "interval_s": self.interval_s,
                "requests": {op: dict(codes) for op, codes in self.requests.items()},
                "store_handles": self.store_handles, "uptime_s": self.uptime_s, "in_flight": self.in_flight,
                "rejected_busy": self.rejected_busy, "latency": dict(self.latency),
                "replication": {k: dict(v) for k, v in self.replication.items()}}


def report_from_data(data: Any) -> NodeReport:
    """Validate a decoded report body; anything malformed is a ProtocolError (code 4), never a crash."""
    if not isinstance(data, Mapping):
        raise ProtocolError("a report must be a map")
    requests = data.get("requests", {})
    if not isinstance(requests, Mapping) or not all(
            isinstance(op, str) and isinstance(codes, Mapping)
            and all(isinstance(c, str) and _count(n) for c, n in codes.items()) for op, codes in requests.items()):
        raise ProtocolError("report.requests must map operation -> response code -> count")
    role = _text(data, "role")
    if role not in REPORTING_ROLES + OPERATOR_ROLES:
        raise ProtocolError(f"report.role {role!r} is not one of {', '.join(REPORTING_ROLES + OPERATOR_ROLES)}")
    latency = data.get("latency", {})
    replication = data.get("replication", {})
    if not isinstance(latency, Mapping) or not isinstance(replication, Mapping):
        raise ProtocolError("report.latency and report.replication must be maps")
    return NodeReport(
        node=_text(data, "node"), role=role, prefix=_text(data, "prefix"), industry=_text(data, "industry", ""),
        sent_at=_number(data, "sent_at"), interval_s=_number(data, "interval_s"),
        requests={op: {c: int(n) for c, n in codes.items()} for op, codes in requests.items()},
        store_handles=int(_number(data, "store_handles", 0)), uptime_s=_number(data, "uptime_s", 0),
        in_flight=int(_number(data, "in_flight", 0)), rejected_busy=int(_number(data, "rejected_busy", 0)),
        latency=latency, replication=replication)


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _text(data: Mapping[str, Any], key: str, default: str | None = None) -> str:
    value = data.get(key, default)
    if not isinstance(value, str) or (default is None and not value):
        raise ProtocolError(f"report.{key} must be a non-empty string")
    return value


def _number(data: Mapping[str, Any], key: str, default: float | None = None) -> float:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value or value < 0:
        raise ProtocolError(f"report.{key} must be a number of at least 0")
    return float(value)


def check_reporter(identity_handle: str, report: NodeReport, delegated: bool, homed: Iterable[Prefix]) -> None:
    """A report is accepted only from the owner of a prefix this node delegated (a child in the hierarchy), or
    from one of the root operator's own nodes (a peer root, a resolver) by a root.

    `identity_handle` is the authenticated identity's handle (`0.NA/<prefix>`), `delegated` whether the receiving
    node holds that prefix handle with site values (it delegated it), `homed` the prefixes it homes itself."""
    prefix = Prefix.from_text(report.prefix)
    if Handle.from_text(identity_handle).key != prefix.prefix_handle().key:
        raise InsufficientPermissions(f"a report about {report.prefix} must be sent as its owner 0.NA/{report.prefix}, "
                            f"not {identity_handle}")
    if report.role in OPERATOR_ROLES:
        if prefix.key != NA_PREFIX.key or not any(own.key == NA_PREFIX.key for own in homed):
            raise InsufficientPermissions(f"{report.node} reports as a node of the root operator (under "
                                          f"{NA_PREFIX.text}): only a root takes its report")
        return
    if not delegated or any(prefix.key == own.key for own in homed):
        raise InsufficientPermissions(f"{report.prefix} is not a prefix this node delegated; report to your "
                                      "parent node")


def check_forwarded(reporter: NodeReport, child: NodeReport) -> None:
    """A secondary may forward reports of enterprises under its own prefix only."""
    if Prefix.from_text(child.prefix).parent() != Prefix.from_text(reporter.prefix) or child.role != "enterprise":
        raise InsufficientPermissions(f"{reporter.node} may not forward a report of {child.node} ({child.prefix}): "
                            f"not an enterprise under {reporter.prefix}")


@dataclass
class _Entry:
    report: NodeReport
    parent: str
    received_at: float
    rates: dict[str, float] = field(default_factory=dict)


class ReportBook:
    """The latest report of every node below this one, with rates from consecutive reports."""

    def __init__(self, stale_after_intervals: float = 3.0) -> None:
        self.stale_after_intervals = stale_after_intervals
        self._entries: dict[str, _Entry] = {}
        self._own: _Entry | None = None
        self.received = 0
        """Reports accepted (direct and forwarded)."""

    def __len__(self) -> int:
        return len(self._entries)

    def receive(self, report: NodeReport, now: float, parent: str) -> None:
        """Keep `report` (sent by `parent`'s child, or forwarded by `parent`); an older or repeated one is ignored."""
        entry = self._entries.get(report.node)
        if entry is not None and report.sent_at <= entry.report.sent_at:
            return
        rates = _rates(entry.report, report) if entry is not None else {}
        self._entries[report.node] = _Entry(report, parent, now, rates)
        self.received += 1

    def latest(self, role: str | None = None) -> list[NodeReport]:
        return [e.report for e in self._entries.values() if role is None or e.report.role == role]

    def picture(self, now: float, own: NodeReport | None = None) -> dict[str, Any]:
        """Totals and rates by tier and industry, every node's row, stale nodes and lagging replicas."""
        rows = [self._row(e, now) for e in self._entries.values()]
        if own is not None and own.node not in self._entries:
            rows.insert(0, self._row(self._own_entry(own, now), now))
        return {
            "at": now,
            "nodes_reporting": len(rows),
            "reports_received": self.received,
            "totals": _aggregate(rows, [e.report for e in self._entries.values()]),
            "by_tier": _grouped(rows, self._entries, own, "role"),
            "by_industry": _grouped([r for r in rows if r["industry"]], self._entries, own, "industry"),
            "nodes": sorted(rows, key=lambda r: (-r["resolutions"], r["node"])),
            "stale": sorted(r["node"] for r in rows if r["stale"]),
            "lagging": _lagging(rows),
        }

    def _own_entry(self, own: NodeReport, now: float) -> _Entry:
        """The receiving node's own figures, with rates against its figures at an earlier look (>= 1 s before)."""
        held = self._own
        if held is None or own.sent_at - held.report.sent_at >= 1.0:
            self._own = _Entry(own, "", now, _rates(held.report, own) if held is not None else {})
            return self._own
        return _Entry(own, "", now, held.rates)

    def _row(self, entry: _Entry, now: float) -> dict[str, Any]:
        report = entry.report
        age = max(now - report.sent_at, 0.0)
        resolution_latency = counts_from_snapshot(report.latency.get("resolution", {}))
        p50, p99 = percentile(resolution_latency, 50), percentile(resolution_latency, 99)
        return {
            "node": report.node, "role": report.role, "prefix": report.prefix, "industry": report.industry,
            "parent": entry.parent, "last_report_at": report.sent_at, "age_s": round(age, 3),
            "stale": age > self.stale_after_intervals * max(report.interval_s, 0.001),
            "requests": report.total_requests, "resolutions": report.resolutions,
            "registrations": report.registrations, "errors": report.errors,
            "error_rate": round(report.errors / report.total_requests, 6) if report.total_requests else 0.0,
            "store_handles": report.store_handles, "in_flight": report.in_flight,
            "rejected_busy": report.rejected_busy,
            "server_p50_ms": None if p50 is None else round(p50 * 1000, 4),
            "server_p99_ms": None if p99 is None else round(p99 * 1000, 4),
            "replication": {peer: {"pending": int(s.get("pending", 0)), "lag_s": float(s.get("lag_s", 0.0)),
                                   "failures": int(s.get("failures", 0))} for peer, s in report.replication.items()},
            **{f"{name}_per_s": value for name, value in entry.rates.items()},
        }


RATED = ("requests", "resolutions", "registrations", "errors")


def _counters(report: NodeReport) -> dict[str, int]:
    return {"requests": report.total_requests, "resolutions": report.resolutions,
            "registrations": report.registrations, "errors": report.errors}


def _rates(before: NodeReport, after: NodeReport) -> dict[str, float]:
    """Per-second rates between two reports; a counter that went down means the node restarted in between."""
    elapsed = after.sent_at - before.sent_at
    restarted = after.uptime_s < before.uptime_s
    old, new = _counters(before), _counters(after)
    span = min(after.uptime_s, elapsed) if restarted and after.uptime_s > 0 else elapsed
    if span <= 0:
        return {}
    return {name: round(((new[name] if restarted else new[name] - old[name]) / span), 3) for name in RATED}


def _aggregate(rows: list[dict[str, Any]], reports: Iterable[NodeReport]) -> dict[str, Any]:
    total = {name: sum(r[name] for r in rows) for name in (*RATED, "store_handles", "rejected_busy")}
    total["error_rate"] = round(total["errors"] / total["requests"], 6) if total["requests"] else 0.0
    for name in RATED:
        total[f"{name}_per_s"] = round(sum(r.get(f"{name}_per_s", 0.0) for r in rows), 3)
    total["nodes"] = len(rows)
    total["stale"] = sum(1 for r in rows if r["stale"])
    histogram = merge(counts_from_snapshot(r.latency.get("resolution", {})) for r in reports)
    for pct in (50, 99):
        value = percentile(histogram, pct)
        total[f"server_p{pct}_ms"] = None if value is None else round(value * 1000, 4)
    return total


def _grouped(rows: list[dict[str, Any]], entries: Mapping[str, _Entry], own: NodeReport | None,
             key: str) -> dict[str, Any]:
    reports = {e.report.node: e.report for e in entries.values()}
    if own is not None:
        reports.setdefault(own.node, own)
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(row[key], []).append(row)
    return {name: _aggregate(members, (reports[r["node"]] for r in members if r["node"] in reports))
            for name, members in sorted(groups.items())}


def _lagging(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for row in rows:
        for peer, state in row["replication"].items():
            if state["lag_s"] > LAG_THRESHOLD_S or (state["pending"] and state["failures"]):
                out.append({"node": row["node"], "peer": peer, **state})
    return out

