"""Overload: a busy server answers code 3 (HTTP 503) at once; clients and resolvers take it as 'try elsewhere'."""

from __future__ import annotations

from handlesim.core.codes import ResponseCode
from handlesim.core.handle import Handle
from handlesim.core.health import ServerHealth
from handlesim.core.messages import error_response
from handlesim.core.prefixes import http_site
from handlesim.core.resolution import Resolution, Step
from handlesim.core.transport import Exchange, drive

from ..support.corenet import three_tier


async def test_code_3_fails_over_to_the_next_server_and_marks_it_busy() -> None:
    tt = three_tier()
    busy = http_site("busy-root", [("busy", 1)])
    busy_url = busy.servers[0].url()

    class BusyRoot:
        """The in-memory net, with one more root that is always too busy."""

        async def exchange(self, step: Step) -> Exchange:
            if step.server.url() == busy_url:
                return Exchange.answered(error_response(ResponseCode.SERVER_TOO_BUSY, "server too busy",
                                                        step.request.handle_text))
            return await tt.net.exchange(step)

    health = ServerHealth(penalty=30)
    first = Resolution(Handle.from_text("88.101.2001/PUMP-1"), [busy, tt.root_site], health=health,
                       now=tt.net.clock())
    await drive(first, BusyRoot(), tt.net.clock.both)
    assert first.result is not None and first.result.ok
    assert first.trace[0].site == "busy-root" and first.trace[0].code == ResponseCode.SERVER_TOO_BUSY
    second = Resolution(Handle.from_text("88.101.2001/PUMP-1"), [busy, tt.root_site], health=health,
                        now=tt.net.clock())
    await drive(second, BusyRoot(), tt.net.clock.both)
    assert [h.site for h in second.trace] == ["root", "secondary", "enterprise"], "the busy server goes last"
