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


@dataclass
class _Record:
    rtt: float = UNMEASURED
    failed_until: float = 0.0
    failures: int = 0


@dataclass
class ServerHealth:
    penalty: float = DEFAULT_FAILED_FOR
    """Seconds a server that failed to answer is tried only after every other server."""
    smoothing: float = 0.3
    """Weight of the newest sample in the moving average."""
    _servers: dict[str, _Record] = field(default_factory=dict)

    def answered(self, url: str, seconds: float) -> None:
        record = self._servers.setdefault(url, _Record(rtt=seconds))
        record.rtt += self.smoothing * (seconds - record.rtt)
        record.failed_until = 0.0

    def failed(self, url: str, now: float) -> None:
        record = self._servers.setdefault(url, _Record())
        record.failed_until = now + self.penalty
        record.failures += 1

    def order_key(self, url: str, now: float) -> tuple[bool, float]:
        """Sort key: servers in their penalty period last, then the fastest first."""
        record = self._servers.get(url)
        if record is None:
            return (False, UNMEASURED)
        return (record.failed_until > now, record.rtt)

    def snapshot(self) -> dict[str, dict[str, float]]:
        return {url: {"rtt_ms": round(r.rtt * 1000, 3), "failures": r.failures, "failed_until": r.failed_until}
                for url, r in self._servers.items()}
