"""The native interface in the plan and the files `up` writes for it (pure): port scheme, `[native]` checks, the
roots' records, sites listing TCP and UDP beside HTTP, and the Handle.Net client configuration's content."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from handlesim.core.prefixes import TRUST_ROOT, http_site, with_native_interfaces
from handlesim.core.values import HS_SITE
from handlesim.topology import ports
from handlesim.topology.clientconfig import CONFIG_DCT, bootstrap_handles, trust_root_description, usage
from handlesim.topology.config import ConfigError, load_config, parse_config
from handlesim.topology.plan import Role, build_plan
from handlesim.topology.state import FORMAT_VERSION, FaultsEntry, NodeEntry, RootEntry, TopologyState, parse_state
from handlesim.topology.statedir import CLIENT_DIR, CLIENT_FILES, remove_state

from ..support.paths import CONFIGS

MINIMAL = 'name = "t"\n[[roots]]\nid = "r"\n[[secondaries]]\nid = "s"\nprefix = "88.101"\n'


def test_native_port_is_the_http_port_plus_the_offset() -> None:
    plan = build_plan(load_config(CONFIGS / "plan.toml"))
    assert [n.native_port for n in plan.nodes] == [n.port + 10_000 for n in plan.nodes]
    small = build_plan(load_config(CONFIGS / "small.toml"))
    assert (small.nodes[0].port, small.nodes[0].native_port) == (19000, 29000)


def test_ephemeral_and_off() -> None:
    config = parse_config({**_minimal(), "base_port": 0}, "t.toml")
    assert {n.native_port for n in build_plan(config).nodes} == {0}  # one free number each, at launch
    assert {n.native_port for n in build_plan(config.with_overrides(native=False)).nodes} == {None}
    off = parse_config({**_minimal(), "native": {"enabled": False}}, "t.toml")
    assert {n.native_port for n in build_plan(off).nodes} == {None}


@pytest.mark.parametrize(("native", "message"), [
    ({"port_offset": 1}, "below the node count"),
    ({"port_offset": 50_000}, "past 65535"),
    ({"port": 2641}, "unknown key"),
    ({"enabled": "yes"}, "true or false"),
])
def test_native_section_errors(native: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config({**_minimal(), "base_port": 20000, "native": native}, "t.toml")


def test_command_line_ports_are_checked_after_the_overrides(tmp_path: Path) -> None:
    """A file whose own base_port cannot hold its native ports is refused as a file, and fine with `--base-port 0`
    (ephemeral ports) or `--no-native`: the command line's overrides are applied before the ports are checked."""
    crowded = {**_minimal(), "base_port": 20000, "native": {"port_offset": 1}}
    with pytest.raises(ConfigError, match="below the node count"):
        parse_config(crowded, "t.toml")
    lenient = parse_config(crowded, "t.toml", ports_checked_later=True)
    assert {n.native_port for n in build_plan(lenient.with_overrides(base_port=0)).nodes} == {0}
    assert {n.native_port for n in build_plan(lenient.with_overrides(native=False)).nodes} == {None}
    with pytest.raises(ConfigError, match="below the node count"):
        lenient.with_overrides(identifiers_per_enterprise=1)  # nothing that frees the ports: still refused


def test_a_process_is_refused_more_nodes_than_its_open_files_allow(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ports, "open_files_limit", lambda: 20_000)
    assert ports.beyond_open_files(10_023, 0, sqlite=False) is None, "REST only: one socket per node fits"
    message = ports.beyond_open_files(10_023, 10_023, sqlite=False)
    assert message is not None and "about 30,581 open files" in message and "limit of 20,000" in message
    assert "--workers N" in message and "--no-native" in message
    assert ports.beyond_open_files(5_000, 5_000, sqlite=True) is not None, "three files per SQLite store count"


def test_plan_to_dict_records_native_ports() -> None:
    plan = build_plan(load_config(CONFIGS / "small.toml"))
    assert [n["native_port"] for n in plan.to_dict()["nodes"]] == [29000 + i for i in range(len(plan.nodes))]


def test_bootstrap_handles_is_what_a_handle_net_client_reads() -> None:
    site = with_native_interfaces(http_site("root-qingdao", [("127.0.0.1", 19000)], multi_primary=True),
                                  [(29000, 29000)])
    document = bootstrap_handles([site], "small", now=1_700_000_000.5)
    assert document["lastUpdate"] == 1_700_000_000_500  # milliseconds, a Java long
    assert set(document["handles"]) == {"0.NA/0.NA", TRUST_ROOT.text}  # the client needs both
    service = document["handles"]["0.NA/0.NA"]
    assert service["handle"] == "0.NA/0.NA"
    sites = [v for v in service["values"] if v["type"] == HS_SITE]
    assert len(sites) == 1 and sites[0]["data"]["format"] == "site"
    server = sites[0]["data"]["value"]["servers"][0]
    assert server["address"] == "127.0.0.1" and server["publicKey"] == {"format": "base64", "value": ""}
    assert [(i["protocol"], i["port"], i["query"], i["admin"]) for i in server["interfaces"]] == [
        ("HTTP", 19000, True, True), ("TCP", 29000, True, True), ("UDP", 29000, True, False)]
    assert sites[0]["data"]["value"]["protocolVersion"] == "2.10" and sites[0]["data"]["value"]["multiPrimary"]
    assert all(v["type"] != "HS_SECKEY" for r in document["handles"].values() for v in r["values"])
    trust = document["handles"][TRUST_ROOT.text]["values"]
    assert [v["type"] for v in trust] == ["DESC", "HS_ADMIN"]
    assert trust[0]["data"]["value"] == trust_root_description("small")
    json.dumps(document)  # plain JSON all the way down


def test_config_dct_turns_root_updates_off_and_usage_names_the_property(tmp_path: Path) -> None:
    assert CONFIG_DCT == '{\n  "auto_update_root_info" = "no"\n}\n'
    text = usage(tmp_path / CLIENT_DIR, "88.101.1001/PUMP-000001")
    assert f"JAVA_TOOL_OPTIONS=-Dnet.handle.configDir={(tmp_path / CLIENT_DIR).resolve()} hdl-qresolver" in text


def test_topology_state_root_sites_list_native_interfaces(tmp_path: Path) -> None:
    state = _state(tmp_path, native_port=29000)
    interfaces = state.root_sites[0].servers[0].interfaces
    assert [(i.protocol, i.port) for i in interfaces] == [("HTTP", 19000), ("TCP", 29000), ("UDP", 29000)]
    assert state.endpoints == {("127.0.0.1", 19000): "Qingdao", ("127.0.0.1", 29000): "Qingdao"}
    rest_only = _state(tmp_path, native_port=None)
    assert [i.protocol for i in rest_only.root_sites[0].servers[0].interfaces] == ["HTTP"]


def test_topology_json_without_native_ports_still_reads(tmp_path: Path) -> None:
    data = _state(tmp_path, native_port=29000).to_data()  # as an older handlesim wrote it: no native ports
    for entry in (*data["nodes"], *data["roots"]):
        entry.pop("native_port", None)
    state = parse_state(json.dumps(data).encode(), tmp_path / "topology.json")
    assert state.nodes[0].native_port is None and state.roots[0].native_port is None


def test_remove_state_takes_the_client_dir(tmp_path: Path) -> None:
    directory = tmp_path / CLIENT_DIR
    directory.mkdir()
    for name in CLIENT_FILES:
        (directory / name).write_text("x")
    removed = remove_state(tmp_path)
    assert directory in removed and not directory.exists()


def _minimal() -> dict[str, object]:
    return tomllib.loads(MINIMAL)


def _state(tmp_path: Path, *, native_port: int | None) -> TopologyState:
    node = NodeEntry(id="root-qingdao", role=Role.ROOT, prefix="0.NA", parent=None, industry="",
                     region="Qingdao", url="http://127.0.0.1:19000", host="127.0.0.1", port=19000,
                     identity="300:0.NA/0.NA", identifiers=0, mirror_of=None, server_of=None, server_index=0,
                     site_servers=1, worker=0, native_port=native_port)
    root = RootEntry("root-qingdao", "127.0.0.1", 19000, "http://127.0.0.1:19000", native_port)
    return TopologyState(version=FORMAT_VERSION, name="small", seed=7, pid=1, state_dir=tmp_path, started_at=0.0,
                         boot_seconds=0.0, credentials=tmp_path / "credentials.json", tls=None, roots=(root,),
                         examples=(), nodes=(node,), net="loopback", network=None, faults=FaultsEntry(False, None),
                         metrics_url=None, report_interval=None, engine="inline", workers=1, metrics_urls=())

