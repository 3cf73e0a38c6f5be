"""A running topology as its state dir records it: topology.json and credentials.json, read and written here only.

`up` (the launcher) writes topology.json once every node listens; every other command (resolve, register, stats,
web, bench, ...) reads it to find the nodes. The file is read and written through frozen dataclasses
(`TopologyState`, `NodeEntry`, ...), never indexed by strings; it carries a format version, and a file of another
version or of the wrong shape is refused with one line naming the file and what is wrong.
"""

from __future__ import annotations

import json
import os
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from ..core.netmodel import NetworkModel
from ..core.prefixes import http_site, with_native_interfaces
from ..core.values import SiteInfo, ValueReference
from ..net.tls import client_context
from .plan import Role
from .statedir import CREDENTIALS_FILE, TOPOLOGY_FILE, is_running, not_running_message

FORMAT_VERSION = 2
"""The version of topology.json this code reads and writes (version 1, before the `version` key, had no `seed`)."""
DEFAULT_STATE_DIR = Path("state")


class StateError(Exception):
    """No running topology at the state dir, or its files are unreadable; the message says which and why."""


@dataclass(frozen=True)
class NodeEntry:
    """One node of a running topology (a `NodePlan` with the address it listens on)."""

    id: str
    """The node id, e.g. `ent-88.101.1001`."""
    role: Role
    """Root, secondary, enterprise or resolver; mirrors and further servers keep their primary's role."""
    prefix: str
    """The prefix the node homes (`0.NA` for roots, empty for resolvers)."""
    parent: str | None
    """The node that delegated this node's prefix (None for roots, resolvers, mirrors and further servers)."""
    industry: str
    """The industry of a secondary and its enterprises (empty otherwise)."""
    region: str
    """Where the node sits in the network model."""
    url: str
    """Where the node serves the Handle REST API, e.g. `http://127.0.0.1:20005`."""
    host: str
    """The address the node listens on."""
    port: int
    """The port the node listens on."""
    identity: str
    """The identity owning the node's prefix, e.g. `300:0.NA/88.101` (its secret is in credentials.json)."""
    identifiers: int
    """Identifiers `up` seeded at the node (enterprises only)."""
    mirror_of: str | None
    """For a mirror server: the primary node it copies."""
    server_of: str | None
    """For a further server of a hash-partitioned site: the site's first server."""
    server_index: int
    """Position of the server in its site's server list (0-based)."""
    site_servers: int
    """Servers in the node's site (1: not partitioned)."""
    worker: int
    """The worker process (or Ray actor) hosting the node (0 when every node runs in `up` itself)."""
    native_port: int | None = None
    """The port of the node's native Handle protocol interface, UDP and TCP alike (None: REST only)."""

    @property
    def is_primary(self) -> bool:
        """Neither a mirror nor a further server of a partitioned site: the node that names its site."""
        return self.mirror_of is None and self.server_of is None


@dataclass(frozen=True)
class RootEntry:
    """A root server, as clients start their walks from it."""

    id: str
    host: str
    port: int
    url: str
    native_port: int | None = None
    """The root's native Handle protocol port, UDP and TCP (None: REST only)."""


@dataclass(frozen=True)
class TlsEntry:
    """The certificate files of a topology started with `up --tls`."""

    ca: Path
    """The CA certificate every client of the topology pins."""


@dataclass(frozen=True)
class FaultsEntry:
    """Fault injection of the topology (`up --faults`)."""

    enabled: bool
    control_url: str | None
    """The control port serving `/_sim/fault` (None when fault injection is off)."""


@dataclass(frozen=True)
class TopologyState:
    """The content of topology.json (the keys are these fields' names)."""

    version: int
    """The format version (`FORMAT_VERSION`)."""
    name: str
    """The topology's name (its config's `name`)."""
    seed: int
    """The config's seed (with the name, what makes two topologies the same)."""
    pid: int
    """The process of `up` (`handlesim down` signals it)."""
    state_dir: Path
    started_at: float
    """Unix time the file was written."""
    boot_seconds: float
    credentials: Path
    """credentials.json: the prefix owners' secrets."""
    tls: TlsEntry | None
    """The certificate files with `up --tls` (None: plain HTTP)."""
    roots: tuple[RootEntry, ...]
    examples: tuple[str, ...]
    """A few seeded identifiers to try."""
    nodes: tuple[NodeEntry, ...]
    net: str
    """`model` when the nodes' own hops go through the network model, else `loopback`."""
    network: dict[str, Any] | None
    """The network model as data (`NetworkModel.to_dict`), when the topology has one."""
    faults: FaultsEntry
    metrics_url: str | None
    """The `up` process's Prometheus port (None: no port, or the nodes run in workers: see `metrics_urls`)."""
    report_interval: float | None
    """Seconds between upward reports (None: the nodes run in workers)."""
    engine: str
    """Where the nodes run: `inline` (in `up`), `process` (worker processes) or `ray` (Ray actors)."""
    workers: int
    metrics_urls: tuple[str, ...]
    """Every worker's Prometheus port (empty when the nodes run in `up`)."""

    @property
    def path(self) -> Path:
        return self.state_dir / TOPOLOGY_FILE

    @property
    def root_sites(self) -> list[SiteInfo]:
        """The roots as the root service `0.NA/0.NA` lists them: HTTP(S), and TCP and UDP when they speak the
        native protocol."""
        sites = []
        for root in self.roots:
            site = http_site(root.id, [(root.host, root.port)], multi_primary=True,
                             protocol="HTTPS" if root.url.startswith("https:") else "HTTP")
            if root.native_port:
                site = with_native_interfaces(site, [(root.native_port, root.native_port)])
            sites.append(site)
        return sites

    @property
    def network_model(self) -> NetworkModel | None:
        return NetworkModel.from_dict(self.network) if self.network else None

    @property
    def control_url(self) -> str | None:
        """Where to POST faults (None: fault injection is off)."""
        return self.faults.control_url if self.faults.enabled else None

    @property
    def metrics_endpoints(self) -> list[str]:
        """Every Prometheus port of the topology: each worker's, or the `up` process's."""
        return list(self.metrics_urls) or ([self.metrics_url] if self.metrics_url else [])

    @property
    def endpoints(self) -> dict[tuple[str, int], str]:
        """(host, port) -> region of every node, REST and native ports (where the network model sees a request
        go)."""
        ends = {(n.host, n.port): n.region for n in self.nodes}
        ends.update({(n.host, n.native_port): n.region for n in self.nodes if n.native_port})
        return ends

    def with_role(self, role: Role) -> list[NodeEntry]:
        """The nodes of a role, mirrors and further servers included."""
        return [n for n in self.nodes if n.role == role]

    def node(self, node_id: str) -> NodeEntry:
        for node in self.nodes:
            if node.id == node_id:
                return node
        raise StateError(f"no node {node_id!r} in {self.path}")

    def ssl_context(self) -> ssl.SSLContext | None:
        """For a topology started with --tls: a client context pinning its CA (None for plain HTTP)."""
        if self.tls is None:
            return None
        try:
            return client_context(self.tls.ca)
        except (OSError, ssl.SSLError) as exc:
            raise StateError(f"cannot load the topology's CA certificate {self.tls.ca}: {exc}") from None

    def credentials_by_identity(self) -> dict[str, str]:
        """identity -> secret of every prefix owner, from credentials.json."""
        try:
            data = json.loads(self.credentials.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise StateError(f"cannot read credentials {self.credentials}: {exc}") from None
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            raise StateError(f"cannot read credentials {self.credentials}: not an object of identity -> secret")
        return {str(k): v for k, v in data.items()}

    def credentials_for(self, identity: ValueReference) -> tuple[ValueReference, str]:
        secret = self.credentials_by_identity().get(identity.to_text())
        if secret is None:
            raise StateError(f"no credentials for {identity.to_text()} in {self.credentials}")
        return identity, secret

    def to_data(self) -> dict[str, Any]:
        """The file's content as plain data (`handlesim topology --json`)."""
        data: dict[str, Any] = json.loads(_encode(self))
        return data


def write_state(state: TopologyState) -> None:
    """Write topology.json whole, then rename it into place: a reader never sees half a file."""
    _replace_atomically(state.path, msgspec.json.format(_encode(state), indent=1))


def write_credentials(state_dir: Path, secrets: dict[str, str]) -> None:
    """credentials.json: identity -> secret, readable by the owner only."""
    path = state_dir / CREDENTIALS_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(json.dumps(secrets, indent=1, sort_keys=True))
    os.chmod(path, 0o600)


def load_state(state_dir: Path) -> TopologyState:
    """The topology running from `state_dir`; StateError when there is none (no `up` holds the state dir's lock,
    whatever files a killed one left) or its file cannot be used."""
    path = state_dir / TOPOLOGY_FILE
    if not is_running(state_dir):
        raise StateError(not_running_message(state_dir))
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise StateError(f"the topology in {state_dir} is still starting (no {TOPOLOGY_FILE} yet); wait for the "
                         "ready line of `handlesim up`") from None
    except OSError as exc:
        raise StateError(f"cannot read {path}: {exc.strerror}") from None
    return parse_state(raw, path)


def parse_state(raw: bytes, source: Path) -> TopologyState:
    """topology.json's bytes as a `TopologyState`; `source` names the file in the one-line error."""
    try:
        data = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise StateError(f"cannot use {source}: not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise StateError(f"cannot use {source}: expected a JSON object, not {type(data).__name__}")
    version = data.get("version", 1)
    if version != FORMAT_VERSION:
        age = "an older" if isinstance(version, int) and version < FORMAT_VERSION else "another"
        raise StateError(f"cannot use {source}: it was written by {age} handlesim (format version {version!r}; this "
                         f"one reads {FORMAT_VERSION}); stop that topology and start it again with this version")
    try:
        state = msgspec.convert(data, TopologyState, dec_hook=_decode_path)
        state.network_model  # noqa: B018 - the model must rebuild, or clients using it would fail later
    except msgspec.ValidationError as exc:
        raise StateError(f"cannot use {source}: {_where(exc)}") from None
    except (KeyError, TypeError, ValueError) as exc:
        raise StateError(f"cannot use {source}: network: not a network model ({type(exc).__name__}: {exc})") from None
    return state


def _where(exc: msgspec.ValidationError) -> str:
    """msgspec says `Expected int, got str - at $.nodes[0].port`: put the key first, as config errors do."""
    message, _, where = str(exc).partition(" - at `$")
    return f"{where.rstrip('`').lstrip('.')}: {message}" if where else message


def _encode(state: TopologyState) -> bytes:
    return msgspec.json.encode(state, enc_hook=_encode_path)


def _encode_path(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    raise NotImplementedError(f"cannot write {type(value).__name__} to topology.json")


def _decode_path(kind: type, value: Any) -> Any:
    if kind is Path and isinstance(value, str):
        return Path(value)
    raise NotImplementedError(f"expected a path (a string), not {type(value).__name__}")


def _replace_atomically(path: Path, data: bytes) -> None:
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.write_bytes(data)
    os.replace(partial, path)
