"""Back-pressure for the server: a token bucket per API key, and a cap on requests in flight and waiting.

Both answer "not now" at once with the seconds to wait (for ``Retry-After``), so a client gets a 429 instead of a
request that queues forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from tunewise.errors import TunewiseError

PRUNE_ABOVE = 10_000
"""Buckets kept before full ones (indistinguishable from new) are dropped, so memory stays bounded."""


@dataclass
class _Bucket:
    tokens: float
    stamp: float
    per_minute: float
    burst: float


class RateLimiter:
    """A token bucket per key: ``per_minute`` tokens a minute, holding at most ``burst`` (default ``per_minute``).

    Thread-safe. A key's limit can come with each call (its :class:`~tunewise.serve.keys.ApiKey` record), falling
    back to the limiter's default; with neither, the key is not limited.

    Args:
        per_minute: the default rate, or ``None`` for no default limit.
        burst: the default bucket size.
        clock: monotonic seconds (tests pass a fake one).
    """

    def __init__(
        self,
        per_minute: float | None = None,
        *,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        _check_positive(per_minute, "per_minute")
        _check_positive(burst, "burst")
        self.per_minute = per_minute
        self.burst = burst
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, _Bucket] = {}

    def try_acquire(self, key: str, *, per_minute: float | None = None, burst: float | None = None) -> float | None:
        """Take one token from ``key``'s bucket.

        Args:
            per_minute: this key's rate (default: the limiter's).
            burst: this key's bucket size (default: the limiter's burst, else the rate).

        Returns:
            ``None`` when the request may go ahead, else the seconds until a token is available.
        """
        rate = per_minute if per_minute is not None else self.per_minute
        if rate is None:
            return None
        _check_positive(rate, "per_minute")
        size = burst if burst is not None else self.burst if self.burst is not None else rate
        size = max(size, 1.0)  # a bucket smaller than one token would never allow a request
        with self._lock:
            now = self._clock()
            bucket = self._buckets.get(key)
            if bucket is None:
                if len(self._buckets) >= PRUNE_ABOVE:
                    self._prune(now)
                bucket = self._buckets[key] = _Bucket(tokens=size, stamp=now, per_minute=rate, burst=size)
            _refill(bucket, now)
            bucket.per_minute, bucket.burst = rate, size  # a changed limit applies from now on
            bucket.tokens = min(bucket.tokens, size)
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return None
            return (1.0 - bucket.tokens) * 60.0 / rate

    def _prune(self, now: float) -> None:
        for key, bucket in list(self._buckets.items()):
            _refill(bucket, now)
            if bucket.tokens >= bucket.burst:
                del self._buckets[key]


def _refill(bucket: _Bucket, now: float) -> None:
    elapsed = max(0.0, now - bucket.stamp)
    bucket.tokens = min(bucket.burst, bucket.tokens + elapsed * bucket.per_minute / 60.0)
    bucket.stamp = now


def _check_positive(value: float | None, name: str) -> None:
    if value is not None and value <= 0:
        raise ValueError(f"{name} must be positive, got {value}")


class Overloaded(TunewiseError):
    """The server is full: as many requests running as allowed and the queue full too. Answer 429."""

    def __init__(self, retry_after_s: float) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(f"server overloaded; retry in {retry_after_s:.1f}s")


class ConcurrencyGate:
    """At most ``max_in_flight`` requests at once and ``max_queue`` waiting (first come, first served).

    For one asyncio event loop: ``async with gate.slot(): ...`` runs the block when a slot is free, waits in the queue
    when none is, and raises :class:`Overloaded` at once when the queue is full too.

    Args:
        max_in_flight: requests running at once (at least 1).
        max_queue: requests waiting for a slot (0: none wait).
        clock: monotonic seconds, to time requests for the ``retry_after_s`` estimate.
    """

    def __init__(self, max_in_flight: int, max_queue: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        if max_in_flight < 1 or max_queue < 0:
            raise ValueError(f"need max_in_flight >= 1 and max_queue >= 0, got {max_in_flight} and {max_queue}")
        self.max_in_flight = max_in_flight
        self.max_queue = max_queue
        self._clock = clock
        self._in_flight = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._mean_s = 1.0  # a running mean of request durations; one second until the first request finishes

    @property
    def in_flight(self) -> int:
        """Requests holding a slot now."""
        return self._in_flight

    @property
    def queued(self) -> int:
        """Requests waiting for a slot now."""
        return sum(1 for w in self._waiters if not w.done())

    def retry_after_s(self) -> float:
        """A guess at when a new request would get a slot: the queue ahead of it times the mean request time."""
        return max(1.0, self._mean_s * (self.queued + 1) / self.max_in_flight)

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold a slot for the block.

        Raises:
            Overloaded: every slot is taken and the queue is full.
        """
        await self._acquire()
        start = self._clock()
        try:
            yield
        finally:
            self._mean_s = 0.8 * self._mean_s + 0.2 * max(0.0, self._clock() - start)
            self._release()

    async def _acquire(self) -> None:
        if self._in_flight < self.max_in_flight and not self.queued:
            self._in_flight += 1
            return
        if self.queued >= self.max_queue:
            raise Overloaded(self.retry_after_s())
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter  # resolved by _release, which hands over its slot (in_flight stays counted)
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._release()  # the slot arrived as we were cancelled: pass it on
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            raise

    def _release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._in_flight -= 1
