 handlesim bench --state-dir STATE --out /tmp/perf-quiet --name direct-max --mode direct --max --rate 1000 --duration 4 --warmup 5
