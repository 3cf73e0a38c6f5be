"""`handlesim up`, `topology` and `validate`: launch a topology and describe it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

import click

from ..topology.runner import LaunchError, Topology, launch
from ..topology.supervisor import ProcessEngine, Supervisor, resolve_worker_count
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
@click.option("--workers", default=None, metavar="N|auto",
              help="Worker processes (or Ray actors) sharing the nodes; auto = one per core. Default: 1 (all nodes "
                   "in this process); with --engine ray, one per core of the cluster.")
@click.option("--engine", type=click.Choice(["process", "ray"]), default="process", show_default=True,
              help="Where workers run: local processes, or Ray actors (needs the `ray` extra).")
@click.option("--ray-address", default=None, metavar="ADDR",
              help="Ray cluster to join (e.g. 10.0.0.5:6379 or auto); default: a local Ray instance.")
@click.option("--bind-node-ip", is_flag=True,
              help="With --engine ray: nodes bind their Ray machine's IP instead of the config's loopback host, "
                   "so nodes on different machines reach each other.")
def up(config_path: Path | None, state_dir: Path, store_kind: str, base_port: int | None,
       identifiers: int | None, workers: str | None, engine: str, ray_address: str | None,
       bind_node_ip: bool) -> None:
    """Start every node of a topology on loopback and keep it running until Ctrl-C."""
    plan = plan_from(config_path or default_config(), base_port, identifiers)
    if engine == "process" and (ray_address or bind_node_ip):
        fail("--ray-address and --bind-node-ip need --engine ray")
    try:
        count = resolve_worker_count(workers)
    except LaunchError as exc:
        fail(str(exc))
    if engine == "ray":
        run_async(_up_ray(plan, state_dir, store_kind, workers, ray_address, bind_node_ip))
    elif count > 1:
        run_async(_up_supervised(plan, state_dir, store_kind, ProcessEngine(), count, None))
    else:
        run_async(_up(plan, state_dir, store_kind))


async def _up(plan: Any, state_dir: Path, store_kind: str) -> None:
    progress = _Progress()
    topology = await _booted(launch(plan, state_dir, store_kind=store_kind, progress=progress), progress)
    await _serve_until_signalled(topology, state_dir, topology.stop)


async def _up_supervised(plan: Any, state_dir: Path, store_kind: str, engine: Any, count: int,
                         bind_host: str | None) -> None:
    progress = _Progress()
    supervisor = Supervisor(plan, state_dir, engine, count, store_kind=store_kind, bind_host=bind_host,
                            progress=progress, report=lambda message: click.echo(message, err=True))
    topology = await _booted(supervisor.boot(), progress)
    for status in supervisor.statuses.values():
        click.echo(f"  worker {status['worker']}: pid {status['pid']}, {status['nodes']} nodes, "
                   f"peak RSS {status['peak_rss_mb']:.0f} MB, {status['cpu_seconds']:.1f} s CPU to boot", err=True)
    await _serve_until_signalled(topology, state_dir, supervisor.stop, supervisor.watch())


async def _booted(boot: Awaitable[Topology], progress: _Progress) -> Topology:
    try:
        return await boot
    except LaunchError as exc:
        fail(str(exc))
        raise
    finally:
        progress.close()


async def _serve_until_signalled(topology: Topology, state_dir: Path, stop: Callable[[], Awaitable[None]],
                                 watch: Coroutine[Any, Any, None] | None = None) -> None:
    """Print the ready line, keep the topology (and its watcher) running until Ctrl-C or SIGTERM, then stop."""
    _announce(topology, state_dir)
    watcher = asyncio.ensure_future(watch) if watch is not None else None
    await _until_signalled()
    if watcher is not None:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
    click.echo("stopping...", err=True)
    await stop()
    click.echo("stopped", err=True)


async def _up_ray(plan: Any, state_dir: Path, store_kind: str, workers: str | None, ray_address: str | None,
                  bind_node_ip: bool) -> None:
    try:
        from ..topology.ray_engine import RayEngine
    except ImportError:
        fail("--engine ray needs Ray: pip install 'handlesim[ray]'")
        return
    engine = RayEngine(ray_address)
    try:
        cores = engine.cpu_count()
        count = resolve_worker_count(workers, default=cores, cores=cores)
        await _up_supervised(plan, state_dir, store_kind, engine, count, RayEngine.NODE_IP if bind_node_ip else None)
    finally:
        engine.shutdown()


def _announce(topology: Topology, state_dir: Path) -> None:
    description = topology.describe()
    print_tiers(description)
    workers = f" in {description['workers']} {topology.engine} workers" if topology.engine != "inline" else ""
    click.echo(f"ready: {len(description['nodes'])} nodes up{workers} in {topology.boot_seconds:.2f} s; "
               f"state in {state_dir}/topology.json; Ctrl-C stops", err=False)
    sys.stdout.flush()


async def _until_signalled() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


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

