"""From a configuration to a deterministic list of nodes: ids, roles, prefixes, ports, parents and credentials.

Same configuration (file + seed) => same plan, field for field. The launcher turns a plan into running services;
nothing here opens a socket or a file.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from dataclasses import replace as dataclass_replace
from enum import StrEnum
from functools import cached_property
from typing import Any

from ..core.handle import NA_PREFIX_TEXT, ascii_upper
from .schema import ENTERPRISE_ID_PREFIX, MAX_PORT, ConfigError, SecondarySpec, TopologyConfig


class Role(StrEnum):
    """What the topology makes of a node (one node type, four roles). Mirrors and the further servers of a
    hash-partitioned site keep their primary's role (`NodePlan.mirror_of`, `server_of` say what they are)."""

    ROOT = "root"
    SECONDARY = "secondary"
    ENTERPRISE = "enterprise"
    RESOLVER = "resolver"


ROOT_IDENTITY = f"300:{NA_PREFIX_TEXT}/{NA_PREFIX_TEXT}"
"""The root operators' shared identity: the key at index 300 of the root registry's own handle."""
SAME_REGION_SHARE = 0.6
"""Share of a secondary's generated enterprises placed in the secondary's own region; the rest anywhere."""


@dataclass(frozen=True)
class NodePlan:
    """One node to launch: what it is, what it homes, where it listens and who owns it."""

    node_id: str
    """Readable unique id: `root-qingdao`, `sec-machinery`, `ent-88.101.1001`, `resolver-qingdao`."""
    role: Role
    """What the topology makes of the node: root, secondary, enterprise or resolver (one node type, four roles)."""
    prefix: str
    """The prefix the node homes (`0.NA` for roots, empty for resolvers)."""
    parent_id: str | None
    """The node that delegated this node's prefix (roots, resolvers and mirrors: None)."""
    host: str
    """Loopback address the node binds."""
    port: int
    """Port the node listens on: the config's base_port + the node's ordinal, or 0 = ephemeral (chosen at launch)."""
    industry: str = ""
    """Industry of a secondary node, inherited by its enterprises (picks the seeded products)."""
    region: str = ""
    """Where the node sits (the network model's regions)."""
    identifier_count: int = 0
    """Identifiers seeded at the node (enterprises only)."""
    admin_identity: str = ""
    """The identity that owns the node's prefix, e.g. `300:0.NA/88.101` (roots share `300:0.NA/0.NA`)."""
    secret: str = field(default="", repr=False)
    """The owner's generated secret key, hex (written to the state dir's credentials file, never logged)."""
    mirror_of: str | None = None
    """For a mirror server: the primary node it copies (it homes the same prefix, answers reads, refuses writes)."""
    server_of: str | None = None
    """For a further server of a hash-partitioned site: the site's first server (whose id names the site)."""
    server_index: int = 0
    """Position of this server in its site's server list (0-based): it holds the handles whose hash picks it."""
    site_servers: int = 1
    """Servers in this node's site (1 = not partitioned)."""
    native_port: int | None = None
    """Port of the node's native Handle protocol interface, UDP and TCP alike: base_port + native.port_offset + the
    node's ordinal, 0 = ephemeral (the same number for both), None = no native interface (`up --no-native`)."""


@dataclass(frozen=True)
class TopologyPlan:
    """Every node of a topology in start order: roots, secondaries, enterprises, resolvers, the further servers of
    partitioned sites, then mirrors."""

    config: TopologyConfig
    nodes: tuple[NodePlan, ...]

    @cached_property
    def by_id(self) -> dict[str, NodePlan]:
        return {n.node_id: n for n in self.nodes}

    @cached_property
    def _children(self) -> dict[str, list[str]]:
        children: dict[str, list[str]] = {}
        for node in self.nodes:
            if node.parent_id is not None:
                children.setdefault(node.parent_id, []).append(node.node_id)
        return children

    def children_of(self, node_id: str) -> list[str]:
        """Ids of the nodes whose prefixes `node_id` delegates, in plan order."""
        return list(self._children.get(node_id, []))

    @cached_property
    def _mirrors(self) -> dict[str, list[str]]:
        mirrors: dict[str, list[str]] = {}
        for node in self.nodes:
            if node.mirror_of is not None:
                mirrors.setdefault(node.mirror_of, []).append(node.node_id)
        return mirrors

    def mirrors_of(self, node_id: str) -> list[str]:
        """Ids of the mirror servers of a primary node."""
        return list(self._mirrors.get(node_id, []))

    def with_role(self, role: Role) -> list[NodePlan]:
        """Primary nodes of a role, one per site (mirrors and a partitioned site's further servers are in `nodes`,
        `mirrors_of` and `servers_of`)."""
        return [n for n in self.nodes if n.role == role and n.mirror_of is None and n.server_of is None]

    @cached_property
    def _servers(self) -> dict[str, list[str]]:
        servers: dict[str, list[str]] = {}
        for node in self.nodes:
            if node.server_of is not None:
                servers.setdefault(node.server_of, []).append(node.node_id)
        return servers

    def servers_of(self, node_id: str) -> list[str]:
        """Ids of every server of the site `node_id` names, in hash order (itself first; just itself when the site
        is not partitioned)."""
        return [node_id, *self._servers.get(node_id, [])]

    @property
    def roots(self) -> list[NodePlan]:
        return self.with_role(Role.ROOT)

    @property
    def secondaries(self) -> list[NodePlan]:
        return self.with_role(Role.SECONDARY)

    @property
    def enterprises(self) -> list[NodePlan]:
        return self.with_role(Role.ENTERPRISE)

    @property
    def resolvers(self) -> list[NodePlan]:
        return self.with_role(Role.RESOLVER)

    @property
    def operator_secret(self) -> str:
        """The root operators' shared secret (identity 300:0.NA/0.NA): the first root's generated secret."""
        return next(n.secret for n in self.nodes if n.role == Role.ROOT)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly description without secrets (the launcher adds URLs and the chosen ports)."""
        return {
            "name": self.config.name, "seed": self.config.seed, "national_prefix": self.config.national_prefix,
            "nodes": [{"id": n.node_id, "role": n.role, "prefix": n.prefix, "parent": n.parent_id, "host": n.host,
                       "port": n.port, "industry": n.industry, "region": n.region,
                       "identifiers": n.identifier_count, "identity": n.admin_identity, "mirror_of": n.mirror_of,
                       "server_of": n.server_of, "server_index": n.server_index, "site_servers": n.site_servers,
                       "native_port": n.native_port}
                      for n in self.nodes],
        }


def derive_secret(seed: int, node_id: str) -> str:
    """A node owner's secret key: 32 hex characters from (seed, node id).

    Hashed per node rather than drawn from one random stream, so adding a node never changes another node's secret.
    """
    return hashlib.sha256(f"handlesim:{seed}:{node_id}".encode()).hexdigest()[:32]


def spread(total: int, weights: Sequence[float], rng: random.Random) -> list[int]:
    """Split `total` over buckets in proportion to `weights` (largest remainders, ties broken by `rng`), with at
    least one in each bucket when `total` allows."""
    if not weights:
        return []
    floor = 1 if total >= len(weights) else 0
    rest = total - floor * len(weights)
    scale = sum(weights)
    shares = [rest * w / scale for w in weights]
    counts = [floor + int(s) for s in shares]
    order = sorted(range(len(weights)), key=lambda i: (shares[i] - int(shares[i]), rng.random()), reverse=True)
    for i in order[: total - sum(counts)]:
        counts[i] += 1
    return counts


class _PlanBuilder:
    """Appends nodes in start order; a node's port is base_port + its ordinal."""

    def __init__(self, config: TopologyConfig) -> None:
        self.config = config
        self.nodes: list[NodePlan] = []
        self._owner: dict[str, str] = {}  # node id -> the node whose owner runs it

    def add(self, node_id: str, role: Role, prefix: str, parent: str | None, **extra: Any) -> None:
        config = self.config
        port = config.base_port + len(self.nodes) if config.base_port else 0
        native_port = (port + config.native.port_offset if port else 0) if config.native.enabled else None
        identity = {Role.ROOT: ROOT_IDENTITY, Role.RESOLVER: ""}.get(role, f"300:{NA_PREFIX_TEXT}/{prefix}")
        # mirrors and further servers of a site are run by the owner of the primary site's prefix
        runs_for = extra.get("mirror_of") or extra.get("server_of") or node_id
        owner = self._owner.setdefault(node_id, self._owner.get(runs_for, runs_for))
        self.nodes.append(NodePlan(node_id, role, prefix, parent, config.host, port, admin_identity=identity,
                                   secret=derive_secret(config.seed, owner), native_port=native_port, **extra))

    def servers(self) -> None:
        """A partitioned site's first server is the node itself; its further servers follow as `<node>-server<k>`."""
        spec = self.config.servers
        per_role = {Role.SECONDARY: spec.secondary, Role.ENTERPRISE: spec.enterprise}
        for position, first in enumerate(list(self.nodes)):
            count = per_role.get(first.role, 1)
            if count <= 1:
                continue
            self.nodes[position] = dataclass_replace(first, site_servers=count)
            for k in range(2, count + 1):
                self.add(f"{first.node_id}-server{k}", first.role, first.prefix, None, industry=first.industry,
                         region=first.region, server_of=first.node_id, server_index=k - 1, site_servers=count)

    def enterprises(self, rng: random.Random) -> None:
        config = self.config
        enterprises = config.enterprises
        per_secondary = spread(enterprises.count, [s.weight for s in config.secondaries], rng)
        regions = sorted(({r.region for r in config.roots} | {s.region for s in config.secondaries}) - {""}) or [""]
        taken = {ascii_upper(e.prefix) for e in enterprises.explicit}  # hand-written enterprises keep their numbers
        for sec, count in zip(config.secondaries, per_secondary, strict=True):
            for prefix in _numbered(sec, count, enterprises.first_number, taken):
                region = sec.region if rng.random() < SAME_REGION_SHARE else rng.choice(regions)
                self.add(f"{ENTERPRISE_ID_PREFIX}{prefix}", Role.ENTERPRISE, prefix, sec.id, industry=sec.industry,
                         region=region, identifier_count=enterprises.identifiers_per_enterprise)
        secondaries = {s.id: s for s in config.secondaries}
        for ent in enterprises.explicit:
            sec = secondaries[ent.secondary]
            self.add(ent.id, Role.ENTERPRISE, ent.prefix, sec.id, industry=sec.industry,
                     region=ent.region or sec.region, identifier_count=enterprises.identifiers_per_enterprise)

    def mirrors(self) -> None:
        per_role = {Role.SECONDARY: self.config.mirrors.secondary, Role.ENTERPRISE: self.config.mirrors.enterprise}
        for primary in [n for n in self.nodes if per_role.get(n.role)]:
            for k in range(1, per_role[primary.role] + 1):
                # a partitioned site's mirror site has as many servers; server i copies the primary's server i
                site = f"{primary.server_of}-mirror{k}" if primary.server_of else None
                self.add(f"{primary.node_id}-mirror{k}", primary.role, primary.prefix, None,
                         industry=primary.industry, region=primary.region,
                         identifier_count=primary.identifier_count, mirror_of=primary.node_id, server_of=site,
                         server_index=primary.server_index, site_servers=primary.site_servers)

    def checked(self) -> TopologyPlan:
        """The plan, after the checks a hand-built TopologyConfig (not from parse_config) could still fail."""
        source = self.config.source
        ids = [n.node_id for n in self.nodes]
        if len(set(ids)) != len(ids):
            twice = sorted({i for i in ids if ids.count(i) > 1})
            raise ConfigError(f"{source}: node ids {', '.join(twice)} are used by more than one node")
        last = max((n.port for n in self.nodes), default=0)
        if last > MAX_PORT:
            raise ConfigError(f"{source}: base_port: {len(self.nodes)} nodes need ports up to {last}, past {MAX_PORT}")
        return TopologyPlan(self.config, tuple(self.nodes))


def _numbered(sec: SecondarySpec, count: int, first: int, taken: set[str]) -> list[str]:
    prefixes: list[str] = []
    number = first
    while len(prefixes) < count:
        prefix = f"{sec.prefix}.{number}"
        if ascii_upper(prefix) not in taken:
            prefixes.append(prefix)
        number += 1
    return prefixes


def build_plan(config: TopologyConfig) -> TopologyPlan:
    """Every node of the topology, in start order (roots, secondaries, enterprises, resolvers, mirrors last so
    adding mirrors never moves another node's port); deterministic for a config and its seed."""
    rng = random.Random(config.seed)
    builder = _PlanBuilder(config)
    for root in config.roots:
        builder.add(root.id, Role.ROOT, NA_PREFIX_TEXT, None, region=root.region)
    registry = config.roots[0].id if config.roots else None  # the root registry is shared; the first root writes it
    for sec in config.secondaries:
        builder.add(sec.id, Role.SECONDARY, sec.prefix, registry, industry=sec.industry, region=sec.region)
    builder.enterprises(rng)
    for resolver in config.resolvers:
        builder.add(resolver.id, Role.RESOLVER, "", None, region=resolver.region)
    builder.servers()
    builder.mirrors()
    return builder.checked()
