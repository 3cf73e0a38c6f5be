"""Launching a topology: start every node as an aiohttp service, delegate prefixes through the nodes' own APIs,
seed identifiers, and write `<state-dir>/topology.json` so other commands and programs can find it.

`launch` runs every phase for every node in this process. The phases also work on a shard of the nodes (the
`Topology.nodes` this process hosts) once `Topology.addresses` says where every other node listens: the worker
processes and Ray actors of `supervisor.py` run the same functions, phase by phase, in step.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import gc
import json
import os
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ..core.auth import hash_secret
from ..core.cache import ResolutionCache
from ..core.codes import OpCode
from ..core.handle import NA_PREFIX, Prefix
from ..core.messages import Request
from ..core.prefixes import http_site, owner_identity, prefix_record
from ..core.service import HandleService, ServiceConfig
from ..core.storage import HandleRecord, Store
from ..core.values import SiteInfo, ValueReference
from ..net.client import HandleClient
from ..net.recursion import RecursiveResolver
from ..net.replication import Replicator
from ..net.server import NodeServer
from ..store import open_store
from .plan import NodePlan, TopologyPlan
from .seed import example_identifiers, identifiers_for

TOPOLOGY_FILE = "topology.json"
CREDENTIALS_FILE = "credentials.json"
LOCK_FILE = "up.lock"
ROOT_OPERATOR = ValueReference("0.NA/0.NA", 300)


class LaunchError(Exception):
    """The topology cannot start (port taken, state dir in use, ...); the message says what to do."""


@dataclass
class RunningNode:
    plan: NodePlan
    service: HandleService
    server: NodeServer
    store: Store
    site: SiteInfo | None = None
    host: str = ""
    """The address the node bound (empty: the plan's host)."""

    @property
    def url(self) -> str:
        return f"http://{self.host or self.plan.host}:{self.server.port}"


@dataclass
class Topology:
    """A launched topology: its nodes, where they listen, and how to stop them."""

    plan: TopologyPlan
    state_dir: Path
    nodes: dict[str, RunningNode] = field(default_factory=dict)
    boot_seconds: float = 0.0
    root_site_list: list[SiteInfo] = field(default_factory=list)
    """Root sites, filled once every node listens (`connect`); resolvers hold this very list."""
    _lock: IO[str] | None = None
    addresses: dict[str, tuple[str, int]] = field(default_factory=dict)
    """Where every node of the plan listens, (host, port), including nodes hosted by other processes."""
    workers: dict[str, int] = field(default_factory=dict)
    """The worker number hosting each node (empty: every node in this process)."""
    engine: str = "inline"
    """How the nodes run: `inline` (this process), `process` (worker processes) or `ray` (Ray actors)."""

    def url_of(self, node_id: str) -> str:
        host, port = self.addresses[node_id]
        return f"http://{host}:{port}"

    def site_of(self, node_id: str) -> SiteInfo:
        """The node's site as its prefix record and the resolvers' root list name it."""
        node = self.plan.by_id[node_id]
        return http_site(node_id, [self.addresses[node_id]], multi_primary=node.role == "root",
                         primary=node.mirror_of is None)

    @property
    def root_sites(self) -> list[SiteInfo]:
        return list(self.root_site_list)

    def describe(self) -> dict[str, Any]:
        """The content of topology.json."""
        return {
            "name": self.plan.config.name,
            "pid": os.getpid(),
            "state_dir": str(self.state_dir),
            "started_at": time.time(),
            "boot_seconds": round(self.boot_seconds, 3),
            "credentials": str(self.state_dir / CREDENTIALS_FILE),
            "roots": [self._site_entry(n) for n in self._listed() if n.role == "root"],
            "examples": example_identifiers(self.plan, 5),
            "nodes": [self._node_entry(n) for n in self._listed()],
            "engine": self.engine,
            "workers": max(self.workers.values(), default=0) + 1,
        }

    def _listed(self) -> list[NodePlan]:
        return [n for n in self.plan.nodes if n.node_id in self.addresses]

    def _site_entry(self, node: NodePlan) -> dict[str, Any]:
        host, port = self.addresses[node.node_id]
        return {"id": node.node_id, "host": host, "port": port, "url": self.url_of(node.node_id)}

    def _node_entry(self, p: NodePlan) -> dict[str, Any]:
        host, port = self.addresses[p.node_id]
        return {"id": p.node_id, "role": p.role, "prefix": p.prefix, "parent": p.parent_id, "industry": p.industry,
                "region": p.region, "url": self.url_of(p.node_id), "host": host, "port": port,
                "identity": p.admin_identity, "identifiers": p.identifier_count, "mirror_of": p.mirror_of,
                "worker": self.workers.get(p.node_id, 0)}

    async def stop(self) -> None:
        await asyncio.gather(*(n.server.stop() for n in self.nodes.values()), return_exceptions=True)
        for node in self.nodes.values():
            node.store.close()
        self.nodes.clear()
        if self._lock is not None:  # only the process that owns the state dir announces and withdraws it
            self._lock.close()
            self._lock = None
            with contextlib.suppress(FileNotFoundError):
                (self.state_dir / TOPOLOGY_FILE).unlink()


Progress = Callable[[str, int, int], None]


async def launch(plan: TopologyPlan, state_dir: Path, *, store_kind: str = "sqlite",
                 progress: Progress | None = None) -> Topology:
    """Start every node of `plan`, wire up the hierarchy, and return the running topology."""
    started = time.perf_counter()
    topology = open_topology(plan, state_dir)
    gc.disable()  # booting allocates millions of long-lived objects; collecting them mid-way only costs time
    try:
        with ThreadPoolExecutor(max_workers=4, thread_name_prefix="handlesim-store") as disk:
            await _start_nodes(topology, store_kind, progress, disk)
            connect(topology)
            load_prefix_records(topology)
            await _delegate(topology, progress)
            await _replication_settled(topology)
            _seed(topology, progress)
        topology.boot_seconds = time.perf_counter() - started
        _write_state(topology)
    except BaseException:
        await topology.stop()
        raise
    finally:
        gc.freeze()  # the topology lives as long as the process: keep it out of every later collection
        gc.enable()
    return topology


def open_topology(plan: TopologyPlan, state_dir: Path) -> Topology:
    """An empty topology that owns `state_dir` (locked until `stop`, so two `up`s never share one)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    topology = Topology(plan, state_dir)
    topology._lock = _lock_state_dir(state_dir)
    return topology


def _lock_state_dir(state_dir: Path) -> IO[str]:
    handle = open(state_dir / LOCK_FILE, "a+")  # noqa: SIM115 - held for the topology's lifetime
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise LaunchError(f"another `handlesim up` is running on {state_dir}; stop it first or use another "
                          "--state-dir") from None
    return handle


def operator_secret(plan: TopologyPlan) -> str:
    """The root operators' shared secret (identity 300:0.NA/0.NA): the first root's generated secret."""
    return next(n.secret for n in plan.nodes if n.role == "root")


def _store_for(node: NodePlan, state_dir: Path, kind: str) -> Store:
    path = state_dir / "stores" / f"{node.node_id}.sqlite" if kind == "sqlite" else None
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    return open_store(kind, path)


def _service_config(node: NodePlan, plan: TopologyPlan) -> ServiceConfig:
    if node.role == "resolver":  # homes nothing: every GET is walked for the client
        return ServiceConfig(node.node_id, server_admins=(ROOT_OPERATOR,))
    admins = (ROOT_OPERATOR,) if node.role == "root" else (ValueReference.from_text(node.admin_identity),)
    return ServiceConfig(node.node_id, homed_prefixes=(node.prefix,), server_admins=admins,
                         secret_iterations=plan.config.secret_iterations, read_only=node.mirror_of is not None)


def _replicator_for(node: NodePlan, service: HandleService, plan: TopologyPlan) -> Replicator | None:
    """Roots replicate to each other; a primary with mirrors replicates to them (as its prefix owner)."""
    if node.role == "root":
        return Replicator(service, ROOT_OPERATOR, operator_secret(plan))
    if plan.mirrors_of(node.node_id):
        return Replicator(service, ValueReference.from_text(node.admin_identity), node.secret)
    return None


def _recursion_for(node: NodePlan, topology: Topology) -> RecursiveResolver:
    """Resolver nodes get the configured shared cache; other nodes a small one for the foreign GETs they walk."""
    spec = next((r for r in topology.plan.config.resolvers if r.id == node.node_id), None)
    cache = ResolutionCache(spec.cache_capacity, spec.negative_ttl) if spec else ResolutionCache(1024)
    return RecursiveResolver(topology.root_site_list, cache)


async def _start_nodes(topology: Topology, store_kind: str, progress: Progress | None, disk: Executor,
                       only: Iterable[NodePlan] | None = None, ports: Mapping[str, int] | None = None,
                       bind_host: str | None = None) -> None:
    """Open the stores and start the servers of `only` (default: every node), on `ports` (default: the plan's)
    and `bind_host` (default: the plan's host); each node's address goes into `topology.addresses`."""
    plan = topology.plan
    nodes = list(plan.nodes if only is None else only)
    total = len(nodes)
    ports = ports or {}
    loop = asyncio.get_running_loop()
    stores = await asyncio.gather(*(loop.run_in_executor(disk, _store_for, node, topology.state_dir, store_kind)
                                    for node in nodes))
    for count, (node, store) in enumerate(zip(nodes, stores, strict=True), 1):
        service = HandleService(_service_config(node, plan), store)
        replicator = _replicator_for(node, service, plan)
        server = NodeServer(service, meta={"role": node.role, "prefix": node.prefix, "industry": node.industry,
                                           "region": node.region}, resolver=_recursion_for(node, topology),
                            replicator=replicator)
        host = bind_host or node.host
        running = RunningNode(node, service, server, store, host=host)
        topology.nodes[node.node_id] = running
        port = ports.get(node.node_id, node.port)
        try:
            await server.start(host, port)
        except OSError as exc:
            raise LaunchError(f"node {node.node_id} cannot listen on {host}:{port}: {exc.strerror}; "
                              "is another topology running? change base_port or use --base-port") from None
        topology.addresses[node.node_id] = (host, server.port)
        running.site = topology.site_of(node.node_id)
        if progress is not None:
            progress("starting nodes", count, total)


def connect(topology: Topology) -> None:
    """Once every node's address is known: give the resolvers the root sites and the primaries their peers."""
    topology.root_site_list[:] = [topology.site_of(n.node_id) for n in topology.plan.nodes
                                  if n.role == "root" and n.node_id in topology.addresses]
    _connect_peers(topology)


async def _replication_settled(topology: Topology, limit_s: float = 60.0) -> None:
    """Wait until every root has pushed the root registry to the other roots (bounded)."""
    deadline = time.monotonic() + limit_s
    replicators = [n.server.replicator for n in topology.nodes.values() if n.server.replicator is not None]
    while any(p.pending for r in replicators for p in r.peers):
        if time.monotonic() > deadline:
            raise LaunchError("the roots did not finish replicating the root registry within "
                              f"{limit_s:.0f} s; see /_sim/stats of the roots")
        await asyncio.sleep(0.02)


def _connect_peers(topology: Topology) -> None:
    """Roots are multi-primary: each pushes what it accepts to every other root. A primary pushes to its mirrors,
    which learn where writes belong."""
    plan = topology.plan
    roots = [n.node_id for n in plan.nodes if n.role == "root"]
    for node in topology.nodes.values():
        node_id = node.plan.node_id
        replicator = node.server.replicator
        if replicator is not None:
            peers = [r for r in roots if r != node_id] if node.plan.role == "root" else plan.mirrors_of(node_id)
            replicator.set_peers([topology.url_of(peer) for peer in peers])
        if node.plan.mirror_of is not None:
            node.service.config.primary = topology.url_of(node.plan.mirror_of)


def _prefix_record_of(topology: Topology, node: NodePlan, secret_data: str) -> HandleRecord:
    """A node's prefix handle: its sites (HS_SITE, and HS_SITE.PREFIX for derived prefixes; the primary first,
    then its mirrors), admins and key.

    `secret_data` is a hashed secret for records loaded directly, the plain secret for records written through an
    API (the receiving node hashes it).
    """
    plan = topology.plan
    p = plan.by_id[node.mirror_of] if node.mirror_of is not None else node  # a mirror serves its primary's record
    sites_known = [topology.site_of(n) for n in (p.node_id, *plan.mirrors_of(p.node_id)) if n in topology.addresses]
    if p.role == "root":
        return prefix_record(NA_PREFIX, sites=sites_known, secret_hash=secret_data)
    parent = plan.by_id[p.parent_id] if p.parent_id else None
    admins = [owner_identity(Prefix(parent.prefix))] if parent is not None and parent.role != "root" else []
    return prefix_record(Prefix(p.prefix), sites=sites_known, derived_sites=sites_known, admins=admins,
                         secret_hash=secret_data)


def _own_secret(node: NodePlan, plan: TopologyPlan) -> str:
    return operator_secret(plan) if node.role == "root" else node.secret


def load_prefix_records(topology: Topology, *, only_missing: bool = False) -> None:
    """Server set-up: load each hosted node's own prefix handle straight into its store (`only_missing`: keep the
    ones a restarted node's store still holds)."""
    plan = topology.plan
    for node in topology.nodes.values():
        if node.plan.role == "resolver":
            continue
        hashed = hash_secret(_own_secret(node.plan, plan), os.urandom(16), plan.config.secret_iterations)
        record = _prefix_record_of(topology, node.plan, hashed)
        if only_missing and node.store.get(record.handle.key) is not None:
            continue
        node.store.put(record)


async def _delegate(topology: Topology, progress: Progress | None, *, only_missing: bool = False) -> None:
    """Give every hosted parent its children's prefix handles through the parent's own REST API, authenticated as
    the parent's owner (`only_missing`: skip the ones the parent's store still holds)."""
    plan = topology.plan
    first_root = next((n.node_id for n in plan.nodes if n.role == "root"), "")
    jobs: list[tuple[str, Request, tuple[ValueReference, str]]] = []
    for node in topology.nodes.values():
        if not plan.children_of(node.plan.node_id):
            continue
        parent_is_root = node.plan.role == "root"
        credentials = (ROOT_OPERATOR if parent_is_root else ValueReference.from_text(node.plan.admin_identity),
                       _own_secret(node.plan, plan))
        # the root registry is shared: the first root takes the write and replicates it to the others
        target = first_root if parent_is_root else node.plan.node_id
        for child_id in plan.children_of(node.plan.node_id):
            record = _prefix_record_of(topology, plan.by_id[child_id], plan.by_id[child_id].secret)
            if only_missing and node.store.get(record.handle.key) is not None:
                continue
            request = Request(OpCode.CREATE_HANDLE, record.handle, values=record.values, overwrite=True)
            jobs.append((target, request, credentials))
    await _run_writes(topology, jobs, progress)


async def _run_writes(topology: Topology, jobs: list[tuple[str, Request, tuple[ValueReference, str]]],
                      progress: Progress | None) -> None:
    semaphore = asyncio.Semaphore(64)
    done = 0
    async with HandleClient(timeout=30.0) as client:
        async def write(target: str, request: Request, credentials: tuple[ValueReference, str]) -> None:
            nonlocal done
            async with semaphore:
                reply = await client.send(topology.url_of(target), request, credentials=credentials)
            if not reply.ok:
                raise LaunchError(f"delegating {request.handle_text} to {target} failed: "
                                  f"{int(reply.code)} {reply.message}")
            done += 1
            if progress is not None:
                progress("delegating prefixes", done, len(jobs))
        await asyncio.gather(*(write(*job) for job in jobs))


def _seed(topology: Topology, progress: Progress | None) -> None:
    """Bulk-load each enterprise's identifiers straight into its own store (first boot only).

    In the event-loop thread on purpose: generating and encoding records is CPU work, and threads fighting over
    the GIL made it twice as slow."""
    plan = topology.plan
    empty = [n for n in topology.nodes.values() if n.plan.role == "enterprise" and len(n.store) <= 1]
    for count, node in enumerate(empty, 1):
        source = plan.by_id[node.plan.mirror_of] if node.plan.mirror_of else node.plan  # mirrors copy their primary
        node.store.put_many(identifiers_for(source, plan.config.seed))
        if progress is not None:
            progress("seeding identifiers", count, len(empty))


def _write_state(topology: Topology) -> None:
    state_dir = topology.state_dir
    credentials = {n.admin_identity: n.secret for n in topology.plan.nodes if n.role in ("secondary", "enterprise")}
    credentials[ROOT_OPERATOR.to_text()] = operator_secret(topology.plan)
    _write_private(state_dir / CREDENTIALS_FILE, json.dumps(credentials, indent=1, sort_keys=True))
    (state_dir / TOPOLOGY_FILE).write_text(json.dumps(topology.describe(), indent=1, ensure_ascii=False))


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.chmod(path, 0o600)

