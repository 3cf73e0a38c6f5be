"""Fault injection on a running topology: kill, stop, start, pause, resume, slow, partition and heal nodes.

One `FaultController` per `up` process knows every node server. It is driven over HTTP: `POST /_sim/fault` with a
JSON body (`{"action": "kill", "node": "root-qingdao"}`), on every node and on the topology's control port
(`control_url` in topology.json), which keeps answering while nodes are down, so a killed node can be started again.
Only topologies started with faults enabled (`faults = true` or `up --faults`) obey; otherwise every mutating
`/_sim/` request answers 403 with a Handle error and changes nothing.

How each fault acts (all at the node server, so they hold for every sender: CLI, generator, other nodes, and for
both of a node's interfaces, REST and the native protocol on UDP and TCP):
- kill: the listeners close and open connections are reset (in-flight requests get no answer); the ports stay
  bound, so TCP connections are refused and UDP datagrams go unanswered;
- stop: the listeners close, in-flight requests finish, keep-alive connections close; start reopens the same ports;
- pause: the node keeps accepting connections and reading requests but answers none until resumed;
- slow: every request waits the given milliseconds before it is served;
- partition: requests between two groups (region names, node ids, or `client`) get no answer until healed; the
  sender is known from the `X-Handlesim-From` header every handlesim transport sends (REST requests without it
  pass); native requests carry no header and count as from `client` (only clients speak it to nodes);
- heal: without arguments undo everything (restart downed nodes, resume, unslow, unpartition); with two groups,
  remove that partition only.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import web

from ..core.codes import ResponseCode, http_status
from ..core.messages import error_response
from ..wire import codec
from .apps import AppServer
from .shaping import CLIENT_SOURCE, SOURCE_HEADER

FAULT_ROUTE = "/_sim/fault"
ACTIONS = ("kill", "stop", "start", "pause", "resume", "slow", "partition", "heal")
DISABLED_MESSAGE = ("fault injection is off for this topology; start it with `handlesim up --faults` (or "
                    "`faults = true` in its file) to use /_sim/fault")


class FaultRequestError(Exception):
    """A fault request names an unknown action, node or group, or is malformed (answered 400)."""


class FaultTarget(Protocol):
    """What fault injection needs of a node's server (net/server.py's NodeServer)."""

    port: int
    faults: FaultController | None
    """Set by `FaultController.register`: the server's edge gate then holds requests as the faults say."""

    @property
    def native_port(self) -> int:
        """The port of the node's native interface, UDP and TCP (0: none); closed and reopened with REST."""

    async def listen(self, host: str, port: int) -> int: ...

    def close_listener(self) -> bool: ...

    def close_connections(self, *, abrupt: bool) -> None: ...


@dataclass
class _Node:
    server: FaultTarget
    region: str
    host: str


class FaultController:
    """The fault state of one topology's nodes, and the actions that change it."""

    def __init__(self, *, enabled: bool, regions: tuple[str, ...] = ()) -> None:
        self.enabled = enabled
        self.regions = set(regions)
        """Region names a partition may name besides the nodes' own (the network model's, e.g. clients')."""
        self.active = False
        """True while any pause, slow or partition is in effect (the servers' per-request check)."""
        self.nodes: dict[str, _Node] = {}
        self.down: dict[str, str] = {}
        """Node id -> 'killed' or 'stopped'."""
        self.paused: set[str] = set()
        self.slow: dict[str, float] = {}
        """Node id -> seconds added to every request."""
        self.partitions: list[tuple[frozenset[str], frozenset[str]]] = []
        self.closing = False
        """The topology is stopping: held requests are let go so the nodes can shut down."""
        self.history: list[dict[str, Any]] = []
        """Every applied action with its time (shown by `GET /_sim/fault`)."""
        self._changed = asyncio.Event()
        self._placeholders: dict[str, list[socket.socket]] = {}
        """A downed node's ports, bound but not listening: TCP connections are refused, UDP datagrams go unread
        (the node is silent), and no other program can take the ports (ephemeral ports would otherwise be handed
        out again) before the node starts again."""

    def register(self, node_id: str, server: FaultTarget, region: str, host: str) -> None:
        self.nodes[node_id] = _Node(server, region, host)
        server.faults = self

    # -- the servers' per-request hook ---------------------------------------------------------------------------

    async def admit(self, node_id: str, request: web.Request) -> None:
        """Hold a request while its node is paused or cut off from the sender; delay it while the node is slow."""
        if request.path == FAULT_ROUTE:
            return
        await self.hold(node_id, request.headers.get(SOURCE_HEADER))

    def delays(self, node_id: str, source: str | None) -> bool:
        """Would a request from `source` to `node_id` be held or slowed now? (A cheap check before `hold`.)"""
        return node_id in self.slow or node_id in self.paused or self._cut(node_id, source)

    async def hold(self, node_id: str, source: str | None) -> None:
        """Wait while `node_id` is paused or cut off from `source` (`node region`, or `client`); first sleep the
        node's slowness. Every protocol's requests wait here (REST through `admit`, native through the gate)."""
        delay = self.slow.get(node_id)
        if delay:
            await asyncio.sleep(delay)
        while not self.closing and (node_id in self.paused or self._cut(node_id, source)):
            changed = self._changed
            await changed.wait()

    def _cut(self, node_id: str, source: str | None) -> bool:
        if not self.partitions or not source:
            return False
        sender, _, sender_region = source.partition(" ")
        node = self.nodes.get(node_id)
        here = {node_id, node.region if node is not None else ""}
        there = {sender, sender_region}
        return any((here & a and there & b) or (here & b and there & a) for a, b in self.partitions)

    def _touch(self) -> None:
        self.active = bool(self.paused or self.slow or self.partitions)
        self._changed.set()
        self._changed = asyncio.Event()  # held requests re-check once; later ones wait on the new event

    # -- actions -------------------------------------------------------------------------------------------------

    async def apply(self, body: dict[str, Any]) -> dict[str, Any]:
        """Perform one action (`body["action"]`); returns the new state."""
        action = body.get("action")
        if action not in ACTIONS:
            raise FaultRequestError(f"unknown action {action!r}; use one of: {', '.join(ACTIONS)}")
        if action == "partition":
            self.partitions.append(self._sides(body))
        elif action == "heal":
            await self._heal(body)
        else:
            node_id = self._node(body)
            await self._node_action(str(action), node_id, body)
        self.history.append({"at": time.time(), **{k: v for k, v in body.items() if v is not None}})
        self._touch()
        return self.snapshot()

    async def _node_action(self, action: str, node_id: str, body: dict[str, Any]) -> None:
        if action in ("kill", "stop"):
            if node_id not in self.down:
                await self._close(node_id, abrupt=action == "kill")
                self.down[node_id] = "killed" if action == "kill" else "stopped"
        elif action == "start":
            if node_id in self.down:
                await self._open(node_id)
                del self.down[node_id]
        elif action == "pause":
            self.paused.add(node_id)
        elif action == "resume":
            self.paused.discard(node_id)
        elif action == "slow":
            ms = body.get("ms")
            if not isinstance(ms, (int, float)) or isinstance(ms, bool) or not 0 <= ms <= 600_000:
                raise FaultRequestError("slow needs `ms`: milliseconds to add per request (0 = back to normal)")
            if ms:
                self.slow[node_id] = ms / 1000
            else:
                self.slow.pop(node_id, None)

    async def _heal(self, body: dict[str, Any]) -> None:
        if body.get("a") is not None or body.get("b") is not None:
            a, b = self._group(body, "a"), self._group(body, "b")
            kept = [p for p in self.partitions if p not in ((a, b), (b, a))]
            if len(kept) == len(self.partitions):
                raise FaultRequestError(f"no partition between {sorted(a)} and {sorted(b)}")
            self.partitions = kept
            return
        for node_id in list(self.down):
            await self._open(node_id)
        self.down.clear()
        self.paused.clear()
        self.slow.clear()
        self.partitions.clear()

    async def _close(self, node_id: str, *, abrupt: bool) -> None:
        """Close the node's listener; reset (kill) or gracefully close (stop) its open connections."""
        server = self.nodes[node_id].server
        if server.close_listener():
            self._hold_port(node_id)
        server.close_connections(abrupt=abrupt)

    def _hold_port(self, node_id: str) -> None:
        node = self.nodes[node_id]
        server = node.server
        wanted = [(socket.SOCK_STREAM, server.port)]
        if server.native_port:
            wanted += [(socket.SOCK_STREAM, server.native_port), (socket.SOCK_DGRAM, server.native_port)]
        holders = []
        for kind, port in wanted:
            holder = socket.socket(socket.AF_INET, kind)
            holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                holder.bind((node.host, port))
            except OSError:  # taken in the instant since the listener closed: start will say so
                holder.close()
                continue
            holders.append(holder)
        self._placeholders[node_id] = holders

    async def _open(self, node_id: str) -> None:
        node = self.nodes[node_id]
        for holder in self._placeholders.pop(node_id, []):
            holder.close()
        try:
            await node.server.listen(node.host, node.server.port)
        except OSError as exc:
            raise FaultRequestError(f"{node_id} cannot listen on {node.host}:{node.server.port} again: "
                                    f"{exc.strerror or exc}") from None

    def close(self) -> None:
        """The topology is stopping: let held requests go and release the ports held for downed nodes."""
        self.closing = True
        self._touch()
        for holders in self._placeholders.values():
            for holder in holders:
                holder.close()
        self._placeholders.clear()

    def _node(self, body: dict[str, Any]) -> str:
        node_id = body.get("node")
        if not isinstance(node_id, str) or node_id not in self.nodes:
            raise FaultRequestError(f"{body.get('action')} needs `node`: the id of a node of this topology "
                                    f"(not {node_id!r})")
        return node_id

    def _group(self, body: dict[str, Any], key: str) -> frozenset[str]:
        """A partition side: region names, node ids and/or `client` (a string or a list)."""
        raw = body.get(key)
        items = [raw] if isinstance(raw, str) else raw
        if not isinstance(items, list) or not items or not all(isinstance(i, str) for i in items):
            raise FaultRequestError(f"partition needs `a` and `b`: region names, node ids or 'client' (`{key}` is "
                                    f"{raw!r})")
        known = set(self.nodes) | {n.region for n in self.nodes.values()} | self.regions | {CLIENT_SOURCE}
        unknown = sorted(set(items) - known)
        if unknown:
            raise FaultRequestError(f"{', '.join(unknown)}: not a node id, region or 'client' of this topology")
        return frozenset(items)

    def _sides(self, body: dict[str, Any]) -> tuple[frozenset[str], frozenset[str]]:
        """The two sides of a new partition; they must not share a node (`partition X X` would cut nothing and
        still be listed as in effect)."""
        a, b = self._group(body, "a"), self._group(body, "b")
        shared = sorted((a & b) | (self._members(a) & self._members(b)))
        if shared:
            raise FaultRequestError(f"a partition needs two sides with nothing in common; both sides take "
                                    f"{', '.join(shared)}")
        return a, b

    def _members(self, side: frozenset[str]) -> set[str]:
        """The node ids a side covers: those it names and those in the regions it names."""
        return {node_id for node_id, node in self.nodes.items() if node_id in side or node.region in side}

    def snapshot(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "down": dict(self.down),
            "paused": sorted(self.paused),
            "slow_ms": {node: round(s * 1000, 3) for node, s in sorted(self.slow.items())},
            "partitions": [[sorted(a), sorted(b)] for a, b in self.partitions],
            "history": self.history[-50:],
        }


# -- HTTP ------------------------------------------------------------------------------------------------------------

def _answer(code: ResponseCode, message: str, extra: dict[str, Any] | None = None) -> web.Response:
    response = error_response(code, message)
    body = json.loads(codec.encode_response(response, codec.JSON))
    body.update(extra or {})
    status = 200 if code == ResponseCode.SUCCESS else http_status(code, is_read=False)
    return web.json_response(body, status=status)


async def fault_state(controller: FaultController | None) -> web.Response:
    """`GET /_sim/fault`: the fault state (read-only, also when fault injection is off)."""
    if controller is None:
        return web.json_response({"enabled": False})
    return web.json_response(controller.snapshot())


async def fault_action(controller: FaultController | None, request: web.Request) -> web.Response:
    """`POST /_sim/fault`: perform one action, or 403 when fault injection is off."""
    if controller is None or not controller.enabled:
        return _answer(ResponseCode.INSUFFICIENT_PERMISSIONS, DISABLED_MESSAGE)
    try:
        body = json.loads(await request.read() or b"{}")
        if not isinstance(body, dict):
            raise FaultRequestError("the body must be a JSON object like {\"action\": \"kill\", \"node\": \"...\"}")
        state = await controller.apply(body)
    except (ValueError, FaultRequestError) as exc:
        return _answer(ResponseCode.PROTOCOL_ERROR, str(exc))
    return _answer(ResponseCode.SUCCESS, f"{body['action']} done", {"fault": state})


async def other_sim_route(controller: FaultController | None, request: web.Request) -> web.Response:
    """Any other `/_sim/` request: unknown paths 404; changes are refused (403 while fault injection is off)."""
    if request.method in ("GET", "HEAD"):
        return _answer(ResponseCode.HANDLE_NOT_FOUND, f"no simulator route {request.path}")
    if controller is None or not controller.enabled:
        return _answer(ResponseCode.INSUFFICIENT_PERMISSIONS, DISABLED_MESSAGE)
    return _answer(ResponseCode.PROTOCOL_ERROR, f"{request.method} {request.path}: the only simulator route that "
                   f"changes anything is POST {FAULT_ROUTE}")


class ControlServer(AppServer):
    """The topology's control port: `/_sim/fault` served apart from every node, so it outlives any node fault."""

    def __init__(self, controller: FaultController) -> None:
        super().__init__(web.Application())
        self.controller = controller
        self.app.add_routes([
            web.get(FAULT_ROUTE, self._state),
            web.post(FAULT_ROUTE, self._action),
            web.get("/_sim/health", self._health),
        ])

    async def _state(self, request: web.Request) -> web.Response:
        return await fault_state(self.controller)

    async def _action(self, request: web.Request) -> web.Response:
        return await fault_action(self.controller, request)

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "node": "control"})


def request_fault(base_url: str, body: dict[str, Any] | None = None,
                  timeout: float = 10.0) -> tuple[int, dict[str, Any]]:
    """A blocking client of `/_sim/fault` (CLI, scenario runner): POST `body` (GET the state when None); returns the
    HTTP status and the JSON answer. Raises OSError when the control port cannot be reached."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base_url + FAULT_ROUTE, data=data, method="GET" if body is None else "POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:  # noqa: S310 - loopback from topology.json
            return int(reply.status), dict(json.loads(reply.read()))
    except urllib.error.HTTPError as exc:
        try:
            answer = dict(json.loads(exc.read()))
        except ValueError:
            answer = {"message": str(exc.reason)}
        return int(exc.code), answer
