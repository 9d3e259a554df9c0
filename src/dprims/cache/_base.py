"""Cache value types and the store protocols every cache implements.

`CacheStore` (threads) and `AsyncCacheStore` (asyncio) are the contracts
that `TTLCache`, `RedisCache` and `TieredCache` follow, and that
`cached` needs from a store passed as ``cache=``.

Status: stable.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, TypeVar

import attrs


if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable


__all__ = ()

#: What a shared store's private ``_get_or_down`` returns when the backend
#: failed, so that `cached` can tell an outage from a miss.
STORE_DOWN: object = object()

# Named K in the docs (nitpick ignores it); contravariant as keys are only
# ever passed in.
K = TypeVar("K", contravariant=True)  # noqa: PLC0105
V = TypeVar("V")


@attrs.frozen
class CacheStats:
    """A snapshot of a cache's counters since it was created.

    *hits* and *misses* count lookups (`CacheStore.get`; ``in`` is not
    counted, and a `CacheStore.get_or_load` counts one of them); *loads*
    counts loader calls that returned a value and *load_errors* loader
    calls that raised (including the calls of functions decorated with
    `cached` over this store); *evictions*
    counts items the cache removed by itself (expired or pushed out because
    it was full), not those removed by ``delete`` or ``clear``.

    .. versionadded:: 0.1
    """

    hits: int = 0
    misses: int = 0
    loads: int = 0
    load_errors: int = 0
    evictions: int = 0

    @property
    def hit_ratio(self) -> float:
        """The share of lookups that were hits, from 0.0 to 1.0.

        It is 0.0 when there has been no lookup yet.
        """
        lookups = self.hits + self.misses
        return self.hits / lookups if lookups else 0.0


class CacheStore(Protocol[K, V]):
    """**Protocol:** a key-value cache usable by threads and by `cached`.

    Values expire after a time-to-live in seconds; ``ttl=None`` in `set`
    means the store's default TTL. No method blocks without bound except
    `get_or_load`, which waits for a loader (its own or a concurrent one).

    Keys: in-process stores accept any hashable key. Stores shared between
    processes (Redis, tiered) take ``str`` keys and say so with
    ``str_keys = True``. `cached` reads ``str_keys`` once, when it decorates
    a function, and builds keys accordingly:

    - ``str_keys`` false: the key is the tuple of positional arguments
      (plus the sorted keyword arguments), or what ``key=`` returns; with a
      shared ``cache=`` it is prefixed by the function's namespace as the
      tuple ``(namespace, key)``.
    - ``str_keys`` true: the key is ``"<namespace>:<args>"``, or
      ``"<namespace>:<args>;<kwargs>"`` when keyword arguments are given,
      where ``<namespace>`` defaults to ``module.qualname`` of the function
      (a lambda or a nested function must be given ``namespace=``) and ``<args>`` / ``<kwargs>`` are the compact JSON (sorted keys) of
      the positional arguments (an array) and keyword arguments (an
      object), so the same call builds the same key in every process;
      ``f("a", 2)`` gives ``'module.f:["a",2]'``. A ``key=`` callable that
      returns a ``str`` gives ``"<namespace>:<that str>"``, any other value
      is JSON-encoded. Arguments JSON cannot encode raise ``TypeError``
      (pass ``key=``).

    Values that `cached` stores in a ``str_keys`` store are JSON-friendly
    envelopes (lists of numbers, strings and the function's value), so a
    JSON serializer can encode them whenever the function's values are.

    .. versionadded:: 0.1
    """

    @property
    def str_keys(self) -> bool:
        """Whether the store takes only ``str`` keys (shared stores do)."""
        ...

    @property
    def stats(self) -> CacheStats:
        """A snapshot of the store's counters (see `CacheStats`)."""
        ...

    def get(self, key: K, default: V | None = None) -> V | None:
        """Return the live value for *key*, or *default* if absent/expired."""
        ...

    def set(self, key: K, value: V, ttl: float | None = None) -> None:
        """Store *value* under *key* for *ttl* seconds (None: the default)."""
        ...

    def delete(self, key: K) -> bool:
        """Remove *key*; return whether a live value was there."""
        ...

    def clear(self) -> None:
        """Remove every value of this store."""
        ...

    def __contains__(self, key: object) -> bool:
        """Return whether *key* has a live value (counts no hit or miss)."""
        ...

    def get_or_load(
        self,
        key: K,
        loader: Callable[[], V],
        *,
        ttl: float | None = None,
    ) -> V:
        """Return the value for *key*, calling *loader* once on a miss.

        Single-flight: concurrent misses of one key call *loader* once;
        the others wait and get its value. If *loader* raises, every
        waiter gets the exception and nothing is stored. The loaded value
        is stored for *ttl* seconds (None: the store's default). A loader
        that asks the same store for its own key raises an error instead
        of deadlocking.
        """
        ...


class AsyncCacheStore(Protocol[K, V]):
    """**Protocol:** the asyncio face of a cache; same semantics as `CacheStore`.

    Each coroutine does what the `CacheStore` method without ``_async``
    does; single-flight in `get_or_load_async` spans the tasks of the
    process (and, for stores that offer it, other processes).

    .. versionadded:: 0.1
    """

    @property
    def str_keys(self) -> bool:
        """Whether the store takes only ``str`` keys (shared stores do)."""
        ...

    async def get_async(self, key: K, default: V | None = None) -> V | None:
        """Return the live value for *key*, or *default* if absent/expired."""
        ...

    async def set_async(
        self, key: K, value: V, ttl: float | None = None
    ) -> None:
        """Store *value* under *key* for *ttl* seconds (None: the default)."""
        ...

    async def delete_async(self, key: K) -> bool:
        """Remove *key*; return whether a live value was there."""
        ...

    async def clear_async(self) -> None:
        """Remove every value of this store."""
        ...

    async def get_or_load_async(
        self,
        key: K,
        loader: Callable[[], Awaitable[V]],
        *,
        ttl: float | None = None,
    ) -> V:
        """Return the value for *key*, awaiting *loader* once on a miss."""
        ...
