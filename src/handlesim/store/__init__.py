"""Persistence behind the core's Store interface: MemoryStore (throwaway) and SqliteStore (the embedded default)."""

from __future__ import annotations

from pathlib import Path

from ..core.storage import Store
from .memory import MemoryStore
from .sqlite import SqliteStore

STORE_KINDS = ("memory", "sqlite")


def open_store(kind: str, path: Path | None = None) -> Store:
    """A store of the given kind; sqlite needs a file path."""
    if kind == "memory":
        return MemoryStore()
    if kind == "sqlite":
        if path is None:
            raise ValueError("a sqlite store needs a file path")
        return SqliteStore(path)
    raise ValueError(f"unknown store kind {kind!r}; choose one of {', '.join(STORE_KINDS)}")


__all__ = ["STORE_KINDS", "MemoryStore", "SqliteStore", "open_store"]
