"""`handlesim down` and `clean`: stop the `up` running from a state dir, and remove a stopped topology's state.

`down` on a state dir where nothing runs says so and exits 0, as `systemctl stop` does for a stopped unit: the
state the user asked for (nothing running) is the state they have.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import click

from ..topology.statedir import (
    StateDirError,
    StateDirLock,
    holder_pid,
    is_running,
    remove_state,
    stale_topology_file,
)
from .app import fail, main, state_dir_option

DOWN_TIMEOUT_S = 30.0
POLL_S = 0.1


@main.command()
@state_dir_option
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=DOWN_TIMEOUT_S, show_default=True,
              help="Seconds to wait for the topology to stop.")
def down(state_dir: Path, timeout: float) -> None:
    """Stop the topology running from the state dir (SIGTERM to its `up`, then wait until it has stopped)."""
    if not is_running(state_dir):
        leftover = (f"; its topology.json is left from a `handlesim up` that was not stopped cleanly (`handlesim "
                    f"clean --state-dir {state_dir}` removes it)") if stale_topology_file(state_dir) else ""
        click.echo(f"nothing running in {state_dir}{leftover}")
        return
    pid = holder_pid(state_dir)
    if pid is None:
        fail(f"a topology runs in {state_dir} but {state_dir / 'up.lock'} names no process; stop it with Ctrl-C")
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        fail(f"{state_dir} is locked, but its process {pid} is gone; try again in a moment")
    deadline = time.monotonic() + timeout
    while is_running(state_dir):
        if time.monotonic() > deadline:
            fail(f"the topology in {state_dir} (pid {pid}) is still stopping after {timeout:g} s; wait, or end it "
                 f"with `kill -9 {pid}` (then `handlesim clean --state-dir {state_dir}`)")
        time.sleep(POLL_S)
    click.echo(f"stopped the topology in {state_dir} (pid {pid})")


@main.command()
@state_dir_option
def clean(state_dir: Path) -> None:
    """Remove a stopped topology's state (stores, topology.json, credentials, tls); refused while it runs."""
    if not state_dir.exists():
        click.echo(f"nothing to clean in {state_dir}")
        return
    try:
        lock = StateDirLock.acquire(state_dir, retry_s=0.0)  # held while removing: no `up` starts meanwhile
    except StateDirError:
        pid = holder_pid(state_dir)
        fail(f"the topology in {state_dir} is running{f' (pid {pid})' if pid else ''}; stop it first with "
             f"`handlesim down --state-dir {state_dir}`")
    try:
        removed = remove_state(state_dir)
    finally:
        lock.release()
    left = sorted(p.name for p in state_dir.iterdir()) if state_dir.exists() else []
    files = [p for p in removed if p.name != "up.lock" and p != state_dir]
    click.echo(f"removed {len(files)} files and folders from {state_dir}" if files else
               f"nothing to clean in {state_dir}")
    if left:
        click.echo(f"  left what is not handlesim's: {', '.join(left)}")
