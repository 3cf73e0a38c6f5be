"""A real third-party peer: pyhandle (EUDAT), unchanged from PyPI, against an enterprise node over HTTP."""

from __future__ import annotations

import asyncio

import pytest

from handlesim.core.handle import Handle
from handlesim.net import rest
from handlesim.topology.running import RunningNode, Topology

pyhandle_client = pytest.importorskip("pyhandle.client.resthandleclient")
handleexceptions = pytest.importorskip("pyhandle.handleexceptions")
RESTHandleClient = pyhandle_client.RESTHandleClient



def enterprise(topology: Topology, prefix: str = "88.101.1001") -> RunningNode:
    return next(n for n in topology.nodes.values() if n.plan.prefix == prefix)


def client_for(node: RunningNode, user: str, secret: str) -> object:
    return RESTHandleClient.instantiate_with_username_and_password(node.url, user, secret, HTTPS_verify=False)


def stored_urls(node: RunningNode, text: str) -> list[object]:
    record = node.store.get(Handle.from_text(text).key)
    return [] if record is None else [v.data for v in record.values if v.type == "URL"]


async def test_pyhandle_full_workflow(small: Topology) -> None:
    node = enterprise(small)
    user = "300:0.NA/88.101.1001"

    def workflow() -> dict[str, object]:
        client = client_for(node, user, node.plan.secret)
        seen: dict[str, object] = {}
        seen["registered"] = client.register_handle("88.101.1001/PYH-1", "https://example.cn/pyh", overwrite=False)
        try:
            client.register_handle("88.101.1001/PYH-1", "https://example.cn/again", overwrite=False)
        except handleexceptions.HandleAlreadyExistsException:
            seen["refused"] = True
        seen["overwritten"] = client.register_handle("88.101.1001/PYH-1", "https://example.cn/over", overwrite=True)
        seen["url"] = client.get_value_from_handle("88.101.1001/PYH-1", "URL")
        client.modify_handle_value("88.101.1001/PYH-1", URL="https://example.cn/changed", EMAIL="a@example.cn")
        seen["modified"] = client.retrieve_handle_record("88.101.1001/PYH-1")
        client.delete_handle_value("88.101.1001/PYH-1", "EMAIL")
        seen["after_value_delete"] = client.retrieve_handle_record("88.101.1001/PYH-1")
        seen["generated"] = client.generate_and_register_handle("88.101.1001", "https://example.cn/gen")
        seen["search"] = client.search_handle(URL="https://example.cn/gen")
        seen["wildcard"] = client.search_handle(URL="*example.cn/ch*")
        client.delete_handle("88.101.1001/PYH-1")
        seen["after_delete"] = client.retrieve_handle_record("88.101.1001/PYH-1")
        return seen

    seen = await asyncio.to_thread(workflow)
    assert seen["registered"] == "88.101.1001/PYH-1" and seen["refused"] is True
    assert seen["overwritten"] == "88.101.1001/PYH-1" and seen["url"] == "https://example.cn/over"
    modified = seen["modified"]
    assert isinstance(modified, dict) and modified["URL"] == "https://example.cn/changed"
    assert modified["EMAIL"] == "a@example.cn"
    after = seen["after_value_delete"]
    assert isinstance(after, dict) and "EMAIL" not in after
    generated = str(seen["generated"])
    assert generated.startswith("88.101.1001/") and stored_urls(node, generated) == ["https://example.cn/gen"]
    assert seen["search"] == [generated] and seen["wildcard"] == ["88.101.1001/PYH-1"]
    assert seen["after_delete"] is None and stored_urls(node, "88.101.1001/PYH-1") == []


async def test_pyhandle_wrong_secret_and_foreign_admin_change_nothing(small: Topology) -> None:
    node = enterprise(small)
    other = enterprise(small, "88.101.1002")
    before = len(node.store)

    def attempt(user: str, secret: str) -> str:
        client = client_for(node, user, secret)
        try:
            client.register_handle("88.101.1001/EVIL", "https://evil.example.cn", overwrite=True)
        except handleexceptions.GenericHandleError as exc:  # pyhandle maps only 401/402 to its auth error
            return str(exc)
        return "accepted"

    wrong = await asyncio.to_thread(attempt, "300:0.NA/88.101.1001", "not-the-secret")
    assert "HTTP Status Code: 403" in wrong and '"responseCode":403' in wrong
    foreign = await asyncio.to_thread(attempt, "300:0.NA/88.101.1002", other.plan.secret)
    assert "HTTP Status Code: 403" in foreign and '"responseCode":401' in foreign  # verified at its holder
    assert len(node.store) == before and stored_urls(node, "88.101.1001/EVIL") == []


async def test_pyhandle_secondary_admin_acts_at_its_enterprise(small: Topology) -> None:
    """The secondary's admin (key held by the secondary and the roots) registers and deletes at an enterprise node:
    the enterprise has the key's holder verify the secret (POST /api/verify) and its admin group names the secondary."""
    node = enterprise(small)
    secondary = next(n for n in small.nodes.values() if n.plan.prefix == "88.101")

    def workflow() -> tuple[object, object, object]:
        client = client_for(node, "300:0.NA/88.101", secondary.plan.secret)
        registered = client.register_handle("88.101.1001/BY-SECONDARY", "https://example.cn/sec", overwrite=False)
        url = client.get_value_from_handle("88.101.1001/BY-SECONDARY", "URL")
        client.delete_handle("88.101.1001/BY-SECONDARY")
        return registered, url, client.retrieve_handle_record("88.101.1001/BY-SECONDARY")

    registered, url, after = await asyncio.to_thread(workflow)
    assert registered == "88.101.1001/BY-SECONDARY" and url == "https://example.cn/sec" and after is None
    assert stored_urls(node, "88.101.1001/BY-SECONDARY") == []


PYHANDLE_SUFFIXES = {"PYH sp ace": True, "PYH-中文": True, "PYH-a%b": True, "PYH-a;b=c": True,
                     "PYH-a%2Fb": False, "dot/../PYH-DOT": False, "%2E/PYH-ESC": False}
"""Suffix -> does pyhandle address exactly that handle? It pastes the handle into the URL unencoded; requests then
quotes what is not valid in a URL (exact), but keeps `%XX` escapes (read as escapes) and resolves dot segments away.
Our own clients encode such suffixes (rest.path_for); pyhandle users must encode them themselves."""


@pytest.mark.parametrize(("suffix", "exact"), PYHANDLE_SUFFIXES.items())
async def test_the_node_reads_the_handle_the_url_pyhandle_sends_names(small: Topology, suffix: str,
                                                                      exact: bool) -> None:
    import requests  # pyhandle's HTTP library

    node = enterprise(small)
    handle = f"88.101.1001/{suffix}"
    sent = requests.Request("PUT", f"{node.url}/api/handles/{handle}").prepare().path_url
    named = rest.handle_from_raw_path(sent).text
    assert (named == handle) is exact, (sent, named)

    def register_and_read() -> object:
        client = client_for(node, "300:0.NA/88.101.1001", node.plan.secret)
        client.register_handle(handle, f"https://example.cn/{suffix}", overwrite=True)
        return client.get_value_from_handle(handle, "URL") if exact else None

    read = await asyncio.to_thread(register_and_read)
    assert stored_urls(node, named) == [f"https://example.cn/{suffix}"], (sent, named)
    assert read == (f"https://example.cn/{suffix}" if exact else None)
