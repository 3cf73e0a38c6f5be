"""Is a loopback port free? Asked before a boot, so a port conflict is reported before any node starts (and before
the state dir gets anything), not after minutes of booting."""

from __future__ import annotations

import contextlib
import resource
import socket


def port_taken(host: str, port: int, *, udp: bool = False) -> str | None:
    """None when `host:port` can be listened on now (TCP, or UDP with `udp`), else the system's reason (e.g.
    'Address already in use').

    Bound as aiohttp binds (SO_REUSEADDR), so a TCP port only lingering in TIME_WAIT counts as free, as it is for
    the server that will listen there."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM if udp else socket.SOCK_STREAM) as probe:
        if not udp:  # for UDP, SO_REUSEADDR would let the probe share a port another socket holds
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
            if not udp:
                probe.listen()
        except OSError as exc:
            return exc.strerror or str(exc)
    return None


OPEN_FILES_HEADROOM = 512
"""Open files a process keeps beside its nodes' listeners and stores: client connections, pipes, logs."""


def open_files_needed(native_listeners: int, rest_listeners: int, sqlite_stores: int) -> int:
    """Open files a process needs for its nodes: one socket per REST listener, two per native interface (UDP and
    TCP), up to three files per SQLite store (database, WAL, shared memory), and `OPEN_FILES_HEADROOM`."""
    return rest_listeners + 2 * native_listeners + 3 * sqlite_stores + OPEN_FILES_HEADROOM


def open_files_limit() -> int:
    """This process's open-file limit, raised first to the hard limit (the most a process may ask for itself)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
    return soft if soft != resource.RLIM_INFINITY else 1 << 30


def beyond_open_files(nodes: int, native: int, sqlite: bool) -> str | None:
    """Why `nodes` nodes (`native` of them with a native interface) cannot start in this process, or None."""
    needed = open_files_needed(native, nodes, nodes if sqlite else 0)
    limit = open_files_limit()
    if needed <= limit:
        return None
    return (f"{nodes:,} nodes in one process need about {needed:,} open files (a REST listener each, a UDP and a "
            f"TCP socket for each native interface{', three files per SQLite store' if sqlite else ''}), over this "
            f"process's limit of {limit:,} (ulimit -n): spread them over processes with --workers N, or use "
            "--no-native (one socket per node)")
