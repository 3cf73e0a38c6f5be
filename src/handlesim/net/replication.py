"""Multi-primary replication between nodes: a primary pushes every change it accepted to its peers, with retry.

A peer that is down keeps its changes queued (coalesced per handle: the latest state is what gets sent) and catches
up when it answers again; conflicting writes settle by timestamp in `HandleService.apply_replicated`.
The queue lives in memory: a pusher that is itself restarted forgets what it had not yet delivered (a persistent
transaction log that peers pull is the next step).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from ..core.handle import Handle
from ..core.service import HandleService
from ..core.values import ValueReference
from ..wire import codec, mapping
from .client import basic_authorization

REPLICATION_ROUTE = "/api/replication"
RETRY_SECONDS = 0.5


@dataclass
class Peer:
    url: str
    pending: dict[str, float] = field(default_factory=dict)  # handle key -> when it changed here
    delivered: int = 0
    failures: int = 0
    last_error: str = ""


class Replicator:
    """Pushes this node's accepted changes to `peers` (base URLs), authenticated as `identity`."""

    def __init__(self, service: HandleService, identity: ValueReference, secret: str, *,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.service = service
        self.ssl_context = ssl_context
        self.peers: list[Peer] = []
        self._authorization = basic_authorization(identity, secret)
        self._deleted_at: dict[str, tuple[str, int]] = {}  # key -> (handle text, when deleted)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None

    def set_peers(self, urls: list[str]) -> None:
        self.peers = [Peer(url) for url in urls]

    def changed(self, handle: Handle, *, deleted: bool = False) -> None:
        """Called after this node committed a client's write to `handle`."""
        if deleted:
            self._deleted_at[handle.key] = (handle.text, int(time.time()))
        else:
            self._deleted_at.pop(handle.key, None)
        for peer in self.peers:
            peer.pending[handle.key] = time.time()
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._run())
        self._wake.set()

    async def _run(self) -> None:
        while any(peer.pending for peer in self.peers):
            self._wake.clear()
            for peer in self.peers:
                await self._drain(peer)
            if any(peer.pending for peer in self.peers):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), RETRY_SECONDS)

    async def _drain(self, peer: Peer) -> None:
        for key in list(peer.pending):
            try:
                await self._push(peer, key)
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                peer.failures += 1
                peer.last_error = str(exc) or type(exc).__name__
                return  # the peer is unreachable: keep the rest queued for the next round
            peer.pending.pop(key, None)
            peer.delivered += 1

    async def _push(self, peer: Peer, key: str) -> None:
        body = codec.encode_body(self._change(key), codec.MSGPACK)
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(ssl=self.ssl_context if self.ssl_context is not None else True)
            self._session = aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=2.0))
        headers = {"Content-Type": codec.MSGPACK, "Accept": codec.MSGPACK, "Authorization": self._authorization}
        async with self._session.put(peer.url + REPLICATION_ROUTE, data=body, headers=headers) as reply:
            if reply.status >= 500:
                raise aiohttp.ClientError(f"HTTP {reply.status}")
            await reply.read()

    def _change(self, key: str) -> dict[str, Any]:
        record = self.service.store.get(key)
        if record is not None:
            return {"handle": record.handle.text, "values": mapping.values_to_list(record.values)}
        text, when = self._deleted_at.get(key, (key, int(time.time())))
        return {"handle": text, "values": None, "deletedAt": when}

    def snapshot(self) -> dict[str, Any]:
        return {p.url: {"pending": len(p.pending), "delivered": p.delivered, "failures": p.failures,
                        "last_error": p.last_error,
                        "lag_s": round(time.time() - min(p.pending.values()), 3) if p.pending else 0.0}
                for p in self.peers}

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._session is not None:
            await self._session.close()
