"""Hash-partitioned sites: each server of a site holds the handles the protocol's hash assigns to it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from handlesim.core.codes import OpCode, ResponseCode
from handlesim.core.handle import Handle
from handlesim.core.messages import Request
from handlesim.core.prefixes import owner_identity
from handlesim.core.values import HASH_OPTION_NAMES, HandleValue, SiteInfo, handle_hash
from handlesim.net.client import HandleClient, locate, write_target
from handlesim.topology.config import ConfigError, parse_config
from handlesim.topology.plan import build_plan
from handlesim.topology.runner import launch
from handlesim.topology.running import RunningNode, Topology
from handlesim.topology.seed import identifiers_for


def partitioned_config(hash_option: str, *, mirrors: int = 1) -> dict[str, object]:
    return {
        "name": "partitioned", "base_port": 0, "seed": 11,
        "roots": [{"id": "root-qingdao"}],
        "secondaries": [{"id": "sec-machinery", "prefix": "88.101"}, {"id": "sec-rubber", "prefix": "88.106"}],
        "enterprises": {"count": 3, "identifiers_per_enterprise": 12},
        "resolvers": [{"id": "resolver-qingdao"}],
        "servers": {"enterprise": 3, "secondary": 2, "hash_option": hash_option},
        "mirrors": {"enterprise": mirrors},
    }


async def launched(tmp_path: Path, hash_option: str) -> Topology:
    plan = build_plan(parse_config(partitioned_config(hash_option), "test"))
    return await launch(plan, tmp_path / "state", store_kind="memory")


@pytest.fixture
async def by_handle(tmp_path: Path) -> AsyncIterator[Topology]:
    topology = await launched(tmp_path, "handle")
    try:
        yield topology
    finally:
        await topology.stop()


def servers_of(topology: Topology, site_id: str) -> list[RunningNode]:
    return [topology.nodes[i] for i in topology.plan.servers_of(site_id)]


def holder_index(site: SiteInfo, handle: Handle) -> int:
    return handle_hash(handle, site.hash_option) % len(site.servers)


@pytest.mark.parametrize("hash_option", ["prefix", "suffix", "handle"])
async def test_every_seeded_handle_lives_on_and_resolves_at_the_server_the_hash_names(
        tmp_path: Path, hash_option: str) -> None:
    topology = await launched(tmp_path, hash_option)
    try:
        plan = topology.plan
        resolver_url = topology.nodes["resolver-qingdao"].url
        async with HandleClient(timeout=2.0) as client:
            for enterprise in plan.enterprises:
                servers = servers_of(topology, enterprise.node_id)
                site = servers[0].site
                assert site is not None and len(site.servers) == 3
                assert site.hash_option == HASH_OPTION_NAMES[hash_option]
                mirror_servers = servers_of(topology, f"{enterprise.node_id}-mirror1")
                for record in identifiers_for(enterprise, plan.config.seed):
                    index = holder_index(site, record.handle)
                    holders = [s.plan.node_id for s in servers if s.store.get(record.key) is not None]
                    assert holders == [servers[index].plan.node_id]
                    assert mirror_servers[index].store.get(record.key) == record
                    # reads go to the fastest site (primary or mirror), always to the server the hash names there
                    holders_urls = {servers[index].url, mirror_servers[index].url}
                    walked = await client.resolve(record.handle, topology.root_sites)
                    assert walked.result is not None and walked.result.ok, walked.trace
                    assert walked.trace[-1].server in holders_urls
                    assert walked.trace[-1].site.endswith(f" [{index + 1}/3]")  # the trace names the server
                    via = await client.resolve_via(resolver_url, record.handle)
                    assert via.ok and via.extra["trace"][-1]["server"] in holders_urls  # type: ignore[index]
            # the secondaries' sites are partitioned too: each delegated prefix handle sits on one server
            for secondary in plan.secondaries:
                servers = servers_of(topology, secondary.node_id)
                site = servers[0].site
                assert site is not None
                for child_id in plan.children_of(secondary.node_id):
                    key = Handle.from_text(f"0.NA/{plan.by_id[child_id].prefix}")
                    holders = [s for s in servers if s.store.get(key.key) is not None]
                    assert holders == [servers[holder_index(site, key)]]
    finally:
        await topology.stop()


async def test_a_server_asked_for_a_handle_outside_its_bucket_answers_301(by_handle: Topology) -> None:
    enterprise = by_handle.plan.enterprises[0]
    servers = servers_of(by_handle, enterprise.node_id)
    site = servers[0].site
    assert site is not None
    record = identifiers_for(enterprise, by_handle.plan.config.seed)[0]
    wrong = servers[(holder_index(site, record.handle) + 1) % 3]
    async with HandleClient() as client:
        node_to_node = await client.send(wrong.url, Request(OpCode.RESOLUTION, record.handle, recursive=False))
        assert node_to_node.code == ResponseCode.SERVER_NOT_RESPONSIBLE
        assert f"not to {wrong.plan.node_id}" in node_to_node.message
        # a REST client (recursive) still gets the values: the server walks to the right one for it
        assert (await client.send(wrong.url, Request(OpCode.RESOLUTION, record.handle))).ok
    stats = wrong.server.stats().to_json()
    assert stats["site"] == enterprise.node_id and stats["server"].endswith("of 3")


async def test_writes_go_to_the_server_the_hash_names(by_handle: Topology) -> None:
    enterprise = by_handle.plan.enterprises[0]
    servers = servers_of(by_handle, enterprise.node_id)
    creds = (owner_identity(Handle.from_text(f"{enterprise.prefix}/X").prefix), enterprise.secret)
    async with HandleClient() as client:
        sites = await locate(client, Handle.from_text(f"0.NA/{enterprise.prefix}"), by_handle.root_sites)
        assert [s.primary for s in sites] == [True, False]
        for n in range(6):
            handle = Handle.from_text(f"{enterprise.prefix}/NEW-{n}")
            target = write_target(list(reversed(sites)), handle)  # the mirror site listed first is still skipped
            assert target == sites[0].server_for(handle)
            create = Request(OpCode.CREATE_HANDLE, handle, values=(HandleValue(1, "URL", "https://n.example.cn"),))
            assert (await client.send(target, create, credentials=creds)).ok
            index = holder_index(sites[0], handle)
            assert [s.store.get(handle.key) is not None for s in servers] == [i == index for i in range(3)]
            wrong = servers[(index + 1) % 3]
            refused = await client.send(wrong.url, create, credentials=creds)
            assert refused.code == ResponseCode.SERVER_NOT_RESPONSIBLE
        minted = await client.send(servers[1].url, Request(
            OpCode.CREATE_HANDLE, Handle.from_text(f"{enterprise.prefix}/M-"), mint_new_suffix=True,
            values=(HandleValue(1, "URL", "https://m.example.cn"),)), credentials=creds)
        assert minted.ok and servers[1].store.get(Handle.from_text(minted.handle).key) is not None


def test_partitioning_options_are_checked() -> None:
    with pytest.raises(ConfigError, match="servers.hash_option: 'md5' is not a hash option"):
        parse_config(partitioned_config("md5"), "f.toml")
    bad = partitioned_config("handle")
    bad["servers"] = {"enterprise": 0}
    with pytest.raises(ConfigError, match="servers.enterprise: must be at least 1"):
        parse_config(bad, "f.toml")
    plan = build_plan(parse_config(partitioned_config("suffix"), "f.toml"))
    assert len(plan.nodes) == plan.config.node_count
    extra = plan.by_id["ent-88.101.1001-server2"]
    assert extra.server_of == "ent-88.101.1001" and extra.secret == plan.by_id["ent-88.101.1001"].secret
    mirror = plan.by_id["ent-88.101.1001-server3-mirror1"]
    assert (mirror.mirror_of, mirror.server_of, mirror.server_index) == (
        "ent-88.101.1001-server3", "ent-88.101.1001-mirror1", 2)
    assert len(plan.enterprises) == 3


async def test_check_asks_the_hashed_server_of_every_site(by_handle: Topology) -> None:
    import asyncio
    import json
    import subprocess
    import sys

    enterprise = by_handle.plan.enterprises[0]
    target = identifiers_for(enterprise, by_handle.plan.config.seed)[0].handle

    def check() -> dict[str, object]:
        run = subprocess.run([sys.executable, "-m", "handlesim.cli", "check", "--json", "--state-dir",
                              str(by_handle.state_dir), target.text], capture_output=True, text=True, timeout=60)
        return dict(json.loads(run.stdout))

    report = await asyncio.to_thread(check)
    assert report["drift"] is False
    assert report["replicas"].keys() == {enterprise.node_id, f"{enterprise.node_id}-mirror1"}  # type: ignore[union-attr]
