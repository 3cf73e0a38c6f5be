"""`handlesim up`, `topology` and `validate`: launch a topology and describe it."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path
from typing import Any

import click

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


@main.command()
@click.option("--config", "config_path", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Topology TOML file (default: configs/plan.toml).")
@state_dir_option
@click.option("--store", "store_kind", type=click.Choice(["sqlite", "memory"]), default="sqlite", show_default=True,
              help="sqlite keeps every node's data under the state dir across restarts.")
@click.option("--base-port", type=int, default=None, help="Override the config's base port (0 = ephemeral ports).")
@click.option("--identifiers", type=int, default=None, help="Override identifiers seeded per enterprise.")
@click.option("--metrics-port", type=click.IntRange(-1, 65535), default=0, show_default=True,
              help="Loopback port serving Prometheus /metrics for every node (0: a free port, written to "
                   "topology.json as metrics_url; -1: none).")
def up(config_path: Path | None, state_dir: Path, store_kind: str, base_port: int | None,
       identifiers: int | None, metrics_port: int) -> None:
    """Start every node of a topology on loopback and keep it running until Ctrl-C."""
    plan = plan_from(config_path or default_config(), base_port, identifiers)
    run_async(_up(plan, state_dir, store_kind, None if metrics_port < 0 else metrics_port))




async def _up(plan: Any, state_dir: Path, store_kind: str, metrics_port: int | None = 0) -> None:
    progress = _Progress()
    try:
        topology = await launch(plan, state_dir, store_kind=store_kind, progress=progress, metrics_port=metrics_port)
    except LaunchError as exc:
        progress.close()
        fail(str(exc))
        return
    progress.close()
    print_tiers(topology.describe())
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
    await topology.stop()
    click.echo("stopped", err=True)


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

