"""Sliding log (exact sliding window): the state transitions.

Every admitted request is remembered with its time for *window* seconds; a
request is admitted when the costs logged in the last *window* seconds plus
its own stay within *limit*. So any half-open interval of *window* seconds
admits at most *limit* units, exactly. Memory per key: one entry per
admitted request still in the window, so up to *limit* entries.

Unlike the other algorithms the state is mutable (a `Log`): copying it on
every request would cost O(limit), updating it in place costs O(1)
amortised (each entry is appended once and dropped once). `check` only
drops expired entries, which changes no decision.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from dprims.ratelimit._base import Decision, _new_decision


if TYPE_CHECKING:
    Params = tuple[int, float]


__all__ = ()


class Log:
    """The admitted ``(time, cost)`` entries of one key, oldest first."""

    __slots__ = ("entries", "total")

    def __init__(self) -> None:
        self.entries: deque[tuple[float, int]] = deque()
        self.total = 0

    def __repr__(self) -> str:
        return f"Log(entries={len(self.entries)}, total={self.total})"


def _decide(
    log: Log, now: float, cost: int, params: Params, commit: bool
) -> Decision:
    limit, window = params
    entries = log.entries
    total = log.total
    # Compare expiry times with now rather than times with now - window:
    # the latter can round differently from the retry_after given out.
    while entries and entries[0][0] + window <= now:
        total -= entries.popleft()[1]
    log.total = total
    if total + cost <= limit:
        if commit and cost:
            entries.append((now, cost))
            log.total = total + cost
        reset = (
            (window if commit and cost else entries[-1][0] + window - now)
            if entries
            else 0.0
        )
        return _new_decision(
            Decision, (True, limit, limit - total - cost, 0.0, reset)
        )
    need = total + cost - limit
    freed = 0
    retry = window
    for at, logged in entries:
        freed += logged
        if freed >= need:
            retry = at + window - now
            break
    return _new_decision(
        Decision,
        (
            False,
            limit,
            limit - total if total < limit else 0,
            retry,
            entries[-1][0] + window - now,
        ),
    )


def take(
    state: Log | None, now: float, cost: int, params: Params
) -> tuple[Log, Decision]:
    """Return the (updated) state and the decision for *cost* at *now*."""
    if state is None:
        state = Log()
    return state, _decide(state, now, cost, params, commit=True)


def check(
    state: Log | None, now: float, cost: int, params: Params
) -> Decision:
    """Return the decision `take` would make; only expired entries go."""
    if state is None:
        state = Log()
    return _decide(state, now, cost, params, commit=False)


def idle_at(state: Log | None, params: Params) -> float:
    """Return when the newest entry leaves the window."""
    if state is None or not state.entries:
        return 0.0
    return state.entries[-1][0] + params[1]
