cd /work/wt/exp
export PYTHONPATH=/work/wt/exp/src
PY=/work/main/.venv/bin/python
for round in 1 2 3; do
for th in 3000,20,100 1000,10,100; do
  echo "== direct $th round $round"; timeout 300 $PY benchmarks/loop_stalls.py --mode direct --rate 5000 --duration 8 --thresholds $th 2>&1 | grep -E "^\| direct \||>  5|> 10|gen[0-9]:"
  echo "== resolver $th round $round"; timeout 300 $PY benchmarks/loop_stalls.py --mode resolver --rate 1500 --duration 10 --distribution zipf --zipf 1.0 --thresholds $th 2>&1 | grep -E "^\| resolver \||>  5|>  10|gen[0-9]:"
done; done
echo "== fanout"
timeout 300 $PY benchmarks/loop_stalls.py --mode resolver --rate 1500 --duration 10 --distribution zipf --zipf 1.0 --thresholds 1000,10,100 --fanout-every 40 2>&1 | grep -E "^\| resolver \||gen0 pass over|gen[0-9]:"
