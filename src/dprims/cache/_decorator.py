"""The `cached` decorator: single-flight, stale-while-revalidate, jitter.

One decorator serves plain functions and asyncio coroutine functions. The
work is split in three layers:

- an *ops* object adapts the store (a `TTLCache`, any in-process
  `CacheStore`, or a shared `str` key store such as Redis) to reading and
  writing `_Entry` envelopes, and knows the time base of those envelopes;
- `_Core` holds the policy (freshness, stale windows, negative caching,
  refreshes) and the in-flight loads;
- the wrapper is a small closure whose hit path, for an in-process
  `TTLCache`, is one ``dict.get``, one clock reading and one comparison.

Status: stable.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import itertools
import json
import logging
import math
import os
import queue
import random
import threading
from typing import (
    TYPE_CHECKING,
    Any,
    ParamSpec,
    Protocol,
    TypeVar,
    cast,
)

from dprims._clock import SYSTEM_CLOCK, Clock
from dprims.cache._base import STORE_DOWN
from dprims.cache._flight import (
    DEFAULT_WAIT_TIMEOUT,
    SingleFlight,
    _Abandoned,
    _Flight,
    check_wait_timeout,
)
from dprims.cache._ttl import (
    TTLCache,
    _peek,
    check_maxsize,
    check_ttl,
    unhashable,
)
from dprims.errors import ConfigurationError


if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Hashable

    from dprims.cache._base import CacheStore

    _KeyMaker = Callable[[tuple[object, ...], dict[str, object]], Hashable]


__all__ = ()

P = ParamSpec("P")
R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)

_log = logging.getLogger("dprims.cache")


class CachedFunction(Protocol[P, R_co]):
    """**Protocol:** a function wrapped by `cached`, with its cache controls.

    Calling it returns what the function returns (for a coroutine function,
    a coroutine), from the cache when it can.

    .. versionadded:: 0.1
    """

    @property
    def cache(self) -> CacheStore[Any, Any]:
        """The store holding the results (its `CacheStore.stats` count hits).

        A private `TTLCache` holds the decorator's own envelopes as
        values, so read results through the function, not the store.
        """
        ...

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R_co:
        """Return the cached result for these arguments, loading on a miss."""
        ...

    def invalidate(self, *args: object, **kwargs: object) -> bool:
        """Drop the result for these arguments; return whether there was one.

        A load for them that is in flight still answers its waiters, but its
        result is not stored.
        """
        ...

    async def invalidate_async(self, *args: object, **kwargs: object) -> bool:
        """Drop the result for these arguments, through the async store API."""
        ...

    def cache_clear(self) -> None:
        """Drop every result of the store (all functions sharing it)."""
        ...

    def dropped_refreshes(self) -> int:
        """Return how many background refreshes were skipped.

        A refresh is skipped when one already runs for the key, or when
        the bounded pool of refresh workers (tasks, for coroutine
        functions) is busy; callers keep getting the stale value.
        """
        ...

    async def cache_clear_async(self) -> None:
        """Drop every result, through the async store API."""
        ...


class _Entry:
    """What the decorator stores: a value (or a cached error) and its times.

    *fresh_until* is in the time base of the ops (monotonic in-process,
    epoch seconds in shared stores); *delta* is how long the load took,
    which probabilistic early refresh scales by.
    """

    __slots__ = ("delta", "error", "fresh_until", "value")

    def __init__(
        self,
        value: object,
        fresh_until: float,
        delta: float,
        error: BaseException | None = None,
    ) -> None:
        self.value = value
        self.fresh_until = fresh_until
        self.delta = delta
        self.error = error

    def __repr__(self) -> str:
        return (
            f"_Entry(value={self.value!r}, fresh_until={self.fresh_until!r}, "
            f"error={self.error!r})"
        )

    def result(self) -> object:
        """Return the value, or raise the cached error."""
        if self.error is None:
            return self.value
        # A fresh traceback per raise: reusing one would grow it forever.
        raise self.error.with_traceback(None)


#: What a read returns when the shared store just failed: a miss (it is
#: never fresh nor stale) after which nothing is written back, since the
#: write would only wait for the same outage again.
_OFFLINE = _Entry(None, -math.inf, 0.0)


# ----------------------------------------------------------------- stores


class _Ops:
    """Reads and writes `_Entry` envelopes in an in-process store."""

    __slots__ = ("count_load", "now", "store")

    def __init__(self, store: CacheStore[Any, Any], clock: Clock) -> None:
        self.store = store
        self.now: Callable[[], float] = clock.monotonic
        # Shared stores count loads through their own get_or_load; the
        # decorator loads itself, so it reports them (see CacheStats).
        self.count_load: Callable[[bool], None] | None = getattr(
            store, "_count_load", None
        )

    def read(self, key: Hashable) -> _Entry | None:
        entry = self.store.get(key)
        return entry if isinstance(entry, _Entry) else None

    def peek(self, key: Hashable) -> _Entry | None:
        """Read again after joining a flight (uncounted where we can)."""
        return self.read(key)

    def write(self, key: Hashable, entry: _Entry, ttl: float) -> None:
        self.store.set(key, entry, ttl)

    def delete(self, key: Hashable) -> bool:
        return self.store.delete(key)

    def clear(self) -> None:
        self.store.clear()

    def loaded(self, *, ok: bool) -> None:
        """Count a loader call in the store's stats, where it has a hook."""
        if self.count_load is not None:
            self.count_load(ok)

    async def read_async(self, key: Hashable) -> _Entry | None:
        get_async = getattr(self.store, "get_async", None)
        if get_async is None:
            return self.read(key)
        return self._decode(await get_async(key))

    async def write_async(
        self, key: Hashable, entry: _Entry, ttl: float
    ) -> None:
        set_async = getattr(self.store, "set_async", None)
        if set_async is None:
            self.write(key, entry, ttl)
        else:
            await set_async(key, self._encode(entry), ttl)

    async def delete_async(self, key: Hashable) -> bool:
        delete_async = getattr(self.store, "delete_async", None)
        if delete_async is None:
            return self.delete(key)
        return bool(await delete_async(key))

    async def clear_async(self) -> None:
        clear_async = getattr(self.store, "clear_async", None)
        if clear_async is None:
            self.clear()
        else:
            await clear_async()

    def _encode(self, entry: _Entry) -> object:
        return entry

    def _decode(self, raw: object) -> _Entry | None:
        return raw if isinstance(raw, _Entry) else None


class _LocalOps(_Ops):
    """Ops for a `TTLCache`: its clock, its counters, no async detour."""

    __slots__ = ("cache",)

    def __init__(self, cache: TTLCache[Any, Any]) -> None:
        self.store = cache
        self.cache = cache
        self.now = cache._timer
        self.count_load = None

    def read(self, key: Hashable) -> _Entry | None:
        item = self.cache._hit(key)
        return None if item is None else cast("_Entry", item[0])

    def peek(self, key: Hashable) -> _Entry | None:
        item = self.cache._peek_live(key)
        return None if item is None else cast("_Entry", item[0])

    def loaded(self, *, ok: bool) -> None:
        next(self.cache._loads if ok else self.cache._load_errors)

    async def read_async(self, key: Hashable) -> _Entry | None:
        return self.read(key)

    async def write_async(
        self, key: Hashable, entry: _Entry, ttl: float
    ) -> None:
        self.write(key, entry, ttl)

    async def delete_async(self, key: Hashable) -> bool:
        return self.delete(key)

    async def clear_async(self) -> None:
        self.clear()


class _JsonOps(_Ops):
    """Ops for a shared `str` key store: JSON-friendly envelopes, epoch time.

    An envelope is ``[value, fresh_until, delta]``, or for a cached error
    ``[null, fresh_until, delta, index, args]`` where *index* points into
    the decorator's *negative_exceptions* and *args* is the list of the
    exception's arguments (its message alone when they are not plain JSON
    values); the error is re-created as ``negative_exceptions[index](*args)``
    or, if that constructor refuses them, as an instance of the same class
    with those ``args`` that skips ``__init__``. Anything else read back (an
    older format, another writer) is a miss.
    """

    __slots__ = ("errors", "get_async", "get_sync")

    def __init__(
        self,
        store: CacheStore[Any, Any],
        clock: Clock,
        errors: tuple[type[Exception], ...],
    ) -> None:
        super().__init__(store, clock)
        # Envelopes cross machines: their times are epoch seconds.
        self.now = clock.time
        self.errors = errors
        # Stores that can tell an outage from a miss (RedisCache,
        # TieredCache) answer STORE_DOWN, so nothing is written back.
        self.get_sync: Callable[[Hashable], object] = getattr(
            store, "_get_or_down", store.get
        )
        self.get_async: Callable[[Hashable], Awaitable[object]] | None = (
            getattr(store, "_get_or_down_async", None)
            or getattr(store, "get_async", None)
        )

    def read(self, key: Hashable) -> _Entry | None:
        raw = self.get_sync(key)
        return _OFFLINE if raw is STORE_DOWN else self._decode(raw)

    async def read_async(self, key: Hashable) -> _Entry | None:
        if self.get_async is None:
            return self.read(key)
        raw = await self.get_async(key)
        return _OFFLINE if raw is STORE_DOWN else self._decode(raw)

    def peek(self, key: Hashable) -> _Entry | None:  # noqa: ARG002 -- same signature as _Ops.peek
        """Skip the re-read: in a shared store it costs a round trip."""
        return None

    def write(self, key: Hashable, entry: _Entry, ttl: float) -> None:
        try:
            self.store.set(key, self._encode(entry), ttl)
        except (TypeError, ValueError) as exc:
            raise _unencodable(entry, exc) from exc

    async def write_async(
        self, key: Hashable, entry: _Entry, ttl: float
    ) -> None:
        try:
            await super().write_async(key, entry, ttl)
        except (TypeError, ValueError) as exc:
            raise _unencodable(entry, exc) from exc

    def _encode(self, entry: _Entry) -> object:
        if entry.error is None:
            return [entry.value, entry.fresh_until, entry.delta]
        index = next(
            i
            for i, cls in enumerate(self.errors)
            if isinstance(entry.error, cls)
        )
        args = entry.error.args
        if not all(
            isinstance(arg, (str, int, float, bool)) or arg is None
            for arg in args
        ):
            args = (str(entry.error),)
        return [None, entry.fresh_until, entry.delta, index, list(args)]

    def _decode(self, raw: object) -> _Entry | None:
        if not isinstance(raw, list) or len(raw) not in {3, 5}:
            return None
        fresh_until, delta = raw[1], raw[2]
        if not isinstance(fresh_until, (int, float)) or not isinstance(
            delta, (int, float)
        ):
            return None
        if len(raw) == 3:
            return _Entry(raw[0], fresh_until, delta)
        index, args = raw[3], raw[4]
        if not isinstance(index, int) or not 0 <= index < len(self.errors):
            return None
        if not isinstance(args, list):
            args = [args]  # written by 0.1 as the message alone
        error = _recreate(self.errors[index], args)
        return (
            None if error is None else _Entry(None, fresh_until, delta, error)
        )


def _recreate(cls: type[Exception], args: list[object]) -> Exception | None:
    """Return a *cls* error with *args*, or None (a miss) if impossible.

    The constructor may take other arguments than ``args`` holds (a
    ``NotFound(sku, reason)`` whose message is built from them); then the
    instance is made without ``__init__``, with ``args`` set, as `pickle`
    does.
    """
    with contextlib.suppress(Exception):  # its constructor wants other args
        return cls(*args)
    try:
        error = cls.__new__(cls)
        error.args = tuple(args)
    except Exception:  # an exotic __new__: a miss, so the loader runs
        return None
    return error


def _unencodable(entry: _Entry, exc: Exception) -> Exception:
    """Return *exc* retold for the cached result rather than its envelope."""
    cause = exc.__cause__ if exc.__cause__ is not None else exc
    culprit = entry.error if entry.error is not None else entry.value
    return type(exc)(
        f"cannot store a result of type {type(culprit).__name__} in the "
        f"shared cache: {cause}; nothing was written"
    )


# ------------------------------------------------------------------- keys

#: Separates positional from keyword arguments in tuple keys; a private
#: object, so no argument value can ever equal it.
_KWARGS_MARK = object()


def _tuple_key(
    args: tuple[object, ...], kwargs: dict[str, object]
) -> Hashable:
    if not kwargs:
        return args
    return (*args, _KWARGS_MARK, *sorted(kwargs.items()))


def _no_json(value: object) -> object:
    raise TypeError(
        f"cannot build a str cache key from an argument of type "
        f"{type(value).__name__}; pass key= to cached()"
    )


def _json(value: object) -> str:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), default=_no_json
    )


def _key_builder(
    key: Callable[..., Hashable] | None,
    namespace: str | None,
    *,
    str_keys: bool,
) -> Callable[[tuple[object, ...], dict[str, object]], Hashable]:
    """Return the function that turns call arguments into a store key."""
    if str_keys:

        def str_key(
            args: tuple[object, ...], kwargs: dict[str, object]
        ) -> str:
            if key is not None:
                base = key(*args, **kwargs)
                text = base if isinstance(base, str) else _json(base)
            elif kwargs:
                text = f"{_json(args)};{_json(kwargs)}"
            else:
                text = _json(args)
            return f"{namespace}:{text}"

        return str_key
    if key is None and namespace is None:
        return _tuple_key
    if key is None:
        return lambda args, kwargs: (namespace, _tuple_key(args, kwargs))
    user_key = key
    if namespace is None:
        return lambda args, kwargs: user_key(*args, **kwargs)
    return lambda args, kwargs: (namespace, user_key(*args, **kwargs))


def _hashable(value: object) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _key_error(
    key: object,
    args: tuple[object, ...],
    kwargs: dict[str, object],
    *,
    from_args: bool,
) -> TypeError:
    """Return the error for an unhashable key, naming the argument at fault."""
    if from_args:
        for index, arg in enumerate(args):
            if not _hashable(arg):
                return TypeError(
                    f"cache keys must be hashable, got positional argument "
                    f"{index} of type {type(arg).__name__}; pass key= to "
                    f"cached() to build a hashable key"
                )
        for name, arg in kwargs.items():
            if not _hashable(arg):
                return TypeError(
                    f"cache keys must be hashable, got keyword argument "
                    f"{name!r} of type {type(arg).__name__}; pass key= to "
                    f"cached() to build a hashable key"
                )
    return unhashable(key)


# --------------------------------------------------------------- refreshes

#: Worker threads shared by every decorated function's background
#: refreshes, and how many refreshes may wait for one: a burst of stale
#: keys must not start a thread each.
_REFRESH_WORKERS = 4
_REFRESH_QUEUE = 64
#: Refresh tasks a coroutine function runs at once.
_REFRESH_TASKS = 16


class _Refresher:
    """A small pool of daemon threads, started lazily, that run refreshes."""

    __slots__ = ("_lock", "_queue", "_workers")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: queue.Queue[Callable[[], None]] = queue.Queue(
            _REFRESH_QUEUE
        )
        self._workers = 0

    def __repr__(self) -> str:
        return (
            f"_Refresher(workers={self._workers}, "
            f"queued={self._queue.qsize()})"
        )

    def full(self) -> bool:
        """Return whether a new refresh would be dropped."""
        return self._queue.full()

    def submit(self, job: Callable[[], None]) -> bool:
        """Queue *job*; return False (dropped) if the queue is full."""
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            return False
        if self._workers < _REFRESH_WORKERS:
            with self._lock:
                if self._workers < _REFRESH_WORKERS:
                    self._workers += 1
                    threading.Thread(
                        target=self._run,
                        name=f"dprims-cache-refresh-{self._workers}",
                        daemon=True,
                    ).start()
        return True

    def wait_idle(self, timeout: float) -> bool:
        """Wait up to *timeout* seconds for every queued refresh to end."""
        tasks = self._queue
        with tasks.all_tasks_done:
            return tasks.all_tasks_done.wait_for(
                lambda: not tasks.unfinished_tasks, timeout
            )

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            try:
                job()
            except Exception:  # pragma: no cover -- jobs log their errors
                _log.exception("cache.refresh_failed")
            finally:
                self._queue.task_done()

    def _after_fork(self) -> None:
        # The child has none of the parent's threads: start afresh.
        self.__init__()  # type: ignore[misc]  # re-initialise in place


_REFRESHER = _Refresher()
if hasattr(os, "register_at_fork"):  # pragma: no branch -- not on Windows
    os.register_at_fork(after_in_child=_REFRESHER._after_fork)


# ------------------------------------------------------------------ policy


class _Core:
    """The policy and the in-flight loads of one decorated function."""

    __slots__ = (
        "beta",
        "dropped",
        "flights",
        "func",
        "jitter",
        "keep",
        "negative_exceptions",
        "negative_ttl",
        "ops",
        "stale_if_error",
        "stale_ttl",
        "tasks",
        "ttl",
        "wait_timeout",
    )

    def __init__(
        self,
        func: Callable[..., Any],
        ops: _Ops,
        *,
        ttl: float,
        stale_ttl: float,
        stale_if_error: float,
        jitter: float,
        beta: float,
        negative_ttl: float | None,
        negative_exceptions: tuple[type[Exception], ...],
        wait_timeout: float | None,
    ) -> None:
        self.func = func
        self.wait_timeout = wait_timeout
        self.ops = ops
        self.ttl = ttl
        self.stale_ttl = stale_ttl
        self.stale_if_error = stale_if_error
        # The store keeps an entry past its freshness for as long as some
        # window may still serve it.
        self.keep = max(stale_ttl, stale_if_error)
        self.jitter = jitter
        self.beta = beta
        self.negative_ttl = negative_ttl
        self.negative_exceptions = negative_exceptions
        self.flights: SingleFlight[object] = SingleFlight()
        # Background refresh tasks, held so they are not garbage collected.
        self.tasks: set[asyncio.Task[None]] = set()
        self.dropped = itertools.count()

    def __repr__(self) -> str:
        return f"_Core(func={self.func!r}, ttl={self.ttl})"

    # -- pure decisions

    def early(self, entry: _Entry, now: float) -> bool:
        """Return whether XFetch says to refresh this fresh entry now."""
        return (
            now - entry.delta * self.beta * math.log(1.0 - random.random())
            >= entry.fresh_until
        )

    def make_entry(
        self, value: object, started: float, now: float
    ) -> tuple[_Entry, float]:
        """Return the entry for a loaded *value* and its store TTL."""
        delta = max(0.0, now - started)
        if value is None and self.negative_ttl is not None:
            return _Entry(
                None, now + self.negative_ttl, delta
            ), self.negative_ttl
        fresh = self.ttl
        if self.jitter:
            # Only ever shorter: ttl stays the bound on how old a value is.
            fresh *= 1.0 - self.jitter * random.random()
        return _Entry(value, now + fresh, delta), fresh + self.keep

    def error_entry(
        self, exc: Exception, started: float, now: float
    ) -> tuple[_Entry, float] | None:
        """Return the negative entry for *exc*, or None if it is not cached."""
        if self.negative_ttl is None or not isinstance(
            exc, self.negative_exceptions
        ):
            return None
        delta = max(0.0, now - started)
        return (
            _Entry(None, now + self.negative_ttl, delta, exc),
            self.negative_ttl,
        )

    @staticmethod
    def superseded(
        done: _Entry | None, stale: _Entry | None, now: float, *, force: bool
    ) -> bool:
        """Return whether *done*, read just before loading, makes it moot.

        A plain load is moot when a fresh entry is there. A refresh (which
        runs while the entry is still usable) is moot when the entry is no
        longer the one that triggered it: another refresh got there first.
        """
        if done is None:
            return False
        if not force:
            return now < done.fresh_until
        return (
            stale is not None
            and done.error is None
            and done.fresh_until > stale.fresh_until
        )

    def usable_stale(self, stale: _Entry | None, now: float) -> bool:
        """Return whether *stale* may answer for a failed load."""
        return (
            stale is not None
            and stale.error is None
            and now < stale.fresh_until + self.stale_if_error
        )

    # -- threads

    def lookup(
        self, key: Hashable, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> object:
        """Answer a call the fast path could not: refresh, stale or load.

        The caller has checked that *key* is hashable.
        """
        entry = self.ops.read(key)
        if entry is not None:
            now = self.ops.now()
            if now < entry.fresh_until:
                if self.beta and self.early(entry, now):
                    self.refresh(key, args, kwargs, entry)
                return entry.result()
            if (
                entry.error is None
                and now < entry.fresh_until + self.stale_ttl
            ):
                self.refresh(key, args, kwargs, entry)
                return entry.value
        while True:
            flight, leader = self.flights.join(key, threading.get_ident())
            if leader:
                return self.lead(key, args, kwargs, flight, entry, force=False)
            try:
                return SingleFlight.wait(flight, key, self.wait_timeout)
            except _Abandoned:
                continue

    def lead(
        self,
        key: Hashable,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        flight: _Flight[object],
        stale: _Entry | None,
        *,
        force: bool,
    ) -> object:
        """Load *key* as the leader of *flight* and end the flight."""
        try:
            value = self._load(key, args, kwargs, flight, stale, force=force)
        except BaseException as exc:
            self.flights.fail(key, flight, exc)
            raise
        self.flights.resolve(key, flight, value)
        return value

    def _load(
        self,
        key: Hashable,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        flight: _Flight[object],
        stale: _Entry | None,
        *,
        force: bool,
    ) -> object:
        ops = self.ops
        # A load that ended between our read and our flight has stored its
        # entry: answer with it rather than load again.
        done = None if stale is _OFFLINE else ops.peek(key)
        if self.superseded(done, stale, ops.now(), force=force):
            return cast("_Entry", done).result()
        started = ops.now()
        try:
            value = self.func(*args, **kwargs)
        except Exception as exc:
            ops.loaded(ok=False)
            now = ops.now()
            negative = self.error_entry(exc, started, now)
            if negative is not None:
                if stale is not _OFFLINE:
                    self._store(key, flight, *negative)
                raise
            if stale is not None and self.usable_stale(stale, now):
                _log.warning(
                    "cache.stale_if_error",
                    extra={"cache_key": repr(key), "error": repr(exc)},
                )
                return stale.value
            raise
        ops.loaded(ok=True)
        entry, ttl = self.make_entry(value, started, ops.now())
        # After a failed read, a write would only wait for the same outage.
        if stale is not _OFFLINE:
            self._store(key, flight, entry, ttl)
        return value

    def _store(
        self, key: Hashable, flight: _Flight[object], entry: _Entry, ttl: float
    ) -> None:
        if flight.discarded:
            return
        self.ops.write(key, entry, ttl)
        # Invalidated while we wrote: undo, so no stale value survives.
        if flight.is_discarded():
            self.ops.delete(key)

    def refresh(
        self,
        key: Hashable,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        stale: _Entry,
    ) -> None:
        """Queue one background refresh of *key*, if none runs or waits.

        Refreshes run on a small shared pool of worker threads; when the
        key is already refreshing or the pool's queue is full, the refresh
        is dropped (and counted): callers keep the stale value meanwhile.
        """
        flight = (
            None if _REFRESHER.full() else self.flights.try_lead(key, None)
        )
        if flight is None:
            next(self.dropped)
            return
        job = functools.partial(
            self._refresh_thread, key, args, kwargs, flight, stale
        )
        if not _REFRESHER.submit(job):
            next(self.dropped)
            self.flights.fail(key, flight, _Abandoned())

    def _refresh_thread(
        self,
        key: Hashable,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        flight: _Flight[object],
        stale: _Entry,
    ) -> None:
        flight.owner = threading.get_ident()
        try:
            self.lead(key, args, kwargs, flight, stale, force=True)
        except Exception as exc:
            # Callers keep getting the stale value; nobody awaits this
            # thread, so the log line is the only place the error shows.
            _log.warning(
                "cache.refresh_failed",
                extra={"cache_key": repr(key), "error": repr(exc)},
            )

    # -- asyncio

    async def lookup_async(
        self, key: Hashable, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> object:
        """Answer a call of a coroutine function the fast path could not."""
        entry = await self.ops.read_async(key)
        if entry is not None:
            now = self.ops.now()
            if now < entry.fresh_until:
                if self.beta and self.early(entry, now):
                    self.refresh_async(key, args, kwargs, entry)
                return entry.result()
            if (
                entry.error is None
                and now < entry.fresh_until + self.stale_ttl
            ):
                self.refresh_async(key, args, kwargs, entry)
                return entry.value
        while True:
            flight, leader = self.flights.join(key, asyncio.current_task())
            if leader:
                return await self.lead_async(
                    key, args, kwargs, flight, entry, force=False
                )
            try:
                return await SingleFlight.wait_async(
                    flight, key, self.wait_timeout
                )
            except _Abandoned:
                continue

    async def lead_async(
        self,
        key: Hashable,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        flight: _Flight[object],
        stale: _Entry | None,
        *,
        force: bool,
    ) -> object:
        """Load *key* as the leader of *flight*; the asyncio twin of `lead`."""
        try:
            value = await self._load_async(
                key, args, kwargs, flight, stale, force=force
            )
        except BaseException as exc:
            self.flights.fail(key, flight, exc)
            raise
        self.flights.resolve(key, flight, value)
        return value

    async def _load_async(
        self,
        key: Hashable,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        flight: _Flight[object],
        stale: _Entry | None,
        *,
        force: bool,
    ) -> object:
        ops = self.ops
        if stale is _OFFLINE or isinstance(ops, _JsonOps):
            done = None  # see _JsonOps.peek
        elif isinstance(ops, _LocalOps):
            done = ops.peek(key)
        else:
            done = await ops.read_async(key)
        if self.superseded(done, stale, ops.now(), force=force):
            return cast("_Entry", done).result()
        started = ops.now()
        try:
            value = await self.func(*args, **kwargs)
        except Exception as exc:
            ops.loaded(ok=False)
            now = ops.now()
            negative = self.error_entry(exc, started, now)
            if negative is not None:
                if stale is not _OFFLINE:
                    await self._store_async(key, flight, *negative)
                raise
            if stale is not None and self.usable_stale(stale, now):
                _log.warning(
                    "cache.stale_if_error",
                    extra={"cache_key": repr(key), "error": repr(exc)},
                )
                return stale.value
            raise
        ops.loaded(ok=True)
        entry, ttl = self.make_entry(value, started, ops.now())
        if stale is not _OFFLINE:
            await self._store_async(key, flight, entry, ttl)
        return value

    async def _store_async(
        self, key: Hashable, flight: _Flight[object], entry: _Entry, ttl: float
    ) -> None:
        if flight.discarded:
            return
        await self.ops.write_async(key, entry, ttl)
        if flight.is_discarded():
            await self.ops.delete_async(key)

    def refresh_async(
        self,
        key: Hashable,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        stale: _Entry,
    ) -> None:
        """Start one background refresh of *key* as a task, if none runs.

        At most `_REFRESH_TASKS` refresh tasks run at once per function;
        past that, or when the key is already refreshing, the refresh is
        dropped (and counted).
        """
        flight = (
            None
            if len(self.tasks) >= _REFRESH_TASKS
            else self.flights.try_lead(key, None)
        )
        if flight is None:
            next(self.dropped)
            return
        task = asyncio.get_running_loop().create_task(
            self._refresh_task(key, args, kwargs, flight, stale)
        )
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _refresh_task(
        self,
        key: Hashable,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        flight: _Flight[object],
        stale: _Entry,
    ) -> None:
        flight.owner = asyncio.current_task()
        try:
            await self.lead_async(key, args, kwargs, flight, stale, force=True)
        except Exception as exc:
            _log.warning(
                "cache.refresh_failed",
                extra={"cache_key": repr(key), "error": repr(exc)},
            )


# --------------------------------------------------------------- decorator


def _check_fraction(name: str, value: float, *, upper: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not 0.0 <= value < upper:
        raise ConfigurationError(
            f"{name} must be >= 0 and < {upper}, got {value!r}"
        )
    return float(value)


def _check_window(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(
            f"{name} must be a number of seconds, got {type(value).__name__}"
        )
    if not 0.0 <= value < math.inf:
        raise ConfigurationError(
            f"{name} must be a finite number of seconds >= 0, got {value!r}"
        )
    return float(value)


def _check_exceptions(
    negative_exceptions: tuple[type[Exception], ...],
) -> tuple[type[Exception], ...]:
    classes = tuple(negative_exceptions)
    checked: tuple[object, ...] = classes
    for cls in checked:
        if not (isinstance(cls, type) and issubclass(cls, Exception)):
            raise TypeError(
                f"negative_exceptions must hold Exception subclasses, "
                f"got {cls!r}"
            )
    return classes


def cached(
    *,
    ttl: float,
    maxsize: int | None = None,
    key: Callable[..., Hashable] | None = None,
    cache: CacheStore[Any, Any] | None = None,
    namespace: str | None = None,
    stale_ttl: float = 0.0,
    stale_if_error: float = 0.0,
    jitter: float = 0.0,
    early_refresh: float = 0.0,
    negative_ttl: float | None = None,
    negative_exceptions: tuple[type[Exception], ...] = (),
    wait_timeout: float | None = DEFAULT_WAIT_TIMEOUT,
    clock: Clock = SYSTEM_CLOCK,
) -> Callable[[Callable[P, R]], CachedFunction[P, R]]:
    """Cache a function's results by its arguments, loading each key once.

    Works on plain functions and on ``async def`` functions alike; the
    wrapper keeps the signature (for type checkers too) and adds
    ``invalidate(*args, **kwargs)``, ``cache_clear()`` and ``cache``.

    - **Single-flight**: when N callers miss the same key together, the
      function runs once; the others wait (threads block, tasks await) and
      get its value. If it raises, all of them get the exception and
      nothing is stored.
    - **Stale-while-revalidate**: for *stale_ttl* seconds after a value
      turns stale, callers get it at once while one background refresh
      loads the new one. Refreshes run on a small shared pool of worker
      threads (for coroutine functions, on at most 16 tasks per function);
      when it is busy a refresh is dropped and counted in
      ``dropped_refreshes()``, and callers keep the stale value.
    - **Jitter**: each value stays fresh ``ttl * (1 - jitter * U)`` seconds
      with ``U`` uniform in [0, 1), so keys loaded together do not expire
      together; *ttl* stays the upper bound.
    - **Early refresh**: with *early_refresh* = beta > 0, a fresh hit may
      start a background refresh before expiry, the more likely the
      closer expiry is and the longer the last load took (XFetch).
    - **Negative caching**: with *negative_ttl*, a ``None`` result and the
      exceptions listed in *negative_exceptions* are cached for
      *negative_ttl* seconds (a cached exception is raised again on hits).
    - **Stale-if-error**: for *stale_if_error* seconds after a value turns
      stale, a failing load answers with that value (and logs a warning)
      instead of raising.
    - **Re-entrancy**: the function may call itself (or other cached
      functions) for other keys; asking for the key it is loading raises
      `ReentrantLoadError` instead of deadlocking.
    - **Bounded waits**: a caller waiting for another's load waits at most
      *wait_timeout* seconds, then gets `LoadTimeout`; the load goes on
      and stays the only one for its key.

    With a shared *cache*, a plain function needs a store with a blocking
    client and a coroutine function one with an asyncio client (a
    `TTLCache` serves both). Values come back from a JSON store as JSON
    gives them: a tuple result is returned as a list, dict keys as str.

    .. warning::
       ``wait_timeout=None`` waits without bound: a hung loader then hangs
       every caller of its key, and a loader that waits for its own key
       through a thread pool or a new task deadlocks.

    Keys are the positional arguments plus the sorted keyword arguments
    (``f(1)`` and ``f(x=1)`` are different keys), or what *key* returns
    when called with the same arguments; `CacheStore` says how keys are
    built for a shared *cache*.

    >>> from dprims.cache import cached
    >>> from dprims.testing import FakeClock
    >>> clock = FakeClock()
    >>> calls = []
    >>> @cached(ttl=60.0, maxsize=128, clock=clock)
    ... def price(sku: str) -> int:
    ...     calls.append(sku)
    ...     return 42
    >>> price("a"), price("a"), len(calls)
    (42, 42, 1)
    >>> clock.advance(60.0)
    >>> price("a"), len(calls)
    (42, 2)

    Args:
        ttl: seconds a result stays fresh (> 0).
        maxsize: the most results held by the private cache (default
            1024); not allowed with *cache*.
        key: builds the key from the call's arguments instead.
        cache: a store to share (a `TTLCache`, `RedisCache`,
            `TieredCache`, any `CacheStore`); its entries are namespaced.
        namespace: the key prefix in a shared *cache* (default
            ``module.qualname`` of the function). Required with *cache*
            for lambdas and functions defined inside other functions,
            whose qualname is not unique.
        stale_ttl: seconds after *ttl* during which the stale value is
            served while it refreshes in the background (0: off).
        stale_if_error: seconds after *ttl* during which a failing load is
            answered with the stale value (0: off).
        jitter: fraction of *ttl* taken off at random (0 <= jitter < 1).
        early_refresh: XFetch beta (0: off; 1 is the usual choice).
        negative_ttl: seconds to cache ``None`` results and
            *negative_exceptions* (None: ``None`` is cached like any value
            and exceptions never are).
        negative_exceptions: exception classes cached for *negative_ttl*.
            In a JSON store a cached exception keeps its class and
            ``args``; if its constructor does not take its ``args`` back,
            it is re-created without calling ``__init__`` (other
            attributes are lost).
        wait_timeout: seconds a caller waits for a load in flight in
            another thread or task (None: no bound).
        clock: the time source of the private cache and of shared stores
            (a `TTLCache` passed as *cache* keeps its own clock).

    Returns:
        A decorator that turns a function into a `CachedFunction`.

    Raises:
        ValueError: on a bad number: *ttl* <= 0, *maxsize* < 1, *jitter*
            outside [0, 1), a negative window, *wait_timeout* <= 0,
            *maxsize* together with *cache*, *negative_exceptions* without
            *negative_ttl*, or *cache* without *namespace* for a lambda or
            a nested function.
        TypeError: on an argument of the wrong type, or a *cache* whose
            client is asyncio for a plain function (blocking for a
            coroutine function); at call time, when the key is not
            hashable (the message names the argument and its type).
        LoadTimeout: at call time, when a load in flight took over
            *wait_timeout*.

    .. versionadded:: 0.1
    """
    ttl = check_ttl("ttl", ttl)
    stale_ttl = _check_window("stale_ttl", stale_ttl)
    stale_if_error = _check_window("stale_if_error", stale_if_error)
    jitter = _check_fraction("jitter", jitter, upper=1.0)
    beta = _check_fraction("early_refresh", early_refresh, upper=math.inf)
    if negative_ttl is not None:
        negative_ttl = check_ttl("negative_ttl", negative_ttl)
    errors = _check_exceptions(negative_exceptions)
    wait_timeout = check_wait_timeout(wait_timeout)
    if errors and negative_ttl is None:
        raise ConfigurationError(
            "negative_exceptions needs negative_ttl: how long to cache them"
        )
    if key is not None and not callable(key):
        raise TypeError(f"key must be callable, got {type(key).__name__}")
    if cache is not None:
        if maxsize is not None:
            raise ConfigurationError(
                "maxsize sizes the private cache; with cache= the shared "
                "store's own size applies, so pass one or the other"
            )
        for method in ("get", "set", "delete", "clear"):
            if not callable(getattr(cache, method, None)):
                raise TypeError(
                    f"cache must be a CacheStore (no {method}() on "
                    f"{type(cache).__name__})"
                )
    store: CacheStore[Any, Any] = (
        TTLCache(
            check_maxsize(1024 if maxsize is None else maxsize),
            ttl,
            clock=clock,
        )
        if cache is None
        else cache
    )
    str_keys = bool(getattr(store, "str_keys", False))
    if isinstance(store, TTLCache):
        ops: _Ops = _LocalOps(store)
    elif str_keys:
        ops = _JsonOps(store, clock, errors)
    else:
        ops = _Ops(store, clock)

    is_async_store = _is_async_store(store)

    def decorate(func: Callable[P, R]) -> CachedFunction[P, R]:
        is_coroutine = inspect.iscoroutinefunction(func)
        _check_mode(store, is_async_store, is_coroutine=is_coroutine)
        prefix = None
        if cache is not None or str_keys:
            prefix = (
                namespace
                if namespace is not None
                else _default_namespace(func)
            )
        make_key = _key_builder(key, prefix, str_keys=str_keys)
        core = _Core(
            func,
            ops,
            ttl=ttl,
            stale_ttl=stale_ttl,
            stale_if_error=stale_if_error,
            jitter=jitter,
            beta=beta,
            negative_ttl=negative_ttl,
            negative_exceptions=errors,
            wait_timeout=wait_timeout,
        )
        checked_key = _checked(make_key, str_keys=str_keys, user_key=key)
        if is_coroutine:
            wrapper = _async_wrapper(core, make_key, checked_key)
        else:
            wrapper = _sync_wrapper(core, make_key, checked_key)
        functools.update_wrapper(wrapper, func)
        _attach(wrapper, core, checked_key, store, is_async_store)
        return cast("CachedFunction[P, R]", wrapper)

    return decorate


def _default_namespace(func: Callable[..., Any]) -> str:
    qualname = getattr(func, "__qualname__", type(func).__qualname__)
    if "<lambda>" in qualname or "<locals>" in qualname:
        raise ConfigurationError(
            f"namespace= is required to share cache= with {qualname!r}: "
            f"the default namespace, module.qualname, is the same for "
            f"every lambda (or every function a factory makes) in "
            f"{func.__module__}, so their results would be mixed up; pass "
            f"a namespace unique to this function"
        )
    return f"{func.__module__}.{qualname}"


def _is_async_store(store: object) -> bool | None:
    """Return whether *store* needs asyncio (None: it serves both)."""
    remote = store
    if not hasattr(store, "_is_async"):
        # A TieredCache talks through its RedisCache.
        remote = getattr(store, "remote", store)
    flag = getattr(remote, "_is_async", None)
    return flag if isinstance(flag, bool) else None


def _check_mode(
    store: object, is_async_store: bool | None, *, is_coroutine: bool
) -> None:
    if is_async_store is None or is_async_store == is_coroutine:
        return
    if is_async_store:
        raise TypeError(
            f"cache={type(store).__name__} has an asyncio Redis client, "
            f"which a plain function cannot use: decorate an async def "
            f"function, or build the store on a blocking client"
        )
    raise TypeError(
        f"cache={type(store).__name__} has a blocking Redis client, which "
        f"would block the event loop of a coroutine function: build the "
        f"store on a redis.asyncio client"
    )


def _checked(
    make_key: _KeyMaker,
    *,
    str_keys: bool,
    user_key: Callable[..., Hashable] | None,
) -> _KeyMaker:
    """Return *make_key* plus a check that the key is hashable."""
    if str_keys:
        return make_key  # a str, or a TypeError from the JSON encoding

    def checked(
        args: tuple[object, ...], kwargs: dict[str, object]
    ) -> Hashable:
        key = make_key(args, kwargs)
        try:
            hash(key)
        except TypeError:
            raise _key_error(
                key, args, kwargs, from_args=user_key is None
            ) from None
        return key

    return checked


def _sync_wrapper(
    core: _Core,
    make_key: _KeyMaker,
    checked_key: _KeyMaker,
) -> Callable[..., Any]:
    lookup = core.lookup
    if not isinstance(core.ops, _LocalOps) or core.beta:
        # Nothing to gain from a fast path: the store does the I/O, or
        # every fresh hit must roll the early-refresh dice.
        def plain(*args: Any, **kwargs: Any) -> Any:
            return lookup(checked_key(args, kwargs), args, kwargs)

        return plain

    cache = core.ops.cache
    data_get = cache._data.get
    timer = cache._timer
    hits = cache._hits

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        key = make_key(args, kwargs)
        try:
            item = data_get(key)
        except TypeError:
            checked_key(args, kwargs)  # raises, naming the argument
            raise  # pragma: no cover -- checked_key raised already
        if item is not None:
            entry = item[0]
            if timer() < entry.fresh_until and entry.error is None:
                next(hits)
                return entry.value
        return lookup(key, args, kwargs)

    return wrapper


def _async_wrapper(
    core: _Core,
    make_key: _KeyMaker,
    checked_key: _KeyMaker,
) -> Callable[..., Any]:
    lookup = core.lookup_async
    if not isinstance(core.ops, _LocalOps) or core.beta:

        async def plain(*args: Any, **kwargs: Any) -> Any:
            return await lookup(checked_key(args, kwargs), args, kwargs)

        return plain

    cache = core.ops.cache
    data_get = cache._data.get
    timer = cache._timer
    hits = cache._hits

    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        key = make_key(args, kwargs)
        try:
            item = data_get(key)
        except TypeError:
            checked_key(args, kwargs)  # raises, naming the argument
            raise  # pragma: no cover -- checked_key raised already
        if item is not None:
            entry = item[0]
            if timer() < entry.fresh_until and entry.error is None:
                next(hits)
                return entry.value
        return await lookup(key, args, kwargs)

    return wrapper


def _attach(
    wrapper: Callable[..., Any],
    core: _Core,
    checked_key: _KeyMaker,
    store: CacheStore[Any, Any],
    is_async_store: bool | None,
) -> None:
    """Give *wrapper* its cache controls."""

    def refuse(method: str, *, is_async: bool) -> None:
        if is_async_store is not None and is_async_store != is_async:
            kind = "an asyncio" if is_async_store else "a blocking"
            other = method if is_async_store else method[: -len("_async")]
            raise TypeError(
                f"cache={type(store).__name__} has {kind} Redis client; "
                f"call {other}{'_async' if is_async_store else ''}() instead"
            )

    def invalidate(*args: Any, **kwargs: Any) -> bool:
        refuse("invalidate", is_async=False)
        key = checked_key(args, kwargs)
        core.flights.discard(key)
        return core.ops.delete(key)

    async def invalidate_async(*args: Any, **kwargs: Any) -> bool:
        refuse("invalidate_async", is_async=True)
        key = checked_key(args, kwargs)
        core.flights.discard(key)
        return await core.ops.delete_async(key)

    def cache_clear() -> None:
        refuse("cache_clear", is_async=False)
        core.flights.discard()
        core.ops.clear()

    async def cache_clear_async() -> None:
        refuse("cache_clear_async", is_async=True)
        core.flights.discard()
        await core.ops.clear_async()

    def dropped_refreshes() -> int:
        return _peek(core.dropped)

    controls = wrapper  # a function object takes attributes
    controls.invalidate = invalidate  # type: ignore[attr-defined]  # see CachedFunction
    controls.invalidate_async = invalidate_async  # type: ignore[attr-defined]  # see CachedFunction
    controls.cache_clear = cache_clear  # type: ignore[attr-defined]  # see CachedFunction
    controls.cache_clear_async = cache_clear_async  # type: ignore[attr-defined]  # see CachedFunction
    controls.dropped_refreshes = dropped_refreshes  # type: ignore[attr-defined]  # see CachedFunction
    controls.cache = store  # type: ignore[attr-defined]  # see CachedFunction
