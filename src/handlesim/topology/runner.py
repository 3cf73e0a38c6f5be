"""Launching a topology: start every node as an aiohttp service, delegate prefixes through the nodes' own APIs,
seed identifiers, and write `<state-dir>/topology.json` so other commands and programs can find it.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import gc
import json
import os
import ssl
import time
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ..core.auth import hash_secret
from ..core.cache import ResolutionCache
from ..core.codes import OpCode
from ..core.handle import NA_PREFIX, Handle, Prefix
from ..core.health import ServerHealth
from ..core.messages import Request
from ..core.netmodel import NetworkModel
from ..core.prefixes import http_site, owner_identity, prefix_record
from ..core.service import HandleService, ServiceConfig
from ..core.storage import HandleRecord, Store
from ..core.values import HASH_OPTION_NAMES, HashBucket, SiteInfo, ValueReference
from ..net.client import HandleClient
from ..net.faults import ControlServer, FaultController
from ..net.lean import LeanPool
from ..net.recursion import RecursiveResolver
from ..net.replication import Replicator
from ..net.server import NodeServer
from ..net.tls import TlsFiles, ensure_certificate
from ..store import open_store
from . import network
from .monitoring import Monitoring, start_monitoring
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
    scheme: str = "http"
    """https when the topology runs with --tls."""

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.plan.host}:{self.server.port}"


@dataclass
class Topology:
    """A launched topology: its nodes, where they listen, and how to stop them."""

    plan: TopologyPlan
    state_dir: Path
    nodes: dict[str, RunningNode] = field(default_factory=dict)
    boot_seconds: float = 0.0
    root_site_list: list[SiteInfo] = field(default_factory=list)
    """Root sites, filled as roots start; resolvers hold this very list."""
    _lock: IO[str] | None = None
    tls: TlsFiles | None = None
    """The certificate files when every REST port serves HTTPS (`up --tls`)."""
    client_ssl: ssl.SSLContext | None = None
    """The context the topology's own clients (walks, verification, replication, delegation) pin its CA with."""
    model: NetworkModel | None = None
    """The network model the nodes' own requests go through (None: loopback)."""
    endpoints: dict[tuple[str, int], str] = field(default_factory=dict)
    """(host, port) -> region of every started node (the model's view of where a request goes)."""
    faults: FaultController | None = None
    """Fault injection (None: off)."""
    control: ControlServer | None = None
    """The control port serving /_sim/fault while nodes are down (with fault injection only)."""
    monitoring: Monitoring | None = None
    """Upward reporting and the process's metrics port (started last in `launch`)."""

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
            "tls": {"ca": str(self.tls.ca)} if self.tls is not None else None,
            "roots": [_site_entry(n) for n in self.nodes.values() if n.plan.role == "root"],
            "examples": example_identifiers(self.plan, 5),
            "nodes": [_node_entry(n) for n in self.nodes.values()],
            **network.describe(self),
            **(self.monitoring.describe() if self.monitoring is not None else {}),
        }

    async def stop(self) -> None:
        if self.monitoring is not None:
            await self.monitoring.stop()
            self.monitoring = None
        if self.control is not None:
            await self.control.stop()
            self.control = None
        if self.faults is not None:
            self.faults.close()
        await asyncio.gather(*(n.server.stop() for n in self.nodes.values()), return_exceptions=True)
        for node in self.nodes.values():
            node.store.close()
        self.nodes.clear()
        if self._lock is not None:
            self._lock.close()
            self._lock = None
        with contextlib.suppress(FileNotFoundError):
            (self.state_dir / TOPOLOGY_FILE).unlink()


def _site_entry(node: RunningNode) -> dict[str, Any]:
    return {"id": node.plan.node_id, "host": node.plan.host, "port": node.server.port, "url": node.url}


def _node_entry(node: RunningNode) -> dict[str, Any]:
    p = node.plan
    return {"id": p.node_id, "role": p.role, "prefix": p.prefix, "parent": p.parent_id, "industry": p.industry,
            "region": p.region, "url": node.url, "host": p.host, "port": node.server.port,
            "identity": p.admin_identity, "identifiers": p.identifier_count, "mirror_of": p.mirror_of,
            "server_of": p.server_of, "server_index": p.server_index, "site_servers": p.site_servers}


Progress = Callable[[str, int, int], None]


async def launch(plan: TopologyPlan, state_dir: Path, *, store_kind: str = "sqlite",
                 progress: Progress | None = None, tls: bool = False, net: str = "loopback",
                 metrics_port: int | None = 0) -> Topology:
    """Start every node of `plan`, wire up the hierarchy, and return the running topology.

    `tls`: every REST port serves HTTPS. `net`: `model` applies the config's network model to the nodes' own
    requests (resolver walks). `metrics_port`: where the process serves Prometheus metrics for all its nodes
    (0: a free port; None: nowhere)."""
    started = time.perf_counter()
    model = network.model_for(plan, net)
    state_dir.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - once, before any node serves
    topology = Topology(plan, state_dir, model=model, faults=network.controller_for(plan))
    topology._lock = _lock_state_dir(state_dir)
    if tls:
        topology.tls = ensure_certificate(state_dir, sorted({n.host for n in plan.nodes}))
        topology.client_ssl = topology.tls.client_context()
    gc.disable()  # booting allocates millions of long-lived objects; collecting them mid-way only costs time
    try:
        with ThreadPoolExecutor(max_workers=4, thread_name_prefix="handlesim-store") as disk:
            await _start_nodes(topology, store_kind, progress, disk)
            await _delegate(topology, progress)
            await _replication_settled(topology)
            _seed(topology, progress)
            await network.start_control(topology)
            topology.monitoring = await start_monitoring(topology, metrics_port)
        topology.boot_seconds = time.perf_counter() - started
        _write_state(topology)
    except BaseException:
        await topology.stop()
        raise
    finally:
        gc.freeze()  # the topology lives as long as the process: keep it out of every later collection
        gc.enable()
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
        return ServiceConfig(node.node_id, server_admins=(ROOT_OPERATOR,), limits=plan.config.limits.service)
    admins = (ROOT_OPERATOR,) if node.role == "root" else (ValueReference.from_text(node.admin_identity),)
    return ServiceConfig(node.node_id, homed_prefixes=(node.prefix,), server_admins=admins,
                         secret_iterations=plan.config.secret_iterations, read_only=node.mirror_of is not None,
                         partition=_partition(node, plan), limits=plan.config.limits.service)


def _partition(node: NodePlan, plan: TopologyPlan) -> HashBucket | None:
    if node.site_servers <= 1:
        return None
    return HashBucket(HASH_OPTION_NAMES[plan.config.servers.hash_option], node.server_index, node.site_servers)


def _replicator_for(node: NodePlan, service: HandleService, plan: TopologyPlan,
                    ssl_context: ssl.SSLContext | None = None) -> Replicator | None:
    """Roots replicate to each other; a primary with mirrors replicates to them (as its prefix owner)."""
    if node.role == "root":
        return Replicator(service, ROOT_OPERATOR, operator_secret(plan), ssl_context=ssl_context)
    if plan.mirrors_of(node.node_id):
        return Replicator(service, ValueReference.from_text(node.admin_identity), node.secret,
                          ssl_context=ssl_context)
    return None


def _recursion_for(node: NodePlan, topology: Topology) -> RecursiveResolver:
    """Resolver nodes get the configured shared cache; other nodes a small one for the foreign GETs they walk."""
    spec = next((r for r in topology.plan.config.resolvers if r.id == node.node_id), None)
    cache = ResolutionCache(spec.cache_capacity, spec.negative_ttl) if spec else ResolutionCache(1024)
    failover = topology.plan.config.failover
    return RecursiveResolver(topology.root_site_list, cache,
                             pool=LeanPool(timeout=failover.timeout, ssl_context=topology.client_ssl),
                             health=ServerHealth(penalty=failover.failed_for), net=network.net_path_for(node, topology))


async def _start_nodes(topology: Topology, store_kind: str, progress: Progress | None, disk: Executor) -> None:
    plan = topology.plan
    nodes = list(plan.nodes)
    total = len(nodes)
    loop = asyncio.get_running_loop()
    server_ssl = topology.tls.server_context() if topology.tls is not None else None
    stores = await asyncio.gather(*(loop.run_in_executor(disk, _store_for, node, topology.state_dir, store_kind)
                                    for node in nodes))
    for count, (node, store) in enumerate(zip(nodes, stores, strict=True), 1):
        service = HandleService(_service_config(node, plan), store)
        replicator = _replicator_for(node, service, plan, topology.client_ssl)
        meta = {"role": node.role, "prefix": node.prefix, "industry": node.industry, "region": node.region}
        if node.site_servers > 1:
            meta["site"] = node.server_of or node.node_id
            meta["server"] = f"{node.server_index + 1} of {node.site_servers}"
        server = NodeServer(service, meta=meta, resolver=_recursion_for(node, topology),
                            replicator=replicator, ssl_context=server_ssl,
                            limits=plan.config.limits.server)
        running = RunningNode(node, service, server, store, scheme="https" if server_ssl is not None else "http")
        topology.nodes[node.node_id] = running
        try:
            await server.start(node.host, node.port)
        except OSError as exc:
            raise LaunchError(f"node {node.node_id} cannot listen on {node.host}:{node.port}: {exc.strerror}; "
                              "is another topology running? change base_port or use --base-port") from None
        network.node_started(topology, running)
        running.site = http_site(node.node_id, [(node.host, server.port)], multi_primary=node.role == "root",
                                 primary=node.mirror_of is None, protocol="HTTPS" if server_ssl else "HTTP")
        if node.role == "root":
            topology.root_site_list.append(running.site)
        if progress is not None:
            progress("starting nodes", count, total)
    _group_partitioned_sites(topology)
    _connect_peers(topology)


def _group_partitioned_sites(topology: Topology) -> None:
    """Every server of a hash-partitioned site shares one SiteInfo listing all of them in hash order."""
    plan = topology.plan
    option = HASH_OPTION_NAMES[plan.config.servers.hash_option]
    for node in list(topology.nodes.values()):
        if node.plan.site_servers <= 1 or node.plan.server_of is not None:
            continue
        members = [topology.nodes[i] for i in plan.servers_of(node.plan.node_id)]
        site = http_site(node.plan.node_id, [(m.plan.host, m.server.port) for m in members],
                         primary=node.plan.mirror_of is None, hash_option=option)
        for member in members:
            member.site = site


def _site_leader(topology: Topology, node: RunningNode) -> RunningNode:
    """The node naming the primary site a node serves (itself, or its primary, or its site's first server)."""
    if node.plan.mirror_of is not None:
        node = topology.nodes[node.plan.mirror_of]
    if node.plan.server_of is not None:
        node = topology.nodes[node.plan.server_of]
    return node


def server_for(topology: Topology, node: RunningNode, handle: Handle) -> RunningNode:
    """The server of `node`'s site that holds `handle` (the site's hash picks it; `node` itself if unpartitioned)."""
    if node.site is None or len(node.site.servers) <= 1:
        return node
    port = node.site.server_for(handle).http_interface().port
    leader = node.plan.server_of or node.plan.node_id
    return next(topology.nodes[i] for i in topology.plan.servers_of(leader) if topology.nodes[i].server.port == port)


async def _replication_settled(topology: Topology, limit_s: float = 60.0) -> None:
    """Wait until every root has pushed the root registry to the other roots (bounded)."""
    deadline = time.monotonic() + limit_s
    replicators = [n.server.replicator for n in topology.nodes.values() if n.server.replicator is not None]
    while any(r.pending_total() for r in replicators):
        if time.monotonic() > deadline:
            raise LaunchError("the roots did not finish replicating the root registry within "
                              f"{limit_s:.0f} s; see /_sim/stats of the roots")
        await asyncio.sleep(0.02)


def _connect_peers(topology: Topology) -> None:
    """Roots are multi-primary: each pushes what it accepts to every other root. A primary pushes to its mirrors,
    which learn where writes belong."""
    roots = [n for n in topology.nodes.values() if n.plan.role == "root"]
    for node in topology.nodes.values():
        replicator = node.server.replicator
        if replicator is None:
            continue
        if node.plan.role == "root":
            peers = [peer for peer in roots if peer is not node]
        else:
            peers = [topology.nodes[m] for m in topology.plan.mirrors_of(node.plan.node_id)]
        replicator.set_peers([peer.url for peer in peers], [peer.plan.node_id for peer in peers])
        for mirror_id in topology.plan.mirrors_of(node.plan.node_id):
            topology.nodes[mirror_id].service.config.primary = node.url


def _prefix_record_of(topology: Topology, node: RunningNode, secret_data: str) -> HandleRecord:
    """A node's prefix handle: its sites (HS_SITE, and HS_SITE.PREFIX for derived prefixes; the primary first,
    then its mirrors), admins and key.

    `secret_data` is a hashed secret for records loaded directly, the plain secret for records written through an
    API (the receiving node hashes it).
    """
    plan = topology.plan
    node = _site_leader(topology, node)  # mirrors and further servers serve the primary site's prefix record
    p = node.plan
    assert node.site is not None
    sites = [node.site, *(topology.nodes[m].site for m in plan.mirrors_of(p.node_id))]
    sites_known = [s for s in sites if s is not None]
    if p.role == "root":
        return prefix_record(NA_PREFIX, sites=sites_known, secret_hash=secret_data)
    parent = plan.by_id[p.parent_id] if p.parent_id else None
    # the tier above administers the prefix: the secondary its enterprises', the root operators the secondaries'
    admins = [ROOT_OPERATOR if parent is None or parent.role == "root" else owner_identity(Prefix(parent.prefix))]
    return prefix_record(Prefix(p.prefix), sites=sites_known, derived_sites=sites_known, admins=admins,
                         secret_hash=secret_data)


def _own_secret(node: NodePlan, plan: TopologyPlan) -> str:
    return operator_secret(plan) if node.role == "root" else node.secret


async def _delegate(topology: Topology, progress: Progress | None) -> None:
    """Load each node's own prefix handle (server set-up), then give every parent tier its children's prefix
    handles through the parent's own REST API, authenticated as the parent's owner."""
    plan = topology.plan
    for node in topology.nodes.values():
        if node.plan.role == "resolver":
            continue
        hashed = hash_secret(_own_secret(node.plan, plan), os.urandom(16), plan.config.secret_iterations)
        node.store.put(_prefix_record_of(topology, node, hashed))
    roots = [n for n in topology.nodes.values() if n.plan.role == "root"]
    jobs: list[tuple[RunningNode, Request, tuple[ValueReference, str]]] = []
    for node in topology.nodes.values():
        if not plan.children_of(node.plan.node_id):
            continue
        parent_is_root = node.plan.role == "root"
        credentials = (ROOT_OPERATOR if parent_is_root else ValueReference.from_text(node.plan.admin_identity),
                       _own_secret(node.plan, plan))
        for child_id in plan.children_of(node.plan.node_id):
            child = topology.nodes[child_id]
            record = _prefix_record_of(topology, child, child.plan.secret)
            request = Request(OpCode.CREATE_HANDLE, record.handle, values=record.values, overwrite=True)
            # the root registry is shared: the first root takes the write and replicates it to the others
            jobs.append((roots[0] if parent_is_root else server_for(topology, node, record.handle), request,
                         credentials))
    await _run_writes(jobs, progress, topology.client_ssl)


async def _run_writes(jobs: list[tuple[RunningNode, Request, tuple[ValueReference, str]]],
                      progress: Progress | None, ssl_context: ssl.SSLContext | None = None) -> None:
    semaphore = asyncio.Semaphore(64)
    done = 0
    async with HandleClient(timeout=30.0, ssl_context=ssl_context) as client:
        async def write(target: RunningNode, request: Request, credentials: tuple[ValueReference, str]) -> None:
            nonlocal done
            async with semaphore:
                reply = await client.send(target.url, request, credentials=credentials)
            if not reply.ok:
                raise LaunchError(f"delegating {request.handle_text} to {target.plan.node_id} failed: "
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
        source = _site_leader(topology, node).plan  # mirrors copy their primary; servers take their share
        records = identifiers_for(source, plan.config.seed)
        bucket = node.service.config.partition
        node.store.put_many(records if bucket is None else [r for r in records if bucket.holds(r.handle)])
        if progress is not None:
            progress("seeding identifiers", count, len(empty))


def _write_state(topology: Topology) -> None:
    state_dir = topology.state_dir
    credentials = {n.plan.admin_identity: n.plan.secret for n in topology.nodes.values()
                   if n.plan.role in ("secondary", "enterprise")}
    credentials[ROOT_OPERATOR.to_text()] = operator_secret(topology.plan)
    _write_private(state_dir / CREDENTIALS_FILE, json.dumps(credentials, indent=1, sort_keys=True))
    (state_dir / TOPOLOGY_FILE).write_text(json.dumps(topology.describe(), indent=1, ensure_ascii=False))


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.chmod(path, 0o600)

