"""Collector passes in a plan topology process while `handlesim bench` loads it, at the serving thresholds or others.

    .venv/bin/python benchmarks/gc_under_load.py [--thresholds 700,10,10] [--rate 2000] [--mode direct]

Boots configs/plan.toml in this process (memory stores, ephemeral ports; `launch` settles the collector as `up`
does), optionally sets other thresholds, then runs `handlesim bench --no-baseline` against it in another process
(8 s measured after 2 s of warm-up) and records every collection's duration by generation with `gc.callbacks`.
Prints the bench's line and, per generation, the passes, their total and the longest.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import subprocess
import sys
import tempfile
from pathlib import Path

from handlesim.topology.config import load_config
from handlesim.topology.plan import build_plan
from handlesim.topology.runner import launch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gc_pauses import PLAN, on_gc, pauses  # noqa: E402 - the same pause recorder as the idle measurement


async def main(args: argparse.Namespace) -> None:
    plan = build_plan(load_config(PLAN).with_overrides(base_port=0))
    with tempfile.TemporaryDirectory() as work:
        state = Path(work) / "state"
        topology = await launch(plan, state, store_kind="memory", metrics_port=0)
        if args.thresholds:
            gc.set_threshold(*(int(n) for n in args.thresholds.split(",")))
        print(f"thresholds {gc.get_threshold()}")
        gc.callbacks.append(on_gc)
        try:
            bench = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "handlesim.cli", "bench", "--state-dir", str(state), "--mode", args.mode,
                "--rate", str(args.rate), "--duration", "8", "--warmup", "2", "--no-baseline",
                "--out", str(Path(work) / "out"), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            out, _ = await bench.communicate()
        finally:
            gc.callbacks.remove(on_gc)
            await topology.stop()
    print("\n".join(line for line in out.decode().splitlines() if line.startswith(f"| {args.mode}")))
    for generation, durations in pauses.items():
        print(f"gen{generation}: {len(durations)} passes, {sum(durations) * 1000:.0f} ms in all, longest "
              f"{max(durations, default=0) * 1000:.1f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--thresholds", default="", help="e.g. 700,10,10 (Python's defaults); default: as `up`")
    parser.add_argument("--rate", type=int, default=2000)
    parser.add_argument("--mode", default="direct")
    asyncio.run(main(parser.parse_args()))
