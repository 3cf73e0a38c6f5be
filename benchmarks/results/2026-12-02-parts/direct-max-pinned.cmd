taskset -c 1 handlesim bench --state-dir STATE --out benchmarks/results/2026-12-02-parts --name direct-max-pinned --mode direct --max --rate 1000 --duration 4 --warmup 5 --baseline-cpu 0
