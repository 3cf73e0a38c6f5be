"""Collect a results directory of the standard set into SUMMARY.md and a sweep plot.

    python benchmarks/summarize.py benchmarks/results/<date>
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(out: Path) -> None:
    lines = [f"# Standard benchmark set ({out.name})", ""]
    runs = sorted(p for p in out.glob("*.json") if not p.name.startswith("boot"))
    lines += ["| run | mode | offered/s | achieved/s | p50 ms | p99 ms | p99.9 ms | errors | bare route p50/p99 ms | "
              "throughput / p50 ratio to bare | hops/lookup |", "|---" * 11 + "|"]
    for path in runs:
        r = json.loads(path.read_text())
        run, lat = r["run"], r["run"]["latency_ms"]
        base = r.get("baseline", {}).get("latency_ms", {})
        ratios = r.get("ratios", {})
        hops = run.get("hops_per_lookup") or next((v.get("hops_per_lookup") for v in r.get("nodes", {}).values()
                                                   if "hops_per_lookup" in v), "")
        mode = r["config"]["mode"]
        if r["config"].get("protocol") == "native":
            mode += f" (native {r['config'].get('native_transport', 'udp').upper()})"
        lines.append(f"| {path.stem} | {mode} | {run['offered_rate']:g} | {run['achieved_rate']:g} | "
                     f"{lat.get('p50_ms', 0):.3f} | {lat.get('p99_ms', 0):.3f} | {lat.get('p99.9_ms', 0):.3f} | "
                     f"{run['errors']} | {base.get('p50_ms', 0):.3f} / {base.get('p99_ms', 0):.3f} | "
                     f"{ratios.get('achieved_rate')} / {ratios.get('p50')} | {hops} |")
        if "max_search" in r:
            bare = r.get("max_search_bare_route", {}).get("max_rate")
            lines.append(f"| {path.stem} (max search) | | max {r['max_search']['max_rate']:g}/s | bare route max "
                         f"{bare}/s | ratio {ratios.get('max_rate')} | | | | | | |")
    sweep = out / "sweep.jsonl"
    if sweep.exists():
        rows = [json.loads(line) for line in sweep.read_text().splitlines() if line.strip()]
        rest_only = ", REST only (`--no-native`)" if rows and not rows[0].get("native", True) else ""
        lines += ["", f"## Enterprise-count sweep (memory stores, 20 identifiers each{rest_only})", "",
                  "| enterprises | seconds to ready | peak RSS MB |", "|---|---|---|"]
        lines += [f"| {r['enterprises']} | {r['seconds_to_ready']} | {r['peak_rss_mb']} |" for r in rows]
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt

            fig, ax = plt.subplots(figsize=(6, 3.5))
            xs = [r["enterprises"] for r in rows]
            ax.plot(xs, [r["seconds_to_ready"] for r in rows], marker="o", label="seconds to ready")
            ax.set_xscale("log")
            ax.set_xlabel("enterprise nodes")
            ax.set_ylabel("seconds")
            right = ax.twinx()
            right.plot(xs, [r["peak_rss_mb"] for r in rows], marker="s", color="tab:orange", label="peak RSS MB")
            right.set_ylabel("MB")
            ax.legend(loc="upper left")
            right.legend(loc="lower right")
            ax.set_title("Boot time and memory vs topology size")
            fig.tight_layout()
            fig.savefig(out / "sweep.png", dpi=110)
        except ImportError:
            pass
    boot = out / "boot-plan-sqlite.json"
    if boot.exists():  # one JSON line per boot: the first, then restarts on the same stores (older runs: one)
        boots = [json.loads(line) for line in boot.read_text().splitlines() if line.strip()]
        b = boots[0]
        lines += ["", f"Plan topology with the default SQLite store: ready in {b['seconds_to_ready']} s, "
                      f"peak RSS {b['peak_rss_mb']} MB."]
        for again in boots[1:]:
            lines.append(f"{again.get('boot', 'restart').capitalize()} on the same stores: ready in "
                         f"{again['seconds_to_ready']} s, peak RSS {again['peak_rss_mb']} MB.")
    (out / "SUMMARY.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
