"""The simulator routes of a node under `/_sim/`: health, statistics and fault injection; never on the Handle routes.

Every other `/_sim/` path is caught by `SimRoutes.catch_all`, which a node adds after all its routes: unknown paths
answer 404, and changes are refused (403 while fault injection is off), so nothing under `/_sim/` changes a node
except `POST /_sim/fault` of a topology started with faults.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from .faults import FAULT_ROUTE, FaultController, fault_action, fault_state, other_sim_route
from .routes import Route
from .stats import NodeStats

STATS_ROUTE = "/_sim/stats"
HEALTH_ROUTE = "/_sim/health"


class SimRoutes:
    def __init__(self, node_id: str, stats: Callable[[], NodeStats],
                 faults: Callable[[], FaultController | None]) -> None:
        self.node_id = node_id
        self.stats = stats
        self.faults = faults
        """The topology's fault controller as it is now (registered after the node is built; None: off)."""

    def routes(self) -> list[Route]:
        return [
            Route("GET", HEALTH_ROUTE, self.health),
            Route("GET", STATS_ROUTE, self.stats_answer),
            Route("GET", FAULT_ROUTE, self.fault_state),
            Route("POST", FAULT_ROUTE, self.fault_action),
        ]

    def catch_all(self) -> Route:
        """Every other `/_sim/` request (add it last: the routes added before it win)."""
        return Route("*", "/_sim/{tail:.*}", self.other_sim_route)

    async def health(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({"status": "ok", "node": self.node_id})

    async def stats_answer(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self.stats().to_json())

    async def fault_state(self, request: web.Request) -> web.StreamResponse:
        return await fault_state(self.faults())

    async def fault_action(self, request: web.Request) -> web.StreamResponse:
        return await fault_action(self.faults(), request)

    async def other_sim_route(self, request: web.Request) -> web.StreamResponse:
        return await other_sim_route(self.faults(), request)
