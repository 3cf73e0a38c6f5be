"""Latency recording with HdrHistogram (lossless percentiles, mergeable across generator processes)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

LOWEST_US = 1
HIGHEST_US = 120_000_000  # two minutes
DIGITS = 3
PERCENTILES = (50.0, 90.0, 99.0, 99.9)
GOOD_WITHIN_US = 1_000_000
"""A successful answer counts toward goodput only if it came within this of its intended send (a client waiting
longer has given up)."""


def new_histogram(digits: int = DIGITS) -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, digits)


def merge_encoded(encoded: list[bytes]) -> HdrHistogram:
    merged = new_histogram()
    for blob in encoded:
        merged.decode_and_add(blob)
    return merged


def summarize(hist: HdrHistogram) -> dict[str, float]:
    """Percentiles and max in milliseconds (the histogram records microseconds)."""
    if hist.get_total_count() == 0:
        return {"count": 0}
    out: dict[str, float] = {"count": hist.get_total_count()}
    for p in PERCENTILES:
        out[f"p{p:g}_ms"] = hist.get_value_at_percentile(p) / 1000
    out["max_ms"] = hist.get_max_value() / 1000
    out["mean_ms"] = round(hist.get_mean_value() / 1000, 4)
    return out


def spectrum(hist: HdrHistogram) -> list[tuple[float, float]]:
    """(percentile, latency ms) points for a percentile-spectrum plot, denser toward the tail."""
    points = []
    for p in (0, 10, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 99.95, 99.99, 100):
        points.append((float(p), hist.get_value_at_percentile(p) / 1000))
    return points


@dataclass
class Recorder:
    """What one generator process measured, ready to ship to the orchestrator and merge.

    During the run a request costs two list appends and a counter bump; histograms are built once at the end
    (HdrHistogram's `record_value` is Python and would halve the generator's rate if called per request).
    """

    seconds: list[int] = field(default_factory=list)
    latencies_us: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    """Indexes (into the lists above) of requests that did not succeed."""
    outcomes: Counter[str] = field(default_factory=Counter)
    """By response code ("1", "100", ...) or failure kind ("timeout", "transport")."""
    late: int = 0
    """Requests sent more than a millisecond after their intended time (the generator could not keep up)."""
    hops: int = 0
    lookups: int = 0
    in_window: int = 0
    """Answers that arrived inside the measured window (achieved throughput, backlog excluded)."""

    def record(self, second: int, latency_us: int, outcome: str, ok: bool) -> None:
        if not ok:
            self.failed.append(len(self.latencies_us))
        self.seconds.append(second)
        self.latencies_us.append(latency_us)
        self.outcomes[outcome] += 1

    def completed_and_errors(self) -> tuple[int, int]:
        return len(self.latencies_us), len(self.failed)

    def last_second_p99(self, second: int) -> float | None:
        """p99 (ms) of the requests due in `second` (for the live progress line; a scan of the tail only)."""
        values = []
        for i in range(len(self.seconds) - 1, -1, -1):
            if self.seconds[i] < second:
                break
            if self.seconds[i] == second:
                values.append(self.latencies_us[i])
        if not values:
            return None
        values.sort()
        return values[min(len(values) - 1, int(len(values) * 0.99))] / 1000

    def export(self) -> dict[str, Any]:
        total = new_histogram()
        served = new_histogram()
        good = 0
        per_second: dict[int, list[Any]] = {}
        failed = set(self.failed)
        for i, (second, latency) in enumerate(zip(self.seconds, self.latencies_us, strict=True)):
            value = max(LOWEST_US, min(latency, HIGHEST_US))
            total.record_value(value)
            if i not in failed:
                served.record_value(value)
                good += latency <= GOOD_WITHIN_US
            bucket = per_second.get(second)
            if bucket is None:
                bucket = per_second[second] = [0, 0, new_histogram(2)]
            bucket[0] += 1
            bucket[1] += i in failed
            bucket[2].record_value(value)
        return {
            "latency": total.encode(),
            "latency_ok": served.encode(),
            "good": good,
            "outcomes": dict(self.outcomes),
            "per_second": {s: (b[0], b[1], b[2].encode()) for s, b in per_second.items()},
            "late": self.late,
            "hops": self.hops,
            "lookups": self.lookups,
            "in_window": self.in_window,
        }
