"""The `handlesim` command group and what every command shares: options, state loading, error exits, printing.

Exit statuses, the same in every output mode (text and --json):
    0  the command did what was asked (a Handle answer of code 1, success)
    1  it could not: a non-success Handle answer (100 not found, 101 exists, 401 ...), replicas that disagree, a
       failed threshold, or an error printed as one `Error:` line
    2  the command line itself is wrong (click's usage errors: an unknown option, a value out of range)
"""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path
from typing import Any, NoReturn

import click

from ..core.codes import ResponseCode
from ..core.errors import HandleError
from ..core.handle import Handle
from ..core.health import DEFAULT_TIMEOUT
from ..core.messages import Response
from ..core.values import HandleValue, ValueReference
from ..net.client import HandleClient
from ..topology import network
from ..topology.config import ConfigError, load_config
from ..topology.network import NetModeError
from ..topology.plan import Role, TopologyPlan, build_plan
from ..topology.running import LaunchError
from ..topology.state import DEFAULT_STATE_DIR, StateError, TopologyState, load_state

PACKAGE_CONFIGS = Path(__file__).resolve().parents[3] / "configs"


def run_async(coro: Any) -> Any:
    try:
        import uvloop

        return uvloop.run(coro)
    except ImportError:
        return asyncio.run(coro)


def default_config(name: str = "plan.toml") -> Path:
    local = Path("configs") / name
    return local if local.exists() else PACKAGE_CONFIGS / name


ANSWER_FAILED = 1
"""Exit status of a command whose answer is not success (see the module docstring)."""


def fail(message: str) -> NoReturn:
    raise click.ClickException(message)


def finish(ok: bool) -> None:
    """End a command that has printed its answer: exit ANSWER_FAILED unless it is a success, whatever the output
    mode, so a script can trust the exit status of `--json` as much as a person reads the text."""
    if not ok:
        raise click.exceptions.Exit(ANSWER_FAILED)


def answer_text(reply: Response, fallback_handle: str) -> str:
    """One line for a non-success Handle answer: handle, code number, code name, the server's message."""
    return f"{reply.handle or fallback_handle}: {int(reply.code)} {code_name(reply.code)}: {reply.message}"


def read_identity(ctx: click.Context, param: click.Parameter, value: str | None) -> ValueReference | None:
    """`--as INDEX:HANDLE`, checked when the command line is read: a typo is a usage error, not a traceback."""
    if value is None:
        return None
    try:
        return ValueReference.from_text(value)
    except HandleError as exc:
        raise click.BadParameter(exc.message, ctx, param) from None


class HandlesimGroup(click.Group):
    """The command group with one error boundary: the errors our layers raise for a user to read (the Handle
    error tree, a bad topology file, an unreadable state dir, a failed launch) end the command with their one-line
    message instead of a traceback, whichever command let them through."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except HandleError as exc:
            raise click.ClickException(exc.message) from None
        except (ConfigError, StateError, LaunchError, NetModeError) as exc:
            raise click.ClickException(str(exc)) from None


state_dir_option = click.option("--state-dir", type=click.Path(path_type=Path), default=DEFAULT_STATE_DIR,
                                show_default=True, help="Where the running topology keeps topology.json and stores.")
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
timeout_option = click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=DEFAULT_TIMEOUT,
                              show_default=True,
                              help="Seconds before a silent server counts as failed and the next one is tried.")


@click.group(cls=HandlesimGroup)
@click.version_option(package_name="handlesim")
def main() -> None:
    """handlesim: a Handle System root / secondary / enterprise hierarchy on loopback.

    Exit status, in every output mode (text and --json): 0 success; 1 a non-success Handle answer, drift, a failed
    threshold or an error; 2 a wrong command line."""


def plan_from(path: Path, base_port: int | None, identifiers: int | None, *,
              native: bool | None = None) -> TopologyPlan:
    """The plan of a topology file with the command line's overrides (checked like the file's own values)."""
    try:
        config = load_config(path, ports_checked_later=True).with_overrides(
            base_port=base_port, identifiers_per_enterprise=identifiers, native=native)
        return build_plan(config)
    except ConfigError as exc:
        fail(str(exc))


def code_name(code: int) -> str:
    try:
        return ResponseCode(code).name.lower().replace("_", " ")
    except ValueError:
        return "unknown code"


def data_text(value: HandleValue) -> str:
    from ..wire.mapping import value_to_dict

    data = value_to_dict(value)["data"]
    if isinstance(data, dict) and data.get("format") == "string":
        return str(data["value"])
    return json.dumps(data["value"] if isinstance(data, dict) else data, ensure_ascii=False)[:100]


def value_json(value: HandleValue) -> dict[str, Any]:
    from ..wire.mapping import value_to_dict

    return value_to_dict(value)


def running_state(state_dir: Path) -> TopologyState:
    try:
        return load_state(state_dir)
    except StateError as exc:
        fail(str(exc))


def parse_handle(text: str) -> Handle:
    try:
        return Handle.from_text(text)
    except HandleError as exc:
        fail(f"{int(exc.response_code)} invalid handle: {exc.message}")


def print_tiers(state: TopologyState) -> None:
    click.echo(f"topology {state.name}:")
    for role in Role:
        members = state.with_role(role)
        if not members:
            continue
        ports = [n.port for n in members]
        native = [n.native_port for n in members if n.native_port]
        native_text = f"  native {min(native)}-{max(native)}" if native else ""
        sample = ", ".join(n.id for n in members[:3]) + (", ..." if len(members) > 3 else "")
        click.echo(f"  {role:<11} {len(members):>5}  ports {min(ports)}-{max(ports)}{native_text}  {sample}")
    if state.examples:
        click.echo("  try: handlesim resolve --trace " + state.examples[0])



async def until_signalled() -> None:
    """Wait for Ctrl-C or SIGTERM (the long-running commands: up, web, demo --web)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def topology_client(state: TopologyState, timeout: float, *, net: str | None = None,
                    region: str | None = None) -> HandleClient:
    """A client of the running topology: its CA pinned (`up --tls`) and its network mode followed, so this
    command's own hops pay the modelled delays when the topology runs with the model (`net` overrides)."""
    try:
        return network.topology_client(state, timeout, net=net, region=region)
    except NetModeError as exc:
        fail(str(exc))
