"""Worker processes: the small topology sharded over two spawned workers, resolved across processes; a worker
killed with SIGKILL is restarted by the supervisor and its nodes answer again with their data (SQLite)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from handlesim.core.codes import OpCode
from handlesim.core.handle import Handle
from handlesim.core.messages import Request
from handlesim.core.prefixes import owner_identity
from handlesim.core.values import HandleValue
from handlesim.net.client import HandleClient
from handlesim.net.nativeclient import NativeTransport
from handlesim.topology.config import load_config
from handlesim.topology.plan import build_plan
from handlesim.topology.running import LaunchError
from handlesim.topology.seed import suffix_for
from handlesim.topology.supervisor import ProcessEngine, ProcessShard, Supervisor, resolve_worker_count, shard_nodes

from ..support.paths import CONFIGS, ROOT
from ..support.waiting import eventually

SMALL = build_plan(load_config(CONFIGS / "small.toml").with_overrides(base_port=0))


async def supervised(tmp_path: Path, store_kind: str) -> AsyncIterator[Supervisor]:
    supervisor = Supervisor(SMALL, tmp_path / "state", ProcessEngine(), 2, store_kind=store_kind)
    await supervisor.boot()
    watcher = asyncio.ensure_future(supervisor.watch())
    try:
        yield supervisor
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
        await supervisor.stop()


@pytest.fixture
async def two_workers(tmp_path: Path) -> AsyncIterator[Supervisor]:
    async for supervisor in supervised(tmp_path, "memory"):
        yield supervisor


@pytest.fixture
async def two_sqlite_workers(tmp_path: Path) -> AsyncIterator[Supervisor]:
    async for supervisor in supervised(tmp_path, "sqlite"):
        yield supervisor


def test_round_robin_puts_a_secondary_and_its_enterprises_in_different_workers() -> None:
    shards = shard_nodes(SMALL, 2)
    assert sorted(n for shard in shards for n in shard) == sorted(n.node_id for n in SMALL.nodes)
    worker = {node_id: i for i, shard in enumerate(shards) for node_id in shard}
    machinery = [e.node_id for e in SMALL.enterprises if e.parent_id == "sec-machinery"]
    assert {worker[e] for e in machinery} == {0, 1}
    assert len(shard_nodes(SMALL, 50)) == len(SMALL.nodes), "no empty workers"
    assert resolve_worker_count("3") == 3 and resolve_worker_count(None) == 1
    assert resolve_worker_count("auto") == (os.cpu_count() or 1)
    with pytest.raises(LaunchError):
        resolve_worker_count("0")


async def test_two_workers_boot_and_resolve_across_processes(two_workers: Supervisor) -> None:
    topology = two_workers.topology
    assert topology is not None
    state = json.loads((topology.state_dir / "topology.json").read_text())
    assert state["engine"] == "process" and state["workers"] == 2
    assert {n["worker"] for n in state["nodes"]} == {0, 1} and len(state["nodes"]) == len(SMALL.nodes)
    pids = {s["pid"] for s in two_workers.statuses.values()}
    assert len(pids) == 2 and os.getpid() not in pids
    async with HandleClient(timeout=5.0) as client:
        for example in state["examples"][:3]:
            res = await client.resolve(Handle.from_text(example), topology.root_sites)
            assert res.result is not None and res.result.ok, (example, res.result)
            assert len(res.trace) == 3
            assert len({topology.workers[hop.site] for hop in res.trace}) == 2, "the hops cross processes"
        # the resolver walks the hierarchy for us from its own worker
        resolver = topology.url_of("resolver-qingdao")
        answer = await client.resolve_via(resolver, Handle.from_text(state["examples"][0]))
        assert answer.ok
    assert all(n["native_port"] for n in state["nodes"]), "every worker's nodes speak the native protocol"
    async with NativeTransport("udp", timeout=5.0) as native:
        res = await native.resolve(Handle.from_text(state["examples"][0]), topology.root_sites)
        assert res.result is not None and res.result.ok, res.result
        assert len({topology.workers[hop.site] for hop in res.trace}) == 2, "native hops cross processes too"


async def test_a_killed_worker_comes_back_with_its_data(two_sqlite_workers: Supervisor) -> None:
    supervisor = two_sqlite_workers
    topology = supervisor.topology
    assert topology is not None
    enterprise = SMALL.by_id["ent-88.101.1001"]
    handle = Handle.from_text(f"{enterprise.prefix}/WRITTEN-BEFORE-THE-CRASH")
    url = topology.url_of(enterprise.node_id)
    async with HandleClient(timeout=5.0) as client:
        create = Request(OpCode.CREATE_HANDLE, handle, values=(HandleValue(1, "URL", "https://id.example.cn/x"),))
        reply = await client.send(url, create, credentials=(owner_identity(handle.prefix), enterprise.secret))
        assert reply.ok
        number = topology.workers[enterprise.node_id]
        shard = supervisor.shards[number]
        assert isinstance(shard, ProcessShard)
        os.kill(shard.process.pid or 0, signal.SIGKILL)
        await eventually(lambda: supervisor.restarts == 1, 10, every=0.05, what="the killed worker restarted")
        assert supervisor.restarts == 1, "the supervisor restarted the worker"
        assert supervisor.shards[number] is not shard
        assert topology.url_of(enterprise.node_id) == url, "same port after the restart"
        res = await client.resolve(handle, topology.root_sites)
        assert res.result is not None and res.result.ok, res.result
        assert [v.data for v in res.result.values if v.type == "URL"] == ["https://id.example.cn/x"]
        seeded = json.loads((topology.state_dir / "topology.json").read_text())["examples"][0]
        res = await client.resolve(Handle.from_text(seeded), topology.root_sites)
        assert res.result is not None and res.result.ok
    # the restarted worker listens natively again on the port its secondary's HS_SITE names
    async with NativeTransport("tcp", timeout=5.0) as native:
        res = await native.resolve(handle, topology.root_sites)
        assert res.result is not None and res.result.ok, res.result


@pytest.mark.slow
async def test_the_plan_topology_in_two_workers(tmp_path: Path) -> None:
    """1,023 nodes: the address map is far larger than a pipe's buffer, so it must cross whole (a worker once read
    it half-way when its event loop had made the pipe non-blocking)."""
    plan = build_plan(load_config(CONFIGS / "plan.toml").with_overrides(base_port=0, identifiers_per_enterprise=3))
    supervisor = Supervisor(plan, tmp_path / "state", ProcessEngine(), 2, store_kind="memory")
    topology = await supervisor.boot()
    try:
        assert len(topology.addresses) == len(plan.nodes) == 1023
        async with HandleClient(timeout=5.0) as client:
            for enterprise in plan.enterprises[::97]:
                handle = Handle.from_text(f"{enterprise.prefix}/{suffix_for(enterprise, 2)}")
                res = await client.resolve(handle, topology.root_sites)
                assert res.result is not None and res.result.ok, (handle, res.result)
    finally:
        await supervisor.stop()


def test_up_with_workers_serves_the_cli_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    root = ROOT
    cli = [sys.executable, "-m", "handlesim.cli"]
    state = tmp_path / "state"
    proc = subprocess.Popen([*cli, "up", "--config", "configs/small.toml", "--base-port", "0", "--workers", "2",
                             "--state-dir", str(state)], cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    assert proc.stdout is not None
    try:
        ready = next((line for line in proc.stdout if line.startswith("ready:")), "")
        assert "in 2 process workers" in ready, proc.stderr.read() if proc.stderr else ""
        found = subprocess.run([*cli, "resolve", "--state-dir", str(state), "--trace", "88.101.1001/PUMP-000001"],
                               cwd=root, capture_output=True, text=True, timeout=30)
        assert found.returncode == 0 and "hop 3" in found.stdout, found.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        _, errors = proc.communicate(timeout=30)
    assert proc.returncode == 0, errors
    assert not (state / "topology.json").exists(), "a clean stop removes topology.json"
    pids = [int(p) for p in re.findall(r"worker \d: pid (\d+)", errors)]
    assert len(pids) == 2
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_worker_options_are_checked(tmp_path: Path) -> None:
    root = ROOT
    for args, message in ((["--workers", "none"], "--workers 'none'"),
                          (["--ray-address", "auto"], "need --engine ray")):
        result = subprocess.run([sys.executable, "-m", "handlesim.cli", "up", "--config", "configs/small.toml",
                                 "--base-port", "0", "--state-dir", str(tmp_path / "s"), *args],
                                cwd=root, capture_output=True, text=True, timeout=30)
        assert result.returncode != 0 and message in result.stderr, result.stderr


@pytest.mark.slow
async def test_a_worker_that_cannot_come_back_is_reported_and_left_down(two_workers: Supervisor) -> None:
    supervisor = two_workers
    topology = supervisor.topology
    assert topology is not None
    messages: list[str] = []
    supervisor.report = messages.append
    shard = supervisor.shards[0]
    assert isinstance(shard, ProcessShard)
    host, port = topology.addresses[shard.spec.node_ids[0]]
    os.kill(shard.process.pid or 0, signal.SIGKILL)
    squatter = socket.socket()
    try:
        for _ in range(100):  # the port frees as soon as the kernel closes the dead worker's socket
            try:
                squatter.bind((host, port))
                break
            except OSError:
                await asyncio.sleep(0.01)
        squatter.listen()
        # three attempts, a second apart
        await eventually(lambda: 0 in supervisor.given_up, 15, every=0.05, what="the supervisor giving up")
        assert supervisor.given_up == {0} and supervisor.restarts == 0
        assert any("giving up" in m for m in messages) and any("cannot listen" in m for m in messages), messages
        # the other worker's nodes still answer
        other = next(n for n in supervisor.specs[1].node_ids if SMALL.by_id[n].role == "enterprise")
        async with HandleClient(timeout=5.0) as client:
            handle = Handle.from_text(f"{SMALL.by_id[other].prefix}/{suffix_for(SMALL.by_id[other], 1)}")
            reply = await client.send(topology.url_of(other), Request(OpCode.RESOLUTION, handle))
            assert reply.ok
    finally:
        squatter.close()


async def test_workers_report_upward_across_processes_and_each_serves_metrics(two_workers: Supervisor) -> None:
    """Operations monitoring in worker mode: every worker reports for its nodes to parents in other processes and
    serves /metrics for its own nodes; topology.json lists every worker's metrics URL."""
    import aiohttp
    from prometheus_client.parser import text_string_to_metric_families

    topology = two_workers.topology
    assert topology is not None
    state = json.loads((topology.state_dir / "topology.json").read_text())
    assert len(state["metrics_urls"]) == 2
    root = topology.url_of("root-qingdao")
    async with aiohttp.ClientSession() as session:
        hosted: set[str] = set()
        for url in state["metrics_urls"]:
            async with session.get(url) as reply:
                assert reply.status == 200
                text = await reply.text()
            families = list(text_string_to_metric_families(text))
            hosted |= {s.labels["node"] for f in families for s in f.samples if "node" in s.labels}
        assert hosted == {n.node_id for n in SMALL.nodes}  # together the workers expose every node, once each
        reporters = {n.node_id for n in SMALL.nodes if n.role in ("secondary", "enterprise")}
        seen: set[str] = set()
        deadline = asyncio.get_running_loop().time() + 15  # small.toml reports every 2 s
        while not reporters <= seen and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.5)
            async with session.get(root + "/api/reports") as reply:
                seen = {row["node"] for row in (await reply.json())["nodes"]}
    assert reporters <= seen, f"never reached the root: {sorted(reporters - seen)}"
