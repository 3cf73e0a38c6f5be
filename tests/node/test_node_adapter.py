"""The node adapter's bookkeeping on one live node: the operation each route declares is where its time and its edge
errors are counted; answers from the encoded-answer cache count as resolutions; every view of the figures
(`/_sim/stats`, `/metrics`, `NodeServer.stats()`) agrees."""

from __future__ import annotations

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from handlesim.core.codes import ResponseCode

from ..support.livenode import PREFIX, live_node

STATS_KEYS = ["node", "uptime_s", "requests", "requests_total", "in_flight", "rejected_busy", "latency",
              "reports_received", "setup_requests", "store_handles", "homed_prefixes", "answer_cache_entries", "auth"]


async def test_routes_count_under_the_operation_they_declare() -> None:
    async with live_node() as node, aiohttp.ClientSession() as http:
        handle_url = f"{node.url}/api/handles/{PREFIX}/PUMP-1"
        for _ in range(3):  # the first from the service, then twice from the encoded-answer cache
            async with http.get(handle_url) as reply:
                assert reply.status == 200
        async with http.head(handle_url) as reply:  # a GET route answers HEAD, timed as the same operation
            assert reply.status == 200
        async with http.get(f"{node.url}/api/handles/{PREFIX}/PUMP-1?index=x") as reply:
            assert reply.status == 400  # refused before the service: an edge error of `resolution`
        async with http.put(handle_url, data=b"[]", headers={"Authorization": "Basic ???"}) as reply:
            assert reply.status == 403  # an edge error of `put`
        async with http.post(f"{node.url}/api/sessions", headers={"Authorization": "Basic ???"}) as reply:
            assert reply.status == 403  # a route without an operation: `other`, untimed
        async with http.get(f"{node.url}/no/such/route") as reply:
            assert reply.status == 404  # no route at all: `other`
        async with http.get(f"{node.url}/_sim/stats") as reply:
            shown = await reply.json()
        async with http.get(f"{node.url}/metrics") as reply:
            exposed = {(s.name, s.labels.get("op"), s.labels.get("code")): s.value
                       for f in text_string_to_metric_families(await reply.text()) for s in f.samples}
    stats = node.server.stats()
    ok, protocol_error, bad_credential = (str(int(c)) for c in (ResponseCode.SUCCESS, ResponseCode.PROTOCOL_ERROR,
                                                            ResponseCode.INVALID_CREDENTIAL))
    expected = {"resolution": {ok: 4, protocol_error: 1}, "put": {bad_credential: 1},
                "other": {bad_credential: 1, protocol_error: 1}}
    assert stats.requests == expected and shown["requests"] == expected
    assert set(stats.latency) == {"resolution", "put"} and stats.latency["resolution"].count == 5
    assert shown["latency"]["resolution"]["count"] == 5 and shown["answer_cache_entries"] == 1
    assert sorted(k for k in shown if k not in ("resolver_cache", "replication")) == sorted(STATS_KEYS)
    assert exposed[("handlesim_requests_total", "resolution", ok)] == 4
    assert exposed[("handlesim_requests_total", "other", protocol_error)] == 1
    assert exposed[("handlesim_request_duration_seconds_count", "resolution", None)] == 5
    assert ("handlesim_request_duration_seconds_count", "other", None) not in exposed
    assert node.server.timers() == stats.timers(), "the cheap timers a benchmark reads agree with the full stats"
