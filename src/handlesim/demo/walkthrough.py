"""The guided scenario: register an identifier, resolve it iteratively, from the cache, through the resolver (walk,
then cache hit), then stop its enterprise node and watch the client fall over to a mirror.

The scenario only decides what happens and in what order; a `Screen` (terminal.py, or a recorder in tests) shows it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ..core.cache import ResolutionCache
from ..core.codes import OpCode
from ..core.errors import HandleError
from ..core.handle import Handle, Prefix
from ..core.messages import Request
from ..core.prefixes import owner_identity
from ..core.values import HandleValue
from ..net.client import HandleClient
from ..topology.network import topology_client
from ..topology.plan import Role
from ..topology.running import Topology
from ..topology.state import NodeEntry, TopologyState
from .lookup import LookupView, lookup_iterative, lookup_via_resolver, roles_by_node

MIRROR_WAIT_S = 5.0
"""How long the failover step waits for the new identifier to reach the mirror (replication is asynchronous)."""


class Screen(Protocol):
    """What the scenario needs from whoever shows it."""

    async def step(self, title_key: str) -> None:
        """A new step begins (a paced screen waits for the presenter here)."""

    def say(self, key: str, **facts: object) -> None:
        """One sentence of narration."""

    def tiers(self, nodes: Sequence[NodeEntry]) -> None:
        """The topology's tiers."""

    def lookup(self, view: LookupView) -> None:
        """A lookup, hop by hop."""

    def values(self, view: LookupView) -> None:
        """A lookup's final values."""

    def summary(self, rows: list[tuple[str, LookupView]]) -> None:
        """Every lookup of the demo side by side (label key, view)."""


@dataclass
class DemoRun:
    """One run of the scenario against a topology."""

    state: TopologyState
    """The topology, as topology.json and credentials.json describe it."""
    topology: Topology | None = None
    """The topology object when the demo launched it in this process (only then can the demo stop a node)."""
    prefix: str | None = None
    """Enterprise prefix to register under (default: the first enterprise that has a mirror)."""
    timeout: float = 2.0
    """Seconds before a silent node counts as failed."""
    lookups: list[tuple[str, LookupView]] = field(default_factory=list)
    """(summary label key, lookup) of every lookup shown, in order."""

    @property
    def roles(self) -> dict[str, str]:
        return roles_by_node(self.state.nodes)

    def client(self) -> HandleClient:
        """A new client of the topology (empty cache), on its network path as `handlesim resolve` takes it: hops
        pay the modelled delays when the topology runs with its network model, and a TLS topology's CA is pinned."""
        return topology_client(self.state, self.timeout)

    def enterprise(self) -> NodeEntry:
        primaries = [n for n in self.state.with_role(Role.ENTERPRISE) if n.mirror_of is None]
        if not primaries:
            raise HandleError("the topology has no enterprise node to register at")
        if self.prefix is not None:
            chosen = [n for n in primaries if n.prefix == self.prefix]
            if not chosen:
                raise HandleError(f"no enterprise node homes prefix {self.prefix}")
            return chosen[0]
        mirrored = {n.mirror_of for n in self.state.nodes}
        return next((n for n in primaries if n.id in mirrored), primaries[0])

    def mirror_of(self, node_id: str) -> NodeEntry | None:
        return next((n for n in self.state.nodes if n.mirror_of == node_id), None)

    async def run(self, screen: Screen) -> list[tuple[str, LookupView]]:
        enterprise = self.enterprise()
        handle = Handle(Prefix(enterprise.prefix), f"DEMO-{time.strftime('%H%M%S')}")
        screen.tiers(self.state.nodes)
        await self._register(screen, enterprise, handle)
        async with self.client() as client:
            await self._iterative(screen, client, handle)
            await self._resolver(screen, client, handle)
        await self._failover(screen, enterprise, handle)
        await screen.step("step_summary")
        screen.summary(self.lookups)
        return self.lookups

    async def _register(self, screen: Screen, enterprise: NodeEntry, handle: Handle) -> None:
        await screen.step("step_register")
        screen.say("register", prefix=handle.prefix.text, node=enterprise.id, handle=handle.text)
        credentials = self.state.credentials_for(owner_identity(handle.prefix))
        values = (HandleValue(1, "URL", f"https://id.example.cn/{handle.suffix.lower()}"),
                  HandleValue(2, "PRODUCT_NAME", "teaching demo pump"),
                  HandleValue(3, "EMAIL", "teacher@example.cn"))
        request = Request(OpCode.CREATE_HANDLE, handle, values=values, overwrite=True)
        started = time.perf_counter()
        async with self.client() as client:
            reply = await client.send(enterprise.url, request, credentials=credentials)
        if not reply.ok:
            screen.say("register_failed", node=enterprise.id, message=reply.message)
            raise HandleError(f"registering {handle.text} failed: {int(reply.code)} {reply.message}")
        screen.say("registered", node=enterprise.id, ms=(time.perf_counter() - started) * 1000)

    async def _iterative(self, screen: Screen, client: HandleClient, handle: Handle) -> None:
        cache = ResolutionCache()
        await screen.step("step_iterative")
        screen.say("iterative", prefix=handle.prefix.text)
        walk = await lookup_iterative(client, handle, self.state.root_sites, self.roles, cache=cache)
        self._show(screen, "summary_walk", walk)
        screen.say("iterative_done", hops=walk.upstream_hops, ms=walk.elapsed_ms)
        screen.values(walk)
        await screen.step("step_cache")
        screen.say("cache")
        again = await lookup_iterative(client, handle, self.state.root_sites, self.roles, cache=cache)
        self._show(screen, "summary_cache", again)
        screen.say("cache_done", hops=again.upstream_hops, ms=again.elapsed_ms, first_ms=walk.elapsed_ms)

    async def _resolver(self, screen: Screen, client: HandleClient, handle: Handle) -> None:
        resolver = next(iter(self.state.with_role(Role.RESOLVER)), None)
        if resolver is None:
            return
        await screen.step("step_resolver")
        screen.say("resolver", node=resolver.id)
        first = await lookup_via_resolver(client, handle, resolver, self.roles)
        self._show(screen, "summary_resolver", first)
        screen.say("resolver_done", hops=first.upstream_hops, ms=first.elapsed_ms)
        await screen.step("step_resolver_again")
        screen.say("resolver_again", node=resolver.id)
        async with self.client() as other_client:
            second = await lookup_via_resolver(other_client, handle, resolver, self.roles)
        self._show(screen, "summary_resolver_cache", second)
        screen.say("resolver_again_done", hops=second.upstream_hops, ms=second.elapsed_ms)

    async def _failover(self, screen: Screen, enterprise: NodeEntry, handle: Handle) -> None:
        await screen.step("step_failover")
        mirror = self.mirror_of(enterprise.id)
        if self.topology is None:
            screen.say("failover_skipped")
            return
        if mirror is None:
            screen.say("failover_no_mirror", node=enterprise.id)
            return
        screen.say("failover", node=enterprise.id, mirror=mirror.id)
        await self._replicated(mirror.id, handle)
        await self.topology.nodes[enterprise.id].server.stop()
        async with self.client() as fresh_client:
            view = await lookup_iterative(fresh_client, handle, self.state.root_sites, self.roles,
                                          cache=ResolutionCache())
        self._show(screen, "summary_failover", view)
        if not view.ok:
            screen.say("failover_lost", message=view.message)
            return
        lost = sum(h.duration_ms for h in view.hops if h.failed)
        screen.say("failover_done", node=enterprise.id, mirror=mirror.id, failed_ms=lost, ms=view.elapsed_ms)

    async def _replicated(self, mirror_id: str, handle: Handle) -> None:
        assert self.topology is not None
        store = self.topology.nodes[mirror_id].store
        deadline = time.monotonic() + MIRROR_WAIT_S
        while store.get(handle.key) is None and time.monotonic() < deadline:  # noqa: ASYNC110 - no event to wait on
            await asyncio.sleep(0.02)

    def _show(self, screen: Screen, label_key: str, view: LookupView) -> None:
        self.lookups.append((label_key, view))
        screen.lookup(view)
