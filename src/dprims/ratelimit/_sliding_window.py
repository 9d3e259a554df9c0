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
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dprims.ratelimit._base import Decision, _new_decision


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
    else:
        current = previous = 0
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
