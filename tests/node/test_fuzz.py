"""Fuzzing every route of a live node: arbitrary bytes, JSON and msgpack structures, odd Unicode, huge numbers,
wrong types, truncated bodies, odd paths and query strings. Never a 5xx but 503, never a connection dropped without
an answer, the node answers a valid request afterwards, and nothing changes (none of these requests carries valid
credentials). The node is also checked against its own OpenAPI description with schemathesis."""

from __future__ import annotations

import http.client
import json
import logging
import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlencode

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from handlesim.net.client import basic_authorization as basic
from handlesim.net.limits import ServerLimits

from ..support.livenode import OWNER_AUTH, PREFIX, LiveNode, ThreadedNode

EXAMPLES = 200
FUZZ_SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                         suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                                HealthCheck.data_too_large])

ROUTES = [
    ("GET", "/api/handles/{h}"), ("PUT", "/api/handles/{h}"), ("DELETE", "/api/handles/{h}"),
    ("GET", "/api/handles"), ("GET", "/api/prefixes"), ("GET", "/hrls/handles"), ("PUT", "/api/replication"),
    ("GET", "/_sim/health"), ("GET", "/_sim/stats"), ("GET", "/api/openapi.json"),
    ("*", "/api/handles/{h}"),  # other methods on the handle route (POST, PATCH, OPTIONS, ...)
]


@pytest.fixture(scope="module")
def node() -> Iterator[LiveNode]:
    with ThreadedNode(server_limits=ServerLimits(body_timeout_s=2.0)) as live:
        yield live


@pytest.fixture
def unexpected_errors() -> Iterator[list[logging.LogRecord]]:
    """Log records of the boundary's 'unexpected error' (a bug turned into a 500)."""
    caught: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            caught.append(record)

    handler = Keep(logging.ERROR)
    logger = logging.getLogger("handlesim")
    logger.addHandler(handler)
    try:
        yield caught
    finally:
        logger.removeHandler(handler)


# -- strategies -----------------------------------------------------------------------------------------------------

ODD_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40) | st.sampled_from(
    ["", "/", "0.NA/", "0.NA/88", f"{PREFIX}/PUMP-1", f"{PREFIX}/", "/X", "..", "%", "%2F", "%00", "%ZZ",
     "hdl:88.101.1001/PUMP-1", "doi:", "\u202e", "\ufeff", "a\u0301", "𝔘𝔫𝔦", "\u0000", "x" * 2000,
     f"{PREFIX}/" + "é" * 600, "88.101.1001.1.1.1/x", "88..101/x", "0.NA/0.NA", "-1", "1e309"])
HUGE = st.sampled_from([2**31, -(2**31) - 1, 2**63, 2**64 + 1, -(2**64), 10**40])
NUMBERS = st.integers() | HUGE | st.floats(allow_nan=False, allow_infinity=False)
SCALARS = st.none() | st.booleans() | NUMBERS | ODD_TEXT
JSONISH = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                       | st.dictionaries(ODD_TEXT, inner, max_size=4), max_leaves=20)
VALUE_FIELDS = st.fixed_dictionaries({}, optional={
    "index": NUMBERS | ODD_TEXT, "type": SCALARS, "data": JSONISH, "ttl": SCALARS, "timestamp": SCALARS,
    "permissions": SCALARS, "references": JSONISH})
PLAUSIBLE_VALUE = st.fixed_dictionaries(
    {"index": st.integers(1, 400),
     "type": st.sampled_from(["URL", "EMAIL", "HS_ADMIN", "HS_SECKEY", "HS_VLIST", "HS_SITE", "HS_ALIAS",
                              "10320/loc", "X.Y", "é"])},
    optional={"data": ODD_TEXT | ODD_TEXT | ODD_TEXT | st.fixed_dictionaries({
        "format": st.sampled_from(["string", "base64", "hex", "admin", "vlist", "site", "key", "odd"]),
        "value": JSONISH | st.fixed_dictionaries({"handle": ODD_TEXT, "index": NUMBERS | ODD_TEXT},
                                                 optional={"permissions": ODD_TEXT})}),
        "ttl": st.integers(0, 86400) | NUMBERS | ODD_TEXT, "timestamp": ODD_TEXT | NUMBERS,
        "permissions": st.sampled_from(["1110", "1100", "0000", "1111", "11", "2"]) | ODD_TEXT,
        "references": st.lists(st.fixed_dictionaries({"handle": ODD_TEXT, "index": NUMBERS}), max_size=2)})
VALID_VALUE = st.fixed_dictionaries({"index": st.integers(1, 99), "data": ODD_TEXT,
                                     "type": st.sampled_from(["URL", "EMAIL", "X.Y", "é", "HS_SECKEY"])})
SHAPED = (st.lists(VALID_VALUE, min_size=1, max_size=4) | st.lists(PLAUSIBLE_VALUE, min_size=1, max_size=4)
          | st.fixed_dictionaries({"values": st.lists(PLAUSIBLE_VALUE, min_size=1, max_size=4)})
          | st.lists(VALUE_FIELDS, max_size=4) | st.fixed_dictionaries({"values": st.lists(VALUE_FIELDS, max_size=4)})
          | st.fixed_dictionaries({"handle": ODD_TEXT, "values": JSONISH, "deletedAt": NUMBERS | ODD_TEXT}))
QUERY_KEYS = st.sampled_from(["type", "index", "auth", "publicOnly", "pretty", "recursive", "trace", "overwrite",
                              "mintNewSuffix", "prefix", "page", "pageSize", "limit", "URL", "EMAIL", "callback"])
QUERY = st.lists(st.tuples(QUERY_KEYS | ODD_TEXT, ODD_TEXT | NUMBERS.map(str)), max_size=6)
AUTH = st.sampled_from([None, "Basic", "Basic !!!", "Bearer x", "Basic " + "A" * 5000, basic("x", "y"),
                        basic(f"300:0.NA/{PREFIX}", "wrong-secret"), basic("300:0.NA/88.999", "z"),
                        basic("abc:0.NA/x", "z"), OWNER_AUTH.replace("Basic ", "Basic  ") + "=",
                        basic("300%3A0.NA%2F" + PREFIX, "wrong")]) | ODD_TEXT.map(lambda t: "Basic " + t)


@st.composite
def bodies(draw: st.DrawFn) -> tuple[bytes, str]:
    """A body and its Content-Type: arbitrary bytes, JSON or msgpack of shaped or arbitrary data, or a cut-off
    encoding of one of those."""
    kind = draw(st.sampled_from(["bytes", "json", "msgpack", "truncated-json", "truncated-msgpack", "empty"]))
    media = "application/msgpack" if "msgpack" in kind else "application/json"
    if kind == "bytes":
        return draw(st.binary(max_size=300)), draw(st.sampled_from([media, "text/plain", "application/msgpack"]))
    if kind == "empty":
        return b"", media
    data: Any = draw(SHAPED | JSONISH)
    try:
        raw = msgpack.packb(data, use_bin_type=True) if "msgpack" in kind else json.dumps(data).encode()
    except (OverflowError, ValueError, TypeError):  # msgpack cannot hold integers beyond 64 bits
        raw = json.dumps(data).encode()
        media = "application/msgpack"  # JSON text sent as msgpack
    if kind.startswith("truncated") and raw:
        raw = raw[: draw(st.integers(0, len(raw) - 1))]
    return raw, media


@st.composite
def requests_for(draw: st.DrawFn, method: str, template: str) -> tuple[str, str, bytes, dict[str, str]]:
    if method == "*":
        method = draw(st.sampled_from(["POST", "PATCH", "OPTIONS", "HEAD", "TRACE", "PUT", "DELETE", "GET"]))
    handle = draw(ODD_TEXT)
    path = template.replace("{h}", quote(handle, safe=draw(st.sampled_from(["/", "/:", "", "/%"]))))
    query = urlencode(draw(QUERY), doseq=True)
    body, media = draw(bodies()) if method in ("PUT", "POST", "PATCH") or draw(st.booleans()) else (b"", "")
    headers = {"Content-Type": media} if media else {}
    headers["Accept"] = draw(st.sampled_from(["application/json", "application/msgpack", "*/*", "text/html"]))
    auth = draw(AUTH)
    if auth is not None:
        headers["Authorization"] = auth
    return method, path + ("?" + query if query else ""), body, headers


# -- sending --------------------------------------------------------------------------------------------------------

_UNSENDABLE = str.maketrans({"\r": "?", "\n": "?", "\x00": "?"})


def send(node: LiveNode, method: str, target: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", node.server.port, timeout=10)
    try:
        # HTTP cannot carry CR, LF or NUL in a header value (http.client refuses them): those bytes go as '?'
        safe_headers = {k: v.encode("utf-8", "surrogatepass").decode("latin-1").translate(_UNSENDABLE)
                        for k, v in headers.items()}
        connection.request(method, target, body=body or None, headers=safe_headers)
        reply = connection.getresponse()  # raises if the node dropped the connection without an answer
        return reply.status, reply.read()
    finally:
        connection.close()


def assert_still_serving(node: LiveNode) -> None:
    status, raw = send(node, "GET", f"/api/handles/{PREFIX}/PUMP-1", b"", {})
    assert status == 200 and json.loads(raw)["responseCode"] == 1


def check_answer(status: int, raw: bytes, method: str) -> None:
    assert not 500 <= status < 600 or status == 503, (status, raw[:300])
    if raw and status >= 400 and method != "HEAD" and raw.startswith(b"{"):
        assert "responseCode" in json.loads(raw)


@pytest.mark.parametrize(("method", "template"), ROUTES, ids=[f"{m} {t}" for m, t in ROUTES])
def test_fuzzed_requests_never_break_the_node(node: LiveNode, unexpected_errors: list[logging.LogRecord],
                                              method: str, template: str) -> None:
    before = node.snapshot()
    seen: list[int] = []

    @FUZZ_SETTINGS
    @given(call=requests_for(method, template))
    def one(call: tuple[str, str, bytes, dict[str, str]]) -> None:
        status, raw = send(node, *call)
        check_answer(status, raw, call[0])
        seen.append(status)

    one()
    assert len(seen) >= EXAMPLES // 2, "hypothesis ran the examples"
    assert_still_serving(node)
    assert node.snapshot() == before, "nothing changed"
    assert not unexpected_errors, [r.getMessage() for r in unexpected_errors]


def test_fuzzed_writes_with_valid_credentials_never_break_the_node(unexpected_errors: list[logging.LogRecord],
                                                                    ) -> None:
    """The same bodies and queries, authenticated as the prefix owner, reach the write path; whatever they store,
    every record still resolves afterwards (nothing half-valid was committed)."""
    with ThreadedNode() as live:
        seen: list[int] = []

        @FUZZ_SETTINGS
        @given(call=requests_for("PUT", "/api/handles/{h}"), suffix=st.sampled_from(["PUMP-1", "NEW", "PUMP-2"]),
               query=st.sampled_from(["", "overwrite=false", "index=1&index=2", "index=various", "mintNewSuffix=true"])
               | QUERY.map(lambda pairs: urlencode(pairs, doseq=True)),
               valid=st.none() | st.lists(VALID_VALUE | PLAUSIBLE_VALUE, min_size=1, max_size=4))
        def one(call: tuple[str, str, bytes, dict[str, str]], suffix: str, query: str,
                valid: list[dict[str, Any]] | None) -> None:
            method, _, body, headers = call
            if valid is not None:  # half the writes carry well-formed values, so they reach the service
                body, headers = json.dumps(valid).encode(), {**headers, "Content-Type": "application/json"}
            target = f"/api/handles/{PREFIX}/{suffix}" + ("?" + query if query else "")
            status, raw = send(live, method, target, body, {**headers, "Authorization": OWNER_AUTH})
            check_answer(status, raw, method)
            seen.append(status)

        one()
        assert len(seen) >= EXAMPLES // 2
        assert seen.count(200) + seen.count(201) >= 10, "writes were accepted, so the write path was reached"
        for record in list(live.store.records()):
            for accept in ("application/json", "application/msgpack"):
                status, raw = send(live, "GET", "/api/handles/" + quote(record.handle.text, safe="/"), b"",
                                   {"Accept": accept, "Authorization": OWNER_AUTH})
                assert status == 200, (record.handle.text, raw[:300])
        assert_still_serving(live)
    assert not unexpected_errors, [r.getMessage() for r in unexpected_errors]


@FUZZ_SETTINGS
@given(raw=st.binary(min_size=1, max_size=400) | st.builds(
    lambda line, rest: line + rest,
    st.sampled_from([b"GET / HTTP/1.1\r\n", b"PUT /api/handles/88.101.1001/X HTTP/1.1\r\nContent-Length: 3\r\n",
                     b"GET /api/handles/%ff%fe HTTP/1.1\r\n", b"\x00\x01 HTTP/1.1\r\n", b"GET /" + b"a" * 9000]),
    st.binary(max_size=200)))
def test_arbitrary_bytes_on_the_socket(node: LiveNode, raw: bytes) -> None:
    """Whatever arrives, the node answers without a 5xx (or closes a connection that never made a request)."""
    with socket.create_connection(("127.0.0.1", node.server.port), timeout=10) as sock:
        sock.sendall(raw + b"\r\n\r\n")
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    if answer:
        assert answer.startswith(b"HTTP/1."), answer[:100]
        status = int(answer.split(b" ", 2)[1])
        assert not 500 <= status < 600 or status == 503, answer[:300]


def test_node_still_serves_after_raw_bytes(node: LiveNode) -> None:
    before = node.snapshot()
    assert_still_serving(node)
    assert node.snapshot() == before


# -- schemathesis against the node's own OpenAPI description --------------------------------------------------------

def test_openapi_description_is_served(node: LiveNode) -> None:
    status, raw = send(node, "GET", "/api/openapi.json", b"", {})
    spec = json.loads(raw)
    assert status == 200 and spec["openapi"].startswith("3.")
    assert {"/api/handles/{handle}", "/api/handles", "/api/replication", "/hrls/handles"} <= set(spec["paths"])


def test_schemathesis_against_the_openapi_description(node: LiveNode,
                                                      unexpected_errors: list[logging.LogRecord]) -> None:
    import schemathesis
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    status, raw = send(node, "GET", "/api/openapi.json", b"", {})
    schema = schemathesis.openapi.from_dict(json.loads(raw))
    before = node.snapshot()
    calls: list[int] = []

    @settings(max_examples=150, deadline=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(case=schema.as_strategy())
    def one(case: Any) -> None:
        response = case.call(base_url=node.url, timeout=10)
        calls.append(response.status_code)
        assert not 500 <= response.status_code < 600 or response.status_code == 503, response.text[:300]
        case.validate_response(response, checks=[status_code_conformance, content_type_conformance,
                                                  response_schema_conformance])

    one()
    assert len(calls) >= 75
    assert node.snapshot() == before
    assert not unexpected_errors, [r.getMessage() for r in unexpected_errors]
