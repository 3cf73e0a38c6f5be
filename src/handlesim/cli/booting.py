"""What `up` shows and does while a topology boots and runs: the progress line, and Ctrl-C / SIGTERM, which cancel a
boot cleanly (the launcher stops what it started and leaves the state dir as it was) or stop a running topology."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Coroutine
from typing import Any

import click

from ..topology.network import NetModeError
from ..topology.running import LaunchError, Topology
from .app import fail


class Progress:
    """A one-line progress bar on stderr while a large topology boots; without a terminal, one line per phase as it
    ends. A phase is only called done once every item of it is."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.phase = ""
        self.done = 0
        self.total = 0

    def __call__(self, phase: str, done: int, total: int) -> None:
        if phase != self.phase:
            self._end_phase()
            self.phase = phase
        self.done, self.total = done, total
        if self.tty and (done == total or done % max(total // 50, 1) == 0):
            width = 30
            filled = width * done // max(total, 1)
            click.echo(f"\r  {phase:<22} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}", err=True,
                       nl=False)

    def _end_phase(self, outcome: str = "") -> None:
        if not self.phase:
            return
        finished = self.done >= self.total
        word = "done" if finished else f"{outcome or 'stopped'} at {self.done}/{self.total}"
        if self.tty:
            click.echo("" if finished else f"  {word}", err=True)
        else:
            click.echo(f"  {self.phase}: {word}", err=True)
        self.phase = ""

    def close(self, outcome: str = "") -> None:
        """The boot ended: its last phase is done, or (`outcome`: interrupted, failed) was cut short."""
        self._end_phase(outcome)


class Signals:
    """Ctrl-C and SIGTERM for the whole life of `up`: during the boot they cancel it; afterwards they stop."""

    def __init__(self) -> None:
        self.received: signal.Signals | None = None
        self.stop_requested = asyncio.Event()
        self._boot: asyncio.Future[Topology] | None = None

    def install(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._received, sig)

    def _received(self, sig: signal.Signals) -> None:
        if self.received is not None:  # a second Ctrl-C while stopping: the stop is already on its way
            return
        self.received = sig
        self.stop_requested.set()
        if self._boot is not None and not self._boot.done():
            self._boot.cancel()

    async def booted(self, boot: Coroutine[Any, Any, Topology], progress: Progress) -> Topology:
        """Run the boot; a signal cancels it (exit 128 + the signal's number), a LaunchError is a one-line error."""
        self._boot = asyncio.ensure_future(boot)
        if self.received is not None:  # signalled before the boot began
            self._boot.cancel()
        try:
            topology = await self._boot
        except asyncio.CancelledError:
            if self.received is None:
                raise
            progress.close("interrupted")
            click.echo(f"stopped while starting ({self.received.name}): every node that had started is stopped "
                       "and the state dir is as it was", err=True)
            raise click.exceptions.Exit(128 + int(self.received)) from None
        except (LaunchError, NetModeError) as exc:
            progress.close("failed")
            fail(str(exc))
        finally:
            self._boot = None
        progress.close()
        return topology
