 handlesim bench --state-dir STATE --out benchmarks/results/2026-12-02-parts --name direct-first-4000 --mode direct --rate 4000 --duration 10 --warmup 5
