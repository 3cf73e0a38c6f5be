"""HandleService: resolution filters, responsibility, writes, authorization decisions, atomicity."""

from __future__ import annotations

import pytest

from handlesim.core.codes import OpCode, ResponseCode
from handlesim.core.handle import Handle, Prefix
from handlesim.core.messages import Request
from handlesim.core.prefixes import owner_identity
from handlesim.core.values import (
    HS_SECKEY,
    URL,
    AdminPermission,
    AdminRecord,
    HandleValue,
    Permissions,
    ValueReference,
)

from ..support.corenet import SERVER_ADMIN, three_tier

PUMP = Handle.from_text("88.101.2001/PUMP-1")
NEW = Handle.from_text("88.101.2001/NEW-1")
OWNER = owner_identity(Prefix("88.101.2001"))
SECONDARY_ADMIN = owner_identity(Prefix("88.101"))
STRANGER = owner_identity(Prefix("88.101.2002"))


def req(op: OpCode, handle: Handle | None = NEW, **kw: object) -> Request:
    return Request(op, handle, **kw)  # type: ignore[arg-type]


def url(index: int = 1, text: str = "https://id.example.cn/x") -> HandleValue:
    return HandleValue(index, URL, text)


def test_resolution_filters_by_type_and_index_as_a_union() -> None:
    ent = three_tier().enterprise
    ent.store.put(ent.store.get(PUMP.key).__class__(PUMP, (  # type: ignore[union-attr]
        url(1), HandleValue(2, "URL.MIRROR", "https://m.example.cn"), HandleValue(3, "EMAIL", "a@example.cn"))))
    assert [v.index for v in ent.handle(req(OpCode.RESOLUTION, PUMP, types=("URL",)), 0).values] == [1]
    assert [v.index for v in ent.handle(req(OpCode.RESOLUTION, PUMP, types=("url.",)), 0).values] == [1, 2]
    union = ent.handle(req(OpCode.RESOLUTION, PUMP, types=("EMAIL",), indexes=(1,)), 0)
    assert [v.index for v in union.values] == [1, 3]
    missing = ent.handle(req(OpCode.RESOLUTION, PUMP, types=("NOPE",)), 0)
    assert missing.code == ResponseCode.VALUES_NOT_FOUND


def test_private_values_left_out_of_public_answers() -> None:
    ent = three_tier().enterprise
    answer = ent.handle(req(OpCode.RESOLUTION, OWNER and Handle.from_text("0.NA/88.101.2001")), 0)
    assert answer.ok and HS_SECKEY not in {v.type for v in answer.values}
    authed = ent.handle(req(OpCode.RESOLUTION, Handle.from_text("0.NA/88.101.2001"), identity=OWNER,
                            public_only=False), 0)
    assert HS_SECKEY in {v.type for v in authed.values}


def test_not_responsible_for_foreign_prefixes() -> None:
    tt = three_tier()
    for node in (tt.root, tt.secondary):
        answer = node.handle(req(OpCode.RESOLUTION, PUMP), 0)
        assert answer.code == ResponseCode.SERVER_NOT_RESPONSIBLE
        assert "88.101.2001" in answer.message
    assert tt.enterprise.handle(req(OpCode.CREATE_HANDLE, Handle.from_text("88.102.1/X"), values=(url(),),
                                    identity=SERVER_ADMIN), 0).code == ResponseCode.SERVER_NOT_RESPONSIBLE


def test_create_needs_authentication_and_add_handle_permission() -> None:
    ent = three_tier().enterprise
    before = len(ent.store)
    assert ent.handle(req(OpCode.CREATE_HANDLE, values=(url(),)), 0).code == ResponseCode.AUTHENTICATION_NEEDED
    denied = ent.handle(req(OpCode.CREATE_HANDLE, values=(url(),), identity=STRANGER), 0)
    assert denied.code == ResponseCode.INSUFFICIENT_PERMISSIONS and "add handle" in denied.message
    assert len(ent.store) == before and ent.store.get(NEW.key) is None
    for who in (OWNER, SECONDARY_ADMIN, SERVER_ADMIN):
        h = Handle.from_text(f"88.101.2001/by-{who.handle}")
        assert ent.handle(req(OpCode.CREATE_HANDLE, h, values=(url(),), identity=who), 1.0).ok, who


def test_create_without_overwrite_refuses_existing_and_reports_created() -> None:
    ent = three_tier().enterprise
    first = ent.handle(req(OpCode.CREATE_HANDLE, values=(url(),), identity=OWNER, overwrite=False), 10.0)
    assert first.ok and first.created
    again = ent.handle(req(OpCode.CREATE_HANDLE, values=(url(2),), identity=OWNER, overwrite=False), 11.0)
    assert again.code == ResponseCode.HANDLE_ALREADY_EXISTS
    record = ent.store.get(NEW.key)
    assert record is not None and [v.index for v in record.values] == [1, 100] and record.values[0].timestamp == 10
    assert record.values[1].data == AdminRecord(OWNER.handle, OWNER.index)  # the creator administers it


def test_overwrite_replaces_all_values_atomically() -> None:
    ent = three_tier().enterprise
    assert ent.handle(req(OpCode.CREATE_HANDLE, values=(url(), HandleValue(2, "EMAIL", "a@example.cn")),
                          identity=OWNER), 0).ok
    bad = ent.handle(req(OpCode.CREATE_HANDLE, values=(url(1, "new"), HandleValue(0, URL, "index 0 is reserved")),
                         identity=OWNER), 0)
    assert bad.code == ResponseCode.INVALID_VALUE and "index 0" in bad.message
    record = ent.store.get(NEW.key)
    assert record is not None
    assert [v.data for v in record.values if v.type != "HS_ADMIN"] == ["https://id.example.cn/x", "a@example.cn"]


def test_value_operations_and_permissions() -> None:
    ent = three_tier().enterprise
    assert ent.handle(req(OpCode.CREATE_HANDLE, values=(url(),), identity=OWNER), 0).ok
    added = ent.handle(req(OpCode.ADD_VALUE, values=(HandleValue(5, "EMAIL", "x@example.cn"),), identity=OWNER,
                           overwrite=False), 1)
    assert added.ok and added.created
    dup = ent.handle(req(OpCode.ADD_VALUE, values=(url(5),), identity=OWNER, overwrite=False), 1)
    assert dup.code == ResponseCode.VALUE_ALREADY_EXISTS
    assert ent.handle(req(OpCode.MODIFY_VALUE, values=(url(1, "changed"),), identity=OWNER), 2).ok
    assert ent.handle(req(OpCode.MODIFY_VALUE, values=(url(9),), identity=OWNER), 2).code == \
        ResponseCode.VALUES_NOT_FOUND
    assert ent.handle(req(OpCode.REMOVE_VALUE, indexes=(5,), identity=OWNER), 3).ok
    assert ent.handle(req(OpCode.REMOVE_VALUE, indexes=(5,), identity=OWNER), 3).code == ResponseCode.VALUES_NOT_FOUND
    record = ent.store.get(NEW.key)
    assert record is not None and [(v.index, v.data, v.timestamp) for v in record.values if v.type == URL] == \
        [(1, "changed", 2)]
    denied = ent.handle(req(OpCode.REMOVE_VALUE, indexes=(1,), identity=STRANGER), 4)
    assert denied.code == ResponseCode.INSUFFICIENT_PERMISSIONS
    assert ent.store.get(NEW.key) == record


def test_record_admin_governs_changes_and_admin_bits_guard_admin_values() -> None:
    ent = three_tier().enterprise
    limited = AdminRecord(OWNER.handle, OWNER.index, AdminPermission.from_text("010001110011"))
    values = (url(), HandleValue(100, "HS_ADMIN", limited))
    assert ent.handle(req(OpCode.CREATE_HANDLE, values=values, identity=OWNER), 0).ok
    # these permissions lack the admin bits (modify/remove/add admin)
    new_admin = HandleValue(101, "HS_ADMIN", AdminRecord(STRANGER.handle, 300))
    denied = ent.handle(req(OpCode.ADD_VALUE, values=(new_admin,), identity=OWNER), 1)
    assert denied.code == ResponseCode.INSUFFICIENT_PERMISSIONS and "add admin" in denied.message
    assert ent.handle(req(OpCode.ADD_VALUE, values=(new_admin,), identity=SERVER_ADMIN), 1).ok


def test_delete_then_not_found() -> None:
    tt = three_tier()
    ent = tt.enterprise
    assert ent.handle(req(OpCode.DELETE_HANDLE, PUMP), 0).code == ResponseCode.AUTHENTICATION_NEEDED
    assert ent.handle(req(OpCode.DELETE_HANDLE, PUMP, identity=STRANGER), 0).code == \
        ResponseCode.INSUFFICIENT_PERMISSIONS
    assert ent.handle(req(OpCode.DELETE_HANDLE, PUMP, identity=OWNER), 0).ok
    assert ent.handle(req(OpCode.RESOLUTION, PUMP), 0).code == ResponseCode.HANDLE_NOT_FOUND
    assert ent.handle(req(OpCode.DELETE_HANDLE, PUMP, identity=OWNER), 0).code == ResponseCode.HANDLE_NOT_FOUND


def test_derived_prefix_creation_needs_add_derived_prefix_on_the_parent() -> None:
    sec = three_tier().secondary
    new_prefix = Handle.from_text("0.NA/88.101.2050")
    assert sec.handle(req(OpCode.CREATE_HANDLE, new_prefix, values=(url(),), identity=SECONDARY_ADMIN), 0).ok
    other = Handle.from_text("0.NA/88.101.2051")
    denied = sec.handle(req(OpCode.CREATE_HANDLE, other, values=(url(),), identity=OWNER), 0)
    assert denied.code == ResponseCode.INSUFFICIENT_PERMISSIONS and "add derived prefix" in denied.message


def test_secret_keys_are_stored_hashed_and_private() -> None:
    ent = three_tier().enterprise
    value = HandleValue(300, HS_SECKEY, "plain-secret", permissions=Permissions())
    assert ent.handle(req(OpCode.CREATE_HANDLE, values=(value,), identity=OWNER), 0).ok
    stored = ent.store.get(NEW.key)
    assert stored is not None
    key = stored.value_at(300)
    assert key is not None
    assert isinstance(key.data, str) and "plain-secret" not in key.data and key.data.startswith("pbkdf2_sha256$")
    assert not key.permissions.public_read
    from handlesim.core.auth import verify_secret
    assert verify_secret(key.data, "plain-secret") and not verify_secret(key.data, "wrong")


def test_list_handles_paged_and_authorized() -> None:
    ent = three_tier().enterprise
    for i in range(5):
        h = Handle.from_text(f"88.101.2001/item-{i}")
        assert ent.handle(req(OpCode.CREATE_HANDLE, h, values=(url(),), identity=OWNER), 0).ok
    prefix = Prefix("88.101.2001")
    assert ent.handle(req(OpCode.LIST_HANDLES, None, prefix=prefix), 0).code == ResponseCode.AUTHENTICATION_NEEDED
    page = ent.handle(req(OpCode.LIST_HANDLES, None, prefix=prefix, identity=OWNER, page=1, page_size=2), 0)
    assert page.ok and page.total_count == 6 and len(page.handles) == 2


def test_home_and_unhome_are_for_server_admins() -> None:
    ent = three_tier().enterprise
    p = Prefix("88.101.2002")
    assert ent.handle(req(OpCode.HOME_NA, None, prefix=p, identity=OWNER), 0).code == ResponseCode.INVALID_ADMIN
    assert ent.handle(req(OpCode.HOME_NA, None, prefix=p, identity=SERVER_ADMIN), 0).ok
    assert ent.homes(p) and "88.101.2002" in ent.store.homed_prefixes()
    assert ent.handle(req(OpCode.UNHOME_NA, None, prefix=p, identity=SERVER_ADMIN), 0).ok
    assert not ent.homes(p)


def test_mirror_refuses_writes_naming_the_primary() -> None:
    tt = three_tier()
    tt.enterprise.config.read_only = True
    tt.enterprise.config.primary = "http://127.0.0.1:20001"
    answer = tt.enterprise.handle(req(OpCode.CREATE_HANDLE, values=(url(),), identity=OWNER), 0)
    assert answer.code == ResponseCode.SERVER_NOT_RESPONSIBLE and "http://127.0.0.1:20001" in answer.message


def test_limits_are_protocol_errors() -> None:
    ent = three_tier().enterprise
    answer = ent.handle(req(OpCode.RESOLUTION, PUMP, indexes=tuple(range(1, 200))), 0)
    assert answer.code == ResponseCode.PROTOCOL_ERROR
    big = ent.handle(req(OpCode.CREATE_HANDLE, values=(url(1, "x" * 100_000),), identity=OWNER), 0)
    assert big.code == ResponseCode.INVALID_VALUE and "larger than" in big.message


def test_counts_by_operation_and_code() -> None:
    ent = three_tier().enterprise
    ent.handle(req(OpCode.RESOLUTION, PUMP), 0)
    ent.handle(req(OpCode.RESOLUTION, NEW), 0)
    assert ent.counts[(1, 1)] == 1 and ent.counts[(1, 100)] == 1


@pytest.mark.parametrize("op", [OpCode.CHALLENGE_RESPONSE, OpCode.SESSION_SETUP])
def test_unsupported_operations(op: OpCode) -> None:
    assert three_tier().enterprise.handle(req(op), 0).code == ResponseCode.OPERATION_NOT_SUPPORTED


def test_identity_text_round_trip() -> None:
    assert ValueReference.from_text("300:0.NA/88.101") == ValueReference("0.NA/88.101", 300)
