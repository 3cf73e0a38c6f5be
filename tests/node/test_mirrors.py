"""Mirrors: read-only copies kept current by replication; reads keep working when the primary dies."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from handlesim.core.codes import OpCode, ResponseCode
from handlesim.core.handle import Handle
from handlesim.core.messages import Request
from handlesim.core.prefixes import owner_identity
from handlesim.core.values import HandleValue
from handlesim.net.client import HandleClient
from handlesim.topology.running import Topology

from ..support.topologies import running
from ..support.waiting import eventually

WITH_MIRRORS = {
    "name": "mirrored", "base_port": 0, "seed": 5,
    "roots": [{"id": "root-qingdao"}],
    "secondaries": [{"id": "sec-machinery", "prefix": "88.101"}],
    "enterprises": {"count": 2, "identifiers_per_enterprise": 5},
    "mirrors": {"enterprise": 1},
}


@pytest.fixture
async def mirrored(tmp_path: Path) -> AsyncIterator[Topology]:
    async with running(WITH_MIRRORS, tmp_path / "state", store_kind="sqlite") as topology:
        yield topology


async def test_mirror_holds_the_same_identifiers_and_refuses_writes(mirrored: Topology) -> None:
    primary = mirrored.nodes["ent-88.101.1001"]
    mirror = mirrored.nodes["ent-88.101.1001-mirror1"]
    assert len(mirror.store) == len(primary.store) > 1
    for record in primary.store.records():
        if not record.handle.is_prefix_handle:  # the prefix record's key hash is salted per server
            assert mirror.store.get(record.key) == record
    handle = Handle.from_text("88.101.1001/AT-MIRROR")
    creds = (owner_identity(handle.prefix), primary.plan.secret)
    async with HandleClient() as client:
        refused = await client.send(mirror.url, Request(OpCode.CREATE_HANDLE, handle,
                                    values=(HandleValue(1, "URL", "https://x.example.cn"),)), credentials=creds)
    assert refused.code == ResponseCode.SERVER_NOT_RESPONSIBLE
    assert "mirror, not a primary" in refused.message and primary.url in refused.message


async def test_writes_at_the_primary_reach_the_mirror(mirrored: Topology) -> None:
    primary = mirrored.nodes["ent-88.101.1001"]
    mirror = mirrored.nodes["ent-88.101.1001-mirror1"]
    handle = Handle.from_text("88.101.1001/NEW")
    creds = (owner_identity(handle.prefix), primary.plan.secret)
    async with HandleClient() as client:
        create = Request(OpCode.CREATE_HANDLE, handle, values=(HandleValue(1, "URL", "https://n.example.cn"),))
        assert (await client.send(primary.url, create, credentials=creds)).ok
    await eventually(lambda: mirror.store.get(handle.key) is not None, what="the write reaching the mirror")
    assert mirror.store.get(handle.key) == primary.store.get(handle.key)


async def test_reads_fail_over_to_the_mirror_when_the_primary_dies(mirrored: Topology) -> None:
    primary = mirrored.nodes["ent-88.101.1001"]
    handle = Handle.from_text(next(iter(primary.store.records())).handle.text)
    if handle.is_prefix_handle:
        handle = Handle.from_text([r.handle.text for r in primary.store.records() if not r.handle.is_prefix_handle][0])
    await primary.server.stop()
    async with HandleClient(timeout=1.0) as client:
        res = await client.resolve(handle, mirrored.root_sites)
    assert res.result is not None and res.result.ok
    sites = [h.site for h in res.trace]
    assert sites[-2:] == ["ent-88.101.1001", "ent-88.101.1001-mirror1"]
    assert res.trace[-2].code is None and res.trace[-1].code == 1
