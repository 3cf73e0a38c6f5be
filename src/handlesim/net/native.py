"""A node's native Handle protocol interface: UDP and TCP listeners driving the node's HandleService.

`NativeResponder` turns one received message into its answers; the asyncio protocols below only move bytes. Most
requests are answered at once, in the same call (decode, `service.handle`, encode): the answer is ready before the
next datagram is read. Only a recursive walk or a challenge answer checked at another node needs to wait; those run
as tasks, at most `max_waiting` at a time (beyond that the answer is 3, server too busy).

Bad input is answered with an error message where the sender can be told (a readable envelope), and dropped
otherwise; no input can make the node hold more than the bounds in `NativeLimits`.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from ..core.codes import OpCode, ResponseCode
from ..core.errors import HandleError, OperationNotSupported, ProtocolError, ServerTooBusy
from ..core.messages import Request, Response
from ..core.prefixes import native_interfaces
from ..core.service import HandleService
from ..core.values import ServerInfo, SiteInfo, ValueReference
from ..wire.native.body import (
    ChallengeAnswerBody,
    ChallengeBody,
    HandlesBody,
    Message,
    RequestDigest,
    SiteBody,
    VerifyBody,
    VerifyResultBody,
    encode_message,
)
from ..wire.native.body import decode_parts as decode_body
from ..wire.native.credential import challenge_message, check_secret_key_answer, decode_secret_key_answer
from ..wire.native.credential import request_digest as digest_of
from ..wire.native.envelope import MAJOR_VERSION, MINOR_VERSION, Envelope, check_version, decode_envelope
from ..wire.native.header import Header, OpFlag, RawMessage, split_message
from ..wire.native.mapping import SERVICE_OPS, answer_header, answer_message, error_message, request_from_message
from ..wire.native.packets import Reassembler, StreamDecoder, frame, to_datagrams
from .answers import EncodedAnswers
from .credentials import Authenticator
from .nativeauth import ChallengeTable, PendingChallenge, verify_answer
from .recursion import RecursiveResolver, walk_needed
from .replication import Replicator
from .verify import RemoteVerifier

log = logging.getLogger(__name__)

Clock = Callable[[], float]
_CACHE_FLAGS = int(OpFlag.AUTH | OpFlag.CERT | OpFlag.CACR | OpFlag.ENCR | OpFlag.PUBL | OpFlag.DNRF | OpFlag.RECU)
"""Request flags an answer depends on (the encoded-answer cache keys on them)."""
_UNCACHED = int(OpFlag.RRDG | OpFlag.CERT)
"""Requests with these flags get answers of their own (a digest of the request, a signature)."""
_PUBL = int(OpFlag.PUBL)
_CACHED_CODES = frozenset({ResponseCode.SUCCESS, ResponseCode.HANDLE_NOT_FOUND, ResponseCode.PREFIX_REFERRAL,
                           ResponseCode.VALUES_NOT_FOUND})
LIST_CHUNK_BYTES = 64 * 1024
"""A handle listing is sent as messages of about this size, all but the last flagged CONT (as the reference does)."""
SAME_PORT_ATTEMPTS = 32
"""Tries at finding one free port number for both UDP and TCP when the listener is given port 0."""
_OP_NAMES = {int(op): op.name.lower() for op in OpCode}


def operation_name(op: int) -> str:
    """The name an operation is counted and timed under (as `/_sim/stats` names REST operations)."""
    return _OP_NAMES.get(op) or str(op)


class NativeEdge(Protocol):
    """What a node's edge (net/gate.py's EdgeGate) decides for the native listener, as it does for REST."""

    def native_hold(self) -> Awaitable[None] | None:
        """An injected fault holding this node's requests (pause, slow, partition from clients), else None."""

    def native_refusal(self, peer: str, waiting: int) -> HandleError | None:
        """Overloaded (in-flight limit, with `waiting` native requests) or over `peer`'s rate: the error to answer."""

    def record(self, operation: str, seconds: float) -> None:
        """Server-side time of one request of `operation`."""


@dataclass(frozen=True)
class NativeLimits:
    """Bounds of one node's native interface."""

    max_waiting: int = 1024
    """Requests waiting on a walk or a remote key check at once; more are answered 3 (server too busy)."""
    max_connections: int = 1024
    """Open TCP connections; more are closed at once."""
    max_queued_per_connection: int = 64
    """Messages read from one TCP connection and not yet answered; a client sending more is disconnected."""
    idle_timeout: float = 60.0
    """Seconds a TCP connection may stay silent."""
    max_partial_messages: int = 256
    """Multi-packet UDP messages being reassembled at once (bytes bounded too: see packets.Reassembler)."""
    reassembly_timeout: float = 10.0
    answer_cache_entries: int = 50_000


@dataclass
class NativeCounters:
    """What the interface saw since it started (the service counts the operations themselves)."""

    udp_packets: int = 0
    udp_messages: int = 0
    tcp_connections: int = 0
    tcp_messages: int = 0
    answers: Counter[int] = field(default_factory=Counter)
    """Answers sent, by response code."""
    protocol_errors: int = 0
    """Messages answered with an error before reaching the service (bad framing, version, body)."""
    dropped: int = 0
    """Input nothing could be answered to (unreadable envelope, a full wait queue on TCP, ...)."""
    challenges: int = 0
    authentication_failures: int = 0
    answered_from_cache: int = 0
    rejected_busy: int = 0
    held: int = 0
    """Messages an injected fault held before they were served."""
    cache_hits: Counter[int] = field(default_factory=Counter)
    """Answers sent from the encoded-answer cache, by response code (the service never saw these requests)."""
    own_answers: Counter[tuple[str, int]] = field(default_factory=Counter)
    """Answers the listener made itself, by (operation, code): site information, challenge results, protocol
    errors, busy. Together with `cache_hits` and the service's own counts, every answer is counted once."""

    def snapshot(self) -> dict[str, Any]:
        return {"udp_packets": self.udp_packets, "udp_messages": self.udp_messages,
                "tcp_connections": self.tcp_connections, "tcp_messages": self.tcp_messages,
                "answers": {str(k): v for k, v in sorted(self.answers.items())},
                "protocol_errors": self.protocol_errors, "dropped": self.dropped, "challenges": self.challenges,
                "authentication_failures": self.authentication_failures,
                "answered_from_cache": self.answered_from_cache, "rejected_busy": self.rejected_busy,
                "held": self.held}


@dataclass
class Reply:
    """The answers to one message: encoded messages that share `envelope`'s ids and version."""

    envelope: Envelope
    messages: list[bytes]


Outcome = Reply | Awaitable[Reply]


class NativeResponder:
    """What a node answers to one native message (no sockets here: the protocols below call `respond`)."""

    def __init__(self, service: HandleService, *, site: SiteInfo | None = None,
                 resolver: RecursiveResolver | None = None, authenticator: Authenticator | None = None,
                 replicator: Replicator | None = None, clock: Clock = time.time,
                 limits: NativeLimits | None = None, edge: NativeEdge | None = None) -> None:
        self.service = service
        self.edge = edge
        """The node's edge: timing by operation (and, at the listener, fault holds and overload)."""
        self.site = site
        """This node's own site (answers OC_GET_SITE_INFO; its serial goes in every answer)."""
        self.resolver = resolver
        self.replicator = replicator
        self.clock = clock
        self.limits = limits or NativeLimits()
        self.authenticator = authenticator or Authenticator(
            service, clock=clock, remote=RemoteVerifier(resolver) if resolver is not None else None)
        self.challenges = ChallengeTable(clock)
        self.counters = NativeCounters()
        self.waiting = 0
        self.answers: EncodedAnswers[tuple[Any, ...], bytes] = EncodedAnswers(self.limits.answer_cache_entries)
        """Encoded answers to public resolutions, by the request's version, flags, recursion count and body."""
        service.listeners.append(self.answers.forget)

    @property
    def site_serial(self) -> int:
        return self.site.serial_number if self.site is not None else 0

    # -- entry -------------------------------------------------------------------------------------------------------

    def respond(self, envelope: Envelope, data: bytes, peer: str) -> Outcome:
        """Answers to the message `data` that arrived with `envelope` from host `peer` (timed at the node's edge)."""
        edge = self.edge
        if edge is None:
            return self._respond(envelope, data, peer)
        started = time.perf_counter()
        outcome = self._respond(envelope, data, peer)
        operation = operation_name(int.from_bytes(data[:4], "big"))
        if isinstance(outcome, Reply):
            edge.record(operation, time.perf_counter() - started)
            return outcome
        return self._timed(outcome, operation, started, edge)

    async def _timed(self, work: Awaitable[Reply], operation: str, started: float, edge: NativeEdge) -> Reply:
        try:
            return await work
        finally:
            edge.record(operation, time.perf_counter() - started)

    def busy_reply(self, envelope: Envelope, data: bytes, exc: HandleError) -> Reply:
        """The answer to a message the node's edge refused (overload, rate): code 3, nothing served."""
        self.counters.rejected_busy += 1
        return self.error_reply(answer_envelope(envelope), _header_of(data), exc)

    def _respond(self, envelope: Envelope, data: bytes, peer: str) -> Outcome:
        out = answer_envelope(envelope)
        try:
            check_version(envelope)
            raw = split_message(data)
            if not raw.header.is_request:
                raise ProtocolError(f"a server takes requests; this message carries response code {raw.header.code}")
            hit = self._cached(out, raw)  # before decoding the body: a cached answer needs only its bytes
            if hit is not None:
                return hit
            message = decode_body(raw)
        except HandleError as exc:
            self.counters.protocol_errors += 1
            return self.error_reply(out, _header_of(data), exc)
        try:
            return self._dispatch(out, envelope, message, raw, peer)
        except HandleError as exc:
            return self.error_reply(out, message.header, exc)
        except Exception:  # the boundary: a bug must not take the node down or leave the client without an answer
            log.exception("native request %s failed", message.header.op)
            return self.error_reply(out, message.header, HandleError("internal error; the request changed nothing"))

    def _dispatch(self, out: Envelope, envelope: Envelope, message: Message, raw: RawMessage, peer: str) -> Outcome:
        op = message.header.op
        if op in SERVICE_OPS:
            return self._serve(out, envelope, message, raw, peer)
        if op == OpCode.GET_SITE_INFO:
            if self.site is None:
                raise ProtocolError("this node has no site information to give")
            return self._reply(out, Message(self._header(message.header, ResponseCode.SUCCESS),
                                            SiteBody(self.site)), own=True)
        if op == OpCode.CHALLENGE_RESPONSE:
            return self._answer_challenge(out, message, peer)
        if op == OpCode.VERIFY_RESPONSE:
            return self._reply(out, Message(self._header(message.header, ResponseCode.SUCCESS),
                                            VerifyResultBody(self._verify(message))), own=True)
        if op <= 0:
            raise ProtocolError(f"operation code {op} is not an operation")
        return self.error_reply(out, message.header, _not_supported(op))

    # -- the service's operations ------------------------------------------------------------------------------------

    def _serve(self, out: Envelope, envelope: Envelope, message: Message, raw: RawMessage, peer: str,
               identity: ValueReference | None = None) -> Outcome:
        header = message.header
        memo = self._memo(out, header, raw.body) if identity is None else None
        request = request_from_message(message)
        if identity is not None:
            request = replace(request, identity=identity, public_only=bool(header.flags & OpFlag.PUBL))
        elif request.op == OpCode.RESOLUTION and not header.flags & OpFlag.PUBL:
            # asking for values that are not public means proving who you are first (as the reference server does)
            return self._challenge(out, envelope, message, raw, peer)
        if request.op == OpCode.LIST_HANDLES:
            return self._list(out, envelope, message, raw, peer, request)
        answer = self.service.handle(request, self.clock())
        if answer.code == ResponseCode.AUTHENTICATION_NEEDED and identity is None:
            return self._challenge(out, envelope, message, raw, peer)
        if walk_needed(answer, request, self.resolver) or (
                answer.code == ResponseCode.PREFIX_REFERRAL and header.flags & OpFlag.DNRF and self.resolver):
            return self._wait(self._walk(out, message, raw, request))
        if self.replicator is not None:
            self.replicator.answered(request, answer)
        reply = self._answer(out, message, raw, answer)
        if memo is not None and answer.code in _CACHED_CODES and request.handle is not None:
            self.answers.keep(memo, request.handle.key, reply.messages[0])
        return reply

    async def _walk(self, out: Envelope, message: Message, raw: RawMessage, request: Request) -> Reply:
        assert self.resolver is not None
        answer = await self.resolver.resolve(replace(request, recursive=True))
        return self._answer(out, message, raw, answer)

    def _list(self, out: Envelope, envelope: Envelope, message: Message, raw: RawMessage, peer: str,
              request: Request) -> Outcome:
        """Every handle under the prefix, read page by page from the service, sent in CONT-chained messages."""
        page_size = self.service.config.limits.max_page_size
        handles: list[str] = []
        page = 0
        while True:
            answer = self.service.handle(replace(request, page=page, page_size=page_size), self.clock())
            if answer.code == ResponseCode.AUTHENTICATION_NEEDED and request.identity is None:
                return self._challenge(out, envelope, message, raw, peer)
            if not answer.ok:
                return self._answer(out, message, raw, answer)
            handles.extend(answer.handles)
            if not answer.handles or len(handles) >= answer.total_count:
                break
            page += 1
        header = self._header(message.header, ResponseCode.SUCCESS)
        digest = self._digest(out, message, raw)
        chunks = _chunks(handles) or [[]]
        messages = []
        for n, chunk in enumerate(chunks):
            flags = header.flags | OpFlag.CONT if n < len(chunks) - 1 else header.flags
            messages.append(encode_message(Message(replace(header, flags=flags), HandlesBody(tuple(chunk)), digest)))
        self.counters.answers[ResponseCode.SUCCESS] += 1
        return Reply(out, messages)

    # -- challenge-response ------------------------------------------------------------------------------------------

    def _challenge(self, out: Envelope, envelope: Envelope, message: Message, raw: RawMessage, peer: str) -> Reply:
        digest = digest_of(raw.signed_part, envelope.answer_version)
        challenge = self.challenges.issue(envelope, message, raw, digest, peer)
        self.counters.challenges += 1
        header = self._header(message.header, ResponseCode.AUTHENTICATION_NEEDED)
        # not an own answer: a challenged write was counted by the service (402), a challenged read by `challenges`
        return self._reply(replace(out, session_id=challenge.session_id),
                           Message(header, ChallengeBody(challenge.nonce), digest))

    def _answer_challenge(self, out: Envelope, message: Message, peer: str) -> Outcome:
        challenge = self.challenges.take(out.session_id, peer)
        if challenge is None:
            self.counters.authentication_failures += 1
            return self.error_reply(out, message.header, HandleError(
                f"no challenge {out.session_id} is waiting for an answer from {peer} (expired, answered, or never "
                "issued)"), code=ResponseCode.AUTHEN_TIMEOUT)
        assert isinstance(message.body, ChallengeAnswerBody)
        return self._wait(self._after_answer(out, challenge, message.body, peer))

    async def _after_answer(self, out: Envelope, challenge: PendingChallenge, answer: ChallengeAnswerBody,
                            peer: str) -> Reply:
        original = challenge.request
        try:
            identity = await verify_answer(self.authenticator, challenge, answer)
        except HandleError as exc:
            self.counters.authentication_failures += 1
            return self.error_reply(out, original.header, exc)
        outcome = self._serve(out, challenge.envelope, original, challenge.raw, peer, identity)
        return outcome if isinstance(outcome, Reply) else await outcome

    def _verify(self, message: Message) -> bool:
        """OC_VERIFY_CHALLENGE: a third party asks whether an HS_SECKEY answer is right (keys held here only)."""
        body = message.body
        assert isinstance(body, VerifyBody)
        identity = ValueReference(body.handle, body.index)
        key = self.authenticator.local_secret_digest(identity)
        if key is None:
            return False
        proof = decode_secret_key_answer(body.answer)
        return check_secret_key_answer(proof, key, challenge_message(body.nonce, body.digest))

    # -- answers -----------------------------------------------------------------------------------------------------

    def _header(self, request: Header, code: int) -> Header:
        return answer_header(request, code, site_serial=self.site_serial,
                             authoritative=not self.service.config.read_only, now=self.clock())

    def _digest(self, out: Envelope, message: Message, raw: RawMessage) -> RequestDigest | None:
        if not message.header.flags & OpFlag.RRDG:
            return None
        return digest_of(raw.signed_part, (out.major, out.minor))

    def _answer(self, out: Envelope, message: Message, raw: RawMessage, answer: Response) -> Reply:
        if answer.code == ResponseCode.AUTHENTICATION_NEEDED:  # a re-run that still lacks the right identity
            return self.error_reply(out, message.header, HandleError(answer.message), code=ResponseCode.INVALID_ADMIN)
        native = answer_message(message.header, answer, site_serial=self.site_serial,
                                authoritative=not self.service.config.read_only, now=self.clock(),
                                digest=self._digest(out, message, raw))
        return self._reply(out, native)

    def _reply(self, out: Envelope, message: Message, *, own: bool = False) -> Reply:
        try:
            encoded = encode_message(message)
        except HandleError as exc:  # a stored value with no native form (e.g. a site serial over 65535)
            log.warning("cannot encode a native answer: %s", exc.message)
            problem = HandleError(f"the answer cannot be sent natively: {exc.message}")
            return self.error_reply(out, message.header, problem)
        code = message.header.code
        self.counters.answers[code] += 1
        if own:
            self.counters.own_answers[(operation_name(message.header.op), code)] += 1
        return Reply(out, [encoded])

    def error_reply(self, out: Envelope, request: Header, exc: HandleError, *, code: int | None = None) -> Reply:
        """An error answer to `request` (a code that needs a body of its own becomes 2, error)."""
        code = int(exc.response_code) if code is None else code
        if code in (ResponseCode.SUCCESS, ResponseCode.AUTHENTICATION_NEEDED, ResponseCode.SERVICE_REFERRAL,
                    ResponseCode.PREFIX_REFERRAL):
            code = ResponseCode.ERROR
        self.counters.answers[code] += 1
        self.counters.own_answers[(operation_name(request.op), code)] += 1
        error = error_message(request, code, exc.message[:1024], site_serial=self.site_serial, now=self.clock())
        return Reply(out, [encode_message(error)])

    def _wait(self, work: Awaitable[Reply]) -> Outcome:
        if self.waiting >= self.limits.max_waiting:
            if asyncio.iscoroutine(work):
                work.close()
            self.counters.rejected_busy += 1
            raise ServerTooBusy(f"server too busy: {self.waiting} requests waiting (limit max_waiting)")
        return self._counted(work)

    def counted(self, work: Awaitable[Reply]) -> Awaitable[Reply]:
        """`work`, counted among the requests waiting (bounded by `max_waiting`)."""
        return self._counted(work)

    async def _counted(self, work: Awaitable[Reply]) -> Reply:
        self.waiting += 1
        try:
            return await work
        finally:
            self.waiting -= 1

    # -- encoded-answer cache ----------------------------------------------------------------------------------------

    def _cached(self, out: Envelope, raw: RawMessage) -> Reply | None:
        """The encoded answer to an identical public resolution, if one is cached."""
        memo = self._memo(out, raw.header, raw.body)
        hit = self.answers.lookup(memo) if memo is not None else None
        if hit is None:
            return None
        code = int.from_bytes(hit[4:8], "big")
        counters = self.counters
        counters.answered_from_cache += 1
        counters.answers[code] += 1
        counters.cache_hits[code] += 1
        return Reply(out, [hit])

    def _memo(self, out: Envelope, header: Header, body: bytes) -> tuple[Any, ...] | None:
        flags = int(header.flags)  # plain ints: IntFlag arithmetic costs microseconds per request
        if (header.op != OpCode.RESOLUTION or flags & _UNCACHED or not flags & _PUBL
                or self.limits.answer_cache_entries <= 0):
            return None
        return (out.major, out.minor, flags & _CACHE_FLAGS, header.recursion_count, body)


def answer_envelope(envelope: Envelope) -> Envelope:
    """The envelope of answers to a message that came with `envelope`: same ids, the version the sender suggests
    (capped at ours; unchanged when the sender's version is refused), and ours as the suggestion."""
    major, minor = envelope.answer_version
    if major != MAJOR_VERSION:
        major, minor = envelope.major, envelope.minor
    # built field by field: dataclasses.replace costs more than the rest of a cached answer
    return Envelope(major, minor, MAJOR_VERSION, MINOR_VERSION, False, False, False, envelope.session_id,
                    envelope.request_id, 0, envelope.length)


def _header_of(data: bytes) -> Header:
    """The request's operation for an error answer, when at least that much of the header arrived."""
    op = int.from_bytes(data[:4], "big") if len(data) >= 4 else 0
    return Header(op if 0 < op < 0x7FFFFFFF else 0)


def _not_supported(op: int) -> HandleError:
    name = OpCode(op).name.lower() if op in OpCode._value2member_map_ else str(op)
    return OperationNotSupported(f"operation {name} is not supported by this node's native interface "
                                 "(no sessions, no replication over the native protocol)")


def _chunks(handles: list[str]) -> list[list[str]]:
    chunks: list[list[str]] = []
    size = LIST_CHUNK_BYTES
    for handle in handles:
        length = 4 + len(handle.encode("utf-8"))
        if size + length > LIST_CHUNK_BYTES:
            chunks.append([])
            size = 0
        chunks[-1].append(handle)
        size += length
    return chunks


# -- transports ------------------------------------------------------------------------------------------------------


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, listener: NativeListener) -> None:
        self.listener = listener
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.listener.udp_packet(self, data, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("native UDP: %s", exc)

    def send(self, reply: Reply, addr: tuple[str | Any, int]) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        for message in reply.messages:
            for packet in to_datagrams(reply.envelope, message):
                self.transport.sendto(packet, addr)


class _TcpProtocol(asyncio.Protocol):
    def __init__(self, listener: NativeListener) -> None:
        self.listener = listener
        self.transport: asyncio.Transport | None = None
        self.decoder = StreamDecoder()
        self.queue: deque[tuple[Envelope, bytes]] = deque()
        self.worker: asyncio.Task[None] | None = None
        self.peer = ""
        self.idle: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:  # request/answer exchanges: Nagle + delayed ACKs would add 40 ms stalls
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        peer = transport.get_extra_info("peername")
        self.peer = str(peer[0]) if peer else ""
        if not self.listener.admit(self):
            transport.close()
            return
        self._arm_idle()

    def connection_lost(self, exc: Exception | None) -> None:
        self.listener.gone(self)
        if self.idle is not None:
            self.idle.cancel()
        if self.worker is not None:
            self.worker.cancel()

    def data_received(self, data: bytes) -> None:
        self._arm_idle()
        try:
            frames = self.decoder.feed(data)
        except ProtocolError as exc:  # the stream cannot be resynchronised: answer what went wrong, then close
            self.listener.responder.counters.protocol_errors += 1
            reply = self.listener.responder.error_reply(Envelope(), Header(0), exc)
            self._write(reply)
            self.close()
            return
        if len(self.queue) + len(frames) > self.listener.limits.max_queued_per_connection:
            self.listener.responder.counters.dropped += len(frames)
            self.close()
            return
        self.queue.extend(frames)
        if self.worker is None:
            self._drain_now()

    def _drain_now(self) -> None:
        """Answer queued messages synchronously while their answers are ready; hand over to a task otherwise."""
        while self.queue and self.transport is not None and not self.transport.is_closing():
            envelope, data = self.queue.popleft()
            self.listener.responder.counters.tcp_messages += 1
            outcome = self.listener.responder_outcome(envelope, data, self.peer)
            if outcome is None:
                continue
            if isinstance(outcome, Reply):
                self._write(outcome)
                continue
            self.worker = asyncio.ensure_future(self._drain_later(outcome))
            return

    async def _drain_later(self, first: Awaitable[Reply]) -> None:
        try:
            self._write(await first)
        except Exception:  # the boundary: a bug must not leave the client hanging without an answer
            log.exception("native TCP request failed")
            self.close()
        finally:
            self.worker = None
        self._drain_now()

    def _write(self, reply: Reply) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        self.transport.write(b"".join(frame(reply.envelope, m) for m in reply.messages))

    def _arm_idle(self) -> None:
        if self.idle is not None:
            self.idle.cancel()
        loop = asyncio.get_running_loop()
        self.idle = loop.call_later(self.listener.limits.idle_timeout, self.close)

    def close(self, *, abrupt: bool = False) -> None:
        if self.transport is not None and not self.transport.is_closing():
            if abrupt:
                self.transport.abort()
            else:
                self.transport.close()


class NativeListener:
    """A node's native interface on UDP and TCP. Build with the node's service, then `await start(...)`.

    `edge` (the node's EdgeGate) makes injected faults, the overload and rate limits and the per-operation timers
    apply here as they do to REST; without one the listener answers everything it can."""

    def __init__(self, service: HandleService, *, site: SiteInfo | None = None,
                 resolver: RecursiveResolver | None = None, authenticator: Authenticator | None = None,
                 replicator: Replicator | None = None, clock: Clock = time.time,
                 limits: NativeLimits | None = None, edge: NativeEdge | None = None) -> None:
        self.limits = limits or NativeLimits()
        self.responder = NativeResponder(service, site=site, resolver=resolver, authenticator=authenticator,
                                         replicator=replicator, clock=clock, limits=self.limits, edge=edge)
        self.edge = edge
        self.host = ""
        self.clock = clock
        self.reassembler = Reassembler(max_pending=self.limits.max_partial_messages,
                                       timeout=self.limits.reassembly_timeout)
        self.udp_port = 0
        self.tcp_port = 0
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._connections: set[_TcpProtocol] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def counters(self) -> NativeCounters:
        return self.responder.counters

    @property
    def site(self) -> SiteInfo | None:
        """The node's own site (OC_GET_SITE_INFO answers it; its serial goes in every answer)."""
        return self.responder.site

    @site.setter
    def site(self, site: SiteInfo | None) -> None:
        self.responder.site = site

    @property
    def listening(self) -> bool:
        return self._udp is not None or self._tcp is not None

    async def start_on(self, host: str, port: int) -> int:
        """Listen on `host`, UDP and TCP on the one port number `port` (0: a free number free for both, as a
        Handle.Net server uses 2641 for both); returns it."""
        if port:
            await self.start(host, port, port)
            return port
        for _ in range(SAME_PORT_ATTEMPTS):
            await self._listen_tcp(host, 0)
            try:
                await self._listen_udp(host, self.tcp_port)
            except OSError as exc:
                self._close_tcp()
                if exc.errno != errno.EADDRINUSE:
                    raise
                continue  # that number is taken for UDP: draw another
            self._describe(host)
            return self.tcp_port
        raise OSError(errno.EADDRINUSE, f"no port number on {host} was free for both UDP and TCP in "
                                        f"{SAME_PORT_ATTEMPTS} tries")

    async def start(self, host: str, udp_port: int, tcp_port: int) -> tuple[int, int]:
        """Listen on `host` (UDP and TCP; port 0 picks a free one); returns the (udp, tcp) ports."""
        await self._listen_udp(host, udp_port)
        try:
            await self._listen_tcp(host, tcp_port)
        except OSError:
            self._close_udp()
            raise
        self._describe(host)
        return self.udp_port, self.tcp_port

    async def _listen_udp(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: _UdpProtocol(self), local_addr=(host, port))
        self._udp = transport
        self.udp_port = transport.get_extra_info("sockname")[1]

    async def _listen_tcp(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        self._tcp = await loop.create_server(lambda: _TcpProtocol(self), host, port, reuse_address=True,
                                             backlog=1024)
        self.tcp_port = self._tcp.sockets[0].getsockname()[1]

    def _describe(self, host: str) -> None:
        self.host = host
        if self.responder.site is None:  # answer OC_GET_SITE_INFO with what this listener is
            self.responder.site = SiteInfo(servers=(ServerInfo(1, host, native_interfaces(self.tcp_port,
                                                                                           self.udp_port)),),
                                           attributes=(("desc", self.responder.service.config.node_id),))

    async def stop(self) -> None:
        tcp = self._tcp
        self.close()
        if tcp is not None:
            with contextlib.suppress(Exception):  # the server is closed already; waiting only tidies up
                await tcp.wait_closed()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def close(self, *, abrupt: bool = True) -> bool:
        """Stop listening and close every connection (reset when `abrupt`); False when it was not listening."""
        was = self.close_listeners()
        self.close_connections(abrupt=abrupt)
        return was

    def close_listeners(self) -> bool:
        """Stop listening at once (a fault's kill or stop): the UDP socket and the TCP listener close and UDP work
        still waiting is dropped; open TCP connections stay (see `close_connections`). False when not listening."""
        was = self.listening
        self._close_udp()
        self._close_tcp()
        for task in list(self._tasks):
            task.cancel()
        return was

    def close_connections(self, *, abrupt: bool) -> None:
        for connection in list(self._connections):
            connection.close(abrupt=abrupt)

    async def reopen(self) -> None:
        """Listen again on the ports it had (a fault's start)."""
        if not self.listening and self.udp_port and self.tcp_port:
            await self.start(self.host, self.udp_port, self.tcp_port)

    def _close_udp(self) -> None:
        if self._udp is not None:
            self._udp.close()
            self._udp = None

    def _close_tcp(self) -> None:
        if self._tcp is not None:
            self._tcp.close()
            self._tcp = None

    def snapshot(self) -> dict[str, Any]:
        return {"udp_port": self.udp_port, "tcp_port": self.tcp_port, "tcp_open": len(self._connections),
                "reassembling": self.reassembler.pending, "waiting": self.responder.waiting,
                "challenges_pending": len(self.responder.challenges), **self.counters.snapshot()}

    # -- called by the protocols -------------------------------------------------------------------------------------

    def responder_outcome(self, envelope: Envelope, data: bytes, peer: str) -> Outcome | None:
        """The answers to one message, after the node's edge: an injected fault may hold it first (None: dropped,
        a held node keeps silent rather than answer 3), overload or a client's rate refuse it with code 3."""
        edge = self.edge
        if edge is None:
            return self.responder.respond(envelope, data, peer)
        hold = edge.native_hold()
        if hold is not None:
            return self._held(hold, envelope, data, peer)
        refused = edge.native_refusal(peer, self.responder.waiting)
        if refused is not None:
            return self.responder.busy_reply(envelope, data, refused)
        return self.responder.respond(envelope, data, peer)

    def _held(self, hold: Awaitable[None], envelope: Envelope, data: bytes, peer: str) -> Outcome | None:
        responder = self.responder
        if responder.waiting >= self.limits.max_waiting:
            if asyncio.iscoroutine(hold):
                hold.close()
            responder.counters.dropped += 1
            return None
        responder.counters.held += 1
        return responder.counted(self._after_hold(hold, envelope, data, peer))

    async def _after_hold(self, hold: Awaitable[None], envelope: Envelope, data: bytes, peer: str) -> Reply:
        await hold
        outcome = self.responder.respond(envelope, data, peer)
        return outcome if isinstance(outcome, Reply) else await outcome

    def udp_packet(self, protocol: _UdpProtocol, data: bytes, addr: tuple[str | Any, int]) -> None:
        counters = self.counters
        counters.udp_packets += 1
        try:
            whole = self.reassembler.feed(addr, data, self.clock())
        except ProtocolError as exc:
            counters.protocol_errors += 1
            envelope = _envelope_of(data)
            if envelope is None:
                counters.dropped += 1
                return
            protocol.send(self.responder.error_reply(envelope, Header(0), exc), addr)
            return
        if whole is None:
            return
        envelope, message = whole
        counters.udp_messages += 1
        outcome = self.responder_outcome(envelope, message, str(addr[0]))
        if outcome is None:
            return
        if isinstance(outcome, Reply):
            protocol.send(outcome, addr)
            return
        task = asyncio.ensure_future(self._send_later(protocol, outcome, addr))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send_later(self, protocol: _UdpProtocol, outcome: Awaitable[Reply], addr: tuple[str | Any, int]) -> None:
        try:
            protocol.send(await outcome, addr)
        except Exception:  # the boundary: log, and let the client time out rather than take the node down
            log.exception("native UDP request failed")

    def admit(self, connection: _TcpProtocol) -> bool:
        if len(self._connections) >= self.limits.max_connections:
            self.counters.rejected_busy += 1
            return False
        self._connections.add(connection)
        self.counters.tcp_connections += 1
        return True

    def gone(self, connection: _TcpProtocol) -> None:
        self._connections.discard(connection)


def _envelope_of(data: bytes) -> Envelope | None:
    """The ids to answer a bad packet with, if it has an envelope at all."""
    try:
        return decode_envelope(data, check_length=False)
    except ProtocolError:
        return None

