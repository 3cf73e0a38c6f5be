"""`handlesim bench`: open-loop load against a topology, with a bare-route baseline in the same run."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import click

from ..bench.runner import MAX_SEARCH_ERROR_RATE, MAX_SEARCH_P99_MS, MAX_SEARCH_TRIES, BenchConfig
from ..bench.thresholds import Threshold, ThresholdError, evaluate, parse_thresholds
from .app import ANSWER_FAILED, fail, main, plan_from, running_state, state_dir_option

DEFAULTS = BenchConfig()
POSITIVE = click.FloatRange(min=0, min_open=True)
SHARE = click.FloatRange(0, 1)


def read_thresholds(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[Threshold, ...] | None:
    """`--fail-on 'errors>0.001,p99>10ms'`, read with the command line: a bad expression is a usage error."""
    if value is None:
        return None
    try:
        return parse_thresholds(value)
    except ThresholdError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None


@main.command()
@click.option("--mode", type=click.Choice(["direct", "iterative-cold", "iterative-warm", "resolver", "mixed"]),
              default=DEFAULTS.mode, show_default=True,
              help="What each request does: one hop to the enterprise (direct), the walk from the roots without or "
                   "with a client cache (iterative-cold, iterative-warm), ask the recursive resolver (resolver), "
                   "direct reads plus authenticated creates (mixed).")
@click.option("--rate", type=POSITIVE, default=DEFAULTS.rate, show_default=True, help="Offered lookups per second.")
@click.option("--max", "find_max", is_flag=True, help="Search for the highest rate within --p99-bound/--error-bound.")
@click.option("--p99-bound", type=POSITIVE, default=MAX_SEARCH_P99_MS, show_default=True,
              help="--max: p99 limit in ms.")
@click.option("--error-bound", type=SHARE, default=MAX_SEARCH_ERROR_RATE, show_default=True,
              help="--max: error-rate limit.")
@click.option("--max-tries", type=click.IntRange(min=1), default=MAX_SEARCH_TRIES, show_default=True,
              help="--max: trials at a rate before it counts as failed (one stall fails a short trial at any rate).")
@click.option("--duration", type=POSITIVE, default=DEFAULTS.duration, show_default=True, help="Measured seconds.")
@click.option("--warmup", type=click.FloatRange(min=0), default=DEFAULTS.warmup, show_default=True,
              help="Seconds of load before measuring.")
@click.option("--connections", type=click.IntRange(min=1), default=DEFAULTS.connections, show_default=True,
              help="Connections per generator process.")
@click.option("--processes", type=click.IntRange(min=1), default=DEFAULTS.processes, show_default=True,
              help="Load-generator processes.")
@click.option("--arrival", type=click.Choice(["constant", "poisson"]), default=DEFAULTS.arrival, show_default=True,
              help="Spacing of the open-loop sends: evenly, or as a Poisson process at the same mean rate.")
@click.option("--keys", type=click.IntRange(min=0), default=DEFAULTS.keys,
              help="Draw from this many seeded identifiers (0 = all).")
@click.option("--distribution", type=click.Choice(["uniform", "zipf"]), default=DEFAULTS.distribution,
              show_default=True,
              help="How identifiers are drawn: all equally often, or Zipf (a few hot ones; see --zipf).")
@click.option("--zipf", "zipf_s", type=POSITIVE, default=DEFAULTS.zipf_s, show_default=True, help="Zipf exponent.")
@click.option("--write-fraction", type=SHARE, default=DEFAULTS.write_fraction, show_default=True,
              help="mixed: share of writes.")
@click.option("--no-baseline", is_flag=True, help="Skip measuring the bare aiohttp route in the same run.")
@click.option("--baseline-cpu", type=click.IntRange(min=0, max=max(0, (os.cpu_count() or 1) - 1)), default=None,
              help="Pin the bare route's process to this CPU: the topology's, when `up` runs pinned (taskset -c), so "
                   "both sides of the ratio run under the same pinning.")
@click.option("--config", "config_path", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Start this topology (memory stores) for the run instead of using a running one.")
@click.option("--identifiers", type=click.IntRange(min=1), default=None,
              help="With --config: identifiers per enterprise.")
@state_dir_option
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False), default=Path("bench-results"),
              show_default=True, help="Where the JSON, Markdown and PNG files go.")
@click.option("--name", default=None, help="File name stem (default: <mode>-<time>).")
@click.option("--net", type=click.Choice(["loopback", "model"]), default=None,
              help="Network model on the generator's hops (default: as the running topology; with --config the "
                   "topology starts in loopback unless --net model).")
@click.option("--network", "network_file", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="With --config: the [network] model file (e.g. configs/network-china.toml).")
@click.option("--client-region", default=DEFAULTS.client_region, help="Where the generator sits in the network model.")
@click.option("--scenario", "scenario_path", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Fire this scenario's timed faults while measuring (TOML; see benchmarks/scenarios/).")
@click.option("--timeout", type=POSITIVE, default=DEFAULTS.timeout, show_default=True,
              help="Seconds before a request times out.")
@click.option("--seed", type=int, default=DEFAULTS.seed, show_default=True,
              help="Seed of key choice and arrivals (another seed draws other keys, e.g. past a warm cache).")
@click.option("--fail-on", "fail_on", callback=read_thresholds, default=None, metavar="CONDITIONS",
              help="Exit 1 when any condition holds for the measured run, e.g. 'errors>0.001,p99>10ms' "
                   "(metrics: errors, p50, p90, p99, p99.9, max, mean, rate, goodput, timeouts, late; "
                   "see docs/benchmarks.md).")
@click.option("--ray-address", default=None, metavar="ADDR|local",
              help="Run the generator processes as Ray tasks on this cluster (`local`: a Ray instance here); "
                   "needs the `ray` extra.")
@click.option("--protocol", type=click.Choice(["rest", "native"]), default=DEFAULTS.protocol, show_default=True,
              help="How the generator asks: REST GETs (msgpack, keep-alive), or the native Handle protocol on the "
                   "nodes' UDP/TCP ports (direct, iterative-*, resolver modes). The bare route stays HTTP.")
@click.option("--native-transport", type=click.Choice(["udp", "tcp"]), default=DEFAULTS.native_transport,
              show_default=True,
              help="With --protocol native: UDP (Handle.Net's 0.5/1/1.5 s resends, then TCP) or TCP only.")
def bench(mode: str, rate: float, find_max: bool, p99_bound: float, error_bound: float, max_tries: int,
          duration: float, warmup: float, connections: int, processes: int, arrival: str, keys: int, distribution: str,
          zipf_s: float, write_fraction: float, no_baseline: bool, baseline_cpu: int | None, config_path: Path | None,
          identifiers: int | None, state_dir: Path, out_dir: Path, name: str | None, net: str | None,
          network_file: Path | None, client_region: str, scenario_path: Path | None, timeout: float,
          seed: int, fail_on: tuple[Threshold, ...] | None, ray_address: str | None, protocol: str,
          native_transport: str) -> None:
    """Measure resolution latency and throughput (open loop, HdrHistogram, bare-route baseline in the same run)."""
    from contextlib import nullcontext

    from ..bench.report import markdown, write_outputs
    from ..bench.runner import find_max_rate, run_bench, started_topology

    config = BenchConfig(mode=mode, rate=rate, duration=duration, warmup=warmup, connections=connections,
                         processes=processes, arrival=arrival, distribution=distribution, zipf_s=zipf_s, keys=keys,
                         write_fraction=write_fraction, baseline=not no_baseline, baseline_cpu=baseline_cpu, net=net,
                         client_region=client_region, scenario=str(scenario_path or ""), timeout=timeout,
                         seed=seed, ray_address=ray_address, protocol=protocol, native_transport=native_transport)

    if find_max and scenario_path is not None:
        fail("--scenario and --max do not mix: a scenario's faults would fire in every trial of the search")
    if config_path is not None:  # a broken file is reported here, not by the `up` process it would start
        plan_from(config_path, 0, identifiers)
    live = {"open": False}

    def progress(line: str) -> None:
        if line.startswith("\r"):
            live["open"] = True
            click.echo(line, err=True, nl=False)
            return
        if live["open"]:
            click.echo("", err=True)
            live["open"] = False
        click.echo(line, err=True)

    topology = started_topology(config_path, identifiers=identifiers, net=net or "loopback",
                                network_file=network_file, faults=scenario_path is not None) \
        if config_path else nullcontext(None)
    with topology as started:
        state = started if started is not None else running_state(state_dir)
        try:
            if find_max:
                found = find_max_rate(state, config, p99_ms=p99_bound, max_error_rate=error_bound, start=rate,
                                      tries=max_tries, progress=progress)
                bare = find_max_rate(state, config, p99_ms=p99_bound, max_error_rate=error_bound, start=rate,
                                     tries=max_tries, progress=progress, bare_route=True) if config.baseline else None
                config = BenchConfig(**{**config.__dict__, "rate": found["max_rate"] or rate})
            result = run_bench(state, config, progress)
        except ValueError as exc:
            fail(str(exc))
        if find_max:
            result["max_search"] = found
            if bare is not None:
                result["max_search_bare_route"] = bare
                result["ratios"]["max_rate"] = round(found["max_rate"] / bare["max_rate"], 3) \
                    if bare["max_rate"] else None
    click.echo("", err=True)
    verdict = evaluate(fail_on, result) if fail_on else None
    if verdict is not None:
        result["fail_on"] = verdict.to_dict()
    kind = mode if protocol == "rest" else f"{mode}-native-{native_transport}"
    stem = name or f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}"
    paths = write_outputs(result, out_dir, stem)
    click.echo(markdown(result))
    if find_max:
        click.echo(f"highest rate within p99 <= {p99_bound} ms and errors <= {error_bound:.2%}: "
                   f"{result['max_search']['max_rate']:g}/s")
        if "max_search_bare_route" in result:
            click.echo(f"bare aiohttp route, same search: {result['max_search_bare_route']['max_rate']:g}/s "
                       f"(ratio {result['ratios']['max_rate']})")
    click.echo("wrote " + ", ".join(str(p) for p in paths))
    _exit_status(result, verdict)


def _exit_status(result: dict[str, Any], verdict: Any) -> None:
    """A run in which nothing succeeded exits 1 whatever was asked (every request refused, timed out or answered
    with an error is a broken setup, not a measurement); `--fail-on` thresholds exit 1 when one holds."""
    run = result["run"]
    failures: list[str] = []
    if run["completed"] and run["errors"] == run["completed"]:
        outcomes = ", ".join(f"{what} {count}" for what, count in sorted(run["outcomes"].items()))
        failures.append(f"every request of the run failed ({outcomes}); nothing was measured")
    if verdict is not None:
        click.echo("fail-on:")
        for line in verdict.lines():
            click.echo(line)
        if not verdict.ok:
            failures.append("--fail-on: " + ", ".join(t.text for t in verdict.failed))
    if failures:
        for failure in failures:
            click.echo(f"Error: {failure}", err=True)
        raise click.exceptions.Exit(ANSWER_FAILED)

