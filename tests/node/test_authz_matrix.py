"""The authorization matrix over HTTP against the running small topology: every write operation x every kind of
caller gives exactly the expected HTTP status and responseCode, and a denied write leaves the node's store as it was.

Callers at enterprise 88.101.1001: nobody, the owner with a wrong secret, the owner, its secondary's admin
(300:0.NA/88.101, key held by the secondary and the roots), another enterprise's admin (key at secondary 88.102),
another secondary's admin, and the root operator (300:0.NA/0.NA, key at the root). Foreign keys are verified by
their holders through /api/verify.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from handlesim.core.auth import hash_secret
from handlesim.core.handle import Handle
from handlesim.core.prefixes import admin_value
from handlesim.core.storage import HandleRecord
from handlesim.core.values import SECRET_PERMISSIONS, URL, AdminRecord, HandleValue
from handlesim.net.client import basic_authorization as basic
from handlesim.topology.runner import operator_secret
from handlesim.topology.running import RunningNode, Topology

ENTERPRISE = "88.101.1001"
OK, CREATED = (200, 1), (201, 1)
NO_AUTH, WRONG, NOT_ALLOWED, NOT_ADMIN = (401, 402), (403, 403), (403, 401), (403, 400)
_serial = itertools.count(1)


def node_by_prefix(topology: Topology, prefix: str) -> RunningNode:
    return next(n for n in topology.nodes.values() if n.plan.prefix == prefix and n.plan.mirror_of is None)




def callers(topology: Topology) -> dict[str, str | None]:
    """Authorization header per caller kind."""
    def owner_of(prefix: str) -> str:
        return basic(f"300:0.NA/{prefix}", node_by_prefix(topology, prefix).plan.secret)
    return {
        "nobody": None,
        "wrong secret": basic(f"300:0.NA/{ENTERPRISE}", "not-the-secret"),
        "owner": owner_of(ENTERPRISE),
        "secondary admin": owner_of("88.101"),
        "other enterprise": owner_of("88.102.2001"),
        "other secondary": owner_of("88.102"),
        "root operator": basic("300:0.NA/0.NA", operator_secret(topology.plan)),
    }


def snapshot(node: RunningNode) -> dict[str, Any]:
    return {r.key: r.values for r in node.store.records()}


@dataclass
class Operation:
    name: str
    allowed: tuple[int, int]
    """Status and responseCode when the caller may do it."""
    call: Callable[[str], tuple[str, str, list[tuple[str, str]], Any]]
    """target handle -> (method, handle in the path, query, JSON body)."""
    needs_target: bool = True


def url_value(text: str, index: int = 1) -> dict[str, Any]:
    return {"index": index, "type": URL, "data": {"format": "string", "value": text}}


ADMIN_JSON = {"index": 100, "type": "HS_ADMIN", "data": {"format": "admin", "value": {
    "handle": f"0.NA/{ENTERPRISE}", "index": 200, "permissions": "011111110011"}}}
OPERATIONS = [
    Operation("create", CREATED, lambda t: ("PUT", t + "-new", [("overwrite", "false")],
                                            {"values": [url_value("https://example.cn/new")]}), needs_target=False),
    Operation("overwrite", OK, lambda t: ("PUT", t, [("overwrite", "true")],
                                          {"values": [url_value("https://example.cn/over"), ADMIN_JSON]})),
    Operation("add value", CREATED, lambda t: ("PUT", t, [("index", "2"), ("overwrite", "false")],
                                               {"values": [{"index": 2, "type": "EMAIL", "data": "a@example.cn"}]})),
    Operation("modify value", OK, lambda t: ("PUT", t, [("index", "1"), ("overwrite", "true")],
                                             [url_value("https://example.cn/changed")])),
    Operation("remove value", OK, lambda t: ("DELETE", t, [("index", "1")], None)),
    Operation("delete handle", OK, lambda t: ("DELETE", t, [], None)),
    Operation("create derived prefix", CREATED,
              lambda t: ("PUT", f"0.NA/{ENTERPRISE}.{t.rsplit('-', 1)[-1]}", [("overwrite", "false")],
                         [{"index": 1, "type": "DESC", "data": "derived"}]), needs_target=False),
]
EXPECTED = {
    "nobody": NO_AUTH, "wrong secret": WRONG, "other enterprise": NOT_ALLOWED, "other secondary": NOT_ALLOWED,
    "root operator": NOT_ALLOWED,
}


def put_target(node: RunningNode, text: str) -> None:
    handle = Handle.from_text(text)
    values = (HandleValue(1, URL, "https://example.cn/target"), admin_value(handle.prefix))
    node.store.put(HandleRecord(handle, values))


async def send(http: aiohttp.ClientSession, node: RunningNode, method: str, handle: str,
               query: list[tuple[str, str]], body: Any, header: str | None) -> tuple[int, dict[str, Any]]:
    headers = {"Accept": "application/json", "Content-Type": "application/json"}
    if header is not None:
        headers["Authorization"] = header
    data = None if body is None else json.dumps(body)
    async with http.request(method, f"{node.url}/api/handles/{handle}", params=query, data=data,
                            headers=headers) as reply:
        return reply.status, await reply.json()


async def test_enterprise_authorization_matrix(small: Topology) -> None:
    node = node_by_prefix(small, ENTERPRISE)
    headers = callers(small)
    failures = []
    async with aiohttp.ClientSession() as http:
        for operation, (who, header) in itertools.product(OPERATIONS, headers.items()):
            target = f"{ENTERPRISE}/MX-{next(_serial)}"
            if operation.needs_target:
                put_target(node, target)
            method, handle, query, body = operation.call(target)
            before = snapshot(node)
            status, answer = await send(http, node, method, handle, query, body, header)
            expected = EXPECTED.get(who, operation.allowed)
            got = (status, answer.get("responseCode"))
            if got != expected:
                failures.append(f"{operation.name} by {who}: expected {expected}, got {got} {answer.get('message')}")
            elif expected == operation.allowed and snapshot(node) == before:
                failures.append(f"{operation.name} by {who}: accepted but nothing changed")
            elif expected != operation.allowed and snapshot(node) != before:
                failures.append(f"{operation.name} by {who}: denied but the store changed")
            if "handle" not in answer:
                failures.append(f"{operation.name} by {who}: answer without 'handle'")
    assert not failures, "\n".join(failures)
    remote = node.server.authenticator.remote
    assert remote is not None and 1 <= remote.exchanges <= 8, "foreign verdicts are cached, not re-asked per request"


@pytest.mark.parametrize(("who", "prefix_node", "expected"), [
    ("secondary admin", "88.101", CREATED),     # owns 0.NA/88.101: may derive 88.101.1099
    ("root operator", "88.101", CREATED),       # the root operators administer every secondary's prefix record
    ("owner", "88.101", NOT_ALLOWED),           # an enterprise owner may not derive siblings at its secondary
    ("other secondary", "88.101", NOT_ALLOWED),
    ("root operator", "", CREATED),             # a server admin of the root: registers 0.NA/88.1099
    ("secondary admin", "", NOT_ADMIN),         # 0.NA/88 has no HS_ADMIN: only the root's server admins
])
async def test_derived_prefix_at_upper_tiers(small: Topology, who: str, prefix_node: str,
                                             expected: tuple[int, int]) -> None:
    node = node_by_prefix(small, prefix_node) if prefix_node else next(
        n for n in small.nodes.values() if n.plan.role == "root")
    new_prefix = f"0.NA/{prefix_node or '88'}.1099"
    before = snapshot(node)
    async with aiohttp.ClientSession() as http:
        status, answer = await send(http, node, "PUT", new_prefix, [("overwrite", "false")],
                                    [{"index": 1, "type": "DESC", "data": "derived"}], callers(small)[who])
    assert (status, answer["responseCode"]) == expected, answer
    assert (snapshot(node) == before) == (expected != CREATED)


async def test_foreign_identity_with_wrong_secret_is_refused_and_verdicts_expire(small: Topology) -> None:
    node = node_by_prefix(small, ENTERPRISE)
    target = f"{ENTERPRISE}/MX-{next(_serial)}"
    put_target(node, target)
    authenticator = node.server.authenticator
    async with aiohttp.ClientSession() as http:
        status, answer = await send(http, node, "DELETE", target, [], None, basic("300:0.NA/88.101", "guess"))
        assert (status, answer["responseCode"]) == WRONG
        assert node.store.get(Handle.from_text(target).key) is not None
        remote = authenticator.remote
        assert remote is not None
        asked = remote.exchanges
        good = callers(small)["secondary admin"]
        status, _ = await send(http, node, "DELETE", target, [("index", "1")], None, good)
        assert status == 200 and remote.exchanges == asked + 1
        put_target(node, target)
        status, _ = await send(http, node, "DELETE", target, [("index", "1")], None, good)
        assert status == 200 and remote.exchanges == asked + 1  # remembered
        clock_now = authenticator.clock()
        authenticator.clock = lambda: clock_now + 3600  # past the positive TTL: asked again
        put_target(node, target)
        status, _ = await send(http, node, "DELETE", target, [("index", "1")], None, good)
        assert status == 200 and remote.exchanges == asked + 2


async def test_changed_secret_takes_effect_at_once_for_local_keys(small: Topology) -> None:
    node = node_by_prefix(small, ENTERPRISE)
    old = callers(small)["owner"]
    new = basic(f"300:0.NA/{ENTERPRISE}", "a-new-secret")
    target = f"{ENTERPRISE}/MX-{next(_serial)}"
    put_target(node, target)
    key = [{"index": 300, "type": "HS_SECKEY", "data": "a-new-secret", "permissions": "1100"}]
    async with aiohttp.ClientSession() as http:
        assert (await send(http, node, "DELETE", target, [("index", "1")], None, old))[0] == 200  # verdict cached
        status, _ = await send(http, node, "PUT", f"0.NA/{ENTERPRISE}", [("index", "300")], key, old)
        assert status == 200
        put_target(node, target)
        status, answer = await send(http, node, "DELETE", target, [("index", "1")], None, old)
        assert (status, answer["responseCode"]) == WRONG
        assert (await send(http, node, "DELETE", target, [("index", "1")], None, new))[0] == 200


async def test_a_burst_of_foreign_requests_asks_the_holder_once_and_an_unreachable_holder_is_not_cached(
        small: Topology) -> None:
    node = node_by_prefix(small, ENTERPRISE)
    remote = node.server.authenticator.remote
    assert remote is not None
    targets = [f"{ENTERPRISE}/MX-{next(_serial)}" for _ in range(20)]
    for target in targets:
        put_target(node, target)
    header = callers(small)["secondary admin"]
    async with aiohttp.ClientSession() as http:
        replies = await asyncio.gather(*(send(http, node, "DELETE", t, [], None, header) for t in targets))
        assert [status for status, _ in replies] == [200] * 20 and remote.exchanges == 1

        root = next(n for n in small.nodes.values() if n.plan.role == "root")
        await root.server.stop()  # the holder of 0.NA/88.102's key (and the start of every walk) is gone
        remote._holders.clear()  # noqa: SLF001 - force a walk
        target = f"{ENTERPRISE}/MX-{next(_serial)}"
        put_target(node, target)
        status, answer = await send(http, node, "DELETE", target, [], None, callers(small)["other secondary"])
        assert (status, answer["responseCode"]) == WRONG and "cannot" in answer["message"]
        assert node.store.get(Handle.from_text(target).key) is not None


async def test_foreign_user_handle_with_a_secret_key_is_verified_at_its_enterprise(small: Topology) -> None:
    """Not only prefix owners: `300:88.102.2001/OPERATOR` (an ordinary handle at another enterprise) is verified by
    that enterprise's node, found by the usual two-step walk (its prefix handle, then the handle)."""
    holder = node_by_prefix(small, "88.102.2001")
    secret_value = HandleValue(300, "HS_SECKEY", hash_secret("operator-secret", os.urandom(16), 1000),
                               permissions=SECRET_PERMISSIONS)
    holder.store.put(HandleRecord(Handle.from_text("88.102.2001/OPERATOR"), (secret_value,)))
    node = node_by_prefix(small, ENTERPRISE)
    target = f"{ENTERPRISE}/MX-{next(_serial)}"
    values = (HandleValue(1, URL, "https://example.cn/t"),
              HandleValue(100, "HS_ADMIN", AdminRecord("88.102.2001/OPERATOR", 300)))
    node.store.put(HandleRecord(Handle.from_text(target), values))
    async with aiohttp.ClientSession() as http:
        status, answer = await send(http, node, "DELETE", target, [("index", "1")], None,
                                    basic("300:88.102.2001/OPERATOR", "wrong"))
        assert (status, answer["responseCode"]) == WRONG
        status, answer = await send(http, node, "DELETE", target, [("index", "1")], None,
                                    basic("300:88.102.2001/OPERATOR", "operator-secret"))
        assert (status, answer["responseCode"]) == OK
