"""Token buckets for AWS's per-shard throughput limits."""

from __future__ import annotations

import time


class TokenBucket:
    """`rate` tokens per second, bursting to one second's worth."""

    __slots__ = ("_at", "_tokens", "rate")

    def __init__(self, rate: float) -> None:
        self.rate = float(rate)
        self._tokens = self.rate
        self._at = time.monotonic()

    def _refill(self) -> None:
        now = time.monotonic()
        self._tokens = min(self.rate, self._tokens + (now - self._at) * self.rate)
        self._at = now

    def try_take(self, amount: float) -> bool:
        """Take `amount` tokens if they are all there."""
        self._refill()
        if self._tokens >= amount:
            self._tokens -= amount
            return True
        return False

    def has_tokens(self) -> bool:
        self._refill()
        return self._tokens > 0

    def charge(self, amount: float) -> None:
        """Take `amount` even if it drives the balance negative (reads: the size is known only afterwards)."""
        self._refill()
        self._tokens -= amount
