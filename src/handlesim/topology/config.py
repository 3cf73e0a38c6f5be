"""Reading topology files: TOML -> the schema's dataclasses (`schema.py`, `network_spec.py`), validated with clear
errors.

Every error is a `ConfigError` whose message reads `<file>: <key path>: <what is wrong and what is expected>`, e.g.
`configs/plan.toml: secondaries[3].prefix: '89.104' must be directly under the national prefix '88' (like 88.101)`.
Unknown keys are errors too, so a typo never silently falls back to a default. Defaults come from the dataclasses.
"""

from __future__ import annotations

import difflib
import ipaddress
import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import fields, replace
from pathlib import Path
from typing import Any, NoReturn

from ..core.errors import InvalidHandle
from ..core.handle import Prefix
from ..core.netmodel import JITTER_DISTRIBUTIONS
from ..core.service import ServiceLimits
from ..net.limits import ServerLimits
from .network_spec import LinkSpec, NetworkSpec, RegionSpec
from .schema import (
    ENTERPRISE_ID_PREFIX,
    HASH_OPTIONS,
    ConfigError,
    EnterpriseSpec,
    ExplicitEnterprise,
    FailoverSpec,
    MirrorSpec,
    MonitoringSpec,
    NativeSpec,
    NodeLimits,
    ResolverSpec,
    RootSpec,
    SecondarySpec,
    ServersSpec,
    TopologyConfig,
    check_ports,
    used_regions,
)

__all__ = ["ConfigError", "load_config", "load_network", "parse_config", "read_toml"]

NODE_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,79}")
"""Node ids name store files and appear in traces: letters, digits, '.', '_' and '-', at most 80 characters."""
MIRROR_ID = re.compile(r".*-mirror[0-9]+")
"""Ids the plan gives mirror servers (`<primary>-mirror1`); reserved."""
SERVER_ID = re.compile(r".*-server[0-9]+(-mirror[0-9]+)?")
"""Ids the plan gives the further servers of hash-partitioned sites (`<node>-server2`); reserved."""
GLOBAL_REGISTRY = Prefix("0")
"""`0` and everything under it (0.NA, ...) belong to the global prefix registry, never to a national prefix."""


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


def load_config(path: str | Path, *, ports_checked_later: bool = False) -> TopologyConfig:
    """Read and validate a topology TOML file (see `parse_config` for `ports_checked_later`)."""
    return parse_config(read_toml(path), str(path), ports_checked_later=ports_checked_later)


def parse_config(data: Mapping[str, Any], source: str, *, ports_checked_later: bool = False) -> TopologyConfig:
    """Validate an already-parsed TOML document (`source` names it in error messages).

    `ports_checked_later`: the caller applies command-line overrides with `with_overrides`, which checks the ports
    then (a file whose own base_port cannot hold its nodes is fine with `up --base-port 0`)."""
    top = _Reader(data, source, "")
    top.known(TopologyConfig)
    name = top.nonempty("name")
    seed = top.integer("seed", TopologyConfig.seed)
    national = _national_prefix(top)
    host = _host(top)
    base_port = top.integer("base_port", TopologyConfig.base_port)
    secret_iterations = top.integer("secret_iterations", TopologyConfig.secret_iterations, minimum=1)
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
        native=_native(top),
    )
    if "network" in top.data:
        config = replace(config, network=_network(top.table("network"), used_regions(config)))
    if not ports_checked_later:
        check_ports(config, lambda message: top.fail("base_port", message))
    return config


# -- reading tables ------------------------------------------------------------------------------------------------

_KIND_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false", list: "an array",
               dict: "a table"}


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if set(kinds) == {int, float}:
        return "a number"
    return " or ".join(_KIND_NAMES.get(k, k.__name__) for k in kinds)



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
        return Prefix(TopologyConfig.national_prefix)
    national = top.prefix("national_prefix")
    if national.is_under(GLOBAL_REGISTRY):
        top.fail("national_prefix", f"{national.text!r} is under 0, which is reserved for the global prefix "
                                    "registry (0.NA/...); use a national prefix such as 88")
    return national


def _host(top: _Reader) -> str:
    host = top.text("host", TopologyConfig.host)
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        top.fail("host", f"{host!r} is not an IP address; use an IPv4 loopback address such as 127.0.0.1 "
                         "(HS_SITE records carry the address, not a name)")
    if address.version != 4 or not address.is_loopback:
        top.fail("host", f"{host!r} is not an IPv4 loopback address; handlesim nodes bind 127.0.0.0/8 only "
                         "(e.g. 127.0.0.1), so a simulation never listens on a real network")
    return host


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
                         r.number("weight", SecondarySpec.weight, positive=True))


def _enterprises(top: _Reader, secondaries: tuple[SecondarySpec, ...], claims: _Claims) -> EnterpriseSpec:
    table = top.table("enterprises")
    table.known(EnterpriseSpec)
    count = table.integer("count", EnterpriseSpec.count)
    if count and not secondaries:
        table.fail("count", f"{count} enterprises need at least one [[secondaries]] entry to hang under")
    by_id = {s.id: s for s in secondaries}
    explicit = tuple(_explicit(item, by_id, claims) for item in table.items("explicit"))
    return EnterpriseSpec(count, table.integer("identifiers_per_enterprise", EnterpriseSpec.identifiers_per_enterprise),
                          table.integer("first_number", EnterpriseSpec.first_number, minimum=1), explicit)


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
    return ResolverSpec(node_id, r.text("region"), r.integer("cache_capacity", ResolverSpec.cache_capacity, minimum=1),
                        r.number("negative_ttl", ResolverSpec.negative_ttl, positive=False))


def _mirrors(top: _Reader) -> MirrorSpec:
    table = top.table("mirrors")
    table.known(MirrorSpec)
    return MirrorSpec(table.integer("secondary", MirrorSpec.secondary),
                      table.integer("enterprise", MirrorSpec.enterprise))


def _servers(top: _Reader) -> ServersSpec:
    table = top.table("servers")
    table.known(ServersSpec)
    option = table.text("hash_option", ServersSpec.hash_option)
    if option not in HASH_OPTIONS:
        table.fail("hash_option", f"{option!r} is not a hash option; use one of {', '.join(HASH_OPTIONS)}")
    return ServersSpec(table.integer("secondary", ServersSpec.secondary, minimum=1),
                       table.integer("enterprise", ServersSpec.enterprise, minimum=1), option)


def _failover(top: _Reader) -> FailoverSpec:
    table = top.table("failover")
    table.known(FailoverSpec)
    return FailoverSpec(table.number("timeout", FailoverSpec.timeout, positive=True),
                        table.number("failed_for", FailoverSpec.failed_for, positive=False))


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
    jitter = _jitter_name(table, "jitter", NetworkSpec.jitter)
    client_region = table.text("client_region", "")
    if client_region and client_region not in names:
        table.fail("client_region", f"{client_region!r} is not a region (known: {', '.join(names)})")
    spec = NetworkSpec(
        regions=regions, links=tuple(_link(r, names) for r in table.items("links")),
        base_ms=table.number("base_ms", NetworkSpec.base_ms, positive=False),
        route_factor=table.number("route_factor", NetworkSpec.route_factor, positive=True),
        local_ms=table.number("local_ms", NetworkSpec.local_ms, positive=False), jitter=jitter,
        jitter_ms=table.number("jitter_ms", NetworkSpec.jitter_ms, positive=False),
        loss=_loss(table, "loss", NetworkSpec.loss),
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


_OFF_AT_ZERO = frozenset({"encoded_ahead"})
"""Counts where 0 means "none" (the other counts are bounds, at least 1)."""


def _limits(top: _Reader) -> NodeLimits:
    """`[limits]`: any key of ServiceLimits or ServerLimits; counts at least 1 (`_OFF_AT_ZERO` ones 0 or more), times
    above 0, rates 0 (off) or more."""
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
            chosen[group][key] = table.integer(key, 1, minimum=0 if key in _OFF_AT_ZERO else 1)
    return NodeLimits(ServiceLimits(**chosen[ServiceLimits]), ServerLimits(**chosen[ServerLimits]))


def _native(top: _Reader) -> NativeSpec:
    table = top.table("native")
    table.known(NativeSpec)
    return NativeSpec(bool(table.get("enabled", bool, NativeSpec.enabled)),
                      table.integer("port_offset", NativeSpec.port_offset, minimum=1))


def _monitoring(top: _Reader) -> MonitoringSpec:
    table = top.table("monitoring")
    table.known(MonitoringSpec)
    return MonitoringSpec(table.number("report_interval", MonitoringSpec.report_interval, positive=False),
                          table.number("stale_after", MonitoringSpec.stale_after, positive=True))
