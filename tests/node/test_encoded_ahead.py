"""Answers encoded ahead (ServerLimits.encoded_ahead, HandleRoutes.encode_ahead): once a topology serves, its nodes
encode their records' public answers (JSON and msgpack) in the background, byte for byte what a first lookup would
encode, without counting them as requests; a write drops a handle's answers; the setting bounds how many and 0 turns
it off; `[limits]` sets it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from handlesim.net.limits import ServerLimits
from handlesim.topology.config import ConfigError, load_config, parse_config
from handlesim.topology.plan import build_plan
from handlesim.topology.runner import encode_answers, launch
from handlesim.topology.running import Topology

from ..support.livenode import OWNER_AUTH, PREFIX, live_node
from ..support.paths import CONFIGS
from .test_frontdoor import exchange, get

PUMPS = [f"/api/handles/{PREFIX}/PUMP-{number}" for number in range(5)]


async def test_a_node_encodes_its_public_answers_ahead_as_a_first_lookup_would() -> None:
    async with live_node() as node:
        kept = node.server.encode_ahead()
        assert kept == 6, "five identifiers and the prefix handle; the user's handle has no public value"
        assert not node.server.service.counts, "encoding ahead is not a request"
        ahead = [answer for path in PUMPS for answer in await exchange(node, get(path))]
        assert node.server.answers.hits[1] == 5 and not node.server.service.counts, "all five from the cache"
        node.server.answers.clear()
        fresh = [answer for path in PUMPS for answer in await exchange(node, get(path))]
        assert node.server.service.counts[(1, 1)] == 5, "worked out at the first lookup this time"
        assert [a[2] for a in ahead] == [f[2] for f in fresh] and all(a[0] == 200 for a in ahead)


async def test_a_write_drops_the_answer_encoded_ahead() -> None:
    async with live_node() as node:
        node.server.encode_ahead()
        body = json.dumps([{"index": 1, "type": "URL", "data": "https://id.example.cn/changed"}])
        put = (f"PUT {PUMPS[1]}?overwrite=true HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {OWNER_AUTH}\r\n"
               f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n{body}").encode()
        (written,) = await exchange(node, put)
        assert written[0] == 200, written
        (answer,) = await exchange(node, get(PUMPS[1]))
        assert json.loads(answer[2])["values"][0]["data"]["value"] == "https://id.example.cn/changed"


@pytest.mark.parametrize(("limit", "kept"), [(0, 0), (2, 2)])
async def test_the_setting_bounds_how_many_records_and_zero_turns_it_off(limit: int, kept: int) -> None:
    async with live_node(server_limits=ServerLimits(encoded_ahead=limit)) as node:
        assert node.server.encode_ahead() == kept and len(node.server.answers) == 2 * kept, "JSON and msgpack"


async def test_a_launched_topology_serves_first_lookups_from_answers_encoded_ahead(small: Topology) -> None:
    assert small.encoding is None and small.encoding_seconds > 0, "done in the background (the fixture waited)"
    enterprise = next(node for node in small.nodes.values() if node.plan.role == "enterprise")
    identifiers = [r.handle.text for r in enterprise.store.records() if not r.handle.text.startswith("0.NA/")]
    assert identifiers and len(enterprise.server.answers) >= 2 * len(identifiers)
    assert "resolution" not in enterprise.server.setup_requests, "encoding ahead was not counted as set-up requests"
    for accept in ("application/json", "application/msgpack"):
        (answer,) = await exchange(enterprise, get(f"/api/handles/{identifiers[0]}", accept=accept))
        assert answer[0] == 200
    assert enterprise.server.answers.hits[1] == 2 and not enterprise.server.service.counts


def test_limits_table_sets_it_and_zero_is_allowed() -> None:
    base = {"name": "t", "roots": [{"id": "root"}]}
    assert parse_config({**base, "limits": {"encoded_ahead": 0}}, "t.toml").limits.server.encoded_ahead == 0
    assert parse_config(base, "t.toml").limits.server.encoded_ahead == ServerLimits().encoded_ahead
    with pytest.raises(ConfigError, match="encoded_ahead"):
        parse_config({**base, "limits": {"encoded_ahead": -1}}, "t.toml")


async def test_a_topology_stopped_while_it_encodes_stops_cleanly(tmp_path: Path) -> None:
    config = load_config(CONFIGS / "small.toml").with_overrides(base_port=0)
    topology = await launch(build_plan(config), tmp_path / "state", store_kind="memory")
    encoding = topology.encoding
    assert encoding is not None and not encoding.done(), "launch returns before the answers are encoded"
    await topology.stop()
    assert encoding.cancelled() and topology.encoding is None


async def test_a_node_whose_encoding_fails_is_logged_and_the_others_go_on(small: Topology,
                                                                          caplog: pytest.LogCaptureFixture) -> None:
    broken, healthy = [node for node in small.nodes.values() if node.plan.role == "enterprise"][:2]

    def failing() -> Iterator[None]:
        raise RuntimeError("a bug")
        yield

    broken.server.encoding_ahead = failing  # type: ignore[method-assign]
    healthy.server.answers.clear()
    await encode_answers(small)
    assert f"encoding the answers of {broken.plan.node_id} ahead failed" in caplog.text
    assert len(healthy.server.answers) > 0
