"""The bare aiohttp route every benchmark also measures: same process layout, same payload, no Handle logic.

Results quoted as ratios to it (handlesim / bare route, measured in one run) survive a noisy shared machine.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
from multiprocessing.connection import Connection

from aiohttp import web

from ..net.tls import TlsFiles


def make_app(payload: bytes) -> web.Application:
    async def answer(request: web.Request) -> web.Response:
        return web.Response(body=payload, content_type="application/msgpack")

    app = web.Application()
    app.router.add_get("/api/handles/{handle:.+}", answer)
    return app


def _serve(payload: bytes, host: str, ready: Connection, tls: TlsFiles | None, cpu: int | None) -> None:
    import asyncio
    import os

    if cpu is not None:  # on the topology's core, so both sides of a ratio run under the same pinning
        os.sched_setaffinity(0, {cpu})

    async def main() -> None:
        runner = web.AppRunner(make_app(payload), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, 0, ssl_context=tls.server_context() if tls is not None else None)
        await site.start()
        server = site._server  # noqa: SLF001 - the ephemeral port
        port = server.sockets[0].getsockname()[1] if server is not None else 0  # type: ignore[attr-defined]
        ready.send(port)
        await asyncio.Event().wait()

    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    asyncio.run(main())


class BaselineServer:
    """A bare route in its own process (as a node runs in the topology's process); with `tls` (the topology's
    certificate files) it serves HTTPS, so the ratio to a `up --tls` topology compares like with like."""

    def __init__(self, payload: bytes, host: str = "127.0.0.1", tls: TlsFiles | None = None,
                 cpu: int | None = None) -> None:
        """`cpu`: pin the route's process to this CPU (None: wherever the system runs it)."""
        context = mp.get_context("spawn")
        receiver, sender = context.Pipe(duplex=False)
        self.process = context.Process(target=_serve, args=(payload, host, sender, tls, cpu), daemon=True)
        self.process.start()
        if not receiver.poll(30):
            self.process.kill()
            raise RuntimeError("the baseline server did not start within 30 s")
        self.host = host
        self.port: int = receiver.recv()
        receiver.close()

    def stop(self) -> None:
        self.process.terminate()
        self.process.join(5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
