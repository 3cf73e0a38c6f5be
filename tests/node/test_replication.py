"""Multi-primary roots: a write accepted by any root reaches the others; a root that was down catches up."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from handlesim.core.codes import OpCode
from handlesim.core.handle import Handle, Prefix
from handlesim.core.messages import Request
from handlesim.core.prefixes import http_site, prefix_record
from handlesim.net.client import HandleClient
from handlesim.net.server import NodeServer
from handlesim.topology.runner import ROOT_OPERATOR, operator_secret
from handlesim.topology.running import RunningNode, Topology

from ..support.topologies import running
from ..support.waiting import eventually

TWO_ROOTS = {
    "name": "two-roots", "base_port": 0, "seed": 3,
    "roots": [{"id": "root-qingdao"}, {"id": "root-beijing"}],
    "secondaries": [{"id": "sec-machinery", "prefix": "88.101"}],
    "enterprises": {"count": 2, "identifiers_per_enterprise": 3},
}


@pytest.fixture
async def roots(tmp_path: Path) -> AsyncIterator[Topology]:
    async with running(TWO_ROOTS, tmp_path / "state", store_kind="sqlite") as topology:
        yield topology


def new_prefix_request(prefix: str, site_port: int) -> Request:
    record = prefix_record(Prefix(prefix), sites=[http_site("somewhere", [("127.0.0.1", site_port)])])
    return Request(OpCode.CREATE_HANDLE, record.handle, values=record.values)


async def test_boot_registry_is_on_every_root(roots: Topology) -> None:
    qingdao, beijing = roots.nodes["root-qingdao"], roots.nodes["root-beijing"]
    key = Handle.from_text("0.NA/88.101").key
    assert qingdao.store.get(key) == beijing.store.get(key) is not None


async def test_write_at_one_root_reaches_the_other(roots: Topology) -> None:
    qingdao, beijing = roots.nodes["root-qingdao"], roots.nodes["root-beijing"]
    creds = (ROOT_OPERATOR, operator_secret(roots.plan))
    async with HandleClient() as client:
        assert (await client.send(beijing.url, new_prefix_request("88.150", 1), credentials=creds)).ok
        key = Handle.from_text("0.NA/88.150").key
        await eventually(lambda: qingdao.store.get(key) is not None)
        assert qingdao.store.get(key) == beijing.store.get(key)
        assert (await client.send(qingdao.url, Request(OpCode.DELETE_HANDLE, Handle.from_text("0.NA/88.150")),
                                  credentials=creds)).ok
        await eventually(lambda: beijing.store.get(key) is None)


async def test_a_root_that_was_down_catches_up(roots: Topology) -> None:
    qingdao, beijing = roots.nodes["root-qingdao"], roots.nodes["root-beijing"]
    creds = (ROOT_OPERATOR, operator_secret(roots.plan))
    port = beijing.server.port
    await beijing.server.stop()
    async with HandleClient() as client:
        assert (await client.send(qingdao.url, new_prefix_request("88.151", 2), credentials=creds)).ok
        await asyncio.sleep(0.3)
        stats = qingdao.server.stats().to_json()["replication"]
        assert stats[beijing.url]["pending"] == 1 and stats[beijing.url]["failures"] >= 1
        revived = NodeServer(beijing.service)
        await revived.start("127.0.0.1", port)
        try:
            key = Handle.from_text("0.NA/88.151").key
            await eventually(lambda: beijing.store.get(key) is not None)
            assert qingdao.server.stats().to_json()["replication"][beijing.url]["pending"] == 0
        finally:
            await revived.stop()


async def test_conflicting_writes_settle_the_same_way_everywhere(roots: Topology) -> None:
    qingdao, beijing = roots.nodes["root-qingdao"], roots.nodes["root-beijing"]
    creds = (ROOT_OPERATOR, operator_secret(roots.plan))
    async with HandleClient() as client:
        await asyncio.gather(client.send(qingdao.url, new_prefix_request("88.152", 3), credentials=creds),
                             client.send(beijing.url, new_prefix_request("88.152", 4), credentials=creds))
        key = Handle.from_text("0.NA/88.152").key

        def converged() -> bool:
            a, b = qingdao.store.get(key), beijing.store.get(key)
            return a is not None and a == b

        await eventually(converged)


async def test_replication_needs_a_replication_identity(roots: Topology) -> None:
    beijing: RunningNode = roots.nodes["root-beijing"]
    import aiohttp

    async with aiohttp.ClientSession() as http:
        body = b'{"handle": "0.NA/88.199", "values": []}'
        async with http.put(beijing.url + "/api/replication", data=body,
                            headers={"Content-Type": "application/json"}) as reply:
            assert reply.status == 401 and (await reply.json())["responseCode"] == 402
    assert beijing.store.get(Handle.from_text("0.NA/88.199").key) is None


async def test_check_reports_agreement_and_drift(roots: Topology) -> None:
    import json
    import subprocess
    import sys

    def check() -> dict[str, object]:
        run = subprocess.run([sys.executable, "-m", "handlesim.cli", "check", "--json", "--state-dir",
                              str(roots.state_dir), "0.NA/88.101"], capture_output=True, text=True, timeout=60)
        return dict(json.loads(run.stdout))

    agreed = await asyncio.to_thread(check)
    assert agreed["drift"] is False and len(agreed["replicas"]) == 2  # type: ignore[arg-type]
    beijing = roots.nodes["root-beijing"]
    beijing.store.delete(Handle.from_text("0.NA/88.101").key)  # damage one replica behind the service's back
    beijing.server.answers.clear()  # its encoded answers would still show the old record
    drifted = await asyncio.to_thread(check)
    assert drifted["drift"] is True and "code 100" in drifted["replicas"].values()  # type: ignore[union-attr]
