"""MemoryStore: records in a dict with a sorted per-prefix index for paged listings; also SqliteStore's read side."""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence

from ..core.handle import Prefix
from ..core.storage import HandleRecord, MemoryOutbox, OutboxEntry


class MemoryStore:
    """A node's records in memory; nothing survives the process."""

    def __init__(self) -> None:
        self._records: dict[str, HandleRecord] = {}
        self._by_prefix: dict[str, list[str]] = {}  # prefix key -> sorted handle keys
        self._homed: list[str] = []
        self.log = MemoryOutbox()
        """Changes still to replicate (the ReplicationLog side; lost with the process like everything here)."""

    def get(self, key: str) -> HandleRecord | None:
        return self._records.get(key)

    def put(self, record: HandleRecord) -> None:
        key = record.key
        if key not in self._records:
            bisect.insort(self._by_prefix.setdefault(record.handle.prefix.key, []), key)
        self._records[key] = record

    def put_many(self, records: Iterable[HandleRecord]) -> None:
        touched: set[str] = set()
        for record in records:
            if record.key not in self._records:
                self._by_prefix.setdefault(record.handle.prefix.key, []).append(record.key)
                touched.add(record.handle.prefix.key)
            self._records[record.key] = record
        for prefix_key in touched:
            self._by_prefix[prefix_key].sort()

    def delete(self, key: str) -> bool:
        record = self._records.pop(key, None)
        if record is None:
            return False
        keys = self._by_prefix.get(record.handle.prefix.key, [])
        position = bisect.bisect_left(keys, key)
        if position < len(keys) and keys[position] == key:
            del keys[position]
        return True

    def list_handles(self, prefix: Prefix, offset: int = 0, limit: int = 0) -> tuple[int, list[str]]:
        keys = self._by_prefix.get(prefix.key, [])
        page = keys[offset:offset + limit] if limit else keys[offset:]
        return len(keys), [self._records[k].handle.text for k in page]

    def homed_prefixes(self) -> list[str]:
        return list(self._homed)

    def set_homed_prefixes(self, prefixes: Sequence[str]) -> None:
        self._homed = list(prefixes)

    def put_logged(self, record: HandleRecord, changes: Sequence[OutboxEntry]) -> None:
        self.put(record)
        self.log.add(self.log.numbered(changes))

    def delete_logged(self, key: str, changes: Sequence[OutboxEntry]) -> bool:
        deleted = self.delete(key)
        self.log.add(self.log.numbered(changes))
        return deleted

    def outbox(self, peer: str) -> list[OutboxEntry]:
        return self.log.outbox(peer)

    def outbox_delivered(self, entries: Sequence[OutboxEntry]) -> None:
        self.log.outbox_delivered(entries)

    def records(self) -> Iterable[HandleRecord]:
        return self._records.values()

    def __len__(self) -> int:
        return len(self._records)

    def close(self) -> None:
        """Nothing to release."""
