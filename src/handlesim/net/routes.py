"""Routes as data, and the HTTP form of a Handle answer: what every route module of a node shares.

Each route module (handle routes, simulator routes, auth, reports, metrics, OpenAPI) returns a list of `Route`s; the
node server adds them and tells the edge gate which operation each one is, so timers and edge-error counts follow
what a route declares, not what its handler happens to be called.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from ..core.codes import http_status
from ..core.errors import HandleError, ProtocolError
from ..core.messages import Response, error_response
from ..wire import codec
from . import rest

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Route:
    """One HTTP route of a node. A GET route also answers HEAD (as aiohttp's `web.get` does)."""

    method: str
    """HTTP method, or `*` for any."""
    path: str
    """aiohttp path pattern, e.g. `/api/handles/{handle:.+}`."""
    handler: Handler
    operation: str | None = None
    """The operation its server-side time and edge errors are counted under (the `op` of `/_sim/stats` and
    `/metrics`); None: not timed, edge errors counted under `other` (simulator, session and report-reading routes)."""


def media_of(header: str | None) -> str:
    """The media type a request's Accept (or Content-Type) header asks for: msgpack when named, else JSON."""
    return codec.MSGPACK if header and codec.MSGPACK in header else codec.JSON


def answer_reply(request: web.Request, answer: Response, *, is_read: bool = False) -> web.Response:
    """`answer` encoded as the request's Accept asks (indented with `?pretty=true`), with its Handle.Net status."""
    media = media_of(request.headers.get("Accept"))
    status = http_status(answer.code, is_read=is_read, created=answer.created)
    pretty = request.rel_url.query.get("pretty", "") in ("true", "1")
    return web.Response(status=status, body=codec.encode_response(answer, media, pretty=pretty), content_type=media)


def refusal(request: web.Request, status: int, code: int, message: str) -> web.Response:
    """An error answer with an HTTP status chosen here (limits, HTTP-level errors) rather than by the code."""
    media = media_of(request.headers.get("Accept"))
    body = codec.encode_response(error_response(code, message, path_handle(request)), media)
    return web.Response(status=status, body=body, content_type=media)


def path_handle(request: web.Request) -> str:
    """The handle an error reply names: the one in the path of a handle route, as far as it can be read."""
    matched = request.match_info.get("handle", "") if request.match_info else ""
    if not matched:
        return ""
    try:
        return rest.handle_from_raw_path(request.rel_url.raw_path).text
    except (HandleError, ProtocolError):
        return matched
