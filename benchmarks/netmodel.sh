#!/usr/bin/env bash
# Figures of the network model on the plan topology with configs/network-china.toml:
#   bash benchmarks/netmodel.sh [OUT_DIR]      (default: benchmarks/results/<date>-netmodel)
# 1. cold iterative lookups (every hop crosses the modelled network) vs lookups through the resolver's warm cache;
# 2. the root-failure scenario (root-qingdao killed at 10 s, started at 20 s) under iterative and resolver load, the
#    root-pause scenario (hung, not dead: every lookup waits out its 1 s timeout first), and a root failure in the
#    one-root small topology (lookups fail while it is down).
# Short runs (the machine is shared); identifiers per enterprise lowered to 20 to keep the boot light.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-benchmarks/results/$(date +%Y-%m-%d)-netmodel}"
mkdir -p "$OUT"
HS=${HS:-.venv/bin/handlesim}
PY=${PY:-.venv/bin/python}
STATE=$(mktemp -d)/state

$HS up --config configs/plan.toml --network configs/network-china.toml --net model --faults --store memory \
    --base-port 0 --identifiers 20 --state-dir "$STATE" > "$OUT/up.log" 2>&1 &
UP=$!
trap 'kill -TERM $UP 2>/dev/null || true; wait $UP 2>/dev/null || true' EXIT
for _ in $(seq 180); do grep -q '^ready:' "$OUT/up.log" && break; sleep 1; done
grep '^ready:' "$OUT/up.log"
$HS resolve --trace "$($PY -c "import json,sys; print(json.load(open(sys.argv[1]))['examples'][0])" "$STATE/topology.json")" \
    --state-dir "$STATE" | tee "$OUT/resolve-trace.txt"

run() { name=$1; shift; echo "== $name: $*"; $HS bench --state-dir "$STATE" --out "$OUT" --name "$name" --no-baseline "$@" 2>/dev/null | tee "$OUT/$name.txt"; }

run cold-iterative   --mode iterative-cold --rate 100 --duration 15 --warmup 3
run resolver-cached  --mode resolver --keys 300 --rate 200 --duration 15 --warmup 5
run cold-iterative-from-guangzhou --mode iterative-cold --rate 100 --duration 15 --warmup 3 --client-region Guangzhou
run root-failure-iterative --mode iterative-cold --rate 100 --duration 30 --warmup 3 \
    --scenario benchmarks/scenarios/root-failure.toml
run root-failure-resolver  --mode resolver --rate 200 --duration 30 --warmup 5 --timeout 3 --seed 2 \
    --scenario benchmarks/scenarios/root-failure.toml
run root-pause-iterative   --mode iterative-cold --rate 50 --connections 128 --duration 30 --warmup 3 --timeout 1 \
    --scenario benchmarks/scenarios/root-pause.toml
run region-partition-iterative --mode iterative-cold --rate 100 --connections 128 --duration 30 --warmup 3 \
    --timeout 1 --scenario benchmarks/scenarios/region-partition.toml

kill -TERM $UP; wait $UP || true; trap - EXIT
# one root only (the teaching topology): lookups fail while it is down
run_small() { name=$1; shift; echo "== $name: $*"; $HS bench --config configs/small.toml --net model --out "$OUT" --name "$name" --no-baseline "$@" 2>/dev/null | tee "$OUT/$name.txt"; }
run_small small-root-failure --mode iterative-cold --rate 50 --duration 6 --warmup 1 --timeout 1 \
    --scenario benchmarks/scenarios/small-root-failure.toml
$PY benchmarks/netmodel_plot.py "$OUT"
