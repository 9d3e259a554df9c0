"""The specialised in-process closures decide exactly as the pure takes do."""

from __future__ import annotations

import sys
import threading
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dprims.ratelimit import (
    GCRA,
    FixedWindow,
    MemoryStore,
    MultiLimiter,
    Penalty,
    RateLimitMetrics,
    SlidingLog,
    SlidingWindow,
    TokenBucket,
    _fixed_window,
    _gcra,
    _hot,
    _sliding_log,
    _sliding_window,
    _token_bucket,
)
from dprims.ratelimit._base import Decision, check_cost, check_key
from dprims.testing import FakeClock


if TYPE_CHECKING:
    from collections.abc import Callable


SETTINGS = settings(max_examples=150, deadline=None)

RATES = [0.5, 1.0, 3.3, 7.0, 100.0, 1000.0]
WINDOWS = [0.1, 0.25, 1.0, 3.0, 7.3]
KEYS = ["a", "b", "c"]
BAD_KEYS: list[Any] = [42, None, b"a", ["a"], 1.5]
BAD_COSTS: list[Any] = [0, -1, True, False, 1.0, 2.5, "1", None]
STARTS = [0.0, 12.345, 1e6 + 0.1, 1.7e9]


def _build(
    kind: str,
    size: int,
    knob: float,
    clock: FakeClock,
    store: MemoryStore | None = None,
) -> Any:
    """Return a limiter of *kind* with capacity *size*."""
    if kind == "token-bucket":
        return TokenBucket(knob, size, clock=clock, store=store)
    if kind == "gcra":
        return GCRA(knob, size, clock=clock, store=store)
    if kind == "fixed-window":
        return FixedWindow(size, knob, clock=clock, store=store)
    if kind == "sliding-log":
        return SlidingLog(size, knob, clock=clock, store=store)
    return SlidingWindow(size, knob, clock=clock, store=store)


TAKES = {
    "token-bucket": _token_bucket.take,
    "gcra": _gcra.take,
    "fixed-window": _fixed_window.take,
    "sliding-window": _sliding_window.take,
    "sliding-log": _sliding_log.take,
}
KINDS = list(TAKES)


def _reconfigure(limiter: Any, size: int, knob: float) -> None:
    if isinstance(limiter, (TokenBucket, GCRA)):
        limiter.reconfigure(rate=knob, burst=size)
    else:
        limiter.reconfigure(limit=size, window=knob)


def _state(kind: str, limiter: Any, now: float, draw: Any) -> Any:
    """Draw a state a key may hold, reservations and bookings included."""
    params = limiter._params
    if kind == "token-bucket":
        # Negative tokens are a debt left by reserve().
        tokens = draw(st.floats(-3.0 * params[1], float(params[1])))
        return (tokens, now - draw(st.floats(-0.5, 10.0)))
    if kind == "gcra":
        # A TAT far ahead is what reserve() leaves behind.
        return now + draw(st.floats(-10.0, 10.0 * params[1] + 5.0))
    if kind == "sliding-log":
        # Entries in time order, expired, live or booked ahead.
        window = params[1]
        times = sorted(
            now + offset
            for offset in draw(
                st.lists(
                    st.floats(-2.0 * window, 2.0 * window),
                    max_size=params[0] + 3,
                )
            )
        )
        log = _sliding_log.Log()
        for at in times:
            cost = draw(st.integers(1, 3))
            log.entries.append((at, cost))
            log.total += cost
        return log
    index = now // params[1]
    # An index above now's is a window booked ahead by reserve().
    stored = index + draw(st.integers(-3, 2))
    count = draw(st.integers(0, params[0] + 3))
    if kind == "fixed-window":
        return (stored, count)
    return (stored, count, draw(st.integers(0, params[0] + 3)))


def _outcome(
    decide: Callable[[Any, Any], Decision], key: Any, cost: Any
) -> Any:
    """Return what *decide* did, in a form that compares bit for bit."""
    try:
        decision = decide(key, cost)
    except (TypeError, ValueError) as exc:
        return (type(exc), str(exc))
    assert type(decision) is Decision
    # repr() tells -0.0 from 0.0 and an int from a float.
    return repr(tuple(decision))


def _show(state: Any) -> str:
    """Return *state* as text that compares bit for bit, a Log included."""
    if isinstance(state, _sliding_log.Log):
        return repr((list(state.entries), state.total))
    return repr(state)


def _copy(state: Any) -> Any:
    """Return a twin of *state* that changes apart from it."""
    if isinstance(state, _sliding_log.Log):
        twin = _sliding_log.Log()
        twin.entries.extend(state.entries)
        twin.total = state.total
        return twin
    return state  # immutable


def _snapshot(data: dict[Any, Any]) -> dict[Any, str]:
    return {key: _show(state) for key, state in data.items()}


@pytest.mark.parametrize("kind", KINDS)
@SETTINGS
@given(data=st.data())
def test_closure_matches_the_pure_take(kind: str, data: st.DataObject) -> None:
    """Decisions, errors and stored states equal those of ``take``."""
    draw = data.draw
    knobs = RATES if kind in {"token-bucket", "gcra"} else WINDOWS
    clock = FakeClock(draw(st.sampled_from(STARTS)))
    limiter = _build(
        kind, draw(st.integers(1, 12)), draw(st.sampled_from(knobs)), clock
    )
    backend = limiter._backend
    decide = _hot.make_acquire(backend)
    assert decide is not None
    take = TAKES[kind]
    store = backend._data
    model: dict[Any, Any] = {}

    def reference(key: Any, cost: Any) -> Decision:
        check_cost(cost, limiter.capacity)
        check_key(key)
        model[key], decision = take(
            model.get(key), clock.monotonic(), cost, limiter._params
        )
        return decision

    # (reservation, the model's ticket for the same booking)
    bookings: list[tuple[Any, Any]] = []

    def book(key: str, cost: int) -> None:
        """Reserve through the limiter and, alike, on the model."""
        reservation = limiter.reserve(key, cost)
        now = clock.monotonic()
        params = limiter._params
        state = model.get(key)
        at = limiter._earliest(state, now, 0.0, cost, params)
        delay = max(0.0, at)
        model[key], ticket = limiter._book(state, now, delay, cost, params)
        assert reservation.ok
        assert repr(reservation.delay) == repr(delay)
        bookings.append((reservation, ticket))

    def cancel(index: int) -> None:
        """Cancel a reservation, and refund the model as the backend does."""
        reservation, ticket = bookings.pop(index)
        now = clock.monotonic()
        refunds = not reservation._cancelled and now < reservation._until
        reservation.cancel()
        if refunds:
            key = reservation.key
            state = limiter._refund(
                model.get(key), now, reservation.cost, limiter._params, ticket
            )
            if state is None:
                model.pop(key, None)
            else:
                model[key] = state

    for _ in range(draw(st.integers(1, 60))):
        action = draw(
            st.sampled_from(
                ["acquire"] * 6
                + ["advance"] * 3
                + ["reconfigure", "state", "reserve", "cancel"]
            )
        )
        if action == "acquire":
            key = draw(st.sampled_from(KEYS * 4 + BAD_KEYS))
            cost = draw(
                st.one_of(
                    st.just(1),
                    st.integers(1, limiter.capacity + 2),
                    st.sampled_from(BAD_COSTS),
                )
            )
            assert _outcome(decide, key, cost) == _outcome(
                reference, key, cost
            )
        elif action == "advance":
            clock.advance(
                draw(
                    st.one_of(
                        st.sampled_from([0.0, 0.05, 0.1, 0.25, 1.0, 7.3]),
                        st.floats(0.0, 20.0),
                    )
                )
            )
        elif action == "reconfigure":
            _reconfigure(
                limiter, draw(st.integers(1, 12)), draw(st.sampled_from(knobs))
            )
        elif action == "reserve":
            book(
                draw(st.sampled_from(KEYS)),
                draw(st.integers(1, limiter.capacity)),
            )
        elif action == "cancel":
            if bookings:
                cancel(draw(st.integers(0, len(bookings) - 1)))
        else:
            key = draw(st.sampled_from(KEYS))
            state = _state(kind, limiter, clock.monotonic(), draw)
            store[key] = state
            model[key] = _copy(state)
        assert _snapshot(store) == _snapshot(model)


@pytest.mark.parametrize("kind", KINDS)
@SETTINGS
@given(
    size=st.integers(1, 30),
    knob_index=st.integers(0, len(RATES) - 1),
    start=st.sampled_from(STARTS),
    steps=st.lists(st.floats(0.0, 0.02), min_size=50, max_size=400),
)
def test_a_hammered_key_matches_the_pure_take(
    kind: str, size: int, knob_index: int, start: float, steps: list[float]
) -> None:
    """One key asked again and again, as an abusive client does.

    Small clock steps cross many windows and refills, with long runs of
    denials from one state: the paths a hot key takes.
    """
    knobs = RATES if kind in {"token-bucket", "gcra"} else WINDOWS
    knob = knobs[knob_index % len(knobs)]
    # Steps in windows, or in the time one token takes to refill.
    scale = 1 / knob if kind in {"token-bucket", "gcra"} else knob
    clock = FakeClock(start)
    limiter = _build(kind, size, knob, clock)
    decide = _hot.make_acquire(limiter._backend)
    assert decide is not None
    take = TAKES[kind]
    model = None
    for step in steps:
        clock.advance(step * scale)
        for _ in range(3):
            got = decide("hot", 1)
            model, want = take(model, clock.monotonic(), 1, limiter._params)
            assert repr(tuple(got)) == repr(tuple(want))
            assert _show(limiter._backend._data["hot"]) == _show(model)


@pytest.mark.parametrize("kind", KINDS)
def test_reconfigure_applies_to_the_next_decision(kind: str) -> None:
    """A key denied over and over is admitted once the limit is raised."""
    clock = FakeClock(3.0)
    knob = 0.5 if kind in {"token-bucket", "gcra"} else 10.0
    limiter = _build(kind, 2, knob, clock)
    decide = limiter.acquire
    assert [decide("k").allowed for _ in range(4)] == [
        True,
        True,
        False,
        False,
    ]
    clock.advance(0.01)
    assert not decide("k").allowed
    # A bucket also needs a faster refill: its tokens do not grow with the
    # burst (the 0.01 s since the last admission then refill 10).
    _reconfigure(limiter, 50, 1000.0 if kind == "token-bucket" else knob)
    decision = decide("k")
    assert decision.allowed
    assert decision.limit == 50


class _Interloper:
    """A lock that runs *before* once, just ahead of the next acquire.

    The closures read a key without the lock and take it only to write; a
    write by another thread can land in between. This lock stages one.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.before: Callable[[], None] | None = None

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        before, self.before = self.before, None
        if before is not None:
            before()
        return self._lock.acquire(blocking, timeout)

    def release(self) -> None:
        self._lock.release()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("meanwhile", ["admitted", "reset"])
def test_a_write_between_read_and_lock_is_decided_again(
    kind: str, meanwhile: str
) -> None:
    """If the key changed before the lock, the fresh state decides."""
    store = MemoryStore()
    interloper = _Interloper()
    store._lock = interloper  # type: ignore[assignment]
    clock = FakeClock(5.0)
    knob = 2.0 if kind in {"token-bucket", "gcra"} else 10.0
    limiter = _build(kind, 3, knob, clock, store)
    decide = _hot.make_acquire(limiter._backend)
    assert decide is not None
    take = TAKES[kind]
    data = limiter._backend._data
    model: dict[str, Any] = {}
    params = limiter._params

    def other_thread() -> None:
        if meanwhile == "reset":
            data.pop("k", None)
            model.pop("k", None)
            return
        data["k"], _ = take(data.get("k"), clock.monotonic(), 1, params)
        model["k"], _ = take(model.get("k"), clock.monotonic(), 1, params)

    results = []
    for _ in range(3):
        clock.advance(0.01)
        interloper.before = other_thread
        got = decide("k", 1)
        at = clock.monotonic()
        model["k"], want = take(model.get("k"), at, 1, params)
        results.append(got.allowed)
        assert repr(tuple(got)) == repr(tuple(want))
        assert _show(data.get("k")) == _show(model.get("k"))
    if meanwhile == "reset":
        assert results == [True, True, True]  # each time from a fresh key
    else:
        assert False in results  # the staged admissions took capacity


@pytest.mark.parametrize("kind", KINDS)
def test_eight_threads_admit_exactly_the_limit(kind: str) -> None:
    """8 threads x 1000 tries on one key admit exactly 1000."""
    clock = FakeClock(100.0)  # frozen: nothing refills or rolls over
    knob = 1000 / 3600 if kind in {"token-bucket", "gcra"} else 3600.0
    limiter = _build(kind, 1000, knob, clock)
    decide = limiter.acquire
    admitted = [0] * 8
    start = threading.Barrier(8)

    def worker(slot: int) -> None:
        start.wait()
        count = 0
        for _ in range(1000):
            if decide("hot")[0]:
                count += 1
        admitted[slot] = count

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible
    try:
        threads = [
            threading.Thread(target=worker, args=(slot,)) for slot in range(8)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert sum(admitted) == 1000


@pytest.mark.parametrize("kind", KINDS)
def test_limiters_use_the_specialised_closure(kind: str) -> None:
    """A plain in-process limiter decides through its _hot closure."""
    limiter = _build(kind, 5, 1.0, FakeClock())
    assert limiter._acquire.__module__ == _hot.__name__


@pytest.mark.parametrize("key", BAD_KEYS)
@pytest.mark.parametrize("kind", KINDS)
def test_bad_key_is_refused_naming_key(kind: str, key: Any) -> None:
    limiter = _build(kind, 5, 1.0, FakeClock())
    with pytest.raises(TypeError, match="key"):
        limiter.acquire(key)
    assert limiter._backend._data == {}


@pytest.mark.parametrize("cost", [*BAD_COSTS, 6])
@pytest.mark.parametrize("kind", KINDS)
def test_bad_cost_is_refused_naming_cost(kind: str, cost: Any) -> None:
    limiter = _build(kind, 5, 1.0, FakeClock())
    with pytest.raises((TypeError, ValueError), match="cost"):
        limiter.acquire("k", cost)
    assert limiter._backend._data == {}


@pytest.mark.parametrize("kind", KINDS)
def test_the_table_is_still_swept(kind: str) -> None:
    """New keys through the closure trigger the bounded sweep."""
    clock = FakeClock()
    limiter = _build(kind, 5, 1.0, clock, MemoryStore(max_keys=100))
    for i in range(5000):
        assert limiter.acquire(f"user:{i}").allowed
        assert len(limiter._backend._data) <= 100
    # Idle keys go too: after a while, a sweep drops everything stale.
    clock.advance(60.0)
    for i in range(300):
        limiter.acquire(f"late:{i}")
    assert not any(key.startswith("user:") for key in limiter._backend._data)


def test_no_closure_for_hooks_penalty_or_multi() -> None:
    """Those configurations keep the generic path, and it still works."""
    clock = FakeClock()
    metrics = RateLimitMetrics()
    hooked = TokenBucket(1.0, 2, clock=clock, hooks=metrics)
    assert _hot.make_acquire(hooked._backend) is None
    for _ in range(3):
        hooked.acquire("k")
    assert (metrics.allowed, metrics.denied) == (2, 1)

    banned = FixedWindow(
        1, 60.0, clock=clock, penalty=Penalty(threshold=2, window=60, ban=600)
    )
    assert _hot.make_acquire(banned._backend) is None
    assert [banned.acquire("k").allowed for _ in range(3)] == [
        True,
        False,
        False,
    ]
    assert banned.acquire("k").retry_after == 600.0  # banned now

    logged = RateLimitMetrics()
    hooked_log = SlidingLog(2, 1.0, clock=clock, hooks=logged)
    assert _hot.make_acquire(hooked_log._backend) is None
    for _ in range(3):
        hooked_log.acquire("k")
    assert (logged.allowed, logged.denied) == (2, 1)

    store = MemoryStore()
    parts = [
        GCRA(1.0, 2, store=store, clock=clock),
        SlidingWindow(5, 1.0, store=store, clock=clock),
    ]
    multi = MultiLimiter(parts, store=store, clock=clock)
    assert _hot.make_acquire(multi._backend) is None  # type: ignore[arg-type]
    assert [multi.acquire("k").allowed for _ in range(3)] == [
        True,
        True,
        False,
    ]
