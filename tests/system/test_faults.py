"""The network model applied on loopback, fault injection (and its gate), and scheduled fault scenarios."""

from __future__ import annotations

import asyncio
import json
import time
import tomllib
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from handlesim.bench.runner import BenchConfig, run_bench
from handlesim.bench.scenario import ScenarioError, parse_scenario
from handlesim.core.codes import OpCode, ResponseCode
from handlesim.core.errors import TransportError
from handlesim.core.handle import Handle
from handlesim.core.messages import Request
from handlesim.net.client import HandleClient
from handlesim.net.shaping import NetPath
from handlesim.topology.config import parse_config
from handlesim.topology.network import client_path
from handlesim.topology.plan import build_plan
from handlesim.topology.runner import describe, launch
from handlesim.topology.running import Topology
from handlesim.topology.schema import TopologyConfig
from handlesim.topology.state import FaultsEntry, load_state

from ..support.paths import ROOT
from ..support.processes import handlesim, up_process

CONFIGS = ROOT / "configs"


def small_config(change: Callable[[dict[str, Any]], None] | None = None, *, faults: bool = False) -> TopologyConfig:
    """configs/small.toml, exact delays (no jitter, no loss) unless `change` says otherwise."""
    data = tomllib.loads((CONFIGS / "small.toml").read_text(encoding="utf-8"))
    data["network"].update(jitter="none", loss=0.0)
    data["faults"] = faults
    if change is not None:
        change(data)
    return parse_config(data, "small.toml").with_overrides(base_port=0)


@pytest.fixture
async def start(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    """Launch a topology (memory stores) in this event loop; every one started is stopped after the test."""
    running: list[Topology] = []

    async def go(config: TopologyConfig, net: str = "loopback") -> Topology:
        topology = await launch(build_plan(config), tmp_path / f"state{len(running)}", store_kind="memory", net=net)
        running.append(topology)
        return topology

    yield go
    for topology in running:
        await topology.stop()


def lookup(handle: str) -> Request:
    return Request(OpCode.RESOLUTION, Handle.from_text(handle), recursive=False)


async def fault(topology: Topology, body: dict[str, Any], *, via: str | None = None) -> tuple[int, dict[str, Any]]:
    """POST /_sim/fault to the control port (or to a node's URL)."""
    assert via is not None or topology.control is not None
    url = via or f"http://127.0.0.1:{topology.control.port}"  # type: ignore[union-attr]
    async with aiohttp.ClientSession() as http, http.post(url + "/_sim/fault", json=body) as reply:
        return reply.status, await reply.json()


# -- the gate --------------------------------------------------------------------------------------------------------

async def test_sim_changes_are_refused_unless_fault_injection_is_on(start: Callable[..., Any]) -> None:
    topology = await start(small_config())
    root = topology.nodes["root-qingdao"].url
    async with aiohttp.ClientSession() as http:
        for method, path in (("POST", "/_sim/fault"), ("PUT", "/_sim/stats"), ("DELETE", "/_sim/fault"),
                             ("POST", "/_sim/anything")):
            async with http.request(method, root + path, json={"action": "kill", "node": "root-qingdao"}) as reply:
                body = await reply.json()
                assert reply.status == 403, (method, path)
                assert body["responseCode"] == ResponseCode.INSUFFICIENT_PERMISSIONS
                assert "--faults" in body["message"]
        async with http.get(root + "/_sim/fault") as reply:
            assert await reply.json() == {"enabled": False}
        async with http.get(root + "/_sim/nothing-here") as reply:
            assert reply.status == 404
    assert topology.control is None and describe(topology).faults == FaultsEntry(False, None)
    async with HandleClient(timeout=2.0) as client:  # nothing changed: the root still answers
        answer = await client.send(root, lookup("0.NA/88.101"))
    assert answer.code == ResponseCode.SUCCESS


# -- the network model -----------------------------------------------------------------------------------------------

async def test_modelled_delays_appear_in_traces_for_client_and_resolver_walks(start: Callable[..., Any]) -> None:
    topology = await start(small_config(), net="model")
    described = describe(topology)
    assert described.net == "model" and described.network is not None
    assert described.network["client_region"] == "Shanghai"
    model = topology.model
    assert model is not None

    def rtt(a: str, b: str) -> float:
        return model.link(a, b).delay + model.link(b, a).delay

    async with HandleClient(timeout=2.0) as client:
        client.net = client_path(described, None, timeout=2.0)
        resolution = await client.resolve(Handle.from_text("88.101.1003/PUMP-000001"), topology.root_sites)
        assert resolution.result is not None and resolution.result.ok
        expected = [rtt("Shanghai", "Qingdao"), rtt("Shanghai", "Qingdao"), rtt("Shanghai", "Beijing")]
        assert [hop.site for hop in resolution.trace] == ["root-qingdao", "sec-machinery", "ent-88.101.1003"]
        for hop, modelled in zip(resolution.trace, expected, strict=True):
            assert hop.modelled == pytest.approx(modelled, abs=1e-6)  # topology.json keeps delays to 0.1 us
            assert modelled - 0.002 <= hop.duration <= modelled + 0.1  # the event loop's timers: ~1 ms steps
        assert client.modelled == pytest.approx(sum(expected), abs=1e-6)

        resolver = topology.nodes["resolver-qingdao"].url
        answer = await client.resolve_via(resolver, Handle.from_text("88.101.1003/PUMP-000002"))
        walk = answer.extra["trace"]
        assert isinstance(walk, list)
        modelled_ms = [hop["modelled_ms"] for hop in walk]
        assert modelled_ms == pytest.approx([rtt("Qingdao", "Qingdao") * 1000] * 2
                                            + [rtt("Qingdao", "Beijing") * 1000], abs=0.002)

    async with HandleClient(timeout=2.0) as plain:  # loopback client: nothing modelled
        resolution = await plain.resolve(Handle.from_text("88.101.1001/PUMP-000001"), topology.root_sites)
        assert all(hop.modelled == 0 for hop in resolution.trace)


async def test_lost_messages_time_out_and_the_walk_fails_over(start: Callable[..., Any]) -> None:
    def two_roots_and_a_lossy_link(data: dict[str, Any]) -> None:
        data["roots"].insert(0, {"id": "root-beijing", "region": "Beijing"})
        data["network"]["links"] = [{"between": ["Shanghai", "Beijing"], "loss": 0.999}]

    topology = await start(small_config(two_roots_and_a_lossy_link), net="model")
    async with HandleClient(timeout=0.3) as client:
        client.net = client_path(describe(topology), None, timeout=0.3)
        started = time.perf_counter()
        first = await client.resolve(Handle.from_text("88.101.1001/PUMP-000001"), topology.root_sites)
        assert time.perf_counter() - started >= 0.3  # the lost message was waited for, like a real timeout
        assert first.result is not None and first.result.ok
        lost, *rest = first.trace
        assert lost.site == "root-beijing" and lost.code is None and "lost in the network model" in lost.outcome
        assert rest[0].site == "root-qingdao" and rest[0].code == ResponseCode.PREFIX_REFERRAL
        second = await client.resolve(Handle.from_text("88.101.1001/PUMP-000002"), topology.root_sites)
        assert second.trace[0].site == "root-qingdao"  # the silent root is tried last for a while


# -- faults ----------------------------------------------------------------------------------------------------------

async def test_each_fault_takes_effect_and_heals(start: Callable[..., Any]) -> None:
    topology = await start(small_config(faults=True))
    ent = topology.nodes["ent-88.101.1001"].url
    handle = "88.101.1001/PUMP-000001"
    async with HandleClient(timeout=0.5) as client:
        assert (await client.send(ent, lookup(handle))).ok  # a pooled keep-alive connection now exists

        for down in ("kill", "stop"):
            status, body = await fault(topology, {"action": down, "node": "ent-88.101.1001"})
            assert status == 200
            assert body["fault"]["down"] == {"ent-88.101.1001": {"kill": "killed", "stop": "stopped"}[down]}
            with pytest.raises(TransportError):
                await client.send(ent, lookup(handle))
            status, body = await fault(topology, {"action": "start", "node": "ent-88.101.1001"})
            assert status == 200 and body["fault"]["down"] == {}
            assert (await client.send(ent, lookup(handle))).ok  # same port, same data

        await fault(topology, {"action": "pause", "node": "ent-88.101.1001"})
        host, port = "127.0.0.1", topology.nodes["ent-88.101.1001"].server.port
        _, writer = await asyncio.open_connection(host, port)  # still accepts connections...
        writer.close()
        with pytest.raises(TransportError, match="timed out"):  # ...but answers nothing
            await client.send(ent, lookup(handle))
        await fault(topology, {"action": "resume", "node": "ent-88.101.1001"})
        assert (await client.send(ent, lookup(handle))).ok

        await fault(topology, {"action": "slow", "node": "ent-88.101.1001", "ms": 200})
        started = time.perf_counter()
        assert (await client.send(ent, lookup(handle))).ok
        assert time.perf_counter() - started >= 0.19
        await fault(topology, {"action": "slow", "node": "ent-88.101.1001", "ms": 0})
        started = time.perf_counter()
        assert (await client.send(ent, lookup(handle))).ok
        assert time.perf_counter() - started < 0.15

    async with HandleClient(timeout=0.5) as client, HandleClient(timeout=0.5) as anonymous:
        client.net = NetPath.create("client", "Shanghai", None, timeout=0.5)
        status, _ = await fault(topology, {"action": "partition", "a": ["client"], "b": ["ent-88.101.1001"]})
        assert status == 200
        with pytest.raises(TransportError, match="timed out"):
            await client.send(ent, lookup(handle))
        assert (await client.send(topology.nodes["ent-88.101.1002"].url, lookup("88.101.1002/PUMP-000001"))).ok
        assert (await anonymous.send(ent, lookup(handle))).ok  # requests that name no sender pass
        status, body = await fault(topology, {"action": "heal", "a": "client", "b": "ent-88.101.1001"})
        assert status == 200 and body["fault"]["partitions"] == []
        assert (await client.send(ent, lookup(handle))).ok


async def test_partitions_cut_node_to_node_walks_and_heal_restores_everything(start: Callable[..., Any]) -> None:
    topology = await start(small_config(faults=True))
    resolver = topology.nodes["resolver-qingdao"].url
    await fault(topology, {"action": "partition", "a": "resolver-qingdao", "b": "Beijing"})
    await fault(topology, {"action": "kill", "node": "ent-88.101.1002"})
    await fault(topology, {"action": "pause", "node": "sec-rubber"})
    async with HandleClient(timeout=5.0) as client:
        cut = await client.resolve_via(resolver, Handle.from_text("88.101.1003/PUMP-000001"))  # ent in Beijing
        assert cut.code == ResponseCode.ERROR and "no server answered" in cut.message
        assert (await client.resolve_via(resolver, Handle.from_text("88.101.1001/PUMP-000001"))).ok  # Qingdao
        status, body = await fault(topology, {"action": "heal"}, via=topology.nodes["root-qingdao"].url)
        assert status == 200
        assert body["fault"] | {"history": []} == {"enabled": True, "down": {}, "paused": [], "slow_ms": {},
                                                   "partitions": [], "history": []}
        for handle in ("88.101.1003/PUMP-000001", "88.101.1002/PUMP-000001", "88.106.3001/TIRE-000001"):
            answer = await client.resolve_via(resolver, Handle.from_text(handle))
            assert answer.code in (ResponseCode.SUCCESS, ResponseCode.HANDLE_NOT_FOUND), (handle, answer.message)
            assert "no server answered" not in answer.message


async def test_a_topology_with_held_requests_and_downed_nodes_stops_promptly(start: Callable[..., Any]) -> None:
    topology = await start(small_config(faults=True))
    await fault(topology, {"action": "pause", "node": "ent-88.101.1001"})
    await fault(topology, {"action": "kill", "node": "ent-88.101.1002"})
    async with HandleClient(timeout=30.0) as client:
        held = asyncio.ensure_future(client.send(topology.nodes["ent-88.101.1001"].url,
                                                 lookup("88.101.1001/PUMP-000001")))
        await asyncio.sleep(0.2)
        assert not held.done()
        started = time.perf_counter()
        await topology.stop()
        assert time.perf_counter() - started < 5
        await asyncio.wait_for(asyncio.gather(held, return_exceptions=True), 5)  # let go: answered or cut off


@pytest.mark.parametrize(("body", "message"), [
    ({"action": "explode", "node": "root-qingdao"}, "unknown action 'explode'"),
    ({"action": "kill", "node": "root-nowhere"}, "kill needs `node`"),
    ({"action": "slow", "node": "root-qingdao"}, "slow needs `ms`"),
    ({"action": "partition", "a": ["Lhasa"], "b": ["Qingdao"]}, "Lhasa: not a node id, region or 'client'"),
    ({"action": "heal", "a": "Qingdao", "b": "Beijing"}, "no partition between"),
    ({"action": "partition", "a": "root-qingdao", "b": "root-qingdao"}, "both sides take root-qingdao"),
    ({"action": "partition", "a": ["Qingdao"], "b": ["root-qingdao", "Beijing"]}, "both sides take root-qingdao"),
    ({"action": "partition", "a": "client", "b": ["client"]}, "both sides take client"),
])
async def test_bad_fault_requests_are_explained_and_change_nothing(start: Callable[..., Any], body: dict[str, Any],
                                                                   message: str) -> None:
    topology = await start(small_config(faults=True))
    status, answer = await fault(topology, body)
    assert status == 400 and message in answer["message"]
    status, answer = await fault(topology, {"action": "heal"})
    assert answer["fault"]["history"] == [{"at": answer["fault"]["history"][0]["at"], "action": "heal"}]


# -- scheduled scenarios ---------------------------------------------------------------------------------------------

def test_scenario_files_are_checked() -> None:
    good = parse_scenario({"events": [{"at": 2, "action": "start", "node": "n"}, {"at": 1, "action": "kill",
                                                                                  "node": "n"}]}, "s.toml")
    assert [e.at for e in good.events] == [1.0, 2.0] and good.events[0].label == "kill n"
    for data, message in (({"events": []}, "at least one"), ({"events": [{"at": -1, "action": "kill"}]}, "at"),
                          ({"events": [{"at": 1, "action": "nap", "node": "n"}]}, "'nap' is not one of"),
                          ({"events": [{"at": 1, "action": "kill"}]}, "kill needs the id of a node"),
                          ({"events": [{"at": 1, "action": "partition", "a": "x"}]}, "needs `a` and `b`"),
                          ({"events": [{"at": 1, "action": "kill", "node": "n", "when": 2}]}, "when: unknown key")):
        with pytest.raises(ScenarioError, match=message):
            parse_scenario(data, "s.toml")
    for path in (ROOT / "benchmarks" / "scenarios").glob("*.toml"):
        assert parse_scenario(tomllib.loads(path.read_text(encoding="utf-8")), str(path)).events


@pytest.mark.slow
async def test_a_scheduled_root_failure_produces_its_error_window(start: Callable[..., Any], tmp_path: Path) -> None:
    topology = await start(small_config(faults=True))
    scenario = tmp_path / "root.toml"
    scenario.write_text('[[events]]\nat = 1.0\naction = "kill"\nnode = "root-qingdao"\n'
                        '[[events]]\nat = 2.5\naction = "start"\nnode = "root-qingdao"\n')
    config = BenchConfig(mode="iterative-cold", rate=40, duration=4.0, warmup=0.5, connections=4, baseline=False,
                         timeout=0.5, scenario=str(scenario))
    result = await asyncio.to_thread(run_bench, load_state(topology.state_dir), config)  # the loop keeps serving
    events = result["events"]
    assert [e["label"] for e in events] == ["kill root-qingdao", "start root-qingdao"] and all(e["ok"] for e in events)
    assert abs(events[0]["second"] - 1.0) < 0.3 and abs(events[1]["second"] - 2.5) < 0.3
    timeline = {row["second"]: row for row in result["run"]["timeline"]}
    assert timeline[0]["errors"] == 0 and timeline[0]["completed"] >= 30
    assert timeline[1]["errors"] >= 0.8 * timeline[1]["completed"] > 0  # every walk starts at the dead root
    assert timeline[3]["errors"] == 0 and timeline[3]["completed"] >= 30
    assert result["scenario"]["name"] == "root" and topology.faults is not None and not topology.faults.down
    assert result["net"] == "loopback" and result["network"]["topology_net"] == "loopback"


@pytest.mark.slow
async def test_bench_under_the_model_says_so_and_pays_the_modelled_delays(start: Callable[..., Any]) -> None:
    topology = await start(small_config(), net="model")
    model = topology.model
    assert model is not None
    config = BenchConfig(mode="iterative-cold", rate=20, duration=1.5, warmup=0.3, connections=4, baseline=False)
    result = await asyncio.to_thread(run_bench, load_state(topology.state_dir), config)
    assert result["net"] == "model" and result["network"] == {"topology_net": "model", "client_region": "Shanghai"}
    # every walk: Shanghai -> root (Qingdao) -> secondary (Qingdao) -> enterprise (Qingdao or Beijing), both ways
    shortest = 2 * (3 * model.link("Shanghai", "Qingdao").delay)
    assert result["run"]["errors"] == 0
    assert result["run"]["latency_ms"]["p50_ms"] >= shortest * 1000 - 3


# -- the CLI ---------------------------------------------------------------------------------------------------------



@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    state = tmp_path_factory.mktemp("faults") / "state"
    with up_process("--config", "configs/small.toml", "--base-port", "0", "--store", "memory", "--faults",
                    "--state-dir", str(state)) as up:
        assert up.printed("  network    model") and up.printed("  faults     on")
        yield state


@pytest.mark.slow
def test_fault_commands_kill_and_heal_a_running_topology(running: Path) -> None:
    state = ["--state-dir", str(running)]
    handle = "88.101.1001/PUMP-000001"
    traced = handlesim("resolve", "--trace", "--json", handle, *state)
    assert traced.returncode == 0
    answer = json.loads(traced.stdout)
    assert answer["net"] == "model" and all(hop["modelled_ms"] > 10 for hop in answer["trace"])  # Shanghai->Qingdao
    assert handlesim("fault", "kill", "root-qingdao", *state).returncode == 0
    failed = handlesim("resolve", handle, "--timeout", "0.5", *state)
    assert failed.returncode == 1 and "no server answered" in failed.stderr
    status = json.loads(handlesim("fault", "status", "--json", *state).stdout)
    assert status["down"] == {"root-qingdao": "killed"}
    assert handlesim("fault", "heal", *state).returncode == 0
    assert handlesim("resolve", handle, "--net", "loopback", *state).returncode == 0
    refused = handlesim("fault", "slow", *state, "root-qingdao", "--", "-5")
    assert refused.returncode != 0 and "slow needs `ms`" in refused.stderr
    loopback = json.loads(handlesim("resolve", "--json", "--net", "loopback", handle, *state).stdout)
    assert all(hop["modelled_ms"] == 0 for hop in loopback["trace"])


@pytest.mark.slow
def test_write_commands_take_the_clients_network_path(running: Path) -> None:
    """register/delete/check follow the running topology's network: cut the CLI's client from Beijing (where
    ent-88.101.1003 sits) and a write to it times out; healed, it goes through."""
    state = ["--state-dir", str(running)]
    handle = "88.101.1003/NET-PATH-1"
    assert handlesim("fault", "partition", "client", "Beijing", *state).returncode == 0
    try:
        cut = handlesim("register", handle, "--value", "URL=https://example.cn/n", "--timeout", "0.5", *state)
        assert cut.returncode != 0 and "timed out" in cut.stderr, cut.stderr
    finally:
        assert handlesim("fault", "heal", *state).returncode == 0
    # (the cut request was held, as TCP would retransmit it, and may have gone through at the heal)
    written = handlesim("register", handle, "--overwrite", "--value", "URL=https://example.cn/n", *state)
    assert written.returncode == 0, written.stderr
    assert handlesim("check", handle, *state).returncode == 0
    assert handlesim("delete", handle, *state).returncode == 0
