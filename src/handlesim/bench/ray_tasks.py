"""Generator processes as Ray tasks: the same `run_worker` as the local process pool, placed by Ray (spread over
the cluster's machines), so a topology on a Ray cluster can be loaded from more machines than the one running
`bench`. Needs `handlesim[ray]`."""

from __future__ import annotations

from typing import Any

import ray

from .generator import WorkerSpec, run_worker

LOCAL = "local"
"""`--ray-address local`: start a Ray instance on this machine for the run."""


def run_on_ray(specs: list[WorkerSpec], address: str) -> list[dict[str, Any]]:
    """Run one generator task per spec and return their results (joins Ray once; later runs reuse it)."""
    if not ray.is_initialized():
        ray.init(address=None if address == LOCAL else address, include_dashboard=False, log_to_driver=False)
    # no CPU reservation: the topology's actors may hold every CPU of the cluster, and a generator waiting for one
    # would never start; SPREAD puts the generators on different machines where there are several
    task = ray.remote(run_worker).options(num_cpus=0, scheduling_strategy="SPREAD")
    parts: list[dict[str, Any]] = ray.get([task.remote(spec) for spec in specs])
    return parts
