"""An OpenAPI 3 description of a node's REST API, served at `GET /api/openapi.json`.

Built as data so it stays next to the routes it describes; tests run schemathesis against a live node with it.
Every answer, errors included, is a Handle answer object (`responseCode`, `handle`, `message`, ...) with the
Handle.Net HTTP status of its response code.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .limits import ServerLimits
from .routes import Route

OPENAPI_ROUTE = "/api/openapi.json"

_ANSWER = {"$ref": "#/components/schemas/Answer"}
_STATUS_TEXT = {
    200: "success (or 200 values-not-found on a read)", 201: "created (overwrite=false)",
    300: "prefix or service referral (303/302)", 400: "invalid handle, value or request; prefix not homed here (301)",
    401: "authentication needed (402)", 403: "authentication failed or not permitted (400/401/403/404)",
    404: "handle not found (100)", 405: "method not allowed on this path", 408: "request body timed out",
    409: "handle or value already exists (101/201)", 413: "request body too large",
    503: "server too busy (3) or read-only (7)",
}


def _responses(*statuses: int, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    """Each status answers JSON; success bodies may use `schema`, every other one is a Handle answer."""
    out: dict[str, Any] = {}
    for status in statuses:
        body = schema if schema is not None and status < 300 else _ANSWER
        out[str(status)] = {"description": _STATUS_TEXT.get(status, "answer"),
                            "content": {"application/json": {"schema": body}}}
    return out


def _query(name: str, schema: dict[str, Any], description: str, *, repeated: bool = False) -> dict[str, Any]:
    if repeated:
        schema = {"type": "array", "items": schema}
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema,
            **({"style": "form", "explode": True} if repeated else {})}


_FLAG = {"type": "string", "enum": ["true", "false"]}
_HANDLE_PATH = {"name": "handle", "in": "path", "required": True, "description": "prefix/suffix (percent-encoded)",
                "schema": {"type": "string", "minLength": 1}}
_INDEXES = _query("index", {"type": "integer", "minimum": 0, "maximum": 2**31 - 1}, "value index (repeatable)",
                  repeated=True)
_BASIC: list[dict[str, list[str]]] = [{"basic": []}, {}]

_VALUE = {
    "type": "object",
    "required": ["index", "type"],
    "properties": {
        "index": {"type": "integer", "minimum": 1, "maximum": 2**31 - 1},
        "type": {"type": "string", "minLength": 1, "maxLength": 64},
        "data": {"oneOf": [
            {"type": "string", "maxLength": 1024},
            {"type": "object", "required": ["format", "value"],
             "properties": {"format": {"type": "string", "enum": ["string", "base64", "hex", "admin", "vlist",
                                                                   "site", "key"]},
                            "value": {}}},
        ]},
        "ttl": {"oneOf": [{"type": "integer", "minimum": 0, "maximum": 2**31 - 1}, {"type": "string"}]},
        "timestamp": {"type": "string"},
        "permissions": {"type": "string", "pattern": "^[01]{4}$"},
        "references": {"type": "array", "items": {"type": "object"}},
    },
}
_VALUES_BODY = {"oneOf": [
    {"type": "array", "items": _VALUE, "maxItems": 20},
    {"type": "object", "required": ["values"], "properties": {"values": {"type": "array", "items": _VALUE,
                                                                        "maxItems": 20}}},
]}


def openapi_route(limits: ServerLimits) -> Route:
    """`GET /api/openapi.json` of a node, naming the server it was asked at."""

    async def openapi(request: web.Request) -> web.StreamResponse:
        return web.json_response(openapi_spec(limits, f"{request.scheme}://{request.host}"))

    return Route("GET", OPENAPI_ROUTE, openapi)


def openapi_spec(limits: ServerLimits | None = None, server_url: str = "") -> dict[str, Any]:
    """The description of this node's REST API (limits give the documented body size)."""
    limits = limits or ServerLimits()
    json_body = {"required": True, "content": {"application/json": {"schema": _VALUES_BODY}},
                 "description": f"a values array, {{\"values\": [...]}} or one value; at most "
                                f"{limits.max_body_bytes} bytes"}
    handle_ops = {
        "parameters": [_HANDLE_PATH],
        "get": {"summary": "Resolve a handle", "operationId": "resolveHandle", "security": _BASIC,
                "parameters": [_query("type", {"type": "string", "maxLength": 64}, "value type; 'URL.' matches "
                                      "subtypes (repeatable)", repeated=True), _INDEXES,
                               _query("auth", _FLAG, "authoritative: bypass caches"),
                               _query("publicOnly", _FLAG, "only public values"),
                               _query("pretty", _FLAG, "indented JSON"),
                               _query("recursive", _FLAG, "false: answer 301 instead of walking"),
                               _query("trace", _FLAG, "include the walk's hops")],
                "responses": _responses(200, 300, 400, 401, 403, 404, 503)},
        "put": {"summary": "Create, overwrite, or add/replace values", "operationId": "putHandle",
                "security": _BASIC, "requestBody": json_body,
                "parameters": [_INDEXES, _query("overwrite", _FLAG, "false: 409 if it exists"),
                               _query("mintNewSuffix", _FLAG, "append a generated suffix")],
                "responses": _responses(200, 201, 400, 401, 403, 404, 408, 409, 413, 503)},
        "delete": {"summary": "Delete a handle, or the values at index=", "operationId": "deleteHandle",
                   "security": _BASIC, "parameters": [_INDEXES],
                   "responses": _responses(200, 400, 401, 403, 404, 503)},
    }
    listing = {"type": "object", "properties": {"responseCode": {"type": "integer"}, "prefix": {"type": "string"},
                                                "totalCount": {"type": "integer"},
                                                "handles": {"type": "array", "items": {"type": "string"}}}}
    return {
        "openapi": "3.0.3",
        "info": {"title": "handlesim node REST API (Handle.Net REST shape)", "version": "1"},
        **({"servers": [{"url": server_url}]} if server_url else {}),
        "paths": {
            "/api/handles/{handle}": handle_ops,
            "/api/handles": {"get": {
                "summary": "List the handles under a prefix", "operationId": "listHandles", "security": _BASIC,
                "parameters": [_query("prefix", {"type": "string"}, "prefix to list"),
                               _query("page", {"type": "integer", "minimum": 0}, "page number"),
                               _query("pageSize", {"type": "integer", "minimum": 0}, "handles per page")],
                "responses": _responses(200, 400, 401, 403, 503, schema=listing)}},
            "/api/prefixes": {"get": {"summary": "Prefixes homed here", "operationId": "listPrefixes",
                                      "responses": _responses(200, 503, schema=listing)}},
            "/hrls/handles": {"get": {
                "summary": "Reverse lookup: handles whose values match KEY=pattern (* wildcards)",
                "operationId": "reverseLookup",
                "parameters": [_query("URL", {"type": "string"}, "pattern for URL values"),
                               _query("limit", {"type": "integer", "minimum": 1, "maximum": 100_000}, "most hits")],
                "responses": _responses(200, 400, 503,
                                        schema={"type": "array", "items": {"type": "string"}})}},
            "/api/replication": {"put": {
                "summary": "A change a peer primary committed (replication identities only)",
                "operationId": "replicate", "security": _BASIC,
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["handle"],
                    "properties": {"handle": {"type": "string"},
                                   "values": {"type": "array", "items": _VALUE, "nullable": True},
                                   "deletedAt": {"type": "integer", "minimum": 0}}}}}},
                "responses": _responses(200, 400, 401, 403, 408, 413, 503)}},
            "/_sim/health": {"get": {"summary": "Simulator: is the node up", "operationId": "health",
                                     "responses": _responses(200, 503, schema={"type": "object"})}},
            "/_sim/stats": {"get": {"summary": "Simulator: counters", "operationId": "stats",
                                    "responses": _responses(200, 503, schema={"type": "object"})}},
            OPENAPI_ROUTE: {"get": {"summary": "This description", "operationId": "openapi",
                                    "responses": _responses(200, 503, schema={"type": "object"})}},
        },
        "components": {
            "schemas": {"Answer": {
                "type": "object", "required": ["responseCode"],
                "properties": {"responseCode": {"type": "integer"}, "handle": {"type": "string"},
                               "message": {"type": "string"}, "values": {"type": "array", "items": {}}}}},
            "securitySchemes": {"basic": {"type": "http", "scheme": "basic",
                                          "description": "user index:handle (colon may be percent-encoded)"}},
        },
    }
