"""GCRA (generic cell rate algorithm): the pure state transitions.

State: ``None`` or the theoretical arrival time (TAT) of the next request.
Parameters: ``(interval, tolerance, burst)`` where *interval* is the
emission interval ``1 / rate`` and *tolerance* is ``burst * interval``.
Memory per key: one float. A request of *cost* is admitted when
``max(tat, now) + cost * interval - now <= tolerance``, which admits the same
traffic as a token bucket of the same rate and burst (at most
``burst + rate * t`` units in any *t* seconds) with a single number of state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dprims.ratelimit._base import Decision, _new_decision


if TYPE_CHECKING:
    State = float | None
    Params = tuple[float, float, int]


__all__ = ()

# Absorbs float error in ``tat + cost * interval`` (see _token_bucket.EPS).
EPS = 1e-9

#: Seconds within which two computed times are taken as the same one.
_SAME = 1e-6


def take(
    state: State, now: float, cost: int, params: Params
) -> tuple[State, Decision]:
    """Return the new state and the decision for taking *cost* at *now*."""
    interval, tolerance, burst = params
    tat = now if state is None or state < now else state
    new = tat + cost * interval
    diff = new - now
    if diff <= tolerance + EPS:
        left = (tolerance - diff) / interval + EPS
        return new, _new_decision(
            Decision, (True, burst, int(left) if left > 0 else 0, 0.0, diff)
        )
    left = (tolerance - (tat - now)) / interval + EPS
    return state, _new_decision(
        Decision,
        (
            False,
            burst,
            int(left) if left > 0 else 0,
            diff - tolerance,
            tat - now,
        ),
    )


def check(state: State, now: float, cost: int, params: Params) -> Decision:
    """Return the decision `take` would make, without changing anything."""
    return take(state, now, cost, params)[1]


def idle_at(
    state: State,
    params: Params,  # noqa: ARG001 -- the signature of every idle_at
) -> float:
    """Return when the TAT is in the past (the state can be dropped)."""
    return 0.0 if state is None else state


def earliest(
    state: State, now: float, after: float, cost: int, params: Params
) -> float:
    """Return the least delay >= *after* at which *cost* would be admitted."""
    interval, tolerance, _ = params
    tat = now if state is None or state < now else state
    delay = tat + cost * interval - now - tolerance
    return delay if delay > after + EPS else after


def book(
    state: State, now: float, delay: float, cost: int, params: Params
) -> tuple[State, float]:
    """Return the TAT with *cost* booked to act at ``now + delay``.

    The ticket is that time.
    """
    tat = now if state is None or state < now else state
    at = now + delay
    if at > tat:  # noqa: PLR1730 -- as in take
        tat = at
    return tat + cost * params[0], at


def refund(
    state: State, now: float, cost: int, params: Params, ticket: float
) -> State:
    """Return the TAT with the booking acting at *ticket* given back.

    Only what no later booking counts on comes back, as for a token bucket
    (see `_token_bucket.refund`).
    """
    if state is None or state <= now:
        return None
    interval, tolerance, _ = params
    later = state - tolerance - ticket
    back = cost * interval
    if later >= _SAME:
        back -= later
    if back <= 0:
        return state
    tat = state - back
    return tat if tat > now else None
