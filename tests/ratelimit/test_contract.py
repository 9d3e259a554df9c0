"""One contract for every limiter on every store: memory, Redis, Cluster.

On Redis the server's clock runs, so the limits here are slow (a token per
1000 s, windows of 11 days): within a test they behave as if time stood
still, which is what the memory store gets from its FakeClock.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import pytest

from dprims.errors import RateLimitExceeded
from dprims.ratelimit import (
    GCRA,
    ConcurrencyLimiter,
    Decision,
    FixedWindow,
    MultiLimiter,
    Penalty,
    RateLimitMetrics,
    SlidingLog,
    SlidingWindow,
    TokenBucket,
)


if TYPE_CHECKING:
    from collections.abc import Callable

ALGORITHMS = {
    "token_bucket": (TokenBucket, (0.001, 5)),
    "gcra": (GCRA, (0.001, 5)),
    "fixed_window": (FixedWindow, (5, 1e6)),
    "sliding_window": (SlidingWindow, (5, 1e6)),
    "sliding_log": (SlidingLog, (5, 1e6)),
}
ODD_KEYS = [
    "",
    "{",
    "}",
    "a}:x:{b",
    "%7B",
    "user:42",
    "ключ 🔑",
    "x" * 10_000,
]


@pytest.fixture(params=sorted(ALGORITHMS))
def limiter(request: pytest.FixtureRequest, make: Callable[..., Any]) -> Any:
    """A limiter of capacity 5 that does not refill during a test."""
    cls, args = ALGORITHMS[request.param]
    return make(cls, *args)


class TestContract:
    def test_admits_capacity_then_refuses(self, limiter: Any) -> None:
        """Admits exactly the capacity, then refuses with a wait."""
        decisions = [limiter.acquire("k") for _ in range(6)]

        assert [True] * 5 + [False] == [d.allowed for d in decisions]
        assert [4, 3, 2, 1, 0] == [d.remaining for d in decisions[:5]]
        assert 5 == decisions[0].limit
        assert 0.0 == decisions[0].retry_after
        assert 0 == decisions[5].remaining
        assert decisions[5].retry_after > 0
        assert decisions[5].reset_after >= decisions[5].retry_after

    def test_decision_is_a_value(self, limiter: Any) -> None:
        """A decision is an immutable Decision with the five fields."""
        decision = limiter.acquire("k")

        assert isinstance(decision, Decision)
        assert (True, 5, 4) == decision[:3]

    def test_peek_consumes_nothing(self, limiter: Any) -> None:
        """Peek reports what is available and changes nothing."""
        assert (True, 5) == (limiter.peek("k").allowed, limiter.peek("k")[2])
        limiter.acquire("k", cost=2)

        peeked = limiter.peek("k")

        assert (True, 3) == (peeked.allowed, peeked.remaining)
        assert 3 == limiter.peek("k").remaining

    def test_peek_when_exhausted(self, limiter: Any) -> None:
        """Peek on an exhausted key is refused with the wait for one unit."""
        limiter.acquire("k", cost=5)

        peeked = limiter.peek("k")

        assert (False, 0) == (peeked.allowed, peeked.remaining)
        assert peeked.retry_after > 0

    def test_reset_forgets(self, limiter: Any) -> None:
        """Reset gives the key its full capacity back."""
        limiter.acquire("k", cost=5)
        limiter.reset("k")

        assert 4 == limiter.acquire("k").remaining

    def test_cost_counts(self, limiter: Any) -> None:
        """A cost of n takes n units, and is refused as a whole."""
        assert 2 == limiter.acquire("k", cost=3).remaining
        refused = limiter.acquire("k", cost=3)

        assert (False, 2) == (refused.allowed, refused.remaining)
        assert 0 == limiter.acquire("k", cost=2).remaining

    @pytest.mark.parametrize("cost", [0, -1, 6])
    def test_bad_cost_is_a_value_error(self, limiter: Any, cost: int) -> None:
        """Cost below 1 or above the capacity is refused as bad input."""
        with pytest.raises(ValueError, match="cost"):
            limiter.acquire("k", cost=cost)

    def test_odd_keys_are_independent(self, limiter: Any) -> None:
        """Keys of any content are safe and never share state."""
        for key in ODD_KEYS:
            assert 4 == limiter.acquire(key).remaining

    def test_acquire_many(self, limiter: Any) -> None:
        """acquire_many decides each item on its own, in order."""
        keys = [f"user:{i}" for i in range(10)]
        first = limiter.acquire_many([*keys, ("user:0", 4), "user:0"])

        assert [4] * 10 + [0] == [d.remaining for d in first[:11]]
        assert not first[11].allowed
        assert [] == limiter.acquire_many([])

    def test_wait_raises_with_the_decision(self, limiter: Any) -> None:
        """wait gives up at once when the wait would exceed the timeout."""
        limiter.acquire("k", cost=5)

        with pytest.raises(RateLimitExceeded) as info:
            limiter.wait("k", timeout=1.0)

        assert isinstance(info.value.decision, Decision)
        assert info.value.retry_after > 1.0

    def test_wait_returns_when_allowed(self, limiter: Any) -> None:
        """wait returns the decision at once when there is capacity."""
        assert limiter.wait("k", cost=2).allowed

    def test_exact_under_threads(self, limiter: Any) -> None:
        """8 threads hammering one key admit exactly the capacity."""
        admitted: list[int] = []
        barrier = threading.Barrier(8)

        def hammer() -> None:
            barrier.wait(timeout=10)
            admitted.append(
                sum(limiter.acquire("hot").allowed for _ in range(10))
            )

        threads = [threading.Thread(target=hammer) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)

        assert 5 == sum(admitted)

    def test_hooks_see_every_decision(self, make: Callable[..., Any]) -> None:
        """Metrics hooks count allowed and denied decisions."""
        metrics = RateLimitMetrics()
        limiter = make(FixedWindow, 2, 1e6, hooks=metrics)
        for _ in range(3):
            limiter.acquire("k")

        assert (2, 1) == (metrics.allowed, metrics.denied)


class TestMultiLimiter:
    def test_all_limits_must_allow(
        self, make: Callable[..., Any], store: Any
    ) -> None:
        """The tighter limit decides, and a refusal charges no limit."""
        burst = make(TokenBucket, 0.001, 3)
        window = make(FixedWindow, 5, 1e6)
        both = make(MultiLimiter, [burst, window])

        decisions = [both.acquire("k") for _ in range(4)]

        assert [True, True, True, False] == [d.allowed for d in decisions]
        assert 2 == window.peek("k").remaining
        assert 0 == burst.peek("k").remaining

    def test_many_keys_at_once(self, make: Callable[..., Any]) -> None:
        """A MultiLimiter's acquire_many decides each key atomically."""
        both = make(
            MultiLimiter,
            [make(GCRA, 0.001, 2), make(SlidingLog, 3, 1e6)],
        )

        decisions = both.acquire_many(["a", "b", "a", "a"])

        assert [True, True, True, False] == [d.allowed for d in decisions]
        assert 1 == both.peek("b").remaining

    def test_reset_resets_every_limit(self, make: Callable[..., Any]) -> None:
        """Reset clears every limit of the key."""
        both = make(
            MultiLimiter,
            [make(SlidingWindow, 2, 1e6), make(FixedWindow, 3, 1e6)],
        )
        both.acquire("k", cost=2)
        both.reset("k")

        assert 1 == both.acquire("k").remaining

    def test_wait_raises(self, make: Callable[..., Any]) -> None:
        """wait on a MultiLimiter raises when the wait is too long."""
        both = make(MultiLimiter, [make(FixedWindow, 1, 1e6)])
        both.acquire("k")

        with pytest.raises(RateLimitExceeded):
            both.wait("k", timeout=0.5)


class TestPenalty:
    def test_hammering_gets_banned(self, make: Callable[..., Any]) -> None:
        """Two denials within the window ban the key for the ban time."""
        limiter = make(
            TokenBucket,
            0.01,
            1,
            penalty=Penalty(threshold=2, window=100.0, ban=5000.0),
        )
        assert limiter.acquire("k").allowed
        first = limiter.acquire("k")
        banned = limiter.acquire("k")

        assert 99 < first.retry_after <= 100
        assert not banned.allowed
        assert 4990 < banned.retry_after <= 5000
        assert limiter.acquire("other").allowed
        assert not limiter.peek("k").allowed

    def test_reset_lifts_the_ban(self, make: Callable[..., Any]) -> None:
        """Reset forgets the usage and the ban."""
        limiter = make(
            TokenBucket,
            0.001,
            1,
            penalty=Penalty(threshold=1, window=10.0, ban=600.0),
        )
        limiter.acquire("k")
        limiter.acquire("k")
        limiter.reset("k")

        assert limiter.acquire("k").allowed

    def test_multi_limiter_penalty(
        self, make: Callable[..., Any], store: Any
    ) -> None:
        """A MultiLimiter bans on its own combined denials."""
        both = make(
            MultiLimiter,
            [make(FixedWindow, 1, 1e6)],
            penalty=Penalty(threshold=1, window=10.0, ban=900.0),
        )
        both.acquire("k")
        both.acquire("k")

        banned = both.acquire("k")

        assert banned.retry_after > 800


class TestReserve:
    @pytest.mark.parametrize("cls", [TokenBucket, GCRA])
    def test_books_into_the_future(
        self, make: Callable[..., Any], cls: type
    ) -> None:
        """A reservation beyond the burst waits for the refill."""
        limiter = make(cls, 0.01, 2)
        now = limiter.reserve("k", cost=2)
        later = limiter.reserve("k")

        assert (True, 0.0) == (now.ok, now.delay)
        assert later.ok
        assert 99 < later.delay <= 100.0
        assert not limiter.acquire("k").allowed

    @pytest.mark.parametrize("cls", [TokenBucket, GCRA])
    def test_max_delay_books_nothing(
        self, make: Callable[..., Any], cls: type
    ) -> None:
        """A reservation that would wait too long is not booked."""
        limiter = make(cls, 0.01, 1)
        limiter.acquire("k")

        refused = limiter.reserve("k", max_delay=10.0)
        refused.cancel()

        assert not refused.ok
        assert refused.delay > 10
        assert 0 == limiter.peek("k").remaining

    @pytest.mark.parametrize("cls", [TokenBucket, GCRA])
    def test_cancel_gives_back(
        self, make: Callable[..., Any], cls: type
    ) -> None:
        """Cancelling a pending reservation returns its units."""
        limiter = make(cls, 0.01, 2)
        limiter.acquire("k")
        pending = limiter.reserve("k", cost=2)
        pending.cancel()
        pending.cancel()

        assert 1 == limiter.peek("k").remaining

    def test_cancel_of_nothing(self, make: Callable[..., Any]) -> None:
        """Cancelling for a key with no state changes nothing."""
        limiter = make(TokenBucket, 0.01, 2)
        reservation = limiter.reserve("k")
        limiter.reset("k")
        reservation.cancel()

        assert 2 == limiter.peek("k").remaining


class TestConcurrency:
    def test_at_most_n_in_flight(self, make: Callable[..., Any]) -> None:
        """A third holder is refused until one releases."""
        limiter = make(ConcurrencyLimiter, 2, lease=600.0)
        first = limiter.acquire("db")
        second = limiter.acquire("db")
        third = limiter.acquire("db")

        assert (True, True, False) == (
            first.allowed,
            second.allowed,
            third.allowed,
        )
        assert 590 < third.decision.retry_after <= 600
        first.release()
        first.release()
        assert limiter.acquire("db").allowed

    def test_context_manager_releases(self, make: Callable[..., Any]) -> None:
        """Leaving the with-block frees the slot."""
        limiter = make(ConcurrencyLimiter, 1, lease=600.0)
        with limiter.acquire("db") as permit:
            assert permit.allowed
            assert not limiter.peek("db").allowed

        assert (True, 1) == limiter.peek("db")[:2]

    def test_renew_and_reset(self, make: Callable[..., Any]) -> None:
        """Renew keeps a live lease; reset frees every slot."""
        limiter = make(ConcurrencyLimiter, 1, lease=600.0)
        permit = limiter.acquire("db")

        assert permit.renew()
        limiter.reset("db")
        assert not permit.renew()
        assert limiter.acquire("db").allowed
        permit.release()
        assert not permit.renew()

    def test_wait_times_out(self, make: Callable[..., Any]) -> None:
        """wait raises when no slot frees up in time."""
        limiter = make(ConcurrencyLimiter, 1, lease=600.0)
        limiter.acquire("db")

        with pytest.raises(RateLimitExceeded):
            limiter.wait("db", timeout=0.2, poll=0.05)

    def test_exact_under_threads(self, make: Callable[..., Any]) -> None:
        """8 threads competing for 3 slots get exactly 3."""
        limiter = make(ConcurrencyLimiter, 3, lease=600.0)
        granted: list[int] = []
        barrier = threading.Barrier(8)

        def compete() -> None:
            barrier.wait(timeout=10)
            granted.append(
                sum(limiter.acquire("db").allowed for _ in range(5))
            )

        threads = [threading.Thread(target=compete) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)

        assert 3 == sum(granted)
