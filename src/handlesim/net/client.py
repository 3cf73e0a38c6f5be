"""The aiohttp client transport: one pooled aiohttp session per process; single requests, and resolution steps."""

from __future__ import annotations

import base64
import ssl
import time
from dataclasses import replace
from urllib.parse import quote, urlsplit

import aiohttp
from yarl import URL

from ..core.cache import ResolutionCache
from ..core.codes import WRITE_OPS, OpCode
from ..core.errors import HandleError, TransportError
from ..core.handle import Handle
from ..core.health import DEFAULT_FAILED_FOR, DEFAULT_TIMEOUT, ServerHealth
from ..core.messages import Request, Response
from ..core.resolution import Resolution, Step
from ..core.transport import Exchange, drive
from ..core.values import ServerInfo, SiteInfo, ValueReference
from ..wire import codec
from . import rest
from .shaping import SOURCE_HEADER, NetPath
from .transport import SYSTEM_CLOCK, UnreadableAnswer, exchange_over_network


def basic_authorization(identity: ValueReference | str, secret: str) -> str:
    """The header pyhandle sends: the `index:handle` user (a reference or its text) with its colon percent-encoded."""
    user = quote(identity if isinstance(identity, str) else identity.to_text(), safe="/")
    token = base64.b64encode(f"{user}:{secret}".encode()).decode("ascii")
    return f"Basic {token}"


class HandleClient:
    """Sends core requests to node servers. Every call has a timeout; failures raise TransportError."""

    def __init__(self, *, timeout: float = DEFAULT_TIMEOUT, media: str = codec.MSGPACK, limit: int = 256,
                 cache: ResolutionCache | None = None, failed_for: float = DEFAULT_FAILED_FOR,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.cache = cache
        """The client-side cache resolutions use by default; writes sent through this client evict what it held."""
        self.ssl_context = ssl_context
        """For https nodes: the context pinning the topology's CA (None: the system's trust store)."""
        self.health = ServerHealth(penalty=failed_for)
        """Response times and recent failures of the servers this client asked (orders failover)."""
        self.timeout = timeout
        self.media = media
        self._limit = limit
        self._session: aiohttp.ClientSession | None = None
        self.net: NetPath | None = None
        """The network model between this client and the nodes (None: plain loopback)."""
        self.modelled = 0.0
        """Seconds the network model added to this client's requests so far."""

    async def __aenter__(self) -> HandleClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._limit, limit_per_host=32, keepalive_timeout=30,
                                             ssl=self.ssl_context if self.ssl_context is not None else True)
            timeout = aiohttp.ClientTimeout(total=self.timeout)
            self._session = aiohttp.ClientSession(connector=connector, timeout=timeout)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, server: ServerInfo | str, request: Request, *,
                   credentials: tuple[ValueReference, str] | None = None,
                   extra_params: list[tuple[str, str]] | None = None) -> Response:
        """One request to one server (a ServerInfo or a base URL)."""
        answer, _ = await self.send_timed(server, request, credentials=credentials, extra_params=extra_params)
        return answer

    async def send_timed(self, server: ServerInfo | str, request: Request, *,
                         credentials: tuple[ValueReference, str] | None = None,
                         extra_params: list[tuple[str, str]] | None = None) -> tuple[Response, float]:
        """`send`, also returning the seconds the network model added (0 on loopback)."""
        base = server if isinstance(server, str) else server.url()
        exchange = await self._exchange(base, request, credentials, extra_params)
        if exchange.response is None:
            raise TransportError(exchange.failure)
        return exchange.response, exchange.modelled

    async def exchange(self, step: Step) -> Exchange:
        """The Transport side: one resolution step (a failure names the server's URL, as `send` errors do)."""
        return await self._exchange(step.server.url(), step.request)

    async def _exchange(self, base: str, request: Request, credentials: tuple[ValueReference, str] | None = None,
                        extra_params: list[tuple[str, str]] | None = None) -> Exchange:
        if self.cache is not None and request.op in WRITE_OPS and request.handle is not None:
            self.cache.invalidate(request.handle.key)
        call = rest.http_call(request, self.media)
        if extra_params:
            call = replace(call, params=[*call.params, *extra_params])
        headers = {"Accept": self.media}
        if call.body is not None:
            headers["Content-Type"] = self.media
        if credentials is not None:
            headers["Authorization"] = basic_authorization(*credentials)
        if self.net is not None:
            headers[SOURCE_HEADER] = self.net.header
        # encoded: the path is sent as rest.path_for spelled it (yarl would resolve `.`/`..` segments away)
        url = URL(base + call.path, encoded=True)

        async def send() -> Response:
            async with self.session.request(call.method, url, params=call.params, data=call.body,
                                            headers=headers) as reply:
                body, status = await reply.read(), reply.status
                content_type = reply.headers.get("Content-Type", codec.JSON)
            try:
                answer = codec.decode_response(body, codec.MSGPACK if codec.MSGPACK in content_type else codec.JSON)
            except HandleError as exc:
                raise UnreadableAnswer(status, exc.message) from None
            return replace(answer, created=True) if status == 201 else answer

        where = urlsplit(base)
        exchange = await exchange_over_network(where.hostname or "", where.port or 80, send, net=self.net,
                                               timeout_s=self.timeout)
        if exchange.response is None:
            return replace(exchange, failure=f"{base}: {exchange.failure}")
        self.modelled += exchange.modelled
        return exchange

    async def resolve(self, handle: Handle, root_sites: list[SiteInfo], *, types: tuple[str, ...] = (),
                      indexes: tuple[int, ...] = (), cache: ResolutionCache | None = None,
                      authoritative: bool = False) -> Resolution:
        """Walk the hierarchy iteratively from the roots; the returned Resolution holds result and trace."""
        # `cache or self.cache` would drop an empty cache (a ResolutionCache with no entries is falsy)
        chosen = self.cache if cache is None else cache
        resolution = Resolution(handle, root_sites, types=types, indexes=indexes, cache=chosen,
                                authoritative=authoritative, health=self.health, now=time.time())
        await drive(resolution, self, SYSTEM_CLOCK)
        return resolution

    async def resolve_via(self, resolver_url: str, handle: Handle, *, types: tuple[str, ...] = (),
                          indexes: tuple[int, ...] = (), trace: bool = True) -> Response:
        """Ask a recursive resolver node to walk for us; with `trace`, its hops come back in `extra["trace"]`."""
        request = Request(OpCode.RESOLUTION, handle, types=types, indexes=indexes)
        return await self.send(resolver_url, request, extra_params=[("trace", "true")] if trace else None)


async def locate(client: HandleClient, prefix_handle: Handle, root_sites: list[SiteInfo]) -> list[SiteInfo]:
    """The sites responsible for a prefix (the HS_SITE values of its prefix handle, found by walking from the roots)."""
    from ..core.values import SITE_TYPES, sites_from_values

    resolution = await client.resolve(prefix_handle, root_sites, types=SITE_TYPES)
    result = resolution.result
    if result is None or not result.ok:
        message = result.message if result is not None else "no answer"
        raise TransportError(f"cannot locate the service of {prefix_handle.text}: {message}")
    return sites_from_values(result.values)


def write_target(sites: list[SiteInfo], handle: Handle) -> ServerInfo:
    """Where a write of `handle` goes: a primary site (mirrors refuse writes), the server its hash names."""
    primaries = [site for site in sites if site.primary and site.servers]
    if not primaries:
        raise TransportError(f"no primary site serves {handle.prefix.text} (only mirrors, which refuse writes)")
    return primaries[0].server_for(handle)
