#!/usr/bin/env bash
# The native Handle protocol against REST on one plan topology: the same keys of the same enterprise nodes, asked
# over REST (msgpack GET), native UDP and native TCP, back to back; every run also measures the bare aiohttp route.
#   bash benchmarks/native.sh [OUT_DIR]      (default: benchmarks/results/<date>-native)
# The machine's load average before each run goes to OUT_DIR/load.txt: quote ratios measured in the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-benchmarks/results/$(date +%Y-%m-%d)-native}"
mkdir -p "$OUT"
HS=.venv/bin/handlesim
STATE=$(mktemp -d)/state
DURATION=${DURATION:-10}

$HS up --config configs/plan.toml --store memory --base-port 0 --net loopback --state-dir "$STATE" > "$OUT/up.log" 2>&1 &
UP=$!
trap 'kill -TERM $UP 2>/dev/null || true; wait $UP 2>/dev/null || true' EXIT
for _ in $(seq 180); do grep -q '^ready:' "$OUT/up.log" && break; sleep 1; done
grep '^ready:' "$OUT/up.log"
: > "$OUT/load.txt"

run() {
  name=$1; shift
  echo "$name: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$OUT/load.txt"
  echo "== $name: $*"
  $HS bench --state-dir "$STATE" --out "$OUT" --name "$name" --duration "$DURATION" --warmup 3 "$@" 2>/dev/null \
    | tee "$OUT/$name.txt"
}

args_for() {
  case $1 in
    rest) echo "--protocol rest" ;;
    native-udp) echo "--protocol native --native-transport udp" ;;
    native-tcp) echo "--protocol native --native-transport tcp" ;;
  esac
}
PROTOCOLS="rest native-udp native-tcp"

# below saturation, twice, interleaved (the machine's load drifts between runs)
for round in 1 2; do
  for protocol in $PROTOCOLS; do
    # shellcheck disable=SC2046
    run "direct-800-$protocol-$round" --mode direct --rate 800 --keys 1000 $(args_for "$protocol")
  done
done
for protocol in $PROTOCOLS; do
  # shellcheck disable=SC2046
  run "direct-2000-$protocol" --mode direct --rate 2000 --keys 1000 $(args_for "$protocol")
done
for protocol in $PROTOCOLS; do
  # shellcheck disable=SC2046
  run "direct-max-$protocol" --mode direct --max --rate 500 --p99-bound 50 --keys 1000 --duration 4 $(args_for "$protocol")
done
for protocol in $PROTOCOLS; do
  # shellcheck disable=SC2046
  run "iterative-cold-$protocol" --mode iterative-cold --rate 300 $(args_for "$protocol")
done

kill -TERM $UP; wait $UP || true; trap - EXIT
.venv/bin/python benchmarks/summarize.py "$OUT"
