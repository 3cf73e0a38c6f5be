"""HandleValue <-> plain dicts in the Handle.Net REST JSON shape: the one mapping JSON, msgpack and the store carry."""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from ..core.errors import InvalidValue
from ..core.values import DEFAULT_PERMISSIONS, DEFAULT_TTL, MAX_INDEX, HandleValue, Permissions, TTLType
from .data import data_from_json, data_to_dict, ref_to_dict, refs_from_json
from .fields import INT32_MIN, UINT32_MAX, FieldReader, as_integer, iso_time, json_type

__all__ = ["data_from_json", "data_to_dict", "value_from_dict", "value_to_dict", "values_from_body", "values_to_list"]

# -- to dicts -----------------------------------------------------------------------------------------------------


@lru_cache(maxsize=1 << 16)
def value_to_dict(value: HandleValue) -> dict[str, Any]:
    """`{index, type, data, ttl, timestamp[, permissions][, references]}`: permissions only when not "1110",
    references only when present, an absolute TTL as an ISO time.

    Values are immutable and repeat across answers (every handle of a prefix shares its HS_ADMIN), so the dict is
    built once per distinct value; callers must not mutate it."""
    return build_value_dict(value)


def build_value_dict(value: HandleValue) -> dict[str, Any]:
    """`value_to_dict` without the memo, for callers that keep their own (the codec keeps encoded bytes)."""
    out: dict[str, Any] = {
        "index": value.index,
        "type": value.type,
        "data": data_to_dict(value.data),
        "ttl": iso_time(value.ttl) if value.ttl_type == TTLType.ABSOLUTE else value.ttl,
        "timestamp": iso_time(value.timestamp),
    }
    if value.permissions != DEFAULT_PERMISSIONS:
        out["permissions"] = value.permissions.to_text()
    if value.references:
        out["references"] = [ref_to_dict(r) for r in value.references]
    return out


def values_to_list(values: Iterable[HandleValue]) -> list[dict[str, Any]]:
    return [value_to_dict(v) for v in values]


# -- from dicts ---------------------------------------------------------------------------------------------------


def value_from_dict(raw: object, *, now: float | None = None) -> HandleValue:
    """A value as real clients send it, validated; any problem is an InvalidValue naming the value and field.

    Accepted: `index` as a number or digit text; `data` as a bare string or `{"format", "value"}`; `ttl` as seconds
    (relative), an ISO time (absolute) or missing (86400); `timestamp` as an ISO time, seconds, or missing (`now`
    when given, else 0); `permissions` and `references` optional.
    """
    fields = FieldReader(raw, "value")
    index = fields.integer("index", lo=0, hi=MAX_INDEX)  # 0 passes here: validate() says it is reserved
    fields.where = f"value {index}"
    type_name = fields.text("type")
    ttl_type, ttl = _ttl(fields)
    value = HandleValue(
        index=index,
        type=type_name,
        data=data_from_json(fields.required("data"), fields.where, type_name),
        ttl=ttl,
        ttl_type=ttl_type,
        timestamp=fields.epoch("timestamp", 0 if now is None else int(now)),
        references=refs_from_json(fields.items("references"), f"{fields.where}: reference"),
        permissions=_permissions(fields),
    )
    return value.validate()


def values_from_body(body: object, *, now: float | None = None) -> list[HandleValue]:
    """The three PUT body shapes: a list of values, `{"values": [...]}`, or one value."""
    if isinstance(body, dict):
        body = body["values"] if "values" in body else [body]
    if not isinstance(body, list):
        raise InvalidValue("the body must be a list of values, an object with a list of 'values', or one value, "
                           f"not {json_type(body)}")
    return [value_from_dict(item, now=now) for item in body]


def _ttl(fields: FieldReader) -> tuple[TTLType, int]:
    raw = fields.optional("ttl")
    if raw is None:
        return TTLType.RELATIVE, DEFAULT_TTL
    if isinstance(raw, str) and as_integer(raw) is None:
        return TTLType.ABSOLUTE, fields.epoch("ttl", 0)
    return TTLType.RELATIVE, fields.integer("ttl", lo=INT32_MIN, hi=UINT32_MAX)


def _permissions(fields: FieldReader) -> Permissions:
    if not fields.has("permissions"):
        return DEFAULT_PERMISSIONS
    try:
        return _parsed_permissions(fields.text("permissions"))
    except InvalidValue as exc:
        raise InvalidValue(f"{fields.where}: {exc.message}") from None


@lru_cache(maxsize=64)
def _parsed_permissions(text: str) -> Permissions:
    return Permissions.from_text(text)
