"""Topology files: the shipped configs, the plan's counts, determinism, seeding, and error messages for bad files."""

from __future__ import annotations

import json
import random
import tomllib
from dataclasses import replace
from pathlib import Path

import pytest

from handlesim.core.handle import Prefix
from handlesim.core.prefixes import handle_record
from handlesim.core.values import ADMIN_INDEX
from handlesim.topology.config import ConfigError, load_config, parse_config
from handlesim.topology.plan import build_plan, spread
from handlesim.topology.seed import DEFAULT_PRODUCTS, example_identifiers, identifiers_for, products_for, suffix_for

from ..support.paths import CONFIGS

MINIMAL = 'name = "t"\n[[roots]]\nid = "r"\n'
ONE_SECONDARY = MINIMAL + '[[secondaries]]\nid = "s"\nprefix = "88.101"\n'


def test_plan_counts_and_uneven_spread() -> None:
    plan = build_plan(load_config(CONFIGS / "plan.toml"))
    assert len(plan.roots) == 2 and len(plan.secondaries) == 20 and len(plan.enterprises) == 1000
    assert len(plan.resolvers) == 1 and plan.resolvers[0].region == "Qingdao"
    assert {r.node_id for r in plan.roots} == {"root-qingdao", "root-beijing"}
    per_secondary = {s.industry: len(plan.children_of(s.node_id)) for s in plan.secondaries}
    assert sum(per_secondary.values()) == 1000 and min(per_secondary.values()) >= 1
    assert max(per_secondary.values()) > 4 * min(per_secondary.values())
    assert per_secondary["machinery"] > per_secondary["rubber"] > per_secondary["aerospace"]
    named = {"machinery", "home appliances", "supply chain management", "rubber", "environmental equipment"}
    assert named <= set(per_secondary)
    assert [n.port for n in plan.nodes] == list(range(20000, 20000 + len(plan.nodes)))
    assert len({n.prefix for n in plan.nodes if n.role in ("secondary", "enterprise")}) == 1020


def test_plan_nodes_carry_parents_identities_and_secrets() -> None:
    plan = build_plan(load_config(CONFIGS / "plan.toml"))
    machinery = plan.by_id["sec-machinery"]
    assert (machinery.prefix, machinery.parent_id, machinery.admin_identity) == ("88.101", "root-qingdao",
                                                                                  "300:0.NA/88.101")
    first = plan.by_id["ent-88.101.1001"]
    assert (first.role, first.parent_id, first.industry, first.identifier_count) == (
        "enterprise", "sec-machinery", "machinery", 100)
    assert first.admin_identity == "300:0.NA/88.101.1001"
    for node in plan.enterprises:
        parent = plan.by_id[node.parent_id or ""]
        assert Prefix(node.prefix).parent() == Prefix(parent.prefix) and parent.role == "secondary"
    assert all(r.prefix == "0.NA" and r.parent_id is None for r in plan.roots)
    secrets = [n.secret for n in plan.nodes]
    assert len(set(secrets)) == len(secrets)
    assert all(len(s) >= 24 and int(s, 16) >= 0 for s in secrets)
    description = plan.to_dict()
    assert "secret" not in json.dumps(description) and len(description["nodes"]) == len(plan.nodes)


def test_small_config() -> None:
    plan = build_plan(load_config(CONFIGS / "small.toml"))
    assert (len(plan.roots), len(plan.secondaries), len(plan.enterprises), len(plan.resolvers)) == (1, 3, 6, 1)
    assert [n.identifier_count for n in plan.enterprises] == [20] * 6
    assert plan.by_id["ent-88.101.1003"].region == "Beijing" and plan.by_id["ent-88.101.1001"].region == "Qingdao"
    assert plan.children_of("sec-machinery") == ["ent-88.101.1001", "ent-88.101.1002", "ent-88.101.1003"]


def test_deterministic() -> None:
    config = load_config(CONFIGS / "plan.toml")
    a, b = build_plan(config), build_plan(load_config(CONFIGS / "plan.toml"))
    assert a.nodes == b.nodes and a.to_dict() == b.to_dict()
    assert [n.secret for n in a.nodes] == [n.secret for n in b.nodes]
    other = build_plan(replace(config, seed=1))
    assert all(x.secret != y.secret for x, y in zip(a.nodes, other.nodes, strict=True))
    node = a.enterprises[3]
    assert identifiers_for(node, 2022) == identifiers_for(node, 2022)
    reseeded = identifiers_for(node, 1)
    assert [r.handle for r in reseeded] == [r.handle for r in identifiers_for(node, 2022)]
    assert [r.values for r in reseeded] != [r.values for r in identifiers_for(node, 2022)]


def test_spread_is_exact_and_gives_everyone_one() -> None:
    big, small, tiny = spread(1000, [9.0, 1.0, 0.1], random.Random(0))
    assert big + small + tiny == 1000 and big > 8 * small and tiny >= 1
    for total in (0, 2, 3, 7, 1000):
        counts = spread(total, [3.0, 1.0, 1.0], random.Random(total))
        assert sum(counts) == total
        assert min(counts) >= (1 if total >= 3 else 0)


def test_explicit_enterprises_keep_their_numbers_beside_generated_ones() -> None:
    text = ONE_SECONDARY + ('[enterprises]\ncount = 3\n[[enterprises.explicit]]\nprefix = "88.101.1002"\n'
                            'secondary = "s"\n')
    plan = build_plan(parse_config(tomllib.loads(text), "inline"))
    assert sorted(n.prefix for n in plan.enterprises) == ["88.101.1001", "88.101.1002", "88.101.1003", "88.101.1004"]
    assert plan.by_id["ent-88.101.1002"].parent_id == "s"


def test_ephemeral_ports_and_overrides() -> None:
    config = load_config(CONFIGS / "plan.toml").with_overrides(base_port=0, identifiers_per_enterprise=5)
    plan = build_plan(config)
    assert {n.port for n in plan.nodes} == {0} and plan.enterprises[0].identifier_count == 5
    with pytest.raises(ConfigError, match=r"plan.toml: enterprises.identifiers_per_enterprise \(override\)"):
        config.with_overrides(identifiers_per_enterprise=-1)
    with pytest.raises(ConfigError, match="plan.toml: base_port: .*past 65535"):
        config.with_overrides(base_port=65000)


def test_seeding_the_plan() -> None:
    plan = build_plan(load_config(CONFIGS / "plan.toml"))
    seeded = [(node, identifiers_for(node, plan.config.seed)) for node in plan.enterprises]
    records = [r for _, rs in seeded for r in rs]
    assert len(records) == 100_000 and len({r.key for r in records}) == 100_000
    for node, rs in seeded:
        assert all(r.handle.prefix.key == Prefix(node.prefix).key for r in rs)
    unique_values = {id(v): v for r in records for v in r.values}  # repeated values are shared objects
    for value in unique_values.values():
        value.validate()
    for r in records[::997]:
        assert [v.index for v in r.values] == sorted(v.index for v in r.values)
        assert {v.type for v in r.values} >= {"URL", "PRODUCT_NAME", "MODEL", "MANUFACTURE_DATE", "BATCH", "HS_ADMIN"}
        assert r.values[0].data == f"https://id.example.cn/{r.handle.text}"
        assert r == handle_record(r.handle, [v for v in r.values if v.index != ADMIN_INDEX])


def test_suffixes_can_be_rebuilt_without_the_seed() -> None:
    """The benchmark lists identifiers from topology.json (prefix, industry, count) with suffix_for."""
    plan = build_plan(load_config(CONFIGS / "small.toml"))
    for node in plan.enterprises:
        records = identifiers_for(node, plan.config.seed)
        assert [r.handle.suffix for r in records] == [suffix_for(node.industry, s) for s in range(1, 21)]
    assert identifiers_for(plan.enterprises[0], 7)[0].handle.text == "88.101.1001/PUMP-000001"


def test_every_plan_industry_has_its_own_products() -> None:
    plan = build_plan(load_config(CONFIGS / "plan.toml"))
    tables = {s.industry: products_for(s.industry) for s in plan.secondaries}
    assert all(table is not DEFAULT_PRODUCTS for table in tables.values()), tables
    assert products_for("home appliances")[0].code == "FRDG" and products_for("rubber")[0].code == "TYRE"
    assert products_for("agriculture machinery") != products_for("machinery")
    assert products_for("basket weaving") == DEFAULT_PRODUCTS
    for table in tables.values():
        assert len({line.code for line in table}) == len(table)


def test_example_identifiers_exist_and_come_from_different_secondaries() -> None:
    plan = build_plan(load_config(CONFIGS / "plan.toml"))
    examples = example_identifiers(plan, 5)
    assert len(examples) == 5 and len({e.split("/")[0].rsplit(".", 1)[0] for e in examples}) == 5
    enterprise = plan.by_id[f"ent-{examples[1].split('/')[0]}"]
    assert examples[1] in {r.handle.text for r in identifiers_for(enterprise, plan.config.seed)}


MANY = "".join(f'[[secondaries]]\nid = "s{i}"\nprefix = "88.{i}"\n' for i in range(1, 3))

# (file text, fragments the message must contain besides the file name)
BAD_CONFIGS = [
    ("colour = 1\n" + MINIMAL, ["colour", "unknown key", "expected one of: base_port"]),
    ("nmae = 1\n" + MINIMAL, ["nmae", "did you mean 'name'?"]),
    ('name = "t"\n[[roots]]\nid = "r"\ncount = 2\n', ["roots[0].count", "unknown key"]),
    (ONE_SECONDARY + "[enterprises]\nidentifier_per_enterprise = 5\n",
     ["enterprises.identifier_per_enterprise", "unknown key", "did you mean 'identifiers_per_enterprise'?"]),
    (MINIMAL + "[mirrors]\nprimary = 1\n", ["mirrors.primary", "unknown key"]),
    ('name = "t"\n', ["roots", "at least one"]),
    ('[[roots]]\nid = "r"\n', ["name", "required"]),
    ('name = " "\n[[roots]]\nid = "r"\n', ["name", "must not be empty"]),
    ('name = "t"\nroots = { id = "r" }\n', ["roots", "array of tables"]),
    ('name = "t"\nhost = "192.168.1.5"\n[[roots]]\nid = "r"\n', ["host", "not an IPv4 loopback", "127.0.0.1"]),
    ('name = "t"\nhost = "0.0.0.0"\n[[roots]]\nid = "r"\n', ["host", "loopback"]),
    ('name = "t"\nhost = "::1"\n[[roots]]\nid = "r"\n', ["host", "IPv4 loopback"]),
    ('name = "t"\nhost = "localhost"\n[[roots]]\nid = "r"\n', ["host", "not an IP address"]),
    ('name = "t"\nnational_prefix = "0.NA"\n[[roots]]\nid = "r"\n', ["national_prefix", "reserved"]),
    (MINIMAL + '[[secondaries]]\nid = "s"\nprefix = "99.1"\n', ["secondaries[0].prefix", "national prefix '88'"]),
    (MINIMAL + '[[secondaries]]\nid = "s"\nprefix = "88.1.2"\n', ["secondaries[0].prefix", "directly under"]),
    (MINIMAL + '[[secondaries]]\nid = "s"\nprefix = "88..1"\n', ["secondaries[0].prefix", "empty segment"]),
    (MINIMAL + '[[secondaries]]\nid = "s"\n', ["secondaries[0].prefix", "required"]),
    (MINIMAL + '[[secondaries]]\nid = "r"\nprefix = "88.1"\n', ["secondaries[0].id", "used twice", "roots[0].id"]),
    (MINIMAL + '[[resolvers]]\nid = "r"\n', ["resolvers[0].id", "used twice"]),
    (MINIMAL + MANY.replace('"88.2"', '"88.1"'),
     ["secondaries[1].prefix", "88.1 is given twice", "secondaries[0].prefix"]),
    (MINIMAL + MANY.replace('"88.1"', '"88.ab"').replace('"88.2"', '"88.AB"'), ["secondaries[1].prefix", "twice"]),
    ('name = "t"\n[[roots]]\nid = "root/qingdao"\n', ["roots[0].id", "not a usable node id"]),
    ('name = "t"\n[[roots]]\nid = "root-mirror1"\n', ["roots[0].id", "reserved for mirror servers"]),
    ('name = "t"\n[[roots]]\nid = "ent-root"\n', ["roots[0].id", "reserved for enterprise"]),
    (ONE_SECONDARY + 'weight = "heavy"\n', ["secondaries[0].weight", "must be a number", "'heavy'"]),
    (ONE_SECONDARY + "weight = 0\n", ["secondaries[0].weight", "above 0"]),
    (ONE_SECONDARY + "weight = nan\n", ["secondaries[0].weight", "finite"]),
    (ONE_SECONDARY + "[enterprises]\ncount = -3\n", ["enterprises.count", "at least 0", "-3"]),
    (MINIMAL + "[enterprises]\ncount = 3\n", ["enterprises.count", "[[secondaries]]"]),
    (ONE_SECONDARY + "[enterprises]\nfirst_number = 0\n", ["enterprises.first_number", "at least 1"]),
    ('name = "t"\nbase_port = "x"\n[[roots]]\nid = "r"\n', ["base_port", "must be an integer", "str"]),
    ('name = "t"\nbase_port = true\n[[roots]]\nid = "r"\n', ["base_port", "must be an integer", "bool"]),
    ('name = "t"\nbase_port = 80\n[[roots]]\nid = "r"\n', ["base_port", "1024"]),
    (ONE_SECONDARY.replace('name = "t"', 'name = "t"\nbase_port = 65535') + "[enterprises]\ncount = 5\n",
     ["base_port", "7 nodes", "past 65535", "at most 65529"]),
    ('name = "t"\nsecret_iterations = 0\n[[roots]]\nid = "r"\n', ["secret_iterations", "at least 1"]),
    (ONE_SECONDARY + '[[enterprises.explicit]]\nprefix = "88.101.7"\nsecondary = "nope"\n',
     ["enterprises.explicit[0].secondary", "'nope' is not the id", "known: s"]),
    (ONE_SECONDARY + '[[enterprises.explicit]]\nprefix = "88.102.7"\nsecondary = "s"\n',
     ["enterprises.explicit[0].prefix", "directly under", "'88.101'"]),
    (ONE_SECONDARY + '[[enterprises.explicit]]\nid = "ent-88.101.9"\nprefix = "88.101.7"\nsecondary = "s"\n',
     ["enterprises.explicit[0].id", "'ent-88.101.7'"]),
    (ONE_SECONDARY + '[[enterprises.explicit]]\nprefix = "88.101.7"\nsecondary = "s"\n'
                     '[[enterprises.explicit]]\nid = "other"\nprefix = "88.101.7"\nsecondary = "s"\n',
     ["enterprises.explicit[1].prefix", "given twice", "enterprises.explicit[0].prefix"]),
    (MINIMAL + '[[resolvers]]\nid = "q"\nnegative_ttl = -1\n', ["resolvers[0].negative_ttl", "at least 0"]),
    (MINIMAL + '[[resolvers]]\nid = "q"\ncache_capacity = 0\n', ["resolvers[0].cache_capacity", "at least 1"]),
    (MINIMAL + "[mirrors]\nenterprise = -1\n", ["mirrors.enterprise", "at least 0"]),
    (ONE_SECONDARY + '[enterprises.explicit]\nprefix = "88.101.7"\n', ["enterprises.explicit", "array of tables"]),
    ("name = ", ["not valid TOML"]),
]


@pytest.mark.parametrize(("text", "fragments"), BAD_CONFIGS, ids=[str(i) for i in range(len(BAD_CONFIGS))])
def test_bad_configs_name_file_key_and_problem(tmp_path: Path, text: str, fragments: list[str]) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}: "), message
    for fragment in fragments:
        assert fragment in message, message


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "absent.toml")
