"""Boot figures: time from `handlesim up` to its ready line, and the peak RSS of `up` and its worker processes
at that moment.

    python benchmarks/boot.py [--config configs/plan.toml] [--store sqlite|memory] [--enterprises N] [--identifiers N]
                              [--workers N|auto] [--no-native] [--restarts N]

Prints one JSON line per boot. `--restarts N` boots N more times on the same state dir after the first (a restart
on existing SQLite stores: nothing is seeded, everything is loaded), so first boot and restart compare directly.
Used by benchmarks/standard.sh for the plan topology and the enterprise-count sweep.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def process_tree(pid: int) -> list[int]:
    """`pid` and all its descendants (worker processes, multiprocessing's resource tracker)."""
    tree = [pid]
    for parent in tree:
        for task in Path(f"/proc/{parent}/task").glob("*"):
            children = (task / "children").read_text().split()
            tree.extend(int(child) for child in children)
    return tree


def boot_once(command: list[str]) -> dict[str, object]:
    """Start `up`, wait for its ready line, measure, stop it with SIGTERM."""
    started = time.perf_counter()
    errors = tempfile.TemporaryFile("w+")  # a file, not a pipe: `up` writes its progress there and must never block
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors, text=True)
    assert proc.stdout is not None
    ready_line = ""
    for line in proc.stdout:
        if line.startswith("ready:"):
            ready_line = line.strip()
            break
    seconds = time.perf_counter() - started
    if not ready_line:  # `up` failed: say why, never a row of zeros
        proc.wait(120)
        errors.seek(0)
        sys.exit(f"boot.py: `{' '.join(command)}` exited {proc.returncode} without its ready line:\n"
                 f"{errors.read().strip()[-2000:]}")
    errors.close()
    tree = process_tree(proc.pid)
    rss = sum(peak_rss_mb(pid) for pid in tree)
    proc.send_signal(signal.SIGTERM)
    proc.wait(120)
    proc.stdout.close()
    return {"seconds_to_ready": round(seconds, 2), "processes": len(tree), "peak_rss_mb": round(rss, 1),
            "ready_line": ready_line}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", default="configs/plan.toml")
    parser.add_argument("--store", default="sqlite")
    parser.add_argument("--enterprises", type=int, default=None)
    parser.add_argument("--identifiers", type=int, default=None)
    parser.add_argument("--workers", default=None, help="passed to `up --workers` (default: up's default, 1)")
    parser.add_argument("--no-native", action="store_true", help="passed to `up --no-native` (REST only)")
    parser.add_argument("--restarts", type=int, default=0,
                        help="boot this many more times on the same state dir (restart on existing stores)")
    args = parser.parse_args()
    config = Path(args.config)
    with tempfile.TemporaryDirectory() as tmp:
        if args.enterprises is not None:
            text = config.read_text()
            data = tomllib.loads(text)
            count = data["enterprises"]["count"]
            config = Path(tmp) / "sweep.toml"
            config.write_text(text.replace(f"count = {count}", f"count = {args.enterprises}", 1))
        command = [sys.executable, "-m", "handlesim.cli", "up", "--config", str(config), "--store", args.store,
                   "--base-port", "0", "--state-dir", str(Path(tmp) / "state")]
        if args.identifiers is not None:
            command += ["--identifiers", str(args.identifiers)]
        if args.workers is not None:
            command += ["--workers", str(args.workers)]
        if args.no_native:
            command.append("--no-native")
        for boot in range(args.restarts + 1):
            figures = boot_once(command)
            print(json.dumps({"config": args.config, "store": args.store, "enterprises": args.enterprises,
                              "identifiers": args.identifiers, "workers": args.workers or "1",
                              "native": not args.no_native,
                              "boot": "first" if boot == 0 else f"restart {boot}", **figures}), flush=True)


if __name__ == "__main__":
    main()
