"""What authentication costs a write: an authenticated PUT at enterprise 88.101.1001 of the small topology, timed
from the client, for a foreign identity (the secondary's admin, verified by its key holder) and a local one.

    python benchmarks/auth_cost.py [--requests 200] [--tls]

Prints a Markdown table (p50 / p99 in ms). Sequential requests, one connection, memory stores.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import aiohttp

from handlesim.net.client import basic_authorization
from handlesim.topology.config import load_config
from handlesim.topology.plan import build_plan
from handlesim.topology.runner import launch
from handlesim.topology.running import RunningNode

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "small.toml"




async def measure(requests: int, tls: bool) -> list[tuple[str, float, float]]:
    config = load_config(CONFIG).with_overrides(base_port=0)
    with tempfile.TemporaryDirectory() as tmp:
        topology = await launch(build_plan(config), Path(tmp) / "state", store_kind="memory", tls=tls)
        try:
            def node(prefix: str) -> RunningNode:
                return next(n for n in topology.nodes.values() if n.plan.prefix == prefix)
            enterprise, secondary = node("88.101.1001"), node("88.101")
            foreign = basic_authorization("300:0.NA/88.101", secondary.plan.secret)
            local = basic_authorization("300:0.NA/88.101.1001", enterprise.plan.secret)
            authenticator = enterprise.server.authenticator
            remote = authenticator.remote
            assert remote is not None
            body = [{"index": 1, "type": "URL", "data": "https://example.cn/x"}]
            cases = [("foreign identity, cold: walk + challenge + proof", foreign, "holder"),
                     ("foreign identity, holder known: challenge + proof", foreign, "verdict"),
                     ("foreign identity, verdict remembered", foreign, ""),
                     ("local key, verdict remembered", local, "")]
            rows = []
            connector = aiohttp.TCPConnector(ssl=topology.client_ssl if topology.client_ssl else True)
            async with aiohttp.ClientSession(connector=connector) as http:
                for number, (name, header, forget) in enumerate(cases):
                    times = []
                    for i in range(requests):
                        if forget:
                            authenticator._foreign.clear()  # noqa: SLF001 - measuring the uncached path
                        if forget == "holder":
                            remote._holders.clear()  # noqa: SLF001
                        started = time.perf_counter()
                        async with http.put(f"{enterprise.url}/api/handles/88.101.1001/AUTH-{number}-{i}",
                                            json=body, headers={"Authorization": header}) as reply:
                            assert reply.status == 200, await reply.text()
                        times.append((time.perf_counter() - started) * 1000)
                    times.sort()
                    rows.append((name, statistics.median(times), times[max(int(len(times) * 0.99) - 1, 0)]))
            return rows
        finally:
            await topology.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--tls", action="store_true")
    args = parser.parse_args()
    rows = asyncio.run(measure(args.requests, args.tls))
    print(f"{args.requests} sequential PUTs per row{' over HTTPS' if args.tls else ''}\n")
    print("| authentication | p50 ms | p99 ms |\n|---|---:|---:|")
    for name, p50, p99 in rows:
        print(f"| {name} | {p50:.2f} | {p99:.2f} |")


if __name__ == "__main__":
    main()
