"""The teaching demo: the terminal walk-through run non-interactively; the web page API against a live topology."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from click.testing import CliRunner
from rich.cells import cell_len

from handlesim.cli import main
from handlesim.demo.lookup import hops_from_trace
from handlesim.demo.narration import EN, ZH, outcome_words
from handlesim.demo.web import DemoWeb, DemoWebConfig
from handlesim.topology.running import Topology
from handlesim.topology.state import load_state

from ..support.paths import ROOT
from ..support.processes import up_process
from ..support.topologies import running

ANSI = re.compile(r"\x1b\[")


PLAIN_ENV: dict[str, str | None] = {"FORCE_COLOR": None, "TTY_COMPATIBLE": None, "COLUMNS": None}
"""What a plain pipe looks like to rich (a CI runner may force colours or widths)."""


def run_demo(*args: str) -> str:
    result = CliRunner().invoke(main, ["demo", "--config", str(ROOT / "configs" / "small.toml"), *args],
                                env=PLAIN_ENV)
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output


def section(output: str, start: str, end: str) -> str:
    return output[output.index(start):output.index(end)]


def test_narration_has_every_sentence_in_both_languages() -> None:
    assert EN.keys() == ZH.keys()
    assert outcome_words("zh", "7 values") == "7 个值"
    assert outcome_words("en", "7 values") == "7 values"


def test_demo_in_english_walks_caches_and_fails_over() -> None:
    out = run_demo("--lang", "en")
    assert not ANSI.search(out), "piped output must be plain text"
    assert max(cell_len(line) for line in out.splitlines()) <= 80
    walk = section(out, "Step 2 - resolve it iteratively", "Step 3")
    hops = re.findall(r"^\s+(\d)\s+client ──▶ (\S+)", walk, re.MULTILINE)
    assert [node for _, node in hops] == ["root-qingdao", "sec-machinery", "ent-88.101.1001"]
    assert "303 prefix referral to sec-machinery" in walk
    assert "HS_SITE -> ent-88.101.1001" in walk and "3 requests" in walk
    assert "URL" in walk and "https://id.example.cn/demo-" in walk
    cached = section(out, "Step 3", "Step 4")
    assert "0 requests: answered from the client cache" in cached
    assert "sec-machinery" not in cached  # nobody asked
    resolver = section(out, "Step 4", "Step 5")
    assert "client ──▶ resolver-qingdao" in resolver
    assert re.search(r"resolver-qingdao ──▶ root-qingdao.*\n.*\n.*303", resolver)
    assert "The resolver sent 3 requests upstream" in resolver
    assert "0 requests upstream: the resolver answered from its shared cache" in section(out, "Step 5", "Step 6")
    failover = section(out, "Step 6", "What the class saw")
    assert "We stop the enterprise node ent-88.101.1001" in failover
    assert "no answer: connection refused" in failover
    assert re.search(r"client ──▶ ent-88.101.1001-mirror1 \[enterprise, mirror\]", failover)
    assert "The lookup still succeeded" in failover
    summary = out[out.index("What the class saw"):]
    assert re.search(r"again, client cache\s+0\s", summary) and re.search(r"primary down, mirror\s+4\s", summary)


def test_demo_in_chinese() -> None:
    out = run_demo("--lang", "zh")
    assert not ANSI.search(out)
    assert max(cell_len(line) for line in out.splitlines()) <= 80
    walk = section(out, "第 2 步", "第 3 步")
    assert "客户端 ──▶ root-qingdao [根节点]" in walk and "[二级节点]" in walk and "[企业节点]" in walk
    assert "303 前缀转介（referral）至 sec-machinery" in walk
    assert "0 次请求：由客户端缓存应答" in section(out, "第 3 步", "第 4 步")
    assert "上游请求 0 次" in section(out, "第 5 步", "第 6 步")
    failover = section(out, "第 6 步", "课堂小结")
    assert "无应答" in failover and "ent-88.101.1001-mirror1 [企业节点, 镜像]" in failover


class RecordingScreen:
    """A Screen that keeps what the scenario showed (for tests that look at the lookups, not the words)."""

    def __init__(self) -> None:
        self.said: list[str] = []

    async def step(self, title_key: str) -> None:
        self.said.append(title_key)

    def say(self, key: str, **facts: object) -> None:
        self.said.append(key)

    def tiers(self, nodes: Any) -> None:
        """Not looked at."""

    def lookup(self, view: Any) -> None:
        """Kept by DemoRun.lookups."""

    def values(self, view: Any) -> None:
        """Not looked at."""

    def summary(self, rows: Any) -> None:
        """Not looked at."""


@pytest.fixture
async def modelled(tmp_path: Path) -> AsyncIterator[Topology]:
    """configs/small.toml run with its network model (clients in Shanghai, the nodes in four regions)."""
    from handlesim.topology.config import load_config

    config = load_config(ROOT / "configs" / "small.toml").with_overrides(base_port=0)
    async with running(config, tmp_path / "modelled", net="model", metrics_port=None) as topology:
        yield topology


async def test_demo_against_a_running_topology_takes_its_network_path(modelled: Topology) -> None:
    """Issue item 9: `demo --state-dir` looked up on plain loopback whatever the topology's network model."""
    from handlesim.demo.walkthrough import DemoRun

    run = DemoRun(load_state(modelled.state_dir), timeout=5.0)
    lookups = await run.run(RecordingScreen())
    walked = [hop for _, view in lookups for hop in view.hops if not hop.cache_hit and hop.node != "resolver-qingdao"]
    assert walked and all(hop.modelled_ms > 0 for hop in walked), [(h.node, h.modelled_ms) for h in walked]
    asked_resolver = next(view for label, view in lookups if label == "summary_resolver_cache")
    assert asked_resolver.upstream_hops == 0 and asked_resolver.elapsed_ms > 0


async def test_web_lookups_take_the_topologys_network_path(modelled: Topology,
                                                           page: tuple[Topology, str]) -> None:
    """The page's own client follows the topology's network model, and only then pays modelled delays."""
    web = DemoWeb(load_state(modelled.state_dir), DemoWebConfig(poll_interval=0.0))
    port = await web.start("127.0.0.1", 0)
    lookup = {"handle": "88.101.1001/PUMP-000001", "mode": "iterative", "cache": False}
    try:
        async with aiohttp.ClientSession() as session:
            _, view = await get_json(session, f"http://127.0.0.1:{port}/api/lookup", json=lookup)
            _, plain = await get_json(session, f"{page[1]}/api/lookup", json=lookup)
    finally:
        await web.stop()
    assert view["ok"] and len(view["hops"]) == 3 and all(hop["modelled_ms"] > 0 for hop in view["hops"])
    assert plain["ok"] and all(hop["modelled_ms"] == 0 for hop in plain["hops"]), "the page fixture: loopback"


async def test_demo_against_a_running_topology_skips_failover(small: Topology) -> None:
    env = {k: v for k, v in os.environ.items() if k not in PLAIN_ENV}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "handlesim.cli", "demo", "--state-dir", str(small.state_dir), "--prefix", "88.102.2001",
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env)
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 60)
    out = stdout.decode()
    assert proc.returncode == 0, out + stderr.decode()
    assert not ANSI.search(out)
    assert "client ──▶ ent-88.102.2001 [enterprise]" in out and "sec-home-appliances" in out
    assert "Stopping a node needs the demo's own topology" in out
    assert all(node.server.port for node in small.nodes.values())  # nothing was stopped


def test_hops_name_where_a_prefix_handle_points() -> None:
    trace: list[dict[str, Any]] = [
        {"site": "root-qingdao", "asked": "0.NA/88.101.1001", "code": 303, "outcome": "prefix referral to sec-a, sec-b",
         "duration_ms": 0.5, "cache_hit": False},
        {"site": "sec-a", "asked": "0.NA/88.101.1001", "code": 1, "outcome": "2 values", "duration_ms": 0.4,
         "cache_hit": False},
        {"site": "ent-1", "asked": "88.101.1001/X", "code": None, "outcome": "no answer: refused", "duration_ms": 0.1,
         "cache_hit": False},
        {"site": "ent-1-mirror1", "asked": "88.101.1001/X", "code": 1, "outcome": "4 values", "duration_ms": 0.3,
         "cache_hit": False},
    ]
    hops = hops_from_trace(trace, {"root-qingdao": "root", "sec-a": "secondary", "ent-1": "enterprise"})
    assert hops[0].referral_to == ("sec-a", "sec-b") and hops[1].referral_to == ("ent-1",)
    assert hops[2].failed and hops[2].code is None and not hops[3].failed
    assert [h.role for h in hops] == ["root", "secondary", "enterprise", "unknown"]


# -- the web page's API ------------------------------------------------------------------------------------------


@pytest.fixture
async def page(small: Topology) -> AsyncIterator[tuple[Topology, str]]:
    web = DemoWeb(load_state(small.state_dir), DemoWebConfig(poll_interval=0.0))
    port = await web.start("127.0.0.1", 0)
    try:
        yield small, f"http://127.0.0.1:{port}"
    finally:
        await web.stop()


async def get_json(session: aiohttp.ClientSession, url: str, **kwargs: Any) -> tuple[int, Any]:
    method = "POST" if "json" in kwargs else "GET"
    async with session.request(method, url, **kwargs) as reply:
        return reply.status, await reply.json()


async def test_web_topology_lists_every_node_up_and_down(page: tuple[Topology, str]) -> None:
    topology, base = page
    async with aiohttp.ClientSession() as session:
        status, data = await get_json(session, f"{base}/api/topology")
        assert status == 200 and len(data["nodes"]) == 11 and data["examples"]
        assert all(n["up"] for n in data["nodes"])
        roles = {n["id"]: n["role"] for n in data["nodes"]}
        assert roles["root-qingdao"] == "root" and roles["resolver-qingdao"] == "resolver"
        industries = {n["industry"] for n in data["nodes"] if n["role"] == "secondary"}
        assert industries == {"machinery", "home appliances", "rubber"}
        await topology.nodes["ent-88.106.3001"].server.stop()
        _, after = await get_json(session, f"{base}/api/topology")
        down = [n["id"] for n in after["nodes"] if not n["up"]]
        assert down == ["ent-88.106.3001"]


async def test_web_lookup_iterative_then_cached(page: tuple[Topology, str]) -> None:
    _, base = page
    async with aiohttp.ClientSession() as session:
        status, walk = await get_json(session, f"{base}/api/lookup?handle=88.102.2001/NO-SUCH-ID&cache=false")
        assert status == 200 and walk["ok"] is False and walk["code"] == 100  # no such identifier: not found
        assert walk["hops"][-1]["node"] == "ent-88.102.2001"
        _, data = await get_json(session, f"{base}/api/topology")
        example = next(e for e in data["examples"] if e.startswith("88.102.2001/"))
        _, walk = await get_json(session, f"{base}/api/lookup", json={"handle": example, "mode": "iterative"})
        assert walk["ok"] and walk["upstream_hops"] == 3 and not walk["cache_hit"]
        assert [h["node"] for h in walk["hops"]] == ["root-qingdao", "sec-home-appliances", "ent-88.102.2001"]
        assert [h["role"] for h in walk["hops"]] == ["root", "secondary", "enterprise"]
        assert walk["hops"][0]["code"] == 303 and walk["hops"][0]["referral_to"] == ["sec-home-appliances"]
        assert {v["type"] for v in walk["values"]} >= {"URL", "EMAIL", "HS_ADMIN"}
        _, again = await get_json(session, f"{base}/api/lookup", json={"handle": example, "mode": "iterative"})
        assert again["cache_hit"] and all(h["cache_hit"] for h in again["hops"])
        _, fresh = await get_json(session, f"{base}/api/lookup",
                                  json={"handle": example, "mode": "iterative", "cache": False})
        assert fresh["upstream_hops"] == 3


def an_identifier(topology: Topology, node_id: str) -> str:
    return next(r.handle.text for r in topology.nodes[node_id].store.records() if not r.handle.is_prefix_handle)


async def test_web_lookup_through_the_resolver(page: tuple[Topology, str]) -> None:
    topology, base = page
    handle = an_identifier(topology, "ent-88.106.3001")
    async with aiohttp.ClientSession() as session:
        _, first = await get_json(session, f"{base}/api/lookup", json={"handle": handle, "mode": "resolver"})
        _, second = await get_json(session, f"{base}/api/lookup", json={"handle": handle, "mode": "resolver"})
    assert first["asked"] == "resolver-qingdao" and first["mode"] == "resolver"
    assert first["ok"] and first["values"]
    assert [h["node"] for h in first["hops"]][:2] == ["root-qingdao", "sec-rubber"] and first["upstream_hops"] == 3
    assert second["upstream_hops"] == 0 and second["hops"] and all(h["role"] == "cache" for h in second["hops"])


async def test_web_lookup_rejects_bad_input(page: tuple[Topology, str]) -> None:
    _, base = page
    async with aiohttp.ClientSession() as session:
        status, data = await get_json(session, f"{base}/api/lookup?handle=88.101.1001/X&mode=sideways")
        assert status == 400 and "mode must be one of" in data["error"]
        status, data = await get_json(session, f"{base}/api/lookup?handle=")
        assert status == 400 and "invalid identifier" in data["error"]
        async with session.post(f"{base}/api/lookup", data="not json",
                                headers={"Content-Type": "application/json"}) as reply:
            assert reply.status == 400


async def test_web_counters_per_tier(page: tuple[Topology, str]) -> None:
    topology, base = page
    async with aiohttp.ClientSession() as session:
        _, before = await get_json(session, f"{base}/api/counters")
        for _ in range(2):
            await get_json(session, f"{base}/api/lookup",
                           json={"handle": an_identifier(topology, "ent-88.101.1002"), "mode": "resolver"})
        await asyncio.sleep(0.05)
        _, after = await get_json(session, f"{base}/api/counters")
    assert set(after["tiers"]) == {"root", "secondary", "enterprise", "resolver"}
    assert after["tiers"]["enterprise"] == after["tiers"]["enterprise"] | {"nodes": 6, "up": 6}
    assert after["tiers"]["resolver"]["requests"] == before["tiers"]["resolver"]["requests"] + 2
    assert after["tiers"]["resolver"]["cache_hits"] >= 1
    assert after["tiers"]["root"]["requests"] > before["tiers"]["root"]["requests"]
    assert after["interval_s"] > 0 and after["tiers"]["resolver"]["requests_per_s"] > 0
    assert set(after["nodes"]) == set(topology.nodes)


async def test_web_serves_the_bundled_page(page: tuple[Topology, str]) -> None:
    _, base = page
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{base}/") as reply:
            text = await reply.text()
            assert reply.status == 200 and reply.content_type == "text/html"
        assert "/static/app.js" in text and "/static/style.css" in text
        outside = re.compile(r"""(src|href)\s*=\s*["']?(https?:)?//|url\(\s*["']?(https?:)?//|fetch\(\s*["'`]https?:""")
        assert not outside.search(text)  # nothing is loaded from outside
        for name, kind in (("app.js", "text/javascript"), ("style.css", "text/css")):
            async with session.get(f"{base}/static/{name}") as reply:
                assert reply.status == 200 and reply.content_type == kind
                assert not outside.search(await reply.text())
        async with session.get(f"{base}/static/..%2Fweb.py") as reply:
            assert reply.status == 404


@pytest.fixture
async def controlled(tmp_path: Path) -> AsyncIterator[tuple[Topology, str]]:
    """The small topology with a mirror per enterprise, and a page that runs in the same process (node controls)."""
    from dataclasses import replace

    from handlesim.topology.config import load_config
    from handlesim.topology.plan import build_plan
    from handlesim.topology.runner import launch
    from handlesim.topology.schema import MirrorSpec

    config = load_config(ROOT / "configs" / "small.toml").with_overrides(base_port=0)
    config = replace(config, mirrors=MirrorSpec(enterprise=1))
    topology = await launch(build_plan(config), tmp_path / "state", store_kind="memory")
    web = DemoWeb(load_state(topology.state_dir), DemoWebConfig(poll_interval=0.0), topology=topology)
    port = await web.start("127.0.0.1", 0)
    try:
        yield topology, f"http://127.0.0.1:{port}"
    finally:
        await web.stop()
        await topology.stop()


async def test_web_stops_a_node_and_lookups_fail_over_to_its_mirror(controlled: tuple[Topology, str]) -> None:
    topology, base = controlled
    handle = an_identifier(topology, "ent-88.101.1002")
    lookup = {"handle": handle, "mode": "iterative", "cache": False}
    async with aiohttp.ClientSession() as session:
        _, data = await get_json(session, f"{base}/api/topology")
        assert data["controllable"] and len(data["nodes"]) == 17 and data["failover"] is True
        status, stopped = await get_json(session, f"{base}/api/nodes/ent-88.101.1002/stop", json={})
        assert status == 200 and stopped == {"id": "ent-88.101.1002", "up": False}
        _, data = await get_json(session, f"{base}/api/topology")
        assert [n["id"] for n in data["nodes"] if not n["up"]] == ["ent-88.101.1002"]
        _, view = await get_json(session, f"{base}/api/lookup", json=lookup)
        assert view["ok"] and [h["node"] for h in view["hops"]][-2:] == ["ent-88.101.1002", "ent-88.101.1002-mirror1"]
        assert view["hops"][-2]["failed"] and view["hops"][-2]["code"] is None
        status, started = await get_json(session, f"{base}/api/nodes/ent-88.101.1002/start", json={})
        assert status == 200 and started["up"]
        _, data = await get_json(session, f"{base}/api/topology")
        assert all(n["up"] for n in data["nodes"])
        _, view = await get_json(session, f"{base}/api/lookup", json=lookup)
        # the page's client remembers that the primary failed lately, so it asks the mirror first for a while
        assert view["ok"] and len(view["hops"]) == 3 and not any(h["failed"] for h in view["hops"])
        assert view["hops"][-1]["node"] in ("ent-88.101.1002", "ent-88.101.1002-mirror1")
        async with session.get(f"{topology.nodes['ent-88.101.1002'].url}/_sim/health") as reply:
            assert reply.status == 200  # listening again on its old port
        status, _ = await get_json(session, f"{base}/api/nodes/no-such-node/stop", json={})
        assert status == 404


async def test_web_for_a_topology_elsewhere_cannot_stop_nodes(page: tuple[Topology, str]) -> None:
    topology, base = page
    async with aiohttp.ClientSession() as session:
        _, data = await get_json(session, f"{base}/api/topology")
        assert data["controllable"] is False and data["failover"] is False
        status, answer = await get_json(session, f"{base}/api/nodes/root-qingdao/stop", json={})
    assert status == 403 and "demo --web" in answer["error"]
    assert topology.nodes["root-qingdao"].server.serving


def test_up_with_web_serves_the_page(tmp_path: Path) -> None:
    import json
    import urllib.request

    with up_process("--config", "configs/small.toml", "--base-port", "0", "--store", "memory", "--state-dir",
                    str(tmp_path / "state"), "--web", "--web-port", "0") as up:
        line = up.printed("web: ")
        assert line is not None and line.split()[1].startswith("http://127.0.0.1:")
        # small.toml has no mirrors: `up --web` must not promise a failover it cannot show (issue item 9)
        assert "no mirrors here" in line and "fall over" not in line
        with urllib.request.urlopen(line.split()[1] + "api/topology", timeout=10) as reply:  # noqa: S310 - loopback
            described = json.load(reply)
        assert len(described["nodes"]) == 11 and described["controllable"] and described["failover"] is False
    assert up.proc.returncode == 0


def test_demo_paced_waits_for_enter_between_steps() -> None:
    result = CliRunner().invoke(main, ["demo", "--config", str(ROOT / "configs" / "small.toml"), "--pace"],
                                input="\n" * 10, env=PLAIN_ENV)
    assert result.exit_code == 0, result.output
    assert result.output.count("Press Enter for the next step") == 6  # before steps 2-6 and the summary
    assert "What the class saw" in result.output
