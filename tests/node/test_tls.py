"""`up --tls`: every REST port serves HTTPS with a generated certificate; clients pin the generated CA."""

from __future__ import annotations

import asyncio
import base64
import ssl
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from handlesim.core.handle import Handle
from handlesim.net.client import HandleClient
from handlesim.net.tls import client_context
from handlesim.topology.config import load_config
from handlesim.topology.running import Topology
from handlesim.topology.state import load_state

from ..support.paths import CONFIGS
from ..support.processes import handlesim, up_process
from ..support.topologies import running
from .test_authz_matrix import node_by_prefix


@pytest.fixture
async def small_tls(tmp_path: Path) -> AsyncIterator[Topology]:
    config = load_config(CONFIGS / "small.toml").with_overrides(base_port=0)
    async with running(config, tmp_path / "state", tls=True) as topology:
        yield topology


async def test_nodes_serve_https_and_clients_pin_the_generated_ca(small_tls: Topology) -> None:
    assert small_tls.tls is not None
    assert stat.S_IMODE(small_tls.tls.key.stat().st_mode) == 0o600
    state = load_state(small_tls.state_dir)
    assert state.tls is not None and state.tls.ca == small_tls.tls.ca
    assert all(n.url.startswith("https://") for n in state.nodes)
    node = node_by_prefix(small_tls, "88.101.1001")
    pinned = client_context(small_tls.tls.ca)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=pinned)) as http:
        async with http.get(f"{node.url}/api/handles/88.101.1001/PUMP-000001") as reply:
            assert reply.status == 200 and (await reply.json())["responseCode"] == 1
    async with aiohttp.ClientSession() as http:  # the system trust store does not know the topology's CA
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await http.get(f"{node.url}/api/handles/88.101.1001/PUMP-000001")

    # the CLI's iterative walk from the roots, over HTTPS, with the CA from topology.json
    async with HandleClient(ssl_context=state.ssl_context()) as client:
        resolution = await client.resolve(Handle.from_text("88.102.2001/FRDG-000001"), state.root_sites)
    assert resolution.result is not None and resolution.result.ok and resolution.hops >= 3


async def test_foreign_identity_is_verified_over_tls_and_pyhandle_reads_with_the_ca(small_tls: Topology) -> None:
    node = node_by_prefix(small_tls, "88.101.1001")
    secondary = node_by_prefix(small_tls, "88.101")
    assert small_tls.tls is not None
    token = base64.b64encode(f"300%3A0.NA/88.101:{secondary.plan.secret}".encode()).decode()
    body = [{"index": 1, "type": "URL", "data": "https://example.cn/tls"}]
    context = ssl.create_default_context(cafile=str(small_tls.tls.ca))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as http:
        async with http.put(f"{node.url}/api/handles/88.101.1001/TLS-1", json=body,
                            headers={"Authorization": f"Basic {token}"}) as reply:
            assert reply.status == 200 and (await reply.json())["responseCode"] == 1

    pyhandle_client = pytest.importorskip("pyhandle.client.resthandleclient")
    ca = str(small_tls.tls.ca)

    def read() -> object:
        client = pyhandle_client.RESTHandleClient.instantiate_with_username_and_password(
            node.url, "300:0.NA/88.101.1001", node.plan.secret, HTTPS_verify=ca)
        return client.get_value_from_handle("88.101.1001/TLS-1", "URL")

    assert await asyncio.to_thread(read) == "https://example.cn/tls"


def test_cli_up_tls_then_resolve_register_and_refuse(tmp_path: Path) -> None:
    import json
    import subprocess

    state = tmp_path / "state"
    with up_process("--config", "configs/small.toml", "--base-port", "0", "--store", "memory", "--tls",
                    "--state-dir", str(state)):

        def run(*args: str) -> subprocess.CompletedProcess[str]:
            return handlesim(*args, "--state-dir", str(state))

        data = json.loads((state / "topology.json").read_text())
        assert data["tls"]["ca"].endswith("tls/ca.pem") and data["roots"][0]["url"].startswith("https://")
        resolved = run("resolve", "88.102.2001/FRDG-000001", "--json")
        assert resolved.returncode == 0 and json.loads(resolved.stdout)["responseCode"] == 1
        by_secondary = run("register", "88.101.1001/CLI-TLS", "--value", "URL=https://example.cn/t",
                           "--as", "300:0.NA/88.101")
        assert by_secondary.returncode == 0, by_secondary.stderr
        refused = run("delete", "88.101.1001/CLI-TLS", "--as", "300:0.NA/88.102", "--json")
        assert json.loads(refused.stdout)["responseCode"] == 401
