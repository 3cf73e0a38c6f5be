"""Records as compact msgpack blobs for the SQLite store: plain tuples for the common string values, the wire mapping
for structured data (HS_ADMIN, HS_SITE, ...)."""

from __future__ import annotations

import sys
from functools import lru_cache
from typing import Any

import msgpack

from ..core.errors import StoreError
from ..core.handle import Handle, Prefix
from ..core.storage import HandleRecord
from ..core.values import HandleValue, Permissions, TTLType, ValueReference
from ..wire.mapping import data_from_json, data_to_dict

_STR, _BYTES, _OTHER = 0, 1, 2


def _data_out(value: HandleValue) -> tuple[int, Any]:
    if isinstance(value.data, str):
        return _STR, value.data
    if isinstance(value.data, bytes):
        return _BYTES, value.data
    return _OTHER, _pack_structured(value.data)


_TTL_TYPES = (TTLType.RELATIVE, TTLType.ABSOLUTE)


@lru_cache(maxsize=16)
def _permissions(text: str) -> Permissions:
    return Permissions.from_text(text)


@lru_cache(maxsize=16)
def _perm_text(permissions: Permissions) -> str:
    return permissions.to_text()


@lru_cache(maxsize=4096)
def _pack_structured(data: Any) -> bytes:
    return bytes(msgpack.packb(data_to_dict(data), use_bin_type=True))


@lru_cache(maxsize=4096)
def _unpack_structured(packed: bytes, type_name: str) -> Any:
    """Structured data (one HS_ADMIN per prefix, shared by all its handles) is parsed once per distinct blob."""
    return data_from_json(msgpack.unpackb(packed, raw=False), "stored value", type_name)


def dump_values(values: tuple[HandleValue, ...]) -> bytes:
    rows = []
    for v in values:
        tag, payload = _data_out(v)
        refs = [(r.handle, r.index) for r in v.references]
        rows.append((v.index, v.type, tag, payload, v.ttl, int(v.ttl_type), v.timestamp, _perm_text(v.permissions),
                     refs))
    return bytes(msgpack.packb(rows, use_bin_type=True))


def load_values(blob: bytes) -> tuple[HandleValue, ...]:
    try:
        rows = msgpack.unpackb(blob, raw=False)
        return tuple(
            # type names interned: a hundred thousand URL values need not each carry its own "URL"
            HandleValue(index, sys.intern(type_name),
                        payload if tag < _OTHER else _unpack_structured(payload, type_name), ttl,
                        _TTL_TYPES[ttl_type], timestamp, tuple(ValueReference(h, i) for h, i in refs) if refs else (),
                        _permissions(perms))
            for index, type_name, tag, payload, ttl, ttl_type, timestamp, perms, refs in rows
        )
    except Exception as exc:  # a damaged blob must surface as a store error naming what broke
        raise StoreError(f"a stored record is unreadable ({type(exc).__name__}: {exc})") from None


SHARED_VALUES = 8192
"""How many distinct values the loader remembers to share: an enterprise's repeated values recur within its own
hundred-odd records, and the topology-wide ones (product names, dates, batches) within a few dozen enterprises."""


@lru_cache(maxsize=SHARED_VALUES)
def _shared_value(value: HandleValue) -> HandleValue:
    """The first loaded value equal to `value` (values are immutable tuples: sharing equal ones is safe)."""
    return value


class RecordLoader:
    """Decodes a store's records as seeding builds them: equal values and prefixes become one shared object.

    Seeding gives the handles of an enterprise one Prefix, and each value that repeats (product name, model, date,
    batch, contact, HS_ADMIN) one HandleValue shared by every record that has it. Decoding blob by blob made a copy
    for every record instead, and a restart on existing stores took ~540 MB where the first boot took ~360 MB
    (benchmarks/results/2026-12-02-boot-memory/SUMMARY.md)."""

    def __init__(self) -> None:
        self._prefixes: dict[str, Prefix] = {}

    def record(self, handle_text: str, blob: bytes) -> HandleRecord:
        handle = Handle.from_text(handle_text)  # validated as ever; only its prefix is swapped for the shared one
        prefix = self._prefixes.setdefault(handle.prefix.text, handle.prefix)
        if prefix is not handle.prefix:
            handle = Handle(prefix, handle.suffix)
        return HandleRecord(handle, tuple(map(_shared_value, load_values(blob))))
