"""topology.json through `TopologyState` (round trip, versions, wrong shapes: one-line errors), and the state dir's
rules: running means locked, stale files, the stores' owner, clean and the cleanup after a failed `up`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from handlesim.cli import main
from handlesim.topology.plan import Role
from handlesim.topology.state import FORMAT_VERSION, StateError, TlsEntry, load_state, parse_state, write_state
from handlesim.topology.statedir import (
    LOCK_FILE,
    StateDirError,
    StateDirLock,
    StateDirSnapshot,
    StoresOwner,
    claim_stores,
    holder_pid,
    is_running,
    remove_state,
)

from ..support.statefiles import a_node, a_state, running_in


def test_a_written_state_reads_back_the_same(tmp_path: Path) -> None:
    nodes = (a_node(), a_node("ent-88.101.1001", Role.ENTERPRISE, 20001, prefix="88.101.1001", identifiers=3,
                              mirror_of=None, region="Beijing"))
    state = a_state(tmp_path, nodes, tls=TlsEntry(tmp_path / "tls" / "ca.pem"), examples=("88.101.1001/X",))
    with running_in(tmp_path):
        write_state(state)
        assert load_state(tmp_path) == state
    on_disk = json.loads((tmp_path / "topology.json").read_text())
    assert on_disk["version"] == FORMAT_VERSION and on_disk["nodes"][1]["role"] == "enterprise"
    assert on_disk["tls"] == {"ca": str(tmp_path / "tls" / "ca.pem")}
    assert state.with_role(Role.ENTERPRISE) == [nodes[1]] and state.endpoints[("127.0.0.1", 20001)] == "Beijing"


def test_a_topology_json_without_a_live_up_is_stale(tmp_path: Path) -> None:
    with pytest.raises(StateError, match="start one with"):
        load_state(tmp_path)
    write_state(a_state(tmp_path))  # as a SIGKILLed `up` leaves it: the file, but no lock holder
    with pytest.raises(StateError) as stale:
        load_state(tmp_path)
    assert "no running topology in" in str(stale.value) and "not stopped cleanly" in str(stale.value)
    assert f"handlesim clean --state-dir {tmp_path}" in str(stale.value)
    with running_in(tmp_path):
        assert is_running(tmp_path) and load_state(tmp_path).name == "tiny"
    assert not is_running(tmp_path)


@pytest.mark.parametrize(("change", "expected"), [
    (lambda d: d.pop("version"), "written by an older handlesim (format version 1"),
    (lambda d: d.update(version=99), "format version 99"),
    (lambda d: d["nodes"][0].update(port="20000"), "nodes[0].port: Expected `int`, got `str`"),
    (lambda d: d["nodes"][0].update(role="boss"), "nodes[0].role: Invalid enum value 'boss'"),
    (lambda d: d.pop("roots"), "missing required field `roots`"),
    (lambda d: d.update(nodes={"a": 1}), "nodes: Expected `array`, got `object`"),
    (lambda d: d.update(network={"regions": []}), "network: not a network model"),
])
def test_a_file_of_the_wrong_shape_is_one_line_naming_file_and_key(tmp_path: Path, change: object,
                                                                   expected: str) -> None:
    data = a_state(tmp_path).to_data()
    change(data)  # type: ignore[operator]
    with pytest.raises(StateError) as refused:
        parse_state(json.dumps(data).encode(), tmp_path / "topology.json")
    message = str(refused.value)
    assert message.startswith(f"cannot use {tmp_path / 'topology.json'}: ") and expected in message
    assert "\n" not in message


def test_not_json_and_not_an_object(tmp_path: Path) -> None:
    for raw, expected in ((b"{nope", "not JSON"), (b"[]", "expected a JSON object, not list")):
        with pytest.raises(StateError, match=expected):
            parse_state(raw, tmp_path / "topology.json")


def test_commands_answer_a_broken_or_stale_file_in_one_line(tmp_path: Path) -> None:
    """(Before: a topology.json of the wrong shape was a KeyError traceback; a stale one sent commands to dead
    ports.)"""
    runner = CliRunner()
    (tmp_path / "topology.json").write_text('{"version": 2, "nodes": [{"id": 1}]}')
    with running_in(tmp_path):
        broken = runner.invoke(main, ["topology", "--state-dir", str(tmp_path)])
    assert broken.exit_code == 1 and isinstance(broken.exception, SystemExit)
    assert broken.output.count("\n") == 1 and "topology.json: " in broken.output
    write_state(a_state(tmp_path))
    stale = runner.invoke(main, ["resolve", "--state-dir", str(tmp_path), "88.101.1001/X"])
    assert stale.exit_code == 1 and "not stopped cleanly" in stale.output


def test_the_lock_names_its_holder_and_frees_with_it(tmp_path: Path) -> None:
    with running_in(tmp_path):
        assert holder_pid(tmp_path) is not None
        with pytest.raises(StateDirError, match=r"another `handlesim up` is running on .* \(pid \d+\)"):
            StateDirLock.acquire(tmp_path, retry_s=0.0)
    StateDirLock.acquire(tmp_path, retry_s=0.0).release()


def test_stores_belong_to_one_topology(tmp_path: Path) -> None:
    small = StoresOwner("small", 2022)
    claim_stores(tmp_path, small)
    claim_stores(tmp_path, small)  # the same topology again: fine
    claim_stores(tmp_path, StoresOwner("small", 7))  # no store files yet: nothing to protect
    (tmp_path / "stores" / "root-qingdao.sqlite").write_bytes(b"")
    with pytest.raises(StateDirError) as refused:
        claim_stores(tmp_path, small)
    assert "'small' (seed 7)" in str(refused.value) and "'small' (seed 2022)" in str(refused.value)
    assert "--reset" in str(refused.value)


def test_clean_removes_only_what_up_writes(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    write_state(a_state(state_dir))
    for name in ("credentials.json", LOCK_FILE, "prometheus-nodes.json", "stores/a.sqlite", "stores/a.sqlite-wal",
                 "stores/owner.json", "tls/ca.pem", "notes.txt", "stores/backup.tar"):
        (state_dir / name).parent.mkdir(exist_ok=True)
        (state_dir / name).write_text("x")
    removed = remove_state(state_dir)
    assert state_dir / "topology.json" in removed and state_dir / "tls" in removed
    assert sorted(p.relative_to(state_dir).as_posix() for p in state_dir.rglob("*")) == \
        ["notes.txt", "stores", "stores/backup.tar"]


def test_a_failed_up_takes_away_only_what_it_added(tmp_path: Path) -> None:
    fresh = StateDirSnapshot(tmp_path / "new")
    (tmp_path / "new" / "stores").mkdir(parents=True)
    (tmp_path / "new" / "stores" / "a.sqlite").write_text("x")
    (tmp_path / "new" / LOCK_FILE).write_text("1")
    fresh.remove_new()
    assert not (tmp_path / "new").exists()

    kept = tmp_path / "kept"
    (kept / "stores").mkdir(parents=True)
    (kept / "stores" / "old.sqlite").write_text("old")
    snapshot = StateDirSnapshot(kept)
    for name in ("stores/new.sqlite", "stores/old.sqlite-wal", "credentials.json", "mine.txt"):
        (kept / name).write_text("x")
    snapshot.remove_new()
    assert sorted(p.relative_to(kept).as_posix() for p in kept.rglob("*")) == \
        ["mine.txt", "stores", "stores/old.sqlite"]

