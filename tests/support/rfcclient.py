"""A small native Handle client written only from RFC 3651/3652, sharing no code with src/handlesim/wire.

It packs and parses every field itself (struct, hashlib, hmac, json), so tests that use it check the node against
an independent reading of the spec, not against the node's own codec. It resolves a handle from a root, following
303 prefix referrals over UDP or TCP, and performs a challenge-authenticated create/delete. Like a Handle.Net client,
it can take its roots from a client configuration directory (`bootstrap_roots`): the `bootstrap_handles` file's
`0.NA/0.NA` HS_SITE values, read as Handle.Net's GsonUtility writes them.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import itertools
import json
import struct
from dataclasses import dataclass, field
from pathlib import Path

ENVELOPE = struct.Struct(">BBBBIIII")  # RFC 3652 2.2.1: version, flags, session, request, sequence, length
HEADER = struct.Struct(">IIIHBBII")  # 2.2.2: opcode, response code, flags, serial, recursion, reserved, expiry, len
PACKET = 512
OC_RESOLUTION, OC_GET_SITE_INFO, OC_CREATE, OC_DELETE, OC_LIST = 1, 2, 100, 101, 105
OC_CHALLENGE_ANSWER = 200
RC_SUCCESS, RC_AUTH_NEEDED, RC_PREFIX_REFERRAL = 1, 402, 303
FLAG_AUTH, FLAG_RECU, FLAG_CONT, FLAG_PUBL, FLAG_RRDG, FLAG_OVRW = (
    0x80000000, 0x10000000, 0x04000000, 0x01000000, 0x00800000, 0x00400000)
PROTO_UDP, PROTO_TCP = 0, 1
_ids = itertools.count(1)


class RfcError(Exception):
    pass


# -- packing -------------------------------------------------------------------------------------------------------


def utf8(text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return struct.pack(">I", len(raw)) + raw


def envelope(session: int, request: int, sequence: int, length: int, *, truncated: bool = False,
             version: tuple[int, int] = (2, 10)) -> bytes:
    flags = (0x20 if truncated else 0) | version[0]  # low two bits: the version we suggest
    return ENVELOPE.pack(version[0], version[1], flags, version[1], session, request, sequence, length)


def message(opcode: int, body: bytes, flags: int = 0, *, recursion: int = 0) -> bytes:
    """Header + body + an empty credential section (a 4-byte zero length)."""
    return HEADER.pack(opcode, 0, flags, 0xFFFF, recursion, 0, 0, len(body)) + body + b"\0\0\0\0"


def resolution_body(handle: str, types: list[str] | None = None, indexes: list[int] | None = None) -> bytes:
    types, indexes = types or [], indexes or []
    return (utf8(handle) + struct.pack(">I", len(indexes)) + b"".join(struct.pack(">I", i) for i in indexes)
            + struct.pack(">I", len(types)) + b"".join(utf8(t) for t in types))


def value_bytes(index: int, type_name: str, data: bytes, *, ttl: int = 86400, perms: int = 0x0E) -> bytes:
    """RFC 3651 3.1 handle value: index, timestamp, TTL type, TTL, permissions, type, data, references."""
    return (struct.pack(">IIBIB", index, 0, 0, ttl, perms) + utf8(type_name) + utf8(data) + struct.pack(">I", 0))


def packets(session: int, request: int, msg: bytes) -> list[bytes]:
    room = PACKET - ENVELOPE.size
    if len(msg) <= room:
        return [envelope(session, request, 0, len(msg)) + msg]
    return [envelope(session, request, n, len(msg), truncated=True) + msg[start:start + room]
            for n, start in enumerate(range(0, len(msg), room))]


# -- parsing -------------------------------------------------------------------------------------------------------


class Cursor:
    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def take(self, size: int) -> bytes:
        if self.at + size > len(self.data):
            raise RfcError(f"answer ends early at byte {self.at} (wanted {size})")
        out = self.data[self.at:self.at + size]
        self.at += size
        return out

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int(struct.unpack(">H", self.take(2))[0])

    def u32(self) -> int:
        return int(struct.unpack(">I", self.take(4))[0])

    def s32(self) -> int:
        return int(struct.unpack(">i", self.take(4))[0])

    def blob(self) -> bytes:
        return self.take(self.u32())

    def text(self) -> str:
        return self.blob().decode()


@dataclass
class Value:
    index: int
    type: str
    data: bytes
    public_read: bool


@dataclass
class Answer:
    opcode: int
    code: int
    flags: int
    session: int
    request: int
    body: bytes
    version: tuple[int, int] = (0, 0)
    handle: str = ""
    values: list[Value] = field(default_factory=list)
    message: str = ""
    nonce: bytes = b""
    digest: bytes = b""
    handles: list[str] = field(default_factory=list)


def parse_answer(env: bytes, msg: bytes) -> Answer:
    major, minor, _flags, _sminor, session, request, _seq, _length = ENVELOPE.unpack(env)
    opcode, code, flags, _serial, _rec, _res, _exp, body_len = HEADER.unpack_from(msg)
    body = msg[HEADER.size:HEADER.size + body_len]
    answer = Answer(opcode, code, flags, session, request, body, (major, minor))
    cur = Cursor(body)
    if flags & FLAG_RRDG:
        hash_code = cur.u8()
        answer.digest = cur.take({1: 16, 2: 20, 3: 32}[hash_code])
    if code == RC_AUTH_NEEDED:
        answer.nonce = cur.blob()
    elif code == RC_SUCCESS and opcode == OC_LIST:
        answer.handles = [cur.text() for _ in range(cur.u32())]
    elif code == RC_SUCCESS and opcode == OC_RESOLUTION or code in (302, RC_PREFIX_REFERRAL):
        answer.handle = cur.text()
        if cur.at < len(body):
            answer.values = [parse_value(cur) for _ in range(cur.u32())]
    elif code != RC_SUCCESS and cur.at < len(body):
        answer.message = cur.text()
    return answer


def parse_value(cur: Cursor) -> Value:
    index, _timestamp, _ttl_type, _ttl, perms = cur.s32(), cur.u32(), cur.u8(), cur.u32(), cur.u8()
    type_name, data = cur.text(), cur.blob()
    for _ in range(cur.u32()):
        cur.text()
        cur.u32()
    return Value(index, type_name, data, bool(perms & 0x02))


@dataclass
class Server:
    address: str
    ports: dict[int, int]  # protocol code -> port


def parse_site(data: bytes) -> list[Server]:
    """RFC 3651 3.2.2 HS_SITE: version, protocol version, serial, flags, hash option, filter, attributes, servers."""
    cur = Cursor(data)
    cur.take(2 + 2 + 2 + 1 + 1)
    cur.blob()
    for _ in range(cur.u32()):
        cur.blob()
        cur.blob()
    servers = []
    for _ in range(cur.u32()):
        cur.u32()
        raw = cur.take(16)
        address = str(ipaddress.IPv4Address(raw[12:])) if not any(raw[:12]) else str(ipaddress.IPv6Address(raw))
        cur.blob()
        ports = {}
        for _ in range(cur.u32()):
            _kind, proto, port = cur.u8(), cur.u8(), cur.u32()
            ports[proto] = port
        servers.append(Server(address, ports))
    return servers


def bootstrap_roots(config_dir: Path, transport: str) -> list[tuple[str, int]]:
    """The root servers a Handle.Net client configured with `config_dir` starts from: the (address, port) of each
    server's `transport` interface in the HS_SITE values of `0.NA/0.NA` in `bootstrap_handles`
    ({"lastUpdate": ms, "handles": {handle: {"handle", "values": [{"index", "type", "data": {"format": "site",
    "value": {..., "servers": [{"address", "interfaces": [{"protocol", "port", ...}]}]}}}]}}})."""
    document = json.loads((config_dir / "bootstrap_handles").read_text(encoding="utf-8"))
    if "0.0/0.0" not in document["handles"]:
        raise RfcError("bootstrap_handles lacks 0.0/0.0 (a Handle.Net client would ignore the file)")
    roots = []
    for value in document["handles"]["0.NA/0.NA"]["values"]:
        data = value["data"]
        if value["type"].upper() != "HS_SITE" or not isinstance(data, dict) or data.get("format") != "site":
            continue
        for server in data["value"]["servers"]:
            for interface in server["interfaces"]:
                if interface["protocol"] == transport.upper():
                    roots.append((server["address"], int(interface["port"])))
    if not roots:
        raise RfcError(f"no root in {config_dir} lists a {transport.upper()} interface")
    return roots


# -- transports ----------------------------------------------------------------------------------------------------


class _Udp(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.parts: dict[int, bytes] = {}
        self.env: bytes = b""
        self.done: asyncio.Future[tuple[bytes, bytes]] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: object) -> None:
        *_, sequence, length = ENVELOPE.unpack_from(data)
        self.env = data[:ENVELOPE.size]
        self.parts[sequence] = data[ENVELOPE.size:]
        if sum(len(p) for p in self.parts.values()) >= length and not self.done.done():
            self.done.set_result((self.env, b"".join(self.parts[n] for n in sorted(self.parts))))


async def exchange_udp(host: str, port: int, session: int, request: int, msg: bytes,
                       wait: float = 2.0) -> tuple[bytes, bytes]:
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(_Udp, remote_addr=(host, port))
    try:
        for packet in packets(session, request, msg):
            transport.sendto(packet)
        return await asyncio.wait_for(proto.done, wait)
    finally:
        transport.close()


class TcpLink:
    """One TCP connection: send a message, read answers (several while CONT is set)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, host: str, port: int) -> TcpLink:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    async def send(self, session: int, request: int, msg: bytes) -> None:
        self.writer.write(envelope(session, request, 0, len(msg)) + msg)
        await self.writer.drain()

    async def receive(self, wait: float = 2.0) -> tuple[bytes, bytes]:
        env = await asyncio.wait_for(self.reader.readexactly(ENVELOPE.size), wait)
        length = ENVELOPE.unpack(env)[-1]
        return env, await asyncio.wait_for(self.reader.readexactly(length), wait)

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


# -- the client ----------------------------------------------------------------------------------------------------


@dataclass
class Hop:
    server: tuple[str, int]
    query: str
    code: int


@dataclass
class Walk:
    answer: Answer
    hops: list[Hop]


class RfcClient:
    def __init__(self, transport: str = "udp", timeout: float = 2.0) -> None:
        assert transport in ("udp", "tcp")
        self.transport, self.timeout = transport, timeout
        self.protocol = PROTO_UDP if transport == "udp" else PROTO_TCP

    async def ask(self, server: tuple[str, int], msg: bytes, session: int = 0) -> Answer:
        request = next(_ids)
        if self.transport == "udp":
            env, body = await exchange_udp(*server, session, request, msg, self.timeout)
            return parse_answer(env, body)
        link = await TcpLink.open(*server)
        try:
            await link.send(session, request, msg)
            return parse_answer(*await link.receive(self.timeout))
        finally:
            await link.close()

    async def resolve(self, handle: str, root: tuple[str, int], max_hops: int = 10) -> Walk:
        """Find the service of the handle's prefix from `root` (following 303 referrals), then ask it."""
        prefix = handle.split("/", 1)[0]
        server, query = root, f"0.NA/{prefix}"
        hops: list[Hop] = []
        site_types = ["HS_SITE", "HS_SERV"]
        for _ in range(max_hops):
            answer = await self.ask(server, message(OC_RESOLUTION, resolution_body(query, site_types), FLAG_PUBL))
            hops.append(Hop(server, query, answer.code))
            if answer.code == RC_PREFIX_REFERRAL:
                server = self.pick(answer.values, "HS_SITE.PREFIX")
                continue
            if answer.code != RC_SUCCESS:
                return Walk(answer, hops)
            if query == handle:
                return Walk(answer, hops)
            server, query, site_types = self.pick(answer.values, "HS_SITE"), handle, []
        raise RfcError(f"no answer for {handle} within {max_hops} hops")

    def pick(self, values: list[Value], type_name: str) -> tuple[str, int]:
        for value in values:
            if value.type.upper() != type_name:
                continue
            for server in parse_site(value.data):
                if self.protocol in server.ports:
                    return server.address, server.ports[self.protocol]
        raise RfcError(f"no {type_name} value lists a server with a {self.transport.upper()} interface")

    async def authenticated(self, server: tuple[str, int], msg: bytes, identity: tuple[str, int],
                            key: bytes) -> Answer:
        """Send an administrative request; answer its challenge with HMAC-SHA256(key, nonce || digest) over the
        same TCP connection (RFC 3652 3.5), and return the final answer."""
        link = await TcpLink.open(*server)
        try:
            await link.send(0, next(_ids), msg)
            challenge = parse_answer(*await link.receive(self.timeout))
            if challenge.code != RC_AUTH_NEEDED:
                return challenge
            expected = hashlib.sha256(msg[:HEADER.size + HEADER.unpack_from(msg)[-1]]).digest()
            if challenge.digest != expected:
                raise RfcError("the challenge's request digest is not the digest of what we sent")
            proof = bytes([0x13]) + hmac.new(key, challenge.nonce + challenge.digest, hashlib.sha256).digest()
            handle, index = identity
            body = utf8("HS_SECKEY") + utf8(handle) + struct.pack(">I", index) + utf8(proof)
            await link.send(challenge.session, next(_ids), message(OC_CHALLENGE_ANSWER, body))
            return parse_answer(*await link.receive(self.timeout))
        finally:
            await link.close()
