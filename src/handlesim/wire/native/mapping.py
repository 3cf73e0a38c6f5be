"""Native messages <-> the core's Request and Response: the one place that knows what each flag and body means.

Flags: AUTH -> `authoritative`, PUBL -> `public_only`, RECU -> `recursive`, OVRW -> `overwrite`, MINT ->
`mint_new_suffix`, the header's recursion count -> `hops`. Listing and homing name their prefix by its prefix handle
(`0.NA/88.101`), or bare (`88.101`) as the reference server also accepts. Answers echo the request's flags the way
the reference server does (AbstractMessage.takeValuesFrom): AUTH, CERT, CACR, ENCR, PUBL, DNRF.
"""

from __future__ import annotations

from typing import Any

from ...core.codes import OpCode, ResponseCode
from ...core.errors import InvalidHandle, OperationNotSupported, ProtocolError
from ...core.handle import NA_PREFIX, Handle, Prefix
from ...core.messages import Request, Response
from .body import (
    REFERRAL_CODES,
    Body,
    ChallengeBody,
    CreatedBody,
    EmptyBody,
    ErrorBody,
    HandleBody,
    HandlesBody,
    IndexesBody,
    Message,
    RequestDigest,
    ResolutionBody,
    ValuesBody,
)
from .header import NO_FLAGS, Header, OpFlag

SERVICE_OPS = frozenset({OpCode.RESOLUTION, OpCode.CREATE_HANDLE, OpCode.DELETE_HANDLE, OpCode.ADD_VALUE,
                         OpCode.REMOVE_VALUE, OpCode.MODIFY_VALUE, OpCode.LIST_HANDLES, OpCode.HOME_NA,
                         OpCode.UNHOME_NA, OpCode.LIST_HOMED_NAS})
"""Operations a node's HandleService answers; the listener itself answers site info and challenge-response."""
ECHOED_FLAGS = OpFlag.AUTH | OpFlag.CERT | OpFlag.CACR | OpFlag.ENCR | OpFlag.PUBL | OpFlag.DNRF
ANSWER_LIFETIME = 43_200
"""Seconds an answer stays valid (the reference's default expiration: twelve hours)."""
_PREFIX_OPS = frozenset({OpCode.LIST_HANDLES, OpCode.HOME_NA, OpCode.UNHOME_NA})


# -- requests ------------------------------------------------------------------------------------------------------


def request_from_message(message: Message) -> Request:
    """The core request a native request asks for; OperationNotSupported for operations no service answers."""
    header, body = message.header, message.body
    if header.op not in SERVICE_OPS:
        raise OperationNotSupported(f"operation {header.op} is not supported by this node's native interface")
    op = OpCode(header.op)
    flags = header.flags

    def request(**fields: Any) -> Request:
        return Request(op, authoritative=bool(flags & OpFlag.AUTH), public_only=bool(flags & OpFlag.PUBL),
                       recursive=bool(flags & OpFlag.RECU), hops=header.recursion_count, **fields)

    if op == OpCode.LIST_HOMED_NAS:
        return request()
    if not isinstance(body, HandleBody | ResolutionBody | ValuesBody | IndexesBody):
        raise ProtocolError(f"operation {op.name.lower()} carries no handle")
    if op in _PREFIX_OPS:
        return request(prefix=prefix_named(body.handle))
    handle = Handle.from_text(body.handle)
    if isinstance(body, ResolutionBody):
        return request(handle=handle, types=body.types, indexes=body.indexes)
    if isinstance(body, ValuesBody):
        return request(handle=handle, values=body.values, overwrite=bool(flags & OpFlag.OVRW),
                       mint_new_suffix=bool(flags & OpFlag.MINT))
    if isinstance(body, IndexesBody):
        return request(handle=handle, indexes=body.indexes)
    return request(handle=handle)


def prefix_named(text: str) -> Prefix:
    """`0.NA/88.101` or `88.101` -> prefix `88.101`."""
    if "/" not in text:
        return Prefix.from_text(text)
    handle = Handle.from_text(text)
    if not handle.is_prefix_handle:
        raise InvalidHandle(f"{text} is not a prefix handle (0.NA/<prefix>)", handle=text)
    return handle.described_prefix()


def message_from_request(request: Request, *, flags: OpFlag = NO_FLAGS, recursion_count: int | None = None,
                         expiration: int = 0) -> Message:
    """The native form of a core request (a client's side; the identity travels in the challenge-response)."""
    bits = flags
    for wanted, flag in ((request.authoritative, OpFlag.AUTH), (request.public_only, OpFlag.PUBL),
                         (request.recursive, OpFlag.RECU), (bool(request.overwrite and request.values), OpFlag.OVRW),
                         (request.mint_new_suffix, OpFlag.MINT)):
        if wanted:
            bits |= flag
    hops = request.hops if recursion_count is None else recursion_count
    header = Header(int(request.op), 0, bits, -1, hops, expiration)
    return Message(header, _request_body(request))


def _request_body(request: Request) -> Body:
    op = request.op
    if op == OpCode.LIST_HOMED_NAS:
        return HandleBody("")
    if op in _PREFIX_OPS:
        prefix = request.prefix if request.prefix is not None else _described(request)
        return HandleBody(prefix.prefix_handle().text)
    handle = request.handle_text
    if op == OpCode.RESOLUTION:
        return ResolutionBody(handle, request.indexes, request.types)
    if op in (OpCode.CREATE_HANDLE, OpCode.ADD_VALUE, OpCode.MODIFY_VALUE):
        return ValuesBody(handle, request.values)
    if op == OpCode.REMOVE_VALUE:
        return IndexesBody(handle, request.indexes)
    return HandleBody(handle)


def _described(request: Request) -> Prefix:
    if request.handle is not None and request.handle.is_prefix_handle:
        return request.handle.described_prefix()
    raise ProtocolError(f"operation {request.op.name.lower()} needs a prefix")


# -- answers -------------------------------------------------------------------------------------------------------


def answer_header(request: Header, code: int, *, site_serial: int, authoritative: bool, now: float) -> Header:
    flags = request.flags & ECHOED_FLAGS
    if authoritative:
        flags |= OpFlag.AUTH
    return Header(request.op, code, flags, site_serial, request.recursion_count, int(now) + ANSWER_LIFETIME)


def answer_message(request: Header, response: Response, *, site_serial: int = 0, authoritative: bool = True,
                   now: float = 0.0, digest: RequestDigest | None = None) -> Message:
    """The native answer to `request` carrying the core `response`."""
    header = answer_header(request, int(response.code), site_serial=site_serial, authoritative=authoritative, now=now)
    return Message(header, answer_body(request.op, response), digest)


def answer_body(op: int, response: Response) -> Body:
    code = response.code
    if code == ResponseCode.SUCCESS:
        if op == OpCode.RESOLUTION:
            return ValuesBody(response.handle, response.values)
        if op == OpCode.CREATE_HANDLE:
            return CreatedBody(response.handle or None)
        if op == OpCode.LIST_HANDLES:
            return HandlesBody(response.handles)
        if op == OpCode.LIST_HOMED_NAS:
            return HandlesBody(tuple(Handle(NA_PREFIX, p).text for p in response.handles))
        return EmptyBody()
    if code in REFERRAL_CODES:
        return ValuesBody(response.handle, response.values)
    if code == ResponseCode.AUTHENTICATION_NEEDED:
        raise ProtocolError("a 402 answer is a challenge: build it with the nonce (ChallengeBody)")
    return ErrorBody(response.message)


def error_message(request: Header, code: int, text: str, *, site_serial: int = 0, now: float = 0.0) -> Message:
    """An error answer (any code but success, referrals and 402)."""
    return Message(answer_header(request, code, site_serial=site_serial, authoritative=False, now=now), ErrorBody(text))


def response_from_message(message: Message) -> Response:
    """The core response a native answer carries (a client's side)."""
    header, body = message.header, message.body
    code = ResponseCode.from_int(header.code)
    if isinstance(body, ValuesBody):
        return Response(code, body.handle, body.values)
    if isinstance(body, HandlesBody):
        handles = body.handles
        if header.op == OpCode.LIST_HOMED_NAS:
            handles = tuple(h.split("/", 1)[1] if h.upper().startswith("0.NA/") else h for h in handles)
        return Response(code, handles=handles, total_count=len(handles), listing=True)
    if isinstance(body, CreatedBody):
        return Response(code, body.handle or "")
    if isinstance(body, ErrorBody):
        return Response(code, message=body.message)
    if isinstance(body, ChallengeBody):
        return Response(code, message="authentication needed: answer the challenge")
    return Response(code)
