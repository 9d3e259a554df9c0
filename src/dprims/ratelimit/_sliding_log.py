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

A reservation logs its entry at the time it will act, possibly in the
future; every decision counts all entries not yet expired, future ones
included. Of two entries less than *window* apart the one logged later
counted the other, so every window stays exact over the times requests
act. The log stays in time order: an acquire made while a booking waits
is inserted before it.
"""

from __future__ import annotations

from bisect import insort
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
            log.total = total + cost
            if entries and entries[-1][0] > now:
                # A booking waits in the future: keep the log in order.
                insort(entries, (now, cost))
                reset = entries[-1][0] + window - now
            else:
                entries.append((now, cost))
                reset = window
        else:
            reset = entries[-1][0] + window - now if entries else 0.0
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


def earliest(
    state: Log | None, now: float, after: float, cost: int, params: Params
) -> float:
    """Return the least delay >= *after* at which *cost* would be admitted.

    Not before the newest entry (a later request never goes ahead of a
    booking), and not before enough of the oldest entries have expired.
    """
    if state is None or not state.entries:
        return after
    limit, window = params
    entries = state.entries
    base = max(entries[-1][0] - now, after)
    live = [(at, logged) for at, logged in entries if at + window - now > base]
    need = sum(logged for _, logged in live) + cost - limit
    if need <= 0:
        return base
    freed = 0
    for at, logged in live:
        freed += logged
        if freed >= need:
            return at + window - now
    # Not reached: cost <= limit, so expiring every live entry suffices.
    return base


def book(
    state: Log | None,
    now: float,
    delay: float,
    cost: int,
    params: Params,  # noqa: ARG001 -- the signature of every book
) -> tuple[Log, tuple[float, int]]:
    """Log *cost* at ``now + delay``; the entry is the ticket for `refund`."""
    if state is None:
        state = Log()
    entry = (now + delay, cost)
    entries = state.entries
    if entries and entries[-1][0] > entry[0]:
        insort(entries, entry)
    else:
        entries.append(entry)
    state.total += cost
    return state, entry


def refund(
    state: Log | None,
    now: float,  # noqa: ARG001 -- the signature of every refund
    cost: int,  # noqa: ARG001
    params: Params,  # noqa: ARG001
    ticket: tuple[float, int],
) -> Log | None:
    """Remove the booked entry (removing entries only lowers counts)."""
    if state is not None and ticket in state.entries:
        state.entries.remove(ticket)
        state.total -= ticket[1]
    return state
