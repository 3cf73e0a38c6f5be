"""The teaching web page: a small aiohttp app on a loopback port that serves the bundled page (static/) and its API.

- `GET /api/topology`: every node (id, role, prefix, parent, industry, region, mirror_of) with its up/down state;
- `GET|POST /api/lookup?handle=H&mode=iterative|resolver[&cache=false]`: this server looks H up with a HandleClient
  (iterative: walking from the roots, with a client cache kept between lookups unless cache=false; resolver: asking
  the topology's recursive resolver with ?trace=true) and returns every hop and the final values;
- `GET /api/counters`: per tier, requests/s and cache hits, from the nodes' own `/_sim/stats` (polled at most once
  per interval however many pages ask; a node that does not answer is down);
- `POST /api/nodes/{id}/stop` and `/start`: stop a node's server and start it again on the same port, to show a class
  what a dead node does to lookups (only when the topology runs in this process: `up --web`, `demo --web`); the
  lookups fall over to a mirror only where the topology has one (`failover` in /api/topology says whether any).
The page's lookups take the topology's network path (modelled delays when it runs with its network model).
Nothing is fetched from outside: the page is hand-written HTML/JS/SVG shipped as package data.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import aiohttp
from aiohttp import web

from ..core.cache import ResolutionCache
from ..core.errors import HandleError
from ..core.handle import Handle
from ..net.apps import AppServer
from ..topology.network import topology_client
from ..topology.plan import Role
from ..topology.running import Topology
from ..topology.state import NodeEntry, TopologyState
from .lookup import MODES, LookupView, lookup_iterative, lookup_via_resolver, roles_by_node

STATIC_FILES = {"index.html": "text/html", "app.js": "text/javascript", "style.css": "text/css"}
TIERS = tuple(Role)
POLL_CONCURRENCY = 32
"""Stats requests in flight at once while polling (a 1,000-node topology is polled in ~32 rounds)."""


class WebError(Exception):
    """A bad API request; the message is shown to the user."""


@dataclass
class _Poll:
    """One sweep over the nodes' /_sim/stats: None for a node that did not answer."""

    at: float
    stats: dict[str, dict[str, Any] | None]


@dataclass
class DemoWebConfig:
    """How the page's server behaves."""

    timeout: float = 2.0
    """Seconds before a silent node counts as failed during a lookup."""
    poll_interval: float = 1.0
    """Least seconds between two sweeps over the nodes' stats (more for large topologies, see `interval_for`)."""
    poll_timeout: float = 1.0
    """Seconds a node has to answer /_sim/stats before it is shown as down."""
    client_cache_capacity: int = 4096
    """Answers the page's own iterative client keeps between lookups (so a repeated lookup shows the cache)."""
    host: str = "127.0.0.1"
    """The loopback address the page listens on (`handlesim web --host`)."""
    port: int = 8080
    """The port the page listens on (`--web-port`, `web --port`; 0: any free port)."""


@dataclass
class _Sweeps:
    latest: _Poll | None = None
    previous: _Poll | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class DemoWeb(AppServer):
    """The page and its API for one topology. `await start(host, port)`, later `await stop()`."""

    def __init__(self, state: TopologyState, config: DemoWebConfig | None = None, *,
                 topology: Topology | None = None) -> None:
        self.state = state
        self.topology = topology
        """The running topology when it lives in this process: then the page may stop and start nodes."""
        self.config = config or DemoWebConfig()
        self.roles = roles_by_node(state.nodes)
        self.cache = ResolutionCache(self.config.client_cache_capacity)
        self._ssl = state.ssl_context()  # a topology started with --tls: pin its CA in the page's own requests
        # the page's lookups take the topology's network path, as `handlesim resolve` does: modelled delays, loss
        # and partitions apply to them when the topology runs with its network model
        self.client = topology_client(state, self.config.timeout)
        self._sweeps = _Sweeps()
        self._poller: aiohttp.ClientSession | None = None
        self._static = _load_static()
        super().__init__(web.Application())
        self.app.add_routes([
            web.get("/", self.index),
            web.get("/static/{name}", self.static),
            web.get("/api/topology", self.describe_topology),
            web.get("/api/lookup", self.lookup),
            web.post("/api/lookup", self.lookup),
            web.get("/api/counters", self.counters),
            web.post("/api/nodes/{node_id}/{action:stop|start}", self.control_node),
        ])

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        if not ipaddress.ip_address(host).is_loopback:
            raise WebError(f"the demo page listens on loopback only, not {host}")
        return await super().start(host, port)

    async def stop(self) -> None:
        await self.client.close()
        if self._poller is not None:
            await self._poller.close()
        await super().stop()

    # -- page -----------------------------------------------------------------------------------------------------

    async def index(self, request: web.Request) -> web.StreamResponse:
        return self._file("index.html")

    async def static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name not in self._static:
            raise web.HTTPNotFound(text=f"no file {name}")
        return self._file(name)

    def _file(self, name: str) -> web.Response:
        return web.Response(body=self._static[name], content_type=STATIC_FILES[name], charset="utf-8",
                            headers={"Cache-Control": "no-cache"})

    # -- API ------------------------------------------------------------------------------------------------------

    async def describe_topology(self, request: web.Request) -> web.StreamResponse:
        poll = await self._poll()
        nodes = [{"id": n.id, "role": n.role, "prefix": n.prefix, "parent": n.parent, "industry": n.industry,
                  "region": n.region, "mirror_of": n.mirror_of, "url": n.url, "up": poll.stats.get(n.id) is not None}
                 for n in self.state.nodes]
        return web.json_response({"name": self.state.name, "nodes": nodes, "examples": list(self.state.examples),
                                  "controllable": self.topology is not None,
                                  "failover": self.shows_failover}, dumps=_dumps)

    @property
    def shows_failover(self) -> bool:
        """Can the page show a lookup falling over to a mirror? Only when it may stop nodes and some node has a
        mirror: a stopped node without one just makes its identifiers fail until it starts again."""
        return self.topology is not None and any(n.mirror_of for n in self.state.nodes)

    async def control_node(self, request: web.Request) -> web.StreamResponse:
        node_id, action = request.match_info["node_id"], request.match_info["action"]
        if self.topology is None:
            return _error("this page's server does not run the topology, so it cannot stop nodes; start the page with "
                          "`handlesim demo --web` or `handlesim up --web`", 403)
        node = self.topology.nodes.get(node_id)
        if node is None:
            return _error(f"no node {node_id!r}", 404)
        try:
            if action == "stop":
                await node.server.stop()
            elif not node.server.serving:  # start it again where it listened
                await node.server.start(node.plan.host, node.server.port, node.server.native_port or None)
        except OSError as exc:
            return _error(f"{node_id} cannot listen on port {node.server.port} again: {exc.strerror}", 409)
        self._sweeps.latest = None  # the next topology/counters request sweeps again and shows the change
        return web.json_response({"id": node_id, "up": action == "start"})

    async def lookup(self, request: web.Request) -> web.StreamResponse:
        params: dict[str, Any] = dict(request.rel_url.query)
        if request.method == "POST" and request.can_read_body:
            try:
                body = await request.json()
            except ValueError:
                return _error("the body must be a JSON object")
            if not isinstance(body, dict):
                return _error("the body must be a JSON object")
            params.update(body)
        try:
            view = await self._lookup(params)
        except WebError as exc:
            return _error(str(exc))
        return web.json_response(view.to_json(), dumps=_dumps)

    async def _lookup(self, params: dict[str, Any]) -> LookupView:
        text = str(params.get("handle", ""))  # exactly as given: a suffix may end in a space (the page trims input)
        mode = str(params.get("mode", "iterative"))
        if mode not in MODES:
            raise WebError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
        try:
            handle = Handle.from_text(text)
        except HandleError as exc:
            raise WebError(f"invalid identifier {text!r}: {exc.message}") from None
        if mode == "resolver":
            resolver = self._resolver(str(params.get("resolver", "")))
            return await lookup_via_resolver(self.client, handle, resolver, self.roles)
        use_cache = str(params.get("cache", "true")).lower() not in ("false", "0", "no", "off")
        cache = self.cache if use_cache else ResolutionCache(16)
        return await lookup_iterative(self.client, handle, self.state.root_sites, self.roles, cache=cache)

    def _resolver(self, node_id: str) -> NodeEntry:
        resolvers = [n for n in self.state.with_role(Role.RESOLVER) if not node_id or n.id == node_id]
        if not resolvers:
            raise WebError(f"no resolver node {node_id!r}" if node_id else "the topology has no resolver node")
        return resolvers[0]

    async def counters(self, request: web.Request) -> web.StreamResponse:
        poll = await self._poll()
        return web.json_response(tier_counters(self.state.nodes, self._sweeps.previous, poll, self.cache),
                                 dumps=_dumps)

    # -- polling the nodes ----------------------------------------------------------------------------------------

    def interval_for(self) -> float:
        """Large topologies are swept less often: a sweep costs one request per node."""
        return self.config.poll_interval * max(1.0, len(self.state.nodes) / 250)

    async def _poll(self) -> _Poll:
        sweeps = self._sweeps
        async with sweeps.lock:
            latest = sweeps.latest
            if latest is not None and time.monotonic() - latest.at < self.interval_for():
                return latest
            poll = await self._sweep()
            sweeps.previous, sweeps.latest = latest, poll
            return poll

    async def _sweep(self) -> _Poll:
        if self._poller is None or self._poller.closed:
            self._poller = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.config.poll_timeout),
                                                 connector=aiohttp.TCPConnector(limit=POLL_CONCURRENCY,
                                                                                ssl=self._ssl or True))
        session = self._poller
        semaphore = asyncio.Semaphore(POLL_CONCURRENCY)

        async def stats_of(node: NodeEntry) -> tuple[str, dict[str, Any] | None]:
            async with semaphore:
                try:
                    async with session.get(f"{node.url}/_sim/stats") as reply:
                        return node.id, (await reply.json()) if reply.status == 200 else None
                except (TimeoutError, aiohttp.ClientError, OSError, ValueError):
                    return node.id, None

        results = await asyncio.gather(*(stats_of(n) for n in self.state.nodes))
        return _Poll(time.monotonic(), dict(results))


def tier_counters(nodes: Sequence[NodeEntry], previous: _Poll | None, latest: _Poll,
                  client_cache: ResolutionCache) -> dict[str, Any]:
    """Per tier: nodes up, requests served, requests/s since the previous sweep, cache hits (each node's resolver
    cache: the walks it answered without asking upstream). Per node: up and requests/s (for the picture)."""
    seconds = latest.at - previous.at if previous is not None else 0.0
    tiers = {role: {"nodes": 0, "up": 0, "requests": 0, "requests_per_s": 0.0, "cache_hits": 0, "cache_misses": 0}
             for role in TIERS}
    per_node: dict[str, dict[str, Any]] = {}
    for node in nodes:
        node_id = node.id
        tier = tiers[node.role]
        tier["nodes"] += 1
        stats = latest.stats.get(node_id)
        before = previous.stats.get(node_id) if previous is not None else None
        rate = _rate(stats, before, seconds)
        per_node[node_id] = {"up": stats is not None, "requests_per_s": rate}
        if stats is None:
            continue
        tier["up"] += 1
        tier["requests"] += int(stats.get("requests_total", 0))
        tier["requests_per_s"] = round(tier["requests_per_s"] + rate, 1)
        cache = stats.get("resolver_cache") or {}
        tier["cache_hits"] += int(cache.get("hits", 0))
        tier["cache_misses"] += int(cache.get("misses", 0))
    client = client_cache.stats()
    return {"interval_s": round(seconds, 3), "tiers": tiers, "nodes": per_node,
            "client_cache": {"hits": client["hits"], "misses": client["misses"], "size": client["size"]}}


def _rate(stats: dict[str, Any] | None, before: dict[str, Any] | None, seconds: float) -> float:
    if stats is None or before is None or seconds <= 0:
        return 0.0
    served = int(stats.get("requests_total", 0)) - int(before.get("requests_total", 0))
    return round(max(served, 0) / seconds, 1)


def _load_static() -> dict[str, bytes]:
    folder = resources.files("handlesim.demo") / "static"
    return {name: (folder / name).read_bytes() for name in STATIC_FILES}


def _error(message: str, status: int = 400) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _dumps(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False)
