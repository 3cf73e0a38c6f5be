"""Launching a topology: start every node as an aiohttp service, delegate prefixes through the nodes' own APIs,
seed identifiers, and write `<state-dir>/topology.json` so other commands and programs can find it.

`launch` runs every phase for every node in this process. The phases also work on a shard of the nodes (the
`Topology.nodes` this process hosts) once `Topology.addresses` says where every other node listens: the worker
processes and Ray actors of `supervisor.py` run the same functions, phase by phase, in step.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import ssl
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Executor, ThreadPoolExecutor
from pathlib import Path

from ..core.auth import hash_secret
from ..core.codes import OpCode
from ..core.handle import NA_PREFIX, Handle, Prefix
from ..core.health import ServerHealth
from ..core.messages import Request
from ..core.prefixes import TRUST_ROOT_PREFIX, owner_identity, prefix_record, trust_root_record
from ..core.service import HandleService, ServiceConfig
from ..core.storage import HandleRecord, Store
from ..core.values import HASH_OPTION_NAMES, HashBucket, SiteInfo, ValueReference
from ..net.client import HandleClient
from ..net.keepalive import KeepAlivePool
from ..net.native import NativeLimits
from ..net.recursion import RecursiveResolver, encoded_cache
from ..net.replication import Replicator
from ..net.server import NodeServer
from ..net.tls import TlsFiles, ensure_certificate
from ..store import open_store
from . import network
from .clientconfig import trust_root_description, write_client_config
from .monitoring import metrics_port_taken, start_monitoring
from .plan import NodePlan, Role, TopologyPlan
from .ports import beyond_open_files, port_taken
from .running import LaunchError, RunningNode, Topology
from .seed import example_identifiers, identifiers_for
from .state import (
    FORMAT_VERSION,
    NodeEntry,
    RootEntry,
    TlsEntry,
    TopologyState,
    write_credentials,
    write_state,
)
from .statedir import (
    CREDENTIALS_FILE,
    StateDirError,
    StateDirLock,
    StateDirSnapshot,
    StoresOwner,
    claim_stores,
    remove_state,
)

ROOT_OPERATOR = ValueReference("0.NA/0.NA", 300)
log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]


async def launch(plan: TopologyPlan, state_dir: Path, *, store_kind: str = "sqlite",
                 progress: Progress | None = None, tls: bool = False, net: str = "loopback",
                 metrics_port: int | None = 0, reset: bool = False) -> Topology:
    """Start every node of `plan`, wire up the hierarchy, and return the running topology.

    `tls`: every REST port serves HTTPS. `net`: `model` applies the config's network model to the nodes' own
    requests (resolver walks). `metrics_port`: where the process serves Prometheus metrics for all its nodes
    (0: a free port; None: nowhere). `reset`: wipe what the state dir holds first. A launch that fails (or is
    cancelled: Ctrl-C) stops what it started and leaves the state dir as it found it."""
    started = time.perf_counter()
    topology = open_topology(plan, state_dir, tls=tls, net=net, store_kind=store_kind, reset=reset,
                             metrics_port=metrics_port)
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
        announce(topology)
        start_encoding_answers(topology)
    except BaseException:
        await topology.abandon()
        raise
    finally:
        settle_collector()
    return topology


SERVING_GC_THRESHOLDS = (1000, 10, 100)
"""The cyclic collector's thresholds once a topology serves (Python's defaults are 700, 10, 10). A pass costs about a
microsecond per young object here (each visit lands somewhere in a heap of hundreds of MB), so a pass's length is
set by how many young objects it meets, and a p99 of a few milliseconds cannot afford a long one: at 3000/20/100 the
middle generation held ~60,000 objects when it was collected, a 25-50 ms pause every few seconds under load; at
1000/10/100 it holds ~10,000 (3-16 ms) for about the same total time spent collecting. Rare full passes (100 middle
ones) keep Python's defaults from walking the post-boot heap every few seconds. Measured with
benchmarks/loop_stalls.py (benchmarks/results/2026-12-02-gc-thresholds/SUMMARY.md)."""


def settle_collector() -> None:
    """After boot: keep everything booted out of every later collection (the topology lives as long as the process),
    and collect young objects less often (SERVING_GC_THRESHOLDS).

    One full collection first (~0.4 s for the plan): boot's garbage is freed rather than frozen for good, and the
    collector untracks the boot's tuples of atoms (the answer cache's keys and entries, values). A frozen tuple it
    never looked at stays tracked, and so does every later tuple holding it (the answer cache's index by handle):
    those would pile up in the generations every later collection walks."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*SERVING_GC_THRESHOLDS)
    gc.enable()


def open_topology(plan: TopologyPlan, state_dir: Path, *, tls: bool = False, net: str = "loopback",
                  store_kind: str = "sqlite", reset: bool = False, metrics_port: int | None = None,
                  check_ports: bool = True) -> Topology:
    """An empty topology that owns `state_dir` (locked until `stop`, so two `up`s never share one), with its network
    model (`net`) and, with `tls`, the certificate files every process of the topology serves and pins.

    Refused before anything starts: a state dir in use, SQLite stores of another topology (`reset` wipes the state
    dir's old content first), a node port or `metrics_port` already taken (`check_ports`). A refusal leaves the
    state dir as it was."""
    model = network.model_for(plan, net)
    snapshot = StateDirSnapshot(state_dir)
    try:
        lock = StateDirLock.acquire(state_dir)
    except StateDirError as exc:
        raise LaunchError(str(exc)) from None
    topology = Topology(plan, state_dir, model=model, lock=lock, snapshot=snapshot)
    try:
        if reset:
            remove_state(state_dir, keep_lock=True)
        if check_ports:
            _refuse_taken_ports(plan, metrics_port)
        if store_kind == "sqlite":
            claim_stores(state_dir, StoresOwner(plan.config.name, plan.config.seed))
        if tls:
            use_tls(topology, ensure_certificate(state_dir, sorted({n.host for n in plan.nodes})))
    except BaseException as exc:
        snapshot.remove_new()
        lock.release()
        if isinstance(exc, StateDirError):
            raise LaunchError(str(exc)) from None
        raise
    return topology


def _refuse_taken_ports(plan: TopologyPlan, metrics_port: int | None) -> None:
    """Every fixed port the launch will listen on must be free now (0: any free port, nothing to check)."""
    for node in plan.nodes:
        reason = port_taken(node.host, node.port) if node.port else None
        if reason is not None:
            raise LaunchError(node_port_taken(node.node_id, node.host, node.port, reason))
        if node.native_port:
            for udp in (False, True):
                reason = port_taken(node.host, node.native_port, udp=udp)
                if reason is not None:
                    raise LaunchError(native_port_taken(node.node_id, node.host, node.native_port, reason, udp))
    host = plan.config.host
    if metrics_port:
        reason = port_taken(host, metrics_port)
        if reason is not None:
            raise LaunchError(metrics_port_taken(host, metrics_port, reason))


def node_port_taken(node_id: str, host: str, port: int, reason: str) -> str:
    return (f"node {node_id} cannot listen on {host}:{port}: {reason}; is another topology running? change "
            "base_port or use --base-port")


def native_port_taken(node_id: str, host: str, port: int, reason: str, udp: bool | None = None) -> str:
    which = {True: "UDP ", False: "TCP ", None: ""}[udp]
    return (f"node {node_id} cannot listen for the native protocol on {which}{host}:{port}: {reason}; change "
            "[native] port_offset or base_port, or start without it (`up --no-native`)")


def use_tls(topology: Topology, files: TlsFiles) -> None:
    """Serve HTTPS with `files` and pin their CA in the topology's own clients (before any node starts)."""
    topology.tls = files
    topology.client_ssl = files.client_context()


def operator_secret(plan: TopologyPlan) -> str:
    """The root operators' shared secret (identity 300:0.NA/0.NA): the first root's generated secret."""
    return plan.operator_secret


def _store_for(node: NodePlan, state_dir: Path, kind: str) -> Store:
    path = state_dir / "stores" / f"{node.node_id}.sqlite" if kind == "sqlite" else None
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    return open_store(kind, path)


def _service_config(node: NodePlan, plan: TopologyPlan) -> ServiceConfig:
    if node.role == Role.RESOLVER:  # homes nothing: every GET is walked for the client
        return ServiceConfig(node.node_id, server_admins=(ROOT_OPERATOR,), limits=plan.config.limits.service)
    admins = (ROOT_OPERATOR,) if node.role == Role.ROOT else (ValueReference.from_text(node.admin_identity),)
    homed = _homed_prefixes(node)
    return ServiceConfig(node.node_id, homed_prefixes=homed, server_admins=admins,
                         secret_iterations=plan.config.secret_iterations, read_only=node.mirror_of is not None,
                         partition=_partition(node, plan), limits=plan.config.limits.service)


def _homed_prefixes(node: NodePlan) -> tuple[str, ...]:
    """What a node homes: its prefix; the roots also the trust root's prefix `0.0` (they serve `0.0/0.0`)."""
    return (node.prefix, TRUST_ROOT_PREFIX.text) if node.role == Role.ROOT else (node.prefix,)


def _partition(node: NodePlan, plan: TopologyPlan) -> HashBucket | None:
    if node.site_servers <= 1:
        return None
    return HashBucket(HASH_OPTION_NAMES[plan.config.servers.hash_option], node.server_index, node.site_servers)


def _replicator_for(node: NodePlan, service: HandleService, plan: TopologyPlan,
                    ssl_context: ssl.SSLContext | None = None) -> Replicator | None:
    """Roots replicate to each other; a primary with mirrors replicates to them (as its prefix owner)."""
    if node.role == Role.ROOT:
        return Replicator(service, ROOT_OPERATOR, operator_secret(plan), ssl_context=ssl_context)
    if plan.mirrors_of(node.node_id):
        return Replicator(service, ValueReference.from_text(node.admin_identity), node.secret,
                          ssl_context=ssl_context)
    return None


def _recursion_for(node: NodePlan, topology: Topology) -> RecursiveResolver:
    """Resolver nodes get the configured shared cache; other nodes a small one for the foreign GETs they walk."""
    spec = next((r for r in topology.plan.config.resolvers if r.id == node.node_id), None)
    cache = encoded_cache(spec.cache_capacity, spec.negative_ttl) if spec else encoded_cache(1024)
    failover = topology.plan.config.failover
    return RecursiveResolver(topology.root_site_list, cache,
                             pool=KeepAlivePool(timeout=failover.timeout, ssl_context=topology.client_ssl),
                             health=ServerHealth(penalty=failover.failed_for), net=network.net_path_for(node, topology))


async def _start_nodes(topology: Topology, store_kind: str, progress: Progress | None, disk: Executor,
                       only: Iterable[NodePlan] | None = None, ports: Mapping[str, int] | None = None,
                       bind_host: str | None = None, native_ports: Mapping[str, int] | None = None) -> None:
    """Open the stores and start the servers of `only` (default: every node), on `ports` and `native_ports`
    (default: the plan's) and `bind_host` (default: the plan's host); each node's address goes into
    `topology.addresses`, its native port into `topology.native_ports`."""
    plan = topology.plan
    nodes = list(plan.nodes if only is None else only)
    total = len(nodes)
    too_many = beyond_open_files(total, sum(1 for n in nodes if n.native_port is not None), store_kind == "sqlite")
    if too_many is not None:
        raise LaunchError(too_many)
    ports = ports or {}
    native_ports = native_ports or {}
    loop = asyncio.get_running_loop()
    server_ssl = topology.tls.server_context() if topology.tls is not None else None
    stores = await asyncio.gather(*(loop.run_in_executor(disk, _store_for, node, topology.state_dir, store_kind)
                                    for node in nodes))
    for count, (node, store) in enumerate(zip(nodes, stores, strict=True), 1):
        service = HandleService(_service_config(node, plan), store)
        replicator = _replicator_for(node, service, plan, topology.client_ssl)
        meta = {"role": node.role.value, "prefix": node.prefix, "industry": node.industry, "region": node.region}
        if node.site_servers > 1:
            meta["site"] = node.server_of or node.node_id
            meta["server"] = f"{node.server_index + 1} of {node.site_servers}"
        server = NodeServer(service, meta=meta, resolver=_recursion_for(node, topology),
                            replicator=replicator, ssl_context=server_ssl,
                            limits=plan.config.limits.server,
                            native=NativeLimits() if node.native_port is not None else None)
        host = bind_host or node.host
        running = RunningNode(node, service, server, store, scheme=topology.scheme, host=host)
        topology.nodes[node.node_id] = running
        port = ports.get(node.node_id, node.port)
        try:
            await server.start(host, port)
        except OSError as exc:
            raise LaunchError(node_port_taken(node.node_id, host, port, exc.strerror or str(exc))) from None
        topology.addresses[node.node_id] = (host, server.port)
        if node.native_port is not None:
            native_port = native_ports.get(node.node_id, node.native_port)
            try:
                topology.native_ports[node.node_id] = await server.start_native(host, native_port)
            except OSError as exc:
                raise LaunchError(native_port_taken(node.node_id, host, native_port, exc.strerror or str(exc))) \
                    from None
        network.node_started(topology, running)
        if progress is not None:
            progress("starting nodes", count, total)


def connect(topology: Topology) -> None:
    """Once every node's address is known: the model learns every node's region, the hosted nodes their sites,
    the resolvers the root sites, and the primaries their peers."""
    plan = topology.plan
    for node_id, address in topology.addresses.items():
        topology.endpoints[address] = plan.by_id[node_id].region
    for node_id, native_port in topology.native_ports.items():
        topology.endpoints[(topology.addresses[node_id][0], native_port)] = plan.by_id[node_id].region
    for node_id, node in topology.nodes.items():
        node.site = topology.site_of(node_id) if topology.site_known(node_id) else None
        if node.server.native is not None and node.site is not None:  # OC_GET_SITE_INFO answers the node's site
            node.server.native.site = node.site
    roots = [n.node_id for n in plan.nodes if n.role == Role.ROOT and topology.site_known(n.node_id)]
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
    roots = [n.node_id for n in plan.nodes if n.role == Role.ROOT]
    for node in topology.nodes.values():
        node_id = node.plan.node_id
        replicator = node.server.replicator
        if replicator is not None:
            peers = [r for r in roots if r != node_id] if node.plan.role == Role.ROOT else plan.mirrors_of(node_id)
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
    if p.role == Role.ROOT:  # 0.NA/0.NA: the root service, every root's site (clients bootstrap from it)
        roots = [n.node_id for n in plan.nodes if n.role == Role.ROOT and topology.site_known(n.node_id)]
        return prefix_record(NA_PREFIX, sites=[topology.site_of(r) for r in roots], secret_hash=secret_data)
    sites_known = [topology.site_of(n) for n in (p.node_id, *plan.mirrors_of(p.node_id)) if topology.site_known(n)]
    parent = plan.by_id[p.parent_id] if p.parent_id else None
    # the tier above administers the prefix: the secondary its enterprises', the root operators the secondaries'
    admins = [ROOT_OPERATOR if parent is None or parent.role == Role.ROOT else owner_identity(Prefix(parent.prefix))]
    return prefix_record(Prefix(p.prefix), sites=sites_known, derived_sites=sites_known, admins=admins,
                         secret_hash=secret_data)


def _own_secret(node: NodePlan, plan: TopologyPlan) -> str:
    return operator_secret(plan) if node.role == Role.ROOT else node.secret


def load_prefix_records(topology: Topology, *, only_missing: bool = False) -> None:
    """Server set-up: load each hosted node's own prefix handle straight into its store (`only_missing`: keep the
    ones a restarted node's store still holds)."""
    plan = topology.plan
    for node in topology.nodes.values():
        if node.plan.role == Role.RESOLVER:
            continue
        if node.plan.role == Role.ROOT:
            _serve_trust_root(node.service, plan)
        hashed = hash_secret(_own_secret(node.plan, plan), os.urandom(16), plan.config.secret_iterations)
        record = _prefix_record_of(topology, node.plan, hashed)
        if only_missing and node.store.get(record.handle.key) is not None:
            continue
        node.store.put(record)


def _serve_trust_root(service: HandleService, plan: TopologyPlan) -> None:
    """A root serves `0.0/0.0` beside `0.NA/0.NA`: a Handle.Net client's bootstrap names both. A store from before
    the roots homed `0.0` gets it homed now (through the service, as the root operators)."""
    if not service.homes(TRUST_ROOT_PREFIX):
        service.handle(Request(OpCode.HOME_NA, prefix=TRUST_ROOT_PREFIX, identity=ROOT_OPERATOR), time.time())
    record = trust_root_record(trust_root_description(plan.config.name))
    if service.store.get(record.handle.key) is None:
        service.store.put(record)


Write = tuple[str, Request, tuple[ValueReference, str]]
"""A delegation write: the node it goes to, the request, and the credentials it is made with."""


async def _delegate(topology: Topology, progress: Progress | None, *, only_missing: bool = False) -> None:
    """Give every parent its children's prefix handles through the parent's own REST API, authenticated as the
    parent's owner. A partitioned parent site gets each handle at the server its hash picks.

    First boot: this process writes for the parents it hosts. `only_missing` (a restarted worker): it writes every
    handle, whoever the parent, that one of the nodes it hosts should hold and its store lacks."""
    plan = topology.plan
    first_root = next((n.node_id for n in plan.nodes if n.role == Role.ROOT), "")
    hosted_roots = [n for n in topology.nodes.values() if n.plan.role == Role.ROOT]
    parents = list(plan.nodes) if only_missing else [n.plan for n in topology.nodes.values()]
    jobs: list[Write] = []
    for parent in parents:
        if not plan.children_of(parent.node_id):
            continue
        parent_is_root = parent.role == Role.ROOT
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
    empty = [n for n in topology.nodes.values() if n.plan.role == Role.ENTERPRISE and len(n.store) <= 1]
    for count, node in enumerate(empty, 1):
        source = _site_leader(plan, node.plan)  # mirrors copy their primary; servers take their share
        records = identifiers_for(source, plan.config.seed)
        bucket = node.service.config.partition
        node.store.put_many(records if bucket is None else [r for r in records if bucket.holds(r.handle)])
        if progress is not None:
            progress("seeding identifiers", count, len(empty))


ENCODING_SLICE_S = 0.002
"""The longest the nodes' encoding ahead holds the event loop before it lets requests in (one record: ~20 us)."""


def start_encoding_answers(topology: Topology) -> None:
    """Once the topology serves: every node encodes its records' public answers ahead of their first lookup
    (ServerLimits.encoded_ahead) in the background, a slice of at most ENCODING_SLICE_S at a time, so start-up does
    not wait for it (~4 s of CPU for the plan's 100,000 identifiers in JSON and msgpack) and lookups are answered
    meanwhile (those it has not reached yet are encoded at their first lookup, as before)."""
    topology.encoding = asyncio.ensure_future(encode_answers(topology))
    topology.encoding.add_done_callback(lambda _: setattr(topology, "encoding", None))


async def encode_answers(topology: Topology) -> None:
    started = time.perf_counter()
    turn = started
    for node in list(topology.nodes.values()):
        try:
            for _ in node.server.encoding_ahead():
                if time.perf_counter() - turn > ENCODING_SLICE_S:
                    await asyncio.sleep(0)
                    turn = time.perf_counter()
        except Exception:  # a bug: that node's answers are encoded at their first lookups instead, the others go on
            log.exception("encoding the answers of %s ahead failed", node.plan.node_id)
    topology.encoding_seconds = time.perf_counter() - started


def describe(topology: Topology) -> TopologyState:
    """What topology.json says about a launched topology (every node this process knows the address of)."""
    plan = topology.plan
    listed = [n for n in plan.nodes if n.node_id in topology.addresses]
    monitoring = topology.monitoring
    return TopologyState(
        version=FORMAT_VERSION, name=plan.config.name, seed=plan.config.seed, pid=os.getpid(),
        state_dir=topology.state_dir, started_at=time.time(), boot_seconds=round(topology.boot_seconds, 3),
        credentials=topology.state_dir / CREDENTIALS_FILE,
        tls=TlsEntry(topology.tls.ca) if topology.tls is not None else None,
        roots=tuple(_root_entry(topology, n) for n in listed if n.role == Role.ROOT),
        examples=tuple(example_identifiers(plan, 5)),
        nodes=tuple(_node_entry(topology, n) for n in listed),
        net=network.net_mode(topology), network=topology.model.to_dict() if topology.model is not None else None,
        faults=network.faults_entry(topology),
        metrics_url=monitoring.metrics_url if monitoring is not None else None,
        report_interval=monitoring.sender.interval if monitoring is not None else None,
        engine=topology.engine, workers=max(topology.workers.values(), default=0) + 1,
        metrics_urls=tuple(topology.metrics_urls))


def _root_entry(topology: Topology, node: NodePlan) -> RootEntry:
    host, port = topology.addresses[node.node_id]
    return RootEntry(node.node_id, host, port, topology.url_of(node.node_id), topology.native_ports.get(node.node_id))


def _node_entry(topology: Topology, p: NodePlan) -> NodeEntry:
    host, port = topology.addresses[p.node_id]
    return NodeEntry(id=p.node_id, role=p.role, prefix=p.prefix, parent=p.parent_id, industry=p.industry,
                     region=p.region, url=topology.url_of(p.node_id), host=host, port=port,
                     identity=p.admin_identity, identifiers=p.identifier_count, mirror_of=p.mirror_of,
                     server_of=p.server_of, server_index=p.server_index, site_servers=p.site_servers,
                     worker=topology.workers.get(p.node_id, 0), native_port=topology.native_ports.get(p.node_id))


def announce(topology: Topology) -> TopologyState:
    """Write credentials.json and topology.json: from now on other commands find the topology."""
    plan = topology.plan
    credentials = {n.admin_identity: n.secret for n in plan.nodes if n.role in (Role.SECONDARY, Role.ENTERPRISE)}
    credentials[ROOT_OPERATOR.to_text()] = operator_secret(plan)
    write_credentials(topology.state_dir, credentials)
    state = describe(topology)
    if topology.native_ports:  # a real Handle.Net client can bootstrap from our roots
        write_client_config(state)
    write_state(state)
    return state
