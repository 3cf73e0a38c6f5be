"""Wire mapping and codecs: tables of REST JSON cases (pyhandle's exact bodies included), round-trips, hostile input."""

from __future__ import annotations

import json
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from handlesim.core.codes import OpCode, ResponseCode
from handlesim.core.errors import (
    HandleError,
    InvalidHandle,
    InvalidValue,
    OperationNotSupported,
    ProtocolError,
)
from handlesim.core.handle import Handle, Prefix
from handlesim.core.messages import Request, Response
from handlesim.core.values import (
    DEFAULT_ADMIN_PERMISSIONS,
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
    ValueList,
    ValueReference,
)
from handlesim.wire import codec, mapping

from ..support.strategies import examples, handle_values, type_names, value_lists

MEDIA = [codec.JSON, codec.MSGPACK]
T_2024 = 1_714_564_800  # 2024-05-01T12:00:00Z

PYHANDLE_BODY = {"values": [
    {"index": 1, "type": "URL", "data": {"format": "string", "value": "http://x"}},
    {"index": 100, "type": "HS_ADMIN", "data": {"format": "admin", "value": {
        "handle": "0.NA/88.101.2001", "index": "200", "permissions": "011111110011"}}},
]}

SITE = SiteInfo(
    servers=(ServerInfo(1, "127.0.0.1", (Interface("HTTP", 8001, True, False),), b"\x01\x02"),),
    serial_number=7, primary=False, multi_primary=True, hash_option=HashOption.BY_SUFFIX,
    attributes=(("desc", "root site"),),
)
SITE_DICT = {
    "version": 1, "protocolVersion": "2.10", "serialNumber": 7, "primarySite": False, "multiPrimary": True,
    "hashOption": 1, "attributes": [{"name": "desc", "value": "root site"}],
    "servers": [{"serverId": 1, "address": "127.0.0.1", "publicKey": {"format": "base64", "value": "AQI="},
                 "interfaces": [{"query": True, "admin": False, "protocol": "HTTP", "port": 8001}]}],
}


def encode_decode(obj: Any, media: str) -> Any:
    return codec.decode_body(codec.encode_body(obj, media), media)


# -- reading what clients send ------------------------------------------------------------------------------------


def test_what_pyhandle_sends() -> None:
    body = json.dumps(PYHANDLE_BODY).encode()
    url, admin = mapping.values_from_body(codec.decode_body(body, codec.JSON))
    assert url == HandleValue(1, "URL", "http://x")
    assert admin == HandleValue(100, "HS_ADMIN", AdminRecord("0.NA/88.101.2001", 200, DEFAULT_ADMIN_PERMISSIONS))
    assert mapping.value_to_dict(admin)["data"]["value"] == {
        "handle": "0.NA/88.101.2001", "index": 200, "permissions": "011111110011"}


def test_three_body_shapes() -> None:
    one = {"index": 1, "type": "URL", "data": "bare string data"}
    expected = [HandleValue(1, "URL", "bare string data")]
    assert mapping.values_from_body([one]) == mapping.values_from_body({"values": [one]}) == \
        mapping.values_from_body(one) == expected


ACCEPTED: list[tuple[dict[str, Any], HandleValue]] = [
    ({"index": 1, "type": "URL", "data": "http://x"}, HandleValue(1, "URL", "http://x")),
    ({"index": "7", "type": "URL", "data": {"format": "string", "value": ""}}, HandleValue(7, "URL", "")),
    ({"index": 2, "type": "BLOB", "data": {"format": "base64", "value": "AAEC"}}, HandleValue(2, "BLOB", b"\0\1\2")),
    ({"index": 2, "type": "BLOB", "data": {"format": "BASE64", "value": ""}}, HandleValue(2, "BLOB", b"")),
    ({"index": 2, "type": "BLOB", "data": {"format": "hex", "value": "00ff"}}, HandleValue(2, "BLOB", b"\0\xff")),
    ({"index": 100, "type": "HS_ADMIN", "data": {"format": "admin", "value": {"handle": "0.NA/88", "index": 300}}},
     HandleValue(100, "HS_ADMIN", AdminRecord("0.NA/88", 300))),
    ({"index": 100, "type": "hs_admin", "data": {"format": "admin", "value": {
        "handle": "0.NA/88", "index": "300", "permissions": "111111111111"}}},
     HandleValue(100, "hs_admin", AdminRecord("0.NA/88", 300, AdminPermission(0xFFF)))),
    ({"index": 200, "type": "HS_VLIST", "data": {"format": "vlist", "value": [{"handle": "0.NA/88", "index": "300"}]}},
     HandleValue(200, "HS_VLIST", ValueList((ValueReference("0.NA/88", 300),)))),
    ({"index": 1, "type": "HS_SITE", "data": {"format": "site", "value": SITE_DICT}}, HandleValue(1, "HS_SITE", SITE)),
    ({"index": 1, "type": "HS_SITE.PREFIX", "data": {"format": "site", "value": {
        "servers": [{"serverId": 1, "address": "10.0.0.1", "interfaces": [{"port": 80}]}]}}},
     HandleValue(1, "HS_SITE.PREFIX", SiteInfo((ServerInfo(1, "10.0.0.1", (Interface("HTTP", 80),)),)))),
    ({"index": 300, "type": "HS_PUBKEY", "data": {"format": "key", "value": "AQI="}},
     HandleValue(300, "HS_PUBKEY", KeyData(b"\1\2"))),
    ({"index": 1, "type": "URL", "data": "u", "ttl": "3600"}, HandleValue(1, "URL", "u", ttl=3600)),
    ({"index": 1, "type": "URL", "data": "u", "ttl": -5}, HandleValue(1, "URL", "u", ttl=-5)),
    ({"index": 1, "type": "URL", "data": "u", "ttl": None}, HandleValue(1, "URL", "u")),
    ({"index": 1, "type": "URL", "data": "u", "ttl": "2024-05-01T12:00:00Z"},
     HandleValue(1, "URL", "u", ttl=T_2024, ttl_type=TTLType.ABSOLUTE)),
    ({"index": 1, "type": "URL", "data": "u", "timestamp": "2024-05-01T12:00:00Z"},
     HandleValue(1, "URL", "u", timestamp=T_2024)),
    ({"index": 1, "type": "URL", "data": "u", "timestamp": "2024-05-01T14:00:00.75+02:00"},
     HandleValue(1, "URL", "u", timestamp=T_2024)),
    ({"index": 1, "type": "URL", "data": "u", "timestamp": "2024-05-01T12:00:00"},
     HandleValue(1, "URL", "u", timestamp=T_2024)),
    ({"index": 1, "type": "URL", "data": "u", "timestamp": T_2024}, HandleValue(1, "URL", "u", timestamp=T_2024)),
    ({"index": 300, "type": "HS_SECKEY", "data": "s", "permissions": "1100"},
     HandleValue(300, "HS_SECKEY", "s", permissions=Permissions(public_read=False))),
    ({"index": 1, "type": "URL", "data": "u", "references": [{"handle": "88.1/x", "index": 2}]},
     HandleValue(1, "URL", "u", references=(ValueReference("88.1/x", 2),))),
    ({"index": 1, "type": "URL", "data": "u", "references": None, "permissions": None}, HandleValue(1, "URL", "u")),
    ({"index": 1, "type": "URL", "data": "u", "unknown": "ignored"}, HandleValue(1, "URL", "u")),
]


@pytest.mark.parametrize(("raw", "expected"), ACCEPTED)
def test_accepted_values(raw: dict[str, Any], expected: HandleValue) -> None:
    assert mapping.value_from_dict(raw) == expected


def test_missing_timestamp_is_now_when_given() -> None:
    raw = {"index": 1, "type": "URL", "data": "u"}
    assert mapping.value_from_dict(raw).timestamp == 0
    assert mapping.value_from_dict(raw, now=T_2024 + 0.9).timestamp == T_2024
    assert mapping.values_from_body([raw], now=T_2024)[0].timestamp == T_2024


# Each bad value -> InvalidValue (code 202) whose message names the value and the field.
REJECTED: list[tuple[object, str]] = [
    ("not an object", "must be a JSON object"),
    ([1], "must be a JSON object"),
    ({"type": "URL", "data": "x"}, "'index' is missing"),
    ({"index": None, "type": "URL", "data": "x"}, "'index' is missing"),
    ({"index": 0, "type": "URL", "data": "x"}, "0 is reserved"),
    ({"index": -3, "type": "URL", "data": "x"}, "value: field 'index' = -3 is outside 0..2147483647"),
    ({"index": 2**31, "type": "URL", "data": "x"}, "value: field 'index' = 2147483648 is outside 0..2147483647"),
    ({"index": 10**30, "type": "URL", "data": "x"}, "'index' = 100000000000... (31 digits) is outside"),
    ({"index": "abc", "type": "URL", "data": "x"}, "'index' must be an integer, not text"),
    ({"index": "²", "type": "URL", "data": "x"}, "'index' must be an integer"),
    ({"index": 1.0, "type": "URL", "data": "x"}, "'index' must be an integer, not a number"),
    ({"index": True, "type": "URL", "data": "x"}, "'index' must be an integer, not true/false"),
    ({"index": 1, "data": "x"}, "value 1: field 'type' is missing"),
    ({"index": 1, "type": 5, "data": "x"}, "value 1: field 'type' must be text"),
    ({"index": 1, "type": "", "data": "x"}, "value 1 has an empty type"),
    ({"index": 1, "type": "A\nB", "data": "x"}, "control character"),
    ({"index": 1, "type": "\ud800", "data": "x"}, "value 1: field 'type' is not valid UTF-8"),
    ({"index": 1, "type": "URL"}, "value 1: field 'data' is missing"),
    ({"index": 1, "type": "URL", "data": None}, "value 1: field 'data' is missing"),
    ({"index": 1, "type": "URL", "data": 5}, "value 1: data must be a JSON object"),
    ({"index": 1, "type": "URL", "data": "\udcff"}, "value 1: data is not valid UTF-8"),
    ({"index": 1, "type": "URL", "data": {"value": "x"}}, "value 1: data: field 'format' is missing"),
    ({"index": 1, "type": "URL", "data": {"format": "string"}}, "value 1: data: field 'value' is missing"),
    ({"index": 1, "type": "URL", "data": {"format": "nope", "value": 1}}, "value 1: unknown data format 'nope'"),
    ({"index": 1, "type": "URL", "data": {"format": "string", "value": 5}}, "value 1: string data must be text"),
    ({"index": 1, "type": "B", "data": {"format": "base64", "value": "!!"}}, "value 1: data is not valid base64"),
    ({"index": 1, "type": "B", "data": {"format": "base64", "value": "é"}}, "value 1: data is not valid base64"),
    ({"index": 1, "type": "B", "data": {"format": "base64", "value": []}}, "value 1: base64 data must be text"),
    ({"index": 1, "type": "B", "data": {"format": "hex", "value": "zz"}}, "value 1: data is not valid hex"),
    ({"index": 1, "type": "HS_ADMIN", "data": "plain"}, "value 1: type HS_ADMIN needs data in format 'admin', got"),
    ({"index": 1, "type": "HS_ADMIN", "data": {"format": "base64", "value": ""}}, "needs data in format 'admin'"),
    ({"index": 1, "type": "HS_VLIST", "data": "x"}, "value 1: type HS_VLIST needs data in format 'vlist'"),
    ({"index": 1, "type": "HS_SITE", "data": {"format": "hex", "value": ""}}, "needs data in format 'site'"),
    ({"index": 1, "type": "HS_SITE.6", "data": "x"}, "needs data in format 'site'"),
    ({"index": 1, "type": "HS_SITE.PREFIX", "data": "x"}, "needs data in format 'site'"),
    ({"index": 1, "type": "HS_PUBKEY", "data": {"format": "base64", "value": ""}}, "needs data in format 'key'"),
    ({"index": 1, "type": "HS_ADMIN", "data": {"format": "admin", "value": "h"}}, "admin data must be a JSON object"),
    ({"index": 1, "type": "HS_ADMIN", "data": {"format": "admin", "value": {"handle": "h", "index": "x"}}},
     "value 1: admin data: field 'index' must be an integer"),
    ({"index": 1, "type": "HS_ADMIN", "data": {"format": "admin", "value": {"index": 1}}},
     "value 1: admin data: field 'handle' is missing"),
    ({"index": 1, "type": "HS_ADMIN", "data": {"format": "admin", "value": {"handle": "", "index": 1}}},
     "field 'handle' is empty"),
    ({"index": 1, "type": "HS_ADMIN", "data": {"format": "admin", "value": {
        "handle": "h", "index": 1, "permissions": "0111"}}}, "value 1: admin permissions '0111' must be 12"),
    ({"index": 1, "type": "HS_ADMIN", "data": {"format": "admin", "value": {"handle": "h", "index": -1}}},
     "field 'index' = -1 is outside"),
    ({"index": 1, "type": "HS_VLIST", "data": {"format": "vlist", "value": {}}}, "value 1: vlist data must be a list"),
    ({"index": 1, "type": "HS_VLIST", "data": {"format": "vlist", "value": [{"handle": "h"}]}},
     "value 1: vlist entry 0: field 'index' is missing"),
    ({"index": 1, "type": "HS_SITE", "data": {"format": "site", "value": {"servers": {}}}},
     "value 1: site data: field 'servers' must be a list"),
    ({"index": 1, "type": "HS_SITE", "data": {"format": "site", "value": {"hashOption": 5}}},
     "value 1: site data: field 'hashOption' = 5 is outside 0..2"),
    ({"index": 1, "type": "HS_SITE", "data": {"format": "site", "value": {"primarySite": "yes"}}},
     "field 'primarySite' must be true or false"),
    ({"index": 1, "type": "HS_SITE", "data": {"format": "site", "value": {"servers": [
        {"serverId": 1, "address": "a", "interfaces": [{"port": 70000}]}]}}},
     "value 1: site server 0 interface 0: field 'port' = 70000 is outside 0..65535"),
    ({"index": 1, "type": "HS_SITE", "data": {"format": "site", "value": {"servers": [
        {"serverId": 1, "address": "a", "publicKey": {"format": "pem", "value": ""}}]}}}, "'format' must be 'base64'"),
    ({"index": 1, "type": "HS_SITE", "data": {"format": "site", "value": {"servers": [{"serverId": 1}]}}},
     "value 1: site server 0: field 'address' is missing"),
    ({"index": 1, "type": "HS_SITE", "data": {"format": "site", "value": {"attributes": [{"value": "x"}]}}},
     "value 1: site attribute 0: field 'name' is missing"),
    ({"index": 1, "type": "HS_PUBKEY", "data": {"format": "key", "value": "%%"}}, "value 1: data is not valid base64"),
    ({"index": 1, "type": "URL", "data": "x", "ttl": 2**40}, "value 1: field 'ttl' = 1099511627776 is outside"),
    ({"index": 1, "type": "URL", "data": "x", "ttl": 1.5}, "value 1: field 'ttl' must be an integer, not a number"),
    ({"index": 1, "type": "URL", "data": "x", "ttl": "soon"}, "value 1: field 'ttl' 'soon' is not an ISO 8601 time"),
    ({"index": 1, "type": "URL", "data": "x", "ttl": "1960-01-01T00:00:00Z"}, "field 'ttl' '1960-01-01T00:00:00Z' is "
                                                                              "outside"),
    ({"index": 1, "type": "URL", "data": "x", "timestamp": "yesterday"}, "value 1: field 'timestamp' 'yesterday' is "
                                                                         "not an ISO 8601 time"),
    ({"index": 1, "type": "URL", "data": "x", "timestamp": "9" * 500}, "value 1: field 'timestamp'"),
    ({"index": 1, "type": "URL", "data": "x", "timestamp": -1}, "value 1: field 'timestamp' = -1 is outside"),
    ({"index": 1, "type": "URL", "data": "x", "timestamp": 2**40}, "value 1: field 'timestamp' = 1099511627776"),
    ({"index": 1, "type": "URL", "data": "x", "timestamp": []}, "value 1: field 'timestamp' must be an ISO 8601"),
    ({"index": 1, "type": "URL", "data": "x", "permissions": "12"}, "value 1: permissions '12' must be four"),
    ({"index": 1, "type": "URL", "data": "x", "permissions": 1110}, "value 1: field 'permissions' must be text"),
    ({"index": 1, "type": "URL", "data": "x", "references": {}}, "value 1: field 'references' must be a list"),
    ({"index": 1, "type": "URL", "data": "x", "references": [{"handle": "h", "index": "one"}]},
     "value 1: reference 0: field 'index' must be an integer"),
    ({"index": 1, "type": "URL", "data": "x", "references": ["h"]}, "value 1: reference 0 must be a JSON object"),
]


@pytest.mark.parametrize(("raw", "fragment"), REJECTED)
def test_rejected_values(raw: object, fragment: str) -> None:
    with pytest.raises(InvalidValue) as info:
        mapping.value_from_dict(raw)
    assert fragment in info.value.message
    assert info.value.response_code == ResponseCode.INVALID_VALUE == 202


@pytest.mark.parametrize("body", [None, 5, "text", {"values": {}}, {"values": "x"}, [[]]])
def test_rejected_bodies(body: object) -> None:
    with pytest.raises(InvalidValue):
        mapping.values_from_body(body)


def test_lone_surrogate_escaped_in_json_is_invalid_value() -> None:
    body = codec.decode_body(b'{"index":1,"type":"URL","data":"\\ud800"}', codec.JSON)
    with pytest.raises(InvalidValue, match="not valid UTF-8"):
        mapping.values_from_body(body)


# -- writing values -----------------------------------------------------------------------------------------------

WRITTEN: list[tuple[HandleValue, dict[str, Any]]] = [
    (HandleValue(1, "URL", "http://x", timestamp=T_2024),
     {"index": 1, "type": "URL", "data": {"format": "string", "value": "http://x"}, "ttl": 86400,
      "timestamp": "2024-05-01T12:00:00Z"}),
    (HandleValue(300, "HS_SECKEY", "hashed", timestamp=1_700_000_000, permissions=Permissions(public_read=False)),
     {"index": 300, "type": "HS_SECKEY", "data": {"format": "string", "value": "hashed"}, "ttl": 86400,
      "timestamp": "2023-11-14T22:13:20Z", "permissions": "1100"}),
    (HandleValue(2, "BLOB", b"\0\1\2", ttl=T_2024, ttl_type=TTLType.ABSOLUTE, references=(ValueReference("88/x", 3),)),
     {"index": 2, "type": "BLOB", "data": {"format": "base64", "value": "AAEC"}, "ttl": "2024-05-01T12:00:00Z",
      "timestamp": "1970-01-01T00:00:00Z", "references": [{"handle": "88/x", "index": 3}]}),
    (HandleValue(100, "HS_ADMIN", AdminRecord("0.NA/88", 200)),
     {"index": 100, "type": "HS_ADMIN", "ttl": 86400, "timestamp": "1970-01-01T00:00:00Z", "data": {
         "format": "admin", "value": {"handle": "0.NA/88", "index": 200, "permissions": "011111110011"}}}),
    (HandleValue(200, "HS_VLIST", ValueList((ValueReference("0.NA/88", 300), ValueReference("0.NA/89", 301)))),
     {"index": 200, "type": "HS_VLIST", "ttl": 86400, "timestamp": "1970-01-01T00:00:00Z", "data": {
         "format": "vlist", "value": [{"handle": "0.NA/88", "index": 300}, {"handle": "0.NA/89", "index": 301}]}}),
    (HandleValue(1, "HS_SITE", SITE, ttl=-1),
     {"index": 1, "type": "HS_SITE", "ttl": -1, "timestamp": "1970-01-01T00:00:00Z",
      "data": {"format": "site", "value": SITE_DICT}}),
    (HandleValue(300, "HS_PUBKEY", KeyData(b"\1\2")),
     {"index": 300, "type": "HS_PUBKEY", "ttl": 86400, "timestamp": "1970-01-01T00:00:00Z",
      "data": {"format": "key", "value": "AQI="}}),
]


@pytest.mark.parametrize(("value", "expected"), WRITTEN)
def test_written_values(value: HandleValue, expected: dict[str, Any]) -> None:
    assert mapping.value_to_dict(value) == expected
    assert mapping.value_from_dict(expected) == value
    assert mapping.values_to_list([value, value]) == [expected, expected]


# -- responses ----------------------------------------------------------------------------------------------------

URL_VALUE = HandleValue(1, "URL", "u")
SITE_VALUE = HandleValue(1, "HS_SITE.PREFIX", SITE)

RESPONSES: list[tuple[Response, dict[str, Any]]] = [
    (Response(ResponseCode.SUCCESS, "88.101/x", (URL_VALUE,)),
     {"responseCode": 1, "handle": "88.101/x", "values": [mapping.value_to_dict(URL_VALUE)]}),
    (Response(ResponseCode.HANDLE_NOT_FOUND, "88.101/y", message="not here"),
     {"responseCode": 100, "handle": "88.101/y", "message": "not here"}),
    (Response(ResponseCode.SERVER_NOT_RESPONSIBLE, message="That prefix doesn't live here"),
     {"responseCode": 301, "handle": "", "message": "That prefix doesn't live here"}),
    (Response(ResponseCode.SUCCESS, "88.101/z"), {"responseCode": 1, "handle": "88.101/z"}),
    (Response(ResponseCode.PREFIX_REFERRAL, "0.NA/88.101.2001", (SITE_VALUE,), message="ask there"),
     {"responseCode": 303, "handle": "0.NA/88.101.2001", "values": [mapping.value_to_dict(SITE_VALUE)],
      "message": "ask there"}),
    (Response(ResponseCode.SERVICE_REFERRAL, "88.101/x"), {"responseCode": 302, "handle": "88.101/x", "values": []}),
    (Response(ResponseCode.SUCCESS, "88.101", handles=("88.101/a", "88.101/b"), total_count=7, listing=True),
     {"responseCode": 1, "prefix": "88.101", "totalCount": 7, "handles": ["88.101/a", "88.101/b"]}),
    (Response(ResponseCode.SUCCESS, "88.101", listing=True),
     {"responseCode": 1, "prefix": "88.101", "totalCount": 0, "handles": []}),
    (Response(ResponseCode.SUCCESS, "88.101/x", (URL_VALUE,), extra={"trace": [{"asked": "root"}], "hops": 2}),
     {"responseCode": 1, "handle": "88.101/x", "values": [mapping.value_to_dict(URL_VALUE)],
      "trace": [{"asked": "root"}], "hops": 2}),
    (Response(1000, "88.101/x", message="from the future"),
     {"responseCode": 1000, "handle": "88.101/x", "message": "from the future"}),
]


@pytest.mark.parametrize(("response", "expected"), RESPONSES)
@pytest.mark.parametrize("media", MEDIA)
def test_response_shapes(response: Response, expected: dict[str, Any], media: str) -> None:
    body = codec.encode_response(response, media)
    assert codec.decode_body(body, media) == expected
    decoded = codec.decode_response(body, media)
    assert decoded == response and decoded.extra == response.extra


def test_extra_never_replaces_standard_keys() -> None:
    response = Response(ResponseCode.HANDLE_NOT_FOUND, "88/x", extra={"responseCode": 1, "handle": "88/y"})
    assert codec.response_to_dict(response) == {"responseCode": 100, "handle": "88/x"}


def test_pretty_json() -> None:
    body = codec.encode_response(Response(1, "88/x"), codec.JSON, pretty=True)
    assert body == b'{\n  "responseCode": 1,\n  "handle": "88/x"\n}'


def test_json_keeps_non_ascii_text() -> None:
    body = codec.encode_response(Response(1, "88/x", (HandleValue(1, "URL", "http://例え.jp"),)), codec.JSON)
    assert "例え".encode() in body


@pytest.mark.parametrize("media", MEDIA)
def test_values_answer_fast_path_is_byte_identical(media: str) -> None:
    values = (URL_VALUE, SITE_VALUE, HandleValue(100, "HS_ADMIN", AdminRecord("0.NA/88", 200)))
    response = Response(ResponseCode.SUCCESS, "88/x", values)
    joined = b"".join(codec.values_answer_parts("88/x", values, media))
    assert joined == codec.encode_response(response, media)
    assert joined == codec.encode_body(codec.response_to_dict(response), media), "as the dict path spells it"
    assert b"".join(codec.values_answer_parts("88/x", iter(values), media)) == joined


@pytest.mark.parametrize("media_type", ["application/json; charset=utf-8", "APPLICATION/JSON", "text/json"])
def test_json_media_type_spellings(media_type: str) -> None:
    assert codec.decode_response(b'{"responseCode":1,"handle":"88/x"}', media_type) == Response(1, "88/x")


def test_msgpack_carries_bytes_as_base64_text() -> None:
    body = codec.encode_response(Response(1, "88/x", (HandleValue(2, "BLOB", b"\xff"),)), codec.MSGPACK)
    assert msgpack.unpackb(body, raw=False)["values"][0]["data"] == {"format": "base64", "value": "/w=="}


def test_unencodable_answers_are_handle_errors() -> None:
    with pytest.raises(HandleError, match="cannot encode"):
        codec.encode_response(Response(1, "88/x", extra={"trace": object()}), codec.JSON)
    with pytest.raises(HandleError, match="cannot encode"):
        codec.encode_response(Response(1, "88/x", extra={"big": 2**70}), codec.MSGPACK)


def _deep(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


GARBAGE: list[tuple[bytes, str]] = [
    (b"", codec.JSON), (b"", codec.MSGPACK),
    (b"{", codec.JSON), (b"\xff\xfe", codec.JSON), (b"<html>502 Bad Gateway</html>", codec.JSON),
    (b"[]", codec.JSON), (b'"text"', codec.JSON), (b"null", codec.JSON),
    (b"{}", codec.JSON), (b'{"responseCode":"one"}', codec.JSON),
    (b'{"responseCode":1.0}', codec.JSON), (b'{"responseCode":NaN}', codec.JSON),
    (b'{"responseCode":1,"handle":5}', codec.JSON), (b'{"responseCode":1,"message":[]}', codec.JSON),
    (b'{"responseCode":1,"values":5}', codec.JSON), (b'{"responseCode":1,"values":[{"index":1}]}', codec.JSON),
    (b'{"responseCode":1,"handles":[1]}', codec.JSON), (b'{"responseCode":1,"handles":["a"],"totalCount":-1}',
                                                         codec.JSON),
    (b'{"responseCode":' + b"9" * 5000 + b"}", codec.JSON),
    (b'{"responseCode":' + b"9" * 50 + b"}", codec.JSON),
    (b'{"responseCode":1,"handle":"\\udc00"}', codec.JSON),
    (_deep(100_000), codec.JSON), (b"\x91" * 100_000, codec.MSGPACK),
    (b"\xc1", codec.MSGPACK), (b"\x81\x01\x02", codec.MSGPACK), (b"\xa1\xff", codec.MSGPACK),
    (b"\xdd\xff\xff\xff\xff", codec.MSGPACK), (b"\xdf\xff\xff\xff\xff", codec.MSGPACK),
    (b"\xdb\xff\xff\xff\xff", codec.MSGPACK), (b"\xd6\xff\x00\x00\x00\x00", codec.MSGPACK),
    (msgpack.packb(msgpack.ExtType(5, b"x")), codec.MSGPACK), (msgpack.packb({"responseCode": 1}) + b"\x00",
                                                               codec.MSGPACK),
    (msgpack.packb({"responseCode": 1, "handle": b"bytes"}), codec.MSGPACK),
    (msgpack.packb({"responseCode": 2**64 - 1}), codec.MSGPACK),
    (b'{"responseCode":1}', "text/html"),
]


@pytest.mark.parametrize(("body", "media"), GARBAGE)
def test_garbage_answers_are_protocol_errors(body: bytes, media: str) -> None:
    with pytest.raises(ProtocolError):
        codec.decode_response(body, media)


def test_oversized_body_is_refused_before_parsing() -> None:
    with pytest.raises(ProtocolError, match="limit"):
        codec.decode_body(b" " * (codec.MAX_BODY + 1), codec.JSON)


# -- requests -----------------------------------------------------------------------------------------------------

HANDLE = Handle.from_text("88.101/x")
NOT_RECURSIVE_BY_DEFAULT = not Request(OpCode.RESOLUTION).recursive  # only departures from defaults are sent
REQUESTS: list[tuple[Request, dict[str, Any]]] = [
    (Request(OpCode.RESOLUTION, HANDLE), {"op": 1, "handle": "88.101/x"}),
    (Request(OpCode.RESOLUTION, HANDLE, types=("URL", "HS_SITE."), indexes=(1, 100), authoritative=True,
             public_only=False, recursive=NOT_RECURSIVE_BY_DEFAULT, hops=3),
     {"op": 1, "handle": "88.101/x", "types": ["URL", "HS_SITE."], "indexes": [1, 100], "authoritative": True,
      "public_only": False, "recursive": NOT_RECURSIVE_BY_DEFAULT, "hops": 3}),
    (Request(OpCode.CREATE_HANDLE, HANDLE, values=(URL_VALUE,), overwrite=False, mint_new_suffix=True),
     {"op": 100, "handle": "88.101/x", "values": [mapping.value_to_dict(URL_VALUE)], "overwrite": False,
      "mint_new_suffix": True}),
    (Request(OpCode.REMOVE_VALUE, HANDLE, indexes=(2,)), {"op": 103, "handle": "88.101/x", "indexes": [2]}),
    (Request(OpCode.LIST_HANDLES, prefix=Prefix.from_text("88.101"), page=2, page_size=50),
     {"op": 105, "prefix": "88.101", "page": 2, "page_size": 50}),
    (Request(OpCode.LIST_HOMED_NAS), {"op": 302}),
]


@pytest.mark.parametrize(("request_", "expected"), REQUESTS)
@pytest.mark.parametrize("media", MEDIA)
def test_request_shapes(request_: Request, expected: dict[str, Any], media: str) -> None:
    body = codec.encode_request(request_, media)
    assert codec.decode_body(body, media) == expected
    assert codec.decode_request(body, media) == request_


def test_request_body_never_carries_identity() -> None:
    sent = Request(OpCode.DELETE_HANDLE, HANDLE, identity=ValueReference("0.NA/88.101", 300))
    assert codec.request_to_dict(sent) == {"op": 101, "handle": "88.101/x"}
    assert codec.decode_request(codec.encode_request(sent)).identity is None


REJECTED_REQUESTS: list[tuple[object, type[HandleError], str]] = [
    ([1], ProtocolError, "request must be a JSON object"),
    ({}, ProtocolError, "request: field 'op' is missing"),
    ({"op": "resolve"}, ProtocolError, "request: field 'op' must be an integer"),
    ({"op": 9999}, OperationNotSupported, "operation code 9999 is unknown"),
    ({"op": 1, "handle": 5}, ProtocolError, "request: field 'handle' must be text"),
    ({"op": 1, "handle": "no-slash"}, InvalidHandle, "no '/'"),
    ({"op": 105, "prefix": "88..1"}, InvalidHandle, "empty segment"),
    ({"op": 1, "handle": "88/x", "types": "URL"}, ProtocolError, "field 'types' must be a list"),
    ({"op": 1, "handle": "88/x", "types": [1]}, ProtocolError, "type filter 0 must be text"),
    ({"op": 1, "handle": "88/x", "indexes": [-1]}, ProtocolError, "index filter 0 must be an integer"),
    ({"op": 1, "handle": "88/x", "indexes": [True]}, ProtocolError, "index filter 0"),
    ({"op": 1, "handle": "88/x", "authoritative": "yes"}, ProtocolError, "'authoritative' must be true or false"),
    ({"op": 105, "prefix": "88", "page": -1}, ProtocolError, "field 'page' = -1 is outside"),
    ({"op": 1, "handle": "88/x", "hops": 2**40}, ProtocolError, "field 'hops'"),
    ({"op": 100, "handle": "88/x", "values": {}}, ProtocolError, "field 'values' must be a list"),
    ({"op": 100, "handle": "88/x", "values": [{"index": 1, "type": "HS_ADMIN", "data": "x"}]}, InvalidValue,
     "needs data in format 'admin'"),
]


@pytest.mark.parametrize(("raw", "error", "fragment"), REJECTED_REQUESTS)
def test_rejected_requests(raw: object, error: type[HandleError], fragment: str) -> None:
    with pytest.raises(error) as info:
        codec.decode_request(msgpack.packb(raw))
    assert type(info.value) is error and fragment in info.value.message


@pytest.mark.parametrize("body", [b"", b"\xc1", b"\x93\x01\x02", msgpack.packb({"op": 1}) + b"!"])
def test_garbage_requests_are_protocol_errors(body: bytes) -> None:
    with pytest.raises(ProtocolError):
        codec.decode_request(body)


# -- round-trips (hypothesis) -------------------------------------------------------------------------------------

prefixes = st.from_regex(r"\A88(\.[0-9]{1,4}){0,2}\Z").map(Prefix.from_text)
handle_objects = prefixes.map(Prefix.prefix_handle) | \
    st.from_regex(r"\A88\.[0-9]{1,4}/[A-Za-z0-9/._-]{1,16}\Z").map(Handle.from_text)
safe_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)
response_codes = st.sampled_from(list(ResponseCode)) | st.integers(0, 2**31 - 1)


@settings(max_examples=examples(200))
@given(handle_values())
def test_value_round_trips_through_dict_json_and_msgpack(value: HandleValue) -> None:
    as_dict = mapping.value_to_dict(value)
    assert mapping.value_from_dict(as_dict) == value
    for media in MEDIA:
        assert mapping.value_from_dict(encode_decode(as_dict, media)) == value


@settings(max_examples=examples(200))
@given(st.lists(handle_values(), min_size=0, max_size=20), safe_text, st.sampled_from(MEDIA), st.booleans())
def test_values_answer_fast_path_matches_the_dict_path(values: list[HandleValue], handle: str, media: str,
                                                       pretty: bool) -> None:
    """The per-value fragments (msgspec for JSON) spell every value as json.dumps / msgpack of its dict would, and
    the parts an answer cache holds join to the same bytes (up to 20 values: msgpack's short array heads and the
    long one)."""
    response = Response(ResponseCode.SUCCESS, handle, tuple(values))
    expected = codec.encode_body(codec.response_to_dict(response), media)
    if values:  # (an answer without values has no "values" key: encode_response takes the dict path for it)
        assert b"".join(codec.values_answer_parts(handle, values, media)) == expected
    parts = codec.encode_response_parts(response, media, pretty=pretty)
    assert all(type(part) is bytes for part in parts)
    assert b"".join(parts) == codec.encode_response(response, media, pretty=pretty)
    assert b"".join(parts) == expected or pretty


@given(value_lists, st.sampled_from(MEDIA))
def test_put_body_round_trips(values: tuple[HandleValue, ...], media: str) -> None:
    body = codec.encode_body({"values": mapping.values_to_list(values)}, media)
    assert tuple(mapping.values_from_body(codec.decode_body(body, media))) == values


@st.composite
def responses(draw: st.DrawFn) -> Response:
    kind = draw(st.sampled_from(["values", "error", "referral", "listing"]))
    handle = draw(safe_text)
    if kind == "listing":
        handles = tuple(draw(st.lists(safe_text, max_size=5)))
        return Response(draw(response_codes), handle, handles=handles, total_count=draw(st.integers(0, 2**31 - 1)),
                        listing=True, message=draw(safe_text))
    if kind == "error":
        return Response(draw(response_codes), handle, message=draw(safe_text))
    code = ResponseCode.SUCCESS if kind == "values" else draw(st.sampled_from([302, 303]))
    return Response(code, handle, draw(value_lists), message=draw(safe_text))


@settings(max_examples=examples(150), suppress_health_check=[HealthCheck.too_slow])
@given(responses(), st.sampled_from(MEDIA))
def test_response_round_trips(response: Response, media: str) -> None:
    decoded = codec.decode_response(codec.encode_response(response, media), media)
    assert decoded == response


requests = st.builds(
    Request,
    op=st.sampled_from(list(OpCode)),
    handle=st.none() | handle_objects,
    types=st.lists(type_names | safe_text, max_size=3).map(tuple),
    indexes=st.lists(st.integers(0, 2**31 - 1), max_size=3).map(tuple),
    values=value_lists,
    authoritative=st.booleans(), public_only=st.booleans(), overwrite=st.booleans(),
    mint_new_suffix=st.booleans(), recursive=st.booleans(),
    prefix=st.none() | prefixes,
    page=st.integers(0, 2**31 - 1), page_size=st.integers(0, 2**31 - 1), hops=st.integers(0, 2**31 - 1),
)


@settings(max_examples=examples(150), suppress_health_check=[HealthCheck.too_slow])
@given(requests, st.sampled_from(MEDIA))
def test_request_round_trips(request_: Request, media: str) -> None:
    assert codec.decode_request(codec.encode_request(request_, media), media) == request_


# -- hostile input (hypothesis) -----------------------------------------------------------------------------------

json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)
msgpack_like = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats() | st.text() | st.binary(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12) | st.binary(max_size=4), inner,
                                                                max_size=4),
    max_leaves=20,
)


def only_handle_errors(call: Any, *allowed: type[HandleError]) -> None:
    try:
        call()
    except HandleError as exc:
        assert isinstance(exc, allowed), exc


@settings(max_examples=examples(300))
@given(st.binary(max_size=300), st.sampled_from(MEDIA))
def test_arbitrary_bytes_only_raise_protocol_errors(raw: bytes, media: str) -> None:
    only_handle_errors(lambda: codec.decode_response(raw, media), ProtocolError)
    only_handle_errors(lambda: codec.decode_request(raw, media), HandleError)


@settings(max_examples=examples(300))
@given(json_like)
def test_arbitrary_structures_only_raise_typed_errors(body: object) -> None:
    only_handle_errors(lambda: mapping.values_from_body(body), InvalidValue)
    only_handle_errors(lambda: codec.response_from_dict(body), ProtocolError)
    only_handle_errors(lambda: codec.request_from_dict(body), HandleError)


@settings(max_examples=examples(300))
@given(msgpack_like, st.sampled_from(["value", "answer", "request"]))
def test_arbitrary_msgpack_only_raises_typed_errors(body: object, shape: str) -> None:
    if shape == "value":
        body = {"index": 1, "type": "URL", "data": body}
    elif shape == "answer":
        body = {"responseCode": 1, "handle": "88/x", "values": body}
    else:
        body = {"op": 100, "handle": "88/x", "values": body}
    packed = msgpack.packb(body, use_bin_type=True)
    only_handle_errors(lambda: codec.decode_response(packed, codec.MSGPACK), ProtocolError)
    only_handle_errors(lambda: codec.decode_request(packed, codec.MSGPACK), HandleError)
    only_handle_errors(lambda: mapping.values_from_body(msgpack.unpackb(packed, raw=False)), InvalidValue)


def _mutated(node: Any, data: st.DataObject) -> Any:
    """`node` with one place somewhere inside replaced by arbitrary JSON-like data."""
    children = list(node.items()) if isinstance(node, dict) else list(enumerate(node)) if isinstance(node, list) else []
    if not children or data.draw(st.booleans()):
        return data.draw(json_like)
    key, child = data.draw(st.sampled_from(children))
    node[key] = _mutated(child, data)
    return node


@settings(max_examples=examples(400), suppress_health_check=[HealthCheck.too_slow])
@given(handle_values(), st.data())
def test_damaged_values_only_raise_invalid_value(value: HandleValue, data: st.DataObject) -> None:
    damaged = _mutated(json.loads(json.dumps(mapping.value_to_dict(value))), data)  # a copy: the dicts are cached
    only_handle_errors(lambda: mapping.value_from_dict(damaged), InvalidValue)
    answer = json.dumps({"responseCode": 1, "handle": "88/x", "values": [damaged]}).encode()
    only_handle_errors(lambda: codec.decode_response(answer, codec.JSON), ProtocolError)


def test_cached_structured_dicts_survive_the_damage_tests() -> None:
    value = HandleValue(1, "HS_SITE", SITE)
    assert mapping.value_to_dict(value)["data"]["value"] == SITE_DICT


def test_decoded_values_are_remembered_only_for_equal_raw_forms() -> None:
    frozen = codec._frozen  # noqa: SLF001
    assert frozen({"a": True}) != frozen({"a": 1}) != frozen({"a": 1.0})
    assert frozen([["a", 1]]) != frozen({"a": 1}) and frozen(["a"]) != frozen("a")
    assert frozen({"a": {"b": [1, None]}}) == frozen({"a": {"b": [1, None]}})
    assert frozen({"a": object()}) is None and frozen({"a": [set()]}) is None
    first = Response(ResponseCode.SUCCESS, "88.1/X", (HandleValue(1, "URL", "https://a.example.cn"),
                                                      HandleValue(2, "FLAG", "true"), HandleValue(3, "N", "1")))
    body = codec.encode_response(first, codec.MSGPACK)
    assert codec.decode_response(body, codec.MSGPACK) == codec.decode_response(body, codec.MSGPACK) == first
    changed = msgpack.unpackb(body, raw=False)
    changed["values"][0]["data"]["value"] = "https://b.example.cn"
    again = codec.decode_response(msgpack.packb(changed, use_bin_type=True), codec.MSGPACK)
    assert again.values[0].data == "https://b.example.cn" and again.values[1:] == first.values[1:]
