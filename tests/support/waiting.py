"""One bounded wait for every test tier: poll a condition until it holds or a deadline passes (never forever)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


async def eventually(check: Callable[[], object | Awaitable[object]], within: float = 10.0, *,
                     every: float = 0.02, what: str = "the condition") -> None:
    """Wait until `check()` is truthy (it may be a coroutine function); fail the test after `within` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        outcome = check()
        if isinstance(outcome, Awaitable):
            outcome = await outcome
        if outcome:
            return
        if loop.time() >= deadline:
            raise AssertionError(f"{what} did not hold within {within:g} s")
        await asyncio.sleep(every)
