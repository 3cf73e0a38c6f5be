"""The Handle.Net REST API mapped onto core requests, both ways: HTTP -> Request (server) and Request -> HTTP (client).

One table of routes serves both encodings: JSON for external clients (pyhandle, curl) and msgpack between nodes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import quote, unquote

from ..core.codes import OpCode
from ..core.errors import ProtocolError
from ..core.handle import DEFAULT_MAX_HANDLE_BYTES, Handle, Prefix
from ..core.messages import Request
from ..wire import codec, mapping

HANDLE_PATH = "/api/handles/"
HANDLE_ROUTE = HANDLE_PATH + "{handle:.+}"
HANDLE_ROUTE_SEGMENTS = HANDLE_PATH.count("/")
"""A raw path split this many times at `/` leaves the encoded handle last."""
ITERATIVE_QUERY = "?recursive=false"
"""The whole query of a walk step's plain GET (`http_call`): a node that answers the handle itself gives the same
answer as to the plain path, so the front door serves both from one cached answer."""
LIST_ROUTE = "/api/handles"
PREFIXES_ROUTE = "/api/prefixes"

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}
_URI_SCHEMES = ("hdl:", "doi:", "info:hdl/", "info:doi/")


def parse_flag(query: Mapping[str, str], name: str, default: bool) -> bool:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    raise ProtocolError(f"query parameter {name}={raw!r} must be true or false")


def parse_int(raw: str, name: str, *, minimum: int = 0, maximum: int = 2**31 - 1) -> int:
    try:
        number = int(raw)
    except ValueError:
        raise ProtocolError(f"query parameter {name}={raw!r} must be an integer") from None
    if not minimum <= number <= maximum:
        raise ProtocolError(f"query parameter {name}={number} must be between {minimum} and {maximum}")
    return number


def handle_from_raw_path(raw_path: str, *, max_bytes: int = DEFAULT_MAX_HANDLE_BYTES) -> Handle:
    """The handle a request on HANDLE_ROUTE names, read from the raw path (as sent, still percent-encoded) and
    decoded exactly once: `%252F` is the text `%2F`, `%2E%2E` is a `..` segment, and `a/../X` is not `X`.

    The route's matched text cannot be used: aiohttp has already decoded it, and a second decoding would turn a
    literal `%2F` into `/`. A `hdl:` / `doi:` style scheme is stripped only where it is written out unencoded."""
    encoded = raw_path.split("/", HANDLE_ROUTE_SEGMENTS)[-1]  # the router matched: the route's segments are there
    if ":" in encoded[:10]:
        lowered = encoded.lower()
        for scheme in _URI_SCHEMES:
            if lowered.startswith(scheme):
                encoded = encoded[len(scheme):]
                break
    text = unquote(encoded, errors="surrogateescape") if "%" in encoded else encoded
    return Handle.from_text(text, max_bytes=max_bytes)


_DOT_SEGMENTS = {".": "%2E", "..": "%2E%2E"}


def path_for(handle: Handle) -> str:
    """The request path that addresses exactly `handle`, the one every client builds (handle_from_raw_path reads it).

    Everything but unreserved characters and `/` is percent-encoded (so `%` travels as `%25`), and a `.` or `..`
    segment of the suffix as `%2E` / `%2E%2E`: HTTP clients, proxies and yarl resolve dot segments away, so
    `88.101.1001/a/../X` would otherwise reach `88.101.1001/X`. Send the path as it is (yarl: `encoded=True`)."""
    encoded = quote(handle.text, safe="/-_.~")
    if "." in handle.suffix:
        encoded = "/".join(_DOT_SEGMENTS.get(segment, segment) for segment in encoded.split("/"))
    return HANDLE_PATH + encoded


@dataclass(frozen=True, slots=True)
class HttpCall:
    """What a client sends for a request."""

    method: str
    path: str
    params: list[tuple[str, str]]
    body: bytes | None = None


def _indexes(values: Sequence[str]) -> tuple[int, ...]:
    return tuple(parse_int(v, "index", minimum=0) for v in values)


def resolution_request(handle: Handle, query: Mapping[str, str], types: Sequence[str], indexes: Sequence[str],
                       ) -> Request:
    authoritative = parse_flag(query, "auth", False)
    public_only = parse_flag(query, "publicOnly", not authoritative)
    return Request(OpCode.RESOLUTION, handle, types=tuple(types), indexes=_indexes(indexes),
                   authoritative=authoritative, public_only=public_only,
                   recursive=parse_flag(query, "recursive", True))


def put_request(handle: Handle, query: Mapping[str, str], indexes: Sequence[str], body: bytes, media: str) -> Request:
    """PUT: a whole record (create / overwrite), or with `index=` only the values at those indexes."""
    values = mapping.values_from_body(codec.decode_body(body, media))
    overwrite = parse_flag(query, "overwrite", True)
    mint = parse_flag(query, "mintNewSuffix", False)
    if indexes:
        if "various" not in indexes:
            wanted = set(_indexes(indexes))
            values = [v for v in values if v.index in wanted]
            if not values:
                raise ProtocolError(f"the body has no values at the indexes named in the query ({sorted(wanted)})")
        return Request(OpCode.ADD_VALUE, handle, values=tuple(values), overwrite=overwrite)
    return Request(OpCode.CREATE_HANDLE, handle, values=tuple(values), overwrite=overwrite, mint_new_suffix=mint)


def delete_request(handle: Handle, indexes: Sequence[str]) -> Request:
    if indexes:
        return Request(OpCode.REMOVE_VALUE, handle, indexes=_indexes(indexes))
    return Request(OpCode.DELETE_HANDLE, handle)


def list_request(query: Mapping[str, str]) -> Request:
    prefix_text = query.get("prefix")
    if not prefix_text:
        raise ProtocolError("listing handles needs ?prefix=<prefix>")
    page = parse_int(query.get("page", "0") or "0", "page")
    size = parse_int(query.get("pageSize", "0") or "0", "pageSize")
    return Request(OpCode.LIST_HANDLES, prefix=Prefix.from_text(prefix_text), page=page, page_size=size)


def http_call(request: Request, media: str) -> HttpCall:
    """The client side of the mapping: the HTTP call that carries `request`."""
    op = request.op
    if op == OpCode.LIST_HANDLES and request.prefix is not None:
        params = [("prefix", request.prefix.text), ("page", str(request.page)), ("pageSize", str(request.page_size))]
        return HttpCall("GET", LIST_ROUTE, params)
    if op == OpCode.LIST_HOMED_NAS:
        return HttpCall("GET", PREFIXES_ROUTE, [])
    if request.handle is None:
        raise ProtocolError(f"operation {op.name} needs a handle")
    path = path_for(request.handle)
    if op == OpCode.RESOLUTION:
        params = [("type", t) for t in request.types] + [("index", str(i)) for i in request.indexes]
        if request.authoritative:
            params.append(("auth", "true"))
        if not request.public_only:
            params.append(("publicOnly", "false"))
        if not request.recursive:
            params.append(("recursive", "false"))
        return HttpCall("GET", path, params)
    if op in (OpCode.CREATE_HANDLE, OpCode.ADD_VALUE, OpCode.MODIFY_VALUE):
        params = [("overwrite", "true" if request.overwrite or op == OpCode.MODIFY_VALUE else "false")]
        if op != OpCode.CREATE_HANDLE:
            params += [("index", str(v.index)) for v in request.values]
        if request.mint_new_suffix:
            params.append(("mintNewSuffix", "true"))
        body = codec.encode_body({"values": mapping.values_to_list(request.values)}, media)
        return HttpCall("PUT", path, params, body)
    if op == OpCode.REMOVE_VALUE:
        return HttpCall("DELETE", path, [("index", str(i)) for i in request.indexes])
    if op == OpCode.DELETE_HANDLE:
        return HttpCall("DELETE", path, [])
    raise ProtocolError(f"operation {op.name} has no REST form")
