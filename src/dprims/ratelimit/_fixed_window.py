"""Fixed window counter: the pure state transitions.

Windows are aligned to multiples of *window* on the store's clock (the
injected monotonic clock in process, the Redis server's Unix time on Redis).
State: ``None`` or ``(window_index, count)``; the index is
``now // window``, an integral float (exact, and cheaper than an int()
call on the hot path). Parameters:
``(limit, window)``. Memory per key: one 2-tuple.

A reservation books into the window of the time it will act, so the stored
index can be ahead of the current one; until that window starts nothing
else is admitted (a later request never goes ahead of a booking), which
keeps every window's count exact over the times requests act.

At most *limit* units are admitted per aligned window, but a burst of
*limit* at the end of one window and *limit* at the start of the next puts
``2 * limit`` into an instant.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dprims.ratelimit._base import Decision, _new_decision, restore_if_latest


if TYPE_CHECKING:
    State = tuple[float, int] | None
    Params = tuple[int, float]


__all__ = ()


def take(
    state: State, now: float, cost: int, params: Params
) -> tuple[State, Decision]:
    """Return the new state and the decision for taking *cost* at *now*."""
    limit, window = params
    index = now // window
    if state is None:
        count = 0
    elif state[0] == index:
        count = state[1]
    elif state[0] < index:
        count = 0
    else:
        # A booking waits in a later window: nothing may go before it.
        return state, _new_decision(
            Decision,
            (
                False,
                limit,
                0,
                earliest(state, now, 0.0, cost, params),
                (state[0] + 1) * window - now,
            ),
        )
    reset = (index + 1) * window - now
    count += cost
    if count <= limit:
        return (index, count), _new_decision(
            Decision,
            (True, limit, limit - count, 0.0, reset if count else 0.0),
        )
    count -= cost
    return state, _new_decision(
        Decision,
        (False, limit, limit - count if count < limit else 0, reset, reset),
    )


def check(state: State, now: float, cost: int, params: Params) -> Decision:
    """Return the decision `take` would make, without changing anything."""
    return take(state, now, cost, params)[1]


def idle_at(state: State, params: Params) -> float:
    """Return when the window of *state* is over."""
    return 0.0 if state is None else (state[0] + 1) * params[1]


def window_at(now: float, delay: float, window: float) -> tuple[float, float]:
    """Return the index of the window holding ``now + delay``, and its start.

    The start is given as a delay from *now*. Membership is decided by
    comparing *delay* with the starts ``k * window - now``, the very
    expressions the delays handed out are made of: recomputing an index
    from ``now + delay`` alone can put a time that lies on a boundary into
    the window before it.
    """
    if not delay:
        index = now // window
        return index, index * window - now
    index = (now + delay) // window
    start = index * window - now
    if start > delay:
        index -= 1
        return index, index * window - now
    following = (index + 1) * window - now
    if following <= delay:
        return index + 1, following
    return index, start


def earliest(
    state: State, now: float, after: float, cost: int, params: Params
) -> float:
    """Return the least delay >= *after* at which *cost* would be admitted.

    A booking pending in a later window comes first: nothing is admitted
    before that window starts.
    """
    limit, window = params
    if state is None:
        return after
    index, _ = window_at(now, after, window)
    stored, count = state
    if stored < index:
        return after
    if stored == index:
        if count + cost <= limit:
            return after
        return (index + 1) * window - now
    if count + cost <= limit:
        return stored * window - now
    return (stored + 1) * window - now


def book(
    state: State, now: float, delay: float, cost: int, params: Params
) -> tuple[State, tuple[State, State]]:
    """Return the state with *cost* counted in the window of ``now + delay``.

    The ticket (the states before and after) lets `refund` tell whether
    this booking is still the latest one.
    """
    index, _ = window_at(now, delay, params[1])
    count = state[1] if state is not None and state[0] == index else 0
    booked = (index, count + cost)
    return booked, (state, booked)


#: The units come back only while the booking is the latest.
refund = restore_if_latest
