"""The concurrency limiter: at most N leases in flight per key."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Protocol

from dprims._clock import SYSTEM_CLOCK, Clock
from dprims.errors import RateLimitExceeded
from dprims.ratelimit._base import (
    Decision,
    RateLimitHooks,
    _new_decision,
    check_int,
    check_name,
    check_positive,
)
from dprims.ratelimit._limiters import _MIN_SLEEP, _now_of, _sleepers
from dprims.ratelimit.memory import MemoryStore, _Table


if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType

    # typing.Self is 3.11+; this import exists only for the type checker.
    from typing_extensions import Self

    from dprims.ratelimit.redis import RedisStore


__all__ = ()


class ConcurrencyBackend(Protocol):
    """**Protocol:** the per-store part of a `ConcurrencyLimiter`."""

    def acquire(self, key: str, token: str) -> Decision: ...
    def release(self, key: str, token: str) -> None: ...
    def renew(self, key: str, token: str) -> bool: ...
    def peek(self, key: str) -> Decision: ...
    def reset(self, key: str) -> None: ...
    async def acquire_async(self, key: str, token: str) -> Decision: ...
    async def release_async(self, key: str, token: str) -> None: ...
    async def renew_async(self, key: str, token: str) -> bool: ...
    async def peek_async(self, key: str) -> Decision: ...
    async def reset_async(self, key: str) -> None: ...


def _holders_idle_at(
    holders: dict[str, float],
    params: object,  # noqa: ARG001 -- the signature of every idle_at
) -> float:
    return max(holders.values(), default=0.0)


class _MemoryConcurrency:
    """Leases by key in a `MemoryStore` table: ``{token: expires_at}``."""

    __slots__ = ("_limiter", "_lock", "_now", "_table")

    def __init__(
        self,
        store: MemoryStore,
        limiter: ConcurrencyLimiter,
        now: Callable[[], float],
    ) -> None:
        self._lock = store._lock
        self._table = _Table(limiter, _holders_idle_at, store.max_keys)
        self._limiter = limiter
        self._now = now

    def _live(self, key: str, now: float) -> dict[str, float]:
        data = self._table.data
        holders = data.get(key)
        if holders is None:
            holders = data[key] = {}
            if len(data) > self._table.sweep_at:
                self._table.sweep(now, None)
        for token in [t for t, end in holders.items() if end <= now]:
            del holders[token]
        return holders

    def _decision(
        self, holders: dict[str, float], now: float, allowed: bool
    ) -> Decision:
        limit = self._limiter._limit
        ends = holders.values()
        retry = 0.0 if allowed or not holders else min(ends) - now
        reset = max(ends) - now if holders else 0.0
        left = limit - len(holders)
        return _new_decision(
            Decision, (allowed, limit, max(left, 0), retry, reset)
        )

    def acquire(self, key: str, token: str) -> Decision:
        now = self._now()
        limiter = self._limiter
        with self._lock:
            holders = self._live(key, now)
            allowed = len(holders) < limiter._limit
            if allowed:
                holders[token] = now + limiter._lease
            return self._decision(holders, now, allowed)

    def release(self, key: str, token: str) -> None:
        with self._lock:
            holders = self._table.data.get(key)
            if holders is not None:
                holders.pop(token, None)
                if not holders:
                    del self._table.data[key]

    def renew(self, key: str, token: str) -> bool:
        now = self._now()
        with self._lock:
            holders = self._live(key, now)
            if token not in holders:
                return False
            holders[token] = now + self._limiter._lease
            return True

    def peek(self, key: str) -> Decision:
        now = self._now()
        with self._lock:
            holders = self._live(key, now)
            return self._decision(
                holders, now, len(holders) < self._limiter._limit
            )

    def reset(self, key: str) -> None:
        with self._lock:
            self._table.data.pop(key, None)

    async def acquire_async(self, key: str, token: str) -> Decision:
        return self.acquire(key, token)

    async def release_async(self, key: str, token: str) -> None:
        self.release(key, token)

    async def renew_async(self, key: str, token: str) -> bool:
        return self.renew(key, token)

    async def peek_async(self, key: str) -> Decision:
        return self.peek(key)

    async def reset_async(self, key: str) -> None:
        self.reset(key)


class Permit:
    """One request's slot in a `ConcurrencyLimiter`, or its refusal.

    Use it as a context manager (``with limiter.acquire(key) as permit``)
    to release it on exit; a refused permit releases nothing.

    Attributes:
        key: The key the slot belongs to.
        token: The random name of this lease.
        decision: The `Decision` that granted or refused it.

    .. versionadded:: 0.1
    """

    __slots__ = ("_limiter", "_released", "decision", "key", "token")

    def __init__(
        self,
        limiter: ConcurrencyLimiter,
        key: str,
        token: str,
        decision: Decision,
    ) -> None:
        self._limiter = limiter
        self.key = key
        self.token = token
        self.decision = decision
        self._released = not decision.allowed

    @property
    def allowed(self) -> bool:
        """Whether the slot was granted."""
        return self.decision.allowed

    def release(self) -> None:
        """Give the slot back; doing it twice is harmless."""
        if not self._released:
            self._released = True
            self._limiter._backend.release(self.key, self.token)

    async def release_async(self) -> None:
        """Do what `release` does, for asyncio."""
        if not self._released:
            self._released = True
            await self._limiter._backend.release_async(self.key, self.token)

    def renew(self) -> bool:
        """Extend the lease by the limiter's *lease*; False if it expired."""
        if self._released:
            return False
        return self._limiter._backend.renew(self.key, self.token)

    async def renew_async(self) -> bool:
        """Do what `renew` does, for asyncio."""
        if self._released:
            return False
        return await self._limiter._backend.renew_async(self.key, self.token)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.release_async()

    def __repr__(self) -> str:
        return (
            f"Permit(key={self.key!r}, allowed={self.allowed}, "
            f"released={self._released})"
        )


class ConcurrencyLimiter:
    """Allows at most *limit* requests in flight per key.

    `acquire` returns a `Permit` holding a slot until it is released or its
    *lease* runs out, so a holder that crashes gives its slot back after
    *lease* seconds. Long jobs call `Permit.renew` within each lease. On
    Redis the slots are a sorted set per key (token scored by expiry),
    decided by one script on the server's clock; a Redis failure raises
    :class:`~dprims.errors.BackendError` (the store's ``on_error`` policy
    applies to the rate limiters, whose fallbacks have a meaning).

    >>> from dprims.ratelimit import ConcurrencyLimiter
    >>> from dprims.testing import FakeClock
    >>> limiter = ConcurrencyLimiter(2, lease=30.0, clock=FakeClock())
    >>> with limiter.acquire("db") as first:
    ...     second = limiter.acquire("db")
    ...     limiter.acquire("db").allowed
    False

    Args:
        limit: Slots per key (>= 1).
        lease: Seconds a slot is held without renewal (> 0).
        store: Where the state lives; a private `MemoryStore` by default.
        name: Tells this limiter's keys apart in a shared store.
        clock: Time source for the in-process store and for `wait`.
        hooks: Receives every decision.
        sleep: How `wait` sleeps; the clock's ``sleep`` on a `FakeClock`.

    Raises:
        ValueError: if *limit* < 1 or *lease* <= 0.

    .. versionadded:: 0.1
    """

    __slots__ = (
        "_backend",
        "_clock",
        "_hooks",
        "_lease",
        "_limit",
        "_name",
        "_sleep",
        "_sleep_async",
        "_store",
    )

    def __init__(
        self,
        limit: int,
        *,
        lease: float = 60.0,
        store: MemoryStore | RedisStore | None = None,
        name: str | None = None,
        clock: Clock = SYSTEM_CLOCK,
        hooks: RateLimitHooks | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self._limit = check_int(limit, "limit")
        self._lease = check_positive(lease, "lease")
        self._name = check_name(name or f"cc{self._limit}")
        self._clock = clock
        self._hooks = hooks
        self._sleep, self._sleep_async = _sleepers(clock, sleep)
        self._store = MemoryStore() if store is None else store
        self._backend: ConcurrencyBackend
        if isinstance(self._store, MemoryStore):
            self._backend = _MemoryConcurrency(
                self._store, self, _now_of(clock)
            )
        else:
            self._backend = self._store._bind_concurrency(self)

    @property
    def limit(self) -> int:
        """Slots per key."""
        return self._limit

    @property
    def lease(self) -> float:
        """Seconds a slot is held without renewal."""
        return self._lease

    @property
    def name(self) -> str:
        """The name that tells this limiter's keys from other limiters'."""
        return self._name

    @property
    def store(self) -> MemoryStore | RedisStore:
        """The store that keeps this limiter's state."""
        return self._store

    def reconfigure(
        self, *, limit: int | None = None, lease: float | None = None
    ) -> None:
        """Change the slots per key and/or the lease for future requests.

        Raises:
            ValueError: if a value is out of range.
        """
        new_limit = check_int(self._limit if limit is None else limit, "limit")
        new_lease = check_positive(
            self._lease if lease is None else lease, "lease"
        )
        self._limit, self._lease = new_limit, new_lease

    def _permit(self, key: str, token: str, decision: Decision) -> Permit:
        if self._hooks is not None:
            self._hooks.on_decision(self._name, key, decision)
        return Permit(self, key, token, decision)

    def acquire(self, key: str) -> Permit:
        """Take a slot for *key* if one is free; never block.

        Returns:
            A `Permit`; check ``permit.allowed``. A refused one's
            ``decision.retry_after`` is when the oldest lease expires.
        """
        token = secrets.token_hex(8)
        return self._permit(key, token, self._backend.acquire(key, token))

    async def acquire_async(self, key: str) -> Permit:
        """Do what `acquire` does, for asyncio."""
        token = secrets.token_hex(8)
        decision = await self._backend.acquire_async(key, token)
        return self._permit(key, token, decision)

    def wait(
        self, key: str, *, timeout: float = 30.0, poll: float = 0.05
    ) -> Permit:
        """Block until a slot for *key* is free, polling every *poll* s.

        Raises:
            RateLimitExceeded: if no slot came free within *timeout*.
        """
        deadline = self._clock.monotonic() + timeout
        while True:
            permit = self.acquire(key)
            if permit.allowed:
                return permit
            delay = max(min(poll, permit.decision.retry_after), _MIN_SLEEP)
            if self._clock.monotonic() + delay > deadline:
                raise self._exceeded(key, permit)
            self._sleep(delay)

    async def wait_async(
        self, key: str, *, timeout: float = 30.0, poll: float = 0.05
    ) -> Permit:
        """Do what `wait` does, for asyncio.

        Raises:
            RateLimitExceeded: if no slot came free within *timeout*.
        """
        deadline = self._clock.monotonic() + timeout
        while True:
            permit = await self.acquire_async(key)
            if permit.allowed:
                return permit
            delay = max(min(poll, permit.decision.retry_after), _MIN_SLEEP)
            if self._clock.monotonic() + delay > deadline:
                raise self._exceeded(key, permit)
            await self._sleep_async(delay)

    def _exceeded(self, key: str, permit: Permit) -> RateLimitExceeded:
        return RateLimitExceeded(
            f"concurrency limit {self._name!r} exceeded for {key!r}",
            retry_after=permit.decision.retry_after,
            decision=permit.decision,
        )

    def peek(self, key: str) -> Decision:
        """Return whether a slot is free now, taking none."""
        return self._backend.peek(key)

    async def peek_async(self, key: str) -> Decision:
        """Do what `peek` does, for asyncio."""
        return await self._backend.peek_async(key)

    def reset(self, key: str) -> None:
        """Free every slot of *key*."""
        self._backend.reset(key)

    async def reset_async(self, key: str) -> None:
        """Do what `reset` does, for asyncio."""
        await self._backend.reset_async(key)

    def __repr__(self) -> str:
        return (
            f"ConcurrencyLimiter(limit={self._limit}, lease={self._lease!r}, "
            f"name={self._name!r}, store={self._store!r})"
        )
