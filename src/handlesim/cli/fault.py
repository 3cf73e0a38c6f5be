"""`handlesim fault ...`: break a running topology on purpose (it must run with fault injection on) and heal it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from ..net.faults import request_fault
from ..topology.state import TopologyState
from .app import fail, json_option, main, running_state, state_dir_option


def control_url(state: TopologyState) -> str:
    if state.control_url is None:
        fail("the running topology has fault injection off; start it with `handlesim up --faults` "
             "(or `faults = true` in its file)")
    return state.control_url


def post_fault(url: str, body: dict[str, Any] | None) -> dict[str, Any]:
    """POST one action (GET the state when `body` is None) and return the JSON answer; errors exit with the message."""
    try:
        status, answer = request_fault(url, body)
    except OSError as exc:
        fail(f"cannot reach the control port {url}: {exc}")
    if status != 200:
        fail(f"{(body or {}).get('action', 'status')}: {status} {answer.get('message', '')}")
    return answer


def _run(state_dir: Path, body: dict[str, Any], as_json: bool) -> None:
    answer = post_fault(control_url(running_state(state_dir)), body)
    state = answer.get("fault", {})
    if as_json:
        click.echo(json.dumps(state, indent=1))
        return
    click.echo(answer.get("message", "done"))
    _print_state(state)


def _print_state(state: dict[str, Any]) -> None:
    down = ", ".join(f"{node} ({how})" for node, how in state.get("down", {}).items()) or "none"
    slow = ", ".join(f"{node} +{ms:g} ms" for node, ms in state.get("slow_ms", {}).items()) or "none"
    cuts = "; ".join(f"{' '.join(a)} <-/-> {' '.join(b)}" for a, b in state.get("partitions", [])) or "none"
    click.echo(f"  down: {down}\n  paused: {', '.join(state.get('paused', [])) or 'none'}\n  slow: {slow}\n"
               f"  partitions: {cuts}")


def _group(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


@main.group()
def fault() -> None:
    """Inject faults into a running topology (started with `up --faults`): kill, pause, slow, partition, heal."""


def _node_command(action: str, help_text: str) -> None:
    @fault.command(action, help=help_text)
    @click.argument("node")
    @state_dir_option
    @json_option
    def command(node: str, state_dir: Path, as_json: bool) -> None:
        _run(state_dir, {"action": action, "node": node}, as_json)


_node_command("kill", "Close NODE's listener and reset its connections (requests in flight get no answer).")
_node_command("stop", "Close NODE's listener; requests in flight finish, then its connections close.")
_node_command("start", "Reopen a killed or stopped NODE on its own port.")
_node_command("pause", "NODE keeps accepting connections but answers nothing until `fault resume`.")
_node_command("resume", "Answer again, including the requests held while paused.")


@fault.command()
@click.argument("node")
@click.argument("ms", type=float)
@state_dir_option
@json_option
def slow(node: str, ms: float, state_dir: Path, as_json: bool) -> None:
    """Add MS milliseconds to every request NODE serves (0 = back to normal)."""
    _run(state_dir, {"action": "slow", "node": node, "ms": ms}, as_json)


@fault.command()
@click.argument("side_a")
@click.argument("side_b")
@state_dir_option
@json_option
def partition(side_a: str, side_b: str, state_dir: Path, as_json: bool) -> None:
    """Cut traffic between SIDE_A and SIDE_B: comma-separated region names, node ids or `client`."""
    _run(state_dir, {"action": "partition", "a": _group(side_a), "b": _group(side_b)}, as_json)


@fault.command()
@click.argument("side_a", required=False)
@click.argument("side_b", required=False)
@state_dir_option
@json_option
def heal(side_a: str | None, side_b: str | None, state_dir: Path, as_json: bool) -> None:
    """Undo every fault (restart downed nodes, resume, unslow, reconnect), or only the partition SIDE_A / SIDE_B."""
    body: dict[str, Any] = {"action": "heal"}
    if side_a is not None:
        if side_b is None:
            fail("heal takes no argument (heal everything) or two sides of a partition")
        body.update(a=_group(side_a), b=_group(side_b or ""))
    _run(state_dir, body, as_json)


@fault.command()
@state_dir_option
@json_option
def status(state_dir: Path, as_json: bool) -> None:
    """Show the faults in effect."""
    state = post_fault(control_url(running_state(state_dir)), None)
    if as_json:
        click.echo(json.dumps(state, indent=1))
    else:
        _print_state(state)
