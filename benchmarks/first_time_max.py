"""The first-time direct `--max`: the same search as `bench --max`, with a freshly booted plan topology for every trial.

    .venv/bin/python benchmarks/first_time_max.py OUT_DIR [--pin] [--start 2000] [--tries 2] [--warmup 2]
                                                  [--duration 4] [--settle 22]

`bench --max` runs every trial against one topology, so a search that climbs meets, from its third or fourth trial
on, keys earlier trials drew: at 8,000/s a trial (warm-up and measured seconds) draws most of the 100,000 plan
identifiers, and the rates near the top are measured mostly warm. Here each trial boots `configs/plan.toml` afresh
(`handlesim up --store memory --base-port 0`), waits `--settle` seconds (the first monitoring round's secret checks
are boot work), runs one `handlesim bench --mode direct --no-baseline` of `--warmup` + `--duration` seconds and
stops the topology; the summary gives each trial's expected share of first-time lookups. The search is
`handlesim.bench.runner.search_rate` (x1.5, then four bisections; a rate fails after `--tries` failed trials in a row)
with `bench --max`'s bounds (`within_bounds`: p99 <= 10 ms, errors <= 0.1%, achieved >= 95% of offered).

The bare route's `--max` is taken in the same sitting by one `handlesim bench --max` on one more fresh topology
(whose own node search, warm after its first trials, is recorded beside it as such). `--pin` runs every topology
on CPU 0 (`taskset -c 0`), every generator on CPU 1 and the bare route on CPU 0 (`--baseline-cpu 0`).
Writes OUT_DIR/first-time-max.json and prints a Markdown summary (perf_summary.py puts it in SUMMARY.md).
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from handlesim.bench.runner import search_rate, within_bounds

sys.path.insert(0, str(Path(__file__).resolve().parent))
from perf_summary import first_time_share  # noqa: E402 - the expected first-time share the summary gives too

ROOT = Path(__file__).resolve().parents[1]
HANDLESIM = [sys.executable, "-m", "handlesim.cli"]


class Topology:
    """One plan topology booted with `handlesim up` in the background (memory stores, ephemeral ports)."""

    def __init__(self, work: Path, pin: bool, settle: float) -> None:
        self.state = work / "state"
        self.log = (work / "up.log").open("w")
        prefix = ["taskset", "-c", "0"] if pin else []
        self.process = subprocess.Popen(
            [*prefix, *HANDLESIM, "up", "--config", str(ROOT / "configs/plan.toml"), "--store", "memory",
             "--base-port", "0", "--state-dir", str(self.state)], stdout=self.log, stderr=subprocess.STDOUT,
            cwd=ROOT)
        deadline = time.monotonic() + 120
        while "ready:" not in (work / "up.log").read_text():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the topology did not boot: see {work / 'up.log'}")
            time.sleep(0.5)
        time.sleep(settle)

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


def bench(state: Path, out: Path, name: str, options: list[str], pin: bool) -> dict[str, Any]:
    prefix = ["taskset", "-c", "1"] if pin else []
    subprocess.run([*prefix, *HANDLESIM, "bench", "--state-dir", str(state), "--out", str(out), "--name", name,
                    *options], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT,
                   timeout=3600)
    return json.loads((out / f"{name}.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--pin", action="store_true")
    parser.add_argument("--start", type=float, default=2000.0)
    parser.add_argument("--tries", type=int, default=2)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--duration", type=float, default=4.0)
    parser.add_argument("--settle", type=float, default=22.0)
    args = parser.parse_args()
    name = "first-time-max" + ("-pinned" if args.pin else "")
    trials_dir = args.out / f"{name}-trials"
    trials_dir.mkdir(parents=True, exist_ok=True)
    trials: list[dict[str, Any]] = []

    def trial(rate: float, attempt: int) -> bool:
        with tempfile.TemporaryDirectory() as work:
            topology = Topology(Path(work), args.pin, args.settle)
            try:
                result = bench(topology.state, trials_dir, f"trial-{len(trials) + 1}",
                               ["--mode", "direct", "--rate", f"{rate:g}", "--duration", f"{args.duration:g}",
                                "--warmup", f"{args.warmup:g}", "--no-baseline", "--seed", str(len(trials) + 1)],
                               args.pin)
            finally:
                topology.stop()
        run = result["run"]
        p99 = run["latency_ms"].get("p99_ms")
        ok = within_bounds(run, rate)
        trials.append({"rate": rate, "attempt": attempt, "ok": ok, "achieved_rate": run["achieved_rate"],
                       "p99_ms": p99, "error_rate": run["error_rate"],
                       "first_time_share": round(first_time_share(rate, args.warmup, args.duration), 3)})
        print(f"trial {len(trials)}: {rate:.0f}/s attempt {attempt}: {'ok' if ok else 'no'} p99 {p99} ms",
              file=sys.stderr, flush=True)
        return ok

    found = search_rate(trial, start=args.start, tries=args.tries)
    with tempfile.TemporaryDirectory() as work:  # the bare route's --max, same sitting, same bench
        topology = Topology(Path(work), args.pin, args.settle)
        try:
            same = bench(topology.state, args.out, f"{name}-bare", ["--mode", "direct", "--max", "--rate",
                         f"{args.start:g}", "--duration", f"{args.duration:g}", "--warmup", "5", "--max-tries",
                         str(args.tries), *(["--baseline-cpu", "0"] if args.pin else [])], args.pin)
        finally:
            topology.stop()
    bare = same["max_search_bare_route"]["max_rate"]
    summary = {"first_time_max_rate": round(found, 1), "bare_route_max_rate": bare,
               "ratio": round(found / bare, 3) if bare else None, "pinned": args.pin, "tries": args.tries,
               "warmup_s": args.warmup, "duration_s": args.duration, "settle_s": args.settle, "trials": trials,
               "one_topology_search": {"max_rate": same["max_search"]["max_rate"],
                                       "trials": same["max_search"]["trials"]},
               "bare_route_trials": same["max_search_bare_route"]["trials"],
               "command": " ".join(["python", "benchmarks/first_time_max.py", str(args.out), *sys.argv[2:]])}
    (args.out / f"{name}.json").write_text(json.dumps(summary, indent=1))
    shutil.rmtree(trials_dir / "plots", ignore_errors=True)
    print(f"first-time direct --max (fresh topology per trial): {found:,.0f}/s; bare route --max {bare:,.0f}/s; "
          f"ratio {summary['ratio']}")


if __name__ == "__main__":
    main()
