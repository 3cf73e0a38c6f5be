"""Authentication at the HTTP edge.

Two schemes, as Handle.Net's REST API has them:
- `Basic base64(index%3Ahandle:secret)` (what pyhandle sends), checked against the identity's HS_SECKEY;
- `Handle version="0", sessionId="...", id="300:...", type="HS_PUBKEY", cnonce="...", alg="SHA256",
  signature="..."`: a signature over the session's nonce and the client's cnonce, checked against the identity's
  HS_PUBKEY; afterwards `Handle version="0", sessionId="..."` alone carries the identity (see net/sessions.py).

Keys this node holds are checked here; keys held elsewhere are verified by their holder (net/verify.py), and those
verdicts are remembered for a short while.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

from ..core import keys
from ..core.auth import parse_hashed_secret, parse_identity, verify_secret
from ..core.errors import (
    AuthenticationFailed,
    AuthenticationNeeded,
    InvalidCredential,
    OperationNotSupported,
    ProtocolError,
    TransportError,
)
from ..core.handle import Handle
from ..core.service import HandleService
from ..core.values import HS_PUBKEY, HS_SECKEY, KeyData, ValueReference
from .sessions import Session, SessionTable
from .verify import RemoteVerifier

Clock = Callable[[], float]
REMOTE_POSITIVE_TTL = 60.0
"""Seconds a foreign identity's successful verification is remembered (a key changed at its holder takes effect
after at most this long here)."""
SECKEY_ALG = "HMAC-SHA256"
"""The `alg` of an HS_SECKEY answer in the Handle scheme (see core/keys.secret_mac)."""
REMOTE_NEGATIVE_TTL = 5.0
"""Seconds a foreign identity's failed verification is remembered (bounds guessing traffic to the holder)."""
_PARAM = re.compile(r'([A-Za-z]+)\s*=\s*(?:"([^"]*)"|([^,\s]*))')


def parse_basic(header: str) -> tuple[ValueReference, str]:
    """`Basic base64(index%3Ahandle:secret)` -> (identity, secret); the user is percent-decoded as pyhandle sends it."""
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "basic" or not token:
        raise ProtocolError(f"unsupported Authorization scheme {scheme!r}; use Basic or Handle")
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):  # binascii.Error, and non-ASCII text in the header
        raise InvalidCredential("the Basic credentials are not valid base64 of UTF-8 text") from None
    user, colon, secret = decoded.partition(":")
    if not colon:
        raise InvalidCredential("the Basic credentials have no ':' between user and secret")
    return parse_identity(unquote(user)), secret



def parse_handle_scheme(header: str) -> dict[str, str]:
    """The `key="value"` parameters of an `Authorization: Handle ...` header."""
    scheme, _, rest = header.partition(" ")
    if scheme.lower() != "handle":
        raise ProtocolError(f"unsupported Authorization scheme {scheme!r}; use Basic or Handle")
    return {m.group(1): m.group(2) if m.group(2) is not None else m.group(3) for m in _PARAM.finditer(rest)}


def _b64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:  # binascii.Error included
        raise InvalidCredential(f"{what} is not base64") from None


def _bounded(table: dict[Any, Any], capacity: int) -> dict[Any, Any]:
    if len(table) >= capacity:
        table.clear()
    return table


class Authenticator:
    """Verifies identities against the keys this node holds, or has their holder verify them.

    PBKDF2 is slow by design, so a verified (identity, secret digest) pair is remembered: local verdicts until a
    record changes here, foreign verdicts for REMOTE_POSITIVE_TTL / REMOTE_NEGATIVE_TTL seconds.
    """

    def __init__(self, service: HandleService, capacity: int = 4096, *, clock: Clock = time.time,
                 remote: RemoteVerifier | None = None, sessions: SessionTable | None = None) -> None:
        self.service = service
        self.capacity = capacity
        self.clock = clock
        self.remote = remote
        """Asks other nodes about keys this node does not hold (None: only local keys are known)."""
        self.sessions = sessions if sessions is not None else SessionTable(clock)
        self._local: dict[str, dict[tuple[int, bytes], bool]] = {}
        """handle key -> (index, sha256 of the secret) -> verdict, kept until that handle changes here."""
        self._foreign: dict[tuple[str, int, bytes], tuple[bool, float]] = {}
        """The same for keys held elsewhere -> (verdict, expiry)."""
        self._asking: dict[tuple[str, int, bytes], asyncio.Future[bool]] = {}
        """Exchanges with key holders in flight."""
        service.listeners.append(self._forget)

    async def authenticate(self, header: str) -> ValueReference:
        """The identity an Authorization header proves, or a HandleError (402, 403, 404) saying why not."""
        scheme = header.partition(" ")[0].lower()
        if scheme == "handle":
            return await self.authenticate_session(parse_handle_scheme(header))
        identity, secret = parse_basic(header)
        return await self.authenticate_secret(identity, secret)

    # -- secret keys --------------------------------------------------------------------------------------------

    async def authenticate_secret(self, identity: ValueReference, secret: str) -> ValueReference:
        handle = Handle.from_text(identity.handle)
        memo = (handle.key, identity.index, hashlib.sha256(secret.encode("utf-8", "surrogatepass")).digest())
        now = self.clock()
        if self._is_local(handle):
            known_here = self._local.get(handle.key)
            verdict = known_here.get(memo[1:]) if known_here is not None else None
            if verdict is None:
                verdict = self._verify_local(handle.key, identity, secret)
                if known_here is None or len(known_here) >= 16:
                    known_here = _bounded(self._local, self.capacity)[handle.key] = {}
                known_here[memo[1:]] = verdict
        else:
            known = self._foreign.get(memo)
            fresh = known is not None and known[1] > now
            verdict = known[0] if known is not None and fresh else await self._ask_holder(memo, identity, secret)
        if not verdict:
            raise AuthenticationFailed(f"authentication failed for {identity.to_text()}: wrong secret or no such key")
        return identity

    async def _ask_holder(self, memo: tuple[str, int, bytes], identity: ValueReference, secret: str) -> bool:
        """One exchange with the key holder per (identity, secret) at a time: a burst of requests waits for it."""
        pending = self._asking.get(memo)
        if pending is None:
            pending = asyncio.ensure_future(self._exchange(memo, identity, secret))
            self._asking[memo] = pending
            pending.add_done_callback(lambda done: self._asked(memo, done))
        return await asyncio.shield(pending)  # a client that goes away does not cancel the others' answer

    async def _exchange(self, memo: tuple[str, int, bytes], identity: ValueReference, secret: str) -> bool:
        assert self.remote is not None
        try:
            verdict = await self.remote.verify_secret(identity, secret)
        except TransportError as exc:
            raise AuthenticationFailed(f"cannot verify {identity.to_text()}: {exc.message}") from None
        ttl = REMOTE_POSITIVE_TTL if verdict else REMOTE_NEGATIVE_TTL
        _bounded(self._foreign, self.capacity)[memo] = (verdict, self.clock() + ttl)
        return verdict

    def _asked(self, memo: tuple[str, int, bytes], done: asyncio.Future[bool]) -> None:
        self._asking.pop(memo, None)
        if not done.cancelled():
            done.exception()  # retrieved: nobody may be left waiting for it

    def _is_local(self, handle: Handle) -> bool:
        """Keys of handles this node holds or is responsible for are checked here, never asked for elsewhere."""
        return (self.remote is None or self.service.is_responsible(handle)
                or self.service.store.get(handle.key) is not None)

    def _verify_local(self, handle_key: str, identity: ValueReference, secret: str) -> bool:
        stored = self._stored_secret(handle_key, identity)
        return stored is not None and verify_secret(stored, secret)

    def snapshot(self) -> dict[str, int]:
        local = sum(len(v) for v in self._local.values())
        return {"sessions": len(self.sessions), "remembered_verdicts": local + len(self._foreign),
                "remote_verifications": self.remote.exchanges if self.remote is not None else 0}

    def _forget(self, key: str) -> None:
        """A record changed here: verdicts on its keys may be stale (foreign ones depend on records held elsewhere).
        Called after every write, so it drops only that handle's verdicts."""
        if key:
            self._local.pop(key, None)
        else:
            self._local.clear()

    # -- public keys and sessions ------------------------------------------------------------------------------

    def session_of(self, params: dict[str, str]) -> Session:
        session_id = params.get("sessionId", "")
        session = self.sessions.get(session_id) if session_id else None
        if session is None:
            raise AuthenticationNeeded("unknown or expired session; open one with POST /api/sessions")
        return session

    async def authenticate_session(self, params: dict[str, str]) -> ValueReference:
        """A `Handle` header: prove an identity for the session (with a signature), or use the one it holds."""
        if params.get("clientCert", "").lower() == "true":
            raise OperationNotSupported("client certificates are not supported here; use Basic or a session "
                                        "(POST /api/sessions)")
        session = self.session_of(params)
        if "signature" in params:
            session.identity = await self.verify_signature(session, params)
        if session.identity is None:
            raise AuthenticationNeeded("the session is not authenticated yet; sign its nonce (id, type, cnonce, "
                                       "alg, signature)")
        return session.identity

    async def verify_signature(self, session: Session, params: dict[str, str]) -> ValueReference:
        """Check the answer to the session's challenge: a signature (HS_PUBKEY) or an HMAC (HS_SECKEY)."""
        identity = parse_identity(unquote(params.get("id", "")))
        key_type = params.get("type", HS_PUBKEY).upper()
        message = keys.challenge_message(session.nonce, _b64(params.get("cnonce", ""), "cnonce"))
        answer = _b64(params["signature"], "signature")
        if key_type == HS_SECKEY:
            if params.get("alg", SECKEY_ALG).upper() != SECKEY_ALG:
                raise InvalidCredential(f"an HS_SECKEY answer uses alg={SECKEY_ALG}")
            verified = await self.verify_secret_mac(identity, message, answer)
        elif key_type == HS_PUBKEY:
            verified = await self.verify_key_signature(identity, message, answer, params.get("alg", "SHA256"))
        else:
            raise OperationNotSupported(f"challenge-response with {key_type} is not supported; use HS_PUBKEY or "
                                        "HS_SECKEY")
        if not verified:
            raise AuthenticationFailed(f"authentication failed for {identity.to_text()}: the answer does not verify "
                                       f"against its {key_type}")
        return identity

    async def secret_parameters(self, identity: ValueReference) -> dict[str, object]:
        """What a client needs to answer a challenge with an HS_SECKEY: the hash's salt and iteration count."""
        handle = Handle.from_text(identity.handle)
        if self._is_local(handle):
            stored = self._stored_secret(handle.key, identity)
            parameters = keys.secret_parameters(stored) if stored is not None else None
        else:
            assert self.remote is not None
            try:
                parameters = await self.remote.secret_parameters(identity)
            except TransportError as exc:
                raise AuthenticationFailed(f"cannot reach the key holder of {identity.to_text()}: {exc.message}"
                                           ) from None
        if parameters is None:
            raise InvalidCredential(f"{identity.to_text()} is not a secret key", handle=identity.handle)
        salt, iterations = parameters
        return {"id": identity.to_text(), "type": HS_SECKEY, "alg": SECKEY_ALG, "scheme": "pbkdf2_sha256",
                "salt": base64.b64encode(salt).decode("ascii"), "iterations": iterations}

    async def verify_key_signature(self, identity: ValueReference, message: bytes, signature: bytes,
                                   alg: str) -> bool:
        """Does `signature` over `message` verify under the identity's HS_PUBKEY (fetched from its holder if it
        lives elsewhere)?"""
        key_data = await self._public_key(identity)
        return key_data is not None and keys.verify_signature(key_data, message, signature, alg)

    def local_secret_digest(self, identity: ValueReference) -> bytes | None:
        """The PBKDF2 digest of the identity's secret when this node holds it (None otherwise): the key of the
        native protocol's HS_SECKEY challenge answers other than HMAC-SHA256, which only the holder can check."""
        handle = Handle.from_text(identity.handle)
        if not self._is_local(handle):
            return None
        stored = self._stored_secret(handle.key, identity)
        parsed = parse_hashed_secret(stored) if stored is not None else None
        return parsed[2] if parsed is not None else None

    async def verify_secret_mac(self, identity: ValueReference, message: bytes, mac: bytes) -> bool:
        """Is `mac` HMAC-SHA256(PBKDF2 digest of the identity's secret, message)? Asks the holder when the key
        lives elsewhere."""
        handle = Handle.from_text(identity.handle)
        if self._is_local(handle):
            stored = self._stored_secret(handle.key, identity)
            return stored is not None and keys.check_secret_mac(stored, message, mac)
        assert self.remote is not None
        try:
            return await self.remote.verify_mac(identity, message, mac)
        except TransportError as exc:
            raise AuthenticationFailed(f"cannot verify {identity.to_text()}: {exc.message}") from None

    def _stored_secret(self, handle_key: str, identity: ValueReference) -> str | None:
        record = self.service.store.get(handle_key)
        value = record.value_at(identity.index) if record is not None else None
        if value is None or value.type_key != HS_SECKEY or not isinstance(value.data, str):
            return None
        return value.data

    async def _public_key(self, identity: ValueReference) -> bytes | None:
        handle = Handle.from_text(identity.handle)
        if not self._is_local(handle):
            assert self.remote is not None
            try:
                return await self.remote.public_key(identity)
            except TransportError as exc:
                raise AuthenticationFailed(f"cannot fetch the key of {identity.to_text()}: {exc.message}") from None
        record = self.service.store.get(handle.key)
        value = record.value_at(identity.index) if record is not None else None
        if value is None or value.type_key != HS_PUBKEY or not isinstance(value.data, KeyData):
            return None
        return value.data.key
