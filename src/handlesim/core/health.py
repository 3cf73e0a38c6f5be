"""What a client remembers about servers: smoothed response times, and which ones failed lately.

Handle clients order a site list by measured response time and skip a server that just failed for a while; a
Resolution consults one ServerHealth shared by every lookup of its driver (client, resolver, generator).
"""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_TIMEOUT = 0.5
"""Seconds before a silent server counts as failed: loopback answers in about a millisecond, so half a second is
generous even on a loaded machine, and a dead server costs a lookup at most that much per attempt."""
DEFAULT_FAILED_FOR = 30.0
"""Seconds a server that did not answer is tried only after every other one."""
UNMEASURED = 0.001
"""Seconds assumed for a server never asked (loopback-fast, so new servers get tried)."""


SUSPECT_AFTER = 0.1
"""Seconds a server may leave a request unanswered before new requests prefer other servers (it is not failed:
only ordered after the others until it answers or times out)."""
SUSPICION_EXPIRES = 5.0
"""Seconds after which an unanswered request no longer casts suspicion (its driver may have given up on it)."""


@dataclass
class _Record:
    rtt: float = UNMEASURED
    failed_until: float = 0.0
    failures: int = 0
    waiting_since: float = 0.0
    """When the oldest request still unanswered was sent (0: none)."""


@dataclass
class ServerHealth:
    penalty: float = DEFAULT_FAILED_FOR
    """Seconds a server that failed to answer is tried only after every other server."""
    smoothing: float = 0.3
    """Weight of the newest sample in the moving average."""
    suspect_after: float = SUSPECT_AFTER
    """Seconds a request may stay unanswered before other servers are preferred for new requests. Without this,
    every lookup started while the first one waits out the timeout would pick the hung server too."""
    _servers: dict[str, _Record] = field(default_factory=dict)

    def sent(self, url: str, now: float) -> None:
        record = self._servers.setdefault(url, _Record())
        if not record.waiting_since:
            record.waiting_since = now

    def answered(self, url: str, seconds: float) -> None:
        record = self._servers.setdefault(url, _Record(rtt=seconds))
        record.rtt += self.smoothing * (seconds - record.rtt)
        record.failed_until = 0.0
        record.waiting_since = 0.0  # it answers: whatever is still outstanding is just slow

    def failed(self, url: str, now: float) -> None:
        record = self._servers.setdefault(url, _Record())
        record.failed_until = now + self.penalty
        record.failures += 1
        record.waiting_since = 0.0

    def order_key(self, url: str, now: float) -> tuple[bool, float]:
        """Sort key: servers in their penalty period, or silent on a request for a while, last; then the fastest."""
        record = self._servers.get(url)
        if record is None:
            return (False, UNMEASURED)
        waited = now - record.waiting_since if record.waiting_since else 0.0
        suspect = self.suspect_after < waited < self.suspect_after + SUSPICION_EXPIRES
        return (record.failed_until > now or suspect, record.rtt)

    def snapshot(self) -> dict[str, dict[str, float]]:
        return {url: {"rtt_ms": round(r.rtt * 1000, 3), "failures": r.failures, "failed_until": r.failed_until}
                for url, r in self._servers.items()}
