"""Responses and request bodies as bytes: Handle.Net REST JSON for clients, msgpack between nodes (same dicts)."""

from __future__ import annotations

import json
from typing import Any

import msgpack

from ..core.codes import ResponseCode
from ..core.errors import HandleError, InvalidValue, ProtocolError
from ..core.messages import Response
from . import mapping

JSON = "application/json"
MSGPACK = "application/msgpack"
MAX_BODY = 16 * 1024 * 1024



def response_to_dict(response: Response) -> dict[str, Any]:
    """The REST shape: values on success and referrals, `message` on errors, listings as prefix/totalCount/handles."""
    out: dict[str, Any] = {"responseCode": int(response.code)}
    if response.listing:
        out["prefix"] = response.handle
        out["totalCount"] = response.total_count
        out["handles"] = list(response.handles)
    else:
        out["handle"] = response.handle
        if response.values or response.code in (ResponseCode.PREFIX_REFERRAL, ResponseCode.SERVICE_REFERRAL):
            out["values"] = mapping.values_to_list(response.values)
    if response.message:
        out["message"] = response.message
    out.update(response.extra)
    return out


def response_from_dict(raw: Any) -> Response:
    if not isinstance(raw, dict):
        raise ProtocolError(f"an answer must be an object, not {type(raw).__name__}")
    code = raw.get("responseCode")
    if isinstance(code, bool) or not isinstance(code, int):
        raise ProtocolError("an answer has no integer responseCode")
    values = raw.get("values", [])
    handles = raw.get("handles", [])
    if not isinstance(values, list) or not isinstance(handles, list):
        raise ProtocolError("an answer's values and handles must be lists")
    try:
        parsed = tuple(mapping.value_from_dict(v) for v in values)
    except InvalidValue as exc:
        raise ProtocolError(f"an answer carries a bad value: {exc.message}") from None
    known = {"responseCode", "handle", "prefix", "values", "message", "handles", "totalCount"}
    return Response(
        code=ResponseCode.from_int(code),
        handle=str(raw.get("handle", raw.get("prefix", ""))),
        values=parsed,
        message=str(raw.get("message", "")),
        handles=tuple(str(h) for h in handles),
        total_count=int(raw.get("totalCount", 0)) if isinstance(raw.get("totalCount", 0), int) else 0,
        listing="handles" in raw,
        extra={k: v for k, v in raw.items() if k not in known},
    )


def encode_body(obj: Any, media: str, *, pretty: bool = False) -> bytes:
    if media == MSGPACK:
        return bytes(msgpack.packb(obj, use_bin_type=True))
    if pretty:
        return json.dumps(obj, ensure_ascii=False, indent=2).encode("utf-8")
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def decode_body(body: bytes, media: str) -> Any:
    """Parse a request or answer body; garbage is a ProtocolError, never another exception."""
    if len(body) > MAX_BODY:
        raise ProtocolError(f"body of {len(body)} bytes is over the {MAX_BODY} byte limit")
    if media == MSGPACK:
        try:
            return msgpack.unpackb(body, raw=False, strict_map_key=True)
        except (ValueError, TypeError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
            raise ProtocolError(f"body is not valid msgpack ({type(exc).__name__})") from None
        except Exception as exc:  # msgpack raises assorted errors on hostile input
            raise ProtocolError(f"body is not valid msgpack ({type(exc).__name__})") from None
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(f"body is not valid JSON ({exc})"[:200]) from None


def encode_response(response: Response, media: str, *, pretty: bool = False) -> bytes:
    return encode_body(response_to_dict(response), media, pretty=pretty)


def decode_response(body: bytes, media: str) -> Response:
    try:
        return response_from_dict(decode_body(body, media))
    except HandleError:
        raise
    except (ValueError, TypeError, RecursionError) as exc:
        raise ProtocolError(f"unreadable answer ({type(exc).__name__})") from None
