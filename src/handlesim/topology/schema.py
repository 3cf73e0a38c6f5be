"""The topology configuration schema: frozen dataclasses with one docstring per field, as a TOML file (configs/)
describes a topology. `config.py` reads and checks files into these; the CLI takes its defaults from them.

The [network] table's schema is in `network_spec.py`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import NoReturn

from ..core.health import DEFAULT_FAILED_FOR, DEFAULT_TIMEOUT
from ..core.service import ServiceLimits
from ..net.limits import ServerLimits
from .network_spec import NetworkSpec

MAX_PORT = 65535
MIN_BASE_PORT = 1024
HASH_OPTIONS = ("prefix", "suffix", "handle")
"""What a partitioned site hashes to pick a handle's server (Handle.Net hash options 0, 1, 2)."""
ENTERPRISE_ID_PREFIX = "ent-"
"""Generated enterprises are called `ent-<prefix>`; other nodes may not take ids of that shape."""


class ConfigError(Exception):
    """A topology file is wrong: the message names the file, the key and what was expected."""


@dataclass(frozen=True)
class RootSpec:
    """A root node; all roots are multi-primary operators of the one root registry (`0.NA/*`)."""

    id: str
    """Node id, e.g. `root-qingdao`."""
    region: str = ""
    """Where the node sits (used by the network model and shown in traces)."""


@dataclass(frozen=True)
class SecondarySpec:
    """An industry secondary node: homes a prefix directly under the national prefix and delegates enterprises."""

    id: str
    """Node id, e.g. `sec-machinery`."""
    prefix: str
    """The secondary node's prefix, directly under the national prefix (e.g. `88.101`)."""
    industry: str = ""
    """Industry in English (machinery, home appliances, ...); picks the products its enterprises are seeded with."""
    name_zh: str = ""
    """Industry name in Chinese (机械, 家电, ...)."""
    region: str = ""
    """Where the node sits."""
    weight: float = 1.0
    """Share of the generated enterprises this secondary serves, relative to the other secondaries (> 0)."""


@dataclass(frozen=True)
class ExplicitEnterprise:
    """A hand-written enterprise node (`[[enterprises.explicit]]`), for small teaching topologies."""

    id: str
    """Node id; defaults to `ent-<prefix>` in the file."""
    prefix: str
    """Enterprise prefix, directly under its secondary's prefix (e.g. `88.101.1001`)."""
    secondary: str
    """Id of the secondary node that delegates the prefix."""
    region: str = ""
    """Where the node sits (default: its secondary's region)."""


@dataclass(frozen=True)
class EnterpriseSpec:
    """Enterprise nodes: generated ones spread over the secondaries, plus any explicit ones."""

    count: int = 0
    """Enterprise nodes generated and spread over the secondaries by weight (deterministic for a seed)."""
    identifiers_per_enterprise: int = 100
    """Identifiers seeded at each enterprise (generated and explicit)."""
    first_number: int = 1001
    """Generated enterprise prefixes are numbered from this under each secondary: 88.101.1001, 88.101.1002, ...
    (numbers an explicit enterprise already uses are skipped)."""
    explicit: tuple[ExplicitEnterprise, ...] = ()
    """Hand-written enterprises, in addition to the generated ones."""


@dataclass(frozen=True)
class ResolverSpec:
    """A public recursive resolver node (公共递归节点): homes nothing, walks the hierarchy for clients, caches."""

    id: str
    """Node id, e.g. `resolver-qingdao`."""
    region: str = ""
    """Where the node sits."""
    cache_capacity: int = 16_384
    """Most answers the shared cache holds (LRU); at least 1."""
    negative_ttl: float = 5.0
    """Seconds a not-found answer is cached (0 = off)."""


@dataclass(frozen=True)
class MirrorSpec:
    """Mirror servers by role: read-only copies kept current by replication, listed after the primary in HS_SITE."""

    secondary: int = 0
    """Mirror servers per secondary node."""
    enterprise: int = 0
    """Mirror servers per enterprise node."""


@dataclass(frozen=True)
class ServersSpec:
    """Hash-partitioned sites by role: each node's site gets this many servers, each its own aiohttp service and
    store holding only the handles the site's hash assigns to it (a node's mirrors get as many servers)."""

    secondary: int = 1
    """Servers per secondary site (1 = not partitioned)."""
    enterprise: int = 1
    """Servers per enterprise site (1 = not partitioned)."""
    hash_option: str = "handle"
    """What picks a handle's server: `prefix`, `suffix` or `handle` (the whole handle), upper-cased and MD5-hashed
    as Handle.Net's SiteInfo.getHandleHash does."""


@dataclass(frozen=True)
class FailoverSpec:
    """How clients inside the topology (resolvers, nodes walking for REST clients) treat silent servers."""

    timeout: float = DEFAULT_TIMEOUT
    """Seconds before a server that does not answer counts as failed and the next one is tried (> 0)."""
    failed_for: float = DEFAULT_FAILED_FOR
    """Seconds a failed server is tried only after every other server of the same query."""


@dataclass(frozen=True)
class NodeLimits:
    """Input and load limits every node of the topology applies (`[limits]`; one flat table of the keys below)."""

    service: ServiceLimits = field(default_factory=ServiceLimits)
    """Handle-level limits (handle/suffix length, values per handle, value size, filters, page size, group depth)."""
    server: ServerLimits = field(default_factory=ServerLimits)
    """HTTP-level limits (body size and time, connections, in-flight requests, per-client rate)."""


@dataclass(frozen=True)
class MonitoringSpec:
    """Operations monitoring (`[monitoring]`): how often nodes report their statistics up the hierarchy."""

    report_interval: float = 5.0
    """Seconds between reports: every enterprise to its secondary, every secondary (with its enterprises' latest
    reports) to every root; 0 turns upward reporting off."""
    stale_after: float = 3.0
    """A node whose last report is older than this many of its intervals is listed as having stopped reporting."""


@dataclass(frozen=True)
class NativeSpec:
    """The native Handle protocol (`[native]`): every node also listens for RFC 3652 messages on UDP and TCP, as a
    Handle.Net server does on port 2641, one port number for both."""

    enabled: bool = True
    """Start every node's native interface (`up --no-native` turns it off: half the sockets, REST only)."""
    port_offset: int = 10_000
    """Node i's native port is base_port + port_offset + i, UDP and TCP alike (with base_port 0: ephemeral, the
    same number for both). At least the node count, so it never meets an HTTP port."""


@dataclass(frozen=True)
class TopologyConfig:
    """A whole topology, as a TOML file describes it. Build one with `load_config` or `parse_config`."""

    name: str
    """A label for the topology (shown by `up` and in results)."""
    seed: int = 2022
    """Seed for everything generated: spread of enterprises, regions, secrets, identifier values."""
    national_prefix: str = "88"
    """Prefix under which secondaries get theirs (88.101, ...)."""
    host: str = "127.0.0.1"
    """IPv4 loopback address every node binds (127.0.0.0/8); HS_SITE records carry it as the servers' address."""
    base_port: int = 20000
    """Node i listens on base_port + i (1024 or more); 0 gives every node an ephemeral port (tests)."""
    secret_iterations: int = 1000
    """PBKDF2 iterations for generated secret keys (simulation speed; Handle.Net uses 10,000)."""
    roots: tuple[RootSpec, ...] = ()
    """Multi-primary root nodes sharing the root registry (at least one)."""
    secondaries: tuple[SecondarySpec, ...] = ()
    """Industry secondary nodes."""
    enterprises: EnterpriseSpec = field(default_factory=EnterpriseSpec)
    """Enterprise nodes."""
    resolvers: tuple[ResolverSpec, ...] = ()
    """Public recursive resolver nodes."""
    mirrors: MirrorSpec = field(default_factory=MirrorSpec)
    """Mirror servers per node, by role."""
    source: str = "<memory>"
    """Where the configuration came from (for messages); not a key of the file."""
    servers: ServersSpec = field(default_factory=ServersSpec)
    """Servers per site, by role (hash partitioning)."""
    failover: FailoverSpec = field(default_factory=FailoverSpec)
    """Timeouts and failed-server memory of the topology's own clients."""
    network: NetworkSpec | None = None
    """The network model (`[network]`); None: loopback only."""
    faults: bool = False
    """Serve the fault-injection endpoints (`POST /_sim/fault`); off, they answer 403 and change nothing."""
    limits: NodeLimits = field(default_factory=NodeLimits)
    """Input and load limits of every node (`[limits]`)."""
    monitoring: MonitoringSpec = field(default_factory=MonitoringSpec)
    """Upward reporting of operating statistics."""
    native: NativeSpec = field(default_factory=NativeSpec)
    """The native Handle protocol interface of every node (`[native]`)."""

    @property
    def enterprise_count(self) -> int:
        """Primary enterprise nodes: generated plus explicit."""
        return self.enterprises.count + len(self.enterprises.explicit)

    @property
    def node_count(self) -> int:
        """Every node the plan will hold, mirrors included (each needs a port)."""
        enterprises = self.enterprise_count
        secondaries = len(self.secondaries)
        return (len(self.roots) + len(self.resolvers)
                + secondaries * self.servers.secondary * (1 + self.mirrors.secondary)
                + enterprises * self.servers.enterprise * (1 + self.mirrors.enterprise))

    def with_network(self, network: NetworkSpec | None, *, faults: bool | None = None) -> TopologyConfig:
        """A copy with another network model (e.g. from `--network FILE`) and fault switch."""
        if network is not None:
            unknown = sorted(used_regions(self) - {r.name for r in network.regions})
            if unknown:
                raise ConfigError(f"{self.source}: region: {', '.join(unknown)} not in the network model's regions "
                                  f"({', '.join(r.name for r in network.regions)})")
        return replace(self, network=network if network is not None else self.network,
                       faults=self.faults if faults is None else faults)

    def with_overrides(self, *, base_port: int | None = None,
                       identifiers_per_enterprise: int | None = None, enterprise_count: int | None = None,
                       native: bool | None = None) -> TopologyConfig:
        """A copy with command-line overrides applied (checked like the file's own values)."""
        config = self
        if base_port is not None:
            config = replace(config, base_port=base_port)
        if native is not None:
            config = replace(config, native=replace(config.native, enabled=native))
        if identifiers_per_enterprise is not None:
            check_minimum(self.source, "enterprises.identifiers_per_enterprise (override)", identifiers_per_enterprise)
            config = replace(config, enterprises=replace(config.enterprises,
                                                         identifiers_per_enterprise=identifiers_per_enterprise))
        if enterprise_count is not None:
            check_minimum(self.source, "enterprises.count (override)", enterprise_count)
            if enterprise_count and not config.secondaries:
                raise ConfigError(f"{self.source}: enterprises.count (override): needs at least one [[secondaries]]")
            config = replace(config, enterprises=replace(config.enterprises, count=enterprise_count))
        check_ports(config, lambda message: _raise(f"{self.source}: base_port: {message}"))
        return config


def used_regions(config: TopologyConfig) -> set[str]:
    """The regions the config's nodes name (each must be a region of its network model)."""
    regions = {r.region for r in config.roots} | {s.region for s in config.secondaries}
    regions |= {e.region for e in config.enterprises.explicit} | {r.region for r in config.resolvers}
    return regions - {""}


def check_minimum(source: str, key: str, value: int) -> None:
    if value < 0:
        raise ConfigError(f"{source}: {key}: must be at least 0, not {value}")


def check_ports(config: TopologyConfig, fail: Callable[[str], NoReturn]) -> None:
    """Every node needs a port: base_port + node_count - 1 must still be a port (base_port 0: ephemeral ports)."""
    port = config.base_port
    if port == 0:
        return
    if not MIN_BASE_PORT <= port <= MAX_PORT:
        fail(f"{port} is not a usable base port (use {MIN_BASE_PORT}..{MAX_PORT}, or 0 for ephemeral ports)")
    last = port + config.node_count - 1
    if last > MAX_PORT:
        fail(f"{config.node_count:,} nodes from port {port} would need ports up to {last}, past {MAX_PORT} "
             f"(use a base_port of at most {MAX_PORT - config.node_count + 1}, or 0 for ephemeral ports)")
    native = config.native
    if not native.enabled:
        return
    if native.port_offset < config.node_count:
        fail(f"native.port_offset {native.port_offset} is below the node count ({config.node_count:,}): native "
             "ports would meet HTTP ports")
    last_native = last + native.port_offset
    if last_native > MAX_PORT:
        fail(f"the native ports of {config.node_count:,} nodes from port {port + native.port_offset} would reach "
             f"{last_native}, past {MAX_PORT} (lower base_port or native.port_offset, or use `up --no-native`)")



def _raise(message: str) -> NoReturn:
    raise ConfigError(message)
