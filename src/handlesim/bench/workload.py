"""What a benchmark asks for: the seeded identifiers of a running topology, and how keys are drawn from them."""

from __future__ import annotations

import bisect
import itertools
import random
from dataclasses import dataclass

from ..core.handle import Handle
from ..net import rest
from ..topology.plan import Role
from ..topology.seed import suffix_for
from ..topology.state import TopologyState


@dataclass(frozen=True, slots=True)
class Target:
    """One identifier and the enterprise node that homes it."""

    handle: str
    host: str
    port: int
    node_id: str
    native_port: int | None = None
    """The enterprise's native protocol port, UDP and TCP (None: it speaks REST only)."""

    @property
    def path(self) -> str:
        return rest.path_for(Handle.from_text(self.handle))


def seeded_targets(state: TopologyState, limit: int = 0) -> list[Target]:
    """Every identifier `up` seeded (rebuilt from topology.json, no node is asked), enterprise by enterprise."""
    targets = []
    for node in state.with_role(Role.ENTERPRISE):
        if not node.is_primary:
            continue
        for serial in range(1, node.identifiers + 1):
            handle = f"{node.prefix}/{suffix_for(node.industry, serial)}"
            targets.append(Target(handle, node.host, node.port, node.id, node.native_port))
    if limit and len(targets) > limit:
        targets = random.Random(0).sample(targets, limit)
    return targets


class KeyChooser:
    """Draws key indexes: uniform, or Zipf with exponent `s` over a seeded shuffle (hot keys spread over nodes)."""

    def __init__(self, count: int, distribution: str = "uniform", s: float = 1.0, seed: int = 0) -> None:
        if count <= 0:
            raise ValueError("no keys to draw from: the topology has no seeded identifiers")
        if distribution not in ("uniform", "zipf"):
            raise ValueError(f"unknown key distribution {distribution!r} (uniform or zipf)")
        self.count = count
        self.rng = random.Random(seed)
        self.zipf = distribution == "zipf"
        if self.zipf:
            weights = (1.0 / (rank ** s) for rank in range(1, count + 1))
            self.cdf = list(itertools.accumulate(weights))
            self.order = list(range(count))
            random.Random(seed ^ 0x5EED).shuffle(self.order)

    def next(self) -> int:
        if not self.zipf:
            return self.rng.randrange(self.count)
        rank = bisect.bisect_left(self.cdf, self.rng.random() * self.cdf[-1])
        return self.order[min(rank, self.count - 1)]
