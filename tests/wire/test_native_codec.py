"""The native Handle protocol codec: a table of known byte sequences, hypothesis round-trips, hostile input.

Byte sequences in the table are laid out by hand from RFC 3652 section 2.2 / RFC 3651 section 3 and Handle.Net v9's
net.handle.hdllib.Encoder (encodeEnvelope, writeHeader, encodeResolutionRequest, encodeHandleValue,
encodeAdminRecord, encodeValueReferenceList, encodeSiteInfoRecord, encodeErrorMessage, encodeChallenge); the site
record is the one Handle.Net's SiteInfo constructor builds for a server on 127.0.0.1 (TCP and UDP on 2641, HTTP on
8000). They are written out here, not produced by the code under test.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from handlesim.core.codes import OpCode, ResponseCode
from handlesim.core.errors import HandleError, InvalidCredential, InvalidValue, ProtocolError
from handlesim.core.handle import Handle
from handlesim.core.messages import Request
from handlesim.core.values import (
    AdminPermission,
    AdminRecord,
    HandleValue,
    HashOption,
    Interface,
    KeyData,
    ServerInfo,
    SiteInfo,
    ValueList,
    ValueReference,
)
from handlesim.wire.native import body as nb
from handlesim.wire.native import credential, envelope, mapping, packets, records
from handlesim.wire.native.header import Header, OpFlag
from handlesim.wire.native.primitives import Reader

from ..support.strategies import examples, handle_values

JAVA_SITE = SiteInfo(
    servers=(ServerInfo(1, "127.0.0.1", (Interface("TCP", 2641, True, True), Interface("UDP", 2641, True, False),
                                         Interface("HTTP", 8000, True, True))),),
    serial_number=1, primary=True, hash_option=HashOption.BY_ALL, attributes=(("desc", "x"),))

TABLE: list[tuple[str, object, str]] = [
    # envelope: version 2.10, suggests 2.11 (low bits of octet 2), session 0, request 7, packet 0, length 0x44
    ("envelope", envelope.Envelope(2, 10, 2, 11, session_id=0, request_id=7, sequence=0, length=0x44),
     "020a020b" "00000000" "00000007" "00000000" "00000044"),
    # header: resolution, RC 0, flags RECU|PUBL, serial -1, recursion 0, reserved, expiration 0, body length 0x1b
    ("header", Header(1, 0, OpFlag.RECU | OpFlag.PUBL, -1, 0, 0), "00000001" "00000000" "11000000" "ffff" "00" "00"
     "00000000" "0000001b"),
    # resolution request body: handle "0.NA/88.101", no indexes, types ["HS_SITE"]
    ("resolution body", nb.ResolutionBody("0.NA/88.101", (), ("HS_SITE",)),
     "0000000b" + b"0.NA/88.101".hex() + "00000000" "00000001" "00000007" + b"HS_SITE".hex()),
    # handle value: index 1, timestamp 0, TTL type 0, TTL 86400, permissions 1110, type URL, data, no references
    ("value", HandleValue(1, "URL", "http://x"), "00000001" "00000000" "00" "00015180" "0e" "00000003" + b"URL".hex()
     + "00000008" + b"http://x".hex() + "00000000"),
    # HS_ADMIN data: permissions 011111110011 = 0x7f3, admin 200:0.NA/88.101
    ("admin", AdminRecord("0.NA/88.101", 200, AdminPermission(0x7F3)),
     "07f3" "0000000b" + b"0.NA/88.101".hex() + "000000c8"),
    # HS_VLIST data: one reference 300:0.NA/88.101
    ("vlist", ValueList((ValueReference("0.NA/88.101", 300),)),
     "00000001" "0000000b" + b"0.NA/88.101".hex() + "0000012c"),
    # HS_SITE data: format 1, protocol 2.10, serial 1, primary, hash by whole handle, no filter, desc=x, one server
    ("site", JAVA_SITE, "0001" "020a" "0001" "80" "02" "00000000" "00000001" "00000004" + b"desc".hex()
     + "00000001" + b"x".hex() + "00000001" "00000001" + "00" * 12 + "7f000001" "00000000" "00000003"
     "03" "01" "00000a51" "02" "00" "00000a51" "03" "02" "00001f40"),
    # error body (encodeErrorMessage): the message as a UTF8-String
    ("error body", nb.ErrorBody("nope"), "00000004" + b"nope".hex()),
    # challenge body (encodeChallenge, 2.1+): the nonce as a byte string
    ("challenge body", nb.ChallengeBody(bytes(range(16))), "00000010" + bytes(range(16)).hex()),
]


def encode_item(item: object) -> bytes:
    if isinstance(item, envelope.Envelope):
        return item.encode()
    if isinstance(item, Header):
        return item.encode(0x1B)
    if isinstance(item, HandleValue):
        return records.encode_value(item)
    if isinstance(item, AdminRecord | ValueList | SiteInfo):
        return records.encode_data(item)
    return nb.encode_body(item)  # type: ignore[arg-type]


@pytest.mark.parametrize(("name", "item", "expected"), TABLE, ids=[row[0] for row in TABLE])
def test_known_bytes(name: str, item: object, expected: str) -> None:
    assert encode_item(item).hex() == expected


def test_known_bytes_decode() -> None:
    assert envelope.decode_envelope(bytes.fromhex(TABLE[0][2])) == TABLE[0][1]
    site_hex = next(row[2] for row in TABLE if row[0] == "site")
    decoded = records.decode_data("HS_SITE", bytes.fromhex(site_hex), "site")
    assert decoded == JAVA_SITE
    value_hex = next(row[2] for row in TABLE if row[0] == "value")
    assert records.decode_value(Reader(bytes.fromhex(value_hex), "value")) == HandleValue(1, "URL", "http://x")


def test_whole_resolution_request() -> None:
    """A complete request as a Java client sends it: header, body and an empty credential section."""
    body = bytes.fromhex(TABLE[2][2])
    raw = bytes.fromhex("00000001" "00000000" "11000000" "ffff" "0000" "00000000") + len(body).to_bytes(4, "big")
    raw += body + bytes(4)
    message, parts = nb.decode_message(raw)
    assert message.body == nb.ResolutionBody("0.NA/88.101", (), ("HS_SITE",))
    assert parts.signed_part == raw[:-4]
    request = mapping.request_from_message(message)
    assert request.op == OpCode.RESOLUTION and request.recursive and request.public_only
    assert request.handle == Handle.from_text("0.NA/88.101") and request.types == ("HS_SITE",)


def test_secret_key_answers() -> None:
    message = b"nonce" + b"digest"
    key = b"k3y"
    assert credential.secret_key_mac(credential.HMAC_SHA256, key, message) == hmac.new(
        key, message, hashlib.sha256).digest()
    assert credential.secret_key_mac(nb.HASH_SHA1, key, message) == hashlib.sha1(key + message + key).digest()
    # PBKDF2-HMAC-SHA1: RFC 6070's first vector gives the derived key for "password"/"salt"/1 round/20 bytes
    derived = bytes.fromhex("0c60c80f961f0e71f3a9b524af6012062fe037a6")
    params = credential.Pbkdf2Parameters(b"salt", 1, 160)
    assert credential.secret_key_mac(credential.PBKDF2_HMAC_SHA1, b"password", message, params) == hmac.new(
        derived, message, hashlib.sha1).digest()
    # a key byte above 0x7f is a char in Java, which PBKDF2 writes as UTF-8
    expected = hmac.new(hashlib.pbkdf2_hmac("sha1", b"\xc3\xa9", b"salt", 1, 20), message, hashlib.sha1).digest()
    assert credential.secret_key_mac(credential.PBKDF2_HMAC_SHA1, b"\xe9", message, params) == expected
    answer = credential.SecretKeyAnswer(credential.PBKDF2_HMAC_SHA1, expected, params)
    decoded = credential.decode_secret_key_answer(answer.encode())
    assert decoded == answer and credential.check_secret_key_answer(decoded, b"\xe9", message)
    assert not credential.check_secret_key_answer(decoded, b"\xea", message)


@pytest.mark.parametrize("raw", [b"", b"\x55abc", b"\x22" + bytes(4), b"\x22\x00\x00\x00\x04salt\x7f\xff\xff\xff"
                                 b"\x00\x00\x00\xa0\x00\x00\x00\x00"])
def test_bad_secret_key_answers(raw: bytes) -> None:
    with pytest.raises(InvalidCredential):
        credential.decode_secret_key_answer(raw)


def test_credential_section_round_trip() -> None:
    cred = credential.Credential("", 0, "HS_SIGNED", "SHA256", b"\x01" * 64)
    assert credential.decode_credential(cred.encode()) == cred


def test_request_digest_follows_the_version() -> None:
    assert credential.request_digest(b"x", (2, 10)).hash_code == nb.HASH_SHA256
    assert credential.request_digest(b"x", (2, 5)).hash_code == nb.HASH_SHA1


# -- hypothesis round trips ------------------------------------------------------------------------------------------


def native_form(value: HandleValue) -> HandleValue:
    """What the native codec can carry: 16-bit site serials, no `domain.<n>` attribute of our own making."""
    data = value.data
    if isinstance(data, SiteInfo):
        attributes = tuple((k, v) for k, v in data.attributes if not k.startswith("domain."))
        data = replace(data, serial_number=data.serial_number % 0x10000, attributes=attributes)
    return value._replace(data=data)


def as_decoded(value: HandleValue) -> HandleValue:
    """Text and bytes data come back as text when they read as text, as bytes otherwise."""
    if isinstance(value.data, str | bytes):
        raw = records.encode_data(value.data)
        return value._replace(data=raw.decode() if records.looks_like_text(raw) else raw)
    return value


native_values = handle_values().map(native_form)
handles = st.from_regex(r"\A88\.[0-9]{1,4}(\.[0-9]{1,4})?/[A-Za-z0-9-]{1,12}\Z")
indexes = st.lists(st.integers(-(2**31), 2**31 - 1), max_size=5).map(tuple)
names = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)
flags = st.integers(0, 0xFFF).map(lambda bits: OpFlag(bits << 20))
request_bodies = st.one_of(
    st.builds(nb.HandleBody, names),
    st.builds(nb.ResolutionBody, names, indexes, st.lists(names, max_size=4).map(tuple)),
    st.builds(nb.ValuesBody, names, st.lists(native_values, max_size=3).map(tuple)),
    st.builds(nb.IndexesBody, names, indexes),
    st.builds(nb.ChallengeAnswerBody, st.sampled_from(["HS_SECKEY", "HS_PUBKEY"]), names,
              st.integers(-(2**31), 2**31 - 1), st.binary(max_size=80)),
)
OP_OF = {nb.HandleBody: OpCode.DELETE_HANDLE, nb.ResolutionBody: OpCode.RESOLUTION, nb.ValuesBody: OpCode.CREATE_HANDLE,
         nb.IndexesBody: OpCode.REMOVE_VALUE, nb.ChallengeAnswerBody: OpCode.CHALLENGE_RESPONSE}


@settings(max_examples=examples(200), suppress_health_check=[HealthCheck.too_slow])
@given(native_values)
def test_value_round_trip(value: HandleValue) -> None:
    encoded = records.encode_value(value)
    decoded = records.decode_value(Reader(encoded, "value"))
    assert decoded == as_decoded(value)
    assert records.encode_value(decoded) == encoded


@settings(max_examples=examples(200), suppress_health_check=[HealthCheck.too_slow])
@given(request_bodies, flags, st.integers(-(2**15), 2**15 - 1), st.integers(0, 255), st.integers(0, 2**32 - 1),
       st.binary(max_size=40))
def test_request_round_trip(body: nb.Body, bits: OpFlag, serial: int, recursion: int, expiration: int,
                            cred: bytes) -> None:
    message = nb.Message(Header(OP_OF[type(body)], 0, bits, serial, recursion, expiration), body, None, cred)
    decoded, raw = nb.decode_message(nb.encode_message(message))
    if isinstance(body, nb.ValuesBody):
        message = replace(message, body=nb.ValuesBody(body.handle, tuple(as_decoded(v) for v in body.values)))
    assert decoded == message
    assert raw.credential == cred


answer_cases = st.one_of(
    st.tuples(st.just(OpCode.RESOLUTION), st.just(1), st.builds(nb.ValuesBody, names,
                                                                 st.lists(native_values, max_size=3).map(tuple))),
    st.tuples(st.just(OpCode.RESOLUTION), st.just(303), st.builds(nb.ValuesBody, names,
                                                                   st.lists(native_values, max_size=2).map(tuple))),
    st.tuples(st.sampled_from([OpCode.LIST_HANDLES, OpCode.LIST_HOMED_NAS]), st.just(1),
              st.builds(nb.HandlesBody, st.lists(names, max_size=5).map(tuple))),
    st.tuples(st.just(OpCode.CREATE_HANDLE), st.just(1), st.builds(nb.CreatedBody, st.none() | names)),
    st.tuples(st.just(OpCode.DELETE_HANDLE), st.just(1), st.just(nb.EmptyBody())),
    st.tuples(st.just(OpCode.VERIFY_RESPONSE), st.just(1), st.builds(nb.VerifyResultBody, st.booleans())),
    st.tuples(st.sampled_from(list(OpCode)), st.just(402), st.builds(nb.ChallengeBody, st.binary(max_size=32))),
    st.tuples(st.sampled_from(list(OpCode)), st.sampled_from([2, 4, 100, 200, 301, 401, 403]),
              st.builds(nb.ErrorBody, names)),
)
digests = st.none() | st.builds(nb.RequestDigest, st.just(nb.HASH_SHA256), st.binary(min_size=32, max_size=32))


@settings(max_examples=examples(200), suppress_health_check=[HealthCheck.too_slow])
@given(answer_cases, flags, digests)
def test_answer_round_trip(case: tuple[int, int, nb.Body], bits: OpFlag, digest: nb.RequestDigest | None) -> None:
    op, code, body = case
    bits = bits & ~OpFlag.RRDG
    message = nb.Message(Header(op, code, bits), body, digest)
    decoded, _ = nb.decode_message(nb.encode_message(message))
    if isinstance(body, nb.ValuesBody):
        body = nb.ValuesBody(body.handle, tuple(as_decoded(v) for v in body.values))
    expected_flags = bits | OpFlag.RRDG if digest is not None else bits
    assert decoded == replace(message, header=replace(message.header, flags=expected_flags), body=body)


@settings(max_examples=examples(100), suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from([OpCode.RESOLUTION, OpCode.CREATE_HANDLE, OpCode.DELETE_HANDLE, OpCode.REMOVE_VALUE,
                        OpCode.ADD_VALUE]), handles, st.lists(native_values, min_size=1, max_size=3,
                                                              unique_by=lambda v: v.index).map(tuple),
       st.booleans(), st.booleans(), st.booleans())
def test_core_request_round_trip(op: OpCode, handle: str, values: tuple[HandleValue, ...], auth: bool,
                                 public: bool, recursive: bool) -> None:
    has_values = op in (OpCode.CREATE_HANDLE, OpCode.ADD_VALUE)
    request = Request(op, Handle.from_text(handle), values=tuple(as_decoded(v) for v in values) if has_values else (),
                      indexes=(1, 2) if op == OpCode.REMOVE_VALUE else (), authoritative=auth, public_only=public,
                      recursive=recursive)
    decoded, _ = nb.decode_message(nb.encode_message(mapping.message_from_request(request)))
    assert mapping.request_from_message(decoded) == request


@settings(max_examples=examples(100), suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(min_size=0, max_size=3 * packets.UDP_DATA_SIZE + 7), st.integers(0, 2**31 - 1), st.randoms())
def test_datagrams_reassemble_in_any_order(message: bytes, request_id: int, rng: object) -> None:
    datagrams = packets.to_datagrams(envelope.Envelope(request_id=request_id), message)
    assert all(len(p) <= packets.UDP_PACKET_SIZE for p in datagrams)
    rng.shuffle(datagrams)  # type: ignore[attr-defined]
    reassembler = packets.Reassembler()
    results = [reassembler.feed("peer", p, 0.0) for p in datagrams]
    assert [r for r in results[:-1] if r is not None] == []
    last = results[-1]
    assert last is not None and last[1] == message and last[0].request_id == request_id
    assert reassembler.pending == 0 and reassembler.pending_bytes == 0


@given(st.lists(st.binary(max_size=600), max_size=6), st.integers(1, 700))
def test_stream_decoder_cuts_at_any_split(messages: list[bytes], cut: int) -> None:
    stream = b"".join(packets.frame(envelope.Envelope(request_id=n), m) for n, m in enumerate(messages))
    decoder = packets.StreamDecoder()
    out = []
    for start in range(0, len(stream), cut):
        out.extend(decoder.feed(stream[start:start + cut]))
    assert [m for _, m in out] == messages and [e.request_id for e, _ in out] == list(range(len(messages)))


# -- hostile input ---------------------------------------------------------------------------------------------------

VALID = nb.encode_message(nb.Message(Header(OpCode.CREATE_HANDLE), nb.ValuesBody("88.101/X", (
    HandleValue(1, "URL", "http://x"), HandleValue(100, "HS_ADMIN", AdminRecord("0.NA/88.101", 200)),
    HandleValue(2, "HS_SITE", JAVA_SITE), HandleValue(3, "HS_VLIST", ValueList((ValueReference("0.NA/1", 1),))),
    HandleValue(4, "HS_PUBKEY", KeyData(b"k"))))))


@pytest.mark.parametrize("cut", range(len(VALID)))
def test_every_truncation_is_a_protocol_answer(cut: int) -> None:
    if cut == len(VALID) - 4:  # only the (empty) credential section is missing, which the protocol allows
        assert nb.decode_message(VALID[:cut])[0] == nb.decode_message(VALID)[0]
        return
    with pytest.raises(HandleError) as caught:
        nb.decode_message(VALID[:cut])
    assert caught.value.response_code in (ResponseCode.PROTOCOL_ERROR, ResponseCode.INVALID_VALUE)


@settings(max_examples=examples(300))
@given(st.binary(max_size=300))
def test_random_bytes_never_escape_the_error_tree(data: bytes) -> None:
    try:
        nb.decode_message(data)
    except HandleError:
        pass


@settings(max_examples=examples(300))
@given(st.integers(0, len(VALID) - 1), st.integers(0, 255))
def test_any_corrupted_byte_never_escapes_the_error_tree(position: int, byte: int) -> None:
    corrupted = bytearray(VALID)
    corrupted[position] = byte
    try:
        nb.decode_message(bytes(corrupted))
    except HandleError:
        pass


def _resolution_with_type_count(count: int) -> bytes:
    body = b"\x00\x00\x00\x01X" + bytes(4) + count.to_bytes(4, "big")
    return Header(1).encode(len(body)) + body + bytes(4)


@pytest.mark.parametrize(("data", "problem"), [
    (_resolution_with_type_count(0xFFFFFFFF), "type list"),
    (_resolution_with_type_count(1000), "cannot fit"),
    (Header(1).encode(10_000) + bytes(8), "body length"),
    (Header(1).encode(0) + b"\x00\x00\x00\x09abc", "credential"),
    (Header(100).encode(9) + b"\x00\x00\x00\x01X" + b"\x7f\xff\xff\xff" + bytes(4), "value count"),
    (b"\x00\x00\x00", "header"),
])
def test_huge_counts_and_wrong_lengths(data: bytes, problem: str) -> None:
    with pytest.raises(ProtocolError, match=problem):
        nb.decode_message(data)


def test_bad_value_data_is_invalid_value() -> None:
    bad_site = HandleValue(2, "HS_SITE", "not a site")
    encoded = nb.encode_message(nb.Message(Header(OpCode.CREATE_HANDLE), nb.ValuesBody("88.101/X", (bad_site,))))
    with pytest.raises(InvalidValue, match="HS_SITE"):
        nb.decode_message(encoded)
    with pytest.raises(InvalidValue, match="serial"):
        records.encode_site(replace(JAVA_SITE, serial_number=70_000))


@pytest.mark.parametrize(("env", "problem"), [
    (envelope.Envelope(major=5, minor=0, suggest_major=1, suggest_minor=0), "version 5.0"),
    (envelope.Envelope(major=2, minor=3, suggest_major=2, suggest_minor=3), "2.3"),
    (envelope.Envelope(compressed=True), "compressed"),
])
def test_unsupported_envelopes(env: envelope.Envelope, problem: str) -> None:
    with pytest.raises(ProtocolError, match=problem):
        envelope.check_version(envelope.decode_envelope(env.encode()))
    assert envelope.decode_envelope(envelope.Envelope(major=2, minor=3, suggest_minor=11).encode()).answer_version \
        == (2, 11)


def test_envelope_limits() -> None:
    with pytest.raises(ProtocolError, match="envelope"):
        envelope.decode_envelope(bytes(19))
    with pytest.raises(ProtocolError, match="limit"):
        envelope.decode_envelope(envelope.Envelope(length=envelope.MAX_MESSAGE_LENGTH + 1).encode())
    with pytest.raises(ProtocolError, match="limit"):
        packets.StreamDecoder().feed(envelope.Envelope(length=2**31).encode())


def test_reassembler_stays_within_its_bounds() -> None:
    reassembler = packets.Reassembler(max_pending=4, max_pending_bytes=3 * packets.UDP_DATA_SIZE, timeout=5.0)
    for n in range(50):  # first packets of 50 long messages that never finish
        first = packets.to_datagrams(envelope.Envelope(request_id=n), bytes(5000))[0]
        assert reassembler.feed(("10.0.0.1", n), first, float(n) / 100) is None
        assert reassembler.pending <= 4 and reassembler.pending_bytes <= 3 * packets.UDP_DATA_SIZE
    assert reassembler.dropped >= 46
    reassembler.expire(100.0)
    assert reassembler.pending == 0 and reassembler.pending_bytes == 0


@pytest.mark.parametrize("packet", [
    replace(envelope.Envelope(truncated=True, sequence=9, length=600)).encode() + bytes(108),
    replace(envelope.Envelope(truncated=True, sequence=0, length=600)).encode() + bytes(100),
    envelope.Envelope(length=10).encode() + bytes(30),
    envelope.Envelope(length=10).encode() + bytes(600),
])
def test_impossible_packets(packet: bytes) -> None:
    with pytest.raises(ProtocolError):
        packets.Reassembler().feed("peer", packet, 0.0)

