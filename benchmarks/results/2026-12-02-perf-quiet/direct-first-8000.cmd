 handlesim bench --state-dir STATE --out /tmp/perf-quiet --name direct-first-8000 --mode direct --rate 8000 --duration 5 --warmup 5
