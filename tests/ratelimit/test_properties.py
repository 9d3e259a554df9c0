"""Properties: what each algorithm admits in any interval stays in bounds."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from dprims.ratelimit import (
    GCRA,
    FixedWindow,
    SlidingLog,
    SlidingWindow,
    TokenBucket,
)
from dprims.testing import FakeClock


SETTINGS = settings(max_examples=80, deadline=None)
# Time steps in milliseconds, so that times are exact multiples of 1 ms.
steps = st.lists(
    st.tuples(st.integers(0, 1500), st.integers(1, 4)),
    min_size=1,
    max_size=120,
)
EPS = 1e-6


def admitted(limiter: object, clock: FakeClock, plan: list) -> list:
    """Run *plan* of (ms to wait, cost); return (time, cost) admitted."""
    out = []
    for wait_ms, cost in plan:
        clock.advance(wait_ms / 1000)
        if limiter.acquire("k", cost).allowed:  # type: ignore[attr-defined]
            out.append((clock.monotonic(), cost))
    return out


def interval_sums(log: list) -> list:
    """Yield (length, admitted) for every interval between two admissions."""
    result = []
    for i, (start, _) in enumerate(log):
        total = 0
        for end, cost in log[i:]:
            total += cost
            result.append((end - start, total))
    return result


@SETTINGS
@given(
    plan=steps,
    rate=st.sampled_from([0.5, 1.0, 3.0, 10.0]),
    burst=st.integers(4, 12),
    gcra=st.booleans(),
)
def test_bucket_admits_at_most_burst_plus_rate_times_t(
    plan: list, rate: float, burst: int, gcra: bool
) -> None:
    """Token bucket and GCRA admit <= burst + rate * t in any t seconds."""
    clock = FakeClock(1000.0)
    cls = GCRA if gcra else TokenBucket
    log = admitted(cls(rate, burst, clock=clock), clock, plan)

    for length, total in interval_sums(log):
        assert total <= burst + rate * length + EPS


@SETTINGS
@given(
    plan=steps,
    limit=st.integers(4, 12),
    window=st.sampled_from([0.5, 1.0, 2.5]),
)
def test_fixed_window_admits_at_most_limit_per_window(
    plan: list, limit: int, window: float
) -> None:
    """No aligned window holds more than the limit."""
    clock = FakeClock(1000.0)
    log = admitted(FixedWindow(limit, window, clock=clock), clock, plan)
    per_window: dict[int, int] = {}
    for at, cost in log:
        index = math.floor(at / window)
        per_window[index] = per_window.get(index, 0) + cost

    assert all(total <= limit for total in per_window.values())


@SETTINGS
@given(
    plan=steps,
    limit=st.integers(4, 12),
    window=st.sampled_from([0.5, 1.0, 2.5]),
)
def test_sliding_log_is_exact(plan: list, limit: int, window: float) -> None:
    """Any half-open interval of one window admits at most the limit."""
    clock = FakeClock(1000.0)
    log = admitted(SlidingLog(limit, window, clock=clock), clock, plan)

    for length, total in interval_sums(log):
        if length < window - EPS:
            assert total <= limit


@SETTINGS
@given(
    plan=steps,
    limit=st.integers(4, 12),
    window=st.sampled_from([0.5, 1.0, 2.5]),
)
def test_sliding_window_error_bound(
    plan: list, limit: int, window: float
) -> None:
    """An interval of t <= window admits at most limit * (1 + t / window)."""
    clock = FakeClock(1000.0)
    log = admitted(SlidingWindow(limit, window, clock=clock), clock, plan)

    for length, total in interval_sums(log):
        if length < window:
            assert total <= limit * (1 + length / window) + EPS
