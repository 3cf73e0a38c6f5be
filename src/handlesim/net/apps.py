"""A small aiohttp application on a loopback port: the base of the teaching page, the metrics port and the fault
control port. (Nodes have their own listener with connection and overload gates: net/server.py.)"""

from __future__ import annotations

from aiohttp import web


class AppServer:
    """Serves `self.app`: `await start(host, port)` returns the bound port (0: a free one), `await stop()` ends it."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.port = 0
        self._runner: web.AppRunner | None = None

    async def start(self, host: str, port: int = 0) -> int:
        runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port, reuse_address=True).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner, self.port = runner, runner.addresses[0][1]
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
