"""A cache shared by processes, stored in Redis (standalone or Cluster).

`RedisCache` follows the same `CacheStore` / `AsyncCacheStore` contract as
the in-process `TTLCache`, on a blocking client (``redis.Redis``,
``redis.cluster.RedisCluster``) through the plain methods, or on an asyncio
client (``redis.asyncio.Redis``, ``redis.asyncio.cluster.RedisCluster``)
through the ``*_async`` methods.

Failure policy (a cache must not take the service down with it): when Redis
fails or times out, reads behave as misses (`RedisCache.get` returns the
default, `RedisCache.get_or_load` calls the loader) and writes are dropped;
neither raises. Each failure increments `RedisCache.read_errors` or
`RedisCache.write_errors` and is logged on the ``dprims.cache.redis``
logger: a WARNING for the first failure after a success, DEBUG for the
following ones, and an INFO line once Redis answers again. After a
connection failure or a timeout, the cache does not call Redis at all for
*retry_after* seconds (the circuit is open): calls answer at once as if
Redis had failed, and are counted in `RedisCache.skipped`.

Status: provisional.
"""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
import threading
import time
from typing import TYPE_CHECKING, Any, TypeVar, cast

from dprims._clock import SYSTEM_CLOCK, Clock
from dprims._redis import (
    LuaScript,
    check_prefix,
    is_async_client,
    is_cluster_client,
    redis_errors,
    tagged_key,
)
from dprims.cache._base import STORE_DOWN, CacheStats
from dprims.cache._flight import (
    DEFAULT_WAIT_TIMEOUT,
    SingleFlight,
    _Abandoned,
    _Flight,
    check_wait_timeout,
    current_owner,
)
from dprims.cache._serializers import JSONSerializer, Serializer
from dprims.errors import (
    BackendError,
    BackendTimeout,
    ConfigurationError,
    _missing_extra,
)


try:
    import redis
    import redis.cluster
except ImportError as exc:  # pragma: no cover -- exercised without the extra
    raise _missing_extra("redis", "redis") from exc

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable


# The serializers are public from dprims.cache, which needs no redis.
__all__ = ["RedisCache"]

logger = logging.getLogger(__name__)

V = TypeVar("V")

_MISSING: Any = object()
# What a read returns when Redis failed: a miss that must not be written
# back, since the write would only wait for the same timeout again.
_DOWN: Any = STORE_DOWN
_STORE_RELEASE = LuaScript.from_package(
    "dprims.cache._lua", "store_release.lua"
)
_RELEASE = LuaScript.from_package("dprims.cache._lua", "release.lua")
_ACQUIRE = LuaScript.from_package("dprims.cache._lua", "acquire.lua")
_CLEAR_BATCH = 500
_GLOB_SPECIAL = str.maketrans({c: f"\\{c}" for c in "\\*?[]^"})


def _check_seconds(value: object, argument: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(
            f"{argument} must be a number of seconds, got "
            f"{type(value).__name__}"
        )
    if not (value > 0 and math.isfinite(value)):
        raise ConfigurationError(
            f"{argument} must be a finite number > 0, got {value!r}"
        )
    return float(value)


def _to_ms(seconds: float) -> int:
    # PX takes whole milliseconds; never round a short TTL down to 0,
    # which Redis would reject.
    return max(1, round(seconds * 1000))


def _socket_timeout(client: Any) -> object:
    # Every redis-py client, blocking or asyncio, standalone or Cluster,
    # exposes the keyword arguments its connections are built with.
    return client.get_connection_kwargs().get("socket_timeout")


def _retries(client: Any) -> int | None:
    """Return how many times *client* retries a failed command, if known."""
    get_retry = getattr(client, "get_retry", None)
    retry = get_retry() if callable(get_retry) else None
    if retry is None:
        retry = getattr(client, "retry", None)
    count = getattr(retry, "_retries", None)
    return count if isinstance(count, int) else None


def _is_outage(exc: BackendError) -> bool:
    """Return whether *exc* means Redis is unreachable or stalled."""
    cause = exc.__cause__
    return isinstance(exc, BackendTimeout) or isinstance(
        cause, (redis.exceptions.ConnectionError, OSError)
    )


def _as_bytes(raw: bytes | str) -> bytes:
    # A client built with decode_responses=True hands back str.
    return raw.encode("utf-8") if isinstance(raw, str) else raw


class _Job:
    """One leader's load: the names it touches, its TTL and its flight."""

    __slots__ = (
        "flight",
        "key",
        "lease",
        "offline",
        "rkey",
        "token",
        "ttl_ms",
    )

    def __init__(
        self,
        prefix: str,
        key: str,
        rkey: str,
        ttl_ms: int,
        flight: _Flight[object],
    ) -> None:
        self.key = key
        self.rkey = rkey
        self.ttl_ms = ttl_ms
        self.flight = flight
        # Same hash tag as the value key: one Cluster slot for both.
        self.lease = tagged_key(prefix, key, "lease")
        # Proves ownership on release, so an expired holder never drops
        # the lease a successor took.
        self.token = secrets.token_hex(16)
        # Set when the lookup just failed: load, but do not touch Redis.
        self.offline = False

    def __repr__(self) -> str:
        return f"_Job(key={self.key!r}, ttl_ms={self.ttl_ms})"


class RedisCache:
    """Cache values in Redis, shared by every process that uses the prefix.

    Each value lives under ``<prefix>:{<key>}`` with a server-side
    time-to-live (``SET ... PX``), so idle entries vanish even if no process
    is left to clean up. The key is its own hash tag, so on Redis Cluster
    entries spread over all slots while each key's helper keys stay with it.
    Values are encoded by *serializer* (JSON by default; pickle is never
    used unless you plug it in yourself).

    `get_or_load` is single-flight within the process: concurrent misses of
    one key call the loader once. With *single_flight*, `get_or_load` (not
    `cached`, which uses only `get` and `set`) is single-flight across
    processes too: the first process to miss takes a short lease
    (``<key>:lease``, set with NX and PX by a script that first checks
    that the value did not arrive meanwhile) and loads; the others poll for
    the value for up to *lease_wait* seconds, take over the lease if its
    holder dies or fails, and load themselves if nothing arrived in time.

    Failure policy: see the module documentation; no method raises because
    Redis is down, and no round trip waits longer than the client's socket
    timeout (times its retries), which is why the client must have one.

    Thread-safe with a blocking client; with an asyncio client, use the
    ``*_async`` methods from the event loop that owns the client.

    Args:
        client: a redis-py client, blocking or asyncio, standalone or
            Cluster, created with a ``socket_timeout``.
        ttl: default time-to-live of entries, in seconds.
        prefix: the namespace of this cache's keys; `clear` removes exactly
            the keys under it.
        serializer: turns values into bytes and back (see `Serializer`);
            `JSONSerializer` by default.
        single_flight: also coordinate loads across processes with a lease
            in Redis (one extra round trip per miss).
        lease_ttl: how long a loader's lease lasts, in seconds; a holder
            that dies is replaced after at most this long. Set it above your
            slowest load.
        lease_wait: how long a process waits for another's load, in seconds,
            before loading itself; defaults to *lease_ttl*.
        poll_interval: how often a waiting process looks for the value, in
            seconds.
        retry_after: after a connection failure or a timeout, how long
            the cache skips Redis, in seconds (0: never skip); calls then
            fail over at once instead of each waiting for the timeout.
        clock: the time source of *retry_after* (monotonic seconds).

    A warning is logged if *client* retries a failed command more than
    once: each call could then wait several socket timeouts. Build it with
    ``retry=Retry(NoBackoff(), 1)`` (see the caching guide).

    Raises:
        TypeError: if *client* is not a redis-py client or an argument has
            the wrong type.
        ConfigurationError: if a duration is not > 0, *prefix* is empty or
            holds a brace, or the client has no ``socket_timeout`` (calls
            could then hang forever on a stalled server).

    .. versionadded:: 0.1
    """

    __slots__ = (
        "_client",
        "_clock",
        "_flights",
        "_healthy",
        "_is_async",
        "_lease_ms",
        "_lock",
        "_open_until",
        "_poll_interval",
        "_polls",
        "_prefix",
        "_read_errors",
        "_retry_after",
        "_serializer",
        "_single_flight",
        "_skipped",
        "_stats",
        "_ttl",
        "_write_errors",
    )

    def __init__(
        self,
        client: object,
        *,
        ttl: float,
        prefix: str = "dprims:cache",
        serializer: Serializer | None = None,
        single_flight: bool = False,
        lease_ttl: float = 10.0,
        lease_wait: float | None = None,
        poll_interval: float = 0.05,
        retry_after: float = 1.0,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._is_async = is_async_client(client)
        if not self._is_async and not isinstance(
            client, (redis.Redis, redis.cluster.RedisCluster)
        ):
            raise TypeError(
                "client must be a redis-py client (redis.Redis, "
                "redis.cluster.RedisCluster or their asyncio versions), got "
                f"{type(client).__name__}"
            )
        if _socket_timeout(client) is None:
            raise ConfigurationError(
                "client must be created with a socket_timeout (for example "
                "redis.Redis(..., socket_timeout=2.0)); without one a "
                "stalled server blocks every cache call forever"
            )
        self._ttl = _check_seconds(ttl, "ttl")
        self._prefix = check_prefix(prefix)
        if serializer is None:
            serializer = JSONSerializer()
        elif not isinstance(serializer, Serializer):
            raise TypeError(
                "serializer must have dumps() and loads() methods, got "
                f"{type(serializer).__name__}"
            )
        lease = _check_seconds(lease_ttl, "lease_ttl")
        wait = lease if lease_wait is None else lease_wait
        wait = _check_seconds(wait, "lease_wait")
        self._poll_interval = _check_seconds(poll_interval, "poll_interval")
        self._client: Any = client
        self._serializer = serializer
        self._single_flight = single_flight
        self._lease_ms = _to_ms(lease)
        self._polls = max(1, math.ceil(wait / self._poll_interval))
        self._lock = threading.Lock()
        self._flights: SingleFlight[object] = SingleFlight()
        self._stats = [0, 0, 0, 0]  # hits, misses, loads, load errors
        self._read_errors = 0
        self._write_errors = 0
        self._healthy = True
        self._retry_after = (
            0.0
            if retry_after == 0 and not isinstance(retry_after, bool)
            else _check_seconds(retry_after, "retry_after")
        )
        self._clock = clock
        self._open_until = -math.inf
        self._skipped = 0
        retries = _retries(client)
        if retries is not None and retries > 1:
            logger.warning(
                "the redis client of cache %r retries a failed command %d "
                "times, so a stalled server makes a cache call wait that "
                "many socket timeouts; build it with "
                "retry=Retry(NoBackoff(), 1)",
                self._prefix,
                retries,
                extra={
                    "event": "cache.redis.many_retries",
                    "prefix": self._prefix,
                },
            )

    # ------------------------------------------------------------ properties

    @property
    def str_keys(self) -> bool:
        """Whether keys must be ``str``: always true, as they name Redis keys."""
        return True

    @property
    def ttl(self) -> float:
        """The default time-to-live of entries, in seconds."""
        return self._ttl

    @property
    def prefix(self) -> str:
        """The namespace of this cache's keys in Redis."""
        return self._prefix

    @property
    def serializer(self) -> Serializer:
        """The serializer that encodes values."""
        return self._serializer

    @property
    def stats(self) -> CacheStats:
        """A snapshot of this process's counters (see `CacheStats`).

        Counters are local to this instance. *evictions* is always 0: Redis
        expires and evicts entries on its own without telling clients.
        """
        with self._lock:
            hits, misses, loads, load_errors = self._stats
        return CacheStats(
            hits=hits, misses=misses, loads=loads, load_errors=load_errors
        )

    @property
    def read_errors(self) -> int:
        """How many reads failed because of Redis and acted as misses."""
        return self._read_errors

    @property
    def write_errors(self) -> int:
        """How many writes failed because of Redis and were dropped."""
        return self._write_errors

    @property
    def skipped(self) -> int:
        """How many calls skipped Redis while the circuit was open.

        After a connection failure or a timeout, Redis is not called for
        *retry_after* seconds; reads act as misses, writes are dropped.
        """
        return self._skipped

    def redis_key(self, key: str) -> str:
        """Return the Redis key that stores *key* (for inspection).

        Raises:
            TypeError: if *key* is not a str.
        """
        return tagged_key(self._prefix, key)

    # ----------------------------------------------------- shared internals

    def _count(self, index: int) -> None:
        with self._lock:
            self._stats[index] += 1

    def _count_load(self, ok: bool) -> None:
        """Count a load that `cached` ran through this store."""
        self._count(2 if ok else 3)

    def _skip(self) -> bool:
        """Return whether the circuit is open (and count the skipped call)."""
        if self._clock.monotonic() < self._open_until:
            with self._lock:
                self._skipped += 1
            return True
        return False

    def _failed(
        self,
        operation: str,
        key: str | None,
        exc: BackendError,
        *,
        write: bool,
    ) -> None:
        opens = self._retry_after > 0 and _is_outage(exc)
        with self._lock:
            if write:
                self._write_errors += 1
            else:
                self._read_errors += 1
            first = self._healthy
            self._healthy = False
            if opens:
                self._open_until = self._clock.monotonic() + self._retry_after
        consequence = (
            "the write was dropped"
            if write
            else "treated as a miss (loader or default used)"
        )
        if opens:
            consequence += (
                f"; Redis is skipped for {self._retry_after} s after each "
                f"connection failure or timeout"
            )
        logger.log(
            logging.WARNING if first else logging.DEBUG,
            "redis cache %s failed, %s: %s",
            operation,
            consequence,
            exc,
            extra={
                "event": "cache.redis.unavailable",
                "operation": operation,
                "key": key,
                "prefix": self._prefix,
            },
        )

    def _ok(self) -> None:
        if not self._healthy:
            # Two threads may both log the recovery; a lock on the hit path
            # would cost more than a duplicate INFO line.
            self._healthy = True
            logger.info(
                "redis cache reachable again",
                extra={
                    "event": "cache.redis.recovered",
                    "prefix": self._prefix,
                },
            )

    def _ttl_ms(self, ttl: float | None) -> int:
        return _to_ms(self._ttl if ttl is None else _check_seconds(ttl, "ttl"))

    def _decode(self, key: str, raw: bytes | str | None) -> object:
        """Return the value in *raw*, or _MISSING for absent/undecodable."""
        if raw is None:
            return _MISSING
        try:
            return self._serializer.loads(_as_bytes(raw))
        except Exception as exc:
            # Written by another serializer or another program: a miss,
            # which the next write repairs, beats failing every read.
            logger.warning(
                "redis cache entry for %r cannot be decoded; treated as a "
                "miss: %r",
                key,
                exc,
                extra={
                    "event": "cache.redis.undecodable",
                    "key": key,
                    "prefix": self._prefix,
                },
            )
            return _MISSING

    def _lookup_counted(self, value: object) -> None:
        self._count(1 if value is _MISSING or value is _DOWN else 0)

    def _check_sync(self, method: str) -> None:
        if self._is_async:
            name = "`in`" if method == "contains" else f"{method}()"
            raise TypeError(
                f"this RedisCache has an asyncio client; use "
                f"{method}_async() instead of {name}"
            )

    def _check_async(self, method: str) -> None:
        if not self._is_async:
            raise TypeError(
                f"this RedisCache has a blocking client; use {method}() "
                f"instead of {method}_async()"
            )

    def _pattern(self) -> str:
        return f"{self._prefix.translate(_GLOB_SPECIAL)}:{{*"

    # ------------------------------------------------------- blocking API

    def get(self, key: str, default: object = None) -> object:
        """Return the value stored under *key*, or *default*.

        Counts a hit or a miss. If Redis fails, returns *default* (see the
        failure policy).

        Raises:
            TypeError: if *key* is not a str, or the client is asyncio.
        """
        self._check_sync("get")
        rkey = tagged_key(self._prefix, key)
        value = self._read(key, rkey, "get")
        self._lookup_counted(value)
        return default if value is _MISSING or value is _DOWN else value

    def _get_or_down(self, key: str) -> object:
        """Return the value, None for a miss, or STORE_DOWN (for `cached`)."""
        self._check_sync("get")
        value = self._read(key, tagged_key(self._prefix, key), "get")
        self._lookup_counted(value)
        return None if value is _MISSING else value

    async def _get_or_down_async(self, key: str) -> object:
        """The asyncio twin of `_get_or_down`."""
        self._check_async("get")
        value = await self._read_async(
            key, tagged_key(self._prefix, key), "get"
        )
        self._lookup_counted(value)
        return None if value is _MISSING else value

    def _read(self, key: str, rkey: str, operation: str) -> object:
        if self._skip():
            return _DOWN
        try:
            with redis_errors("GET"):
                raw = self._client.get(rkey)
        except BackendError as exc:
            self._failed(operation, key, exc, write=False)
            return _DOWN
        self._ok()
        return self._decode(key, raw)

    def set(self, key: str, value: object, ttl: float | None = None) -> None:
        """Store *value* under *key* for *ttl* seconds (None: the default).

        The value is encoded first, so a value the serializer refuses
        leaves Redis untouched. If Redis fails, the write is dropped (see
        the failure policy).

        Raises:
            TypeError: if *key* is not a str, the client is asyncio, or the
                serializer cannot encode *value* (the message names its
                type).
            ValueError: if the serializer refuses *value* (NaN in JSON, for
                example) or *ttl* is not > 0.
        """
        self._check_sync("set")
        self._set(key, value, ttl)

    def _set(self, key: str, value: object, ttl: float | None) -> bool:
        """Write like `set`; return whether Redis took the write."""
        rkey = tagged_key(self._prefix, key)
        ttl_ms = self._ttl_ms(ttl)
        data = self._serializer.dumps(value)
        self._flights.discard(rkey)
        return self._write(key, rkey, data, ttl_ms)

    def _write(self, key: str, rkey: str, data: bytes, ttl_ms: int) -> bool:
        if self._skip():
            return False
        try:
            with redis_errors("SET"):
                self._client.set(rkey, data, px=ttl_ms)
        except BackendError as exc:
            self._failed("set", key, exc, write=True)
            return False
        self._ok()
        return True

    def delete(self, key: str) -> bool:
        """Remove *key*; return whether it was stored.

        If Redis fails, returns False and the entry lives until its TTL ends
        (see the failure policy).

        Raises:
            TypeError: if *key* is not a str, or the client is asyncio.
        """
        self._check_sync("delete")
        rkey = tagged_key(self._prefix, key)
        self._flights.discard(rkey)
        if self._skip():
            return False
        try:
            with redis_errors("DEL"):
                removed = self._client.delete(rkey)
        except BackendError as exc:
            self._failed("delete", key, exc, write=True)
            return False
        self._ok()
        return bool(removed)

    def clear(self) -> None:
        """Remove every entry under this cache's prefix, and nothing else.

        Walks the prefix with ``SCAN`` (on every primary of a Cluster) and
        deletes in batches; it never uses ``KEYS`` or ``FLUSHDB``. Entries
        written while it runs may survive. If Redis fails, the rest of the
        entries live until their TTL ends (see the failure policy).

        Raises:
            TypeError: if the client is asyncio.
        """
        self._check_sync("clear")
        self._flights.discard()
        if self._skip():
            return
        try:
            with redis_errors("SCAN/DEL clear"):
                batch: list[Any] = []
                for found in self._client.scan_iter(
                    match=self._pattern(), count=_CLEAR_BATCH
                ):
                    batch.append(found)
                    if len(batch) >= _CLEAR_BATCH:
                        self._client.delete(*batch)
                        batch.clear()
                if batch:
                    self._client.delete(*batch)
        except BackendError as exc:
            self._failed("clear", None, exc, write=True)
            return
        self._ok()

    def __contains__(self, key: object) -> bool:
        """Return whether *key* is stored (counts no hit or miss).

        Returns False if *key* is not a str or Redis fails.
        """
        self._check_sync("contains")
        if not isinstance(key, str) or self._skip():
            return False
        try:
            with redis_errors("EXISTS"):
                found = self._client.exists(tagged_key(self._prefix, key))
        except BackendError as exc:
            self._failed("contains", key, exc, write=False)
            return False
        self._ok()
        return bool(found)

    def get_or_load(
        self,
        key: str,
        loader: Callable[[], V],
        *,
        ttl: float | None = None,
        wait_timeout: float | None = DEFAULT_WAIT_TIMEOUT,
    ) -> V:
        """Return the value for *key*, calling *loader* once on a miss.

        Concurrent misses of one key in this process call *loader* once;
        the others wait for its value, or get its exception (nothing is
        stored then). With ``single_flight=True`` the same holds across
        processes (see the class documentation). The loaded value is stored
        for *ttl* seconds (None: the default). If Redis fails, *loader* is
        called and its value returned without being stored.

        Most callers want this method (or `cached`) rather than `get` and
        `set`. A caller waiting for a load of this process waits at most
        *wait_timeout* seconds.

        .. warning::
           ``wait_timeout=None`` waits without bound: a hung loader then
           hangs every caller of its key.

        Raises:
            LoadTimeout: if a load in flight took over *wait_timeout*.
            TypeError: if *key* is not a str, the client is asyncio, or the
                serializer cannot encode the loaded value.
            ReentrantLoadError: if *loader* needs *key* itself (directly or
                through a cycle of loads).
            Exception: whatever *loader* raises.
        """
        self._check_sync("get_or_load")
        rkey = tagged_key(self._prefix, key)
        ttl_ms = self._ttl_ms(ttl)
        wait_timeout = check_wait_timeout(wait_timeout)
        while True:
            value = self._read(key, rkey, "get_or_load")
            self._lookup_counted(value)
            if value is not _MISSING and value is not _DOWN:
                return cast("V", value)
            flight, leader = self._flights.join(rkey, current_owner())
            if not leader:
                try:
                    return cast(
                        "V", SingleFlight.wait(flight, key, wait_timeout)
                    )
                except _Abandoned:
                    continue
            try:
                job = _Job(self._prefix, key, rkey, ttl_ms, flight)
                job.offline = value is _DOWN
                result = self._load(job, loader)
            except BaseException as exc:
                self._flights.fail(rkey, flight, exc)
                raise
            self._flights.resolve(rkey, flight, result)
            return result

    def _call_loader(self, loader: Callable[[], V]) -> tuple[V, bytes]:
        try:
            value = loader()
        except BaseException:
            self._count(3)
            raise
        self._count(2)
        return value, self._serializer.dumps(value)

    def _load(self, job: _Job, loader: Callable[[], V]) -> V:
        if job.offline or self._skip():
            return self._call_loader(loader)[0]
        if not self._single_flight:
            value, data = self._call_loader(loader)
            self._store(job, data)
            return value
        budget = self._polls
        while True:
            try:
                reply = _ACQUIRE(
                    self._client,
                    [job.rkey, job.lease],
                    [job.token, self._lease_ms],
                )
            except BackendError as exc:
                self._failed("get_or_load", job.key, exc, write=False)
                return self._call_loader(loader)[0]
            if reply[0] == 2:
                found = self._decode(job.key, reply[1])
                if found is not _MISSING:
                    return cast("V", found)
                # Undecodable: replace it now rather than wait for nobody.
                value, data = self._call_loader(loader)
                self._store(job, data)
                return value
            if reply[0] == 1:
                try:
                    value, data = self._call_loader(loader)
                except BaseException:
                    self._release(job, None)
                    raise
                self._release(job, data)
                return value
            while budget > 0:
                budget -= 1
                time.sleep(self._poll_interval)
                try:
                    with redis_errors("MGET value lease"):
                        raw, holder = self._client.mget(job.rkey, job.lease)
                except BackendError as exc:
                    self._failed("get_or_load", job.key, exc, write=False)
                    return self._call_loader(loader)[0]
                found = self._decode(job.key, raw)
                if found is not _MISSING:
                    return cast("V", found)
                if holder is None:
                    break  # the holder failed or died: try to take over
            else:
                # Waited long enough for a slow or stuck holder.
                value, data = self._call_loader(loader)
                self._store(job, data)
                return value

    def _store(self, job: _Job, data: bytes) -> None:
        # A delete() or clear() during the load may mean the loaded value
        # is already outdated: hand it to the waiters but do not store it.
        if not job.flight.discarded:
            self._write(job.key, job.rkey, data, job.ttl_ms)

    def _release(self, job: _Job, data: bytes | None) -> None:
        if self._skip():
            return  # the lease expires on its own
        try:
            if data is None or job.flight.discarded:
                _RELEASE(self._client, [job.lease], [job.token])
            else:
                _STORE_RELEASE(
                    self._client,
                    [job.rkey, job.lease],
                    [data, job.ttl_ms, job.token],
                )
        except BackendError as exc:
            self._failed("set", job.key, exc, write=True)
        else:
            self._ok()

    # -------------------------------------------------------- asyncio API

    async def get_async(self, key: str, default: object = None) -> object:
        """Return the value stored under *key*, or *default* (asyncio).

        Same semantics as `get`.

        Raises:
            TypeError: if *key* is not a str, or the client is blocking.
        """
        self._check_async("get")
        rkey = tagged_key(self._prefix, key)
        value = await self._read_async(key, rkey, "get")
        self._lookup_counted(value)
        return default if value is _MISSING or value is _DOWN else value

    async def _read_async(self, key: str, rkey: str, operation: str) -> object:
        if self._skip():
            return _DOWN
        try:
            with redis_errors("GET"):
                raw = await self._client.get(rkey)
        except BackendError as exc:
            self._failed(operation, key, exc, write=False)
            return _DOWN
        self._ok()
        return self._decode(key, raw)

    async def set_async(
        self, key: str, value: object, ttl: float | None = None
    ) -> None:
        """Store *value* under *key* for *ttl* seconds (asyncio).

        Same semantics as `set`.

        Raises:
            TypeError: if *key* is not a str, the client is blocking, or the
                serializer cannot encode *value*.
            ValueError: if the serializer refuses *value* or *ttl* is not
                > 0.
        """
        self._check_async("set")
        await self._set_async(key, value, ttl)

    async def _set_async(
        self, key: str, value: object, ttl: float | None
    ) -> bool:
        rkey = tagged_key(self._prefix, key)
        ttl_ms = self._ttl_ms(ttl)
        data = self._serializer.dumps(value)
        self._flights.discard(rkey)
        return await self._write_async(key, rkey, data, ttl_ms)

    async def _write_async(
        self, key: str, rkey: str, data: bytes, ttl_ms: int
    ) -> bool:
        if self._skip():
            return False
        try:
            with redis_errors("SET"):
                await self._client.set(rkey, data, px=ttl_ms)
        except BackendError as exc:
            self._failed("set", key, exc, write=True)
            return False
        self._ok()
        return True

    async def delete_async(self, key: str) -> bool:
        """Remove *key*; return whether it was stored (asyncio).

        Same semantics as `delete`.

        Raises:
            TypeError: if *key* is not a str, or the client is blocking.
        """
        self._check_async("delete")
        rkey = tagged_key(self._prefix, key)
        self._flights.discard(rkey)
        if self._skip():
            return False
        try:
            with redis_errors("DEL"):
                removed = await self._client.delete(rkey)
        except BackendError as exc:
            self._failed("delete", key, exc, write=True)
            return False
        self._ok()
        return bool(removed)

    async def clear_async(self) -> None:
        """Remove every entry under this cache's prefix (asyncio).

        Same semantics as `clear`.

        Raises:
            TypeError: if the client is blocking.
        """
        self._check_async("clear")
        self._flights.discard()
        if self._skip():
            return
        try:
            with redis_errors("SCAN/DEL clear"):
                batch: list[Any] = []
                async for found in self._client.scan_iter(
                    match=self._pattern(), count=_CLEAR_BATCH
                ):
                    batch.append(found)
                    if len(batch) >= _CLEAR_BATCH:
                        await self._client.delete(*batch)
                        batch.clear()
                if batch:
                    await self._client.delete(*batch)
        except BackendError as exc:
            self._failed("clear", None, exc, write=True)
            return
        self._ok()

    async def contains_async(self, key: object) -> bool:
        """Return whether *key* is stored (asyncio; counts no hit or miss).

        Returns False if *key* is not a str or Redis fails.

        Raises:
            TypeError: if the client is blocking.
        """
        self._check_async("contains")
        if not isinstance(key, str) or self._skip():
            return False
        try:
            with redis_errors("EXISTS"):
                found = await self._client.exists(
                    tagged_key(self._prefix, key)
                )
        except BackendError as exc:
            self._failed("contains", key, exc, write=False)
            return False
        self._ok()
        return bool(found)

    async def get_or_load_async(
        self,
        key: str,
        loader: Callable[[], Awaitable[V]],
        *,
        ttl: float | None = None,
        wait_timeout: float | None = DEFAULT_WAIT_TIMEOUT,
    ) -> V:
        """Return the value for *key*, awaiting *loader* once on a miss.

        Same semantics as `get_or_load`, with single-flight over the tasks
        and threads of the process (and over processes with
        ``single_flight=True``).

        Raises:
            TypeError: if *key* is not a str, the client is blocking, or the
                serializer cannot encode the loaded value.
            ReentrantLoadError: if *loader* needs *key* itself.
            LoadTimeout: if a load in flight took over *wait_timeout*.
            Exception: whatever *loader* raises.
        """
        self._check_async("get_or_load")
        rkey = tagged_key(self._prefix, key)
        ttl_ms = self._ttl_ms(ttl)
        wait_timeout = check_wait_timeout(wait_timeout)
        while True:
            value = await self._read_async(key, rkey, "get_or_load")
            self._lookup_counted(value)
            if value is not _MISSING and value is not _DOWN:
                return cast("V", value)
            flight, leader = self._flights.join(rkey, current_owner())
            if not leader:
                try:
                    return cast(
                        "V",
                        await SingleFlight.wait_async(
                            flight, key, wait_timeout
                        ),
                    )
                except _Abandoned:
                    continue
            try:
                job = _Job(self._prefix, key, rkey, ttl_ms, flight)
                job.offline = value is _DOWN
                result = await self._load_async(job, loader)
            except BaseException as exc:
                self._flights.fail(rkey, flight, exc)
                raise
            self._flights.resolve(rkey, flight, result)
            return result

    async def _call_loader_async(
        self, loader: Callable[[], Awaitable[V]]
    ) -> tuple[V, bytes]:
        try:
            value = await loader()
        except BaseException:
            self._count(3)
            raise
        self._count(2)
        return value, self._serializer.dumps(value)

    async def _load_async(
        self, job: _Job, loader: Callable[[], Awaitable[V]]
    ) -> V:
        if job.offline or self._skip():
            return (await self._call_loader_async(loader))[0]
        if not self._single_flight:
            value, data = await self._call_loader_async(loader)
            await self._store_async(job, data)
            return value
        budget = self._polls
        while True:
            try:
                reply = await _ACQUIRE.run_async(
                    self._client,
                    [job.rkey, job.lease],
                    [job.token, self._lease_ms],
                )
            except BackendError as exc:
                self._failed("get_or_load", job.key, exc, write=False)
                return (await self._call_loader_async(loader))[0]
            if reply[0] == 2:
                found = self._decode(job.key, reply[1])
                if found is not _MISSING:
                    return cast("V", found)
                value, data = await self._call_loader_async(loader)
                await self._store_async(job, data)
                return value
            if reply[0] == 1:
                try:
                    value, data = await self._call_loader_async(loader)
                except BaseException:
                    await self._release_async(job, None)
                    raise
                await self._release_async(job, data)
                return value
            while budget > 0:
                budget -= 1
                await asyncio.sleep(self._poll_interval)
                try:
                    with redis_errors("MGET value lease"):
                        raw, holder = await self._client.mget(
                            job.rkey, job.lease
                        )
                except BackendError as exc:
                    self._failed("get_or_load", job.key, exc, write=False)
                    return (await self._call_loader_async(loader))[0]
                found = self._decode(job.key, raw)
                if found is not _MISSING:
                    return cast("V", found)
                if holder is None:
                    break  # the holder failed or died: try to take over
            else:
                value, data = await self._call_loader_async(loader)
                await self._store_async(job, data)
                return value

    async def _store_async(self, job: _Job, data: bytes) -> None:
        if not job.flight.discarded:
            await self._write_async(job.key, job.rkey, data, job.ttl_ms)

    async def _release_async(self, job: _Job, data: bytes | None) -> None:
        if self._skip():
            return
        try:
            if data is None or job.flight.discarded:
                await _RELEASE.run_async(
                    self._client, [job.lease], [job.token]
                )
            else:
                await _STORE_RELEASE.run_async(
                    self._client,
                    [job.rkey, job.lease],
                    [data, job.ttl_ms, job.token],
                )
        except BackendError as exc:
            self._failed("set", job.key, exc, write=True)
        else:
            self._ok()

    def __repr__(self) -> str:
        kind = "asyncio" if self._is_async else "blocking"
        if is_cluster_client(self._client):
            kind += " cluster"
        return (
            f"RedisCache(prefix={self._prefix!r}, ttl={self._ttl!r}, "
            f"serializer={self._serializer!r}, "
            f"single_flight={self._single_flight!r}, client={kind}, "
            f"healthy={self._healthy!r})"
        )
