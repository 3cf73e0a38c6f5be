"""The transport seam: how a resolution's steps reach nodes, and the one loop that drives a resolution over it.

A transport turns one `Step` (a server of a site, and the core Request for it) into an `Exchange`: the node's answer,
or why there was none, plus the seconds a network model added. Every driver is the same `drive` loop over some
transport: the aiohttp client (net/client.py), the keep-alive pool (net/keepalive.py), in-memory services in tests,
and later the native Handle protocol over UDP/TCP. `drive` awaits but imports nothing of asyncio: it runs under any
event loop, a virtual-time one included, and the core stays sans-I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from .messages import Response
from .resolution import Resolution, Step


@dataclass(frozen=True, slots=True)
class Exchange:
    """What came of sending one step: the response, or a failure in words (refused, timed out, unreadable)."""

    response: Response | None
    failure: str = ""
    """Why no response came (shown in the trace as `no answer: <failure>`); empty when there is a response."""
    modelled: float = 0.0
    """Seconds the network model added to this exchange (both directions; 0 on loopback and for failures)."""

    @classmethod
    def answered(cls, response: Response, modelled: float = 0.0) -> Exchange:
        return cls(response, "", modelled)

    @classmethod
    def failed(cls, reason: str) -> Exchange:
        return cls(None, reason)


class Transport(Protocol):
    """Anything that can carry a resolution step to its server and bring back what happened."""

    async def exchange(self, step: Step) -> Exchange:
        """Send `step.request` to `step.server`; never raises for a failure of the server or the network."""
        ...


@dataclass(frozen=True, slots=True)
class Clock:
    """The two clocks a driver reads, injected so tests and simulations can run on virtual time."""

    now: Callable[[], float]
    """Wall-clock seconds: cache expiry and server health are kept in these."""
    timer: Callable[[], float]
    """Monotonic seconds with sub-millisecond resolution: hop durations are measured with it."""

    @classmethod
    def virtual(cls, now: Callable[[], float]) -> Clock:
        """One source for both (a fake clock in tests, a simulator's virtual time)."""
        return cls(now, now)


async def drive(resolution: Resolution, transport: Transport, clock: Clock) -> Response:
    """Walk `resolution` to its end over `transport`: send each step, hand back the answer or the failure."""
    while (step := resolution.next_request(clock.now())) is not None:
        started = clock.timer()
        exchange = await transport.exchange(step)
        took = clock.timer() - started
        if exchange.response is None:
            resolution.failed(exchange.failure, took, clock.now(), modelled=exchange.modelled)
        else:
            resolution.received(exchange.response, took, clock.now(), modelled=exchange.modelled)
    assert resolution.result is not None  # next_request returns None only once the result is set
    return resolution.result
