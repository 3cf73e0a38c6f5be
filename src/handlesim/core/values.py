"""Handle values and the structured data of the well-known types (HS_ADMIN, HS_VLIST, HS_SITE, keys, ...)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum, IntFlag
from typing import NamedTuple

from .errors import InvalidValue
from .handle import Handle, ascii_upper

# Well-known types.
URL = "URL"
EMAIL = "EMAIL"
HS_ADMIN = "HS_ADMIN"
HS_VLIST = "HS_VLIST"
HS_SITE = "HS_SITE"
HS_SITE_6 = "HS_SITE.6"
HS_SITE_PREFIX = "HS_SITE.PREFIX"
HS_SERV = "HS_SERV"
HS_SERV_PREFIX = "HS_SERV.PREFIX"
HS_SECKEY = "HS_SECKEY"
HS_PUBKEY = "HS_PUBKEY"
HS_ALIAS = "HS_ALIAS"
HS_NAMESPACE = "HS_NAMESPACE"

SITE_TYPES = (HS_SITE, HS_SITE_6)
PREFIX_SITE_TYPES = (HS_SITE_PREFIX, HS_SERV_PREFIX)

# Index conventions (Handle.Net): HS_ADMIN 100, admin group 200, keys 300.
ADMIN_INDEX = 100
ADMIN_GROUP_INDEX = 200
KEY_INDEX = 300

MAX_INDEX = 2**31 - 1
DEFAULT_TTL = 86400
MAX_TYPE_LENGTH = 256


class TTLType(IntEnum):
    RELATIVE = 0
    ABSOLUTE = 1


@dataclass(frozen=True, slots=True)
class Permissions:
    """The four permission bits of a value, as Handle.Net writes them: admin read/write, public read/write."""

    admin_read: bool = True
    admin_write: bool = True
    public_read: bool = True
    public_write: bool = False

    def to_text(self) -> str:
        bits = (self.admin_read, self.admin_write, self.public_read, self.public_write)
        return "".join("1" if bit else "0" for bit in bits)

    @classmethod
    def from_text(cls, text: str) -> Permissions:
        if len(text) != 4 or set(text) - {"0", "1"}:
            raise InvalidValue(f"permissions {text!r} must be four characters of 0/1 (admin r/w, public r/w)")
        bits = [c == "1" for c in text]
        return cls(*bits)


DEFAULT_PERMISSIONS = Permissions()
SECRET_PERMISSIONS = Permissions(public_read=False)


class AdminPermission(IntFlag):
    """The 12 HS_ADMIN permission bits; the text form is 12 characters, rightmost = ADD_HANDLE (bit 0)."""

    ADD_HANDLE = 0x001
    DELETE_HANDLE = 0x002
    ADD_DERIVED_PREFIX = 0x004
    DELETE_DERIVED_PREFIX = 0x008
    MODIFY_VALUE = 0x010
    REMOVE_VALUE = 0x020
    ADD_VALUE = 0x040
    MODIFY_ADMIN = 0x080
    REMOVE_ADMIN = 0x100
    ADD_ADMIN = 0x200
    READ_VALUE = 0x400
    LIST_HANDLES = 0x800

    @classmethod
    def from_text(cls, text: str) -> AdminPermission:
        if len(text) != 12 or set(text) - {"0", "1"}:
            raise InvalidValue(f"admin permissions {text!r} must be 12 characters of 0/1 (rightmost = add handle)")
        return cls(int(text, 2))

    def to_text(self) -> str:
        return format(int(self), "012b")


DEFAULT_ADMIN_PERMISSIONS = AdminPermission.from_text("011111110011")
ALL_ADMIN_PERMISSIONS = AdminPermission(0xFFF)


@dataclass(frozen=True, slots=True)
class ValueReference:
    """A pointer to one value of a handle (`index:handle`); also the shape of an authenticated identity."""

    handle: str
    index: int

    def to_text(self) -> str:
        return f"{self.index}:{self.handle}"

    @classmethod
    def from_text(cls, text: str) -> ValueReference:
        index_text, colon, handle = text.partition(":")
        if not colon or not index_text.isdigit() or not handle:
            raise InvalidValue(f"identity {text!r} must look like INDEX:HANDLE, e.g. 300:0.NA/88.101")
        return cls(handle, int(index_text))

    @property
    def key(self) -> tuple[str, int]:
        return (Handle.from_text(self.handle).key, self.index)


@dataclass(frozen=True, slots=True)
class AdminRecord:
    """HS_ADMIN data: who (a value reference) may do what (12 permission bits)."""

    handle: str
    index: int
    permissions: AdminPermission = DEFAULT_ADMIN_PERMISSIONS

    @property
    def admin_ref(self) -> ValueReference:
        return ValueReference(self.handle, self.index)


@dataclass(frozen=True, slots=True)
class ValueList:
    """HS_VLIST data: an admin group, a list of value references (may name other groups)."""

    refs: tuple[ValueReference, ...]


@dataclass(frozen=True, slots=True)
class Interface:
    """One way to reach a server. We speak HTTP; `query`/`admin` say what the interface accepts."""

    protocol: str = "HTTP"
    port: int = 8000
    query: bool = True
    admin: bool = True


@dataclass(frozen=True, slots=True)
class ServerInfo:
    server_id: int
    address: str
    interfaces: tuple[Interface, ...] = (Interface(),)
    public_key: bytes = b""

    def http_interface(self) -> Interface:
        for iface in self.interfaces:
            if iface.protocol.upper() in ("HTTP", "HTTPS"):
                return iface
        raise InvalidValue(f"server {self.server_id} at {self.address} has no HTTP interface")

    def interface(self, protocol: str) -> Interface | None:
        """The server's interface for `protocol` (`UDP`, `TCP`, `HTTP`, `HTTPS`), or None when it has none."""
        wanted = protocol.upper()
        return next((iface for iface in self.interfaces if iface.protocol.upper() == wanted), None)

    def url(self) -> str:
        iface = self.http_interface()
        scheme = "https" if iface.protocol.upper() == "HTTPS" else "http"
        return f"{scheme}://{self.address}:{iface.port}"


class HashOption(IntEnum):
    BY_PREFIX = 0
    BY_SUFFIX = 1
    BY_ALL = 2


@dataclass(frozen=True, slots=True)
class SiteInfo:
    """HS_SITE data: one site (a primary or a mirror) of a service, with its servers."""

    servers: tuple[ServerInfo, ...]
    serial_number: int = 1
    primary: bool = True
    multi_primary: bool = False
    hash_option: HashOption = HashOption.BY_ALL
    version: int = 1
    protocol_version: str = "2.10"
    attributes: tuple[tuple[str, str], ...] = ()

    def attribute(self, name: str) -> str | None:
        for key, value in self.attributes:
            if key == name:
                return value
        return None

    @property
    def name(self) -> str:
        """A label for traces: the site's `desc` attribute, or its first server's address."""
        desc = self.attribute("desc")
        if desc:
            return desc
        if not self.servers:
            return "empty site"
        server = self.servers[0]
        return f"{server.address}:{server.http_interface().port}"

    def server_for(self, handle: Handle) -> ServerInfo:
        """The server this site's hash option assigns `handle` to (MD5, last 4 bytes, abs, mod n)."""
        if not self.servers:
            raise InvalidValue(f"site {self.name} lists no servers")
        if len(self.servers) == 1:
            return self.servers[0]
        return self.servers[handle_hash(handle, self.hash_option) % len(self.servers)]


def handle_hash(handle: Handle, hash_option: int) -> int:
    """Handle.Net's SiteInfo.getHandleHash: MD5 of the upper-cased part, last four bytes as signed int32, abs()."""
    digest = hashlib.md5(handle.part_for_hash(hash_option).encode("utf-8"), usedforsecurity=False).digest()
    return abs(int.from_bytes(digest[-4:], "big", signed=True))


HASH_OPTION_NAMES = {"prefix": HashOption.BY_PREFIX, "suffix": HashOption.BY_SUFFIX, "handle": HashOption.BY_ALL}
"""Hash options by the names topology files use."""


@dataclass(frozen=True, slots=True)
class HashBucket:
    """The share of handles one server of a hash-partitioned site holds: those `SiteInfo.server_for` sends to it."""

    hash_option: HashOption
    """What is hashed: the prefix, the suffix or the whole handle (upper-cased)."""
    index: int
    """This server's position in the site's server list (0-based)."""
    servers: int
    """How many servers the site has."""

    def holds(self, handle: Handle) -> bool:
        return self.servers <= 1 or handle_hash(handle, self.hash_option) % self.servers == self.index


@dataclass(frozen=True, slots=True)
class KeyData:
    """HS_PUBKEY data, kept as the encoded key bytes (format "key" in REST JSON)."""

    key: bytes


ValueData = str | bytes | AdminRecord | ValueList | SiteInfo | KeyData


class HandleValue(NamedTuple):
    """One value of a handle record. `data` is text (format "string"), raw bytes, or one of the structured types.

    A NamedTuple rather than a frozen dataclass: records hold hundreds of thousands of these and a tuple is built
    several times faster, which is what a 1,000-enterprise topology's boot time is made of.
    """

    index: int  # type: ignore[assignment]  # shadows tuple.index on purpose: the protocol calls it index
    type: str
    data: ValueData
    ttl: int = DEFAULT_TTL
    ttl_type: TTLType = TTLType.RELATIVE
    timestamp: int = 0
    references: tuple[ValueReference, ...] = ()
    permissions: Permissions = DEFAULT_PERMISSIONS

    @property
    def type_key(self) -> str:
        """The type upper-cased (ASCII) for matching."""
        return ascii_upper(self.type)

    def validate(self) -> HandleValue:
        """Raise InvalidValue unless index, type, TTL and data agree with the protocol's rules."""
        if isinstance(self.index, bool) or not isinstance(self.index, int) or not 0 < self.index <= MAX_INDEX:
            raise InvalidValue(f"value index {self.index!r} must be an integer from 1 to {MAX_INDEX} (0 is reserved)")
        if not isinstance(self.type, str) or not self.type:
            raise InvalidValue(f"value {self.index} has an empty type")
        if len(self.type.encode("utf-8", "surrogatepass")) > MAX_TYPE_LENGTH:
            raise InvalidValue(f"value {self.index} has a type longer than {MAX_TYPE_LENGTH} bytes")
        if any(ord(c) < 0x20 for c in self.type):
            raise InvalidValue(f"value {self.index} has a control character in its type {self.type!r}")
        if not -(2**31) <= self.ttl < 2**32:
            raise InvalidValue(f"value {self.index} has a TTL {self.ttl} outside the 32-bit range")
        expected = STRUCTURED_DATA.get(self.type_key)
        if expected is not None and not isinstance(self.data, expected):
            raise InvalidValue(f"value {self.index} of type {self.type} needs {expected.__name__} data, "
                               f"got {type(self.data).__name__}")
        if isinstance(self.data, str):
            try:
                self.data.encode("utf-8")
            except UnicodeEncodeError:
                raise InvalidValue(f"value {self.index} data is not valid UTF-8") from None
        return self

    def matches(self, types: Iterable[str], indexes: Iterable[int]) -> bool:
        return type_in(self.type_key, types) or self.index in indexes

    def expires_at(self, retrieved_at: float) -> float:
        """The absolute time (epoch seconds) after which a cached copy must be dropped."""
        if self.ttl_type == TTLType.ABSOLUTE:
            return float(self.ttl)
        return retrieved_at + max(self.ttl, 0)

    def stamped(self, now: float) -> HandleValue:
        return self._replace(timestamp=int(now))


# Types whose data must be structured (keys are upper-cased types).
STRUCTURED_DATA: dict[str, type] = {
    HS_ADMIN: AdminRecord,
    HS_VLIST: ValueList,
    HS_SITE: SiteInfo,
    HS_SITE_6: SiteInfo,
    HS_SITE_PREFIX: SiteInfo,
    HS_PUBKEY: KeyData,
}


def type_matches(value_type_key: str, wanted: str) -> bool:
    """A type filter matches exactly (ASCII case-insensitive); a filter ending in '.' also matches its subtypes."""
    wanted_key = ascii_upper(wanted)
    if wanted_key.endswith("."):
        return value_type_key == wanted_key[:-1] or value_type_key.startswith(wanted_key)
    return value_type_key == wanted_key


def type_in(value_type_key: str, types: Iterable[str]) -> bool:
    return any(type_matches(value_type_key, t) for t in types)


def select_values(values: Iterable[HandleValue], types: tuple[str, ...] = (), indexes: tuple[int, ...] = (),
                  *, public_only: bool = True) -> list[HandleValue]:
    """Values matching the filters (union of type and index filters; none means all), publicly readable if asked."""
    chosen = []
    everything = not types and not indexes
    for value in values:
        if public_only and not value.permissions.public_read:
            continue
        if everything or value.matches(types, indexes):
            chosen.append(value)
    return chosen


def sites_from_values(values: Iterable[HandleValue], types: Iterable[str] = SITE_TYPES) -> list[SiteInfo]:
    wanted = tuple(types)
    return [v.data for v in values if isinstance(v.data, SiteInfo) and type_in(v.type_key, wanted)]


def check_unique_indexes(values: Iterable[HandleValue]) -> None:
    seen: set[int] = set()
    for value in values:
        if value.index in seen:
            raise InvalidValue(f"index {value.index} appears twice in the request")
        seen.add(value.index)
