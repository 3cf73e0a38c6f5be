"""`bench --fail-on`: pass/fail thresholds on a benchmark's result, as k6's thresholds or a CI latency budget.

An expression is a comma-separated list of conditions, each `METRIC OP NUMBER[UNIT]`; the run fails when any
condition holds for the measured result (not the bare-route baseline):

    errors>0.001          share of requests that were not a success (0.001 = 0.1%; `errors>0.1%` says the same)
    p99>10ms              the 99th percentile latency above 10 ms (also p50, p90, p99.9, max, mean; us, ms or s)
    rate<1900             achieved requests per second below 1900 (goodput: successful ones only)
    timeouts>0            any request timed out (a count; so is `late`, sends that left late)

Evaluation is pure: the thresholds read the result document `run_bench` returns.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">=": lambda value, limit: value >= limit,
    "<=": lambda value, limit: value <= limit,
    ">": lambda value, limit: value > limit,
    "<": lambda value, limit: value < limit,
}
LATENCIES = {"p50": "p50_ms", "p90": "p90_ms", "p99": "p99_ms", "p99.9": "p99.9_ms", "max": "max_ms",
             "mean": "mean_ms"}
"""Latency metrics and their key in the result's `latency_ms` (milliseconds)."""
TIME_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}
"""Factors to milliseconds."""
RUN_KEYS = {"errors": "error_rate", "rate": "achieved_rate", "goodput": "goodput", "timeouts": "timeouts",
            "late": "late_sends"}
"""The other metrics and their key in the result's `run`."""
METRICS = (*LATENCIES, *RUN_KEYS)
_CONDITION = re.compile(r"^\s*(?P<metric>[a-z][a-z0-9.]*)\s*(?P<op>>=|<=|>|<)\s*"
                        r"(?P<number>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*(?P<unit>[a-z%]*)\s*$")


class ThresholdError(ValueError):
    """A `--fail-on` expression that cannot be read: the message says which part and why."""


@dataclass(frozen=True)
class Threshold:
    """One condition that fails the run when it holds."""

    metric: str
    """One of METRICS."""
    op: str
    """One of OPERATORS."""
    limit: float
    """In the metric's own unit: milliseconds for latencies, a ratio for errors, per second for rates."""
    text: str
    """The condition as written."""

    def value(self, result: Mapping[str, Any]) -> float | None:
        """The metric in `result` (a `run_bench` document); None when the run measured nothing to compare."""
        run = result["run"]
        if self.metric in LATENCIES:
            measured = run["latency_ms"].get(LATENCIES[self.metric])
        else:
            measured = run.get(RUN_KEYS[self.metric])
        return None if measured is None else float(measured)

    def holds(self, result: Mapping[str, Any]) -> bool:
        """Does the failing condition hold? A latency of a run that completed nothing counts as failing."""
        measured = self.value(result)
        return True if measured is None else OPERATORS[self.op](measured, self.limit)


@dataclass(frozen=True)
class Verdict:
    """Every threshold with its measured value, and which failed."""

    checked: tuple[tuple[Threshold, float | None, bool], ...]
    """(threshold, measured value, failed)."""

    @property
    def failed(self) -> tuple[Threshold, ...]:
        return tuple(threshold for threshold, _, failed in self.checked if failed)

    @property
    def ok(self) -> bool:
        return not self.failed

    def lines(self) -> list[str]:
        """One line per threshold: FAILED or ok, the condition, the measured value."""
        out = []
        for threshold, measured, failed in self.checked:
            shown = "nothing measured" if measured is None else f"measured {measured:g}{_unit(threshold.metric)}"
            out.append(f"  {'FAILED' if failed else 'ok    '}  {threshold.text:<20} {shown}")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "thresholds": [{"condition": t.text, "metric": t.metric, "op": t.op,
                                               "limit": t.limit, "measured": measured, "failed": failed}
                                              for t, measured, failed in self.checked]}


def parse_thresholds(text: str) -> tuple[Threshold, ...]:
    """`errors>0.001,p99>10ms` -> Thresholds; ThresholdError names the part that cannot be read."""
    parts = [part.strip() for part in text.split(",")]
    if not any(parts):
        raise ThresholdError("an empty --fail-on; give conditions such as 'errors>0.001,p99>10ms'")
    return tuple(_parse_one(part) for part in parts if part)


def evaluate(thresholds: tuple[Threshold, ...], result: Mapping[str, Any]) -> Verdict:
    return Verdict(tuple((t, t.value(result), t.holds(result)) for t in thresholds))


def _parse_one(text: str) -> Threshold:
    match = _CONDITION.match(text)
    if match is None:
        raise ThresholdError(f"cannot read {text!r}: write METRIC OP NUMBER[UNIT], e.g. p99>10ms or errors>0.001")
    metric, op, unit = match["metric"], match["op"], match["unit"]
    if metric not in METRICS:
        raise ThresholdError(f"{text!r}: unknown metric {metric!r}; one of {', '.join(METRICS)}")
    number = float(match["number"])
    if metric in LATENCIES:
        if unit not in TIME_UNITS:
            raise ThresholdError(f"{text!r}: a latency needs a unit: us, ms or s (e.g. {metric}>10ms)")
        return Threshold(metric, op, number * TIME_UNITS[unit], text)
    if metric == "errors" and unit == "%":
        number /= 100
    elif unit:
        raise ThresholdError(f"{text!r}: {metric} takes no unit{' (or %)' if metric == 'errors' else ''}")
    if metric == "errors" and number > 1:
        raise ThresholdError(f"{text!r}: errors is a share between 0 and 1 (or a percentage such as 0.1%)")
    return Threshold(metric, op, number, text)


def _unit(metric: str) -> str:
    if metric in LATENCIES:
        return " ms"
    return "/s" if metric in ("rate", "goodput") else ""
