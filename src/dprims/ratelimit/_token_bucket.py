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


def reserve(
    state: State, now: float, cost: int, params: Params
) -> tuple[State, float]:
    """Return the state with *cost* booked, and the seconds to wait."""
    rate, burst = params
    if state is None:
        tokens: float = burst
    else:
        tokens = min(burst, state[0] + (now - state[1]) * rate)
    tokens -= cost
    delay = 0.0 if tokens + EPS >= 0 else -tokens / rate
    return (tokens, now), delay


def refund(state: State, now: float, cost: int, params: Params) -> State:
    """Return the state with *cost* tokens given back (capped at burst)."""
    if state is None:
        return None
    rate, burst = params
    tokens = min(burst, state[0] + (now - state[1]) * rate + cost)
    return (tokens, now)
