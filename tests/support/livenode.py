"""One enterprise node served in-process on 127.0.0.1 (ephemeral port) over a MemoryStore, for limit, fuzz and
security tests: its prefix handle, the owner's hashed secret, a non-admin user and a few identifiers."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from handlesim.core.auth import hash_secret
from handlesim.core.handle import Handle, Prefix
from handlesim.core.prefixes import handle_record, http_site, owner_identity, prefix_record
from handlesim.core.service import HandleService, ServiceConfig, ServiceLimits
from handlesim.core.storage import HandleRecord, Store
from handlesim.core.values import HS_SECKEY, KEY_INDEX, SECRET_PERMISSIONS, HandleValue
from handlesim.net.client import basic_authorization
from handlesim.net.limits import ServerLimits
from handlesim.net.native import NativeLimits
from handlesim.net.server import NodeServer
from handlesim.store import MemoryStore

PREFIX = "88.101.1001"
OWNER_SECRET = "owner-secret-7f3a"
USER_HANDLE = f"{PREFIX}/USER"
USER_SECRET = "user-secret-91bc"




OWNER_AUTH = basic_authorization(f"300:0.NA/{PREFIX}", OWNER_SECRET)
USER_AUTH = basic_authorization(f"300:{USER_HANDLE}", USER_SECRET)


@dataclass
class LiveNode:
    server: NodeServer
    store: Store

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    @property
    def native_address(self) -> tuple[str, int]:
        """Where the node speaks the native protocol, UDP and TCP (`live_node(native=True)`)."""
        return "127.0.0.1", self.server.native_port

    def snapshot(self) -> dict[str, tuple[HandleValue, ...]]:
        return {r.key: r.values for r in self.store.records()}


def seeded_store(store: Store | None = None) -> Store:
    store = store if store is not None else MemoryStore()
    prefix = Prefix(PREFIX)
    store.put(prefix_record(prefix, sites=[http_site("ent", [("127.0.0.1", 1)])],
                            secret_hash=hash_secret(OWNER_SECRET, b"salt-salt-salt-1", 100)))
    store.put(HandleRecord(Handle.from_text(USER_HANDLE), (
        HandleValue(KEY_INDEX, HS_SECKEY, hash_secret(USER_SECRET, b"salt-salt-salt-2", 100),
                    permissions=SECRET_PERMISSIONS),)))
    for number in range(5):
        handle = Handle.from_text(f"{PREFIX}/PUMP-{number}")
        store.put(handle_record(handle, [HandleValue(1, "URL", f"https://id.example.cn/pump-{number}"),
                                         HandleValue(2, "EMAIL", "ops@example.cn")]))
    return store


@asynccontextmanager
async def live_node(service_limits: ServiceLimits | None = None,
                    server_limits: ServerLimits | None = None,
                    store: Store | None = None, native: bool = False) -> AsyncIterator[LiveNode]:
    store = store or seeded_store()
    config = ServiceConfig(f"ent-{PREFIX}", homed_prefixes=(PREFIX,), server_admins=(owner_identity(Prefix(PREFIX)),),
                           limits=service_limits or ServiceLimits(), secret_iterations=100)
    server = NodeServer(HandleService(config, store), limits=server_limits, native=NativeLimits() if native else None)
    await server.start("127.0.0.1", 0, 0 if native else None)
    try:
        yield LiveNode(server, store)
    finally:
        await server.stop()


class ThreadedNode:
    """A live node on its own event loop in a background thread, for synchronous clients (hypothesis, requests).

    The store is only read from the test thread between requests, when the node is idle."""

    def __init__(self, service_limits: ServiceLimits | None = None,
                 server_limits: ServerLimits | None = None) -> None:
        self.service_limits, self.server_limits = service_limits, server_limits
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="live-node", daemon=True)
        self.node: LiveNode | None = None
        self._context: Any = None

    def __enter__(self) -> LiveNode:
        self.thread.start()
        self._context = live_node(self.service_limits, self.server_limits)
        self.node = asyncio.run_coroutine_threadsafe(self._context.__aenter__(), self.loop).result(10)
        return self.node

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._context.__aexit__(None, None, None), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()
