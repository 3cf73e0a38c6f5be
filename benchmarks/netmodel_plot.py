"""Combined figures for benchmarks/netmodel.sh: latency spectra of cold iterative vs resolver-cached lookups under
the network model, and the root-failure timelines side by side.  Usage: python benchmarks/netmodel_plot.py OUT_DIR"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def load(out: Path, name: str) -> dict | None:  # type: ignore[type-arg]
    path = out / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def spectra(out: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, label in (("cold-iterative", "cold iterative (client in Qingdao)"),
                        ("cold-iterative-from-guangzhou", "cold iterative (client in Guangzhou)"),
                        ("resolver-cached", "via the resolver's warm cache (Qingdao)")):
        result = load(out, name)
        if result is None:
            continue
        points = result["run"]["spectrum"]
        xs = [1 / (1 - p / 100) if p < 100 else 1e5 for p, _ in points]
        ax.plot(xs, [v for _, v in points], marker="o", label=f"{label}: p50 "
                f"{result['run']['latency_ms']['p50_ms']:.1f} ms")
    ax.set_xscale("log")
    ax.set_xticks([1, 2, 10, 100, 1000, 10000])
    ax.set_xticklabels(["0%", "50%", "90%", "99%", "99.9%", "99.99%"])
    ax.set_xlabel("percentile")
    ax.set_ylabel("lookup latency (ms)")
    ax.set_title("Plan topology under the national network model")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "cold-vs-cached.png", dpi=110)
    plt.close(fig)


def failures(out: Path) -> None:
    runs = [(n, load(out, n)) for n in ("root-failure-iterative", "root-failure-resolver", "root-pause-iterative",
                                        "region-partition-iterative", "small-root-failure")]
    runs = [(n, r) for n, r in runs if r is not None]
    if not runs:
        return
    fig, axes = plt.subplots(len(runs), 1, figsize=(7, 2.8 * len(runs)))
    axes = axes if len(runs) > 1 else [axes]
    for ax, (_, result) in zip(axes, runs, strict=True):
        timeline = result["run"]["timeline"]
        seconds = [row["second"] for row in timeline] + [timeline[-1]["second"] + 1]
        errors = [row["errors"] for row in timeline]
        p99 = [row["p99_ms"] or 0 for row in timeline]
        p50 = [row.get("p50_ms") or 0 for row in timeline]
        ax.plot(seconds, errors + errors[-1:], color="tab:red", drawstyle="steps-post", label="errors/s")
        ax.set_ylabel("errors per second")
        ax.set_ylim(bottom=0, top=max(max(errors) * 1.15, 1))
        right = ax.twinx()
        right.plot(seconds, p99 + p99[-1:], color="tab:orange", drawstyle="steps-post", label="p99 ms")
        right.plot(seconds, p50 + p50[-1:], color="tab:green", drawstyle="steps-post", label="p50 ms")
        right.set_yscale("log")
        right.set_ylabel("latency (ms, log)")
        for event in result.get("events", []):
            ax.axvline(event["second"], color="gray", linestyle="--")
            ax.annotate(event["label"][:24], (event["second"], 0), rotation=90, fontsize=7)
        ax.set_title(f"{result['topology']['name']}: {result['config']['mode']} at {result['config']['rate']:g}/s, "
                     f"{result['scenario']['name']}", fontsize=10)
        ax.legend(loc="upper left", fontsize=8)
        right.legend(loc="upper right", fontsize=8)
    axes[-1].set_xlabel("second of the measured window")
    fig.tight_layout()
    fig.savefig(out / "root-failure.png", dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    directory = Path(sys.argv[1])
    spectra(directory)
    failures(directory)
