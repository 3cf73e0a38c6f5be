"""`handlesim up`, `topology` and `validate`: launch a topology and describe it."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import click

from ..topology.network import NetModeError, default_net_mode
from ..topology.plan import build_plan
from ..topology.runner import LaunchError, launch
from .app import (
    default_config,
    fail,
    json_option,
    main,
    plan_from,
    print_tiers,
    run_async,
    running_state,
    state_dir_option,
)
from .demo import serve_page_for


@main.command()
@click.option("--config", "config_path", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Topology TOML file (default: configs/plan.toml).")
@state_dir_option
@click.option("--store", "store_kind", type=click.Choice(["sqlite", "memory"]), default="sqlite", show_default=True,
              help="sqlite keeps every node's data under the state dir across restarts.")
@click.option("--base-port", type=int, default=None, help="Override the config's base port (0 = ephemeral ports).")
@click.option("--identifiers", type=int, default=None, help="Override identifiers seeded per enterprise.")
@click.option("--net", type=click.Choice(["loopback", "model"]), default=None,
              help="Apply the network model to node-to-node hops (default: model when the topology has a "
                   "[network] section, else loopback).")
@click.option("--network", "network_file", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Take the [network] model from this file (e.g. configs/network-china.toml).")
@click.option("--faults/--no-faults", "faults", default=None,
              help="Serve fault injection (POST /_sim/fault, `handlesim fault`); default: the file's `faults` key.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Override the config's [failover] timeout: seconds before a silent server counts as failed.")
@click.option("--tls", is_flag=True, help="Serve every REST port over HTTPS with a certificate generated into "
              "<state-dir>/tls (clients pin tls/ca.pem).")
@click.option("--web", is_flag=True, help="Also serve the teaching page (topology picture, animated lookups).")
@click.option("--web-port", type=int, default=8080, show_default=True, help="Loopback port of the page (0 = any).")
@click.option("--metrics-port", type=click.IntRange(-1, 65535), default=0, show_default=True,
              help="Loopback port serving Prometheus /metrics for every node (0: a free port, written to "
                   "topology.json as metrics_url; -1: none).")
def up(config_path: Path | None, state_dir: Path, store_kind: str, base_port: int | None,
       identifiers: int | None, net: str | None, network_file: Path | None, faults: bool | None,
       timeout: float | None, tls: bool, web: bool, web_port: int, metrics_port: int) -> None:
    """Start every node of a topology on loopback and keep it running until Ctrl-C."""
    plan = with_network(plan_from(config_path or default_config(), base_port, identifiers), network_file, faults)
    if timeout is not None:
        config = plan.config
        plan = build_plan(replace(config, failover=replace(config.failover, timeout=timeout)))
    options = UpOptions(store_kind, net or default_net_mode(plan), tls, web_port if web else None,
                        None if metrics_port < 0 else metrics_port)
    run_async(_up(plan, state_dir, options))


@dataclass(frozen=True)
class UpOptions:
    """How `up` runs a plan, beyond what the topology file says."""

    store_kind: str = "sqlite"
    """`sqlite` (one file per node under the state dir) or `memory`."""
    net: str = "loopback"
    """`model` applies the topology's network model to node-to-node hops."""
    tls: bool = False
    """Serve every REST port over HTTPS."""
    web_port: int | None = None
    """Serve the teaching page on this loopback port (None: no page)."""
    metrics_port: int | None = 0
    """Serve Prometheus /metrics for every node on this loopback port (0: a free port; None: none)."""


def with_network(plan: Any, network_file: Path | None, faults: bool | None) -> Any:
    """The plan with a network model from `--network FILE` and the `--faults` switch applied."""
    from ..topology.config import ConfigError, load_network

    try:
        spec = load_network(network_file) if network_file is not None else None
        return replace(plan, config=plan.config.with_network(spec, faults=faults))
    except ConfigError as exc:
        fail(str(exc))


async def _up(plan: Any, state_dir: Path, options: UpOptions) -> None:
    progress = _Progress()
    try:
        topology = await launch(plan, state_dir, store_kind=options.store_kind, progress=progress, tls=options.tls,
                                net=options.net, metrics_port=options.metrics_port)
    except (LaunchError, NetModeError) as exc:
        progress.close()
        fail(str(exc))
        return
    progress.close()
    page = None
    if options.web_port is not None:  # before the ready line, so `ready:` means the page is up too
        try:
            page = await serve_page_for(topology, "127.0.0.1", options.web_port)
        except BaseException:
            await topology.stop()
            raise
    described = topology.describe()
    print_tiers(described)
    print_network(described)
    if topology.monitoring is not None and topology.monitoring.metrics_url:
        click.echo(f"  metrics     {topology.monitoring.metrics_url}  (Prometheus; `handlesim stats` for the "
                   "national picture)")
    click.echo(f"ready: {len(topology.nodes)} nodes up in {topology.boot_seconds:.2f} s; "
               f"state in {state_dir}/topology.json; Ctrl-C stops", err=False)
    sys.stdout.flush()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    click.echo("stopping...", err=True)
    if page is not None:
        await page.stop()
    await topology.stop()
    click.echo("stopped", err=True)


def print_network(described: dict[str, Any]) -> None:
    """One line on the network model and one on fault injection, when they are on."""
    model = described.get("network")
    if model:
        regions = [r["name"] for r in model["regions"]]
        click.echo(f"  network    model: {len(regions)} regions ({', '.join(regions[:8])}"
                   f"{', ...' if len(regions) > 8 else ''}), clients in {model['client_region']}")
    else:
        click.echo("  network    loopback (no modelled delay)")
    faults = described.get("faults") or {}
    if faults.get("enabled"):
        click.echo(f"  faults     on: `handlesim fault ...` or POST {faults['control_url']}/_sim/fault")


class _Progress:
    """A one-line progress bar on stderr while a large topology boots (silent when stderr is not a terminal)."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.phase = ""

    def __call__(self, phase: str, done: int, total: int) -> None:
        if phase != self.phase:
            if self.phase and not self.tty:
                click.echo(f"  {self.phase}: done", err=True)
            self.phase = phase
        if self.tty and (done == total or done % max(total // 50, 1) == 0):
            width = 30
            filled = width * done // max(total, 1)
            click.echo(f"\r  {phase:<22} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}", err=True,
                       nl=False)

    def close(self) -> None:
        if self.tty and self.phase:
            click.echo("", err=True)
        elif self.phase:
            click.echo(f"  {self.phase}: done", err=True)


@main.command("topology")
@state_dir_option
@json_option
def topology_cmd(state_dir: Path, as_json: bool) -> None:
    """Show the running topology: tiers, counts, identifiers to try."""
    state = running_state(state_dir)
    if as_json:
        click.echo(json.dumps(state.data, indent=1, ensure_ascii=False))
        return
    print_tiers(state.data)
    print_network(state.data)
    for example in state.data.get("examples", [])[1:]:
        click.echo(f"       handlesim resolve {example}")


@main.command()
@click.argument("config_path", type=click.Path(path_type=Path, dir_okay=False))
def validate(config_path: Path) -> None:
    """Check a topology file and summarise what it would launch."""
    plan = plan_from(config_path, None, None)
    counts: dict[str, int] = {}
    for node in plan.nodes:
        counts[node.role] = counts.get(node.role, 0) + 1
    summary = ", ".join(f"{n} {role}" for role, n in counts.items())
    click.echo(f"{config_path}: ok ({summary})")
    if plan.config.network is not None:
        model = plan.config.network.model(plan.config.seed)
        client = model.client_region
        nearest = sorted((link.delay, target) for (source, target), link in model.links.items() if source == client)
        delays = ", ".join(f"{target} {delay * 1000:.1f}" for delay, target in nearest)
        click.echo(f"  network model: {len(model.regions)} regions; one-way ms from {client} (clients): {delays}")

