"""A state dir as a user meets it with real `handlesim up` processes: a killed `up` reported as not running by every
command, `down`, `clean`, `up --reset`, refusing another topology's stores, no debris after a failed `up`, port
conflicts found before boot, one-line errors for bad overrides, and Ctrl-C during boot."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from ..support.paths import CONFIGS, ROOT
from ..support.processes import HANDLESIM, handlesim, up_process

SMALL = str(CONFIGS / "small.toml")


def stateful_commands(state: Path, out: Path) -> list[list[str]]:
    """Every command that reads a state dir."""
    where = ["--state-dir", str(state)]
    return [
        ["resolve", "88.101.1001/PUMP-000001", *where],
        ["register", "88.101.1001/STALE-1", "--value", "URL=https://example.cn/x", *where],
        ["delete", "88.101.1001/STALE-1", *where],
        ["check", "88.101.1001/PUMP-000001", *where],
        ["stats", *where],
        ["fault", "status", *where],
        ["web", "--port", "0", *where],
        ["bench", "--duration", "0.2", "--warmup", "0", "--no-baseline", "--out", str(out), *where],
        ["topology", *where],
        ["network", *where],
        ["demo", *where],
    ]


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


def other_seed(tmp_path: Path, seed: int = 8) -> Path:
    """small.toml (seed 7) with another seed: another topology, as far as its stores go."""
    text = (CONFIGS / "small.toml").read_text(encoding="utf-8")
    changed = "\n".join(f"seed = {seed}" if line.startswith("seed = ") else line for line in text.splitlines())
    assert changed != text
    path = tmp_path / f"small-seed{seed}.toml"
    path.write_text(changed + "\n", encoding="utf-8")
    return path


@pytest.mark.slow
def test_a_killed_up_is_not_running_for_every_command_then_down_reset_and_clean(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with up_process("--config", SMALL, "--base-port", "0", "--state-dir", str(state)) as up:
        busy = handlesim("clean", "--state-dir", str(state))
        assert "is running" in one_line_error(busy) and f"pid {up.proc.pid}" in busy.stderr
        up.proc.kill()
        up.proc.wait(timeout=20)
    assert (state / "topology.json").exists(), "SIGKILL leaves topology.json behind"

    for command in stateful_commands(state, tmp_path / "bench"):
        line = one_line_error(handlesim(*command))
        assert f"no running topology in {state}" in line and "not stopped cleanly" in line, (command, line)
        assert f"handlesim clean --state-dir {state}" in line, command

    down = handlesim("down", "--state-dir", str(state))
    assert down.returncode == 0 and "nothing running" in down.stdout and "not stopped cleanly" in down.stdout

    refused = handlesim("up", "--config", str(other_seed(tmp_path)), "--base-port", "0", "--state-dir", str(state))
    line = one_line_error(refused)
    assert "'small' (seed 7)" in line and "'small' (seed 8)" in line and "--reset" in line
    assert json.loads((state / "stores" / "owner.json").read_text())["seed"] == 7, "the refusal changed nothing"

    with up_process("--config", str(other_seed(tmp_path)), "--base-port", "0", "--state-dir", str(state),
                    "--reset") as again:
        assert json.loads((state / "stores" / "owner.json").read_text())["seed"] == 8
        stopped = handlesim("down", "--state-dir", str(state))
        assert stopped.returncode == 0 and f"stopped the topology in {state} (pid {again.proc.pid})" in stopped.stdout
        assert again.proc.wait(timeout=20) == 0
    assert not (state / "topology.json").exists(), "down is a clean stop"

    cleaned = handlesim("clean", "--state-dir", str(state))
    assert cleaned.returncode == 0 and "removed" in cleaned.stdout
    assert not state.exists()
    assert "nothing to clean" in handlesim("clean", "--state-dir", str(state)).stdout


@contextmanager
def taken_port() -> Iterator[int]:
    """A loopback port something else listens on."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


def test_port_conflicts_are_found_before_boot_and_leave_nothing(tmp_path: Path) -> None:
    """(Before: a node port conflict left the state dir with up.lock and fresh stores; a taken --web-port or
    --metrics-port was found only after every node had booted.)"""
    state = tmp_path / "state"
    with taken_port() as port:
        # --no-native: an ephemeral port above 55535 would put the native ports (base + 10000) past 65535
        for options, expected in ((["--base-port", str(port), "--no-native"], f"cannot listen on 127.0.0.1:{port}"),
                                  (["--base-port", "0", "--web", "--web-port", str(port)], "--web-port"),
                                  (["--base-port", "0", "--metrics-port", str(port)], "--metrics-port")):
            failed = handlesim("up", "--config", SMALL, "--state-dir", str(state), *options)
            assert expected in one_line_error(failed), options
            assert "starting nodes" not in failed.stderr, "found before boot"
            assert not state.exists(), f"{options} left {sorted(p.name for p in state.rglob('*'))}"
        state.mkdir()
        (state / "notes.txt").write_text("mine")
        one_line_error(handlesim("up", "--config", SMALL, "--state-dir", str(state), "--base-port", str(port)))
        assert [p.name for p in state.iterdir()] == ["notes.txt"]


def test_bad_overrides_are_one_line_errors(tmp_path: Path) -> None:
    state = tmp_path / "state"
    for options, expected in ((["--base-port", "99999"], "base_port: 99999 is not a usable base port"),
                              (["--identifiers", "-1"], "identifiers_per_enterprise (override): must be at least 0")):
        assert expected in one_line_error(handlesim("up", "--config", SMALL, "--state-dir", str(state), *options))
    assert not state.exists()


def test_ctrl_c_during_boot_stops_quietly_and_leaves_nothing(tmp_path: Path) -> None:
    """(Before: server tracebacks from connections cut mid-request, `delegating prefixes: done` for a phase that
    was not, click's "Aborted!", and up.lock left in a new state dir.)"""
    state = tmp_path / "state"
    proc = subprocess.Popen([*HANDLESIM, "up", "--config", str(CONFIGS / "plan.toml"), "--base-port", "0",
                             "--store", "memory", "--identifiers", "1", "--state-dir", str(state)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    seen: list[str] = []
    deadline = time.monotonic() + 60
    for line in proc.stderr:  # without a terminal, progress prints one line as each phase ends
        seen.append(line)
        if "starting nodes: done" in line or time.monotonic() > deadline:
            break
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    err = "".join(seen) + err
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "Aborted" not in err and "ready:" not in out
    done = [line.split(":")[0].strip() for line in err.splitlines() if line.endswith(": done")]
    cut = [re.fullmatch(r"  (.+): interrupted at (\d+)/(\d+)", line) for line in err.splitlines()]
    interrupted = [m for m in cut if m is not None]
    assert len(interrupted) <= 1, err  # none when the signal fell between two phases
    for phase in interrupted:
        assert phase[1] not in done and int(phase[2]) < int(phase[3]), err
    assert "stopped while starting" in err
    assert not state.exists()
