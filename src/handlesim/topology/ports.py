"""Is a loopback port free? Asked before a boot, so a port conflict is reported before any node starts (and before
the state dir gets anything), not after minutes of booting."""

from __future__ import annotations

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
