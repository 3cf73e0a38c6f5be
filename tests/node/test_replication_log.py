"""The outgoing replication log lives in the node's store: a pusher killed before delivering delivers after restart."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from handlesim.core.codes import OpCode
from handlesim.core.handle import Handle
from handlesim.core.messages import Request
from handlesim.core.service import HandleService, ServiceConfig
from handlesim.core.storage import HandleRecord, OutboxEntry, ReplicationLog
from handlesim.core.values import HandleValue
from handlesim.net.client import HandleClient
from handlesim.net.replication import Replicator
from handlesim.net.server import NodeServer
from handlesim.store import MemoryStore, SqliteStore
from handlesim.topology.runner import ROOT_OPERATOR, operator_secret
from handlesim.topology.running import RunningNode, Topology

from ..support.topologies import running
from ..support.waiting import eventually
from .test_replication import TWO_ROOTS, new_prefix_request


def record(text: str, url: str = "https://a.example.cn") -> HandleRecord:
    return HandleRecord(Handle.from_text(text), (HandleValue(1, "URL", url, timestamp=1),))


def change(peer: str, text: str, logged_at: float = 1.0, deleted_at: int = 0) -> OutboxEntry:
    handle = Handle.from_text(text)
    return OutboxEntry(peer, handle.key, handle.text, deleted_at, logged_at)


def test_the_sqlite_log_survives_reopening_and_forgets_only_what_was_delivered(tmp_path: Path) -> None:
    path = tmp_path / "node.sqlite"
    store = SqliteStore(path)
    assert isinstance(store, ReplicationLog) and isinstance(MemoryStore(), ReplicationLog)
    store.put_logged(record("88.1/A"), [change("peer-1", "88.1/A"), change("peer-2", "88.1/A")])
    store.put_logged(record("88.1/B"), [change("peer-1", "88.1/B")])
    store.close()  # no flush, no goodbye: the log was committed with the records

    reopened = SqliteStore(path)
    log = reopened.outbox("peer-1")
    assert [e.handle for e in log] == ["88.1/A", "88.1/B"] and len(reopened.outbox("peer-2")) == 1
    assert reopened.get(Handle.from_text("88.1/A").key) == record("88.1/A")
    # a newer change of A is logged while the old one is being delivered: delivering the old keeps the new
    reopened.put_logged(record("88.1/A", "https://new.example.cn"), [change("peer-1", "88.1/A", 2.0)])
    reopened.outbox_delivered(log)
    assert [(e.handle, e.logged_at) for e in reopened.outbox("peer-1")] == [("88.1/A", 2.0)]
    assert reopened.delete_logged(Handle.from_text("88.1/B").key, [change("peer-2", "88.1/B", 3.0, deleted_at=3)])
    reopened.close()

    again = SqliteStore(path)
    assert [(e.handle, e.logged_at) for e in again.outbox("peer-1")] == [("88.1/A", 2.0)]
    assert [(e.handle, e.deleted_at) for e in again.outbox("peer-2")] == [("88.1/A", 0), ("88.1/B", 3)]
    again.close()


def test_the_service_logs_each_accepted_write_for_every_peer_and_nothing_else() -> None:
    store = MemoryStore()
    service = HandleService(ServiceConfig("root", homed_prefixes=("0.NA",), server_admins=(ROOT_OPERATOR,)), store)
    service.replication_peers = ("root-a", "root-b")
    request = new_prefix_request("88.160", 1)
    assert service.handle(replace(request, identity=ROOT_OPERATOR), 100.0).ok
    assert [e.logged_at for e in service.outbox("root-a")] == [100.0] and len(service.outbox("root-b")) == 1
    handle = Handle.from_text("0.NA/88.160")
    replicated = service.apply_replicated(Handle.from_text("0.NA/88.161"), (HandleValue(1, "URL", "x"),), 0,
                                          ROOT_OPERATOR)
    assert replicated.ok and len(service.outbox("root-a")) == 1  # what a peer sent is not sent back
    assert service.handle(Request(OpCode.DELETE_HANDLE, handle, identity=ROOT_OPERATOR), 105.0).ok
    assert [(e.deleted_at, e.logged_at) for e in service.outbox("root-b")] == [(105, 105.0)]


@pytest.fixture
async def roots(tmp_path: Path) -> AsyncIterator[Topology]:
    async with running(TWO_ROOTS, tmp_path / "state", store_kind="sqlite") as topology:
        yield topology


async def kill(node: RunningNode) -> None:
    """Stop a node the hard way: the pusher is cancelled mid-retry and nothing is flushed or handed over."""
    replicator = node.server.replicator
    assert replicator is not None and replicator._task is not None  # noqa: SLF001
    replicator._task.cancel()  # noqa: SLF001
    node.server.replicator = None  # its queue in memory dies with it
    await node.server.stop()
    await replicator.close()
    node.store.close()


async def test_a_root_killed_before_delivering_delivers_after_restart(roots: Topology) -> None:
    qingdao, beijing = roots.nodes["root-qingdao"], roots.nodes["root-beijing"]
    creds = (ROOT_OPERATOR, operator_secret(roots.plan))
    beijing_port, qingdao_port = beijing.server.port, qingdao.server.port
    await beijing.server.stop()
    async with HandleClient() as client:
        assert (await client.send(qingdao.url, new_prefix_request("88.170", 5), credentials=creds)).ok
    await asyncio.sleep(0.2)  # at least one failed delivery attempt
    assert qingdao.server.stats().to_json()["replication"][beijing.url]["failures"] >= 1
    await kill(qingdao)

    store = SqliteStore(roots.state_dir / "stores" / "root-qingdao.sqlite")
    service = HandleService(qingdao.service.config, store)
    replicator = Replicator(service, ROOT_OPERATOR, operator_secret(roots.plan))
    server = NodeServer(service, replicator=replicator)
    roots.nodes["root-qingdao"] = RunningNode(qingdao.plan, service, server, store, qingdao.site)
    await server.start("127.0.0.1", qingdao_port)
    revived_beijing = NodeServer(beijing.service)
    await revived_beijing.start("127.0.0.1", beijing_port)
    beijing.server = revived_beijing
    replicator.set_peers([beijing.url], ["root-beijing"])  # what `up` does when the node comes back
    key = Handle.from_text("0.NA/88.170").key
    await eventually(lambda: beijing.store.get(key) is not None)
    assert beijing.store.get(key) == store.get(key)
    await eventually(lambda: replicator.pending_total() == 0)
    assert store.outbox("root-beijing") == []
