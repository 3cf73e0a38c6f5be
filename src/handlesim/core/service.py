"""HandleService: what one node does with a request, whatever its role in the hierarchy.

Roles are data: the prefixes a node homes and the records in its store decide whether it answers values, refers the
client down the hierarchy (303 prefix referral), or says it is not responsible (301). `handle(request, now)` never
raises a HandleError; it answers it.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from . import auth
from .codes import OpCode, ResponseCode
from .errors import (
    HandleAlreadyExists,
    HandleError,
    HandleNotFound,
    InvalidHandle,
    InvalidValue,
    OperationNotSupported,
    ProtocolError,
    ServerNotResponsible,
    ValueAlreadyExists,
    ValuesNotFound,
)
from .handle import DEFAULT_MAX_HANDLE_BYTES, NA_PREFIX, Handle, Prefix
from .messages import Request, Response, error_response
from .storage import HandleRecord, MemoryOutbox, OutboxEntry, ReplicationLog, Store
from .values import (
    ADMIN_INDEX,
    HS_ADMIN,
    HS_SECKEY,
    PREFIX_SITE_TYPES,
    AdminPermission,
    AdminRecord,
    HandleValue,
    HashBucket,
    ValueReference,
    check_unique_indexes,
    handle_hash,
    select_values,
    type_in,
)

P = AdminPermission


@dataclass(frozen=True)
class ServiceLimits:
    """Bounds on what one request may ask for; exceeding one is answered with a protocol error, never a crash."""

    max_values_per_handle: int = 1000
    """Most values one handle record may hold."""
    max_value_bytes: int = 64 * 1024
    """Largest data of a single value (encoded size)."""
    max_filter_items: int = 64
    """Most entries in a request's index or type list."""
    max_page_size: int = 10_000
    """Largest page of a handle listing (page size 0 means 'all', capped to this; a larger pageSize is refused)."""
    max_handle_bytes: int = DEFAULT_MAX_HANDLE_BYTES
    """Longest handle (UTF-8 bytes, prefix and suffix together) a request may name."""
    max_suffix_bytes: int = 512
    """Longest suffix (the part after the first '/', UTF-8 bytes) a request may name."""
    max_group_depth: int = auth.MAX_GROUP_DEPTH
    """Deepest nesting of HS_VLIST admin groups followed when checking permissions; deeper nesting is refused."""


@dataclass
class ServiceConfig:
    """How a node behaves. Built by the topology layer; the core never reads files or the environment."""

    node_id: str
    """Name of the node in traces and statistics (e.g. `root-qingdao`, `ent-88.101.2001`)."""
    homed_prefixes: tuple[str, ...] = ()
    """Prefixes this node is responsible for, used when the store holds none yet (`0.NA` makes a node a root)."""
    server_admins: tuple[ValueReference, ...] = ()
    """Identities allowed every operation on this node."""
    read_only: bool = False
    """A mirror: answers reads, refuses writes with 301 naming `primary`."""
    primary: str = ""
    """Where writes go when this node is a mirror (text for the error message)."""
    limits: ServiceLimits = field(default_factory=ServiceLimits)
    secret_iterations: int = auth.DEFAULT_SECRET_ITERATIONS
    """PBKDF2 iterations for HS_SECKEY values written through this node."""
    mint_suffix: Callable[[], str] = field(default=lambda: uuid.uuid4().hex)
    """Source of suffixes for `mintNewSuffix` creates."""
    random_bytes: Callable[[int], bytes] = field(default=os.urandom)
    """Source of salts for secret-key hashing."""
    partition: HashBucket | None = None
    """For one server of a hash-partitioned site: the handles it holds. Asked for any other handle of its prefixes
    (its own prefix handles excepted: every server of the site holds those), it answers 301 (not responsible)."""


ChangeListener = Callable[[str], None]


class HandleService:
    """One node's Handle logic over one store."""

    def __init__(self, config: ServiceConfig, store: Store) -> None:
        self.config = config
        self.store = store
        persisted = store.homed_prefixes()
        if not persisted and config.homed_prefixes:
            store.set_homed_prefixes(list(config.homed_prefixes))
            persisted = list(config.homed_prefixes)
        self.counts: Counter[tuple[int, int]] = Counter()
        """Requests answered, by (opcode, response code)."""
        self.listeners: list[ChangeListener] = []
        """Called with a handle key after every committed change ("" when homed prefixes change)."""
        self.replication_peers: tuple[str, ...] = ()
        """Names of the peers every accepted change must reach: each write logs one entry per peer, with the change
        itself when the store keeps a ReplicationLog (durable), else in `volatile_log` (lost with the process)."""
        self.volatile_log = MemoryOutbox()
        self._homed: dict[str, Prefix] = {}
        self._set_homed(persisted)
        self._ops: dict[OpCode, Callable[[Request, float], Response]] = {
            OpCode.RESOLUTION: self._resolve,
            OpCode.CREATE_HANDLE: self._create,
            OpCode.DELETE_HANDLE: self._delete,
            OpCode.ADD_VALUE: self._add_values,
            OpCode.MODIFY_VALUE: self._modify_values,
            OpCode.REMOVE_VALUE: self._remove_values,
            OpCode.LIST_HANDLES: self._list_handles,
            OpCode.HOME_NA: self._home,
            OpCode.UNHOME_NA: self._unhome,
            OpCode.LIST_HOMED_NAS: self._list_homed,
        }

    # -- dispatch -----------------------------------------------------------------------------------------------

    def handle(self, request: Request, now: float) -> Response:
        """Answer one request and count it. Protocol errors become error responses; the store is unchanged by a
        failed request."""
        response = self.answer(request, now)
        self.counts[(int(request.op), int(response.code))] += 1
        return response

    def answer(self, request: Request, now: float) -> Response:
        """`handle` without counting the request: for answers the node works out ahead of any client's request
        (the public answers a node encodes when it starts, net/handleroutes.py `encode_ahead`)."""
        try:
            operation = self._ops.get(request.op)
            if operation is None:
                raise OperationNotSupported(f"operation {int(request.op)} is not supported by this node")
            self._check_filters(request)
            return operation(request, now)
        except HandleError as exc:
            return error_response(exc.response_code, exc.message, exc.handle or request.handle_text)

    @property
    def homed_prefixes(self) -> list[Prefix]:
        return list(self._homed.values())

    def homes(self, prefix: Prefix) -> bool:
        return prefix.key in self._homed

    def is_responsible(self, handle: Handle) -> bool:
        """Handles of a homed prefix; and prefix handles `0.NA/Q` with Q under a homed prefix (derived prefixes)."""
        if handle.prefix.key in self._homed:
            return True
        if handle.is_prefix_handle:
            described = handle.described_prefix()
            return any(described.is_under(p) for p in self._homed.values())
        return False

    # -- resolution ---------------------------------------------------------------------------------------------

    def _resolve(self, request: Request, now: float) -> Response:
        handle = self._need_handle(request)
        if not self.is_responsible(handle):
            raise ServerNotResponsible(f"prefix {handle.prefix.text} is not homed at {self.config.node_id}",
                                       handle=handle.text)
        if self.config.partition is not None:
            self._check_bucket(handle)
        record = self.store.get(handle.key)
        if record is None:
            referral = self._prefix_referral(handle) if handle.is_prefix_handle else None
            if referral is not None:
                return referral
            raise HandleNotFound(f"handle {handle.text} not found at {self.config.node_id}", handle=handle.text)
        public_only = request.public_only or not self._may_read_private(request, record)
        values = select_values(record.values, request.types, request.indexes, public_only=public_only)
        if not values and (request.types or request.indexes or record.values):
            raise ValuesNotFound(f"{handle.text} has no {'public ' if public_only else ''}values matching the request",
                                 handle=record.handle.text)
        return Response(ResponseCode.SUCCESS, record.handle.text, tuple(values))

    def _prefix_referral(self, handle: Handle) -> Response | None:
        """The derived-prefix walk: refer to the nearest ancestor's public HS_SITE.PREFIX / HS_SERV.PREFIX values.

        The walk stops at an ancestor this node homes: there it is authoritative, so the prefix does not exist.
        """
        for ancestor in handle.described_prefix().ancestors():
            if ancestor.key in self._homed:
                return None
            record = self.store.get(ancestor.prefix_handle().key)
            if record is None:
                continue
            sites = [v for v in record.values if v.permissions.public_read and type_in(v.type_key, PREFIX_SITE_TYPES)]
            if sites:
                return Response(ResponseCode.PREFIX_REFERRAL, handle.text, tuple(sites),
                                message=f"prefix referral to the service of {ancestor.text}")
        return None

    def _may_read_private(self, request: Request, record: HandleRecord) -> bool:
        if request.identity is None:
            return False
        try:
            auth.require(request.identity, P.READ_VALUE, record, self.store.get, self.config.server_admins, "read",
                         max_depth=self.config.limits.max_group_depth)
        except HandleError:
            return False
        return True

    # -- writes -------------------------------------------------------------------------------------------------

    def _create(self, request: Request, now: float) -> Response:
        handle = self._writable_handle(request)
        if request.mint_new_suffix:
            handle = self._minted(handle)
        values = self._incoming_values(request, now)
        existing = self.store.get(handle.key)
        if existing is not None and not request.overwrite:
            raise HandleAlreadyExists(f"handle {existing.handle.text} already exists", handle=existing.handle.text)
        if existing is None:
            self._authorize_create(request, handle)
            record = HandleRecord(handle, _with_creator_admin(values, request.identity))
        else:
            needed = auth.change_permissions(existing.values, values)
            self._authorize(request, needed, existing, f"overwrite {existing.handle.text}")
            record = HandleRecord(existing.handle, values)
        self._commit(record, now)
        return Response(ResponseCode.SUCCESS, record.handle.text, created=not request.overwrite)

    def _delete(self, request: Request, now: float) -> Response:
        handle = self._writable_handle(request)
        record = self._existing(handle)
        needed = P.DELETE_HANDLE
        self._authorize(request, needed, record, f"delete {record.handle.text}")
        changes = self._log_entries(record, now, deleted=True)
        if changes and isinstance(self.store, ReplicationLog):
            self.store.delete_logged(record.key, changes)
        else:
            self.store.delete(record.key)
            self.volatile_log.add(self.volatile_log.numbered(changes))
        self._notify(record.key)
        return Response(ResponseCode.SUCCESS, record.handle.text)

    def _add_values(self, request: Request, now: float) -> Response:
        """Add values at their indexes; with overwrite on, values already there are replaced."""
        record = self._existing(self._writable_handle(request))
        incoming = self._incoming_values(request, now)
        taken = {v.index for v in record.values} & {v.index for v in incoming}
        if taken and not request.overwrite:
            raise ValueAlreadyExists(f"{record.handle.text} already has values at index {sorted(taken)}",
                                     handle=record.handle.text)
        return self._change(request, record, _merge(record.values, incoming, ()), now, created=not request.overwrite)

    def _modify_values(self, request: Request, now: float) -> Response:
        record = self._existing(self._writable_handle(request))
        incoming = self._incoming_values(request, now)
        missing = {v.index for v in incoming} - {v.index for v in record.values}
        if missing:
            raise ValuesNotFound(f"{record.handle.text} has no values at index {sorted(missing)} to modify",
                                 handle=record.handle.text)
        return self._change(request, record, _merge(record.values, incoming, ()), now)

    def _remove_values(self, request: Request, now: float) -> Response:
        record = self._existing(self._writable_handle(request))
        present = {v.index for v in record.values} & set(request.indexes)
        if not present:
            raise ValuesNotFound(f"{record.handle.text} has no values at index {sorted(request.indexes)}",
                                 handle=record.handle.text)
        return self._change(request, record, _merge(record.values, (), tuple(present)), now)

    def _change(self, request: Request, record: HandleRecord, values: tuple[HandleValue, ...], now: float,
                created: bool = False) -> Response:
        needed = auth.change_permissions(record.values, values)
        self._authorize(request, needed, record, f"change {record.handle.text}")
        self._check_record_size(values)
        self._commit(HandleRecord(record.handle, values), now)
        return Response(ResponseCode.SUCCESS, record.handle.text, created=created)

    def _authorize_create(self, request: Request, handle: Handle) -> None:
        if handle.is_prefix_handle:
            parent = handle.parent()
            governing = self.store.get(parent.key) if parent is not None else None
            self._authorize(request, P.ADD_DERIVED_PREFIX, governing, f"create derived prefix {handle.text}")
        else:
            governing = self.store.get(handle.prefix_handle().key)
            self._authorize(request, P.ADD_HANDLE, governing, f"create {handle.text}")

    def _authorize(self, request: Request, needed: AdminPermission, governing: HandleRecord | None, what: str) -> None:
        if needed:
            auth.require(request.identity, needed, governing, self.store.get, self.config.server_admins, what,
                         max_depth=self.config.limits.max_group_depth)

    def _commit(self, record: HandleRecord, now: float) -> None:
        self._check_record_size(record.values)
        changes = self._log_entries(record, now, deleted=False)
        if changes and isinstance(self.store, ReplicationLog):
            self.store.put_logged(record, changes)
        else:
            self.store.put(record)
            self.volatile_log.add(self.volatile_log.numbered(changes))
        self._notify(record.key)

    def _log_entries(self, record: HandleRecord, now: float, *, deleted: bool) -> list[OutboxEntry]:
        deleted_at = int(now) if deleted else 0
        return [OutboxEntry(peer, record.key, record.handle.text, deleted_at, now) for peer in self.replication_peers]

    # -- the outgoing replication log ----------------------------------------------------------------------------

    def outbox(self, peer: str) -> list[OutboxEntry]:
        """Accepted changes not yet delivered to `peer`, oldest first (durable ones first)."""
        durable = self.store.outbox(peer) if isinstance(self.store, ReplicationLog) else []
        return durable + self.volatile_log.outbox(peer)

    def outbox_delivered(self, entries: list[OutboxEntry]) -> None:
        if isinstance(self.store, ReplicationLog):
            self.store.outbox_delivered(entries)
        self.volatile_log.outbox_delivered(entries)

    def _notify(self, key: str) -> None:
        for listener in self.listeners:
            listener(key)

    # -- replication (multi-primary) ---------------------------------------------------------------------------

    def apply_replicated(self, handle: Handle, values: tuple[HandleValue, ...] | None, deleted_at: int,
                         identity: ValueReference | None) -> Response:
        """Apply a change a peer primary committed; `values` None means the peer deleted the handle at `deleted_at`.

        Conflicts settle by timestamp as Handle.Net's multi-primary replication does: the newer record wins (newest
        value timestamp; a content digest breaks ties the same way on every primary), a delete wins over anything
        not written after it. A mirror (read-only) applies what its primary sends as it comes. Only server admins
        (the replication identities) may replicate."""
        try:
            self._authorize(request=Request(OpCode.CREATE_HANDLE, handle, identity=identity), needed=~P(0),
                            governing=None, what=f"replicate {handle.text}")
            current = self.store.get(handle.key)
            # a mirror has one writer, its primary, which pushes its current state in order: take it as it is
            # (versions tie within a second, and the digest tie-break would keep an older state of the record)
            follower = self.config.read_only
            if values is None:
                applied = current is not None and (follower or record_version(current)[0] <= deleted_at)
                if applied:
                    self.store.delete(handle.key)
            else:
                incoming = HandleRecord(handle if current is None else current.handle, values)
                applied = current is None or follower or record_version(incoming) > record_version(current)
                if applied:
                    self.store.put(incoming)
        except HandleError as exc:
            return error_response(exc.response_code, exc.message, handle.text)
        if applied:
            self._notify(handle.key)
        return Response(ResponseCode.SUCCESS, handle.text, message="applied" if applied else "older; kept ours")

    # -- listing and homing -------------------------------------------------------------------------------------

    def _list_handles(self, request: Request, now: float) -> Response:
        prefix = self._need_prefix(request)
        if prefix.key not in self._homed:
            raise ServerNotResponsible(f"prefix {prefix.text} is not homed at {self.config.node_id}",
                                       handle=prefix.text)
        governing = self.store.get(prefix.prefix_handle().key)
        self._authorize(request, P.LIST_HANDLES, governing, f"list handles under {prefix.text}")
        limit = request.page_size or self.config.limits.max_page_size
        if limit > self.config.limits.max_page_size:
            raise ProtocolError(f"pageSize={limit} is over this node's limit of {self.config.limits.max_page_size} "
                                "(limit max_page_size)", handle=prefix.text)
        total, page = self.store.list_handles(prefix, request.page * limit, limit)
        return Response(ResponseCode.SUCCESS, prefix.text, handles=tuple(page), total_count=total, listing=True)

    def _home(self, request: Request, now: float) -> Response:
        prefix = self._need_prefix(request)
        self._authorize(request, ~P(0), None, f"home prefix {prefix.text}")
        self._set_homed([*self._homed_texts(), prefix.text])
        return Response(ResponseCode.SUCCESS, prefix.text)

    def _unhome(self, request: Request, now: float) -> Response:
        prefix = self._need_prefix(request)
        self._authorize(request, ~P(0), None, f"unhome prefix {prefix.text}")
        if prefix.key not in self._homed:
            raise HandleNotFound(f"prefix {prefix.text} is not homed here", handle=prefix.text)
        self._set_homed([t for t in self._homed_texts() if Prefix(t).key != prefix.key])
        return Response(ResponseCode.SUCCESS, prefix.text)

    def _list_homed(self, request: Request, now: float) -> Response:
        texts = tuple(sorted(self._homed_texts()))
        return Response(ResponseCode.SUCCESS, handles=texts, total_count=len(texts), listing=True)

    def _homed_texts(self) -> list[str]:
        return [p.text for p in self._homed.values()]

    def _set_homed(self, texts: list[str]) -> None:
        prefixes = [Prefix.from_text(t) for t in texts]
        if set(texts) != set(self.store.homed_prefixes()):
            self.store.set_homed_prefixes(texts)
        self._homed = {p.key: p for p in prefixes}
        self._notify("")

    # -- request checks -----------------------------------------------------------------------------------------

    def _check_filters(self, request: Request) -> None:
        limits = self.config.limits
        limit = limits.max_filter_items
        if len(request.indexes) > limit or len(request.types) > limit:
            raise ProtocolError(f"at most {limit} indexes and {limit} types may be asked for in one request "
                                "(limit max_filter_items)")
        handle = request.handle
        if handle is None:
            return
        size = len(handle.text.encode("utf-8", "surrogatepass"))
        if size > limits.max_handle_bytes:
            raise InvalidHandle(f"handle is {size} bytes long; this node's limit is {limits.max_handle_bytes} bytes "
                                "(limit max_handle_bytes)", handle=handle.text[:80])
        size = len(handle.suffix.encode("utf-8", "surrogatepass"))
        if size > limits.max_suffix_bytes:
            raise InvalidHandle(f"suffix is {size} bytes long; this node's limit is {limits.max_suffix_bytes} bytes "
                                "(limit max_suffix_bytes)", handle=handle.text[:80])

    def _need_handle(self, request: Request) -> Handle:
        if request.handle is None:
            raise ProtocolError(f"operation {request.op.name.lower()} needs a handle")
        return request.handle

    def _need_prefix(self, request: Request) -> Prefix:
        if request.prefix is not None:
            return request.prefix
        if request.handle is not None and request.handle.is_prefix_handle:
            return request.handle.described_prefix()
        raise ProtocolError(f"operation {request.op.name.lower()} needs a prefix")

    def _writable_handle(self, request: Request) -> Handle:
        handle = self._need_handle(request)
        if self.config.read_only:
            raise ServerNotResponsible(
                f"{self.config.node_id} is a mirror, not a primary; "
                f"send writes to {self.config.primary or 'the primary'}",
                handle=handle.text)
        if not self.is_responsible(handle):
            raise ServerNotResponsible(f"prefix {handle.prefix.text} is not homed at {self.config.node_id}",
                                       handle=handle.text)
        if self.config.partition is not None and not request.mint_new_suffix:
            self._check_bucket(handle)
        return handle

    def _check_bucket(self, handle: Handle) -> None:
        """Hash partitioning: a handle belongs to exactly one server of the site (its own prefix handles to all)."""
        bucket = self.config.partition
        if bucket is None or bucket.holds(handle):
            return
        if handle.is_prefix_handle and handle.described_prefix().key in self._homed:
            return
        owner = handle_hash(handle, bucket.hash_option) % bucket.servers
        raise ServerNotResponsible(f"{handle.text} hashes to server {owner + 1} of this site, not to "
                                   f"{self.config.node_id} (server {bucket.index + 1} of {bucket.servers})",
                                   handle=handle.text)

    def _minted(self, base: Handle) -> Handle:
        """A new handle `base` + a minted suffix; on a partitioned site one this server holds (a few tries)."""
        bucket = self.config.partition
        tries = 64 * (bucket.servers if bucket is not None else 1)
        for _ in range(tries):
            handle = Handle.from_text(f"{base.text}{self.config.mint_suffix()}")
            if bucket is None or bucket.holds(handle):
                return handle
        raise ServerNotResponsible(f"no minted suffix under {base.text} hashed to {self.config.node_id} in "
                                   f"{tries} tries", handle=base.text)

    def _existing(self, handle: Handle) -> HandleRecord:
        record = self.store.get(handle.key)
        if record is None:
            raise HandleNotFound(f"handle {handle.text} not found at {self.config.node_id}", handle=handle.text)
        return record

    def _incoming_values(self, request: Request, now: float) -> tuple[HandleValue, ...]:
        if not request.values:
            raise InvalidValue("the request carries no values", handle=request.handle_text)
        check_unique_indexes(request.values)
        values = tuple(self._prepare_value(v.validate(), now) for v in request.values)
        self._check_record_size(values)
        return values

    def _prepare_value(self, value: HandleValue, now: float) -> HandleValue:
        """Stamp the write time; store secret keys hashed and not publicly readable."""
        if isinstance(value.data, str | bytes) and len(value.data) > self.config.limits.max_value_bytes:
            raise InvalidValue(f"value {value.index} is larger than {self.config.limits.max_value_bytes} bytes "
                               "(limit max_value_bytes)")
        if value.type_key == HS_SECKEY:
            value = self._hash_secret_value(value)
        return value.stamped(now)

    def _hash_secret_value(self, value: HandleValue) -> HandleValue:
        data = value.data
        if isinstance(data, bytes):
            data = data.decode("utf-8", "replace")
        if not isinstance(data, str):
            raise InvalidValue(f"HS_SECKEY value {value.index} must carry the secret as text")
        if not auth.is_hashed_secret(data):
            data = auth.hash_secret(data, self.config.random_bytes(16), self.config.secret_iterations)
        permissions = replace(value.permissions, public_read=False, public_write=False)
        return value._replace(data=data, permissions=permissions)

    def _check_record_size(self, values: tuple[HandleValue, ...]) -> None:
        if len(values) > self.config.limits.max_values_per_handle:
            raise InvalidValue(f"a handle may hold at most {self.config.limits.max_values_per_handle} values "
                               "(limit max_values_per_handle)")


def record_version(record: HandleRecord) -> tuple[int, str]:
    """(newest value timestamp, digest of the values): totally ordered, identical on every primary."""
    newest = max((v.timestamp for v in record.values), default=0)
    digest = hashlib.sha256(repr(sorted(record.values)).encode("utf-8", "surrogatepass")).hexdigest()
    return newest, digest


def _with_creator_admin(values: tuple[HandleValue, ...], creator: ValueReference | None,
                        ) -> tuple[HandleValue, ...]:
    """A new handle without HS_ADMIN gets one naming its creator (as Handle.Net does), so it stays manageable."""
    if creator is None or any(v.type_key == HS_ADMIN for v in values):
        return values
    index = ADMIN_INDEX
    taken = {v.index for v in values}
    while index in taken:
        index += 1
    admin = HandleValue(index, HS_ADMIN, AdminRecord(creator.handle, creator.index), timestamp=values[0].timestamp)
    return tuple(sorted((*values, admin), key=lambda v: v.index))


def _merge(current: tuple[HandleValue, ...], incoming: tuple[HandleValue, ...],
           remove: tuple[int, ...]) -> tuple[HandleValue, ...]:
    """Values after replacing by index with `incoming` and dropping `remove`, ordered by index."""
    by_index = {v.index: v for v in current}
    for index in remove:
        by_index.pop(index, None)
    for value in incoming:
        by_index[value.index] = value
    return tuple(by_index[i] for i in sorted(by_index))


def is_root(service: HandleService) -> bool:
    return service.homes(NA_PREFIX)
