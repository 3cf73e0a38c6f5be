"""The `handlesim` command line: builds configurations from options and calls the layers below.

`app.py` holds the command group and what commands share; each other module adds the commands of one area.
Nothing outside this package imports it.
"""

from __future__ import annotations

from . import bench, demo, fault, keys, lifecycle, lookup, network, stats, up, write  # noqa: F401 - importing a module registers its commands
from .app import main

__all__ = ["main"]
