"""The in-process store: limiter state in a bounded dict under one lock.

Status: stable.
"""

from __future__ import annotations

import itertools
import math
import secrets
import threading
from typing import TYPE_CHECKING, Any

from dprims.ratelimit import _hot
from dprims.ratelimit._base import (
    Decision,
    _new_decision,
    check_cost,
    check_int,
    check_key,
)


if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from dprims.ratelimit._base import Penalty, RateLimitHooks
    from dprims.ratelimit._limiters import Limiter


__all__ = ["MemoryStore"]

#: A table is swept no sooner than when it holds this many keys.
_MIN_SWEEP = 1024


class MemoryStore:
    """Keeps limiter state in this process: thread-safe, bounded, fast.

    Every limiter built without ``store=`` gets its own `MemoryStore`;
    share one between limiters that a `MultiLimiter` combines. All tables
    of one store share one lock, held for a few hundred nanoseconds per
    decision; decisions are exact under any number of threads.

    Memory is bounded: each limiter's table drops the keys whose state had
    already gone back to "fresh" (a full bucket, a finished window) at the
    previous sweep and was not touched since; a sweep runs when the table
    has doubled since the previous one, so a table holds at most a few
    times the keys active between two sweeps, keys in steady use are never
    dropped and re-created, and the cost stays O(1) amortised per
    decision. If more than *max_keys* keys
    are live at once, the least recently *created* keys are forgotten until
    half of *max_keys* remain; a forgotten key starts afresh, so it may be
    admitted more than its limit once. Size *max_keys* above the number of
    keys you expect to be active within one window.

    Args:
        max_keys: Upper bound on the keys one limiter keeps (>= 1).

    Raises:
        ValueError: if *max_keys* is < 1.

    .. versionadded:: 0.1
    """

    __slots__ = ("_lock", "max_keys")

    def __init__(self, *, max_keys: int = 1_000_000) -> None:
        self.max_keys = check_int(max_keys, "max_keys")
        self._lock = threading.Lock()

    def _bind(
        self,
        front: object,
        parts: Sequence[Limiter],
        *,
        penalty: Penalty | None,
        hooks: RateLimitHooks | None,
        name: str,
        now: Callable[[], float],
    ) -> MemoryBackend:
        return MemoryBackend(
            self,
            front,
            parts,
            penalty=penalty,
            hooks=hooks,
            name=name,
            now=now,
        )

    def __repr__(self) -> str:
        return f"MemoryStore(max_keys={self.max_keys})"


class _Table:
    """One limiter's states by key, with the sweep that bounds it."""

    __slots__ = (
        "data",
        "idle_at",
        "last_sweep",
        "limiter",
        "max_keys",
        "sweep_at",
    )

    def __init__(
        self,
        limiter: object,
        idle_at: Callable[[Any, Any], float],
        max_keys: int,
    ) -> None:
        self.data: dict[str, Any] = {}
        self.limiter = limiter
        self.idle_at = idle_at
        self.max_keys = max_keys
        self.sweep_at = min(_MIN_SWEEP, max_keys)
        self.last_sweep = -math.inf

    def sweep(self, now: float, params: object) -> None:
        """Drop idle keys, then the oldest if still over the bound."""
        data = self.data
        idle_at = self.idle_at
        # Second chance: drop only keys that were already fresh at the
        # previous sweep. A key in steady use (a bucket that refills between
        # visits) is fresh at almost any instant, and dropping it at once
        # would re-create it on every visit: the table would churn.
        cutoff = self.last_sweep
        self.last_sweep = now
        for key in [
            k for k, s in data.items() if idle_at(s, params) <= cutoff
        ]:
            del data[key]
        size = len(data)
        if size > self.max_keys * 3 // 4:
            # Mostly live keys: forget the oldest so that the next sweep is
            # again max_keys / 2 insertions away (O(1) amortised).
            excess = size - self.max_keys // 2
            for key in list(itertools.islice(data, excess)):
                del data[key]
            size = len(data)
        self.sweep_at = min(max(_MIN_SWEEP, 2 * size), self.max_keys)


def _ban_idle_at(
    ban: list[float],
    params: object,  # noqa: ARG001 -- the signature of every idle_at
) -> float:
    return max(ban[0] + ban[3], ban[2])


class MemoryBackend:
    """Decides for one limiter (or one `MultiLimiter`) on a MemoryStore."""

    __slots__ = (
        "_bans",
        "_check",
        "_data",
        "_hooks",
        "_lock",
        "_name",
        "_now",
        "_part",
        "_parts",
        "_penalty",
        "_table",
        "_tables",
        "_take",
    )

    def __init__(
        self,
        store: MemoryStore,
        front: object,
        parts: Sequence[Limiter],
        *,
        penalty: Penalty | None,
        hooks: RateLimitHooks | None,
        name: str,
        now: Callable[[], float],
        fresh: bool = False,
    ) -> None:
        self._lock = store._lock
        self._parts = tuple(parts)
        self._part = parts[0]
        self._name = name
        self._now = now
        self._hooks = hooks
        self._penalty = penalty
        if fresh or front is parts[0]:
            self._tables = tuple(
                _Table(part, part._idle_at, store.max_keys) for part in parts
            )
        else:
            # A MultiLimiter shares the tables of the limiters it combines,
            # so both views of a key see the same state.
            self._tables = tuple(part._memory_table(store) for part in parts)
        self._table = self._tables[0]
        self._data = self._table.data
        self._take = parts[0]._take
        self._check = parts[0]._check
        self._bans: _Table | None = (
            None
            if penalty is None
            else _Table(front, _ban_idle_at, store.max_keys)
        )

    @property
    def table(self) -> _Table:
        """The table of the first limiter (its own, for a single one)."""
        return self._table

    # -------------------------------------------------------------- decide

    def fast_acquire(self) -> Callable[[str, int], Decision]:
        """Return the decision function for one limiter, as a closure.

        Everything the hot path needs is bound once into closure cells,
        which Python reads faster than attributes: one lock, one clock
        read, one pure transition per decision.
        """
        if len(self._parts) != 1 or self._bans is not None:
            return self.acquire
        hot = _hot.make_acquire(self)
        if hot is not None:
            return hot
        part = self._part
        take = self._take
        data = self._data
        get = data.get
        lock_acquire = self._lock.acquire
        lock_release = self._lock.release
        now = self._now
        table = self._table
        hooks = self._hooks
        name = self._name

        one = 1

        def acquire(key: str, cost: int = 1) -> Decision:
            # Any cost but the int 1 (CPython caches that object) goes to
            # check_cost, which refuses 1.0 and True: cheaper than a type
            # test plus a comparison.
            if cost is not one:
                check_cost(cost, part._capacity)
            at = now()
            params = part._params
            # acquire/release calls cost less than a with-block here.
            lock_acquire()
            try:
                state = get(key)
                if state is None and key.__class__ is not str:
                    check_key(key)  # only a miss can be a bad key
                data[key], decision = take(state, at, cost, params)
                if len(data) > table.sweep_at:
                    table.sweep(at, params)
            finally:
                lock_release()
            if hooks is not None:
                hooks.on_decision(name, key, decision)
            return decision

        return acquire

    def acquire(self, key: str, cost: int = 1) -> Decision:
        """Decide one request."""
        if len(self._parts) != 1:
            return self.acquire_many(((key, cost),))[0]
        part = self._part
        if key.__class__ is not str:
            check_key(key)
        if cost.__class__ is not int or cost != 1:
            check_cost(cost, part._capacity)
        now = self._now()
        params = part._params
        data = self._data
        with self._lock:
            banned = (
                None
                if self._bans is None
                else self._banned(key, now, part._capacity)
            )
            if banned is not None:
                decision = banned
            else:
                data[key], decision = self._take(
                    data.get(key), now, cost, params
                )
                if not decision[0] and self._bans is not None:
                    decision = self._deny(key, now, decision)
            table = self._table
            if len(data) > table.sweep_at:
                table.sweep(now, params)
        if self._hooks is not None:
            self._hooks.on_decision(self._name, key, decision)
        return decision

    def acquire_many(self, items: Iterable[tuple[str, int]]) -> list[Decision]:
        """Decide each (key, cost) request, all under one lock."""
        parts = self._parts
        items = list(items)
        capacity = min(part._capacity for part in parts)
        for key, cost in items:
            if key.__class__ is not str:
                check_key(key)
            if cost.__class__ is not int or cost != 1:
                check_cost(cost, capacity)
        now = self._now()
        params = [part._params for part in parts]
        decisions = []
        with self._lock:
            for key, cost in items:
                decision = (
                    self._banned(key, now, capacity)
                    if self._bans is not None
                    else None
                )
                if decision is None:
                    decision = self._decide_locked(key, cost, now, params)
                    if not decision[0] and self._bans is not None:
                        decision = self._deny(key, now, decision)
                decisions.append(decision)
            for table, param in zip(self._tables, params, strict=True):
                if len(table.data) > table.sweep_at:
                    table.sweep(now, param)
        if self._hooks is not None:
            for (key, _), decision in zip(items, decisions, strict=True):
                self._hooks.on_decision(self._name, key, decision)
        return decisions

    def _decide_locked(
        self, key: str, cost: int, now: float, params: list[Any]
    ) -> Decision:
        parts = self._parts
        tables = self._tables
        if len(parts) == 1:
            data = tables[0].data
            data[key], decision = parts[0]._take(
                data.get(key), now, cost, params[0]
            )
            return decision
        checks = [
            part._check(table.data.get(key), now, cost, param)
            for part, table, param in zip(parts, tables, params, strict=True)
        ]
        if all(decision[0] for decision in checks):
            for part, table, param in zip(parts, tables, params, strict=True):
                data = table.data
                data[key], _ = part._take(data.get(key), now, cost, param)
        return combine(checks)

    def peek(self, key: str) -> Decision:
        """Return what a request of cost 1 would get, consuming nothing."""
        check_key(key)
        parts = self._parts
        now = self._now()
        with self._lock:
            if self._bans is not None:
                banned = self._banned(key, now, self._part._capacity)
                if banned is not None:
                    return banned
            decisions = [
                peek_decision(part._check, table.data.get(key), now, part)
                for part, table in zip(parts, self._tables, strict=True)
            ]
        return combine(decisions)

    def reset(self, key: str) -> None:
        """Forget everything about *key*, lifting any ban."""
        check_key(key)
        with self._lock:
            for table in self._tables:
                table.data.pop(key, None)
            if self._bans is not None:
                self._bans.data.pop(key, None)

    def reserve(
        self, key: str, cost: int, max_delay: float | None
    ) -> tuple[bool, float, object]:
        """Book *cost* at the earliest time every limit admits it.

        Returns:
            Whether it was booked, the delay, and the ticket `refund` needs
            (one per limit).
        """
        check_key(key)
        parts = self._parts
        capacity = min(part._capacity for part in parts)
        check_cost(cost, capacity)
        now = self._now()
        params = [part._params for part in parts]
        tables = self._tables
        with self._lock:
            if self._bans is not None:
                banned = self._banned(key, now, capacity)
                if banned is not None:
                    return False, banned[3], None
            states = [table.data.get(key) for table in tables]
            settled, delay = settle(parts, states, now, cost, params)
            if not settled or (max_delay is not None and delay > max_delay):
                return False, delay, None
            tickets = []
            for part, table, state, param in zip(
                parts, tables, states, params, strict=True
            ):
                data = table.data
                data[key], ticket = part._book(state, now, delay, cost, param)
                tickets.append(ticket)
                if len(data) > table.sweep_at:
                    table.sweep(now, param)
        return True, delay, tuple(tickets)

    def refund(self, key: str, cost: int, ticket: object) -> None:
        """Give back what the booking of *ticket* took, as each limit allows.

        A ticket from another store (a Redis booking cancelled while
        Redis is away) changes nothing.
        """
        parts = self._parts
        if not isinstance(ticket, tuple) or len(ticket) != len(parts):
            return
        now = self._now()
        with self._lock:
            for part, table, part_ticket in zip(
                parts, self._tables, ticket, strict=True
            ):
                data = table.data
                state = part._refund(
                    data.get(key), now, cost, part._params, part_ticket
                )
                if state is None:
                    data.pop(key, None)
                else:
                    data[key] = state

    # ------------------------------------------------------------- asyncio
    # No I/O happens here, so the coroutines decide inline: the lock is
    # held for well under a microsecond and never across an await.

    async def acquire_async(self, key: str, cost: int) -> Decision:
        """Decide one request (asyncio)."""
        return self.acquire(key, cost)

    async def acquire_many_async(
        self, items: Iterable[tuple[str, int]]
    ) -> list[Decision]:
        """Decide several requests (asyncio)."""
        return self.acquire_many(items)

    async def peek_async(self, key: str) -> Decision:
        """Peek (asyncio)."""
        return self.peek(key)

    async def reset_async(self, key: str) -> None:
        """Reset (asyncio)."""
        self.reset(key)

    async def reserve_async(
        self, key: str, cost: int, max_delay: float | None
    ) -> tuple[bool, float, object]:
        """Reserve (asyncio)."""
        return self.reserve(key, cost, max_delay)

    async def refund_async(self, key: str, cost: int, ticket: object) -> None:
        """Refund (asyncio)."""
        self.refund(key, cost, ticket)

    # ----------------------------------------------------------- penalties

    def _banned(self, key: str, now: float, capacity: int) -> Decision | None:
        ban = self._bans.data.get(key)  # type: ignore[union-attr]  # callers check _bans
        if ban is None or ban[2] <= now:
            return None
        wait = ban[2] - now
        return _new_decision(Decision, (False, capacity, 0, wait, wait))

    def _deny(self, key: str, now: float, decision: Decision) -> Decision:
        """Count a denial; return the ban's decision if it starts one."""
        penalty: Penalty = self._penalty  # type: ignore[assignment]  # set with _bans
        bans: _Table = self._bans  # type: ignore[assignment]  # callers check
        # [first denial, denials, banned until, window]
        ban = bans.data.get(key)
        if ban is None or now - ban[0] >= penalty.window:
            ban = [now, 0, 0.0, penalty.window]
            bans.data[key] = ban
            if len(bans.data) > bans.sweep_at:
                bans.sweep(now, None)
        ban[1] += 1
        if ban[1] < penalty.threshold:
            return decision
        ban[1] = 0
        ban[0] = now
        ban[2] = now + penalty.ban
        return _new_decision(
            Decision, (False, decision[1], 0, penalty.ban, penalty.ban)
        )


#: Rounds `settle` tries before giving up on a common time.
SETTLE_ROUNDS = 32


def settle(
    parts: Sequence[Limiter],
    states: Sequence[Any],
    now: float,
    cost: int,
    params: Sequence[Any],
) -> tuple[bool, float]:
    """Return whether a common delay was found for *parts*, and the delay.

    Each limit's earliest admitting time from a given time on is monotone,
    so moving to the latest of them and asking again converges; it stops
    when no limit moves the time any further.
    """
    delay = 0.0
    single = len(parts) == 1
    for _ in range(SETTLE_ROUNDS):
        latest = delay
        for part, state, param in zip(parts, states, params, strict=True):
            at = part._earliest(state, now, delay, cost, param)
            if at > latest:  # noqa: PLR1730 -- max() costs a call here
                latest = at
        if single or latest == delay:
            return True, latest
        delay = latest
    return False, delay


def peek_decision(
    check: Callable[[Any, float, int, Any], Decision],
    state: object,
    now: float,
    part: Limiter,
) -> Decision:
    """Return the peek of one limiter from its pure ``check``."""
    current = check(state, now, 0, part._params)
    if current[2] >= 1:
        return current
    after = check(state, now, 1, part._params)
    return current._replace(allowed=False, retry_after=after[3])


def combine(decisions: Sequence[Decision]) -> Decision:
    """Return one decision for several limits decided together.

    Allowed only if every limit allows; *limit* and *remaining* come from
    the tightest limit, *retry_after* is the longest wait among the limits
    that refuse, *reset_after* the longest reset.
    """
    if len(decisions) == 1:
        return decisions[0]
    allowed = all(decision[0] for decision in decisions)
    tightest = min(decisions, key=lambda decision: decision[2])
    retry = (
        0.0
        if allowed
        else max(decision[3] for decision in decisions if not decision[0])
    )
    return _new_decision(
        Decision,
        (
            allowed,
            tightest[1],
            tightest[2],
            retry,
            max(decision[4] for decision in decisions),
        ),
    )


def new_token() -> str:
    """Return a random token that names one concurrency lease."""
    return secrets.token_hex(8)
