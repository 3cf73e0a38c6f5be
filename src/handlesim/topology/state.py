"""Finding a running topology from its state dir: topology.json (nodes, roots) and credentials.json."""

from __future__ import annotations

import json
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.prefixes import http_site
from ..core.values import SiteInfo, ValueReference
from ..net.tls import client_context

DEFAULT_STATE_DIR = Path("state")


class StateError(Exception):
    """No running topology at the state dir, or its files are unreadable."""


@dataclass(frozen=True)
class TopologyState:
    path: Path
    data: dict[str, Any]

    @property
    def nodes(self) -> list[dict[str, Any]]:
        return list(self.data.get("nodes", []))

    @property
    def root_sites(self) -> list[SiteInfo]:
        return [http_site(r["id"], [(r["host"], int(r["port"]))], multi_primary=True,
                          protocol="HTTPS" if str(r.get("url", "")).startswith("https:") else "HTTP")
                for r in self.data["roots"]]

    def ssl_context(self) -> ssl.SSLContext | None:
        """For a topology started with --tls: a client context pinning its CA (None for plain HTTP)."""
        tls = self.data.get("tls")
        if not tls:
            return None
        try:
            return client_context(tls["ca"])
        except (OSError, ssl.SSLError, KeyError) as exc:
            raise StateError(f"cannot load the topology's CA certificate {tls.get('ca')}: {exc}") from None

    def node(self, node_id: str) -> dict[str, Any]:
        for node in self.nodes:
            if node["id"] == node_id:
                return node
        raise StateError(f"no node {node_id!r} in {self.path}")

    def credentials(self) -> dict[str, str]:
        path = Path(self.data["credentials"])
        try:
            return dict(json.loads(path.read_text()))
        except (OSError, ValueError) as exc:
            raise StateError(f"cannot read credentials {path}: {exc}") from None

    def credentials_for(self, identity: ValueReference) -> tuple[ValueReference, str]:
        secrets = self.credentials()
        secret = secrets.get(identity.to_text())
        if secret is None:
            raise StateError(f"no credentials for {identity.to_text()} in {self.data['credentials']}")
        return identity, secret


def load_state(state_dir: Path) -> TopologyState:
    path = state_dir / "topology.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StateError(f"no running topology in {state_dir} (start one with `handlesim up --state-dir "
                         f"{state_dir}`)") from None
    except (OSError, ValueError) as exc:
        raise StateError(f"cannot read {path}: {exc}") from None
    return TopologyState(path, data)
