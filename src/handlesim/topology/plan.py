"""From a configuration to a deterministic list of nodes: ids, roles, prefixes, ports, parents and credentials."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from ..core.handle import NA_PREFIX_TEXT
from .config import TopologyConfig

ROLES = ("root", "secondary", "enterprise", "resolver")


@dataclass(frozen=True)
class NodePlan:
    node_id: str
    role: str
    prefix: str
    """The prefix the node homes (`0.NA` for roots, nothing for resolvers)."""
    parent_id: str | None
    """The node that delegated this node's prefix (roots and resolvers: None)."""
    host: str
    port: int
    """0 = ephemeral (chosen at launch)."""
    industry: str = ""
    region: str = ""
    identifier_count: int = 0
    admin_identity: str = ""
    """The identity that owns the node's prefix, e.g. `300:0.NA/88.101`."""
    secret: str = field(default="", repr=False)
    """The owner's generated secret key (written to the state dir's credentials file, never logged)."""
    mirror_of: str | None = None
    """For a mirror server: the primary node it copies (it homes the same prefix, answers reads, refuses writes)."""


@dataclass(frozen=True)
class TopologyPlan:
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
        return list(self._children.get(node_id, []))

    @cached_property
    def _mirrors(self) -> dict[str, list[str]]:
        mirrors: dict[str, list[str]] = {}
        for node in self.nodes:
            if node.mirror_of is not None:
                mirrors.setdefault(node.mirror_of, []).append(node.node_id)
        return mirrors

    def mirrors_of(self, node_id: str) -> list[str]:
        return list(self._mirrors.get(node_id, []))

    def with_role(self, role: str) -> list[NodePlan]:
        """Primary nodes of a role (mirrors are in `nodes` and `mirrors_of`)."""
        return [n for n in self.nodes if n.role == role and n.mirror_of is None]

    @property
    def roots(self) -> list[NodePlan]:
        return self.with_role("root")

    @property
    def secondaries(self) -> list[NodePlan]:
        return self.with_role("secondary")

    @property
    def enterprises(self) -> list[NodePlan]:
        return self.with_role("enterprise")

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.config.name, "nodes": [
            {"id": n.node_id, "role": n.role, "prefix": n.prefix, "parent": n.parent_id, "port": n.port,
             "industry": n.industry, "region": n.region} for n in self.nodes]}


def _secret(seed: int, node_id: str) -> str:
    return hashlib.sha256(f"handlesim:{seed}:{node_id}".encode()).hexdigest()[:32]


def spread(total: int, weights: list[float], rng: random.Random) -> list[int]:
    """Split `total` over buckets in proportion to `weights` (largest remainders), at least one each when possible."""
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


def build_plan(config: TopologyConfig) -> TopologyPlan:
    """Every node of the topology, in start order (roots, secondaries, enterprises, resolvers); deterministic."""
    rng = random.Random(config.seed)
    nodes: list[NodePlan] = []

    def add(node_id: str, role: str, prefix: str, parent: str | None, **extra: Any) -> None:
        port = config.base_port + len(nodes) if config.base_port else 0
        identity = {"root": "300:0.NA/0.NA", "resolver": ""}.get(role, f"300:{NA_PREFIX_TEXT}/{prefix}")
        owner = extra.get("mirror_of") or node_id
        nodes.append(NodePlan(node_id, role, prefix, parent, config.host, port, admin_identity=identity,
                              secret=_secret(config.seed, owner), **extra))

    for root in config.roots:
        add(root.id, "root", NA_PREFIX_TEXT, None, region=root.region)
    first_root = config.roots[0].id
    for sec in config.secondaries:
        add(sec.id, "secondary", sec.prefix, first_root, industry=sec.industry, region=sec.region)
    per_secondary = spread(config.enterprises.count, [s.weight for s in config.secondaries], rng)
    identifiers = config.enterprises.identifiers_per_enterprise
    regions = sorted(({r.region for r in config.roots} | {s.region for s in config.secondaries}) - {""}) or [""]
    for sec, count in zip(config.secondaries, per_secondary, strict=True):
        for number in range(config.enterprises.first_number, config.enterprises.first_number + count):
            prefix = f"{sec.prefix}.{number}"
            region = sec.region if rng.random() < 0.6 else rng.choice(regions)
            add(f"ent-{prefix}", "enterprise", prefix, sec.id, industry=sec.industry, region=region,
                identifier_count=identifiers)
    secondaries = {s.id: s for s in config.secondaries}
    for ent in config.enterprises.explicit:
        add(ent.id, "enterprise", ent.prefix, ent.secondary, industry=secondaries[ent.secondary].industry,
            region=ent.region or secondaries[ent.secondary].region, identifier_count=identifiers)
    for resolver in config.resolvers:
        add(resolver.id, "resolver", "", None, region=resolver.region)
    # mirrors last, so adding them never moves another node's port
    counts = {"secondary": config.mirrors.secondary, "enterprise": config.mirrors.enterprise}
    for primary in [n for n in nodes if counts.get(n.role)]:
        for k in range(1, counts[primary.role] + 1):
            add(f"{primary.node_id}-mirror{k}", primary.role, primary.prefix, None, industry=primary.industry,
                region=primary.region, identifier_count=primary.identifier_count, mirror_of=primary.node_id)
    return TopologyPlan(config, tuple(nodes))
