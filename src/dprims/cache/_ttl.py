"""An in-process, thread-safe TTL cache built on cachetools.

Reads never take a lock. Live items sit in a plain `dict` as
``(value, expires_at)`` tuples: a read is one ``dict.get`` (atomic under
the GIL, and internally locked on free-threaded builds) and one clock
reading, and a tuple is immutable, so a reader sees either the whole old
item or the whole new one. Writes take the lock and keep a cachetools
`~cachetools.TLRUCache` in step: it owns the expiry heap and the eviction
order, and it tells us (through `_Order.expire` and `_Order.popitem`)
which keys to drop from the dict.

Why `~cachetools.TLRUCache` and not `~cachetools.TTLCache`: any `set` may
carry its own TTL, and a TTLCache orders expiry by insertion, which is only
right when every item has the same TTL. A TLRU cache keeps an expiry heap
instead; with a constant time-to-use it behaves exactly as a TTLCache.

Status: stable.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import threading
import time
from typing import TYPE_CHECKING, Generic, TypeVar

import cachetools

from dprims._clock import SYSTEM_CLOCK, Clock
from dprims.cache._base import CacheStats
from dprims.cache._flight import (
    DEFAULT_WAIT_TIMEOUT,
    SingleFlight,
    _Abandoned,
    check_wait_timeout,
    current_owner,
)
from dprims.errors import ConfigurationError


if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable


__all__ = ()

K = TypeVar("K")
V = TypeVar("V")


def check_ttl(name: str, ttl: float) -> float:
    """Return *ttl* as a float, or raise if it is not a positive number."""
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)):
        raise TypeError(
            f"{name} must be a number of seconds, got {type(ttl).__name__}"
        )
    if not ttl > 0 or math.isinf(ttl):
        raise ConfigurationError(
            f"{name} must be a finite number of seconds > 0, got {ttl!r}"
        )
    return float(ttl)


def check_maxsize(maxsize: int) -> int:
    """Return *maxsize*, or raise if it is not an integer >= 1."""
    if isinstance(maxsize, bool) or not isinstance(maxsize, int):
        raise TypeError(
            f"maxsize must be an int, got {type(maxsize).__name__}"
        )
    if maxsize < 1:
        raise ConfigurationError(
            f"maxsize must be >= 1 (the number of items the cache holds), "
            f"got {maxsize!r}"
        )
    return maxsize


def unhashable(key: object) -> TypeError:
    """Return the error for a key that cannot be hashed, naming its type.

    For the tuple keys that `cached` builds, the culprit is the argument
    inside, so that is the type named.
    """
    if isinstance(key, tuple):
        for part in key:
            if not _hashable(part):
                return TypeError(
                    f"cache keys must be hashable, got an argument of type "
                    f"{type(part).__name__} in key {key!r}"
                )
    return TypeError(
        f"cache keys must be hashable, got a key of type "
        f"{type(key).__name__}: {key!r}"
    )


def _hashable(value: object) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _expires(_key: object, value: float, _now: float) -> float:
    # The order keeps each key's expiry time as its value (time-to-use).
    return value


class _Order(cachetools.TLRUCache[object, float]):
    """Expiry and eviction order for the keys of a `TTLCache`.

    Its values are expiry times; whatever it drops (expired or evicted)
    is dropped from the owner's dict too. Only called under the owner's
    lock.
    """

    def __init__(
        self,
        maxsize: int,
        timer: Callable[[], float],
        data: dict[object, object],
    ) -> None:
        super().__init__(maxsize, _expires, timer=timer)
        self.data = data
        self.evicted = 0

    def expire(self, time: float | None = None) -> list[tuple[object, float]]:
        expired = list(super().expire(time))
        for key, _ in expired:
            del self.data[key]
        self.evicted += len(expired)
        return expired

    def popitem(self) -> tuple[object, float]:
        key, expires = super().popitem()
        del self.data[key]
        self.evicted += 1
        return key, expires


class TTLCache(Generic[K, V]):
    """A thread-safe in-process cache whose items expire after *ttl* seconds.

    Built on cachetools: items expire *ttl* seconds after they were set (or
    after the *ttl* given to that `set`), and when *maxsize* live items are
    held, writing a new key evicts the least recently **written** one.
    Reads do not refresh recency: that keeps the hit path free of locks,
    and for a TTL cache the oldest write is the closest to expiry anyway.
    An item is expired from the instant ``clock.monotonic()`` reaches
    ``set time + ttl``; an expired item is never returned.

    Thread-safe: reads are lock-free, writes take one lock. `get_or_load`
    calls the loader once per key however many threads (or asyncio tasks,
    with `get_or_load_async`) miss it together.

    >>> from dprims.cache import TTLCache
    >>> from dprims.testing import FakeClock
    >>> clock = FakeClock()
    >>> cache = TTLCache(maxsize=100, ttl=30.0, clock=clock)
    >>> cache.set("user:1", {"name": "Ada"})
    >>> cache.get("user:1")
    {'name': 'Ada'}
    >>> clock.advance(30.0)
    >>> cache.get("user:1") is None
    True

    Args:
        maxsize: the most items held at once (>= 1).
        ttl: default time-to-live of an item, in seconds (> 0).
        clock: the time source; tests pass a ``FakeClock``.

    Raises:
        ValueError: if *maxsize* < 1 or *ttl* <= 0 (a
            ``ConfigurationError``).
        TypeError: if *maxsize* is not an int or *ttl* not a number.

    .. versionadded:: 0.1
    """

    __slots__ = (
        "__weakref__",
        "_clock",
        "_data",
        "_flights",
        "_hits",
        "_load_errors",
        "_loads",
        "_lock",
        "_maxsize",
        "_misses",
        "_order",
        "_timer",
        "_ttl",
    )

    def __init__(
        self,
        maxsize: int,
        ttl: float,
        *,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._maxsize = check_maxsize(maxsize)
        self._ttl = check_ttl("ttl", ttl)
        self._clock = clock
        # Skip one Python call per read on the real clock.
        self._timer: Callable[[], float] = (
            time.monotonic if clock is SYSTEM_CLOCK else clock.monotonic
        )
        self._data: dict[K, tuple[V, float]] = {}
        self._order = _Order(
            self._maxsize,
            self._timer,
            self._data,  # type: ignore[arg-type]  # K and V are erased there
        )
        self._lock = threading.Lock()
        self._flights: SingleFlight[V] = SingleFlight()
        # itertools.count increments in C, atomically (also on free-threaded
        # builds) and without a lock: counting costs the hit path nothing.
        self._hits = itertools.count()
        self._misses = itertools.count()
        self._loads = itertools.count()
        self._load_errors = itertools.count()

    def __repr__(self) -> str:
        return (
            f"TTLCache(maxsize={self._maxsize}, ttl={self._ttl}, "
            f"size={len(self._data)}, hit_ratio={self.stats.hit_ratio:.2f})"
        )

    @property
    def maxsize(self) -> int:
        """The most items the cache holds at once."""
        return self._maxsize

    @property
    def ttl(self) -> float:
        """The default time-to-live of an item, in seconds."""
        return self._ttl

    @property
    def str_keys(self) -> bool:
        """Whether keys must be ``str``; never here: any hashable key works."""
        return False

    @property
    def stats(self) -> CacheStats:
        """A snapshot of the counters (see `CacheStats`).

        Each counter is exact (``itertools.count`` increments atomically,
        on free-threaded builds too), but the counters are not read as one
        snapshot: a lookup that runs while this property is read may show
        in one counter and not yet in another.
        """
        return CacheStats(
            hits=_peek(self._hits),
            misses=_peek(self._misses),
            loads=_peek(self._loads),
            load_errors=_peek(self._load_errors),
            evictions=self._order.evicted,
        )

    def get(self, key: K, default: V | None = None) -> V | None:
        """Return the live value for *key*, or *default*.

        Lock-free; counts a hit or a miss.

        Raises:
            TypeError: if *key* is not hashable.
        """
        try:
            item = self._data.get(key)
        except TypeError:
            raise unhashable(key) from None
        if item is not None and self._timer() < item[1]:
            next(self._hits)
            return item[0]
        next(self._misses)
        return default

    def __contains__(self, key: object) -> bool:
        """Return whether *key* has a live value; counts no hit or miss."""
        try:
            item = self._data.get(key)  # type: ignore[arg-type]  # any key may be asked
        except TypeError:
            raise unhashable(key) from None
        return item is not None and self._timer() < item[1]

    def __len__(self) -> int:
        """Return the number of live items."""
        with self._lock:
            self._order.expire()
            return len(self._data)

    def set(self, key: K, value: V, ttl: float | None = None) -> None:
        """Store *value* under *key* for *ttl* seconds (None: the default).

        Setting a key replaces its value and its expiry. When the cache is
        full, expired items go first, then the least recently written.

        Raises:
            ValueError: if *ttl* is not > 0.
            TypeError: if *key* is not hashable.
        """
        seconds = self._ttl if ttl is None else check_ttl("ttl", ttl)
        try:
            hash(key)
        except TypeError:
            raise unhashable(key) from None
        with self._lock:
            self._store(key, value, seconds)

    def _store(self, key: K, value: V, seconds: float) -> None:
        # Under self._lock. The timer is frozen for the nested calls, so the
        # order and the dict agree on the expiry time.
        with self._order.timer as now:
            expires = now + seconds
            self._order[key] = expires
            self._data[key] = (value, expires)

    def delete(self, key: K) -> bool:
        """Remove *key*; return whether it had a live value.

        Raises:
            TypeError: if *key* is not hashable.
        """
        try:
            hash(key)
        except TypeError:
            raise unhashable(key) from None
        with self._lock:
            item = self._data.pop(key, None)
            if item is None:
                return False
            # cachetools removes an expired key and then raises KeyError
            # for it; either way it is gone, which is all we need.
            with contextlib.suppress(KeyError):
                del self._order[key]
            return self._timer() < item[1]

    def clear(self) -> None:
        """Remove every item (the counters keep running)."""
        with self._lock:
            self._data.clear()  # in place: decorators hold its .get
            self._order.clear()

    def get_or_load(
        self,
        key: K,
        loader: Callable[[], V],
        *,
        ttl: float | None = None,
        wait_timeout: float | None = DEFAULT_WAIT_TIMEOUT,
    ) -> V:
        """Return the value for *key*, calling *loader* once on a miss.

        Single-flight: concurrent misses of *key* call *loader* once, in the
        first thread; the others wait and get its value. If *loader*
        raises, every waiter gets the exception and nothing is stored. A
        waiter waits at most *wait_timeout* seconds.

        .. warning::
           ``wait_timeout=None`` waits without bound: a hung loader then
           hangs every caller of its key.

        Args:
            key: the key (hashable).
            loader: called without arguments on a miss.
            ttl: seconds the loaded value lives (None: the default).
            wait_timeout: seconds a waiter waits for another caller's load
                (None: no bound).

        Raises:
            ReentrantLoadError: if *loader* needs *key* itself (directly or
                through a cycle of loads).
            LoadTimeout: if the load in flight took over *wait_timeout*.
            TypeError: if *key* is not hashable.
        """
        seconds = self._ttl if ttl is None else check_ttl("ttl", ttl)
        wait_timeout = check_wait_timeout(wait_timeout)
        while True:
            item = self._hit(key)
            if item is not None:
                return item[0]
            flight, leader = self._flights.join(key, threading.get_ident())
            if not leader:
                try:
                    return SingleFlight.wait(flight, key, wait_timeout)
                except _Abandoned:
                    continue
            try:
                # A load that ended between our miss and our join has
                # stored its value: use it instead of loading again.
                item = self._peek_live(key)
                value = loader() if item is None else item[0]
            except BaseException as exc:
                if isinstance(exc, Exception):
                    next(self._load_errors)
                self._flights.fail(key, flight, exc)
                raise
            if item is None:
                next(self._loads)
                with self._lock:
                    self._store(key, value, seconds)
            self._flights.resolve(key, flight, value)
            return value

    async def get_or_load_async(
        self,
        key: K,
        loader: Callable[[], Awaitable[V]],
        *,
        ttl: float | None = None,
        wait_timeout: float | None = DEFAULT_WAIT_TIMEOUT,
    ) -> V:
        """Return the value for *key*, awaiting *loader* once on a miss.

        The asyncio twin of `get_or_load`: concurrent tasks (and threads)
        missing *key* share one loader call; a waiter waits at most
        *wait_timeout* seconds (None: no bound, see `get_or_load`).

        Raises:
            ReentrantLoadError: if *loader* needs *key* itself.
            LoadTimeout: if the load in flight took over *wait_timeout*.
            TypeError: if *key* is not hashable.
        """
        seconds = self._ttl if ttl is None else check_ttl("ttl", ttl)
        wait_timeout = check_wait_timeout(wait_timeout)
        while True:
            item = self._hit(key)
            if item is not None:
                return item[0]
            flight, leader = self._flights.join(key, current_owner())
            if not leader:
                try:
                    return await SingleFlight.wait_async(
                        flight, key, wait_timeout
                    )
                except _Abandoned:
                    continue
            try:
                item = self._peek_live(key)
                value = await loader() if item is None else item[0]
            except BaseException as exc:
                if isinstance(exc, Exception):
                    next(self._load_errors)
                self._flights.fail(key, flight, exc)
                raise
            if item is None:
                next(self._loads)
                with self._lock:
                    self._store(key, value, seconds)
            self._flights.resolve(key, flight, value)
            return value

    async def get_async(self, key: K, default: V | None = None) -> V | None:
        """Return the live value for *key*, or *default* (never suspends).

        The asyncio twins (`get_async`, `set_async`, `delete_async`,
        `clear_async`) make a `TTLCache` an `AsyncCacheStore`, so async
        code written against a shared store runs on it unchanged.
        """
        return self.get(key, default)

    async def set_async(
        self, key: K, value: V, ttl: float | None = None
    ) -> None:
        """Store *value* under *key*, as `set` does (never suspends)."""
        self.set(key, value, ttl)

    async def delete_async(self, key: K) -> bool:
        """Remove *key*, as `delete` does (never suspends)."""
        return self.delete(key)

    async def clear_async(self) -> None:
        """Remove every item, as `clear` does (never suspends)."""
        self.clear()

    def _hit(self, key: K) -> tuple[V, float] | None:
        """Return the live item and count a hit, or count a miss."""
        item = self._peek_live(key)
        next(self._misses if item is None else self._hits)
        return item

    def _peek_live(self, key: K) -> tuple[V, float] | None:
        try:
            item = self._data.get(key)
        except TypeError:
            raise unhashable(key) from None
        if item is not None and self._timer() < item[1]:
            return item
        return None


def _peek(counter: itertools.count[int]) -> int:
    # count has no read accessor; its repr is "count(N)" with N the next
    # value, i.e. the number of increments so far.
    return int(repr(counter)[6:-1])
