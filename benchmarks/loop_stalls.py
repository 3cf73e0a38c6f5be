"""Where a plan topology's event loop stalls while `handlesim bench` loads it: late loop turns, what ran, the collector.

    .venv/bin/python benchmarks/loop_stalls.py [--rate 3400] [--mode direct] [--duration 8] [--threshold-ms 3]
                                                [--settle 22] [--cpu 0 --bench-cpu 1] [bench options...]

Boots configs/plan.toml in this process as `up` does (uvloop, memory stores, ephemeral ports, the collector settled),
waits `--settle` seconds (the first monitoring round's secret checks are boot work), then runs `handlesim bench
--no-baseline` against it in another process (options this script does not know go to bench, e.g.
`--distribution zipf --zipf 1.0`). Meanwhile:

- a heartbeat task stamps the time at every loop turn it gets (it asks for one every millisecond);
- a watchdog thread wakes every 0.5 ms; when the heartbeat is older than `--threshold-ms`, it samples the main
  thread's stack (`sys._current_frames`) — what the loop is running while it is late;
- `gc.callbacks` records every collection with its start and duration.

Prints the bench's line, the late turns by length, how many overlap a collection, and the stacks seen most often in
late turns (innermost frames of handlesim, aiohttp, asyncio shown; the collector holds the interpreter lock, so a
stall that is a collection shows no sample of its own).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from handlesim.topology.config import load_config
from handlesim.topology.plan import build_plan
from handlesim.topology.runner import launch

PLAN = Path(__file__).resolve().parents[1] / "configs" / "plan.toml"


class Probe:
    """Heartbeat stamps, watchdog samples and collector passes, all in perf_counter seconds."""

    def __init__(self, threshold: float, sample: bool) -> None:
        self.threshold = threshold
        self.sample = sample
        self.tick = time.perf_counter()
        self.late: list[tuple[float, float]] = []  # (start, length) of each gap between heartbeat turns
        self.samples: Counter[tuple[str, ...]] = Counter()
        self.collections: list[tuple[float, float, int]] = []  # (start, length, generation)
        self._gc_started = 0.0
        self._gc_count = (0, 0, 0)
        self.census_left = 0
        self.census_owners = False
        self.fanout_every = 0
        self._gen0_seen = 0
        self.fanouts: list[Any] = []
        self.timeline: list[tuple[float, str]] = []
        self.censuses: list[Any] = []
        self.young: list[tuple[int, tuple[int, int, int], int, float]] = []  # older collections: counts, collected
        self._stop = threading.Event()
        self._main = threading.main_thread().ident

    async def heartbeat(self) -> None:
        self.tick = time.perf_counter()
        while True:
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            if now - self.tick > self.threshold:
                self.late.append((self.tick, now - self.tick))
            self.tick = now

    def on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            if info["generation"] == 0 and self.fanout_every and self._gen0_seen % self.fanout_every == 0:
                young = gc.get_objects(generation=0)
                fanout = sorted(((len(gc.get_referents(o)), type(o).__name__) for o in young), reverse=True)
                self.fanouts.append((len(young), sum(n for n, _ in fanout), fanout[:6]))
                del young
            if info["generation"] == 0:
                self._gen0_seen += 1
            if info["generation"] == 1 and self.census_left > 0:
                self.census_left -= 1
                young = gc.get_objects(generation=0) + gc.get_objects(generation=1)
                kinds = Counter(type(o).__name__ for o in young)
                big = sorted(((len(o), type(o).__name__) for o in young if isinstance(o, (dict, list, set, tuple))),
                             reverse=True)[:5]
                shapes = Counter(tuple(type(item).__name__ for item in o[:4]) + ((len(o),) if len(o) > 4 else ())
                                 for o in young if type(o) is tuple)
                owners = Counter(type(r).__name__ for o in young if type(o) is tuple for r in gc.get_referrers(o)
                                 if r is not young) if self.census_owners else Counter()
                self.censuses.append((len(young), kinds.most_common(12), big, shapes.most_common(6),
                                      owners.most_common(6)))
                del young
            self._gc_count = gc.get_count()
            self._gc_started = time.perf_counter()
        else:
            self.collections.append((self._gc_started, time.perf_counter() - self._gc_started, info["generation"]))
            if info["generation"] > 0:
                self.young.append((info["generation"], self._gc_count, info["collected"],
                                   time.perf_counter() - self._gc_started))

    def watch(self) -> None:
        while not self._stop.wait(0.0005):
            if time.perf_counter() - self.tick > self.threshold:
                frame = sys._current_frames().get(self._main)
                stack = []
                while frame is not None and len(stack) < 8:
                    code = frame.f_code
                    stack.append(f"{Path(code.co_filename).name}:{code.co_name}:{frame.f_lineno}")
                    frame = frame.f_back
                self.samples[tuple(stack)] += 1
                self.timeline.append((time.perf_counter(), stack[0] if stack else "?"))

    def start(self) -> None:
        self.began = time.perf_counter()
        gc.callbacks.append(self.on_gc)
        if self.sample:
            threading.Thread(target=self.watch, daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        gc.callbacks.remove(self.on_gc)


async def main(args: argparse.Namespace) -> None:
    plan = build_plan(load_config(PLAN).with_overrides(base_port=0))
    probe = Probe(args.threshold_ms / 1000, args.sample)
    probe.census_left = args.census
    probe.census_owners = args.census_owners
    probe.fanout_every = args.fanout_every
    with tempfile.TemporaryDirectory() as work:
        state = Path(work) / "state"
        topology = await launch(plan, state, store_kind="memory", metrics_port=0)
        if args.thresholds:
            gc.set_threshold(*(int(n) for n in args.thresholds.split(",")))
        print(f"booted; settling {args.settle} s; collector thresholds {gc.get_threshold()}", flush=True)
        await asyncio.sleep(args.settle)
        beat = asyncio.ensure_future(probe.heartbeat()) if not args.no_heartbeat else None
        probe.start()
        prefix = ["taskset", "-c", str(args.bench_cpu)] if args.bench_cpu is not None else []
        try:
            started = time.perf_counter()
            own_before = resource.getrusage(resource.RUSAGE_SELF)
            bench = await asyncio.create_subprocess_exec(
                *prefix, sys.executable, "-m", "handlesim.cli", "bench", "--state-dir", str(state),
                "--mode", args.mode, "--rate", str(args.rate), "--duration", str(args.duration),
                "--warmup", str(args.warmup), "--no-baseline", "--out", str(Path(work) / "out"), *args.bench_args,
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            out, _ = await bench.communicate()
            elapsed = time.perf_counter() - started
            own = resource.getrusage(resource.RUSAGE_SELF)
            children = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = (own.ru_utime + own.ru_stime - own_before.ru_utime - own_before.ru_stime,
                   children.ru_utime + children.ru_stime)
        finally:
            probe.stop()
            if beat is not None:
                beat.cancel()
            await topology.stop()
    print("\n".join(line for line in out.decode().splitlines() if line.startswith(f"| {args.mode}")))
    print(f"CPU seconds over the bench's {elapsed:.1f} s: topology process {cpu[0]:.1f}, bench processes {cpu[1]:.1f}")
    report(probe, elapsed)


def report(probe: Probe, elapsed: float) -> None:
    lengths = sorted(length for _, length in probe.late)
    print(f"\nlate loop turns (> {probe.threshold * 1000:.0f} ms) in {elapsed:.1f} s of bench: {len(lengths)}, "
          f"{sum(lengths) * 1000:.0f} ms in all")
    for bound in (5, 10, 20, 50):
        over = [length for length in lengths if length > bound / 1000]
        print(f"  > {bound:>2} ms: {len(over):>5}  ({sum(over) * 1000:.0f} ms)")
    if lengths:
        print(f"  longest: {', '.join(f'{length * 1000:.1f}' for length in lengths[-8:])} ms")
    by_generation: dict[int, list[float]] = {0: [], 1: [], 2: []}
    for _, length, generation in probe.collections:
        by_generation[generation].append(length)
    for generation, durations in by_generation.items():
        print(f"gen{generation}: {len(durations)} passes, {sum(durations) * 1000:.0f} ms, longest "
              f"{max(durations, default=0) * 1000:.1f} ms")
    for generation, counts, collected, length in probe.young:
        print(f"  gen{generation} pass: counts before {counts}, collected {collected}, {length * 1000:.1f} ms")
    for total, kinds, big, shapes, owners in probe.censuses:
        print(f"  young objects at a gen1 pass: {total}; {kinds}; biggest containers {big}; tuples {shapes}; "
              f"tuples held by {owners}")
    for objects, referents, widest in probe.fanouts[:12]:
        print(f"  gen0 pass over {objects} objects visits {referents} referents; widest {widest}")
    for start, length in probe.late:
        if length > 0.010:
            near = [f"gen{g} {c_len * 1000:.1f} ms" for c_start, c_len, g in probe.collections
                    if c_start < start + length and c_start + c_len > start and c_len > 0.0005]
            print(f"  late turn {length * 1000:.1f} ms at +{start - probe.began:.2f} s; collections: {near or 'none'}")
            inside = Counter(top for at, top in probe.timeline if start <= at <= start + length)
            print(f"      sampled: {dict(inside.most_common(4))}")
    overlapping = sum(1 for start, length in probe.late
                      if any(c_start < start + length and c_start + c_len > start
                             for c_start, c_len, _ in probe.collections if c_len > 0.001))
    print(f"late turns overlapping a collection longer than 1 ms: {overlapping}")
    print("\nstacks sampled in late turns (innermost first; one sample per 0.5 ms):")
    for stack, count in probe.samples.most_common(15):
        print(f"{count:>6}  " + "  <  ".join(stack[:5]))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=int, default=3400)
    parser.add_argument("--mode", default="direct")
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threshold-ms", type=float, default=3.0)
    parser.add_argument("--settle", type=float, default=22.0)
    parser.add_argument("--sample", action="store_true",
                        help="sample the loop's stack in late turns (the sampling thread takes the interpreter lock "
                             "every 0.5 ms: it slows a saturated loop further)")
    parser.add_argument("--no-heartbeat", action="store_true", help="no heartbeat task (no late turns measured): "
                        "does a loop woken every millisecond answer differently from one that sleeps in epoll?")
    parser.add_argument("--thresholds", default="", help="collector thresholds after boot, e.g. 700,10,10 "
                        "(default: as `up` sets them)")
    parser.add_argument("--census", type=int, default=0, help="count the young objects at this many gen1 passes")
    parser.add_argument("--census-owners", action="store_true", help="with --census: what holds the young tuples "
                        "(slow: gc.get_referrers for each)")
    parser.add_argument("--fanout-every", type=int, default=0, help="at every Nth gen0 pass, count the young "
                        "objects' referents (what the pass visits) and name the widest")
    parser.add_argument("--cpu", type=int, default=None, help="pin this process (the topology) to this CPU")
    parser.add_argument("--bench-cpu", type=int, default=None, help="pin the bench process to this CPU")
    arguments, arguments.bench_args = parser.parse_known_args()
    if arguments.cpu is not None:
        os.sched_setaffinity(0, {arguments.cpu})
    import uvloop

    uvloop.run(main(arguments))
