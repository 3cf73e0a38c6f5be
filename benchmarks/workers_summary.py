"""Tabulate a `benchmarks/workers.sh` output directory: boot figures and every bench run, side by side.

    python benchmarks/workers_summary.py benchmarks/results/2026-11-22-workers [more dirs...]

Prints Markdown (bench runs by name, 1 vs N workers in adjacent rows, with the bare route of the same run).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def bench_rows(directory: Path) -> list[str]:
    rows = []
    for path in sorted(directory.glob("*-w*.json"), key=lambda p: (p.stem.rsplit("-w", 1)[0], p.stem)):
        if path.name.startswith("boot-"):
            continue
        data = json.loads(path.read_text())
        run, bare = data["run"], data.get("baseline") or {}
        latency = run["latency_ms"]
        bare_latency = bare.get("latency_ms", {})
        rows.append(f"| {directory.name} | {path.stem} | {run['offered_rate']:g} | {run['achieved_rate']:g} | "
                    f"{latency['p50_ms']} | {latency['p99_ms']} | {bare.get('achieved_rate', '')} | "
                    f"{bare_latency.get('p50_ms', '')} | {bare_latency.get('p99_ms', '')} |")
    return rows


def boot_rows(directory: Path) -> list[str]:
    rows = []
    lines = [json.loads(p.read_text()) for p in sorted(directory.glob("boot-*.json"))]
    for sweep in sorted(directory.glob("sweep*.jsonl")):
        lines += [json.loads(line) for line in sweep.read_text().splitlines() if line.strip()]
    for b in lines:
        rows.append(f"| {directory.name} | {b.get('enterprises') or 1000} | {b.get('identifiers') or 'config'} | "
                    f"{b['workers']} | {b['seconds_to_ready']} | {b['peak_rss_mb']} | {b['ready_line'][:60]} |")
    return rows


def main() -> None:
    print("| dir | enterprises | ids each | workers | s to ready | peak RSS MB (all processes) | ready line |")
    print("|---|---|---|---|---|---|---|")
    for arg in sys.argv[1:]:
        print("\n".join(boot_rows(Path(arg))))
    print()
    print("| dir | run | offered/s | achieved/s | p50 ms | p99 ms | bare achieved/s | bare p50 ms | bare p99 ms |")
    print("|---|---|---|---|---|---|---|---|---|")
    for arg in sys.argv[1:]:
        print("\n".join(bench_rows(Path(arg))))


if __name__ == "__main__":
    main()
