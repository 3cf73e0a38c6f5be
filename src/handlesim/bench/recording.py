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
    """What one generator process measured, ready to ship to the orchestrator and merge."""

    latency: HdrHistogram = field(default_factory=new_histogram)
    outcomes: Counter[str] = field(default_factory=Counter)
    """By response code ("1", "100", ...) or failure kind ("timeout", "transport")."""
    per_second: dict[int, list[Any]] = field(default_factory=dict)
    """Second since the measured start -> [completed, errors, histogram]."""
    late: int = 0
    """Requests sent more than a millisecond after their intended time (the generator could not keep up)."""
    hops: int = 0
    lookups: int = 0

    def record(self, second: int, latency_us: int, outcome: str, ok: bool) -> None:
        value = max(LOWEST_US, min(latency_us, HIGHEST_US))
        self.latency.record_value(value)
        self.outcomes[outcome] += 1
        bucket = self.per_second.get(second)
        if bucket is None:
            bucket = self.per_second[second] = [0, 0, new_histogram(2)]
        bucket[0] += 1
        if not ok:
            bucket[1] += 1
        bucket[2].record_value(value)

    def export(self) -> dict[str, Any]:
        return {
            "latency": self.latency.encode(),
            "outcomes": dict(self.outcomes),
            "per_second": {s: (b[0], b[1], b[2].encode()) for s, b in self.per_second.items()},
            "late": self.late,
            "hops": self.hops,
            "lookups": self.lookups,
        }
