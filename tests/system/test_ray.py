"""The Ray engine: the small topology's shards as async actors on a local Ray instance (two CPUs, no dashboard),
every node on 127.0.0.1, resolved over plain HTTP through the hierarchy and through the resolver."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from handlesim.core.handle import Handle
from handlesim.net.client import HandleClient
from handlesim.net.nativeclient import NativeTransport
from handlesim.topology.config import load_config
from handlesim.topology.plan import build_plan
from handlesim.topology.supervisor import Supervisor

from ..support.paths import CONFIGS
from ..support.waiting import eventually

ray = pytest.importorskip("ray")



@pytest.fixture(scope="module")
def ray_engine() -> Iterator[object]:
    from handlesim.topology.ray_engine import RayEngine

    engine = RayEngine(None, num_cpus=2)
    try:
        yield engine
    finally:
        engine.shutdown()


@pytest.fixture
async def on_ray(ray_engine: object, tmp_path: Path) -> AsyncIterator[Supervisor]:
    plan = build_plan(load_config(CONFIGS / "small.toml").with_overrides(base_port=0))
    supervisor = Supervisor(plan, tmp_path / "state", ray_engine, 2, store_kind="memory")  # type: ignore[arg-type]
    await supervisor.boot()
    try:
        yield supervisor
    finally:
        await supervisor.stop()


# Ray's own deprecations (from its modules only) must not turn into test errors under filterwarnings = error
@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning:ray")
async def test_ray_actors_host_the_topology_and_resolve(on_ray: Supervisor) -> None:
    topology = on_ray.topology
    assert topology is not None
    state = json.loads((topology.state_dir / "topology.json").read_text())
    assert state["engine"] == "ray" and state["workers"] == 2
    assert all(n["host"] == "127.0.0.1" for n in state["nodes"])
    assert len({s["pid"] for s in on_ray.statuses.values()}) == 2, "two actors, two processes"
    async with HandleClient(timeout=5.0) as client:
        example = Handle.from_text(state["examples"][0])
        res = await client.resolve(example, topology.root_sites)
        assert res.result is not None and res.result.ok, res.result
        assert len({topology.workers[hop.site] for hop in res.trace}) == 2, "the hops cross actors"
        answer = await client.resolve_via(topology.url_of("resolver-qingdao"), example)
        assert answer.ok
    async with NativeTransport("udp", timeout=5.0) as native:  # the actors' nodes speak the native protocol too
        res = await native.resolve(example, topology.root_sites)
        assert res.result is not None and res.result.ok, res.result


@pytest.mark.filterwarnings("ignore::DeprecationWarning:ray")
async def test_a_killed_actor_is_replaced_on_the_same_ports(on_ray: Supervisor) -> None:
    from handlesim.topology.ray_engine import RayShard

    topology = on_ray.topology
    assert topology is not None
    watcher = asyncio.ensure_future(on_ray.watch())
    try:
        number = topology.workers["ent-88.101.1001"]
        shard = on_ray.shards[number]
        assert isinstance(shard, RayShard)
        url = topology.url_of("ent-88.101.1001")
        native_port = topology.native_ports["ent-88.101.1001"]
        ray.kill(shard.actor)
        await eventually(lambda: on_ray.restarts == 1, 10, every=0.05, what="the killed actor replaced")
        assert on_ray.restarts == 1 and on_ray.shards[number] is not shard
        assert topology.url_of("ent-88.101.1001") == url
        assert topology.native_ports["ent-88.101.1001"] == native_port
        async with HandleClient(timeout=5.0) as client:
            res = await client.resolve(Handle.from_text("88.101.1001/PUMP-000001"), topology.root_sites)
            assert res.result is not None and res.result.ok, res.result
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)


@pytest.mark.filterwarnings("ignore::DeprecationWarning:ray")
async def test_bench_generators_run_as_ray_tasks(on_ray: Supervisor) -> None:
    from handlesim.bench.runner import BenchConfig, run_bench
    from handlesim.topology.state import load_state

    assert on_ray.topology is not None
    state = load_state(on_ray.topology.state_dir)
    config = BenchConfig(mode="direct", rate=200, duration=1.0, warmup=0.5, connections=4, processes=2,
                         baseline=False, ray_address="local")
    result = await asyncio.to_thread(run_bench, state, config)  # the nodes' actors keep serving meanwhile
    run = result["run"]
    assert run["errors"] == 0 and run["completed"] == 200, run
    assert run["achieved_rate"] > 150


@pytest.mark.filterwarnings("ignore::DeprecationWarning:ray")
async def test_ray_actors_serve_partitioned_sites_over_tls_under_the_network_model(ray_engine: object,
                                                                                   tmp_path: Path) -> None:
    """Each actor builds its TLS contexts (from the supervisor's certificate files) and its network model."""
    from handlesim.topology.config import parse_config
    from handlesim.topology.seed import identifiers_for
    from handlesim.topology.state import load_state

    from ..node.test_partition import partitioned_config

    data = partitioned_config("handle")
    data["network"] = {"regions": [{"name": "Qingdao", "latitude": 36.07, "longitude": 120.38}], "jitter": "none"}
    plan = build_plan(parse_config(data, "test"))
    supervisor = Supervisor(plan, tmp_path / "state", ray_engine, 2, store_kind="memory",  # type: ignore[arg-type]
                            tls=True, net="model")
    topology = await supervisor.boot()
    try:
        state = load_state(topology.state_dir)
        assert state.net == "model" and all(n.url.startswith("https://") for n in state.nodes)
        enterprise = plan.enterprises[0]
        async with HandleClient(timeout=5.0, ssl_context=state.ssl_context()) as client:
            for record in identifiers_for(enterprise, plan.config.seed)[:3]:
                res = await client.resolve(record.handle, state.root_sites)
                assert res.result is not None and res.result.ok, res.trace
                answer = await client.resolve_via(topology.url_of("resolver-qingdao"), record.handle)
                assert answer.ok
                walk = answer.extra["trace"]
                assert isinstance(walk, list) and walk[-1]["modelled_ms"] > 0  # earlier hops may be cached
    finally:
        await supervisor.stop()
