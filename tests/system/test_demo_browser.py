"""The teaching page in a real browser: Debian's chromium driven by playwright against the small topology.

scripts/setup-browser (called by scripts/test) installs chromium; never `playwright install`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from handlesim.demo.web import DemoWeb
from handlesim.topology.running import Topology
from handlesim.topology.state import load_state

from ..support.paths import ARTIFACTS

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]

if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} is missing and scripts/setup-browser could not install it (needs root and apt-get)",
                allow_module_level=True)
async_api = pytest.importorskip("playwright.async_api", reason="playwright is in the test extra (.[test])")


@pytest.fixture
async def page_url(small: Topology) -> AsyncIterator[str]:
    web = DemoWeb(load_state(small.state_dir))
    port = await web.start("127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        await web.stop()


def an_identifier(topology: Topology, node_id: str) -> str:
    return next(r.handle.text for r in topology.nodes[node_id].store.records() if not r.handle.is_prefix_handle)


async def run_lookup(page: Any, handle: str, mode: str) -> dict[str, Any]:
    """Type `handle`, pick `mode`, press Resolve; the API's answer the page received, once the animation is done."""
    await page.fill("#handle", handle)
    await page.select_option("#mode", mode)
    async with page.expect_response(lambda r: r.url.endswith("/api/lookup")) as answer:
        await page.click("#resolve")
    api: dict[str, Any] = await (await answer.value).json()
    await page.wait_for_selector("body[data-lookup=done]", timeout=30_000)
    return api


async def shown_hops(page: Any) -> list[list[str]]:
    rows: list[list[str]] = await page.eval_on_selector_all(
        "li.hop", "els => els.map(e => [e.dataset.node, e.dataset.code, e.dataset.asked, e.dataset.cacheHit])")
    return rows


def api_hops(api: dict[str, Any]) -> list[list[str]]:
    return [[h["node"], "" if h["code"] is None else str(h["code"]), h["asked"], str(h["cache_hit"]).lower()]
            for h in api["hops"]]


@pytest.mark.slow  # ~10 s: three animated lookups in a real browser
async def test_page_animates_the_hops_the_api_returns(small: Topology, page_url: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    errors: list[str] = []
    async with async_api.async_playwright() as driver:
        browser = await driver.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 760})
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.goto(page_url)
            await page.wait_for_selector("body[data-ready=true]", timeout=15_000)
            assert await page.locator("#nodes circle.node").count() == len(small.nodes) + 1  # + the client

            handle = an_identifier(small, "ent-88.102.2001")
            walk = await run_lookup(page, handle, "iterative")
            assert walk["ok"] and [h["node"] for h in walk["hops"]] == [
                "root-qingdao", "sec-home-appliances", "ent-88.102.2001"]
            assert await shown_hops(page) == api_hops(walk)
            assert await page.locator("#trace-layer path.trace").count() == 3
            assert await page.locator("#values tbody tr").count() == len(walk["values"])
            assert "3 requests" in await page.inner_text("#status")
            await page.wait_for_selector("#counters tbody tr[data-tier=enterprise]")
            await page.screenshot(path=str(ARTIFACTS / "demo-page-iterative.png"))

            cached = await run_lookup(page, handle, "iterative")
            assert cached["cache_hit"] and await shown_hops(page) == api_hops(cached)

            via = await run_lookup(page, handle, "resolver")
            assert via["asked"] == "resolver-qingdao" and via["upstream_hops"] == 3
            assert await shown_hops(page) == api_hops(via)
            assert await page.locator("ol#hops li.intro").count() == 1
            await page.screenshot(path=str(ARTIFACTS / "demo-page-resolver.png"))

            await page.click('#nodes circle[data-node="root-qingdao"]')
            assert await page.is_visible("#node-panel")
            assert "root-qingdao" in await page.inner_text("#node-info")
            assert not await page.is_visible("#node-toggle")  # this page's server does not run the topology

            before = await page.get_attribute("#map", "viewBox")
            await page.mouse.move(500, 400)
            await page.mouse.wheel(0, -400)
            assert await page.get_attribute("#map", "viewBox") != before  # zoomed in
        finally:
            await browser.close()
    assert errors == []
    assert (ARTIFACTS / "demo-page-iterative.png").stat().st_size > 10_000
