"""Sessions of the `Authorization: Handle` scheme: `POST /api/sessions` opens one with a server nonce; the client signs
`nonce || cnonce` to bind an identity to it; later requests carry only the sessionId.

Sessions live in memory, per node, and expire after `idle_ttl` seconds without use (measured on the injected clock).
"""

from __future__ import annotations

import base64
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from ..core.values import ValueReference

Clock = Callable[[], float]
NONCE_BYTES = 32


@dataclass
class Session:
    session_id: str
    nonce: bytes
    """The server's challenge; the client signs `nonce || cnonce`."""
    expires: float
    identity: ValueReference | None = None
    """Set once the client proved it holds the identity's key."""

    @property
    def nonce_text(self) -> str:
        return base64.b64encode(self.nonce).decode("ascii")

    def describe(self) -> dict[str, object]:
        """The JSON a client sees for its session (as Handle.Net's /api/sessions/this)."""
        answer: dict[str, object] = {"sessionId": self.session_id, "nonce": self.nonce_text,
                                     "authenticated": self.identity is not None}
        if self.identity is not None:
            answer["id"] = self.identity.to_text()
        return answer


@dataclass
class SessionConfig:
    """How long sessions live and how many a node keeps."""

    idle_ttl: float = 600.0
    """Seconds a session survives without being used."""
    capacity: int = 10_000
    """Most open sessions per node; when full, expired ones are dropped, then the oldest."""


class SessionTable:
    def __init__(self, clock: Clock, config: SessionConfig | None = None,
                 random_bytes: Callable[[int], bytes] = os.urandom) -> None:
        self.clock = clock
        self.config = config or SessionConfig()
        self.random_bytes = random_bytes
        self._sessions: dict[str, Session] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    def open(self) -> Session:
        now = self.clock()
        if len(self._sessions) >= self.config.capacity:
            self._evict(now)
        session = Session(secrets.token_urlsafe(24), self.random_bytes(NONCE_BYTES), now + self.config.idle_ttl)
        self._sessions[session.session_id] = session
        return session

    def get(self, session_id: str) -> Session | None:
        """The live session (its idle timer restarted), or None when unknown or expired."""
        session = self._sessions.get(session_id)
        if session is None:
            return None
        now = self.clock()
        if session.expires <= now:
            del self._sessions[session_id]
            return None
        session.expires = now + self.config.idle_ttl
        return session

    def close(self, session_id: str) -> bool:
        return self._sessions.pop(session_id, None) is not None

    def _evict(self, now: float) -> None:
        for sid in [sid for sid, s in self._sessions.items() if s.expires <= now]:
            del self._sessions[sid]
        while len(self._sessions) >= self.config.capacity:
            del self._sessions[next(iter(self._sessions))]
