#!/usr/bin/env bash
# What a plan topology costs while nobody asks it anything: the CPU its processes spend per second of wall time,
# read from each process's own clock (the metrics port's /timers) twice, SPAN seconds apart, SETTLE seconds after
# its ready line (the first monitoring round's secret checks are boot work).
#   bash benchmarks/idle_cpu.sh [WORKERS...]      (default: 1 2; SETTLE=40, SPAN=20)
set -euo pipefail
cd "$(dirname "$0")/.."
COUNTS=("$@")
[ ${#COUNTS[@]} -gt 0 ] || COUNTS=(1 2)
SETTLE=${SETTLE:-40}
SPAN=${SPAN:-20}
for w in "${COUNTS[@]}"; do
  STATE=$(mktemp -d)/state
  LOG=$(dirname "$STATE")/up.log
  .venv/bin/handlesim up --config configs/plan.toml --store memory --base-port 0 --state-dir "$STATE" --workers "$w" \
    > "$LOG" 2>&1 &
  UP=$!
  trap 'kill -TERM $UP 2>/dev/null || true; wait $UP 2>/dev/null || true' EXIT
  for _ in $(seq 120); do grep -q '^ready:' "$LOG" && break; sleep 1; done
  sleep "$SETTLE"
  .venv/bin/python - "$STATE/topology.json" "$SPAN" "$w" <<'PY'
import json
import sys
import time
import urllib.request

described = json.loads(open(sys.argv[1]).read())
urls = described.get("metrics_urls") or [described["metrics_url"]]


def cpu() -> dict[int, float]:
    seconds = {}
    for url in urls:
        with urllib.request.urlopen(url.rsplit("/metrics", 1)[0] + "/timers", timeout=10) as reply:
            process = json.loads(reply.read())["process"]
        seconds[process["pid"]] = process["cpu_seconds"]
    return seconds


before, started = cpu(), time.monotonic()
time.sleep(float(sys.argv[2]))
after, span = cpu(), time.monotonic() - started
print(json.dumps({"workers": int(sys.argv[3]), "processes": len(after), "span_s": round(span, 2),
                  "idle_cores_busy": round(sum(after[p] - before[p] for p in after) / span, 4)}))
PY
  kill -TERM $UP; wait $UP 2>/dev/null || true
  trap - EXIT
done
