"""Garbage-collection pauses in a plan-sized node process: are the benchmark's p99 stalls full collections?

    .venv/bin/python benchmarks/gc_pauses.py [REQUESTS]      (default 20,000; about 10 s plus boot)

Boots configs/plan.toml in this process (memory stores, ephemeral ports), asks enterprise nodes for identifiers
they have not answered yet over HTTP, one at a time, and records every collection's duration by generation with
`gc.callbacks`. Prints the passes per generation, the longest pause, the worst request, and what the collector
tracks in generation 2 afterwards (the objects every full collection walks).
"""

from __future__ import annotations

import asyncio
import gc
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp

from handlesim.topology.config import load_config
from handlesim.topology.plan import build_plan
from handlesim.topology.runner import launch

PLAN = Path(__file__).resolve().parents[1] / "configs" / "plan.toml"
pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
_started = [0.0]


def on_gc(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _started[0] = time.perf_counter()
    else:
        pauses[info["generation"]].append(time.perf_counter() - _started[0])


async def main(requests: int) -> None:
    plan = build_plan(load_config(PLAN).with_overrides(base_port=0))
    with tempfile.TemporaryDirectory() as state:
        topology = await launch(plan, Path(state) / "state", store_kind="memory", metrics_port=None)
        enterprises = [n for n in topology.nodes.values() if n.plan.role == "enterprise"]
        handles = {n.plan.node_id: [r.handle.text for r in n.store.records() if "/" in r.handle.text
                                    and not r.handle.text.startswith("0.NA/")] for n in enterprises}
        rng = random.Random(1)
        gc.callbacks.append(on_gc)
        worst = 0.0
        started = time.perf_counter()
        async with aiohttp.ClientSession() as session:
            for _ in range(requests):
                node = rng.choice(enterprises)
                handle = rng.choice(handles[node.plan.node_id])
                sent = time.perf_counter()
                async with session.get(f"{node.url}/api/handles/{handle}") as reply:
                    await reply.read()
                worst = max(worst, time.perf_counter() - sent)
        elapsed = time.perf_counter() - started
        gc.callbacks.remove(on_gc)
        tracked = gc.get_objects(generation=2)
        await topology.stop()
    for generation, durations in pauses.items():
        print(f"gen{generation}: {len(durations)} passes, {sum(durations) * 1000:.0f} ms in all, longest "
              f"{max(durations, default=0) * 1000:.1f} ms")
    print(f"{requests} requests in {elapsed:.1f} s; worst request {worst * 1000:.1f} ms")
    print(f"generation 2 holds {len(tracked)} tracked objects:",
          ", ".join(f"{name} {count}" for name, count in Counter(type(o).__name__ for o in tracked).most_common(8)))


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000))
