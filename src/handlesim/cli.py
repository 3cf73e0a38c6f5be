"""The `handlesim` command line: builds configurations from options and calls the layers below."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

import click

from .core.codes import OpCode, ResponseCode
from .core.errors import HandleError
from .core.handle import Handle
from .core.messages import Request, Response
from .core.prefixes import owner_identity
from .core.values import HandleValue, ValueReference
from .net.client import HandleClient, locate
from .topology.config import ConfigError, load_config
from .topology.plan import build_plan
from .topology.runner import LaunchError, launch
from .topology.state import DEFAULT_STATE_DIR, StateError, load_state

PACKAGE_CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def run_async(coro: Any) -> Any:
    try:
        import uvloop

        return uvloop.run(coro)
    except ImportError:
        return asyncio.run(coro)


def default_config(name: str = "plan.toml") -> Path:
    local = Path("configs") / name
    return local if local.exists() else PACKAGE_CONFIGS / name


def fail(message: str) -> None:
    raise click.ClickException(message)


state_dir_option = click.option("--state-dir", type=click.Path(path_type=Path), default=DEFAULT_STATE_DIR,
                                show_default=True, help="Where the running topology keeps topology.json and stores.")
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


@click.group()
@click.version_option(package_name="handlesim")
def main() -> None:
    """handlesim: a Handle System root / secondary / enterprise hierarchy on loopback."""


# -- up -----------------------------------------------------------------------------------------------------------

@main.command()
@click.option("--config", "config_path", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Topology TOML file (default: configs/plan.toml).")
@state_dir_option
@click.option("--store", "store_kind", type=click.Choice(["sqlite", "memory"]), default="sqlite", show_default=True,
              help="sqlite keeps every node's data under the state dir across restarts.")
@click.option("--base-port", type=int, default=None, help="Override the config's base port (0 = ephemeral ports).")
@click.option("--identifiers", type=int, default=None, help="Override identifiers seeded per enterprise.")
def up(config_path: Path | None, state_dir: Path, store_kind: str, base_port: int | None,
       identifiers: int | None) -> None:
    """Start every node of a topology on loopback and keep it running until Ctrl-C."""
    plan = _plan_from(config_path or default_config(), base_port, identifiers)
    run_async(_up(plan, state_dir, store_kind))


def _plan_from(path: Path, base_port: int | None, identifiers: int | None) -> Any:
    try:
        config = load_config(path)
    except ConfigError as exc:
        fail(str(exc))
    overrides: dict[str, Any] = {}
    if base_port is not None:
        overrides["base_port"] = base_port
    if identifiers is not None:
        overrides["identifiers_per_enterprise"] = identifiers
    if overrides:
        config = config.with_overrides(**overrides)
    return build_plan(config)


async def _up(plan: Any, state_dir: Path, store_kind: str) -> None:
    progress = _Progress()
    try:
        topology = await launch(plan, state_dir, store_kind=store_kind, progress=progress)
    except LaunchError as exc:
        progress.close()
        fail(str(exc))
        return
    progress.close()
    _print_tiers(topology.describe())
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


def _print_tiers(description: dict[str, Any]) -> None:
    nodes = description["nodes"]
    click.echo(f"topology {description['name']}:")
    for role in ("root", "secondary", "enterprise", "resolver"):
        members = [n for n in nodes if n["role"] == role]
        if not members:
            continue
        ports = [n["port"] for n in members]
        sample = ", ".join(f"{n['id']}" for n in members[:3]) + (", ..." if len(members) > 3 else "")
        click.echo(f"  {role:<11} {len(members):>5}  ports {min(ports)}-{max(ports)}  {sample}")
    if description.get("examples"):
        click.echo("  try: handlesim resolve --trace " + description["examples"][0])


# -- resolve ------------------------------------------------------------------------------------------------------

@main.command()
@click.argument("handle")
@state_dir_option
@click.option("--trace", is_flag=True, help="Show every hop: node, what was asked, answer, time.")
@click.option("--type", "types", multiple=True, help="Only values of this type (repeatable; 'URL.' = subtypes).")
@click.option("--index", "indexes", multiple=True, type=int, help="Only values at this index (repeatable).")
@click.option("--timeout", type=float, default=2.0, show_default=True, help="Seconds before a silent node fails.")
@click.option("--via", default=None, metavar="resolver|NODE_ID",
              help="Ask a recursive resolver node to walk for you ('resolver' = the topology's first one).")
@json_option
def resolve(handle: str, state_dir: Path, trace: bool, types: tuple[str, ...], indexes: tuple[int, ...],
            timeout: float, via: str | None, as_json: bool) -> None:
    """Resolve HANDLE: iteratively from the roots, or through a recursive resolver node (--via)."""
    state = _state(state_dir)
    target = _handle(handle)
    started = time.perf_counter()

    async def go() -> tuple[Response, list[dict[str, Any]]]:
        async with HandleClient(timeout=timeout) as client:
            if via is None:
                resolution = await client.resolve(target, state.root_sites, types=types, indexes=indexes)
                assert resolution.result is not None
                return resolution.result, [h.to_dict() for h in resolution.trace]
            answer = await client.resolve_via(_resolver_url(state, via), target, types=types, indexes=indexes)
            hops = answer.extra.get("trace", [])
            return answer, list(hops) if isinstance(hops, list) else []

    result, hops = run_async(go())
    elapsed = time.perf_counter() - started
    if as_json:
        click.echo(json.dumps({"handle": result.handle or handle, "responseCode": int(result.code),
                               "message": result.message, "values": [_value_json(v) for v in result.values],
                               "via": via, "trace": hops}, indent=1, ensure_ascii=False))
    else:
        if trace:
            _print_trace(hops, via, elapsed)
        _print_result(result)
    if not result.ok:
        sys.exit(1)


def _resolver_url(state: Any, via: str) -> str:
    nodes = [n for n in state.nodes if n["role"] == "resolver"] if via == "resolver" else \
        [n for n in state.nodes if n["id"] == via]
    if not nodes:
        fail(f"no node {via!r} in the running topology" if via != "resolver" else
             "the running topology has no resolver node (add a [[resolvers]] entry to its config)")
    return str(nodes[0]["url"])


def _print_trace(hops: list[dict[str, Any]], via: str | None, elapsed: float) -> None:
    if via is not None:
        click.echo(f"  asked {via}; its walk:" if hops and not all(h["cache_hit"] for h in hops) else
                   f"  asked {via}: answered from its cache" if hops else f"  asked {via}")
    for number, hop in enumerate(hops, 1):
        code = "-" if hop["code"] is None else str(hop["code"])
        where = "cache" if hop["cache_hit"] else hop["site"]
        click.echo(f"  hop {number}  {where:<22} asked {hop['asked']:<28} -> {code:>3} {hop['outcome']}"
                   f"  ({hop['duration_ms']:.2f} ms)")
    upstream = sum(1 for h in hops if not h["cache_hit"])
    click.echo(f"  {upstream} upstream hops, {elapsed * 1000:.2f} ms in total (as seen by this command)")


def _print_result(result: Response) -> None:
    if not result.ok:
        click.echo(f"{result.handle}: {int(result.code)} {_code_name(result.code)}: {result.message}", err=True)
        return
    click.echo(f"{result.handle}:")
    for value in result.values:
        click.echo(f"  {value.index:>4}  {value.type:<18} {_data_text(value)}")


def _code_name(code: int) -> str:
    try:
        return ResponseCode(code).name.lower().replace("_", " ")
    except ValueError:
        return "unknown code"


def _data_text(value: HandleValue) -> str:
    from .wire.mapping import value_to_dict

    data = value_to_dict(value)["data"]
    if isinstance(data, dict) and data.get("format") == "string":
        return str(data["value"])
    return json.dumps(data["value"] if isinstance(data, dict) else data, ensure_ascii=False)[:100]


def _value_json(value: HandleValue) -> dict[str, Any]:
    from .wire.mapping import value_to_dict

    return value_to_dict(value)


# -- check --------------------------------------------------------------------------------------------------------

@main.command()
@click.argument("handle")
@state_dir_option
@json_option
def check(handle: str, state_dir: Path, as_json: bool) -> None:
    """Resolve HANDLE at every replica that holds it (all roots for 0.NA/ handles) and report drift."""
    import hashlib

    state = _state(state_dir)
    target = _handle(handle)

    async def go() -> list[tuple[str, Response | str]]:
        async with HandleClient() as client:
            if target.is_prefix_handle:
                replicas = [(site.name, site.servers[0]) for site in state.root_sites]
            else:
                sites = await locate(client, target.prefix_handle(), state.root_sites)
                replicas = [(site.name, server) for site in sites for server in site.servers]
            request = Request(OpCode.RESOLUTION, target, recursive=False)
            answers: list[tuple[str, Response | str]] = []
            for name, server in replicas:
                try:
                    answers.append((name, await client.send(server, request)))
                except HandleError as exc:
                    answers.append((name, exc.message))
            return answers

    answers = run_async(go())

    def digest(answer: Response | str) -> str:
        if isinstance(answer, str):
            return "unreachable"
        if not answer.ok:
            return f"code {int(answer.code)}"
        return hashlib.sha256(repr(sorted(answer.values)).encode("utf-8", "surrogatepass")).hexdigest()[:12]

    digests = {name: digest(answer) for name, answer in answers}
    drift = len(set(digests.values())) > 1
    if as_json:
        click.echo(json.dumps({"handle": target.text, "replicas": digests, "drift": drift}, indent=1))
    else:
        for name, value in digests.items():
            click.echo(f"  {name:<24} {value}")
        click.echo(f"{target.text}: {'DRIFT between replicas' if drift else 'all replicas agree'}")
    if drift:
        sys.exit(1)


# -- register / delete --------------------------------------------------------------------------------------------

@main.command()
@click.argument("handle")
@click.option("--value", "values", multiple=True, required=True,
              help="TYPE=DATA or INDEX:TYPE=DATA (repeatable), e.g. URL=https://example.cn/x")
@click.option("--overwrite/--no-overwrite", default=False, show_default=True,
              help="Replace an existing handle (otherwise an existing handle is an error).")
@click.option("--as", "identity_text", default=None, help="Identity INDEX:HANDLE (default: the prefix owner).")
@state_dir_option
@json_option
def register(handle: str, values: tuple[str, ...], overwrite: bool, identity_text: str | None, state_dir: Path,
             as_json: bool) -> None:
    """Create HANDLE at the node responsible for its prefix, authenticated with the credentials `up` wrote."""
    target = _handle(handle)
    parsed = tuple(_parse_value(text, number) for number, text in enumerate(values, 1))
    request = Request(OpCode.CREATE_HANDLE, target, values=parsed, overwrite=overwrite)
    _write(state_dir, target, request, identity_text, as_json)


@main.command()
@click.argument("handle")
@click.option("--index", "indexes", multiple=True, type=int, help="Remove only these values (repeatable).")
@click.option("--as", "identity_text", default=None, help="Identity INDEX:HANDLE (default: the prefix owner).")
@state_dir_option
@json_option
def delete(handle: str, indexes: tuple[int, ...], identity_text: str | None, state_dir: Path, as_json: bool) -> None:
    """Delete HANDLE (or some of its values) at the node responsible for its prefix."""
    target = _handle(handle)
    op = OpCode.REMOVE_VALUE if indexes else OpCode.DELETE_HANDLE
    _write(state_dir, target, Request(op, target, indexes=indexes), identity_text, as_json)


def _write(state_dir: Path, target: Handle, request: Request, identity_text: str | None, as_json: bool) -> None:
    state = _state(state_dir)
    identity = ValueReference.from_text(identity_text) if identity_text else owner_identity(target.prefix)
    try:
        credentials = state.credentials_for(identity)
    except StateError as exc:
        fail(str(exc))

    async def go() -> Response:
        async with HandleClient() as client:
            sites = await locate(client, target.prefix_handle(), state.root_sites)
            server = sites[0].server_for(target)
            return await client.send(server, request, credentials=credentials)

    try:
        reply = run_async(go())
    except HandleError as exc:
        fail(exc.message)
    if as_json:
        click.echo(json.dumps({"handle": reply.handle, "responseCode": int(reply.code), "message": reply.message}))
    elif reply.ok:
        click.echo(f"{reply.handle}: ok")
    else:
        fail(f"{reply.handle or target.text}: {int(reply.code)} {_code_name(reply.code)}: {reply.message}")


def _parse_value(text: str, default_index: int) -> HandleValue:
    head, eq, data = text.partition("=")
    if not eq or not head:
        fail(f"--value {text!r} must look like TYPE=DATA or INDEX:TYPE=DATA")
    index_text, colon, type_name = head.partition(":")
    if colon:
        if not index_text.isdigit():
            fail(f"--value {text!r}: the index before ':' must be a number")
        return HandleValue(int(index_text), type_name, data)
    return HandleValue(default_index, head, data)


# -- bench --------------------------------------------------------------------------------------------------------

@main.command()
@click.option("--mode", type=click.Choice(["direct", "iterative-cold", "iterative-warm", "resolver", "mixed"]),
              default="direct", show_default=True, help="What each request does (see README: Benchmarks).")
@click.option("--rate", type=float, default=2000.0, show_default=True, help="Offered lookups per second.")
@click.option("--max", "find_max", is_flag=True, help="Search for the highest rate within --p99-bound/--error-bound.")
@click.option("--p99-bound", type=float, default=10.0, show_default=True, help="--max: p99 limit in ms.")
@click.option("--error-bound", type=float, default=0.001, show_default=True, help="--max: error-rate limit.")
@click.option("--duration", type=float, default=10.0, show_default=True, help="Measured seconds.")
@click.option("--warmup", type=float, default=2.0, show_default=True, help="Seconds of load before measuring.")
@click.option("--connections", type=int, default=32, show_default=True, help="Connections per generator process.")
@click.option("--processes", type=int, default=1, show_default=True, help="Load-generator processes.")
@click.option("--arrival", type=click.Choice(["constant", "poisson"]), default="constant", show_default=True)
@click.option("--keys", type=int, default=0, help="Draw from this many seeded identifiers (0 = all).")
@click.option("--distribution", type=click.Choice(["uniform", "zipf"]), default="uniform", show_default=True)
@click.option("--zipf", "zipf_s", type=float, default=1.0, show_default=True, help="Zipf exponent.")
@click.option("--write-fraction", type=float, default=0.05, show_default=True, help="mixed: share of writes.")
@click.option("--no-baseline", is_flag=True, help="Skip measuring the bare aiohttp route in the same run.")
@click.option("--config", "config_path", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Start this topology (memory stores) for the run instead of using a running one.")
@click.option("--identifiers", type=int, default=None, help="With --config: identifiers per enterprise.")
@state_dir_option
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False), default=Path("bench-results"),
              show_default=True, help="Where the JSON, Markdown and PNG files go.")
@click.option("--name", default=None, help="File name stem (default: <mode>-<time>).")
def bench(mode: str, rate: float, find_max: bool, p99_bound: float, error_bound: float, duration: float,
          warmup: float, connections: int, processes: int, arrival: str, keys: int, distribution: str,
          zipf_s: float, write_fraction: float, no_baseline: bool, config_path: Path | None,
          identifiers: int | None, state_dir: Path, out_dir: Path, name: str | None) -> None:
    """Measure resolution latency and throughput (open loop, HdrHistogram, bare-route baseline in the same run)."""
    from contextlib import nullcontext

    from .bench.report import markdown, write_outputs
    from .bench.runner import BenchConfig, find_max_rate, run_bench, started_topology

    config = BenchConfig(mode=mode, rate=rate, duration=duration, warmup=warmup, connections=connections,
                         processes=processes, arrival=arrival, distribution=distribution, zipf_s=zipf_s, keys=keys,
                         write_fraction=write_fraction, baseline=not no_baseline)

    live = {"open": False}

    def progress(line: str) -> None:
        if line.startswith("\r"):
            live["open"] = True
            click.echo(line, err=True, nl=False)
            return
        if live["open"]:
            click.echo("", err=True)
            live["open"] = False
        click.echo(line, err=True)

    topology = started_topology(config_path, identifiers=identifiers) if config_path else nullcontext(None)
    with topology as started:
        state = started if started is not None else _state(state_dir)
        try:
            if find_max:
                found = find_max_rate(state, config, p99_ms=p99_bound, max_error_rate=error_bound, start=rate,
                                      progress=progress)
                bare = find_max_rate(state, config, p99_ms=p99_bound, max_error_rate=error_bound, start=rate,
                                     progress=progress, bare_route=True) if config.baseline else None
                config = BenchConfig(**{**config.__dict__, "rate": found["max_rate"] or rate})
            result = run_bench(state, config, progress)
        except ValueError as exc:
            fail(str(exc))
            return
        if find_max:
            result["max_search"] = found
            if bare is not None:
                result["max_search_bare_route"] = bare
                result["ratios"]["max_rate"] = round(found["max_rate"] / bare["max_rate"], 3) \
                    if bare["max_rate"] else None
    click.echo("", err=True)
    stem = name or f"{mode}-{time.strftime('%Y%m%d-%H%M%S')}"
    paths = write_outputs(result, out_dir, stem)
    click.echo(markdown(result))
    if find_max:
        click.echo(f"highest rate within p99 <= {p99_bound} ms and errors <= {error_bound:.2%}: "
                   f"{result['max_search']['max_rate']:g}/s")
        if "max_search_bare_route" in result:
            click.echo(f"bare aiohttp route, same search: {result['max_search_bare_route']['max_rate']:g}/s "
                       f"(ratio {result['ratios']['max_rate']})")
    click.echo("wrote " + ", ".join(str(p) for p in paths))


# -- topology / validate ------------------------------------------------------------------------------------------

@main.command("topology")
@state_dir_option
@json_option
def topology_cmd(state_dir: Path, as_json: bool) -> None:
    """Show the running topology: tiers, counts, identifiers to try."""
    state = _state(state_dir)
    if as_json:
        click.echo(json.dumps(state.data, indent=1, ensure_ascii=False))
        return
    _print_tiers(state.data)
    for example in state.data.get("examples", [])[1:]:
        click.echo(f"       handlesim resolve {example}")


@main.command()
@click.argument("config_path", type=click.Path(path_type=Path, dir_okay=False))
def validate(config_path: Path) -> None:
    """Check a topology file and summarise what it would launch."""
    plan = _plan_from(config_path, None, None)
    counts: dict[str, int] = {}
    for node in plan.nodes:
        counts[node.role] = counts.get(node.role, 0) + 1
    summary = ", ".join(f"{n} {role}" for role, n in counts.items())
    click.echo(f"{config_path}: ok ({summary})")


def _state(state_dir: Path) -> Any:
    try:
        return load_state(state_dir)
    except StateError as exc:
        fail(str(exc))


def _handle(text: str) -> Handle:
    try:
        return Handle.from_text(text)
    except HandleError as exc:
        fail(f"{int(exc.response_code)} invalid handle: {exc.message}")
        raise


if __name__ == "__main__":
    main()
