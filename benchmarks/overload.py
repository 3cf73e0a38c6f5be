"""Overload measurement for docs/reliability.md: a node's max goodput, then 2x that offered, bounded and unbounded.

    .venv/bin/python benchmarks/overload.py [OUT_DIR]

Runs `handlesim bench --mode resolver` (every lookup walks root -> secondary -> enterprise through the public
resolver, see overload.toml) at rising rates with the in-flight bound on until the node saturates, takes the highest
goodput (successful answers within 1 s of their intended send, per second) as the node's max, then offers twice that
with the bound (overload.toml) and without it (unbounded.toml).
Writes every run's JSON/Markdown/plots and SUMMARY.md into OUT_DIR. About 2-3 minutes on a 2-core machine.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "results" / "2026-11-22-overload"
FIRST_RATE, STEP, MAX_STEPS = 400, 1.3, 9
COMMON = ["--mode", "resolver", "--duration", "5", "--warmup", "2", "--connections", "128", "--no-baseline"]


def bench(out: Path, config: Path, rate: float, name: str) -> dict[str, Any]:
    command = [sys.executable, "-m", "handlesim.cli", "bench", "--config", str(config), "--rate", f"{rate:g}",
               *COMMON, "--out", str(out), "--name", name]
    print("$", " ".join(["handlesim", *command[3:]]), flush=True)
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
    result: dict[str, Any] = json.loads((out / f"{name}.json").read_text())
    run = result["run"]
    print(f"  offered {rate:g}/s  goodput {run['goodput']:g}/s  served p99 {run['latency_ok_ms'].get('p99_ms')} ms"
          f"  code 3: {run['outcomes'].get('3', 0)}", flush=True)
    return result


def sweep_until_saturated(out: Path, config: Path) -> list[dict[str, Any]]:
    """Raise the offered rate by STEP until the node saturates: goodput below 85% of offered, twice in a row."""
    runs: list[dict[str, Any]] = []
    rate = float(FIRST_RATE)
    saturated = 0
    while len(runs) < MAX_STEPS and saturated < 2:
        runs.append(bench(out, config, round(rate), f"sweep-{round(rate)}"))
        saturated = saturated + 1 if runs[-1]["run"]["goodput"] < 0.85 * rate else 0
        rate *= STEP
    return runs


def row(label: str, result: dict[str, Any], best: float) -> str:
    run = result["run"]
    served = run["latency_ok_ms"]
    rejected = run["outcomes"].get("3", 0)
    return (f"| {label} | {run['offered_rate']:g} | {run['goodput']:g} | {run['goodput'] / best:.2f} | "
            f"{served.get('p50_ms', float('nan')):.1f} | {served.get('p99_ms', float('nan')):.1f} | "
            f"{served.get('max_ms', float('nan')):.1f} | {rejected} ({rejected / max(run['completed'], 1):.0%}) | "
            f"{run['late_sends']} |")


def main() -> int:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUT
    out.mkdir(parents=True, exist_ok=True)
    bounded, unbounded = HERE / "results" / "2026-11-22-overload" / "overload.toml", \
        HERE / "results" / "2026-11-22-overload" / "unbounded.toml"
    sweep = sweep_until_saturated(out, bounded)
    best = max(r["run"]["goodput"] for r in sweep)
    double = 2 * best
    over = bench(out, bounded, double, "bounded-2x")
    none = bench(out, unbounded, double, "unbounded-2x")
    lines = [
        "# Overload: goodput at twice the node's capacity", "",
        "Resolver mode on `overload.toml` (every lookup walks root -> secondary -> enterprise); 5 s measured after "
        "2 s warm-up, 128 connections, open loop; same machine, same session. Goodput = successful answers (code 1) "
        "within 1 s of the intended send, per second (a client waiting longer has given up); latencies of served "
        "requests only, counted from each request's intended send time.", "",
        f"Max goodput (highest of the sweep): **{best:g}/s**; offered at 2x: {double:g}/s.", "",
        "| run | offered/s | goodput/s | of max | served p50 ms | served p99 ms | served max ms | code 3 (503) | "
        "late sends |",
        "|---|---|---|---|---|---|---|---|---|",
        *[row(f"sweep {r['run']['offered_rate']:g}/s, bounded", r, best) for r in sweep],
        row("**2x, bounded (max_in_flight = 64)**", over, best),
        row("2x, unbounded (max_in_flight = 100000)", none, best), "",
        f"Goodput at 2x with the bound: {over['run']['goodput'] / best:.0%} of max "
        f"({'meets' if over['run']['goodput'] >= 0.8 * best else 'misses'} the >= 80% target); without it: "
        f"{none['run']['goodput'] / best:.0%}.", "",
        "Reproduce: `.venv/bin/python benchmarks/overload.py` (2-3 minutes).", "",
    ]
    (out / "SUMMARY.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
