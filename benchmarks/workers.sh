#!/usr/bin/env bash
# 1 vs N worker processes on configs/plan.toml (memory stores): boot time and RSS, then direct and resolver
# throughput against the running topology; then the largest topologies that boot (enterprise sweep).
#   bash benchmarks/workers.sh [OUT_DIR] [WORKERS...]     (default: benchmarks/results/<date>-workers, 1 2)
# Each bench run also measures the bare aiohttp route, so quote ratios from the same run. PY overrides the
# interpreter (default .venv/bin/python); DURATION the measured seconds per run (default 5); SWEEP=0 skips the
# largest-topology boots (several minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-benchmarks/results/$(date +%Y-%m-%d)-workers}"
shift || true
COUNTS=("$@")
[ ${#COUNTS[@]} -gt 0 ] || COUNTS=(1 2)
mkdir -p "$OUT"
PY=${PY:-.venv/bin/python}
HS="$PY -m handlesim.cli"
DURATION=${DURATION:-5}

for W in "${COUNTS[@]}"; do
  echo "== boot, plan, memory stores, $W worker(s)"
  $PY benchmarks/boot.py --config configs/plan.toml --store memory --workers "$W" | tee "$OUT/boot-plan-w$W.json"

  STATE=$(mktemp -d)/state
  $HS up --config configs/plan.toml --store memory --base-port 0 --state-dir "$STATE" --workers "$W" \
    > "$OUT/up-w$W.log" 2>&1 &
  UP=$!
  trap 'kill -TERM $UP 2>/dev/null || true; wait $UP 2>/dev/null || true' EXIT
  for _ in $(seq 120); do grep -q '^ready:' "$OUT/up-w$W.log" && break; sleep 1; done
  grep '^ready:' "$OUT/up-w$W.log"
  run() { name=$1-w$W; shift; echo "== $name: $*"
    $HS bench --state-dir "$STATE" --out "$OUT" --name "$name" --duration "$DURATION" --warmup 2 "$@" 2>/dev/null \
      | tee "$OUT/$name.txt"; }
  run direct-3000       --mode direct --rate 3000
  run direct-6000       --mode direct --rate 6000
  run direct-hot-6000   --mode direct --rate 6000 --keys 1000
  run resolver-hot-4000 --mode resolver --rate 4000 --keys 1000
  run resolver-zipf-1500 --mode resolver --rate 1500 --distribution zipf --zipf 1.0
  kill -TERM $UP; wait $UP || true; trap - EXIT
done

[ "${SWEEP:-1}" = 0 ] && exit 0
echo "== largest topologies (memory stores, 5 identifiers each)"
: > "$OUT/sweep.jsonl"
for spec in "10000 1" "10000 2" "20000 2"; do
  read -r n w <<< "$spec"
  $PY benchmarks/boot.py --store memory --enterprises "$n" --identifiers 5 --workers "$w" | tee -a "$OUT/sweep.jsonl"
done
