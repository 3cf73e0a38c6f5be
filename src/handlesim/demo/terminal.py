"""The demo in a terminal, drawn with rich: a rule per step, one sentence, each hop as an arrow to the node asked and
an arrow back with its answer and time. Fits 80 columns; plain text (no ANSI codes) when the output is not a tty.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..topology.plan import Role
from ..topology.state import NodeEntry
from .lookup import HopView, LookupView
from .narration import outcome_words, say

ROLE_STYLE = {"root": "bold magenta", "secondary": "bold blue", "enterprise": "bold green", "resolver": "bold cyan",
              "cache": "bold yellow", "unknown": "bold"}
BAR_CELLS = 12
"""Width of the longest hop's timing bar."""


class TerminalScreen:
    """Shows a DemoRun on a rich Console; with `pace`, waits for Enter before every step but the first."""

    def __init__(self, console: Console, lang: str, *, pace: bool = False) -> None:
        self.console = console
        self.lang = lang
        self.pace = pace
        self._steps = 0

    def text(self, key: str, **facts: object) -> str:
        return say(self.lang, key, **facts)

    async def step(self, title_key: str) -> None:
        if self.pace and self._steps:
            await self._enter_pressed()
        self._steps += 1
        self.console.print()
        self.console.rule(Text(self.text(title_key), style="bold"), align="left")

    def say(self, key: str, **facts: object) -> None:
        self.console.print(self.text(key, **facts))

    async def _enter_pressed(self) -> None:
        """Wait for Enter without blocking the nodes (they run on this event loop). The reader is a daemon thread so
        Ctrl-C at the prompt ends the demo at once; at end of input the rest runs unpaced."""
        loop = asyncio.get_running_loop()
        pressed: asyncio.Future[bool] = loop.create_future()

        def read() -> None:
            try:
                self.console.input(self.text("press_enter"))
                more = True
            except EOFError:
                more = False
            loop.call_soon_threadsafe(_settle, pressed, more)

        threading.Thread(target=read, name="handlesim-demo-pace", daemon=True).start()
        self.pace = await pressed

    def title(self) -> None:
        self.console.rule(Text(self.text("title"), style="bold reverse"))

    def tiers(self, nodes: Sequence[NodeEntry]) -> None:
        counts = {role: [n for n in nodes if n.role == role and n.mirror_of is None] for role in Role}
        mirrors = sum(1 for n in nodes if n.mirror_of)
        extra = self.text("tiers_mirrors", count=mirrors) if mirrors else ""
        self.say("tiers", roots=len(counts[Role.ROOT]), secondaries=len(counts[Role.SECONDARY]),
                 enterprises=len(counts[Role.ENTERPRISE]), resolvers=len(counts[Role.RESOLVER]), mirrors=extra)
        table = Table(box=None, padding=(0, 2), show_edge=False)
        table.add_column(self.text("col_tier"))
        table.add_column(self.text("col_nodes"), justify="right")
        table.add_column(self.text("col_prefixes"), overflow="ellipsis", no_wrap=True, max_width=50)
        for role, members in counts.items():
            if members:
                names = ", ".join(n.id if role in (Role.ROOT, Role.RESOLVER) else n.prefix
                                  for n in members[:6]) + (", ..." if len(members) > 6 else "")
                table.add_row(Text(self.text(f"tier_{role}"), style=ROLE_STYLE[role]), str(len(members)), names)
        self.console.print(table)

    def lookup(self, view: LookupView) -> None:
        slowest = max((h.duration_ms for h in view.hops), default=0.0) or 1.0
        asker = self.text("client")
        indent = "  "
        if view.mode == "resolver":
            head = Text(f"  {asker} ──▶ ")
            head.append(view.asked, style=ROLE_STYLE["resolver"])
            head.append(f"  ({view.elapsed_ms:.2f} ms)")
            self.console.print(head)
            asker, indent = view.asked, "    "
        for hop in view.hops:
            self._hop(hop, asker, indent, slowest)

    def _hop(self, hop: HopView, asker: str, indent: str, slowest: float) -> None:
        line = Text(f"{indent}{hop.number:>2}  {asker} ──▶ ")
        if hop.cache_hit:
            line.append(self.text("tier_cache"), style=ROLE_STYLE["cache"])
        else:
            line.append(hop.node, style=ROLE_STYLE.get(hop.role, "bold"))
            line.append(f" [{self._role_name(hop)}]", style="dim")
        line.append(f"  {hop.duration_ms:.2f} ms ")
        line.append("▇" * max(1, round(BAR_CELLS * hop.duration_ms / slowest)) if hop.duration_ms else "",
                    style="yellow")
        self.console.print(line)
        pad = indent + "      "
        self.console.print(Text(f"{pad}{self.text('hop_asked')} {hop.asked}", style="dim"))
        back = Text(f"{pad}◀── ")
        if hop.failed:
            back.append(f"{self.text('hop_no_answer')}: {short_failure(hop.outcome)}", style="bold red")
        else:
            back.append(self._answer(hop), style="yellow" if hop.cache_hit else "green" if hop.code == 1 else "")
            if hop.cache_hit:
                back.append(f"  ({self.text('hop_from_cache')})", style="yellow")
        self.console.print(back)

    def _answer(self, hop: HopView) -> str:
        words = outcome_words(self.lang, hop.outcome)
        if hop.code == 1 and hop.referral_to:  # a prefix handle's HS_SITE: where the identifiers are served
            return f"1 {self.text('hop_site', values=words, node=', '.join(hop.referral_to))}"
        if hop.code == 1:
            return f"1 {self.text('hop_values', values=words)}"
        return f"{hop.code} {words}"

    def _role_name(self, hop: HopView) -> str:
        name = self.text(f"tier_{hop.role}") if f"tier_{hop.role}" in _KNOWN_TIERS else hop.role
        return f"{name}, {self.text('tier_mirror')}" if "-mirror" in hop.node else name

    def values(self, view: LookupView) -> None:
        table = Table(title=self.text("values_of", handle=view.handle), title_justify="left", box=None,
                      padding=(0, 2), show_header=False)
        table.add_column(justify="right")
        table.add_column()
        table.add_column(overflow="fold", max_width=52)
        for value in view.values:
            table.add_row(str(value.index), value.type, value.text)
        self.console.print(table)

    def summary(self, rows: list[tuple[str, LookupView]]) -> None:
        table = Table(box=None, padding=(0, 2))
        table.add_column(self.text("col_lookup"))
        table.add_column(self.text("col_requests"), justify="right")
        table.add_column(self.text("col_ms"), justify="right")
        for label_key, view in rows:
            table.add_row(self.text(label_key), str(view.upstream_hops), f"{view.elapsed_ms:.2f}")
        self.console.print(table)


def _settle(future: asyncio.Future[bool], value: bool) -> None:
    if not future.done():
        future.set_result(value)


def short_failure(outcome: str) -> str:
    """`no answer: http://127.0.0.1:4301: connection refused (Connect call failed ...)` -> `connection refused`."""
    reason = outcome.removeprefix("no answer: ")
    if reason.startswith("http://"):
        reason = reason.split(": ", 1)[-1]
    return reason.split(" (", 1)[0]


_KNOWN_TIERS = {f"tier_{role}" for role in ("root", "secondary", "enterprise", "resolver", "cache", "unknown")}
