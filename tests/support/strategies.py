"""Hypothesis strategies for handle values of every data kind."""

from __future__ import annotations

import os

from hypothesis import strategies as st

from handlesim.core.values import (
    AdminPermission,
    AdminRecord,
    HandleValue,
    HashOption,
    Interface,
    KeyData,
    Permissions,
    ServerInfo,
    SiteInfo,
    TTLType,
    ValueList,
    ValueReference,
)

text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)
type_names = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=20).filter(
    lambda t: t.upper() not in {"HS_ADMIN", "HS_VLIST", "HS_SITE", "HS_SITE.6", "HS_SITE.PREFIX", "HS_PUBKEY"})
handles = st.from_regex(r"\A(0\.NA/)?88\.[0-9]{1,4}(\.[0-9]{1,4})?/[A-Za-z0-9-]{1,12}\Z")
refs = st.builds(ValueReference, handles, st.integers(0, 2**31 - 1))
admins = st.builds(AdminRecord, handles, st.integers(0, 2**31 - 1), st.integers(0, 0xFFF).map(AdminPermission))
vlists = st.builds(ValueList, st.lists(refs, max_size=4).map(tuple))
interfaces = st.builds(Interface, st.sampled_from(["HTTP", "HTTPS", "TCP", "UDP"]), st.integers(0, 65535),
                       st.booleans(), st.booleans())
servers = st.builds(ServerInfo, st.integers(0, 1000), st.from_regex(r"\A127\.0\.0\.[0-9]{1,3}\Z"),
                    st.lists(interfaces, min_size=1, max_size=3).map(tuple), st.binary(max_size=16))
sites = st.builds(SiteInfo, st.lists(servers, max_size=3).map(tuple), st.integers(0, 2**31 - 1), st.booleans(),
                  st.booleans(), st.sampled_from(list(HashOption)), st.just(1), st.just("2.10"),
                  st.lists(st.tuples(text, text), max_size=2).map(tuple))
permissions = st.builds(Permissions, st.booleans(), st.booleans(), st.booleans(), st.booleans())


@st.composite
def handle_values(draw: st.DrawFn) -> HandleValue:
    kind = draw(st.sampled_from(["string", "bytes", "admin", "vlist", "site", "key"]))
    type_name, data = {
        "string": lambda: (draw(type_names), draw(text)),
        "bytes": lambda: (draw(type_names), draw(st.binary(max_size=40))),
        "admin": lambda: ("HS_ADMIN", draw(admins)),
        "vlist": lambda: ("HS_VLIST", draw(vlists)),
        "site": lambda: (draw(st.sampled_from(["HS_SITE", "HS_SITE.PREFIX"])), draw(sites)),
        "key": lambda: ("HS_PUBKEY", KeyData(draw(st.binary(max_size=40)))),
    }[kind]()
    ttl_type = draw(st.sampled_from(list(TTLType)))
    ttl = draw(st.integers(0, 2**31 - 1) if ttl_type == TTLType.ABSOLUTE else st.integers(-(2**31), 2**31 - 1))
    return HandleValue(draw(st.integers(1, 2**31 - 1)), type_name, data, ttl, ttl_type,
                       draw(st.integers(0, 2**31 - 1)), tuple(draw(st.lists(refs, max_size=2))), draw(permissions))


value_lists = st.lists(handle_values(), max_size=5, unique_by=lambda v: v.index).map(tuple)


def examples(wanted: int) -> int:
    """`wanted` hypothesis examples, or a quick 20 under `scripts/test --fast` (HYPOTHESIS_PROFILE=fast)."""
    return 20 if os.environ.get("HYPOTHESIS_PROFILE") == "fast" else wanted

# Handle suffixes that stress exact addressing: dot segments, `%` and escapes, `/` runs, URL delimiters, non-ASCII.
_ADDRESSING_PIECES = [".", "..", "/", "%", "%2F", "%25", "%2E", "%2e", "?", "#", "+", " ", "&", "=", ";", ":",
                      "~", "hdl:", "\\", "中", "é", "PUMP-000001"]
_HANDLE_CHARACTERS = st.characters(exclude_categories=("Cs",),
                                   exclude_characters="".join(map(chr, range(0x20))) + "\x7f")
_SUFFIX_PIECES = st.sampled_from(_ADDRESSING_PIECES) | st.text(_HANDLE_CHARACTERS, min_size=1, max_size=3)
addressing_suffixes = st.lists(_SUFFIX_PIECES, min_size=1, max_size=8).map("".join)
"""Suffixes of valid handles (no control characters, never empty) built from the pieces URLs trip over."""
