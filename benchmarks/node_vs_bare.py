"""One enterprise node's REST GET against a bare aiohttp route returning the same bytes, driven by wrk in one run.

    .venv/bin/python benchmarks/node_vs_bare.py [--processes 1|2] [--rounds 3] [--duration 10] [--out DIR]
    (needs Debian's wrk: `bash scripts/setup-bench-tools` installs it)

The node is a real NodeServer (front door, edge gate, routes, HandleService over a memory store) homing one prefix
and holding one 7-value identifier as the plan seeds them (URL, product name, model, date, batch, e-mail,
HS_ADMIN); the bare route is `web.Response(body=<the node's answer bytes>)` on the same path pattern. Both run on
uvloop in their own processes; with `--processes 2` each is two processes listening on one port with SO_REUSEPORT
(`NodeServer.start(reuse_port=True)`), each process holding its own copy of the node, and the kernel spreads the
connections over them. wrk (-t1 -c32, HTTP/1.1 keep-alive, JSON as a plain REST client asks) runs against the node,
then the bare route, `--rounds` times, after a warm-up of each; the ratio is node / bare per round, and the median
round's is the figure. Prints one JSON line per measurement and a summary line; with `--out`, writes
`node-vs-bare-<N>p.json` there.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import re
import statistics
import subprocess
import time
import urllib.request
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

PREFIX = "88.101.1001"
IDENTIFIER = f"{PREFIX}/PUMP-000042"
PATH = f"/api/handles/{IDENTIFIER}"


def _node_store() -> Any:
    from handlesim.core.handle import Handle, Prefix
    from handlesim.core.prefixes import admin_value, handle_record, http_site, prefix_record
    from handlesim.core.values import EMAIL, URL, HandleValue
    from handlesim.store import MemoryStore

    prefix = Prefix.from_text(PREFIX)
    store = MemoryStore()
    store.put(prefix_record(prefix, sites=[http_site("ent", [("127.0.0.1", 1)])]))
    values = [HandleValue(1, URL, f"https://id.example.cn/{IDENTIFIER}"),
              HandleValue(2, "PRODUCT_NAME", "centrifugal pump"), HandleValue(3, "MODEL", "PUMP-A200"),
              HandleValue(4, "MANUFACTURE_DATE", "2023-05-14"), HandleValue(5, "BATCH", "20230514-L1"),
              HandleValue(6, EMAIL, "id-admin@88-101-1001.example.cn"), admin_value(prefix)]
    store.put(handle_record(Handle.from_text(IDENTIFIER), values))
    return store


def serve_node(port: int, ready: Connection) -> None:
    """A node process: listen on `port` (0: any) with SO_REUSEPORT and report the port."""
    from handlesim.core.handle import Prefix
    from handlesim.core.prefixes import owner_identity
    from handlesim.core.service import HandleService, ServiceConfig
    from handlesim.net.server import NodeServer

    async def main() -> None:
        config = ServiceConfig(f"ent-{PREFIX}", homed_prefixes=(PREFIX,),
                               server_admins=(owner_identity(Prefix(PREFIX)),))
        server = NodeServer(HandleService(config, _node_store()))
        ready.send(await server.start("127.0.0.1", port, reuse_port=True))
        await asyncio.Event().wait()

    _run(main)


def serve_bare(port: int, payload: bytes, ready: Connection) -> None:
    """A bare aiohttp route returning `payload` as JSON, with SO_REUSEPORT, as bench/baseline.py's."""
    from aiohttp import web

    async def main() -> None:
        async def answer(request: web.Request) -> web.Response:
            return web.Response(body=payload, content_type="application/json")

        app = web.Application()
        app.router.add_get("/api/handles/{handle:.+}", answer)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", port, reuse_port=True, backlog=1024)
        await site.start()
        server = site._server  # noqa: SLF001 - the ephemeral port
        ready.send(server.sockets[0].getsockname()[1] if server is not None else port)  # type: ignore[attr-defined]
        await asyncio.Event().wait()

    _run(main)


def _run(main: Any) -> None:
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    asyncio.run(main())


def start_processes(target: Any, count: int, *args: Any) -> tuple[int, list[mp.process.BaseProcess]]:
    """`count` processes of `target` on one port (the first picks it); returns the port and the processes."""
    context = mp.get_context("spawn")
    port, processes = 0, []
    for _ in range(count):
        receiver, sender = context.Pipe(duplex=False)
        process = context.Process(target=target, args=(port, *args, sender), daemon=True)
        process.start()
        processes.append(process)
        if not receiver.poll(60):
            raise RuntimeError("a server process did not start within 60 s")
        port = receiver.recv()
    return port, processes


def wrk(url: str, duration: int, connections: int = 32) -> dict[str, float]:
    """wrk -t1 -cN -dS --latency: requests/s and the p50 / p99 latency in ms."""
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", url],
                         capture_output=True, text=True, timeout=duration + 30, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    result = {"rps": rate}
    for percent in ("50", "99"):
        match = re.search(rf"^\s+{percent}%\s+([\d.]+)(us|ms|s)\s*$", out, re.MULTILINE)
        if match:
            scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[match.group(2)]
            result[f"p{percent}_ms"] = round(float(match.group(1)) * scale, 3)
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    result["non_2xx"] = float(errors.group(1)) if errors else 0.0
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--processes", type=int, choices=(1, 2), default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    node_port, nodes = start_processes(serve_node, args.processes)
    processes = list(nodes)
    try:
        node_url = f"http://127.0.0.1:{node_port}{PATH}"
        with urllib.request.urlopen(node_url, timeout=10) as reply:  # noqa: S310 - loopback
            payload = reply.read()
        bare_port, bares = start_processes(serve_bare, args.processes, payload)
        processes += bares
        bare_url = f"http://127.0.0.1:{bare_port}{PATH}"
        for url in (node_url, bare_url):
            wrk(url, args.warmup)
        rounds = []
        for number in range(1, args.rounds + 1):
            load = os.getloadavg()[0]
            node = wrk(node_url, args.duration)
            bare = wrk(bare_url, args.duration)
            row = {"round": number, "load_1m_before": round(load, 2), "node": node, "bare": bare,
                   "ratio": round(node["rps"] / bare["rps"], 3)}
            rounds.append(row)
            print(json.dumps(row), flush=True)
        ratios = [row["ratio"] for row in rounds]
        summary = {
            "processes": args.processes, "payload_bytes": len(payload), "duration_s": args.duration,
            "command": f"wrk -t1 -c32 -d{args.duration}s --latency", "cpus": os.cpu_count(),
            "node_rps_median": statistics.median(row["node"]["rps"] for row in rounds),
            "bare_rps_median": statistics.median(row["bare"]["rps"] for row in rounds),
            "ratio_median": statistics.median(ratios), "ratios": ratios, "rounds": rounds,
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        print(json.dumps({key: value for key, value in summary.items() if key != "rounds"}), flush=True)
        if args.out is not None:
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / f"node-vs-bare-{args.processes}p.json").write_text(json.dumps(summary, indent=2) + "\n")
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.join(5)


if __name__ == "__main__":
    main()
