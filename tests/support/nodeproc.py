"""Nodes in their own processes (handlesim.topology.standalone) for crash tests, and a writer that tracks acks."""

from __future__ import annotations

import asyncio
import base64
import os
import random
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import aiohttp

from handlesim.core.handle import Handle
from handlesim.core.storage import HandleRecord

from .paths import SRC

PREFIX = "88.101.1001"
SECRET = "durability-secret-0123"
IDENTITY = f"300:0.NA/{PREFIX}"
AUTH = "Basic " + base64.b64encode(f"{quote(IDENTITY, safe='/')}:{SECRET}".encode()).decode()
VALUE_INDEXES = (1, 2, 3)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class NodeProcess:
    """`python -m handlesim.topology.standalone` on a store; `start()` waits for its ready line."""

    def __init__(self, store: Path, port: int = 0, *extra: str) -> None:
        self.store, self.port, self.extra = store, port, extra
        self.proc: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _spawn(self) -> subprocess.Popen[str]:
        env = {**os.environ, "PYTHONPATH": str(SRC), "HANDLESIM_SECRET": SECRET}
        return subprocess.Popen(
            [sys.executable, "-m", "handlesim.topology.standalone", "--store", str(self.store), "--prefix", PREFIX,
             "--port", str(self.port), *self.extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)

    async def start(self, wait_s: float = 20.0) -> NodeProcess:
        self.proc = self._spawn()
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(self.proc.stdout.readline), wait_s)
        if not line.startswith("ready "):
            self.proc.kill()
            _, err = self.proc.communicate(timeout=5)
            raise AssertionError(f"node did not start: {line!r} {err[-2000:]}")
        self.port = int(line.split()[1])
        return self

    def kill(self) -> None:
        """SIGKILL: no clean-up of any kind runs in the node."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        self._reap()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._reap()

    def _reap(self) -> None:
        if self.proc is not None:
            for stream in (self.proc.stdout, self.proc.stderr):
                if stream is not None:
                    stream.close()
            self.proc = None


def values_for(handle: str, version: int) -> list[dict[str, object]]:
    """Three values that all carry the same version: a half-applied write shows as mixed versions."""
    return [{"index": 1, "type": "URL", "data": f"https://id.example.cn/{handle}/v{version}"},
            {"index": 2, "type": "EMAIL", "data": f"v{version}@example.cn"},
            {"index": 3, "type": "BATCH", "data": f"v{version}"}]


def version_of(record: HandleRecord) -> int:
    """The one version the record's three values carry; AssertionError if they disagree (half-applied)."""
    by_index = {v.index: v for v in record.values}
    assert set(VALUE_INDEXES) <= set(by_index), f"{record.handle.text} lacks values: {sorted(by_index)}"
    versions = {str(by_index[i].data).rsplit("v", 1)[1].split("@")[0] for i in VALUE_INDEXES}
    assert len(versions) == 1, f"{record.handle.text} is half-applied: versions {versions}"
    return int(versions.pop())


@dataclass
class Ledger:
    """What the writers sent and what the node acknowledged, per handle."""

    acked: dict[str, int] = field(default_factory=dict)
    """handle -> last acknowledged version"""
    pending: dict[str, int] = field(default_factory=dict)
    """handle -> version sent without an answer (at most one per handle)"""
    acked_writes: int = 0

    def check(self, get: object) -> int:
        """Every acknowledged write present, nothing half-applied; returns the handles checked."""
        assert callable(get)
        for handle in set(self.acked) | set(self.pending):
            record = get(Handle.from_text(handle).key)
            sent = self.pending.get(handle)
            if handle not in self.acked:
                assert record is None or version_of(record) == sent, f"{handle}: unacknowledged create half-there"
                if record is not None:  # it committed; the answer was lost with the node
                    self.acked[handle] = version_of(record)
                continue
            assert record is not None, f"{handle}: acknowledged (v{self.acked[handle]}) but lost"
            version = version_of(record)
            assert version in (self.acked[handle], sent), f"{handle}: v{version}, acked v{self.acked[handle]}"
            self.acked[handle] = version
        self.pending.clear()
        return len(self.acked)


async def write_until_error(url: str, ledger: Ledger, writer: int, rng: random.Random,
                            stop: asyncio.Event, session: aiohttp.ClientSession) -> None:
    """Creates and 3-value modifications until the node dies (transport error) or `stop` is set."""
    own = [h for h in ledger.acked if h.split("/", 1)[1].startswith(f"W{writer}-")]
    while not stop.is_set():
        if not own or rng.random() < 0.4:
            handle, version, query = f"{PREFIX}/W{writer}-{len(own) + rng.randrange(10**9)}", 0, "?overwrite=false"
        else:
            handle = rng.choice(own)
            version = ledger.acked[handle] + 1
            query = "?overwrite=true&index=1&index=2&index=3"
        ledger.pending[handle] = version
        try:
            async with session.put(f"{url}/api/handles/{handle}{query}", json={"values": values_for(handle, version)},
                                   headers={"Authorization": AUTH}) as reply:
                body = await reply.json()
        except (aiohttp.ClientError, OSError, TimeoutError):
            return  # the node is gone: this write stays pending
        assert reply.status in (200, 201) and body["responseCode"] == 1, (reply.status, body)
        del ledger.pending[handle]
        if handle not in ledger.acked:
            own.append(handle)
        ledger.acked[handle] = version
        ledger.acked_writes += 1
