"""The network model (pure) and its configuration: derived delays, overrides, jitter, loss, validation."""

from __future__ import annotations

import random
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from handlesim.core.netmodel import (
    LinkOverride,
    NetworkModel,
    Region,
    build_model,
    derived_delay,
    draw_jitter,
    great_circle_km,
)
from handlesim.topology.config import ConfigError, load_config, load_network, parse_config

from ..support.paths import CONFIGS
from ..support.statefiles import a_node, a_state, running_in

QINGDAO = Region("Qingdao", 36.07, 120.38)
BEIJING = Region("Beijing", 39.90, 116.40)
GUANGZHOU = Region("Guangzhou", 23.13, 113.26)


def model(**overrides: Any) -> NetworkModel:
    options: dict[str, Any] = {"base": 0.001, "route_factor": 1.8, "local": 0.00025, "jitter": "none",
                               "jitter_scale": 0.0, "loss": 0.0, "overrides": [], "client_region": "", "seed": 1}
    options.update(overrides)
    return build_model([QINGDAO, BEIJING, GUANGZHOU], **options)


def test_distances_and_derived_delays_are_plausible() -> None:
    assert 540 < great_circle_km(QINGDAO, BEIJING) < 570  # Qingdao-Beijing is about 550 km
    one_way = derived_delay(QINGDAO, BEIJING, base=0.001, route_factor=1.8, local=0.00025)
    assert 0.0055 < one_way < 0.0065  # 1 ms + 550 km x 1.8 at 200 km/ms
    m = model()
    assert m.link("Qingdao", "Guangzhou").delay > m.link("Qingdao", "Beijing").delay  # farther is slower
    assert m.link("Beijing", "Qingdao").delay == m.link("Qingdao", "Beijing").delay
    assert m.link("Qingdao", "Qingdao").delay == 0.00025
    assert m.link("", "") == m.link("Qingdao", "Qingdao")  # no region: the default (first) one


def test_explicit_links_override_both_directions_and_unlocated_regions_need_them() -> None:
    m = model(overrides=[LinkOverride("Qingdao", "Guangzhou", delay=0.030, loss=0.5)])
    assert m.link("Guangzhou", "Qingdao").delay == 0.030 and m.link("Guangzhou", "Qingdao").loss == 0.5
    assert m.link("Qingdao", "Beijing").loss == 0.0
    with pytest.raises(ValueError, match="Lhasa"):
        build_model([QINGDAO, Region("Lhasa")], base=0.001, route_factor=1.8, local=0.0, jitter="none",
                    jitter_scale=0.0, loss=0.0, overrides=[], client_region="", seed=0)
    explicit = build_model([QINGDAO, Region("Lhasa")], base=0.001, route_factor=1.8, local=0.0, jitter="none",
                           jitter_scale=0.0, loss=0.0, overrides=[LinkOverride("Qingdao", "Lhasa", delay=0.02)],
                           client_region="Lhasa", seed=0)
    assert explicit.link("Lhasa", "Qingdao").delay == 0.02 and explicit.client_region == "Lhasa"


def test_loss_rate_and_determinism_for_a_seed() -> None:
    m = model(loss=0.1)
    rng = random.Random(42)
    lost = sum(m.sample("Qingdao", "Beijing", rng) is None for _ in range(20_000))
    assert 1700 < lost < 2300  # 10 % +- 7 standard deviations
    sequence_a = [m.sample("Qingdao", "Guangzhou", random.Random(3)) for _ in range(3)]
    sequence_b = [m.sample("Qingdao", "Guangzhou", random.Random(3)) for _ in range(3)]
    assert sequence_a == sequence_b


@pytest.mark.parametrize(("name", "mean"), [("uniform", 0.5), ("exponential", 1.0), ("normal", 0.0), ("none", 0.0)])
def test_jitter_distributions_have_their_scale(name: str, mean: float) -> None:
    rng = random.Random(5)
    draws = [draw_jitter(name, 0.002, rng) for _ in range(20_000)]
    assert abs(sum(draws) / len(draws) - mean * 0.002) < 0.0001
    if name in ("uniform", "exponential"):
        assert min(draws) >= 0
    with pytest.raises(ValueError, match="pareto"):
        draw_jitter("pareto", 1.0, rng)


coordinates = st.tuples(st.floats(-60, 60), st.floats(-179, 179))


@given(coordinates, coordinates, st.sampled_from(["none", "uniform", "normal", "exponential"]),
       st.integers(0, 2**32))
def test_samples_are_never_negative_and_links_symmetric(a: tuple[float, float], b: tuple[float, float],
                                                         jitter: str, seed: int) -> None:
    m = build_model([Region("A", *a), Region("B", *b)], base=0.001, route_factor=1.5, local=0.0002, jitter=jitter,
                    jitter_scale=0.003, loss=0.0, overrides=[], client_region="B", seed=seed)
    assert m.link("A", "B").delay == m.link("B", "A").delay >= 0.001
    rng = random.Random(seed)
    for _ in range(5):
        sample = m.sample("A", "B", rng)
        assert sample is not None and sample >= 0


def test_model_survives_a_round_trip_through_plain_data() -> None:
    m = model(jitter="exponential", jitter_scale=0.0003, loss=0.01, client_region="Beijing")
    again = NetworkModel.from_dict(m.to_dict())
    assert again.client_region == "Beijing" and set(again.regions) == set(m.regions)
    for key, link in m.links.items():
        assert again.links[key].delay == pytest.approx(link.delay, abs=1e-6)
        assert (again.links[key].jitter, again.links[key].loss) == (link.jitter, link.loss)


# -- configuration ---------------------------------------------------------------------------------------------------

def small_data() -> dict[str, Any]:
    return tomllib.loads((CONFIGS / "small.toml").read_text(encoding="utf-8"))


def test_shipped_configs_carry_usable_models() -> None:
    small = load_config(CONFIGS / "small.toml")
    assert small.network is not None and not small.faults
    m = small.network.model(small.seed)
    assert m.client_region == "Shanghai" and 0.005 < m.link("Shanghai", "Qingdao").delay < 0.007
    china = load_network(CONFIGS / "network-china.toml")
    plan = load_config(CONFIGS / "plan.toml").with_network(china, faults=True)
    assert plan.faults and plan.network is china
    national = china.model(plan.seed)
    assert national.link("Qingdao", "Chongqing").jitter_scale == pytest.approx(0.001)
    assert 0.012 < national.link("Qingdao", "Guangzhou").delay < 0.02


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d["network"].update(jitter="pareto"), "network.jitter: 'pareto' is not a jitter distribution"),
    (lambda d: d["network"].update(loss=1.0), "network.loss: must be below 1"),
    (lambda d: d["network"].update(client_region="Lhasa"), "network.client_region: 'Lhasa' is not a region"),
    (lambda d: d["network"]["regions"].pop(1), "network.regions: nodes sit in Beijing"),
    (lambda d: d["network"]["regions"][0].pop("latitude"), "give both latitude and longitude"),
    (lambda d: d["network"].update(links=[{"between": ["Qingdao", "Mars"]}]), "'Mars' is not a region"),
    (lambda d: d["network"].update(links=[{"between": ["Qingdao"]}]), "must be two region names"),
    (lambda d: d["network"].update(lag=1), "network.lag: unknown key"),
    (lambda d: d.update(faults="yes"), "faults: must be true or false"),
])
def test_network_errors_name_the_key(change: Any, message: str) -> None:
    data = small_data()
    change(data)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_config(data, "small.toml")


def test_a_region_without_coordinates_needs_links(tmp_path: Path) -> None:
    data = small_data()
    data["network"]["regions"].append({"name": "Lhasa"})
    with pytest.raises(ConfigError, match="network.links: no delay for Qingdao -> Lhasa"):
        parse_config(data, "small.toml")
    data["network"]["links"] = [{"between": ["Lhasa", other], "delay_ms": 25.0}
                                for other in ("Qingdao", "Beijing", "Shanghai", "Guangzhou")]
    config = parse_config(data, "small.toml")
    assert config.network is not None
    assert config.network.model(1).link("Beijing", "Lhasa").delay == 0.025
    network_file = tmp_path / "net.toml"
    network_file.write_text('[network]\n[[network.regions]]\nname = "Qingdao"\nlatitude = 36.0\nlongitude = 120.0\n')
    with pytest.raises(ConfigError, match="region: Beijing not in the network model"):
        load_config(CONFIGS / "small.toml").with_network(load_network(network_file))
    network_file.write_text('name = "x"\n')
    with pytest.raises(ConfigError, match="only a \\[network\\] table"):
        load_network(network_file)


def test_model_mode_needs_a_model_and_clients_follow_the_topology() -> None:
    from handlesim.topology.network import NetModeError, client_path, default_net_mode, model_for
    from handlesim.topology.plan import build_plan

    bare = build_plan(load_config(CONFIGS / "plan.toml"))
    assert default_net_mode(bare) == "loopback" and model_for(bare, "loopback") is None
    with pytest.raises(NetModeError, match="needs a \\[network\\] section"):
        model_for(bare, "model")
    small = build_plan(load_config(CONFIGS / "small.toml"))
    assert default_net_mode(small) == "model"
    described = a_state(net="model", network=model_for(small, "model").to_dict(),  # type: ignore[union-attr]
                        nodes=(a_node(port=1, region="Beijing"),))
    path = client_path(described, None, timeout=1.0)
    assert path is not None and path.model is not None and path.region == "Shanghai"
    assert path.region_of("127.0.0.1", 1) == "Beijing" and path.header == "client Shanghai"
    assert client_path(described, "loopback", timeout=1.0) is None  # no model, no faults: plain loopback
    assert client_path(described, None, region="Beijing", timeout=1.0).region == "Beijing"  # type: ignore[union-attr]
    with pytest.raises(NetModeError, match="no region 'Lhasa'"):
        client_path(described, None, region="Lhasa", timeout=1.0)
    with pytest.raises(NetModeError, match="has no network model"):
        client_path(a_state(nodes=()), "model", timeout=1.0)


def test_fault_commands_explain_a_topology_without_fault_injection(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from handlesim.cli import main
    from handlesim.topology.state import write_state

    write_state(a_state(tmp_path))
    with running_in(tmp_path):
        result = CliRunner().invoke(main, ["fault", "kill", "root-qingdao", "--state-dir", str(tmp_path)])
    assert result.exit_code != 0 and "fault injection off" in result.output and "--faults" in result.output


def test_network_command_prints_the_delay_matrix() -> None:
    import json

    from click.testing import CliRunner

    from handlesim.cli import main

    runner = CliRunner()
    shown = runner.invoke(main, ["network", "--config", str(CONFIGS / "small.toml")])
    assert shown.exit_code == 0 and "clients sit in Shanghai" in shown.output
    row = next(line for line in shown.output.splitlines() if line.startswith("Qingdao"))
    assert row.split()[1:] == ["0.25", "5.96", "5.93", "15.35"]
    data = json.loads(runner.invoke(main, ["network", "--json", "--network",
                                           str(CONFIGS / "network-china.toml")]).output)
    assert data["one_way_ms"]["Beijing"]["Guangzhou"] == 18.0 and len(data["one_way_ms"]) == 12
    missing = runner.invoke(main, ["network", "--config", str(CONFIGS / "plan.toml")])
    assert missing.exit_code != 0 and "has no [network] section" in missing.output
