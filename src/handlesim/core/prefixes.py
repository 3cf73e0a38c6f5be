"""Records that delegate prefixes down the hierarchy: prefix handles with site information, admins and keys.

`0.NA/88.101` held by a root with HS_SITE.PREFIX makes the secondary responsible for `88.101.*`; the same record with
HS_SITE tells clients where handles `88.101/*` live. The same builders serve every tier: tiers are data.
"""

from __future__ import annotations

from dataclasses import replace

from .handle import NA_PREFIX, Handle, Prefix
from .storage import HandleRecord
from .values import (
    ADMIN_GROUP_INDEX,
    ADMIN_INDEX,
    DEFAULT_ADMIN_PERMISSIONS,
    HS_ADMIN,
    HS_SECKEY,
    HS_SITE,
    HS_SITE_PREFIX,
    HS_VLIST,
    KEY_INDEX,
    SECRET_PERMISSIONS,
    AdminPermission,
    AdminRecord,
    HandleValue,
    Interface,
    ServerInfo,
    SiteInfo,
    ValueList,
    ValueReference,
)

SITE_INDEX = 1
PREFIX_SITE_INDEX = 2
PREFIX_ADMIN_PERMISSIONS = AdminPermission.from_text("111111111111")
TRUST_ROOT_PREFIX = Prefix("0.0")
TRUST_ROOT = Handle(TRUST_ROOT_PREFIX, "0.0")
"""`0.0/0.0`, the DONA trust root: where Handle.Net clients read the root keys that sign the root service's answers
(next to `0.NA/0.NA`, the root service's sites). A client's bootstrap needs both records."""


def http_site(name: str, servers: list[tuple[str, int]], *, primary: bool = True, multi_primary: bool = False,
              serial: int = 1, hash_option: int = 2, protocol: str = "HTTP") -> SiteInfo:
    """A site whose servers speak HTTP (or HTTPS) on the given (address, port) pairs."""
    infos = tuple(ServerInfo(i + 1, addr, (Interface(protocol, port),)) for i, (addr, port) in enumerate(servers))
    return SiteInfo(servers=infos, serial_number=serial, primary=primary, multi_primary=multi_primary,
                    hash_option=hash_option, attributes=(("desc", name),))  # type: ignore[arg-type]


def owner_identity(prefix: Prefix) -> ValueReference:
    """The conventional administrator identity of a prefix: `300:0.NA/<prefix>`."""
    return ValueReference(prefix.prefix_handle().text, KEY_INDEX)


def prefix_record(prefix: Prefix, *, sites: list[SiteInfo], derived_sites: list[SiteInfo] | None = None,
                  admins: list[ValueReference] | None = None, secret_hash: str | None = None) -> HandleRecord:
    """The prefix handle `0.NA/<prefix>`.

    `sites` become HS_SITE values (where handles `<prefix>/*` live); `derived_sites` become HS_SITE.PREFIX values
    (who answers for derived prefixes `<prefix>.*`). The HS_ADMIN value names an admin group at index 200 listing
    the prefix owner (`300:0.NA/<prefix>`) and any extra `admins` (e.g. the parent tier's operator);
    `secret_hash` (already hashed) becomes the owner's HS_SECKEY at index 300.
    """
    handle = prefix.prefix_handle()
    values: list[HandleValue] = []
    for i, site in enumerate(sites):
        values.append(HandleValue(SITE_INDEX + 10 * i, HS_SITE, site))
    for i, site in enumerate(derived_sites or []):
        values.append(HandleValue(PREFIX_SITE_INDEX + 10 * i, HS_SITE_PREFIX, site))
    group = (owner_identity(prefix), *(admins or []))
    values.append(HandleValue(ADMIN_INDEX, HS_ADMIN, AdminRecord(handle.text, ADMIN_GROUP_INDEX,
                                                                 PREFIX_ADMIN_PERMISSIONS)))
    values.append(HandleValue(ADMIN_GROUP_INDEX, HS_VLIST, ValueList(tuple(group))))
    if secret_hash is not None:
        values.append(HandleValue(KEY_INDEX, HS_SECKEY, secret_hash, permissions=SECRET_PERMISSIONS))
    return HandleRecord(handle, tuple(sorted(values, key=lambda v: v.index)))


def trust_root_record(description: str) -> HandleRecord:
    """`0.0/0.0` as the roots serve it: administered by the root operators' group, and without HS_PUBKEY values,
    because a simulated root signs nothing (a client that asks for certified answers gets none, and says so)."""
    values = (HandleValue(SITE_INDEX, "DESC", description),
              HandleValue(ADMIN_INDEX, HS_ADMIN, AdminRecord(NA_PREFIX.prefix_handle().text, ADMIN_GROUP_INDEX,
                                                              PREFIX_ADMIN_PERMISSIONS)))
    return HandleRecord(TRUST_ROOT, values)


def admin_value(prefix: Prefix, permissions: AdminPermission = DEFAULT_ADMIN_PERMISSIONS) -> HandleValue:
    """The HS_ADMIN value an ordinary handle under `prefix` carries: the prefix's admin group may change it."""
    return HandleValue(ADMIN_INDEX, HS_ADMIN, AdminRecord(prefix.prefix_handle().text, ADMIN_GROUP_INDEX, permissions))


def handle_record(handle: Handle, values: list[HandleValue], *, with_admin: bool = True) -> HandleRecord:
    extra = [admin_value(handle.prefix)] if with_admin and not any(v.index == ADMIN_INDEX for v in values) else []
    return HandleRecord(handle, tuple(sorted([*values, *extra], key=lambda v: v.index)))


def native_interfaces(tcp_port: int, udp_port: int) -> tuple[Interface, ...]:
    """A server's native-protocol interfaces as a Handle.Net site lists them: TCP for queries and administration,
    UDP for queries only (administration needs the challenge-response a connection carries best)."""
    return (Interface("TCP", tcp_port, query=True, admin=True), Interface("UDP", udp_port, query=True, admin=False))


def with_native_interfaces(site: SiteInfo, ports: list[tuple[int, int]]) -> SiteInfo:
    """`site` with each server's native interfaces added after its own: `ports[i]` is server i's (tcp, udp)."""
    if len(ports) != len(site.servers):
        raise ValueError(f"{len(ports)} port pairs for a site of {len(site.servers)} servers")
    servers = tuple(replace(server, interfaces=(*server.interfaces, *native_interfaces(tcp, udp)))
                    for server, (tcp, udp) in zip(site.servers, ports, strict=True))
    return replace(site, servers=servers)


def native_site(name: str, servers: list[tuple[str, int, int]], *, primary: bool = True, serial: int = 1,
                hash_option: int = 2) -> SiteInfo:
    """A site whose servers speak only the native protocol, on the given (address, tcp port, udp port)."""
    infos = tuple(ServerInfo(i + 1, address, native_interfaces(tcp, udp))
                  for i, (address, tcp, udp) in enumerate(servers))
    return SiteInfo(servers=infos, serial_number=serial, primary=primary, hash_option=hash_option,  # type: ignore[arg-type]
                    attributes=(("desc", name),))
