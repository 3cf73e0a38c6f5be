"""HandleValue <-> plain dicts in the Handle.Net REST JSON shape: the one mapping both encodings carry."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from ..core.errors import InvalidValue
from ..core.values import (
    DEFAULT_PERMISSIONS,
    DEFAULT_TTL,
    STRUCTURED_DATA,
    AdminPermission,
    AdminRecord,
    HandleValue,
    HashOption,
    Interface,
    KeyData,
    Permissions,
    ServerInfo,
    SiteInfo,
    TTLType,
    ValueData,
    ValueList,
    ValueReference,
)

INT32 = 2**31


def iso_time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str, what: str) -> int:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidValue(f"{what} {text!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


# -- to dicts -----------------------------------------------------------------------------------------------------

def value_to_dict(value: HandleValue) -> dict[str, Any]:
    out: dict[str, Any] = {"index": value.index, "type": value.type, "data": data_to_dict(value.data)}
    if value.ttl_type == TTLType.ABSOLUTE:
        out["ttl"] = iso_time(value.ttl)
    else:
        out["ttl"] = value.ttl
    out["timestamp"] = iso_time(value.timestamp)
    if value.permissions != DEFAULT_PERMISSIONS:
        out["permissions"] = value.permissions.to_text()
    if value.references:
        out["references"] = [ref_to_dict(r) for r in value.references]
    return out


def values_to_list(values: Any) -> list[dict[str, Any]]:
    return [value_to_dict(v) for v in values]


def ref_to_dict(ref: ValueReference) -> dict[str, Any]:
    return {"handle": ref.handle, "index": ref.index}


def data_to_dict(data: ValueData) -> dict[str, Any]:
    if isinstance(data, str):
        return {"format": "string", "value": data}
    if isinstance(data, bytes):
        return {"format": "base64", "value": _b64(data)}
    return _structured_to_dict(data)


@lru_cache(maxsize=4096)
def _structured_to_dict(data: AdminRecord | ValueList | SiteInfo | KeyData) -> dict[str, Any]:
    """Structured data repeats across records (one HS_ADMIN per prefix), so its dict form is computed once.

    Callers must not mutate the returned dict."""
    if isinstance(data, AdminRecord):
        return {"format": "admin", "value": {"handle": data.handle, "index": data.index,
                                             "permissions": data.permissions.to_text()}}
    if isinstance(data, ValueList):
        return {"format": "vlist", "value": [ref_to_dict(r) for r in data.refs]}
    if isinstance(data, SiteInfo):
        return {"format": "site", "value": site_to_dict(data)}
    return {"format": "key", "value": _b64(data.key)}


def site_to_dict(site: SiteInfo) -> dict[str, Any]:
    return {
        "version": site.version,
        "protocolVersion": site.protocol_version,
        "serialNumber": site.serial_number,
        "primarySite": site.primary,
        "multiPrimary": site.multi_primary,
        "hashOption": int(site.hash_option),
        "attributes": [{"name": k, "value": v} for k, v in site.attributes],
        "servers": [{
            "serverId": s.server_id,
            "address": s.address,
            "publicKey": {"format": "base64", "value": _b64(s.public_key)},
            "interfaces": [{"query": i.query, "admin": i.admin, "protocol": i.protocol, "port": i.port}
                           for i in s.interfaces],
        } for s in site.servers],
    }


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


# -- from dicts ---------------------------------------------------------------------------------------------------

class _Fields:
    """Typed access to one dict of client input; every problem is an InvalidValue naming the value and field."""

    def __init__(self, raw: Any, where: str) -> None:
        if not isinstance(raw, dict):
            raise InvalidValue(f"{where} must be a JSON object, not {type(raw).__name__}")
        self.raw = raw
        self.where = where

    def get(self, name: str, default: Any = None) -> Any:
        return self.raw.get(name, default)

    def text(self, name: str, default: str | None = None) -> str:
        raw = self.raw.get(name, default)
        if not isinstance(raw, str):
            raise InvalidValue(f"{self.where}: field {name!r} must be text" + ("" if name in self.raw else
                               " and is missing"))
        return raw

    def integer(self, name: str, default: int | None = None, lo: int = -INT32, hi: int = INT32 - 1) -> int:
        raw = self.raw.get(name, default)
        if isinstance(raw, str) and raw.strip().lstrip("-").isdigit():
            raw = int(raw)
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise InvalidValue(f"{self.where}: field {name!r} must be an integer" + ("" if name in self.raw else
                               " and is missing"))
        if not lo <= raw <= hi:
            raise InvalidValue(f"{self.where}: field {name!r} = {raw} is outside {lo}..{hi}")
        return raw

    def flag(self, name: str, default: bool) -> bool:
        raw = self.raw.get(name, default)
        if not isinstance(raw, bool):
            raise InvalidValue(f"{self.where}: field {name!r} must be true or false")
        return raw


def value_from_dict(raw: Any) -> HandleValue:
    """A value as real clients send it (bare-string data, admin index as text, ISO or int TTL...), validated."""
    fields = _Fields(raw, "value")
    index = fields.integer("index", lo=-INT32)
    fields.where = f"value {index}"
    type_name = fields.text("type")
    data = data_from_json(fields.get("data"), fields.where, type_name)
    ttl_type, ttl = _ttl(fields)
    value = HandleValue(
        index=index, type=type_name, data=data, ttl=ttl, ttl_type=ttl_type, timestamp=_timestamp(fields),
        references=_refs(fields.get("references", []), fields.where),
        permissions=Permissions.from_text(fields.text("permissions", DEFAULT_PERMISSIONS.to_text())),
    )
    return value.validate()


def values_from_body(body: Any) -> list[HandleValue]:
    """The three PUT body shapes: a list of values, {"values": [...]}, or one value."""
    if isinstance(body, dict) and "values" in body:
        body = body["values"]
    elif isinstance(body, dict):
        body = [body]
    if not isinstance(body, list):
        raise InvalidValue("the body must be a list of values, {\"values\": [...]}, or one value")
    return [value_from_dict(item) for item in body]


def _ttl(fields: _Fields) -> tuple[TTLType, int]:
    raw = fields.get("ttl", DEFAULT_TTL)
    if isinstance(raw, str) and not raw.strip().lstrip("-").isdigit():
        return TTLType.ABSOLUTE, parse_time(raw, f"{fields.where}: ttl")
    return TTLType.RELATIVE, fields.integer("ttl", DEFAULT_TTL)


def _timestamp(fields: _Fields) -> int:
    raw = fields.get("timestamp")
    if raw is None:
        return 0
    if isinstance(raw, str):
        return parse_time(raw, f"{fields.where}: timestamp")
    return fields.integer("timestamp", lo=0, hi=2**32 - 1)


def _refs(raw: Any, where: str) -> tuple[ValueReference, ...]:
    if not isinstance(raw, list):
        raise InvalidValue(f"{where}: references must be a list of {{handle, index}}")
    return tuple(_ref(item, f"{where} reference") for item in raw)


def _ref(raw: Any, where: str) -> ValueReference:
    fields = _Fields(raw, where)
    return ValueReference(fields.text("handle"), fields.integer("index", lo=0))


def data_from_json(raw: Any, where: str, type_name: str) -> ValueData:
    if isinstance(raw, str):
        data: ValueData = raw
        fmt = "string"
    else:
        fields = _Fields(raw, f"{where} data")
        fmt = fields.text("format")
        parser = _DATA_PARSERS.get(fmt)
        if parser is None:
            raise InvalidValue(f"{where}: unknown data format {fmt!r} (string, base64, hex, admin, vlist, site, key)")
        data = parser(fields.get("value"), where)
    expected = STRUCTURED_DATA.get(type_name.upper())
    if expected is not None and not isinstance(data, expected):
        raise InvalidValue(f"{where}: type {type_name} needs data in format "
                           f"{_FORMAT_OF[expected]!r}, got {fmt!r}")
    return data


def _string(raw: Any, where: str) -> str:
    if not isinstance(raw, str):
        raise InvalidValue(f"{where}: string data must be text")
    return raw


def _base64(raw: Any, where: str) -> bytes:
    if not isinstance(raw, str):
        raise InvalidValue(f"{where}: base64 data must be text")
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidValue(f"{where}: data is not valid base64") from None


def _hex(raw: Any, where: str) -> bytes:
    if not isinstance(raw, str):
        raise InvalidValue(f"{where}: hex data must be text")
    try:
        return bytes.fromhex(raw)
    except ValueError:
        raise InvalidValue(f"{where}: data is not valid hex") from None


def _admin(raw: Any, where: str) -> AdminRecord:
    fields = _Fields(raw, f"{where} admin data")
    permissions = AdminPermission.from_text(fields.text("permissions", "011111110011"))
    return AdminRecord(fields.text("handle"), fields.integer("index", lo=0), permissions)


def _vlist(raw: Any, where: str) -> ValueList:
    if not isinstance(raw, list):
        raise InvalidValue(f"{where}: vlist data must be a list of {{handle, index}}")
    return ValueList(tuple(_ref(item, f"{where} vlist entry") for item in raw))


def _site(raw: Any, where: str) -> SiteInfo:
    fields = _Fields(raw, f"{where} site data")
    servers = fields.get("servers", [])
    if not isinstance(servers, list):
        raise InvalidValue(f"{where}: site servers must be a list")
    attributes = fields.get("attributes", [])
    if not isinstance(attributes, list):
        raise InvalidValue(f"{where}: site attributes must be a list")
    hash_option = fields.integer("hashOption", 2, lo=0, hi=2)
    return SiteInfo(
        servers=tuple(_server(s, where) for s in servers),
        serial_number=fields.integer("serialNumber", 1),
        primary=fields.flag("primarySite", True),
        multi_primary=fields.flag("multiPrimary", False),
        hash_option=HashOption(hash_option),
        version=fields.integer("version", 1),
        protocol_version=fields.text("protocolVersion", "2.10"),
        attributes=tuple(_attribute(a, where) for a in attributes),
    )


def _attribute(raw: Any, where: str) -> tuple[str, str]:
    fields = _Fields(raw, f"{where} site attribute")
    return fields.text("name"), fields.text("value")


def _server(raw: Any, where: str) -> ServerInfo:
    fields = _Fields(raw, f"{where} site server")
    interfaces = fields.get("interfaces", [])
    if not isinstance(interfaces, list):
        raise InvalidValue(f"{where}: server interfaces must be a list")
    key = fields.get("publicKey", {"format": "base64", "value": ""})
    public_key = _base64(_Fields(key, f"{where} server key").get("value", ""), where)
    return ServerInfo(fields.integer("serverId", lo=0), fields.text("address"),
                      tuple(_interface(i, where) for i in interfaces), public_key)


def _interface(raw: Any, where: str) -> Interface:
    fields = _Fields(raw, f"{where} server interface")
    return Interface(fields.text("protocol", "HTTP"), fields.integer("port", lo=0, hi=65535),
                     fields.flag("query", True), fields.flag("admin", True))


def _key(raw: Any, where: str) -> KeyData:
    return KeyData(_base64(raw, where))


_DATA_PARSERS: dict[str, Callable[[Any, str], ValueData]] = {
    "string": _string, "base64": _base64, "hex": _hex, "admin": _admin, "vlist": _vlist, "site": _site, "key": _key,
}
_FORMAT_OF: dict[type, str] = {AdminRecord: "admin", ValueList: "vlist", SiteInfo: "site", KeyData: "key"}
