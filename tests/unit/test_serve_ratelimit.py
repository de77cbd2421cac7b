"""Rate limits per key (token buckets on a fake clock) and the concurrency gate that answers 429 when full."""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Iterator

import pytest

from tunewise.serve.ratelimit import ConcurrencyGate, Overloaded, RateLimiter


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_allows_its_burst_then_refills_at_the_rate() -> None:
    clock = FakeClock()
    limiter = RateLimiter(60, clock=clock)
    assert [limiter.try_acquire("k") for _ in range(60)] == [None] * 60
    assert limiter.try_acquire("k") == pytest.approx(1.0)
    clock.now += 0.5
    assert limiter.try_acquire("k") == pytest.approx(0.5)  # half a token back; a refused call takes nothing
    clock.now += 0.5
    assert limiter.try_acquire("k") is None
    assert limiter.try_acquire("k") == pytest.approx(1.0)
    clock.now += 3600  # a long idle refills to the burst, no further
    assert [limiter.try_acquire("k") for _ in range(61)].count(None) == 60


def test_burst_keys_and_per_call_limits_are_independent() -> None:
    clock = FakeClock()
    limiter = RateLimiter(6, burst=2, clock=clock)
    assert [limiter.try_acquire("a"), limiter.try_acquire("a")] == [None, None]
    assert limiter.try_acquire("a") == pytest.approx(10.0)  # 6 a minute: one token every 10 s
    assert limiter.try_acquire("b") is None  # another key has its own bucket
    assert limiter.try_acquire("c", per_minute=1, burst=1) is None
    assert limiter.try_acquire("c", per_minute=1, burst=1) == pytest.approx(60.0)
    clock.now += 10
    assert limiter.try_acquire("a") is None
    assert RateLimiter().try_acquire("anyone") is None  # no default and no per-key limit: unlimited
    with pytest.raises(ValueError, match="positive"):
        RateLimiter(0)


@pytest.fixture
def fast_thread_switching() -> Iterator[None]:
    """Switch threads every microsecond, so that an unlocked read-modify-write would be interleaved."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


@pytest.mark.usefixtures("fast_thread_switching")
def test_threads_never_get_more_than_the_bucket_holds() -> None:
    limiter = RateLimiter(5000, clock=FakeClock())  # the clock stands still: exactly 5000 tokens in all
    allowed: list[int] = []
    lock = threading.Lock()

    def hammer() -> None:
        mine = sum(limiter.try_acquire("k") is None for _ in range(2000))
        with lock:
            allowed.append(mine)

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(allowed) == 5000


def test_the_gate_queues_up_to_its_limit_then_refuses_at_once() -> None:
    async def scenario() -> None:
        gate = ConcurrencyGate(max_in_flight=1, max_queue=1)
        release = asyncio.Event()
        order: list[str] = []

        async def request(name: str) -> None:
            async with gate.slot():
                order.append(name)
                await release.wait()

        first = asyncio.create_task(request("first"))
        await asyncio.sleep(0)
        second = asyncio.create_task(request("second"))
        await asyncio.sleep(0)
        assert (gate.in_flight, gate.queued) == (1, 1)
        with pytest.raises(Overloaded) as caught:
            await asyncio.wait_for(request("third"), timeout=1)  # refused at once, not after the timeout
        assert caught.value.retry_after_s >= 1.0
        release.set()
        await asyncio.gather(first, second)
        assert order == ["first", "second"] and (gate.in_flight, gate.queued) == (0, 0)

    asyncio.run(asyncio.wait_for(scenario(), timeout=10))


def test_a_cancelled_waiter_leaves_the_queue_and_no_queue_means_refuse() -> None:
    async def scenario() -> None:
        gate = ConcurrencyGate(max_in_flight=2, max_queue=2)
        hold = asyncio.Event()

        async def request() -> None:
            async with gate.slot():
                await hold.wait()

        running = [asyncio.create_task(request()) for _ in range(2)]
        waiting = [asyncio.create_task(request()) for _ in range(2)]
        await asyncio.sleep(0)
        assert (gate.in_flight, gate.queued) == (2, 2)
        waiting[0].cancel()
        await asyncio.sleep(0)
        assert (gate.in_flight, gate.queued) == (2, 1)
        hold.set()
        await asyncio.gather(*running, waiting[1])
        assert (gate.in_flight, gate.queued) == (0, 0)

        no_queue = ConcurrencyGate(max_in_flight=1, max_queue=0)
        async with no_queue.slot():
            with pytest.raises(Overloaded):
                async with no_queue.slot():
                    pass
        async with no_queue.slot():  # the slot came back
            assert no_queue.in_flight == 1

    asyncio.run(asyncio.wait_for(scenario(), timeout=10))
