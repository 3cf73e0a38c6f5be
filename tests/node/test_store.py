"""One store test suite, run against MemoryStore and SqliteStore; SQLite durability on top."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from handlesim.core.errors import StoreError
from handlesim.core.handle import Handle, Prefix
from handlesim.core.storage import HandleRecord, Store
from handlesim.core.values import URL, HandleValue
from handlesim.store import MemoryStore, SqliteStore, open_store

from ..support.strategies import value_lists


def record(text: str, *values: HandleValue) -> HandleRecord:
    return HandleRecord(Handle.from_text(text), values or (HandleValue(1, URL, f"https://id.example.cn/{text}"),))


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    opened = open_store(request.param, tmp_path / "node.sqlite")
    yield opened
    opened.close()


def test_put_get_replace_delete(store: Store) -> None:
    store.put(record("88.101/A"))
    got = store.get(Handle.from_text("88.101/a").key)
    assert got is not None and got.handle.text == "88.101/A", "keys are case-insensitive, spelling is kept"
    store.put(record("88.101/A", HandleValue(2, "EMAIL", "x@example.cn")))
    again = store.get(Handle.from_text("88.101/A").key)
    assert again is not None and [v.index for v in again.values] == [2]
    assert len(store) == 1
    assert store.delete(Handle.from_text("88.101/A").key)
    assert not store.delete(Handle.from_text("88.101/A").key)
    assert store.get(Handle.from_text("88.101/A").key) is None and len(store) == 0


def test_listing_pages_exact_prefix_only(store: Store) -> None:
    store.put_many([record(f"88.101/item-{i:02d}") for i in range(25)] + [record("88.101.2001/other")])
    total, first = store.list_handles(Prefix("88.101"), 0, 10)
    assert total == 25 and first == [f"88.101/item-{i:02d}" for i in range(10)]
    assert store.list_handles(Prefix("88.101"), 20, 10) == (25, [f"88.101/item-{i:02d}" for i in range(20, 25)])
    assert store.list_handles(Prefix("88.101.2001")) == (1, ["88.101.2001/other"])
    assert store.list_handles(Prefix("88.999")) == (0, [])
    store.delete(Handle.from_text("88.101/item-00").key)
    assert store.list_handles(Prefix("88.101"), 0, 1) == (24, ["88.101/item-01"])


def test_homed_prefixes(store: Store) -> None:
    assert store.homed_prefixes() == []
    store.set_homed_prefixes(["88.101", "88.102"])
    assert store.homed_prefixes() == ["88.101", "88.102"]


def test_sqlite_data_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "n.sqlite"
    first = SqliteStore(path)
    first.put_many([record(f"88.101/{i}") for i in range(100)])
    first.put(record("88.101/X"))
    first.set_homed_prefixes(["88.101"])
    first.delete(Handle.from_text("88.101/5").key)
    first.close()
    second = SqliteStore(path)
    try:
        assert len(second) == 100 and second.get(Handle.from_text("88.101/5").key) is None
        assert second.homed_prefixes() == ["88.101"]
        assert second.list_handles(Prefix("88.101"), 0, 2)[0] == 100
        assert second.integrity_check() == "ok"
    finally:
        second.close()


def test_a_reopened_store_shares_repeated_values_as_the_seeded_one_did(tmp_path: Path) -> None:
    """Restart memory (issue item 7): seeding shares one object per repeated value and one Prefix per enterprise;
    loading the store back must too, or a restarted topology holds a copy of each for every record."""
    prefix = Prefix.from_text("88.101.1001")
    contact = HandleValue(6, "EMAIL", "id-admin@88-101-1001.example.cn")
    batch = HandleValue(5, "BATCH", "20220301-L1")
    seeded = [HandleRecord(Handle(prefix, f"PUMP-{i:06d}"),
                           (HandleValue(1, URL, f"https://id.example.cn/88.101.1001/PUMP-{i:06d}"), batch, contact))
              for i in range(50)]
    path = tmp_path / "n.sqlite"
    first = SqliteStore(path)
    first.put_many(seeded)
    first.close()
    reopened = SqliteStore(path)
    try:
        loaded = sorted(reopened.records(), key=lambda r: r.key)
        assert [(r.handle.text, r.values) for r in loaded] == [(r.handle.text, r.values) for r in seeded]
        assert len({id(r.values[1]) for r in loaded}) == 1 and len({id(r.values[2]) for r in loaded}) == 1
        assert len({id(r.handle.prefix) for r in loaded}) == 1
        assert len({id(r.values[0]) for r in loaded}) == 50, "distinct values stay distinct"
    finally:
        reopened.close()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "n.sqlite"
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version=99")
    db.close()
    with pytest.raises(StoreError, match="schema version 99"):
        SqliteStore(path)


def test_garbage_file_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "n.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match=str(path)):
        SqliteStore(path)


def test_open_store_rejects_unknown_kinds() -> None:
    with pytest.raises(ValueError, match="unknown store kind"):
        open_store("redis")
    assert isinstance(open_store("memory"), MemoryStore)


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(value_lists)
def test_every_value_round_trips_through_both_stores(values: tuple[HandleValue, ...]) -> None:
    rec = HandleRecord(Handle.from_text("88.101/prop"), values)
    memory = MemoryStore()
    memory.put(rec)
    assert memory.get(rec.key) == rec
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "n.sqlite"
        sqlite_store = SqliteStore(path)
        sqlite_store.put(rec)
        assert sqlite_store.get(rec.key) == rec
        sqlite_store.close()
        reopened = SqliteStore(path)
        try:
            assert reopened.get(rec.key) == rec
        finally:
            reopened.close()


WRITER = """
import sys
from handlesim.core.handle import Handle
from handlesim.core.storage import HandleRecord
from handlesim.core.values import HandleValue
from handlesim.store import SqliteStore
store = SqliteStore(sys.argv[1])
for i in range(100000):
    text = f"88.101/K-{i}"
    store.put(HandleRecord(Handle.from_text(text), (HandleValue(1, "URL", "u" * 200 + str(i)),
                                                     HandleValue(2, "SERIAL", str(i)))))
    print(text, flush=True)
"""


@pytest.mark.parametrize("kill_after", [1, 57, 400])
def test_acknowledged_writes_survive_sigkill(tmp_path: Path, kill_after: int) -> None:
    path = tmp_path / "crash.sqlite"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True)
    acked: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            acked.append(line.strip())
            if len(acked) >= kill_after:
                os.kill(proc.pid, signal.SIGKILL)
                break
    finally:
        proc.kill()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()
    store = SqliteStore(path)
    try:
        assert store.integrity_check() == "ok"
        for text in acked:
            got = store.get(Handle.from_text(text).key)
            assert got is not None, f"acknowledged {text} lost"
            number = text.split("-")[1]
            assert [v.data for v in got.values] == ["u" * 200 + number, number], "record intact"
        assert len(store) >= len(acked)
    finally:
        store.close()
