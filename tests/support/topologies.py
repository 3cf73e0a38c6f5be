"""Launching a topology in a test: from a config (a parsed one, or a dict in the TOML's shape), stopped on the way
out whatever the test did."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from handlesim.topology.config import TopologyConfig, parse_config
from handlesim.topology.plan import build_plan
from handlesim.topology.runner import launch
from handlesim.topology.running import Topology


@asynccontextmanager
async def running(config: TopologyConfig | Mapping[str, Any], state_dir: Path, *, store_kind: str = "memory",
                  **options: Any) -> AsyncIterator[Topology]:
    """`config` launched with its state in `state_dir` (`options` go to `launch`: tls, net, metrics_port, ...)."""
    if not isinstance(config, TopologyConfig):
        config = parse_config(dict(config), "test.toml")
    topology = await launch(build_plan(config), state_dir, store_kind=store_kind, **options)
    try:
        if topology.encoding is not None:  # tests see a settled topology: every answer encoded ahead by now
            await asyncio.wait_for(asyncio.shield(topology.encoding), 60)
        yield topology
    finally:
        await topology.stop()
