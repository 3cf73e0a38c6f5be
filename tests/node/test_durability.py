"""Crash durability at the node level: a node in its own process is SIGKILLed while writers hammer it, restarted on
the same SQLite store, and checked: every acknowledged write is there and intact, no write is half-applied, the
database passes `PRAGMA integrity_check`. A mirror killed during replication catches up without gaps."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import aiohttp
import pytest

from handlesim.store import SqliteStore

from ..support.nodeproc import Ledger, NodeProcess, free_port, version_of, write_until_error
from ..support.waiting import eventually

WRITERS = 8


async def _writes_then_kill(node: NodeProcess, ledger: Ledger, kill_after: float, seed: int) -> None:
    stop = asyncio.Event()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        writers = [asyncio.ensure_future(write_until_error(node.url, ledger, w, random.Random(seed * 100 + w), stop,
                                                            session)) for w in range(WRITERS)]
        await asyncio.sleep(kill_after)
        node.kill()  # mid-stream: writers have requests in flight
        stop.set()
        await asyncio.wait_for(asyncio.gather(*writers), 15)


def _verify_store(path: Path, ledger: Ledger) -> int:
    store = SqliteStore(path)
    try:
        assert store.integrity_check() == "ok"
        return ledger.check(store.get)
    finally:
        store.close()


async def _kill_rounds(tmp_path: Path, kill_points: list[float]) -> tuple[int, int]:
    path = tmp_path / "node.sqlite"
    ledger = Ledger()
    for number, kill_after in enumerate(kill_points):
        node = await NodeProcess(path).start()
        await _writes_then_kill(node, ledger, kill_after, number)
        _verify_store(path, ledger)
    # the restarted node serves what the store holds
    node = await NodeProcess(path).start()
    try:
        async with aiohttp.ClientSession() as session:
            for handle, version in list(ledger.acked.items())[:20]:
                async with session.get(f"{node.url}/api/handles/{handle}") as reply:
                    body = await reply.json()
                assert reply.status == 200 and f"v{version}" in str(body["values"]), body
    finally:
        node.stop()
    print(f"\nkills survived: {len(kill_points)}; acknowledged writes verified: {ledger.acked_writes} "
          f"over {len(ledger.acked)} handles; integrity_check ok after every kill")
    return len(ledger.acked), ledger.acked_writes


@pytest.mark.slow
async def test_sigkill_mid_write_loses_no_acknowledged_write(tmp_path: Path) -> None:
    handles, writes = await _kill_rounds(tmp_path, [0.4, 0.7, 1.0])
    assert writes > 30 and handles > 10, "the writers must have done real work before each kill"


@pytest.mark.slow
async def test_sigkill_at_many_kill_points(tmp_path: Path) -> None:
    rng = random.Random(7)
    handles, writes = await _kill_rounds(tmp_path, [round(rng.uniform(0.05, 1.5), 2) for _ in range(12)])
    assert writes > 100 and handles > 30


async def _pending_replication(session: aiohttp.ClientSession, url: str) -> int:
    async with session.get(f"{url}/_sim/stats") as reply:
        stats = await reply.json()
    return sum(peer["pending"] for peer in stats["replication"].values())


def _records(path: Path) -> dict[str, tuple[object, ...]]:
    """Every record but the prefix handle (each node seeded its own copy: own site, own salt)."""
    store = SqliteStore(path)
    try:
        assert store.integrity_check() == "ok"
        return {r.key: r.values for r in store.records() if not r.key.startswith("0.NA/")}
    finally:
        store.close()


@pytest.mark.slow
async def test_mirror_killed_during_replication_catches_up(tmp_path: Path) -> None:
    mirror_port = free_port()
    primary = await NodeProcess(tmp_path / "primary.sqlite", 0, "--peer", f"http://127.0.0.1:{mirror_port}").start()
    mirror_args = ("--mirror-of", primary.url, "--node-id", "mirror1")
    mirror = await NodeProcess(tmp_path / "mirror.sqlite", mirror_port, *mirror_args).start()
    ledger = Ledger()
    stop = asyncio.Event()
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            writers = [asyncio.ensure_future(write_until_error(primary.url, ledger, w, random.Random(w), stop,
                                                                session)) for w in range(WRITERS)]
            for down_at in (0.3, 0.6):  # kill the mirror twice while changes stream to it
                await asyncio.sleep(down_at)
                mirror.kill()
                await asyncio.sleep(0.3)
                mirror = await NodeProcess(tmp_path / "mirror.sqlite", mirror_port, *mirror_args).start()
            await asyncio.sleep(0.3)
            stop.set()
            await asyncio.wait_for(asyncio.gather(*writers), 15)
            assert not ledger.pending, "the primary stayed up: every write was answered"
            async def caught_up() -> bool:
                return await _pending_replication(session, primary.url) == 0

            await eventually(caught_up, 15, every=0.05, what="the mirror catching up")
    finally:
        primary.stop()
        mirror.stop()
    on_primary, on_mirror = _records(tmp_path / "primary.sqlite"), _records(tmp_path / "mirror.sqlite")
    assert ledger.acked_writes > 30
    assert set(on_mirror) == set(on_primary), "no gaps and nothing extra"
    assert on_mirror == on_primary, "every record identical to the primary's"
    print(f"\nmirror killed twice during replication: {ledger.acked_writes} acknowledged writes, "
          f"{len(on_primary)} records identical on primary and mirror")
    store = SqliteStore(tmp_path / "mirror.sqlite")
    try:
        for record in store.records():
            if not record.key.startswith("0.NA/"):
                assert version_of(record) == ledger.acked[record.handle.text]
    finally:
        store.close()
