"""Loopback integration: the small topology on 127.0.0.1 with ephemeral ports, resolved over real sockets."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from handlesim.core.codes import OpCode, ResponseCode
from handlesim.core.handle import Handle
from handlesim.core.messages import Request
from handlesim.core.prefixes import owner_identity
from handlesim.core.values import HandleValue
from handlesim.net.client import HandleClient, locate
from handlesim.topology.config import load_config
from handlesim.topology.plan import Role, build_plan
from handlesim.topology.runner import describe, launch
from handlesim.topology.running import Topology
from handlesim.topology.state import load_state

from ..support.paths import CONFIGS


@pytest.fixture
async def client() -> AsyncIterator[HandleClient]:
    async with HandleClient(timeout=2.0) as c:
        yield c


def an_identifier(topology: Topology) -> str:
    examples = describe(topology).examples
    assert examples
    return str(examples[0])


async def test_resolves_through_three_real_hops(small: Topology, client: HandleClient) -> None:
    handle = Handle.from_text(an_identifier(small))
    res = await client.resolve(handle, small.root_sites)
    assert res.result is not None and res.result.ok, res.result
    roles = [small.nodes[h.site].plan.role for h in res.trace]
    assert roles == ["root", "secondary", "enterprise"]
    assert [h.code for h in res.trace] == [303, 1, 1]
    assert all(0 < h.duration < 1 for h in res.trace)


async def test_register_resolve_delete(small: Topology, client: HandleClient) -> None:
    enterprise = next(n for n in small.nodes.values() if n.plan.role == "enterprise")
    handle = Handle.from_text(f"{enterprise.plan.prefix}/NEW-1")
    identity = owner_identity(handle.prefix)
    creds = (identity, enterprise.plan.secret)
    sites = await locate(client, handle.prefix_handle(), small.root_sites)
    assert sites[0].servers[0].url() == enterprise.url
    create = Request(OpCode.CREATE_HANDLE, handle, values=(HandleValue(1, "URL", "https://id.example.cn/new"),),
                     overwrite=False)
    reply = await client.send(enterprise.url, create, credentials=creds)
    assert reply.ok and reply.created
    res = await client.resolve(handle, small.root_sites)
    assert res.result is not None and res.result.ok
    assert [v.data for v in res.result.values if v.type == "URL"] == ["https://id.example.cn/new"]
    assert (await client.send(enterprise.url, Request(OpCode.DELETE_HANDLE, handle), credentials=creds)).ok
    res = await client.resolve(handle, small.root_sites)
    assert res.result is not None and res.result.code == ResponseCode.HANDLE_NOT_FOUND
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{enterprise.url}/api/handles/{handle.text}") as reply_http:
            assert reply_http.status == 404
            body = await reply_http.json()
            assert body["responseCode"] == 100 and body["handle"] == handle.text


async def test_unknown_prefix_is_not_found(small: Topology, client: HandleClient) -> None:
    res = await client.resolve(Handle.from_text("88.999.1/X"), small.root_sites)
    assert res.result is not None and res.result.code == ResponseCode.HANDLE_NOT_FOUND
    assert len(res.trace) == 1


async def test_a_node_that_is_down_gives_a_clear_error_without_hanging(small: Topology,
                                                                       client: HandleClient) -> None:
    handle = Handle.from_text(an_identifier(small))
    owner = next(n for n in small.nodes.values() if n.plan.prefix == handle.prefix.text)
    await owner.server.stop()
    res = await asyncio.wait_for(client.resolve(handle, small.root_sites), timeout=10)
    assert res.result is not None and res.result.code == ResponseCode.ERROR
    assert owner.plan.node_id in res.result.message
    assert res.trace[-1].code is None


@pytest.mark.parametrize(
    ("method", "path", "headers", "body", "status", "code"),
    [
        ("GET", "/api/handles/88..1/x", {}, None, 400, 102),
        ("GET", "/api/handles/nosuffix", {}, None, 400, 102),
        ("GET", "/api/handles/88.101/x?index=abc", {}, None, 400, 4),
        ("PUT", "/api/handles/{prefix}/x", {"Content-Type": "application/json"}, b"{not json", 400, 4),
        ("PUT", "/api/handles/{prefix}/x", {"Content-Type": "application/msgpack"}, b"\xc1\xc1", 400, 4),
        ("PUT", "/api/handles/{prefix}/x", {"Content-Type": "application/json"}, b'[{"index": 0}]', 400, 202),
        ("GET", "/api/nowhere", {}, None, 404, 4),
    ],
)
async def test_malformed_requests_get_protocol_errors(small: Topology, method: str, path: str,
                                                      headers: dict[str, str], body: bytes | None, status: int,
                                                      code: int) -> None:
    enterprise = next(n for n in small.nodes.values() if n.plan.role == "enterprise")
    before = len(enterprise.store)
    async with aiohttp.ClientSession() as http:
        url = enterprise.url + path.format(prefix=enterprise.plan.prefix)
        async with http.request(method, url, data=body, headers=headers) as reply:
            assert reply.status == status
            answer = json.loads(await reply.read())
    assert answer["responseCode"] == code and answer["message"]
    assert "handle" in answer
    assert len(enterprise.store) == before


async def test_msgpack_and_json_on_the_same_route(small: Topology) -> None:
    handle = an_identifier(small)
    enterprise = next(n for n in small.nodes.values() if handle.startswith(n.plan.prefix + "/"))
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{enterprise.url}/api/handles/{handle}") as as_json:
            assert as_json.content_type == "application/json"
            data = await as_json.json()
        async with http.get(f"{enterprise.url}/api/handles/{handle}",
                            headers={"Accept": "application/msgpack"}) as as_msgpack:
            assert as_msgpack.content_type == "application/msgpack"
            import msgpack
            packed = msgpack.unpackb(await as_msgpack.read())
    assert data["responseCode"] == packed["responseCode"] == 1
    assert data["values"] == packed["values"]


async def test_sim_endpoints_and_state_file(small: Topology) -> None:
    state = load_state(small.state_dir)
    assert {n.role for n in state.nodes} >= {Role.ROOT, Role.SECONDARY, Role.ENTERPRISE}
    root = state.nodes[0]
    async with aiohttp.ClientSession() as http:
        async with http.get(root.url + "/_sim/health") as health:
            assert (await health.json())["status"] == "ok"
        async with http.get(root.url + "/_sim/stats") as stats:
            body = await stats.json()
    assert body["node"] == root.id and body["store_handles"] >= 1 and "uptime_s" in body
    creds = small.state_dir / "credentials.json"
    assert creds.stat().st_mode & 0o777 == 0o600


async def test_sqlite_restart_keeps_data(tmp_path: Path) -> None:
    config = load_config(CONFIGS / "small.toml").with_overrides(base_port=0)
    first = await launch(build_plan(config), tmp_path / "s", store_kind="sqlite")
    enterprise = next(n for n in first.nodes.values() if n.plan.role == "enterprise")
    handle = Handle.from_text(f"{enterprise.plan.prefix}/KEPT")
    async with HandleClient() as client:
        reply = await client.send(enterprise.url, Request(OpCode.CREATE_HANDLE, handle,
                                  values=(HandleValue(1, "URL", "https://x.example.cn"),)),
                                  credentials=(owner_identity(handle.prefix), enterprise.plan.secret))
        assert reply.ok
    count = len(enterprise.store)
    await first.stop()
    second = await launch(build_plan(config), tmp_path / "s", store_kind="sqlite")
    try:
        again = second.nodes[enterprise.plan.node_id]
        assert len(again.store) == count
        async with HandleClient() as client:
            res = await client.resolve(handle, second.root_sites)
            assert res.result is not None and res.result.ok
    finally:
        await second.stop()


async def test_second_up_on_the_same_state_dir_is_refused(small: Topology) -> None:
    from handlesim.topology.running import LaunchError

    config = load_config(CONFIGS / "small.toml").with_overrides(base_port=0)
    with pytest.raises(LaunchError, match="another `handlesim up` is running"):
        await launch(build_plan(config), small.state_dir)


async def test_more_nodes_than_open_files_is_refused_before_any_starts(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from handlesim.topology import ports
    from handlesim.topology.running import LaunchError

    monkeypatch.setattr(ports, "open_files_limit", lambda: ports.OPEN_FILES_HEADROOM + 20)
    plan = build_plan(load_config(CONFIGS / "small.toml").with_overrides(base_port=0))
    with pytest.raises(LaunchError, match=f"{len(plan.nodes)} nodes in one process need about"):
        await launch(plan, tmp_path / "state", store_kind="memory")
    assert not (tmp_path / "state").exists(), "a refused launch leaves no state dir behind"


def resolver_url(topology: Topology) -> str:
    return next(n.url for n in topology.nodes.values() if n.plan.role == "resolver")


async def test_resolver_walks_once_then_answers_from_its_cache(small: Topology, client: HandleClient) -> None:
    handle = Handle.from_text(an_identifier(small))
    first = await client.resolve_via(resolver_url(small), handle)
    assert first.ok and first.extra["hops"] == 3 and first.extra["cacheHit"] is False
    assert [h["code"] for h in first.extra["trace"]] == [303, 1, 1]  # type: ignore[union-attr]
    second = await client.resolve_via(resolver_url(small), handle)
    assert second.ok and second.extra["hops"] == 0 and second.extra["cacheHit"] is True
    assert second.values == first.values
    sibling = Handle.from_text(handle.prefix.text + "/" + "NOT-THERE")
    miss = await client.resolve_via(resolver_url(small), sibling)
    assert miss.code == ResponseCode.HANDLE_NOT_FOUND and miss.extra["hops"] == 1, "the prefix's site was cached"
    again = await client.resolve_via(resolver_url(small), sibling)
    assert again.code == ResponseCode.HANDLE_NOT_FOUND and again.extra["hops"] == 0, "negative answers cached"
    async with aiohttp.ClientSession() as http:
        async with http.get(resolver_url(small) + "/_sim/stats") as reply:
            stats = (await reply.json())["resolver_cache"]
    assert stats["walks"] == 4 and stats["answered_from_cache"] == 2 and stats["hits"] >= 3


async def test_any_node_resolves_foreign_handles_for_rest_clients(small: Topology) -> None:
    """pyhandle GETs its username handle at the node it talks to; a node walks for handles it does not home."""
    handle = an_identifier(small)
    stranger = next(n for n in small.nodes.values() if n.plan.role == "enterprise" and
                    not handle.startswith(n.plan.prefix + "/"))
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{stranger.url}/api/handles/{handle}") as reply:
            assert reply.status == 200 and (await reply.json())["handle"] == handle
        async with http.get(f"{stranger.url}/api/handles/{handle}?recursive=false") as reply:
            body = await reply.json()
            assert reply.status == 400 and body["responseCode"] == 301


async def test_client_cache_is_warm_then_evicted_by_its_own_writes(small: Topology) -> None:
    from handlesim.core.cache import ResolutionCache

    enterprise = next(n for n in small.nodes.values() if n.plan.role == "enterprise")
    handle = Handle.from_text(f"{enterprise.plan.prefix}/CACHED")
    creds = (owner_identity(handle.prefix), enterprise.plan.secret)
    async with HandleClient(cache=ResolutionCache()) as cached:
        create = Request(OpCode.CREATE_HANDLE, handle, values=(HandleValue(1, "URL", "https://a.example.cn"),))
        assert (await cached.send(enterprise.url, create, credentials=creds)).ok
        cold = await cached.resolve(handle, small.root_sites)
        warm = await cached.resolve(handle, small.root_sites)
        assert cold.hops == 3 and warm.hops == 0
        change = Request(OpCode.CREATE_HANDLE, handle, values=(HandleValue(1, "URL", "https://b.example.cn"),))
        assert (await cached.send(enterprise.url, change, credentials=creds)).ok
        after = await cached.resolve(handle, small.root_sites)
        assert after.hops == 1, "the prefix's site stays cached; the changed handle is asked again"
        assert after.result is not None and after.result.values[0].data == "https://b.example.cn"


async def test_the_answer_caches_hold_nothing_the_garbage_collector_walks(small: Topology) -> None:
    """A node that has answered 100k identifiers spent ~150 ms in every full collection walking its answer caches
    (benchmarks/gc_pauses.py). A structural check, not a timing one: after first-time answers and a full collection,
    no key, entry or index tuple of the encoded-answer cache, and no key of the encoded-value cache, is in a
    generation the collector walks (they are untracked, or frozen boot-time values)."""
    import gc

    from handlesim.wire import codec

    enterprises = [node for node in small.nodes.values() if node.plan.role == "enterprise"]
    async with aiohttp.ClientSession() as session:
        for node in enterprises:
            for record in node.store.records():
                if not record.handle.text.startswith("0.NA/"):
                    for media in (codec.JSON, codec.MSGPACK):
                        async with session.get(f"{node.url}/api/handles/{record.handle.text}",
                                               headers={"Accept": media}) as reply:
                            assert reply.status == 200
    gc.collect()
    gc.collect()  # a tuple of tuples is untracked once its members are
    walked = {id(o) for o in gc.get_objects()}
    cached = 0
    for node in enterprises:
        answers = node.server.answers
        held = list(answers.held_objects())
        cached += len(answers)
        assert len(held) > 2 * len(answers)  # every key and entry, and the index by handle
        assert not any(id(container) in walked for container in held)
    assert cached >= 200
    fragments = [value for cache in codec._fragments.values() for value in cache]  # noqa: SLF001
    assert fragments and not any(id(value) in walked for value in fragments)


async def test_the_resolvers_shared_cache_holds_encoded_answers(small: Topology) -> None:
    """The resolver's cache lives as long as the node: it holds its answers to ordinary handles as msgpack bytes, so
    after walks and a full collection none of their keys, entries or index tuples is in a generation the collector
    walks, and a walk that hits the cache gets back the same answer."""
    import gc

    resolver_node = next(node for node in small.nodes.values() if node.plan.role == "resolver")
    enterprise = next(node for node in small.nodes.values() if node.plan.role == "enterprise")
    handles = [r.handle.text for r in enterprise.store.records() if not r.handle.text.startswith("0.NA/")][:5]
    async with aiohttp.ClientSession() as session:
        first = []
        for handle in handles:
            async with session.get(f"{resolver_node.url}/api/handles/{handle}?trace=true") as reply:
                assert reply.status == 200
                first.append(await reply.json())
        for handle, answer in zip(handles, first, strict=True):  # through the walk again: from the cache
            async with session.get(f"{resolver_node.url}/api/handles/{handle}?trace=true") as reply:
                again = await reply.json()
            assert again["values"] == answer["values"] and again["hops"] == 0
    resolver = resolver_node.server.resolver
    assert resolver is not None and len(resolver.cache) >= len(handles)
    gc.collect()
    gc.collect()
    walked = {id(o) for o in gc.get_objects()}
    held = resolver.cache.held_objects()
    assert len(held) >= 3 * len(handles) and not any(id(container) in walked for container in held)
