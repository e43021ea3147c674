"""Per-client token buckets: the rate limit behind every server's 429."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable


class TokenBuckets:
    """One token bucket per client key (an IP address), refilled at ``rate`` per second.

    A request costs one token; a bucket holds at most ``burst``. :meth:`take` says how long
    to wait when the bucket is empty. Only the ``max_clients`` most recently seen clients
    keep a bucket, so a spray of source addresses costs bounded memory (a dropped client
    comes back with a full bucket, which is what an idle client has anyway).
    """

    def __init__(
        self,
        rate: float,
        burst: float,
        max_clients: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0 or burst <= 0:
            raise ValueError("rate and burst must be > 0")
        self.rate = rate
        self.burst = burst
        self.max_clients = max_clients
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, key: str, cost: float = 1.0) -> float:
        """Spend ``cost`` tokens of ``key``; 0.0 if allowed, else seconds until it would be.

        ``cost=0`` only asks whether ``key`` is out of debt (see :meth:`charge`).
        """
        tokens, now = self._refill(key)
        if tokens >= cost:
            tokens -= cost
            wait = 0.0
        else:
            wait = (cost - tokens) / self.rate
        self._store(key, tokens, now)
        return wait

    def charge(self, key: str, amount: float) -> None:
        """Take ``amount`` after the fact (e.g. seconds of work done); may leave a debt."""
        tokens, now = self._refill(key)
        self._store(key, tokens - amount, now)

    def _refill(self, key: str) -> tuple[float, float]:
        now = self._clock()
        tokens, last = self._buckets.pop(key, (float(self.burst), now))
        return min(float(self.burst), tokens + (now - last) * self.rate), now

    def _store(self, key: str, tokens: float, now: float) -> None:
        self._buckets[key] = (tokens, now)
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)

    def __len__(self) -> int:
        return len(self._buckets)
