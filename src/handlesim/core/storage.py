"""The store interface the node service needs: records by key, listing by prefix, homed prefixes.

Implementations live in `handlesim.store` (memory, SQLite). A write method returns only once the change is durable for
that store kind, so the service can acknowledge it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from .handle import Handle, Prefix
from .values import HandleValue


@dataclass(frozen=True, slots=True)
class HandleRecord:
    """A handle with all its values, as stored; `handle` keeps the spelling it was created with."""

    handle: Handle
    values: tuple[HandleValue, ...]

    @property
    def key(self) -> str:
        return self.handle.key

    def value_at(self, index: int) -> HandleValue | None:
        for value in self.values:
            if value.index == index:
                return value
        return None


class Store(Protocol):
    """Persistence for one node. Keys are `Handle.key` (ASCII upper-cased text)."""

    def get(self, key: str) -> HandleRecord | None:
        """The record for a handle key, or None."""
        ...

    def put(self, record: HandleRecord) -> None:
        """Create or replace a whole record atomically."""
        ...

    def put_many(self, records: Iterable[HandleRecord]) -> None:
        """Bulk load (seeding): all records in one transaction."""
        ...

    def delete(self, key: str) -> bool:
        """Remove a record; False when there was none."""
        ...

    def list_handles(self, prefix: Prefix, offset: int = 0, limit: int = 0) -> tuple[int, list[str]]:
        """(total, page) of handle texts whose prefix is exactly `prefix`, in key order; limit 0 = all."""
        ...

    def records(self) -> Iterable[HandleRecord]:
        """Every record (reverse lookup, replication dumps)."""
        ...

    def homed_prefixes(self) -> list[str]:
        """Prefix texts this node homes, as persisted."""
        ...

    def set_homed_prefixes(self, prefixes: Sequence[str]) -> None:
        ...

    def __len__(self) -> int:
        ...

    def close(self) -> None:
        ...


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """A change this node accepted and still has to deliver to one replication peer (one entry per peer and
    handle: a newer change to the same handle replaces the older, since the handle's latest state is what is sent)."""

    peer: str
    """The peer's name (its node id), stable across restarts and port changes."""
    key: str
    """The changed handle's key."""
    handle: str
    """The handle as spelled when it changed (a delete leaves no record to take it from)."""
    deleted_at: int = 0
    """Epoch seconds the handle was deleted; 0: it was created or changed, send its current values."""
    logged_at: float = 0.0
    """When the change was committed (replication lag is measured from it)."""
    seq: int = 0
    """Position in this node's log, assigned when logged; delivery removes the entry only if it is still this one."""


@runtime_checkable
class ReplicationLog(Protocol):
    """A store that keeps the outgoing replication log with the data: a change and its log entries are written in one
    transaction, so a node killed before delivering still delivers after a restart."""

    def put_logged(self, record: HandleRecord, changes: Sequence[OutboxEntry]) -> None:
        """`put(record)` and append `changes` to the log, atomically."""
        ...

    def delete_logged(self, key: str, changes: Sequence[OutboxEntry]) -> bool:
        """`delete(key)` and append `changes` to the log, atomically."""
        ...

    def outbox(self, peer: str) -> list[OutboxEntry]:
        """Undelivered changes for `peer`, oldest first."""
        ...

    def outbox_delivered(self, entries: Sequence[OutboxEntry]) -> None:
        """Drop delivered entries (an entry replaced by a newer change of the same handle stays)."""
        ...


class MemoryOutbox:
    """The replication log in memory, coalesced per (peer, handle); the read side of every ReplicationLog store."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str], OutboxEntry] = {}
        self._next_seq = 1

    def numbered(self, changes: Sequence[OutboxEntry]) -> list[OutboxEntry]:
        """`changes` with their log positions assigned (call before writing them anywhere)."""
        numbered = []
        for change in changes:
            numbered.append(OutboxEntry(change.peer, change.key, change.handle, change.deleted_at, change.logged_at,
                                        self._next_seq))
            self._next_seq += 1
        return numbered

    def add(self, entries: Iterable[OutboxEntry]) -> None:
        for entry in entries:
            self._entries.pop((entry.peer, entry.key), None)  # re-inserted at the end: oldest-first order holds
            self._entries[(entry.peer, entry.key)] = entry
            self._next_seq = max(self._next_seq, entry.seq + 1)

    def outbox(self, peer: str) -> list[OutboxEntry]:
        return [e for e in self._entries.values() if e.peer == peer]

    def outbox_delivered(self, entries: Sequence[OutboxEntry]) -> None:
        for entry in entries:
            current = self._entries.get((entry.peer, entry.key))
            if current is not None and current.seq == entry.seq:
                del self._entries[(entry.peer, entry.key)]

    def __len__(self) -> int:
        return len(self._entries)
