"""Is a loopback port free? Asked before a boot, so a port conflict is reported before any node starts (and before
the state dir gets anything), not after minutes of booting."""

from __future__ import annotations

import socket


def port_taken(host: str, port: int) -> str | None:
    """None when `host:port` can be listened on now, else the system's reason (e.g. 'Address already in use').

    Bound as aiohttp binds (SO_REUSEADDR), so a port only lingering in TIME_WAIT counts as free, as it is for the
    server that will listen there."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
            probe.listen()
        except OSError as exc:
            return exc.strerror or str(exc)
    return None
