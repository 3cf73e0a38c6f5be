#!/usr/bin/env bash
# Every performance target (first-time lookups, the resolver tail, one node vs a bare route, workers), measured; then benchmarks/perf_summary.py writes SUMMARY.md.
#   bash benchmarks/perf_targets.sh [OUT_DIR]      (default: benchmarks/results/<date>-perf; installs Debian's wrk
#   with scripts/setup-bench-tools when it is missing)
# 1. one enterprise node vs a bare aiohttp route returning the same bytes, wrk -t1 -c32, 1 and 2 processes
#    (benchmarks/node_vs_bare.py);
# 2. the plan topology (memory stores, ephemeral loopback ports), booted fresh for each measurement so lookups are
#    first-time: direct at fixed rates, direct --max (p99 <= 10 ms) against the bare route's --max; then resolver
#    Zipf 1.0 at 1,500/s, RESOLVER_RUNS times (default 3), each on a fresh topology (the target is met when every
#    run meets it);
# 3. the first-time direct --max with a fresh topology for every trial (benchmarks/first_time_max.py), unpinned and
#    pinned: the searches of 2. run on one topology, so their later trials are mostly warm;
# 4. `up --workers 1` (pinned to CPU 0) and `--workers 2`, each booted fresh for a direct run at 4,000/s (the
#    topology's CPU per lookup, from its processes' own CPU clocks) and for direct --max; the generator pinned to
#    CPU 2 when there is a third core (the two workers then on CPUs 0-1), else to CPU 1, shared with a worker.
# Every bench run also measures the bare route in the same run; the load average before each run is in loadavg.txt.
# After each boot the script waits SETTLE seconds (default 22) before measuring: the topology's first monitoring round
# (10 s after boot, paced over the next 10 s) verifies every reporter's secret once (PBKDF2, ~0.8 s of CPU on the
# nodes' loop), which is boot work, not lookup work; no lookup is made meanwhile, so lookups stay first-time.
# Warm-ups are 5 s as in standard.sh: each generator process opens its keep-alive connections to 1,000 nodes then.
# DURATION (default 10) sets the fixed-rate runs' measured seconds; SKIP_NODE=1 / SKIP_PLAN=1 / SKIP_RESOLVER=1 /
# SKIP_FIRST_TIME=1 / SKIP_WORKERS=1 skip parts. About an hour in all (the first-time searches boot a topology per trial).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-benchmarks/results/$(date +%Y-%m-%d)-perf}"
mkdir -p "$OUT"
PY=.venv/bin/python
HS=.venv/bin/handlesim
DURATION=${DURATION:-10}
SETTLE=${SETTLE:-22}
RESOLVER_RUNS=${RESOLVER_RUNS:-3}
UP=""
bash scripts/setup-bench-tools

{ echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"; echo "cpus: $(nproc)"; grep -m1 'model name' /proc/cpuinfo || true
  echo "python: $($PY --version 2>&1)"; echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "wrk: $(wrk --version 2>&1 | head -1)"; } > "$OUT/machine.txt"
: >> "$OUT/loadavg.txt"
load() { echo "$1: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$OUT/loadavg.txt"; }

boot() {  # boot NAME [prefix command...] [-- up options...]: a fresh plan topology in the background; sets STATE, UP
  local name=$1; shift
  local prefix=()
  while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do prefix+=("$1"); shift; done
  [ "$#" -gt 0 ] && shift
  STATE=$(mktemp -d)/state
  "${prefix[@]}" $HS up --config configs/plan.toml --store memory --base-port 0 --state-dir "$STATE" "$@" \
    > "$OUT/up-$name.log" 2>&1 &
  UP=$!
  for _ in $(seq 120); do grep -q '^ready:' "$OUT/up-$name.log" && break; sleep 1; done
  grep '^ready:' "$OUT/up-$name.log"
  sleep "$SETTLE"
}
halt() { [ -n "$UP" ] && { kill -TERM "$UP" 2>/dev/null || true; wait "$UP" 2>/dev/null || true; }; UP=""; }
trap halt EXIT
bench() {  # bench NAME [prefix command...] -- bench options
  local name=$1; shift
  local prefix=()
  while [ "$1" != "--" ]; do prefix+=("$1"); shift; done; shift
  load "$name"
  echo "== $name: ${prefix[*]} handlesim bench $*"
  echo "${prefix[*]} handlesim bench --state-dir STATE --out $OUT --name $name $*" > "$OUT/$name.cmd"
  "${prefix[@]}" $HS bench --state-dir "$STATE" --out "$OUT" --name "$name" "$@" 2>/dev/null | tee "$OUT/$name.txt"
}

if [ "${SKIP_NODE:-0}" != 1 ]; then
  for p in 1 2; do
    load "node-vs-bare-${p}p"
    echo "== node vs bare route, $p process(es)"
    $PY benchmarks/node_vs_bare.py --processes "$p" --rounds 3 --duration 10 --out "$OUT" | tee "$OUT/node-vs-bare-${p}p.txt"
  done
fi

if [ "${SKIP_PLAN:-0}" != 1 ]; then
  for rate in 4000 8000; do
    boot "direct-$rate"
    bench "direct-first-$rate" -- --mode direct --rate "$rate" --duration $((DURATION * 4000 / rate)) --warmup 5
    halt
  done
  boot direct-max
  bench direct-max -- --mode direct --max --rate 1000 --duration 4 --warmup 5
  halt
  # the same search with the topology on CPU 0, the generator on CPU 1 and the bare route pinned to CPU 0 as well:
  # both sides of the ratio under the same pinning, so the generator never shares the measured side's core
  boot direct-max-pinned taskset -c 0
  bench direct-max-pinned taskset -c 1 -- --mode direct --max --rate 1000 --duration 4 --warmup 5 --baseline-cpu 0
  halt
fi

if [ "${SKIP_RESOLVER:-0}" != 1 ]; then
  for run in $(seq "$RESOLVER_RUNS"); do
    boot "resolver-run$run"
    bench "resolver-zipf-1500-run$run" -- --mode resolver --rate 1500 --distribution zipf --zipf 1.0 \
      --duration "$DURATION" --warmup 5
    halt
  done
fi

if [ "${SKIP_FIRST_TIME:-0}" != 1 ]; then
  for pin in "" --pin; do
    load "first-time-max${pin:+-pinned}"
    echo "== first-time direct --max, a fresh topology per trial ${pin}"
    $PY benchmarks/first_time_max.py "$OUT" $pin
  done
fi

if [ "${SKIP_WORKERS:-0}" != 1 ]; then
  # with a third core the generator gets one of its own; on two, it shares CPU 1 with the second worker
  if [ "$(nproc)" -ge 3 ]; then GEN_CPU=2; TWO_CPUS=0,1; else GEN_CPU=1; TWO_CPUS=0-$(( $(nproc) - 1 )); fi
  echo "workers: 1 worker on CPU 0, 2 workers on CPUs $TWO_CPUS, the generator on CPU $GEN_CPU" >> "$OUT/machine.txt"
  for w in 1 2; do
    cpus=$([ "$w" = 1 ] && echo 0 || echo "$TWO_CPUS")
    boot "workers-$w-cpu" taskset -c "$cpus" -- --workers "$w"  # the topology's CPU per lookup at a fixed rate
    bench "direct-4000-w$w" taskset -c "$GEN_CPU" -- --mode direct --rate 4000 --duration "$DURATION" --warmup 5 \
      --no-baseline
    halt
    boot "workers-$w" taskset -c "$cpus" -- --workers "$w"
    bench "direct-max-w$w" taskset -c "$GEN_CPU" -- --mode direct --max --rate 1000 --duration 4 --warmup 5 \
      --no-baseline
    halt
  done
fi

$PY benchmarks/perf_summary.py "$OUT"
