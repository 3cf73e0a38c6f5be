"""Identifiers seeded at each enterprise: plausible products per industry, deterministic for a seed, fast to build.

An identifier is `<enterprise prefix>/<CODE>-<serial>` (e.g. `88.101.1001/PUMP-000001`): the category code of the
industry's product line and a six-digit serial. The suffix depends only on the industry and the serial, so a program
that knows an enterprise's prefix, industry and identifier count (topology.json) can list its identifiers without
asking any node. Model, production date and batch go into the values, drawn from the seed:

    1    URL               https://id.example.cn/88.101.1001/PUMP-000001
    2    PRODUCT_NAME      centrifugal pump
    3    MODEL             PUMP-A200
    4    MANUFACTURE_DATE  2023-05-14      (advances with the serial, as a production line does)
    5    BATCH             20230514-L1     (production day and line)
    6    EMAIL             id-admin@88-101-1001.example.cn
    100  HS_ADMIN          the enterprise's admin group (as core.prefixes.handle_record adds it)

Speed matters (the plan seeds 100,000 records at boot): values that repeat (product names, models, dates, contact,
admin, batches) are built once and shared, which also keeps memory and garbage-collector work down; per record
only the suffix, the URL value, the values tuple, the Handle and the record are new.
"""

from __future__ import annotations

import datetime
import random
import zlib
from dataclasses import dataclass
from functools import cache

from ..core.handle import Handle, Prefix
from ..core.prefixes import admin_value
from ..core.storage import HandleRecord
from ..core.values import EMAIL, URL, HandleValue
from .plan import NodePlan, TopologyPlan

URL_BASE = "https://id.example.cn"
"""Where identifiers' URL values point: a reserved example domain, never a real host."""
PRODUCT_NAME, MODEL, MANUFACTURE_DATE, BATCH = "PRODUCT_NAME", "MODEL", "MANUFACTURE_DATE", "BATCH"
MODEL_SERIES = ("A100", "A200", "B350", "C500", "X900")
FIRST_PRODUCTION_DAY = datetime.date(2022, 1, 1)
PRODUCTION_DAYS = 3 * 365
"""Production dates fall in 2022-2024; a long-running enterprise's dates wrap around to the start."""


@dataclass(frozen=True)
class ProductLine:
    """One kind of product an industry's enterprises identify."""

    code: str
    """Category code at the start of the suffix (`PUMP` in `PUMP-000001`)."""
    name: str
    """PRODUCT_NAME value."""


def _lines(*pairs: tuple[str, str]) -> tuple[ProductLine, ...]:
    return tuple(ProductLine(code, name) for code, name in pairs)


# (keywords matched in the industry text, product lines); first match wins, so specific entries come first
# ("agriculture machinery" before "machinery", "environmental" before "iron").
INDUSTRY_PRODUCTS: tuple[tuple[tuple[str, ...], tuple[ProductLine, ...]], ...] = (
    (("agricultur",), _lines(("TRAC", "wheeled tractor"), ("HARV", "combine harvester"), ("SEED", "precision seeder"),
                             ("SPRY", "boom sprayer"))),
    (("machinery", "machine tool"), _lines(("PUMP", "centrifugal pump"), ("CMPR", "air compressor"),
                                           ("VALV", "gate valve"), ("GEAR", "gear reducer"))),
    (("appliance",), _lines(("FRDG", "refrigerator"), ("WASH", "washing machine"), ("ACON", "air conditioner"),
                            ("TVST", "television"))),
    (("supply chain",), _lines(("PLLT", "pallet"), ("CNTR", "shipping container"), ("CRTE", "returnable crate"),
                               ("TAGR", "RFID tag reel"))),
    (("logistic", "shipping"), _lines(("CNTR", "shipping container"), ("RFCN", "reefer container"),
                                      ("PLLT", "pallet"), ("TRLR", "semi-trailer"))),
    (("rubber", "tyre", "tire"), _lines(("TYRE", "radial tyre"), ("BELT", "conveyor belt"), ("HOSE", "hydraulic hose"),
                                        ("SEAL", "O-ring seal kit"))),
    (("environment",), _lines(("FLTR", "bag filter"), ("SCRB", "wet scrubber"), ("WTRT", "water treatment unit"),
                              ("DUST", "dust collector"))),
    (("textile", "apparel", "garment"), _lines(("FBRC", "fabric roll"), ("YARN", "yarn bobbin"),
                                               ("GRMT", "garment carton"), ("WKWR", "workwear set"))),
    (("food", "beverage"), _lines(("BEER", "beer keg"), ("DRNK", "beverage case"), ("SEAF", "frozen seafood carton"),
                                  ("DARY", "dairy pallet"))),
    (("marine", "shipbuild", "ocean"), _lines(("ENGN", "marine diesel engine"), ("PROP", "propeller"),
                                              ("WNCH", "deck winch"), ("HULL", "hull block"))),
    (("automotive", "vehicle"), _lines(("ENGB", "engine block"), ("BRKE", "brake caliper"),
                                       ("BATT", "traction battery pack"), ("SEAT", "seat assembly"))),
    (("medical",), _lines(("SYRG", "syringe box"), ("MNTR", "patient monitor"), ("INFU", "infusion pump"),
                          ("STNT", "coronary stent"))),
    (("electronic",), _lines(("PCBA", "circuit board assembly"), ("DISP", "display module"),
                             ("PSUP", "power supply"), ("CHIP", "IC tray"))),
    (("chemical",), _lines(("DRUM", "chemical drum"), ("IBCT", "IBC tote"), ("RESN", "resin bag"),
                           ("CATL", "catalyst batch"))),
    (("pharma",), _lines(("VIAL", "vial tray"), ("BLST", "blister pack carton"), ("APID", "API drum"),
                         ("SYRP", "syrup case"))),
    (("steel", "iron"), _lines(("COIL", "hot-rolled coil"), ("PLAT", "steel plate"), ("REBR", "rebar bundle"),
                               ("SPIP", "seamless pipe"))),
    (("nonferrous", "metal"), _lines(("INGT", "aluminium ingot"), ("CATH", "copper cathode"),
                                     ("FOIL", "aluminium foil roll"), ("WROD", "copper wire rod"))),
    (("building", "construction"), _lines(("CMNT", "cement bag pallet"), ("GLAS", "float glass crate"),
                                          ("TILE", "ceramic tile pallet"), ("PVCP", "PVC pipe bundle"))),
    (("energy", "power"), _lines(("XFMR", "distribution transformer"), ("METR", "smart meter"),
                                 ("CABL", "cable reel"), ("INVR", "PV inverter"))),
    (("aerospace", "aviation"), _lines(("BLDE", "turbine blade"), ("FAST", "fastener lot"), ("AVNC", "avionics unit"),
                                       ("LDGR", "landing gear"))),
)
DEFAULT_PRODUCTS = _lines(("PART", "component"), ("ASSY", "assembly"), ("UNIT", "unit"))


@cache
def products_for(industry: str) -> tuple[ProductLine, ...]:
    """The product lines seeded for an industry (by keyword; unknown industries get generic parts)."""
    text = industry.lower()
    for keywords, lines in INDUSTRY_PRODUCTS:
        if any(k in text for k in keywords):
            return lines
    return DEFAULT_PRODUCTS


def suffix_for(node: NodePlan | str, serial: int) -> str:
    """The suffix of an enterprise's `serial`-th seeded identifier (1-based), from the node or its industry."""
    lines = products_for(node if isinstance(node, str) else node.industry)
    return f"{lines[(serial - 1) % len(lines)].code}-{serial:06d}"


@cache
def _line_values(line: ProductLine) -> tuple[HandleValue, tuple[HandleValue, ...]]:
    """PRODUCT_NAME value and one MODEL value per series, shared by every record of the line."""
    return (HandleValue(2, PRODUCT_NAME, line.name),
            tuple(HandleValue(3, MODEL, f"{line.code}-{series}") for series in MODEL_SERIES))


@cache
def _production_days() -> tuple[tuple[HandleValue, tuple[HandleValue, ...]], ...]:
    """Per production day: its MANUFACTURE_DATE value and its BATCH value for each production line (L1, L2, ...)."""
    lines = max(len(lines) for lines in (DEFAULT_PRODUCTS, *(table for _, table in INDUSTRY_PRODUCTS)))
    days = []
    for offset in range(PRODUCTION_DAYS):
        day = FIRST_PRODUCTION_DAY + datetime.timedelta(days=offset)
        compact = day.strftime("%Y%m%d")
        batches = tuple(HandleValue(5, BATCH, f"{compact}-L{line}") for line in range(1, lines + 1))
        days.append((HandleValue(4, MANUFACTURE_DATE, day.isoformat()), batches))
    return tuple(days)


def _rng_for(node: NodePlan, seed: int) -> random.Random:
    # crc32, not hash(): str hashes are salted per process and the seed must give the same values every run
    return random.Random(seed * 1_000_003 + zlib.crc32(node.node_id.encode()))


def identifiers_for(node: NodePlan, seed: int) -> list[HandleRecord]:
    """The enterprise's `identifier_count` identifiers, values in index order; same node and seed, same records."""
    prefix = Prefix.from_text(node.prefix)  # validated once; every handle below reuses it
    rng = _rng_for(node, seed)
    lines = products_for(node.industry)
    line_values = [_line_values(line) for line in lines]
    days = _production_days()
    first_day = rng.randrange(len(days))
    per_day = rng.choice((2, 3, 5, 8))  # identifiers issued per production day
    contact = HandleValue(6, EMAIL, f"id-admin@{node.prefix.replace('.', '-')}.example.cn")
    admin = admin_value(prefix)
    url_base = f"{URL_BASE}/{node.prefix}/"
    pick_series = rng.getrandbits
    series_count = len(MODEL_SERIES)
    records = []
    for serial in range(1, node.identifier_count + 1):
        line = (serial - 1) % len(lines)
        suffix = f"{lines[line].code}-{serial:06d}"
        name, models = line_values[line]
        date, batches = days[(first_day + serial // per_day) % len(days)]
        values = (
            HandleValue(1, URL, url_base + suffix),
            name,
            models[pick_series(16) % series_count],
            date,
            batches[line],
            contact,
            admin,
        )
        records.append(HandleRecord(Handle(prefix, suffix), values))
    return records


def example_identifiers(plan: TopologyPlan, count: int) -> list[str]:
    """Up to `count` identifiers that exist once the topology is seeded, from different secondaries."""
    picked: list[str] = []
    seen_parents: set[str | None] = set()
    for node in plan.enterprises:
        if len(picked) >= count:
            break
        if node.identifier_count and node.parent_id not in seen_parents:
            seen_parents.add(node.parent_id)
            picked.append(f"{node.prefix}/{suffix_for(node, 1)}")
    return picked
