 handlesim bench --state-dir STATE --out benchmarks/results/2026-12-02-parts --name direct-first-8000 --mode direct --rate 8000 --duration 5 --warmup 5
