"""`handlesim up` as a real process for CLI-level tests: start it, wait for its ready line, stop it with SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from .paths import ROOT

HANDLESIM = [sys.executable, "-m", "handlesim.cli"]


def handlesim(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run one CLI command from the repository root."""
    return subprocess.run([*HANDLESIM, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT)


@dataclass
class UpProcess:
    proc: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    """What `up` printed on stdout up to and including its ready line."""

    def printed(self, prefix: str) -> str | None:
        """The first line `up` printed that starts with `prefix`."""
        return next((line for line in self.lines if line.startswith(prefix)), None)


@contextmanager
def up_process(*args: str, ready_within: float = 60, stop_within: float = 20) -> Iterator[UpProcess]:
    """`handlesim up ARGS` until its `ready:` line; SIGTERM (then SIGKILL if it hangs) on the way out."""
    errors = tempfile.TemporaryFile("w+")  # a file, not a pipe: nobody reads stderr while up runs, and a full pipe
    proc = subprocess.Popen([*HANDLESIM, "up", *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=errors, text=True)
    running = UpProcess(proc)
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + ready_within
        for line in proc.stdout:
            running.lines.append(line)
            if line.startswith("ready:"):
                break
            assert time.monotonic() < deadline, f"no ready line in {ready_within:g} s"
        else:
            errors.seek(0)
            raise AssertionError(f"up exited before it was ready: {errors.read()}")
        yield running
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=stop_within)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
        errors.close()
