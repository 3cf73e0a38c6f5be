 handlesim bench --state-dir STATE --out benchmarks/results/2026-12-02-parts --name direct-max --mode direct --max --rate 1000 --duration 4 --warmup 5
