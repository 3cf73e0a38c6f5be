"""The Handle.Net REST routes of a node (and the replication route between primaries): HTTP in, core Request to
the node's HandleService, core Response out, encoded as the client asked.

Public resolution answers are kept encoded in the node's AnswerCache; a warm GET is answered from it without the
service (see `get_handle`). Writes tell the node's Replicator, which pushes them to the peer primaries.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterator
from dataclasses import replace
from typing import Any

from aiohttp import web

from ..core.codes import OpCode, ResponseCode, http_status
from ..core.errors import HandleError, ProtocolError
from ..core.handle import Handle
from ..core.messages import Request, Response
from ..core.search import reverse_lookup
from ..core.service import HandleService
from ..wire import codec, mapping
from ..wire.fields import FieldReader
from . import rest
from .answers import AnswerCache, CachedAnswer, cached_answer
from .credentials import Authenticator
from .gate import read_body
from .recursion import RecursiveResolver, walk_needed
from .replication import REPLICATION_ROUTE, Replicator
from .routes import Route, answer_reply, media_of

UNCACHEABLE_PARAMS = frozenset({"auth", "pretty", "trace", "publicOnly"})
"""Query parameters whose answers are not kept encoded (per-request choices, or not the public view)."""


class HandleRoutes:
    """`/api/handles...`, `/api/prefixes`, `/hrls/handles` and `/api/replication` of one node."""

    def __init__(self, service: HandleService, answers: AnswerCache, authenticator: Authenticator, *,
                 clock: Callable[[], float], body_timeout_s: float, resolver: RecursiveResolver | None = None,
                 replicator: Replicator | None = None) -> None:
        self.service = service
        self.answers = answers
        self.authenticator = authenticator
        self.clock = clock
        self.body_timeout_s = body_timeout_s
        self.resolver = resolver
        self.replicator = replicator
        self.encoded_ahead = 0
        """Records whose answers `encode_ahead` has encoded."""
        self._cached = answers.lookup
        self._cache_hits = answers.hits
        """Bound once: the warm path looks nothing else up."""

    def routes(self) -> list[Route]:
        return [
            Route("GET", rest.HANDLE_ROUTE, self.get_handle, operation="resolution"),
            Route("PUT", rest.HANDLE_ROUTE, self.put_handle, operation="put"),
            Route("DELETE", rest.HANDLE_ROUTE, self.delete_handle, operation="delete_handle"),
            Route("GET", rest.LIST_ROUTE, self.list_handles, operation="list_handles"),
            Route("GET", rest.PREFIXES_ROUTE, self.list_prefixes, operation="list_homed_nas"),
            Route("GET", "/hrls/handles", self.reverse_lookup, operation="search"),
            Route("GET", "/hrls/handles/", self.reverse_lookup, operation="search"),
            Route("PUT", REPLICATION_ROUTE, self.replicate, operation="replication"),
        ]

    async def get_handle(self, request: web.Request) -> web.StreamResponse:
        headers = request.headers
        media = media_of(headers.get("Accept"))
        memo = (request.raw_path, media)
        hit = self._cached(memo)
        if hit is not None and "Authorization" not in headers and (hit[3] is None or hit[3] > self.clock()):
            self._cache_hits[hit[2]] += 1
            if hit[3] is not None and self.resolver is not None:
                self.resolver.note_encoded_hit()
            return web.Response(status=hit[0], body=b"".join(hit[1]), content_type=media)
        if "Authorization" not in headers:
            answer_now = self.answer_now(request.raw_path, media)
            if answer_now is not None:
                return web.Response(status=answer_now[0], body=b"".join(answer_now[1]), content_type=media)
        query = request.rel_url.query
        cacheable = "Authorization" not in headers and not UNCACHEABLE_PARAMS.intersection(query)
        handle = self._handle_in_path(request)
        core_request = rest.resolution_request(handle, query, query.getall("type", []), query.getall("index", []))
        if core_request.authoritative or "Authorization" in headers:
            core_request = await self._with_identity(request, core_request)
        status, body, _, _, _ = await self._resolved(memo, handle, core_request, cacheable=cacheable,
                                                     trace=rest.parse_flag(query, "trace", False),
                                                     pretty=rest.parse_flag(query, "pretty", False))
        return web.Response(status=status, body=b"".join(body), content_type=media)

    async def _resolved(self, memo: tuple[str, str], handle: Handle, core_request: Request, *, cacheable: bool,
                        trace: bool = False, pretty: bool = False) -> CachedAnswer:
        """The service's answer to a resolution, or the resolver's walk when the service points elsewhere; encoded
        as `memo` names (raw path, media type) and kept in the AnswerCache when `cacheable` (a walked answer only
        as long as the resolver's cache would keep it)."""
        answer = self.service.handle(core_request, self.clock())
        expires: float | None = None
        if walk_needed(answer, core_request, self.resolver):
            assert self.resolver is not None
            answer = await self.resolver.resolve(core_request, with_trace=trace)
            expires = self.resolver.cache.expiry_of(answer, self.clock())
            cacheable = cacheable and expires is not None
        return self._encoded(memo, handle, answer, cacheable=cacheable, expires=expires, pretty=pretty)

    def _encoded(self, memo: tuple[str, str], handle: Handle, answer: Response, *, cacheable: bool,
                 expires: float | None = None, pretty: bool = False) -> CachedAnswer:
        """`answer` encoded as `memo` names (raw path, media type); kept in the AnswerCache when `cacheable` and
        a success or not-found."""
        status = http_status(answer.code, is_read=True)
        parts = codec.encode_response_parts(answer, memo[1], pretty=pretty)
        if cacheable and answer.code in (ResponseCode.SUCCESS, ResponseCode.HANDLE_NOT_FOUND):
            return self.answers.remember(memo, handle.key, status, parts, int(answer.code), expires)
        return cached_answer(status, parts, int(answer.code), expires)

    def answer_now(self, target: str, media: str) -> CachedAnswer | None:
        """The answer to a plain public GET of `target` (a raw path without a query, no credentials) worked out at
        once, without aiohttp: the service's answer, encoded and kept in the AnswerCache like any other. None when
        it needs more than that (a query; a handle this node does not home, which its resolver may walk for: see
        `walk_now`; a path that does not name a handle): the request then takes the full route below, which answers
        bad input with its Handle error. The node's front door calls this for a first-time GET (net/frontdoor.py);
        `get_handle` for the same GET from aiohttp."""
        handle = self._own_plain_handle(target)
        if handle is None:
            return None
        answer = self.service.handle(Request(OpCode.RESOLUTION, handle), self.clock())
        return self._encoded((target, media), handle, answer, cacheable=True)

    def encode_ahead(self, limit: int, media_types: tuple[str, ...] = (codec.JSON, codec.MSGPACK)) -> Iterator[None]:
        """Encode the answers `answer_now` would give to a plain public GET of the node's records (up to `limit`
        records with a public answer, no more than fill half the cache, in each of `media_types`), addressed as
        clients address them (`rest.path_for`), and keep them in the AnswerCache, so a handle's first lookup costs
        what a repeated one does (ServerLimits.encoded_ahead). Not counted as requests. Yields after each record, so
        the caller can spread the work over the event loop's turns; each answer comes from the store as it is then,
        and a write after it drops it as it drops any cached answer."""
        stop_at = self.encoded_ahead + min(limit, self.answers.limit // (2 * len(media_types)))
        for record in list(self.service.store.records()):  # a copy: writes may come between the steps
            if self.encoded_ahead >= stop_at:
                return
            handle = record.handle
            if self._answers_itself(handle):
                target = rest.path_for(handle)
                answer = self.service.answer(Request(OpCode.RESOLUTION, handle), self.clock())
                if answer.code == ResponseCode.SUCCESS:
                    for media in media_types:
                        self._encoded((target, media), handle, answer, cacheable=True)
                    self.encoded_ahead += 1
            yield

    def _own_plain_handle(self, target: str) -> Handle | None:
        """The handle a plain raw path names when this node answers it itself (`answer_now`), or None."""
        handle = self._plain_handle(target)
        return handle if handle is not None and self._answers_itself(handle) else None

    def _answers_itself(self, handle: Handle) -> bool:
        """Whether a plain GET of `handle` is the service's to answer: on a resolver node the answer may be a walk
        (or another server's share of a partitioned site), which `walk_now` or the route gives."""
        service = self.service
        return self.resolver is None or (service.config.partition is None and service.is_responsible(handle))

    def walk_now(self, target: str, media: str) -> Coroutine[Any, Any, CachedAnswer] | None:
        """For a plain public GET of `target` that `answer_now` declined on a resolver node (a handle the node does
        not home): the answer the route would give — the service's, or the resolver's walk — as a coroutine the
        front door awaits while it holds the connection's later requests. None when the route must answer it (no
        resolver, a partitioned site, a query, a path that does not name a handle)."""
        if self.resolver is None or self.service.config.partition is not None:
            return None
        handle = self._plain_handle(target)
        if handle is None or self.service.is_responsible(handle):
            return None
        return self._resolved((target, media), handle, Request(OpCode.RESOLUTION, handle), cacheable=True)

    def _plain_handle(self, target: str) -> Handle | None:
        """The handle a plain raw path (no query, no dot segments, no empty segment) names, or None."""
        if "?" in target or "//" in target or "/." in target:
            return None
        try:
            return rest.handle_from_raw_path(target, max_bytes=self.service.config.limits.max_handle_bytes)
        except HandleError:
            return None

    async def put_handle(self, request: web.Request) -> web.StreamResponse:
        handle = self._handle_in_path(request)
        body = await read_body(request, self.body_timeout_s)
        query = request.rel_url.query
        core_request = rest.put_request(handle, query, query.getall("index", []), body,
                                        media_of(request.headers.get("Content-Type")))
        return self._answer(request, await self._with_identity(request, core_request))

    async def delete_handle(self, request: web.Request) -> web.StreamResponse:
        handle = self._handle_in_path(request)
        core_request = rest.delete_request(handle, request.rel_url.query.getall("index", []))
        return self._answer(request, await self._with_identity(request, core_request))

    async def list_handles(self, request: web.Request) -> web.StreamResponse:
        core_request = rest.list_request(request.rel_url.query)
        return self._answer(request, await self._with_identity(request, core_request))

    async def list_prefixes(self, request: web.Request) -> web.StreamResponse:
        return self._answer(request, Request(OpCode.LIST_HOMED_NAS))

    async def reverse_lookup(self, request: web.Request) -> web.StreamResponse:
        """`GET /hrls/handles?URL=*example*` as pyhandle's searcher calls it: a JSON list of matching handles."""
        query = request.rel_url.query
        limit = rest.parse_int(query.get("limit", "1000"), "limit", minimum=1, maximum=100_000)
        criteria = [(k, v) for k, v in query.items() if k not in ("limit", "prefix")]
        found = reverse_lookup(self.service.store.records(), criteria, limit)
        prefix = query.get("prefix")
        if prefix:
            found = [h for h in found if h.split("/", 1)[0].upper() == prefix.upper()]
        return web.json_response(found)

    async def replicate(self, request: web.Request) -> web.StreamResponse:
        """A change a peer primary committed (authenticated as one of this node's server admins)."""
        header = request.headers.get("Authorization")
        identity = await self.authenticator.authenticate(header) if header else None
        fields = FieldReader(codec.decode_body(await read_body(request, self.body_timeout_s),
                                               media_of(request.headers.get("Content-Type"))),
                             "replicated change", ProtocolError)
        handle = Handle.from_text(fields.text("handle"))
        raw_values = fields.optional("values")
        values = None if raw_values is None else tuple(mapping.values_from_body({"values": raw_values}))
        deleted_at = fields.integer("deletedAt", 0) if values is None else 0
        return answer_reply(request, self.service.apply_replicated(handle, values, deleted_at, identity))

    def _answer(self, request: web.Request, core_request: Request) -> web.Response:
        answer = self.service.handle(core_request, self.clock())
        if self.replicator is not None:
            self.replicator.answered(core_request, answer)
        return answer_reply(request, answer, is_read=core_request.op in (OpCode.LIST_HANDLES, OpCode.LIST_HOMED_NAS))

    async def _with_identity(self, request: web.Request, core_request: Request) -> Request:
        header = request.headers.get("Authorization")
        if header is None:
            return core_request
        return replace(core_request, identity=await self.authenticator.authenticate(header))

    def _handle_in_path(self, request: web.Request) -> Handle:
        return rest.handle_from_raw_path(request.rel_url.raw_path,
                                         max_bytes=self.service.config.limits.max_handle_bytes)
