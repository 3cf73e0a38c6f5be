"""The network model's schema (`[network]` in a topology file, or a file of its own): regions, links, jitter, loss.
Frozen dataclasses with one docstring per field; `config.py` reads them from TOML."""

from __future__ import annotations

from dataclasses import dataclass

from ..core.netmodel import LinkOverride, NetworkModel, Region, build_model


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
