"""A node's front door: the asyncio protocol that takes each connection first and answers plain GETs below aiohttp.

A plain `GET /api/handles/...` whose public answer the node's AnswerCache holds is answered right here with the
encoded bytes: no aiohttp request object, no task, no middleware, no route; the same status line, headers and body
aiohttp would send. A first-time one is worked out here too, by the same code the route uses: the service's answer,
encoded, then kept in the AnswerCache (HandleRoutes.answer_now); on a resolver node, for a handle the node does not
home, the resolver's walk (HandleRoutes.walk_now), awaited in a task while the connection's later requests wait
their turn and the request counts as in flight. Everything else is handed, with the bytes already read, to
aiohttp's RequestHandler for this connection, which serves it as if the front door were not there.

What the front door answers itself (all of it, or it hands the request on):
- the request head is complete, ASCII, HTTP/1.1, `GET` or `HEAD` of an origin-form target under `/api/handles/`,
  with a Host header, no Authorization, no body (`Content-Length`, `Transfer-Encoding`), no `Connection` other than
  `keep-alive`, no `Expect` or `Upgrade`, no folded or malformed header line;
- aiohttp has nothing in progress on the connection (so answers leave in request order; a pipelined request behind a
  slow one waits in aiohttp's queue), and the client reads its answers (while the transport's write buffer is full,
  aiohttp answers, waiting for it to drain);
- the edge gate admits it as its middleware would: no injected fault is active on the topology (pause, slow and
  partition hold requests in the middleware), the node is below `max_in_flight` (else the gate's pre-encoded 503 /
  code 3, as the old shedding did), and the client is within `rate_per_client` (else aiohttp refuses it, with the
  message naming the limit);
- the cached answer is fresh (a walked answer expires with the resolver cache's TTL), or there is none and the
  request is a GET that `answer_now` or `walk_now` can answer (and no rate limit is set, so no request is charged
  twice). A walk that fails with an exception (a bug) hands the request to aiohttp, whose route answers it.
- a walk step's GET, `path?recursive=false` (rest.ITERATIVE_QUERY: another node walking), is answered as the plain
  `path` is when that is the node's own answer (held, or `answer_now`'s; never a walk of this node's resolver), so
  the answers a node encoded ahead serve the walks that reach it too.

A front-door answer counts where aiohttp's would: a hit of the answer cache by response code (and a resolver cache
hit for walked answers) or the service's own count, and its server-side time in the gate's `resolution` histogram.

Once bytes that are not whole bodiless request heads have gone to aiohttp (a PUT body, a partial or unreadable
head, anything the parser may hold half of), aiohttp keeps the connection for good: the front door never splits
a stream it cannot follow.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Coroutine
from email.utils import formatdate
from http import HTTPStatus
from time import perf_counter
from typing import Any, Protocol, cast

from aiohttp.http import SERVER_SOFTWARE

from ..core.latency import LatencyHistogram
from ..wire import codec
from . import rest
from .answers import AnswerCache, CachedAnswer
from .gate import EdgeGate

MAX_HEAD_BYTES = 8192
"""A request head longer than this is aiohttp's to judge (its own limit is 8190 bytes per line)."""
_HEAD_END = b"\r\n\r\n"
_SERVER_LINE = f"Server: {SERVER_SOFTWARE}\r\n\r\n".encode("ascii")
_REFUSED_HEADERS = frozenset({b"authorization", b"content-length", b"transfer-encoding", b"expect", b"upgrade"})
"""Any of these sends the request to aiohttp: a credential to check, a body, or a protocol change."""
_MEDIA_TYPES = {False: codec.JSON, True: codec.MSGPACK}
_HEADER_LINE = re.compile(rb"([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*(.*?)[ \t]*\Z")
"""A header line aiohttp's parser accepts as it stands: a token name, a colon, the value (no obs-fold)."""
_TARGET = re.compile(rb"/[\x21-\x7e]*\Z")
_CONTROL_BYTES = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
"""Bytes no request line or header value may hold once its CRLFs are gone (a lone CR or LF among them)."""


class EncodedHits(Protocol):
    """What the front door tells a node's recursive resolver (net/recursion.py): a walked answer was sent again."""

    def note_encoded_hit(self) -> None: ...


class DoorCounters:
    """What one node's front door did, across its connections."""

    __slots__ = ("answered", "handed_on")

    def __init__(self) -> None:
        self.answered = 0
        """Requests answered at the door (cached answers and busy refusals)."""
        self.handed_on = 0
        """Request heads (or connections' streams) handed to aiohttp."""


class FrontDoor:
    """What every connection's door of one node shares: the node's cache, gate, resolver, clock and counters."""

    def __init__(self, answers: AnswerCache, gate: EdgeGate, clock: Callable[[], float],
                 resolver: EncodedHits | None = None, keepalive_s: float = 75.0,
                 answer_now: Callable[[str, str], CachedAnswer | None] | None = None,
                 walk_now: Callable[[str, str], Coroutine[Any, Any, CachedAnswer] | None] | None = None) -> None:
        self.answers = answers
        self.gate = gate
        self.clock = clock
        self.resolver = resolver
        self.keepalive_s = keepalive_s
        self.counters = DoorCounters()
        self.timer: LatencyHistogram = gate.latency.setdefault("resolution", LatencyHistogram())
        self._heads: dict[tuple[int, str, int], bytes] = {}
        """Status line, Content-Type and Content-Length by (status, media, length): few distinct ones."""
        self.answer_now = answer_now
        """Works out a first-time plain GET's answer at once (HandleRoutes.answer_now), or None: misses go to
        aiohttp."""
        self.walk_now = walk_now
        """On a resolver node, the answer to a first-time plain GET of a handle the node does not home: the route's
        walk as a coroutine (HandleRoutes.walk_now), or None: such misses go to aiohttp."""
        self.walks: set[asyncio.Task[None]] = set()
        """The walks in progress (held so they are not collected; cancelled when the node stops)."""

    def cancel_walks(self) -> None:
        for task in list(self.walks):
            task.cancel()

    def connection(self, inner: asyncio.Protocol) -> DoorConnection:
        """The protocol for one new connection, in front of aiohttp's handler `inner`."""
        return DoorConnection(inner, self)

    def head_of(self, status: int, media: str, length: int) -> bytes:
        key = (status, media, length)
        head = self._heads.get(key)
        if head is None:
            if len(self._heads) >= 4096:
                self._heads.clear()
            head = self._heads[key] = (f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\nContent-Type: {media}\r\n"
                                       f"Content-Length: {length}\r\n").encode("ascii")
        return head


_date = [-1, b""]
"""The second and the `Date:` line of it, shared by every node's door in the process."""


def http_date() -> bytes:
    """`Date: ...` as aiohttp sends it, formatted once a second (for all the process's nodes together)."""
    now = time.time()
    second = int(now)
    if second != _date[0]:
        _date[0], _date[1] = second, f"Date: {formatdate(now, usegmt=True)}\r\n".encode("ascii")
    return cast(bytes, _date[1])


class PlainGet:
    """The parts of a request head the front door needs (a plain GET or HEAD it may answer)."""

    __slots__ = ("is_head", "target", "wants_msgpack")

    def __init__(self, is_head: bool, target: str, wants_msgpack: bool) -> None:
        self.is_head = is_head
        self.target = target
        self.wants_msgpack = wants_msgpack


def parse_plain_get(head: bytes) -> PlainGet | None:
    """`head` (a request head up to and including its blank line) as a plain GET / HEAD, or None when it is anything
    else: another method or version, a body, credentials, bad bytes. None hands the request to aiohttp."""
    if not head.isascii():
        return None
    lines = head[:-4].split(b"\r\n")
    if _CONTROL_BYTES.search(b"".join(lines)) is not None:
        return None
    parts = lines[0].split(b" ")
    if len(parts) != 3 or parts[2] != b"HTTP/1.1" or parts[0] not in (b"GET", b"HEAD") \
            or _TARGET.match(parts[1]) is None or b"#" in parts[1]:
        return None
    has_host = False
    accept: bytes | None = None
    for line in lines[1:]:
        header = _HEADER_LINE.match(line)
        if header is None:
            return None
        name = header[1].lower()
        if name in _REFUSED_HEADERS:
            return None
        if name == b"host":
            if has_host:
                return None
            has_host = True
        elif name == b"accept":
            if accept is None:
                accept = header[2]
        elif name == b"connection" and header[2].lower() != b"keep-alive":
            return None
    if not has_host:
        return None
    return PlainGet(parts[0] == b"HEAD", parts[1].decode("ascii"), accept is not None and b"msgpack" in accept)


class DoorConnection(asyncio.Protocol):
    """One connection's front door, wrapping aiohttp's RequestHandler `inner` (see the module docstring)."""

    __slots__ = ("buffer", "door", "eof_pending", "inner", "owned_by_aiohttp", "peer", "reading_paused", "transport",
                 "walking", "writing_paused")

    def __init__(self, inner: asyncio.Protocol, door: FrontDoor) -> None:
        self.inner = inner
        self.door = door
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.owned_by_aiohttp = False
        """True once aiohttp may hold part of a request: every later byte is its to read."""
        self.writing_paused = False
        """The client is not reading its answers (the transport's buffer is full): aiohttp, which waits for it to
        drain, answers until it does, so a client that pipelines without reading cannot grow the buffer here."""
        self.peer = ""
        self.walking = False
        """A walk for this connection's request is in progress: later bytes wait in `buffer` until it is answered."""
        self.reading_paused = False
        self.eof_pending = False
        """The client half-closed while a walk was in progress: aiohttp hears of it once the answer is out."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not asyncio subclasses
        peer = transport.get_extra_info("peername")
        self.peer = peer[0] if isinstance(peer, tuple) and peer else ""
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self.owned_by_aiohttp:
            self.inner.data_received(data)
            return
        buffer = self.buffer + data if self.buffer else data
        if self.walking:  # answers leave in request order: the walk's first
            self.buffer = buffer
            if len(buffer) > MAX_HEAD_BYTES and not self.reading_paused and self.transport is not None:
                self.reading_paused = True  # a client pipelining behind a walk is held at the socket, not here
                self.transport.pause_reading()
            return
        while buffer:
            end = buffer.find(_HEAD_END)
            if end < 0:
                if len(buffer) > MAX_HEAD_BYTES or not _may_start_a_get(buffer):
                    self._hand_over_for_good(buffer)
                    return
                self.buffer = buffer  # a head that has not arrived whole yet
                return
            end += 4
            request = parse_plain_get(buffer[:end])
            if request is None:
                self._hand_over_for_good(buffer)
                return
            if not self._answer(request, buffer[:end]):
                self.door.counters.handed_on += 1
                self.inner.data_received(buffer[:end])
            buffer = buffer[end:]
            if self.walking:
                self.buffer = buffer
                return
        self.buffer = b""

    def _hand_over_for_good(self, data: bytes) -> None:
        self.buffer = b""
        self.owned_by_aiohttp = True
        self.door.counters.handed_on += 1
        self.inner.data_received(data)

    def _answer(self, request: PlainGet, head: bytes) -> bool:
        """Answer `request` (whose bytes are `head`) here if the module docstring's conditions hold, or start the
        walk that answers it; False: aiohttp must."""
        if self.writing_paused or not self._aiohttp_idle():
            return False
        door = self.door
        gate = door.gate
        faults = gate.faults
        if faults is not None and faults.active:
            return False
        started = perf_counter()
        transport = self.transport
        assert transport is not None
        if gate.in_flight >= gate.max_in_flight:
            if request.is_head:
                return False
            gate.rejected_busy += 1
            door.counters.answered += 1
            transport.write(gate.busy_http[request.wants_msgpack])
            self._keep_alive()
            return True
        if not request.target.startswith(rest.HANDLE_PATH):
            return False
        media = _MEDIA_TYPES[request.wants_msgpack]
        target = request.target
        hit = door.answers.lookup((target, media))
        iterative = False
        if hit is None and target.endswith(rest.ITERATIVE_QUERY) and target.count("?") == 1:
            # a walk step's GET: the node's own answer to the plain path is its answer (never a walk of this node's)
            target, iterative = target[:-len(rest.ITERATIVE_QUERY)], True
            hit = door.answers.lookup((target, media))
            if hit is not None and hit[3] is not None:
                hit = None
        if hit is not None and hit[3] is not None and hit[3] <= door.clock():
            return False  # a walked answer past its TTL: the resolver walks again
        if hit is None and (request.is_head or door.answer_now is None or gate.rate_limiter is not None):
            return False  # (with a rate limit, a miss that answer_now declines would be charged twice)
        limiter = gate.rate_limiter
        if limiter is not None and not limiter.admit(self.peer, door.clock()):
            return False  # aiohttp's middleware refuses it again, with the message naming the limit
        if hit is not None:
            door.answers.hits[hit[2]] += 1
            if hit[3] is not None and door.resolver is not None:
                door.resolver.note_encoded_hit()
        else:
            assert door.answer_now is not None
            try:
                hit = door.answer_now(target, media)
                walk = door.walk_now(target, media) if hit is None and door.walk_now is not None and not iterative \
                    else None
            except Exception:  # noqa: BLE001 - a bug: aiohttp's route meets it again, logs it, answers 500
                hit = walk = None
            if walk is not None:
                self._start_walk(walk, head, media, started)
                return True
            if hit is None:
                return False
        self._send(transport, hit, media, started, with_body=not request.is_head)
        return True

    def _send(self, transport: asyncio.Transport, hit: CachedAnswer, media: str, started: float, *,
              with_body: bool = True) -> None:
        """Write `hit` as aiohttp would, and count and time it as the gate does."""
        door = self.door
        head = door.head_of(hit[0], media, hit[4]) + http_date() + _SERVER_LINE
        transport.write(b"".join((head, *hit[1])) if with_body else head)
        door.counters.answered += 1
        self._keep_alive()
        door.timer.record(perf_counter() - started)

    def _start_walk(self, walk: Coroutine[Any, Any, CachedAnswer], head: bytes, media: str, started: float) -> None:
        """Answer the request `head` with `walk`'s result once it is done; meanwhile it counts as in flight, as it
        does in the gate, and the connection's later requests wait."""
        self.walking = True
        self.door.gate.in_flight += 1
        task = asyncio.ensure_future(self._finish_walk(walk, head, media, started))
        self.door.walks.add(task)
        task.add_done_callback(self.door.walks.discard)

    async def _finish_walk(self, walk: Coroutine[Any, Any, CachedAnswer], head: bytes, media: str,
                           started: float) -> None:
        door = self.door
        hit: CachedAnswer | None = None
        try:
            hit = await walk
        except Exception:  # noqa: BLE001 - a bug: aiohttp's route meets it again below, logs it, answers 500
            hit = None
        finally:
            door.gate.in_flight -= 1
            self.walking = False
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if hit is None:
            door.counters.handed_on += 1
            self.inner.data_received(head)
        else:
            self._send(transport, hit, media, started)
        if self.reading_paused:
            self.reading_paused = False
            transport.resume_reading()
        pending, self.buffer = self.buffer, b""
        if pending:
            self.data_received(pending)
        if self.eof_pending and not self.walking:
            self.eof_pending = False
            if not self.eof_received():
                transport.close()

    def _aiohttp_idle(self) -> bool:
        """Whether aiohttp waits for a next request with nothing queued, parsed in part, or closing. Read from its
        private state: if these names ever move, every request simply goes to aiohttp."""
        inner = self.inner
        waiter = getattr(inner, "_waiter", None)
        # parked for the next request (the last answer written whole), or never given one: a new connection's
        # first request often arrives before aiohttp's handler task has first run
        waiting = (waiter is not None and not waiter.done()) or getattr(inner, "_request_count", 1) == 0
        return (waiting and not getattr(inner, "_messages", True)
                and getattr(inner, "_payload_parser", 1) is None and not getattr(inner, "_upgraded", True)
                and not getattr(inner, "_force_close", True) and not getattr(inner, "_close", True))

    def _keep_alive(self) -> None:
        """Push aiohttp's keep-alive deadline on, as an answer it sent itself would: a connection the door serves is
        not idle."""
        inner = self.inner
        if hasattr(inner, "_next_keepalive_close_time"):
            inner._next_keepalive_close_time = asyncio.get_running_loop().time() + self.door.keepalive_s  # noqa: SLF001

    def connection_lost(self, exc: Exception | None) -> None:
        self.buffer = b""
        self.inner.connection_lost(exc)

    def eof_received(self) -> bool | None:
        if self.walking:  # keep the connection to answer the walk; aiohttp hears of the end after that
            self.eof_pending = True
            return True
        if self.buffer:  # half a head, then the client stopped sending: aiohttp says what that is
            self._hand_over_for_good(self.buffer)
        return self.inner.eof_received()

    def pause_writing(self) -> None:
        self.writing_paused = True
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.writing_paused = False
        self.inner.resume_writing()


def _may_start_a_get(partial: bytes) -> bool:
    """Whether `partial` can still become a GET or HEAD request line (so waiting for the rest is worth it)."""
    return b"GET "[:len(partial)] == partial[:4] or b"HEAD "[:len(partial)] == partial[:5]
