"""Single-flight: one loader call per key, shared by threads and tasks.

A flight is a `concurrent.futures.Future` plus the identity of its owner
(a thread id, or an asyncio task). Threads wait on the future directly and
tasks through `asyncio.wrap_future`, so one flight serves both, across
event loops. The owner is marked running at creation, so a cancelled waiter
can never cancel the flight for everyone else.

Deadlocks are detected, not suffered: before waiting, a caller walks the
wait-for graph (who waits on whose flight); if the walk comes back to the
caller, the wait could never end, and `ReentrantLoadError` is raised
instead (cachebox#54 is the one-step case: a loader asking for its own
key).

Some waits the graph cannot see: a loader that hands its own key to a
thread pool or to a new task and waits for that, or a loader that hangs.
Every wait is therefore bounded by a timeout as well (60 s by default);
when it passes, the waiter gets `LoadTimeout` and the flight stays in
place, so a hung backend is not hit again by every waiter.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import math
import threading
from typing import TYPE_CHECKING, Generic, TypeVar

from dprims.errors import ConfigurationError, DprimsError


if TYPE_CHECKING:
    from collections.abc import Hashable


__all__ = ()

V = TypeVar("V")

#: Longest wait-for chain followed before giving up on cycle detection;
#: real chains are a handful of nested cached calls long.
_MAX_CHAIN = 128


class ReentrantLoadError(DprimsError, RuntimeError):
    """Raised when a loader needs the value it is itself loading.

    This happens when a loader calls the cached function (or
    ``get_or_load``) for its own key, directly or through a cycle of loads
    in other threads or tasks. Waiting would never end, so the call fails
    at once instead.

    .. versionadded:: 0.1
    """


class LoadTimeout(DprimsError, TimeoutError):
    """Raised when waiting for another caller's load takes too long.

    Single-flight makes concurrent misses of a key wait for the one loader
    call in flight. If that call does not end within *wait_timeout*
    seconds (a hung backend, or a loader that waits, through a thread
    pool or a new task, for its own key), the waiter gets this error. The
    load itself goes on and stays the key's only flight, so a hung backend
    is not hit again by every waiter.

    .. versionadded:: 0.1
    """


#: The default bound on waiting for another caller's load, in seconds:
#: generous, since loads may be slow, but never a hang.
DEFAULT_WAIT_TIMEOUT = 60.0


def check_wait_timeout(value: float | None) -> float | None:
    """Return *value* as a float (None stays None), or raise if invalid."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(
            f"wait_timeout must be a number of seconds or None, got "
            f"{type(value).__name__}"
        )
    if not 0 < value < math.inf:
        raise ConfigurationError(
            f"wait_timeout must be a finite number of seconds > 0 (or None "
            f"for no bound), got {value!r}"
        )
    return float(value)


def _timed_out(key: Hashable, timeout: float | None) -> LoadTimeout:
    return LoadTimeout(
        f"waited {timeout} s for the load of key {key!r} in flight in "
        f"another thread or task; it is still running (a hung loader, or "
        f"one waiting for its own key through a pool or a new task)"
    )


class _Abandoned(Exception):
    """Set on a flight whose owner was interrupted (cancelled, exiting)."""


class _Flight(Generic[V]):
    """One in-progress load: its future, owner and invalidation mark."""

    __slots__ = ("discarded", "future", "owner")

    def __init__(self, owner: object) -> None:
        self.future: concurrent.futures.Future[V] = concurrent.futures.Future()
        # A running future cannot be cancelled, so a waiter's cancellation
        # (asyncio.wrap_future propagates it) never cancels the load.
        self.future.set_running_or_notify_cancel()
        self.owner = owner
        self.discarded = False

    def is_discarded(self) -> bool:
        """Return whether an invalidation asked not to store the result."""
        return self.discarded

    def __repr__(self) -> str:
        return f"_Flight(owner={self.owner!r}, done={self.future.done()})"


_GRAPH_LOCK = threading.Lock()
#: owner -> flight it is waiting for; the wait-for graph across all caches.
_WAITING: dict[object, _Flight[object]] = {}


def current_owner() -> object:
    """Return the identity of the caller: its asyncio task, else its thread."""
    try:
        task = asyncio.current_task()
    except RuntimeError:
        task = None
    return task if task is not None else threading.get_ident()


def _loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _enter_wait(me: object, flight: _Flight[V], key: Hashable) -> None:
    with _GRAPH_LOCK:
        owner = flight.owner
        for _ in range(_MAX_CHAIN):
            if owner == me:
                raise ReentrantLoadError(
                    f"the loader for key {key!r} needs the value of that "
                    f"same key (directly or through other loads), which "
                    f"would wait forever"
                )
            blocking = _WAITING.get(owner)
            if blocking is None:
                break
            owner = blocking.owner
        _WAITING[me] = flight  # type: ignore[assignment]  # V is erased in the graph


def _exit_wait(me: object) -> None:
    with _GRAPH_LOCK:
        _WAITING.pop(me, None)


class SingleFlight(Generic[V]):
    """The in-flight loads of one cache, by key."""

    __slots__ = ("_flights", "_lock")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flights: dict[Hashable, _Flight[V]] = {}

    def __repr__(self) -> str:
        return f"SingleFlight(in_flight={len(self._flights)})"

    def join(self, key: Hashable, owner: object) -> tuple[_Flight[V], bool]:
        """Return the flight for *key* and whether the caller now leads it."""
        with self._lock:
            current = self._flights.get(key)
            if current is not None:
                return current, False
            flight: _Flight[V] = _Flight(owner)
            self._flights[key] = flight
            return flight, True

    def try_lead(self, key: Hashable, owner: object) -> _Flight[V] | None:
        """Return a new flight led by *owner*, or None if one is in flight."""
        with self._lock:
            if key in self._flights:
                return None
            flight = self._flights[key] = _Flight(owner)
            return flight

    def _remove(self, key: Hashable, flight: _Flight[V]) -> None:
        with self._lock:
            if self._flights.get(key) is flight:
                del self._flights[key]

    def resolve(self, key: Hashable, flight: _Flight[V], value: V) -> None:
        """End *flight* with *value* for every waiter."""
        self._remove(key, flight)
        flight.future.set_result(value)

    def fail(
        self, key: Hashable, flight: _Flight[V], exc: BaseException
    ) -> None:
        """End *flight* with *exc*; interruptions make waiters retry."""
        self._remove(key, flight)
        if isinstance(exc, Exception):
            flight.future.set_exception(exc)
        else:
            # Cancellation or exit of the owner is not the loader's answer:
            # waiters start over, and one of them leads a new flight.
            flight.future.set_exception(_Abandoned())

    def discard(self, key: Hashable | None = None) -> None:
        """Mark the flight for *key* (None: every flight) as invalidated.

        Waiters still get its value, but it must not be stored.
        """
        with self._lock:
            if key is None:
                for flight in self._flights.values():
                    flight.discarded = True
            else:
                current = self._flights.get(key)
                if current is not None:
                    current.discarded = True

    @staticmethod
    def wait(
        flight: _Flight[V],
        key: Hashable,
        timeout: float | None = DEFAULT_WAIT_TIMEOUT,
    ) -> V:
        """Block until *flight* ends; return its value or raise its error.

        Raises:
            ReentrantLoadError: if waiting would deadlock.
            LoadTimeout: if *flight* did not end within *timeout* seconds.
            _Abandoned: if the owner was interrupted (the caller retries).
        """
        owner = flight.owner
        if isinstance(owner, asyncio.Task) and owner.get_loop() is _loop():
            # Blocking this thread would freeze the event loop that has to
            # run the load: a deadlock the wait-for graph cannot see.
            raise ReentrantLoadError(
                f"a blocking call waits for key {key!r}, which a task of "
                f"the event loop running in this thread is loading; use the "
                f"async API from coroutines"
            )
        me = threading.get_ident()
        _enter_wait(me, flight, key)
        try:
            return flight.future.result(timeout)
        except concurrent.futures.TimeoutError:
            if flight.future.done():
                # The loader's own TimeoutError, or an end just in time.
                return flight.future.result()
            raise _timed_out(key, timeout) from None
        finally:
            _exit_wait(me)

    @staticmethod
    async def wait_async(
        flight: _Flight[V],
        key: Hashable,
        timeout: float | None = DEFAULT_WAIT_TIMEOUT,
    ) -> V:
        """Await the end of *flight*; the asyncio twin of `wait`."""
        me = current_owner()
        _enter_wait(me, flight, key)
        try:
            # The flight's future is running, so the cancellation that
            # wait_for sends on timeout never reaches the load.
            return await asyncio.wait_for(
                asyncio.wrap_future(flight.future), timeout
            )
        # Distinct classes before Python 3.11.
        except (TimeoutError, asyncio.TimeoutError):
            if flight.future.done():
                return flight.future.result()
            raise _timed_out(key, timeout) from None
        finally:
            _exit_wait(me)
