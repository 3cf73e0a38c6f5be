"""`handlesim demo` (the guided lookup in a terminal) and `handlesim web` (the teaching page of a running topology)."""

from __future__ import annotations

import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from ..core.errors import HandleError
from ..core.wording import counted
from ..demo.narration import LANGUAGES
from ..demo.walkthrough import DemoRun
from ..demo.web import DemoWeb, DemoWebConfig, WebError
from ..topology.config import ConfigError, load_config
from ..topology.network import default_net_mode
from ..topology.plan import build_plan
from ..topology.runner import launch
from ..topology.running import LaunchError, Topology
from ..topology.schema import MirrorSpec
from ..topology.state import StateError, TopologyState, load_state
from .app import default_config, fail, main, run_async, running_state, state_dir_option, until_signalled


@main.command()
@click.option("--config", "config_path", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Topology the demo starts in-process (default: configs/small.toml).")
@click.option("--state-dir", type=click.Path(path_type=Path), default=None,
              help="Use the topology running from this state dir instead of starting one (no failover step).")
@click.option("--lang", type=click.Choice(LANGUAGES), default="en", show_default=True, help="Narration language.")
@click.option("--pace", is_flag=True, help="Wait for Enter before every step (for a class).")
@click.option("--prefix", default=None, help="Enterprise prefix to register under (default: one with a mirror).")
@click.option("--timeout", type=float, default=DemoRun.timeout, show_default=True,
              help="Seconds before a silent node fails.")
@click.option("--web", is_flag=True, help="Instead of the terminal walk-through, start the topology (with mirrors) and "
              "serve the teaching page, where nodes can be stopped and started.")
@click.option("--web-port", type=int, default=DemoWebConfig.port, show_default=True,
              help="Loopback port of the page (0 = any).")
def demo(config_path: Path | None, state_dir: Path | None, lang: str, pace: bool, prefix: str | None,
         timeout: float, web: bool, web_port: int) -> None:
    """A guided lookup: register, resolve hop by hop, the cache, the resolver, a node dying."""
    from rich.console import Console

    from ..demo.terminal import TerminalScreen

    screen = TerminalScreen(Console(highlight=False), lang, pace=pace)
    if web:
        run_async(_page_in_process(config_path or default_config("small.toml"), screen, web_port))
        return
    screen.title()
    try:
        if state_dir is not None:
            screen.say("using_running", state_dir=state_dir)
            run_async(DemoRun(running_state(state_dir), prefix=prefix, timeout=timeout).run(screen))
        else:
            run_async(_demo_in_process(config_path or default_config("small.toml"), screen, prefix, timeout))
    except (HandleError, StateError) as exc:
        fail(exc.message if isinstance(exc, HandleError) else str(exc))
    screen.console.print()
    screen.say("done")


def _demo_plan(config_path: Path) -> Any:
    """The topology file with ephemeral ports, and a mirror per enterprise (for failover) unless it has some."""
    try:
        config = load_config(config_path).with_overrides(base_port=0)
    except ConfigError as exc:
        fail(str(exc))
    if config.mirrors.enterprise == 0:
        config = replace(config, mirrors=replace(config.mirrors or MirrorSpec(), enterprise=1))
    return build_plan(config)


async def _launch_for_demo(config_path: Path, screen: Any, scratch: str) -> Topology:
    plan = _demo_plan(config_path)
    screen.say("starting", config=config_path)
    try:
        # with the file's network model when it has one, as `up` starts it: the lookups the class watches take
        # the modelled delays between regions
        topology = await launch(plan, Path(scratch) / "state", store_kind="memory", net=default_net_mode(plan))
    except LaunchError as exc:
        fail(str(exc))
    screen.say("started", nodes=len(topology.nodes), seconds=topology.boot_seconds)
    return topology


async def _demo_in_process(config_path: Path, screen: Any, prefix: str | None, node_timeout: float) -> None:
    """Launch the topology here (ephemeral ports, memory stores) and walk through it."""
    with tempfile.TemporaryDirectory(prefix="handlesim-demo-") as scratch:
        topology = await _launch_for_demo(config_path, screen, scratch)
        try:
            state = load_state(topology.state_dir)
            await DemoRun(state, topology, prefix=prefix, timeout=node_timeout).run(screen)
        finally:
            screen.say("stopping")
            await topology.stop()


async def _page_in_process(config_path: Path, screen: Any, port: int) -> None:
    """Launch the topology here and serve the page (with node controls) until Ctrl-C."""
    with tempfile.TemporaryDirectory(prefix="handlesim-demo-") as scratch:
        topology = await _launch_for_demo(config_path, screen, scratch)
        try:
            page = await serve_page_for(topology, "127.0.0.1", port)
            screen.say("web_hint")
            await until_signalled()
            await page.stop()
        finally:
            screen.say("stopping")
            await topology.stop()


@main.command()
@state_dir_option
@click.option("--port", type=int, default=DemoWebConfig.port, show_default=True,
              help="Loopback port of the page (0 = any free).")
@click.option("--host", default=DemoWebConfig.host, show_default=True, help="Loopback address to listen on.")
def web(state_dir: Path, port: int, host: str) -> None:
    """Serve the teaching page (topology picture, animated lookups, live counters) for a running topology."""
    state = running_state(state_dir)
    run_async(_serve_until_stopped(state, host, port))


async def serve_page(state: TopologyState, host: str, port: int, topology: Topology | None = None) -> DemoWeb:
    """Start the page's server and print where it is."""
    page = DemoWeb(state, DemoWebConfig(), topology=topology)
    try:
        await page.start(host, port)
    except (WebError, OSError) as exc:
        fail(f"the demo page cannot listen on {host}:{port}: {exc}")
    click.echo(f"web: http://{host}:{page.port}/  (the teaching page; {counted(len(state.nodes), 'node')}"
               f"{_what_stopping_shows(page)})")
    sys.stdout.flush()
    return page


def _what_stopping_shows(page: DemoWeb) -> str:
    """What stopping a node from the page will show, said before anyone tries (nothing when it cannot stop nodes)."""
    if page.topology is None:
        return ""
    if page.shows_failover:
        return "; stop a node with a mirror and lookups fall over to the mirror"
    return ("; no mirrors here, so a stopped node's identifiers fail until it starts again (`handlesim demo --web` "
            "adds mirrors)")


async def serve_page_for(topology: Topology, host: str, port: int) -> DemoWeb:
    """The page for a topology launched in this process (`up --web`, `demo --web`): it may stop and start nodes."""
    return await serve_page(load_state(topology.state_dir), host, port, topology)


async def _serve_until_stopped(state: TopologyState, host: str, port: int) -> None:
    page = await serve_page(state, host, port)
    try:
        await until_signalled()
    finally:
        await page.stop()


