"""Authorization (HS_ADMIN / HS_VLIST evaluation) and secret-key hashing, as pure functions.

Rules, after Handle.Net:
- server admins may do anything on their node;
- creating `P/S` needs ADD_HANDLE in the HS_ADMIN values of `0.NA/P`; creating a derived prefix handle `0.NA/X.Y.Z`
  needs ADD_DERIVED_PREFIX in those of `0.NA/X.Y`;
- changing or deleting a record needs the matching bit in the record's own HS_ADMIN values (admin values need the
  *_ADMIN bits); a record without HS_ADMIN can be changed by server admins only;
- an HS_ADMIN value names an identity `index:handle` (index 0 = any index of that handle) or an HS_VLIST admin group,
  whose members may themselves be groups (nested, loop-safe, depth-bounded).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable, Iterable, Sequence

from .errors import AuthenticationNeeded, InsufficientPermissions, InvalidAdmin, InvalidCredential
from .handle import Handle, ascii_upper
from .storage import HandleRecord
from .values import HS_ADMIN, HS_VLIST, AdminPermission, AdminRecord, HandleValue, ValueList, ValueReference

LookupRecord = Callable[[str], HandleRecord | None]
"""Finds a record by handle key (the node's own store); used to expand admin groups."""

MAX_GROUP_DEPTH = 8
"""Default for how deep HS_VLIST admin groups are followed (a node's `ServiceLimits.max_group_depth`)."""


def _same_handle(a: str, b: str) -> bool:
    return ascii_upper(a) == ascii_upper(b)


def identity_is(identity: ValueReference, ref: ValueReference) -> bool:
    """Does the authenticated identity match an admin reference (index 0 in the reference matches any index)?"""
    return _same_handle(identity.handle, ref.handle) and ref.index in (0, identity.index)


def in_admin_group(identity: ValueReference, ref: ValueReference, lookup: LookupRecord,
                   seen: frozenset[tuple[str, int]] = frozenset(), depth: int = 0, *,
                   max_depth: int = MAX_GROUP_DEPTH) -> bool:
    """True when `ref` is the identity itself or an HS_VLIST group (transitively) containing it.

    A group nested deeper than `max_depth` is refused with InvalidAdmin (a clear answer, not a silent 'no')."""
    if identity_is(identity, ref):
        return True
    mark = (ascii_upper(ref.handle), ref.index)
    if mark in seen:
        return False
    try:
        record = lookup(Handle.from_text(ref.handle).key)
    except ValueError:
        return False
    group = record.value_at(ref.index) if record is not None else None
    if group is None or group.type_key != HS_VLIST or not isinstance(group.data, ValueList):
        return False
    if depth >= max_depth:
        raise InvalidAdmin(f"admin group {ref.to_text()} is nested more than {max_depth} groups deep "
                           "(limit max_group_depth)")
    return any(in_admin_group(identity, member, lookup, seen | {mark}, depth + 1, max_depth=max_depth)
               for member in group.data.refs)


def admin_values(record: HandleRecord | None) -> list[AdminRecord]:
    if record is None:
        return []
    return [v.data for v in record.values if v.type_key == HS_ADMIN and isinstance(v.data, AdminRecord)]


def granted(identity: ValueReference, admins: Iterable[AdminRecord], lookup: LookupRecord, *,
            max_depth: int = MAX_GROUP_DEPTH) -> AdminPermission:
    """Union of the permission bits of every HS_ADMIN value whose admin reference covers the identity."""
    bits = AdminPermission(0)
    for admin in admins:
        if in_admin_group(identity, admin.admin_ref, lookup, max_depth=max_depth):
            bits |= admin.permissions
    return bits


def require(identity: ValueReference | None, needed: AdminPermission, governing: HandleRecord | None,
            lookup: LookupRecord, server_admins: Sequence[ValueReference], what: str, *,
            max_depth: int = MAX_GROUP_DEPTH) -> None:
    """The one decision point for writes: raise unless `identity` holds every bit of `needed` on `governing`."""
    if identity is None:
        raise AuthenticationNeeded(f"{what} needs authentication (HTTP Basic as index:handle, or a session)")
    if any(in_admin_group(identity, admin, lookup, max_depth=max_depth) for admin in server_admins):
        return
    admins = admin_values(governing)
    if not admins:
        where = governing.handle.text if governing is not None else "this node"
        raise InvalidAdmin(f"{what}: {where} has no HS_ADMIN values, so only the node's server admins may do it")
    missing = needed & ~granted(identity, admins, lookup, max_depth=max_depth)
    if missing:
        names = ", ".join(p.name.lower().replace("_", " ") for p in AdminPermission if p & missing and p.name)
        raise InsufficientPermissions(f"{what}: {identity.to_text()} lacks permission: {names}")


def change_permissions(old: Sequence[HandleValue], new: Sequence[HandleValue]) -> AdminPermission:
    """Bits needed to turn a record's values `old` into `new` (admin values need the *_ADMIN bits)."""
    before = {v.index: v for v in old}
    after = {v.index: v for v in new}
    needed = AdminPermission(0)
    for index, value in after.items():
        is_admin = value.type_key == HS_ADMIN
        if index not in before:
            needed |= AdminPermission.ADD_ADMIN if is_admin else AdminPermission.ADD_VALUE
        elif _differs(before[index], value):
            was_admin = before[index].type_key == HS_ADMIN
            needed |= AdminPermission.MODIFY_ADMIN if is_admin or was_admin else AdminPermission.MODIFY_VALUE
    for index, value in before.items():
        if index not in after:
            needed |= AdminPermission.REMOVE_ADMIN if value.type_key == HS_ADMIN else AdminPermission.REMOVE_VALUE
    return needed


def _differs(a: HandleValue, b: HandleValue) -> bool:
    return (a.type_key, a.data, a.ttl, a.ttl_type, a.references, a.permissions) != (
        b.type_key, b.data, b.ttl, b.ttl_type, b.references, b.permissions)


# Secret keys: stored as PBKDF2-HMAC-SHA256 hashes, never in the clear.
SECRET_SCHEME = "pbkdf2_sha256"
DEFAULT_SECRET_ITERATIONS = 10_000


def hash_secret(secret: str, salt: bytes, iterations: int = DEFAULT_SECRET_ITERATIONS) -> str:
    digest = hashlib.pbkdf2_hmac("sha256", secret.encode("utf-8"), salt, iterations)
    return "$".join((SECRET_SCHEME, str(iterations), _b64(salt), _b64(digest)))


def is_hashed_secret(data: str) -> bool:
    parts = data.split("$")
    return len(parts) == 4 and parts[0] == SECRET_SCHEME and parts[1].isdigit()


def parse_hashed_secret(stored: str) -> tuple[int, bytes, bytes] | None:
    """(iterations, salt, digest) of a stored HS_SECKEY hash; None when it is not one."""
    if not is_hashed_secret(stored):
        return None
    _, iterations, salt, digest = stored.split("$")
    try:
        return int(iterations), base64.b64decode(salt, validate=True), base64.b64decode(digest, validate=True)
    except ValueError:
        return None


def verify_secret(stored: str, secret: str) -> bool:
    """Constant-time check of a secret against a stored hash (a malformed stored value never matches)."""
    parsed = parse_hashed_secret(stored)
    if parsed is None:
        return False
    iterations, salt, expected = parsed
    try:
        candidate = hashlib.pbkdf2_hmac("sha256", secret.encode("utf-8"), salt, iterations)
    except (ValueError, UnicodeEncodeError):
        return False
    return hmac.compare_digest(expected, candidate)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def parse_identity(text: str) -> ValueReference:
    """`300:0.NA/88.101` as an identity, or InvalidCredential saying why not."""
    try:
        identity = ValueReference.from_text(text)
        Handle.from_text(identity.handle)
    except ValueError as exc:
        raise InvalidCredential(f"{text!r} is not an identity INDEX:HANDLE ({exc})") from None
    return identity
