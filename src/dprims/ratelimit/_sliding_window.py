"""Sliding window counter (weighted two windows): pure state transitions.

The count over the last *window* seconds is estimated from two aligned
fixed windows: ``previous * (window - elapsed) / window + current``, where
*elapsed* is how far the current window has run. It assumes the previous
window's requests were spread evenly, so it is approximate; Cloudflare and
others use it because it needs two counters per key (O(1) memory).

Error bound: a request is admitted only if the estimate plus its cost stays
within *limit*, so any interval of *t* <= *window* seconds admits at most
``limit * (1 + t / window)`` units, hence at most ``2 * limit`` per sliding
window, and never more than *limit* per aligned window. Unlike a fixed
window, the excess cannot arrive as one burst at a boundary: it grows in
proportion to the time elapsed in the new window.

State: ``None`` or ``(window_index, current, previous)``. Parameters:
``(limit, window)``. Memory per key: one 3-tuple.

A reservation books into the window of the time it will act (its index
may be ahead of the current one); until that window starts nothing else is
admitted, so a later request never goes ahead of a booking and the bound
above holds over the times requests act.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dprims.ratelimit._base import Decision, _new_decision, restore_if_latest
from dprims.ratelimit._fixed_window import window_at


if TYPE_CHECKING:
    State = tuple[float, int, int] | None
    Params = tuple[int, float]


__all__ = ()

# Absorbs float error in the weighted estimate (see _token_bucket.EPS).
EPS = 1e-9


def take(
    state: State, now: float, cost: int, params: Params
) -> tuple[State, Decision]:
    """Return the new state and the decision for taking *cost* at *now*."""
    limit, window = params
    index = now // window
    elapsed = now - index * window
    if state is None:
        current = previous = 0
    elif state[0] == index:
        current, previous = state[1], state[2]
    elif state[0] == index - 1:
        current, previous = 0, state[1]
    elif state[0] < index:
        current = previous = 0
    else:
        # A booking waits in a later window: nothing may go before it.
        return state, _new_decision(
            Decision,
            (
                False,
                limit,
                0,
                earliest(state, now, 0.0, cost, params),
                (state[0] + 2) * window - now,
            ),
        )
    estimate = previous * (window - elapsed) / window + current
    if estimate + cost <= limit + EPS:
        current += cost
        left = limit - estimate - cost + EPS
        # reset_after: both windows while this one counts, else the
        # previous one's fade (inline: a call costs more than the sum).
        return (index, current, previous), _new_decision(
            Decision,
            (
                True,
                limit,
                int(left) if left > 0 else 0,
                0.0,
                2 * window - elapsed
                if current
                else (window - elapsed if previous else 0.0),
            ),
        )
    if current + cost <= limit:
        # The previous window's weight alone is in the way; it fades.
        fade = window * (1 - (limit - current - cost) / previous)
        retry = fade - elapsed
    else:
        # Needs the next window, where this one's count becomes "previous".
        fade = window * (1 - (limit - cost) / current)
        retry = window - elapsed + (fade if fade > 0.0 else 0.0)  # noqa: FURB136
    left = limit - estimate + EPS
    return state, _new_decision(
        Decision,
        (
            False,
            limit,
            int(left) if left > 0 else 0,
            retry,
            2 * window - elapsed
            if current
            else (window - elapsed if previous else 0.0),
        ),
    )


def check(state: State, now: float, cost: int, params: Params) -> Decision:
    """Return the decision `take` would make, without changing anything."""
    return take(state, now, cost, params)[1]


def idle_at(state: State, params: Params) -> float:
    """Return when both counted windows are over."""
    if state is None:
        return 0.0
    return (state[0] + (2 if state[1] else 1)) * params[1]


def _wait(
    current: int, previous: int, elapsed: float, cost: int, params: Params
) -> float:
    """Return the seconds from *elapsed* until *cost* fits (take's math)."""
    limit, window = params
    if previous * (window - elapsed) / window + current + cost <= limit + EPS:
        return 0.0
    if current + cost <= limit:
        return window * (1 - (limit - current - cost) / previous) - elapsed
    fade = window * (1 - (limit - cost) / current)
    return window - elapsed + (fade if fade > 0.0 else 0.0)  # noqa: FURB136


def _counts(state: State, index: float) -> tuple[int, int]:
    """Return (current, previous) of *state* seen from window *index*."""
    if state is None:
        return 0, 0
    if state[0] == index:
        return state[1], state[2]
    if state[0] == index - 1:
        return 0, state[1]
    return 0, 0


def earliest(
    state: State, now: float, after: float, cost: int, params: Params
) -> float:
    """Return the least delay >= *after* at which *cost* would be admitted.

    A booking pending in a later window comes first: nothing is admitted
    before that window starts.
    """
    window = params[1]
    index, start = window_at(now, after, window)
    if state is not None and state[0] > index:
        return (
            state[0] * window
            - now
            + _wait(state[1], state[2], 0.0, cost, params)
        )
    current, previous = _counts(state, index)
    return after + _wait(current, previous, after - start, cost, params)


def book(
    state: State, now: float, delay: float, cost: int, params: Params
) -> tuple[State, tuple[State, State]]:
    """Return the state with *cost* counted in the window of ``now + delay``.

    The ticket (the states before and after) lets `refund` tell whether
    this booking is still the latest one.
    """
    index, _ = window_at(now, delay, params[1])
    current, previous = _counts(state, index)
    booked = (index, current + cost, previous)
    return booked, (state, booked)


#: The units come back only while the booking is the latest.
refund = restore_if_latest
