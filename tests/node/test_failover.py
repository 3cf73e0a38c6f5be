"""Failover: silent servers time out after the configured timeout, failing servers are remembered, authoritative
reads and writes stay on primaries, and every failed attempt is a hop in the trace."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from handlesim.core.codes import OpCode
from handlesim.core.handle import Handle
from handlesim.core.messages import Request
from handlesim.net.client import HandleClient
from handlesim.topology.config import parse_config
from handlesim.topology.plan import build_plan
from handlesim.topology.runner import launch
from handlesim.topology.running import Topology
from handlesim.topology.seed import identifiers_for

TIMEOUT = 0.3
CONFIG = {
    "name": "failover", "base_port": 0, "seed": 9,
    "roots": [{"id": "root-qingdao"}, {"id": "root-beijing"}],
    "secondaries": [{"id": "sec-machinery", "prefix": "88.101"}],
    "enterprises": {"count": 1, "identifiers_per_enterprise": 6},
    "resolvers": [{"id": "resolver-qingdao"}],
    "mirrors": {"enterprise": 1},
    "failover": {"timeout": TIMEOUT, "failed_for": 30.0},
}
PRIMARY = "ent-88.101.1001"


@pytest.fixture
async def silent_primary(tmp_path: Path) -> AsyncIterator[Topology]:
    """The topology with the enterprise primary replaced by a server that accepts connections and never answers."""
    topology = await launch(build_plan(parse_config(CONFIG, "test")), tmp_path / "state", store_kind="memory")
    primary = topology.nodes[PRIMARY]
    port = primary.server.port
    await primary.server.stop()
    held: list[asyncio.StreamWriter] = []

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        await reader.read(65536)  # read the request, answer nothing

    silent = await asyncio.start_server(swallow, "127.0.0.1", port, reuse_address=True)
    try:
        yield topology
    finally:
        for writer in held:
            writer.close()
        silent.close()
        await topology.stop()


def handles(topology: Topology) -> list[Handle]:
    return [r.handle for r in identifiers_for(topology.plan.by_id[PRIMARY], topology.plan.config.seed)]


async def test_a_silent_primary_times_out_is_shown_in_the_trace_and_is_remembered(silent_primary: Topology) -> None:
    first, second = handles(silent_primary)[:2]
    async with HandleClient(timeout=TIMEOUT) as client:
        started = time.perf_counter()
        walked = await client.resolve(first, silent_primary.root_sites)
        took = time.perf_counter() - started
        assert walked.result is not None and walked.result.ok
        assert TIMEOUT <= took < TIMEOUT + 1.0
        failed, answered = walked.trace[-2:]
        assert (failed.site, failed.code) == (PRIMARY, None)
        assert failed.outcome == f"no answer: {silent_primary.nodes[PRIMARY].url}: timed out after {TIMEOUT:g} s"
        assert (answered.site, answered.code) == (f"{PRIMARY}-mirror1", 1)
        started = time.perf_counter()
        again = await client.resolve(second, silent_primary.root_sites)
        assert again.result is not None and again.result.ok and time.perf_counter() - started < TIMEOUT
        assert PRIMARY not in [hop.site for hop in again.trace]  # failing lately: tried after the mirror, not before
        assert client.health.snapshot()[silent_primary.nodes[PRIMARY].url]["failures"] == 1


async def test_the_resolver_uses_the_configured_timeout_and_remembers(silent_primary: Topology) -> None:
    resolver = silent_primary.nodes["resolver-qingdao"]
    assert resolver.server.resolver is not None and resolver.server.resolver.pool.timeout == TIMEOUT
    first, second = handles(silent_primary)[:2]
    async with HandleClient(timeout=5.0) as client:
        answer = await client.resolve_via(resolver.url, first)
        assert answer.ok
        trace = answer.extra["trace"]
        assert isinstance(trace, list)
        assert [(h["site"], h["code"]) for h in trace[-2:]] == [(PRIMARY, None), (f"{PRIMARY}-mirror1", 1)]
        assert trace[-2]["outcome"] == f"no answer: timed out after {TIMEOUT:g} s"
        assert TIMEOUT * 1000 <= trace[-2]["duration_ms"] < (TIMEOUT + 0.5) * 1000
        later = await client.resolve_via(resolver.url, second)
        assert later.ok and PRIMARY not in [h["site"] for h in later.extra["trace"]]  # type: ignore[union-attr]


async def test_authoritative_reads_go_only_to_primaries(silent_primary: Topology) -> None:
    target = handles(silent_primary)[0]
    resolver = silent_primary.nodes["resolver-qingdao"]
    async with HandleClient(timeout=TIMEOUT) as client:
        walked = await client.resolve(target, silent_primary.root_sites, authoritative=True)
        assert walked.result is not None and not walked.result.ok
        assert "no server answered" in walked.result.message
        sites = [hop.site for hop in walked.trace if hop.asked == target.text]
        assert sites == [PRIMARY]  # the mirror is never asked, even though it would answer
    async with HandleClient(timeout=5.0) as client:  # the resolver's own walk waits out the silent primary
        via = await client.send(resolver.url, Request(OpCode.RESOLUTION, target, authoritative=True),
                                extra_params=[("trace", "true")])
        assert not via.ok
        assert [h["site"] for h in via.extra["trace"] if h["asked"] == target.text] == [PRIMARY]  # type: ignore[union-attr]


async def test_a_dead_root_is_a_refused_hop_and_the_other_root_answers(tmp_path: Path) -> None:
    topology = await launch(build_plan(parse_config(CONFIG, "test")), tmp_path / "state", store_kind="memory")
    try:
        await topology.nodes["root-qingdao"].server.stop()
        target = handles(topology)[0]
        async with HandleClient(timeout=TIMEOUT) as client:
            started = time.perf_counter()
            walked = await client.resolve(target, topology.root_sites)
            assert walked.result is not None and walked.result.ok and time.perf_counter() - started < TIMEOUT
            assert walked.trace[0].site == "root-qingdao" and walked.trace[0].code is None
            assert "connection refused" in walked.trace[0].outcome and walked.trace[1].site == "root-beijing"
    finally:
        await topology.stop()


def test_failover_settings_are_checked_and_default_well_under_a_second() -> None:
    from handlesim.core.health import DEFAULT_TIMEOUT
    from handlesim.topology.config import ConfigError

    plain = parse_config({**CONFIG, "failover": {}}, "f.toml")
    assert plain.failover.timeout == DEFAULT_TIMEOUT <= 0.5
    with pytest.raises(ConfigError, match="failover.timeout: must be a finite number above 0"):
        parse_config({**CONFIG, "failover": {"timeout": 0}}, "f.toml")
    with pytest.raises(ConfigError, match="failover.timout: unknown key .did you mean .timeout."):
        parse_config({**CONFIG, "failover": {"timout": 1}}, "f.toml")
