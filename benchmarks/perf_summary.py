"""Collect a results directory of benchmarks/perf_targets.sh into SUMMARY.md: every performance target, met or not.

    python benchmarks/perf_summary.py benchmarks/results/<date>-perf

Reads the JSON results the script wrote (node_vs_bare.py and `handlesim bench`), the machine and load-average notes,
and judges each target from the figures of one run (ratios to the bare route measured in the same run). A target
whose run is missing is listed as not measured. Prose about why a figure is what it is belongs in the SUMMARY.md
notes written by hand below the generated part (kept when this script runs again).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

MARKER = "<!-- notes below are kept when perf_summary.py runs again -->"
PLAN_KEYS = 100_000


def load(out: Path, name: str) -> dict[str, Any] | None:
    path = out / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def verdict(ok: bool | None) -> str:
    return "not measured" if ok is None else ("**met**" if ok else "**not met**")


def first_time_share(rate: float, warmup: float, duration: float, keys: int = PLAN_KEYS) -> float:
    """Expected share of first-time lookups among the requests of the measured window, for uniform draws with
    replacement from `keys` keys on a fresh topology (the draw at position i is first-time with probability
    e^(-i/keys))."""
    start, end = rate * warmup, rate * (warmup + duration)
    return keys / (end - start) * (math.exp(-start / keys) - math.exp(-end / keys))


def command(out: Path, name: str) -> str:
    path = out / f"{name}.cmd"
    return path.read_text().strip() if path.exists() else ""


def node_section(out: Path) -> tuple[list[str], list[tuple[str, bool | None, str]]]:
    lines = ["## One node vs the bare route (wrk -t1 -c32, same run)", "",
             "`.venv/bin/python benchmarks/node_vs_bare.py --processes N --rounds 3 --duration 10`", "",
             "| processes | node req/s (median) | bare route req/s (median) | ratio per round | median ratio | "
             "node p50 / p99 ms (last round) | bare p50 / p99 ms (last round) |", "|---|---|---|---|---|---|---|"]
    targets: list[tuple[str, bool | None, str]] = []
    results = {p: load(out, f"node-vs-bare-{p}p") for p in (1, 2)}
    for processes, result in results.items():
        if result is None:
            continue
        last = result["rounds"][-1]
        lines.append(f"| {processes} | {result['node_rps_median']:,.0f} | {result['bare_rps_median']:,.0f} | "
                     f"{', '.join(str(r) for r in result['ratios'])} | {result['ratio_median']:.3f} | "
                     f"{last['node'].get('p50_ms')} / {last['node'].get('p99_ms')} | "
                     f"{last['bare'].get('p50_ms')} / {last['bare'].get('p99_ms')} |")
    one, two = results[1], results[2]
    targets.append(("one node's REST GET >= 0.9x the bare route (1 process each)",
                    None if one is None else one["ratio_median"] >= 0.9,
                    "" if one is None else f"median ratio {one['ratio_median']:.3f}"))
    targets.append(("a node served by 2 processes (SO_REUSEPORT) >= 0.9x the 2-process bare route",
                    None if two is None else two["ratio_median"] >= 0.9,
                    "" if two is None else f"median ratio {two['ratio_median']:.3f}"
                    + ("" if one is None else f"; 2 processes / 1 process of the node: "
                       f"{two['node_rps_median'] / one['node_rps_median']:.2f}x")))
    return lines, targets


def run_row(name: str, result: dict[str, Any]) -> str:
    run, base = result["run"], result.get("baseline") or {}
    lat, base_lat = run["latency_ms"], base.get("latency_ms", {})
    config = result["config"]
    share = first_time_share(config["rate"], config["warmup"], config["duration"]) \
        if config["mode"] == "direct" and config.get("distribution") == "uniform" and not config.get("keys") else None
    return (f"| {name} | {config['mode']} | {run['offered_rate']:g} | {run['achieved_rate']:g} | "
            f"{lat.get('p50_ms', 0):.3f} / {lat.get('p99_ms', 0):.3f} | {run['errors']} | "
            f"{base.get('achieved_rate', '')} | {base_lat.get('p50_ms', 0):.3f} / {base_lat.get('p99_ms', 0):.3f} | "
            f"{'' if share is None else f'{share:.0%}'} |")


def trial_list(trials: list[dict[str, Any]]) -> str:
    return "; ".join(f"{t['rate']:.0f}{' again' if t.get('attempt', 1) > 1 else ''} {'ok' if t['ok'] else 'no'} "
                     f"{t['p99_ms'] if t['p99_ms'] is not None else '-'}" for t in trials)


def plan_section(out: Path) -> tuple[list[str], list[tuple[str, bool | None, str]]]:
    lines = ["## The plan topology (1,023 nodes, 100,000 identifiers; booted fresh for each run)", "",
             "| run | mode | offered/s | achieved/s | p50 / p99 ms | errors | bare route achieved/s | "
             "bare p50 / p99 ms | first-time share (expected) |", "|---|---|---|---|---|---|---|---|---|"]
    targets: list[tuple[str, bool | None, str]] = []
    resolver_runs = resolver_run_names(out)
    for name in ("direct-first-4000", "direct-first-8000", *resolver_runs):
        result = load(out, name)
        if result is not None:
            lines.append(run_row(name, result))
    for name, how in (("direct-max", "unpinned"),
                      ("direct-max-pinned", "pinned: topology and bare route on CPU 0, generator on CPU 1")):
        maximum = load(out, name)
        if maximum is None or "max_search" not in maximum:
            if name == "direct-max":
                targets += [("direct first-time: sustained rate >= 0.75x the bare route's", None, ""),
                            ("direct --max >= 0.5x the bare route's --max", None, "")]
            continue
        search = maximum["max_search"]
        run_max = search["max_rate"]
        bare_max = (maximum.get("max_search_bare_route") or {}).get("max_rate")
        ratio = run_max / bare_max if bare_max else None
        lines += ["", f"`{name}` ({how}; p99 <= {search['bounds']['p99_ms']:g} ms, errors <= "
                      f"{search['bounds']['error_rate']:g}, a rate fails after {search.get('tries', 1)} failed "
                      f"trial(s) in a row): direct **{run_max:,.0f}/s**, bare route **{bare_max:,.0f}/s** in the same "
                      f"run" + ("" if ratio is None else f" (ratio {ratio:.3f})") + ". Trials (rate, ok, p99 ms; "
                      "`again` marks a repeat): " + trial_list(search["trials"])]
        if maximum.get("max_search_bare_route"):
            lines += ["", f"Bare route trials: {trial_list(maximum['max_search_bare_route']['trials'])}"]
        suffix = "" if name == "direct-max" else f" ({how})"
        if (out / "first-time-max.json").exists():  # judged there, first-time; these searches turn warm
            suffix += ", one topology for the whole search: its later trials mostly warm, not first-time"
        targets.append(("direct: sustained rate >= 0.75x the bare route's at the same p99 bound (the --max "
                        "search's rate is the sustained rate at that bound)" + suffix,
                        None if ratio is None else ratio >= 0.75, "" if ratio is None else f"ratio {ratio:.3f}"))
        targets.append(("direct --max >= 0.5x the bare route's --max" + suffix,
                        None if ratio is None else ratio >= 0.5, "" if ratio is None else f"ratio {ratio:.3f}"))
    met: list[bool] = []
    details = []
    for name in resolver_runs:
        resolver = load(out, name)
        assert resolver is not None
        p99 = resolver["run"]["latency_ms"].get("p99_ms", 1e9)
        met.append(p99 <= 10.0 and resolver["run"]["achieved_rate"] >= 0.95 * resolver["run"]["offered_rate"])
        timeline = ", ".join(f"{t['p99_ms']:g}" for t in resolver["run"].get("timeline", []))
        details.append(f"{name}: p99 {p99:g} ms, achieved {resolver['run']['achieved_rate']:g}/s; p99 per second: "
                       f"{timeline}")
    targets.append((f"resolver Zipf 1.0 p99 <= 10 ms at 1,500/s (every run: {len(met)} on fresh topologies)",
                    all(met) if met else None, "; ".join(details)))
    return lines, targets


def resolver_run_names(out: Path) -> list[str]:
    """The resolver tail's runs in `out`: resolver-zipf-1500-run1, -run2, ... (or the single resolver-zipf-1500 of
    earlier result sets)."""
    runs = sorted((path.stem for path in out.glob("resolver-zipf-1500-run*.json")),
                  key=lambda stem: int(stem.rsplit("run", 1)[1]))
    return runs or ([] if load(out, "resolver-zipf-1500") is None else ["resolver-zipf-1500"])


def first_time_section(out: Path) -> tuple[list[str], list[tuple[str, bool | None, str]]]:
    """benchmarks/first_time_max.py's searches (a fresh topology for every trial), when they ran."""
    lines: list[str] = []
    targets: list[tuple[str, bool | None, str]] = []
    for name, how in (("first-time-max", "unpinned"),
                      ("first-time-max-pinned", "pinned: topologies and bare route on CPU 0, generators on CPU 1")):
        path = out / f"{name}.json"
        if not path.exists():
            continue
        found = json.loads(path.read_text())
        ratio = found["ratio"]
        if not lines:
            lines += ["## First-time direct `--max`: a fresh topology for every trial", ""]
        lines += [f"`{found['command']}` ({how}; warm-up {found['warmup_s']:g} s, {found['duration_s']:g} s "
                  f"measured, a rate fails after {found['tries']} failed trials in a row): first-time direct "
                  f"**{found['first_time_max_rate']:,.0f}/s**, bare route **{found['bare_route_max_rate']:,.0f}/s** "
                  f"(ratio {ratio}). Trials (rate, ok, p99 ms, expected first-time share of the measured window): "
                  + "; ".join(f"{t['rate']:.0f}{' again' if t['attempt'] > 1 else ''} {'ok' if t['ok'] else 'no'} "
                              f"{t['p99_ms']} {t['first_time_share']:.0%}" for t in found["trials"]), "",
                  f"Bare route trials: {trial_list(found['bare_route_trials'])}", "",
                  f"The same sitting's one-topology node search (warm after its first trials): "
                  f"{found['one_topology_search']['max_rate']:,.0f}/s; trials: "
                  f"{trial_list(found['one_topology_search']['trials'])}", ""]
        targets.append((f"direct first-time (fresh topology per trial, {how}): --max >= 0.5x the bare route's",
                        ratio is not None and ratio >= 0.5, f"ratio {ratio}"))
        targets.append((f"direct first-time (fresh topology per trial, {how}): sustained >= 0.75x the bare "
                        "route's at the same p99 bound", ratio is not None and ratio >= 0.75, f"ratio {ratio}"))
    return lines, targets


def workers_section(out: Path) -> tuple[list[str], list[tuple[str, bool | None, str]]]:
    """1 vs 2 workers: the --max searches, and the topology's CPU per lookup at a fixed rate. The target is judged
    only where the generator had a core of its own (a third core); on two, the searches and the CPU cost are
    reported and the scaling is estimated from the CPU cost, not judged."""
    one, two = load(out, "direct-max-w1"), load(out, "direct-max-w2")
    own_core = "generator on CPU 2" in _text(out / "machine.txt")
    lines = ["## One worker vs two (`up --workers N`)", "",
             "The generator " + ("had CPU 2 to itself (two workers on CPUs 0-1)." if own_core else
                                 "was pinned to CPU 1, which the second worker shares (no third core here).") + "",
             ""]
    for label, result in (("1 worker (pinned to CPU 0)", one), ("2 workers", two)):
        if result is not None and "max_search" in result:
            lines.append(f"- {label}: direct `--max` **{result['max_search']['max_rate']:,.0f}/s**; trials: "
                         + "; ".join(f"{t['rate']:.0f} {'ok' if t['ok'] else 'no'} p99 {t['p99_ms']}"
                                     for t in result["max_search"]["trials"]))
    estimates = []
    for label, names in (("at 4,000/s", ("direct-4000-w1", "direct-4000-w2")),
                         ("at each one's maximum", ("direct-max-w1", "direct-max-w2"))):
        costs = [(load(out, name) or {}).get("topology_cpu") or {} for name in names]
        for workers, cost in enumerate(costs, 1):
            if cost.get("per_lookup_us"):
                lines.append(f"- {workers} worker(s), direct {label}: the topology spent **{cost['per_lookup_us']:g} "
                             f"us** of CPU per lookup ({cost['seconds']:g} s in {cost['processes']} process(es), "
                             f"{cost['busy_cores']:g} cores busy)")
        one_us, two_us = (cost.get("per_lookup_us") for cost in costs)
        if one_us and two_us:
            estimates.append(f"{2 * one_us / two_us:.2f}x {label}")
    estimate = ", ".join(estimates)
    if estimate:
        lines.append(f"- with a core per worker, lookups/s scale as cores / CPU per lookup: 2 workers ~ 2 x (1 "
                     f"worker's CPU per lookup) / (2 workers') = **{estimate}** one worker (estimates from the CPU "
                     "cost, not measured rates; a process's fixed costs weigh more at low rates, batching helps at "
                     "high ones)")
    ok: bool | None = None
    detail = ""
    if one is not None and two is not None and "max_search" in one and "max_search" in two:
        scale = two["max_search"]["max_rate"] / one["max_search"]["max_rate"] if one["max_search"]["max_rate"] \
            else 0.0
        if own_core:
            ok, detail = scale >= 1.5, f"2 workers / 1 worker: {scale:.2f}x"
        else:
            detail = (f"not measurable on {_cpus(out)} cores (the generator shares a worker's core): --max "
                      f"2 workers / 1 worker {scale:.2f}x as measured" +
                      (f"; from the topology's CPU per lookup, {estimate}" if estimate else ""))
    return lines, [("plan over both cores: aggregate first-time lookups/s with 2 workers >= 1.5x one worker "
                    "(generator elsewhere)", ok, detail)]


def _text(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def _cpus(out: Path) -> str:
    found = [line.split(":", 1)[1].strip() for line in _text(out / "machine.txt").splitlines()
             if line.startswith("cpus:")]
    return found[0] if found else "these"


def main(out: Path) -> None:
    sections = [node_section(out), plan_section(out), first_time_section(out), workers_section(out)]
    lines = [f"# Performance targets: first-time lookups, the resolver's tail, one node, two cores ({out.name})", "",
             "Produced by `bash benchmarks/perf_targets.sh " + str(out) + "` (then `python benchmarks/perf_summary.py "
             + str(out) + "`). Ratios compare figures measured in the same run.", ""]
    machine = out / "machine.txt"
    if machine.exists():
        lines += ["## Machine", "", "```", machine.read_text().strip(), "```", ""]
    lines += ["## Targets", "", "| target | verdict | figures |", "|---|---|---|"]
    for _, targets in sections:
        lines += [f"| {name} | {verdict(ok)} | {detail} |" for name, ok, detail in targets]
    lines.append("")
    for body, _ in sections:
        lines += [*body, ""]
    commands = sorted(out.glob("*.cmd"))
    if commands:
        lines += ["## Commands", "", "```"] + [f"{p.stem}: {p.read_text().strip()}" for p in commands] + ["```", ""]
    loadavg = out / "loadavg.txt"
    if loadavg.exists():
        lines += ["## Load average (1, 5, 15 min) before each run", "", "```", loadavg.read_text().strip(), "```", ""]
    summary = out / "SUMMARY.md"
    notes = ""
    if summary.exists() and MARKER in summary.read_text():
        notes = summary.read_text().split(MARKER, 1)[1]
    summary.write_text("\n".join(lines) + "\n" + MARKER + (notes or "\n"))
    print(f"wrote {summary}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
