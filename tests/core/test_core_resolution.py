"""Pure resolution tests: a root, a secondary and an enterprise HandleService pumped in memory."""

from __future__ import annotations

from handlesim.core.cache import ResolutionCache
from handlesim.core.codes import ResponseCode
from handlesim.core.handle import Handle, Prefix
from handlesim.core.prefixes import http_site, prefix_record
from handlesim.core.resolution import MAX_HOPS, Resolution
from handlesim.core.transport import drive
from handlesim.core.values import URL, HandleValue, handle_hash

from ..support.corenet import Net, three_tier


async def resolve(tt_net: Net, roots: list, text: str, cache: ResolutionCache | None = None) -> Resolution:  # type: ignore[type-arg]
    res = Resolution(Handle.from_text(text), roots, cache=cache)
    await drive(res, tt_net, tt_net.clock.both)
    return res


async def test_three_hops_root_secondary_enterprise() -> None:
    tt = three_tier()
    res = await resolve(tt.net, [tt.root_site], "88.101.2001/PUMP-1")
    assert res.result is not None and res.result.code == ResponseCode.SUCCESS
    assert [v.data for v in res.result.values if v.type == URL] == ["https://id.example.cn/PUMP-1"]
    assert [(h.site, h.asked, h.code) for h in res.trace] == [
        ("root", "0.NA/88.101.2001", 303),
        ("secondary", "0.NA/88.101.2001", 1),
        ("enterprise", "88.101.2001/PUMP-1", 1),
    ]
    assert "prefix referral to secondary" in res.trace[0].outcome
    assert all(h.duration > 0 for h in res.trace)
    assert res.hops == 3


async def test_case_insensitive_resolution_keeps_spelling() -> None:
    tt = three_tier()
    res = await resolve(tt.net, [tt.root_site], "88.101.2001/pump-1")
    assert res.result is not None and res.result.handle == "88.101.2001/PUMP-1"


async def test_undelegated_prefix_is_not_found_at_the_root() -> None:
    tt = three_tier()
    res = await resolve(tt.net, [tt.root_site], "88.999.1/X")
    assert res.result is not None and res.result.code == ResponseCode.HANDLE_NOT_FOUND
    assert [(h.site, h.code) for h in res.trace] == [("root", 100)]
    assert "88.999.1" in res.result.message


async def test_enterprise_unknown_to_its_secondary_is_not_found_at_the_second_hop() -> None:
    tt = three_tier()
    res = await resolve(tt.net, [tt.root_site], "88.101.9999/X")
    assert res.result is not None and res.result.code == ResponseCode.HANDLE_NOT_FOUND
    assert [(h.site, h.code) for h in res.trace] == [("root", 303), ("secondary", 100)]


async def test_missing_handle_is_not_found_at_the_enterprise() -> None:
    tt = three_tier()
    res = await resolve(tt.net, [tt.root_site], "88.101.2001/NOPE")
    assert res.result is not None and res.result.code == ResponseCode.HANDLE_NOT_FOUND
    assert [h.code for h in res.trace] == [303, 1, 100]


async def test_prefix_handle_itself_resolves() -> None:
    tt = three_tier()
    res = await resolve(tt.net, [tt.root_site], "0.NA/88.101.2001")
    assert res.result is not None and res.result.code == ResponseCode.SUCCESS
    assert [h.code for h in res.trace] == [303, 1]
    assert all(v.type != "HS_SECKEY" for v in res.result.values), "secret keys are never public"


async def test_referral_loop_ends_with_a_clear_error() -> None:
    net = Net()
    root, root_site = net.add("root", ("0.NA",))
    bad, bad_site = net.add("bad", ("88",))
    root.store.put(prefix_record(Prefix("88.101"), sites=[], derived_sites=[bad_site]))
    # `bad` homes 88 but refers 88.101.* back to the root
    bad.store.put(prefix_record(Prefix("88.101"), sites=[], derived_sites=[root_site]))
    res = await resolve(net, [root_site], "88.101.2001/X")
    assert res.result is not None and res.result.code == ResponseCode.ERROR
    assert "referral loop" in res.result.message
    assert len(res.trace) == 2


async def test_over_deep_referral_chain_stops_at_the_cap() -> None:
    net = Net()
    root, root_site = net.add("root", ("0.NA",))
    depth = MAX_HOPS + 5
    prefixes = [Prefix(".".join(["88"] + ["1"] * i)) for i in range(depth)]
    holder = root
    for i, prefix in enumerate(prefixes):
        node, site = net.add(f"n{i}", (prefix.text,))
        holder.store.put(prefix_record(prefix, sites=[site], derived_sites=[site]))
        holder = node
    res = await resolve(net, [root_site], prefixes[-1].text + ".1/X")
    assert res.result is not None and res.result.code == ResponseCode.RECURSION_COUNT_TOO_HIGH
    assert res.hops == MAX_HOPS


async def test_dead_server_fails_over_to_the_next_root() -> None:
    tt = three_tier()
    dead = http_site("dead-root", [("dead", 1)])
    tt.net.down.add(dead.servers[0].url())
    res = await resolve(tt.net, [dead, tt.root_site], "88.101.2001/PUMP-1")
    assert res.result is not None and res.result.code == ResponseCode.SUCCESS
    assert res.trace[0].code is None and "refused" in res.trace[0].outcome
    assert res.hops == 4


async def test_all_servers_dead_is_a_clear_error() -> None:
    tt = three_tier()
    tt.net.down.add(tt.ent_site.servers[0].url())
    res = await resolve(tt.net, [tt.root_site], "88.101.2001/PUMP-1")
    assert res.result is not None and res.result.code == ResponseCode.ERROR
    assert "no server answered" in res.result.message and "enterprise" in res.result.message


async def test_cache_makes_the_second_lookup_free_until_ttl_expiry() -> None:
    tt = three_tier()
    cache = ResolutionCache()
    first = await resolve(tt.net, [tt.root_site], "88.101.2001/PUMP-1", cache)
    assert first.hops == 3
    second = await resolve(tt.net, [tt.root_site], "88.101.2001/PUMP-1", cache)
    assert second.hops == 0 and all(h.cache_hit for h in second.trace)
    assert second.result == first.result
    tt.net.clock.advance(86400 + 1)
    third = await resolve(tt.net, [tt.root_site], "88.101.2001/PUMP-1", cache)
    assert third.hops == 3


async def test_negative_answers_are_cached_only_when_enabled() -> None:
    tt = three_tier()
    off = ResolutionCache()
    await resolve(tt.net, [tt.root_site], "88.101.2001/NOPE", off)
    assert (await resolve(tt.net, [tt.root_site], "88.101.2001/NOPE", off)).hops == 1  # only the prefix was cached
    on = ResolutionCache(negative_ttl=30)
    await resolve(tt.net, [tt.root_site], "88.101.2001/NOPE", on)
    assert (await resolve(tt.net, [tt.root_site], "88.101.2001/NOPE", on)).hops == 0


def test_hash_picks_the_server_inside_a_multi_server_site() -> None:
    site = http_site("multi", [("a", 1), ("b", 2), ("c", 3)], hash_option=2)
    seen = set()
    for i in range(60):
        handle = Handle.from_text(f"88.101/item-{i}")
        server = site.server_for(handle)
        assert server is site.servers[handle_hash(handle, 2) % 3]
        assert site.server_for(Handle.from_text(f"88.101/ITEM-{i}")) is server  # upper-cased before hashing
        seen.add(server.server_id)
    assert seen == {1, 2, 3}
    by_prefix = http_site("p", [("a", 1), ("b", 2)], hash_option=0)
    assert len({by_prefix.server_for(Handle.from_text(f"88.101/x{i}")).server_id for i in range(20)}) == 1


async def test_trace_hops_serialise() -> None:
    tt = three_tier()
    res = await resolve(tt.net, [tt.root_site], "88.101.2001/PUMP-1")
    row = res.trace[0].to_dict()
    assert row["site"] == "root" and row["code"] == 303 and isinstance(row["duration_ms"], float)


async def test_values_written_are_what_resolution_returns() -> None:
    tt = three_tier()
    value = HandleValue(7, "EMAIL", "ops@example.cn")
    from handlesim.core.codes import OpCode
    from handlesim.core.messages import Request

    from ..support.corenet import SERVER_ADMIN
    h = Handle.from_text("88.101.2001/NEW")
    reply = tt.enterprise.handle(Request(OpCode.CREATE_HANDLE, h, values=(value,), identity=SERVER_ADMIN), 5.0)
    assert reply.ok
    res = await resolve(tt.net, [tt.root_site], "88.101.2001/NEW")
    assert res.result is not None
    emails = [v for v in res.result.values if v.type == "EMAIL"]
    assert [v.data for v in emails] == ["ops@example.cn"] and emails[0].timestamp == 5
    assert any(v.type == "HS_ADMIN" for v in res.result.values), "a created handle gets an HS_ADMIN for its creator"


async def test_failed_servers_are_remembered_and_tried_last() -> None:
    from handlesim.core.health import ServerHealth

    tt = three_tier()
    dead = http_site("dead-root", [("dead", 1)])
    tt.net.down.add(dead.servers[0].url())
    health = ServerHealth(penalty=30)
    first = Resolution(Handle.from_text("88.101.2001/PUMP-1"), [dead, tt.root_site], health=health,
                       now=tt.net.clock())
    await drive(first, tt.net, tt.net.clock.both)
    assert first.trace[0].site == "dead-root" and first.trace[0].code is None
    second = Resolution(Handle.from_text("88.101.2001/PUMP-1"), [dead, tt.root_site], health=health,
                        now=tt.net.clock())
    await drive(second, tt.net, tt.net.clock.both)
    assert [h.site for h in second.trace] == ["root", "secondary", "enterprise"], "the dead root is skipped"
    tt.net.clock.advance(31)
    third = Resolution(Handle.from_text("88.101.2001/PUMP-1"), [dead, tt.root_site], health=health,
                       now=tt.net.clock())
    await drive(third, tt.net, tt.net.clock.both)
    assert third.result is not None and third.result.ok  # after the penalty the dead root may be tried again
    assert health.snapshot()[dead.servers[0].url()]["failures"] >= 1


async def test_faster_site_is_asked_first() -> None:
    from handlesim.core.health import ServerHealth

    net = Net()
    slow_root, slow_site = net.add("slow-root", ("0.NA",))
    fast_root, fast_site = net.add("fast-root", ("0.NA",))
    health = ServerHealth()
    health.answered(slow_site.servers[0].url(), 0.050)
    health.answered(fast_site.servers[0].url(), 0.0005)
    res = Resolution(Handle.from_text("88.999/X"), [slow_site, fast_site], health=health)
    await drive(res, net, net.clock.both)
    assert res.trace[0].site == "fast-root"


def test_a_server_silent_on_a_request_is_tried_after_the_others_until_it_answers() -> None:
    from handlesim.core.health import SUSPICION_EXPIRES, ServerHealth

    net = Net()
    _, hung_site = net.add("hung-root", ("0.NA",))
    _, other_site = net.add("other-root", ("0.NA",))
    hung, other = hung_site.servers[0].url(), other_site.servers[0].url()
    health = ServerHealth(suspect_after=0.1)
    health.answered(hung, 0.0005)
    health.answered(other, 0.002)  # the hung server was the faster one

    def first_asked(now: float) -> str:
        res = Resolution(Handle.from_text("88.999/X"), [hung_site, other_site], health=health, now=now)
        step = res.next_request(now)
        assert step is not None
        return step.server.url()

    assert first_asked(10.0) == hung  # its request is now outstanding (a concurrent lookup keeps waiting on it)
    assert first_asked(10.05) == hung  # not yet suspect: loopback-slow is not silent
    assert first_asked(10.2) == other  # unanswered for longer than suspect_after: the others go first
    health.answered(hung, 0.001)
    assert first_asked(10.3) == hung  # it answered: suspicion cleared, fastest first again
    assert first_asked(10.3) == hung
    assert first_asked(10.3 + 0.1 + SUSPICION_EXPIRES + 1) == hung  # an abandoned request stops counting
