"""Shared fixtures: the small topology launched in-process on ephemeral loopback ports."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import settings

from handlesim.topology.config import load_config
from handlesim.topology.running import Topology

from .support.paths import CONFIGS
from .support.topologies import running

# No per-example deadline: an example's run time is not what these tests check, and a loaded CI machine would turn it
# into flakes (performance is measured by the benchmarks, never asserted by timing in tests).
settings.register_profile("suite", deadline=None)
settings.register_profile("fast", deadline=None, max_examples=20)  # `scripts/test --fast`: a quick look
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "suite"))


@pytest.fixture
async def small(tmp_path: Path) -> AsyncIterator[Topology]:
    """configs/small.toml with SQLite stores under tmp_path; stopped after the test."""
    async with running(load_config(CONFIGS / "small.toml").with_overrides(base_port=0), tmp_path / "state",
                       store_kind="sqlite") as topology:
        yield topology
