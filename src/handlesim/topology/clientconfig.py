"""A ready Handle.Net client configuration directory for a running topology: `<state-dir>/handle-client/`.

The Handle.Net client library (9.x: `hdl-qresolver`, `hdl-admintool`, and the SDKs built on it) takes its
configuration directory from the Java system property `net.handle.configDir` (default `~/.handle`). There it reads
`bootstrap_handles`: JSON `{"lastUpdate": ms, "handles": {"0.NA/0.NA": record, "0.0/0.0": record}}`, each record
`{"handle", "values"}` with values in the REST JSON shape; the HS_SITE values of `0.NA/0.NA` become its global
sites, and `0.0/0.0` must be there too (its HS_PUBKEY values would be the root keys). And `config.dct`, where
`auto_update_root_info = no` keeps it from replacing our roots by re-resolving those handles with certified
requests, which our unsigned roots cannot satisfy. Pointed there, a client takes our roots as the only Global Handle
Registry and walks root -> secondary -> enterprise natively.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from ..core.handle import NA_PREFIX
from ..core.prefixes import prefix_record, trust_root_record
from ..core.storage import HandleRecord
from ..core.values import SiteInfo
from ..wire.mapping import values_to_list
from .state import TopologyState
from .statedir import CLIENT_DIR

BOOTSTRAP_FILE = "bootstrap_handles"
CONFIG_FILE = "config.dct"
README_FILE = "README.txt"
CONFIG_DCT = '{\n  "auto_update_root_info" = "no"\n}\n'
"""StreamTable syntax, as Handle.Net's own config.dct files are written."""


def trust_root_description(topology_name: str) -> str:
    """The DESC value of the roots' `0.0/0.0` (the same in the served record and in the bootstrap file)."""
    return (f"trust root of the simulated topology {topology_name!r}: its roots sign nothing, so it lists no root "
            "keys (HS_PUBKEY)")


def client_dir(state_dir: Path) -> Path:
    return state_dir / CLIENT_DIR


def bootstrap_handles(root_sites: list[SiteInfo], topology_name: str, *, now: float | None = None) -> dict[str, Any]:
    """The content of `bootstrap_handles` for roots `root_sites` (the public values the roots serve)."""
    records = (prefix_record(NA_PREFIX, sites=root_sites), trust_root_record(trust_root_description(topology_name)))
    return {"lastUpdate": int((time.time() if now is None else now) * 1000),
            "handles": {record.handle.text: _record_json(record) for record in records}}


def _record_json(record: HandleRecord) -> dict[str, Any]:
    return {"handle": record.handle.text,
            "values": values_to_list(v for v in record.values if v.permissions.public_read)}


def write_client_config(state: TopologyState) -> Path:
    """Write `<state-dir>/handle-client/` for the running topology `state`; returns the directory."""
    directory = client_dir(state.state_dir)
    directory.mkdir(exist_ok=True)
    content = bootstrap_handles(state.root_sites, state.name)
    _replace(directory / BOOTSTRAP_FILE, json.dumps(content, indent=1, ensure_ascii=False) + "\n")
    _replace(directory / CONFIG_FILE, CONFIG_DCT)
    _replace(directory / README_FILE, usage(directory, state.examples[0] if state.examples else "88.101.1001/X"))
    return directory


def usage(directory: Path, example: str) -> str:
    """How to point a Handle.Net client at the directory (also printed by `up`'s docs)."""
    return (f"Handle.Net client configuration for the handlesim topology whose roots are in {BOOTSTRAP_FILE}.\n"
            "The client library reads it when the Java system property net.handle.configDir names it:\n\n"
            f"  JAVA_TOOL_OPTIONS=-Dnet.handle.configDir={directory.resolve()} hdl-qresolver {example}\n\n"
            "(the hdl-* scripts pass no options to java, but every JVM reads JAVA_TOOL_OPTIONS). Written by\n"
            "`handlesim up`; its ports change when the topology is started with ephemeral ports.\n")


def _replace(path: Path, text: str) -> None:
    """Write whole, then rename into place (a client never reads half a file)."""
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)
