"""reserve / cancel of every limiter, on memory, Redis and Redis Cluster.

A booked request acts at its booking time plus its delay; every guarantee
must hold over those act times. In memory the FakeClock makes delays
exact. On Redis the server's clock runs, so the limits are slow (a token
per 1000 s, windows of 11 days) and delays are checked against bounds
computed from the parameters, never against timings.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import threading
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from redis.backoff import NoBackoff
from redis.retry import Retry

from dprims.ratelimit import (
    GCRA,
    FixedWindow,
    MemoryStore,
    MultiLimiter,
    Penalty,
    RedisStore,
    Reservation,
    SlidingLog,
    SlidingWindow,
    TokenBucket,
)
from dprims.testing import FakeClock


if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

#: Capacity 3 everywhere; on Redis nothing refills during a test.
SLOW = {
    "token_bucket": (TokenBucket, (0.001, 3)),
    "gcra": (GCRA, (0.001, 3)),
    "fixed_window": (FixedWindow, (3, 1e6)),
    "sliding_window": (SlidingWindow, (3, 1e6)),
    "sliding_log": (SlidingLog, (3, 1e6)),
}
WINDOWS = ["fixed_window", "sliding_window"]
#: The longest any single booking beyond a full limit can wait (s): a
#: bucket refills 3 units in 3000 s; a window counter may need the rest of
#: this window and all of the next (2 windows), a log one window.
MAX_WAIT = {
    "token_bucket": 3000.0,
    "gcra": 3000.0,
    "fixed_window": 1e6,
    "sliding_window": 2e6,
    "sliding_log": 1e6,
}
#: Server time may pass between two calls on Redis; a delay measured
#: later is shorter by about that much (never longer).
SLACK = 5.0


@pytest.fixture(params=sorted(SLOW))
def algorithm(request: pytest.FixtureRequest) -> str:
    """The name of the algorithm under test."""
    return str(request.param)


@pytest.fixture
def limiter(algorithm: str, make: Callable[..., Any]) -> Any:
    """A limiter of capacity 3 that does not refill during a test."""
    cls, args = SLOW[algorithm]
    return make(cls, *args)


def close_to(later: float, earlier: float, backend: str) -> bool:
    """Whether a delay measured *later* matches one measured *earlier*."""
    if backend == "memory":
        return later == earlier
    return earlier - SLACK <= later <= earlier + 1e-5


def fill(limiter: Any) -> None:
    """Take the whole capacity now."""
    assert limiter.acquire("k", 3).allowed


class TestReserve:
    def test_room_books_now(self, limiter: Any) -> None:
        """With room the reservation waits 0 and counts like an acquire."""
        booked = limiter.reserve("k", 2)

        assert (True, 0.0) == (booked.ok, booked.delay)
        assert 1 == limiter.peek("k").remaining
        assert not limiter.acquire("k", 2).allowed

    def test_full_waits_retry_after(
        self, limiter: Any, algorithm: str, backend: str
    ) -> None:
        """When full, the delay is the retry_after an acquire gets."""
        fill(limiter)
        refused = limiter.acquire("k")

        booked = limiter.reserve("k")

        assert booked.ok
        assert 0 < booked.delay <= MAX_WAIT[algorithm]
        assert close_to(booked.delay, refused.retry_after, backend)

    def test_first_come_first_served(
        self, limiter: Any, algorithm: str, backend: str
    ) -> None:
        """A later reservation never acts before an earlier one."""
        fill(limiter)

        delays = [limiter.reserve("k").delay for _ in range(7)]

        # On Redis each delay counts from its own (later) server time.
        slack = 0.0 if backend == "memory" else SLACK
        assert all(b >= a - slack for a, b in itertools.pairwise(delays))
        assert delays[0] > 0
        # Seven units beyond a capacity of 3 need more than one refill.
        assert delays[-1] > delays[0]
        assert delays[-1] <= 3 * MAX_WAIT[algorithm]

    def test_acquire_waits_behind_a_booking(
        self, limiter: Any, backend: str
    ) -> None:
        """A pending booking refuses acquires until it could go."""
        fill(limiter)
        first = limiter.reserve("k")

        refused = limiter.acquire("k")
        refused_many = limiter.acquire_many(["k"])[0]
        second = limiter.reserve("k")

        assert not refused.allowed
        assert not refused_many.allowed
        assert refused.retry_after >= first.delay - SLACK
        assert close_to(second.delay, refused.retry_after, backend)
        assert close_to(refused_many.retry_after, refused.retry_after, backend)

    @pytest.mark.parametrize("algorithm", WINDOWS)
    def test_room_now_waits_behind_a_booked_window(
        self, make: Callable[..., Any], algorithm: str, backend: str
    ) -> None:
        """Even with room now, nothing goes before a window booked ahead."""
        cls, args = SLOW[algorithm]
        limiter = make(cls, *args)
        limiter.acquire("k", 2)
        ahead = limiter.reserve("k", 2)

        refused = limiter.acquire("k")
        later = limiter.reserve("k")

        assert ahead.ok
        assert ahead.delay > 0
        assert not refused.allowed
        assert refused.retry_after >= ahead.delay - SLACK
        assert close_to(later.delay, refused.retry_after, backend)

    def test_max_delay_books_nothing(
        self, limiter: Any, algorithm: str, backend: str
    ) -> None:
        """A booking that would wait too long is refused and not kept."""
        fill(limiter)
        before = limiter.peek("k")

        refused = limiter.reserve("k", max_delay=1.0)
        refused.cancel()
        booked = limiter.reserve("k", max_delay=MAX_WAIT[algorithm])

        assert not refused.ok
        assert refused.delay > 1.0
        assert booked.ok
        assert close_to(booked.delay, refused.delay, backend)
        assert close_to(booked.delay, before.retry_after, backend)

    def test_max_delay_zero_books_only_now(self, limiter: Any) -> None:
        """max_delay=0 books exactly what an acquire would admit."""
        assert limiter.reserve("k", 3, max_delay=0).ok
        assert not limiter.reserve("k", max_delay=0).ok
        assert 0 == limiter.peek("k").remaining

    def test_cancel_gives_back_when_latest(
        self, limiter: Any, backend: str
    ) -> None:
        """Cancelling the latest booking restores what was there."""
        fill(limiter)
        reference = limiter.reserve("k", 3)
        reference.cancel()

        again = limiter.reserve("k", 3)

        assert close_to(again.delay, reference.delay, backend)

    def test_cancel_twice_gives_back_once(
        self, limiter: Any, algorithm: str, backend: str
    ) -> None:
        """A second cancel does nothing."""
        fill(limiter)
        first = limiter.reserve("k")
        second = limiter.reserve("k")
        second.cancel()
        second.cancel()

        third = limiter.reserve("k")

        assert close_to(third.delay, second.delay, backend)
        assert third.delay >= first.delay - SLACK

    @pytest.mark.parametrize("algorithm", WINDOWS)
    def test_window_cancel_of_an_earlier_booking_gives_nothing(
        self, make: Callable[..., Any], algorithm: str, backend: str
    ) -> None:
        """Units of a booking that is no longer the latest stay counted."""
        cls, args = SLOW[algorithm]
        limiter = make(cls, *args)
        fill(limiter)
        first = limiter.reserve("k", 2)
        second = limiter.reserve("k")
        expected = limiter.reserve("k", max_delay=0)  # only measures

        first.cancel()
        third = limiter.reserve("k")

        assert not expected.ok
        assert close_to(third.delay, expected.delay, backend)
        # The latest booking still cancels (it is third now).
        third.cancel()
        assert close_to(limiter.reserve("k").delay, expected.delay, backend)
        assert second.ok

    def test_sliding_log_cancel_removes_exactly_its_entries(
        self, make: Callable[..., Any], backend: str
    ) -> None:
        """Cancelling any booking of a log drops its entries only."""
        limiter = make(SlidingLog, 3, 1e6)
        fill(limiter)
        first = limiter.reserve("k")
        second = limiter.reserve("k")

        first.cancel()  # not the latest: still its entry goes
        third = limiter.reserve("k", 2)

        assert first.delay > 0
        assert close_to(second.delay, first.delay, backend)
        # With first's entry still there it would wait one more window.
        assert close_to(third.delay, second.delay, backend)

    def test_sliding_log_acquire_before_a_booking(
        self, make: Callable[..., Any], backend: str
    ) -> None:
        """An acquire admitted while a booking waits counts it in reset."""
        limiter = make(SlidingLog, 3, 100.0)
        limiter.acquire("k")
        ahead = limiter.reserve("k", 3)
        last = limiter.reserve("k")
        ahead.cancel()

        decision = limiter.acquire("k")

        assert 100 - SLACK <= ahead.delay <= 100
        assert 200 - SLACK <= last.delay <= 200
        assert decision.allowed
        assert decision.reset_after >= last.delay + 100 - SLACK

    def test_cancel_after_its_time_gives_nothing(
        self, algorithm: str, clock: FakeClock
    ) -> None:
        """Once the booked time has come the units are spent (memory)."""
        cls, args = SLOW[algorithm]
        limiter = cls(*args, clock=clock)
        fill(limiter)
        booked = limiter.reserve("k")
        clock.advance(booked.delay)
        before = limiter.peek("k")

        booked.cancel()

        assert before == limiter.peek("k")

    def test_refused_cancel_does_nothing(self, limiter: Any) -> None:
        """Cancelling a reservation that is not ok changes nothing."""
        fill(limiter)
        refused = limiter.reserve("k", max_delay=0.5)
        before = limiter.peek("k")

        refused.cancel()

        assert not refused.ok
        assert before.remaining == limiter.peek("k").remaining

    def test_async(self, clock: FakeClock) -> None:
        """reserve_async and cancel_async behave as their blocking twins."""

        async def scenario() -> None:
            for cls, args in SLOW.values():
                limiter = cls(*args, clock=clock)
                fill(limiter)
                booked = await limiter.reserve_async("k", 3)
                assert booked.ok
                assert booked.delay > 0
                await booked.cancel_async()
                again = await limiter.reserve_async("k", 3)
                assert again.delay == booked.delay

        asyncio.run(scenario())


class TestValidation:
    @pytest.mark.parametrize("bad", [-1, -0.5, math.nan])
    def test_max_delay_out_of_range(self, limiter: Any, bad: float) -> None:
        """A negative or NaN max_delay is a ValueError naming it."""
        with pytest.raises(ValueError, match="max_delay"):
            limiter.reserve("k", max_delay=bad)

    @pytest.mark.parametrize("bad", ["1", True, [1]])
    def test_max_delay_wrong_type(self, limiter: Any, bad: Any) -> None:
        """A max_delay that is not a number is a TypeError naming it."""
        with pytest.raises(TypeError, match="max_delay"):
            limiter.reserve("k", max_delay=bad)

    @pytest.mark.parametrize("cost", [0, 4, -1])
    def test_cost_out_of_range(self, limiter: Any, cost: int) -> None:
        """cost < 1 or above the capacity is a ValueError naming it."""
        with pytest.raises(ValueError, match="cost"):
            limiter.reserve("k", cost)

    def test_key_must_be_str(self, limiter: Any) -> None:
        """A key that is not a str is a TypeError naming it."""
        bad: Any = b"k"
        with pytest.raises(TypeError, match="key"):
            limiter.reserve(bad)

    def test_multi(self, make: Callable[..., Any], store: Any) -> None:
        """A MultiLimiter validates against its tightest capacity."""
        both = make(
            MultiLimiter,
            [make(FixedWindow, 2, 1e6), make(TokenBucket, 0.001, 5)],
        )
        bad: Any = 7
        with pytest.raises(ValueError, match="cost"):
            both.reserve("k", 3)
        with pytest.raises(TypeError, match="key"):
            both.reserve(bad)
        with pytest.raises(ValueError, match="max_delay"):
            both.reserve("k", max_delay=-2)
        assert both.reserve("k", 2).ok


class TestMulti:
    def test_books_every_limit_at_one_time(
        self, make: Callable[..., Any], backend: str
    ) -> None:
        """The common time is the latest any limit needs."""
        window = make(FixedWindow, 3, 1e6)
        bucket = make(TokenBucket, 0.001, 2)
        log = make(SlidingLog, 4, 1e6)
        both = make(MultiLimiter, [window, bucket, log])

        delays = [both.reserve("k").delay for _ in range(3)]

        assert delays[:2] == [0.0, 0.0]
        # The bucket asks 1000 s; the window still has room.
        assert 1000 - SLACK <= delays[2] <= 1000
        assert 0 == window.peek("k").remaining
        assert not bucket.peek("k").allowed
        assert 1 == log.peek("k").remaining

        fourth = both.reserve("k")
        # The window is full: the next one starts within 1e6 s.
        assert delays[2] - SLACK <= fourth.delay <= 1e6
        assert window.acquire("k").retry_after >= fourth.delay - SLACK

    def test_cancel_refunds_every_part(
        self, make: Callable[..., Any], backend: str
    ) -> None:
        """Cancel gives each part back by that part's rule."""
        window = make(FixedWindow, 2, 1e6)
        bucket = make(TokenBucket, 0.001, 3)
        log = make(SlidingLog, 3, 1e6)
        both = make(MultiLimiter, [window, bucket, log])
        both.reserve("k", 2)
        # The window needs the next one, the bucket 1000 s, the log one
        # whole window: every part is booked at the log's time.
        pending = both.reserve("k", 2)
        measured = both.reserve("k", max_delay=0)

        pending.cancel()
        again = both.reserve("k", 2)

        assert pending.delay > 0
        assert not measured.ok
        assert close_to(again.delay, pending.delay, backend)

    def test_penalty_refuses_a_banned_key(
        self, make: Callable[..., Any]
    ) -> None:
        """A banned key gets a reservation that is not ok."""
        both = make(
            MultiLimiter,
            [make(FixedWindow, 1, 1e6)],
            penalty=Penalty(threshold=1, window=10.0, ban=900.0),
        )
        both.acquire("k")
        both.acquire("k")  # refused: the ban starts

        banned = both.reserve("k")
        alone = make(
            FixedWindow,
            1,
            1e6,
            name="alone",
            penalty=Penalty(threshold=1, window=10.0, ban=900.0),
        )
        alone.acquire("k")
        alone.acquire("k")

        assert not banned.ok
        assert 800 < banned.delay <= 900
        assert not alone.reserve("k").ok

    def test_latest_limit_sets_the_time(self, clock: FakeClock) -> None:
        """Every part is booked at the latest time any part needs."""
        store = MemoryStore()
        window = FixedWindow(1, 10.0, store=store, clock=clock)
        bucket = TokenBucket(1.0, 1, store=store, clock=clock)
        both = MultiLimiter([window, bucket], store=store, clock=clock)

        delays = [both.reserve("k").delay for _ in range(3)]
        clock.advance(10.0)

        assert [0.0, 10.0, 20.0] == delays
        # The bucket's unit was booked for t=10, so it is spent now.
        assert not bucket.acquire("k").allowed
        assert 0 == window.peek("k").remaining


# ----------------------------------------------------------- exactness


def _aligned(acts: list[tuple[float, int]], window: float) -> int:
    counts: dict[float, int] = {}
    for at, cost in acts:
        counts[at // window] = counts.get(at // window, 0) + cost
    return max(counts.values(), default=0)


def _worst_half_open(acts: list[tuple[float, int]], window: float) -> int:
    acts = sorted(acts)
    return max(
        (
            sum(cost for at, cost in acts if start <= at < start + window)
            for start, _ in acts
        ),
        default=0,
    )


def _check_weighted(
    acts: list[tuple[float, int]], limit: int, window: float
) -> None:
    acts = sorted(acts)
    for i, (start, _) in enumerate(acts):
        total = 0
        for end, cost in acts[i:]:
            if end - start > window:
                break
            total += cost
            assert total <= limit * (1 + (end - start) / window) + 1e-6, (
                start,
                end,
                acts,
            )


def _check_bucket(
    acts: list[tuple[float, int]], rate: float, burst: int
) -> None:
    acts = sorted(acts)
    for i, (start, _) in enumerate(acts):
        total = 0
        for end, cost in acts[i:]:
            total += cost
            assert total <= burst + rate * (end - start) + 1e-6, (start, end)


def _check(limiter: Any, acts: list[tuple[float, int]]) -> None:
    if isinstance(limiter, MultiLimiter):
        for part in limiter.limiters:
            _check(part, acts)
    elif isinstance(limiter, FixedWindow):
        assert _aligned(acts, limiter.window) <= limiter.limit
    elif isinstance(limiter, SlidingLog):
        assert _worst_half_open(acts, limiter.window) <= limiter.limit
    elif isinstance(limiter, SlidingWindow):
        _check_weighted(acts, limiter.limit, limiter.window)
    else:
        _check_bucket(acts, limiter.rate, limiter.burst)


def _build(kind: str, clock: FakeClock) -> Any:
    store = MemoryStore()
    if kind == "multi":
        parts = [
            FixedWindow(3, 8.0, store=store, clock=clock),
            SlidingLog(2, 4.0, store=store, clock=clock),
            TokenBucket(0.5, 2, store=store, clock=clock),
            SlidingWindow(4, 8.0, store=store, clock=clock),
            GCRA(1.0, 3, store=store, clock=clock),
        ]
        return MultiLimiter(parts, store=store, clock=clock)
    return {
        "fixed_window": lambda: FixedWindow(3, 8.0, clock=clock),
        "sliding_window": lambda: SlidingWindow(3, 8.0, clock=clock),
        "sliding_log": lambda: SlidingLog(3, 8.0, clock=clock),
        "token_bucket": lambda: TokenBucket(0.5, 3, clock=clock),
        "gcra": lambda: GCRA(0.5, 3, clock=clock),
    }[kind]()


OPS = st.lists(
    st.one_of(
        st.tuples(st.just("acquire"), st.integers(1, 2)),
        st.tuples(st.just("reserve"), st.integers(1, 2)),
        st.tuples(st.just("cancel"), st.integers(0, 30)),
        st.tuples(
            st.just("advance"),
            st.sampled_from([0.0, 0.25, 0.5, 1.0, 2.5, 4.0, 8.0]),
        ),
    ),
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(
    kind=st.sampled_from(
        [
            "fixed_window",
            "sliding_window",
            "sliding_log",
            "token_bucket",
            "gcra",
            "multi",
        ]
    ),
    ops=OPS,
)
def test_guarantees_hold_over_act_times(
    kind: str, ops: list[tuple[str, Any]]
) -> None:
    """Random acquires, reservations, cancels and waits never over-admit.

    Times are multiples of 1/4 s, so window boundaries are exact floats. A
    reservation acts at its booking time plus its delay, unless it was
    cancelled before that time; the algorithm's bound must hold over all
    the acts.
    """
    clock = FakeClock(1000.0)
    limiter = _build(kind, clock)
    acts: list[tuple[float, int]] = []
    booked: list[tuple[Reservation, float]] = []
    withdrawn: set[int] = set()
    for op, value in ops:
        now = clock.monotonic()
        if op == "acquire":
            if limiter.acquire("k", value).allowed:
                acts.append((now, value))
        elif op == "reserve":
            reservation = limiter.reserve("k", value)
            if reservation.ok:
                booked.append((reservation, now + reservation.delay))
        elif op == "cancel":
            if booked:
                index = value % len(booked)
                reservation, at = booked[index]
                if now < at and index not in withdrawn:
                    withdrawn.add(index)
                reservation.cancel()
        else:
            clock.advance(value)
    acts += [
        (at, reservation.cost)
        for index, (reservation, at) in enumerate(booked)
        if index not in withdrawn
    ]
    _check(limiter, acts)


# ------------------------------------------------------------- threads


@pytest.mark.parametrize(
    ("cls", "args"),
    [
        (FixedWindow, (5, 1e6)),
        (SlidingLog, (5, 1e6)),
        (TokenBucket, (0.001, 5)),
    ],
)
def test_threads_never_share_capacity(
    make: Callable[..., Any], cls: type, args: tuple[Any, ...]
) -> None:
    """8 threads booking at once: each unit of capacity goes once."""
    limiter = make(cls, *args)
    delays: list[float] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def worker() -> None:
        start.wait()
        for _ in range(5):
            reservation = limiter.reserve("k")
            assert reservation.ok
            with lock:
                delays.append(reservation.delay)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert 40 == len(delays)
    if cls is TokenBucket:
        # One unit per refill interval (1000 s) after the burst of 5.
        delays.sort()
        assert delays[:5] == [0.0] * 5
        gaps = [b - a for a, b in itertools.pairwise(delays[4:])]
        assert all(1000 - SLACK <= gap <= 1000 + SLACK for gap in gaps)
    else:
        # A unit booked j windows ahead waits (j - 1, j] windows.
        window = args[1]
        buckets: dict[int, int] = {}
        for delay in delays:
            bucket = math.ceil(delay / window)
            buckets[bucket] = buckets.get(bucket, 0) + 1
        assert buckets == dict.fromkeys(range(8), 5)


# --------------------------------------------------------------- Redis


@pytest.mark.redis
class TestRedis:
    @pytest.mark.parametrize("name", sorted(SLOW))
    def test_script_flush_between_reserve_and_cancel(
        self, redis_client: Any, prefix: str, name: str
    ) -> None:
        """A server that forgot the scripts still cancels."""
        cls, args = SLOW[name]
        limiter = cls(*args, store=RedisStore(redis_client, prefix=prefix))
        fill(limiter)
        pending = limiter.reserve("k")
        redis_client.script_flush()

        pending.cancel()
        again = limiter.reserve("k")

        assert close_to(again.delay, pending.delay, "redis")

    def test_keys_expire_after_the_booking(
        self, redis_client: Any, prefix: str
    ) -> None:
        """A key holding a booking lives until the booking is over."""
        store = RedisStore(redis_client, prefix=prefix)
        for cls, args in [
            (FixedWindow, (1, 100.0)),
            (SlidingWindow, (1, 100.0)),
            (SlidingLog, (1, 100.0)),
        ]:
            limiter = cls(*args, store=store)
            limiter.acquire("k")
            booked = limiter.reserve("k")
            # An acquire on the log must not cut the booking's life short.
            limiter.acquire("k")
            (name,) = redis_client.keys(f"{prefix}:*{limiter.name}")
            assert redis_client.pttl(name) / 1000 > booked.delay

    def test_sliding_log_acquire_keeps_a_booking_alive(
        self, redis_client: Any, prefix: str
    ) -> None:
        """An acquire after a booking does not shorten the key's life."""
        limiter = SlidingLog(
            4, 100.0, store=RedisStore(redis_client, prefix=prefix)
        )
        limiter.acquire("k")
        ahead = limiter.reserve("k", 4)
        last = limiter.reserve("k")
        ahead.cancel()

        fast = limiter.acquire("k")  # the algorithm's own script
        general = limiter.acquire_many(["k"])[0]  # the general one
        (name,) = redis_client.keys(f"{prefix}:*")

        assert 200 - SLACK <= last.delay <= 200
        assert (True, True) == (fast.allowed, general.allowed)
        assert fast.reset_after >= last.delay + 100 - SLACK
        assert general.reset_after >= last.delay + 100 - SLACK
        assert redis_client.pttl(name) / 1000 > last.delay + 100

    def test_asyncio(self, redis_proc: Any, prefix: str) -> None:
        """reserve_async / cancel_async of every algorithm on asyncio."""

        async def scenario() -> None:
            client = redis_proc.async_client()
            store = RedisStore(client, prefix=prefix)
            try:
                for name, (cls, args) in SLOW.items():
                    limiter = cls(*args, store=store, name=name)
                    assert (await limiter.acquire_async("k", 3)).allowed
                    booked = await limiter.reserve_async("k")
                    assert 0 < booked.delay <= MAX_WAIT[name]
                    await booked.cancel_async()
                    again = await limiter.reserve_async("k")
                    assert close_to(again.delay, booked.delay, "redis")
                both = MultiLimiter(
                    [
                        FixedWindow(2, 1e6, store=store, name="mf"),
                        TokenBucket(0.001, 5, store=store, name="mt"),
                    ],
                    store=store,
                )
                assert (await both.reserve_async("m", 2)).delay == 0
                assert (await both.reserve_async("m")).delay > 0
            finally:
                await client.aclose()

        asyncio.run(scenario())


@pytest.mark.redis_cluster
def test_multi_on_cluster_shares_a_slot(
    redis_cluster_client: Any, prefix: str
) -> None:
    """A MultiLimiter's reservation is one script on one slot."""
    store = RedisStore(redis_cluster_client, prefix=prefix)
    parts = [
        FixedWindow(2, 1e6, store=store),
        SlidingWindow(2, 1e6, store=store),
        SlidingLog(2, 1e6, store=store),
        TokenBucket(0.001, 2, store=store),
        GCRA(0.001, 2, store=store),
    ]
    both = MultiLimiter(parts, store=store)

    first = both.reserve("user:1", 2)
    second = both.reserve("user:1")
    second.cancel()
    third = both.reserve("user:1")

    assert (True, 0.0) == (first.ok, first.delay)
    assert second.ok
    assert 0 < second.delay <= 2e6
    assert close_to(third.delay, second.delay, "redis")
    keys = redis_cluster_client.keys(
        f"{prefix}:*", target_nodes=redis_cluster_client.ALL_NODES
    )
    assert 5 == len(keys)
    assert 1 == len({redis_cluster_client.keyslot(key) for key in keys})


# ----------------------------------------------------------- policies


@pytest.fixture
def down_store(own_redis: Any, clock: FakeClock) -> Iterator[Any]:
    """Make RedisStores of a private server with a given policy."""
    made: list[Any] = []

    def factory(policy: str) -> RedisStore:
        client = own_redis.client(
            socket_timeout=0.5,
            socket_connect_timeout=0.5,
            retry=Retry(NoBackoff(), 0),
        )
        made.append(client)
        return RedisStore(
            client, on_error=policy, retry_interval=2.0, clock=clock
        )

    yield factory
    for client in made:
        client.close()


@pytest.mark.redis
class TestPolicies:
    @pytest.mark.parametrize("name", sorted(SLOW))
    def test_local_books_and_cancels_locally(
        self, own_redis: Any, down_store: Any, name: str
    ) -> None:
        """Under "local" every algorithm reserves and cancels in process."""
        cls, args = SLOW[name]
        limiter = cls(*args, store=down_store("local"))
        on_redis = limiter.reserve("r")
        own_redis.stop()

        fill(limiter)
        pending = limiter.reserve("k")
        pending.cancel()
        again = limiter.reserve("k")
        on_redis.cancel()  # a Redis booking cannot be given back now

        assert on_redis.ok
        assert pending.ok
        assert 0 < pending.delay <= MAX_WAIT[name]
        assert again.delay == pytest.approx(pending.delay, abs=1.0)

    @pytest.mark.parametrize("policy", ["deny", "allow"])
    def test_deny_and_allow(
        self, own_redis: Any, down_store: Any, policy: str
    ) -> None:
        """deny refuses every reservation, allow grants it at once."""
        store = down_store(policy)
        limiters = [cls(*args, store=store) for cls, args in SLOW.values()]
        both = MultiLimiter(limiters[2:], store=store)
        own_redis.stop()

        for limiter in [*limiters, both]:
            reservation = limiter.reserve("k")
            reservation.cancel()
            assert (policy == "allow") is reservation.ok
            assert reservation.delay == (0.0 if policy == "allow" else 2.0)

    def test_raise(self, own_redis: Any, down_store: Any) -> None:
        """raise surfaces the failure from reserve and from cancel."""
        from dprims.errors import BackendError

        limiter = FixedWindow(3, 1e6, store=down_store("raise"))
        fill(limiter)
        pending = limiter.reserve("k")
        own_redis.stop()

        with pytest.raises(BackendError):
            limiter.reserve("k")
        with pytest.raises(BackendError):
            pending.cancel()
