"""Every client path addresses exactly the handle it names: `.` and `..` suffix segments, `%` and escapes, `/` runs
and URL delimiters reach the handle spelled that way, never another one (the small topology on loopback)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import aiohttp
import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from handlesim.bench.workload import Target
from handlesim.core.codes import OpCode, ResponseCode
from handlesim.core.handle import Handle, Prefix
from handlesim.core.messages import Request, Response
from handlesim.core.prefixes import owner_identity
from handlesim.core.resolution import Resolution
from handlesim.core.transport import drive
from handlesim.core.values import URL, HandleValue
from handlesim.demo.web import DemoWeb, DemoWebConfig
from handlesim.net import rest
from handlesim.net.client import HandleClient, basic_authorization
from handlesim.net.keepalive import KeepAlivePool, KeepAliveTransport, build_request
from handlesim.net.transport import SYSTEM_CLOCK
from handlesim.topology.running import RunningNode, Topology
from handlesim.topology.state import load_state
from handlesim.wire import codec

from ..support.strategies import addressing_suffixes

PREFIX = "88.101.1001"
SEEDED = f"{PREFIX}/PUMP-000001"
T = TypeVar("T")


class Clients:
    """One of every client path, against the small topology."""

    def __init__(self, topology: Topology, client: HandleClient, pool: KeepAlivePool, page: str,
                 http: aiohttp.ClientSession) -> None:
        self.topology, self.client, self.pool, self.page, self.http = topology, client, pool, page, http
        self.enterprise: RunningNode = next(n for n in topology.nodes.values() if n.plan.prefix == PREFIX)
        self.resolver = topology.nodes["resolver-qingdao"]

    def urls_stored(self, text: str) -> list[object] | None:
        record = self.enterprise.store.get(Handle.from_text(text).key)
        return None if record is None else [v.data for v in record.values if v.type == URL]

    def records(self) -> dict[str, tuple[HandleValue, ...]]:
        return {r.key: r.values for r in self.enterprise.store.records()}

    # -- writing: the CLI's path (HandleClient) and the bench generator's (a PUT over the keep-alive pool) -----------

    async def register_with_client(self, handle: Handle, url: str) -> int:
        request = Request(OpCode.CREATE_HANDLE, handle, values=(HandleValue(1, URL, url),), overwrite=True)
        owner = (owner_identity(Prefix(PREFIX)), self.enterprise.plan.secret)
        return int((await self.client.send(self.enterprise.url, request, credentials=owner)).code)

    async def register_with_pool(self, handle: Handle, url: str) -> int:
        host, port = "127.0.0.1", self.enterprise.server.port
        body = msgpack.packb({"values": [{"index": 1, "type": URL, "data": url}]}, use_bin_type=True)
        headers = {"Content-Type": codec.MSGPACK,
                   "Authorization": basic_authorization(f"300:0.NA/{PREFIX}", self.enterprise.plan.secret)}
        _, answer = await self.pool.request(host, port, build_request("PUT", host, port, rest.path_for(handle),
                                                                      body=body, headers=headers))
        return int(codec.decode_response(answer, codec.MSGPACK).code)

    # -- reading: every path a lookup takes ---------------------------------------------------------------------

    async def client_walk(self, handle: Handle) -> Response:
        walked = await self.client.resolve(handle, self.topology.root_sites)
        assert walked.result is not None
        return walked.result

    async def client_direct(self, handle: Handle) -> Response:
        return await self.client.send(self.enterprise.url, Request(OpCode.RESOLUTION, handle))

    async def through_resolver(self, handle: Handle) -> Response:
        # authoritative: past the resolver's shared cache, which may still hold a value an earlier example replaced
        return await self.client.send(self.resolver.url, Request(OpCode.RESOLUTION, handle, authoritative=True))

    async def keepalive_walk(self, handle: Handle) -> Response:
        return await drive(Resolution(handle, self.topology.root_sites), KeepAliveTransport(self.pool), SYSTEM_CLOCK)

    async def bench_get(self, handle: Handle) -> Response:
        target = Target(handle.text, "127.0.0.1", self.enterprise.server.port, self.enterprise.plan.node_id)
        _, answer = await self.pool.request(target.host, target.port,
                                            build_request("GET", target.host, target.port, target.path))
        return codec.decode_response(answer, codec.MSGPACK)

    async def page_lookup(self, handle: Handle) -> Response:
        async with self.http.post(f"{self.page}/api/lookup",
                                  json={"handle": handle.text, "mode": "iterative", "cache": False}) as reply:
            view: dict[str, Any] = await reply.json()
        assert view.get("handle") == handle.text, view
        values = tuple(HandleValue(v["index"], v["type"], v["text"]) for v in view["values"])
        return Response(ResponseCode(view["code"]), handle.text, values=values)

    def readers(self) -> dict[str, Callable[[Handle], Awaitable[Response]]]:
        return {"HandleClient walk": self.client_walk, "HandleClient direct": self.client_direct,
                "resolver node": self.through_resolver, "keep-alive walk": self.keepalive_walk,
                "bench GET": self.bench_get, "page /api/lookup": self.page_lookup}


@pytest.fixture
async def clients(small: Topology) -> AsyncIterator[Clients]:
    page = DemoWeb(load_state(small.state_dir), DemoWebConfig(poll_interval=0.0))
    port = await page.start("127.0.0.1", 0)
    pool = KeepAlivePool(timeout=5.0)
    try:
        async with HandleClient(timeout=5.0) as client, aiohttp.ClientSession() as http:
            yield Clients(small, client, pool, f"http://127.0.0.1:{port}", http)
    finally:
        pool.close()
        await page.stop()


def urls(answer: Response) -> list[object]:
    return [v.data for v in answer.values if v.type == URL]


async def test_registering_a_dot_dot_suffix_creates_exactly_that_handle(clients: Clients) -> None:
    seeded = clients.urls_stored(SEEDED)
    assert seeded
    for register, text in ((clients.register_with_client, f"{PREFIX}/a/../PUMP-000001"),
                           (clients.register_with_pool, f"{PREFIX}/b/../PUMP-000001")):
        assert await register(Handle.from_text(text), f"https://example.cn/{text}") == ResponseCode.SUCCESS
        assert clients.urls_stored(text) == [f"https://example.cn/{text}"]
    assert clients.urls_stored(SEEDED) == seeded, "PUMP-000001 itself is left alone"


async def test_a_dot_segment_addresses_another_handle_on_every_read_path(clients: Clients) -> None:
    dotted, up = Handle.from_text(f"{PREFIX}/./PUMP-000001"), Handle.from_text(f"{PREFIX}/..")
    for name, read in clients.readers().items():
        assert (await read(Handle.from_text(SEEDED))).code == ResponseCode.SUCCESS, name
        assert (await read(dotted)).code == ResponseCode.HANDLE_NOT_FOUND, name
        assert (await read(up)).code == ResponseCode.HANDLE_NOT_FOUND, name


async def test_a_literal_percent_2f_is_stored_and_read_as_written(clients: Clients) -> None:
    for register, text in ((clients.register_with_client, f"{PREFIX}/a%2Fb"),
                           (clients.register_with_pool, f"{PREFIX}/c%2Fd")):
        assert await register(Handle.from_text(text), f"https://example.cn/{text}") == ResponseCode.SUCCESS
        assert clients.urls_stored(text) == [f"https://example.cn/{text}"]
        assert clients.urls_stored(text.replace("%2F", "/")) is None, "not decoded twice into a slash"
        for name, read in clients.readers().items():
            assert urls(await read(Handle.from_text(text))) == [f"https://example.cn/{text}"], name


async def test_register_then_resolve_addresses_exactly_that_handle_over_every_client_path(clients: Clients) -> None:
    loop = asyncio.get_running_loop()
    serial = itertools.count()
    checked: list[str] = []

    def run(coroutine: Coroutine[Any, Any, T]) -> T:
        """On the topology's event loop (hypothesis drives examples from a thread: it cannot await)."""
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result(30)

    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(suffix=addressing_suffixes, with_pool=st.booleans())
    def register_then_resolve(suffix: str, with_pool: bool) -> None:
        handle = Handle.from_text(f"{PREFIX}/{suffix}")
        url = f"https://example.cn/{next(serial)}"
        register = clients.register_with_pool if with_pool else clients.register_with_client

        async def check() -> None:
            before = clients.records()
            assert await register(handle, url) == ResponseCode.SUCCESS, handle.text
            after = clients.records()
            changed = {key for key in before.keys() | after.keys() if before.get(key) != after.get(key)}
            assert changed == {handle.key}, (handle.text, changed)
            for name, read in clients.readers().items():
                answer = await read(handle)
                assert answer.code == ResponseCode.SUCCESS and urls(answer) == [url], (name, handle.text, answer)
            checked.append(handle.text)

        run(check())

    await asyncio.to_thread(register_then_resolve)
    assert len(checked) >= 10, "hypothesis ran the examples"
