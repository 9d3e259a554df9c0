"""A near cache in process memory in front of a shared `RedisCache`.

`TieredCache` reads from a local store first (a `TTLCache`, or any
`CacheStore`) and from Redis on a local miss, keeping a local copy. Writes
go to Redis and to the local store, and an invalidation is published on a
Redis pub/sub channel, so every *other* process that holds a local copy of
the key drops it.

Consistency model: a local copy can be stale for as long as an
invalidation takes to arrive (usually well under a millisecond on a LAN),
and, if an invalidation is lost, until the local entry's TTL ends. Lost
invalidations are limited to listener outages: whenever the listener
(re)subscribes after having been connected, it clears the whole local
store, since messages sent while it was away are gone (pub/sub does not
queue). Keep the local TTL short; it bounds the staleness of the worst
case.

Failure policy: the same as `RedisCache` (reads act as misses, writes and
invalidations are dropped and logged on ``dprims.cache.redis``); the
listener reconnects by itself with capped exponential back-off and logs on
``dprims.cache.tiered``.

Status: provisional.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import threading
from typing import TYPE_CHECKING, Any, TypeVar, cast

from dprims._redis import redis_errors
from dprims.cache._base import STORE_DOWN, CacheStats
from dprims.cache._flight import DEFAULT_WAIT_TIMEOUT
from dprims.cache.redis import RedisCache
from dprims.errors import BackendError


if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from types import TracebackType

    from typing_extensions import Self

    from dprims.cache._base import CacheStore


__all__ = ["TieredCache"]

logger = logging.getLogger(__name__)

V = TypeVar("V")

_MISSING: Any = object()
_POLL = 0.2  # seconds a listener blocks per read, so close() stays prompt
_BACKOFF_FIRST = 0.05
_BACKOFF_CAP = 2.0


class TieredCache:
    """Serve reads from process memory, share writes through Redis.

    A lookup checks *local* first, then *remote* (filling *local* on a
    remote hit). `set`, `delete` and `clear` write through to both and
    broadcast an invalidation on *channel*; the other processes' listeners
    drop their local copies. A process ignores its own messages (each
    instance has a random id from ``secrets.token_hex``).

    With a blocking Redis client the listener is a daemon thread started
    here; construction waits up to *start_timeout* seconds for its
    subscription, so the instance hears invalidations sent after it
    returns. With an asyncio client the listener is a task, started by
    ``async with`` or by the first ``*_async`` call. Call `close` (or
    `aclose`) when done, or use the instance as a context manager.

    A local fill that raced an invalidation of the same instance is
    dropped rather than stored, so a value read just before another
    process's write cannot outlive that write's invalidation here.

    Args:
        local: the near cache, usually ``TTLCache(maxsize=..., ttl=...)``
            with a TTL much shorter than *remote*'s.
        remote: the shared `RedisCache`.
        channel: the pub/sub channel of invalidations; every process
            sharing *remote*'s prefix must use the same one. Defaults to
            ``<remote prefix>:invalidations``.
        start_timeout: how long construction (or the asyncio start) waits
            for the subscription, in seconds. If Redis is unreachable the
            instance still works and the listener keeps retrying.

    Raises:
        TypeError: if *remote* is not a `RedisCache` or *channel* not a
            str.
        ValueError: if *channel* is empty or *start_timeout* <= 0.

    .. versionadded:: 0.1
    """

    __slots__ = (
        "_channel",
        "_closed",
        "_generation",
        "_id",
        "_listening",
        "_listening_async",
        "_local",
        "_lock",
        "_remote",
        "_seen",
        "_start_timeout",
        "_stats",
        "_stop",
        "_subscribed_once",
        "_task",
        "_thread",
    )

    def __init__(
        self,
        local: CacheStore[str, object],
        remote: RedisCache,
        *,
        channel: str | None = None,
        start_timeout: float = 5.0,
    ) -> None:
        if not isinstance(remote, RedisCache):
            raise TypeError(
                f"remote must be a RedisCache, got {type(remote).__name__}"
            )
        if channel is None:
            channel = f"{remote.prefix}:invalidations"
        if not isinstance(channel, str):
            raise TypeError(
                f"channel must be a str, got {type(channel).__name__}"
            )
        if not channel:
            raise ValueError("channel must be a non-empty string")
        if isinstance(start_timeout, bool) or not start_timeout > 0:
            raise ValueError(
                f"start_timeout must be a number > 0, got {start_timeout!r}"
            )
        self._local = local
        self._remote = remote
        self._channel = channel
        self._start_timeout = float(start_timeout)
        self._id = secrets.token_hex(8)
        self._lock = threading.Lock()
        self._generation = 0
        self._seen = 0
        self._stats = [0, 0, 0, 0]  # hits, misses, loads, load errors
        self._stop = threading.Event()
        self._listening = threading.Event()
        self._listening_async: asyncio.Event | None = None
        self._subscribed_once = False
        self._closed = False
        self._task: asyncio.Task[None] | None = None
        self._thread: threading.Thread | None = None
        if not remote._is_async:
            self._thread = threading.Thread(
                target=self._listen,
                name=f"dprims-tiered-{channel}",
                daemon=True,
            )
            self._thread.start()
            if not self._listening.wait(self._start_timeout):
                logger.warning(
                    "tiered cache listener not subscribed to %r after %s s; "
                    "continuing, it keeps retrying",
                    channel,
                    self._start_timeout,
                    extra={"event": "cache.tiered.start_timeout"},
                )

    # ------------------------------------------------------------ properties

    @property
    def str_keys(self) -> bool:
        """Whether keys must be ``str``: always true, as in `RedisCache`."""
        return True

    @property
    def local(self) -> CacheStore[str, object]:
        """The near cache in process memory."""
        return self._local

    @property
    def remote(self) -> RedisCache:
        """The shared `RedisCache`."""
        return self._remote

    @property
    def channel(self) -> str:
        """The pub/sub channel that carries invalidations."""
        return self._channel

    @property
    def listening(self) -> bool:
        """Whether the listener is subscribed right now."""
        return self._listening.is_set()

    @property
    def stats(self) -> CacheStats:
        """A snapshot of this instance's counters (see `CacheStats`).

        A hit is a lookup served without calling a loader, from either
        tier; *evictions* are the local store's. Each tier keeps its own
        counters too (``cache.local.stats``, ``cache.remote.stats``).
        """
        with self._lock:
            hits, misses, loads, load_errors = self._stats
        return CacheStats(
            hits=hits,
            misses=misses,
            loads=loads,
            load_errors=load_errors,
            evictions=self._local.stats.evictions,
        )

    # ----------------------------------------------------- invalidations

    def _message(self, key: str | None) -> str:
        body: dict[str, object] = {"origin": self._id}
        if key is None:
            body["all"] = True
        else:
            body["key"] = key
        return json.dumps(body, separators=(",", ":"))

    def _forget(self, key: str | None) -> None:
        """Drop *key* (None: everything) locally, voiding racing fills."""
        with self._lock:
            self._generation += 1
            if key is None:
                self._local.clear()
            else:
                self._local.delete(key)

    def _fill(
        self,
        key: str,
        value: object,
        generation: int,
        ttl: float | None = None,
    ) -> None:
        with self._lock:
            if generation == self._generation:
                self._local.set(key, value, self._local_ttl(ttl))

    def _on_subscribed(self) -> None:
        with self._lock:
            again = self._subscribed_once
            self._subscribed_once = True
        if again:
            # Messages published while we were away are lost for good.
            self._forget(None)
            logger.info(
                "tiered cache listener resubscribed to %r; local copies "
                "dropped",
                self._channel,
                extra={"event": "cache.tiered.resubscribed"},
            )
        self._listening.set()
        if self._listening_async is not None:
            self._listening_async.set()  # runs on the listener's own loop

    def _on_message(self, data: object) -> None:
        try:
            text = data.decode("utf-8") if isinstance(data, bytes) else data
            body = json.loads(cast("str", text))
            origin = body["origin"]
            key = None if body.get("all") else body["key"]
            if not isinstance(key, (str, type(None))):
                raise TypeError(type(key).__name__)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            logger.warning(
                "tiered cache ignored a malformed message on %r: %r",
                self._channel,
                exc,
                extra={"event": "cache.tiered.bad_message"},
            )
            return
        with self._lock:
            self._seen += 1
        if origin != self._id:
            self._forget(key)

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind in {"subscribe", b"subscribe"}:
            self._on_subscribed()
        elif kind in {"message", b"message"}:
            self._on_message(message.get("data"))

    def _lost(self, exc: BaseException) -> None:
        was_listening = self._listening.is_set()
        logger.log(
            logging.WARNING if was_listening else logging.DEBUG,
            "tiered cache listener lost %r, reconnecting: %s",
            self._channel,
            exc,
            extra={"event": "cache.tiered.listener_lost"},
        )
        self._listening.clear()
        if self._listening_async is not None:
            self._listening_async.clear()

    def _listen(self) -> None:
        delay = _BACKOFF_FIRST
        client = self._remote._client
        while not self._stop.is_set():
            pubsub = client.pubsub()  # no I/O until subscribe
            try:
                with redis_errors("SUBSCRIBE"):
                    pubsub.subscribe(self._channel)
                    while not self._stop.is_set():
                        message = pubsub.get_message(timeout=_POLL)
                        if message is not None:
                            self._dispatch(message)
                            delay = _BACKOFF_FIRST
            except Exception as exc:
                self._lost(exc)
                self._stop.wait(delay)
                delay = min(delay * 2, _BACKOFF_CAP)
            finally:
                with contextlib.suppress(Exception):
                    pubsub.close()
        self._listening.clear()

    def _publish(self, key: str | None) -> None:
        try:
            with redis_errors("PUBLISH"):
                self._remote._client.publish(self._channel, self._message(key))
        except BackendError as exc:
            self._remote._failed("publish", key, exc, write=True)

    async def _publish_async(self, key: str | None) -> None:
        try:
            with redis_errors("PUBLISH"):
                await self._remote._client.publish(
                    self._channel, self._message(key)
                )
        except BackendError as exc:
            self._remote._failed("publish", key, exc, write=True)

    def _count(self, index: int) -> None:
        with self._lock:
            self._stats[index] += 1

    def _count_load(self, ok: bool) -> None:
        """Count a load that `cached` ran through this store."""
        self._count(2 if ok else 3)

    def _get_or_down(self, key: str) -> object:
        """Return the value, None for a miss, or STORE_DOWN (for `cached`)."""
        self._remote._check_sync("get")
        value = self._local.get(key, _MISSING)
        if value is _MISSING:
            generation = self._generation
            value = self._remote._get_or_down(key)
            if value is None or value is STORE_DOWN:
                self._count(1)
                return value
            self._fill(key, value, generation)
        self._count(0)
        return value

    async def _get_or_down_async(self, key: str) -> object:
        """The asyncio twin of `_get_or_down`."""
        await self.start_async()
        value = self._local.get(key, _MISSING)
        if value is _MISSING:
            generation = self._generation
            value = await self._remote._get_or_down_async(key)
            if value is None or value is STORE_DOWN:
                self._count(1)
                return value
            self._fill(key, value, generation)
        self._count(0)
        return value

    def _local_ttl(self, ttl: float | None) -> float | None:
        # A local copy must not outlive a shorter per-call remote TTL, nor
        # live longer than the local store's own (short) default.
        if ttl is None:
            return None
        local_default = getattr(self._local, "ttl", None)
        if isinstance(local_default, (int, float)):
            return min(ttl, float(local_default))
        return ttl

    # ------------------------------------------------------- blocking API

    def get(self, key: str, default: object = None) -> object:
        """Return the value for *key* from memory, else Redis, else *default*.

        A value found in Redis is copied into the local store.

        Raises:
            TypeError: if *key* is not a str.
        """
        self._remote._check_sync("get")
        value = self._local.get(key, _MISSING)
        if value is _MISSING:
            generation = self._generation
            value = self._remote.get(key, _MISSING)
            if value is _MISSING:
                self._count(1)
                return default
            self._fill(key, value, generation)
        self._count(0)
        return value

    def set(self, key: str, value: object, ttl: float | None = None) -> None:
        """Store *value* in Redis and locally, and invalidate other copies.

        If Redis refuses the write (it is down), the local copy is dropped
        too, so this process does not keep a value no other process sees.

        Raises:
            TypeError: if *key* is not a str or the serializer cannot
                encode *value* (nothing is written anywhere).
            ValueError: if the serializer refuses *value* or *ttl* <= 0.
        """
        self._remote._check_sync("set")
        written = self._remote._set(key, value, ttl)
        with self._lock:
            self._generation += 1
            if written:
                self._local.set(key, value, self._local_ttl(ttl))
            else:
                self._local.delete(key)
        if written:
            self._publish(key)

    def delete(self, key: str) -> bool:
        """Remove *key* from Redis and memory, and invalidate other copies.

        Returns whether either tier held it.

        Raises:
            TypeError: if *key* is not a str.
        """
        self._remote._check_sync("delete")
        removed = self._remote.delete(key)
        with self._lock:
            self._generation += 1
            removed = self._local.delete(key) or removed
        self._publish(key)
        return removed

    def clear(self) -> None:
        """Remove every entry of the prefix in Redis, here and elsewhere."""
        self._remote._check_sync("clear")
        self._remote.clear()
        self._forget(None)
        self._publish(None)

    def __contains__(self, key: object) -> bool:
        """Return whether *key* is held locally or in Redis (no counting)."""
        self._remote._check_sync("contains")
        return key in self._local or key in self._remote

    def get_or_load(
        self,
        key: str,
        loader: Callable[[], V],
        *,
        ttl: float | None = None,
        wait_timeout: float | None = DEFAULT_WAIT_TIMEOUT,
    ) -> V:
        """Return the value for *key*, calling *loader* once on a miss.

        Looks in memory, then in Redis (see `RedisCache.get_or_load` for
        single-flight, *wait_timeout* and failure behaviour), and keeps a
        local copy, for no longer than *ttl* if one is given.

        Raises:
            TypeError: if *key* is not a str or the loaded value cannot be
                encoded.
            ReentrantLoadError: if *loader* needs *key* itself.
            Exception: whatever *loader* raises.
        """
        self._remote._check_sync("get_or_load")
        value = self._local.get(key, _MISSING)
        if value is not _MISSING:
            self._count(0)
            return cast("V", value)
        loaded = False

        def counted() -> V:
            nonlocal loaded
            loaded = True
            try:
                result = loader()
            except BaseException:
                self._count(3)
                raise
            self._count(2)
            return result

        generation = self._generation
        try:
            result = self._remote.get_or_load(
                key, counted, ttl=ttl, wait_timeout=wait_timeout
            )
        finally:
            self._count(1 if loaded else 0)
        self._fill(key, result, generation, ttl)
        return result

    # -------------------------------------------------------- asyncio API

    async def start_async(self) -> None:
        """Start the asyncio listener and wait for its subscription.

        Called for you by ``async with`` and by every ``*_async`` method;
        waits at most *start_timeout* seconds, then lets the listener keep
        retrying in the background.

        Raises:
            TypeError: if *remote* has a blocking client.
            RuntimeError: if the instance was closed.
        """
        if self._task is not None:
            return
        if not self._remote._is_async:
            raise TypeError(
                "this TieredCache has a blocking client; its listener "
                "thread is already running"
            )
        if self._closed:
            raise RuntimeError("this TieredCache is closed")
        self._listening_async = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(
            self._listen_async(),
            name=f"dprims-tiered-{self._channel}",
        )
        try:
            await asyncio.wait_for(
                self._listening_async.wait(), self._start_timeout
            )
        except asyncio.TimeoutError:
            logger.warning(
                "tiered cache listener not subscribed to %r after %s s; "
                "continuing, it keeps retrying",
                self._channel,
                self._start_timeout,
                extra={"event": "cache.tiered.start_timeout"},
            )

    async def _listen_async(self) -> None:
        delay = _BACKOFF_FIRST
        client = self._remote._client
        while True:
            pubsub = client.pubsub()  # no I/O until subscribe
            try:
                with redis_errors("SUBSCRIBE"):
                    await pubsub.subscribe(self._channel)
                    while True:
                        message = await pubsub.get_message(timeout=_POLL)
                        if message is not None:
                            self._dispatch(message)
                            delay = _BACKOFF_FIRST
            except Exception as exc:
                self._lost(exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _BACKOFF_CAP)
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.shield(pubsub.aclose())

    async def get_async(self, key: str, default: object = None) -> object:
        """Return the value for *key* (asyncio); same semantics as `get`.

        Raises:
            TypeError: if *key* is not a str.
        """
        await self.start_async()
        value = self._local.get(key, _MISSING)
        if value is _MISSING:
            generation = self._generation
            value = await self._remote.get_async(key, _MISSING)
            if value is _MISSING:
                self._count(1)
                return default
            self._fill(key, value, generation)
        self._count(0)
        return value

    async def set_async(
        self, key: str, value: object, ttl: float | None = None
    ) -> None:
        """Store *value* everywhere (asyncio); same semantics as `set`.

        Raises:
            TypeError: if *key* is not a str or *value* cannot be encoded.
            ValueError: if the serializer refuses *value* or *ttl* <= 0.
        """
        await self.start_async()
        written = await self._remote._set_async(key, value, ttl)
        with self._lock:
            self._generation += 1
            if written:
                self._local.set(key, value, self._local_ttl(ttl))
            else:
                self._local.delete(key)
        if written:
            await self._publish_async(key)

    async def delete_async(self, key: str) -> bool:
        """Remove *key* everywhere (asyncio); same semantics as `delete`.

        Raises:
            TypeError: if *key* is not a str.
        """
        await self.start_async()
        removed = await self._remote.delete_async(key)
        with self._lock:
            self._generation += 1
            removed = self._local.delete(key) or removed
        await self._publish_async(key)
        return removed

    async def clear_async(self) -> None:
        """Remove every entry everywhere (asyncio); same as `clear`."""
        await self.start_async()
        await self._remote.clear_async()
        self._forget(None)
        await self._publish_async(None)

    async def contains_async(self, key: object) -> bool:
        """Return whether *key* is held locally or in Redis (asyncio)."""
        await self.start_async()
        return key in self._local or await self._remote.contains_async(key)

    async def get_or_load_async(
        self,
        key: str,
        loader: Callable[[], Awaitable[V]],
        *,
        ttl: float | None = None,
        wait_timeout: float | None = DEFAULT_WAIT_TIMEOUT,
    ) -> V:
        """Return the value for *key*, awaiting *loader* once on a miss.

        Same semantics as `get_or_load`.

        Raises:
            TypeError: if *key* is not a str or the loaded value cannot be
                encoded.
            ReentrantLoadError: if *loader* needs *key* itself.
            Exception: whatever *loader* raises.
        """
        await self.start_async()
        value = self._local.get(key, _MISSING)
        if value is not _MISSING:
            self._count(0)
            return cast("V", value)
        loaded = False

        async def counted() -> V:
            nonlocal loaded
            loaded = True
            try:
                result = await loader()
            except BaseException:
                self._count(3)
                raise
            self._count(2)
            return result

        generation = self._generation
        try:
            result = await self._remote.get_or_load_async(
                key, counted, ttl=ttl, wait_timeout=wait_timeout
            )
        finally:
            self._count(1 if loaded else 0)
        self._fill(key, result, generation, ttl)
        return result

    # ------------------------------------------------------------ life cycle

    def close(self) -> None:
        """Stop the listener thread; the instance keeps working unshared.

        Safe to call more than once. With an asyncio client, use `aclose`.
        """
        self._closed = True
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(_POLL * 10)

    async def aclose(self) -> None:
        """Stop the listener task (asyncio); safe to call more than once."""
        self._closed = True
        self._stop.set()
        task = self._task
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._listening.clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        await self.start_async()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        if self._closed:
            state = "closed"
        elif self.listening:
            state = "listening"
        else:
            state = "not listening"
        return (
            f"TieredCache(channel={self._channel!r}, local={self._local!r}, "
            f"remote={self._remote!r}, {state})"
        )
