"""Fault injection reaches the native interface as it reaches REST (configs/small.toml, launched in this process):
a killed node is silent on UDP and refuses TCP until started again on the same port; a paused or partitioned node
holds native requests and answers them once resumed or healed; a native client's walk fails over in words."""

from __future__ import annotations

import asyncio
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from handlesim.core.handle import Handle
from handlesim.net.nativeclient import NativeTransport
from handlesim.topology.config import parse_config
from handlesim.topology.runner import describe
from handlesim.topology.running import Topology

from ..support import rfcclient as rfc
from ..support.paths import ROOT
from ..support.topologies import running

PUMP = "88.101.1001/PUMP-000001"
ENTERPRISE = "ent-88.101.1001"


@pytest.fixture
async def topology(tmp_path: Path) -> AsyncIterator[Topology]:
    data = tomllib.loads((ROOT / "configs" / "small.toml").read_text(encoding="utf-8"))
    data["faults"] = True
    config = parse_config(data, "small.toml").with_overrides(base_port=0)
    async with running(config, tmp_path / "state", metrics_port=None) as topology:
        yield topology


def native_address(topology: Topology, node_id: str) -> tuple[str, int]:
    return topology.addresses[node_id][0], topology.native_ports[node_id]


def pump_query() -> bytes:
    return rfc.message(rfc.OC_RESOLUTION, rfc.resolution_body(PUMP), rfc.FLAG_PUBL)


async def fault(topology: Topology, action: str, **fields: object) -> None:
    assert topology.faults is not None
    await topology.faults.apply({"action": action, **fields})


async def test_a_killed_node_is_silent_on_udp_and_refuses_tcp_until_started(topology: Topology) -> None:
    address = native_address(topology, ENTERPRISE)
    assert (await rfc.RfcClient("udp").ask(address, pump_query())).code == rfc.RC_SUCCESS
    await fault(topology, "kill", node=ENTERPRISE)
    with pytest.raises(TimeoutError):
        await rfc.RfcClient("udp", timeout=0.3).ask(address, pump_query())
    with pytest.raises(ConnectionRefusedError):
        await rfc.RfcClient("tcp", timeout=0.3).ask(address, pump_query())
    await fault(topology, "start", node=ENTERPRISE)
    assert topology.native_ports[ENTERPRISE] == address[1]
    for transport in ("udp", "tcp"):
        assert (await rfc.RfcClient(transport).ask(address, pump_query())).code == rfc.RC_SUCCESS


async def test_a_paused_node_holds_native_requests_until_resumed(topology: Topology) -> None:
    address = native_address(topology, ENTERPRISE)
    await fault(topology, "pause", node=ENTERPRISE)
    asked = {t: asyncio.ensure_future(rfc.RfcClient(t, timeout=10).ask(address, pump_query())) for t in ("udp", "tcp")}
    await asyncio.sleep(0.3)
    assert not any(task.done() for task in asked.values())
    await fault(topology, "resume", node=ENTERPRISE)
    for task in asked.values():
        assert (await asyncio.wait_for(task, 10)).code == rfc.RC_SUCCESS
    held = topology.nodes[ENTERPRISE].server.stats().native
    assert held is not None and held["held"] == 2


async def test_a_partition_from_clients_holds_native_requests_until_healed(topology: Topology) -> None:
    address = native_address(topology, ENTERPRISE)
    await fault(topology, "partition", a="client", b=ENTERPRISE)
    asked = asyncio.ensure_future(rfc.RfcClient("udp", timeout=10).ask(address, pump_query()))
    await asyncio.sleep(0.3)
    assert not asked.done()
    await fault(topology, "heal")
    assert (await asyncio.wait_for(asked, 10)).code == rfc.RC_SUCCESS


async def test_a_native_walk_to_a_killed_node_fails_in_words(topology: Topology) -> None:
    await fault(topology, "kill", node=ENTERPRISE)
    state = describe(topology)
    async with NativeTransport("udp", timeout=0.5, udp_waits=(0.1, 0.1)) as native:
        resolution = await native.resolve(Handle.from_text(PUMP), state.root_sites)
    assert resolution.result is not None and not resolution.result.ok
    last = resolution.trace[-1]
    assert last.site == ENTERPRISE and last.code is None and "connection refused" in last.outcome
    assert native.fallbacks == 1  # UDP got nothing, TCP was tried and refused
