"""Verifying identities whose key lives at another node (our counterpart of Handle.Net's OC_VERIFY_CHALLENGE).

An enterprise node that receives `Basic 300:0.NA/88.101:secret` does not hold `0.NA/88.101` (its secondary and the
roots do). It walks the hierarchy for that handle, like any resolution, and asks the server that answers it:

    relying node R                                        key holder K (answers 0.NA/88.101)
    POST /api/verify {"id": "300:0.NA/88.101"}      ->
                                                    <-    {"responseCode": 1, "nonce", "salt", "iterations"}
    digest = PBKDF2-SHA256(secret, salt, iterations)
    proof  = HMAC-SHA256(digest, context || id || nonce)
    POST /api/verify {"id", "nonce", "proof"}       ->    one-use nonce, recomputed from K's stored digest
                                                    <-    {"responseCode": 1, "verified": true|false}

The secret stays at R and the stored digest stays at K; a proof is good for one nonce of one identity, issued by K
less than `CHALLENGE_TTL` seconds before. HS_PUBKEY identities need no such exchange: public keys are public, so R
resolves the key value (authoritatively, past every cache) and checks the signature itself.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from aiohttp import web

from ..core import keys
from ..core.auth import parse_identity
from ..core.codes import ResponseCode
from ..core.errors import HandleError, HandleNotFound, InvalidCredential, ProtocolError, TransportError
from ..core.handle import Handle
from ..core.messages import Response
from ..core.resolution import Resolution
from ..core.service import HandleService
from ..core.transport import drive
from ..core.values import HS_PUBKEY, HS_SECKEY, KeyData, ValueReference
from ..wire import codec
from ..wire.fields import FieldReader
from .keepalive import KeepAliveTransport, build_request
from .recursion import RecursiveResolver
from .transport import SYSTEM_CLOCK, ConnectionBroken

VERIFY_ROUTE = "/api/verify"
CHALLENGE_TTL = 30.0
"""Seconds a holder's nonce stays valid."""
MAX_CHALLENGES = 10_000
HOLDER_TTL = 60.0
"""Seconds a relying node remembers which server holds an identity's key (saves the walk on later checks)."""
MAX_HOLDERS = 4096
_DEFINITE_ANSWERS = (ResponseCode.SUCCESS, ResponseCode.VALUES_NOT_FOUND, ResponseCode.HANDLE_NOT_FOUND)
"""Walk outcomes that say something about the identity (anything else means the hierarchy could not be asked)."""
Clock = Callable[[], float]


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _unb64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ProtocolError(f"{what} is not base64") from None


class VerificationDesk:
    """The key holder's side: hands out challenges for the HS_SECKEY values it holds and checks proofs."""

    def __init__(self, service: HandleService, clock: Clock, random_bytes: Callable[[int], bytes]) -> None:
        self.service = service
        self.clock = clock
        self.random_bytes = random_bytes
        self._challenges: dict[bytes, tuple[str, float]] = {}
        """nonce -> (identity text it was issued for, expiry)."""

    def _stored_secret(self, identity: ValueReference) -> str:
        record = self.service.store.get(Handle.from_text(identity.handle).key)
        if record is None:
            raise HandleNotFound(f"{identity.handle} is not held at {self.service.config.node_id}",
                                 handle=identity.handle)
        value = record.value_at(identity.index)
        if value is None or value.type_key != HS_SECKEY or not isinstance(value.data, str) \
                or keys.secret_parameters(value.data) is None:
            raise InvalidCredential(f"{identity.to_text()} is not a secret key held here", handle=identity.handle)
        return value.data

    def challenge(self, identity_text: str) -> Response:
        identity = parse_identity(identity_text)
        parameters = keys.secret_parameters(self._stored_secret(identity))
        assert parameters is not None
        salt, iterations = parameters
        now = self.clock()
        if len(self._challenges) >= MAX_CHALLENGES:
            self._challenges = {n: c for n, c in self._challenges.items() if c[1] > now}
            while len(self._challenges) >= MAX_CHALLENGES:
                del self._challenges[next(iter(self._challenges))]
        nonce = self.random_bytes(32)
        self._challenges[nonce] = (identity_text, now + CHALLENGE_TTL)
        return Response(ResponseCode.SUCCESS, identity.handle, extra={
            "nonce": _b64(nonce), "salt": _b64(salt), "iterations": iterations, "scheme": "pbkdf2_sha256"})

    def check_mac(self, identity_text: str, message: bytes, mac: bytes) -> Response:
        """Does `mac` answer `message` (a relying node's session challenge) for this secret key?"""
        identity = parse_identity(identity_text)
        verified = keys.check_secret_mac(self._stored_secret(identity), message, mac)
        return Response(ResponseCode.SUCCESS, identity.handle, extra={"verified": verified})

    def check(self, identity_text: str, nonce: bytes, proof: bytes) -> Response:
        identity = parse_identity(identity_text)
        issued = self._challenges.pop(nonce, None)  # one use, whatever the outcome
        if issued is None or issued[0] != identity_text or issued[1] <= self.clock():
            raise InvalidCredential("unknown, expired or already used verification nonce", handle=identity.handle)
        verified = keys.check_verification_proof(self._stored_secret(identity), identity_text, nonce, proof)
        return Response(ResponseCode.SUCCESS, identity.handle, extra={"verified": verified})

    async def route(self, request: web.Request) -> web.Response:
        """`POST /api/verify`: `{"id"}` asks for a challenge, `{"id", "nonce", "proof"}` answers one,
        `{"id", "message", "mac"}` checks a session answer of an HS_SECKEY identity (see core/keys.py)."""
        media = codec.MSGPACK if codec.MSGPACK in request.headers.get("Content-Type", "") else codec.JSON
        fields = FieldReader(codec.decode_body(await request.read(), media), "verify request", ProtocolError)
        identity_text = fields.text("id")
        proof = fields.text("proof", "")
        mac = fields.text("mac", "")
        if mac:
            answer = self.check_mac(identity_text, _unb64(fields.text("message"), "message"), _unb64(mac, "mac"))
        elif proof:
            answer = self.check(identity_text, _unb64(fields.text("nonce"), "nonce"), _unb64(proof, "proof"))
        else:
            answer = self.challenge(identity_text)
        return web.Response(status=200, body=codec.encode_response(answer, media), content_type=media)



class RemoteVerifier:
    """The relying node's side: finds the key holder by walking the hierarchy and runs the exchange above."""

    def __init__(self, resolver: RecursiveResolver, clock: Clock = time.monotonic) -> None:
        self.resolver = resolver
        self.clock = clock
        self.exchanges = 0
        """Verifications sent to other nodes (for statistics and tests)."""
        self._holders: dict[tuple[str, int], tuple[str, float]] = {}
        """(handle key, index) -> (URL of the server holding the key, expiry)."""

    async def _walk(self, identity: ValueReference) -> tuple[Resolution, str | None]:
        """An authoritative walk for the identity's value; returns it and the URL of the server that answered."""
        resolution = Resolution(Handle.from_text(identity.handle), self.resolver.root_sites,
                                indexes=(identity.index,), authoritative=True, health=self.resolver.health,
                                now=time.time())
        await drive(resolution, KeepAliveTransport(self.resolver.pool), SYSTEM_CLOCK)
        answered = [hop for hop in resolution.trace if not hop.cache_hit
                    and hop.code in (ResponseCode.SUCCESS, ResponseCode.VALUES_NOT_FOUND)]
        result = resolution.result
        if not answered and (result is None or result.code not in _DEFINITE_ANSWERS):
            why = result.message if result is not None else "no answer"
            raise TransportError(f"cannot find the holder of {identity.handle}: {why}")
        return resolution, answered[-1].server if answered else None

    async def public_key(self, identity: ValueReference) -> bytes | None:
        """The HS_PUBKEY data of a foreign identity (public values only), or None when there is none."""
        resolution, _ = await self._walk(identity)
        result = resolution.result
        if result is None or not result.ok:
            return None
        for value in result.values:
            if value.index == identity.index and value.type_key == HS_PUBKEY and isinstance(value.data, KeyData):
                return value.data.key
        return None

    async def secret_parameters(self, identity: ValueReference) -> tuple[bytes, int] | None:
        """Salt and iteration count of a foreign HS_SECKEY (what a client needs to answer a session challenge)."""
        holder = await self._holder(identity)
        if holder is None:
            return None
        challenge = await self._post(holder, {"id": identity.to_text()})
        if not challenge.ok:
            return None
        fields = FieldReader(challenge.extra, "verify challenge", ProtocolError)
        return _unb64(fields.text("salt"), "salt"), fields.integer("iterations", lo=1, hi=10_000_000)

    async def verify_mac(self, identity: ValueReference, message: bytes, mac: bytes) -> bool:
        """Has the holder of a foreign HS_SECKEY check a session answer (the node keeps the session's nonce)."""
        holder = await self._holder(identity)
        if holder is None:
            return False
        self.exchanges += 1
        verdict = await self._post(holder, {"id": identity.to_text(), "message": _b64(message), "mac": _b64(mac)})
        return verdict.ok and verdict.extra.get("verified") is True

    async def _holder(self, identity: ValueReference) -> str | None:
        memo = (Handle.from_text(identity.handle).key, identity.index)
        known = self._holders.get(memo)
        if known is not None and known[1] > self.clock():
            return known[0]
        _, holder = await self._walk(identity)
        if holder is not None:
            if len(self._holders) >= MAX_HOLDERS:
                self._holders.clear()
            self._holders[memo] = (holder, self.clock() + HOLDER_TTL)
        return holder

    async def verify_secret(self, identity: ValueReference, secret: str) -> bool:
        """Does the holder of `identity`'s HS_SECKEY accept `secret`? (TransportError when it cannot be asked.)"""
        holder = await self._holder(identity)
        if holder is None:
            return False  # no such handle or key anywhere in the hierarchy
        self.exchanges += 1
        text = identity.to_text()
        challenge = await self._post(holder, {"id": text})
        if not challenge.ok:
            self._holders.pop((Handle.from_text(identity.handle).key, identity.index), None)
            return False
        fields = FieldReader(challenge.extra, "verify challenge", ProtocolError)
        digest = keys.derive_secret_digest(secret, _unb64(fields.text("salt"), "salt"),
                                           fields.integer("iterations", lo=1, hi=10_000_000))
        nonce = _unb64(fields.text("nonce"), "nonce")
        verdict = await self._post(holder, {"id": text, "nonce": _b64(nonce),
                                            "proof": _b64(keys.verification_proof(digest, text, nonce))})
        return verdict.ok and verdict.extra.get("verified") is True

    async def _post(self, url: str, body: dict[str, object]) -> Response:
        parts = urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        raw = build_request("POST", host, port, VERIFY_ROUTE, body=codec.encode_body(body, codec.MSGPACK),
                            headers={"Content-Type": codec.MSGPACK})
        try:
            _, answer = await self.resolver.pool.request(host, port, raw)
            return codec.decode_response(answer, codec.MSGPACK)
        except (ConnectionBroken, OSError, TimeoutError, HandleError) as exc:
            raise TransportError(f"cannot reach the key holder {url}: {exc or type(exc).__name__}") from None
