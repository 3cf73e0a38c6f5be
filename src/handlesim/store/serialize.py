"""Records as compact msgpack blobs for the SQLite store: plain tuples for the common string values, the wire mapping
for structured data (HS_ADMIN, HS_SITE, ...)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import msgpack

from ..core.errors import StoreError
from ..core.handle import Handle
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
            HandleValue(index, type_name, payload if tag < _OTHER else _unpack_structured(payload, type_name), ttl,
                        _TTL_TYPES[ttl_type], timestamp, tuple(ValueReference(h, i) for h, i in refs) if refs else (),
                        _permissions(perms))
            for index, type_name, tag, payload, ttl, ttl_type, timestamp, perms, refs in rows
        )
    except Exception as exc:  # a damaged blob must surface as a store error naming what broke
        raise StoreError(f"a stored record is unreadable ({type(exc).__name__}: {exc})") from None


def load_record(handle_text: str, blob: bytes) -> HandleRecord:
    return HandleRecord(Handle.from_text(handle_text), load_values(blob))
