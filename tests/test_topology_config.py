"""Topology files: the shipped configs, the plan's counts, determinism, and error messages for bad files."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from handlesim.topology.config import ConfigError, load_config
from handlesim.topology.plan import build_plan
from handlesim.topology.seed import example_identifiers, identifiers_for

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
MINIMAL = 'name = "t"\n[[roots]]\nid = "r"\n'


def test_plan_counts_and_uneven_spread() -> None:
    plan = build_plan(load_config(CONFIGS / "plan.toml"))
    assert len(plan.roots) == 2 and len(plan.secondaries) == 20 and len(plan.enterprises) == 1000
    assert {r.node_id for r in plan.roots} == {"root-qingdao", "root-beijing"}
    per_secondary = [len(plan.children_of(s.node_id)) for s in plan.secondaries]
    assert sum(per_secondary) == 1000 and min(per_secondary) >= 1 and max(per_secondary) > 4 * min(per_secondary)
    industries = {s.industry for s in plan.secondaries}
    assert {"machinery", "home appliances", "rubber", "environmental equipment"} <= industries
    assert [n.port for n in plan.nodes] == list(range(20000, 20000 + len(plan.nodes)))
    assert plan.with_role("resolver")


def test_small_config() -> None:
    plan = build_plan(load_config(CONFIGS / "small.toml"))
    assert (len(plan.roots), len(plan.secondaries), len(plan.enterprises)) == (1, 3, 6)


def test_deterministic() -> None:
    config = load_config(CONFIGS / "plan.toml")
    a, b = build_plan(config), build_plan(config)
    assert a.nodes == b.nodes
    assert [n.secret for n in a.nodes] == [n.secret for n in b.nodes]
    other = build_plan(config.__class__(**{**config.__dict__, "seed": 1}))
    assert [n.secret for n in other.nodes] != [n.secret for n in a.nodes]
    node = a.enterprises[3]
    assert identifiers_for(node, 2022) == identifiers_for(node, 2022)


def test_seeding_the_plan() -> None:
    plan = build_plan(load_config(CONFIGS / "plan.toml"))
    started = time.perf_counter()
    records = [r for node in plan.enterprises for r in identifiers_for(node, plan.config.seed)]
    elapsed = time.perf_counter() - started
    assert len(records) == 100_000 and len({r.key for r in records}) == 100_000
    by_prefix = {n.prefix for n in plan.enterprises}
    assert all(r.handle.prefix.text in by_prefix for r in records[::997])
    for r in records[::1001]:
        for value in r.values:
            value.validate()
        assert {v.type for v in r.values} >= {"URL", "HS_ADMIN"}
    assert elapsed < 30  # generous: a guard against accidental quadratic work, not a benchmark
    assert len(example_identifiers(plan, 5)) == 5


@pytest.mark.parametrize(("text", "fragments"), [
    (MINIMAL + "colour = 1\n", ["colour", "unknown key"]),
    (MINIMAL.replace('[[roots]]\nid = "r"\n', ""), ["roots", "at least one"]),
    ('name = "t"\nhost = "192.168.1.5"\n[[roots]]\nid = "r"\n', ["host", "loopback"]),
    (MINIMAL + '[[secondaries]]\nid = "s"\nprefix = "99.1"\n', ["secondaries[0].prefix", "national prefix"]),
    (MINIMAL + '[[secondaries]]\nid = "s"\nprefix = "88..1"\n', ["secondaries[0].prefix", "empty segment"]),
    (MINIMAL + '[[secondaries]]\nid = "r"\nprefix = "88.1"\n', ["used twice"]),
    (MINIMAL + '[[secondaries]]\nid = "a"\nprefix = "88.1"\n[[secondaries]]\nid = "b"\nprefix = "88.1"\n',
     ["given to both"]),
    (MINIMAL + '[[secondaries]]\nid = "s"\nprefix = "88.1"\nweight = "heavy"\n', ["weight", "must be"]),
    (MINIMAL + "[enterprises]\ncount = -3\n", ["enterprises.count", "at least 0"]),
    ('name = "t"\nbase_port = "x"\n', ["base_port", "must be int"]),
    ("name = ", ["not valid TOML"]),
])
def test_bad_configs_name_file_key_and_problem(tmp_path: Path, text: str, fragments: list[str]) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message, message
