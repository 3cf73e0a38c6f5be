"""A launched topology as the processes hosting its nodes hold it: `Topology`, its `RunningNode`s, its monitoring,
and `LaunchError`. Below the launcher (`runner`), the network and monitoring set-up (`network`, `monitoring`) and the
worker engines, which all import it; it imports none of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from dataclasses import dataclass, field
from pathlib import Path

from ..core.netmodel import NetworkModel
from ..core.prefixes import http_site, with_native_interfaces
from ..core.service import HandleService
from ..core.storage import Store
from ..core.values import HASH_OPTION_NAMES, SiteInfo
from ..net.faults import ControlServer, FaultController
from ..net.metrics import MetricsServer
from ..net.reporting import ReportSender
from ..net.server import NodeServer
from ..net.tls import TlsFiles
from .plan import NodePlan, Role, TopologyPlan
from .statedir import TOPOLOGY_FILE, StateDirLock, StateDirSnapshot


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
class Monitoring:
    """Upward reporting of a process's nodes and the process's Prometheus port (`monitoring.start_monitoring`)."""

    sender: ReportSender
    metrics: MetricsServer | None
    host: str

    @property
    def metrics_url(self) -> str | None:
        return f"http://{self.host}:{self.metrics.port}/metrics" if self.metrics is not None else None

    async def stop(self) -> None:
        await self.sender.stop()
        if self.metrics is not None:
            await self.metrics.stop()


@dataclass
class Topology:
    """A launched topology: its nodes, where they listen, and how to stop them."""

    plan: TopologyPlan
    state_dir: Path
    nodes: dict[str, RunningNode] = field(default_factory=dict)
    boot_seconds: float = 0.0
    root_site_list: list[SiteInfo] = field(default_factory=list)
    """Root sites, filled once every node listens (`connect`); resolvers hold this very list."""
    lock: StateDirLock | None = None
    """The state dir's lock, held by the process that owns the state dir (`up`; not its workers)."""
    snapshot: StateDirSnapshot | None = None
    """What the state dir held before this launch: a launch that fails removes what it added."""
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
    native_ports: dict[str, int] = field(default_factory=dict)
    """The native interface's port (UDP and TCP) of every node that has one, including nodes of other processes."""
    workers: dict[str, int] = field(default_factory=dict)
    """The worker number hosting each node (empty: every node in this process)."""
    engine: str = "inline"
    """How the nodes run: `inline` (this process), `process` (worker processes) or `ray` (Ray actors)."""
    encoding: asyncio.Task[None] | None = None
    """The nodes encoding their answers ahead once the topology serves (`runner.encode_answers`); None when done."""
    encoding_seconds: float = 0.0
    """How long that took, once it is done (0.0 until then)."""

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
            site = http_site(node_id, [self.addresses[node_id]], multi_primary=node.role == Role.ROOT,
                             primary=node.mirror_of is None, protocol=protocol)
            return self._with_native(site, [node_id])
        leader = self.plan.by_id[node.server_of or node_id]
        servers = self.plan.servers_of(leader.node_id)
        site = http_site(leader.node_id, [self.addresses[n] for n in servers],
                         primary=leader.mirror_of is None, protocol=protocol,
                         hash_option=HASH_OPTION_NAMES[self.plan.config.servers.hash_option])
        return self._with_native(site, servers)

    def _with_native(self, site: SiteInfo, servers: list[str]) -> SiteInfo:
        """The site with each server's native interfaces (TCP and UDP) after its HTTP one, as a Handle.Net site
        lists them, when every server of the site has a native interface."""
        ports = [self.native_ports.get(n) for n in servers]
        if not all(ports):
            return site
        return with_native_interfaces(site, [(port, port) for port in ports if port])

    @property
    def root_sites(self) -> list[SiteInfo]:
        return list(self.root_site_list)

    async def stop(self) -> None:
        await self._stop_serving()
        self._withdraw()

    async def abandon(self) -> None:
        """Stop after a failed or interrupted launch, taking away what the launch added to the state dir (while
        the lock is still held, so no other `up` starts in between)."""
        await self._stop_serving()
        if self.lock is not None and self.snapshot is not None:
            self.snapshot.remove_new()
        self._withdraw()

    async def _stop_serving(self) -> None:
        if self.encoding is not None:
            self.encoding.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.encoding
            self.encoding = None
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

    def _withdraw(self) -> None:
        if self.lock is not None:  # only the process that owns the state dir announces and withdraws it
            # the file goes before the lock: a reader never sees "not running" with the file still there
            with contextlib.suppress(FileNotFoundError):
                (self.state_dir / TOPOLOGY_FILE).unlink()
            self.lock.release()
            self.lock = None
