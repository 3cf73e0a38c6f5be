"""The state dir of a topology: what `up` keeps in it, who owns it, and how it is reset and cleaned.

    <state-dir>/up.lock                 flock held by the running `up` for its whole life; holds its pid
    <state-dir>/topology.json           where the running topology's nodes listen (state.py reads and writes it)
    <state-dir>/credentials.json        the prefix owners' secrets (mode 0600)
    <state-dir>/stores/<node>.sqlite    each node's SQLite store (`--store sqlite`), kept across restarts
    <state-dir>/stores/owner.json       which topology (name, seed) the stores belong to
    <state-dir>/tls/                    the certificate files of `up --tls`
    <state-dir>/prometheus-nodes.json   every node's host:port for Prometheus file-based discovery
    <state-dir>/handle-client/          a Handle.Net client configuration naming the roots (clientconfig.py)

"Is a topology running here" means "is up.lock locked", never "does topology.json exist": a `up` that was killed
(SIGKILL, power loss) leaves its topology.json behind, but the kernel drops its lock with the process.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

LOCK_FILE = "up.lock"
TOPOLOGY_FILE = "topology.json"
CREDENTIALS_FILE = "credentials.json"
STORES_DIR = "stores"
STORES_OWNER_FILE = "owner.json"
TLS_DIR = "tls"
SCRAPE_TARGETS_FILE = "prometheus-nodes.json"
"""Every node's host:port for Prometheus file-based discovery (each node serves its own `/metrics`)."""
STATE_FILES = (TOPOLOGY_FILE, CREDENTIALS_FILE, SCRAPE_TARGETS_FILE)
STORE_SUFFIXES = (".sqlite", ".sqlite-wal", ".sqlite-shm")
TLS_FILES = ("ca.pem", "server.pem", "server.key")
CLIENT_DIR = "handle-client"
"""A Handle.Net client configuration directory (`-Dnet.handle.configDir=`) whose bootstrap names our roots."""
CLIENT_FILES = ("bootstrap_handles", "config.dct", "README.txt")
LOCK_RETRY_S = 0.25
"""How long `up` retries the lock: a command checking whether a topology runs holds it (shared) for an instant."""


class StateDirError(Exception):
    """The state dir is in use, or holds another topology's stores; the message says what to do."""


class StateDirLock:
    """The exclusive lock a running `up` (or a `clean`) holds on its state dir, with the holder's pid inside."""

    def __init__(self, handle: IO[str]) -> None:
        self._handle: IO[str] | None = handle

    @classmethod
    def acquire(cls, state_dir: Path, *, retry_s: float = LOCK_RETRY_S) -> StateDirLock:
        """Lock `state_dir` (created if missing) or raise StateDirError naming the process that holds it."""
        state_dir.mkdir(parents=True, exist_ok=True)
        handle = open(state_dir / LOCK_FILE, "a+")  # noqa: SIM115 - held until `release`
        deadline = time.monotonic() + retry_s
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    handle.close()
                    holder = holder_pid(state_dir)
                    raise StateDirError(
                        f"another `handlesim up` is running on {state_dir}"
                        f"{f' (pid {holder})' if holder else ''}; stop it first (`handlesim down --state-dir "
                        f"{state_dir}`) or use another --state-dir") from None
                time.sleep(0.02)
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        return cls(handle)

    @property
    def held(self) -> bool:
        return self._handle is not None

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def is_running(state_dir: Path) -> bool:
    """Does a live `up` hold the state dir's lock? (A shared, non-blocking probe: it never waits.)"""
    try:
        handle = open(state_dir / LOCK_FILE)  # noqa: SIM115 - closed below
    except FileNotFoundError:
        return False
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        return False


def holder_pid(state_dir: Path) -> int | None:
    """The pid the running `up` wrote into up.lock (None if unreadable)."""
    try:
        return int((state_dir / LOCK_FILE).read_text().strip())
    except (OSError, ValueError):
        return None


def stale_topology_file(state_dir: Path) -> bool:
    """A topology.json no running `up` stands behind (left by one that was killed)."""
    return (state_dir / TOPOLOGY_FILE).exists() and not is_running(state_dir)


def not_running_message(state_dir: Path) -> str:
    """What every command says when nothing runs in `state_dir`."""
    if (state_dir / TOPOLOGY_FILE).exists():
        return (f"no running topology in {state_dir} (its topology.json is left from a `handlesim up` that was not "
                f"stopped cleanly; `handlesim clean --state-dir {state_dir}` removes it)")
    return f"no running topology in {state_dir} (start one with `handlesim up --state-dir {state_dir}`)"


@dataclass(frozen=True)
class StoresOwner:
    """The topology whose nodes' stores a state dir holds: its config's name and seed make it that topology."""

    name: str
    seed: int

    def describe(self) -> str:
        return f"{self.name!r} (seed {self.seed})"


def stores_owner(state_dir: Path) -> StoresOwner | None:
    """Whose stores are in the state dir (None: no stores, or stores from before owners were recorded)."""
    try:
        data = json.loads((state_dir / STORES_DIR / STORES_OWNER_FILE).read_text(encoding="utf-8"))
        return StoresOwner(str(data["name"]), int(data["seed"]))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise StateDirError(f"cannot read {state_dir / STORES_DIR / STORES_OWNER_FILE}: {exc}; `handlesim clean "
                            f"--state-dir {state_dir}` (or `up --reset`) removes the stores") from None


def has_stores(state_dir: Path) -> bool:
    stores = state_dir / STORES_DIR
    return stores.is_dir() and any(p.suffix == ".sqlite" for p in stores.iterdir())


def claim_stores(state_dir: Path, owner: StoresOwner) -> None:
    """Record `owner` as the topology of the state dir's stores; StateDirError if they belong to another one."""
    recorded = stores_owner(state_dir)
    if recorded is not None and recorded != owner and has_stores(state_dir):
        raise StateDirError(
            f"{state_dir} holds the stores of topology {recorded.describe()}, not of {owner.describe()} that is "
            f"starting; start that one again, wipe them with `handlesim up --reset` or `handlesim clean --state-dir "
            f"{state_dir}`, or use another --state-dir")
    if recorded != owner:
        stores = state_dir / STORES_DIR
        stores.mkdir(parents=True, exist_ok=True)
        (stores / STORES_OWNER_FILE).write_text(json.dumps({"name": owner.name, "seed": owner.seed}) + "\n",
                                                encoding="utf-8")


def remove_state(state_dir: Path, *, keep_lock: bool = False) -> list[Path]:
    """Remove what `up` keeps in `state_dir` (stores, topology.json, credentials, tls, ...; never a file it does
    not know), then the dir itself if nothing else is left; returns what was removed. The caller holds the lock."""
    removed: list[Path] = []

    def remove(path: Path) -> None:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed.append(path)

    for name in STATE_FILES:
        remove(state_dir / name)
    for partial in state_dir.glob(".topology.json.*"):  # a write cut short by a kill
        remove(partial)
    for partial in state_dir.glob(f"{SCRAPE_TARGETS_FILE}.*"):
        remove(partial)
    stores = state_dir / STORES_DIR
    if stores.is_dir():
        for path in stores.iterdir():
            if path.name == STORES_OWNER_FILE or path.name.endswith(STORE_SUFFIXES):
                remove(path)
    for name in TLS_FILES:
        remove(state_dir / TLS_DIR / name)
    for name in CLIENT_FILES:
        remove(state_dir / CLIENT_DIR / name)
    for directory in (stores, state_dir / TLS_DIR, state_dir / CLIENT_DIR):
        _remove_if_empty(directory, removed)
    if not keep_lock:
        remove(state_dir / LOCK_FILE)
        _remove_if_empty(state_dir, removed)
    return removed


def _remove_if_empty(directory: Path, removed: list[Path]) -> None:
    with contextlib.suppress(FileNotFoundError, OSError):
        directory.rmdir()  # only when empty: anything that is not ours stays
        removed.append(directory)


class StateDirSnapshot:
    """What was in a state dir before a `up`, so a failed `up` can take away exactly what it added."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.existed = state_dir.exists()
        self.entries = _entries(state_dir)

    def remove_new(self) -> None:
        """Remove the files `up` writes that were not there at the snapshot, then the stores/, tls/ and state dirs
        if they are new and empty. Files that are not `up`'s stay, whoever added them."""
        for path in _entries(self.state_dir) - self.entries:
            if _written_by_up(self.state_dir, path):
                with contextlib.suppress(FileNotFoundError, IsADirectoryError):
                    path.unlink()
        created = [d for d in (self.state_dir / STORES_DIR, self.state_dir / TLS_DIR, self.state_dir / CLIENT_DIR)
                   if d not in self.entries]
        if not self.existed:
            created.append(self.state_dir)
        for directory in created:
            with contextlib.suppress(FileNotFoundError, OSError):
                directory.rmdir()  # only when empty


def _entries(state_dir: Path) -> set[Path]:
    """The state dir's entries, and those of its stores/, tls/ and handle-client/ (where `up` writes)."""
    found: set[Path] = set()
    for directory in (state_dir, state_dir / STORES_DIR, state_dir / TLS_DIR, state_dir / CLIENT_DIR):
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            found.update(directory.iterdir())
    return found


def _written_by_up(state_dir: Path, path: Path) -> bool:
    if path.parent == state_dir / STORES_DIR:
        return path.name == STORES_OWNER_FILE or path.name.endswith(STORE_SUFFIXES)
    if path.parent == state_dir / TLS_DIR:
        return path.name in TLS_FILES
    if path.parent == state_dir / CLIENT_DIR:
        return path.name in CLIENT_FILES
    return path.name in (LOCK_FILE, *STATE_FILES) or path.name.startswith((".topology.json.", SCRAPE_TARGETS_FILE))
