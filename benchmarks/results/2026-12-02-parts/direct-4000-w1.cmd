taskset -c 1 handlesim bench --state-dir STATE --out benchmarks/results/2026-12-02-parts --name direct-4000-w1 --mode direct --rate 4000 --duration 10 --warmup 5 --no-baseline
