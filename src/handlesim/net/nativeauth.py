"""Challenge-response on a node's native interface, mapped onto the node's own authentication (net/credentials.py).

A request the service refuses with 402 (authentication needed) is parked here under a fresh session id and answered
with a challenge: a nonce and a digest of the request as it arrived. The client's OC_RESPONSE_TO_CHALLENGE names that
session id; when its proof verifies, the parked request runs again with the proven identity, so a native write needs
exactly the permissions a REST write needs (the service decides, with the same HS_ADMIN rules).

Proofs (wire/native/credential.py): HS_SECKEY answers are keyed with the PBKDF2 digest the node stores for the secret
(HMAC-SHA256 answers may name a key held at another node, which is asked as for REST; the other algorithms only work
for keys this node holds); HS_PUBKEY answers are signatures checked against the identity's HS_PUBKEY.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..core.errors import AuthenticationFailed, InvalidCredential, OperationNotSupported
from ..core.handle import Handle
from ..core.values import HS_PUBKEY, HS_SECKEY, ValueReference
from ..wire.native.body import ChallengeAnswerBody, Message, RequestDigest
from ..wire.native.credential import (
    HMAC_SHA256,
    NONCE_BYTES,
    challenge_message,
    check_secret_key_answer,
    decode_public_key_answer,
    decode_secret_key_answer,
)
from ..wire.native.envelope import Envelope
from ..wire.native.header import RawMessage
from .credentials import Authenticator

Clock = Callable[[], float]
CHALLENGE_TTL = 60.0
"""Seconds a client has to answer a challenge (the reference server's default maximum authentication time)."""
MAX_CHALLENGES = 10_000


@dataclass(frozen=True, slots=True)
class PendingChallenge:
    session_id: int
    nonce: bytes
    digest: RequestDigest
    envelope: Envelope
    """The challenged request's envelope (its version decides the answer's format)."""
    request: Message
    raw: RawMessage
    """The challenged request as it arrived (its digest goes in the final answer when it asked for one)."""
    peer: str
    """The host the request came from: only it may answer."""
    expires: float

    @property
    def message(self) -> bytes:
        """What the proof is computed over."""
        return challenge_message(self.nonce, self.digest)


class ChallengeTable:
    """Requests waiting for a proof of identity, bounded in number and in time."""

    def __init__(self, clock: Clock = time.time, *, ttl: float = CHALLENGE_TTL, capacity: int = MAX_CHALLENGES,
                 random_bytes: Callable[[int], bytes] = os.urandom) -> None:
        self.clock = clock
        self.ttl = ttl
        self.capacity = capacity
        self.random_bytes = random_bytes
        self._pending: dict[int, PendingChallenge] = {}

    def __len__(self) -> int:
        return len(self._pending)

    def issue(self, envelope: Envelope, request: Message, raw: RawMessage, digest: RequestDigest,
              peer: str) -> PendingChallenge:
        now = self.clock()
        if len(self._pending) >= self.capacity:
            self._evict(now)
        session_id = secrets.randbelow(0x7FFFFFFF) + 1
        while session_id in self._pending:
            session_id = secrets.randbelow(0x7FFFFFFF) + 1
        challenge = PendingChallenge(session_id, self.random_bytes(NONCE_BYTES), digest, envelope, request, raw,
                                     peer, now + self.ttl)
        self._pending[session_id] = challenge
        return challenge

    def take(self, session_id: int, peer: str) -> PendingChallenge | None:
        """The live challenge `session_id` issued to `peer`, removed (a challenge is answered once), else None."""
        challenge = self._pending.get(session_id)
        if challenge is None or challenge.peer != peer:
            return None
        del self._pending[session_id]
        return challenge if challenge.expires > self.clock() else None

    def _evict(self, now: float) -> None:
        for sid in [sid for sid, c in self._pending.items() if c.expires <= now]:
            del self._pending[sid]
        while len(self._pending) >= self.capacity:
            del self._pending[next(iter(self._pending))]


async def verify_answer(authenticator: Authenticator, challenge: PendingChallenge,
                        answer: ChallengeAnswerBody) -> ValueReference:
    """The identity the answer proves, or AuthenticationFailed / InvalidCredential / OperationNotSupported."""
    identity = _identity(answer)
    key_type = answer.key_type.upper()
    if key_type == HS_SECKEY:
        proof = decode_secret_key_answer(answer.answer)
        if proof.hash_code == HMAC_SHA256:
            verified = await authenticator.verify_secret_mac(identity, challenge.message, proof.mac)
        else:
            key = authenticator.local_secret_digest(identity)
            verified = key is not None and check_secret_key_answer(proof, key, challenge.message)
    elif key_type == HS_PUBKEY:
        signed = decode_public_key_answer(answer.answer)
        verified = await authenticator.verify_key_signature(identity, challenge.message, signed.signature,
                                                            signed.algorithm)
    else:
        raise OperationNotSupported(f"challenge answers with {answer.key_type[:40]!r} are not supported; use "
                                    "HS_SECKEY or HS_PUBKEY")
    if not verified:
        raise AuthenticationFailed(f"authentication failed for {identity.to_text()}: the answer does not verify "
                                   f"against its {key_type}")
    return identity


def _identity(answer: ChallengeAnswerBody) -> ValueReference:
    try:
        Handle.from_text(answer.identity_handle)
    except ValueError as exc:
        raise InvalidCredential(f"identity {answer.identity_index}:{answer.identity_handle[:80]!r} is not "
                                f"INDEX:HANDLE ({exc})") from None
    if answer.identity_index < 0:
        raise InvalidCredential(f"identity index {answer.identity_index} is negative")
    return ValueReference(answer.identity_handle, answer.identity_index)
