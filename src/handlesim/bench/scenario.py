"""Scheduled fault scenarios: a TOML file of timed events that `handlesim bench --scenario FILE` fires while it
measures (against a topology running with fault injection on).

```toml
name = "root failure"
[[events]]
at = 5.0                 # seconds after the measured window starts
action = "kill"          # kill | stop | start | pause | resume | slow | partition | heal
node = "root-qingdao"
[[events]]
at = 15.0
action = "start"
node = "root-qingdao"
```

`slow` takes `ms`; `partition` takes `a` and `b` (a name or a list of region names, node ids or "client"); `heal`
takes nothing (undo everything) or `a` and `b`. The first generator process fires the events at their time and
records when each took effect; the result's timeline carries them and the timeline plot marks them.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..net.faults import request_fault
from ..topology.config import read_toml

ACTIONS = ("kill", "stop", "start", "pause", "resume", "slow", "partition", "heal")
NODE_ACTIONS = ("kill", "stop", "start", "pause", "resume", "slow")


class ScenarioError(ValueError):
    """A scenario file is wrong: the message names the file, the event and what was expected."""


@dataclass(frozen=True)
class ScenarioEvent:
    """One timed action."""

    at: float
    """Seconds after the start of the measured window."""
    action: str
    """kill, stop, start, pause, resume, slow, partition or heal."""
    body: dict[str, Any] = field(default_factory=dict)
    """The `/_sim/fault` request body (action, node, ms, a, b)."""
    label: str = ""
    """Text on the plot (default: action and target)."""


@dataclass(frozen=True)
class Scenario:
    name: str
    events: tuple[ScenarioEvent, ...]
    heal_at_end: bool = True
    """Undo every fault when the measured run ends (so the baseline and later runs see a healthy topology)."""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "heal_at_end": self.heal_at_end,
                "events": [{"at": e.at, "label": e.label, **e.body} for e in self.events]}


def load_scenario(path: str | Path) -> Scenario:
    return parse_scenario(read_toml(path, ScenarioError), str(path))


def parse_scenario(data: dict[str, Any], source: str) -> Scenario:
    unknown = sorted(set(data) - {"name", "description", "heal_at_end", "events"})
    if unknown:
        raise ScenarioError(f"{source}: {', '.join(unknown)}: unknown key (expected name, description, heal_at_end, "
                            "[[events]])")
    raw = data.get("events", [])
    if not isinstance(raw, list) or not raw:
        raise ScenarioError(f"{source}: events: at least one [[events]] entry is needed")
    events = tuple(sorted((_event(item, f"{source}: events[{i}]") for i, item in enumerate(raw)),
                          key=lambda e: e.at))
    heal = data.get("heal_at_end", True)
    if not isinstance(heal, bool):
        raise ScenarioError(f"{source}: heal_at_end: must be true or false")
    return Scenario(str(data.get("name", Path(source).stem)), events, heal)


def _event(item: Any, where: str) -> ScenarioEvent:
    if not isinstance(item, dict):
        raise ScenarioError(f"{where}: must be a table")
    unknown = sorted(set(item) - {"at", "action", "node", "ms", "a", "b", "label"})
    if unknown:
        raise ScenarioError(f"{where}: {', '.join(unknown)}: unknown key (expected at, action, node, ms, a, b, label)")
    at = item.get("at")
    if not isinstance(at, (int, float)) or isinstance(at, bool) or at < 0:
        raise ScenarioError(f"{where}.at: seconds after the measured window starts (a number >= 0), not {at!r}")
    action = item.get("action")
    if action not in ACTIONS:
        raise ScenarioError(f"{where}.action: {action!r} is not one of {', '.join(ACTIONS)}")
    body: dict[str, Any] = {"action": action}
    if action in NODE_ACTIONS:
        if not isinstance(item.get("node"), str):
            raise ScenarioError(f"{where}.node: {action} needs the id of a node")
        body["node"] = item["node"]
    if action == "slow":
        if not isinstance(item.get("ms"), (int, float)) or isinstance(item.get("ms"), bool):
            raise ScenarioError(f"{where}.ms: slow needs milliseconds to add per request")
        body["ms"] = item["ms"]
    if action == "partition" or (action == "heal" and ("a" in item or "b" in item)):
        for side in ("a", "b"):
            value = item.get(side)
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
                raise ScenarioError(f"{where}.{side}: {action} needs `a` and `b`: region names, node ids or 'client'")
            body[side] = value
    label = item.get("label")
    if label is None:
        target = body.get("node") or " / ".join(",".join(body[s]) for s in ("a", "b") if s in body)
        label = f"{action} {target}".strip()
    return ScenarioEvent(float(at), str(action), body, str(label))


def post_fault(control_url: str, body: dict[str, Any], timeout: float = 10.0) -> tuple[bool, str]:
    """POST one action to the control port; (accepted, message)."""
    try:
        status, answer = request_fault(control_url, body, timeout)
    except OSError as exc:
        return False, f"cannot reach {control_url}: {exc}"
    return status == 200, str(answer.get("message", ""))


async def fire_events(events: list[dict[str, Any]], control_url: str, measure_from: float) -> list[dict[str, Any]]:
    """Fire each event (`{"at", "label", "body"}`) at `measure_from + at` (perf_counter time); return when each took
    effect, in seconds from `measure_from`, with whether the topology accepted it."""
    fired = []
    for event in events:
        wait = measure_from + float(event["at"]) - time.perf_counter()
        if wait > 0:
            await asyncio.sleep(wait)
        ok, message = await asyncio.to_thread(post_fault, control_url, event["body"])
        fired.append({"second": round(time.perf_counter() - measure_from, 3), "at": event["at"],
                      "label": event["label"], "ok": ok, "message": message, **event["body"]})
    return fired
