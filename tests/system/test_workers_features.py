"""The other features in worker processes: hash-partitioned sites (servers of one site in different workers, a
restarted server's share and delegations back even from memory stores), TLS and the network model (each worker
builds both from the plan and the state dir), the teaching page for a worker topology over TLS (read-only), and what
`up --workers` refuses (fault injection)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from handlesim.core.handle import Handle
from handlesim.core.values import handle_hash
from handlesim.demo.web import DemoWeb, DemoWebConfig
from handlesim.net.client import HandleClient
from handlesim.topology.config import parse_config
from handlesim.topology.plan import build_plan
from handlesim.topology.running import LaunchError
from handlesim.topology.seed import identifiers_for
from handlesim.topology.state import load_state
from handlesim.topology.supervisor import ProcessEngine, ProcessShard, Supervisor

from ..node.test_partition import partitioned_config
from ..support.paths import ROOT
from ..support.waiting import eventually
from .test_faults import small_config


async def test_partitioned_sites_over_tls_span_workers_and_a_killed_server_comes_back(tmp_path: Path) -> None:
    plan = build_plan(parse_config(partitioned_config("handle"), "test"))
    supervisor = Supervisor(plan, tmp_path / "state", ProcessEngine(), 2, store_kind="memory", tls=True)
    topology = await supervisor.boot()
    watcher = asyncio.ensure_future(supervisor.watch())
    try:
        state = load_state(topology.state_dir)
        assert state.tls is not None and all(n.url.startswith("https://") for n in state.nodes)
        machinery = plan.by_id["sec-machinery"]
        assert {topology.workers[s] for s in plan.servers_of(machinery.node_id)} == {0, 1}, "one site, two workers"
        enterprises = [plan.by_id[c] for c in plan.children_of(machinery.node_id)]

        async def every_identifier_resolves_at_its_server() -> None:
            async with HandleClient(timeout=5.0, ssl_context=state.ssl_context()) as client:
                for enterprise in enterprises:
                    site = topology.site_of(enterprise.node_id)
                    assert len(site.servers) == 3 and site.servers[0].http_interface().protocol == "HTTPS"
                    for record in identifiers_for(enterprise, plan.config.seed)[:4]:
                        index = handle_hash(record.handle, site.hash_option) % 3
                        holders = {topology.url_of(plan.servers_of(enterprise.node_id)[index]),
                                   topology.url_of(plan.servers_of(f"{enterprise.node_id}-mirror1")[index])}
                        walked = await client.resolve(record.handle, state.root_sites)
                        assert walked.result is not None and walked.result.ok, walked.trace
                        assert walked.trace[-1].server in holders

        await every_identifier_resolves_at_its_server()
        secondary_site = topology.site_of(machinery.node_id)
        assert any(handle_hash(Handle.from_text(f"0.NA/{e.prefix}"), secondary_site.hash_option) % 2 == 1
                   for e in enterprises), "the second server holds some of the delegated prefix handles"
        # the worker hosting the secondary's second server dies: with memory stores its share of the delegated
        # prefix handles is gone, and the restarted worker writes them again (as well as its enterprises' shares)
        number = topology.workers["sec-machinery-server2"]
        shard = supervisor.shards[number]
        assert isinstance(shard, ProcessShard)
        os.kill(shard.process.pid or 0, signal.SIGKILL)
        await eventually(lambda: supervisor.restarts == 1, 15, every=0.05, what="the killed worker restarted")
        assert supervisor.restarts == 1
        await every_identifier_resolves_at_its_server()
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
        await supervisor.stop()


async def test_workers_apply_the_network_model_to_their_nodes_walks(tmp_path: Path) -> None:
    plan = build_plan(small_config())
    supervisor = Supervisor(plan, tmp_path / "state", ProcessEngine(), 2, store_kind="memory", net="model")
    topology = await supervisor.boot()
    try:
        described = load_state(topology.state_dir)
        assert described.net == "model" and described.network_model is not None
        assert described.network_model.client_region == "Shanghai"
        model = topology.model
        assert model is not None

        def rtt_ms(a: str, b: str) -> float:
            return (model.link(a, b).delay + model.link(b, a).delay) * 1000

        resolver = "resolver-qingdao"
        async with HandleClient(timeout=5.0) as client:
            beijing = identifiers_for(plan.by_id["ent-88.101.1003"], plan.config.seed)[1].handle  # ent in Beijing
            answer = await client.resolve_via(topology.url_of(resolver), beijing)
        assert answer.ok
        walk = answer.extra["trace"]
        assert isinstance(walk, list)
        assert len({topology.workers[resolver], *(topology.workers[hop["site"]] for hop in walk)}) == 2
        assert [hop["modelled_ms"] for hop in walk] == pytest.approx(
            [rtt_ms("Qingdao", "Qingdao")] * 2 + [rtt_ms("Qingdao", "Beijing")], abs=0.002)
    finally:
        await supervisor.stop()


async def test_the_page_shows_and_resolves_a_worker_topology_over_tls(tmp_path: Path) -> None:
    supervisor = Supervisor(build_plan(small_config()), tmp_path / "state", ProcessEngine(), 2, store_kind="memory",
                            tls=True)
    topology = await supervisor.boot()
    page = DemoWeb(load_state(topology.state_dir), DemoWebConfig(poll_interval=0.0))  # `up --workers 2 --web`
    port = await page.start("127.0.0.1", 0)
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/api/topology") as reply:
                data = await reply.json()
            assert len(data["nodes"]) == 11 and all(n["up"] for n in data["nodes"]), "polled over HTTPS"
            assert data["controllable"] is False, "the nodes live in the workers"
            async with http.get(f"http://127.0.0.1:{port}/api/lookup",
                                params={"handle": data["examples"][0]}) as reply:
                assert (await reply.json())["ok"]
    finally:
        await page.stop()
        await supervisor.stop()


def test_fault_injection_and_tls_on_other_machines_are_refused_with_workers(tmp_path: Path) -> None:
    with pytest.raises(LaunchError, match="--faults is not supported with --workers"):
        Supervisor(build_plan(small_config(faults=True)), tmp_path / "s", ProcessEngine(), 2)
    with pytest.raises(LaunchError, match="--tls is not supported with --bind-node-ip"):
        Supervisor(build_plan(small_config()), tmp_path / "s", ProcessEngine(), 2, tls=True, bind_host="10.0.0.5")
    result = subprocess.run([sys.executable, "-m", "handlesim.cli", "up", "--config", "configs/small.toml",
                             "--base-port", "0", "--state-dir", str(tmp_path / "s"), "--workers", "2", "--faults"],
                            cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert result.returncode != 0 and "--faults is not supported with --workers" in result.stderr, result.stderr
    assert not (tmp_path / "s" / "topology.json").exists()
