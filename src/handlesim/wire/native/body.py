"""Message bodies per operation and response code (RFC 3652 sections 3 and 4; Handle.Net v9's Encoder).

Requests (response code 0)            body
  1 resolution                        handle, index list (int4 count + int4s), type list (int4 count + strings)
  2, 101, 105, 300, 301, 302, 401     handle (the prefix handle `0.NA/<prefix>` for 105, 300, 301)
  100 create, 102 add, 104 modify     handle, value count, values
  103 remove values                   handle, index list
  200 answer to a challenge           key type (HS_SECKEY | HS_PUBKEY), identity handle, identity index, answer
  201 verify a challenge answer       handle, index, nonce, digest of the challenged request, answer
Answers (response code != 0), after a request digest (hash code octet + digest) when RRDG is set
  1 to resolution                     handle, value count, values
  1 to create                         nothing, or the (minted) handle
  1 to list handles / homed prefixes  count, handles
  1 to get site info                  an HS_SITE record
  1 to verify                         octet: 1 valid, 0 not
  1 to anything else                  nothing
  302, 303 referral                   handle, then (optional) value count and the site values to follow
  402 challenge                       nonce
  any other code                      message (UTF8-String)
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ...core.codes import OpCode, ResponseCode
from ...core.values import HandleValue, SiteInfo
from .header import Header, OpFlag, RawMessage, split_message
from .primitives import Reader, Writer
from .records import MAX_HANDLE_BYTES, MAX_VALUES, decode_site, decode_values, encode_site, encode_value

MAX_FILTER_ITEMS = 1024
"""Most indexes or types one request may list (the service applies its own, smaller, limit)."""
MAX_LISTED_HANDLES = 1_000_000
MAX_NONCE_BYTES = 1024
MAX_ANSWER_BYTES = 16 * 1024
"""Largest challenge answer (an RSA-8192 signature is 1 KB; a PBKDF2 answer under 100 bytes)."""

HASH_MD5_OLD, HASH_MD5, HASH_SHA1, HASH_SHA256 = 0, 1, 2, 3
DIGEST_SIZES = {HASH_MD5: 16, HASH_SHA1: 20, HASH_SHA256: 32}
"""Request digest sizes by hash code (Common.HASH_CODE_*); code 0 is the pre-2.1 length-prefixed MD5."""


# -- bodies -----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HandleBody:
    handle: str


@dataclass(frozen=True, slots=True)
class ResolutionBody:
    handle: str
    indexes: tuple[int, ...] = ()
    types: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ValuesBody:
    """A handle and values: create/add/modify requests, resolution answers, referrals."""

    handle: str
    values: tuple[HandleValue, ...] = ()


@dataclass(frozen=True, slots=True)
class IndexesBody:
    handle: str
    indexes: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class ChallengeAnswerBody:
    key_type: str
    """`HS_SECKEY` or `HS_PUBKEY`."""
    identity_handle: str
    identity_index: int
    answer: bytes
    """The signed response; its layout depends on `key_type` (credential.py)."""


@dataclass(frozen=True, slots=True)
class RequestDigest:
    hash_code: int
    digest: bytes


@dataclass(frozen=True, slots=True)
class VerifyBody:
    """OC_VERIFY_CHALLENGE: is `answer` right for the challenge `nonce` over `digest`, under key `index:handle`?"""

    handle: str
    index: int
    nonce: bytes
    digest: RequestDigest
    answer: bytes


@dataclass(frozen=True, slots=True)
class ErrorBody:
    message: str = ""


@dataclass(frozen=True, slots=True)
class ChallengeBody:
    nonce: bytes


@dataclass(frozen=True, slots=True)
class HandlesBody:
    handles: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SiteBody:
    site: SiteInfo


@dataclass(frozen=True, slots=True)
class CreatedBody:
    handle: str | None = None


@dataclass(frozen=True, slots=True)
class VerifyResultBody:
    valid: bool


@dataclass(frozen=True, slots=True)
class EmptyBody:
    pass


@dataclass(frozen=True, slots=True)
class OpaqueBody:
    """The body of an operation this implementation does not decode (sessions, replication)."""

    raw: bytes = b""


Body = (HandleBody | ResolutionBody | ValuesBody | IndexesBody | ChallengeAnswerBody | VerifyBody | ErrorBody
        | ChallengeBody | HandlesBody | SiteBody | CreatedBody | VerifyResultBody | EmptyBody | OpaqueBody)

_HANDLE_ONLY_REQUESTS = frozenset({OpCode.GET_SITE_INFO, OpCode.DELETE_HANDLE, OpCode.LIST_HANDLES,
                                   OpCode.LIST_HOMED_NAS, OpCode.HOME_NA, OpCode.UNHOME_NA, OpCode.SESSION_TERMINATE})
_VALUES_REQUESTS = frozenset({OpCode.CREATE_HANDLE, OpCode.ADD_VALUE, OpCode.MODIFY_VALUE})
_LIST_ANSWERS = frozenset({OpCode.LIST_HANDLES, OpCode.LIST_HOMED_NAS})
REFERRAL_CODES = frozenset({ResponseCode.SERVICE_REFERRAL, ResponseCode.PREFIX_REFERRAL})


@dataclass(frozen=True, slots=True)
class Message:
    """One native message with its body decoded. Answers carry `digest` when they return a request digest."""

    header: Header
    body: Body = field(default_factory=EmptyBody)
    digest: RequestDigest | None = None
    credential: bytes = b""


# -- encoding --------------------------------------------------------------------------------------------------------


def encode_message(message: Message) -> bytes:
    """Header, body and credential; RRDG is set exactly when an answer carries a request digest."""
    header = message.header
    out = Writer()
    if not header.is_request:
        flags = header.flags & ~OpFlag.RRDG
        if message.digest is not None:
            flags |= OpFlag.RRDG
            out.byte(message.digest.hash_code)
            if message.digest.hash_code == HASH_MD5_OLD:
                out.byte_string(message.digest.digest)
            else:
                out.raw(message.digest.digest)
        if flags != header.flags:
            header = Header(header.op, header.code, flags, header.site_serial, header.recursion_count,
                            header.expiration)
    _encode_body(out, message.body)
    return RawMessage(header, out.getvalue(), message.credential).encode()


def encode_body(body: Body) -> bytes:
    out = Writer()
    _encode_body(out, body)
    return out.getvalue()


def _encode_body(out: Writer, body: Body) -> None:
    if isinstance(body, HandleBody):
        out.text(body.handle)
    elif isinstance(body, ResolutionBody):
        out.text(body.handle).int_list(body.indexes).text_list(body.types)
    elif isinstance(body, ValuesBody):
        out.text(body.handle).int4(len(body.values))
        for value in body.values:
            out.raw(encode_value(value))
    elif isinstance(body, IndexesBody):
        out.text(body.handle).int_list(body.indexes)
    elif isinstance(body, ChallengeAnswerBody):
        out.text(body.key_type).text(body.identity_handle).int4(body.identity_index).byte_string(body.answer)
    elif isinstance(body, VerifyBody):
        out.text(body.handle).int4(body.index).byte_string(body.nonce).byte(body.digest.hash_code)
        out.raw(body.digest.digest) if body.digest.hash_code else out.byte_string(body.digest.digest)
        out.byte_string(body.answer)
    elif isinstance(body, ErrorBody):
        out.text(body.message)
    elif isinstance(body, ChallengeBody):
        out.byte_string(body.nonce)
    elif isinstance(body, HandlesBody):
        out.text_list(body.handles)
    elif isinstance(body, SiteBody):
        out.raw(encode_site(body.site))
    elif isinstance(body, CreatedBody):
        if body.handle is not None:
            out.text(body.handle)
    elif isinstance(body, VerifyResultBody):
        out.byte(1 if body.valid else 0)
    elif isinstance(body, OpaqueBody):
        out.raw(body.raw)


# -- decoding --------------------------------------------------------------------------------------------------------


def decode_message(data: bytes) -> tuple[Message, RawMessage]:
    """The message and its raw parts (whose `signed_part` is what a request digest covers)."""
    raw = split_message(data)
    return decode_parts(raw), raw


def decode_parts(raw: RawMessage) -> Message:
    header = raw.header
    reader = Reader(raw.body, _describe(header))
    if header.is_request:
        body = _decode_request_body(reader, header.op)
        digest = None
    else:
        digest = _decode_digest(reader) if header.flags & OpFlag.RRDG else None
        body = _decode_answer_body(reader, header.op, header.code)
    reader.done()
    return Message(header, body, digest, raw.credential)


def _describe(header: Header) -> str:
    op = OpCode(header.op).name.lower() if header.op in OpCode._value2member_map_ else f"operation {header.op}"
    return f"{op} request body" if header.is_request else f"{op} answer body (code {header.code})"


def _handle(reader: Reader, field_name: str = "handle") -> str:
    return reader.text(field_name, MAX_HANDLE_BYTES)


def _decode_request_body(reader: Reader, op: int) -> Body:
    if op == OpCode.RESOLUTION:
        return ResolutionBody(_handle(reader), reader.int_list("index list", MAX_FILTER_ITEMS),
                              reader.text_list("type list", MAX_FILTER_ITEMS, MAX_HANDLE_BYTES))
    if op in _HANDLE_ONLY_REQUESTS:
        return HandleBody(_handle(reader))
    if op in _VALUES_REQUESTS:
        return ValuesBody(_handle(reader), decode_values(reader, MAX_VALUES))
    if op == OpCode.REMOVE_VALUE:
        return IndexesBody(_handle(reader), reader.int_list("index list", MAX_FILTER_ITEMS))
    if op == OpCode.CHALLENGE_RESPONSE:
        return ChallengeAnswerBody(reader.text("key type", 64), _handle(reader, "identity handle"),
                                   reader.int4("identity index"), reader.byte_string("answer", MAX_ANSWER_BYTES))
    if op == OpCode.VERIFY_RESPONSE:
        return VerifyBody(_handle(reader), reader.int4("key index"), reader.byte_string("nonce", MAX_NONCE_BYTES),
                          _decode_digest(reader), reader.byte_string("answer", MAX_ANSWER_BYTES))
    if op <= 0:
        raise reader.fail(f"operation code {op} is not an operation")
    return OpaqueBody(reader.raw(reader.remaining, "body"))


def _decode_digest(reader: Reader) -> RequestDigest:
    code = reader.byte("request digest hash code")
    if code == HASH_MD5_OLD:
        return RequestDigest(code, reader.byte_string("request digest", 64))
    size = DIGEST_SIZES.get(code)
    if size is None:
        raise reader.fail(f"request digest hash code {code} is none of 0 (old MD5), 1 (MD5), 2 (SHA-1), 3 (SHA-256)")
    return RequestDigest(code, reader.raw(size, "request digest"))


def _decode_answer_body(reader: Reader, op: int, code: int) -> Body:
    if code == ResponseCode.SUCCESS:
        return _decode_success(reader, op)
    if code in REFERRAL_CODES:
        handle = _handle(reader)
        return ValuesBody(handle, decode_values(reader) if reader.remaining else ())
    if code == ResponseCode.AUTHENTICATION_NEEDED:
        return ChallengeBody(reader.byte_string("nonce", MAX_NONCE_BYTES))
    return ErrorBody(reader.text("message") if reader.remaining else "")


def _decode_success(reader: Reader, op: int) -> Body:
    if op == OpCode.RESOLUTION:
        return ValuesBody(_handle(reader), decode_values(reader))
    if op == OpCode.CREATE_HANDLE:
        return CreatedBody(_handle(reader) if reader.remaining else None)
    if op in _LIST_ANSWERS:
        return HandlesBody(reader.text_list("handle list", MAX_LISTED_HANDLES, MAX_HANDLE_BYTES))
    if op == OpCode.GET_SITE_INFO:
        return SiteBody(decode_site(reader))
    if op == OpCode.VERIFY_RESPONSE:
        return VerifyResultBody(bool(reader.byte("verdict") & 0x01))
    if reader.remaining and op not in OpCode._value2member_map_:
        return OpaqueBody(reader.raw(reader.remaining, "body"))
    return EmptyBody()

