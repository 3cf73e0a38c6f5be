 handlesim bench --state-dir STATE --out /tmp/perf-quiet --name direct-first-4000 --mode direct --rate 4000 --duration 10 --warmup 5
