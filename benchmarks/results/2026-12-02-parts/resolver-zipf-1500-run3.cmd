 handlesim bench --state-dir STATE --out benchmarks/results/2026-12-02-parts --name resolver-zipf-1500-run3 --mode resolver --rate 1500 --distribution zipf --zipf 1.0 --duration 10 --warmup 5
