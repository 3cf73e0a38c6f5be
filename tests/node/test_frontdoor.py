"""The front door (net/frontdoor.py) on a live node: warm plain GETs answered below aiohttp with the bytes aiohttp
would send, everything else handed to aiohttp unchanged (misses, HEAD of a miss, pipelined and partial requests,
bad bytes, credentials, bodies), and faults, limits and counters as before."""

from __future__ import annotations

import asyncio
import json

import msgpack
import pytest

from handlesim.net.faults import FaultController
from handlesim.net.frontdoor import DoorConnection, parse_plain_get
from handlesim.net.limits import ServerLimits
from handlesim.topology.running import Topology

from ..support.livenode import OWNER_AUTH, PREFIX, LiveNode, live_node

PUMP = f"/api/handles/{PREFIX}/PUMP-1"


def get(path: str = PUMP, *, method: str = "GET", accept: str = "application/json", extra: str = "") -> bytes:
    return f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: {accept}\r\n{extra}\r\n".encode()


async def connect(node: LiveNode) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", node.server.port)


async def read_answer(reader: asyncio.StreamReader, *, head_only: bool = False) -> tuple[int, dict[str, str], bytes]:
    """One HTTP answer off a keep-alive connection: status, headers (lower-case names), body."""
    raw_head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    lines = raw_head.decode("ascii").split("\r\n")
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.lower()] = value.strip()
    length = 0 if head_only else int(headers.get("content-length", "0"))
    body = await asyncio.wait_for(reader.readexactly(length), 5)
    return int(lines[0].split()[1]), headers, body


Answer = tuple[int, dict[str, str], bytes]


async def exchange(node: LiveNode, *requests: bytes, head_only: bool = False) -> list[Answer]:
    reader, writer = await connect(node)
    answers = []
    try:
        for request in requests:
            writer.write(request)
            answers.append(await read_answer(reader, head_only=head_only))
    finally:
        writer.close()
    return answers


def without_date(headers: dict[str, str]) -> dict[str, str]:
    return {name: value for name, value in headers.items() if name != "date"}


async def test_a_warm_get_is_answered_at_the_door_with_the_bytes_aiohttp_sends() -> None:
    async with live_node() as node:
        door = node.server.front_door.counters
        for accept in ("application/json", "application/msgpack"):
            before = door.answered
            (cold, warm) = await exchange(node, get(accept=accept), get(accept=accept))
            assert door.answered == before + 2, "the first GET worked out at the door, the second from its cache"
            (routed,) = await exchange(node, get(extra=f"Authorization: {OWNER_AUTH}\r\n", accept=accept))
            assert door.answered == before + 2, "a GET with credentials is aiohttp's"
            assert cold[0] == warm[0] == routed[0] == 200 and cold[2] == warm[2] == routed[2]
            assert without_date(cold[1]) == without_date(warm[1]) == without_date(routed[1])
        decoded = msgpack.unpackb(warm[2], raw=False)
        assert decoded["responseCode"] == 1 and decoded["handle"] == f"{PREFIX}/PUMP-1"
        stats = node.server.stats()
        assert stats.requests["resolution"]["1"] == 6, "answers at the door count as the node's resolutions"
        assert sum(stats.latency["resolution"].counts) == 6
        assert node.server.answers.hits[1] == 2 and node.server.service.counts[(1, 1)] == 4


async def test_a_not_found_answer_is_served_warm_with_its_status() -> None:
    async with live_node() as node:
        missing = f"/api/handles/{PREFIX}/NOPE"
        (cold, warm) = await exchange(node, get(missing), get(missing))
        assert cold[0] == warm[0] == 404 and json.loads(warm[2])["responseCode"] == 100
        assert node.server.front_door.counters.answered == 2 and node.server.answers.hits[100] == 1


async def test_head_of_a_warm_answer_has_the_get_headers_and_no_body() -> None:
    async with live_node() as node:
        (full,) = await exchange(node, get())
        reader, writer = await connect(node)
        writer.write(get(method="HEAD"))
        status, headers, _ = await read_answer(reader, head_only=True)
        assert status == 200 and headers["content-length"] == str(len(full[2]))
        assert node.server.front_door.counters.answered == 2
        writer.write(get())  # nothing stray was sent after the head: the next answer starts cleanly
        status, _, body = await read_answer(reader)
        writer.close()
        assert status == 200 and body == full[2]


async def test_pipelined_hits_and_misses_answer_in_order() -> None:
    async with live_node() as node:
        await exchange(node, get(), get(f"{PUMP[:-1]}3"))  # warm PUMP-1 and PUMP-3
        reader, writer = await connect(node)
        paths = [PUMP, f"{PUMP[:-1]}2", f"{PUMP[:-1]}3", f"{PUMP[:-1]}4", PUMP]
        writer.write(b"".join(get(path) for path in paths))  # hit, miss, hit, miss, hit in one write
        bodies = [json.loads((await read_answer(reader))[2]) for _ in paths]
        writer.close()
        assert [body["handle"] for body in bodies] == [path.removeprefix("/api/handles/") for path in paths]


async def test_a_request_split_across_reads_is_answered_once_whole() -> None:
    async with live_node() as node:
        await exchange(node, get())
        answered = node.server.front_door.counters.answered
        reader, writer = await connect(node)
        request = get()
        for piece in (request[:2], request[2:11], request[11:40], request[40:]):
            writer.write(piece)
            await writer.drain()
            await asyncio.sleep(0.02)
        status, _, body = await read_answer(reader)
        writer.close()
        assert status == 200 and json.loads(body)["handle"] == f"{PREFIX}/PUMP-1"
        assert node.server.front_door.counters.answered == answered + 1


@pytest.mark.parametrize(("request_bytes", "status"), [
    (b"GET /api/handles/88.101.1001/PUMP-1 HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Bad: a\x00b\r\n\r\n", b"400"),
    (b"GET /api/handles/88.101.1001/PUMP-1 HTTP/1.1\r\nHost: 127.0.0.1\r\nBad Name: x\r\n\r\n", b"400"),
    (b"GET /api/handles/88.101.1001/PUMP-1 HTTP/1.1\r\nHost: 127.0.0.1\r\n folded\r\n\r\n", b"400"),
    (b"GET /api/handles/88.101.1001/PUMP-1 HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: other\r\n\r\n", b"400"),
    (b"GET /api/handles/88.101.1001/PUMP-1\x01 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", b"400"),
    # obs-text in a value: aiohttp serves it, so the door hands it on rather than judge it
    (b"GET /api/handles/88.101.1001/PUMP-1 HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Odd: \xff\r\n\r\n", b"200"),
])
async def test_bad_bytes_are_aiohttps_to_judge(request_bytes: bytes, status: bytes) -> None:
    assert parse_plain_get(request_bytes) is None
    async with live_node() as node:
        await exchange(node, get())
        reader, writer = await connect(node)
        writer.write(request_bytes)
        raw = await asyncio.wait_for(reader.read(65536), 5)
        writer.close()
        assert raw.split(b" ", 2)[1] == status, raw[:200]
        assert node.server.front_door.counters.answered == 1


def test_what_the_door_reads_as_a_plain_get() -> None:
    plain = parse_plain_get(get(accept="application/msgpack"))
    assert plain is not None and plain.target == PUMP and plain.wants_msgpack and not plain.is_head
    head = parse_plain_get(get(method="HEAD", extra="Connection: keep-alive\r\n"))
    assert head is not None and head.is_head and not head.wants_msgpack
    for refused in (get(extra=f"Authorization: {OWNER_AUTH}\r\n"), get(extra="Content-Length: 0\r\n"),
                    get(extra="Connection: close\r\n"), get(extra="Transfer-Encoding: chunked\r\n"),
                    get(method="PUT"), get().replace(b"HTTP/1.1", b"HTTP/1.0"),
                    b"GET /x HTTP/1.1\r\n\r\n",  # no Host
                    get("http://127.0.0.1/api/handles/x")):
        assert parse_plain_get(refused) is None, refused


async def test_a_request_with_credentials_goes_to_aiohttp() -> None:
    async with live_node() as node:
        await exchange(node, get())
        (answer,) = await exchange(node, get(extra=f"Authorization: {OWNER_AUTH}\r\n"))
        assert answer[0] == 200 and node.server.front_door.counters.answered == 1


async def test_after_a_body_aiohttp_keeps_the_connection_and_sees_the_change() -> None:
    async with live_node() as node:
        await exchange(node, get())
        body = json.dumps({"values": [{"index": 1, "type": "URL", "data": "https://id.example.cn/changed"}]})
        put = (f"PUT {PUMP}?overwrite=true HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
               f"Authorization: {OWNER_AUTH}\r\nContent-Length: {len(body)}\r\n\r\n{body}").encode()
        reader, writer = await connect(node)
        writer.write(put)
        assert (await read_answer(reader))[0] in (200, 201)
        writer.write(get())
        status, _, answer = await read_answer(reader)
        writer.close()
        assert status == 200 and "changed" in answer.decode(), "the write dropped the cached answer"
        assert node.server.front_door.counters.answered == 1, "after a body, the connection stays aiohttp's"


async def test_a_paused_node_holds_warm_gets_too() -> None:
    async with live_node() as node:
        await exchange(node, get())
        faults = FaultController(enabled=True)
        faults.register(node.server.service.config.node_id, node.server, "r", "127.0.0.1")
        await faults.apply({"action": "pause", "node": node.server.service.config.node_id})
        reader, writer = await connect(node)
        writer.write(get())
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 0.3)
        await faults.apply({"action": "resume", "node": node.server.service.config.node_id})
        status, _, _ = await read_answer(reader)
        writer.close()
        assert status == 200 and node.server.front_door.counters.answered == 1


async def test_beyond_max_in_flight_the_door_answers_busy() -> None:
    async with live_node(server_limits=ServerLimits(max_in_flight=1)) as node:
        await exchange(node, get())
        node.server.gate.in_flight = 1  # as if one request were being worked on
        try:
            (answer,) = await exchange(node, get())
        finally:
            node.server.gate.in_flight = 0
        assert answer[0] == 503 and json.loads(answer[2])["responseCode"] == 3
        assert node.server.stats().rejected_busy == 1


async def test_a_connection_served_at_the_door_is_not_idle() -> None:
    """aiohttp's keep-alive timer would close a connection it saw no request on; the door's answers count."""
    async with live_node(server_limits=ServerLimits(idle_timeout_s=1.0)) as node:
        await exchange(node, get())
        reader, writer = await connect(node)
        for _ in range(40):  # 2 s of answers, every one at the door
            writer.write(get())
            assert (await read_answer(reader))[0] == 200
            await asyncio.sleep(0.05)
        writer.close()
        assert node.server.front_door.counters.answered == 41


@pytest.mark.parametrize(("path", "status", "code"), [
    (f"/api/handles/{PREFIX}/PUMP-1?type=URL", 200, 1),      # a query: the route's
    ("/api/handles/88.999/X", 400, 301),                     # not homed here (no resolver): code 301
    ("/api/handles/nothing-here", 400, 102),                 # no prefix: the route's Handle error
    (f"/api/handles/{PREFIX}/a/../PUMP-1", 404, 100),       # a dot segment: the route's exact addressing
])
async def test_what_the_door_cannot_work_out_gets_the_routes_answer(path: str, status: int, code: int) -> None:
    async with live_node() as node:
        (answer,) = await exchange(node, get(path))
        assert (answer[0], json.loads(answer[2])["responseCode"]) == (status, code), answer


async def test_a_walk_steps_iterative_get_is_answered_as_the_plain_path_from_one_cached_answer() -> None:
    """`path?recursive=false` (what another node's walk sends) gets the plain path's answer at the door, cold or
    warm, held once; any other query, or one more besides it, is aiohttp's."""
    async with live_node() as node:
        door = node.server.front_door.counters
        iterative = PUMP + "?recursive=false"
        (cold, plain, warm) = await exchange(node, get(iterative), get(PUMP), get(iterative))
        assert door.answered == 3 and door.handed_on == 0
        assert cold[0] == plain[0] == warm[0] == 200 and cold[2] == plain[2] == warm[2]
        assert len(node.server.answers) == 1 and node.server.answers.hits[1] == 2
        (filtered,) = await exchange(node, get(iterative.replace("?", "?type=URL&")))
        assert door.handed_on == 1 and filtered[0] == 200
        assert [v["type"] for v in json.loads(filtered[2])["values"]] == ["URL"]


async def test_first_time_gets_at_the_door_are_not_answered_at_a_resolver_node() -> None:
    async with live_node() as node:
        node.server.front_door.answer_now = None  # as a resolver node's door is built: its misses may walk
        await exchange(node, get())
        assert node.server.front_door.counters.answered == 0 and len(node.server.answers) == 1


async def test_in_a_topology_first_time_gets_of_homed_handles_are_answered_at_the_door(small: Topology) -> None:
    """Every node of a topology has a resolver (for foreign GETs); the door works out what a node homes, on a
    connection's first request too, and what it walks for (test_frontdoor_walks.py has more of that)."""
    enterprise = next(node for node in small.nodes.values() if node.plan.role == "enterprise")
    door = enterprise.server.front_door.counters
    handles = [r.handle.text for r in enterprise.store.records() if not r.handle.text.startswith("0.NA/")][:3]
    for handle in handles:  # each on a new connection: its first request
        reader, writer = await asyncio.open_connection("127.0.0.1", enterprise.server.port)
        writer.write(get(f"/api/handles/{handle}"))
        status, _, body = await read_answer(reader)
        writer.close()
        assert status == 200 and json.loads(body)["handle"] == handle
    assert door.answered == 3
    other = next(node for node in small.nodes.values() if node.plan.role == "enterprise" and node is not enterprise)
    foreign = next(r.handle.text for r in other.store.records() if not r.handle.text.startswith("0.NA/"))
    reader, writer = await asyncio.open_connection("127.0.0.1", enterprise.server.port)
    writer.write(get(f"/api/handles/{foreign}"))
    status, _, body = await read_answer(reader)
    writer.close()
    assert status == 200 and json.loads(body)["handle"] == foreign, "walked for by the node's resolver"
    assert door.answered == 4 and enterprise.server.resolver is not None
    assert enterprise.server.resolver.stats.walks == 1


async def test_while_the_client_does_not_read_aiohttp_answers() -> None:
    """Flow control: once the transport says its write buffer is full, the door stops writing and hands requests
    to aiohttp (which waits for the buffer to drain); when it drains, the door answers again."""
    async with live_node() as node:
        await exchange(node, get())
        reader, writer = await connect(node)
        writer.write(get())
        await read_answer(reader)
        door = node.server.front_door.counters
        answered = door.answered
        connection = next(c for c in _door_connections(node))
        connection.pause_writing()
        writer.write(get())
        assert (await read_answer(reader))[0] == 200 and door.answered == answered, "aiohttp answered"
        connection.resume_writing()
        await asyncio.sleep(0.05)  # aiohttp's handler parks for its next request after the answer it sent
        writer.write(get())
        assert (await read_answer(reader))[0] == 200 and door.answered == answered + 1
        writer.close()


def _door_connections(node: LiveNode) -> list[DoorConnection]:
    """The node's open connections' doors (found through aiohttp's handlers' transports)."""
    runner = node.server._runner  # noqa: SLF001
    assert runner is not None and runner.server is not None
    doors = []
    for handler in runner.server.connections:
        protocol = handler.transport.get_protocol() if handler.transport is not None else None
        if isinstance(protocol, DoorConnection):
            doors.append(protocol)
    return doors
