"""What encoding answers ahead costs the plan topology: start-up time, background seconds and peak memory.

    .venv/bin/python benchmarks/encoded_ahead_cost.py [--store sqlite|memory] [--runs 1]

Launches configs/plan.toml in a fresh process twice per run, with `[limits] encoded_ahead` at its default and at 0
(off), waits for the background encoding to finish, and prints one JSON line per launch: the launch's own seconds
(the ready line), the background encoding's seconds, the peak RSS at the ready line and after the encoding, and how
many answers the nodes hold encoded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

PLAN = Path(__file__).resolve().parents[1] / "configs" / "plan.toml"


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


async def launch_once(store: str, encoded_ahead: int | None) -> dict[str, object]:
    from handlesim.topology.config import load_config
    from handlesim.topology.plan import build_plan
    from handlesim.topology.runner import launch

    config = load_config(PLAN)
    if encoded_ahead is not None:
        limits = config.limits
        config = replace(config, limits=replace(limits, server=replace(limits.server, encoded_ahead=encoded_ahead)))
    with tempfile.TemporaryDirectory() as state:
        topology = await launch(build_plan(config), Path(state) / "state", store_kind=store, metrics_port=None)
        at_ready = peak_rss_mb()
        if topology.encoding is not None:
            await asyncio.shield(topology.encoding)
        result = {"store": store, "encoded_ahead": config.limits.server.encoded_ahead,
                  "ready_s": round(topology.boot_seconds, 2), "encoding_s": round(topology.encoding_seconds, 2),
                  "peak_rss_mb_at_ready": at_ready, "peak_rss_mb_after": peak_rss_mb(),
                  "answers_held": sum(len(node.server.answers) for node in topology.nodes.values())}
        await topology.stop()
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", default="sqlite", choices=("sqlite", "memory"))
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:  # one launch in this fresh process
        print(json.dumps(asyncio.run(launch_once(args.store, None if args.child < 0 else args.child))))
        return
    for _ in range(args.runs):
        for setting in (-1, 0):  # the default, then off
            subprocess.run([sys.executable, __file__, "--store", args.store, "--child", str(setting)], check=True)


if __name__ == "__main__":
    main()
