"""Identifiers seeded at each enterprise: plausible products per industry, deterministic for a seed, fast to build."""

from __future__ import annotations

import random
import zlib

from ..core.handle import Handle, Prefix
from ..core.prefixes import admin_value
from ..core.storage import HandleRecord
from ..core.values import EMAIL, URL, HandleValue
from .plan import NodePlan, TopologyPlan

# industry -> (suffix code, product names); suffixes follow "category + model + production date + serial".
PRODUCTS: dict[str, tuple[tuple[str, str], ...]] = {
    "machinery": (("PUMP", "centrifugal pump"), ("CMPR", "air compressor"), ("VALV", "gate valve"),
                  ("GEAR", "gear reducer")),
    "home appliances": (("FRDG", "refrigerator"), ("WASH", "washing machine"), ("ACON", "air conditioner"),
                        ("TVST", "television")),
    "supply chain": (("PLLT", "pallet"), ("CNTR", "shipping container"), ("CRTE", "returnable crate"),
                     ("TAGR", "RFID tag reel")),
    "rubber": (("TYRE", "radial tyre"), ("BELT", "conveyor belt"), ("HOSE", "hydraulic hose")),
    "environmental equipment": (("FLTR", "bag filter"), ("SCRB", "wet scrubber"), ("WTRT", "water treatment unit")),
}
DEFAULT_PRODUCTS = (("PART", "component"), ("ASSY", "assembly"), ("UNIT", "unit"))
MODELS = ("A100", "A200", "B350", "C500", "X900")


def _products(industry: str) -> tuple[tuple[str, str], ...]:
    for key, table in PRODUCTS.items():
        if key in industry.lower():
            return table
    return DEFAULT_PRODUCTS


def suffix_for(node: NodePlan | str, serial: int) -> str:
    """The suffix of an enterprise's `serial`-th seeded identifier (`node` or its industry)."""
    products = _products(node if isinstance(node, str) else node.industry)
    code, _ = products[serial % len(products)]
    return f"{code}-{serial:06d}"


def identifiers_for(node: NodePlan, seed: int) -> list[HandleRecord]:
    """The enterprise's identifiers: URL at index 1, product metadata at 2..6, HS_ADMIN at 100."""
    rng = random.Random(seed * 1_000_003 + zlib.crc32(node.node_id.encode()))
    prefix = Prefix(node.prefix)
    admin = admin_value(prefix)
    products = _products(node.industry)
    contact = HandleValue(6, EMAIL, f"id-admin@{node.prefix.replace('.', '-')}.example.cn")
    records = []
    for serial in range(1, node.identifier_count + 1):
        code, product = products[serial % len(products)]
        model = MODELS[rng.randrange(len(MODELS))]
        made = f"2024{rng.randrange(1, 13):02d}{rng.randrange(1, 29):02d}"
        suffix = f"{code}-{serial:06d}"
        values = (
            HandleValue(1, URL, f"https://id.example.cn/{node.prefix}/{suffix}"),
            HandleValue(2, "PRODUCT_NAME", product),
            HandleValue(3, "MODEL", f"{code}-{model}"),
            HandleValue(4, "MANUFACTURE_DATE", made),
            HandleValue(5, "BATCH", f"{made}-{rng.randrange(1, 50):02d}"),
            contact,
            admin,
        )
        records.append(HandleRecord(Handle(prefix, suffix), values))
    return records


def example_identifiers(plan: TopologyPlan, count: int) -> list[str]:
    """A few identifiers that exist once the topology is seeded, spread over secondaries."""
    picked: list[str] = []
    seen_parents: set[str | None] = set()
    for node in plan.enterprises:
        if node.identifier_count and node.parent_id not in seen_parents:
            seen_parents.add(node.parent_id)
            picked.append(f"{node.prefix}/{suffix_for(node, 1)}")
        if len(picked) >= count:
            break
    return picked
