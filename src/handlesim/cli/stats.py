"""`handlesim stats`: the national picture the root operator sees, from the roots' collected reports."""

from __future__ import annotations

import contextlib
import json
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from ..core.wording import counted
from ..topology.monitoring import REPORTING_ROLES
from ..topology.plan import Role
from ..topology.state import TopologyState
from .app import fail, json_option, main, running_state, state_dir_option

WIDE = 150


@main.command()
@state_dir_option
@click.option("--root", "root_id", default=None, help="Ask this root (default: the first that answers).")
@click.option("--top", type=click.IntRange(0), default=10, show_default=True, help="Enterprises to list, busiest "
              "first.")
@click.option("--watch", is_flag=True, help="Refresh a live table until Ctrl-C (with --json: one JSON line per "
              "refresh).")
@click.option("--interval", type=click.FloatRange(0.2), default=2.0, show_default=True,
              help="--watch: seconds between refreshes.")
@click.option("--rounds", type=click.IntRange(0), default=0, help="--watch: stop after this many refreshes "
              "(0: until Ctrl-C).")
@json_option
def stats(state_dir: Path, root_id: str | None, top: int, watch: bool, interval: float, rounds: int,
          as_json: bool) -> None:
    """Registrations, resolutions, errors and rates by tier, industry and enterprise, as the roots see them."""
    state = running_state(state_dir)
    if as_json:  # one JSON document; with --watch one per refresh (JSON Lines)
        for view in _views(state, root_id, top, interval, (rounds + 1 if rounds else 0) if watch else 1):
            click.echo(json.dumps(view, ensure_ascii=False, indent=None if watch else 1))
        return
    from rich.console import Console

    console = Console() if sys.stdout.isatty() else Console(width=WIDE)  # pipes and files get every column
    if not watch:
        console.print(render(national_view(state, root_id, top)))
        return
    from rich.live import Live

    with contextlib.suppress(KeyboardInterrupt), Live(console=console, refresh_per_second=4) as live:
        for view in _views(state, root_id, top, interval, rounds + 1 if rounds else 0):
            live.update(render(view))


def _views(topology: TopologyState, root_id: str | None, top: int, interval: float,
           count: int) -> Iterator[dict[str, Any]]:
    """The picture now, then every `interval` seconds; `count` pictures in all (0: until Ctrl-C)."""
    produced = 0
    try:
        while True:
            yield national_view(topology, root_id, top)
            produced += 1
            if count and produced >= count:
                return
            time.sleep(interval)
    except KeyboardInterrupt:
        return


def _get_json(topology: TopologyState, url: str, timeout: float = 5.0) -> Any:
    """GET a node's JSON; over HTTPS pinning the topology's CA when it serves TLS (`up --tls`)."""
    context = topology.ssl_context() if url.startswith("https:") else None
    with urllib.request.urlopen(url, timeout=timeout, context=context) as reply:  # noqa: S310 - loopback URLs
        return json.loads(reply.read())


def national_view(topology: TopologyState, root_id: str | None = None, top: int = 10) -> dict[str, Any]:
    """The picture of one root (`GET /api/reports`), plus the nodes that never reported and every root's own
    replication lag."""
    roots = [r for r in topology.roots if root_id is None or r.id == root_id]
    if not roots:
        fail(f"no root {root_id!r} in the running topology")
    picture: dict[str, Any] | None = None
    errors = []
    for root in roots:
        try:
            picture = _get_json(topology, root.url + "/api/reports")
            break
        except (OSError, ValueError) as exc:
            errors.append(f"{root.id}: {exc}")
    if picture is None:
        fail("no root answered: " + "; ".join(errors))
    reported = {row["node"] for row in picture["nodes"]}
    expected = [n for n in topology.nodes if n.role in REPORTING_ROLES]
    picture["never_reported"] = sorted(n.id for n in expected if n.id not in reported)
    # the other roots' replication as they answer now (their reports may be an interval old, or missing)
    asked_now = {root.id for root in topology.roots if root.id != picture["receiver"]}
    from_reports = [lag for lag in picture.get("lagging", []) if lag["node"] not in asked_now]
    picture["lagging"] = from_reports + _root_lag(topology, picture["receiver"])
    enterprises = [row for row in picture["nodes"] if row["role"] == Role.ENTERPRISE]
    picture["top_enterprises"] = enterprises[:top]
    return picture


def _root_lag(topology: TopologyState, asked: str) -> list[dict[str, Any]]:
    """Replication state of the roots other than the one asked (its own is in its picture)."""
    lagging = []
    for root in topology.roots:
        if root.id == asked:
            continue
        try:
            replication = _get_json(topology, root.url + "/_sim/stats").get("replication", {})
        except (OSError, ValueError):
            lagging.append({"node": root.id, "peer": "-", "pending": 0, "lag_s": 0.0, "failures": 0,
                            "unreachable": True})
            continue
        for peer, state in replication.items():
            if state.get("lag_s", 0.0) > 1.0 or (state.get("pending") and state.get("failures")):
                lagging.append({"node": root.id, "peer": peer, "pending": state["pending"],
                                "lag_s": state["lag_s"], "failures": state["failures"]})
    return lagging


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _group_table(title: str, groups: dict[str, dict[str, Any]]) -> Any:
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for column in ("", "nodes", "resolutions", "res/s", "registrations", "reg/s", "errors", "error rate",
                   "server p50 ms", "p99 ms", "stale"):
        table.add_column(column, justify="left" if not column else "right")
    for name, row in groups.items():
        table.add_row(name or "-", str(row["nodes"]), f"{row['resolutions']:,}", f"{row['resolutions_per_s']:.1f}",
                      f"{row['registrations']:,}", f"{row['registrations_per_s']:.1f}", f"{row['errors']:,}",
                      f"{row['error_rate']:.2%}", _ms(row["server_p50_ms"]), _ms(row["server_p99_ms"]),
                      str(row["stale"]))
    return table


def render(view: dict[str, Any]) -> Any:
    """The picture as rich tables: totals, by tier, by industry, top enterprises, problems."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    totals = view["totals"]
    header = Text(
        f"national picture at {view['receiver']} ({time.strftime('%H:%M:%S', time.localtime(view['at']))}): "
        f"{counted(view['nodes_reporting'], 'node')} reporting, {counted(totals['resolutions'], 'resolution')} "
        f"({totals['resolutions_per_s']:.1f}/s), {counted(totals['registrations'], 'registration')} "
        f"({totals['registrations_per_s']:.1f}/s), {counted(totals['errors'], 'error')} ({totals['error_rate']:.2%}), "
        f"server p50/p99 {_ms(totals['server_p50_ms'])}/{_ms(totals['server_p99_ms'])} ms", style="bold")
    parts: list[Any] = [header, _group_table("by tier", view["by_tier"]),
                        _group_table("by industry", view["by_industry"])]
    enterprises = Table(title="busiest enterprises", title_justify="left")
    for column in ("node", "industry", "resolutions", "res/s", "registrations", "errors", "error rate",
                   "server p99 ms", "last report s ago"):
        enterprises.add_column(column, justify="left" if column in ("node", "industry") else "right")
    for row in view["top_enterprises"]:
        enterprises.add_row(row["node"], row["industry"] or "-", f"{row['resolutions']:,}",
                            f"{row.get('resolutions_per_s', 0.0):.1f}", f"{row['registrations']:,}",
                            f"{row['errors']:,}", f"{row['error_rate']:.2%}", _ms(row["server_p99_ms"]),
                            f"{row['age_s']:.1f}" + (" (stale)" if row["stale"] else ""))
    parts.append(enterprises)
    problems = []
    if view["stale"]:
        problems.append(f"stopped reporting: {', '.join(view['stale'])}")
    if view["never_reported"]:
        shown = view["never_reported"][:20]
        more = len(view["never_reported"]) - len(shown)
        problems.append(f"never reported: {', '.join(shown)}" + (f" (+{more} more)" if more else ""))
    for lag in view["lagging"]:
        problems.append(f"lagging replica: {lag['node']} -> {lag['peer']}: {lag['pending']} pending, "
                        f"{lag['lag_s']:.1f} s behind, {lag['failures']} failed pushes")
    parts.append(Text("\n".join(problems) if problems else "no stale nodes, no lagging replicas",
                      style="yellow" if problems else "green"))
    return Group(*parts)
