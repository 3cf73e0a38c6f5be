"""The network model: how long a message takes between two regions, and whether it arrives at all.

Pure: the model answers `sample(from_region, to_region, rng) -> seconds or None (lost)`; the transports (net/) sleep
for that long before sending and after receiving, so the core logic never sees a clock. A one-way delay is a base
delay per pair of regions (given explicitly, or derived from coordinates: great-circle distance travelled at 2/3 of
the speed of light along a route `route_factor` times longer than the straight line, plus a fixed `base_ms` for
access links and equipment) plus jitter drawn from a named distribution; each message is lost with the link's
probability, independently per direction.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, replace
from typing import Any

FIBRE_KM_PER_MS = 199.86
"""Light in fibre covers about 200 km per millisecond (2/3 of c)."""
EARTH_RADIUS_KM = 6371.0
JITTER_DISTRIBUTIONS = ("none", "uniform", "normal", "exponential")
"""Names a link's jitter may take; `jitter_ms` is the scale: uniform 0..scale, normal sigma (a delay never goes
below zero), exponential mean."""


@dataclass(frozen=True)
class Region:
    """A place nodes and clients sit in; coordinates are optional when every pair has an explicit link delay."""

    name: str
    latitude: float | None = None
    longitude: float | None = None

    @property
    def located(self) -> bool:
        return self.latitude is not None and self.longitude is not None


@dataclass(frozen=True)
class LinkParams:
    """How messages between two regions behave (one direction; links are symmetric unless overridden)."""

    delay: float
    """Base one-way delay, seconds."""
    jitter: str = "none"
    """Name of the jitter distribution (JITTER_DISTRIBUTIONS)."""
    jitter_scale: float = 0.0
    """Seconds; the distribution's scale."""
    loss: float = 0.0
    """Probability that a message is lost (0..1)."""


def great_circle_km(a: Region, b: Region) -> float:
    """Haversine distance between two located regions."""
    assert a.latitude is not None and a.longitude is not None and b.latitude is not None and b.longitude is not None
    lat1, lat2 = math.radians(a.latitude), math.radians(b.latitude)
    dlat = lat2 - lat1
    dlon = math.radians(b.longitude - a.longitude)
    h = math.sin(dlat / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin(dlon / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def derived_delay(a: Region, b: Region, *, base: float, route_factor: float, local: float) -> float:
    """One-way seconds between two located regions: `base` + route length at fibre speed (`local` inside a region)."""
    if a.name == b.name:
        return local
    return base + great_circle_km(a, b) * route_factor / FIBRE_KM_PER_MS / 1000


def draw_jitter(name: str, scale: float, rng: random.Random) -> float:
    """Extra seconds from the named distribution (may be negative for `normal`; callers clamp the total)."""
    if name == "none" or scale <= 0:
        return 0.0
    if name == "uniform":
        return rng.uniform(0.0, scale)
    if name == "normal":
        return rng.gauss(0.0, scale)
    if name == "exponential":
        return rng.expovariate(1.0 / scale)
    raise ValueError(f"unknown jitter distribution {name!r} (known: {', '.join(JITTER_DISTRIBUTIONS)})")


@dataclass
class NetworkModel:
    """Regions and the link between every ordered pair of them."""

    regions: dict[str, Region]
    links: dict[tuple[str, str], LinkParams]
    """Every ordered pair of region names, including (r, r) for traffic inside a region."""
    default_region: str
    """Where a node or client with no region sits."""
    client_region: str
    """Where the CLI and the load generator sit unless told otherwise."""
    seed: int = 0
    """Seed the transports derive their random streams from (deterministic runs)."""

    def link(self, source: str, target: str) -> LinkParams:
        """The link between two regions ('' = the default region)."""
        key = (source or self.default_region, target or self.default_region)
        try:
            return self.links[key]
        except KeyError:
            raise KeyError(f"the network model has no link {key[0]} -> {key[1]}") from None

    def sample(self, source: str, target: str, rng: random.Random) -> float | None:
        """One message's one-way delay in seconds, or None when the message is lost."""
        link = self.link(source, target)
        if link.loss > 0 and rng.random() < link.loss:
            return None
        return max(0.0, link.delay + draw_jitter(link.jitter, link.jitter_scale, rng))

    def to_dict(self) -> dict[str, Any]:
        """Plain data (topology.json, generator processes); `from_dict` rebuilds the same model."""
        return {
            "regions": [{"name": r.name, "latitude": r.latitude, "longitude": r.longitude}
                        for r in self.regions.values()],
            "links": [{"from": a, "to": b, "delay_ms": round(p.delay * 1000, 4), "jitter": p.jitter,
                       "jitter_ms": round(p.jitter_scale * 1000, 4), "loss": p.loss}
                      for (a, b), p in sorted(self.links.items())],
            "default_region": self.default_region,
            "client_region": self.client_region,
            "seed": self.seed,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NetworkModel:
        regions = {r["name"]: Region(r["name"], r.get("latitude"), r.get("longitude")) for r in data["regions"]}
        links = {(link["from"], link["to"]): LinkParams(link["delay_ms"] / 1000, link.get("jitter", "none"),
                                                        link.get("jitter_ms", 0.0) / 1000, link.get("loss", 0.0))
                 for link in data["links"]}
        return cls(regions, links, data["default_region"], data["client_region"], int(data.get("seed", 0)))

    def with_client_region(self, region: str) -> NetworkModel:
        if region not in self.regions:
            raise KeyError(f"no region {region!r} in the network model (known: {', '.join(self.regions)})")
        return replace(self, client_region=region)

    def delay_matrix_ms(self) -> dict[str, dict[str, float]]:
        """Base one-way delays in milliseconds, for display."""
        names = list(self.regions)
        return {a: {b: round(self.links[(a, b)].delay * 1000, 2) for b in names} for a in names}


@dataclass(frozen=True)
class LinkOverride:
    """An explicit link between two regions; None fields keep the derived or default value."""

    source: str
    target: str
    delay: float | None = None
    jitter: str | None = None
    jitter_scale: float | None = None
    loss: float | None = None
    symmetric: bool = True


def build_model(regions: list[Region], *, base: float, route_factor: float, local: float, jitter: str,
                jitter_scale: float, loss: float, overrides: list[LinkOverride], client_region: str,
                seed: int) -> NetworkModel:
    """Every ordered pair's link: explicit overrides first, else derived from coordinates.

    Raises ValueError naming the pair when neither gives a delay (a region without coordinates needs explicit
    links to every other region)."""
    by_name = {r.name: r for r in regions}
    explicit: dict[tuple[str, str], LinkOverride] = {}
    for given in overrides:
        explicit[(given.source, given.target)] = given
        if given.symmetric:
            explicit.setdefault((given.target, given.source), replace(given, source=given.target, target=given.source))
    links: dict[tuple[str, str], LinkParams] = {}
    for a in regions:
        for b in regions:
            o: LinkOverride | None = explicit.get((a.name, b.name))
            delay = o.delay if o is not None and o.delay is not None else None
            if delay is None:
                if a.name == b.name:
                    delay = local
                elif a.located and b.located:
                    delay = derived_delay(a, b, base=base, route_factor=route_factor, local=local)
                else:
                    raise ValueError(f"no delay for {a.name} -> {b.name}: give both regions coordinates or add a "
                                     "link with delay_ms")
            links[(a.name, b.name)] = LinkParams(
                delay,
                o.jitter if o is not None and o.jitter is not None else jitter,
                o.jitter_scale if o is not None and o.jitter_scale is not None else jitter_scale,
                o.loss if o is not None and o.loss is not None else loss)
    default = regions[0].name if regions else ""
    return NetworkModel(by_name, links, default, client_region or default, seed)
