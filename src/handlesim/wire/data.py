"""Value data <-> the REST `{"format": F, "value": V}` dicts: text, bytes, HS_ADMIN, HS_VLIST, HS_SITE and keys."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from ..core.errors import InvalidValue
from ..core.handle import ascii_upper
from ..core.values import (
    DEFAULT_ADMIN_PERMISSIONS,
    MAX_INDEX,
    STRUCTURED_DATA,
    AdminPermission,
    AdminRecord,
    HashOption,
    Interface,
    KeyData,
    ServerInfo,
    SiteInfo,
    ValueData,
    ValueList,
    ValueReference,
)
from .fields import FieldReader, checked_text, json_type

StructuredData = AdminRecord | ValueList | SiteInfo | KeyData

STRUCTURED_FORMAT: dict[type, str] = {AdminRecord: "admin", ValueList: "vlist", SiteInfo: "site", KeyData: "key"}
"""The one format each structured data class is written and must be read in."""

# -- to dicts -----------------------------------------------------------------------------------------------------


def data_to_dict(data: ValueData) -> dict[str, Any]:
    """The `data` member of a REST value. Structured results are shared (cached): callers must not mutate them."""
    if isinstance(data, str):
        return {"format": "string", "value": data}
    if isinstance(data, bytes):
        return {"format": "base64", "value": b64_text(data)}
    return structured_to_dict(data)


@lru_cache(maxsize=4096)
def structured_to_dict(data: StructuredData) -> dict[str, Any]:
    """Structured data repeats across records (one HS_ADMIN per prefix), so its dict is built once."""
    if isinstance(data, AdminRecord):
        return {"format": "admin", "value": admin_to_dict(data)}
    if isinstance(data, ValueList):
        return {"format": "vlist", "value": [ref_to_dict(r) for r in data.refs]}
    if isinstance(data, SiteInfo):
        return {"format": "site", "value": site_to_dict(data)}
    return {"format": "key", "value": b64_text(data.key)}


def admin_to_dict(admin: AdminRecord) -> dict[str, Any]:
    return {"handle": admin.handle, "index": admin.index, "permissions": admin.permissions.to_text()}


def ref_to_dict(ref: ValueReference) -> dict[str, Any]:
    return {"handle": ref.handle, "index": ref.index}


def site_to_dict(site: SiteInfo) -> dict[str, Any]:
    return {
        "version": site.version,
        "protocolVersion": site.protocol_version,
        "serialNumber": site.serial_number,
        "primarySite": site.primary,
        "multiPrimary": site.multi_primary,
        "hashOption": int(site.hash_option),
        "attributes": [{"name": name, "value": value} for name, value in site.attributes],
        "servers": [server_to_dict(s) for s in site.servers],
    }


def server_to_dict(server: ServerInfo) -> dict[str, Any]:
    return {
        "serverId": server.server_id,
        "address": server.address,
        "publicKey": {"format": "base64", "value": b64_text(server.public_key)},
        "interfaces": [{"query": i.query, "admin": i.admin, "protocol": i.protocol, "port": i.port}
                       for i in server.interfaces],
    }


def b64_text(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


# -- from dicts ---------------------------------------------------------------------------------------------------


def data_from_json(raw: object, where: str, type_name: str) -> ValueData:
    """The data of value `where` (e.g. "value 100") of type `type_name`: a bare string or `{"format", "value"}`."""
    if isinstance(raw, str):
        fmt, payload = "string", raw
    else:
        fields = FieldReader(raw, f"{where}: data")
        fmt, payload = fields.text("format").lower(), fields.required("value")
    parser = _PARSERS.get(fmt)
    if parser is None:
        raise InvalidValue(f"{where}: unknown data format {fmt!r} (string, base64, hex, admin, vlist, site, key)")
    _check_format_fits_type(fmt, type_name, where)
    return parser(payload, where)


def _check_format_fits_type(fmt: str, type_name: str, where: str) -> None:
    expected = STRUCTURED_DATA.get(ascii_upper(type_name))
    if expected is not None and fmt != STRUCTURED_FORMAT[expected]:
        raise InvalidValue(f"{where}: type {type_name} needs data in format {STRUCTURED_FORMAT[expected]!r}, "
                           f"got {fmt!r}")


def _string(raw: object, where: str) -> str:
    if not isinstance(raw, str):
        raise InvalidValue(f"{where}: string data must be text, not {json_type(raw)}")
    return checked_text(raw, f"{where}: data")


def b64_bytes(raw: object, where: str) -> bytes:
    if not isinstance(raw, str):
        raise InvalidValue(f"{where}: base64 data must be text, not {json_type(raw)}")
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidValue(f"{where}: data is not valid base64") from None


def _hex(raw: object, where: str) -> bytes:
    if not isinstance(raw, str):
        raise InvalidValue(f"{where}: hex data must be text, not {json_type(raw)}")
    try:
        return bytes.fromhex(raw)
    except ValueError:
        raise InvalidValue(f"{where}: data is not valid hex") from None


def _admin(raw: object, where: str) -> AdminRecord:
    fields = FieldReader(raw, f"{where}: admin data")
    text = fields.text("permissions", DEFAULT_ADMIN_PERMISSIONS.to_text())
    try:
        permissions = _admin_permissions(text)
    except InvalidValue as exc:
        raise InvalidValue(f"{where}: {exc.message}") from None
    return AdminRecord(_reference_handle(fields), fields.integer("index", lo=0, hi=MAX_INDEX), permissions)


@lru_cache(maxsize=256)
def _admin_permissions(text: str) -> AdminPermission:
    return AdminPermission.from_text(text)


def _vlist(raw: object, where: str) -> ValueList:
    if not isinstance(raw, list):
        raise InvalidValue(f"{where}: vlist data must be a list of {{handle, index}}, not {json_type(raw)}")
    return ValueList(refs_from_json(raw, f"{where}: vlist entry"))


def refs_from_json(raw: list[Any], where: str) -> tuple[ValueReference, ...]:
    """`[{"handle": h, "index": i}, ...]` (index may be digit text, as for admin data)."""
    return tuple(ref_from_json(item, f"{where} {number}") for number, item in enumerate(raw))


def ref_from_json(raw: object, where: str) -> ValueReference:
    fields = FieldReader(raw, where)
    return ValueReference(_reference_handle(fields), fields.integer("index", lo=0, hi=MAX_INDEX))


def _reference_handle(fields: FieldReader) -> str:
    # Kept as text: the core parses it when it follows the reference (ValueReference.key).
    handle = fields.text("handle")
    if not handle:
        raise fields.fail("handle", "is empty")
    return handle


def _site(raw: object, where: str) -> SiteInfo:
    fields = FieldReader(raw, f"{where}: site data")
    attributes = fields.items("attributes")
    return SiteInfo(
        servers=tuple(_server(s, f"{where}: site server {n}") for n, s in enumerate(fields.items("servers"))),
        serial_number=fields.integer("serialNumber", 1),
        primary=fields.flag("primarySite", True),
        multi_primary=fields.flag("multiPrimary", False),
        hash_option=HashOption(fields.integer("hashOption", int(HashOption.BY_ALL), lo=0, hi=2)),
        version=fields.integer("version", 1),
        protocol_version=fields.text("protocolVersion", "2.10"),
        attributes=tuple(_attribute(a, f"{where}: site attribute {n}") for n, a in enumerate(attributes)),
    )


def _attribute(raw: object, where: str) -> tuple[str, str]:
    fields = FieldReader(raw, where)
    return fields.text("name"), fields.text("value", "")


def _server(raw: object, where: str) -> ServerInfo:
    fields = FieldReader(raw, where)
    interfaces = tuple(_interface(i, f"{where} interface {n}") for n, i in enumerate(fields.items("interfaces")))
    return ServerInfo(fields.integer("serverId", lo=0), fields.text("address"), interfaces,
                      _public_key(fields.optional("publicKey"), where))


def _public_key(raw: object, where: str) -> bytes:
    """A server's key: `{"format": "base64"|"hex", "value": ...}`, bare base64 text, or missing (no key)."""
    if raw is None:
        return b""
    if isinstance(raw, str):
        return b64_bytes(raw, f"{where} publicKey")
    fields = FieldReader(raw, f"{where} publicKey")
    fmt = fields.text("format", "base64").lower()
    if fmt not in ("base64", "hex"):
        raise fields.fail("format", f"must be 'base64' or 'hex', not {fmt!r}")
    payload = fields.text("value", "")
    return b64_bytes(payload, f"{where} publicKey") if fmt == "base64" else _hex(payload, f"{where} publicKey")


def _interface(raw: object, where: str) -> Interface:
    fields = FieldReader(raw, where)
    return Interface(fields.text("protocol", "HTTP"), fields.integer("port", lo=0, hi=65535),
                     fields.flag("query", True), fields.flag("admin", True))


def _key(raw: object, where: str) -> KeyData:
    return KeyData(b64_bytes(raw, where))


_PARSERS: dict[str, Callable[[Any, str], ValueData]] = {
    "string": _string, "base64": b64_bytes, "hex": _hex, "admin": _admin, "vlist": _vlist, "site": _site, "key": _key,
}
