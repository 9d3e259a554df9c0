"""Each algorithm on the in-process store, step by step on a manual clock."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from dprims.errors import RateLimitExceeded
from dprims.ratelimit import (
    GCRA,
    ConcurrencyLimiter,
    FixedWindow,
    MemoryStore,
    MultiLimiter,
    Penalty,
    RateLimitMetrics,
    SlidingLog,
    SlidingWindow,
    TokenBucket,
)
from dprims.testing import FakeClock


def run(limiter: Any, clock: FakeClock, steps: list[tuple]) -> None:
    """Play (at, cost, allowed, remaining, retry_after) rows against it."""
    for at, cost, allowed, remaining, retry_after in steps:
        clock.set(at)
        decision = limiter.acquire("k", cost)
        row = (at, cost)
        assert (allowed, remaining) == (
            decision.allowed,
            decision.remaining,
        ), row
        assert retry_after == pytest.approx(decision.retry_after, abs=1e-9), (
            row
        )


class TestTokenBucket:
    def test_refills_at_rate(self, clock: FakeClock) -> None:
        """Burst first, then one token per 1/rate seconds."""
        limiter = TokenBucket(rate=2.0, burst=3, clock=clock)
        run(
            limiter,
            clock,
            [
                (1000.0, 3, True, 0, 0.0),
                (1000.0, 1, False, 0, 0.5),
                (1000.25, 1, False, 0, 0.25),
                (1000.5, 1, True, 0, 0.0),
                (1002.0, 2, True, 1, 0.0),  # 3 tokens back, capped at burst
                (1010.0, 3, True, 0, 0.0),
            ],
        )

    def test_reset_after_is_time_to_full(self, clock: FakeClock) -> None:
        """reset_after is when the bucket is full again."""
        limiter = TokenBucket(rate=4.0, burst=8, clock=clock)

        assert 1.0 == limiter.acquire("k", 4).reset_after
        clock.advance(1.0)
        assert (True, 8) == limiter.peek("k")[:3:2]

    def test_rate_from_string(self, clock: FakeClock) -> None:
        """Rates parse from strings, and from_rate derives the burst."""
        assert 10.0 == TokenBucket(rate="10/s", burst=20).rate
        limiter = TokenBucket.from_rate("120/minute", clock=clock)

        assert (2.0, 120) == (limiter.rate, limiter.burst)
        assert 7 == TokenBucket.from_rate("1/h", burst=7).burst

    def test_reconfigure(self, clock: FakeClock) -> None:
        """A new rate and burst apply to the next decision."""
        limiter = TokenBucket(rate=1.0, burst=2, clock=clock)
        limiter.acquire("k", 2)
        limiter.reconfigure(rate=10.0, burst=5)
        clock.advance(1.0)

        assert (True, 4) == limiter.acquire("k")[::2][:2]
        limiter.reconfigure(burst=1)
        assert 1 == limiter.capacity
        assert "TokenBucket(rate=10.0, burst=1" in repr(limiter)

    def test_reservation_delay(self, clock: FakeClock) -> None:
        """Go-style reserve: debt now, a delay of debt / rate."""
        limiter = TokenBucket(rate=2.0, burst=2, clock=clock)
        limiter.reserve("k", 2)

        reservation = limiter.reserve("k", 2)

        assert (True, 1.0) == (reservation.ok, reservation.delay)
        assert "Reservation(key='k', cost=2, ok=True" in repr(reservation)
        clock.advance(1.0)
        reservation.cancel()  # its time has come: nothing is given back
        assert 0 == limiter.peek("k").remaining


class TestGCRA:
    def test_spaces_requests(self, clock: FakeClock) -> None:
        """After the burst, one request per emission interval."""
        limiter = GCRA(rate=1.0, burst=3, clock=clock)
        run(
            limiter,
            clock,
            [
                (1000.0, 1, True, 2, 0.0),
                (1000.0, 2, True, 0, 0.0),
                (1000.0, 1, False, 0, 1.0),
                (1000.5, 1, False, 0, 0.5),
                (1001.0, 1, True, 0, 0.0),
                (1010.0, 3, True, 0, 0.0),
            ],
        )

    def test_matches_token_bucket(self) -> None:
        """GCRA admits what a token bucket of the same rate/burst admits."""
        clock = FakeClock(0.0)
        bucket = TokenBucket(rate=3.0, burst=4, clock=clock)
        gcra = GCRA(rate=3.0, burst=4, clock=clock)
        rng = random.Random(7)
        for _ in range(500):
            clock.advance(rng.choice([0.0, 0.125, 0.25, 0.5, 1.0]))
            cost = rng.randint(1, 4)

            assert (
                bucket.acquire("k", cost).allowed
                is gcra.acquire("k", cost).allowed
            )

    def test_reconfigure_and_refund(self, clock: FakeClock) -> None:
        """reconfigure changes the rate; cancel refunds a booking."""
        limiter = GCRA(rate=1.0, burst=1, clock=clock)
        limiter.reconfigure(rate="2/s", burst=2)
        booked = limiter.reserve("k", 2)
        pending = limiter.reserve("k", 1)
        pending.cancel()

        assert (2.0, 2, 0.0, 0.5) == (
            limiter.rate,
            limiter.burst,
            booked.delay,
            pending.delay,
        )
        assert 0 == limiter.peek("k").remaining
        clock.advance(0.5)
        assert limiter.acquire("k").allowed


class TestFixedWindow:
    def test_window_edges(self, clock: FakeClock) -> None:
        """Counts reset exactly at multiples of the window."""
        limiter = FixedWindow(limit=2, window=10.0, clock=clock)
        run(
            limiter,
            clock,
            [
                (1000.0, 2, True, 0, 0.0),
                (1009.999, 1, False, 0, 0.001),
                (1010.0, 1, True, 1, 0.0),
                (1019.5, 1, True, 0, 0.0),
                (1020.0, 2, True, 0, 0.0),
            ],
        )

    def test_from_rate(self, clock: FakeClock) -> None:
        """from_rate reads the limit and window from a string."""
        limiter = FixedWindow.from_rate("100/minute", clock=clock)

        assert (100, 60.0) == (limiter.limit, limiter.window)
        with pytest.raises(ValueError, match="whole"):
            FixedWindow.from_rate("1.5/s")

    def test_reconfigure(self, clock: FakeClock) -> None:
        """A lower limit refuses at once; the window can change too."""
        limiter = FixedWindow(limit=5, window=10.0, clock=clock)
        limiter.acquire("k", 3)
        limiter.reconfigure(limit=2)

        assert (False, 0) == limiter.acquire("k")[::2][:2]
        limiter.reconfigure(window=20.0)
        assert 20.0 == limiter.window


class TestSlidingWindow:
    def test_previous_window_fades(self, clock: FakeClock) -> None:
        """The previous window counts in proportion to its overlap."""
        limiter = SlidingWindow(limit=10, window=10.0, clock=clock)
        run(
            limiter,
            clock,
            [
                (1000.0, 10, True, 0, 0.0),
                # estimate 10 * 1.0: one unit needs 10 * 0.1 to fade
                (1010.0, 1, False, 0, 1.0),
                (1011.0, 1, True, 0, 0.0),
                # 10 * 0.8 + 1 = 9: one more fits, then 2 need another 2 s
                (1012.0, 1, True, 0, 0.0),
                (1012.0, 2, False, 0, 2.0),
                # current 2 + cost 9 > 10: wait into the next window, where
                # 2 * (1 - 1 / 2) must fade: 8 s + 5 s
                (1012.0, 9, False, 0, 13.0),
                (1025.0, 9, True, 0, 0.0),
            ],
        )

    def test_reset_after(self, clock: FakeClock) -> None:
        """reset_after ends when both counted windows are over."""
        limiter = SlidingWindow(limit=3, window=10.0, clock=clock)
        decision = limiter.acquire("k")

        assert 20.0 == decision.reset_after
        clock.advance(decision.reset_after)
        assert (True, 3, 0.0) == limiter.peek("k")[::2]


class TestSlidingLog:
    def test_exact_window(self, clock: FakeClock) -> None:
        """Each unit leaves exactly one window after it was admitted."""
        limiter = SlidingLog(limit=3, window=10.0, clock=clock)
        run(
            limiter,
            clock,
            [
                (1000.0, 1, True, 2, 0.0),
                (1004.0, 2, True, 0, 0.0),
                (1009.0, 1, False, 0, 1.0),
                (1010.0, 1, True, 0, 0.0),
                (1010.0, 2, False, 0, 4.0),
                (1014.0, 2, True, 0, 0.0),
            ],
        )


ALL = [
    (TokenBucket, (2.0, 5)),
    (GCRA, (2.0, 5)),
    (FixedWindow, (5, 3.0)),
    (SlidingWindow, (5, 3.0)),
    (SlidingLog, (5, 3.0)),
]


@pytest.mark.parametrize(("cls", "args"), ALL)
class TestEveryAlgorithm:
    def test_retry_after_is_exact(
        self, cls: type, args: tuple, clock: FakeClock
    ) -> None:
        """retry_after is the shortest wait after which the cost fits."""
        limiter = cls(*args, clock=clock)
        rng = random.Random(3)
        for _ in range(300):
            clock.advance(rng.choice([0.0, 0.1, 0.25, 0.7]))
            cost = rng.randint(1, 5)
            decision = limiter.acquire("k", cost)
            if decision.allowed:
                continue
            retry = decision.retry_after
            assert retry > 0
            if retry > 2e-3:
                clock.advance(retry - 1e-3)
                # A refusal consumes nothing, so probing is harmless.
                assert not limiter.acquire("k", cost).allowed
                clock.advance(1e-3)
            else:
                clock.advance(retry)
            assert limiter.acquire("k", cost).allowed

    def test_reset_after_restores_capacity(
        self, cls: type, args: tuple, clock: FakeClock
    ) -> None:
        """After reset_after the key has its full capacity again."""
        limiter = cls(*args, clock=clock)
        clock.advance(0.4)
        limiter.acquire("k", 3)
        decision = limiter.acquire("k", 2)

        clock.advance(decision.reset_after)

        assert 5 == limiter.peek("k").remaining

    def test_wait_sleeps_on_the_clock(
        self, cls: type, args: tuple, clock: FakeClock
    ) -> None:
        """wait sleeps through the injected clock, not for real."""
        limiter = cls(*args, clock=clock)
        limiter.acquire("k", 5)
        start = clock.monotonic()

        decision = limiter.wait("k", timeout=10.0)

        assert decision.allowed
        assert clock.monotonic() > start

    def test_wait_async(
        self, cls: type, args: tuple, clock: FakeClock
    ) -> None:
        """wait_async waits on the clock, and raises past the timeout."""
        limiter = cls(*args, clock=clock)

        async def scenario() -> None:
            await limiter.acquire_async("k", 5)
            assert (await limiter.wait_async("k", timeout=10.0)).allowed
            await limiter.acquire_async("k", 5)
            with pytest.raises(RateLimitExceeded):
                await limiter.wait_async("k", cost=5, timeout=0.01)
            assert 1 == len(await limiter.acquire_many_async(["x"]))
            assert (await limiter.peek_async("x")).allowed
            await limiter.reset_async("k")
            assert (await limiter.acquire_async("k", 5)).allowed

        asyncio.run(scenario())

    def test_forgets_idle_keys(
        self, cls: type, args: tuple, clock: FakeClock
    ) -> None:
        """The table drops keys that stayed fresh from one sweep to the next."""
        limiter = cls(*args, clock=clock)
        for i in range(3000):
            limiter.acquire(f"user:{i}")
        clock.advance(100.0)
        for i in range(3000):
            limiter.acquire(f"other:{i}")
        clock.advance(100.0)
        for i in range(3000):
            limiter.acquire(f"third:{i}")

        data = limiter._table.data
        assert [] == [key for key in data if key.startswith("user:")]
        assert len(data) <= 6000

    def test_keys_in_steady_use_survive_sweeps(
        self, cls: type, args: tuple, clock: FakeClock
    ) -> None:
        """A key used between every two sweeps is never dropped."""
        limiter = cls(*args, clock=clock)
        missing = 0
        for i in range(6000):
            if i % 500 == 0:
                missing += "steady" not in limiter._table.data
                clock.advance(100.0)
                limiter.acquire("steady")
                # Fresh again long before the next sweep looks at it.
                clock.advance(100.0)
            limiter.acquire(f"churn:{i}")

        assert 1 == missing  # only before its first use

    def test_name_and_repr(
        self, cls: type, args: tuple, clock: FakeClock
    ) -> None:
        """The default name comes from the parameters; repr shows them."""
        limiter = cls(*args, clock=clock, name="api")

        assert "api" == limiter.name
        assert "name='api'" in repr(limiter)
        assert isinstance(limiter.store, MemoryStore)
        assert cls(*args).name != "api"


class TestMemoryStore:
    def test_live_keys_are_bounded(self, clock: FakeClock) -> None:
        """Past max_keys the oldest keys are forgotten, memory stays bounded."""
        store = MemoryStore(max_keys=100)
        limiter = FixedWindow(1, 1e6, store=store, clock=clock)
        for i in range(1000):
            limiter.acquire(f"k{i}")

        assert len(limiter._table.data) <= 100
        assert limiter.acquire("k999").allowed is False
        assert "MemoryStore(max_keys=100)" == repr(store)

    def test_bad_max_keys(self) -> None:
        """max_keys below 1 is refused."""
        with pytest.raises(ValueError, match="max_keys"):
            MemoryStore(max_keys=0)


class TestMulti:
    def test_mixed_algorithms(self, clock: FakeClock) -> None:
        """10/s and 20/min together: the minute limit bites at 20."""
        store = MemoryStore()
        metrics = RateLimitMetrics()
        both = MultiLimiter(
            [
                TokenBucket("10/s", 10, store=store, clock=clock),
                SlidingWindow.from_rate("20/minute", store=store, clock=clock),
            ],
            store=store,
            clock=clock,
            hooks=metrics,
        )
        admitted = 0
        for _ in range(50):
            admitted += both.acquire("k").allowed
            clock.advance(0.1)

        assert 20 == admitted
        assert (20, 30) == (metrics.allowed, metrics.denied)
        assert "MultiLimiter([TokenBucket" in repr(both)
        assert 2 == len(both.limiters)

    def test_bad_combinations(self, clock: FakeClock) -> None:
        """Empty lists, non-limiters and foreign stores are refused."""
        store = MemoryStore()
        with pytest.raises(ValueError, match="empty"):
            MultiLimiter([], store=store)
        with pytest.raises(TypeError, match="limiters"):
            MultiLimiter(["x"], store=store)  # type: ignore[list-item]
        with pytest.raises(ValueError, match="store"):
            MultiLimiter([TokenBucket(1, 1)], store=store)

    def test_cost_above_smallest_capacity(self, clock: FakeClock) -> None:
        """The cost may not exceed the smallest capacity."""
        store = MemoryStore()
        both = MultiLimiter(
            [
                TokenBucket(1, 5, store=store, clock=clock),
                FixedWindow(3, 10, store=store, clock=clock),
            ],
            store=store,
            clock=clock,
        )
        with pytest.raises(ValueError, match="cost"):
            both.acquire("k", 4)


class TestPenaltyClock:
    def test_ban_expires(self, clock: FakeClock) -> None:
        """A ban lasts exactly its time; then the limit decides again."""
        limiter = FixedWindow(
            1,
            1.0,
            clock=clock,
            penalty=Penalty(threshold=3, window=10.0, ban=60.0),
        )
        limiter.acquire("k")
        for _ in range(3):
            last = limiter.acquire("k")

        assert 60.0 == last.retry_after
        clock.advance(59.9)
        assert not limiter.acquire("k").allowed
        clock.advance(0.1)
        assert limiter.acquire("k").allowed

    def test_spread_denials_do_not_ban(self, clock: FakeClock) -> None:
        """Denials further apart than the window never add up to a ban."""
        limiter = TokenBucket(
            1.0,
            1,
            clock=clock,
            penalty=Penalty(threshold=2, window=0.5, ban=60.0),
        )
        for _ in range(10):
            limiter.acquire("k")
            limiter.acquire("k")  # refused
            clock.advance(1.0)

        assert limiter.acquire("k").allowed

    def test_many_and_peek_respect_bans(self, clock: FakeClock) -> None:
        """acquire_many and peek see the ban too."""
        metrics = RateLimitMetrics()
        limiter = GCRA(
            1.0,
            1,
            clock=clock,
            hooks=metrics,
            penalty=Penalty(threshold=1, window=5.0, ban=30.0),
        )
        decisions = limiter.acquire_many(["k", "k", "k"])

        assert [True, False, False] == [d.allowed for d in decisions]
        assert 30.0 == decisions[2].retry_after
        assert 30.0 == limiter.peek("k").retry_after
        assert 3 == metrics.allowed + metrics.denied

    def test_bad_penalty(self) -> None:
        """Penalty arguments are checked; so is its type."""
        with pytest.raises(ValueError, match="threshold"):
            Penalty(threshold=0, window=1.0, ban=1.0)
        with pytest.raises(ValueError, match="ban"):
            Penalty(threshold=1, window=1.0, ban=0.0)
        with pytest.raises(TypeError, match="penalty"):
            TokenBucket(1, 1, penalty=3)  # type: ignore[arg-type]


class TestConcurrencyClock:
    def test_crashed_holder_slot_comes_back(self, clock: FakeClock) -> None:
        """A lease that is never released expires after its lease time."""
        limiter = ConcurrencyLimiter(1, lease=10.0, clock=clock)
        limiter.acquire("db")  # the holder "crashes": no release
        refused = limiter.acquire("db")

        assert 10.0 == refused.decision.retry_after
        clock.advance(10.0)
        assert limiter.acquire("db").allowed

    def test_renew_extends(self, clock: FakeClock) -> None:
        """A renewed lease outlives its first term."""
        limiter = ConcurrencyLimiter(1, lease=10.0, clock=clock)
        permit = limiter.acquire("db")
        clock.advance(9.0)
        assert permit.renew()
        clock.advance(9.0)

        assert not limiter.acquire("db").allowed

    def test_wait_gets_a_freed_slot(self, clock: FakeClock) -> None:
        """wait polls until the lease runs out."""
        limiter = ConcurrencyLimiter(1, lease=1.0, clock=clock)
        limiter.acquire("db")

        assert limiter.wait("db", timeout=5.0).allowed

    def test_async_surface(self, clock: FakeClock) -> None:
        """The asyncio methods mirror the blocking ones."""
        metrics = RateLimitMetrics()
        limiter = ConcurrencyLimiter(
            1, lease=1.0, clock=clock, hooks=metrics, name="jobs"
        )

        async def scenario() -> None:
            async with await limiter.acquire_async("db") as permit:
                assert permit.allowed
                assert await permit.renew_async()
                assert not (await limiter.peek_async("db")).allowed
                waited = limiter.wait_async("db", timeout=0.5, poll=0.1)
                with pytest.raises(RateLimitExceeded):
                    await waited
            assert not await permit.renew_async()
            held = await limiter.wait_async("db", timeout=5.0)
            await limiter.reset_async("db")
            await held.release_async()
            assert (await limiter.peek_async("db")).allowed

        asyncio.run(scenario())
        assert 1 <= metrics.allowed
        assert "ConcurrencyLimiter(limit=1" in repr(limiter)

    def test_reconfigure(self, clock: FakeClock) -> None:
        """limit and lease change at runtime."""
        limiter = ConcurrencyLimiter(1, clock=clock)
        limiter.reconfigure(limit=2, lease=5.0)

        assert (2, 5.0, "cc1") == (limiter.limit, limiter.lease, limiter.name)
        assert limiter.acquire("a").allowed
        assert limiter.acquire("a").allowed
        assert "allowed=True" in repr(limiter.acquire("b"))
