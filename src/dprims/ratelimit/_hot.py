"""Specialised in-process decision closures, one per algorithm.

`MemoryBackend.fast_acquire` asks `make_acquire` first. For a single
`TokenBucket`, `GCRA`, `FixedWindow`, `SlidingWindow` or `SlidingLog`
without hooks or penalty, it returns a closure with the algorithm's
transition written inline: no Python call to the pure ``take``, no
``(state, decision)`` pair, everything read from closure cells. Anything
unusual (a state booked ahead by ``reserve``, a request that could never
fit) goes to the pure ``take`` under the lock, so decisions and stored
states are exactly those of the pure transition;
tests/ratelimit/test_hot.py checks that side by side.

A few common cases skip most of the arithmetic, still exactly. A full token
bucket taking 1 (a new key, or one idle for a while: the usual case when
many keys take turns) gets a decision that depends on the parameters only;
the pure ``take`` makes it once per parameter set and it is shared, as a
`Decision` is immutable. A sliding-window key over its limit is denied
again and again from one state; the closure works out once up to when
such a denial stays a denial with nothing left (see `_denied_until`). A
sliding log admitting a cost of 1 gets a decision that depends on the
parameters and the total logged only, shared in the same way; a log whose
newest entry has expired (a key back after an idle window) is emptied at
once, as the pure ``take`` would, entry by entry.

Locking. A key's state is an immutable value (a float or a tuple) that
changes only by being replaced under the store's lock, so one unlocked
``dict.get`` reads a consistent snapshot (under the GIL, and on
free-threaded builds, where dict reads are atomic too). A denial writes
nothing, so it is decided from that snapshot without the lock: it is what
the locked path would have said at the moment of the read. An admission
writes, so it takes the lock and commits only if the key still holds the
very state it decided from (an ``is`` test); the outcome is then exactly
the pure ``take``'s under the lock. Otherwise another thread wrote first,
and the pure ``take`` decides again from the new state under the lock.
Every read-modify-write thus stays under a real lock, which keeps
admissions exact under any number of threads. A `SlidingLog` key's state
is the exception: a log changed in place, with no snapshot to read without
the lock, so that closure holds the lock for every decision, denials
included.

Remaining. The pure transitions compute ``int(left) if left > 0 else 0``;
``floor(left) if left >= 1.0 else 0`` is the same int (the two agree on
every float >= 1 and give 0 below it), skips the call on a denial, where
*left* is almost always below 1, and ``math.floor`` (a one-argument
builtin) costs about half of ``int()`` (a type call).

Floats. CPython specialises arithmetic and comparisons whose operands are
both floats; with an int operand (a cost, a burst, a limit) they take the
generic path, several times slower. So the closures use float copies of
those ints (``1.0`` for a cost of 1; the capacity, converted once per
parameter set) where that gives the same result bit for bit: the copy is
made only for ints below 2**53, which a float holds exactly, so mixed
arithmetic (which converts the int anyway), comparisons and differences
of such ints all come out the same. Where the type shows in the state (a
full bucket stores an int count, as the pure transition does), the int
stays.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from dprims.ratelimit import (
    _fixed_window,
    _gcra,
    _sliding_log,
    _sliding_window,
    _token_bucket,
)
from dprims.ratelimit._base import Decision, check_cost, check_key


if TYPE_CHECKING:
    from collections.abc import Callable

    from dprims.ratelimit.memory import MemoryBackend, _Table

    Acquire = Callable[[str, int], Decision]
    Cells = tuple[
        Any,
        dict[str, Any],
        Callable[[str], Any],
        Callable[..., bool],
        Callable[[], None],
        Callable[[], float],
        _Table,
        Callable[[str, float, int, Any], Decision],
    ]


__all__ = ()

#: Ints up to this are exact as floats.
_EXACT = 2**53

#: The sliding log shares its admissions of a cost of 1 for totals below
#: this (a list slot, and a `Decision` once used, per total).
_ADMITTED = 64

#: ``tuple.__new__`` skips the named tuple's generated ``__new__`` (a
#: Python function): the cheapest way to build a `Decision`.
_new: Callable[..., Decision] = tuple.__new__


def make_acquire(backend: MemoryBackend) -> Acquire | None:
    """Return the specialised decision closure for *backend*, if any.

    Returns:
        None when *backend* combines several limits, has hooks or a
        penalty, or runs an algorithm without a specialised closure (the
        generic closure of `MemoryBackend.fast_acquire` then decides).
    """
    if (
        len(backend._parts) != 1
        or backend._bans is not None
        or backend._hooks is not None
    ):
        return None
    factory = _FACTORIES.get(backend._take)
    return None if factory is None else factory(backend)


def _retake(
    backend: MemoryBackend,
) -> Callable[[str, float, int, Any], Decision]:
    """Return the pure transition of *backend*, to call with the lock held.

    It decides the cases the closures do not inline, from the state the
    key holds now, exactly as the generic path does (sweep included).
    """
    take = backend._take
    data = backend._data
    get = data.get
    table = backend._table

    def retake(key: str, at: float, cost: int, params: Any) -> Decision:
        data[key], decision = take(get(key), at, cost, params)
        if len(data) > table.sweep_at:
            table.sweep(at, params)
        return decision

    return retake


def _cells(backend: MemoryBackend) -> Cells:
    """Return what every closure binds into its cells, in this order.

    The limiter, its state dict, that dict's ``get``, the store lock's
    ``acquire`` and ``release``, the clock, the table (for its sweep) and
    the `_retake` fallback.
    """
    lock = backend._lock
    return (
        backend._part,
        backend._data,
        backend._data.get,
        lock.acquire,
        lock.release,
        backend._now,
        backend._table,
        _retake(backend),
    )


def _token_bucket_acquire(backend: MemoryBackend) -> Acquire:
    part, data, get, lock_acquire, lock_release, now, table, retake = _cells(
        backend
    )
    take = _token_bucket.take
    new = _new
    decision_type = Decision
    eps = _token_bucket.EPS
    floor = math.floor
    one = 1

    def derive(
        params: tuple[float, int],
    ) -> tuple[Any, float, int, float, Decision]:
        rate, burst = params
        # A full bucket taking 1 leaves burst - 1 tokens, whatever the
        # time: the pure take's decision for it depends on the parameters
        # only, so it is made once here (and, being immutable, shared).
        _, full = take(None, 0.0, 1, params)
        fburst = float(burst) if burst < _EXACT else burst
        return params, rate, burst, fburst, full

    # (params, rate, burst, burst as a float, the full bucket's decision),
    # refreshed when reconfigure() swaps the limiter's params. One cell
    # holds one tuple, so a thread never sees parts of two parameter sets.
    derived = derive(part._params)

    def acquire(key: str, cost: int = 1) -> Decision:
        nonlocal derived
        # Any cost but the int 1 (CPython caches that object) goes to
        # check_cost, which refuses 1.0 and True. A cost of 1 is used as
        # 1.0 where the module docstring's "Floats" allows.
        if cost is one:
            fcost = 1.0
        else:
            check_cost(cost, part._capacity)
            fcost = cost
        at = now()
        cached = derived
        if cached[0] is not part._params:
            cached = derived = derive(part._params)
        params, rate, burst, fburst, full_decision = cached
        try:
            state = get(key)
        except TypeError:  # an unhashable key
            check_key(key)
            raise
        if state is None:
            if key.__class__ is not str:
                check_key(key)  # only a miss can be a bad key
            full = True
        else:
            held, since = state
            tokens = held + (at - since) * rate
            full = tokens > fburst
        decision: Decision | None
        if full and cost is one:
            # A new key, or one idle for a while: the usual case when many
            # keys take turns.
            tokens = burst - 1
            decision = full_decision
        else:
            if full:
                tokens = burst  # an int, as in take: it shows in the state
            if not tokens + eps >= fcost:  # not <: as take, if NaN
                if state is None:
                    # A cost above the burst (reconfigured since the cost
                    # check): the pure transition stores the key as is.
                    lock_acquire()
                    try:
                        return retake(key, at, cost, params)
                    finally:
                        lock_release()
                left = tokens + eps
                return new(
                    decision_type,
                    (
                        False,
                        burst,
                        floor(left) if left >= 1.0 else 0,
                        (fcost - tokens) / rate,
                        (fburst - tokens) / rate,
                    ),
                )
            tokens -= cost  # the int cost: an int count stays an int
            decision = None
        lock_acquire()
        try:
            if get(key) is not state:
                return retake(key, at, cost, params)
            data[key] = (tokens, at)
            # Only a new key grows the table.
            if state is None and len(data) > table.sweep_at:
                table.sweep(at, params)
        finally:
            lock_release()
        if decision is not None:
            return decision
        left = tokens + eps
        return new(
            decision_type,
            (
                True,
                burst,
                floor(left) if left >= 1.0 else 0,
                0.0,
                (fburst - tokens) / rate,
            ),
        )

    return acquire


def _gcra_acquire(backend: MemoryBackend) -> Acquire:
    part, data, get, lock_acquire, lock_release, now, table, retake = _cells(
        backend
    )
    new = _new
    decision_type = Decision
    eps = _gcra.EPS
    floor = math.floor
    one = 1

    def acquire(key: str, cost: int = 1) -> Decision:
        if cost is one:
            fcost = 1.0
        else:
            check_cost(cost, part._capacity)
            fcost = cost
        at = now()
        params = part._params
        # interval and tolerance are floats: only the cost needs a copy.
        interval, tolerance, burst = params
        try:
            state = get(key)
        except TypeError:
            check_key(key)
            raise
        if state is None:
            if key.__class__ is not str:
                check_key(key)
            tat = at
        else:
            tat = at if state < at else state  # noqa: FURB136 -- max() is a call
        new_tat = tat + fcost * interval
        diff = new_tat - at
        if diff <= tolerance + eps:
            lock_acquire()
            try:
                if get(key) is not state:
                    return retake(key, at, cost, params)
                data[key] = new_tat
                if state is None and len(data) > table.sweep_at:
                    table.sweep(at, params)
            finally:
                lock_release()
            left = (tolerance - diff) / interval + eps
            return new(
                decision_type,
                (True, burst, floor(left) if left >= 1.0 else 0, 0.0, diff),
            )
        if state is None:
            lock_acquire()
            try:
                return retake(key, at, cost, params)
            finally:
                lock_release()
        left = (tolerance - (tat - at)) / interval + eps
        return new(
            decision_type,
            (
                False,
                burst,
                floor(left) if left >= 1.0 else 0,
                diff - tolerance,
                tat - at,
            ),
        )

    return acquire


def _fixed_window_acquire(backend: MemoryBackend) -> Acquire:
    part, data, get, lock_acquire, lock_release, now, table, retake = _cells(
        backend
    )
    new = _new
    decision_type = Decision
    one = 1

    def acquire(key: str, cost: int = 1) -> Decision:
        if cost is not one:
            check_cost(cost, part._capacity)
        at = now()
        params = part._params
        limit, window = params
        index = at // window
        try:
            state = get(key)
        except TypeError:
            check_key(key)
            raise
        if state is None:
            if key.__class__ is not str:
                check_key(key)
            count = cost
        else:
            stored, count = state
            if stored == index:
                count += cost
            elif stored < index:
                count = cost
            else:
                # A window booked ahead by reserve(): rare, and the pure
                # transition knows how long it holds everything back.
                lock_acquire()
                try:
                    return retake(key, at, cost, params)
                finally:
                    lock_release()
        reset = (index + 1.0) * window - at
        if count <= limit:
            lock_acquire()
            try:
                if get(key) is not state:
                    return retake(key, at, cost, params)
                data[key] = (index, count)
                if state is None and len(data) > table.sweep_at:
                    table.sweep(at, params)
            finally:
                lock_release()
            return new(
                decision_type,
                (True, limit, limit - count, 0.0, reset if count else 0.0),
            )
        if state is None:
            lock_acquire()
            try:
                return retake(key, at, cost, params)
            finally:
                lock_release()
        count -= cost
        return new(
            decision_type,
            (
                False,
                limit,
                limit - count if count < limit else 0,
                reset,
                reset,
            ),
        )

    return acquire


def _sliding_window_acquire(backend: MemoryBackend) -> Acquire:
    part, data, get, lock_acquire, lock_release, now, table, retake = _cells(
        backend
    )
    new = _new
    decision_type = Decision
    eps = _sliding_window.EPS
    floor = math.floor
    one = 1

    def derive(
        params: tuple[int, float],
    ) -> tuple[Any, int, float, float, float, float]:
        limit, window = params
        # limit + EPS and 2 * window are computed as the pure transition
        # computes them, once per parameter set.
        return (
            params,
            limit,
            window,
            float(limit) if limit < _EXACT else limit,
            limit + eps,
            2 * window,
        )

    # (params, limit, window, limit as a float, limit + EPS, 2 * window);
    # see the token bucket's derived.
    derived = derive(part._params)
    # (state, params, until, fade, fits): a cost of 1 from *state*, in its
    # own window, is denied with nothing left while elapsed <= until (see
    # _denied_until); fade and fits are the time-free part of the retry.
    # One cell holds one tuple, as for derived.
    memo: tuple[Any, Any, float, float, bool] = (None, None, 0.0, 0.0, False)
    # The state of the last denial: the memo is made on the second denial
    # from one state, so that keys denied once in a while do not pay for
    # making it.
    seen: object = None

    def acquire(key: str, cost: int = 1) -> Decision:
        nonlocal derived, memo, seen
        if cost is one:
            fcost = 1.0
        else:
            check_cost(cost, part._capacity)
            fcost = cost
        at = now()
        cached = derived
        if cached[0] is not part._params:
            cached = derived = derive(part._params)
        params, limit, window, flimit, ceiling, two_windows = cached
        index = at // window
        elapsed = at - index * window
        # The pure transition computes ``window - elapsed`` three times;
        # computed once it is the same float.
        rest = window - elapsed
        try:
            state = get(key)
        except TypeError:
            check_key(key)
            raise
        if state is None:
            if key.__class__ is not str:
                check_key(key)
            current = previous = 0
        else:
            stored, current, previous = state
            if stored == index:
                hit = memo
                if (
                    hit[0] is state
                    and hit[1] is params
                    and cost is one
                    and elapsed <= hit[2]
                ):
                    fade = hit[3]
                    return new(
                        decision_type,
                        (
                            False,
                            limit,
                            0,
                            fade - elapsed if hit[4] else rest + fade,
                            two_windows - elapsed
                            if current
                            else (rest if previous else 0.0),
                        ),
                    )
            elif stored == index - 1.0:
                previous = current
                current = 0
            elif stored < index:
                current = previous = 0
            else:
                # A window booked ahead by reserve(): rare, and the
                # pure transition knows how long it holds all back.
                lock_acquire()
                try:
                    return retake(key, at, cost, params)
                finally:
                    lock_release()
        estimate = previous * rest / window + current
        if estimate + fcost <= ceiling:
            current += cost
            lock_acquire()
            try:
                if get(key) is not state:
                    return retake(key, at, cost, params)
                data[key] = (index, current, previous)
                if state is None and len(data) > table.sweep_at:
                    table.sweep(at, params)
            finally:
                lock_release()
            left = flimit - estimate - fcost + eps
            return new(
                decision_type,
                (
                    True,
                    limit,
                    floor(left) if left >= 1.0 else 0,
                    0.0,
                    two_windows - elapsed
                    if current
                    else (rest if previous else 0.0),
                ),
            )
        if state is None:
            lock_acquire()
            try:
                return retake(key, at, cost, params)
            finally:
                lock_release()
        # The retry formulas of _sliding_window.take, inline.
        fits = current + cost <= limit
        if fits:
            fade = window * (1.0 - (limit - current - cost) / previous)
            retry = fade - elapsed
        else:
            fade = window * (1.0 - (limit - cost) / current)
            if not fade > 0.0:  # as take's (fade if fade > 0.0 else 0.0)
                fade = 0.0
            retry = rest + fade
        left = flimit - estimate + eps
        if cost is one and stored == index and left < 1.0:
            if seen is state:
                until = _denied_until(
                    current, previous, window, ceiling, flimit
                )
                if until is not None:
                    memo = (state, params, until, fade, fits)
            else:
                seen = state
        return new(
            decision_type,
            (
                False,
                limit,
                floor(left) if left >= 1.0 else 0,
                retry,
                two_windows - elapsed
                if current
                else (rest if previous else 0.0),
            ),
        )

    return acquire


def _denied_until(
    current: int,
    previous: int,
    window: float,
    ceiling: float,
    flimit: float,
) -> float | None:
    """Return an elapsed time up to which a cost of 1 gets a bare denial.

    That is: from a state holding *current* and *previous* in its own
    window, the pure sliding-window take denies a cost of 1 and leaves 0
    remaining at every elapsed time up to the one returned; None if no
    such time was found. The estimate
    ``previous * (window - elapsed) / window + current`` never rises as
    *elapsed* grows (previous >= 0, and each float operation rounds
    monotonically), so both the denial and "less than 1 left" hold at every
    elapsed time below one where they hold. This aims just below the time
    the estimate falls to ``limit - 1`` and checks there with the pure
    transition's own expressions.
    """
    if previous < 0:
        return None
    until = window  # a window's end: later times are in the next one
    if previous:
        # Just before the crossing, clear of the rounding around it.
        crossing = window - (ceiling - 1.0 - current) * window / previous
        until = min(until, crossing - window * 1e-9)
    estimate = previous * (window - until) / window + current
    if estimate + 1.0 <= ceiling:
        return None  # admitted there
    if not flimit - estimate + _sliding_window.EPS < 1.0:
        return None  # something left there
    return until


def _sliding_log_acquire(backend: MemoryBackend) -> Acquire:
    part, data, get, lock_acquire, lock_release, now, table, retake = _cells(
        backend
    )
    new = _new
    decision_type = Decision
    log_type = _sliding_log.Log
    one = 1

    def derive(
        params: tuple[int, float],
    ) -> tuple[Any, list[Decision | None]]:
        limit = params[0]
        return params, [None] * min(limit, _ADMITTED)

    # (params, the admissions of a cost of 1 by the total logged before,
    # made on first use); see the token bucket's derived.
    admitted = derive(part._params)

    def acquire(key: str, cost: int = 1) -> Decision:
        nonlocal admitted
        if cost is not one:
            check_cost(cost, part._capacity)
        at = now()
        params = part._params
        limit, window = params
        retry: float | None
        lock_acquire()
        try:
            try:
                log = get(key)
            except TypeError:
                check_key(key)
                raise
            if log is None:
                if key.__class__ is not str:
                    check_key(key)
                if cost > limit:
                    # A cost above the limit (reconfigured since the cost
                    # check): the pure transition knows what to make of it.
                    return retake(key, at, cost, params)
                log = log_type()
                log.entries.append((at, cost))
                log.total = cost
                data[key] = log
                if len(data) > table.sweep_at:
                    table.sweep(at, params)
                total = 0
                retry = None
            else:
                entries = log.entries
                total = log.total
                if entries:
                    first = entries[0]
                    # _decide's expiry test, the very same float; the
                    # first entry's retry reuses it.
                    expiry = first[0] + window
                    if expiry <= at:
                        if entries[-1][0] + window <= at:
                            # The log is in time order and rounding is
                            # monotone, so every entry goes, one by one in
                            # _decide, taking the whole total with it: a
                            # key back after an idle window.
                            entries.clear()
                            total = 0
                        else:
                            # The newest entry stays: the loop stops there.
                            popleft = entries.popleft
                            total -= popleft()[1]
                            first = entries[0]
                            expiry = first[0] + window
                            while expiry <= at:
                                total -= popleft()[1]
                                first = entries[0]
                                expiry = first[0] + window
                        log.total = total
                over = total + cost
                if over <= limit:
                    if entries and entries[-1][0] > at:
                        # A booking waits in the future: the pure
                        # transition inserts in time order.
                        return retake(key, at, cost, params)
                    entries.append((at, cost))
                    log.total = over
                    retry = None
                elif entries:
                    # _decide's retry: when the oldest entries that free
                    # enough have expired. Its sum starts at 0 and costs
                    # are ints, so the first entry alone is tested so.
                    need = over - limit
                    if first[1] >= need:
                        retry = expiry - at
                    else:
                        freed = 0
                        retry = window
                        for logged_at, logged in entries:
                            freed += logged
                            if freed >= need:
                                retry = logged_at + window - at
                                break
                    reset = entries[-1][0] + window - at
                else:
                    # Nothing logged and still over: a cost above the
                    # limit, as for a new key.
                    return retake(key, at, cost, params)
        finally:
            lock_release()
        if retry is None:
            if cost is one:
                cached = admitted
                if cached[0] is not params:
                    cached = admitted = derive(params)
                decisions = cached[1]
                if total < len(decisions):
                    decision = decisions[total]
                    if decision is None:
                        # Depends on the parameters and the total only,
                        # and a Decision is immutable: made once, shared.
                        decision = decisions[total] = new(
                            decision_type,
                            (True, limit, limit - total - 1, 0.0, window),
                        )
                    return decision
            return new(
                decision_type,
                (True, limit, limit - total - cost, 0.0, window),
            )
        return new(
            decision_type,
            (
                False,
                limit,
                limit - total if total < limit else 0,
                retry,
                reset,
            ),
        )

    return acquire


#: The specialised closure factory of each pure ``take``; a limiter whose
#: ``_take`` is not listed (a subclass overriding it) has none.
_FACTORIES: dict[object, Callable[[MemoryBackend], Acquire]] = {
    _token_bucket.take: _token_bucket_acquire,
    _gcra.take: _gcra_acquire,
    _fixed_window.take: _fixed_window_acquire,
    _sliding_window.take: _sliding_window_acquire,
    _sliding_log.take: _sliding_log_acquire,
}
