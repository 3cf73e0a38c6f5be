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
import ssl
import time
from collections.abc import Callable, Iterable, Mapping
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
from ..net.keepalive import KeepAlivePool
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
    """The node's site as prefix records name it (set by `connect`, once every server of the site is known)."""
    scheme: str = "http"
    """https when the topology runs with --tls."""
    host: str = ""
    """The address the node bound (empty: the plan's host)."""

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host or self.plan.host}:{self.server.port}"


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
    tls: TlsFiles | None = None
    """The certificate files when every REST port serves HTTPS (`up --tls`)."""
    client_ssl: ssl.SSLContext | None = None
    """The context the topology's own clients (walks, verification, replication, delegation) pin its CA with."""
    model: NetworkModel | None = None
    """The network model the nodes' own requests go through (None: loopback)."""
    endpoints: dict[tuple[str, int], str] = field(default_factory=dict)
    """(host, port) -> region of every node (the model's view of where a request goes)."""
    faults: FaultController | None = None
    """Fault injection (None: off)."""
    control: ControlServer | None = None
    """The control port serving /_sim/fault while nodes are down (with fault injection only)."""
    monitoring: Monitoring | None = None
    """Upward reporting and the process's metrics port (started last in `launch`)."""
    metrics_urls: list[str] = field(default_factory=list)
    """Every worker's metrics URL when the nodes run in workers (inline: `monitoring.metrics_url`)."""
    addresses: dict[str, tuple[str, int]] = field(default_factory=dict)
    """Where every node of the plan listens, (host, port), including nodes hosted by other processes."""
    workers: dict[str, int] = field(default_factory=dict)
    """The worker number hosting each node (empty: every node in this process)."""
    engine: str = "inline"
    """How the nodes run: `inline` (this process), `process` (worker processes) or `ray` (Ray actors)."""

    @property
    def scheme(self) -> str:
        return "https" if self.tls is not None else "http"

    def url_of(self, node_id: str) -> str:
        host, port = self.addresses[node_id]
        return f"{self.scheme}://{host}:{port}"

    def site_known(self, node_id: str) -> bool:
        """Does every server of the node's site listen yet (so `site_of` can name them all)?"""
        leader = self.plan.by_id[node_id].server_of or node_id
        return all(n in self.addresses for n in self.plan.servers_of(leader))

    def site_of(self, node_id: str) -> SiteInfo:
        """The node's site as its prefix record and the resolvers' root list name it: a hash-partitioned site lists
        every one of its servers, in hash order."""
        node = self.plan.by_id[node_id]
        protocol = "HTTPS" if self.tls is not None else "HTTP"
        if node.site_servers <= 1:
            return http_site(node_id, [self.addresses[node_id]], multi_primary=node.role == "root",
                             primary=node.mirror_of is None, protocol=protocol)
        leader = self.plan.by_id[node.server_of or node_id]
        return http_site(leader.node_id, [self.addresses[n] for n in self.plan.servers_of(leader.node_id)],
                         primary=leader.mirror_of is None, protocol=protocol,
                         hash_option=HASH_OPTION_NAMES[self.plan.config.servers.hash_option])

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
            "roots": [self._site_entry(n) for n in self._listed() if n.role == "root"],
            "examples": example_identifiers(self.plan, 5),
            "nodes": [self._node_entry(n) for n in self._listed()],
            **network.describe(self),
            **(self.monitoring.describe() if self.monitoring is not None else {}),
            "engine": self.engine,
            "workers": max(self.workers.values(), default=0) + 1,
            **({"metrics_urls": self.metrics_urls} if self.metrics_urls else {}),
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
                "server_of": p.server_of, "server_index": p.server_index, "site_servers": p.site_servers,
                "worker": self.workers.get(p.node_id, 0)}

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
        if self._lock is not None:  # only the process that owns the state dir announces and withdraws it
            self._lock.close()
            self._lock = None
            with contextlib.suppress(FileNotFoundError):
                (self.state_dir / TOPOLOGY_FILE).unlink()


Progress = Callable[[str, int, int], None]


async def launch(plan: TopologyPlan, state_dir: Path, *, store_kind: str = "sqlite",
                 progress: Progress | None = None, tls: bool = False, net: str = "loopback",
                 metrics_port: int | None = 0) -> Topology:
    """Start every node of `plan`, wire up the hierarchy, and return the running topology.

    `tls`: every REST port serves HTTPS. `net`: `model` applies the config's network model to the nodes' own
    requests (resolver walks). `metrics_port`: where the process serves Prometheus metrics for all its nodes
    (0: a free port; None: nowhere)."""
    started = time.perf_counter()
    topology = open_topology(plan, state_dir, tls=tls, net=net)
    topology.faults = network.controller_for(plan)
    gc.disable()  # booting allocates millions of long-lived objects; collecting them mid-way only costs time
    try:
        with ThreadPoolExecutor(max_workers=4, thread_name_prefix="handlesim-store") as disk:
            await _start_nodes(topology, store_kind, progress, disk)
            connect(topology)
            load_prefix_records(topology)
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


def open_topology(plan: TopologyPlan, state_dir: Path, *, tls: bool = False, net: str = "loopback") -> Topology:
    """An empty topology that owns `state_dir` (locked until `stop`, so two `up`s never share one), with its network
    model (`net`) and, with `tls`, the certificate files every process of the topology serves and pins."""
    model = network.model_for(plan, net)
    state_dir.mkdir(parents=True, exist_ok=True)
    topology = Topology(plan, state_dir, model=model)
    topology._lock = _lock_state_dir(state_dir)
    if tls:
        use_tls(topology, ensure_certificate(state_dir, sorted({n.host for n in plan.nodes})))
    return topology


def use_tls(topology: Topology, files: TlsFiles) -> None:
    """Serve HTTPS with `files` and pin their CA in the topology's own clients (before any node starts)."""
    topology.tls = files
    topology.client_ssl = files.client_context()


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
                             pool=KeepAlivePool(timeout=failover.timeout, ssl_context=topology.client_ssl),
                             health=ServerHealth(penalty=failover.failed_for), net=network.net_path_for(node, topology))


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
        host = bind_host or node.host
        running = RunningNode(node, service, server, store, scheme=topology.scheme, host=host)
        topology.nodes[node.node_id] = running
        port = ports.get(node.node_id, node.port)
        try:
            await server.start(host, port)
        except OSError as exc:
            raise LaunchError(f"node {node.node_id} cannot listen on {host}:{port}: {exc.strerror}; "
                              "is another topology running? change base_port or use --base-port") from None
        topology.addresses[node.node_id] = (host, server.port)
        network.node_started(topology, running)
        if progress is not None:
            progress("starting nodes", count, total)


def connect(topology: Topology) -> None:
    """Once every node's address is known: the model learns every node's region, the hosted nodes their sites,
    the resolvers the root sites, and the primaries their peers."""
    plan = topology.plan
    for node_id, address in topology.addresses.items():
        topology.endpoints[address] = plan.by_id[node_id].region
    for node_id, node in topology.nodes.items():
        node.site = topology.site_of(node_id) if topology.site_known(node_id) else None
    roots = [n.node_id for n in plan.nodes if n.role == "root" and topology.site_known(n.node_id)]
    topology.root_site_list[:] = _unique_sites(topology, roots)
    _connect_peers(topology)


def _unique_sites(topology: Topology, node_ids: list[str]) -> list[SiteInfo]:
    """One site per distinct site of `node_ids` (the servers of a partitioned site share one)."""
    leaders = dict.fromkeys(topology.plan.by_id[n].server_of or n for n in node_ids)
    return [topology.site_of(leader) for leader in leaders]


def _site_leader(plan: TopologyPlan, node: NodePlan) -> NodePlan:
    """The node naming the primary site a node serves (itself, or its primary, or its site's first server)."""
    if node.mirror_of is not None:
        node = plan.by_id[node.mirror_of]
    if node.server_of is not None:
        node = plan.by_id[node.server_of]
    return node


def server_for(topology: Topology, node_id: str, handle: Handle) -> str:
    """The server of `node_id`'s site that holds `handle` (the site's hash picks it; `node_id` itself if the site
    is not partitioned)."""
    node = topology.plan.by_id[node_id]
    if node.site_servers <= 1:
        return node_id
    chosen = topology.site_of(node_id).server_for(handle)
    address = (chosen.address, chosen.http_interface().port)
    leader = node.server_of or node_id
    return next(n for n in topology.plan.servers_of(leader) if topology.addresses[n] == address)


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
    which learn where writes belong. Peers are named by node id (their durable replication logs are kept by it)."""
    plan = topology.plan
    roots = [n.node_id for n in plan.nodes if n.role == "root"]
    for node in topology.nodes.values():
        node_id = node.plan.node_id
        replicator = node.server.replicator
        if replicator is not None:
            peers = [r for r in roots if r != node_id] if node.plan.role == "root" else plan.mirrors_of(node_id)
            replicator.set_peers([topology.url_of(peer) for peer in peers], list(peers))
        if node.plan.mirror_of is not None:
            node.service.config.primary = topology.url_of(node.plan.mirror_of)


def _prefix_record_of(topology: Topology, node: NodePlan, secret_data: str) -> HandleRecord:
    """A node's prefix handle: its sites (HS_SITE, and HS_SITE.PREFIX for derived prefixes; the primary first,
    then its mirrors), admins and key.

    `secret_data` is a hashed secret for records loaded directly, the plain secret for records written through an
    API (the receiving node hashes it).
    """
    plan = topology.plan
    p = _site_leader(plan, node)  # mirrors and further servers serve the primary site's prefix record
    sites_known = [topology.site_of(n) for n in (p.node_id, *plan.mirrors_of(p.node_id)) if topology.site_known(n)]
    if p.role == "root":
        return prefix_record(NA_PREFIX, sites=sites_known, secret_hash=secret_data)
    parent = plan.by_id[p.parent_id] if p.parent_id else None
    # the tier above administers the prefix: the secondary its enterprises', the root operators the secondaries'
    admins = [ROOT_OPERATOR if parent is None or parent.role == "root" else owner_identity(Prefix(parent.prefix))]
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


Write = tuple[str, Request, tuple[ValueReference, str]]
"""A delegation write: the node it goes to, the request, and the credentials it is made with."""


async def _delegate(topology: Topology, progress: Progress | None, *, only_missing: bool = False) -> None:
    """Give every parent its children's prefix handles through the parent's own REST API, authenticated as the
    parent's owner. A partitioned parent site gets each handle at the server its hash picks.

    First boot: this process writes for the parents it hosts. `only_missing` (a restarted worker): it writes every
    handle, whoever the parent, that one of the nodes it hosts should hold and its store lacks."""
    plan = topology.plan
    first_root = next((n.node_id for n in plan.nodes if n.role == "root"), "")
    hosted_roots = [n for n in topology.nodes.values() if n.plan.role == "root"]
    parents = list(plan.nodes) if only_missing else [n.plan for n in topology.nodes.values()]
    jobs: list[Write] = []
    for parent in parents:
        if not plan.children_of(parent.node_id):
            continue
        parent_is_root = parent.role == "root"
        credentials = (ROOT_OPERATOR if parent_is_root else ValueReference.from_text(parent.admin_identity),
                       _own_secret(parent, plan))
        for child_id in plan.children_of(parent.node_id):
            child = plan.by_id[child_id]
            record = _prefix_record_of(topology, child, child.secret)
            # the root registry is shared: the first root takes the write and replicates it to the others
            target = first_root if parent_is_root else server_for(topology, parent.node_id, record.handle)
            if only_missing:
                holders = hosted_roots if parent_is_root else [topology.nodes[target]] if target in topology.nodes \
                    else []
                if all(h.store.get(record.handle.key) is not None for h in holders):
                    continue
            request = Request(OpCode.CREATE_HANDLE, record.handle, values=record.values, overwrite=True)
            jobs.append((target, request, credentials))
    await _run_writes(topology, jobs, progress)


async def _run_writes(topology: Topology, jobs: list[Write], progress: Progress | None) -> None:
    semaphore = asyncio.Semaphore(64)
    done = 0
    async with HandleClient(timeout=30.0, ssl_context=topology.client_ssl) as client:
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
        source = _site_leader(plan, node.plan)  # mirrors copy their primary; servers take their share
        records = identifiers_for(source, plan.config.seed)
        bucket = node.service.config.partition
        node.store.put_many(records if bucket is None else [r for r in records if bucket.holds(r.handle)])
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
