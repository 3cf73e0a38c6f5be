"""Codecs: a table of REST JSON cases (including exactly what pyhandle sends), hypothesis round-trips, hostile input."""

from __future__ import annotations

import json

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from handlesim.core.codes import ResponseCode
from handlesim.core.errors import HandleError, InvalidValue, ProtocolError
from handlesim.core.messages import Response
from handlesim.core.values import (
    AdminPermission,
    AdminRecord,
    HandleValue,
    Permissions,
    TTLType,
    ValueList,
    ValueReference,
)
from handlesim.wire import codec, mapping

from .strategies import handle_values, value_lists

PYHANDLE_BODY = {"values": [
    {"index": 1, "type": "URL", "data": {"format": "string", "value": "http://x"}},
    {"index": 100, "type": "HS_ADMIN", "data": {"format": "admin", "value": {
        "handle": "0.NA/88.101.2001", "index": "200", "permissions": "011111110011"}}},
]}


def test_what_pyhandle_sends() -> None:
    values = mapping.values_from_body(PYHANDLE_BODY)
    assert values[0] == HandleValue(1, "URL", "http://x")
    assert values[1].data == AdminRecord("0.NA/88.101.2001", 200, AdminPermission.from_text("011111110011"))


def test_three_body_shapes() -> None:
    one = {"index": 1, "type": "URL", "data": "bare string data"}
    assert mapping.values_from_body([one]) == mapping.values_from_body({"values": [one]}) == \
        mapping.values_from_body(one)
    assert mapping.values_from_body(one)[0].data == "bare string data"


@pytest.mark.parametrize(("data", "expected"), [
    ({"format": "base64", "value": "AAEC"}, b"\x00\x01\x02"),
    ({"format": "hex", "value": "00ff"}, b"\x00\xff"),
    ({"format": "vlist", "value": [{"handle": "0.NA/88.101", "index": 300}]},
     ValueList((ValueReference("0.NA/88.101", 300),))),
])
def test_data_formats(data: dict[str, object], expected: object) -> None:
    type_name = "HS_VLIST" if data["format"] == "vlist" else "BLOB"
    assert mapping.value_from_dict({"index": 5, "type": type_name, "data": data}).data == expected


def test_value_json_shape() -> None:
    value = HandleValue(300, "HS_SECKEY", "hashed", timestamp=1_700_000_000, permissions=Permissions(public_read=False))
    assert mapping.value_to_dict(value) == {
        "index": 300, "type": "HS_SECKEY", "data": {"format": "string", "value": "hashed"}, "ttl": 86400,
        "timestamp": "2023-11-14T22:13:20Z", "permissions": "1100"}
    plain = mapping.value_to_dict(HandleValue(1, "URL", "u"))
    assert "permissions" not in plain and "references" not in plain
    absolute = mapping.value_from_dict({"index": 1, "type": "URL", "data": "u", "ttl": "2030-01-01T00:00:00Z"})
    assert absolute.ttl_type == TTLType.ABSOLUTE and mapping.value_to_dict(absolute)["ttl"] == "2030-01-01T00:00:00Z"


@pytest.mark.parametrize(("raw", "fragment"), [
    ({"type": "URL", "data": "x"}, "'index'"),
    ({"index": 0, "type": "URL", "data": "x"}, "0 is reserved"),
    ({"index": 1, "type": "URL", "data": {"format": "nope", "value": 1}}, "unknown data format"),
    ({"index": 1, "type": "URL", "data": {"format": "base64", "value": "!!"}}, "base64"),
    ({"index": 1, "type": "URL", "data": {"format": "hex", "value": "zz"}}, "hex"),
    ({"index": 1, "type": "HS_ADMIN", "data": "plain"}, "needs data in format 'admin'"),
    ({"index": 1, "type": "URL", "data": "x", "ttl": 2**40}, "outside"),
    ({"index": 1, "type": "URL", "data": "x", "permissions": "12"}, "permissions"),
    ({"index": 1, "type": "URL", "data": "x", "timestamp": "yesterday"}, "ISO 8601"),
    ({"index": 1, "type": "HS_ADMIN", "data": {"format": "admin", "value": {"handle": "h", "index": "x"}}},
     "'index'"),
    ("not an object", "must be a JSON object"),
])
def test_bad_values_are_invalid_value(raw: object, fragment: str) -> None:
    with pytest.raises(InvalidValue) as info:
        mapping.value_from_dict(raw)
    assert fragment in info.value.message and info.value.response_code == 202


def test_response_shapes() -> None:
    ok = Response(ResponseCode.SUCCESS, "88.101/x", (HandleValue(1, "URL", "u"),))
    body = json.loads(codec.encode_response(ok, codec.JSON))
    assert body["responseCode"] == 1 and body["handle"] == "88.101/x" and body["values"][0]["type"] == "URL"
    err = json.loads(codec.encode_response(Response(100, "88.101/y", message="not here"), codec.JSON))
    assert err == {"responseCode": 100, "handle": "88.101/y", "message": "not here"}
    listing = Response(1, "88.101", handles=("88.101/a",), total_count=7, listing=True)
    assert json.loads(codec.encode_response(listing, codec.JSON)) == {
        "responseCode": 1, "prefix": "88.101", "totalCount": 7, "handles": ["88.101/a"]}
    created = json.loads(codec.encode_response(Response(1, "88.101/z"), codec.JSON))
    assert created == {"responseCode": 1, "handle": "88.101/z"}


@settings(max_examples=150)
@given(handle_values())
def test_value_round_trips_through_dict_json_and_msgpack(value: HandleValue) -> None:
    as_dict = mapping.value_to_dict(value)
    assert mapping.value_from_dict(as_dict) == value
    assert mapping.value_from_dict(json.loads(json.dumps(as_dict))) == value
    assert mapping.value_from_dict(msgpack.unpackb(msgpack.packb(as_dict))) == value


@given(value_lists, st.sampled_from([codec.JSON, codec.MSGPACK]))
def test_response_round_trips(values: tuple[HandleValue, ...], media: str) -> None:
    response = Response(ResponseCode.SUCCESS, "88.101/x", values)
    decoded = codec.decode_response(codec.encode_response(response, media), media)
    assert decoded.values == values and decoded.code == ResponseCode.SUCCESS and decoded.handle == "88.101/x"


json_like = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
                         lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
                         max_leaves=20)


@given(st.binary(max_size=200), st.sampled_from([codec.JSON, codec.MSGPACK]))
def test_arbitrary_bytes_only_raise_protocol_errors(raw: bytes, media: str) -> None:
    try:
        codec.decode_response(raw, media)
    except HandleError as exc:
        assert isinstance(exc, ProtocolError)


@given(json_like)
def test_arbitrary_structures_only_raise_typed_errors(body: object) -> None:
    try:
        mapping.values_from_body(body)
    except HandleError as exc:
        assert exc.response_code in (ResponseCode.INVALID_VALUE, ResponseCode.PROTOCOL_ERROR)
    try:
        codec.response_from_dict(body)
    except HandleError as exc:
        assert isinstance(exc, ProtocolError)
