"""The plan's node counts, really booted: 2 roots, 20 secondaries, 1,000 enterprises on loopback (memory stores)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from handlesim.core.handle import Handle
from handlesim.net.client import HandleClient
from handlesim.topology.config import load_config
from handlesim.topology.plan import build_plan
from handlesim.topology.runner import launch
from handlesim.topology.seed import suffix_for

from ..support.paths import CONFIGS


@pytest.mark.slow
async def test_plan_topology_boots_and_resolves_a_sample(tmp_path: Path) -> None:
    config = load_config(CONFIGS / "plan.toml").with_overrides(base_port=0, identifiers_per_enterprise=5)
    plan = build_plan(config)
    topology = await launch(plan, tmp_path / "state", store_kind="memory")
    try:
        roles = [n.plan.role for n in topology.nodes.values()]
        assert roles.count("root") == 2 and roles.count("secondary") == 20 and roles.count("enterprise") == 1000
        ports = {n.server.port for n in topology.nodes.values()}
        assert len(ports) == len(topology.nodes), "every node listens on its own port"
        rng = random.Random(1)
        sample = rng.sample(plan.enterprises, 40)
        async with HandleClient(timeout=5.0) as client:
            for node in sample:
                serial = rng.randint(1, 5)
                handle = Handle.from_text(f"{node.prefix}/{suffix_for(node, serial)}")
                res = await client.resolve(handle, topology.root_sites)
                assert res.result is not None and res.result.ok, (handle, res.result)
                assert [topology.nodes[h.site].plan.role for h in res.trace] == ["root", "secondary", "enterprise"]
                assert res.trace[1].site == node.parent_id
        # both roots hold the whole root registry (multi-primary), so either can start a walk
        beijing = [n.site for n in topology.nodes.values() if n.plan.node_id == "root-beijing"]
        async with HandleClient(timeout=5.0) as client:
            node = sample[0]
            res = await client.resolve(Handle.from_text(f"{node.prefix}/{suffix_for(node, 1)}"),
                                       [s for s in beijing if s is not None])
            assert res.result is not None and res.result.ok and res.trace[0].site == "root-beijing"
    finally:
        await topology.stop()
