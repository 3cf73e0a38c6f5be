"""`handlesim network`: the network model's regions and one-way delays, from a file or a running topology."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..core.netmodel import NetworkModel
from ..topology.config import ConfigError, load_config, load_network
from .app import fail, json_option, main, running_state, state_dir_option


@main.command("network")
@click.option("--config", "config_path", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="A topology file with a [network] section (default: the running topology's model).")
@click.option("--network", "network_file", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="A file holding only a [network] table (e.g. configs/network-china.toml).")
@state_dir_option
@json_option
def network_cmd(config_path: Path | None, network_file: Path | None, state_dir: Path, as_json: bool) -> None:
    """Show the network model: regions, where clients sit, and the one-way delay between every pair of regions."""
    model = _model(config_path, network_file, state_dir)
    matrix = model.delay_matrix_ms()
    if as_json:
        click.echo(json.dumps({"client_region": model.client_region, "one_way_ms": matrix,
                               "model": model.to_dict()}, indent=1, ensure_ascii=False))
        return
    names = list(matrix)
    width = max(len(n) for n in names) + 2
    click.echo(f"one-way base delay in ms (jitter and loss per link in --json); clients sit in {model.client_region}")
    click.echo(" " * width + "".join(f"{n[:9]:>10}" for n in names))
    for source in names:
        click.echo(f"{source:<{width}}" + "".join(f"{matrix[source][target]:>10.2f}" for target in names))


def _model(config_path: Path | None, network_file: Path | None, state_dir: Path) -> NetworkModel:
    try:
        if network_file is not None:
            return load_network(network_file).model(0)
        if config_path is not None:
            config = load_config(config_path)
            if config.network is None:
                fail(f"{config_path} has no [network] section (give --network FILE)")
            assert config.network is not None
            return config.network.model(config.seed)
    except ConfigError as exc:
        fail(str(exc))
    model = running_state(state_dir).network_model
    if model is None:
        fail(f"the topology running in {state_dir} uses no network model (loopback)")
    return model
