"""Every input limit, table-driven: exceeding it answers the documented response code and HTTP status (never a 500),
a message naming the limit, and changes nothing. Slow bodies time out; extra connections and work are refused."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from handlesim.core.handle import Handle
from handlesim.core.service import ServiceLimits
from handlesim.core.storage import HandleRecord, Store
from handlesim.core.values import HS_ADMIN, HS_VLIST, AdminRecord, HandleValue, ValueList, ValueReference
from handlesim.net.limits import ServerLimits

from ..support.livenode import OWNER_AUTH, PREFIX, USER_AUTH, USER_HANDLE, live_node, seeded_store
from ..support.paths import CONFIGS
from ..support.waiting import eventually

SMALL = ServiceLimits(max_values_per_handle=5, max_value_bytes=100, max_filter_items=3, max_page_size=10,
                      max_handle_bytes=40, max_suffix_bytes=20, max_group_depth=2)
SMALL_SERVER = ServerLimits(max_body_bytes=2000, body_timeout_s=1.0, max_connections=6, max_in_flight=2)


def with_deep_groups() -> Store:
    """P/DEEP is administered by group G1 > G2 > G3 > the user: three groups deep."""
    store = seeded_store()
    chain = [f"{PREFIX}/G1", f"{PREFIX}/G2", f"{PREFIX}/G3"]
    members = [*chain[1:], None]
    for group, member in zip(chain, members, strict=True):
        ref = ValueReference(member, 200) if member else ValueReference(USER_HANDLE, 300)
        store.put(HandleRecord(Handle.from_text(group), (HandleValue(200, HS_VLIST, ValueList((ref,))),)))
    store.put(HandleRecord(Handle.from_text(f"{PREFIX}/DEEP"), (
        HandleValue(1, "URL", "https://id.example.cn/deep"),
        HandleValue(100, HS_ADMIN, AdminRecord(chain[0], 200)))))
    return store


def values(count: int, size: int = 10) -> dict[str, Any]:
    return {"values": [{"index": i + 1, "type": "URL", "data": "x" * size} for i in range(count)]}


# limit, method, path, body, auth, HTTP status, response code
ROWS: list[tuple[str, str, str, Any, str | None, int, int]] = [
    ("max_handle_bytes", "GET", "/api/handles/88.101.1001.2.3.4.5.6.7.8.9.10.11.12.13/X", None, None, 400, 102),
    ("max_suffix_bytes", "PUT", f"/api/handles/{PREFIX}/" + "S" * 21, values(1), OWNER_AUTH, 400, 102),
    ("max_values_per_handle", "PUT", f"/api/handles/{PREFIX}/NEW", values(6), OWNER_AUTH, 400, 202),
    ("max_values_per_handle", "PUT", f"/api/handles/{PREFIX}/PUMP-1?index=3&index=4&index=5&index=6",
     {"values": [{"index": i, "type": "X", "data": "x"} for i in (3, 4, 5, 6)]}, OWNER_AUTH, 400, 202),
    ("max_value_bytes", "PUT", f"/api/handles/{PREFIX}/NEW", values(1, 101), OWNER_AUTH, 400, 202),
    ("max_filter_items", "GET", f"/api/handles/{PREFIX}/PUMP-1?type=A&type=B&type=C&type=D", None, None, 400, 4),
    ("max_filter_items", "DELETE", f"/api/handles/{PREFIX}/PUMP-1?index=1&index=2&index=3&index=4", None,
     OWNER_AUTH, 400, 4),
    ("max_page_size", "GET", f"/api/handles?prefix={PREFIX}&pageSize=11", None, OWNER_AUTH, 400, 4),
    ("max_body_bytes", "PUT", f"/api/handles/{PREFIX}/NEW", values(1, 3000), OWNER_AUTH, 413, 4),
    ("max_group_depth", "PUT", f"/api/handles/{PREFIX}/DEEP?index=1",
     {"values": [{"index": 1, "type": "URL", "data": "https://changed"}]}, USER_AUTH, 403, 400),
]


@pytest.mark.parametrize(("limit", "method", "path", "body", "auth", "status", "code"), ROWS,
                         ids=[f"{r[0]}-{r[1]}" for r in ROWS])
async def test_exceeding_a_limit_is_answered_and_changes_nothing(limit: str, method: str, path: str, body: Any,
                                                                 auth: str | None, status: int, code: int) -> None:
    async with live_node(SMALL, SMALL_SERVER, with_deep_groups()) as node:
        before = node.snapshot()
        headers = {"Authorization": auth} if auth else {}
        async with aiohttp.ClientSession() as http, http.request(method, node.url + path, json=body,
                                                                 headers=headers) as reply:
            answer = await reply.json()
        assert (reply.status, answer["responseCode"]) == (status, code), answer
        assert "limit" in answer["message"] and (limit in answer["message"] or limit == "max_body_bytes"), answer
        assert node.snapshot() == before


async def test_within_the_limits_the_same_requests_succeed() -> None:
    """The control for the table: one step below each limit is accepted (so the table tests the limits)."""
    async with live_node(SMALL, SMALL_SERVER, with_deep_groups()) as node, aiohttp.ClientSession() as http:
        calls = [("PUT", f"/api/handles/{PREFIX}/" + "S" * 20, values(4, 100), OWNER_AUTH),  # + HS_ADMIN: 5
                 ("GET", f"/api/handles/{PREFIX}/PUMP-1?type=URL&type=EMAIL&type=C", None, None),
                 ("GET", f"/api/handles?prefix={PREFIX}&pageSize=10", None, OWNER_AUTH)]
        for method, path, body, auth in calls:
            async with http.request(method, node.url + path, json=body, headers={"Authorization": auth} if auth
                                    else {}) as reply:
                assert reply.status in (200, 201), await reply.text()
    deeper = ServiceLimits(max_group_depth=3)
    async with live_node(deeper, None, with_deep_groups()) as node, aiohttp.ClientSession() as http:
        async with http.put(f"{node.url}/api/handles/{PREFIX}/DEEP?index=1", headers={"Authorization": USER_AUTH},
                            json={"values": [{"index": 1, "type": "URL", "data": "https://changed"}]}) as reply:
            assert reply.status == 200, await reply.text()


async def _raw(port: int, data: bytes) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    return reader, writer


def _half_put(size: int = 100) -> bytes:
    return (f"PUT /api/handles/{PREFIX}/SLOW HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Authorization: {OWNER_AUTH}\r\nContent-Length: {size}\r\n\r\n").encode() + b'{"values": ['


async def _answer_of(reader: asyncio.StreamReader) -> tuple[int, dict[str, Any]]:
    raw = await asyncio.wait_for(reader.read(65536), 5)
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


async def test_a_stalled_body_times_out_and_the_node_keeps_serving() -> None:
    async with live_node(SMALL, SMALL_SERVER) as node, aiohttp.ClientSession() as http:
        before = node.snapshot()
        started = time.monotonic()
        reader, writer = await _raw(node.server.port, _half_put())
        async with http.get(f"{node.url}/api/handles/{PREFIX}/PUMP-1") as reply:  # others are served meanwhile
            assert reply.status == 200 and time.monotonic() - started < 0.9
        status, answer = await _answer_of(reader)
        elapsed = time.monotonic() - started
        assert (status, answer["responseCode"]) == (408, 4) and "body_timeout_s" in answer["message"]
        assert 0.9 < elapsed < 3.0
        assert await asyncio.wait_for(reader.read(), 2) == b"", "the stalled connection is closed"
        writer.close()
        assert node.snapshot() == before


async def test_in_flight_work_is_bounded_with_code_3() -> None:
    async with live_node(SMALL, SMALL_SERVER) as node, aiohttp.ClientSession() as http:
        stalled = [await _raw(node.server.port, _half_put()) for _ in range(2)]  # max_in_flight = 2
        await eventually(lambda: node.server.stats().in_flight == 2, 1.0, what="two stalled requests in flight")
        started = time.monotonic()
        async with http.get(f"{node.url}/api/handles/{PREFIX}/PUMP-1") as reply:
            answer = await reply.json()
        assert (reply.status, answer["responseCode"]) == (503, 3) and "max_in_flight" in answer["message"]
        assert time.monotonic() - started < 0.9, "refused at once, not queued behind the stalled bodies"
        assert node.server.stats().rejected_busy == 1
        for reader, writer in stalled:
            assert (await _answer_of(reader))[0] == 408
            writer.close()
        async with http.get(f"{node.url}/api/handles/{PREFIX}/PUMP-1") as reply:
            assert reply.status == 200, "served again once the work is done"
        assert node.server.stats().in_flight <= 1


async def test_connections_beyond_the_limit_get_503_and_code_3() -> None:
    async with live_node(SMALL, SMALL_SERVER) as node:
        idle = [await asyncio.open_connection("127.0.0.1", node.server.port) for _ in range(6)]
        await asyncio.sleep(0.05)
        reader, writer = await _raw(node.server.port, b"GET /_sim/health HTTP/1.1\r\nHost: x\r\n\r\n")
        status, answer = await _answer_of(reader)
        assert (status, answer["responseCode"]) == (503, 3) and "max_connections" in answer["message"]
        writer.close()
        for _, idle_writer in idle:
            idle_writer.close()
        await asyncio.sleep(0.1)
        async with aiohttp.ClientSession() as http, http.get(f"{node.url}/_sim/health") as reply:
            assert reply.status == 200


async def test_per_client_rate_limit() -> None:
    limits = ServerLimits(rate_per_client=1.0, rate_burst=3)
    async with live_node(None, limits) as node, aiohttp.ClientSession() as http:
        statuses = []
        for _ in range(5):
            async with http.get(f"{node.url}/api/handles/{PREFIX}/PUMP-1") as reply:
                statuses.append((reply.status, (await reply.json())["responseCode"]))
                last = await reply.json()
        assert statuses[:3] == [(200, 1)] * 3 and statuses[3:] == [(503, 3)] * 2
        assert "rate_per_client" in last["message"] and "127.0.0.1" in last["message"]
        await asyncio.sleep(1.1)
        async with http.get(f"{node.url}/api/handles/{PREFIX}/PUMP-1") as reply:
            assert reply.status == 200, "tokens refill at rate_per_client"


async def test_shedding_answers_on_the_same_keep_alive_connection() -> None:
    """Beyond max_in_flight a plain GET is refused before aiohttp parses it; the connection stays usable."""
    async with live_node(SMALL, SMALL_SERVER) as node:
        stalled = [await _raw(node.server.port, _half_put()) for _ in range(2)]
        await eventually(lambda: node.server.stats().in_flight == 2, 1.0, what="two stalled requests in flight")
        get = f"GET /api/handles/{PREFIX}/PUMP-1 HTTP/1.1\r\nHost: x\r\n\r\n".encode()
        reader, writer = await _raw(node.server.port, get)
        raw = await asyncio.wait_for(reader.read(65536), 5)
        head, _, body = raw.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 503") and json.loads(body)["responseCode"] == 3
        assert b"Server:" not in head, "answered by the shedding gate, not by an aiohttp handler"
        for stalled_reader, stalled_writer in stalled:
            assert (await _answer_of(stalled_reader))[0] == 408
            stalled_writer.close()
        writer.write(get)  # the same connection, now that the node has room again
        status, answer = await _answer_of(reader)
        assert (status, answer["responseCode"]) == (200, 1)
        writer.close()
        assert node.server.stats().rejected_busy == 1


async def test_limits_come_from_the_topology_file(tmp_path: Path) -> None:
    import tomllib

    from handlesim.topology.config import ConfigError, parse_config
    from handlesim.topology.plan import build_plan
    from handlesim.topology.runner import launch

    data = tomllib.loads((CONFIGS / "small.toml").read_text(encoding="utf-8"))
    data.update(base_port=0, limits={"max_in_flight": 7, "body_timeout_s": 1.5, "max_value_bytes": 99,
                                     "rate_per_client": 0})
    with pytest.raises(ConfigError, match=r"limits.max_inflight: unknown limit \(did you mean 'max_in_flight'"):
        parse_config({**data, "limits": {"max_inflight": 1}}, "t.toml")
    with pytest.raises(ConfigError, match="limits.max_page_size: must be at least 1"):
        parse_config({**data, "limits": {"max_page_size": 0}}, "t.toml")
    topology = await launch(build_plan(parse_config(data, "t.toml")), tmp_path / "state", store_kind="memory")
    try:
        for node in topology.nodes.values():
            assert node.server.limits.max_in_flight == 7 and node.server.limits.body_timeout_s == 1.5
            assert node.service.config.limits.max_value_bytes == 99
    finally:
        await topology.stop()


async def test_headers_that_never_finish_are_closed_after_the_idle_timeout() -> None:
    limits = ServerLimits(idle_timeout_s=0.5)
    async with live_node(None, limits) as node:
        started = time.monotonic()
        reader, writer = await _raw(node.server.port, b"GET /api/handles/88.101.1001/PUMP-1 HTTP/1.1\r\nHost: x\r\n")
        assert await asyncio.wait_for(reader.read(), 5) == b"", "closed without a request to answer"
        assert 0.4 < time.monotonic() - started < 3.0
        writer.close()
