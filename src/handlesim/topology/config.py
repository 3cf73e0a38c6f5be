"""Topology configuration: dataclasses (one docstring per field) loaded from TOML and validated with clear errors."""

from __future__ import annotations

import ipaddress
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from ..core.errors import InvalidHandle
from ..core.handle import Prefix


class ConfigError(Exception):
    """A topology file is wrong: the message names the file, the key and what was expected."""


@dataclass(frozen=True)
class RootSpec:
    id: str
    """Node id, e.g. `root-qingdao`."""
    region: str = ""
    """Where the node sits (used by the network model)."""


@dataclass(frozen=True)
class SecondarySpec:
    id: str
    """Node id, e.g. `sec-machinery`."""
    prefix: str
    """The secondary node's prefix, directly under the national prefix (e.g. `88.101`)."""
    industry: str = ""
    """Industry in English (machinery, home appliances, ...)."""
    name_zh: str = ""
    """Industry name in Chinese (机械, 家电, ...)."""
    region: str = ""
    """Where the node sits."""
    weight: float = 1.0
    """Share of the enterprises this secondary serves, relative to the others."""


@dataclass(frozen=True)
class ExplicitEnterprise:
    id: str
    """Node id."""
    prefix: str
    """Enterprise prefix, under its secondary's prefix (e.g. `88.101.1001`)."""
    secondary: str
    """Id of the secondary node that delegates the prefix."""
    region: str = ""
    """Where the node sits."""


@dataclass(frozen=True)
class EnterpriseSpec:
    count: int = 0
    """Enterprise nodes generated and spread over the secondaries by weight (deterministic for a seed)."""
    identifiers_per_enterprise: int = 100
    """Identifiers seeded at each enterprise."""
    first_number: int = 1001
    """Enterprise prefixes are numbered from this: 88.101.1001, 88.101.1002, ..."""
    explicit: tuple[ExplicitEnterprise, ...] = ()
    """Hand-written enterprises, in addition to the generated ones."""


@dataclass(frozen=True)
class ResolverSpec:
    id: str
    """Node id of a public recursive resolver node (the recursive-resolver issue gives it behaviour)."""
    region: str = ""
    """Where the node sits."""
    cache_capacity: int = 16_384
    """Most answers the shared cache holds (LRU)."""
    negative_ttl: float = 5.0
    """Seconds a not-found answer is cached (0 = off)."""


@dataclass(frozen=True)
class MirrorSpec:
    secondary: int = 0
    """Mirror servers per secondary node (read-only copies kept current by replication)."""
    enterprise: int = 0
    """Mirror servers per enterprise node."""


@dataclass(frozen=True)
class TopologyConfig:
    name: str
    """A label for the topology (shown by `up` and in results)."""
    seed: int = 2022
    """Seed for everything generated: spread of enterprises, secrets, identifiers."""
    national_prefix: str = "88"
    """Prefix under which secondaries get theirs (88.101, ...)."""
    host: str = "127.0.0.1"
    """Loopback address every node binds."""
    base_port: int = 20000
    """Node i listens on base_port + i; 0 gives every node an ephemeral port."""
    secret_iterations: int = 1000
    """PBKDF2 iterations for generated secret keys (simulation speed; Handle.Net uses 10,000)."""
    roots: tuple[RootSpec, ...] = ()
    """Multi-primary root nodes sharing the root registry."""
    secondaries: tuple[SecondarySpec, ...] = ()
    """Industry secondary nodes."""
    enterprises: EnterpriseSpec = field(default_factory=EnterpriseSpec)
    """Enterprise nodes."""
    resolvers: tuple[ResolverSpec, ...] = ()
    """Public recursive resolver nodes."""
    mirrors: MirrorSpec = field(default_factory=MirrorSpec)
    """Mirror servers per node, by role."""
    source: str = "<memory>"
    """Where the configuration came from (for messages)."""

    def with_overrides(self, *, base_port: int | None = None,
                       identifiers_per_enterprise: int | None = None, enterprise_count: int | None = None,
                       ) -> TopologyConfig:
        """A copy with command-line overrides applied."""
        config = self
        if base_port is not None:
            config = replace(config, base_port=base_port)
        if identifiers_per_enterprise is not None:
            config = replace(config, enterprises=replace(config.enterprises,
                                                         identifiers_per_enterprise=identifiers_per_enterprise))
        if enterprise_count is not None:
            config = replace(config, enterprises=replace(config.enterprises, count=enterprise_count))
        return config


def load_config(path: Path) -> TopologyConfig:
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse_config(data, str(path))


class _Reader:
    """Reads one table, checking types and rejecting unknown keys (typos are errors)."""

    def __init__(self, data: Any, source: str, where: str) -> None:
        self.source, self.where = source, where
        if not isinstance(data, dict):
            self.fail("", f"must be a table, not {type(data).__name__}")
        self.data: dict[str, Any] = data

    def fail(self, key: str, message: str) -> None:
        path = f"{self.where}.{key}" if self.where and key else (key or self.where or "top level")
        raise ConfigError(f"{self.source}: {path}: {message}")

    def known(self, spec: type) -> None:
        allowed = {f.name for f in fields(spec)} - {"source"}
        for key in self.data:
            if key not in allowed and key not in ("explicit", "count"):
                self.fail(key, f"unknown key (expected one of: {', '.join(sorted(allowed))})")

    def get(self, key: str, kind: type | tuple[type, ...], default: Any) -> Any:
        value = self.data.get(key, default)
        if value is default:
            return value
        if isinstance(value, bool) and kind is not bool or not isinstance(value, kind):
            name = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            self.fail(key, f"must be {name}, not {type(value).__name__} ({value!r})")
        return value

    def text(self, key: str, default: Any = None) -> Any:
        value = self.get(key, str, default)
        if value is None:
            self.fail(key, "is required")
        return value

    def count(self, key: str, default: int, minimum: int = 0) -> int:
        value = int(self.get(key, int, default))
        if value < minimum:
            self.fail(key, f"must be at least {minimum}, not {value}")
        return value

    def items(self, key: str) -> list[_Reader]:
        raw = self.data.get(key, [])
        if not isinstance(raw, list):
            self.fail(key, "must be an array of tables ([[" + key + "]])")
        prefix = f"{self.where}.{key}" if self.where else key
        return [_Reader(item, self.source, f"{prefix}[{i}]") for i, item in enumerate(raw)]


def parse_config(data: dict[str, Any], source: str) -> TopologyConfig:
    top = _Reader(data, source, "")
    top.known(TopologyConfig)
    national = _prefix(top, "national_prefix", top.get("national_prefix", str, "88"))
    host = top.get("host", str, "127.0.0.1")
    if not _is_loopback(host):
        top.fail("host", f"{host!r} is not a loopback address; handlesim nodes bind 127.0.0.0/8 or ::1 only")
    config = TopologyConfig(
        name=top.text("name"),
        seed=top.count("seed", 2022),
        national_prefix=national.text,
        host=host,
        base_port=_port(top),
        secret_iterations=top.count("secret_iterations", 1000, minimum=1),
        roots=tuple(_root(r) for r in top.items("roots")),
        secondaries=tuple(_secondary(r, national) for r in top.items("secondaries")),
        enterprises=_enterprises(top),
        resolvers=tuple(_resolver(r) for r in top.items("resolvers")),
        mirrors=_mirrors(top),
        source=source,
    )
    _check_consistency(config, top)
    return config


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _port(top: _Reader) -> int:
    port = top.count("base_port", 20000)
    if port > 65000:
        top.fail("base_port", f"{port} leaves no room for the nodes' ports (use 1024..65000, or 0 for ephemeral)")
    return port


def _prefix(reader: _Reader, key: str, text: Any) -> Prefix:
    try:
        return Prefix.from_text(str(text))
    except InvalidHandle as exc:
        reader.fail(key, f"{text!r} is not a valid prefix: {exc.message}")
        raise


def _root(r: _Reader) -> RootSpec:
    r.known(RootSpec)
    return RootSpec(r.text("id"), r.get("region", str, ""))


def _secondary(r: _Reader, national: Prefix) -> SecondarySpec:
    r.known(SecondarySpec)
    prefix = _prefix(r, "prefix", r.text("prefix"))
    if prefix.parent() != national:
        r.fail("prefix", f"{prefix.text!r} must be directly under the national prefix {national.text!r} "
                         f"(like {national.text}.101)")
    weight = float(r.get("weight", (int, float), 1.0))
    if weight <= 0:
        r.fail("weight", f"must be positive, not {weight}")
    return SecondarySpec(r.text("id"), prefix.text, r.get("industry", str, ""), r.get("name_zh", str, ""),
                         r.get("region", str, ""), weight)


def _enterprises(top: _Reader) -> EnterpriseSpec:
    table = _Reader(top.data.get("enterprises", {}), top.source, "enterprises")
    table.known(EnterpriseSpec)
    explicit = []
    for item in table.items("explicit"):
        item.known(ExplicitEnterprise)
        prefix = _prefix(item, "prefix", item.text("prefix"))
        explicit.append(ExplicitEnterprise(item.text("id"), prefix.text, item.text("secondary"),
                                           item.get("region", str, "")))
    return EnterpriseSpec(table.count("count", 0), table.count("identifiers_per_enterprise", 100),
                          table.count("first_number", 1001, minimum=1), tuple(explicit))


def _mirrors(top: _Reader) -> MirrorSpec:
    table = _Reader(top.data.get("mirrors", {}), top.source, "mirrors")
    table.known(MirrorSpec)
    return MirrorSpec(table.count("secondary", 0), table.count("enterprise", 0))


def _resolver(r: _Reader) -> ResolverSpec:
    r.known(ResolverSpec)
    negative = float(r.get("negative_ttl", (int, float), 5.0))
    if negative < 0:
        r.fail("negative_ttl", "must be 0 (off) or more seconds")
    return ResolverSpec(r.text("id"), r.get("region", str, ""), r.count("cache_capacity", 16_384, minimum=1), negative)


def _check_consistency(config: TopologyConfig, top: _Reader) -> None:
    if not config.roots:
        top.fail("roots", "at least one [[roots]] entry is needed")
    if config.enterprises.count and not config.secondaries:
        top.fail("enterprises.count", "enterprises need at least one [[secondaries]] entry to hang under")
    ids: dict[str, str] = {}
    everything = [("roots", n.id) for n in config.roots] + [("secondaries", n.id) for n in config.secondaries] + \
        [("enterprises.explicit", n.id) for n in config.enterprises.explicit] + [("resolvers", n.id)
                                                                                  for n in config.resolvers]
    for table, node_id in everything:
        if node_id in ids:
            top.fail(table, f"node id {node_id!r} is used twice (also in {ids[node_id]})")
        ids[node_id] = table
    prefixes: dict[str, str] = {}
    secondaries = {s.id: s for s in config.secondaries}
    for s in config.secondaries:
        if Prefix(s.prefix).key in prefixes:
            top.fail("secondaries", f"prefix {s.prefix} is given to both {prefixes[Prefix(s.prefix).key]} and {s.id}")
        prefixes[Prefix(s.prefix).key] = s.id
    for e in config.enterprises.explicit:
        parent = secondaries.get(e.secondary)
        if parent is None:
            top.fail("enterprises.explicit", f"{e.id}: secondary {e.secondary!r} is not a [[secondaries]] id")
        elif Prefix(e.prefix).parent() != Prefix(parent.prefix):
            top.fail("enterprises.explicit", f"{e.id}: prefix {e.prefix} must be directly under {parent.prefix}")
        if Prefix(e.prefix).key in prefixes:
            top.fail("enterprises.explicit", f"prefix {e.prefix} is given twice")
        prefixes[Prefix(e.prefix).key] = e.id
