"""A latency histogram cheap enough to update on every request: fixed log-spaced buckets in a plain list.

Recording is one `bisect_right` over a tuple of floats (C code) and one list increment, so a node can time every
request it serves; HdrHistogram objects cost several microseconds per record in Python. Bucket bounds follow the R10
preferred-number series (1, 1.25, 1.6, 2, 2.5, 3.15, 4, 5, 6.3, 8 per decade), which contains the 1-2-5 series
Prometheus dashboards expect, so exposition can merge buckets without losing exactness. Percentiles are estimated
within a bucket (at most 26 % wide) by linear interpolation.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

_R10 = (1.0, 1.25, 1.6, 2.0, 2.5, 3.15, 4.0, 5.0, 6.3, 8.0)
BOUNDS: tuple[float, ...] = tuple(round(m * 10.0 ** exp, 9) for exp in range(-6, 1) for m in _R10) + (10.0,)
"""Upper bounds in seconds, from 1 us to 10 s: bucket i holds (BOUNDS[i-1], BOUNDS[i]]; one overflow bucket follows."""
COARSE_BOUNDS: tuple[float, ...] = tuple(round(m * 10.0 ** exp, 9)
                                         for exp in range(-5, 1) for m in (1.0, 2.5, 5.0))[1:-1]
"""The subset of BOUNDS used for Prometheus exposition (25 us .. 2.5 s, 1-2.5-5 per decade): a scrape of a
thousand nodes pays for every bucket, so only the ones dashboards need."""


class LatencyHistogram:
    """Counts of durations (seconds) per bucket of BOUNDS, plus their sum. Not thread-safe (one event loop)."""

    __slots__ = ("counts", "total_seconds")

    def __init__(self) -> None:
        self.counts = [0] * (len(BOUNDS) + 1)
        self.total_seconds = 0.0

    def record(self, seconds: float) -> None:
        self.counts[bisect_left(BOUNDS, seconds)] += 1
        self.total_seconds += seconds

    @property
    def count(self) -> int:
        return sum(self.counts)

    def reset(self) -> None:
        """Start over (in place: the server's routes hold this object)."""
        self.counts[:] = [0] * len(self.counts)
        self.total_seconds = 0.0

    def snapshot(self) -> dict[str, Any]:
        """Plain data for `/_sim/stats`: non-empty buckets only, keyed by bucket index."""
        return snapshot_of(self.counts, self.total_seconds)


def snapshot_of(counts: Sequence[int], total_seconds: float) -> dict[str, Any]:
    """The plain-data form of a histogram's bucket counts and sum (see `LatencyHistogram.snapshot`)."""
    return {"count": sum(counts), "sum_s": round(total_seconds, 6),
            "buckets": {str(i): n for i, n in enumerate(counts) if n}}


def counts_from_snapshot(snapshot: Mapping[str, Any]) -> list[int]:
    """The full bucket list of a `snapshot()` (possibly from another process)."""
    counts = [0] * (len(BOUNDS) + 1)
    for index, n in snapshot.get("buckets", {}).items():
        counts[int(index)] += int(n)
    return counts


def subtract(after: Sequence[int], before: Sequence[int]) -> list[int]:
    """Counts recorded between two snapshots of the same histogram (a restart in between gives `after` itself)."""
    if any(a < b for a, b in zip(after, before, strict=True)):
        return list(after)
    return [a - b for a, b in zip(after, before, strict=True)]


def merge(histograms: Iterable[Sequence[int]]) -> list[int]:
    total = [0] * (len(BOUNDS) + 1)
    for counts in histograms:
        for i, n in enumerate(counts):
            total[i] += n
    return total


def percentile(counts: Sequence[int], pct: float) -> float | None:
    """Estimated duration (seconds) at percentile `pct` (0-100); None when nothing was recorded."""
    total = sum(counts)
    if total == 0:
        return None
    rank = pct / 100.0 * total
    seen = 0
    for index, n in enumerate(counts):
        if n and seen + n >= rank:
            low = BOUNDS[index - 1] if index > 0 else 0.0
            high = BOUNDS[index] if index < len(BOUNDS) else BOUNDS[-1]
            return low + (high - low) * max(rank - seen, 0.0) / n
        seen += n
    return BOUNDS[-1]


def cumulative(counts: Sequence[int], bounds: Sequence[float] = COARSE_BOUNDS) -> list[tuple[float, int]]:
    """(upper bound, observations <= bound) for `bounds` (each must be one of BOUNDS), then (+inf, total)."""
    out = []
    running = 0
    index = 0
    for bound in bounds:
        while index < len(BOUNDS) and BOUNDS[index] <= bound:
            running += counts[index]
            index += 1
        out.append((bound, running))
    out.append((float("inf"), sum(counts)))
    return out
