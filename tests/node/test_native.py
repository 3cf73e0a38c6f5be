"""The native interface on loopback: an in-process root -> secondary -> enterprise hierarchy whose sites list only
native (TCP, UDP) interfaces, walked by the RFC-only client in tests/support/rfcclient.py; challenge-authenticated
writes; bad packets answered with protocol errors while the node keeps serving; recursion through a node's resolver.
"""

from __future__ import annotations

import asyncio
import hashlib
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from handlesim.core.auth import hash_secret
from handlesim.core.handle import Handle, Prefix
from handlesim.core.prefixes import handle_record, native_site, owner_identity, prefix_record
from handlesim.core.service import HandleService, ServiceConfig
from handlesim.core.storage import HandleRecord
from handlesim.core.values import HS_SECKEY, KEY_INDEX, SECRET_PERMISSIONS, HandleValue
from handlesim.net.native import NativeListener
from handlesim.store import MemoryStore
from handlesim.topology.runner import describe
from handlesim.topology.running import Topology

from ..support import rfcclient as rfc
from ..support.waiting import eventually

HOST = "127.0.0.1"
SECRET, SALT, ITERATIONS = "owner-secret", b"salt-salt-salt-1", 100
OWNER_KEY = hashlib.pbkdf2_hmac("sha256", SECRET.encode(), SALT, ITERATIONS)
"""What the owner answers challenges with: the PBKDF2 digest the node stores (docs/native-protocol.md)."""
USER_HANDLE, USER_SECRET, USER_SALT = "88.101.1001/USER", "user-secret", b"salt-salt-salt-2"
USER_KEY = hashlib.pbkdf2_hmac("sha256", USER_SECRET.encode(), USER_SALT, ITERATIONS)
PUMP = "88.101.1001/PUMP-000001"
OWNER = ("0.NA/88.101.1001", KEY_INDEX)


@dataclass
class Node:
    service: HandleService
    listener: NativeListener

    @property
    def udp(self) -> tuple[str, int]:
        return HOST, self.listener.udp_port

    @property
    def tcp(self) -> tuple[str, int]:
        return HOST, self.listener.tcp_port


@dataclass
class Hierarchy:
    root: Node
    secondary: Node
    enterprise: Node


@pytest.fixture
async def tiers() -> AsyncIterator[Hierarchy]:
    nodes = []
    for name, homed in (("root", "0.NA"), ("secondary", "88.101"), ("enterprise", "88.101.1001")):
        service = HandleService(ServiceConfig(name, (homed,), secret_iterations=ITERATIONS), MemoryStore())
        listener = NativeListener(service)
        await listener.start(HOST, 0, 0)
        nodes.append(Node(service, listener))
    root, secondary, enterprise = nodes
    try:
        sites = [native_site(n.service.config.node_id, [(HOST, n.listener.tcp_port, n.listener.udp_port)])
                 for n in nodes]
        secret = hash_secret(SECRET, SALT, ITERATIONS)
        sec_prefix, ent_prefix = Prefix("88.101"), Prefix("88.101.1001")
        sec_record = prefix_record(sec_prefix, sites=[sites[1]], derived_sites=[sites[1]], secret_hash=secret)
        ent_record = prefix_record(ent_prefix, sites=[sites[2]], admins=[owner_identity(sec_prefix)],
                                   secret_hash=secret)
        root.service.store.put(sec_record)
        secondary.service.store.put(sec_record)
        secondary.service.store.put(ent_record)
        enterprise.service.store.put(ent_record)
        enterprise.service.store.put(handle_record(Handle.from_text(PUMP), [
            HandleValue(1, "URL", "https://id.example.cn/PUMP-000001"), HandleValue(2, "EMAIL", "ops@example.cn")]))
        enterprise.service.store.put(HandleRecord(Handle.from_text(USER_HANDLE), (HandleValue(
            KEY_INDEX, HS_SECKEY, hash_secret(USER_SECRET, USER_SALT, ITERATIONS), permissions=SECRET_PERMISSIONS),)))
        yield Hierarchy(root, secondary, enterprise)
    finally:
        for node in nodes:
            await node.listener.stop()


def values_of(answer: rfc.Answer) -> dict[str, bytes]:
    return {v.type: v.data for v in answer.values}


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_rfc_client_walks_root_secondary_enterprise(tiers: Hierarchy, transport: str) -> None:
    client = rfc.RfcClient(transport)
    walk = await client.resolve(PUMP, tiers.root.udp if transport == "udp" else tiers.root.tcp)
    assert [(h.query, h.code) for h in walk.hops] == [("0.NA/88.101.1001", 303), ("0.NA/88.101.1001", 1),
                                                      (PUMP, 1)]
    wanted = tiers.secondary.udp if transport == "udp" else tiers.secondary.tcp
    assert walk.hops[1].server == wanted
    assert values_of(walk.answer)["URL"] == b"https://id.example.cn/PUMP-000001"
    assert walk.answer.handle == PUMP and walk.answer.version == (2, 10)


async def test_unknown_handle_and_server_not_responsible(tiers: Hierarchy) -> None:
    client = rfc.RfcClient("udp")
    missing = await client.ask(tiers.enterprise.udp, rfc.message(rfc.OC_RESOLUTION, rfc.resolution_body(
        "88.101.1001/NOPE"), rfc.FLAG_PUBL))
    assert missing.code == 100
    elsewhere = await client.ask(tiers.enterprise.udp, rfc.message(rfc.OC_RESOLUTION, rfc.resolution_body(
        "88.999/X"), rfc.FLAG_PUBL | rfc.FLAG_RECU))
    assert elsewhere.code == 301 and "not homed" in elsewhere.message  # no resolver on this node: no recursion


async def test_site_info(tiers: Hierarchy) -> None:
    answer = await rfc.RfcClient("tcp").ask(tiers.secondary.tcp, rfc.message(rfc.OC_GET_SITE_INFO, rfc.utf8("")))
    assert answer.code == 1
    servers = rfc.parse_site(answer.body)
    assert servers[0].address == HOST
    assert servers[0].ports == {rfc.PROTO_TCP: tiers.secondary.listener.tcp_port,
                                rfc.PROTO_UDP: tiers.secondary.listener.udp_port}


def create_body(handle: str, url: bytes) -> bytes:
    return rfc.utf8(handle) + struct.pack(">I", 1) + rfc.value_bytes(1, "URL", url)


async def test_create_and_delete_with_challenge_response(tiers: Hierarchy) -> None:
    client = rfc.RfcClient("tcp")
    store = tiers.enterprise.service.store
    created = await client.authenticated(tiers.enterprise.tcp, rfc.message(rfc.OC_CREATE, create_body(
        "88.101.1001/NEW-1", b"https://id.example.cn/new")), OWNER, OWNER_KEY)
    assert created.code == 1, created.message
    record = store.get(Handle.from_text("88.101.1001/NEW-1").key)
    assert record is not None and record.value_at(1) is not None
    walk = await rfc.RfcClient("udp").resolve("88.101.1001/NEW-1", tiers.root.udp)
    assert values_of(walk.answer)["URL"] == b"https://id.example.cn/new"
    deleted = await client.authenticated(tiers.enterprise.tcp, rfc.message(rfc.OC_DELETE, rfc.utf8(
        "88.101.1001/NEW-1")), OWNER, OWNER_KEY)
    assert deleted.code == 1
    assert store.get(Handle.from_text("88.101.1001/NEW-1").key) is None
    assert tiers.enterprise.listener.counters.challenges == 2


async def test_refused_writes_change_nothing(tiers: Hierarchy) -> None:
    client = rfc.RfcClient("tcp")
    store = tiers.enterprise.service.store
    before = {r.key: r.values for r in store.records()}
    wrong_key = await client.authenticated(tiers.enterprise.tcp, rfc.message(rfc.OC_DELETE, rfc.utf8(PUMP)),
                                           OWNER, b"not the key")
    assert wrong_key.code == 403
    not_admin = await client.authenticated(tiers.enterprise.tcp, rfc.message(rfc.OC_DELETE, rfc.utf8(PUMP)),
                                           (USER_HANDLE, KEY_INDEX), USER_KEY)
    assert not_admin.code in (400, 401)
    unanswered = await client.ask(tiers.enterprise.tcp, rfc.message(rfc.OC_CREATE, create_body(
        "88.101.1001/NEW-2", b"x")))
    assert unanswered.code == 402 and len(unanswered.nonce) == 16 and len(unanswered.digest) == 32
    stale = await client.ask(tiers.enterprise.tcp, rfc.message(rfc.OC_CHALLENGE_ANSWER, rfc.utf8("HS_SECKEY")
                             + rfc.utf8(OWNER[0]) + struct.pack(">I", OWNER[1]) + rfc.utf8(b"\x13" + bytes(32))),
                             session=12345)
    assert stale.code == 405  # no such challenge: authentication timeout
    assert {r.key: r.values for r in store.records()} == before


async def test_large_answers_and_requests_span_udp_packets(tiers: Hierarchy) -> None:
    big = "https://id.example.cn/" + "x" * 3000
    tiers.enterprise.service.store.put(handle_record(Handle.from_text("88.101.1001/BIG"), [
        HandleValue(1, "URL", big)]))
    client = rfc.RfcClient("udp")
    answer = await client.ask(tiers.enterprise.udp, rfc.message(rfc.OC_RESOLUTION, rfc.resolution_body(
        "88.101.1001/BIG"), rfc.FLAG_PUBL))
    assert values_of(answer)["URL"] == big.encode()
    many_types = [f"TYPE-{n:04d}" for n in range(60)] + ["URL"]  # a request of ~1 KB: three packets
    answer = await client.ask(tiers.enterprise.udp, rfc.message(rfc.OC_RESOLUTION, rfc.resolution_body(
        PUMP, many_types), rfc.FLAG_PUBL))
    assert list(values_of(answer)) == ["URL"]
    assert tiers.enterprise.listener.reassembler.pending == 0


async def udp_exchange(server: tuple[str, int], packet: bytes, wait: float = 0.5) -> bytes | None:
    loop = asyncio.get_running_loop()
    received: asyncio.Future[bytes] = loop.create_future()

    class Catch(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: object) -> None:
            if not received.done():
                received.set_result(data)

    transport, _ = await loop.create_datagram_endpoint(Catch, remote_addr=server)
    try:
        transport.sendto(packet)
        return await asyncio.wait_for(received, wait)
    except TimeoutError:
        return None
    finally:
        transport.close()


def code_of(packet: bytes) -> int:
    return int(struct.unpack_from(">I", packet, rfc.ENVELOPE.size + 4)[0])


async def test_bad_packets_get_protocol_errors_and_the_node_keeps_serving(tiers: Hierarchy) -> None:
    server = tiers.enterprise.udp
    good = rfc.message(rfc.OC_RESOLUTION, rfc.resolution_body(PUMP), rfc.FLAG_PUBL)
    assert await udp_exchange(server, b"\x02\x0a") is None  # not even an envelope: nobody to answer
    wrong_version = rfc.ENVELOPE.pack(9, 0, 0, 0, 0, 1, 0, len(good)) + good
    truncated = rfc.envelope(0, 2, 0, len(good)) + good[:-10]
    huge_count = rfc.message(rfc.OC_RESOLUTION, rfc.utf8(PUMP) + b"\xff\xff\xff\xff")
    oversized = rfc.envelope(0, 4, 0, 10_000_000) + good
    for packet in (wrong_version, truncated, rfc.envelope(0, 3, 0, len(huge_count)) + huge_count, oversized):
        answer = await udp_exchange(server, packet)
        assert answer is not None and code_of(answer) == 4, packet[:24].hex()
    assert tiers.enterprise.listener.counters.protocol_errors >= 4
    walk = await rfc.RfcClient("udp").resolve(PUMP, tiers.root.udp)
    assert walk.answer.code == 1


async def test_bad_tcp_stream_is_answered_then_closed(tiers: Hierarchy) -> None:
    reader, writer = await asyncio.open_connection(*tiers.enterprise.tcp)
    writer.write(rfc.envelope(0, 1, 0, 2**30))  # announces a message far over the limit
    env = await asyncio.wait_for(reader.readexactly(rfc.ENVELOPE.size), 2)
    body = await asyncio.wait_for(reader.readexactly(rfc.ENVELOPE.unpack(env)[-1]), 2)
    assert code_of(env + body) == 4
    assert await asyncio.wait_for(reader.read(), 2) == b""  # closed: the stream cannot be resynchronised
    writer.close()
    answer = await rfc.RfcClient("tcp").ask(tiers.enterprise.tcp, rfc.message(
        rfc.OC_RESOLUTION, rfc.resolution_body(PUMP), rfc.FLAG_PUBL))
    assert answer.code == 1


async def test_listing_needs_authentication(tiers: Hierarchy) -> None:
    client = rfc.RfcClient("tcp")
    listing = await client.authenticated(tiers.enterprise.tcp, rfc.message(rfc.OC_LIST, rfc.utf8(
        "0.NA/88.101.1001")), OWNER, OWNER_KEY)
    assert listing.code == 1 and PUMP in listing.handles and USER_HANDLE in listing.handles


async def test_recursive_request_is_walked_by_the_nodes_resolver(small: Topology) -> None:
    """A native RECU request at a node that does not home the handle is answered by that node's resolver (REST
    walk underneath), exactly as a REST GET would be."""
    node = next(n for n in small.nodes.values() if n.plan.role == "resolver" or n.server.resolver is not None)
    target = describe(small).examples[0]
    listener = NativeListener(node.server.service, resolver=node.server.resolver)
    await listener.start(HOST, 0, 0)
    try:
        answer = await rfc.RfcClient("udp").ask((HOST, listener.udp_port), rfc.message(
            rfc.OC_RESOLUTION, rfc.resolution_body(target), rfc.FLAG_PUBL | rfc.FLAG_RECU))
        assert answer.code == 1 and answer.handle == target and answer.values
        await eventually(lambda: listener.counters.answers[1] >= 1, what="the walked answer counted")
    finally:
        await listener.stop()
