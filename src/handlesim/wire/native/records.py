"""Handle values and the binary data of HS_SITE, HS_ADMIN and HS_VLIST as the native protocol carries them.

Layouts after RFC 3651 section 3 / RFC 3652 section 2.2.3 and Handle.Net v9's Encoder:

    value    index int4, timestamp int4, TTL type octet, TTL int4, permissions octet (admin r/w, public r/w = 8/4/2/1),
             type UTF8-String, data byte string, references: count int4 then (handle UTF8-String, index int4) each
    HS_ADMIN permissions int2 (the 12 AdminPermission bits), admin handle UTF8-String, admin index int4
    HS_VLIST count int4, then (handle UTF8-String, index int4) each
    HS_SITE  data format version int2, protocol major octet, minor octet, serial int2, flags octet (0x80 primary,
             0x40 multi-primary), hash option octet, hash filter byte string, attributes: count then (name, value)
             byte strings, servers: count then (server id int4, 16-byte address, public key byte string, interfaces:
             count then (type octet 1 admin | 2 query, protocol octet 0 UDP 1 TCP 2 HTTP 3 HTTPS, port int4))

Data of the structured types decodes to the core's types; any other data is text when it reads as text (valid UTF-8
without control characters, the reference's `looksLikeBinary` rule) and bytes otherwise, so every value re-encodes
to the bytes it came from. A problem inside a value is InvalidValue (202); a broken frame is ProtocolError (4).
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from ...core.errors import InvalidValue
from ...core.handle import ascii_upper
from ...core.values import (
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
from .primitives import Reader, Writer

MAX_VALUES = 2048
"""Most values in one message (Common.MAX_HANDLE_VALUES)."""
MAX_HANDLE_BYTES = 2048
"""Longest handle a message may carry (Common.MAX_HANDLE_LENGTH)."""
MAX_REFERENCES = 4096
MAX_SITE_ITEMS = 1024
"""Most attributes, servers, or interfaces of one server, in one HS_SITE record."""
MIN_VALUE_SIZE = 4 + 4 + 1 + 4 + 1 + 4 + 4 + 4
"""Bytes of a value with an empty type, no data and no references: the floor used to bound value counts."""

PERM_ADMIN_READ, PERM_ADMIN_WRITE, PERM_PUBLIC_READ, PERM_PUBLIC_WRITE = 0x8, 0x4, 0x2, 0x1
SITE_PRIMARY, SITE_MULTI_PRIMARY = 0x80, 0x40
INTERFACE_ADMIN, INTERFACE_QUERY = 0x1, 0x2
PROTOCOL_CODES = {"UDP": 0, "TCP": 1, "HTTP": 2, "HTTPS": 3}
PROTOCOL_NAMES = {code: name for name, code in PROTOCOL_CODES.items()}
IP_ADDRESS_SIZE = 16
DOMAIN_ATTRIBUTE = "domain"
"""A server listed by name rather than address: all-zero address and a `domain.<n>` attribute (Handle.Net v8+)."""
_TEXT_CONTROL_OK = frozenset(range(0x09, 0x14))  # looksLikeBinary lets these through as whitespace

# -- handle values --------------------------------------------------------------------------------------------------


def encode_value(value: HandleValue) -> bytes:
    return _encode_value(value)


@lru_cache(maxsize=1 << 14)
def _encode_value(value: HandleValue) -> bytes:
    """Values repeat across answers (every handle of a prefix shares its HS_ADMIN), so each is encoded once."""
    out = Writer()
    perms = value.permissions
    out.int4(value.index).int4(value.timestamp).byte(int(value.ttl_type)).int4(value.ttl).byte(
        (PERM_ADMIN_READ if perms.admin_read else 0) | (PERM_ADMIN_WRITE if perms.admin_write else 0)
        | (PERM_PUBLIC_READ if perms.public_read else 0) | (PERM_PUBLIC_WRITE if perms.public_write else 0))
    out.text(value.type).byte_string(encode_data(value.data, value.index))
    out.int4(len(value.references))
    for ref in value.references:
        out.text(ref.handle).int4(ref.index)
    return out.getvalue()


def decode_values(reader: Reader, limit: int = MAX_VALUES) -> tuple[HandleValue, ...]:
    number = reader.count("value count", MIN_VALUE_SIZE, limit)
    return tuple(decode_value(reader, n) for n in range(number))


def decode_value(reader: Reader, number: int = 0) -> HandleValue:
    where = f"value {number}"
    index = reader.int4(f"{where} index")
    timestamp = reader.uint4(f"{where} timestamp")
    ttl_code = reader.byte(f"{where} TTL type")
    if ttl_code not in (TTLType.RELATIVE, TTLType.ABSOLUTE):
        raise InvalidValue(f"{where} (index {index}): TTL type {ttl_code} is neither 0 (relative) nor 1 (absolute)")
    ttl_type = TTLType(ttl_code)
    ttl = reader.uint4(f"{where} TTL") if ttl_type == TTLType.ABSOLUTE else reader.int4(f"{where} TTL")
    bits = reader.byte(f"{where} permissions")
    permissions = Permissions(bool(bits & PERM_ADMIN_READ), bool(bits & PERM_ADMIN_WRITE),
                              bool(bits & PERM_PUBLIC_READ), bool(bits & PERM_PUBLIC_WRITE))
    type_name = reader.text(f"{where} type")
    raw = reader.byte_string(f"{where} data")
    references = _decode_refs(reader, f"{where} references")
    data = decode_data(type_name, raw, f"{where} (index {index}, type {type_name[:40]})")
    return HandleValue(index, type_name, data, ttl, ttl_type, timestamp, references, permissions)


def _decode_refs(reader: Reader, where: str) -> tuple[ValueReference, ...]:
    number = reader.count(f"{where} count", 8, MAX_REFERENCES)
    return tuple(ValueReference(reader.text(f"{where} {n} handle", MAX_HANDLE_BYTES), reader.int4(f"{where} {n} index"))
                 for n in range(number))


# -- value data -----------------------------------------------------------------------------------------------------


def encode_data(data: ValueData, index: int = 0) -> bytes:
    if isinstance(data, str):
        return data.encode("utf-8")
    if isinstance(data, bytes):
        return data
    if isinstance(data, KeyData):
        return data.key
    return _encode_structured(data, index)


def _encode_structured(data: AdminRecord | ValueList | SiteInfo, index: int) -> bytes:
    try:
        if isinstance(data, AdminRecord):
            return Writer().int2(int(data.permissions)).text(data.handle).int4(data.index).getvalue()
        if isinstance(data, ValueList):
            return encode_references(data.refs)
        return encode_site(data)
    except InvalidValue as exc:
        raise InvalidValue(f"value {index}: {exc.message}") from None


def decode_data(type_name: str, raw: bytes, where: str) -> ValueData:
    expected = STRUCTURED_DATA.get(ascii_upper(type_name))
    if expected is None:
        return raw.decode("utf-8") if looks_like_text(raw) else raw
    if expected is KeyData:
        return KeyData(raw)
    reader = Reader(raw, f"{where} data", error=InvalidValue)
    data: ValueData
    if expected is AdminRecord:
        data = _decode_admin(reader)
    elif expected is ValueList:
        data = ValueList(_decode_ref_list(reader))
    else:
        data = decode_site(reader)
    reader.done()
    return data


def looks_like_text(raw: bytes) -> bool:
    """Valid UTF-8 without control characters other than whitespace."""
    if not raw.isascii():
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            return False
    return not any((b < 0x20 and b not in _TEXT_CONTROL_OK) or b == 0x7F for b in raw)


def _decode_admin(reader: Reader) -> AdminRecord:
    bits = reader.int2("permissions") & int(AdminPermission(0xFFF))
    handle = reader.text("admin handle", MAX_HANDLE_BYTES)
    index = reader.int4("admin index")
    if not handle or index < 0:
        raise reader.fail(f"admin reference {index}:{handle!r} needs a handle and an index of 0 or more")
    if reader.remaining == 2:  # the reference's legacy layout carries two more permission bytes; ignore them
        reader.raw(2, "legacy permissions")
    return AdminRecord(handle, index, AdminPermission(bits))


def encode_references(refs: tuple[ValueReference, ...]) -> bytes:
    out = Writer().int4(len(refs))
    for ref in refs:
        out.text(ref.handle).int4(ref.index)
    return out.getvalue()


def _decode_ref_list(reader: Reader) -> tuple[ValueReference, ...]:
    number = reader.count("reference count", 8, MAX_REFERENCES)
    refs = []
    for n in range(number):
        handle = reader.text(f"reference {n} handle", MAX_HANDLE_BYTES)
        index = reader.int4(f"reference {n} index")
        if not handle or index < 0:
            raise reader.fail(f"reference {n} {index}:{handle!r} needs a handle and an index of 0 or more")
        refs.append(ValueReference(handle, index))
    return tuple(refs)


# -- HS_SITE ---------------------------------------------------------------------------------------------------------


def encode_site(site: SiteInfo) -> bytes:
    major, minor = _protocol_version(site.protocol_version)
    if not 0 <= site.serial_number <= 0xFFFF:
        raise InvalidValue(f"site serial number {site.serial_number} does not fit the 16-bit field (0..65535)")
    if not 0 <= site.version <= 0xFFFF:
        raise InvalidValue(f"site data format version {site.version} does not fit the 16-bit field")
    attributes = list(site.attributes)
    addresses = []
    for n, server in enumerate(site.servers):
        packed = _packed_address(server.address)
        if packed is None:  # a name: announce it the way Handle.Net v8+ does
            name = f"{DOMAIN_ATTRIBUTE}.{n}"
            attributes = [(k, v) for k, v in attributes if k != name] + [(name, server.address)]
            packed = bytes(IP_ADDRESS_SIZE)
        addresses.append(packed)
    out = Writer().int2(site.version).byte(major).byte(minor).int2(site.serial_number)
    out.byte((SITE_PRIMARY if site.primary else 0) | (SITE_MULTI_PRIMARY if site.multi_primary else 0))
    out.byte(int(site.hash_option)).byte_string(b"")
    out.int4(len(attributes))
    for name, value in attributes:
        out.text(name).text(value)
    out.int4(len(site.servers))
    for server, packed in zip(site.servers, addresses, strict=True):
        out.int4(server.server_id).raw(packed).byte_string(server.public_key).int4(len(server.interfaces))
        for iface in server.interfaces:
            out.byte((INTERFACE_ADMIN if iface.admin else 0) | (INTERFACE_QUERY if iface.query else 0))
            out.byte(_protocol_code(iface.protocol)).int4(iface.port)
    return out.getvalue()


def decode_site(reader: Reader) -> SiteInfo:
    version = reader.int2("data format version")
    major, minor = reader.byte("protocol major version"), reader.byte("protocol minor version")
    serial = reader.int2("serial number")
    flags = reader.byte("primary flags")
    hash_code = reader.byte("hash option")
    if hash_code not in (HashOption.BY_PREFIX, HashOption.BY_SUFFIX, HashOption.BY_ALL):
        raise reader.fail(f"hash option {hash_code} is none of 0 (prefix), 1 (suffix), 2 (whole handle)")
    reader.byte_string("hash filter")  # never used by the reference servers; not modelled
    attributes = [(reader.text(f"attribute {n} name"), reader.text(f"attribute {n} value"))
                  for n in range(reader.count("attribute count", 8, MAX_SITE_ITEMS))]
    servers = [_decode_server(reader, n) for n in range(reader.count("server count", 28, MAX_SITE_ITEMS))]
    servers, attributes = _named_servers(servers, attributes)
    return SiteInfo(servers=tuple(servers), serial_number=serial, primary=bool(flags & SITE_PRIMARY),
                    multi_primary=bool(flags & SITE_MULTI_PRIMARY), hash_option=HashOption(hash_code),
                    version=version, protocol_version=f"{major}.{minor}", attributes=tuple(attributes))


def _decode_server(reader: Reader, number: int) -> ServerInfo:
    server_id = reader.int4(f"server {number} id")
    address = _address_text(reader.raw(IP_ADDRESS_SIZE, f"server {number} address"))
    public_key = reader.byte_string(f"server {number} public key")
    interfaces = []
    for n in range(reader.count(f"server {number} interface count", 6, MAX_SITE_ITEMS)):
        kind = reader.byte(f"server {number} interface {n} type")
        protocol = reader.byte(f"server {number} interface {n} protocol")
        port = reader.int4(f"server {number} interface {n} port")
        name = PROTOCOL_NAMES.get(protocol)
        if name is None or kind > (INTERFACE_ADMIN | INTERFACE_QUERY) or not 0 <= port <= 0xFFFF:
            raise reader.fail(f"server {number} interface {n}: type {kind}, protocol {protocol}, port {port} is not "
                              "an interface (type 0-3, protocol 0 UDP 1 TCP 2 HTTP 3 HTTPS, port 0-65535)")
        interfaces.append(Interface(name, port, bool(kind & INTERFACE_QUERY), bool(kind & INTERFACE_ADMIN)))
    return ServerInfo(server_id, address, tuple(interfaces), public_key)


def _named_servers(servers: list[ServerInfo], attributes: list[tuple[str, str]],
                   ) -> tuple[list[ServerInfo], list[tuple[str, str]]]:
    """Servers with an all-zero address take their name from their `domain.<n>` attribute, which is then used up."""
    named = dict(attributes)
    used: set[str] = set()
    out = []
    for n, server in enumerate(servers):
        key = f"{DOMAIN_ATTRIBUTE}.{n}"
        if server.address == "0.0.0.0" and key in named:
            server = ServerInfo(server.server_id, named[key], server.interfaces, server.public_key)
            used.add(key)
        out.append(server)
    return out, [(k, v) for k, v in attributes if k not in used]


def _packed_address(address: str) -> bytes | None:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    return bytes(12) + ip.packed if ip.version == 4 else ip.packed


def _address_text(packed: bytes) -> str:
    # the reference takes any address whose first 12 bytes are zero for IPv4 (ServerInfo.getInetAddress)
    if not any(packed[:12]):
        return str(ipaddress.IPv4Address(packed[12:]))
    return str(ipaddress.IPv6Address(packed))


def _protocol_version(text: str) -> tuple[int, int]:
    major, dot, minor = text.partition(".")
    if not (dot and major.isdigit() and minor.isdigit() and int(major) < 256 and int(minor) < 256):
        raise InvalidValue(f"site protocol version {text!r} is not MAJOR.MINOR with parts below 256")
    return int(major), int(minor)


def _protocol_code(protocol: str) -> int:
    code = PROTOCOL_CODES.get(ascii_upper(protocol))
    if code is None:
        raise InvalidValue(f"interface protocol {protocol!r} has no native code (UDP, TCP, HTTP, HTTPS)")
    return code

