"""Operations monitoring: latency buckets and the report book (pure), exact counts after a known workload, upward
reports surviving a secondary's restart, the reporting rules, and Prometheus exposition parsed by prometheus-client."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from handlesim.core import latency
from handlesim.core.errors import InsufficientPermissions, ProtocolError
from handlesim.core.handle import Prefix
from handlesim.core.reports import NodeReport, ReportBook, check_forwarded, check_reporter, report_from_data
from handlesim.core.service import HandleService
from handlesim.core.values import ValueReference
from handlesim.net.client import basic_authorization
from handlesim.net.reporting import ReportSender
from handlesim.net.server import NodeServer
from handlesim.topology.config import ConfigError, load_config, parse_config
from handlesim.topology.plan import build_plan
from handlesim.topology.runner import launch
from handlesim.topology.running import Topology
from handlesim.topology.schema import MonitoringSpec

from ..support.paths import CONFIGS
from ..support.waiting import eventually

ENTERPRISE = "ent-88.101.1001"
SECONDARY = "sec-machinery"
ROOT = "root-qingdao"
KNOWN = "88.101.1001/PUMP-000001"


# -- pure ---------------------------------------------------------------------------------------------------------

def test_latency_buckets_follow_prometheus_le_and_estimate_percentiles() -> None:
    histogram = latency.LatencyHistogram()
    for us in range(1, 1001):  # 1 us .. 1 ms, uniform
        histogram.record(us / 1_000_000)
    assert histogram.count == 1000
    assert histogram.total_seconds == pytest.approx(sum(range(1, 1001)) / 1e6)
    cumulative = dict(latency.cumulative(histogram.counts))
    assert cumulative[0.0001] == 100  # a value equal to a bound counts as <= it
    assert cumulative[0.001] == 1000 and cumulative[float("inf")] == 1000
    p50, p99 = latency.percentile(histogram.counts, 50), latency.percentile(histogram.counts, 99)
    assert p50 is not None and p99 is not None
    assert 0.0004 <= p50 <= 0.0006 and 0.00095 <= p99 <= 0.001
    assert latency.percentile([0] * len(histogram.counts), 50) is None
    assert latency.counts_from_snapshot(histogram.snapshot()) == histogram.counts


def test_latency_window_is_a_difference_and_survives_a_restart() -> None:
    before, after = latency.LatencyHistogram(), latency.LatencyHistogram()
    for seconds in (0.00001, 0.0002, 0.003):
        before.record(seconds)
        after.record(seconds)
    after.record(0.05)
    window = latency.subtract(after.counts, before.counts)
    assert sum(window) == 1 and latency.percentile(window, 50) == pytest.approx(0.05, rel=0.26)
    restarted = latency.LatencyHistogram()
    restarted.record(0.002)
    assert latency.subtract(restarted.counts, before.counts) == restarted.counts
    assert sum(latency.merge([before.counts, after.counts])) == 7


def report(node: str = ENTERPRISE, *, sent_at: float = 100.0, uptime: float = 10.0, resolved: int = 50,
           role: str = "enterprise", prefix: str = "88.101.1001", industry: str = "machinery",
           errors: int = 0, interval: float = 5.0) -> NodeReport:
    requests: dict[str, dict[str, int]] = {"resolution": {"1": resolved, "100": 3}, "create_handle": {"1": 2}}
    if errors:
        requests["put"] = {"403": errors}
    return NodeReport(node, role, prefix, industry, sent_at, interval, requests, store_handles=21, uptime_s=uptime)


def test_report_book_rates_restart_and_stale_nodes() -> None:
    book = ReportBook(stale_after_intervals=3)
    book.receive(report(sent_at=100, resolved=50), 100.5, SECONDARY)
    book.receive(report(sent_at=105, uptime=15, resolved=100, errors=4), 105.5, SECONDARY)
    book.receive(report(sent_at=101, resolved=999), 106, SECONDARY)  # older than what is held: ignored
    row = book.picture(106)["nodes"][0]
    assert row["resolutions"] == 103 and row["registrations"] == 2 and row["errors"] == 4
    assert row["resolutions_per_s"] == 10.0 and row["errors_per_s"] == 0.8
    assert row["error_rate"] == round(4 / (103 + 2 + 4), 6)
    book.receive(report(sent_at=110, uptime=2, resolved=10), 110, SECONDARY)  # the enterprise restarted
    assert book.picture(110)["nodes"][0]["resolutions_per_s"] == 6.5  # 10 + 3 since its start 2 s ago
    book.receive(report("ent-88.102.2001", prefix="88.102.2001", industry="home appliances", sent_at=130,
                        resolved=7), 130, "sec-home-appliances")
    picture = book.picture(130, own=report(SECONDARY, role="secondary", prefix="88.101", resolved=0, sent_at=130))
    assert picture["stale"] == [ENTERPRISE]  # last report 20 s ago with a 5 s interval
    assert picture["totals"]["resolutions"] == 10 + 3 + 7 + 3 + 0 + 3
    assert picture["by_tier"]["enterprise"]["nodes"] == 2 and picture["by_tier"]["secondary"]["nodes"] == 1
    assert set(picture["by_industry"]) == {"machinery", "home appliances"}
    assert picture["by_industry"]["home appliances"]["resolutions"] == 10
    assert [r["node"] for r in book.picture(130)["nodes"]][0] == ENTERPRISE  # busiest first
    later = book.picture(140, own=report(SECONDARY, role="secondary", prefix="88.101", resolved=50, sent_at=140))
    own_row = next(r for r in later["nodes"] if r["node"] == SECONDARY)
    assert own_row["resolutions_per_s"] == 5.0  # the receiver's own rate, from its figures 10 s earlier
    lagging = replace(report("ent-88.101.1002", prefix="88.101.1002", sent_at=141),
                      replication={"http://127.0.0.1:1/": {"pending": 3, "lag_s": 4.5, "failures": 2},
                                   "http://127.0.0.1:2/": {"pending": 0, "lag_s": 0.0, "failures": 0}})
    book.receive(lagging, 141, SECONDARY)
    assert book.picture(141)["lagging"] == [{"node": "ent-88.101.1002", "peer": "http://127.0.0.1:1/",
                                             "pending": 3, "lag_s": 4.5, "failures": 2}]


def test_only_a_delegating_parent_accepts_a_report() -> None:
    child = report()
    check_reporter("0.NA/88.101.1001", child, True, [Prefix("88.101")])
    with pytest.raises(InsufficientPermissions):
        check_reporter("0.NA/88.101.1002", child, True, [Prefix("88.101")])  # someone else's identity
    with pytest.raises(InsufficientPermissions):
        check_reporter("0.NA/88.101.1001", child, False, [Prefix("88.102")])  # not delegated here
    with pytest.raises(InsufficientPermissions):
        check_reporter("0.NA/88.101.1001", child, True, [Prefix("88.101.1001")])  # its own node
    secondary = report(SECONDARY, role="secondary", prefix="88.101")
    check_forwarded(secondary, child)
    with pytest.raises(InsufficientPermissions):
        check_forwarded(secondary, report("ent-88.102.2001", prefix="88.102.2001"))


def test_only_a_root_accepts_the_root_operators_nodes() -> None:
    """Peer roots and resolvers report to every root as the root operator, so each root's picture has them all."""
    peer = report("root-beijing", role="root", prefix="0.NA", industry="")
    resolver = report("resolver-qingdao", role="resolver", prefix="0.NA", industry="")
    for operator_node in (peer, resolver):
        check_reporter("0.NA/0.NA", operator_node, False, [Prefix("0.NA")])
        with pytest.raises(InsufficientPermissions, match="only a root"):
            check_reporter("0.NA/0.NA", operator_node, True, [Prefix("88.101")])  # a secondary
        with pytest.raises(InsufficientPermissions, match="must be sent as its owner"):
            check_reporter("0.NA/88.101", operator_node, False, [Prefix("0.NA")])
    with pytest.raises(InsufficientPermissions, match="only a root"):  # a secondary's owner passing as a root
        check_reporter("0.NA/88.101", report("sec-x", role="root", prefix="88.101"), True, [Prefix("88")])


@pytest.mark.parametrize("data", [
    None, [], {"node": "x"}, {**report().to_data(), "requests": {"resolution": {"1": -1}}},
    {**report().to_data(), "requests": {"resolution": {"1": True}}}, {**report().to_data(), "sent_at": "now"},
    {**report().to_data(), "role": "mirror"}, {**report().to_data(), "node": ""},
])
def test_malformed_reports_are_protocol_errors(data: Any) -> None:
    with pytest.raises(ProtocolError):
        report_from_data(data)
    assert report_from_data(report().to_data()) == report()


def test_monitoring_config_keys() -> None:
    base = {"name": "t", "roots": [{"id": "r"}]}
    assert parse_config(base, "t.toml").monitoring.report_interval == 5.0
    config = parse_config({**base, "monitoring": {"report_interval": 0.5, "stale_after": 4}}, "t.toml")
    assert (config.monitoring.report_interval, config.monitoring.stale_after) == (0.5, 4.0)
    with pytest.raises(ConfigError, match="monitoring.report_intervl: unknown key"):
        parse_config({**base, "monitoring": {"report_intervl": 1}}, "t.toml")
    with pytest.raises(ConfigError, match="monitoring.report_interval"):
        parse_config({**base, "monitoring": {"report_interval": -1}}, "t.toml")


# -- loopback -----------------------------------------------------------------------------------------------------

def credentials(topology: Topology, node_id: str) -> str:
    plan = topology.nodes[node_id].plan
    return basic_authorization(ValueReference.from_text(plan.admin_identity), plan.secret)


async def rounds_by_hand(topology: Topology) -> ReportSender:
    """The process's report sender with its periodic rounds stopped, so a test decides when reports go out."""
    assert topology.monitoring is not None
    await topology.monitoring.sender.stop()
    return topology.monitoring.sender


async def get_json(session: aiohttp.ClientSession, url: str) -> Any:
    async with session.get(url) as reply:
        return await reply.json()


async def resolve_times(session: aiohttp.ClientSession, url: str, handle: str, times: int) -> None:
    for _ in range(times):
        async with session.get(f"{url}/api/handles/{handle}") as reply:
            await reply.read()


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


async def test_counts_after_a_known_workload_match_exactly(small: Topology) -> None:
    node = small.nodes[ENTERPRISE]
    auth = credentials(small, ENTERPRISE)
    async with aiohttp.ClientSession() as session:
        await resolve_times(session, node.url, KNOWN, 7)
        await resolve_times(session, node.url, "88.101.1001/NO-SUCH-THING", 3)
        for n in range(2):
            async with session.put(f"{node.url}/api/handles/88.101.1001/NEW-{n}", headers={"Authorization": auth},
                                   json=[{"index": 1, "type": "URL", "data": "https://id.example.cn/new"}]) as reply:
                assert reply.status == 201 or reply.status == 200
        wrong = basic_authorization(ValueReference.from_text(node.plan.admin_identity), "not-the-secret")
        async with session.put(f"{node.url}/api/handles/88.101.1001/NEW-9", headers={"Authorization": wrong},
                               json=[{"index": 1, "type": "URL", "data": "https://x"}]) as reply:
            assert reply.status == 403
        stats = await get_json(session, node.url + "/_sim/stats")
        async with session.get(node.url + "/metrics") as reply:
            assert reply.headers["Content-Type"].startswith("text/plain")
            exposed = samples(await reply.text())
    assert stats["requests"] == {"resolution": {"1": 7, "100": 3}, "create_handle": {"1": 2}, "put": {"403": 1}}
    assert stats["requests_total"] == 13
    assert stats["latency"]["resolution"]["count"] == 10 and stats["latency"]["put"]["count"] == 3
    assert stats["in_flight"] == 1 and stats["rejected_busy"] == 0  # in flight: this stats request itself
    assert stats["store_handles"] == 1 + 20 + 2
    labels = {"node": ENTERPRISE, "role": "enterprise", "industry": "machinery", "prefix": "88.101.1001"}

    def sample(name: str, **extra: str) -> float:
        return exposed[(name, frozenset({**labels, **extra}.items()))]

    assert sample("handlesim_requests_total", op="resolution", code="1") == 7
    assert sample("handlesim_requests_total", op="resolution", code="100") == 3
    assert sample("handlesim_requests_total", op="put", code="403") == 1
    assert sample("handlesim_request_duration_seconds_count", op="resolution") == 10
    assert sample("handlesim_request_duration_seconds_bucket", op="resolution", le="+Inf") == 10
    assert sample("handlesim_store_handles") == 23 and sample("handlesim_rejected_busy_total") == 0


async def restart_server(small: Topology, node_id: str) -> tuple[NodeServer, NodeServer]:
    """Stop a node's server and start a fresh one (new service and counters, same store and port), as a process
    restart with SQLite would; the process's report sender is pointed at the new server."""
    running = small.nodes[node_id]
    old = running.server
    port = old.port
    await old.stop()
    service = HandleService(old.service.config, old.service.store)
    new = NodeServer(service, meta=old.meta)
    new.reports.stale_after_intervals = old.reports.stale_after_intervals
    assert small.monitoring is not None
    for reporter in small.monitoring.sender.reporters:
        if reporter.server is old:
            reporter.server = new
            new.report_interval = old.report_interval
    await new.start(running.plan.host, port)
    running.server, running.service = new, service
    return old, new


async def test_reports_arrive_upward_and_survive_a_secondary_restart(small: Topology) -> None:
    sender = await rounds_by_hand(small)
    root, secondary, enterprise = small.nodes[ROOT], small.nodes[SECONDARY], small.nodes[ENTERPRISE]
    async with aiohttp.ClientSession() as session:
        await resolve_times(session, enterprise.url, KNOWN, 4)
        assert await sender.send_round() == len(sender.reporters)  # every node delivered to every target
        picture = await get_json(session, root.url + "/api/reports")
        rows = {row["node"]: row for row in picture["nodes"]}
        assert picture["receiver"] == ROOT
        assert rows[ENTERPRISE]["resolutions"] == 4 and rows[ENTERPRISE]["parent"] == SECONDARY
        assert rows[SECONDARY]["parent"] == ROOT and rows[ROOT]["parent"] == ""
        reporting = {n.plan.node_id for n in small.nodes.values() if n.plan.role in ("secondary", "enterprise")}
        assert reporting <= set(rows)
        assert picture["by_industry"]["machinery"]["resolutions"] >= 4

        old, new = await restart_server(small, SECONDARY)
        assert old.reports.received > 0 and len(new.reports) == 0
        fresh = await get_json(session, secondary.url + "/api/reports")
        assert fresh["nodes_reporting"] == 1  # only itself: its aggregate is gone with the old process
        still = {row["node"]: row for row in (await get_json(session, root.url + "/api/reports"))["nodes"]}
        assert still[ENTERPRISE]["resolutions"] == 4  # the root kept the national picture meanwhile

        await resolve_times(session, enterprise.url, KNOWN, 3)
        assert await sender.send_round() == len(sender.reporters)
        rebuilt = await get_json(session, secondary.url + "/api/reports")
        under = {row["node"] for row in rebuilt["nodes"]}
        assert {ENTERPRISE, "ent-88.101.1002", "ent-88.101.1003"} <= under  # rebuilt from the next reports
        after = {row["node"]: row for row in (await get_json(session, root.url + "/api/reports"))["nodes"]}
        assert after[ENTERPRISE]["resolutions"] == 7
        assert after[SECONDARY]["resolutions_per_s"] >= 0  # its counters restarted: no negative rate
    assert all(r.failures == 0 for r in sender.reporters)


async def test_a_report_is_refused_unless_it_comes_from_a_child(small: Topology) -> None:
    from handlesim.net.reporting import own_report
    from handlesim.wire import codec

    await rounds_by_hand(small)
    enterprise = small.nodes[ENTERPRISE]
    body = codec.encode_body({"report": own_report(enterprise.server.stats()).to_data()}, codec.MSGPACK)
    headers = {"Content-Type": codec.MSGPACK, "Authorization": credentials(small, ENTERPRISE)}
    path = "/api/reports/88.101.1001"
    async with aiohttp.ClientSession() as session:
        async with session.put(small.nodes[SECONDARY].url + path, data=body, headers=headers) as reply:
            assert reply.status == 200
        # another secondary verifies the enterprise's key at its holder, but is not its parent; nor is the enterprise
        async with session.put(small.nodes["sec-home-appliances"].url + path, data=body, headers=headers) as reply:
            assert reply.status == 403 and (await reply.json())["responseCode"] == 401
        async with session.put(enterprise.url + path, data=body, headers=headers) as reply:
            assert reply.status == 403 and (await reply.json())["responseCode"] == 401
        async with session.put(small.nodes[SECONDARY].url + path, data=body,
                               headers={"Content-Type": codec.MSGPACK}) as reply:
            assert reply.status == 401 and (await reply.json())["responseCode"] == 402
        wrong = {**headers, "Authorization": credentials(small, "ent-88.101.1002")}
        async with session.put(small.nodes[SECONDARY].url + path, data=body, headers=wrong) as reply:
            assert reply.status == 403 and (await reply.json())["responseCode"] == 401
        async with session.put(small.nodes[SECONDARY].url + "/api/reports/88.101.1002", data=body,
                               headers=headers) as reply:
            assert reply.status == 400 and (await reply.json())["responseCode"] == 4
        stats = await get_json(session, small.nodes[SECONDARY].url + "/_sim/stats")
    assert stats["reports_received"] == 1
    assert stats["requests"]["report"] == {"401": 1, "402": 1, "4": 1}


async def test_the_process_metrics_port_covers_every_node(small: Topology) -> None:
    assert small.monitoring is not None and small.monitoring.metrics_url
    described = json.loads((small.state_dir / "topology.json").read_text())
    assert described["metrics_url"] == small.monitoring.metrics_url
    async with aiohttp.ClientSession() as session:
        await resolve_times(session, small.nodes[ENTERPRISE].url, KNOWN, 2)
        await small.monitoring.sender.send_round()
        async with session.get(small.monitoring.metrics_url) as reply:
            text = await reply.text()
        timers = await get_json(session, small.monitoring.metrics_url.replace("/metrics", "/timers"))
    families = {f.name: f for f in text_string_to_metric_families(text)}
    nodes = {s.labels["node"] for s in families["handlesim_uptime_seconds"].samples}
    assert nodes == set(small.nodes)
    assert {"handlesim_requests", "handlesim_request_duration_seconds", "handlesim_in_flight_requests",
            "handlesim_rejected_busy", "handlesim_store_handles", "handlesim_reported",
            "process_resident_memory_bytes"} <= set(families)
    reported: dict[tuple[str, str, str], float] = {}
    for s in families["handlesim_reported"].samples:  # summed over industries
        key = (s.labels["node"], s.labels["tier"], s.labels["figure"])
        reported[key] = reported.get(key, 0.0) + s.value
    assert reported[(ROOT, "enterprise", "nodes")] == 6 and reported[(ROOT, "enterprise", "resolutions")] >= 2
    by_node = {n["node"]: n for n in timers["nodes"]}
    assert by_node[ENTERPRISE]["latency"]["resolution"]["count"] >= 2


async def test_the_dashboard_and_scrape_targets_use_what_the_nodes_expose(small: Topology) -> None:
    import re

    configs = CONFIGS
    dashboard = json.loads((configs / "grafana-dashboard.json").read_text())
    used = {name for panel in dashboard["panels"] for target in panel["targets"]
            for name in re.findall(r"\b(handlesim_[a-z_]+)", target["expr"])}
    assert small.monitoring is not None and small.monitoring.metrics_url
    async with aiohttp.ClientSession() as session:
        await resolve_times(session, small.nodes["resolver-qingdao"].url, KNOWN, 2)  # a resolver cache hit
        await small.monitoring.sender.send_round()
        async with session.get(small.monitoring.metrics_url) as reply:
            exposed = {s.name for family in text_string_to_metric_families(await reply.text())
                       for s in family.samples}
        targets = json.loads((small.state_dir / "prometheus-nodes.json").read_text())[0]["targets"]
        async with session.get(f"http://{targets[0]}/metrics") as reply:
            assert reply.status == 200
    missing = used - exposed - {"handlesim_replication_lag_seconds", "handlesim_replication_pending"}
    assert not missing, f"the dashboard queries series nobody exposes: {missing}"  # (small has one root: no peers)
    assert len(targets) == len(small.nodes)
    assert "127.0.0.1:9464" in (configs / "prometheus.yml").read_text()


async def test_nodes_report_on_their_own_every_interval(tmp_path: Path) -> None:
    config = load_config(CONFIGS / "small.toml").with_overrides(base_port=0)
    config = replace(config, monitoring=MonitoringSpec(report_interval=0.2, stale_after=3.0))
    topology = await launch(build_plan(config), tmp_path / "state", store_kind="memory", metrics_port=None)
    try:
        assert topology.monitoring is not None and topology.monitoring.metrics_url is None
        root = topology.nodes[ROOT].server
        # 3 secondaries + their 6 enterprises, forwarded, and the resolver
        await eventually(lambda: len(root.reports) == 10, 10, every=0.1, what="10 reports at the root")
        # one round suffices: enterprises report first, then their secondaries forward this round's figures
        assert topology.monitoring.sender.rounds >= 1 and topology.monitoring.sender.snapshot()["failures"] == 0
    finally:
        await topology.stop()


TWO_ROOTS = {
    "name": "two-roots", "base_port": 0, "seed": 3,
    "roots": [{"id": "root-qingdao", "region": "Qingdao"}, {"id": "root-beijing", "region": "Beijing"}],
    "secondaries": [{"id": "sec-machinery", "prefix": "88.101", "industry": "machinery"}],
    "enterprises": {"count": 2, "identifiers_per_enterprise": 3},
    "resolvers": [{"id": "resolver-qingdao"}],
}


async def test_every_root_sees_every_tier_and_no_setup_write_as_a_registration(tmp_path: Path) -> None:
    """Issue item 8: the roots tier showed 1 node of 2, the resolver tier was missing, and the delegations the
    launcher writes while setting the topology up were counted as registrations."""
    topology = await launch(build_plan(parse_config(TWO_ROOTS, "t.toml")), tmp_path / "state", store_kind="memory",
                            metrics_port=None)
    try:
        sender = await rounds_by_hand(topology)
        assert await sender.send_round() == sum(len(r.targets) for r in sender.reporters)
        async with aiohttp.ClientSession() as session:
            for root in ("root-qingdao", "root-beijing"):
                picture = await get_json(session, topology.nodes[root].url + "/api/reports")
                tiers = picture["by_tier"]
                assert {tier: row["nodes"] for tier, row in tiers.items()} == {
                    "root": 2, "secondary": 1, "enterprise": 2, "resolver": 1}, root
                assert picture["totals"]["registrations"] == 0, "no user registered anything"
            stats = await get_json(session, topology.nodes["root-qingdao"].url + "/_sim/stats")
        assert stats["setup_requests"]["create_handle"]["1"] >= 1, "the delegations, kept apart"
        assert "create_handle" not in stats["requests"]
    finally:
        await topology.stop()
