"""Small `TopologyState`s for tests that need a topology.json without running a topology."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from handlesim.topology.plan import Role
from handlesim.topology.state import FORMAT_VERSION, FaultsEntry, NodeEntry, RootEntry, TopologyState
from handlesim.topology.statedir import StateDirLock


def a_node(node_id: str = "root-qingdao", role: Role = Role.ROOT, port: int = 20000, **fields: Any) -> NodeEntry:
    values: dict[str, Any] = {
        "id": node_id, "role": role, "prefix": "0.NA" if role == Role.ROOT else "", "parent": None, "industry": "",
        "region": "", "url": f"http://127.0.0.1:{port}", "host": "127.0.0.1", "port": port, "identity": "",
        "identifiers": 0, "mirror_of": None, "server_of": None, "server_index": 0, "site_servers": 1, "worker": 0}
    values.update(fields)
    return NodeEntry(**values)


def a_state(state_dir: Path = Path("state"), nodes: tuple[NodeEntry, ...] | None = None,
            **fields: Any) -> TopologyState:
    """A one-root topology as `up` would describe it; `fields` replace any top-level key."""
    nodes = (a_node(),) if nodes is None else nodes
    roots = tuple(RootEntry(n.id, n.host, n.port, n.url) for n in nodes if n.role == Role.ROOT)
    state = TopologyState(
        version=FORMAT_VERSION, name="tiny", seed=1, pid=1, state_dir=state_dir, started_at=0.0, boot_seconds=0.0,
        credentials=state_dir / "credentials.json", tls=None, roots=roots, examples=(), nodes=nodes,
        net="loopback", network=None, faults=FaultsEntry(False, None), metrics_url=None, report_interval=None,
        engine="inline", workers=1, metrics_urls=())
    return dataclasses.replace(state, **fields)


@contextmanager
def running_in(state_dir: Path) -> Iterator[StateDirLock]:
    """Hold the state dir's lock as a running `up` does (commands read topology.json only while it is held)."""
    lock = StateDirLock.acquire(state_dir)
    try:
        yield lock
    finally:
        lock.release()
