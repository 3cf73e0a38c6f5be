"""The store interface the node service needs: records by key, listing by prefix, homed prefixes.

Implementations live in `handlesim.store` (memory, SQLite). A write method returns only once the change is durable for
that store kind, so the service can acknowledge it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

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
