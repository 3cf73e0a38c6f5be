"""`handlesim resolve` and `check`: look identifiers up through the hierarchy and compare replicas."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import click

from ..core.codes import OpCode
from ..core.errors import HandleError
from ..core.messages import Request, Response
from ..core.prefixes import native_interfaces
from ..core.values import ServerInfo
from ..net.client import HandleClient, locate
from ..net.nativeclient import PROTOCOLS, NativeTransport
from ..topology.plan import Role
from ..topology.state import NodeEntry, TopologyState
from .app import (
    answer_text,
    data_text,
    fail,
    finish,
    json_option,
    main,
    parse_handle,
    run_async,
    running_state,
    state_dir_option,
    timeout_option,
    topology_client,
    value_json,
)


@main.command()
@click.argument("handle")
@state_dir_option
@click.option("--trace", is_flag=True, help="Show every hop: node, what was asked, answer, time.")
@click.option("--type", "types", multiple=True, help="Only values of this type (repeatable; 'URL.' = subtypes).")
@click.option("--index", "indexes", multiple=True, type=int, help="Only values at this index (repeatable).")
@timeout_option
@click.option("--via", default=None, metavar="resolver|NODE_ID",
              help="Ask a recursive resolver node to walk for you ('resolver' = the topology's first one).")
@click.option("--net", type=click.Choice(["loopback", "model"]), default=None,
              help="Model this command's own hops (default: as the running topology does).")
@click.option("--client-region", default=None, help="Where this command sits in the network model.")
@click.option("--protocol", type=click.Choice(["rest", "native"]), default="rest", show_default=True,
              help="How this command talks to the nodes: the REST API, or the native Handle protocol (RFC 3652) on "
                   "their UDP and TCP ports, as Handle.Net clients do.")
@click.option("--native-transport", type=click.Choice(PROTOCOLS), default="udp", show_default=True,
              help="With --protocol native: UDP with Handle.Net's retries (0.5, 1, 1.5 s) then TCP, or TCP only.")
@json_option
def resolve(handle: str, state_dir: Path, trace: bool, types: tuple[str, ...], indexes: tuple[int, ...],
            timeout: float, via: str | None, net: str | None, client_region: str | None, protocol: str,
            native_transport: str, as_json: bool) -> None:
    """Resolve HANDLE: iteratively from the roots, or through a recursive resolver node (--via); over REST or the
    native protocol (--protocol native), with the same trace."""
    state = running_state(state_dir)
    target = parse_handle(handle)
    client = topology_client(state, timeout, net=net, region=client_region)
    path = client.net
    started = time.perf_counter()
    modelled = [0.0]
    if protocol == "native" and not any(r.native_port for r in state.roots):
        fail("the running topology's nodes do not speak the native protocol (started with `up --no-native`)")

    async def go() -> tuple[Response, list[dict[str, Any]]]:
        if protocol == "native":
            async with NativeTransport(native_transport, timeout=timeout, net=path) as native:
                return await walk_natively(native)
        async with client:
            try:
                return await walk(client)
            finally:
                modelled[0] = client.modelled

    async def walk_natively(native: NativeTransport) -> tuple[Response, list[dict[str, Any]]]:
        if via is None:
            resolution = await native.resolve(target, state.root_sites, types=types, indexes=indexes)
            assert resolution.result is not None
            modelled[0] = sum(h.modelled for h in resolution.trace)
            return resolution.result, [h.to_dict() for h in resolution.trace]
        request = Request(OpCode.RESOLUTION, target, types=types, indexes=indexes, recursive=True)
        exchange = await native.exchange_with(_native_server(state, via), request)
        modelled[0] = exchange.modelled
        if exchange.response is None:
            fail(f"{via}: {exchange.failure}")
        return exchange.response, []

    async def walk(client: HandleClient) -> tuple[Response, list[dict[str, Any]]]:
        if via is None:
            resolution = await client.resolve(target, state.root_sites, types=types, indexes=indexes)
            assert resolution.result is not None
            return resolution.result, [h.to_dict() for h in resolution.trace]
        answer = await client.resolve_via(_resolver_url(state, via), target, types=types, indexes=indexes)
        hops = answer.extra.get("trace", [])
        return answer, list(hops) if isinstance(hops, list) else []

    result, hops = run_async(go())
    elapsed = time.perf_counter() - started
    if as_json:
        click.echo(json.dumps({"handle": result.handle or handle, "responseCode": int(result.code),
                               "message": result.message, "values": [value_json(v) for v in result.values],
                               "via": via, "trace": hops, "net": "model" if path and path.model else "loopback",
                               "protocol": protocol if protocol == "rest" else f"native-{native_transport}",
                               "elapsed_ms": round(elapsed * 1000, 3), "modelled_ms": round(modelled[0] * 1000, 3)},
                              indent=1, ensure_ascii=False))
    else:
        if trace:
            _print_trace(hops, via, elapsed, modelled[0] if path is not None and path.model is not None else None)
        _print_result(result)
    finish(result.ok)


def _via_node(state: TopologyState, via: str) -> NodeEntry:
    nodes = state.with_role(Role.RESOLVER) if via == "resolver" else [n for n in state.nodes if n.id == via]
    if not nodes:
        fail(f"no node {via!r} in the running topology" if via != "resolver" else
             "the running topology has no resolver node (add a [[resolvers]] entry to its config)")
    return nodes[0]


def _resolver_url(state: TopologyState, via: str) -> str:
    return _via_node(state, via).url


def _native_server(state: TopologyState, via: str) -> ServerInfo:
    """The node `via` as a server with its native interfaces (asked with RECU, it walks for the client)."""
    node = _via_node(state, via)
    if not node.native_port:
        fail(f"{node.id} has no native interface")
    return ServerInfo(1, node.host, native_interfaces(node.native_port, node.native_port))


def _print_trace(hops: list[dict[str, Any]], via: str | None, elapsed: float, modelled: float | None) -> None:
    if via is not None:
        click.echo(f"  asked {via}; its walk:" if hops and not all(h["cache_hit"] for h in hops) else
                   f"  asked {via}: answered from its cache" if hops else f"  asked {via}")
    for number, hop in enumerate(hops, 1):
        code = "-" if hop["code"] is None else str(hop["code"])
        where = "cache" if hop["cache_hit"] else hop["site"]
        model_ms = hop.get("modelled_ms") or 0.0
        timing = f"{hop['duration_ms']:.2f} ms, {model_ms:.2f} modelled" if model_ms else f"{hop['duration_ms']:.2f} ms"
        click.echo(f"  hop {number}  {where:<22} asked {hop['asked']:<28} -> {code:>3} {hop['outcome']}"
                   f"  ({timing})")
    upstream = sum(1 for h in hops if not h["cache_hit"])
    modelled_text = f"; this command's own hops {modelled * 1000:.2f} ms modelled" if modelled is not None else ""
    click.echo(f"  {upstream} upstream hops, {elapsed * 1000:.2f} ms in total (as seen by this command"
               f"{modelled_text})")


def _print_result(result: Response) -> None:
    if not result.ok:
        click.echo(answer_text(result, ""), err=True)
        return
    click.echo(f"{result.handle}:")
    for value in result.values:
        click.echo(f"  {value.index:>4}  {value.type:<18} {data_text(value)}")

@main.command()
@click.argument("handle")
@state_dir_option
@timeout_option
@json_option
def check(handle: str, state_dir: Path, timeout: float, as_json: bool) -> None:
    """Resolve HANDLE at every replica that holds it (all roots for 0.NA/ handles) and report drift.

    Exits 0 only when every replica answers the same values; 1 on drift, or when no replica holds the handle."""
    state = running_state(state_dir)
    target = parse_handle(handle)

    async def go() -> list[tuple[str, Response | str]]:
        async with topology_client(state, timeout) as client:
            if target.is_prefix_handle:
                replicas = [(site.name, site.servers[0]) for site in state.root_sites]
            else:
                sites = await locate(client, target.prefix_handle(), state.root_sites)
                # one server per site: in a hash-partitioned site only the server the hash names holds the handle
                replicas = [(site.name, site.server_for(target)) for site in sites if site.servers]
            request = Request(OpCode.RESOLUTION, target, recursive=False)
            answers: list[tuple[str, Response | str]] = []
            for name, server in replicas:
                try:
                    answers.append((name, await client.send(server, request)))
                except HandleError as exc:
                    answers.append((name, exc.message))
            return answers

    answers = run_async(go())
    digests = {name: _digest(answer) for name, answer in answers}
    verdict = _verdict(answers, digests)
    if as_json:
        click.echo(json.dumps({"handle": target.text, "replicas": digests, "drift": verdict == DRIFT,
                               "verdict": verdict, "ok": verdict == AGREE}, indent=1))
    else:
        for name, value in digests.items():
            click.echo(f"  {name:<24} {value}")
        click.echo(f"{target.text}: {VERDICT_TEXT[verdict]}")
    finish(verdict == AGREE)


AGREE, DRIFT, NOT_HELD = "agree", "drift", "not held"
VERDICT_TEXT = {AGREE: "all replicas agree", DRIFT: "DRIFT between replicas",
                NOT_HELD: "no replica holds it (each answered as shown)"}
"""What `check` concludes. Replicas that all answer the same error (100 not found everywhere, or all unreachable)
do not hold the handle: that is no agreement about its values, and the command exits 1 as for drift."""


def _digest(answer: Response | str) -> str:
    if isinstance(answer, str):
        return "unreachable"
    if not answer.ok:
        return f"code {int(answer.code)}"
    return hashlib.sha256(repr(sorted(answer.values)).encode("utf-8", "surrogatepass")).hexdigest()[:12]


def _verdict(answers: list[tuple[str, Response | str]], digests: dict[str, str]) -> str:
    if len(set(digests.values())) > 1:
        return DRIFT
    held = bool(answers) and all(not isinstance(answer, str) and answer.ok for _, answer in answers)
    return AGREE if held else NOT_HELD
