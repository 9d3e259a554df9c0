"""The limiter classes: one front per algorithm, plus `MultiLimiter`."""

from __future__ import annotations

import abc
import asyncio
import time
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, cast

from dprims._clock import SYSTEM_CLOCK, Clock, SystemClock
from dprims.errors import ConfigurationError, RateLimitExceeded
from dprims.ratelimit import (
    _fixed_window,
    _gcra,
    _sliding_log,
    _sliding_window,
    _token_bucket,
)
from dprims.ratelimit._base import (
    Decision,
    Penalty,
    RateLimitHooks,
    check_int,
    check_name,
    check_positive,
    check_rate,
    parse_rate,
)
from dprims.ratelimit.memory import MemoryBackend, MemoryStore


if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable, Sequence

    # typing.Self is 3.11+; this import exists only for the type checker.
    from typing_extensions import Self

    from dprims.ratelimit.memory import _Table


__all__ = ()

#: Seconds ``wait`` sleeps at least, so float rounding never makes it spin.
_MIN_SLEEP = 1e-3


class Backend(Protocol):
    """**Protocol:** what a store returns when a limiter binds to it."""

    def acquire(self, key: str, cost: int = 1) -> Decision: ...
    def acquire_many(
        self, items: Iterable[tuple[str, int]]
    ) -> list[Decision]: ...
    def peek(self, key: str) -> Decision: ...
    def reset(self, key: str) -> None: ...
    def reserve(
        self, key: str, cost: int, max_delay: float | None
    ) -> tuple[bool, float, object]: ...
    def refund(self, key: str, cost: int, ticket: object) -> None: ...
    async def acquire_async(self, key: str, cost: int) -> Decision: ...
    async def acquire_many_async(
        self, items: Iterable[tuple[str, int]]
    ) -> list[Decision]: ...
    async def peek_async(self, key: str) -> Decision: ...
    async def reset_async(self, key: str) -> None: ...
    async def reserve_async(
        self, key: str, cost: int, max_delay: float | None
    ) -> tuple[bool, float, object]: ...
    async def refund_async(
        self, key: str, cost: int, ticket: object
    ) -> None: ...


class Store(Protocol):
    """**Protocol:** where limiters keep their state (memory or Redis).

    .. versionadded:: 0.1
    """

    def _bind(
        self,
        front: object,
        parts: Sequence[Limiter],
        *,
        penalty: Penalty | None,
        hooks: RateLimitHooks | None,
        name: str,
        now: Callable[[], float],
    ) -> Backend: ...


def _items(
    items: Iterable[str | tuple[str, int]],
) -> list[tuple[str, int]]:
    out = [(item, 1) if isinstance(item, str) else item for item in items]
    for item in out:
        pair: object = item  # the annotation is a promise callers may break
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise TypeError(
                "items must be keys (str) or (key, cost) pairs, got "
                f"{type(pair).__name__}"
            )
    return out


def _check_timeout(timeout: object) -> float | None:
    """Return *timeout* as a float (or None), else raise a TypeError."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(
            f"timeout must be a number or None, got {type(timeout).__name__}"
        )
    return float(timeout)


def _check_max_delay(max_delay: object) -> float | None:
    """Return *max_delay* as a float >= 0 (or None), else raise."""
    if max_delay is None:
        return None
    if isinstance(max_delay, bool) or not isinstance(max_delay, (int, float)):
        raise TypeError(
            f"max_delay must be a number or None, got "
            f"{type(max_delay).__name__}"
        )
    if not max_delay >= 0:  # also refuses NaN
        raise ConfigurationError(
            f"max_delay must be >= 0 or None, got {max_delay!r}"
        )
    return float(max_delay)


def _owner(front: _Front) -> Limiter | MultiLimiter:
    # _Front is private: only Limiter and MultiLimiter derive from it.
    return cast("Limiter | MultiLimiter", front)


def _sleepers(
    clock: Clock,
    sleep: Callable[[float], None] | None,
) -> tuple[Callable[[float], None], Callable[[float], Awaitable[None]]]:
    """Return the blocking and asyncio sleepers that match *clock*."""
    fake_sleep = getattr(clock, "sleep", None)
    if sleep is None:
        sleep = fake_sleep if callable(fake_sleep) else time.sleep
    if callable(fake_sleep):
        blocking = sleep

        async def sleep_async(seconds: float) -> None:
            # A manual clock moves when told to; yield to other tasks once.
            blocking(seconds)
            await asyncio.sleep(0)

        return blocking, sleep_async
    return sleep, asyncio.sleep


class _Front:
    """What limiters and `MultiLimiter` share: the blocking/async surface."""

    # __dict__ holds one entry, "acquire" (see _expose_acquire).
    __slots__ = (
        "__dict__",
        "_acquire",
        "_backend",
        "_clock",
        "_hooks",
        "_name",
        "_penalty",
        "_sleep",
        "_sleep_async",
        "_store",
    )

    _acquire: Callable[[str, int], Decision]
    _backend: Backend
    _clock: Clock
    _name: str
    _sleep: Callable[[float], None]
    _sleep_async: Callable[[float], Awaitable[None]]

    def _setup(
        self,
        *,
        store: Store | None,
        name: str,
        clock: Clock,
        hooks: RateLimitHooks | None,
        penalty: Penalty | None,
        sleep: Callable[[float], None] | None,
    ) -> Store:
        check_name(name)
        if penalty is not None and not isinstance(penalty, Penalty):
            raise TypeError(
                f"penalty must be a Penalty, got {type(penalty).__name__}"
            )
        self._name = name
        self._clock = clock
        self._hooks = hooks
        self._penalty = penalty
        self._sleep, self._sleep_async = _sleepers(clock, sleep)
        self._store = MemoryStore() if store is None else store
        return self._store

    def _expose_acquire(self) -> None:
        # ``limiter.acquire`` then finds the decision function itself in
        # the instance dict, before the method below: one Python frame
        # less per decision, about a fifth of an in-process decision. A
        # subclass that overrides acquire keeps its override.
        if type(self).acquire is _Front.acquire:
            self.__dict__["acquire"] = self._acquire

    @property
    def name(self) -> str:
        """The name that tells this limiter's keys from other limiters'."""
        return self._name

    @property
    def store(self) -> Store:
        """The store that keeps this limiter's state."""
        return self._store

    def acquire(self, key: str, cost: int = 1) -> Decision:
        """Take *cost* units for *key* if the limit allows; never block.

        Returns:
            The `Decision`; when it is not ``allowed`` nothing was consumed.

        Raises:
            ValueError: if *cost* is < 1 or above the capacity.
            BackendError: if a shared store fails and its failure policy
                is ``"raise"``.
        """
        return self._acquire(key, cost)

    def acquire_many(
        self, items: Iterable[str | tuple[str, int]]
    ) -> list[Decision]:
        """Decide several requests at once, each on its own.

        *items* are keys (cost 1) or ``(key, cost)`` pairs. In process they
        are decided under one lock; on Redis in one round trip (on Redis
        Cluster one round trip per node, sent in parallel).

        Returns:
            One `Decision` per item, in order.
        """
        return self._backend.acquire_many(_items(items))

    def peek(self, key: str) -> Decision:
        """Return what a request of cost 1 would get now, consuming nothing.

        ``remaining`` is what is available now.
        """
        return self._backend.peek(key)

    def reset(self, key: str) -> None:
        """Forget all usage of *key* (and lift its ban)."""
        self._backend.reset(key)

    def wait(
        self, key: str, cost: int = 1, *, timeout: float | None = 30.0
    ) -> Decision:
        """Block until *cost* units for *key* are admitted, then return.

        It sleeps for the decision's ``retry_after`` between attempts, and
        gives up early when that wait would end past *timeout*.

        .. warning:: ``timeout=None`` waits for as long as it takes.

        *timeout* bounds the sleeping between attempts, not an attempt
        itself: on a `RedisStore` one decision against a stalled server
        can take the client's ``socket_timeout`` times one plus its
        retries, plus backoff (about 10 s with redis-py 8's default
        retries), and a wait can overrun *timeout* by that much. Build the
        client with ``retry=Retry(NoBackoff(), 1)`` (or ``0``) to keep it
        near *timeout*; see `RedisStore`.

        Raises:
            RateLimitExceeded: if it could not be admitted within *timeout*
                seconds; it carries the last `Decision`.
            TypeError: if *timeout* is neither a number nor None.
        """
        timeout = _check_timeout(timeout)
        clock = self._clock
        deadline = None if timeout is None else clock.monotonic() + timeout
        while True:
            decision = self._backend.acquire(key, cost)
            if decision[0]:
                return decision
            delay = max(decision[3], _MIN_SLEEP)
            if deadline is not None and clock.monotonic() + delay > deadline:
                raise RateLimitExceeded(
                    f"rate limit {self._name!r} exceeded for {key!r}",
                    retry_after=decision[3],
                    decision=decision,
                )
            self._sleep(delay)

    def reserve(
        self, key: str, cost: int = 1, *, max_delay: float | None = None
    ) -> Reservation:
        """Book *cost* units for *key* and say how long to wait before acting.

        As in Go's ``x/time/rate``: the request is booked at the earliest
        time, from now on, at which the limit admits it, counting every
        earlier booking (first come, first served: a later reservation or
        acquire never goes ahead of it), and the caller must wait
        `Reservation.delay` seconds, then act. The limit holds over the
        times requests act. If the delay would exceed *max_delay* nothing
        is booked and the reservation is not ``ok``. A `MultiLimiter`
        books every limit for one common time, atomically. A banned key
        (see `Penalty`) gets a reservation that is not ``ok``.

        A window limiter counts the booking in the window of the time it
        acts, so the count is exact only if the caller acts within that
        window: act after `Reservation.delay`, not much later.

        Raises:
            ValueError: if *cost* is < 1 or above the capacity, or
                *max_delay* is negative.
            TypeError: if *key* is not a str or *max_delay* is neither a
                number nor None.
        """
        max_delay = _check_max_delay(max_delay)
        ok, delay, ticket = self._backend.reserve(key, cost, max_delay)
        return Reservation(
            _owner(self), key, cost, ok=ok, delay=delay, ticket=ticket
        )

    async def reserve_async(
        self, key: str, cost: int = 1, *, max_delay: float | None = None
    ) -> Reservation:
        """Do what `reserve` does, for asyncio."""
        max_delay = _check_max_delay(max_delay)
        ok, delay, ticket = await self._backend.reserve_async(
            key, cost, max_delay
        )
        return Reservation(
            _owner(self), key, cost, ok=ok, delay=delay, ticket=ticket
        )

    async def acquire_async(self, key: str, cost: int = 1) -> Decision:
        """Do what `acquire` does, for asyncio."""
        return await self._backend.acquire_async(key, cost)

    async def acquire_many_async(
        self, items: Iterable[str | tuple[str, int]]
    ) -> list[Decision]:
        """Do what `acquire_many` does, for asyncio."""
        return await self._backend.acquire_many_async(_items(items))

    async def peek_async(self, key: str) -> Decision:
        """Do what `peek` does, for asyncio."""
        return await self._backend.peek_async(key)

    async def reset_async(self, key: str) -> None:
        """Do what `reset` does, for asyncio."""
        await self._backend.reset_async(key)

    async def wait_async(
        self, key: str, cost: int = 1, *, timeout: float | None = 30.0
    ) -> Decision:
        """Do what `wait` does, for asyncio (the event loop keeps running).

        Raises:
            RateLimitExceeded: if it could not be admitted in time.
        """
        timeout = _check_timeout(timeout)
        clock = self._clock
        deadline = None if timeout is None else clock.monotonic() + timeout
        while True:
            decision = await self._backend.acquire_async(key, cost)
            if decision[0]:
                return decision
            delay = max(decision[3], _MIN_SLEEP)
            if deadline is not None and clock.monotonic() + delay > deadline:
                raise RateLimitExceeded(
                    f"rate limit {self._name!r} exceeded for {key!r}",
                    retry_after=decision[3],
                    decision=decision,
                )
            await self._sleep_async(delay)


class Limiter(_Front, abc.ABC):
    """Base class of the single-algorithm limiters.

    Use one of `FixedWindow`, `SlidingWindow`, `SlidingLog`, `TokenBucket`
    or `GCRA`. Every limiter is thread-safe and asyncio-safe; its state
    lives in its store (a private `MemoryStore` unless ``store=`` is given).

    .. versionadded:: 0.1
    """

    __slots__ = ("_capacity", "_params", "_table")

    _kind: ClassVar[int]
    _take: Callable[[Any, float, int, Any], tuple[Any, Decision]]
    _check: Callable[[Any, float, int, Any], Decision]
    _idle_at: Callable[[Any, Any], float]
    _earliest: Callable[[Any, float, float, int, Any], float]
    _book: Callable[[Any, float, float, int, Any], tuple[Any, Any]]
    _refund: Callable[[Any, float, int, Any, Any], Any]
    _capacity: int
    _params: Any
    _table: _Table | None

    def _bind(
        self,
        *,
        store: Store | None,
        name: str,
        clock: Clock,
        hooks: RateLimitHooks | None,
        penalty: Penalty | None,
        sleep: Callable[[float], None] | None,
    ) -> None:
        store = self._setup(
            store=store,
            name=name,
            clock=clock,
            hooks=hooks,
            penalty=penalty,
            sleep=sleep,
        )
        self._table = None
        self._backend = store._bind(
            self,
            (self,),
            penalty=penalty,
            hooks=hooks,
            name=name,
            now=_now_of(clock),
        )
        self._acquire = self._backend.acquire
        if isinstance(self._backend, MemoryBackend):
            self._table = self._backend.table
            self._acquire = self._backend.fast_acquire()
        self._expose_acquire()

    def _memory_table(self, store: object) -> _Table:
        if self._table is None or self._store is not store:
            raise ConfigurationError(
                "limiters combined in a MultiLimiter must all use the "
                "MultiLimiter's store"
            )
        return self._table

    @abc.abstractmethod
    def _lua(self) -> tuple[int, float, float]:
        """Return the algorithm code and its two parameters for Lua."""

    @property
    def capacity(self) -> int:
        """The most units one key can take at once (limit or burst)."""
        return self._capacity

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self._describe()}, "
            f"name={self._name!r}, store={self._store!r})"
        )

    @abc.abstractmethod
    def _describe(self) -> str:
        """Return the parameters as they appear in repr()."""


def _now_of(clock: Clock) -> Callable[[], float]:
    # The system clock's method adds a Python call per decision; go to the
    # C function directly.
    if isinstance(clock, SystemClock):
        return time.monotonic
    return clock.monotonic


class Reservation:
    """Capacity booked by a limiter's (or a `MultiLimiter`'s) ``reserve``.

    Attributes:
        ok: Whether the capacity was booked (False when the delay would
            have exceeded ``max_delay``).
        delay: Seconds the caller must wait, from the moment of booking,
            before acting.
        key: The key booked for.
        cost: The units booked.

    .. versionadded:: 0.1
    """

    __slots__ = (
        "_cancelled",
        "_limiter",
        "_ticket",
        "_until",
        "cost",
        "delay",
        "key",
        "ok",
    )

    def __init__(
        self,
        limiter: Limiter | MultiLimiter,
        key: str,
        cost: int,
        *,
        ok: bool,
        delay: float,
        ticket: object = None,
    ) -> None:
        self._limiter = limiter
        self._ticket = ticket
        self.key = key
        self.cost = cost
        self.ok = ok
        self.delay = delay
        self._until = limiter._clock.monotonic() + delay
        self._cancelled = not ok

    def _should_refund(self) -> bool:
        if self._cancelled:
            return False
        self._cancelled = True
        # Go's rule: once the reserved time has come the units are spent.
        return self._limiter._clock.monotonic() < self._until

    def cancel(self) -> None:
        """Give the booked units back if their time has not come yet.

        A bucket (`TokenBucket`, `GCRA`) gets back the tokens no later
        booking counts on, as in Go (all of them for the latest booking),
        and a `SlidingLog` drops the booked entries. A window limiter
        (`FixedWindow`, `SlidingWindow`) gives the units back only if
        nothing was counted on the key since the booking; otherwise the
        booking stays counted (giving units back from a shared count could
        admit more than the limit). A `MultiLimiter` applies each part's
        rule. Calling it twice, or on a reservation that is not ``ok``,
        does nothing.
        """
        if self._should_refund():
            self._limiter._backend.refund(self.key, self.cost, self._ticket)

    async def cancel_async(self) -> None:
        """Do what `cancel` does, for asyncio."""
        if self._should_refund():
            await self._limiter._backend.refund_async(
                self.key, self.cost, self._ticket
            )

    def __repr__(self) -> str:
        return (
            f"Reservation(key={self.key!r}, cost={self.cost}, ok={self.ok}, "
            f"delay={self.delay!r})"
        )


def _window_args(limit: object, window: object) -> tuple[int, float]:
    return check_int(limit, "limit"), check_positive(window, "window")


class _WindowLimiter(Limiter):
    """Shared parts of the (limit, window) algorithms."""

    __slots__ = ()

    _prefix: ClassVar[str]

    def __init__(
        self,
        limit: int,
        window: float,
        *,
        store: Store | None = None,
        name: str | None = None,
        clock: Clock = SYSTEM_CLOCK,
        hooks: RateLimitHooks | None = None,
        penalty: Penalty | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        limit, window = _window_args(limit, window)
        self._params = (limit, window)
        self._capacity = limit
        self._bind(
            store=store,
            name=name or f"{self._prefix}{limit}/{window:g}s",
            clock=clock,
            hooks=hooks,
            penalty=penalty,
            sleep=sleep,
        )

    @classmethod
    def from_rate(
        cls,
        rate: str,
        *,
        store: Store | None = None,
        name: str | None = None,
        clock: Clock = SYSTEM_CLOCK,
        hooks: RateLimitHooks | None = None,
        penalty: Penalty | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> Self:
        """Return a limiter of *rate*: ``"100/minute"`` is 100 per 60 s.

        Raises:
            ValueError: if *rate* is malformed or its amount is not a
                whole number.
        """
        parsed = parse_rate(rate)
        if parsed.amount != int(parsed.amount):
            raise ConfigurationError(
                f"rate must have a whole amount for a window limiter, got "
                f"{rate!r}"
            )
        return cls(
            int(parsed.amount),
            parsed.period,
            store=store,
            name=name,
            clock=clock,
            hooks=hooks,
            penalty=penalty,
            sleep=sleep,
        )

    @property
    def limit(self) -> int:
        """Units admitted per window."""
        return int(self._params[0])

    @property
    def window(self) -> float:
        """The window in seconds."""
        return float(self._params[1])

    def reconfigure(
        self, *, limit: int | None = None, window: float | None = None
    ) -> None:
        """Change the limit and/or the window; applies to the next decision.

        State already stored is kept and read with the new values; on Redis
        every client that shares the keys should be reconfigured alike.

        Raises:
            ValueError: if a value is out of range.
        """
        params = _window_args(
            self._params[0] if limit is None else limit,
            self._params[1] if window is None else window,
        )
        self._capacity = params[0]
        self._params = params

    def _lua(self) -> tuple[int, float, float]:
        limit, window = self._params
        return self._kind, float(limit), window * 1e6

    def _describe(self) -> str:
        return f"limit={self._params[0]}, window={self._params[1]!r}"


class FixedWindow(_WindowLimiter):
    """Admits at most *limit* units per key in each aligned window.

    Windows are aligned to multiples of *window* seconds on the store's
    clock. Cheapest of all (one counter per key), but a client can pass
    *limit* at the end of one window and *limit* again at the start of the
    next. Prefer `SlidingWindow` unless the boundary burst is acceptable.

    Args:
        limit: Units per window (>= 1).
        window: Window length in seconds (> 0).
        store: Where the state lives; a private `MemoryStore` by default.
        name: Tells this limiter's keys apart in a shared store; by default
            built from the algorithm and its parameters.
        clock: Time source for the in-process store and for `wait`.
        hooks: Receives every decision (`RateLimitHooks`).
        penalty: Bans keys that keep getting denied (`Penalty`).
        sleep: How `wait` sleeps; the clock's ``sleep`` on a `FakeClock`.

    Raises:
        ValueError: if *limit* < 1 or *window* <= 0.

    .. versionadded:: 0.1
    """

    __slots__ = ()
    _kind = 3
    _prefix = "fw"
    _take = staticmethod(_fixed_window.take)
    _check = staticmethod(_fixed_window.check)
    _idle_at = staticmethod(_fixed_window.idle_at)
    _earliest = staticmethod(_fixed_window.earliest)
    _book = staticmethod(_fixed_window.book)
    _refund = staticmethod(_fixed_window.refund)


class SlidingWindow(_WindowLimiter):
    """Admits about *limit* units per key in any *window* (weighted counter).

    The count over the last *window* seconds is estimated from the current
    and the previous aligned window, the previous one weighted by how much
    of it still overlaps. Two counters per key (O(1) memory). Error bound:
    any interval of *t* <= *window* seconds admits at most
    ``limit * (1 + t / window)``, so never a 2x burst at a boundary; use
    `SlidingLog` when the count must be exact.

    Arguments are those of `FixedWindow`.

    .. versionadded:: 0.1
    """

    __slots__ = ()
    _kind = 4
    _prefix = "sw"
    _take = staticmethod(_sliding_window.take)
    _check = staticmethod(_sliding_window.check)
    _idle_at = staticmethod(_sliding_window.idle_at)
    _earliest = staticmethod(_sliding_window.earliest)
    _book = staticmethod(_sliding_window.book)
    _refund = staticmethod(_sliding_window.refund)


class SlidingLog(_WindowLimiter):
    """Admits at most *limit* units per key in any *window*, exactly.

    Every admitted request is logged for *window* seconds, so memory per key
    grows with *limit* (about 100 bytes per entry on Redis, 70 in
    process). Each decision costs O(log n) on Redis (a sorted set trimmed
    with ZREMRANGEBYSCORE) and O(1) amortised in process.

    Arguments are those of `FixedWindow`.

    .. versionadded:: 0.1
    """

    __slots__ = ()
    _kind = 5
    _prefix = "sl"
    _take = staticmethod(_sliding_log.take)
    _check = staticmethod(_sliding_log.check)
    _idle_at = staticmethod(_sliding_log.idle_at)
    _earliest = staticmethod(_sliding_log.earliest)
    _book = staticmethod(_sliding_log.book)
    _refund = staticmethod(_sliding_log.refund)


def _rate_args(rate: object, burst: object) -> tuple[float, int]:
    return check_rate(rate), check_int(burst, "burst")


class _RateLimiter(Limiter):
    """Shared parts of the (rate, burst) algorithms."""

    __slots__ = ()

    _prefix: ClassVar[str]

    def __init__(
        self,
        rate: float | str,
        burst: int,
        *,
        store: Store | None = None,
        name: str | None = None,
        clock: Clock = SYSTEM_CLOCK,
        hooks: RateLimitHooks | None = None,
        penalty: Penalty | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        rate_f, burst = _rate_args(rate, burst)
        self._set(rate_f, burst)
        self._bind(
            store=store,
            name=name or f"{self._prefix}{rate_f:g}/{burst}",
            clock=clock,
            hooks=hooks,
            penalty=penalty,
            sleep=sleep,
        )

    @classmethod
    def from_rate(
        cls,
        rate: str,
        *,
        burst: int | None = None,
        store: Store | None = None,
        name: str | None = None,
        clock: Clock = SYSTEM_CLOCK,
        hooks: RateLimitHooks | None = None,
        penalty: Penalty | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> Self:
        """Return a limiter of *rate*; *burst* defaults to its amount.

        ``TokenBucket.from_rate("100/minute")`` refills 100 per minute and
        holds up to 100.

        Raises:
            ValueError: if *rate* is malformed.
        """
        parsed = parse_rate(rate)
        return cls(
            parsed.per_second,
            max(1, int(parsed.amount)) if burst is None else burst,
            store=store,
            name=name,
            clock=clock,
            hooks=hooks,
            penalty=penalty,
            sleep=sleep,
        )

    @abc.abstractmethod
    def _set(self, rate: float, burst: int) -> None:
        """Store the algorithm's parameters for *rate* and *burst*."""

    @property
    @abc.abstractmethod
    def rate(self) -> float:
        """Units per second."""

    @property
    def burst(self) -> int:
        """The most units admitted at once."""
        return self._capacity

    def reconfigure(
        self, *, rate: float | str | None = None, burst: int | None = None
    ) -> None:
        """Change the rate and/or the burst; applies to the next decision.

        Raises:
            ValueError: if a value is out of range.
        """
        rate_f, burst = _rate_args(
            self.rate if rate is None else rate,
            self._capacity if burst is None else burst,
        )
        self._set(rate_f, burst)

    def _describe(self) -> str:
        return f"rate={self.rate!r}, burst={self._capacity}"


class TokenBucket(_RateLimiter):
    """Refills *rate* tokens per second into a bucket of *burst* tokens.

    A request takes *cost* tokens if the bucket holds them. An idle key
    can burst *burst* units at once; in any *t* seconds at most
    ``burst + rate * t`` units are admitted. Two numbers per key.

    Args:
        rate: Tokens per second (> 0), or a string such as ``"10/s"``.
        burst: Bucket capacity (>= 1).
        store: Where the state lives; a private `MemoryStore` by default.
        name: Tells this limiter's keys apart in a shared store.
        clock: Time source for the in-process store and for `wait`.
        hooks: Receives every decision (`RateLimitHooks`).
        penalty: Bans keys that keep getting denied (`Penalty`).
        sleep: How `wait` sleeps; the clock's ``sleep`` on a `FakeClock`.

    Raises:
        ValueError: if *rate* <= 0 or malformed, or *burst* < 1.

    .. versionadded:: 0.1
    """

    __slots__ = ()
    _kind = 1
    _prefix = "tb"
    _take = staticmethod(_token_bucket.take)
    _check = staticmethod(_token_bucket.check)
    _idle_at = staticmethod(_token_bucket.idle_at)
    _earliest = staticmethod(_token_bucket.earliest)
    _book = staticmethod(_token_bucket.book)
    _refund = staticmethod(_token_bucket.refund)

    def _set(self, rate: float, burst: int) -> None:
        self._capacity = burst
        self._params = (rate, burst)

    @property
    def rate(self) -> float:
        """Tokens per second."""
        return float(self._params[0])

    def _lua(self) -> tuple[int, float, float]:
        rate, burst = self._params
        return self._kind, rate / 1e6, float(burst)


class GCRA(_RateLimiter):
    """Spaces requests 1/*rate* seconds apart, tolerating bursts of *burst*.

    The generic cell rate algorithm (as in redis-cell and nginx): it
    admits exactly what a `TokenBucket` of the same rate and burst admits,
    with one number of state per key.

    Arguments are those of `TokenBucket`.

    .. versionadded:: 0.1
    """

    __slots__ = ()
    _kind = 2
    _prefix = "gcra"
    _take = staticmethod(_gcra.take)
    _check = staticmethod(_gcra.check)
    _idle_at = staticmethod(_gcra.idle_at)
    _earliest = staticmethod(_gcra.earliest)
    _book = staticmethod(_gcra.book)
    _refund = staticmethod(_gcra.refund)

    def _set(self, rate: float, burst: int) -> None:
        interval = 1.0 / rate
        self._capacity = burst
        self._params = (interval, burst * interval, burst)

    @property
    def rate(self) -> float:
        """Requests per second."""
        return 1.0 / float(self._params[0])

    def _lua(self) -> tuple[int, float, float]:
        interval, _, burst = self._params
        return self._kind, interval * 1e6, float(burst)


class MultiLimiter(_Front):
    """Decides several limits on one key together, atomically.

    A request is admitted only if every limit admits it, and then it counts
    against all of them; if any refuses, none is charged. In process this
    happens under the store's lock; on Redis in one script (one round
    trip), with all the keys of one user key in one Cluster slot.

    >>> from dprims.ratelimit import (
    ...     FixedWindow, MemoryStore, MultiLimiter, TokenBucket)
    >>> from dprims.testing import FakeClock
    >>> store = MemoryStore()
    >>> clock = FakeClock()
    >>> both = MultiLimiter(
    ...     [TokenBucket(10, 10, store=store, clock=clock),
    ...      FixedWindow(1000, 3600, store=store, clock=clock)],
    ...     store=store, clock=clock)
    >>> both.acquire("user:42").remaining
    9

    Args:
        limiters: The limits (at least one); each must use *store*. They
            may still be used on their own: both views share the state.
        store: The store of every limiter in *limiters*.
        name: Names the ban key of *penalty*; joined from the limiters'
            names by default.
        clock: Time source for the in-process store and for `wait`.
        hooks: Receives every combined decision.
        penalty: Bans keys that keep getting denied by the combination.
        sleep: How `wait` sleeps.

    Raises:
        ValueError: if *limiters* is empty or a limiter uses another
            store.

    .. versionadded:: 0.1
    """

    __slots__ = ("_parts",)

    def __init__(
        self,
        limiters: Sequence[Limiter],
        *,
        store: Store,
        name: str | None = None,
        clock: Clock = SYSTEM_CLOCK,
        hooks: RateLimitHooks | None = None,
        penalty: Penalty | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        parts = tuple(limiters)
        if not parts:
            raise ConfigurationError("limiters must not be empty")
        for part in parts:
            if not isinstance(part, Limiter):
                raise TypeError(
                    f"limiters must be limiters, got {type(part).__name__}"
                )
            if part._store is not store:
                raise ConfigurationError(
                    f"limiters must all use the MultiLimiter's store; "
                    f"{part!r} does not"
                )
        self._parts = parts
        store = self._setup(
            store=store,
            name=name or "+".join(part._name for part in parts),
            clock=clock,
            hooks=hooks,
            penalty=penalty,
            sleep=sleep,
        )
        self._backend = store._bind(
            self,
            parts,
            penalty=penalty,
            hooks=hooks,
            name=self._name,
            now=_now_of(clock),
        )
        self._acquire = self._backend.acquire
        self._expose_acquire()

    @property
    def limiters(self) -> tuple[Limiter, ...]:
        """The combined limiters."""
        return self._parts

    def __repr__(self) -> str:
        return f"MultiLimiter({list(self._parts)!r}, name={self._name!r})"
