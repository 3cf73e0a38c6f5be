"""Running a benchmark: spread the offered rate over generator processes, merge what they measured, add the bare
route baseline and the nodes' own statistics, and (with --max) search for the highest rate within bounds."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from importlib.metadata import version
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from ..core import latency as server_latency
from ..net.client import basic_authorization
from ..net.shaping import NetPath
from ..net.tls import TlsFiles, tls_files
from ..topology.network import NetModeError, client_path
from ..topology.plan import Role
from ..topology.running import LaunchError
from ..topology.state import TopologyState, load_state
from .baseline import BaselineServer
from .generator import MODES, NATIVE_MODES, PROTOCOLS, WorkerSpec, run_worker
from .recording import merge_encoded, new_histogram, spectrum, summarize
from .scenario import Scenario, load_scenario, post_fault
from .workload import Target, seeded_targets

SCHEMA_VERSION = 1
MAX_SEARCH_P99_MS = 10.0
"""`bench --max`: the highest rate whose p99 stays within this many milliseconds..."""
MAX_SEARCH_ERROR_RATE = 0.001
"""...and whose share of errors stays within this."""
MAX_SEARCH_TRIES = 2
"""...in at least one of this many trials at that rate (a rate fails when this many trials in a row fail)."""


@dataclass(frozen=True)
class BenchConfig:
    """One benchmark run; the CLI builds it from options."""

    mode: str = "direct"
    """direct | iterative-cold | iterative-warm | resolver | mixed (see docs/benchmarks.md)."""
    rate: float = 2000.0
    """Offered requests (lookups) per second, over all generator processes."""
    duration: float = 10.0
    """Measured seconds (after the warm-up)."""
    warmup: float = 2.0
    """Seconds of load before measuring (caches fill, connections open)."""
    connections: int = 32
    """Keep-alive connections per generator process."""
    processes: int = 1
    """Generator processes."""
    arrival: str = "constant"
    """constant | poisson inter-arrival times."""
    distribution: str = "uniform"
    """uniform | zipf key popularity."""
    zipf_s: float = 1.0
    """Zipf exponent."""
    keys: int = 0
    """Draw from this many seeded identifiers (0 = all)."""
    write_fraction: float = 0.05
    """mixed mode: share of requests that are authenticated creates."""
    timeout: float = 5.0
    """Seconds before a request counts as timed out."""
    seed: int = 1
    baseline: bool = True
    """Also measure the bare aiohttp route at the same rate, in the same run."""
    baseline_cpu: int | None = None
    """Pin the bare route's process to this CPU (the topology's, when the topology is pinned: `taskset -c`)."""
    net: str | None = None
    """loopback | model for the generator's own hops; None: as the running topology (docs/network-and-faults.md)."""
    client_region: str = ""
    """Where the generator sits in the network model (default: the model's client_region)."""
    scenario: str = ""
    """A scenario TOML file whose fault events fire during the measured window (needs fault injection on)."""
    ray_address: str | None = None
    """Run the generator processes as Ray tasks on this cluster (`local`: a Ray instance on this machine);
    None: a local process pool."""
    protocol: str = "rest"
    """How the generator talks to the nodes: `rest` (msgpack GETs) or `native` (the Handle protocol, RFC 3652)."""
    native_transport: str = "udp"
    """With the native protocol: `udp` (with Handle.Net's retries, then TCP) or `tcp` only."""


Progress = Callable[[str], None]


def run_bench(state: TopologyState, config: BenchConfig, progress: Progress | None = None) -> dict[str, Any]:
    """Measure `config.mode` against the running topology, then the bare route; return the result document."""
    if config.mode not in MODES or config.mode == "baseline":
        choices = ", ".join(m for m in MODES if m != "baseline")
        raise ValueError(f"unknown mode {config.mode!r}; choose one of {choices}")
    _check_protocol(state, config)
    scenario = _scenario(state, config)
    net = _net_path(state, config)
    targets = seeded_targets(state, config.keys)
    before = _node_stats(state, config.mode)
    initial = server_timers(state)
    window: list[ServerTimers] = []  # taken as the measured window opens, once every worker is there
    started = time.time()
    measured = _measure(state, config, targets, progress, on_window=lambda: window.append(server_timers(state)))
    after = _node_stats(state, config.mode)
    closed = server_timers(state)
    opened = window[0] if window else initial  # (on Ray no window signal comes: then from before the warm-up)
    result: dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "kind": "handlesim-bench",
        "started_at": started,
        "config": asdict(config),
        "topology": {"name": state.name, "nodes": len(state.nodes),
                     "roles": dict(Counter(n.role.value for n in state.nodes)), "keys": len(targets)},
        "net": "model" if net is not None and net.model is not None else "loopback",
        "network": {"topology_net": state.net,
                    "client_region": net.region if net is not None and net.model is not None else None},
        "machine": machine(),
        "versions": versions(),
        "run": measured,
        "nodes": _with_server_time(_stats_delta(before, after), opened.nodes, closed.nodes),
    }
    cpu = topology_cpu(window[0], closed, measured, config.duration) if window else None
    if cpu is not None:
        result["topology_cpu"] = cpu
    if scenario is not None:
        result["scenario"] = scenario.to_dict()
        result["events"] = measured.get("events", [])
    if config.baseline:
        result["baseline"] = _baseline(state, config, targets, progress)
        result["ratios"] = ratios(measured, result["baseline"])
    return result


def _measure(state: TopologyState, config: BenchConfig, targets: list[Target], progress: Progress | None,
             *, baseline: tuple[str, int] | None = None, on_window: Callable[[], None] | None = None,
             ) -> dict[str, Any]:
    mode = "baseline" if baseline is not None else config.mode
    if progress is not None:
        progress(f"{mode}: {config.rate:g}/s offered for {config.duration:g} s (+{config.warmup:g} s warm-up), "
                 f"{config.processes} generator process(es) x {config.connections} connections")
    if config.ray_address is not None:  # no live progress line: the tasks may run on other machines
        from .ray_tasks import run_on_ray

        specs = [_spec(state, config, targets, mode, worker, baseline) for worker in range(config.processes)]
        try:
            parts = run_on_ray(specs, config.ray_address)
        finally:
            if specs[0].events:
                _heal_after(state, config, progress)
        return merge_parts(parts, config)
    context = get_context("spawn")
    with context.Manager() as manager, ProcessPoolExecutor(config.processes, mp_context=context) as pool:
        queue = manager.Queue() if progress is not None or on_window is not None else None
        specs = [replace(_spec(state, config, targets, mode, worker, baseline), progress=queue)
                 for worker in range(config.processes)]
        futures = [pool.submit(run_worker, spec) for spec in specs]
        try:
            if queue is not None:
                _relay_progress(queue, futures, config.processes, progress, on_window)
            parts = [f.result() for f in futures]
        finally:
            if specs[0].events:
                _heal_after(state, config, progress)
    return merge_parts(parts, config)


def _check_protocol(state: TopologyState, config: BenchConfig) -> None:
    if config.protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {config.protocol!r}; choose one of {', '.join(PROTOCOLS)}")
    if config.protocol != "native":
        return
    if config.mode not in NATIVE_MODES:
        raise ValueError(f"--mode {config.mode} runs over REST only (its writes authenticate with HTTP Basic); over "
                         f"the native protocol use one of {', '.join(NATIVE_MODES)}")
    if not any(n.native_port for n in state.nodes):
        raise ValueError("the running topology's nodes do not speak the native protocol (started with "
                         "`up --no-native`)")


def _scenario(state: TopologyState, config: BenchConfig) -> Scenario | None:
    """The scenario of the run, checked against the topology (fault injection on) and the duration."""
    if not config.scenario:
        return None
    scenario = load_scenario(config.scenario)
    if state.control_url is None:
        raise ValueError(f"{config.scenario}: the topology runs without fault injection; start it with "
                         "`handlesim up --faults` (bench --config starts it so when given --scenario)")
    late = [e for e in scenario.events if e.at >= config.duration]
    if late:
        raise ValueError(f"{config.scenario}: events at {', '.join(f'{e.at:g}' for e in late)} s fall after the "
                         f"measured window ({config.duration:g} s); raise --duration")
    return scenario


def _net_path(state: TopologyState, config: BenchConfig) -> NetPath | None:
    try:
        return client_path(state, config.net, region=config.client_region or None, timeout=config.timeout)
    except NetModeError as exc:
        raise ValueError(str(exc)) from None


def _heal_after(state: TopologyState, config: BenchConfig, progress: Progress | None) -> None:
    scenario = load_scenario(config.scenario)
    if scenario.heal_at_end and state.control_url is not None:
        ok, message = post_fault(state.control_url, {"action": "heal"})
        if progress is not None:
            progress(f"scenario over: heal {'done' if ok else 'failed: ' + message}")


def _relay_progress(queue: Any, futures: list[Any], processes: int, progress: Progress | None,
                    on_window: Callable[[], None] | None = None) -> None:
    """Turn the workers' once-a-second reports into one live line (rate so far, p99 of the last second, errors);
    call `on_window` once every worker's measured window has opened."""
    latest: dict[int, tuple[float, int, int, float | None]] = {}
    opened: set[int] = set()
    while not all(f.done() for f in futures):
        try:
            message = queue.get(timeout=0.5)
        except Exception:  # queue.Empty through the manager proxy
            continue
        if len(message) == 2:  # (worker, "window"): its measured window opened
            opened.add(message[0])
            if len(opened) == processes and on_window is not None:
                on_window()
                on_window = None
            continue
        worker, elapsed, completed, errors, p99 = message
        latest[worker] = (elapsed, completed, errors, p99)
        if progress is not None and len(latest) == processes and elapsed > 0:
            done = sum(v[1] for v in latest.values())
            failed = sum(v[2] for v in latest.values())
            worst = max((v[3] for v in latest.values() if v[3] is not None), default=None)
            p99_text = f"{worst:.2f} ms" if worst is not None else "-"
            progress(f"\r  {elapsed:5.1f} s  {done / elapsed:8.0f}/s  p99 {p99_text}  errors {failed}")


def _spec(state: TopologyState, config: BenchConfig, targets: list[Target], mode: str, worker: int,
          baseline: tuple[str, int] | None) -> WorkerSpec:
    resolvers = state.with_role(Role.RESOLVER)
    resolver = (resolvers[0].host, resolvers[0].port) if resolvers else None
    if mode == "resolver" and resolver is None:
        raise ValueError("the running topology has no resolver node (add [[resolvers]] to its config)")
    credentials = {}
    if mode == "mixed":
        secrets = state.credentials_by_identity()
        credentials = {n.prefix: basic_authorization(n.identity, secrets[n.identity])
                       for n in state.with_role(Role.ENTERPRISE) if n.identity in secrets}
    scenario = _scenario(state, config) if baseline is None else None
    events = [{"at": e.at, "label": e.label, "body": e.body} for e in scenario.events] if scenario else []
    return WorkerSpec(
        mode=mode, rate=config.rate / config.processes, duration=config.duration, warmup=config.warmup,
        connections=config.connections, targets=targets, arrival=config.arrival, distribution=config.distribution,
        zipf_s=config.zipf_s, seed=config.seed, timeout=config.timeout, resolver=resolver, baseline=baseline,
        root_sites=state.root_sites, write_fraction=config.write_fraction, credentials=credentials, worker=worker,
        net=_net_path(state, config) if baseline is None else None, events=events,
        control_url=state.control_url or "", ca_file=str(state.tls.ca) if state.tls is not None else "",
        protocol=config.protocol if baseline is None else "rest", native_transport=config.native_transport,
        resolver_native=resolvers[0].native_port if resolvers else None)


def merge_parts(parts: list[dict[str, Any]], config: BenchConfig) -> dict[str, Any]:
    """One summary from the generator processes' histograms and counters."""
    latency = merge_encoded([p["latency"] for p in parts])
    outcomes: Counter[str] = Counter()
    for part in parts:
        outcomes.update(part["outcomes"])
    completed = sum(outcomes.values())
    errors = sum(n for code, n in outcomes.items() if code != "1")
    lookups = sum(p["lookups"] for p in parts)
    return {
        "offered_rate": config.rate,
        "achieved_rate": round(sum(p["in_window"] for p in parts) / config.duration, 1),
        "completed": completed,
        "errors": errors,
        "error_rate": round(errors / completed, 6) if completed else 0.0,
        "outcomes": dict(outcomes),
        "late_sends": sum(p["late"] for p in parts),
        "timeouts": outcomes.get("timeout", 0),
        "latency_ms": summarize(latency),
        "spectrum": spectrum(latency) if completed else [],
        "hops_per_lookup": round(sum(p["hops"] for p in parts) / lookups, 3) if lookups else None,
        "writes": sum(p.get("writes", 0) for p in parts),
        "timeline": _timeline(parts),
        "events": sorted((e for p in parts for e in p.get("events", [])), key=lambda e: float(e["second"])),
        "goodput": round(sum(p.get("good", 0) for p in parts) / config.duration, 1),
        "latency_ok_ms": summarize(merge_encoded([p["latency_ok"] for p in parts if "latency_ok" in p])),
    }


def _timeline(parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seconds = sorted({int(s) for p in parts for s in p["per_second"]})
    rows = []
    for second in seconds:
        hist = new_histogram(2)
        done = errors = 0
        for part in parts:
            bucket = part["per_second"].get(second)
            if bucket is not None:
                done += bucket[0]
                errors += bucket[1]
                hist.decode_and_add(bucket[2])
        rows.append({"second": second, "completed": done, "errors": errors,
                     "p99_ms": hist.get_value_at_percentile(99) / 1000 if done else None,
                     "p50_ms": hist.get_value_at_percentile(50) / 1000 if done else None})
    return rows


def _baseline(state: TopologyState, config: BenchConfig, targets: list[Target],
              progress: Progress | None) -> dict[str, Any]:
    payload = _sample_answer(state, targets[0])
    server = BaselineServer(payload, tls=_server_tls(state), cpu=config.baseline_cpu)
    try:
        base_config = replace(config, mode="direct")
        measured = _measure(state, base_config, targets, progress, baseline=(server.host, server.port))
    finally:
        server.stop()
    measured["payload_bytes"] = len(payload)
    return measured


def _sample_answer(state: TopologyState, target: Target) -> bytes:
    """A real direct answer, so the bare route sends the same bytes."""
    scheme = "https" if state.tls is not None else "http"
    request = urllib.request.Request(f"{scheme}://{target.host}:{target.port}{target.path}",
                                     headers={"Accept": "application/msgpack"})
    with urllib.request.urlopen(request, timeout=5, context=state.ssl_context()) as reply:  # noqa: S310 - loopback
        return bytes(reply.read())


def _server_tls(state: TopologyState) -> TlsFiles | None:
    """The topology's certificate files, for a bare route that pays the same TLS costs as the nodes (`up --tls`)."""
    return tls_files(state.tls.ca.parent) if state.tls is not None else None


def _node_json(state: TopologyState, url: str, timeout: float) -> Any:
    """GET a node's simulator JSON (over HTTPS pinning the topology's CA when it serves TLS)."""
    context = state.ssl_context() if url.startswith("https:") else None
    with urllib.request.urlopen(url, timeout=timeout, context=context) as reply:  # noqa: S310 - loopback URLs
        return json.loads(reply.read())


def ratios(run: dict[str, Any], base: dict[str, Any]) -> dict[str, float | None]:
    def ratio(a: float | None, b: float | None) -> float | None:
        return round(a / b, 3) if a is not None and b else None

    return {
        "achieved_rate": ratio(run["achieved_rate"], base["achieved_rate"]),
        "p50": ratio(run["latency_ms"].get("p50_ms"), base["latency_ms"].get("p50_ms")),
        "p99": ratio(run["latency_ms"].get("p99_ms"), base["latency_ms"].get("p99_ms")),
    }


def find_max_rate(state: TopologyState, config: BenchConfig, *, p99_ms: float = MAX_SEARCH_P99_MS,
                  max_error_rate: float = MAX_SEARCH_ERROR_RATE, start: float = 1000.0, tries: int = MAX_SEARCH_TRIES,
                  progress: Progress | None = None, bare_route: bool = False) -> dict[str, Any]:
    """Like resperf: raise the offered rate until p99, errors or achieved rate break the bounds, then bisect.

    A rate fails only when `tries` trials at it in a row break a bound: with a p99 bound of a few milliseconds one
    stall (a collection, another process taking the core) fails a short trial at any rate, and a search that stops
    at the first such trial measures the stall's luck, not the rate (RFC 9971, MLRsearch, tolerates failing trials
    the same way with its goal exceed ratio). Every trial is kept in `trials`, the repeats too.
    With `bare_route`, the same search runs against the bare aiohttp route (for a max-throughput ratio)."""
    targets = seeded_targets(state, config.keys)
    server = BaselineServer(_sample_answer(state, targets[0]), tls=_server_tls(state), cpu=config.baseline_cpu) \
        if bare_route else None
    trials: list[dict[str, Any]] = []

    def trial(rate: float, attempt: int) -> bool:
        # each trial draws other keys (seed + trial number): the same seed would repeat the earlier trials' keys,
        # whose answers the nodes then hold, and a first-time search would turn warm after its first trial
        measured = _measure(state, replace(config, rate=rate, seed=config.seed + len(trials)), targets, progress,
                            baseline=(server.host, server.port) if server is not None else None)
        ok = within_bounds(measured, rate, p99_ms=p99_ms, max_error_rate=max_error_rate)
        trials.append({"rate": rate, "ok": ok, "attempt": attempt, "achieved_rate": measured["achieved_rate"],
                       "p99_ms": measured["latency_ms"].get("p99_ms"), "error_rate": measured["error_rate"]})
        return ok

    try:
        good = search_rate(trial, start=start, tries=tries)
    finally:
        if server is not None:
            server.stop()
    return {"max_rate": round(good, 1), "bounds": {"p99_ms": p99_ms, "error_rate": max_error_rate}, "tries": tries,
            "trials": trials}


def within_bounds(measured: dict[str, Any], rate: float, *, p99_ms: float = MAX_SEARCH_P99_MS,
                  max_error_rate: float = MAX_SEARCH_ERROR_RATE) -> bool:
    """Whether one measured run at offered `rate` passes a `--max` trial: p99 and error share within the bounds,
    and at least 95% of the offered rate achieved."""
    p99 = measured["latency_ms"].get("p99_ms")
    return bool(p99 is not None and p99 <= p99_ms and measured["error_rate"] <= max_error_rate
                and measured["achieved_rate"] >= 0.95 * rate)


def search_rate(trial: Callable[[float, int], bool], *, start: float, tries: int = MAX_SEARCH_TRIES,
                bisections: int = 4) -> float:
    """The highest passing rate: from `start`, x1.5 until a rate fails, then `bisections` halvings between the last
    pass and the first failure. `trial(rate, attempt)` measures once; a rate fails when `tries` attempts in a row
    do. 0 when `start` itself fails."""

    def within(rate: float) -> bool:
        return any(trial(rate, attempt) for attempt in range(1, tries + 1))

    good, bad = 0.0, None
    rate = start
    while bad is None and rate < 1e6:
        if within(rate):
            good, rate = rate, rate * 1.5
        else:
            bad = rate
    if bad is not None:
        for _ in range(bisections):
            middle = (good + bad) / 2
            if within(middle):
                good = middle
            else:
                bad = middle
    return good


def _node_stats(state: TopologyState, mode: str) -> dict[str, Any]:
    """`/_sim/stats` of the nodes that matter for the mode (resolvers; roots and secondaries for iterative)."""
    roles = {"resolver": (Role.RESOLVER,), "iterative-cold": (Role.ROOT, Role.SECONDARY),
             "iterative-warm": (Role.ROOT, Role.SECONDARY)}.get(mode, ())
    out = {}
    for node in state.nodes:
        if node.role in roles:
            try:
                out[node.id] = _node_json(state, node.url + "/_sim/stats", 5)
            except OSError:
                out[node.id] = {}
    return out


def _stats_delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """Per role: requests served during the run, and the resolver cache's hit ratio."""
    by_role: dict[str, dict[str, float]] = {}
    for node_id, stats in after.items():
        if not stats:
            continue
        role = stats.get("role", "?")
        served = stats.get("requests_total", 0) - before.get(node_id, {}).get("requests_total", 0)
        row = by_role.setdefault(role, {"requests": 0})
        row["requests"] += served
        cache_now, cache_then = stats.get("resolver_cache"), before.get(node_id, {}).get("resolver_cache")
        if role == "resolver" and cache_now and cache_then:
            hits = cache_now["hits"] - cache_then["hits"]
            misses = cache_now["misses"] - cache_then["misses"]
            walks = cache_now["walks"] - cache_then["walks"]
            row["cache_hit_ratio"] = round(hits / (hits + misses), 4) if hits + misses else 0.0
            row["hops_per_lookup"] = round((cache_now["upstream_requests"] - cache_then["upstream_requests"]) /
                                           walks, 3) if walks else 0.0
    return by_role


@dataclass
class ServerTimers:
    """What the topology's processes say at one moment: every node's timers by node id, and each process's CPU
    seconds so far by (metrics URL, process id): unique across machines, and a restarted process is another one
    (empty when the nodes were asked one by one)."""

    nodes: dict[str, dict[str, Any]]
    cpu_seconds: dict[tuple[str, int], float]
    at: float = field(default_factory=time.monotonic)


def server_timers(state: TopologyState) -> ServerTimers:
    """Every node's server-side timers: one request to each process's metrics port when topology.json names it
    (with the process's CPU time), else each node's `/_sim/stats`."""
    urls = state.metrics_endpoints
    out: dict[str, dict[str, Any]] = {}
    cpu: dict[tuple[str, int], float] = {}
    try:
        for url in urls:
            with urllib.request.urlopen(url.rsplit("/metrics", 1)[0] + "/timers", timeout=10) as reply:  # noqa: S310
                answer = json.loads(reply.read())
            out.update({n["node"]: n for n in answer["nodes"]})
            if "process" in answer:
                cpu[url, int(answer["process"]["pid"])] = float(answer["process"]["cpu_seconds"])
        if urls:
            return ServerTimers(out, cpu)
    except (OSError, ValueError, KeyError, TypeError):
        out.clear()
        cpu.clear()
    for node in state.nodes:
        try:
            out[node.id] = _node_json(state, node.url + "/_sim/stats", 5)
        except (OSError, ValueError):
            continue
    return ServerTimers(out, {})


def topology_cpu(opened: ServerTimers, closed: ServerTimers, measured: dict[str, Any],
                 duration: float) -> dict[str, Any] | None:
    """CPU seconds the topology's processes spent from the measured window's start until every answer was in, per
    answer counted in the window (reports, monitoring and anything else the nodes did meanwhile included), and the
    cores that kept busy: what a lookup costs the topology, whatever core it ran on. None when the processes did
    not say (nodes asked one by one, a process restarted)."""
    processes = opened.cpu_seconds.keys() & closed.cpu_seconds.keys()
    if not processes or processes != closed.cpu_seconds.keys():
        return None
    seconds = sum(closed.cpu_seconds[process] - opened.cpu_seconds[process] for process in processes)
    answered = measured["achieved_rate"] * duration
    return {"processes": len(processes), "seconds": round(seconds, 3),
            "per_lookup_us": round(seconds / answered * 1e6, 1) if answered else None,
            "busy_cores": round(seconds / max(closed.at - opened.at, duration), 3)}


def _with_server_time(by_role: dict[str, Any], before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """Add, per role, the nodes' own server-side time over the measured window (from their latency buckets)."""
    per_role_op: dict[tuple[str, str], list[list[int]]] = {}
    for node_id, stats in after.items():
        role = stats.get("role", "?")
        then = before.get(node_id, {}).get("latency", {})
        for op, snapshot in stats.get("latency", {}).items():
            window = server_latency.subtract(server_latency.counts_from_snapshot(snapshot),
                                             server_latency.counts_from_snapshot(then.get(op, {})))
            per_role_op.setdefault((role, op), []).append(window)
    for (role, op), parts in sorted(per_role_op.items()):
        counts = server_latency.merge(parts)
        total = sum(counts)
        if not total:
            continue
        p50, p99 = server_latency.percentile(counts, 50), server_latency.percentile(counts, 99)
        row = by_role.setdefault(role, {})
        row.setdefault("server_time", {})[op] = {
            "requests": total, "p50_ms": round((p50 or 0.0) * 1000, 4), "p99_ms": round((p99 or 0.0) * 1000, 4)}
    return by_role


def machine() -> dict[str, Any]:
    return {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
            "processor": platform.processor() or platform.machine(), "cpu_model": _cpu_model()}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def versions() -> dict[str, str]:
    out = {}
    for package in ("handlesim", "aiohttp", "msgpack", "uvloop", "hdrhistogram"):
        try:
            out[package] = version(package)
        except Exception:  # not installed
            out[package] = ""
    return out


@contextmanager
def started_topology(config_path: Path, *, identifiers: int | None = None, net: str = "loopback",
                     network_file: Path | None = None, faults: bool = False) -> Iterator[TopologyState]:
    """Start `handlesim up` (memory stores, ephemeral ports) in its own process for the benchmark, stop it after.

    `net` is the nodes' network mode (loopback for raw benchmarks unless asked); `faults` turns fault injection on
    (scenarios). An `up` that exits before it is ready raises LaunchError with what it printed as its error."""
    with tempfile.TemporaryDirectory(prefix="handlesim-bench-") as tmp:
        state_dir = Path(tmp) / "state"
        command = [sys.executable, "-m", "handlesim.cli", "up", "--config", str(config_path), "--store", "memory",
                   "--base-port", "0", "--state-dir", str(state_dir)]
        if identifiers is not None:
            command += ["--identifiers", str(identifiers)]
        command += ["--net", net] + (["--network", str(network_file)] if network_file else [])
        command += ["--faults"] if faults else []
        errors_path = Path(tmp) / "up.err"
        # a file, not a pipe: nobody reads up's stderr while the benchmark runs, and a full pipe would block it
        with errors_path.open("w") as errors:
            proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors, text=True)
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                if line.startswith("ready:"):
                    break
            else:
                proc.wait(30)
                raise LaunchError(f"`handlesim up --config {config_path}` exited before it was ready: "
                                  f"{_last_error(errors_path)}")
            yield load_state(state_dir)
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()


def _last_error(path: Path) -> str:
    """The `Error: ...` line `up` printed (or its last line; 'no message' when it printed nothing)."""
    lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    errors = [line.removeprefix("Error: ") for line in lines if line.startswith("Error: ")]
    return errors[-1] if errors else lines[-1] if lines else "no message"
