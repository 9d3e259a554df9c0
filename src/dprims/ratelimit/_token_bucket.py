"""Token bucket: the pure state transitions.

State: ``None`` (a full bucket) or ``(tokens, at)``: the tokens left at
time *at*. Tokens may be negative after a reservation (a debt that refill
pays back first). Parameters: ``(rate, burst)``, tokens per second and the
bucket's capacity. Memory per key: one 2-tuple.

A request of *cost* is admitted when the refilled bucket holds at least
*cost* tokens, so in any interval of *t* seconds at most
``burst + rate * t`` units are admitted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dprims.ratelimit._base import Decision, _new_decision


if TYPE_CHECKING:
    State = tuple[float, float] | None
    Params = tuple[float, int]


__all__ = ()

# Float refill turns 1 token into 0.9999999999998; this slack (a billionth
# of a token) keeps such a request from being refused for 1e-13 seconds.
EPS = 1e-9

#: Seconds within which two computed times are taken as the same one.
_SAME = 1e-6


def take(
    state: State, now: float, cost: int, params: Params
) -> tuple[State, Decision]:
    """Return the new state and the decision for taking *cost* at *now*."""
    rate, burst = params
    if state is None:
        tokens: float = burst
    else:
        tokens = state[0] + (now - state[1]) * rate
        if tokens > burst:  # noqa: PLR1730 -- min() costs a call here
            tokens = burst
    if tokens + EPS >= cost:
        tokens -= cost
        return (tokens, now), _new_decision(
            Decision,
            (
                True,
                burst,
                int(tokens + EPS) if tokens > 0 else 0,
                0.0,
                (burst - tokens) / rate,
            ),
        )
    return state, _new_decision(
        Decision,
        (
            False,
            burst,
            int(tokens + EPS) if tokens > 0 else 0,
            (cost - tokens) / rate,
            (burst - tokens) / rate,
        ),
    )


def check(state: State, now: float, cost: int, params: Params) -> Decision:
    """Return the decision `take` would make, without changing anything."""
    return take(state, now, cost, params)[1]


def idle_at(state: State, params: Params) -> float:
    """Return when the bucket is full again (the state can be dropped)."""
    if state is None:
        return 0.0
    rate, burst = params
    return state[1] + (burst - state[0]) / rate


def earliest(
    state: State, now: float, after: float, cost: int, params: Params
) -> float:
    """Return the least delay >= *after* at which *cost* would be admitted."""
    rate, burst = params
    if state is None:
        tokens: float = burst
    else:
        tokens = state[0] + (now - state[1]) * rate
    if after:
        tokens += after * rate
    if tokens > burst:  # noqa: PLR1730 -- as in take
        tokens = burst
    if tokens + EPS >= cost:
        return after
    return after + (cost - tokens) / rate


def book(
    state: State, now: float, delay: float, cost: int, params: Params
) -> tuple[State, float]:
    """Return the state with *cost* taken at ``now + delay``, kept at *now*.

    The debt is stored at *now* (as Go's ``x/time/rate`` does): the tokens
    at *now* minus *cost*, less any refill the full bucket would have lost
    before ``now + delay``, so the bucket holds exactly what it should once
    that time comes. The ticket is that time.
    """
    rate, burst = params
    if state is None:
        tokens: float = burst
    else:
        tokens = min(burst, state[0] + (now - state[1]) * rate)
    if delay and tokens + delay * rate > burst:
        tokens = burst - delay * rate
    return (tokens - cost, now), now + delay


def refund(
    state: State, now: float, cost: int, params: Params, ticket: float
) -> State:
    """Return the state with the booking acting at *ticket* given back.

    As in Go's ``x/time/rate``: the tokens that bookings made after it
    count on (the refill between its time and the time the debt is paid)
    stay taken, so only a booking with nothing after it gets all of
    *cost* back; giving back more would let a newcomer share those tokens
    with the later bookings.
    """
    if state is None:
        return None
    rate, burst = params
    tokens = min(burst, state[0] + (now - state[1]) * rate)
    later = (-tokens / rate if tokens < 0 else 0.0) - (ticket - now)
    back = float(cost) if later < _SAME else cost - later * rate
    if back <= 0:
        return state
    return (min(burst, tokens + back), now)
