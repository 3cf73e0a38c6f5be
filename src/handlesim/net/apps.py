"""Serving a small aiohttp application on a loopback port: the teaching page, the metrics port, the fault control
port. (Nodes have their own listener with connection and overload gates: net/server.py.)"""

from __future__ import annotations

from aiohttp import web


async def serve_app(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Start `app` on host:port (0: a free port); returns its runner (for `cleanup()`) and the port it bound."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner, runner.addresses[0][1]
