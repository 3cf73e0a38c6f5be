"""In-memory hierarchies for core tests: HandleService nodes pumped against each other with no sockets.

`Net` is the in-memory Transport: `drive(resolution, net, net.clock.both)` walks its services as a network driver
walks nodes; each hop costs a millisecond of the fake clock."""

from __future__ import annotations

from dataclasses import dataclass, field

from handlesim.core.auth import hash_secret
from handlesim.core.handle import Handle, Prefix
from handlesim.core.prefixes import handle_record, http_site, owner_identity, prefix_record
from handlesim.core.resolution import Step
from handlesim.core.service import HandleService, ServiceConfig
from handlesim.core.transport import Clock, Exchange
from handlesim.core.values import URL, HandleValue, SiteInfo, ValueReference
from handlesim.store import MemoryStore

SECRET = "s3cret"
HASHED = hash_secret(SECRET, b"salt", 10)
SERVER_ADMIN = ValueReference("0.NA/0.NA", 300)


class FakeClock:
    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    @property
    def both(self) -> Clock:
        """This clock as a driver's wall clock and timer."""
        return Clock.virtual(self)


@dataclass
class Net:
    """Services by URL; `exchange` delivers a step to the addressed node (or fails like a dead server)."""

    nodes: dict[str, HandleService] = field(default_factory=dict)
    down: set[str] = field(default_factory=set)
    clock: FakeClock = field(default_factory=FakeClock)
    sent: list[str] = field(default_factory=list)

    def add(self, name: str, homed: tuple[str, ...]) -> tuple[HandleService, SiteInfo]:
        port = 1000 + len(self.nodes)
        site = http_site(name, [(name, port)])
        service = HandleService(ServiceConfig(name, homed, server_admins=(SERVER_ADMIN,), secret_iterations=10),
                                MemoryStore())
        self.nodes[site.servers[0].url()] = service
        return service, site

    async def exchange(self, step: Step) -> Exchange:
        url = step.server.url()
        self.sent.append(url)
        if url in self.down or url not in self.nodes:
            return Exchange.failed(f"{url} refused the connection")
        self.clock.advance(0.001)
        return Exchange.answered(self.nodes[url].handle(step.request, self.clock()))


@dataclass
class ThreeTier:
    net: Net
    root: HandleService
    secondary: HandleService
    enterprise: HandleService
    root_site: SiteInfo
    sec_site: SiteInfo
    ent_site: SiteInfo


def three_tier() -> ThreeTier:
    """root (0.NA) -> secondary (88.101) -> enterprise (88.101.2001) holding 88.101.2001/PUMP-1."""
    net = Net()
    root, root_site = net.add("root", ("0.NA",))
    sec, sec_site = net.add("secondary", ("88.101",))
    ent, ent_site = net.add("enterprise", ("88.101.2001",))
    sec_prefix, ent_prefix = Prefix("88.101"), Prefix("88.101.2001")
    sec_record = prefix_record(sec_prefix, sites=[sec_site], derived_sites=[sec_site], secret_hash=HASHED)
    ent_record = prefix_record(ent_prefix, sites=[ent_site], admins=[owner_identity(sec_prefix)], secret_hash=HASHED)
    root.store.put(sec_record)
    sec.store.put(sec_record)
    sec.store.put(ent_record)
    ent.store.put(ent_record)
    pump = Handle.from_text("88.101.2001/PUMP-1")
    ent.store.put(handle_record(pump, [HandleValue(1, URL, "https://id.example.cn/PUMP-1")]))
    return ThreeTier(net, root, sec, ent, root_site, sec_site, ent_site)
