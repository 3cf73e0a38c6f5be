"""The front door's walks (net/frontdoor.py, HandleRoutes.walk_now): on a node with a resolver, a first-time plain
GET of a handle the node does not home is walked in a task at the door, answered with what the route would answer,
in request order, counted in flight meanwhile; a client that leaves or half-closes mid-walk changes nothing else."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from handlesim.topology.running import RunningNode, Topology

from .test_frontdoor import get, read_answer


def two_enterprises(topology: Topology) -> tuple[RunningNode, RunningNode]:
    enterprises = [node for node in topology.nodes.values() if node.plan.role == "enterprise"]
    return enterprises[0], enterprises[1]


def handles_of(node: RunningNode, count: int) -> list[str]:
    return [r.handle.text for r in node.store.records() if not r.handle.text.startswith("0.NA/")][:count]


async def answer_of(node: RunningNode, request: bytes) -> tuple[int, dict[str, Any]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", node.server.port)
    try:
        writer.write(request)
        status, _, body = await read_answer(reader)
    finally:
        writer.close()
    return status, json.loads(body)


def held_walks(node: RunningNode) -> tuple[asyncio.Event, list[str]]:
    """Make `node`'s resolver wait for the returned event before each walk; the list names the walked handles."""
    resolver = node.server.resolver
    assert resolver is not None
    release = asyncio.Event()
    walked: list[str] = []
    resolve: Callable[..., Awaitable[Any]] = resolver.resolve

    async def held(request: Any, **options: Any) -> Any:
        walked.append(request.handle.text)
        await release.wait()
        return await resolve(request, **options)

    resolver.resolve = held  # type: ignore[method-assign]
    return release, walked


async def test_a_first_time_get_of_a_foreign_handle_is_walked_at_the_door(small: Topology) -> None:
    asking, homing = two_enterprises(small)
    foreign = handles_of(homing, 1)[0]
    door = asking.server.front_door.counters
    handed_on = door.handed_on
    status, walked = await answer_of(asking, get(f"/api/handles/{foreign}"))
    direct_status, direct = await answer_of(homing, get(f"/api/handles/{foreign}"))
    assert (status, walked) == (direct_status, direct) and status == 200 and walked["handle"] == foreign
    assert door.answered == 1 and door.handed_on == handed_on, "answered at the door, nothing handed to aiohttp"
    assert asking.server.resolver is not None and asking.server.resolver.stats.walks == 1
    assert asking.server.stats().latency["resolution"].count == 1, "timed where the route is timed"
    again = await answer_of(asking, get(f"/api/handles/{foreign}"))
    stats = asking.server.resolver.stats
    assert again == (status, walked) and (stats.answered_from_cache, stats.upstream_requests) == (1, 3), \
        "kept: the second is a hit of the encoded answers, no hop"
    assert door.answered == 2


async def test_a_walks_step_to_the_homing_node_is_answered_at_its_door_from_the_answer_encoded_ahead(
        small: Topology) -> None:
    asking, homing = two_enterprises(small)
    foreign = handles_of(homing, 1)[0]
    door = homing.server.front_door.counters
    answered, handed_on, held = door.answered, door.handed_on, len(homing.server.answers)
    status, walked = await answer_of(asking, get(f"/api/handles/{foreign}"))
    assert status == 200 and walked["handle"] == foreign
    assert (door.answered, door.handed_on) == (answered + 1, handed_on), "the iterative step did not reach aiohttp"
    assert len(homing.server.answers) == held, "served from the plain path's answer, not kept a second time"


async def test_a_handle_nobody_holds_gets_the_routes_not_found(small: Topology) -> None:
    asking, homing = two_enterprises(small)
    missing = f"{homing.plan.prefix}/NO-SUCH-HANDLE"
    status, answer = await answer_of(asking, get(f"/api/handles/{missing}"))
    assert (status, answer["responseCode"]) == (404, 100)
    assert asking.server.front_door.counters.answered == 1


async def test_requests_behind_a_walk_on_one_connection_are_answered_after_it(small: Topology) -> None:
    asking, homing = two_enterprises(small)
    foreign = handles_of(homing, 1)[0]
    own = handles_of(asking, 1)[0]
    release, walked = held_walks(asking)
    reader, writer = await asyncio.open_connection("127.0.0.1", asking.server.port)
    try:
        writer.write(get(f"/api/handles/{foreign}") + get(f"/api/handles/{own}") + get("/api/handles/not-a-handle"))
        for _ in range(100):
            if walked:
                break
            await asyncio.sleep(0.01)
        assert walked == [foreign] and asking.server.gate.in_flight == 1, "the walk counts as in flight"
        await asyncio.sleep(0.05)
        assert asking.server.gate.in_flight == 1, "nothing behind the walk was answered meanwhile"
        release.set()
        answers = [await read_answer(reader) for _ in range(3)]
    finally:
        writer.close()
    assert [json.loads(body).get("handle") for _, _, body in answers[:2]] == [foreign, own]
    assert answers[2][0] == 400, "the bad path still gets aiohttp's route's answer, in its turn"
    assert asking.server.gate.in_flight == 0


@pytest.mark.parametrize("leave", ["close", "half-close"])
async def test_a_client_that_leaves_mid_walk_changes_nothing_else(small: Topology, leave: str) -> None:
    asking, homing = two_enterprises(small)
    foreign = handles_of(homing, 1)[0]
    release, walked = held_walks(asking)
    reader, writer = await asyncio.open_connection("127.0.0.1", asking.server.port)
    writer.write(get(f"/api/handles/{foreign}"))
    for _ in range(100):
        if walked:
            break
        await asyncio.sleep(0.01)
    if leave == "close":
        writer.close()
    else:
        writer.write_eof()
        await asyncio.sleep(0.05)
    release.set()
    if leave == "half-close":  # the answer still comes, then the node closes the connection
        status, _, body = await read_answer(reader)
        assert status == 200 and json.loads(body)["handle"] == foreign
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
    for _ in range(100):
        if asking.server.gate.in_flight == 0:
            break
        await asyncio.sleep(0.01)
    assert asking.server.gate.in_flight == 0
    status, answer = await answer_of(asking, get(f"/api/handles/{handles_of(homing, 2)[1]}"))
    assert status == 200, "the node serves on"


async def test_a_walk_that_raises_is_answered_by_the_route(small: Topology) -> None:
    asking, homing = two_enterprises(small)
    foreign = handles_of(homing, 1)[0]
    resolver = asking.server.resolver
    assert resolver is not None
    resolve = resolver.resolve
    calls: list[int] = []

    async def once_broken(request: Any, **options: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("a bug in a walk")
        return await resolve(request, **options)

    resolver.resolve = once_broken  # type: ignore[method-assign]
    status, answer = await answer_of(asking, get(f"/api/handles/{foreign}"))
    assert status == 200 and answer["handle"] == foreign and len(calls) == 2, "aiohttp's route walked again"
    assert asking.server.front_door.counters.handed_on >= 1 and asking.server.gate.in_flight == 0
