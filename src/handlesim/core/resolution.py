"""The resolution walk as a step object, driven over any transport by `core.transport.drive`.

The driver loops: `step = res.next_request(now)`; sends `step.request` to `step.server`; then calls
`res.received(response, duration, now)` or `res.failed(reason, duration, now)`; until `next_request` returns None.
Then `res.result` holds the final answer (values or an error response) and `res.trace` every hop.

The walk for `88.101.2001/X`: ask a root for `0.NA/88.101.2001`; follow prefix referrals (303) down the tiers until
a node answers that prefix handle's HS_SITE values; ask that site for the handle; follow service referrals (302).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from .cache import ResolutionCache, cache_key
from .codes import OpCode, ResponseCode
from .handle import Handle
from .health import ServerHealth
from .messages import Request, Response, error_response
from .values import HS_SERV, HS_SITE, HS_SITE_6, SITE_TYPES, ServerInfo, SiteInfo, sites_from_values

MAX_HOPS = 40
"""Referral recursion cap of the Handle.Net client."""

SITE_QUERY_TYPES = (HS_SITE, HS_SITE_6, HS_SERV)


class Phase(Enum):
    LOCATE = "locate"  # finding the site of the handle's prefix (asking for 0.NA/<prefix>)
    QUERY = "query"  # asking the prefix's site for the handle itself


@dataclass(frozen=True, slots=True)
class Step:
    """Send `request` to `server` (a server of `site`)."""

    site: SiteInfo
    server: ServerInfo
    request: Request


@dataclass(frozen=True, slots=True)
class Hop:
    """One line of a trace: who was asked what, and what came back."""

    site: str
    server: str
    asked: str
    code: int | None
    outcome: str
    duration: float
    cache_hit: bool = False
    modelled: float = 0.0
    """Seconds of `duration` the network model added (both directions; 0 on loopback)."""

    def to_dict(self) -> dict[str, object]:
        return {"site": self.site, "server": self.server, "asked": self.asked, "code": self.code,
                "outcome": self.outcome, "duration_ms": round(self.duration * 1000, 3), "cache_hit": self.cache_hit,
                "modelled_ms": round(self.modelled * 1000, 3)}


@dataclass
class _Query:
    """What is being asked now, and the servers that may still be tried for it."""

    handle: Handle
    types: tuple[str, ...]
    indexes: tuple[int, ...]
    candidates: list[tuple[SiteInfo, ServerInfo]] = field(default_factory=list)


class Resolution:
    """An iterative resolution of one handle, starting from the root sites."""

    def __init__(self, handle: Handle, root_sites: list[SiteInfo], *, types: tuple[str, ...] = (),
                 indexes: tuple[int, ...] = (), authoritative: bool = False, cache: ResolutionCache | None = None,
                 max_hops: int = MAX_HOPS, health: ServerHealth | None = None, now: float = 0.0) -> None:
        if not root_sites:
            raise ValueError("a resolution needs at least one root site")
        self.handle = handle
        self.types = types
        self.indexes = indexes
        self.authoritative = authoritative
        self.cache = None if authoritative else cache
        self.max_hops = max_hops
        self.root_sites = root_sites
        self.health = health
        self._now = now
        self.trace: list[Hop] = []
        self.result: Response | None = None
        self._sent = 0
        self._asked: set[tuple[str, str]] = set()
        self._located: set[str] = set()
        self._pending: Step | None = None
        if handle.is_prefix_handle:
            self.phase = Phase.QUERY
            self._query = self._make_query(handle, types, indexes, root_sites)
        else:
            self.phase = Phase.LOCATE
            self._query = self._make_query(handle.prefix_handle(), SITE_QUERY_TYPES, (), root_sites)

    @property
    def done(self) -> bool:
        return self.result is not None

    @property
    def hops(self) -> int:
        """Requests that went over the wire (cache hits excluded)."""
        return sum(1 for hop in self.trace if not hop.cache_hit)

    # -- the driver's interface ---------------------------------------------------------------------------------

    def next_request(self, now: float) -> Step | None:
        """The next request to send, or None when the resolution is done (answers from the cache are taken here)."""
        self._now = now
        while self.result is None and self._pending is None:
            cached = self._from_cache(now)
            if cached is not None:
                self._digest(cached, now, from_cache=True)
                continue
            self._pending = self._next_step()
        return self._pending

    def received(self, response: Response, duration: float, now: float, *, modelled: float = 0.0) -> None:
        step = self._take_pending()
        self._now = now
        if self.health is not None:
            if response.code == ResponseCode.SERVER_TOO_BUSY:
                self.health.failed(step.server.url(), now)  # shed load: ask the others first for a while
            else:
                self.health.answered(step.server.url(), duration)
        self.trace.append(self._hop(step, response.code, _outcome(response), duration, modelled))
        if response.code in (ResponseCode.SERVER_TOO_BUSY, ResponseCode.OUT_OF_DATE_SITE_INFO):
            return  # try the next server of the site
        self._store_in_cache(response, now)
        self._digest(response, now, from_cache=False)

    def failed(self, reason: str, duration: float, now: float, *, modelled: float = 0.0) -> None:
        """The server did not answer (refused, timed out, broken reply): the next candidate server is tried."""
        step = self._take_pending()
        self._now = now
        if self.health is not None:
            self.health.failed(step.server.url(), now)
        self.trace.append(self._hop(step, None, f"no answer: {reason}", duration, modelled))

    # -- internals ----------------------------------------------------------------------------------------------

    def _make_query(self, handle: Handle, types: tuple[str, ...], indexes: tuple[int, ...],
                    sites: list[SiteInfo]) -> _Query:
        return _Query(handle, types, indexes, self._candidates(handle, sites))

    def _candidates(self, handle: Handle, sites: list[SiteInfo]) -> list[tuple[SiteInfo, ServerInfo]]:
        """Servers to try, one per site (the one the site's hash names): only primaries for authoritative requests;
        servers that failed lately last, then the fastest measured, then primaries before mirrors."""
        usable = [s for s in sites if s.servers and (s.primary or not self.authoritative)]
        pairs = [(site, site.server_for(handle)) for site in usable]
        health = self.health
        if health is None:
            return sorted(pairs, key=lambda pair: not pair[0].primary)
        return sorted(pairs, key=lambda pair: (*health.order_key(pair[1].url(), self._now), not pair[0].primary))

    def _next_step(self) -> Step | None:
        query = self._query
        looped = False
        while query.candidates:
            site, server = query.candidates.pop(0)
            mark = (query.handle.key, server.url())
            if mark in self._asked:
                looped = True
                continue
            if self._sent >= self.max_hops:
                self._finish(error_response(ResponseCode.RECURSION_COUNT_TOO_HIGH,
                             f"gave up after {self._sent} requests (limit {self.max_hops})", self.handle.text))
                return None
            self._asked.add(mark)
            self._sent += 1
            if self.health is not None:
                self.health.sent(server.url(), self._now)
            return Step(site, server, self._request(query))
        self._finish(self._dead_end(query, looped))
        return None

    def _dead_end(self, query: _Query, looped: bool) -> Response:
        if looped:
            return error_response(ResponseCode.ERROR, f"referral loop: {query.handle.text} was referred back to "
                                  "a server already asked", self.handle.text)
        tried = [h for h in self.trace if h.asked == query.handle.text and not h.cache_hit]
        names = ", ".join(sorted({h.site for h in tried}))
        return error_response(ResponseCode.ERROR, f"no server answered for {query.handle.text} (tried {names})",
                              self.handle.text)

    def _request(self, query: _Query) -> Request:
        return Request(OpCode.RESOLUTION, query.handle, types=query.types, indexes=query.indexes,
                       authoritative=self.authoritative, recursive=False, hops=self._sent - 1)

    def _take_pending(self) -> Step:
        if self._pending is None:
            raise RuntimeError("no request is outstanding")
        step, self._pending = self._pending, None
        return step

    def _hop(self, step: Step, code: int | None, outcome: str, duration: float, modelled: float = 0.0) -> Hop:
        site = step.site
        label = site.name
        if len(site.servers) > 1:  # a hash-partitioned site: which of its servers the hash picked
            label = f"{label} [{site.servers.index(step.server) + 1}/{len(site.servers)}]"
        return Hop(label, step.server.url(), step.request.handle_text, code, outcome, duration, modelled=modelled)

    def _from_cache(self, now: float) -> Response | None:
        if self.cache is None:
            return None
        query = self._query
        response = self.cache.get(cache_key(query.handle.key, query.types, query.indexes), now)
        if response is not None:
            self.trace.append(Hop("cache", "", query.handle.text, int(response.code), _outcome(response), 0.0, True))
        return response

    def _store_in_cache(self, response: Response, now: float) -> None:
        """Final answers only: a referral is an answer about who to ask next, not about the query itself."""
        if self.cache is not None and response.code not in (ResponseCode.PREFIX_REFERRAL,
                                                             ResponseCode.SERVICE_REFERRAL):
            query = self._query
            self.cache.put(cache_key(query.handle.key, query.types, query.indexes), response, now)

    def _digest(self, response: Response, now: float, *, from_cache: bool) -> None:
        code = response.code
        if code in (ResponseCode.PREFIX_REFERRAL, ResponseCode.SERVICE_REFERRAL):
            self._follow(response)
        elif self.phase is Phase.LOCATE:
            self._digest_locate(response)
        else:
            self._finish(response)

    def _follow(self, response: Response) -> None:
        sites = response.referral_sites()
        if not sites:
            self._finish(error_response(ResponseCode.ERROR, f"referral for {self._query.handle.text} named no sites",
                                        self.handle.text))
            return
        query = self._query
        self._query = self._make_query(query.handle, query.types, query.indexes, sites)

    def _digest_locate(self, response: Response) -> None:
        prefix_handle = self._query.handle
        if response.code != ResponseCode.SUCCESS:
            message = f"prefix {prefix_handle.suffix} cannot be located: {prefix_handle.text} answered " \
                      f"{int(response.code)} ({response.message or _outcome(response)})"
            code = ResponseCode.HANDLE_NOT_FOUND if response.code in (
                ResponseCode.HANDLE_NOT_FOUND, ResponseCode.VALUES_NOT_FOUND) else response.code
            self._finish(error_response(code, message, self.handle.text))
            return
        sites = sites_from_values(response.values, SITE_TYPES)
        if sites:
            self.phase = Phase.QUERY
            self._query = self._make_query(self.handle, self.types, self.indexes, sites)
            return
        service = next((v.data for v in response.values if v.type_key == HS_SERV and isinstance(v.data, str)), None)
        if service is None or service.upper() in self._located:
            self._finish(error_response(ResponseCode.ERROR, f"{prefix_handle.text} has no HS_SITE values (nor a usable "
                                        "HS_SERV)", self.handle.text))
            return
        self._located.add(service.upper())
        self._query = self._make_query(Handle.from_text(service), SITE_QUERY_TYPES, (), self.root_sites)

    def _finish(self, response: Response) -> None:
        self.result = response
        self._pending = None


def _outcome(response: Response) -> str:
    code = response.code
    if code == ResponseCode.SUCCESS:
        return f"{len(response.values)} values"
    if code in (ResponseCode.PREFIX_REFERRAL, ResponseCode.SERVICE_REFERRAL):
        names = ", ".join(site.name for site in response.referral_sites()) or "nowhere"
        kind = "prefix" if code == ResponseCode.PREFIX_REFERRAL else "service"
        return f"{kind} referral to {names}"
    try:
        name = ResponseCode(code).name.lower().replace("_", " ")
    except ValueError:
        name = f"code {code}"
    return name
