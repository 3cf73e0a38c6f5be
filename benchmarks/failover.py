"""Failover figures: resolution errors and latency, second by second, around killing a root or an enterprise primary.

    python benchmarks/failover.py [--out benchmarks/results/2026-11-22-failover] [--rate 200] [--before 3]
                                  [--after 6] [--timeout 0.5] [--identifiers 500]

Launches configs/small.toml in this process with a second root (root-beijing) and one mirror per enterprise, memory
stores and ephemeral ports, then for each scenario (a fresh topology each time):

- mode `iterative`: a client walks root -> secondary -> enterprise for every lookup (no client cache, one shared
  ServerHealth and keep-alive pool, as one client process would);
- mode `resolver`: every lookup is a GET at the topology's recursive resolver (its cache keeps prefix information, so
  only identifiers it has not seen walk, and only to the enterprise);
- victim `root` (root-qingdao) or `primary` (the busiest enterprise's primary, ent-88.101.1001);
- kill `stop`: the node's server stops (its port refuses connections, as a SIGKILLed process on a reachable host);
  kill `silent`: the node keeps accepting connections and reading requests but answers none (a hung host), so
  clients wait for the configured timeout.

Load is open-loop at `--rate` lookups/s over uniformly drawn identifiers of all enterprises; latency counts from the
scheduled send. The load generator shares the event loop with every node (one process), so absolute latencies are
higher and noisier than across processes; compare seconds within a run. Before the failover runs, the resolver's
cold and warm lookups are measured on the same topology (each identifier once, then again).
Writes `failover.md` and `failover.json` to --out.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


from handlesim.core.handle import Handle  # noqa: E402
from handlesim.core.health import ServerHealth  # noqa: E402
from handlesim.core.resolution import Resolution  # noqa: E402
from handlesim.core.transport import drive  # noqa: E402
from handlesim.net import rest  # noqa: E402
from handlesim.net.keepalive import KeepAlivePool, KeepAliveTransport, build_request  # noqa: E402
from handlesim.net.transport import SYSTEM_CLOCK  # noqa: E402
from handlesim.topology.config import load_config  # noqa: E402
from handlesim.topology.plan import build_plan  # noqa: E402
from handlesim.topology.runner import launch  # noqa: E402
from handlesim.topology.running import Topology  # noqa: E402
from handlesim.topology.schema import FailoverSpec, MirrorSpec, RootSpec  # noqa: E402
from handlesim.topology.seed import identifiers_for  # noqa: E402

VICTIMS = {"root": "root-qingdao", "primary": "ent-88.101.1001", "busiest": "ent-88.101.1001"}
"""`busiest`: whichever server of ent-88.101.1001's sites (primary or mirror) answered the most lookups in the
second before the kill. Clients order a site list by measured response time, so reads may already go to the mirror
and killing the primary then costs nothing; killing the server clients prefer shows the failover itself."""


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def start(args: argparse.Namespace, state: Path) -> Topology:
    config = load_config(ROOT / "configs" / "small.toml").with_overrides(
        base_port=0, identifiers_per_enterprise=args.identifiers)
    config = replace(config, roots=(*config.roots, RootSpec("root-beijing", "Beijing")),
                     mirrors=MirrorSpec(enterprise=1), failover=FailoverSpec(timeout=args.timeout), faults=True)
    return await launch(build_plan(config), state, store_kind="memory")


def all_handles(topology: Topology) -> list[Handle]:
    plan = topology.plan
    return [r.handle for e in plan.enterprises for r in identifiers_for(e, plan.config.seed)]


class Lookups:
    """One way of resolving (iterative client or resolver node), returning (ok, hops)."""

    def __init__(self, topology: Topology, mode: str, timeout: float) -> None:
        self.topology = topology
        self.mode = mode
        self.pool = KeepAlivePool(timeout=max(timeout * 4, 2.0) if mode == "resolver" else timeout)
        self.health = ServerHealth()
        resolver = topology.nodes["resolver-qingdao"]
        self.resolver = ("127.0.0.1", resolver.server.port)

    async def __call__(self, handle: Handle, trace: bool = False) -> tuple[bool, int]:
        if self.mode == "iterative":
            res = Resolution(handle, self.topology.root_sites, health=self.health, now=time.time())
            await drive(res, KeepAliveTransport(self.pool), SYSTEM_CLOCK)
            return bool(res.result is not None and res.result.ok), res.hops
        host, port = self.resolver
        path = rest.path_for(handle) + ("?trace=true" if trace else "")
        status, body = await self.pool.request(host, port, build_request("GET", host, port, path))
        hops = 0
        if trace and status == 200:
            import msgpack

            hops = int(msgpack.unpackb(body).get("hops", 0))
        return status == 200, hops

    def close(self) -> None:
        self.pool.close()


async def resolver_cold_warm(topology: Topology, handles: list[Handle], count: int) -> dict[str, Any]:
    """Each of `count` identifiers through the resolver twice: first a walk (cold), then from its cache (warm)."""
    lookups = Lookups(topology, "resolver", 0.5)
    chosen = random.Random(1).sample(handles, min(count, len(handles)))
    result: dict[str, Any] = {}
    try:
        for phase in ("cold", "warm"):
            latencies, hops = [], []
            for handle in chosen:  # one at a time: latency of a lookup, not of a queue
                started = time.perf_counter()
                ok, n = await lookups(handle, trace=True)
                latencies.append((time.perf_counter() - started) * 1000)
                hops.append(n)
                assert ok, handle.text
            result[phase] = {"lookups": len(chosen), "p50_ms": round(percentile(latencies, 0.5), 3),
                             "p99_ms": round(percentile(latencies, 0.99), 3),
                             "hops_per_lookup": round(statistics.mean(hops), 3)}
    finally:
        lookups.close()
    return result


def answered_by(topology: Topology, victim: str) -> dict[str, int]:
    """Requests answered so far by the victim and its alternatives (the other root, or the mirror)."""
    first = VICTIMS[victim]
    candidates = [first, *topology.plan.mirrors_of(first)] if victim != "root" else [first, "root-beijing"]
    return {c: int(topology.nodes[c].server.stats().requests_total) for c in candidates}


def victim_of(topology: Topology, victim: str, earlier: dict[str, int]) -> tuple[str, dict[str, int]]:
    """The node to kill, and how many requests each candidate answered in the second before."""
    now = answered_by(topology, victim)
    recent = {node: count - earlier.get(node, 0) for node, count in now.items()}
    return (max(recent, key=lambda c: recent[c]) if victim == "busiest" else VICTIMS[victim]), recent


async def kill(topology: Topology, victim: str, how: str) -> None:
    """`stop`: the node's server stops (connections refused or closed). `silent`: in one step, with no window in
    which a connection could be refused, the node keeps accepting connections and reading requests but answers
    none of them (a hung host: the fault controller's `pause`, until the topology stops)."""
    node = topology.nodes[victim]
    if how == "stop":
        await node.server.stop()
        return
    assert topology.faults is not None, "the topology is launched with fault injection on"
    await topology.faults.apply({"action": "pause", "node": victim})


async def scenario(args: argparse.Namespace, mode: str, victim: str, how: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        topology = await start(args, Path(tmp) / "state")
        lookups = Lookups(topology, mode, args.timeout)
        handles = all_handles(topology)
        rng = random.Random(7)
        samples: list[tuple[float, float, bool]] = []  # (scheduled at, latency s, ok)
        killing: asyncio.Future[None] | None = None
        tasks: set[asyncio.Task[None]] = set()
        killed_node, answered = "", {}
        earlier: dict[str, int] | None = None

        async def one(at: float, handle: Handle) -> None:
            try:
                ok, _ = await lookups(handle)
            except Exception:  # noqa: BLE001 - a broken lookup is an error in the table, not a crash
                ok = False
            samples.append((at, time.perf_counter() - at, ok))

        try:
            began = time.perf_counter()
            kill_at = began + args.before
            end = kill_at + args.after
            sent = 0
            while (now := time.perf_counter()) < end:
                if earlier is None and now >= kill_at - 1:
                    earlier = answered_by(topology, victim)
                if killing is None and now >= kill_at:  # in the background: the load keeps its schedule
                    killed_node, answered = victim_of(topology, victim, earlier or {})
                    killing = asyncio.ensure_future(kill(topology, killed_node, how))
                due = began + sent / args.rate
                if due > now:
                    await asyncio.sleep(due - now)
                    continue
                task = asyncio.ensure_future(one(due, rng.choice(handles)))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                sent += 1
            if tasks:
                await asyncio.wait(tasks, timeout=max(10.0, args.timeout * 10))
        finally:
            lookups.close()
            if killing is not None:
                await killing
            await topology.stop()
    return {"mode": mode, "victim": killed_node, "kill": how, "answered_before_kill": answered,
            "seconds": per_second(samples, kill_at, began, args.timeout)}


def per_second(samples: list[tuple[float, float, bool]], kill_at: float, began: float,
               timeout: float) -> list[dict[str, Any]]:
    rows = []
    first = -int(kill_at - began)
    last = max((int(at - kill_at + 1e-9) if at >= kill_at else -1 for at, _, _ in samples), default=0)
    for second in range(first, last + 1):
        bucket = [(lat, ok) for at, lat, ok in samples if second <= (at - kill_at) < second + 1]
        latencies = [lat * 1000 for lat, ok in bucket if ok]
        rows.append({"second": second, "lookups": len(bucket), "errors": sum(1 for _, ok in bucket if not ok),
                     "over_timeout": sum(1 for lat, _ in bucket if lat >= timeout),
                     "p50_ms": round(percentile(latencies, 0.5), 2), "p99_ms": round(percentile(latencies, 0.99), 2),
                     "max_ms": round(max(latencies), 2) if latencies else float("nan")})
    return rows


def markdown(report: dict[str, Any]) -> str:
    args = report["args"]
    lines = [f"# Failover figures ({report['date']})", "",
             f"`{report['command']}`", "",
             f"small.toml + root-beijing + 1 mirror per enterprise, {args['identifiers']} identifiers per enterprise, "
             f"memory stores, failover timeout {args['timeout']} s, {args['rate']} lookups/s open loop, uniform keys. "
             "Load generator and all nodes share one event loop: compare seconds within a run.", ""]
    cold_warm = report.get("resolver_cold_warm")
    if cold_warm:
        lines += ["## Resolver: cold vs warm (same run, one lookup at a time)", "",
                  "| phase | lookups | p50 ms | p99 ms | upstream hops per lookup |", "|---|---|---|---|---|"]
        for phase, row in cold_warm.items():
            lines.append(f"| {phase} | {row['lookups']} | {row['p50_ms']} | {row['p99_ms']} | "
                         f"{row['hops_per_lookup']} |")
        lines.append("")
    for run in report["runs"]:
        share = ", ".join(f"{node} {count}" for node, count in run["answered_before_kill"].items())
        lines += [f"## {run['mode']}: {run['victim']} killed ({run['kill']}) at second 0", "",
                  f"Requests answered in the second before the kill: {share}.", "",
                  "| second | lookups | errors | waited >= timeout | p50 ms | p99 ms | max ms |",
                  "|---|---|---|---|---|---|---|"]
        for row in run["seconds"]:
            lines.append(f"| {row['second']:+d} | {row['lookups']} | {row['errors']} | {row['over_timeout']} | "
                         f"{row['p50_ms']} | "
                         f"{row['p99_ms']} | {row['max_ms']} |")
        lines.append("")
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    report: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                              "command": "python benchmarks/failover.py " + " ".join(sys.argv[1:]),
                              "args": vars(args), "runs": []}
    if args.cold_warm:
        with tempfile.TemporaryDirectory() as tmp:
            topology = await start(args, Path(tmp) / "state")
            try:
                report["resolver_cold_warm"] = await resolver_cold_warm(topology, all_handles(topology),
                                                                        args.cold_warm)
            finally:
                await topology.stop()
    for mode in args.modes.split(","):
        for victim in args.victims.split(","):
            for how in args.kills.split(","):
                run = await scenario(args, mode, victim, how)
                report["runs"].append(run)
                worst = max(run["seconds"], key=lambda r: r["errors"])
                print(f"{mode:<9} {victim:<7} {how:<6} worst second {worst['second']:+d}: {worst['errors']} errors; "
                      f"p99 at +0 {next(r['p99_ms'] for r in run['seconds'] if r['second'] == 0)} ms", flush=True)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="benchmarks/results/2026-11-22-failover")
    parser.add_argument("--rate", type=float, default=200.0, help="lookups per second (open loop)")
    parser.add_argument("--before", type=float, default=3.0, help="seconds of load before the kill")
    parser.add_argument("--after", type=float, default=6.0, help="seconds of load after the kill")
    parser.add_argument("--timeout", type=float, default=0.5, help="failover timeout of clients and the resolver")
    parser.add_argument("--identifiers", type=int, default=500, help="identifiers per enterprise")
    parser.add_argument("--modes", default="iterative,resolver")
    parser.add_argument("--victims", default="root,primary,busiest")
    parser.add_argument("--kills", default="stop,silent")
    parser.add_argument("--cold-warm", type=int, default=300, help="identifiers for the resolver cold/warm figure "
                        "(0 = skip)")
    args = parser.parse_args()
    try:
        import uvloop

        report = uvloop.run(main_async(args))
    except ImportError:
        report = asyncio.run(main_async(args))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "failover.json").write_text(json.dumps(report, indent=1))
    (out / "failover.md").write_text(markdown(report))
    print(f"wrote {out / 'failover.md'} and {out / 'failover.json'}")


if __name__ == "__main__":
    main()
