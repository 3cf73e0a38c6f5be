"""A NodeServer with its native interface: one port number for UDP and TCP, the node's edge applied (per-client rate
-> code 3, server-side timers), native answers in the node's statistics; and the client side (NativeTransport):
UDP with resends then TCP, TCP only, and failures in the same words as REST."""

from __future__ import annotations

import asyncio
import gc
import socket
from collections.abc import Iterator

import aiohttp
import pytest

from handlesim.core.codes import OpCode, ResponseCode
from handlesim.core.handle import Handle
from handlesim.core.messages import Request
from handlesim.core.netmodel import LinkParams, NetworkModel, Region
from handlesim.core.prefixes import http_site, native_interfaces, with_native_interfaces
from handlesim.core.resolution import Step
from handlesim.core.values import Interface, ServerInfo
from handlesim.net.keepalive import KeepAlivePool, KeepAliveTransport
from handlesim.net.limits import ServerLimits
from handlesim.net.metrics import exposition
from handlesim.net.nativeclient import NativeTransport, encode_request
from handlesim.net.shaping import NetPath

from ..support import rfcclient as rfc
from ..support.livenode import OWNER_AUTH, PREFIX, live_node

PUMP = f"{PREFIX}/PUMP-1"


def pump_query() -> bytes:
    return rfc.message(rfc.OC_RESOLUTION, rfc.resolution_body(PUMP), rfc.FLAG_PUBL)


def resolution(handle: str = PUMP) -> Request:
    return Request(OpCode.RESOLUTION, Handle.from_text(handle), recursive=False)


@pytest.fixture
def silent_udp() -> Iterator[int]:
    """A UDP port that takes datagrams and never answers (a firewall eating UDP)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink:
        sink.bind(("127.0.0.1", 0))
        yield sink.getsockname()[1]


async def test_one_port_number_for_udp_and_tcp_and_counted_in_stats() -> None:
    async with live_node(native=True) as node:
        native = node.server.native
        assert native is not None and native.udp_port == native.tcp_port == node.server.native_port > 0
        for transport in ("udp", "tcp", "udp"):
            assert (await rfc.RfcClient(transport).ask(node.native_address, pump_query())).code == rfc.RC_SUCCESS
        stats = node.server.stats()
        assert stats.requests["resolution"]["1"] == 3  # the service's answer, then two from the answer cache
        assert stats.latency["resolution"].count == 3
        assert stats.native is not None and stats.native["answered_from_cache"] == 2
        assert stats.to_json()["native"]["udp_messages"] == 2
        text = exposition([node.server])[0].decode()
        assert 'handlesim_native_messages_total{' in text and 'transport="udp"} 2.0' in text
        assert 'op="resolution",prefix="",role=""} 3.0' in text.split("handlesim_request_duration_seconds_count")[1]


async def test_per_client_rate_applies_to_native_requests() -> None:
    async with live_node(server_limits=ServerLimits(rate_per_client=0.001, rate_burst=2), native=True) as node:
        codes = [(await rfc.RfcClient("udp").ask(node.native_address, pump_query())).code for _ in range(4)]
        assert codes == [1, 1, 3, 3]
        stats = node.server.stats()
        assert stats.rejected_busy == 2 and stats.requests["resolution"]["3"] == 2


async def test_rest_requests_in_flight_count_against_native_ones() -> None:
    """One in-flight budget per node: with max_in_flight REST requests being served, a native request gets 3."""
    async with live_node(server_limits=ServerLimits(max_in_flight=4), native=True) as node:
        gate = node.server.gate
        gate.in_flight = 4  # as if four REST requests were in their routes right now
        assert (await rfc.RfcClient("udp").ask(node.native_address, pump_query())).code == 3
        gate.in_flight = 0
        assert (await rfc.RfcClient("udp").ask(node.native_address, pump_query())).code == rfc.RC_SUCCESS


async def test_garbage_is_answered_and_counted_as_protocol_errors() -> None:
    async with live_node(native=True) as node:
        answer = await rfc.RfcClient("udp").ask(node.native_address, rfc.message(rfc.OC_RESOLUTION, b"\x00\x00"))
        assert answer.code == 4  # protocol error: the body is cut short
        stats = node.server.stats()
        assert stats.requests["resolution"]["4"] == 1 and stats.native is not None
        assert stats.native["protocol_errors"] == 1


async def test_native_transport_over_udp_and_tcp_only() -> None:
    async with live_node(native=True) as node:
        server = ServerInfo(1, "127.0.0.1", native_interfaces(node.server.native_port, node.server.native_port))
        for protocol in ("udp", "tcp"):
            async with NativeTransport(protocol, timeout=2) as transport:
                exchange = await transport.exchange_with(server, resolution())
                assert exchange.response is not None and exchange.response.ok
                assert {v.type for v in exchange.response.values} >= {"URL", "EMAIL"}
                missing = await transport.exchange_with(server, resolution(f"{PREFIX}/NOPE"))
                assert missing.response is not None and missing.response.code == ResponseCode.HANDLE_NOT_FOUND
        native = node.server.native
        assert native is not None and native.counters.udp_messages == 2 and native.counters.tcp_messages == 2


async def test_udp_unanswered_falls_back_to_tcp(silent_udp: int) -> None:
    async with live_node(native=True) as node:
        server = ServerInfo(1, "127.0.0.1", (Interface("TCP", node.server.native_port),
                                             Interface("UDP", silent_udp, admin=False)))
        async with NativeTransport("udp", timeout=2, udp_waits=(0.05, 0.05)) as transport:
            exchange = await transport.exchange_with(server, resolution())
            assert exchange.response is not None and exchange.response.ok
            assert transport.fallbacks == 1
            envelope, message = encode_request(resolution(), 7)
            assert await transport.answer_code("127.0.0.1", silent_udp, node.server.native_port, message) == 1
            assert transport.fallbacks == 2


async def test_failures_in_words(silent_udp: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as closed:
        closed.bind(("127.0.0.1", 0))
        refused = closed.getsockname()[1]  # bound, never listening: connections are refused
        async with NativeTransport("udp", timeout=0.3, udp_waits=(0.05,)) as transport:
            only_udp = ServerInfo(1, "127.0.0.1", (Interface("UDP", silent_udp, admin=False),))
            timed_out = await transport.exchange_with(only_udp, resolution())
            assert timed_out.response is None and timed_out.failure == "timed out after 0.3 s"
            tcp_refuses = ServerInfo(1, "127.0.0.1", (Interface("TCP", refused),
                                                      Interface("UDP", silent_udp, admin=False)))
            refusal = await transport.exchange_with(tcp_refuses, resolution())
            assert refusal.failure.startswith("connection refused")
            rest_only = ServerInfo(1, "127.0.0.1", (Interface("HTTP", refused),))
            assert (await transport.exchange_with(rest_only, resolution())).failure == \
                "127.0.0.1 lists no native TCP interface"


async def test_a_late_udp_answer_after_a_resend_still_counts() -> None:
    """The resend carries the same request id, so the first answer to either send completes the exchange."""
    async with live_node(native=True) as node:
        native = node.server.native
        assert native is not None
        port = native.udp_port
        native.close_listeners()  # the first send goes unanswered...
        server = ServerInfo(1, "127.0.0.1", (Interface("UDP", port, admin=False),))
        async with NativeTransport("udp", timeout=3, udp_waits=(0.2, 2.0)) as transport:
            asked = asyncio.ensure_future(transport.exchange_with(server, resolution()))
            await asyncio.sleep(0.1)
            await native.reopen()  # ...the resend finds it listening again
            exchange = await asyncio.wait_for(asked, 5)
        assert exchange.response is not None and exchange.response.ok


async def test_native_brings_back_what_rest_brings_and_the_model_frames_it_alike() -> None:
    async with live_node(native=True) as node:
        port, native_port = node.server.port, node.server.native_port
        site = with_native_interfaces(http_site("ent", [("127.0.0.1", port)]), [(native_port, native_port)])
        step = Step(site, site.servers[0], resolution())
        pool = KeepAlivePool(timeout=1.0)
        try:
            over_rest = await KeepAliveTransport(pool).exchange(step)
        finally:
            pool.close()
        async with NativeTransport("udp", timeout=1.0) as native:
            over_native = await native.exchange(step)
            assert over_rest.response is not None and over_native.response is not None
            assert over_native.response.values == over_rest.response.values
            native.net = one_region(native_port, delay=0.02)
            framed = await native.exchange(step)
            native.net = one_region(native_port, delay=0.02, loss=1.0)
            lost = await native.exchange(step)
    assert framed.response is not None and framed.modelled == pytest.approx(0.04)  # 20 ms out, 20 ms back
    assert lost.response is None and lost.failure == "timed out (request to A lost in the network model)"


def one_region(port: int, *, delay: float, loss: float = 0.0) -> NetPath:
    model = NetworkModel({"A": Region("A")}, {("A", "A"): LinkParams(delay, loss=loss)}, "A", "A")
    return NetPath.create("client", "A", model, timeout=1.0, endpoints={("127.0.0.1", port): "A"})


async def test_a_changed_record_is_never_answered_from_the_native_cache() -> None:
    """The native listener keeps encoded answers in the same kind of cache as the REST routes (EncodedAnswers): a
    change to the record, here over REST, drops them; nothing it holds is walked by the garbage collector."""
    async with live_node(native=True) as node:
        assert node.server.native is not None
        native = node.server.native.responder

        async def url() -> bytes:
            answer = await rfc.RfcClient("udp").ask(node.native_address, pump_query())
            assert answer.code == rfc.RC_SUCCESS
            return next(v.data for v in answer.values if v.type == "URL")

        assert await url() == await url() == b"https://id.example.cn/pump-1"
        assert len(native.answers) == 1 and native.counters.answered_from_cache == 1
        gc.collect()
        assert not any(gc.is_tracked(held) for held in native.answers.held_objects())
        async with aiohttp.ClientSession() as http, \
                http.put(f"{node.url}/api/handles/{PUMP}?index=1", headers={"Authorization": OWNER_AUTH},
                         json=[{"index": 1, "type": "URL", "data": "https://changed.example.cn"}]) as reply:
            assert reply.status == 200, await reply.text()
        assert len(native.answers) == 0
        assert await url() == b"https://changed.example.cn"
