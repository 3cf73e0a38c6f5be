#!/usr/bin/env bash
# Operations monitoring on the plan topology: per-tier server-side time in benchmark results, the roots' national
# picture (`handlesim stats`) taken during a run, a Prometheus scrape's size and time, and the cost of upward
# reporting (the same direct run with [monitoring] report_interval = 0 and with the plan's 10 s).
#   bash benchmarks/monitoring.sh [OUT_DIR]      (default: benchmarks/results/<date>-monitoring)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-benchmarks/results/$(date +%Y-%m-%d)-monitoring}"
mkdir -p "$OUT"
HS=${HS:-.venv/bin/handlesim}
TMP=$(mktemp -d)
STATE=$TMP/state

$HS up --config configs/plan.toml --store memory --identifiers 20 --base-port 0 --state-dir "$STATE" \
  > "$OUT/up.log" 2>&1 &
UP=$!
trap 'kill -TERM $UP 2>/dev/null || true; wait $UP 2>/dev/null || true' EXIT
for _ in $(seq 120); do grep -q '^ready:' "$OUT/up.log" && break; sleep 1; done
grep '^ready:' "$OUT/up.log"

run() { name=$1; shift; echo "== $name: $*"; $HS bench --state-dir "$STATE" --out "$OUT" --name "$name" "$@" 2>/dev/null \
  | tee "$OUT/$name.txt"; }
run iterative-cold-300 --mode iterative-cold --rate 300 --duration 10 --warmup 2
run resolver-hot-1000 --mode resolver --keys 1000 --rate 1000 --duration 10 --warmup 2

echo "== stats during a direct run at 1,500/s"
$HS bench --state-dir "$STATE" --out "$OUT" --name direct-1500 --mode direct --rate 1500 --duration 20 --warmup 2 \
  --no-baseline > "$OUT/direct-1500.txt" 2>/dev/null &
BENCH=$!
sleep 16
$HS stats --state-dir "$STATE" --top 5 > "$OUT/stats-during-direct-1500.txt"
$HS stats --state-dir "$STATE" --json > "$OUT/stats-during-direct-1500.json"
METRICS=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['metrics_url'])" "$STATE/topology.json")
curl -s -o "$TMP/metrics.txt" -w "scrape of every node: %{time_total} s, %{size_download} bytes\n" "$METRICS" \
  | tee "$OUT/scrape.txt"
wait $BENCH
kill -TERM $UP; wait $UP || true; trap - EXIT

echo "== reporting cost: the same direct run without and with upward reports (each topology started by bench)"
sed 's/^report_interval = [0-9.]*/report_interval = 0.0/' configs/plan.toml > "$TMP/plan-no-reports.toml"
for round in 1 2; do
  $HS bench --config "$TMP/plan-no-reports.toml" --identifiers 20 --mode direct --rate 1500 --duration 20 --warmup 2 \
    --no-baseline --out "$OUT" --name "reports-off-$round" 2>/dev/null | grep '^| direct' | sed 's/^| direct/| reports off/'
  $HS bench --config configs/plan.toml --identifiers 20 --mode direct --rate 1500 --duration 20 --warmup 2 \
    --no-baseline --out "$OUT" --name "reports-on-$round" 2>/dev/null | grep '^| direct' | sed 's/^| direct/| reports every 10 s/'
done | tee "$OUT/reporting-cost.txt"
