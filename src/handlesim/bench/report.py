"""Benchmark output people use: a Markdown table, the JSON document, and PNG plots (matplotlib, optional)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..core.wording import counted

COLUMNS = ("offered/s", "achieved/s", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms", "errors", "late")


def _row(label: str, run: dict[str, Any]) -> str:
    lat = run["latency_ms"]
    cells = [f"{run['offered_rate']:g}", f"{run['achieved_rate']:g}"]
    cells += [f"{lat.get(k, float('nan')):.3f}" for k in ("p50_ms", "p90_ms", "p99_ms", "p99.9_ms", "max_ms")]
    cells += [f"{run['errors']} ({run['error_rate']:.2%})", str(run["late_sends"])]
    return f"| {label} | " + " | ".join(cells) + " |"


def markdown(result: dict[str, Any]) -> str:
    config = result["config"]
    topology = result["topology"]
    label = config["mode"] + protocol_label(config)
    lines = [
        f"### `{label}` on `{topology['name']}` "
        f"({counted(topology['nodes'], 'node')}, {counted(topology['keys'], 'key')})",
        "",
        f"{config['processes']} generator process(es) x {config['connections']} connections, {config['arrival']} "
        f"arrivals, {config['distribution']} keys, {config['duration']:g} s measured after {config['warmup']:g} s "
        f"warm-up; net: {result['net']}; machine: {result['machine']['cpus']} cpus {result['machine']['cpu_model']}",
        "",
        "| run | " + " | ".join(COLUMNS) + " |",
        "|---|" + "---|" * len(COLUMNS),
        _row(label, result["run"]),
    ]
    if "baseline" in result:
        lines.append(_row("bare aiohttp route", result["baseline"]))
    lines.append("")
    extras = []
    if "ratios" in result:
        r = result["ratios"]
        extras.append(f"ratio to the bare route (same run): throughput {r['achieved_rate']}, p50 {r['p50']}, "
                      f"p99 {r['p99']}")
    if result["run"].get("hops_per_lookup") is not None:
        extras.append(f"hops per lookup: {result['run']['hops_per_lookup']}")
    for role, row in result.get("nodes", {}).items():
        described = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in row.items() if k != "server_time")
        if described:
            extras.append(f"{role} nodes: {described}")
    cpu = result.get("topology_cpu")
    if cpu is not None and cpu.get("per_lookup_us") is not None:
        extras.append(f"topology CPU in the window: {cpu['seconds']:g} s in {cpu['processes']} process(es), "
                      f"{cpu['per_lookup_us']:g} us per lookup, {cpu['busy_cores']:g} cores busy")
    served = result["run"].get("latency_ok_ms", {})
    if "goodput" in result["run"] and served.get("count"):
        extras.append(f"goodput (successful answers within 1 s, per s): {result['run']['goodput']:g}; served only: "
                      f"p50 {served['p50_ms']:.3f} ms, p99 {served['p99_ms']:.3f} ms, max {served['max_ms']:.3f} ms")
    outcomes = ", ".join(f"{code}: {n}" for code, n in sorted(result["run"]["outcomes"].items()))
    extras.append(f"answers by response code: {outcomes}")
    for event in result.get("events", []):
        extras.append(f"event at {event['second']:.2f} s: {event['label']} ({'done' if event['ok'] else 'FAILED: '}"
                      f"{'' if event['ok'] else event.get('message', '')})")
    lines += [f"- {e}" for e in extras]
    lines += server_time_table(result.get("nodes", {}))
    return "\n".join(lines) + "\n"


def protocol_label(config: dict[str, Any]) -> str:
    """` over native UDP` / ` over native TCP` (nothing for REST, and for results from before the option)."""
    if config.get("protocol", "rest") != "native":
        return ""
    return f" over native {str(config.get('native_transport', 'udp')).upper()}"


def server_time_table(nodes: dict[str, Any]) -> list[str]:
    """Per tier and operation: requests the nodes timed in the measured window and their own p50/p99."""
    rows = [(role, op, t) for role, row in nodes.items() for op, t in row.get("server_time", {}).items()]
    if not rows:
        return []
    lines = ["", "Server-side time per tier (the nodes' own timers, measured window only):", "",
             "| tier | operation | requests | p50 ms | p99 ms |", "|---|---|---|---|---|"]
    lines += [f"| {role} | {op} | {t['requests']} | {t['p50_ms']:.3f} | {t['p99_ms']:.3f} |" for role, op, t in rows]
    return lines


def write_outputs(result: dict[str, Any], out_dir: Path, name: str) -> list[Path]:
    """`<name>.json`, `<name>.md` and, when matplotlib is installed, `<name>-latency.png` and `<name>-timeline.png`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    json_path = out_dir / f"{name}.json"
    json_path.write_text(json.dumps(result, indent=1, default=str))
    md_path = out_dir / f"{name}.md"
    md_path.write_text(markdown(result))
    written += [json_path, md_path]
    try:
        written += plot(result, out_dir, name)
    except ImportError:
        pass
    return written


def plot(result: dict[str, Any], out_dir: Path, name: str) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    fig, ax = plt.subplots(figsize=(7, 4))
    for label, run in (("handlesim " + result["config"]["mode"], result["run"]),
                       ("bare aiohttp route", result.get("baseline"))):
        if run and run["spectrum"]:
            xs = [1 / (1 - p / 100) if p < 100 else 1e5 for p, _ in run["spectrum"]]
            ax.plot(xs, [v for _, v in run["spectrum"]], marker="o", label=label)
    ax.set_xscale("log")
    ax.set_xticks([1, 2, 10, 100, 1000, 10000])
    ax.set_xticklabels(["0%", "50%", "90%", "99%", "99.9%", "99.99%"])
    ax.set_xlabel("percentile")
    ax.set_ylabel("latency (ms, from intended send)")
    ax.set_title(f"Latency spectrum at {result['run']['offered_rate']:g}/s offered")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    spectrum_path = out_dir / f"{name}-latency.png"
    fig.savefig(spectrum_path, dpi=110)
    plt.close(fig)
    paths.append(spectrum_path)

    timeline = result["run"]["timeline"]
    if timeline:
        fig, left = plt.subplots(figsize=(7, 4))
        # each row covers [second, second + 1): draw it as a step so events line up with the second they hit
        seconds = [row["second"] for row in timeline] + [timeline[-1]["second"] + 1]

        def series(key: str) -> list[float]:
            values = [row[key] or 0 for row in timeline]
            return values + values[-1:]

        left.plot(seconds, series("completed"), color="tab:blue", label="completed/s", drawstyle="steps-post")
        left.plot(seconds, series("errors"), color="tab:red", label="errors/s", drawstyle="steps-post")
        left.set_xlabel("second of the measured window")
        left.set_ylabel("requests per second")
        right = left.twinx()
        right.plot(seconds, series("p99_ms"), color="tab:orange", label="p99 ms", drawstyle="steps-post")
        right.set_ylabel("p99 latency (ms)")
        for event in result.get("events", []):
            left.axvline(event["second"], color="gray", linestyle="--")
            left.annotate(event["label"][:24], (event["second"], 0), rotation=90, fontsize=8)
        left.legend(loc="upper left")
        right.legend(loc="upper right")
        left.set_title("Throughput and p99 over time")
        fig.tight_layout()
        timeline_path = out_dir / f"{name}-timeline.png"
        fig.savefig(timeline_path, dpi=110)
        plt.close(fig)
        paths.append(timeline_path)
    return paths
