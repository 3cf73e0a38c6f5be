"""Operations monitoring of a launched topology: upward reporting between its nodes and a Prometheus port.

Every secondary and enterprise node (mirrors too) reports to its parent tier as its prefix's owner: an enterprise
to its secondary, a secondary to every root (multi-primary: each root keeps the whole national picture). The root
operator's own nodes, the roots and the resolvers, report to every other root as the operator (300:0.NA/0.NA), so
each root's picture has every node of every tier. The process also serves `/metrics` for all the nodes it hosts on
one loopback port. Counting starts when the topology is ready: what the nodes answered while it was set up (the
delegation writes) is kept apart (`NodeServer.end_setup`).
"""

from __future__ import annotations

import json
import os

from ..core.values import ValueReference
from ..net.metrics import MetricsServer
from ..net.reporting import ReportSender
from .plan import ROOT_IDENTITY, NodePlan, Role, TopologyPlan
from .running import LaunchError, Monitoring, Topology
from .statedir import SCRAPE_TARGETS_FILE

REPORTING_ROLES = (Role.ROOT, Role.SECONDARY, Role.ENTERPRISE, Role.RESOLVER)
"""Every role shows in a root's national picture (a lone root through its own figures)."""
OPERATOR_ROLES = (Role.ROOT, Role.RESOLVER)


def report_targets(topology: Topology, node_id: str) -> list[str]:
    """Where a node reports: its primary's parent (the roots for a secondary); a root or a resolver to every root
    but itself."""
    plan = topology.plan
    node = plan.by_id[node_id]
    primary = plan.by_id[node.mirror_of] if node.mirror_of else node
    # by address, not by running node: with worker processes the parent usually lives in another process
    roots = [n.node_id for n in plan.nodes if n.role == Role.ROOT]
    if primary.role in OPERATOR_ROLES:
        return [topology.url_of(root) for root in roots if root != node_id]
    if primary.parent_id is None:
        return []
    if primary.role == Role.SECONDARY:
        return [topology.url_of(root) for root in roots]
    return [topology.url_of(primary.parent_id)]


def reporting_credentials(plan: TopologyPlan, node: NodePlan) -> tuple[ValueReference, str]:
    """Who a node reports as: its prefix's owner, or the root operator for the operator's own nodes."""
    if node.role in OPERATOR_ROLES:
        return ValueReference.from_text(ROOT_IDENTITY), plan.operator_secret
    return ValueReference.from_text(node.admin_identity), node.secret


async def start_monitoring(topology: Topology, metrics_port: int | None) -> Monitoring:
    """Start the report rounds (if `[monitoring] report_interval` > 0) and, unless `metrics_port` is None, the
    process's metrics port (0: a free port)."""
    spec = topology.plan.config.monitoring
    sender = ReportSender(spec.report_interval, ssl_context=topology.client_ssl)
    for running in topology.nodes.values():
        running.server.end_setup()
        running.server.reports.stale_after_intervals = spec.stale_after
        targets = report_targets(topology, running.plan.node_id)
        if targets and spec.report_interval > 0:
            sender.add(running.server, targets, *reporting_credentials(topology.plan, running.plan))
    sender.start()
    write_scrape_targets(topology)
    host = topology.plan.config.host
    metrics = None
    if metrics_port is not None:
        metrics = MetricsServer(lambda: [n.server for n in topology.nodes.values()])
        try:
            await metrics.start(host, metrics_port)
        except OSError as exc:
            await sender.stop()
            raise LaunchError(metrics_port_taken(host, metrics_port, exc.strerror or str(exc))) from None
    return Monitoring(sender, metrics, host)


def metrics_port_taken(host: str, port: int, reason: str) -> str:
    return f"the metrics port {host}:{port} is not available: {reason}; choose another with --metrics-port"


def write_scrape_targets(topology: Topology) -> None:
    """(No target labels: the series carry node, role, industry and prefix themselves.)"""
    groups = [{"targets": [f"{host}:{port}" for host, port in topology.addresses.values()]}]
    # every node of the topology (each worker process writes the same list): write whole, then rename
    path = topology.state_dir / SCRAPE_TARGETS_FILE
    partial = path.with_name(f"{path.name}.{os.getpid()}")
    partial.write_text(json.dumps(groups, indent=1))
    os.replace(partial, path)
