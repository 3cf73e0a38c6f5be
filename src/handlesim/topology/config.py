"""Topology configuration: dataclasses (one docstring per field) loaded from TOML and validated with clear errors.

Every error is a `ConfigError` whose message reads `<file>: <key path>: <what is wrong and what is expected>`, e.g.
`configs/plan.toml: secondaries[3].prefix: '89.104' must be directly under the national prefix '88' (like 88.101)`.
Unknown keys are errors too, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import difflib
import ipaddress
import math
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, NoReturn

from ..core.errors import InvalidHandle
from ..core.handle import Prefix
from ..core.health import DEFAULT_FAILED_FOR, DEFAULT_TIMEOUT
from ..core.netmodel import JITTER_DISTRIBUTIONS, LinkOverride, NetworkModel, Region, build_model
from ..core.service import ServiceLimits
from ..net.limits import ServerLimits

MAX_PORT = 65535
MIN_BASE_PORT = 1024
NODE_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,79}")
"""Node ids name store files and appear in traces: letters, digits, '.', '_' and '-', at most 80 characters."""
MIRROR_ID = re.compile(r".*-mirror[0-9]+")
"""Ids the plan gives mirror servers (`<primary>-mirror1`); reserved."""
SERVER_ID = re.compile(r".*-server[0-9]+(-mirror[0-9]+)?")
"""Ids the plan gives the further servers of hash-partitioned sites (`<node>-server2`); reserved."""
HASH_OPTIONS = ("prefix", "suffix", "handle")
"""What a partitioned site hashes to pick a handle's server (Handle.Net hash options 0, 1, 2)."""
GLOBAL_REGISTRY = Prefix("0")
"""`0` and everything under it (0.NA, ...) belong to the global prefix registry, never to a national prefix."""
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
class RegionSpec:
    """A region of the network model (`[[network.regions]]`)."""

    name: str
    """Region name nodes refer to in their `region` key (e.g. `Qingdao`)."""
    latitude: float | None = None
    """Degrees north; with longitude, delays to other located regions derive from the distance."""
    longitude: float | None = None
    """Degrees east."""


@dataclass(frozen=True)
class LinkSpec:
    """An explicit link between two regions (`[[network.links]]`, both directions); unset keys keep the defaults."""

    between: tuple[str, str]
    """The two region names (the same name twice: traffic inside that region)."""
    delay_ms: float | None = None
    """One-way base delay in milliseconds (default: derived from coordinates)."""
    jitter: str | None = None
    """Jitter distribution on this link: none, uniform, normal or exponential."""
    jitter_ms: float | None = None
    """Scale of the jitter in milliseconds."""
    loss: float | None = None
    """Probability that one message on this link is lost (0 <= loss < 1)."""


@dataclass(frozen=True)
class NetworkSpec:
    """The network model (`[network]`): where regions are, how long messages take, jitter and loss."""

    regions: tuple[RegionSpec, ...] = ()
    """The regions (at least one); a node's `region` must name one (an empty region means the first)."""
    links: tuple[LinkSpec, ...] = ()
    """Explicit links overriding the derived delay, jitter or loss between two regions."""
    base_ms: float = 1.0
    """Fixed one-way milliseconds added to every link between two regions (access links, equipment)."""
    route_factor: float = 1.8
    """How much longer fibre routes are than the great circle (1.5-2 is typical)."""
    local_ms: float = 0.25
    """One-way milliseconds inside one region."""
    jitter: str = "none"
    """Default jitter distribution: none, uniform (0..jitter_ms), normal (sigma jitter_ms), exponential (mean)."""
    jitter_ms: float = 0.0
    """Default jitter scale in milliseconds."""
    loss: float = 0.0
    """Default probability that a message (request or answer) is lost; a lost message surfaces as a timeout."""
    client_region: str = ""
    """Where the CLI and the load generator sit (default: the first region)."""
    seed: int | None = None
    """Seed of the model's random streams (default: the topology's seed)."""

    def model(self, topology_seed: int) -> NetworkModel:
        """The pure model the transports sample from."""
        return build_model(
            [Region(r.name, r.latitude, r.longitude) for r in self.regions], base=self.base_ms / 1000,
            route_factor=self.route_factor, local=self.local_ms / 1000, jitter=self.jitter,
            jitter_scale=self.jitter_ms / 1000, loss=self.loss,
            overrides=[LinkOverride(link.between[0], link.between[1],
                                    None if link.delay_ms is None else link.delay_ms / 1000, link.jitter,
                                    None if link.jitter_ms is None else link.jitter_ms / 1000, link.loss)
                       for link in self.links],
            client_region=self.client_region, seed=topology_seed if self.seed is None else self.seed)


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
            unknown = sorted(_used_regions(self) - {r.name for r in network.regions})
            if unknown:
                raise ConfigError(f"{self.source}: region: {', '.join(unknown)} not in the network model's regions "
                                  f"({', '.join(r.name for r in network.regions)})")
        return replace(self, network=network if network is not None else self.network,
                       faults=self.faults if faults is None else faults)

    def with_overrides(self, *, base_port: int | None = None,
                       identifiers_per_enterprise: int | None = None, enterprise_count: int | None = None,
                       ) -> TopologyConfig:
        """A copy with command-line overrides applied (checked like the file's own values)."""
        config = self
        if base_port is not None:
            config = replace(config, base_port=base_port)
        if identifiers_per_enterprise is not None:
            _check_minimum(self.source, "enterprises.identifiers_per_enterprise (override)", identifiers_per_enterprise)
            config = replace(config, enterprises=replace(config.enterprises,
                                                         identifiers_per_enterprise=identifiers_per_enterprise))
        if enterprise_count is not None:
            _check_minimum(self.source, "enterprises.count (override)", enterprise_count)
            if enterprise_count and not config.secondaries:
                raise ConfigError(f"{self.source}: enterprises.count (override): needs at least one [[secondaries]]")
            config = replace(config, enterprises=replace(config.enterprises, count=enterprise_count))
        _check_ports(config, lambda message: _raise(f"{self.source}: base_port: {message}"))
        return config


def read_toml(path: str | Path, error: type[Exception] = ConfigError) -> dict[str, Any]:
    """A TOML file as data; a missing, unreadable or invalid file raises `error` naming the file and why."""
    try:
        return tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise error(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{path}: cannot read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{path}: not valid TOML: {exc}") from None


def load_config(path: str | Path) -> TopologyConfig:
    """Read and validate a topology TOML file."""
    return parse_config(read_toml(path), str(path))


def parse_config(data: Mapping[str, Any], source: str) -> TopologyConfig:
    """Validate an already-parsed TOML document (`source` names it in error messages)."""
    top = _Reader(data, source, "")
    top.known(TopologyConfig)
    name = top.nonempty("name")
    seed = top.integer("seed", 2022)
    national = _national_prefix(top)
    host = _host(top)
    base_port = top.integer("base_port", 20000)
    secret_iterations = top.integer("secret_iterations", 1000, minimum=1)
    claims = _Claims()
    roots = tuple(_root(r, claims) for r in top.items("roots"))
    if not roots:
        top.fail("roots", "at least one [[roots]] entry is needed (the root registry 0.NA/* lives there)")
    secondaries = tuple(_secondary(r, national, claims) for r in top.items("secondaries"))
    config = TopologyConfig(
        name=name, seed=seed, national_prefix=national.text, host=host, base_port=base_port,
        secret_iterations=secret_iterations, roots=roots, secondaries=secondaries,
        enterprises=_enterprises(top, secondaries, claims),
        resolvers=tuple(_resolver(r, claims) for r in top.items("resolvers")),
        mirrors=_mirrors(top),
        source=source,
        servers=_servers(top),
        failover=_failover(top),
        faults=bool(top.get("faults", bool, False)),
        limits=_limits(top),
        monitoring=_monitoring(top),
    )
    if "network" in top.data:
        config = replace(config, network=_network(top.table("network"), _used_regions(config)))
    _check_ports(config, lambda message: top.fail("base_port", message))
    return config


# -- reading tables ------------------------------------------------------------------------------------------------

_KIND_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false", list: "an array",
               dict: "a table"}


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if set(kinds) == {int, float}:
        return "a number"
    return " or ".join(_KIND_NAMES.get(k, k.__name__) for k in kinds)


def _raise(message: str) -> NoReturn:
    raise ConfigError(message)


class _Reader:
    """Reads one table, checking types and rejecting unknown keys (typos are errors)."""

    def __init__(self, data: Any, source: str, where: str) -> None:
        self.source, self.where = source, where
        if not isinstance(data, Mapping):
            self.fail("", f"must be a table, not {type(data).__name__}")
        self.data: Mapping[str, Any] = data

    def path(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where and key else (key or self.where or "top level")

    def fail(self, key: str, message: str) -> NoReturn:
        raise ConfigError(f"{self.source}: {self.path(key)}: {message}")

    def known(self, spec: type) -> None:
        allowed = sorted(f.name for f in fields(spec) if f.name != "source")
        for key in self.data:
            if key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                self.fail(key, f"unknown key ({hint}expected one of: {', '.join(allowed)})")

    def get(self, key: str, kind: type | tuple[type, ...], default: Any) -> Any:
        if key not in self.data:
            return default
        value = self.data[key]
        # TOML booleans are Python ints; `true` is never a count
        if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)) \
                or not isinstance(value, kind):
            self.fail(key, f"must be {_kind_name(kind)}, not {type(value).__name__} ({value!r})")
        return value

    def text(self, key: str, default: str = "") -> str:
        return str(self.get(key, str, default))

    def nonempty(self, key: str) -> str:
        if key not in self.data:
            self.fail(key, "is required")
        value = self.text(key)
        if not value.strip():
            self.fail(key, "must not be empty")
        return value

    def integer(self, key: str, default: int, minimum: int = 0) -> int:
        value = int(self.get(key, int, default))
        if value < minimum:
            self.fail(key, f"must be at least {minimum}, not {value}")
        return value

    def number(self, key: str, default: float, *, positive: bool) -> float:
        value = float(self.get(key, (int, float), default))
        if not math.isfinite(value) or value < 0 or (positive and value == 0):
            self.fail(key, f"must be a finite number {'above' if positive else 'of at least'} 0, not {value}")
        return value

    def prefix(self, key: str) -> Prefix:
        text = self.nonempty(key)
        try:
            return Prefix.from_text(text)
        except InvalidHandle as exc:
            self.fail(key, f"{text!r} is not a valid prefix: {exc.message}")

    def table(self, key: str) -> _Reader:
        return _Reader(self.data.get(key, {}), self.source, self.path(key))

    def items(self, key: str) -> list[_Reader]:
        raw = self.data.get(key, [])
        if not isinstance(raw, list):
            self.fail(key, f"must be an array of tables ([[{self.path(key)}]]), not {type(raw).__name__}")
        return [_Reader(item, self.source, f"{self.path(key)}[{i}]") for i, item in enumerate(raw)]


class _Claims:
    """Node ids and prefixes taken so far, with the key that took them (for 'also at ...' in messages)."""

    def __init__(self) -> None:
        self.ids: dict[str, str] = {}
        self.prefixes: dict[str, str] = {}

    def node_id(self, reader: _Reader, default: str | None = None) -> str:
        node_id = reader.text("id", default) if default is not None else reader.nonempty("id")
        if not NODE_ID_PATTERN.fullmatch(node_id):
            reader.fail("id", f"{node_id!r} is not a usable node id (letters, digits, '.', '_' and '-', starting "
                              "with a letter or digit, at most 80 characters)")
        if MIRROR_ID.fullmatch(node_id):
            reader.fail("id", f"{node_id!r}: ids ending in -mirror<N> are reserved for mirror servers")
        if SERVER_ID.fullmatch(node_id):
            reader.fail("id", f"{node_id!r}: ids ending in -server<N> are reserved for the servers of partitioned "
                              "sites")
        if node_id in self.ids:
            reader.fail("id", f"node id {node_id!r} is used twice (also at {self.ids[node_id]}); ids must be unique")
        self.ids[node_id] = reader.path("id")
        return node_id

    def prefix(self, reader: _Reader, prefix: Prefix) -> None:
        if prefix.key in self.prefixes:
            reader.fail("prefix", f"prefix {prefix.text} is given twice (also at {self.prefixes[prefix.key]}); "
                                  "each node homes its own prefix")
        self.prefixes[prefix.key] = reader.path("prefix")


def _not_an_enterprise_id(reader: _Reader, node_id: str) -> None:
    if node_id.startswith(ENTERPRISE_ID_PREFIX):
        reader.fail("id", f"{node_id!r}: ids starting with {ENTERPRISE_ID_PREFIX!r} are reserved for enterprise "
                          "nodes named after their prefix (ent-88.101.1001)")


def _national_prefix(top: _Reader) -> Prefix:
    if "national_prefix" not in top.data:
        return Prefix("88")
    national = top.prefix("national_prefix")
    if national.is_under(GLOBAL_REGISTRY):
        top.fail("national_prefix", f"{national.text!r} is under 0, which is reserved for the global prefix "
                                    "registry (0.NA/...); use a national prefix such as 88")
    return national


def _host(top: _Reader) -> str:
    host = top.text("host", "127.0.0.1")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        top.fail("host", f"{host!r} is not an IP address; use an IPv4 loopback address such as 127.0.0.1 "
                         "(HS_SITE records carry the address, not a name)")
    if address.version != 4 or not address.is_loopback:
        top.fail("host", f"{host!r} is not an IPv4 loopback address; handlesim nodes bind 127.0.0.0/8 only "
                         "(e.g. 127.0.0.1), so a simulation never listens on a real network")
    return host


def _check_minimum(source: str, key: str, value: int) -> None:
    if value < 0:
        raise ConfigError(f"{source}: {key}: must be at least 0, not {value}")


def _check_ports(config: TopologyConfig, fail: Callable[[str], NoReturn]) -> None:
    port = config.base_port
    if port == 0:
        return
    if not MIN_BASE_PORT <= port <= MAX_PORT:
        fail(f"{port} is not a usable base port (use {MIN_BASE_PORT}..{MAX_PORT}, or 0 for ephemeral ports)")
    last = port + config.node_count - 1
    if last > MAX_PORT:
        fail(f"{config.node_count:,} nodes from port {port} would need ports up to {last}, past {MAX_PORT} "
             f"(use a base_port of at most {MAX_PORT - config.node_count + 1}, or 0 for ephemeral ports)")


# -- one function per table ----------------------------------------------------------------------------------------

def _root(r: _Reader, claims: _Claims) -> RootSpec:
    r.known(RootSpec)
    node_id = claims.node_id(r)
    _not_an_enterprise_id(r, node_id)
    return RootSpec(node_id, r.text("region"))


def _secondary(r: _Reader, national: Prefix, claims: _Claims) -> SecondarySpec:
    r.known(SecondarySpec)
    node_id = claims.node_id(r)
    _not_an_enterprise_id(r, node_id)
    prefix = r.prefix("prefix")
    if prefix.parent() != national:
        r.fail("prefix", f"{prefix.text!r} must be directly under the national prefix {national.text!r} "
                         f"(like {national.text}.101)")
    claims.prefix(r, prefix)
    return SecondarySpec(node_id, prefix.text, r.text("industry"), r.text("name_zh"), r.text("region"),
                         r.number("weight", 1.0, positive=True))


def _enterprises(top: _Reader, secondaries: tuple[SecondarySpec, ...], claims: _Claims) -> EnterpriseSpec:
    table = top.table("enterprises")
    table.known(EnterpriseSpec)
    count = table.integer("count", 0)
    if count and not secondaries:
        table.fail("count", f"{count} enterprises need at least one [[secondaries]] entry to hang under")
    by_id = {s.id: s for s in secondaries}
    explicit = tuple(_explicit(item, by_id, claims) for item in table.items("explicit"))
    return EnterpriseSpec(count, table.integer("identifiers_per_enterprise", 100),
                          table.integer("first_number", 1001, minimum=1), explicit)


def _explicit(r: _Reader, secondaries: Mapping[str, SecondarySpec], claims: _Claims) -> ExplicitEnterprise:
    r.known(ExplicitEnterprise)
    prefix = r.prefix("prefix")
    own_id = f"{ENTERPRISE_ID_PREFIX}{prefix.text}"
    node_id = claims.node_id(r, default=own_id)
    if node_id.startswith(ENTERPRISE_ID_PREFIX) and node_id != own_id:
        r.fail("id", f"{node_id!r} looks like the id of another enterprise's prefix; use {own_id!r} (the default) "
                     f"or an id not starting with {ENTERPRISE_ID_PREFIX!r}")
    secondary_id = r.nonempty("secondary")
    parent = secondaries.get(secondary_id)
    if parent is None:
        known = ", ".join(secondaries) or "none defined"
        r.fail("secondary", f"{secondary_id!r} is not the id of a [[secondaries]] entry (known: {known})")
    if prefix.parent() != Prefix(parent.prefix):
        r.fail("prefix", f"{prefix.text!r} must be directly under its secondary's prefix {parent.prefix!r} "
                         f"(like {parent.prefix}.1001)")
    claims.prefix(r, prefix)
    return ExplicitEnterprise(node_id, prefix.text, secondary_id, r.text("region"))


def _resolver(r: _Reader, claims: _Claims) -> ResolverSpec:
    r.known(ResolverSpec)
    node_id = claims.node_id(r)
    _not_an_enterprise_id(r, node_id)
    return ResolverSpec(node_id, r.text("region"), r.integer("cache_capacity", 16_384, minimum=1),
                        r.number("negative_ttl", 5.0, positive=False))


def _mirrors(top: _Reader) -> MirrorSpec:
    table = top.table("mirrors")
    table.known(MirrorSpec)
    return MirrorSpec(table.integer("secondary", 0), table.integer("enterprise", 0))


def _servers(top: _Reader) -> ServersSpec:
    table = top.table("servers")
    table.known(ServersSpec)
    option = table.text("hash_option", "handle")
    if option not in HASH_OPTIONS:
        table.fail("hash_option", f"{option!r} is not a hash option; use one of {', '.join(HASH_OPTIONS)}")
    return ServersSpec(table.integer("secondary", 1, minimum=1), table.integer("enterprise", 1, minimum=1), option)


def _failover(top: _Reader) -> FailoverSpec:
    table = top.table("failover")
    table.known(FailoverSpec)
    return FailoverSpec(table.number("timeout", DEFAULT_TIMEOUT, positive=True),
                        table.number("failed_for", DEFAULT_FAILED_FOR, positive=False))


def _used_regions(config: TopologyConfig) -> set[str]:
    regions = {r.region for r in config.roots} | {s.region for s in config.secondaries}
    regions |= {e.region for e in config.enterprises.explicit} | {r.region for r in config.resolvers}
    return regions - {""}


def load_network(path: str | Path, seed_source: str = "") -> NetworkSpec:
    """A `[network]` table from its own TOML file (`up --network configs/network-china.toml`)."""
    data = read_toml(path)
    top = _Reader(data, str(path), "")
    for key in data:
        if key != "network":
            top.fail(key, "a network file holds only a [network] table")
    if "network" not in data:
        top.fail("network", "is required (a [network] table)")
    return _network(top.table("network"), set())


def _network(table: _Reader, used_regions: set[str]) -> NetworkSpec:
    table.known(NetworkSpec)
    regions = tuple(_region(r) for r in table.items("regions"))
    if not regions:
        table.fail("regions", "at least one [[network.regions]] entry is needed")
    names = [r.name for r in regions]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        table.fail("regions", f"region {', '.join(twice)} is given twice")
    unknown = sorted(used_regions - set(names))
    if unknown:
        table.fail("regions", f"nodes sit in {', '.join(unknown)}, which is not a [[network.regions]] entry "
                              f"(known: {', '.join(names)})")
    jitter = _jitter_name(table, "jitter", "none")
    client_region = table.text("client_region", "")
    if client_region and client_region not in names:
        table.fail("client_region", f"{client_region!r} is not a region (known: {', '.join(names)})")
    spec = NetworkSpec(
        regions=regions, links=tuple(_link(r, names) for r in table.items("links")),
        base_ms=table.number("base_ms", 1.0, positive=False),
        route_factor=table.number("route_factor", 1.8, positive=True),
        local_ms=table.number("local_ms", 0.25, positive=False), jitter=jitter,
        jitter_ms=table.number("jitter_ms", 0.0, positive=False), loss=_loss(table, "loss", 0.0),
        client_region=client_region,
        seed=table.integer("seed", 0) if "seed" in table.data else None)
    try:
        spec.model(0)
    except ValueError as exc:
        table.fail("links", str(exc))
    return spec


def _region(r: _Reader) -> RegionSpec:
    r.known(RegionSpec)
    name = r.nonempty("name")
    latitude = r.get("latitude", (int, float), None)
    longitude = r.get("longitude", (int, float), None)
    if (latitude is None) != (longitude is None):
        r.fail("latitude", "give both latitude and longitude, or neither (then links give the delays)")
    if latitude is not None and not -90 <= latitude <= 90:
        r.fail("latitude", f"must be within -90..90 degrees, not {latitude}")
    if longitude is not None and not -180 <= longitude <= 180:
        r.fail("longitude", f"must be within -180..180 degrees, not {longitude}")
    return RegionSpec(name, None if latitude is None else float(latitude),
                      None if longitude is None else float(longitude))


def _link(r: _Reader, regions: list[str]) -> LinkSpec:
    r.known(LinkSpec)
    between = r.get("between", list, None)
    if between is None or len(between) != 2 or not all(isinstance(x, str) for x in between):
        r.fail("between", "must be two region names, e.g. between = [\"Qingdao\", \"Chengdu\"]")
    for name in between:
        if name not in regions:
            r.fail("between", f"{name!r} is not a region (known: {', '.join(regions)})")
    return LinkSpec((between[0], between[1]),
                    r.number("delay_ms", 0.0, positive=False) if "delay_ms" in r.data else None,
                    _jitter_name(r, "jitter", None) if "jitter" in r.data else None,
                    r.number("jitter_ms", 0.0, positive=False) if "jitter_ms" in r.data else None,
                    _loss(r, "loss", 0.0) if "loss" in r.data else None)


def _jitter_name(r: _Reader, key: str, default: str | None) -> str:
    name = r.text(key, default or "none")
    if name not in JITTER_DISTRIBUTIONS:
        r.fail(key, f"{name!r} is not a jitter distribution (use one of: {', '.join(JITTER_DISTRIBUTIONS)})")
    return name


def _loss(r: _Reader, key: str, default: float) -> float:
    value = r.number(key, default, positive=False)
    if value >= 1:
        r.fail(key, f"must be below 1 (a probability), not {value}")
    return value


def _limits(top: _Reader) -> NodeLimits:
    """`[limits]`: any key of ServiceLimits or ServerLimits; counts at least 1, times above 0, rates 0 (off) or more."""
    table = top.table("limits")
    groups: tuple[type[Any], ...] = (ServiceLimits, ServerLimits)
    allowed = {f.name: (group, f) for group in groups for f in fields(group)}
    for key in table.data:
        if key not in allowed:
            close = difflib.get_close_matches(key, list(allowed), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            table.fail(key, f"unknown limit ({hint}expected one of: {', '.join(sorted(allowed))})")
    chosen: dict[type[Any], dict[str, Any]] = {group: {} for group in groups}
    for key, (group, spec) in allowed.items():
        if key not in table.data:
            continue
        if spec.type in (float, "float"):
            chosen[group][key] = table.number(key, 0.0, positive=key != "rate_per_client")
        else:
            chosen[group][key] = table.integer(key, 1, minimum=1)
    return NodeLimits(ServiceLimits(**chosen[ServiceLimits]), ServerLimits(**chosen[ServerLimits]))


def _monitoring(top: _Reader) -> MonitoringSpec:
    table = top.table("monitoring")
    table.known(MonitoringSpec)
    return MonitoringSpec(table.number("report_interval", 5.0, positive=False),
                          table.number("stale_after", 3.0, positive=True))
