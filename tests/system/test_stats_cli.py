"""`handlesim stats` against an in-process topology (the CLI runs in a thread so the nodes keep serving), and the
benchmark's per-tier server-side time computed from node timer snapshots."""

from __future__ import annotations

import asyncio
import json

import aiohttp
from click.testing import CliRunner, Result

from handlesim.bench.report import server_time_table
from handlesim.bench.runner import ServerTimers, _with_server_time, topology_cpu
from handlesim.cli import main
from handlesim.core.latency import LatencyHistogram
from handlesim.topology.running import Topology

ENTERPRISE = "ent-88.101.1001"


async def invoke(*args: str) -> Result:
    return await asyncio.to_thread(CliRunner().invoke, main, list(args), catch_exceptions=False)


async def test_stats_json_text_and_watch_show_the_roots_picture(small: Topology) -> None:
    assert small.monitoring is not None
    await small.monitoring.sender.stop()  # rounds by hand below
    state = str(small.state_dir)
    before = await invoke("stats", "--state-dir", state, "--json")
    assert before.exit_code == 0
    early = json.loads(before.output)
    # 3 secondaries, 6 enterprises and the resolver; nothing sent yet (the root is the one asked)
    assert early["never_reported"] == sorted(n for n in small.nodes if n != "root-qingdao")

    async with aiohttp.ClientSession() as session:
        for _ in range(5):
            async with session.get(small.nodes[ENTERPRISE].url + "/api/handles/88.101.1001/PUMP-000001") as reply:
                await reply.read()
    await small.monitoring.sender.send_round()
    result = await invoke("stats", "--state-dir", state, "--json", "--top", "2")
    view = json.loads(result.output)
    assert view["receiver"] == "root-qingdao" and view["never_reported"] == [] and view["stale"] == []
    assert view["by_tier"]["enterprise"]["nodes"] == 6 and view["by_tier"]["enterprise"]["resolutions"] == 5
    assert [row["node"] for row in view["top_enterprises"]][0] == ENTERPRISE
    assert len(view["top_enterprises"]) == 2
    assert view["totals"]["errors"] == 0 and view["lagging"] == []
    assert set(view["by_tier"]) == {"root", "secondary", "enterprise", "resolver"}
    assert view["totals"]["registrations"] == 0, "the set-up's delegations are no registrations"

    text = await invoke("stats", "--state-dir", state)
    assert "national picture at root-qingdao" in text.output and "by industry" in text.output
    assert "11 nodes reporting" in text.output
    assert ENTERPRISE in text.output
    watched = await invoke("stats", "--state-dir", state, "--watch", "--rounds", "1", "--interval", "0.2")
    assert watched.exit_code == 0 and "busiest enterprises" in watched.output
    lines = await invoke("stats", "--state-dir", state, "--watch", "--json", "--rounds", "1", "--interval", "0.2")
    pictures = [json.loads(line) for line in lines.output.splitlines()]
    assert len(pictures) == 2 and pictures[1]["at"] > pictures[0]["at"]  # JSON Lines: the first, one refresh


def test_bench_server_time_is_the_windows_difference_per_tier() -> None:
    early, late = LatencyHistogram(), LatencyHistogram()
    for _ in range(10):
        early.record(0.0001)
        late.record(0.0001)
    for _ in range(90):
        late.record(0.002)  # only these happened in the window
    before = {"e1": {"role": "enterprise", "latency": {"resolution": early.snapshot()}}}
    after = {"e1": {"role": "enterprise", "latency": {"resolution": late.snapshot()}},
             "r1": {"role": "root", "latency": {}}}
    nodes = _with_server_time({"root": {"requests": 0}}, before, after)
    timed = nodes["enterprise"]["server_time"]["resolution"]
    assert timed["requests"] == 90 and 1.6 <= timed["p50_ms"] <= 2.0 and timed["p99_ms"] <= 2.0
    assert "server_time" not in nodes["root"]
    table = "\n".join(server_time_table(nodes))
    assert "| enterprise | resolution | 90 |" in table


def test_bench_topology_cpu_is_the_processes_cpu_over_the_window_per_answer() -> None:
    opened = ServerTimers({}, {("http://a/metrics", 11): 5.0, ("http://b/metrics", 11): 1.0}, at=100.0)
    closed = ServerTimers({}, {("http://a/metrics", 11): 7.0, ("http://b/metrics", 11): 2.0}, at=110.5)
    cpu = topology_cpu(opened, closed, {"achieved_rate": 1500.0}, 10.0)
    assert cpu == {"processes": 2, "seconds": 3.0, "per_lookup_us": 200.0, "busy_cores": round(3.0 / 10.5, 3)}
    restarted = ServerTimers({}, {("http://a/metrics", 11): 7.0, ("http://b/metrics", 13): 0.1}, at=110.5)
    assert topology_cpu(opened, restarted, {"achieved_rate": 1500.0}, 10.0) is None, "a process that came and went"
    assert topology_cpu(ServerTimers({}, {}), ServerTimers({}, {}), {"achieved_rate": 1.0}, 1.0) is None
