"""The request path of a handle: every client builds it with rest.path_for, the server reads it back with
rest.handle_from_raw_path, and nothing in between (yarl, proxies, HTTP libraries) may turn it into another handle."""

from __future__ import annotations

import pytest
from hypothesis import given
from yarl import URL

from handlesim.core.errors import InvalidHandle
from handlesim.core.handle import Handle
from handlesim.net import rest

from ..support.strategies import addressing_suffixes


@pytest.mark.parametrize(("text", "path"), [
    ("88.101.1001/PUMP-000001", "/api/handles/88.101.1001/PUMP-000001"),
    ("0.NA/88.101.1001", "/api/handles/0.NA/88.101.1001"),
    ("88.101.1001/a/../PUMP-000001", "/api/handles/88.101.1001/a/%2E%2E/PUMP-000001"),
    ("88.101.1001/./PUMP-000001", "/api/handles/88.101.1001/%2E/PUMP-000001"),
    ("88.101.1001/..", "/api/handles/88.101.1001/%2E%2E"),
    ("88.101.1001/a.b/...", "/api/handles/88.101.1001/a.b/..."),  # only whole `.` / `..` segments are special
    ("88.101.1001/a%2Fb", "/api/handles/88.101.1001/a%252Fb"),
    ("88.101.1001/a b?c#d", "/api/handles/88.101.1001/a%20b%3Fc%23d"),
    ("88.101.1001/中", "/api/handles/88.101.1001/%E4%B8%AD"),
])
def test_path_for_encodes_what_would_address_another_handle(text: str, path: str) -> None:
    handle = Handle.from_text(text)
    assert rest.path_for(handle) == path
    assert rest.handle_from_raw_path(path).text == text


@pytest.mark.parametrize(("raw", "text"), [
    ("/api/handles/88.101.1001/a%252Fb", "88.101.1001/a%2Fb"),  # decoded once: a literal %2F stays %2F
    ("/api/handles/88.101.1001/a%2Fb", "88.101.1001/a/b"),  # an escaped slash is a slash
    ("/api/handles/88.101.1001/a/../X", "88.101.1001/a/../X"),  # dot segments as sent are part of the handle
    ("/api/handles/88.101.1001/%2e%2E/X", "88.101.1001/../X"),
    ("/api/handles/hdl:88.101.1001/X", "88.101.1001/X"),  # a written-out scheme is stripped
    ("/api/handles/88.101.1001/hdl:X", "88.101.1001/hdl:X"),
    ("/api/handles/hdl%3A88.101.1001/X", "hdl:88.101.1001/X"),  # an encoded one is part of the handle
])
def test_the_server_decodes_the_raw_path_exactly_once(raw: str, text: str) -> None:
    assert rest.handle_from_raw_path(raw).text == text


def test_a_path_that_is_not_utf8_is_an_invalid_handle() -> None:
    with pytest.raises(InvalidHandle, match="not valid UTF-8"):
        rest.handle_from_raw_path("/api/handles/88.101.1001/%ff%fe")


@given(suffix=addressing_suffixes)
def test_every_valid_handle_travels_unchanged(suffix: str) -> None:
    handle = Handle.from_text(f"88.101.1001/{suffix}")
    path = rest.path_for(handle)
    assert not {".", ".."} & set(path.split("/")), "no dot segment for a normaliser to resolve"
    assert URL("http://127.0.0.1:8000" + path, encoded=True).raw_path == path  # what aiohttp's client sends
    assert rest.handle_from_raw_path(path).text == handle.text
