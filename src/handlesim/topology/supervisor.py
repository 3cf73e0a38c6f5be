"""Running a topology's nodes in several workers: shard the plan, drive the shards through the launch phases in
step, watch them, restart a worker that dies, and stop them all.

A shard is hosted by a worker process (`ProcessEngine`, this module) or a Ray actor (`ray_engine.py`); the
supervisor only needs `Shard`'s four coroutines, so both engines share the phase logic, the restart logic and the
topology.json the supervisor writes (`running.Topology` with every node's address and worker number).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import multiprocessing
import os
import signal
import time
from collections.abc import Callable
from multiprocessing.context import SpawnContext
from pathlib import Path
from typing import Any, Protocol

from .plan import TopologyPlan
from .runner import Progress, announce, connect, open_topology
from .running import LaunchError, Topology
from .worker import ShardSpec, worker_main

RESTART_ATTEMPTS = 3
STOP_GRACE_S = 10.0


class Shard(Protocol):
    """A running worker as the supervisor sees it."""

    spec: ShardSpec

    async def call(self, method: str, *args: Any) -> Any:
        """Run one `ShardHost` phase in the worker; raises LaunchError with the worker's message on failure."""

    async def exited(self) -> str:
        """Return (with a description of how) once the worker is gone."""

    async def stop(self) -> None:
        """Stop the worker's nodes and the worker; kill it if it does not stop in time."""


class Engine(Protocol):
    name: str

    def start(self, spec: ShardSpec) -> Shard:
        """Start a worker for `spec` (its nodes start with the `start` phase)."""


def shard_nodes(plan: TopologyPlan, count: int) -> list[tuple[str, ...]]:
    """Deal the plan's nodes round-robin in plan order, so consecutive nodes (the roots, the secondaries, the
    enterprises of one secondary) land in different workers and a lookup's hops cross processes. The further
    servers of a hash-partitioned site are dealt right after its first one, so a site spreads over workers too."""
    further = {n.node_id for n in plan.nodes if n.server_of is not None}
    order = [server for n in plan.nodes if n.node_id not in further for server in plan.servers_of(n.node_id)]
    return [tuple(order[i::count]) for i in range(count) if order[i::count]]


def refuse_unsupported(plan: TopologyPlan, *, tls: bool = False, binds_elsewhere: bool = False) -> None:
    """What workers cannot do yet: fault injection (its controller and control port hold the nodes' servers in one
    process), and TLS on addresses the certificate cannot name beforehand (`--bind-node-ip`)."""
    if plan.config.faults:
        raise LaunchError("--faults is not supported with --workers or --engine ray yet (fault injection needs "
                          "every node in one process); run without --workers, or turn the config's `faults` off")
    if tls and binds_elsewhere:
        raise LaunchError("--tls is not supported with --bind-node-ip yet: the certificate is made before the nodes "
                          "know which machine addresses they bind")


def resolve_worker_count(text: str | int | None, default: int = 1, cores: int | None = None) -> int:
    """`--workers`: a number, or `auto` for one per core (`cores`: of the Ray cluster; default: this machine's)."""
    if text is None:
        return default
    if isinstance(text, int):
        return max(text, 1)
    if text == "auto":
        return cores or os.cpu_count() or 1
    try:
        count = int(text)
    except ValueError:
        raise LaunchError(f"--workers {text!r}: give a number of worker processes or 'auto'") from None
    if count < 1:
        raise LaunchError(f"--workers {count}: at least one worker is needed")
    return count


class Supervisor:
    """Boots a plan over `count` shards of `engine`, keeps them running and stops them."""

    def __init__(self, plan: TopologyPlan, state_dir: Path, engine: Engine, count: int, *, store_kind: str = "sqlite",
                 bind_host: str | None = None, progress: Progress | None = None,
                 report: Callable[[str], None] | None = None, tls: bool = False, net: str = "loopback",
                 reset: bool = False) -> None:
        refuse_unsupported(plan, tls=tls, binds_elsewhere=bind_host is not None)
        self.engine = engine
        shards = shard_nodes(plan, count)
        self.specs = [ShardSpec(i, plan, ids, state_dir, store_kind, bind_host, len(shards), net=net)
                      for i, ids in enumerate(shards)]
        self.tls = tls
        self.net = net
        self.store_kind = store_kind
        self.bind_host = bind_host
        self.reset = reset
        """Wipe the state dir's old content (stores of another topology) before booting."""
        self.plan = plan
        self.state_dir = state_dir
        self.progress = progress
        self.report = report or (lambda message: None)
        self.shards: list[Shard] = []
        self.topology: Topology | None = None
        self.statuses: dict[int, dict[str, Any]] = {}
        """Each worker's last status (pid, nodes, peak RSS) as it reported after seeding."""
        self.restarts = 0
        self.given_up: set[int] = set()
        """Workers that could not be restarted: their nodes stay down and they are no longer watched."""

    async def boot(self) -> Topology:
        """Start every worker and run the launch phases across them; returns the topology written to the state
        dir (its `nodes` is empty: the nodes live in the workers, `addresses` says where)."""
        started = time.perf_counter()
        topology = open_topology(self.plan, self.state_dir, tls=self.tls, net=self.net, store_kind=self.store_kind,
                                 reset=self.reset, check_ports=self.bind_host is None)
        topology.engine = self.engine.name
        self.topology = topology
        # the certificate is made once, here: every worker serves it and pins its CA
        self.specs = [dataclasses.replace(spec, tls=topology.tls) for spec in self.specs]
        try:
            self.shards = [self.engine.start(spec) for spec in self.specs]
            for listening in await self._each("starting workers", "start"):
                topology.addresses.update(listening.addresses)
                topology.native_ports.update(listening.native_ports)
            topology.workers = {node_id: spec.number for spec in self.specs for node_id in spec.node_ids}
            connect(topology)  # the supervisor's own view: root sites for `root_sites`
            await self._each("connecting", "configure", topology.addresses, topology.native_ports)
            await self._each("delegating prefixes", "delegate")
            await self._each("replicating roots", "settle")
            for status in await self._each("seeding identifiers", "seed"):
                self.statuses[status["worker"]] = status
            topology.metrics_urls = self._metrics_urls()
            topology.boot_seconds = time.perf_counter() - started
            announce(topology)
        except BaseException:
            await self._stop_shards()
            await topology.abandon()
            raise
        return topology

    async def _stop_shards(self) -> None:
        await asyncio.gather(*(shard.stop() for shard in self.shards), return_exceptions=True)
        self.shards = []

    def _metrics_urls(self) -> list[str]:
        return [str(s["metrics_url"]) for _, s in sorted(self.statuses.items()) if s.get("metrics_url")]

    async def _each(self, phase: str, method: str, *args: Any) -> list[Any]:
        done = 0

        async def one(shard: Shard) -> Any:
            nonlocal done
            result = await shard.call(method, *args)
            done += 1
            if self.progress is not None:
                self.progress(phase, done, len(self.shards))
            return result

        return list(await asyncio.gather(*(one(s) for s in self.shards)))

    async def watch(self) -> None:
        """Until cancelled: when a worker dies, report it and restart it with the same nodes on the same ports."""
        while True:
            waits = {asyncio.ensure_future(shard.exited()): shard for shard in self.shards
                     if shard.spec.number not in self.given_up}
            if not waits:
                await asyncio.Event().wait()  # nothing left to watch: wait to be cancelled
            try:
                done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for wait in waits:
                    wait.cancel()
            for finished in done:
                await self._restart(waits[finished], finished.result())

    async def _restart(self, dead: Shard, how: str) -> None:
        spec = dead.spec
        self.report(f"worker {spec.number} {how}; restarting its {len(spec.node_ids)} nodes")
        await dead.stop()
        for attempt in range(1, RESTART_ATTEMPTS + 1):
            started = time.perf_counter()
            shard = self.engine.start(spec)
            self.shards[spec.number] = shard
            try:
                status = await self._bring_back(shard)
            except LaunchError as exc:
                self.report(f"worker {spec.number}: restart {attempt} failed: {exc}")
                await shard.stop()
                await asyncio.sleep(1.0)
                continue
            self.restarts += 1
            self.statuses[spec.number] = status
            if self.topology is not None:  # the restarted worker serves metrics on a new port
                self.topology.metrics_urls = self._metrics_urls()
                announce(self.topology)
            self.report(f"worker {spec.number} back (pid {status['pid']}) in {time.perf_counter() - started:.2f} s")
            return
        self.given_up.add(spec.number)
        self.report(f"worker {spec.number}: giving up after {RESTART_ATTEMPTS} attempts; its nodes stay down")

    async def _bring_back(self, shard: Shard) -> Any:
        """The launch phases for one worker: same addresses, and nothing re-registered that its stores still hold."""
        assert self.topology is not None
        addresses, native = self.topology.addresses, self.topology.native_ports
        hosted = shard.spec.node_ids
        await shard.call("start", {node_id: addresses[node_id][1] for node_id in hosted},
                         {node_id: native[node_id] for node_id in hosted if node_id in native})
        await shard.call("configure", addresses, native)
        await shard.call("delegate")
        await shard.call("settle")
        return await shard.call("seed")

    async def stop(self) -> None:
        await self._stop_shards()
        if self.topology is not None:
            await self.topology.stop()


class ProcessEngine:
    """Workers are spawned processes (a fresh interpreter each: no event loop or sockets inherited)."""

    name = "process"

    def __init__(self) -> None:
        self.context: SpawnContext = multiprocessing.get_context("spawn")

    def start(self, spec: ShardSpec) -> ProcessShard:
        return ProcessShard(spec, self.context)


class ProcessShard:
    """A worker process and the pipe the supervisor drives it through (one command at a time)."""

    def __init__(self, spec: ShardSpec, context: SpawnContext) -> None:
        self.spec = spec
        self.conn, child = context.Pipe()
        self.process = context.Process(target=worker_main, args=(child, spec), daemon=True,
                                       name=f"handlesim-worker-{spec.number}")
        self.process.start()
        child.close()
        self._busy = asyncio.Lock()

    async def call(self, method: str, *args: Any) -> Any:
        async with self._busy:
            try:
                self.conn.send((method, args))
            except OSError:
                raise LaunchError(f"worker {self.spec.number} is gone (pid {self.process.pid})") from None
            status, result = await self._reply(method)
        if status != "ok":
            raise LaunchError(str(result))
        return result

    async def _reply(self, method: str) -> tuple[str, Any]:
        # a blocking recv in a thread: an event loop watching the pipe would make it non-blocking (uvloop does),
        # and a large message (every node's address) would then fail half-read
        try:
            reply: tuple[str, Any] = await asyncio.to_thread(self.conn.recv)
        except (EOFError, OSError):
            await asyncio.to_thread(self.process.join, 1.0)  # it closed the pipe: its exit code says how it ended
            raise LaunchError(f"worker {self.spec.number} (pid {self.process.pid}) "
                              f"{_exit_description(self.process.exitcode)} during {method}") from None
        return reply

    async def exited(self) -> str:
        loop = asyncio.get_running_loop()
        gone: asyncio.Future[None] = loop.create_future()
        sentinel = self.process.sentinel

        def ended() -> None:
            if not gone.done():
                gone.set_result(None)

        loop.add_reader(sentinel, ended)
        try:
            await gone
        finally:
            loop.remove_reader(sentinel)
        await asyncio.to_thread(self.process.join, STOP_GRACE_S)
        return f"(pid {self.process.pid}) {_exit_description(self.process.exitcode)}"

    async def stop(self) -> None:
        if self.process.is_alive():
            with contextlib.suppress(OSError):
                self.conn.send(("stop", ()))
            await asyncio.to_thread(self.process.join, STOP_GRACE_S)
        if self.process.is_alive():
            self.process.kill()
            await asyncio.to_thread(self.process.join, STOP_GRACE_S)
        self.conn.close()


def _exit_description(code: int | None) -> str:
    if code is not None and code < 0:
        with contextlib.suppress(ValueError):
            return f"was killed by {signal.Signals(-code).name}"
    return f"exited with code {code}"
