"""Applying the network model in the transports: sleep the modelled one-way delay before a request goes out and
after its answer comes back, and turn a lost message into a timeout.

A transport (a node's resolver walks, the CLI's client, a load-generator process) owns one `NetPath`: where it sits,
the model, which region every node endpoint is in, and its own seeded random stream. Every request it sends also
names its source (`X-Handlesim-From: <node id or client> <region>`), which is how a node under a partition fault
knows which requests to drop.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from ..core.netmodel import NetworkModel

SOURCE_HEADER = "X-Handlesim-From"
"""Request header naming the sender: `<node id or 'client'> <region>`."""
CLIENT_SOURCE = "client"

T = TypeVar("T")


class MessageLost(TimeoutError):
    """The model dropped the request or its answer; the sender waited out its timeout."""


@dataclass
class NetPath:
    """One transport's view of the network: its own place, the model (None: loopback), and node regions."""

    source: str
    """The sending node's id, or `client`."""
    region: str
    """The region the sender sits in."""
    model: NetworkModel | None
    """None: loopback (no delay, no loss; the source header is still sent for partition faults)."""
    endpoints: dict[tuple[str, int], str] = field(default_factory=dict)
    """(host, port) of every node -> its region; may be filled after creation (nodes bind ports as they start)."""
    timeout: float = 2.0
    """Seconds a sender waits for an answer that was lost (its transport's timeout)."""
    rng: random.Random = field(default_factory=random.Random)

    @classmethod
    def create(cls, source: str, region: str, model: NetworkModel | None, *, timeout: float,
               endpoints: dict[tuple[str, int], str] | None = None, stream: str = "") -> NetPath:
        """A path with its own random stream derived from the model's seed and the sender (deterministic runs)."""
        seed = f"{model.seed if model is not None else 0}:{source}:{stream}"
        region = region or (model.default_region if model is not None else "")
        return cls(source, region, model, endpoints if endpoints is not None else {}, timeout, random.Random(seed))

    @property
    def header(self) -> str:
        return f"{self.source} {self.region}"

    def region_of(self, host: str, port: int) -> str:
        return self.endpoints.get((host, port), "")

    async def exchange(self, host: str, port: int, send: Callable[[], Awaitable[T]]) -> tuple[T, float]:
        """`send()` framed by the modelled delays; returns its result and the modelled seconds (both directions).

        A lost request is never sent; a lost answer is waited for; both raise MessageLost once the timeout has
        passed, as a real silent network would."""
        model = self.model
        if model is None:
            return await send(), 0.0
        started = time.perf_counter()
        target = self.region_of(host, port)
        out = model.sample(self.region, target, self.rng)
        back = model.sample(target, self.region, self.rng)
        if out is None:
            await asyncio.sleep(self.timeout)
            raise MessageLost(f"request to {target or host} lost in the network model")
        await asyncio.sleep(out)
        try:
            result = await send()
        except TimeoutError:
            raise
        except Exception:
            if back is not None:  # a refusal or reset travels back like an answer
                await asyncio.sleep(back)
            raise
        if back is None:
            await asyncio.sleep(max(0.0, self.timeout - (time.perf_counter() - started)))
            raise MessageLost(f"answer from {target or host} lost in the network model")
        await asyncio.sleep(back)
        return result, out + back
