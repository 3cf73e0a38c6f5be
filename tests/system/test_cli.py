"""The CLI against a real `handlesim up` process on ephemeral loopback ports."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from handlesim.cli import main

from ..support.processes import HANDLESIM, ROOT, up_process


def handlesim(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([*HANDLESIM, *args], capture_output=True, text=True, timeout=60, cwd=ROOT)
    if check and result.returncode != 0:
        raise AssertionError(f"handlesim {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    state = tmp_path_factory.mktemp("cli") / "state"
    with up_process("--config", "configs/small.toml", "--base-port", "0", "--state-dir", str(state)) as up:
        yield state
    assert up.proc.returncode == 0
    assert not (state / "topology.json").exists(), "a clean stop removes topology.json"


def test_topology_lists_tiers_and_examples(running: Path) -> None:
    out = handlesim("topology", "--state-dir", str(running)).stdout
    assert "root" in out and "secondary" in out and "enterprise" in out and "handlesim resolve" in out
    data = json.loads(handlesim("topology", "--state-dir", str(running), "--json").stdout)
    assert len(data["nodes"]) == 11 and data["examples"]  # 1 root, 3 secondaries, 6 enterprises, 1 resolver


def test_resolve_trace_walks_three_tiers(running: Path) -> None:
    example = json.loads(handlesim("topology", "--state-dir", str(running), "--json").stdout)["examples"][0]
    out = handlesim("resolve", "--trace", "--state-dir", str(running), example).stdout
    lines = [line for line in out.splitlines() if line.strip().startswith("hop")]
    assert len(lines) == 3
    assert "root-qingdao" in lines[0] and "303" in lines[0] and "prefix referral" in lines[0]
    assert "sec-" in lines[1] and "ent-" in lines[2]
    assert "https://id.example.cn/" in out


def test_register_resolve_delete_round_trip(running: Path) -> None:
    handle = "88.101.1001/CLI-TEST-1"
    out = handlesim("register", "--state-dir", str(running), handle, "--value", "URL=https://id.example.cn/cli",
                    "--value", "EMAIL=ops@example.cn").stdout
    assert "ok" in out
    again = handlesim("register", "--state-dir", str(running), handle, "--value", "URL=x", check=False)
    assert again.returncode != 0 and "101" in again.stderr
    data = json.loads(handlesim("resolve", "--json", "--state-dir", str(running), handle).stdout)
    assert data["responseCode"] == 1
    assert {v["type"] for v in data["values"]} >= {"URL", "EMAIL", "HS_ADMIN"}
    handlesim("delete", "--state-dir", str(running), handle)
    gone = handlesim("resolve", "--json", "--state-dir", str(running), handle, check=False)
    assert gone.returncode == 1 and json.loads(gone.stdout)["responseCode"] == 100


def resolved_urls(running: Path, handle: str, *extra: str) -> list[str] | int:
    """The URL values the CLI resolves for `handle`, or the response code when it resolves nothing."""
    data = json.loads(handlesim("resolve", "--json", "--state-dir", str(running), *extra, handle, check=False).stdout)
    return [v["data"]["value"] for v in data["values"] if v["type"] == "URL"] if data["responseCode"] == 1 \
        else data["responseCode"]


@pytest.mark.slow
def test_dot_segments_and_escapes_in_a_suffix_address_exactly_that_handle(running: Path) -> None:
    seeded = resolved_urls(running, "88.101.1001/PUMP-000001")
    assert seeded == ["https://id.example.cn/88.101.1001/PUMP-000001"]
    for handle in ("88.101.1001/a/../PUMP-000001", "88.101.1001/a%2Fb"):
        handlesim("register", "--state-dir", str(running), handle, "--value", f"URL=https://example.cn/{handle}")
        for via in ((), ("--via", "resolver")):
            assert resolved_urls(running, handle, *via) == [f"https://example.cn/{handle}"], (handle, via)
    assert resolved_urls(running, "88.101.1001/PUMP-000001") == seeded, "registering a/../PUMP-000001 left it alone"
    assert resolved_urls(running, "88.101.1001/a/b") == 100, "a literal %2F is not a slash"
    for via in ((), ("--via", "resolver")):
        assert resolved_urls(running, "88.101.1001/./PUMP-000001", *via) == 100, via


def test_bad_input_is_explained(running: Path) -> None:
    bad = handlesim("resolve", "--state-dir", str(running), "88..1/x", check=False)
    assert bad.returncode != 0 and "102" in bad.stderr and "empty segment" in bad.stderr
    value = handlesim("register", "--state-dir", str(running), "88.101.1001/Z", "--value", "nonsense", check=False)
    assert value.returncode != 0 and "TYPE=DATA" in value.stderr
    stranger = handlesim("register", "--state-dir", str(running), "88.101.1001/Z", "--value", "URL=x",
                         "--as", "300:0.NA/88.999", check=False)
    assert stranger.returncode != 0 and "no credentials" in stranger.stderr


@pytest.mark.slow
def test_non_success_answers_exit_1_in_text_and_json(running: Path) -> None:
    """Issue item 2: a script reading --json must be able to trust the exit status as much as a person reading text."""
    state = ("--state-dir", str(running))
    for mode in ((), ("--json",)):
        exists = handlesim("register", *state, "88.101.1001/PUMP-000001", "--value", "URL=x", *mode, check=False)
        missing = handlesim("delete", *state, "88.101.1001/NO-SUCH-HANDLE", *mode, check=False)
        foreign = handlesim("register", *state, "88.101.1001/FOREIGN", "--value", "URL=x",
                            "--as", "300:0.NA/88.101.1002", *mode, check=False)
        for result, code in ((exists, 101), (missing, 100), (foreign, 401)):
            assert result.returncode == 1, (mode, code, result.stdout, result.stderr)
            if mode:
                assert json.loads(result.stdout)["responseCode"] == code
            else:
                assert f": {code} " in result.stderr and result.stdout == ""
        unheld = handlesim("check", *state, "88.101.1001/NO-SUCH-HANDLE", *mode, check=False)
        assert unheld.returncode == 1, (mode, unheld.stdout)
        held = handlesim("check", *state, "88.101.1001/PUMP-000001", *mode, check=False)
        assert held.returncode == 0, (mode, held.stdout)
        if mode:
            assert json.loads(unheld.stdout)["verdict"] == "not held" and not json.loads(unheld.stdout)["ok"]
            assert json.loads(held.stdout)["verdict"] == "agree" and json.loads(held.stdout)["ok"]
        else:
            assert "no replica holds it" in unheld.stdout and "agree" not in unheld.stdout
    gone = handlesim("resolve", "--json", *state, "88.101.1001/FOREIGN", check=False)
    assert gone.returncode == 1 and json.loads(gone.stdout)["responseCode"] == 100, "the refused write changed nothing"


def test_mistakes_on_the_command_line_are_one_line_errors(running: Path, tmp_path: Path) -> None:
    """Issue item 4: no traceback for a malformed --as, a key file in a missing folder, or a broken --config."""
    garbage = handlesim("register", "--state-dir", str(running), "88.101.1001/Z", "--value", "URL=x",
                        "--as", "garbage", check=False)
    assert garbage.returncode == 2 and "Invalid value for '--as'" in garbage.stderr
    assert "INDEX:HANDLE" in garbage.stderr
    key = tmp_path / "missing" / "key.pem"
    keygen = handlesim("keygen", str(key), check=False)
    assert keygen.returncode == 1 and "does not exist" in keygen.stderr and not key.parent.exists()
    broken = tmp_path / "broken.toml"
    broken.write_text('name = "x"\n[roots\n')
    bench = handlesim("bench", "--config", str(broken), "--duration", "1", check=False)
    assert bench.returncode == 1 and "broken.toml" in bench.stderr and "not valid TOML" in bench.stderr
    for result in (garbage, keygen, bench):
        assert "Traceback" not in result.stderr
        assert len([line for line in result.stderr.splitlines() if line.startswith("Error:")]) == 1


def test_the_command_group_turns_our_errors_into_one_line() -> None:
    """Whatever command lets a Handle error, a config error or a launch error through ends with its message."""
    import click

    from handlesim.cli.app import HandlesimGroup
    from handlesim.core.errors import InvalidHandle
    from handlesim.topology.config import ConfigError
    from handlesim.topology.running import LaunchError

    group = HandlesimGroup()
    for name, error in (("handle", InvalidHandle("prefix '88..1' has an empty segment")),
                        ("config", ConfigError("t.toml: base_port: must be at least 0")),
                        ("launch", LaunchError("node r cannot listen on 127.0.0.1:1"))):
        def raising(error: Exception = error) -> None:
            raise error
        group.add_command(click.Command(name, callback=raising))
    for name, words in (("handle", "empty segment"), ("config", "base_port"), ("launch", "cannot listen")):
        result = CliRunner().invoke(group, [name])
        assert result.exit_code == 1 and result.output.startswith("Error: ") and words in result.output, name
        assert "Traceback" not in result.output and len(result.output.splitlines()) == 1


@pytest.mark.parametrize("option, value", [
    ("--rate", "0"), ("--rate", "-5"), ("--duration", "0"), ("--duration", "-1"), ("--warmup", "-1"),
    ("--connections", "0"), ("--processes", "0"), ("--keys", "-1"), ("--zipf", "0"), ("--zipf", "-1"),
    ("--write-fraction", "1.5"), ("--write-fraction", "-0.1"), ("--timeout", "0"), ("--p99-bound", "0"),
    ("--error-bound", "2"), ("--max-tries", "0"), ("--identifiers", "0"), ("--fail-on", "p99>10"),
    ("--fail-on", "speed>1"), ("--fail-on", "errors>2"), ("--fail-on", "p99 10ms"), ("--fail-on", ","),
])
def test_bench_options_out_of_range_are_refused_before_anything_runs(option: str, value: str, tmp_path: Path) -> None:
    """Issue item 3: these hung, raised ZeroDivisionError or were silently accepted. The state dir does not exist:
    the refusal comes from reading the command line, before any topology is looked for."""
    result = CliRunner().invoke(main, ["bench", option, value, "--state-dir", str(tmp_path / "none")])
    assert result.exit_code == 2, result.output
    assert f"Invalid value for '{option}'" in result.output and "Traceback" not in result.output


def test_second_up_on_the_same_state_dir_is_refused(running: Path) -> None:
    second = handlesim("up", "--config", "configs/small.toml", "--base-port", "0", "--state-dir", str(running),
                       check=False)
    assert second.returncode != 0 and "another `handlesim up` is running" in second.stderr


def test_no_topology_is_a_clear_error(tmp_path: Path) -> None:
    result = handlesim("resolve", "--state-dir", str(tmp_path), "88.101/x", check=False)
    assert result.returncode != 0 and "no running topology" in result.stderr


def test_validate(tmp_path: Path) -> None:
    assert "1000 enterprise" in handlesim("validate", "configs/plan.toml").stdout
    broken = tmp_path / "bad.toml"
    broken.write_text('name = "x"\nhost = "10.0.0.1"\n[[roots]]\nid = "r"\n')
    result = handlesim("validate", str(broken), check=False)
    assert result.returncode != 0 and "bad.toml" in result.stderr and "host" in result.stderr
    assert "loopback" in result.stderr


def test_port_conflict_is_a_clear_error(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # REST only: an ephemeral port can be so high that the native ports (+10000) would not fit
        result = handlesim("up", "--config", "configs/small.toml", "--base-port", str(port), "--no-native",
                           "--state-dir", str(tmp_path / "s"), check=False)
    assert result.returncode != 0 and f"127.0.0.1:{port}" in result.stderr and "base_port" in result.stderr
    assert not os.path.exists(tmp_path / "s"), "a failed up leaves no debris"


def test_a_taken_native_port_is_a_clear_error(tmp_path: Path) -> None:
    import socket

    from handlesim.topology.ports import port_taken

    for _ in range(50):  # a UDP port whose REST range (10000 below, 11 nodes) is free: the root's native port
        taken = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        taken.bind(("127.0.0.1", 0))
        native = taken.getsockname()[1]
        # ... and whose TCP twin is free too, so the UDP socket is the one conflict `up` meets
        if native - 10_000 >= 1024 and not port_taken("127.0.0.1", native) \
                and not any(port_taken("127.0.0.1", native - 10_000 + i) for i in range(11)):
            break
        taken.close()
    else:
        pytest.skip("no free port range found on this busy machine")
    with taken:
        result = handlesim("up", "--config", "configs/small.toml", "--base-port", str(native - 10_000),
                           "--state-dir", str(tmp_path / "s"), check=False)
    assert result.returncode != 0 and f"native protocol on UDP 127.0.0.1:{native}" in result.stderr
    assert "--no-native" in result.stderr
    assert not os.path.exists(tmp_path / "s"), "a failed up leaves no debris"

    high = handlesim("up", "--config", "configs/small.toml", "--base-port", "60000", "--state-dir",
                     str(tmp_path / "s"), check=False)
    assert high.returncode != 0 and "past 65535" in high.stderr and "--no-native" in high.stderr


def test_resolve_via_resolver_shows_walk_then_cache(running: Path) -> None:
    example = json.loads(handlesim("topology", "--state-dir", str(running), "--json").stdout)["examples"][1]
    first = handlesim("resolve", "--via", "resolver", "--trace", "--state-dir", str(running), example).stdout
    assert "its walk" in first and first.count(" hop ") == 3 and "3 upstream hops" in first
    second = handlesim("resolve", "--via", "resolver", "--trace", "--state-dir", str(running), example).stdout
    assert "answered from its cache" in second and "0 upstream hops" in second
    assert "https://id.example.cn/" in second
