"""One shard of a topology: the nodes a worker process (or a Ray actor) hosts in its own event loop.

The supervisor drives every shard through the launch phases in step, because each phase needs the previous one
done everywhere: start (bind, report addresses) -> configure (every address known: peers, root sites, own prefix
records) -> delegate (parents write their children's prefix handles) -> settle (root replication drained) -> seed.
`ShardHost` runs those phases with `runner`'s own functions; `worker_main` is the process entry point that takes
the supervisor's commands over a pipe.
"""

from __future__ import annotations

import asyncio
import gc
import os
import resource
import signal
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from ..net.tls import TlsFiles
from . import network
from .monitoring import start_monitoring
from .plan import TopologyPlan
from .runner import (
    _delegate,
    _replication_settled,
    _seed,
    _start_nodes,
    connect,
    load_prefix_records,
    settle_collector,
    start_encoding_answers,
    use_tls,
)
from .running import LaunchError, Topology

Address = tuple[str, int]


@dataclass(frozen=True)
class Listening:
    """Where a shard's nodes listen (the `start` phase's answer; picklable)."""

    addresses: dict[str, Address]
    """node id -> (host, REST port)."""
    native_ports: dict[str, int]
    """node id -> native protocol port (UDP and TCP) of the nodes that have one."""


@dataclass(frozen=True)
class ShardSpec:
    """What one worker hosts and how (picklable: sent to a spawned process or a Ray actor)."""

    number: int
    """The worker's number, 0-based (topology.json names it per node)."""
    plan: TopologyPlan
    """The whole plan: a shard needs every node's role, prefix and owner to build records and delegate."""
    node_ids: tuple[str, ...]
    """The nodes this worker hosts, in plan order."""
    state_dir: Path
    """The topology's state dir (SQLite stores live under `stores/`)."""
    store_kind: str
    """`sqlite` or `memory`."""
    bind_host: str | None = None
    """Address the nodes bind instead of the plan's host (a Ray actor on another machine binds that machine's)."""
    shard_count: int = 1
    """How many shards the topology has in all (a Ray actor asks for its share of the cluster's cores)."""
    net: str = "loopback"
    """`model`: the nodes' own requests go through the config's network model (each worker builds the same one
    from the plan's seed)."""
    tls: TlsFiles | None = None
    """The topology's certificate files (generated once by the supervisor) when every REST port serves HTTPS."""


class ShardHost:
    """Hosts a shard's nodes in the running event loop; each public coroutine is one launch phase."""

    def __init__(self, spec: ShardSpec) -> None:
        self.spec = spec
        # no lock: the supervisor owns the state dir
        self.topology = Topology(spec.plan, spec.state_dir, model=network.model_for(spec.plan, spec.net))
        if spec.tls is not None:
            use_tls(self.topology, spec.tls)
        self.topology.workers = dict.fromkeys(spec.node_ids, spec.number)
        self.restarted = False
        self._disk = ThreadPoolExecutor(max_workers=4, thread_name_prefix="handlesim-store")

    async def start(self, ports: Mapping[str, int] | None = None,
                    native_ports: Mapping[str, int] | None = None) -> Listening:
        """Open the stores and bind every hosted node (on `ports` and `native_ports` when restarting); returns
        where they listen."""
        gc.disable()  # as in `launch`: booting allocates long-lived objects only
        self.restarted = bool(ports)
        by_id = self.spec.plan.by_id
        await _start_nodes(self.topology, self.spec.store_kind, None, self._disk,
                           only=[by_id[n] for n in self.spec.node_ids], ports=ports, bind_host=self.spec.bind_host,
                           native_ports=native_ports)
        return Listening(dict(self.topology.addresses), dict(self.topology.native_ports))

    async def configure(self, addresses: Mapping[str, Address], native_ports: Mapping[str, int]) -> None:
        """Learn every node's address; connect peers and load the hosted nodes' own prefix handles."""
        self.topology.addresses.update(addresses)
        self.topology.native_ports.update(native_ports)
        connect(self.topology)
        load_prefix_records(self.topology, only_missing=self.restarted)

    async def delegate(self) -> None:
        await _delegate(self.topology, None, only_missing=self.restarted)

    async def settle(self) -> None:
        await _replication_settled(self.topology)

    async def seed(self) -> dict[str, Any]:
        """Seed empty enterprises; returns this worker's pid and resident memory."""
        _seed(self.topology, None)
        settle_collector()
        start_encoding_answers(self.topology)
        if self.topology.monitoring is None:  # each worker reports for its nodes and serves their metrics
            self.topology.monitoring = await start_monitoring(self.topology, 0)
        return self.status()

    async def ping(self) -> int:
        return os.getpid()

    def status(self) -> dict[str, Any]:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return {"worker": self.spec.number, "pid": os.getpid(), "nodes": len(self.topology.nodes),
                "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
                "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2),
                "metrics_url": self.topology.monitoring.metrics_url if self.topology.monitoring is not None else None}

    async def stop(self) -> None:
        await self.topology.stop()
        self._disk.shutdown(wait=False)


def worker_main(conn: Connection, spec: ShardSpec) -> None:
    """Entry point of a worker process: serve the shard until the supervisor says stop or goes away."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group; the supervisor decides
    try:
        import uvloop

        uvloop.run(_serve(conn, ShardHost(spec)))
    except ImportError:
        asyncio.run(_serve(conn, ShardHost(spec)))


async def _serve(conn: Connection, host: ShardHost) -> None:
    """Run commands `(method, args)` from the pipe, answering `("ok", result)` or `("error", message)`."""
    loop = asyncio.get_running_loop()
    inbox: asyncio.Queue[tuple[str, tuple[Any, ...]] | None] = asyncio.Queue()

    def read_commands() -> None:
        # blocking reads in a thread: the event loop must not watch (and so make non-blocking) the pipe, or a
        # large command (every node's address) fails half-read
        while True:
            message = _receive(conn)
            try:
                loop.call_soon_threadsafe(inbox.put_nowait, message)
            except RuntimeError:  # the loop is closed (the worker stopped on SIGTERM): nobody is listening
                return
            if message is None or message[0] == "stop":
                return

    reader = threading.Thread(target=read_commands, name="handlesim-commands", daemon=True)
    reader.start()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    try:
        while True:
            next_message = asyncio.ensure_future(inbox.get())
            stopping = asyncio.ensure_future(stop.wait())
            await asyncio.wait({next_message, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if not next_message.done():
                next_message.cancel()
                break
            message = next_message.result()
            if message is None or message[0] == "stop":
                break
            method, args = message
            try:
                conn.send(("ok", await getattr(host, method)(*args)))
            except LaunchError as exc:
                conn.send(("error", str(exc)))
            except Exception as exc:  # noqa: BLE001 - reported to the supervisor, which stops the launch
                conn.send(("error", f"worker {host.spec.number}: {type(exc).__name__}: {exc}"))
    finally:
        await host.stop()
        if not reader.is_alive():  # stopped by a signal, the reader still blocks in recv: the exit closes the pipe
            conn.close()


def _receive(conn: Connection) -> tuple[str, tuple[Any, ...]] | None:
    try:
        message: tuple[str, tuple[Any, ...]] = conn.recv()
    except (EOFError, OSError):
        return None  # the supervisor is gone: stop serving
    return message
