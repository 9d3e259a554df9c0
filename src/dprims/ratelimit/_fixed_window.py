"""Fixed window counter: the pure state transitions.

Windows are aligned to multiples of *window* on the store's clock (the
injected monotonic clock in process, the Redis server's Unix time on Redis).
State: ``None`` or ``(window_index, count)``; the index is
``now // window``, an integral float (exact, and cheaper than an int()
call on the hot path). Parameters:
``(limit, window)``. Memory per key: one 2-tuple.

At most *limit* units are admitted per aligned window, but a burst of
*limit* at the end of one window and *limit* at the start of the next puts
``2 * limit`` into an instant.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dprims.ratelimit._base import Decision, _new_decision


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
    count = state[1] if state is not None and state[0] == index else 0
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
