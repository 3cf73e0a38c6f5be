"""SqliteStore: one SQLite file per node in WAL mode; a write returns only after it is committed.

Reads are served from an in-memory copy loaded at open; writes go to SQLite first and reach memory only once
committed, so a failed write changes nothing and a killed process loses nothing it acknowledged.

Durability: with `synchronous="normal"` (the default) a commit is in the WAL file when the write returns, so it
survives the process being killed (SIGKILL) but the last commits may be lost if the machine loses power;
`synchronous="full"` also fsyncs each commit (survives power loss, costs a disk flush per write).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from ..core.errors import StoreError
from ..core.handle import Prefix
from ..core.storage import HandleRecord, OutboxEntry
from .memory import MemoryStore
from .serialize import RecordLoader, dump_values

SCHEMA_VERSION = 2
_OUTBOX_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    peer TEXT NOT NULL,
    key TEXT NOT NULL,
    handle TEXT NOT NULL,
    deleted_at INTEGER NOT NULL,
    logged_at REAL NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (peer, key)
) WITHOUT ROWID;
"""
"""The outgoing replication log (version 2): changes not yet delivered to each peer, one row per peer and handle."""
_SCHEMA = _OUTBOX_SCHEMA + """
CREATE TABLE IF NOT EXISTS handles (
    key TEXT PRIMARY KEY,
    handle TEXT NOT NULL,
    prefix_key TEXT NOT NULL,
    record BLOB NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS handles_by_prefix ON handles (prefix_key, key);
CREATE TABLE IF NOT EXISTS homed_prefixes (prefix TEXT PRIMARY KEY);
"""


SYNC_MODES = ("normal", "full")


class SqliteStore:
    def __init__(self, path: Path, synchronous: str = "normal") -> None:
        if synchronous not in SYNC_MODES:
            raise ValueError(f"synchronous must be one of {SYNC_MODES}, not {synchronous!r}")
        self.path = Path(path)
        self.synchronous = synchronous
        self._memory = MemoryStore()
        self._db = self._open()
        try:
            self._load()
        except BaseException:
            self._db.close()
            raise

    # -- opening ------------------------------------------------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        try:
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open store {self.path}: {exc}") from None
        try:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, 1, SCHEMA_VERSION):
                raise StoreError(f"store {self.path} has schema version {version}; this handlesim reads version "
                                 f"{SCHEMA_VERSION} (use a newer handlesim or a fresh --state-dir)")
            db.execute(f"PRAGMA synchronous={self.synchronous.upper()}")
            db.execute("PRAGMA journal_mode=WAL")
            if version == 0:
                db.executescript(f"BEGIN; {_SCHEMA} PRAGMA user_version={SCHEMA_VERSION}; COMMIT;")
            elif version == 1:  # version 2 only adds the replication log
                db.executescript(f"BEGIN; {_OUTBOX_SCHEMA} PRAGMA user_version={SCHEMA_VERSION}; COMMIT;")
        except sqlite3.Error as exc:
            db.close()
            raise StoreError(f"store {self.path} is not a usable SQLite database: {exc}") from None
        except StoreError:
            db.close()
            raise
        return db

    def _load(self) -> None:
        with self._errors("load"):
            rows = self._db.execute("SELECT handle, record FROM handles").fetchall()
            homed = [row[0] for row in self._db.execute("SELECT prefix FROM homed_prefixes ORDER BY rowid")]
            log = [OutboxEntry(*row) for row in self._db.execute(
                "SELECT peer, key, handle, deleted_at, logged_at, seq FROM outbox ORDER BY seq")]
        loader = RecordLoader()
        self._memory.put_many(loader.record(handle, blob) for handle, blob in rows)
        self._memory.log.add(log)
        self._memory.set_homed_prefixes(homed)

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise StoreError(f"store {self.path}: {what} failed: {exc}") from None

    @contextmanager
    def _transaction(self, what: str) -> Iterator[sqlite3.Connection]:
        with self._errors(what):
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # -- the Store interface ------------------------------------------------------------------------------------

    def get(self, key: str) -> HandleRecord | None:
        return self._memory.get(key)

    def put(self, record: HandleRecord) -> None:
        with self._transaction(f"writing {record.handle.text}") as db:
            db.execute("INSERT OR REPLACE INTO handles VALUES (?, ?, ?, ?)", _row(record))
        self._memory.put(record)

    def put_many(self, records: Iterable[HandleRecord]) -> None:
        batch = list(records)
        with self._transaction(f"writing {len(batch)} records") as db:
            db.executemany("INSERT OR REPLACE INTO handles VALUES (?, ?, ?, ?)", (_row(r) for r in batch))
        self._memory.put_many(batch)

    def delete(self, key: str) -> bool:
        if self._memory.get(key) is None:
            return False
        with self._transaction(f"deleting {key}") as db:
            db.execute("DELETE FROM handles WHERE key = ?", (key,))
        return self._memory.delete(key)

    # -- the ReplicationLog interface: the change and its log entries in one transaction ----------------------------

    def put_logged(self, record: HandleRecord, changes: Sequence[OutboxEntry]) -> None:
        entries = self._memory.log.numbered(changes)
        with self._transaction(f"writing {record.handle.text}") as db:
            db.execute("INSERT OR REPLACE INTO handles VALUES (?, ?, ?, ?)", _row(record))
            db.executemany("INSERT OR REPLACE INTO outbox VALUES (?, ?, ?, ?, ?, ?)", map(_log_row, entries))
        self._memory.put(record)
        self._memory.log.add(entries)

    def delete_logged(self, key: str, changes: Sequence[OutboxEntry]) -> bool:
        entries = self._memory.log.numbered(changes)
        with self._transaction(f"deleting {key}") as db:
            db.execute("DELETE FROM handles WHERE key = ?", (key,))
            db.executemany("INSERT OR REPLACE INTO outbox VALUES (?, ?, ?, ?, ?, ?)", map(_log_row, entries))
        self._memory.log.add(entries)
        return self._memory.delete(key)

    def outbox(self, peer: str) -> list[OutboxEntry]:
        return self._memory.outbox(peer)

    def outbox_delivered(self, entries: Sequence[OutboxEntry]) -> None:
        with self._transaction(f"forgetting {len(entries)} delivered changes") as db:
            db.executemany("DELETE FROM outbox WHERE peer = ? AND key = ? AND seq = ?",
                           ((e.peer, e.key, e.seq) for e in entries))
        self._memory.outbox_delivered(entries)

    def list_handles(self, prefix: Prefix, offset: int = 0, limit: int = 0) -> tuple[int, list[str]]:
        return self._memory.list_handles(prefix, offset, limit)

    def records(self) -> Iterable[HandleRecord]:
        return self._memory.records()

    def homed_prefixes(self) -> list[str]:
        return self._memory.homed_prefixes()

    def set_homed_prefixes(self, prefixes: Sequence[str]) -> None:
        with self._transaction("saving homed prefixes") as db:
            db.execute("DELETE FROM homed_prefixes")
            db.executemany("INSERT OR IGNORE INTO homed_prefixes VALUES (?)", ((p,) for p in prefixes))
        self._memory.set_homed_prefixes(prefixes)

    def integrity_check(self) -> str:
        with self._errors("integrity check"):
            return str(self._db.execute("PRAGMA integrity_check").fetchone()[0])

    def __len__(self) -> int:
        return len(self._memory)

    def close(self) -> None:
        self._db.close()


def _log_row(entry: OutboxEntry) -> tuple[str, str, str, int, float, int]:
    return entry.peer, entry.key, entry.handle, entry.deleted_at, entry.logged_at, entry.seq


def _row(record: HandleRecord) -> tuple[str, str, str, bytes]:
    return record.key, record.handle.text, record.handle.prefix.key, dump_values(record.values)
