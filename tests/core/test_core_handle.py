"""Identifier value types: parsing, canonical form, hierarchy helpers, typed errors."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from handlesim.core.codes import ResponseCode
from handlesim.core.errors import HandleError, InvalidHandle
from handlesim.core.handle import Handle, Prefix


def test_parse_and_parts() -> None:
    h = Handle.from_text("88.101.2001/PUMP-000042")
    assert h.prefix == Prefix("88.101.2001")
    assert h.suffix == "PUMP-000042"
    assert h.text == "88.101.2001/PUMP-000042"
    assert str(h) == h.text


def test_suffix_may_contain_slashes() -> None:
    h = Handle.from_text("88.101/a/b/c")
    assert h.prefix.text == "88.101" and h.suffix == "a/b/c"


def test_ascii_case_insensitive_matching_keeps_spelling() -> None:
    a = Handle.from_text("88.101/Pump-Ab")
    b = Handle.from_text("88.101/PUMP-aB")
    assert a == b and a.key == b.key
    assert a.text == "88.101/Pump-Ab"
    # non-ASCII letters are not folded, as in Handle.Net
    assert Handle.from_text("88.101/é") != Handle.from_text("88.101/É")


def test_prefix_hierarchy() -> None:
    p = Prefix.from_text("88.101.2001")
    assert p.parent() == Prefix("88.101")
    assert p.ancestors() == [Prefix("88.101"), Prefix("88")]
    assert Prefix("88").parent() is None
    assert p.is_under(Prefix("88.101")) and p.is_under(p)
    assert not Prefix("88.1011").is_under(Prefix("88.101"))
    assert p.prefix_handle() == Handle.from_text("0.NA/88.101.2001")


def test_handle_parent_walks_to_the_root() -> None:
    h = Handle.from_text("88.101.2001/X")
    chain = []
    node: Handle | None = h
    while node is not None:
        chain.append(node.text)
        node = node.parent()
    assert chain == ["88.101.2001/X", "0.NA/88.101.2001", "0.NA/88.101", "0.NA/88"]
    assert h.is_under(Prefix("88.101"))
    assert Handle.from_text("0.NA/88.101.2001").is_under(Prefix("88.101"))


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty"),
        ("88.101", "no '/'"),
        ("/X", "empty prefix"),
        ("88.101/", "empty suffix"),
        ("88..101/X", "empty segment (segment 2"),
        (".88/X", "empty segment (segment 1"),
        ("88.101/a\x00b", "control character U+0000 at position 8"),
        ("88.101/a\x7fb", "U+007F"),
        ("88.101/" + "x" * 2000, "limit is 1024 bytes"),
        ("88.101/\udcff", "not valid UTF-8"),
        ("0.NA/88..1", "empty segment"),
    ],
)
def test_bad_identifiers_raise_invalid_handle(text: str, fragment: str) -> None:
    with pytest.raises(InvalidHandle) as info:
        Handle.from_text(text)
    assert fragment in info.value.message
    assert info.value.response_code == ResponseCode.INVALID_HANDLE == 102
    assert info.value.http_status_hint == 400


def test_bad_bytes() -> None:
    with pytest.raises(InvalidHandle, match="not valid UTF-8"):
        Handle.from_bytes(b"88.101/\xff")


segment = st.text(st.characters(blacklist_characters="./", blacklist_categories=("Cc", "Cs")), min_size=1, max_size=8)
suffix = st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=40)


@given(st.lists(segment, min_size=1, max_size=4), suffix)
def test_handle_text_round_trips(segments: list[str], suf: str) -> None:
    text = ".".join(segments) + "/" + suf
    if text.startswith("0.NA/") or text.upper().startswith("0.NA/"):
        return
    h = Handle.from_text(text)
    assert h.text == text
    assert Handle.from_text(h.text) == h
    assert Handle.from_bytes(text.encode()) == h


@given(st.text(max_size=60))
def test_arbitrary_text_never_raises_anything_but_typed_errors(text: str) -> None:
    try:
        Handle.from_text(text)
    except HandleError as exc:
        assert exc.response_code == ResponseCode.INVALID_HANDLE


@given(st.binary(max_size=60))
def test_arbitrary_bytes_never_raise_anything_but_typed_errors(raw: bytes) -> None:
    try:
        Handle.from_bytes(raw)
    except HandleError as exc:
        assert exc.response_code == ResponseCode.INVALID_HANDLE
