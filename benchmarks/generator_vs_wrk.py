"""How the bench generator's maximum on the bare aiohttp route compares with `wrk -t1 -c32` on the same route.

    .venv/bin/python benchmarks/generator_vs_wrk.py    (needs Debian's wrk: `bash scripts/setup-bench-tools`)
"""

import json
import subprocess

from handlesim.bench.baseline import BaselineServer
from handlesim.bench.generator import WorkerSpec, run_worker
from handlesim.bench.runner import BenchConfig, merge_parts
from handlesim.bench.workload import Target

if __name__ == "__main__":
    server = BaselineServer(b"\x83\xacresponseCode\x01" + b"x" * 600)
    try:
        url = f"http://127.0.0.1:{server.port}/api/handles/88.101.1001/X"
        wrk = subprocess.run(["wrk", "-t1", "-c32", "-d8s", url], capture_output=True, text=True).stdout
        wrk_rate = float(next(line for line in wrk.splitlines() if line.startswith("Requests/sec")).split()[1])
        best = 0.0
        for rate in (8000, 12000, 16000, 20000, 24000):
            spec = WorkerSpec(mode="baseline", rate=rate, duration=5, warmup=1, connections=32,
                              targets=[Target("88.101.1001/X", "127.0.0.1", server.port, "bare")],
                              baseline=("127.0.0.1", server.port))
            run = merge_parts([run_worker(spec)], BenchConfig(rate=rate, duration=5))
            best = max(best, run["achieved_rate"])
            print(json.dumps({"offered": rate, "achieved": run["achieved_rate"],
                              "p50_ms": run["latency_ms"]["p50_ms"], "p99_ms": run["latency_ms"]["p99_ms"]}))
        print(json.dumps({"wrk_t1_c32_rps": wrk_rate, "generator_max_achieved_rps": best,
                          "ratio": round(best / wrk_rate, 3)}))
    finally:
        server.stop()
