"""The native Handle protocol through a real `handlesim up` (configs/small.toml): the RFC-only client bootstraps from
the client configuration directory `up` writes and walks root -> secondary -> enterprise over UDP and TCP; `resolve
--protocol native` gives the trace REST gives; a short `bench --protocol native`; garbage on a node's native ports
never takes it down. Faults on native ports are in test_native_faults.py."""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from handlesim.topology.state import TopologyState, load_state

from ..support import rfcclient as rfc
from ..support.processes import handlesim, up_process
from ..support.waiting import eventually

PUMP = "88.101.1001/PUMP-000001"
UP_ARGS = ("--config", "configs/small.toml", "--base-port", "0", "--store", "memory", "--net", "loopback",
           "--metrics-port", "-1")


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TopologyState]:
    state_dir = tmp_path_factory.mktemp("native-up")
    with up_process(*UP_ARGS, "--state-dir", str(state_dir)) as up:
        assert up.printed("  native ") is not None  # the ready banner says where the client config is
        yield load_state(state_dir)


def stats_of(state: TopologyState, node_id: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{state.node(node_id).url}/_sim/stats", timeout=5) as reply:  # noqa: S310
        stats: dict[str, Any] = json.loads(reply.read())
    return stats


def test_topology_json_records_native_ports(running: TopologyState) -> None:
    ports = [n.native_port for n in running.nodes]
    assert all(ports) and len(set(ports)) == len(ports)
    assert all(n.native_port != n.port for n in running.nodes)
    root = running.roots[0]
    assert root.native_port == running.node(root.id).native_port
    interfaces = {i.protocol: i.port for i in running.root_sites[0].servers[0].interfaces}
    assert interfaces == {"HTTP": root.port, "TCP": root.native_port, "UDP": root.native_port}


def test_client_config_dir_names_the_roots(running: TopologyState) -> None:
    directory = running.state_dir / "handle-client"
    assert sorted(p.name for p in directory.iterdir()) == ["README.txt", "bootstrap_handles", "config.dct"]
    assert '"auto_update_root_info" = "no"' in (directory / "config.dct").read_text()
    root = running.roots[0]
    for transport in ("udp", "tcp"):
        assert rfc.bootstrap_roots(directory, transport) == [(root.host, root.native_port)]
    assert f"-Dnet.handle.configDir={directory.resolve()}" in (directory / "README.txt").read_text()


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_rfc_client_bootstraps_from_the_config_dir_and_walks(running: TopologyState, transport: str) -> None:
    root = rfc.bootstrap_roots(running.state_dir / "handle-client", transport)[0]
    walk = await rfc.RfcClient(transport).resolve(PUMP, root)
    assert [(h.query, h.code) for h in walk.hops] == [("0.NA/88.101.1001", 303), ("0.NA/88.101.1001", 1),
                                                      (PUMP, 1)]
    secondary, enterprise = running.node("sec-machinery"), running.node("ent-88.101.1001")
    assert [h.server for h in walk.hops[1:]] == [(secondary.host, secondary.native_port),
                                                 (enterprise.host, enterprise.native_port)]
    assert {v.type: v.data for v in walk.answer.values}["URL"] == f"https://id.example.cn/{PUMP}".encode()


async def test_roots_serve_the_root_service_and_the_trust_root(running: TopologyState) -> None:
    root = running.roots[0]
    client = rfc.RfcClient("udp")
    service = await client.ask((root.host, root.native_port), rfc.message(
        rfc.OC_RESOLUTION, rfc.resolution_body("0.NA/0.NA", ["HS_SITE"]), rfc.FLAG_PUBL))
    assert service.code == rfc.RC_SUCCESS
    servers = [s for v in service.values for s in rfc.parse_site(v.data)]
    assert [(s.address, s.ports) for s in servers] == [(root.host, {rfc.PROTO_UDP: root.native_port,
                                                                    rfc.PROTO_TCP: root.native_port,
                                                                    2: root.port})]
    trust = await client.ask((root.host, root.native_port), rfc.message(
        rfc.OC_RESOLUTION, rfc.resolution_body("0.0/0.0"), rfc.FLAG_PUBL))
    assert trust.code == rfc.RC_SUCCESS and not [v for v in trust.values if v.type == "HS_PUBKEY"]


def test_resolve_protocol_native_gives_the_rest_trace(running: TopologyState) -> None:
    walks = {}
    for args in ((), ("--protocol", "native"), ("--protocol", "native", "--native-transport", "tcp")):
        done = handlesim("resolve", PUMP, "--state-dir", str(running.state_dir), "--json", *args)
        assert done.returncode == 0, done.stderr
        answer = json.loads(done.stdout)
        walks[args] = ([(h["site"], h["asked"], h["code"]) for h in answer["trace"]],
                       [(v["index"], v["type"]) for v in answer["values"]], answer["protocol"])
    rest = walks[()]
    assert rest[0] == [("root-qingdao", "0.NA/88.101.1001", 303), ("sec-machinery", "0.NA/88.101.1001", 1),
                       ("ent-88.101.1001", PUMP, 1)]
    assert walks[("--protocol", "native")][:2] == rest[:2]
    assert walks[("--protocol", "native", "--native-transport", "tcp")][:2] == rest[:2]
    assert [w[2] for w in walks.values()] == ["rest", "native-udp", "native-tcp"]


def test_resolve_native_via_the_resolver_and_a_missing_handle(running: TopologyState) -> None:
    via = handlesim("resolve", PUMP, "--state-dir", str(running.state_dir), "--protocol", "native", "--via",
                    "resolver", "--json")
    assert via.returncode == 0, via.stderr
    assert json.loads(via.stdout)["responseCode"] == 1
    missing = handlesim("resolve", "88.101.1001/NO-SUCH", "--state-dir", str(running.state_dir), "--protocol",
                        "native")
    assert missing.returncode == 1 and "100 handle not found" in missing.stderr


def test_native_requests_are_in_the_node_stats(running: TopologyState) -> None:
    enterprise = stats_of(running, "ent-88.101.1001")
    native = enterprise["native"]
    assert native["udp_port"] == native["tcp_port"] == running.node("ent-88.101.1001").native_port
    assert native["udp_messages"] + native["tcp_messages"] > 0
    assert enterprise["requests"]["resolution"]["1"] >= native["answers"].get("1", 0) > 0


@pytest.mark.slow
def test_short_native_bench(running: TopologyState, tmp_path: Path) -> None:
    done = handlesim("bench", "--state-dir", str(running.state_dir), "--protocol", "native", "--mode", "direct",
                     "--rate", "100", "--duration", "1", "--warmup", "0.5", "--no-baseline", "--out", str(tmp_path),
                     "--name", "native", timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads((tmp_path / "native.json").read_text())
    assert result["config"]["protocol"] == "native" and result["config"]["native_transport"] == "udp"
    assert result["run"]["completed"] > 0 and result["run"]["errors"] == 0
    assert "direct over native UDP" in (tmp_path / "native.md").read_text()


def test_native_bench_refuses_mixed(running: TopologyState, tmp_path: Path) -> None:
    done = handlesim("bench", "--state-dir", str(running.state_dir), "--protocol", "native", "--mode", "mixed",
                     "--duration", "1", "--out", str(tmp_path))
    assert done.returncode != 0 and "runs over REST only" in done.stderr


async def test_garbage_on_native_ports_never_takes_a_node_down(running: TopologyState) -> None:
    node = running.node("ent-88.101.1001")
    address = (node.host, node.native_port)
    junk = [b"", b"\x00", b"\xff" * 19, rfc.envelope(0, 1, 0, 10_000_000) + b"x",  # wrong length, huge count
            rfc.envelope(0, 2, 0, 30, version=(9, 9)) + b"\x00" * 30,  # a version nobody speaks
            rfc.envelope(0, 3, 0, 28) + struct.pack(">IIIHBBII", 1, 0, 0, 0, 0, 0, 0, 0xFFFFFFF0)]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        for packet in junk:
            udp.sendto(packet, address)
    for stream in (b"\x02" * 7, rfc.envelope(0, 4, 0, 0x7FFFFFFF), b"GET / HTTP/1.1\r\n\r\n"):
        reader, writer = await asyncio.open_connection(*address)
        writer.write(stream)
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    async def answers() -> bool:
        walk = await rfc.RfcClient("udp").ask(address, rfc.message(
            rfc.OC_RESOLUTION, rfc.resolution_body(PUMP), rfc.FLAG_PUBL))
        return walk.code == rfc.RC_SUCCESS

    await eventually(answers, within=10, what="the node answering again")
    native = stats_of(running, node.id)["native"]
    assert native["protocol_errors"] + native["dropped"] >= 4
