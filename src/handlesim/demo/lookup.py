"""A lookup as a class is shown it: every hop (node, tier, what was asked, what came back, time) and the values.

Both the terminal demo and the web page draw these views, so what the browser animates is exactly the trace the
resolution recorded (`Resolution.trace`, or a resolver's `?trace=true` answer).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from ..core.cache import ResolutionCache
from ..core.codes import ResponseCode
from ..core.errors import HandleError
from ..core.handle import Handle
from ..core.messages import Response, error_response
from ..core.values import HandleValue, SiteInfo
from ..net.client import HandleClient
from ..topology.state import NodeEntry
from ..wire.mapping import value_to_dict

CACHE_SITE = "cache"
"""The site name a trace gives to an answer taken from a cache (no request was sent)."""

MODES = ("iterative", "resolver")


@dataclass(frozen=True)
class HopView:
    """One hop of a lookup, ready to draw."""

    number: int
    node: str
    """Node id that was asked (`cache` when the answer came from a cache)."""
    role: str
    """root, secondary, enterprise, resolver, cache, or unknown."""
    asked: str
    """The handle asked for: `0.NA/<prefix>` while locating, the identifier itself at the end."""
    code: int | None
    """Response code; None when the node did not answer."""
    outcome: str
    """What came back, in words: `prefix referral to sec-machinery`, `7 values`, `no answer: ...`."""
    referral_to: tuple[str, ...]
    """Node ids the answer sends the client to next: a referral's (303/302) sites, or the site a prefix handle's
    HS_SITE named (the node asked next)."""
    duration_ms: float
    cache_hit: bool
    failed: bool
    """The node did not answer (refused, timed out): the client tries the next server."""
    modelled_ms: float = 0.0
    """Of `duration_ms`, the delay the topology's network model added (0 on loopback)."""


@dataclass(frozen=True)
class ValueView:
    index: int
    type: str
    text: str


@dataclass(frozen=True)
class LookupView:
    """A whole lookup: what was asked, how, every hop, and the final answer."""

    handle: str
    mode: str
    """iterative (the client walks) or resolver (a recursive resolver node walks for the client)."""
    asked: str
    """Who the client asked first: `roots` for an iterative walk, the resolver's node id otherwise."""
    code: int
    ok: bool
    message: str
    values: tuple[ValueView, ...]
    hops: tuple[HopView, ...]
    elapsed_ms: float
    """Wall time of the whole lookup as the client saw it."""

    @property
    def upstream_hops(self) -> int:
        """Requests that went over the wire (answers from a cache excluded)."""
        return sum(1 for hop in self.hops if not hop.cache_hit)

    @property
    def cache_hit(self) -> bool:
        return self.upstream_hops == 0

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["upstream_hops"] = self.upstream_hops
        data["cache_hit"] = self.cache_hit
        return data


def roles_by_node(nodes: Sequence[NodeEntry]) -> dict[str, str]:
    """Node id -> role, from topology.json's node list."""
    return {n.id: n.role.value for n in nodes}


def hops_from_trace(trace: list[dict[str, Any]], roles: dict[str, str]) -> tuple[HopView, ...]:
    """Trace dicts (`Hop.to_dict()`, also what a resolver returns with ?trace=true) as hop views.

    A prefix handle answered with values (its HS_SITE) sends the client to the site asked next: that node is shown as
    where the answer pointed, like a referral."""
    views = [_hop_view(number, hop, roles) for number, hop in enumerate(trace, 1)]
    for position, view in enumerate(views[:-1]):
        if view.code == ResponseCode.SUCCESS and view.asked.upper().startswith("0.NA/") and not view.referral_to:
            following = views[position + 1]
            if following.asked != view.asked and not following.cache_hit:
                views[position] = replace(view, referral_to=(following.node,))
    return tuple(views)


def _hop_view(number: int, hop: dict[str, Any], roles: dict[str, str]) -> HopView:
    node = str(hop.get("site", ""))
    cache_hit = bool(hop.get("cache_hit"))
    outcome = str(hop.get("outcome", ""))
    code = hop.get("code")
    return HopView(number=number, node=node, role=CACHE_SITE if cache_hit else roles.get(node, "unknown"),
                   asked=str(hop.get("asked", "")), code=None if code is None else int(code), outcome=outcome,
                   referral_to=_referral_targets(outcome, code), duration_ms=float(hop.get("duration_ms", 0.0)),
                   cache_hit=cache_hit, failed=code is None, modelled_ms=float(hop.get("modelled_ms") or 0.0))


def _referral_targets(outcome: str, code: object) -> tuple[str, ...]:
    """The sites a referral names; core/resolution.py words a referral `<kind> referral to <a>, <b>`."""
    if code not in (ResponseCode.PREFIX_REFERRAL, ResponseCode.SERVICE_REFERRAL):
        return ()
    _, found, names = outcome.partition(" referral to ")
    return tuple(name.strip() for name in names.split(",") if name.strip()) if found else ()


def value_text(value: HandleValue) -> str:
    """A value's data as one short line (strings as they are, anything else as compact JSON)."""
    import json

    data = value_to_dict(value)["data"]
    if isinstance(data, dict) and data.get("format") == "string":
        return str(data["value"])
    return json.dumps(data["value"] if isinstance(data, dict) else data, ensure_ascii=False)[:100]


def _view(handle: Handle, mode: str, asked: str, answer: Response, hops: tuple[HopView, ...],
          started: float) -> LookupView:
    return LookupView(handle=handle.text, mode=mode, asked=asked, code=int(answer.code), ok=answer.ok,
                      message=answer.message,
                      values=tuple(ValueView(v.index, v.type, value_text(v)) for v in answer.values),
                      hops=hops, elapsed_ms=round((time.perf_counter() - started) * 1000, 3))


async def lookup_iterative(client: HandleClient, handle: Handle, root_sites: list[SiteInfo], roles: dict[str, str],
                           *, cache: ResolutionCache | None = None) -> LookupView:
    """Walk from the roots as a Handle client does; with `cache`, answers it holds cost no hop."""
    started = time.perf_counter()
    resolution = await client.resolve(handle, root_sites, cache=cache)
    assert resolution.result is not None
    hops = hops_from_trace([hop.to_dict() for hop in resolution.trace], roles)
    return _view(handle, "iterative", "roots", resolution.result, hops, started)


async def lookup_via_resolver(client: HandleClient, handle: Handle, resolver: NodeEntry,
                              roles: dict[str, str]) -> LookupView:
    """Ask a recursive resolver node (a topology.json node entry) to walk for us; its trace comes back with the
    answer. A resolver that does not answer is shown as one failed hop."""
    started = time.perf_counter()
    node_id = resolver.id
    try:
        answer = await client.resolve_via(resolver.url, handle, trace=True)
    except HandleError as exc:
        failed = HopView(1, node_id, "resolver", handle.text, None, f"no answer: {exc.message}", (),
                         round((time.perf_counter() - started) * 1000, 3), False, True)
        return _view(handle, "resolver", node_id, error_response(ResponseCode.ERROR, exc.message, handle.text),
                     (failed,), started)
    trace = answer.extra.get("trace", [])
    hops = hops_from_trace(list(trace) if isinstance(trace, list) else [], roles)
    return _view(handle, "resolver", node_id, answer, hops, started)
