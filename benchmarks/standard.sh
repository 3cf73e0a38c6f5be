#!/usr/bin/env bash
# The standard benchmark set on configs/plan.toml (2 roots, 20 secondaries, 1,000 enterprises, 1 resolver).
#   bash benchmarks/standard.sh [OUT_DIR]      (default: benchmarks/results/<date>)
# Starts one plan topology (memory stores, ephemeral loopback ports), runs every mode against it, stops it,
# then sweeps the enterprise count for boot time and memory. Run on an otherwise idle machine; every run also
# measures the bare aiohttp route, so quote ratios from the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-benchmarks/results/$(date +%Y-%m-%d)}"
mkdir -p "$OUT"
HS=.venv/bin/handlesim
STATE=$(mktemp -d)/state
DURATION=${DURATION:-10}

$HS up --config configs/plan.toml --store memory --base-port 0 --state-dir "$STATE" > "$OUT/up.log" 2>&1 &
UP=$!
trap 'kill -TERM $UP 2>/dev/null || true; wait $UP 2>/dev/null || true' EXIT
for _ in $(seq 120); do grep -q '^ready:' "$OUT/up.log" && break; sleep 1; done
grep '^ready:' "$OUT/up.log"

run() { name=$1; shift; echo "== $name: $*"; $HS bench --state-dir "$STATE" --out "$OUT" --name "$name" --duration "$DURATION" --warmup 5 "$@" 2>/dev/null | tee "$OUT/$name.txt"; }

run direct-max        --mode direct --max --rate 1000 --duration 4
run direct            --mode direct --rate 2500
run direct-hot        --mode direct --rate 4000 --keys 1000
run iterative-cold    --mode iterative-cold --rate 300
run iterative-warm    --mode iterative-warm --rate 2000
run resolver-warm     --mode resolver --rate 1500 --distribution zipf --zipf 1.0
run resolver-hot      --mode resolver --rate 4000 --keys 1000
run resolver-max      --mode resolver --max --rate 500 --distribution zipf --zipf 1.0 --duration 4
run mixed-zipf        --mode mixed --rate 1500 --distribution zipf --zipf 1.0 --write-fraction 0.05

kill -TERM $UP; wait $UP || true; trap - EXIT

# REST only (--no-native): 10,000 nodes with a native interface each need 3 sockets per node, past the 20,000
# open files one process may hold here (see docs/scaling.md); and the sweep stays comparable with earlier ones.
echo "== enterprise-count sweep (20 identifiers each, memory stores, REST only)"
: > "$OUT/sweep.jsonl"
for n in 10 100 1000 10000; do
  .venv/bin/python benchmarks/boot.py --store memory --enterprises "$n" --identifiers 20 --no-native | tee -a "$OUT/sweep.jsonl"
done
echo "== plan boot with the default embedded store (sqlite), then a restart on the same stores"
.venv/bin/python benchmarks/boot.py --store sqlite --restarts 1 | tee "$OUT/boot-plan-sqlite.json"
.venv/bin/python benchmarks/summarize.py "$OUT"
