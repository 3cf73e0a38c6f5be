"""Requests and responses <-> bytes: Handle.Net REST JSON for clients, msgpack between nodes, one dict shape for both.

Response bodies (both encodings):

* values (resolution success, or a 302/303 referral carrying site values): `{responseCode, handle, values[, message]}`
* no values (errors, writes): `{responseCode, handle[, message]}`; the handle is always there (pyhandle reads it)
* listings, told apart by `Response.listing`: `{responseCode, prefix, totalCount, handles}`

`Response.extra` entries (a resolver's `trace`, ...) become further top-level keys; they never replace the standard
ones. `Response.created` is not in the body: HTTP 201 carries it.

Request bodies (node to node): `request_to_dict` below; the caller's identity is never in the body.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, cast

import msgpack
import msgspec

from ..core.codes import OpCode, ResponseCode
from ..core.errors import HandleError, InvalidValue, OperationNotSupported, ProtocolError
from ..core.handle import Handle, Prefix
from ..core.messages import Request, Response
from ..core.values import MAX_INDEX, HandleValue
from . import mapping
from .fields import INT32_MAX, FieldReader, checked_text

JSON = "application/json"
MSGPACK = "application/msgpack"
MAX_BODY = 16 * 1024 * 1024
"""Largest body either decoder accepts (the msgpack equivalent of `max_buffer_size`)."""
MAX_CONTAINER_ITEMS = 1_000_000
"""Most entries in one msgpack array or map, so a short hostile header cannot make the decoder preallocate much."""

_MEDIA_ALIASES = {JSON: JSON, "text/json": JSON, MSGPACK: MSGPACK, "application/x-msgpack": MSGPACK}
_REFERRAL_CODES = (ResponseCode.SERVICE_REFERRAL, ResponseCode.PREFIX_REFERRAL)
_RESPONSE_KEYS = frozenset({"responseCode", "handle", "prefix", "values", "message", "handles", "totalCount"})


# -- bodies -------------------------------------------------------------------------------------------------------


def media_kind(media_type: str) -> str:
    """JSON or MSGPACK for a media type (parameters such as `; charset=utf-8` ignored); ProtocolError otherwise."""
    kind = _MEDIA_ALIASES.get(media_type.partition(";")[0].strip().lower())
    if kind is None:
        raise ProtocolError(f"media type {media_type!r} is neither {JSON} nor {MSGPACK}")
    return kind


def encode_body(obj: Any, media_type: str, *, pretty: bool = False) -> bytes:
    """Plain data as a body. Data that cannot be encoded is a HandleError (code 2), never a codec exception."""
    kind = media_kind(media_type)
    try:
        if kind == MSGPACK:
            return bytes(msgpack.packb(obj, use_bin_type=True))
        if pretty:
            return json.dumps(obj, ensure_ascii=False, indent=2).encode("utf-8")
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    except (TypeError, ValueError, OverflowError, RecursionError) as exc:
        raise HandleError(f"cannot encode the answer as {kind} ({type(exc).__name__}: {exc})"[:300]) from None


def decode_body(body: bytes, media_type: str) -> Any:
    """Parse a request or answer body into plain data; garbage is a ProtocolError, never another exception."""
    kind = media_kind(media_type)
    if len(body) > MAX_BODY:
        raise ProtocolError(f"body of {len(body)} bytes is over the {MAX_BODY} byte limit")
    return _decode_msgpack(body) if kind == MSGPACK else _decode_json(body)


def _decode_msgpack(body: bytes) -> Any:
    items = min(len(body), MAX_CONTAINER_ITEMS)  # every entry takes at least one byte
    try:
        return msgpack.unpackb(body, raw=False, strict_map_key=True, max_str_len=len(body), max_bin_len=len(body),
                               max_array_len=items, max_map_len=items, max_ext_len=0)
    except (ValueError, TypeError, OverflowError, RecursionError, msgpack.UnpackException) as exc:
        raise ProtocolError(f"body is not valid msgpack ({type(exc).__name__})") from None


def _decode_json(body: bytes) -> Any:
    try:
        return json.loads(body, parse_constant=_refuse_constant)
    except (ValueError, TypeError, RecursionError) as exc:
        raise ProtocolError(f"body is not valid JSON ({exc})"[:200]) from None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


# -- responses ----------------------------------------------------------------------------------------------------


def response_to_dict(response: Response) -> dict[str, Any]:
    """The REST shape of an answer (see the module docstring)."""
    out: dict[str, Any] = {"responseCode": int(response.code)}
    if response.listing:
        out["prefix"] = response.handle
        out["totalCount"] = response.total_count
        out["handles"] = list(response.handles)
    else:
        out["handle"] = response.handle
        if response.values or response.code in _REFERRAL_CODES:
            out["values"] = mapping.values_to_list(response.values)
    if response.message:
        out["message"] = response.message
    for key, item in response.extra.items():
        out.setdefault(key, item)
    return out


def response_from_dict(raw: object) -> Response:
    """An answer from a peer; anything malformed (values included) is a ProtocolError."""
    fields = FieldReader(raw, "answer", ProtocolError)
    code = fields.integer("responseCode", lo=0, hi=INT32_MAX)
    listing = fields.has("handles") or (fields.has("prefix") and not fields.has("handle"))
    handles = tuple(_answer_handle(h) for h in fields.items("handles"))
    return Response(
        code=ResponseCode.from_int(code),
        handle=fields.text("prefix" if listing else "handle", ""),
        values=_answer_values(fields.items("values")),
        message=fields.text("message", ""),
        handles=handles,
        total_count=fields.integer("totalCount", len(handles), lo=0),
        listing=listing,
        extra={k: v for k, v in fields.raw.items() if k not in _RESPONSE_KEYS},
    )


def _answer_handle(raw: object) -> str:
    if not isinstance(raw, str):
        raise ProtocolError(f"an answer's handles must be text, not {type(raw).__name__}")
    return checked_text(raw, "a listed handle", ProtocolError)


DECODED_VALUES_LIMIT = 65_536
"""Values kept decoded by their raw form (`_decoded`); a full memo starts over."""
_decoded: dict[object, HandleValue] = {}
"""Values of answers already decoded, by their raw form made hashable (`_frozen`). Reading a value validates every
field (~16 us); answers repeat most of theirs (a site's HS_SITE, an enterprise's HS_ADMIN, product names, models,
dates), so a walk or a client decodes each distinct value once. The keys are tuples of str and numbers, which the
garbage collector untracks."""


def _answer_values(raw: list[Any]) -> tuple[HandleValue, ...]:
    memo = _decoded
    values = []
    try:
        for item in raw:
            key = _frozen(item)
            value = memo.get(key) if key is not None else None
            if value is None:
                value = mapping.value_from_dict(item)
                if key is not None:
                    if len(memo) >= DECODED_VALUES_LIMIT:
                        memo.clear()
                    memo[key] = value
            values.append(value)
    except InvalidValue as exc:
        raise ProtocolError(f"an answer carries a bad value: {exc.message}") from None
    return tuple(values)


def _frozen(raw: object) -> object:
    """`raw` (decoded JSON or msgpack) as a hashable key that equals another's only when both decode alike: containers
    tagged by kind, booleans and floats by type (True == 1 == 1.0 in Python); None for anything else."""
    kind = type(raw)
    if kind is str or kind is int or raw is None:
        return raw
    if kind is dict:
        pairs: list[object] = ["{"]
        for name, item in cast(dict[object, object], raw).items():
            name_key, item_key = _frozen(name), _frozen(item)
            if item_key is None and item is not None or name_key is None:
                return None
            pairs.append((name_key, item_key))
        return tuple(pairs)
    if kind is list:
        items: list[object] = ["["]
        for item in cast(list[object], raw):
            item_key = _frozen(item)
            if item_key is None and item is not None:
                return None
            items.append(item_key)
        return tuple(items)
    if kind is bool or kind is float or kind is bytes:
        return (kind.__name__, raw)
    return None


def encode_response(response: Response, media_type: str, *, pretty: bool = False) -> bytes:
    return b"".join(encode_response_parts(response, media_type, pretty=pretty))


def encode_response_parts(response: Response, media_type: str, *, pretty: bool = False) -> tuple[bytes, ...]:
    """`encode_response` as the pieces it is joined from (`b"".join` gives its bytes): a success answer is mostly
    value fragments shared with every other answer holding the same values, so a node holding many answers (the
    answer cache) keeps each distinct fragment once."""
    if (response.code == ResponseCode.SUCCESS and response.values and not response.message and not response.extra
            and not response.listing and not pretty):
        return values_answer_parts(response.handle, response.values, media_type)
    return (encode_body(response_to_dict(response), media_type, pretty=pretty),)


def decode_response(body: bytes, media_type: str) -> Response:
    """Used by our client: an answer body back into a Response; garbage is a ProtocolError."""
    return response_from_dict(decode_body(body, media_type))


def values_answer_parts(handle_text: str, values: Iterable[HandleValue], media_type: str) -> tuple[bytes, ...]:
    """The success answer of a resolution as its pieces, which join to byte for byte what `response_to_dict` +
    `encode_body` give: fixed heads, the handle, and each value's fragment (in JSON with a shared comma between).

    It is the hot path of every node, so it is assembled from per-value fragments encoded once per distinct value
    (every handle of a prefix shares its HS_ADMIN and contact values) instead of re-encoding whole dicts; the same
    fragment objects are shared by every answer holding that value."""
    kind = media_kind(media_type)
    fragments = [_value_fragment(value, kind) for value in values]
    if kind == MSGPACK:
        count = len(fragments)
        header = _MSGPACK_ARRAY_HEADS[count] if count < 16 else (
            b"\xdc" + count.to_bytes(2, "big") if count < 65536 else b"\xdd" + count.to_bytes(4, "big"))
        return (_MSGPACK_HEAD, bytes(msgpack.packb(handle_text, use_bin_type=True)), _MSGPACK_VALUES, header,
                *fragments)
    parts = [_JSON_HEAD, _json_fragment(handle_text), _JSON_VALUES]
    for fragment in fragments:
        parts += (fragment, _JSON_COMMA)
    if fragments:
        parts[-1] = _JSON_TAIL  # the last value's comma: the close
    else:
        parts.append(_JSON_TAIL)
    return tuple(parts)


_MSGPACK_HEAD = b"".join([b"\x83", bytes(msgpack.packb("responseCode")), bytes(msgpack.packb(1)),
                          bytes(msgpack.packb("handle"))])
_MSGPACK_VALUES = bytes(msgpack.packb("values"))
_MSGPACK_ARRAY_HEADS = tuple(bytes([0x90 | count]) for count in range(16))
_JSON_HEAD = b'{"responseCode":1,"handle":'
_JSON_VALUES = b',"values":['
_JSON_COMMA = b","
_JSON_TAIL = b"]}"


FRAGMENT_CACHE_LIMIT = 1 << 17
_fragments: dict[str, dict[HandleValue, bytes]] = {JSON: {}, MSGPACK: {}}
"""Encoded values, one plain dict per media type keyed by the value itself, cleared when full. Not an lru_cache:
it keeps every entry in a garbage-collected list node under a new (value, kind) key tuple, and a node process that
had answered 100k identifiers spent ~150 ms in each full collection walking them (the benchmark's p99 stalls).
Keyed by the value alone, the cache adds no object the collector tracks: seeded values live in the frozen heap."""


def _value_fragment(value: HandleValue, kind: str) -> bytes:
    cache = _fragments[kind]
    fragment = cache.get(value)
    if fragment is None:
        plain = mapping.build_value_dict(value)
        if kind == MSGPACK:
            fragment = bytes(msgpack.packb(plain, use_bin_type=True))
        else:
            fragment = _json_fragment(plain)
        if len(cache) >= FRAGMENT_CACHE_LIMIT:
            cache.clear()
        cache[value] = fragment
    return fragment


_json_fragment = msgspec.json.Encoder().encode
"""Compact JSON of a value dict or a handle's text: byte for byte what `json.dumps(..., ensure_ascii=False,
separators=(",", ":")).encode()` gives for the strings, integers, lists and string-keyed dicts a value is made of
(never floats, whose spelling differs), ten times faster: it is most of a first-time answer's encoding."""


# -- requests -----------------------------------------------------------------------------------------------------

_DEFAULT_REQUEST = Request(OpCode.RESOLUTION)
_REQUEST_FLAGS = ("authoritative", "public_only", "overwrite", "mint_new_suffix", "recursive")
_REQUEST_COUNTS = ("page", "page_size", "hops")


def request_to_dict(request: Request) -> dict[str, Any]:
    """`{op[, handle][, prefix][, types][, indexes][, values][, flags and counts that differ from the defaults]}`.

    Keys are the Request field names. `identity` is left out: the HTTP adapter authenticates the sender itself.
    """
    out: dict[str, Any] = {"op": int(request.op)}
    if request.handle is not None:
        out["handle"] = request.handle.text
    if request.prefix is not None:
        out["prefix"] = request.prefix.text
    if request.types:
        out["types"] = list(request.types)
    if request.indexes:
        out["indexes"] = list(request.indexes)
    if request.values:
        out["values"] = mapping.values_to_list(request.values)
    for name in (*_REQUEST_FLAGS, *_REQUEST_COUNTS):
        if getattr(request, name) != getattr(_DEFAULT_REQUEST, name):
            out[name] = getattr(request, name)
    return out


def request_from_dict(raw: object) -> Request:
    """A request from a peer: ProtocolError for a malformed body, InvalidHandle / InvalidValue for bad contents."""
    fields = FieldReader(raw, "request", ProtocolError)
    settings: dict[str, Any] = {name: fields.flag(name, getattr(_DEFAULT_REQUEST, name)) for name in _REQUEST_FLAGS}
    settings.update({name: fields.integer(name, getattr(_DEFAULT_REQUEST, name), lo=0, hi=INT32_MAX)
                     for name in _REQUEST_COUNTS})
    return Request(
        op=_op(fields.integer("op", lo=0, hi=INT32_MAX)),
        handle=Handle.from_text(fields.text("handle")) if fields.has("handle") else None,
        prefix=Prefix.from_text(fields.text("prefix")) if fields.has("prefix") else None,
        types=tuple(_type_filter(t, n) for n, t in enumerate(fields.items("types"))),
        indexes=tuple(_index_filter(i, n) for n, i in enumerate(fields.items("indexes"))),
        values=tuple(mapping.value_from_dict(v) for v in fields.items("values")),
        **settings,
    )


def _op(number: int) -> OpCode:
    try:
        return OpCode(number)
    except ValueError:
        raise OperationNotSupported(f"request: operation code {number} is unknown") from None


def _type_filter(raw: object, number: int) -> str:
    if not isinstance(raw, str):
        raise ProtocolError(f"request: type filter {number} must be text, not {type(raw).__name__}")
    return checked_text(raw, f"request: type filter {number}", ProtocolError)


def _index_filter(raw: object, number: int) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or not 0 <= raw <= MAX_INDEX:
        raise ProtocolError(f"request: index filter {number} must be an integer from 0 to {MAX_INDEX}")
    return raw


def encode_request(request: Request, media_type: str = MSGPACK) -> bytes:
    return encode_body(request_to_dict(request), media_type)


def decode_request(body: bytes, media_type: str = MSGPACK) -> Request:
    return request_from_dict(decode_body(body, media_type))

