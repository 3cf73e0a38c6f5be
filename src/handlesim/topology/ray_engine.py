"""The Ray engine: each shard of the topology is a Ray async actor hosting its nodes as aiohttp services.

Ray does placement (actors spread over the cluster's machines, one core each), lifecycle (start, kill) and
discovery (the supervisor learns each actor's addresses through the `start` phase). Handle traffic never goes
through Ray: nodes talk plain HTTP to each other's addresses, as in every other engine. Needs `handlesim[ray]`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from typing import Any

import ray
from ray.exceptions import RayError

from .running import LaunchError
from .worker import ShardHost, ShardSpec

PING_INTERVAL_S = 1.0


class ShardActor:
    """A Ray actor around `ShardHost`: the same phases, called as remote methods."""

    def __init__(self, spec: ShardSpec) -> None:
        if spec.bind_host == RayEngine.NODE_IP:
            spec = dataclasses.replace(spec, bind_host=ray.util.get_node_ip_address())
        self.host = ShardHost(spec)

    async def call(self, method: str, *args: Any) -> Any:
        return await getattr(self.host, method)(*args)

    async def ping(self) -> int:
        return await self.host.ping()

    async def stop(self) -> None:
        await self.host.stop()


class RayEngine:
    """Starts shards as Ray actors on a local Ray instance or the cluster at `address`."""

    name = "ray"
    NODE_IP = "<ray-node-ip>"
    """`bind_host` value meaning: bind the IP address of the machine Ray placed the actor on."""

    def __init__(self, address: str | None = None, **init_options: Any) -> None:
        self._owns_ray = not ray.is_initialized()
        if self._owns_ray:
            options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            options.update(init_options)
            ray.init(address=address, **options)
        self._actor = ray.remote(ShardActor)
        self._count = 0

    def cpu_count(self) -> int:
        return max(int(ray.cluster_resources().get("CPU", 1)), 1)

    def start(self, spec: ShardSpec) -> RayShard:
        cpus = min(1.0, self.cpu_count() / spec.shard_count)  # one core each, shared when there are more shards
        actor = self._actor.options(num_cpus=cpus, scheduling_strategy="SPREAD",
                                    name=f"handlesim-shard-{spec.number}-{self._count}").remote(spec)
        self._count += 1
        return RayShard(spec, actor)

    def shutdown(self) -> None:
        if self._owns_ray and ray.is_initialized():
            ray.shutdown()


class RayShard:
    """One actor as the supervisor sees it (`supervisor.Shard`)."""

    def __init__(self, spec: ShardSpec, actor: Any) -> None:
        self.spec = spec
        self.actor = actor

    async def call(self, method: str, *args: Any) -> Any:
        try:
            return await self.actor.call.remote(method, *args)
        except RayError as exc:
            cause = getattr(exc, "cause", None)  # an exception raised in the actor arrives wrapped
            message = str(cause) if isinstance(cause, LaunchError) else f"{type(exc).__name__}: {exc}"
            raise LaunchError(f"worker {self.spec.number} (Ray actor) failed during {method}: {message}") from None

    async def exited(self) -> str:
        while True:
            try:
                await self.actor.ping.remote()
            except RayError as exc:
                return f"(Ray actor) is gone: {type(exc).__name__}"
            await asyncio.sleep(PING_INTERVAL_S)

    async def stop(self) -> None:
        with contextlib.suppress(RayError):
            await asyncio.wait_for(self.actor.stop.remote(), 10.0)
        with contextlib.suppress(RayError):
            ray.kill(self.actor)
