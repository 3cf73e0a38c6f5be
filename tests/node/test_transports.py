"""The transport seam over loopback sockets: the aiohttp client and the keep-alive pool carry the same step to the same
answer, word every failure the same way (one mapping), and see the network model the same way (one wrapper)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web

from handlesim.core.codes import OpCode, ResponseCode
from handlesim.core.handle import Handle
from handlesim.core.messages import Request
from handlesim.core.netmodel import LinkParams, NetworkModel, Region
from handlesim.core.prefixes import http_site
from handlesim.core.resolution import Step
from handlesim.core.transport import Exchange, Transport
from handlesim.net.client import HandleClient
from handlesim.net.keepalive import KeepAlivePool, KeepAliveTransport
from handlesim.net.shaping import NetPath

from ..support.livenode import PREFIX, live_node

TIMEOUT = 0.3


def step_to(port: int, suffix: str = "PUMP-1") -> Step:
    site = http_site("ent", [("127.0.0.1", port)])
    request = Request(OpCode.RESOLUTION, Handle.from_text(f"{PREFIX}/{suffix}"), recursive=False)
    return Step(site, site.servers[0], request)


Exchanger = Callable[[Step, NetPath | None], Awaitable[Exchange]]


@pytest.fixture
async def both() -> AsyncIterator[dict[str, Exchanger]]:
    """Each network transport, as `exchange(step, net)` (a client's place in the network model is its own)."""
    pool = KeepAlivePool(timeout=TIMEOUT)
    async with HandleClient(timeout=TIMEOUT) as client:
        async def over_client(step: Step, net: NetPath | None) -> Exchange:
            client.net = net
            transport: Transport = client
            return await transport.exchange(step)

        async def over_pool(step: Step, net: NetPath | None) -> Exchange:
            transport: Transport = KeepAliveTransport(pool, net)
            return await transport.exchange(step)

        try:
            yield {"aiohttp client": over_client, "keep-alive pool": over_pool}
        finally:
            pool.close()


def without_url(failure: str, port: int) -> str:
    """The aiohttp client names the server in front of the reason (as its TransportError messages always did)."""
    return failure.removeprefix(f"http://127.0.0.1:{port}: ")


async def test_both_bring_back_the_same_answer(both: dict[str, Exchanger]) -> None:
    async with live_node() as node:
        answers = {name: await exchange(step_to(node.server.port), None) for name, exchange in both.items()}
        missing = {name: await exchange(step_to(node.server.port, "NOPE"), None) for name, exchange in both.items()}
    values = {name: a.response.values if a.response is not None else a.failure for name, a in answers.items()}
    assert len(set(values.values())) == 1 and all(a.modelled == 0.0 for a in answers.values()), values
    assert {a.response.code if a.response else None for a in missing.values()} == {ResponseCode.HANDLE_NOT_FOUND}


def a_closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_a_refused_connection_is_worded_alike(both: dict[str, Exchanger]) -> None:
    port = a_closed_port()
    failures = {name: (await exchange(step_to(port), None)).failure for name, exchange in both.items()}
    assert failures["aiohttp client"].startswith(f"http://127.0.0.1:{port}: ")
    reasons = {without_url(failure, port) for failure in failures.values()}
    assert len(reasons) == 1 and reasons.pop().startswith("connection refused ("), failures


async def test_a_silent_server_times_out_alike(both: dict[str, Exchanger]) -> None:
    held: list[asyncio.StreamWriter] = []

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        await reader.read(65536)  # read the request, answer nothing

    silent = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    try:
        failures = {name: (await exchange(step_to(port), None)).failure for name, exchange in both.items()}
    finally:
        for writer in held:
            writer.close()
        silent.close()
    assert {without_url(failure, port) for failure in failures.values()} == {f"timed out after {TIMEOUT:g} s"}


async def test_an_unreadable_answer_is_worded_alike(both: dict[str, Exchanger]) -> None:
    async def garbage(request: web.Request) -> web.Response:
        return web.Response(body=b"\xc1 not msgpack", content_type="application/msgpack")

    app = web.Application()
    app.router.add_get("/api/handles/{handle:.+}", garbage)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        failures = {name: (await exchange(step_to(port), None)).failure for name, exchange in both.items()}
    finally:
        await runner.cleanup()
    reasons = {without_url(failure, port) for failure in failures.values()}
    assert len(reasons) == 1 and reasons.pop().startswith("unreadable answer (HTTP 200: "), failures


def one_region(port: int, *, delay: float, loss: float = 0.0) -> NetPath:
    model = NetworkModel({"A": Region("A")}, {("A", "A"): LinkParams(delay, loss=loss)}, "A", "A")
    return NetPath.create("client", "A", model, timeout=TIMEOUT, endpoints={("127.0.0.1", port): "A"})


async def test_the_network_model_frames_both_alike(both: dict[str, Exchanger]) -> None:
    async with live_node() as node:
        port = node.server.port
        framed = {name: await exchange(step_to(port), one_region(port, delay=0.02)) for name, exchange in both.items()}
        lost = {name: await exchange(step_to(port), one_region(port, delay=0.02, loss=1.0))
                for name, exchange in both.items()}
    for name, exchange in framed.items():
        assert exchange.response is not None and exchange.response.ok, name
        assert exchange.modelled == pytest.approx(0.04), name  # 20 ms out, 20 ms back
    reasons = {without_url(e.failure, port) for e in lost.values()}
    assert reasons == {"timed out (request to A lost in the network model)"}
    assert all(e.response is None and e.modelled == 0.0 for e in lost.values())
