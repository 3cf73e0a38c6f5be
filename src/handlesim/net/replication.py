"""Multi-primary replication between nodes: a primary pushes every change it accepted to its peers, with retry.

Every accepted write logs one entry per peer (coalesced per handle: the latest state is what gets sent) in the node's
store, in the same transaction as the change itself (HandleService.replication_peers, ReplicationLog). The pusher
reads that log, so a peer that is down catches up when it answers again, and a pusher that is killed before
delivering delivers after its restart. Peers apply changes idempotently; conflicting writes settle by timestamp in
`HandleService.apply_replicated`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from dataclasses import dataclass
from typing import Any

import aiohttp

from ..core.codes import WRITE_OPS, OpCode
from ..core.handle import Handle
from ..core.messages import Request, Response
from ..core.service import HandleService
from ..core.storage import OutboxEntry
from ..core.values import ValueReference
from ..wire import codec, mapping
from .client import basic_authorization

REPLICATION_ROUTE = "/api/replication"
RETRY_SECONDS = 0.5


@dataclass
class Peer:
    url: str
    name: str
    """The peer's node id: the replication log is kept by name, so it survives the peer moving to another port."""
    delivered: int = 0
    failures: int = 0
    last_error: str = ""


class Replicator:
    """Pushes this node's logged changes to `peers` (base URLs), authenticated as `identity`."""

    def __init__(self, service: HandleService, identity: ValueReference, secret: str, *,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.service = service
        self.ssl_context = ssl_context
        self.peers: list[Peer] = []
        self._authorization = basic_authorization(identity, secret)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None

    def set_peers(self, urls: list[str], names: list[str] | None = None) -> None:
        """Replicate to these peers from now on (`names` default to the URLs); starts delivering whatever the log
        still holds for them, e.g. changes accepted before a restart."""
        self.peers = [Peer(url, name) for url, name in zip(urls, names or urls, strict=True)]
        self.service.replication_peers = tuple(peer.name for peer in self.peers)
        self._kick()

    def changed(self, handle: Handle, *, deleted: bool = False) -> None:
        """Called after this node committed a client's write to `handle` (the service has logged it)."""
        self._kick()

    def answered(self, request: Request, answer: Response) -> None:
        """Called with every request a client interface answered: successful writes are pushed to the peers."""
        if answer.ok and request.handle is not None and request.op in WRITE_OPS:
            changed = Handle.from_text(answer.handle) if answer.handle else request.handle
            self.changed(changed, deleted=request.op == OpCode.DELETE_HANDLE)

    def pending(self, peer: Peer) -> int:
        return len(self.service.outbox(peer.name))

    def pending_total(self) -> int:
        return sum(self.pending(peer) for peer in self.peers)

    def _kick(self) -> None:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return  # not serving yet: the first write or the next set_peers starts delivery
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._run())
        self._wake.set()

    async def _run(self) -> None:
        while self.pending_total():
            self._wake.clear()
            for peer in self.peers:
                await self._drain(peer)
            if self.pending_total():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), RETRY_SECONDS)

    async def _drain(self, peer: Peer) -> None:
        delivered: list[OutboxEntry] = []
        try:
            for entry in self.service.outbox(peer.name):
                await self._push(peer, entry)
                delivered.append(entry)
                peer.delivered += 1
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            peer.failures += 1
            peer.last_error = str(exc) or type(exc).__name__
            # the peer is unreachable: the rest stays logged for the next round
        finally:
            if delivered:
                self.service.outbox_delivered(delivered)

    async def _push(self, peer: Peer, entry: OutboxEntry) -> None:
        body = codec.encode_body(self._change(entry), codec.MSGPACK)
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(ssl=self.ssl_context if self.ssl_context is not None else True)
            self._session = aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=2.0))
        headers = {"Content-Type": codec.MSGPACK, "Accept": codec.MSGPACK, "Authorization": self._authorization}
        async with self._session.put(peer.url + REPLICATION_ROUTE, data=body, headers=headers) as reply:
            if reply.status >= 500:
                raise aiohttp.ClientError(f"HTTP {reply.status}")
            await reply.read()

    def _change(self, entry: OutboxEntry) -> dict[str, Any]:
        record = None if entry.deleted_at else self.service.store.get(entry.key)
        if record is not None:
            return {"handle": record.handle.text, "values": mapping.values_to_list(record.values)}
        return {"handle": entry.handle, "values": None, "deletedAt": entry.deleted_at or int(time.time())}

    def snapshot(self) -> dict[str, Any]:
        now = time.time()
        report = {}
        for peer in self.peers:
            log = self.service.outbox(peer.name)
            report[peer.url] = {"peer": peer.name, "pending": len(log), "delivered": peer.delivered,
                                "failures": peer.failures, "last_error": peer.last_error,
                                "lag_s": round(now - min(e.logged_at for e in log), 3) if log else 0.0}
        return report

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._session is not None:
            await self._session.close()
