"""Requests-per-minute and tokens-per-minute budgets: thread-safe token buckets.

A bucket refills at ``per_minute / 60`` units per second and holds at most one second's worth
(so a budget of 600 rpm allows bursts of 10, then one request every 0.1 s).  :meth:`reserve`
takes the units at once and returns how long the caller must wait; the level may go negative,
which makes later callers wait in turn (first come, first served).  A token estimate that turns
out wrong is corrected with :meth:`adjust` once the provider reports usage.  One budget is shared
by every event loop and thread that uses the same model instance.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class TokenBucket:
    """A budget of ``per_minute`` units per minute (requests or tokens)."""

    def __init__(self, per_minute: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        if per_minute <= 0:
            raise ValueError(f"a per-minute budget must be > 0, got {per_minute!r}")
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate)
        self._clock = clock
        self._level = self.capacity
        self._updated = clock()
        self._lock = threading.Lock()

    def _refill(self) -> None:
        now = self._clock()
        self._level = min(self.capacity, self._level + (now - self._updated) * self.rate)
        self._updated = now

    def reserve(self, units: float = 1.0) -> float:
        """Take ``units`` (capped at the bucket's capacity); seconds to wait before using them."""
        with self._lock:
            self._refill()
            self._level -= min(float(units), self.capacity)
            return 0.0 if self._level >= 0 else -self._level / self.rate

    def adjust(self, units: float) -> None:
        """Take ``units`` more (or give back, when negative) after the fact."""
        with self._lock:
            self._refill()
            self._level = min(self.capacity, self._level - float(units))


class RateBudget:
    """Optional ``rpm`` and ``tpm`` buckets of one model instance."""

    def __init__(self, rpm: float | None, tpm: float | None) -> None:
        self.requests = TokenBucket(rpm) if rpm else None
        self.tokens = TokenBucket(tpm) if tpm else None

    @property
    def active(self) -> bool:
        """True when at least one budget is set."""
        return self.requests is not None or self.tokens is not None

    def reserve(self, estimated_tokens: int) -> float:
        """Seconds to wait before sending a request estimated at ``estimated_tokens``."""
        wait = 0.0
        if self.requests is not None:
            wait = max(wait, self.requests.reserve(1))
        if self.tokens is not None:
            wait = max(wait, self.tokens.reserve(estimated_tokens))
        return wait

    def settle(self, estimated_tokens: int, actual_tokens: int | None) -> None:
        """Correct the token budget with the usage the provider reported."""
        if self.tokens is not None and actual_tokens is not None:
            self.tokens.adjust(actual_tokens - estimated_tokens)


def estimate_tokens(chars: int, max_tokens: int | None) -> int:
    """A request's token cost before it is sent: ~4 characters a token, plus the answer budget."""
    return chars // 4 + 1 + (max_tokens if max_tokens else 256)
