"""The benchmark harness: percentile maths, open-loop scheduling against a slow server, a short run end to end."""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

from handlesim.bench.generator import WorkerSpec, run_worker
from handlesim.bench.recording import merge_encoded, new_histogram, summarize
from handlesim.bench.runner import BenchConfig, merge_parts
from handlesim.bench.workload import KeyChooser, Target

from ..support.paths import ROOT
from ..support.processes import handlesim, up_process


def test_percentiles_of_a_known_distribution() -> None:
    hist = new_histogram()
    for value in range(1, 10_001):  # 1 us .. 10 ms, uniform
        hist.record_value(value)
    summary = summarize(hist)
    assert summary["count"] == 10_000
    assert summary["p50_ms"] == pytest.approx(5.0, rel=0.002)
    assert summary["p99_ms"] == pytest.approx(9.9, rel=0.002)
    assert summary["max_ms"] == pytest.approx(10.0, rel=0.002)


def test_merging_histograms_equals_recording_everything_in_one() -> None:
    rng = random.Random(3)
    values = [int(rng.expovariate(1 / 800)) + 1 for _ in range(30_000)]
    whole = new_histogram()
    parts = [new_histogram() for _ in range(3)]
    for i, value in enumerate(values):
        whole.record_value(value)
        parts[i % 3].record_value(value)
    merged = merge_encoded([p.encode() for p in parts])
    assert summarize(merged) == summarize(whole)


def test_zipf_keys_are_skewed_and_uniform_keys_are_not() -> None:
    zipf = KeyChooser(1000, "zipf", 1.1, seed=1)
    uniform = KeyChooser(1000, "uniform", seed=1)
    top_zipf = max(__import__("collections").Counter(zipf.next() for _ in range(20_000)).values())
    top_uniform = max(__import__("collections").Counter(uniform.next() for _ in range(20_000)).values())
    assert top_zipf > 1000 and top_uniform < 60


class SlowServer:
    """A deliberately slow node: 20 ms per answer, one at a time."""

    def __init__(self, delay: float = 0.02) -> None:
        self.delay = delay
        self.port = 0
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self.ready.wait(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        lock = asyncio.Lock()

        async def slow(request: web.Request) -> web.Response:
            async with lock:
                await asyncio.sleep(self.delay)
            return web.Response(body=b"\x81\xacresponseCode\x01", content_type="application/msgpack")

        app = web.Application()
        app.router.add_get("/api/handles/{h:.+}", slow)
        runner = web.AppRunner(app, access_log=None)
        self.loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.runner = runner
        self.ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(runner.cleanup())
        self.loop.close()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture
def slow_server() -> Iterator[SlowServer]:
    server = SlowServer()
    yield server
    server.stop()


@pytest.mark.slow
def test_open_loop_keeps_its_schedule_and_shows_queueing(slow_server: SlowServer) -> None:
    """Offered 100/s against a server that does 50/s: latency from the intended send grows far past 20 ms."""
    target = Target("88.1/x", "127.0.0.1", slow_server.port, "slow")
    spec = WorkerSpec(mode="direct", rate=100, duration=2.0, warmup=0.0, connections=4, targets=[target],
                      timeout=10.0)
    part = run_worker(spec)
    result = merge_parts([part], BenchConfig(rate=100, duration=2.0))
    latency = result["latency_ms"]
    assert latency["p50_ms"] > 300, "a closed-loop tool would report ~80 ms (4 connections x 20 ms) here"
    assert latency["max_ms"] > 1000, "the backlog grows for the whole run"
    assert result["late_sends"] > 50
    assert result["completed"] == 200, "every request of the schedule was sent (late), none silently dropped"


@pytest.mark.slow
def test_short_bench_end_to_end_writes_a_valid_result(tmp_path: Path) -> None:
    out = tmp_path / "out"
    run = subprocess.run(
        [sys.executable, "-m", "handlesim.cli", "bench", "--config", "configs/small.toml", "--mode", "direct",
         "--rate", "300", "--duration", "2", "--warmup", "0.5", "--connections", "4", "--out", str(out),
         "--name", "e2e", "--fail-on", "errors>0.01,p99>2s"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "ok      errors>0.01" in run.stdout and "ok      p99>2s" in run.stdout
    result = json.loads((out / "e2e.json").read_text())
    assert result["schema"] == 1 and result["kind"] == "handlesim-bench"
    assert result["run"]["completed"] >= 500 and result["run"]["errors"] == 0
    assert result["run"]["latency_ms"]["p99_ms"] > 0 and result["baseline"]["completed"] >= 500
    assert set(result["ratios"]) == {"achieved_rate", "p50", "p99"}
    assert result["machine"]["cpus"] and result["versions"]["aiohttp"]
    assert len(result["run"]["timeline"]) == 2
    cpu = result["topology_cpu"]
    assert cpu["processes"] == 1 and cpu["seconds"] > 0 and cpu["per_lookup_us"] > 0 and 0 < cpu["busy_cores"] < 2
    assert (out / "e2e.md").read_text().startswith("### `direct`")
    assert "topology CPU in the window" in (out / "e2e.md").read_text()
    assert (out / "e2e-latency.png").stat().st_size > 1000
    assert "| direct |" in run.stdout


@pytest.mark.slow
def test_fail_on_thresholds_exit_1_and_say_which_failed(tmp_path: Path) -> None:
    out = tmp_path / "out"
    run = subprocess.run(
        [sys.executable, "-m", "handlesim.cli", "bench", "--config", "configs/small.toml", "--rate", "100",
         "--duration", "1", "--warmup", "0", "--connections", "2", "--no-baseline", "--out", str(out), "--name",
         "gate", "--fail-on", "errors>0.5, p99>1us, rate<1"], cwd=ROOT, capture_output=True, text=True,
        timeout=120)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "FAILED  p99>1us" in run.stdout and "ok      errors>0.5" in run.stdout and "ok      rate<1" in run.stdout
    assert "Error: --fail-on: p99>1us" in run.stderr and "Traceback" not in run.stderr
    verdict = json.loads((out / "gate.json").read_text())["fail_on"]
    assert verdict["ok"] is False
    assert [t["failed"] for t in verdict["thresholds"]] == [False, True, False]


@pytest.mark.slow
def test_bench_against_a_tls_topology_measures_over_https(tmp_path: Path) -> None:
    """Issue item 3: against `up --tls` every request used to fail (plain HTTP to an HTTPS port) and bench exited 0.
    Now the generator speaks HTTPS pinning the topology's CA, and the bare route serves the same certificate."""
    state = tmp_path / "state"
    with up_process("--config", "configs/small.toml", "--base-port", "0", "--state-dir", str(state), "--tls",
                    "--net", "loopback"):
        run = handlesim("bench", "--state-dir", str(state), "--rate", "200", "--duration", "1", "--warmup", "0.3",
                        "--connections", "4", "--out", str(tmp_path / "out"), "--name", "tls", timeout=120)
        stats = handlesim("stats", "--json", "--state-dir", str(state))
    assert run.returncode == 0, run.stdout + run.stderr
    result = json.loads((tmp_path / "out" / "tls.json").read_text())
    assert result["run"]["completed"] >= 150 and result["run"]["errors"] == 0, result["run"]["outcomes"]
    assert result["baseline"]["completed"] >= 150 and result["baseline"]["errors"] == 0
    assert result["nodes"], "the nodes' own statistics were read over HTTPS too"
    assert stats.returncode == 0 and json.loads(stats.stdout)["receiver"] == "root-qingdao"


@pytest.mark.slow
def test_a_run_in_which_every_request_fails_exits_1(tmp_path: Path) -> None:
    """Nothing answers (every enterprise killed): the report is written, but the run is not a measurement."""
    state = tmp_path / "state"
    with up_process("--config", "configs/small.toml", "--base-port", "0", "--state-dir", str(state), "--faults",
                    "--net", "loopback"):
        for node in json.loads(handlesim("topology", "--json", "--state-dir", str(state)).stdout)["nodes"]:
            if node["role"] == "enterprise":
                assert handlesim("fault", "kill", node["id"], "--state-dir", str(state)).returncode == 0
        run = handlesim("bench", "--state-dir", str(state), "--rate", "50", "--duration", "1", "--warmup", "0",
                        "--connections", "2", "--no-baseline", "--out", str(tmp_path / "out"), "--name", "dead",
                        timeout=120)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "every request of the run failed (transport" in run.stderr and "Traceback" not in run.stderr
    assert (tmp_path / "out" / "dead.json").exists()


def test_the_bare_route_can_be_pinned_to_the_topologys_cpu() -> None:
    """`bench --baseline-cpu N`: the bare route's process runs on CPU N only (as `taskset -c N up` runs the topology),
    so a ratio compares both sides under the same pinning; out-of-range CPUs are a usage error."""
    import os
    import urllib.request

    from handlesim.bench.baseline import BaselineServer

    server = BaselineServer(b"answer", cpu=0)
    try:
        assert os.sched_getaffinity(server.process.pid) == {0}
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/api/handles/88.1/X", timeout=10) as reply:
            assert reply.read() == b"answer"
    finally:
        server.stop()
    unpinned = BaselineServer(b"answer")
    try:
        assert os.sched_getaffinity(unpinned.process.pid) == os.sched_getaffinity(0)
    finally:
        unpinned.stop()
    wrong = handlesim("bench", "--baseline-cpu", str(os.cpu_count() or 1), "--duration", "1")
    assert wrong.returncode == 2 and "--baseline-cpu" in wrong.stderr


def test_each_max_search_trial_draws_other_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """With one seed, every trial of `--max` would ask the keys of the trials before it again, answered from the
    nodes' caches by then: a first-time search would be warm after its first trial."""
    from handlesim.bench import runner

    seeds: list[int] = []

    def measure(state: object, config: BenchConfig, targets: object, progress: object,
                baseline: object = None) -> dict[str, object]:
        seeds.append(config.seed)
        p99 = 1.0 if config.rate < 3000 else 50.0
        return {"latency_ms": {"p99_ms": p99}, "error_rate": 0.0, "achieved_rate": config.rate}

    monkeypatch.setattr(runner, "seeded_targets", lambda state, keys: ["a target"])
    monkeypatch.setattr(runner, "_measure", measure)
    result = runner.find_max_rate(None, BenchConfig(seed=7))  # type: ignore[arg-type]
    assert 2250 <= result["max_rate"] < 3000
    assert seeds[0] == 7 and len(seeds) == len(result["trials"]) > 4 and len(set(seeds)) == len(seeds)


def _search_with_p99s(monkeypatch: pytest.MonkeyPatch, p99s: dict[float, list[float]],
                      tries: int) -> dict[str, object]:
    """`find_max_rate` over trials whose p99 at each rate comes, in turn, from `p99s` (10 ms bound; 1 ms when
    the rate is not listed)."""
    from handlesim.bench import runner

    def measure(state: object, config: BenchConfig, targets: object, progress: object,
                baseline: object = None) -> dict[str, object]:
        waiting = p99s.get(config.rate, [])
        p99 = waiting.pop(0) if waiting else (1.0 if config.rate < 5000 else 50.0)
        return {"latency_ms": {"p99_ms": p99}, "error_rate": 0.0, "achieved_rate": config.rate}

    monkeypatch.setattr(runner, "seeded_targets", lambda state, keys: ["a target"])
    monkeypatch.setattr(runner, "_measure", measure)
    return runner.find_max_rate(None, BenchConfig(), tries=tries)  # type: ignore[arg-type]


def test_max_search_repeats_a_failed_trial_before_failing_the_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    """One stall fails a short trial at any rate: with two tries a rate fails only when both of its trials do, so
    the search climbs past a rate whose first trial met a stall and stops where the rate itself breaks the bound."""
    result = _search_with_p99s(monkeypatch, {2250.0: [30.0]}, tries=2)
    assert 3375 <= result["max_rate"] < 5000  # past 2,250/s, whose first trial failed; below the real limit
    at_2250 = [t for t in result["trials"] if t["rate"] == 2250.0]
    assert [(t["ok"], t["attempt"]) for t in at_2250] == [(False, 1), (True, 2)]
    failed_for_good = [t for t in result["trials"] if t["rate"] >= 5000]
    assert failed_for_good and all(not t["ok"] for t in failed_for_good)
    assert len(failed_for_good) == 2 * len({t["rate"] for t in failed_for_good}) and result["tries"] == 2


def test_max_search_with_one_try_stops_at_the_first_failed_trial(monkeypatch: pytest.MonkeyPatch) -> None:
    result = _search_with_p99s(monkeypatch, {2250.0: [30.0]}, tries=1)
    assert 1500 <= result["max_rate"] < 2250
    assert all(t["attempt"] == 1 for t in result["trials"])
