"""`handlesim up`, `topology` and `validate`: launch a topology and describe it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import click

from ..core.wording import counted
from ..demo.web import DemoWebConfig
from ..topology.network import default_net_mode
from ..topology.plan import build_plan
from ..topology.ports import port_taken
from ..topology.runner import describe, launch
from ..topology.running import LaunchError, Topology
from ..topology.state import TopologyState, load_state
from ..topology.statedir import CLIENT_DIR
from ..topology.supervisor import ProcessEngine, Supervisor, refuse_unsupported, resolve_worker_count
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
from .booting import Progress, Signals
from .demo import serve_page, serve_page_for


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
    workers: str | None = None
    """`--workers` as given: a count or `auto` (None: 1, or one per CPU of the Ray cluster with the Ray engine)."""
    engine: str = "process"
    """Where workers run: `process` (local processes) or `ray` (Ray actors)."""
    ray_address: str | None = None
    """The Ray cluster to join (None: a local Ray instance for this run)."""
    bind_node_ip: bool = False
    """Ray actors' nodes bind their machine's IP address instead of the config's host."""
    reset: bool = False
    """Wipe what the state dir holds (another topology's stores, a stale topology.json) before booting."""


@main.command()
@click.option("--config", "config_path", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Topology TOML file (default: configs/plan.toml).")
@state_dir_option
@click.option("--store", "store_kind", type=click.Choice(["sqlite", "memory"]), default=UpOptions.store_kind,
              show_default=True,
              help="sqlite keeps every node's data under the state dir across restarts.")
@click.option("--base-port", type=int, default=None, help="Override the config's base port (0 = ephemeral ports).")
@click.option("--identifiers", type=int, default=None, help="Override identifiers seeded per enterprise.")
@click.option("--net", type=click.Choice(["loopback", "model"]), default=None,
              help="Apply the network model to node-to-node hops (default: model when the topology has a "
                   "[network] section, else loopback).")
@click.option("--network", "network_file", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Take the [network] model from this file (e.g. configs/network-china.toml).")
@click.option("--faults/--no-faults", "faults", default=None,
              help="Serve fault injection (POST /_sim/fault, `handlesim fault`); default: the file's `faults` key. "
                   "Not with --workers or --engine ray yet.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Override the config's [failover] timeout: seconds before a silent server counts as failed.")
@click.option("--tls", is_flag=True, help="Serve every REST port over HTTPS with a certificate generated into "
              "<state-dir>/tls (clients pin tls/ca.pem).")
@click.option("--web", is_flag=True, help="Also serve the teaching page (topology picture, animated lookups; with "
              "workers it cannot stop and start nodes).")
@click.option("--web-port", type=int, default=DemoWebConfig.port, show_default=True,
              help="Loopback port of the page (0 = any).")
@click.option("--metrics-port", type=click.IntRange(-1, 65535), default=UpOptions.metrics_port, show_default=True,
              help="Loopback port serving Prometheus /metrics for every node (0: a free port, written to "
                   "topology.json as metrics_url; -1: none).")
@click.option("--workers", default=None, metavar="N|auto",
              help="Worker processes (or Ray actors) sharing the nodes; auto = one per core. Default: 1 (all nodes "
                   "in this process); with --engine ray, one per core of the cluster.")
@click.option("--engine", type=click.Choice(["process", "ray"]), default=UpOptions.engine, show_default=True,
              help="Where workers run: local processes, or Ray actors (needs the `ray` extra).")
@click.option("--ray-address", default=None, metavar="ADDR",
              help="Ray cluster to join (e.g. 10.0.0.5:6379 or auto); default: a local Ray instance.")
@click.option("--bind-node-ip", is_flag=True,
              help="With --engine ray: nodes bind their Ray machine's IP instead of the config's loopback host, "
                   "so nodes on different machines reach each other.")
@click.option("--reset", is_flag=True,
              help="Wipe the state dir's stores, credentials and stale files first (e.g. another topology's).")
@click.option("--native/--no-native", "native", default=None,
              help="Every node also speaks the native Handle protocol on UDP and TCP (port base_port + [native] "
                   "port_offset + i); default: the file's [native] enabled (on). --no-native: REST only, half the "
                   "sockets.")
def up(config_path: Path | None, state_dir: Path, store_kind: str, base_port: int | None,
       identifiers: int | None, net: str | None, network_file: Path | None, faults: bool | None,
       timeout: float | None, tls: bool, web: bool, web_port: int, metrics_port: int, workers: str | None,
       engine: str, ray_address: str | None, bind_node_ip: bool, reset: bool, native: bool | None) -> None:
    """Start every node of a topology on loopback and keep it running until Ctrl-C, SIGTERM or `handlesim down`.

    Besides REST, every node answers the native Handle protocol (UDP and TCP), and <state-dir>/handle-client/ is a
    Handle.Net client configuration naming the roots: `JAVA_TOOL_OPTIONS=-Dnet.handle.configDir=<state-dir>/
    handle-client hdl-qresolver 88.101.1001/PUMP-000001`."""
    plan = with_network(plan_from(config_path or default_config(), base_port, identifiers, native=native),
                        network_file, faults)
    if timeout is not None:
        config = plan.config
        plan = build_plan(replace(config, failover=replace(config.failover, timeout=timeout)))
    if engine == "process" and (ray_address or bind_node_ip):
        fail("--ray-address and --bind-node-ip need --engine ray")
    try:
        count = resolve_worker_count(workers)
    except LaunchError as exc:
        fail(str(exc))
    options = UpOptions(store_kind, net or default_net_mode(plan), tls, web_port if web else None,
                        None if metrics_port < 0 else metrics_port, workers, engine, ray_address, bind_node_ip,
                        reset)
    if options.web_port:  # found before the boot, not after it
        reason = port_taken(DemoWebConfig.host, options.web_port)
        if reason is not None:
            fail(f"the teaching page cannot listen on {DemoWebConfig.host}:{options.web_port}: {reason}; choose "
                 "another with --web-port (0: any free port)")
    if engine == "ray" or count > 1:
        try:  # before any worker (or Ray) starts
            refuse_unsupported(plan, tls=tls, binds_elsewhere=bind_node_ip)
        except LaunchError as exc:
            fail(str(exc))
    if engine == "ray":
        run_async(_up_ray(plan, state_dir, options))
    elif count > 1:
        run_async(_up_supervised(plan, state_dir, options, ProcessEngine(), count, None))
    else:
        run_async(_up(plan, state_dir, options))


def with_network(plan: Any, network_file: Path | None, faults: bool | None) -> Any:
    """The plan with a network model from `--network FILE` and the `--faults` switch applied."""
    from ..topology.config import ConfigError, load_network

    try:
        spec = load_network(network_file) if network_file is not None else None
        return replace(plan, config=plan.config.with_network(spec, faults=faults))
    except ConfigError as exc:
        fail(str(exc))


async def _up(plan: Any, state_dir: Path, options: UpOptions) -> None:
    """Every node in this process; the page (`--web`) may stop and start them."""
    signals = Signals()
    signals.install()
    progress = Progress()
    topology = await signals.booted(launch(plan, state_dir, store_kind=options.store_kind, progress=progress,
                                           tls=options.tls, net=options.net, metrics_port=options.metrics_port,
                                           reset=options.reset), progress)
    page = None
    if options.web_port is not None:  # before the ready line, so `ready:` means the page is up too
        try:
            page = await serve_page_for(topology, DemoWebConfig.host, options.web_port)
        except BaseException:
            await topology.stop()
            raise

    async def stop() -> None:
        if page is not None:
            await page.stop()
        await topology.stop()

    await _serve_until_signalled(topology, state_dir, signals, stop)


async def _up_supervised(plan: Any, state_dir: Path, options: UpOptions, engine: Any, count: int,
                         bind_host: str | None) -> None:
    signals = Signals()
    signals.install()
    progress = Progress()
    supervisor = Supervisor(plan, state_dir, engine, count, store_kind=options.store_kind, bind_host=bind_host,
                            progress=progress, report=lambda message: click.echo(message, err=True),
                            tls=options.tls, net=options.net, reset=options.reset)
    topology = await signals.booted(supervisor.boot(), progress)
    for status in supervisor.statuses.values():
        click.echo(f"  worker {status['worker']}: pid {status['pid']}, {counted(status['nodes'], 'node')}, "
                   f"peak RSS {status['peak_rss_mb']:.0f} MB, {status['cpu_seconds']:.1f} s CPU to boot", err=True)
    page = None
    if options.web_port is not None:  # the nodes live in the workers: the page shows and resolves, but cannot
        try:                          # stop and start them
            page = await serve_page(load_state(state_dir), DemoWebConfig.host, options.web_port)
        except BaseException:
            await supervisor.stop()
            raise

    async def stop() -> None:
        if page is not None:
            await page.stop()
        await supervisor.stop()

    await _serve_until_signalled(topology, state_dir, signals, stop, supervisor.watch())


async def _serve_until_signalled(topology: Topology, state_dir: Path, signals: Signals,
                                 stop: Callable[[], Awaitable[None]],
                                 watch: Coroutine[Any, Any, None] | None = None) -> None:
    """Print the ready line, keep the topology (and its watcher) running until Ctrl-C or SIGTERM, then stop."""
    _announce(topology, state_dir)
    watcher = asyncio.ensure_future(watch) if watch is not None else None
    await signals.stop_requested.wait()
    if watcher is not None:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
    click.echo("stopping...", err=True)
    await stop()
    click.echo("stopped", err=True)


async def _up_ray(plan: Any, state_dir: Path, options: UpOptions) -> None:
    try:
        from ..topology.ray_engine import RayEngine
    except ImportError:
        fail("--engine ray needs Ray: pip install 'handlesim[ray]'")
    engine = RayEngine(options.ray_address)
    try:
        cores = engine.cpu_count()
        count = resolve_worker_count(options.workers, default=cores, cores=cores)
        await _up_supervised(plan, state_dir, options, engine, count,
                             RayEngine.NODE_IP if options.bind_node_ip else None)
    finally:
        engine.shutdown()


def _announce(topology: Topology, state_dir: Path) -> None:
    state = describe(topology)
    print_tiers(state)
    print_network(state)
    if any(n.native_port for n in state.nodes):
        click.echo(f"  native     UDP+TCP on every node; Handle.Net client config: {state_dir / CLIENT_DIR}")
    metrics = state.metrics_endpoints
    if metrics:
        click.echo(f"  metrics    {', '.join(metrics)}  (Prometheus; `handlesim stats` for the national picture)")
    workers = f" in {state.workers} {topology.engine} workers" if topology.engine != "inline" else ""
    click.echo(f"ready: {counted(len(state.nodes), 'node')} up{workers} in {topology.boot_seconds:.2f} s; "
               f"state in {state_dir}/topology.json; Ctrl-C stops", err=False)
    sys.stdout.flush()



def print_network(state: TopologyState) -> None:
    """One line on the network model and one on fault injection, when they are on."""
    model = state.network_model
    if model is not None:
        regions = list(model.regions)
        click.echo(f"  network    model: {len(regions)} regions ({', '.join(regions[:8])}"
                   f"{', ...' if len(regions) > 8 else ''}), clients in {model.client_region}")
    else:
        click.echo("  network    loopback (no modelled delay)")
    if state.control_url is not None:
        click.echo(f"  faults     on: `handlesim fault ...` or POST {state.control_url}/_sim/fault")


@main.command("topology")
@state_dir_option
@json_option
def topology_cmd(state_dir: Path, as_json: bool) -> None:
    """Show the running topology: tiers, counts, identifiers to try."""
    state = running_state(state_dir)
    if as_json:
        click.echo(json.dumps(state.to_data(), indent=1, ensure_ascii=False))
        return
    print_tiers(state)
    print_network(state)
    for example in state.examples[1:]:
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

