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

MAX_PORT = 65535
MIN_BASE_PORT = 1024
NODE_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,79}")
"""Node ids name store files and appear in traces: letters, digits, '.', '_' and '-', at most 80 characters."""
MIRROR_ID = re.compile(r".*-mirror[0-9]+")
"""Ids the plan gives mirror servers (`<primary>-mirror1`); reserved."""
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
        return (len(self.roots) + secondaries + enterprises + len(self.resolvers)
                + self.mirrors.secondary * secondaries + self.mirrors.enterprise * enterprises)

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


def load_config(path: str | Path) -> TopologyConfig:
    """Read and validate a topology TOML file."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse_config(data, str(path))


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
        monitoring=_monitoring(top),
    )
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


def _monitoring(top: _Reader) -> MonitoringSpec:
    table = top.table("monitoring")
    table.known(MonitoringSpec)
    return MonitoringSpec(table.number("report_interval", 5.0, positive=False),
                          table.number("stale_after", 3.0, positive=True))
