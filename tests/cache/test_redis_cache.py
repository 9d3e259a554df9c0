"""RedisCache against real Redis servers: standalone, Cluster and outages."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import multiprocessing
import threading
import time
from typing import TYPE_CHECKING, Any

import pytest
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.retry import Retry

from dprims.cache import cached
from dprims.cache._flight import ReentrantLoadError, _Flight
from dprims.cache.redis import JSONSerializer, RedisCache, _Job
from dprims.errors import ConfigurationError


if TYPE_CHECKING:
    from dprims.testing import RedisServer

LOGGER = "dprims.cache.redis"


class UpperSerializer:
    """A toy serializer for str values: stored upper-case, read lower-case."""

    def dumps(self, value: object) -> bytes:
        if not isinstance(value, str):
            raise TypeError(f"cannot encode {type(value).__name__}")
        return value.upper().encode()

    def loads(self, data: bytes) -> object:
        return data.decode().lower()


def wait_until(predicate: Any, timeout: float = 5.0) -> bool:
    """Poll *predicate* until it is true or *timeout* seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return bool(predicate())


@pytest.mark.redis
class TestRedisCacheStandalone:
    """The blocking API on a standalone server."""

    @pytest.mark.parametrize(
        "value",
        [
            None,
            True,
            0,
            -17,
            2.5,
            "",
            "héllo ✓",
            [1, "a", None],
            {"a": [1, 2], "b": {"c": False}},
        ],
    )
    def test_round_trips_json_values(self, redis_client, prefix, value):
        """Returns what was stored, for every JSON type."""
        cache = RedisCache(redis_client, ttl=30.0, prefix=prefix)
        cache.set("k", value)
        assert value == cache.get("k", default="missing")

    def test_missing_key_returns_default(self, redis_client, prefix):
        """Returns the default for an absent key and counts a miss."""
        cache = RedisCache(redis_client, ttl=30.0, prefix=prefix)
        assert "dflt" == cache.get("nope", "dflt")
        assert cache.get("nope") is None
        assert (0, 2) == (cache.stats.hits, cache.stats.misses)

    def test_ttl_is_set_server_side(self, redis_client, prefix):
        """Sets the default and per-call TTL on the Redis key (PTTL)."""
        cache = RedisCache(redis_client, ttl=30.0, prefix=prefix)
        cache.set("a", 1)
        cache.set("b", 2, ttl=5.0)
        cache.get_or_load("c", lambda: 3, ttl=0.5)
        assert 25_000 < redis_client.pttl(cache.redis_key("a")) <= 30_000
        assert 0 < redis_client.pttl(cache.redis_key("b")) <= 5_000
        assert 0 < redis_client.pttl(cache.redis_key("c")) <= 500

    def test_entry_expires_in_redis(self, redis_client, prefix):
        """Drops an entry once its TTL has passed on the server."""
        cache = RedisCache(redis_client, ttl=30.0, prefix=prefix)
        cache.set("short", "v", ttl=0.05)
        assert wait_until(lambda: "short" not in cache)
        assert cache.get("short") is None

    def test_keys_are_injection_safe(self, redis_client, prefix):
        """Keeps hostile keys inside their own hash tag and prefix."""
        cache = RedisCache(redis_client, ttl=30.0, prefix=prefix)
        other = RedisCache(redis_client, ttl=30.0, prefix=f"{prefix}:x")
        other.set("y", "theirs")
        hostile = "}:x:{y"
        cache.set(hostile, "mine")
        assert f"{prefix}:{{%7D:x:%7By}}" == cache.redis_key(hostile)
        assert "theirs" == other.get("y")
        assert "mine" == cache.get(hostile)
        cache.clear()
        assert "theirs" == other.get("y")

    def test_prefix_glob_characters_are_escaped(self, redis_client, prefix):
        """Clears only its own keys even when the prefix holds glob syntax."""
        cache = RedisCache(redis_client, ttl=30.0, prefix=f"{prefix}*")
        neighbour = RedisCache(redis_client, ttl=30.0, prefix=f"{prefix}ab")
        neighbour.set("k", 1)
        cache.set("k", 2)
        cache.clear()
        assert 1 == neighbour.get("k")
        assert "k" not in cache

    def test_clear_removes_only_this_prefix(self, redis_client, prefix):
        """Deletes every key of the prefix (more than one batch) only."""
        cache = RedisCache(redis_client, ttl=30.0, prefix=prefix)
        other = RedisCache(redis_client, ttl=30.0, prefix=f"{prefix}-other")
        pipe = redis_client.pipeline(transaction=False)
        for i in range(1200):
            pipe.set(cache.redis_key(f"k{i}"), b"1", px=30_000)
        pipe.execute()
        other.set("k1", "kept")
        redis_client.set(f"{prefix}:plain", b"kept", px=30_000)
        cache.clear()
        assert [] == list(redis_client.scan_iter(match=f"{prefix}:{{*"))
        assert "kept" == other.get("k1")
        assert b"kept" == redis_client.get(f"{prefix}:plain")

    def test_unencodable_value_writes_nothing(self, redis_client, prefix):
        """Raises TypeError naming the type and leaves Redis untouched."""
        cache = RedisCache(redis_client, ttl=30.0, prefix=prefix)
        with pytest.raises(TypeError, match="set"):
            cache.set("k", {1, 2})
        with pytest.raises(ValueError, match="float"):
            cache.set("k", math.nan)
        assert 0 == redis_client.exists(cache.redis_key("k"))

    def test_unencodable_loaded_value_is_not_stored(
        self, redis_client, prefix
    ):
        """Raises TypeError from get_or_load when the loader's value is bad."""
        cache = RedisCache(redis_client, ttl=30.0, prefix=prefix)
        with pytest.raises(TypeError, match="object"):
            cache.get_or_load("k", object)
        assert 0 == redis_client.exists(cache.redis_key("k"))

    def test_non_str_key_is_rejected(self, redis_client, prefix):
        """Raises TypeError naming the key's type."""
        cache = RedisCache(redis_client, ttl=30.0, prefix=prefix)
        with pytest.raises(TypeError, match="int"):
            cache.get(42)  # type: ignore[arg-type]
        assert 42 not in cache

    def test_delete_and_contains(self, redis_client, prefix):
        """Reports whether a key existed and whether it is stored."""
        cache = RedisCache(redis_client, ttl=30.0, prefix=prefix)
        cache.set("k", 1)
        assert "k" in cache
        assert cache.delete("k") is True
        assert cache.delete("k") is False
        assert "k" not in cache

    def test_get_or_load_counts_and_caches(self, redis_client, prefix):
        """Calls the loader on a miss only, and counts hits and loads."""
        cache = RedisCache(redis_client, ttl=30.0, prefix=prefix)
        calls = []

        def loader():
            calls.append(1)
            return {"n": len(calls)}

        assert {"n": 1} == cache.get_or_load("k", loader)
        assert {"n": 1} == cache.get_or_load("k", loader)
        stats = cache.stats
        assert (1, 1, 1, 0, 0) == (
            stats.hits,
            stats.misses,
            stats.loads,
            stats.load_errors,
            stats.evictions,
        )
        assert 0.5 == stats.hit_ratio

    def test_threads_share_one_load(self, redis_client, prefix):
        """Calls a slow loader once for 16 threads missing one key."""
        cache = RedisCache(redis_client, ttl=30.0, prefix=prefix)
        calls = []
        started = threading.Barrier(16, timeout=10)

        def loader():
            calls.append(1)
            time.sleep(0.3)
            return "v"

        results = []

        def worker():
            started.wait()
            results.append(cache.get_or_load("k", loader))

        threads = [threading.Thread(target=worker) for _ in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        assert ["v"] * 16 == results
        assert 1 == len(calls)

    def test_loader_error_reaches_waiters(self, redis_client, prefix):
        """Gives every waiter the loader's error and stores nothing."""
        cache = RedisCache(redis_client, ttl=30.0, prefix=prefix)
        started = threading.Barrier(8, timeout=10)
        errors = []

        def loader():
            time.sleep(0.3)
            raise LookupError("db down")

        def worker():
            started.wait()
            try:
                cache.get_or_load("k", loader)
            except LookupError as exc:
                errors.append(exc)

        threads = [threading.Thread(target=worker) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        assert 8 == len(errors)
        assert "k" not in cache
        assert cache.stats.load_errors >= 1

    def test_reentrant_load_fails_fast(self, redis_client, prefix):
        """Raises ReentrantLoadError when a loader needs its own key."""
        cache = RedisCache(redis_client, ttl=30.0, prefix=prefix)

        def loader():
            return cache.get_or_load("k", loader)

        with pytest.raises(ReentrantLoadError):
            cache.get_or_load("k", loader)

    def test_delete_during_load_skips_store(self, redis_client, prefix):
        """Returns the loaded value but does not store it after a delete."""
        cache = RedisCache(redis_client, ttl=30.0, prefix=prefix)

        def loader():
            cache.delete("k")
            return "stale"

        assert "stale" == cache.get_or_load("k", loader)
        assert "k" not in cache

    def test_undecodable_entry_is_a_miss(self, redis_client, prefix, caplog):
        """Treats bytes the serializer cannot read as a logged miss."""
        cache = RedisCache(redis_client, ttl=30.0, prefix=prefix)
        redis_client.set(cache.redis_key("k"), b"\xff not json", px=30_000)
        with caplog.at_level(logging.WARNING, logger=LOGGER):
            assert "d" == cache.get("k", "d")
        assert "cannot be decoded" in caplog.text

    def test_custom_serializer(self, redis_client, prefix):
        """Stores bytes produced by a pluggable serializer."""
        cache = RedisCache(
            redis_client, ttl=30.0, prefix=prefix, serializer=UpperSerializer()
        )
        cache.set("k", "abc")
        assert b"ABC" == redis_client.get(cache.redis_key("k"))
        assert "abc" == cache.get("k")

    def test_decode_responses_client(self, redis_proc, prefix):
        """Works with a client that decodes replies to str."""
        client = redis_proc.client(decode_responses=True)
        try:
            cache = RedisCache(client, ttl=30.0, prefix=prefix)
            cache.set("k", {"a": "é"})
            assert {"a": "é"} == cache.get("k")
        finally:
            client.close()

    def test_repr_shows_configuration(self, redis_client, prefix):
        """Names the prefix, TTL, serializer and client kind."""
        cache = RedisCache(redis_client, ttl=30.0, prefix=prefix)
        text = repr(cache)
        assert f"prefix={prefix!r}" in text
        assert "ttl=30.0" in text
        assert "client=blocking" in text
        assert "JSONSerializer" in text

    def test_properties(self, redis_client, prefix):
        """Exposes its configuration and str_keys=True."""
        serializer = JSONSerializer()
        cache = RedisCache(
            redis_client, ttl=2, prefix=prefix, serializer=serializer
        )
        assert (True, 2.0, prefix, serializer) == (
            cache.str_keys,
            cache.ttl,
            cache.prefix,
            cache.serializer,
        )

    def test_async_methods_refuse_blocking_client(self, redis_client, prefix):
        """Raises TypeError naming the method to use instead."""
        cache = RedisCache(redis_client, ttl=30.0, prefix=prefix)
        with pytest.raises(TypeError, match=r"get\(\)"):
            asyncio.run(cache.get_async("k"))


@pytest.mark.redis
class TestConstruction:
    """Bad configuration fails at construction."""

    @pytest.mark.parametrize(
        ("kwargs", "error", "match"),
        [
            ({"ttl": 0}, ValueError, "ttl"),
            ({"ttl": -1.0}, ValueError, "ttl"),
            ({"ttl": math.inf}, ValueError, "ttl"),
            ({"ttl": True}, TypeError, "ttl"),
            ({"ttl": "1"}, TypeError, "ttl"),
            ({"ttl": 1, "lease_ttl": 0}, ValueError, "lease_ttl"),
            ({"ttl": 1, "lease_wait": -1}, ValueError, "lease_wait"),
            ({"ttl": 1, "poll_interval": 0}, ValueError, "poll_interval"),
            ({"ttl": 1, "prefix": ""}, ValueError, "prefix"),
            ({"ttl": 1, "prefix": "a{b"}, ValueError, "prefix"),
            ({"ttl": 1, "serializer": object()}, TypeError, "serializer"),
        ],
    )
    def test_rejects_bad_arguments(self, redis_client, kwargs, error, match):
        """Raises an error naming the bad argument."""
        with pytest.raises(error, match=match):
            RedisCache(redis_client, **kwargs)

    def test_rejects_non_client(self):
        """Raises TypeError for an object that is no redis-py client."""
        with pytest.raises(TypeError, match="client"):
            RedisCache(object(), ttl=1.0)

    def test_requires_socket_timeout(self, redis_proc):
        """Refuses a client that could block forever on a stalled server."""
        client = redis_proc.client(socket_timeout=None)
        try:
            with pytest.raises(ConfigurationError, match="socket_timeout"):
                RedisCache(client, ttl=1.0)
        finally:
            client.close()

    def test_per_call_ttl_is_checked(self, redis_client, prefix):
        """Raises ValueError for a non-positive per-call TTL."""
        cache = RedisCache(redis_client, ttl=1.0, prefix=prefix)
        with pytest.raises(ValueError, match="ttl"):
            cache.set("k", 1, ttl=0)


# ------------------------------------------------------------- single-flight


def _race_worker(port: int, prefix: str, barrier: Any, out: Any) -> None:
    """Child process: miss one key with a slow, counted loader."""
    import redis

    client = redis.Redis(port=port, socket_timeout=5.0)
    cache = RedisCache(
        client, ttl=30.0, prefix=prefix, single_flight=True, lease_ttl=10.0
    )

    def loader():
        client.incr(f"{prefix}-calls")
        time.sleep(0.5)
        return "loaded"

    barrier.wait(30)
    out.put(cache.get_or_load("k", loader))
    client.close()


@pytest.mark.redis
class TestCrossProcessSingleFlight:
    """single_flight=True: one loader call across processes."""

    def test_processes_share_one_load(self, redis_proc, redis_client, prefix):
        """Calls the loader once for three processes missing one key."""
        ctx = multiprocessing.get_context("spawn")
        barrier = ctx.Barrier(3)
        out = ctx.Queue()
        procs = [
            ctx.Process(
                target=_race_worker,
                args=(redis_proc.port, prefix, barrier, out),
            )
            for _ in range(3)
        ]
        for p in procs:
            p.start()
        try:
            results = [out.get(timeout=60) for _ in procs]
        finally:
            for p in procs:
                p.join(30)
                if p.is_alive():
                    p.kill()
                    p.join(5)
        out.close()
        out.join_thread()
        assert ["loaded"] * 3 == results
        assert b"1" == redis_client.get(f"{prefix}-calls")

    def test_instances_share_one_load(self, redis_proc, prefix):
        """Calls the loader once for 8 caches (8 clients) racing a key."""
        clients = [redis_proc.client() for _ in range(8)]
        caches = [
            RedisCache(
                c, ttl=30.0, prefix=prefix, single_flight=True, lease_ttl=5.0
            )
            for c in clients
        ]
        calls = []
        barrier = threading.Barrier(8, timeout=10)
        results = []

        def loader():
            calls.append(1)
            time.sleep(0.3)
            return [1, 2]

        def worker(cache):
            barrier.wait()
            results.append(cache.get_or_load("k", loader))

        threads = [threading.Thread(target=worker, args=(c,)) for c in caches]
        for t in threads:
            t.start()
        for t in threads:
            t.join(15)
        for c in clients:
            c.close()
        assert [[1, 2]] * 8 == results
        assert 1 == len(calls)

    def test_dead_holder_is_replaced(self, redis_client, prefix):
        """Loads once the lease of a holder that died has expired."""
        cache = RedisCache(
            redis_client,
            ttl=30.0,
            prefix=prefix,
            single_flight=True,
            lease_wait=5.0,
        )
        lease = cache.redis_key("k") + ":lease"
        redis_client.set(lease, b"dead-holder", px=200)
        assert "mine" == cache.get_or_load("k", lambda: "mine")
        assert "mine" == cache.get("k")
        assert 0 == redis_client.exists(lease)

    def test_stuck_holder_is_waited_for_boundedly(self, redis_client, prefix):
        """Loads itself after lease_wait when the holder never finishes."""
        cache = RedisCache(
            redis_client,
            ttl=30.0,
            prefix=prefix,
            single_flight=True,
            lease_wait=0.2,
            poll_interval=0.05,
        )
        lease = cache.redis_key("k") + ":lease"
        redis_client.set(lease, b"stuck-holder", px=30_000)
        assert "mine" == cache.get_or_load("k", lambda: "mine")
        assert b"stuck-holder" == redis_client.get(lease)
        assert "mine" == cache.get("k")

    def test_waiter_gets_holders_value(self, redis_client, prefix):
        """Returns the value another holder stores while it waits."""
        cache = RedisCache(
            redis_client, ttl=30.0, prefix=prefix, single_flight=True
        )
        lease = cache.redis_key("k") + ":lease"
        redis_client.set(lease, b"other", px=5_000)

        def holder():
            time.sleep(0.2)
            redis_client.set(cache.redis_key("k"), b'"theirs"', px=30_000)

        thread = threading.Thread(target=holder)
        thread.start()
        try:
            assert "theirs" == cache.get_or_load("k", lambda: "mine")
        finally:
            thread.join(5)
        assert 0 == cache.stats.loads

    def test_failed_loader_releases_lease(self, redis_client, prefix):
        """Releases its lease when the loader raises, storing nothing."""
        cache = RedisCache(
            redis_client, ttl=30.0, prefix=prefix, single_flight=True
        )

        def loader():
            raise LookupError("boom")

        with pytest.raises(LookupError):
            cache.get_or_load("k", loader)
        assert 0 == redis_client.exists(
            cache.redis_key("k"), cache.redis_key("k") + ":lease"
        )

    def test_value_found_when_taking_the_lease(self, redis_client, prefix):
        """Returns a value stored between the miss and the lease attempt."""
        cache = RedisCache(
            redis_client, ttl=30.0, prefix=prefix, single_flight=True
        )
        job = _Job(prefix, "k", cache.redis_key("k"), 30_000, _Flight(None))
        redis_client.set(cache.redis_key("k"), b'"there"', px=30_000)

        def loader():
            raise AssertionError("must not load")

        assert "there" == cache._load(job, loader)
        assert "_Job(key='k', ttl_ms=30000)" == repr(job)

    def test_undecodable_value_is_replaced(self, redis_client, prefix):
        """Loads and overwrites an entry the serializer cannot read."""
        cache = RedisCache(
            redis_client, ttl=30.0, prefix=prefix, single_flight=True
        )
        redis_client.set(cache.redis_key("k"), b"\xff", px=30_000)
        assert "fresh" == cache.get_or_load("k", lambda: "fresh")
        assert "fresh" == cache.get("k")

    def test_interrupted_leader_is_replaced(self, redis_client, prefix):
        """Lets a waiter load when the leading thread's loader is aborted."""
        cache = RedisCache(redis_client, ttl=30.0, prefix=prefix)
        entered = threading.Event()
        release = threading.Event()

        class Abort(BaseException):
            pass

        def aborting():
            entered.set()
            release.wait(5)
            raise Abort

        def leader():
            with contextlib.suppress(Abort):
                cache.get_or_load("k", aborting)

        thread = threading.Thread(target=leader)
        thread.start()
        assert entered.wait(5)
        result = []
        waiter = threading.Thread(
            target=lambda: result.append(cache.get_or_load("k", lambda: 2))
        )
        waiter.start()
        time.sleep(0.1)  # let the waiter join the leader's flight
        release.set()
        thread.join(5)
        waiter.join(5)
        assert [2] == result

    def test_delete_during_leased_load_skips_store(self, redis_client, prefix):
        """Releases the lease without storing a value invalidated mid-load."""
        cache = RedisCache(
            redis_client, ttl=30.0, prefix=prefix, single_flight=True
        )

        def loader():
            cache.delete("k")
            return "stale"

        assert "stale" == cache.get_or_load("k", loader)
        assert 0 == redis_client.exists(
            cache.redis_key("k"), cache.redis_key("k") + ":lease"
        )


# -------------------------------------------------------------------- asyncio


@pytest.mark.redis
class TestRedisCacheAsync:
    """The asyncio API on a standalone server."""

    def test_round_trip_and_ttl(self, redis_proc, redis_client, prefix):
        """Stores, reads, checks and deletes values with a server-side TTL."""

        async def main():
            client = redis_proc.async_client()
            try:
                cache = RedisCache(client, ttl=30.0, prefix=prefix)
                await cache.set_async("k", {"a": [1]}, ttl=5.0)
                got = await cache.get_async("k")
                missing = await cache.get_async("nope", "d")
                present = await cache.contains_async("k")
                absent = await cache.contains_async(3)
                removed = await cache.delete_async("k")
                again = await cache.delete_async("k")
                return got, missing, present, absent, removed, again
            finally:
                await client.aclose()

        cache = RedisCache(redis_client, ttl=30.0, prefix=prefix)
        assert ({"a": [1]}, "d", True, False, True, False) == asyncio.run(
            main()
        )
        assert "k" not in cache

    def test_ttl_is_set_server_side(self, redis_proc, redis_client, prefix):
        """Sets PX on writes from the asyncio API."""

        async def main():
            client = redis_proc.async_client()
            try:
                cache = RedisCache(client, ttl=30.0, prefix=prefix)
                await cache.set_async("k", 1, ttl=5.0)
                return cache.redis_key("k")
            finally:
                await client.aclose()

        key = asyncio.run(main())
        assert 0 < redis_client.pttl(key) <= 5_000

    def test_tasks_share_one_load(self, redis_proc, prefix):
        """Awaits a slow loader once for 32 tasks missing one key."""
        calls = []

        async def loader():
            calls.append(1)
            await asyncio.sleep(0.2)
            return "v"

        async def main():
            client = redis_proc.async_client()
            try:
                cache = RedisCache(client, ttl=30.0, prefix=prefix)
                return await asyncio.gather(
                    *(cache.get_or_load_async("k", loader) for _ in range(32))
                ), await cache.get_or_load_async("k", loader)
            finally:
                await client.aclose()

        results, again = asyncio.run(main())
        assert ["v"] * 32 == results
        assert "v" == again
        assert 1 == len(calls)

    def test_leased_load_and_clear(self, redis_proc, redis_client, prefix):
        """Loads under a lease, then clears every key of the prefix."""

        async def main():
            client = redis_proc.async_client()
            try:
                cache = RedisCache(
                    client, ttl=30.0, prefix=prefix, single_flight=True
                )

                async def loader():
                    return 7

                async def failing():
                    raise LookupError("boom")

                first = await cache.get_or_load_async("a", loader)
                with pytest.raises(LookupError):
                    await cache.get_or_load_async("b", failing)
                for i in range(600):
                    await cache.set_async(f"k{i}", i)
                await cache.clear_async()
                return first
            finally:
                await client.aclose()

        assert 7 == asyncio.run(main())
        assert [] == list(redis_client.scan_iter(match=f"{prefix}:*"))

    def test_waits_for_other_holder(self, redis_proc, redis_client, prefix):
        """Polls for another holder's value, then takes over a dead lease."""
        cache_sync = RedisCache(redis_client, ttl=30.0, prefix=prefix)
        redis_client.set(cache_sync.redis_key("a") + ":lease", b"x", px=5_000)
        redis_client.set(cache_sync.redis_key("b") + ":lease", b"x", px=600)
        redis_client.set(cache_sync.redis_key("c") + ":lease", b"x", px=9_000)

        async def main():
            client = redis_proc.async_client()
            try:
                cache = RedisCache(
                    client,
                    ttl=30.0,
                    prefix=prefix,
                    single_flight=True,
                    lease_wait=1.0,
                )

                async def mine():
                    return "mine"

                async def store_theirs():
                    await asyncio.sleep(0.2)
                    await client.set(cache.redis_key("a"), b'"theirs"')

                task = asyncio.create_task(store_theirs())
                a = await cache.get_or_load_async("a", mine)
                await task
                b = await cache.get_or_load_async("b", mine)
                c = await cache.get_or_load_async("c", mine)
                return a, b, c
            finally:
                await client.aclose()

        assert ("theirs", "mine", "mine") == asyncio.run(main())

    def test_cancelled_leader_is_replaced(self, redis_proc, prefix):
        """Lets a waiting task load when the loading task is cancelled."""

        async def main():
            client = redis_proc.async_client()
            try:
                cache = RedisCache(client, ttl=30.0, prefix=prefix)
                entered = asyncio.Event()

                async def slow():
                    entered.set()
                    await asyncio.sleep(30)
                    return 1

                async def fast():
                    return 2

                leader = asyncio.create_task(
                    cache.get_or_load_async("k", slow)
                )
                await entered.wait()
                waiter = asyncio.create_task(
                    cache.get_or_load_async("k", fast)
                )
                await asyncio.sleep(0.05)
                leader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await leader
                return await asyncio.wait_for(waiter, 5)
            finally:
                await client.aclose()

        assert 2 == asyncio.run(main())

    def test_undecodable_value_is_replaced(
        self, redis_proc, redis_client, prefix
    ):
        """Loads and overwrites an unreadable entry under single-flight."""
        cache = RedisCache(redis_client, ttl=30.0, prefix=prefix)
        redis_client.set(cache.redis_key("k"), b"\xff", px=30_000)

        async def main():
            client = redis_proc.async_client()
            try:
                leased = RedisCache(
                    client, ttl=30.0, prefix=prefix, single_flight=True
                )

                async def loader():
                    return "fresh"

                return await leased.get_or_load_async("k", loader)
            finally:
                await client.aclose()

        assert "fresh" == asyncio.run(main())
        assert "fresh" == cache.get("k")

    def test_invalidated_loads_are_not_stored(
        self, redis_proc, redis_client, prefix
    ):
        """Skips storing a value deleted mid-load, leased or not."""

        async def main():
            client = redis_proc.async_client()
            try:
                plain = RedisCache(client, ttl=30.0, prefix=prefix)
                leased = RedisCache(
                    client, ttl=30.0, prefix=f"{prefix}l", single_flight=True
                )
                await plain.clear_async()  # nothing to clear: no batch

                async def loader(cache):
                    await cache.delete_async("k")
                    return "stale"

                a = await plain.get_or_load_async("k", lambda: loader(plain))
                b = await leased.get_or_load_async("k", lambda: loader(leased))
                return a, b, plain.redis_key("k"), leased.redis_key("k")
            finally:
                await client.aclose()

        a, b, key_a, key_b = asyncio.run(main())
        assert ("stale", "stale") == (a, b)
        assert 0 == redis_client.exists(key_a, key_b, key_b + ":lease")

    def test_reentrant_load_fails_fast(self, redis_proc, prefix):
        """Raises ReentrantLoadError when an async loader needs its key."""

        async def main():
            client = redis_proc.async_client()
            try:
                cache = RedisCache(client, ttl=30.0, prefix=prefix)

                async def loader():
                    return await cache.get_or_load_async("k", loader)

                with pytest.raises(ReentrantLoadError):
                    await cache.get_or_load_async("k", loader)
            finally:
                await client.aclose()

        asyncio.run(main())

    def test_blocking_methods_refuse_async_client(self, redis_proc, prefix):
        """Raises TypeError naming the *_async method to use."""

        async def main():
            client = redis_proc.async_client()
            try:
                cache = RedisCache(client, ttl=30.0, prefix=prefix)
                with pytest.raises(TypeError, match="get_async"):
                    cache.get("k")
                with pytest.raises(TypeError, match="contains_async"):
                    _ = "k" in cache
                assert "client=asyncio" in repr(cache)
            finally:
                await client.aclose()

        asyncio.run(main())


# -------------------------------------------------------------------- Cluster


@pytest.mark.redis_cluster
class TestRedisCacheCluster:
    """Redis Cluster: keys spread over slots and nodes; clear on all."""

    def test_keys_spread_and_clear(self, redis_cluster_client, prefix):
        """Spreads keys over several primaries and clears them all."""
        cache = RedisCache(redis_cluster_client, ttl=30.0, prefix=prefix)
        other = RedisCache(
            redis_cluster_client, ttl=30.0, prefix=f"{prefix}-other"
        )
        other.set("k0", "kept")
        for i in range(60):
            cache.set(f"k{i}", i)
        slots = {
            redis_cluster_client.keyslot(cache.redis_key(f"k{i}"))
            for i in range(60)
        }
        nodes = {
            redis_cluster_client.get_node_from_key(
                cache.redis_key(f"k{i}")
            ).name
            for i in range(60)
        }
        assert len(slots) > 30
        assert 3 == len(nodes)
        assert list(range(60)) == [cache.get(f"k{i}") for i in range(60)]
        assert 0 < redis_cluster_client.pttl(cache.redis_key("k1")) <= 30_000
        cache.clear()
        assert [None] * 60 == [cache.get(f"k{i}") for i in range(60)]
        assert "kept" == other.get("k0")
        assert "client=blocking cluster" in repr(cache)

    def test_leased_load_on_cluster(self, redis_cluster_client, prefix):
        """Runs the lease scripts on the node owning the key."""
        cache = RedisCache(
            redis_cluster_client, ttl=30.0, prefix=prefix, single_flight=True
        )
        assert {"v": 1} == cache.get_or_load("k", lambda: {"v": 1})
        assert {"v": 1} == cache.get("k")
        assert 0 == redis_cluster_client.exists(
            cache.redis_key("k") + ":lease"
        )

    def test_async_cluster(self, redis_cluster_proc, prefix):
        """Works with the asyncio RedisCluster client, clear included."""

        async def main():
            client = redis_cluster_proc.async_client()
            try:
                cache = RedisCache(
                    client, ttl=30.0, prefix=prefix, single_flight=True
                )

                async def loader():
                    return "v"

                for i in range(30):
                    await cache.set_async(f"k{i}", i)
                loaded = await cache.get_or_load_async("z", loader)
                before = [await cache.get_async(f"k{i}") for i in range(30)]
                await cache.clear_async()
                after = [await cache.get_async(f"k{i}") for i in range(30)]
                return loaded, before, after
            finally:
                await client.aclose()

        loaded, before, after = asyncio.run(main())
        assert ("v", list(range(30)), [None] * 30) == (loaded, before, after)


# ------------------------------------------------------------------- outages


def _fast_client(server: RedisServer) -> Any:
    # redis-py retries a failed command 10 times by default; one retry keeps
    # each fallback well under a second.
    return server.client(
        socket_timeout=0.5,
        socket_connect_timeout=0.5,
        retry=Retry(NoBackoff(), 1),
    )


def _fast_async_client(server: RedisServer) -> Any:
    return server.async_client(
        socket_timeout=0.5,
        socket_connect_timeout=0.5,
        retry=AsyncRetry(NoBackoff(), 1),
    )


@pytest.mark.redis
class TestRedisDown:
    """Redis down: reads act as misses, writes are dropped, both logged."""

    def test_stopped_server(self, own_redis, prefix, caplog):
        """Falls back to the loader and default, then recovers on restart."""
        client = _fast_client(own_redis)
        # retry_after=0: every call tries Redis (the circuit is tested apart).
        cache = RedisCache(client, ttl=30.0, prefix=prefix, retry_after=0)
        try:
            cache.set("k", "before")
            own_redis.stop()
            with caplog.at_level(logging.DEBUG, logger=LOGGER):
                assert "loaded" == cache.get_or_load("k", lambda: "loaded")
                assert "d" == cache.get("k", "d")
                cache.set("k", "v")
                assert cache.delete("k") is False
                assert "k" not in cache
                cache.clear()
            warnings = [
                r for r in caplog.records if r.levelno == logging.WARNING
            ]
            assert 1 == len(warnings)
            assert "get_or_load failed" in warnings[0].getMessage()
            assert "cache.redis.unavailable" == warnings[0].event
            assert (3, 3) == (cache.read_errors, cache.write_errors)
            assert 1 == cache.stats.loads
            assert "healthy=False" in repr(cache)
            own_redis.start()
            caplog.clear()
            with caplog.at_level(logging.INFO, logger=LOGGER):
                assert wait_until(lambda: "k" not in cache and cache._healthy)
            assert "reachable again" in caplog.text
            cache.set("k", "after")
            assert "after" == cache.get("k")
        finally:
            client.close()

    def test_paused_server_is_bounded(self, own_redis, prefix, caplog):
        """Returns the loader's value instead of hanging on a frozen server."""
        client = _fast_client(own_redis)
        cache = RedisCache(client, ttl=30.0, prefix=prefix, single_flight=True)
        try:
            own_redis.pause()
            with caplog.at_level(logging.WARNING, logger=LOGGER):
                assert "loaded" == cache.get_or_load("k", lambda: "loaded")
            assert "get_or_load failed" in caplog.text
            assert 1 == cache.read_errors
        finally:
            own_redis.resume()
            client.close()

    def test_lease_redis_fails(self, own_redis, prefix):
        """Loads without storing when Redis fails while waiting on a lease."""
        client = _fast_client(own_redis)
        cache = RedisCache(client, ttl=30.0, prefix=prefix, single_flight=True)
        try:
            client.set(cache.redis_key("k") + ":lease", b"x", px=30_000)

            def stop_soon():
                time.sleep(0.2)
                own_redis.kill()

            thread = threading.Thread(target=stop_soon)
            thread.start()
            try:
                assert "v" == cache.get_or_load("k", lambda: "v")
            finally:
                thread.join(10)
            assert cache.read_errors >= 1
        finally:
            client.close()

    def test_store_fails_after_load(self, own_redis, prefix):
        """Returns the loaded value when Redis dies during the load."""
        client = _fast_client(own_redis)
        leased = RedisCache(
            client, ttl=30.0, prefix=f"{prefix}a", single_flight=True
        )
        plain = RedisCache(client, ttl=30.0, prefix=f"{prefix}b")
        try:

            def loader():
                own_redis.kill()
                return "v"

            def failing():
                raise LookupError("boom")

            assert "v" == leased.get_or_load("k", loader)
            assert 1 == leased.write_errors
            with pytest.raises(LookupError):
                leased.get_or_load("k2", failing)
            assert "v" == plain.get_or_load("k", lambda: "v")
        finally:
            client.close()

    def test_lease_attempt_fails(self, own_redis, prefix):
        """Loads without Redis when taking the lease fails."""
        client = _fast_client(own_redis)
        cache = RedisCache(client, ttl=30.0, prefix=prefix, single_flight=True)
        try:
            own_redis.stop()
            job = _Job(prefix, "k", cache.redis_key("k"), 1000, _Flight(None))
            assert "v" == cache._load(job, lambda: "v")

            async def main():
                aclient = _fast_async_client(own_redis)
                try:
                    acache = RedisCache(
                        aclient, ttl=30.0, prefix=prefix, single_flight=True
                    )

                    async def loader():
                        return "w"

                    return await acache._load_async(job, loader)
                finally:
                    await aclient.aclose()

            assert "w" == asyncio.run(main())
            assert 1 == cache.read_errors
        finally:
            client.close()

    def test_async_stopped_server(self, own_redis, prefix, caplog):
        """The asyncio API falls back and drops writes the same way."""

        async def main():
            client = _fast_async_client(own_redis)
            try:
                cache = RedisCache(
                    client,
                    ttl=30.0,
                    prefix=prefix,
                    single_flight=True,
                    retry_after=0,
                )
                plain = RedisCache(
                    client, ttl=30.0, prefix=f"{prefix}p", retry_after=0
                )
                own_redis.stop()

                async def loader():
                    return "loaded"

                got = await cache.get_or_load_async("k", loader)
                default = await cache.get_async("k", "d")
                await cache.set_async("k", 1)
                removed = await cache.delete_async("k")
                present = await cache.contains_async("k")
                await cache.clear_async()
                plain_got = await plain.get_or_load_async("k", loader)
                await plain.set_async("k", 1)
                return (
                    got,
                    default,
                    removed,
                    present,
                    plain_got,
                    cache.read_errors,
                    cache.write_errors,
                )
            finally:
                await client.aclose()

        with caplog.at_level(logging.WARNING, logger=LOGGER):
            result = asyncio.run(main())
        assert ("loaded", "d", False, False, "loaded", 3, 3) == result
        assert "get_or_load failed" in caplog.text

    def test_async_store_fails_after_load(self, own_redis, prefix):
        """Returns loaded values when Redis dies during async leased loads."""

        async def main():
            client = _fast_async_client(own_redis)
            try:
                cache = RedisCache(
                    client, ttl=30.0, prefix=prefix, single_flight=True
                )

                async def loader():
                    own_redis.kill()
                    return "v"

                async def failing():
                    raise LookupError("boom")

                async def mine():
                    return "mine"

                async def late_kill():
                    await asyncio.sleep(0.2)
                    own_redis.kill()

                got = await cache.get_or_load_async("k", loader)
                with pytest.raises(LookupError):
                    await cache.get_or_load_async("k2", failing)
                own_redis.start()
                await client.set(cache.redis_key("w") + ":lease", b"x")
                task = asyncio.create_task(late_kill())
                waited = await cache.get_or_load_async("w", mine)
                await task
                return got, waited, cache.write_errors
            finally:
                await client.aclose()

        assert ("v", "mine", 1) == asyncio.run(main())


@pytest.mark.redis
class TestCircuit:
    """After a connection failure, Redis is skipped for retry_after seconds."""

    def test_outage_skips_redis_until_retry_after(
        self, own_redis, prefix, clock, caplog
    ):
        """Answers at once while the circuit is open, and tries again after."""
        client = _fast_client(own_redis)
        cache = RedisCache(client, ttl=30.0, prefix=prefix, clock=clock)
        try:
            own_redis.stop()
            with caplog.at_level(logging.WARNING, logger=LOGGER):
                assert cache.get("k") is None
                assert "d" == cache.get("k", "d")
                cache.set("k", 1)
                assert cache.delete("k") is False
                assert "k" not in cache
                cache.clear()
                assert "v" == cache.get_or_load("k", lambda: "v")
            assert (1, 0, 6) == (
                cache.read_errors,
                cache.write_errors,
                cache.skipped,
            )
            assert 1 == caplog.text.count("skipped for 1.0 s")
            clock.advance(1.0)
            assert cache.get("k") is None
            assert 2 == cache.read_errors
        finally:
            client.close()

    def test_async_outage_skips_redis(self, own_redis, prefix, clock):
        """Skips Redis from the asyncio API too while the circuit is open."""

        async def main() -> tuple[int, int, int]:
            client = _fast_async_client(own_redis)
            try:
                cache = RedisCache(
                    client,
                    ttl=30.0,
                    prefix=prefix,
                    clock=clock,
                    single_flight=True,
                )
                own_redis.stop()
                assert await cache.get_async("k") is None
                await cache.set_async("k", 1)
                assert await cache.delete_async("k") is False
                assert await cache.contains_async("k") is False
                await cache.clear_async()

                async def loader() -> str:
                    return "v"

                assert "v" == await cache.get_or_load_async("k", loader)
                return cache.read_errors, cache.write_errors, cache.skipped
            finally:
                await client.aclose()

        assert (1, 0, 5) == asyncio.run(main())

    def test_leased_load_skips_redis(self, redis_client, prefix, clock):
        """Loads without lease or release while the circuit is open."""
        cache = RedisCache(
            redis_client,
            ttl=30.0,
            prefix=prefix,
            clock=clock,
            single_flight=True,
        )
        cache._open_until = clock.monotonic() + 1.0
        job = _Job(prefix, "k", cache.redis_key("k"), 1000, _Flight(None))

        assert "v" == cache._load(job, lambda: "v")
        cache._release(job, b"1")
        assert 2 == cache.skipped
        assert redis_client.get(cache.redis_key("k")) is None

    def test_retry_after_zero_never_skips(self, own_redis, prefix, clock):
        """Calls Redis every time with retry_after=0."""
        client = _fast_client(own_redis)
        cache = RedisCache(
            client, ttl=30.0, prefix=prefix, clock=clock, retry_after=0
        )
        try:
            own_redis.stop()
            cache.get("k")
            cache.get("k")
            assert (2, 0) == (cache.read_errors, cache.skipped)
        finally:
            client.close()

    @pytest.mark.parametrize(
        ("bad", "error"), [(-1.0, ValueError), ("1", TypeError)]
    )
    def test_bad_retry_after(self, redis_client, bad, error):
        """Refuses a negative or non-numeric retry_after."""
        with pytest.raises(error, match="retry_after"):
            RedisCache(redis_client, ttl=1.0, retry_after=bad)

    def test_warns_about_many_retries(self, redis_proc, caplog):
        """Logs a warning for a client that retries more than once."""
        many = redis_proc.client(socket_timeout=1.0)
        one = redis_proc.client(
            socket_timeout=1.0, retry=Retry(NoBackoff(), 1)
        )
        try:
            with caplog.at_level(logging.WARNING, logger=LOGGER):
                RedisCache(one, ttl=1.0)
                assert "retries" not in caplog.text
                RedisCache(many, ttl=1.0)
            assert "retry=Retry(NoBackoff(), 1)" in caplog.text
        finally:
            many.close()
            one.close()


@pytest.mark.redis
class TestWithCached:
    """@cached over a RedisCache."""

    def test_no_write_back_after_failed_read(self, own_redis, prefix, clock):
        """Loads without writing when the read just failed, and counts the load."""
        client = _fast_client(own_redis)
        cache = RedisCache(
            client, ttl=30.0, prefix=prefix, clock=clock, retry_after=0
        )
        try:
            f = cached(ttl=30.0, cache=cache, namespace="f")(lambda x: x * 2)
            own_redis.stop()
            assert 4 == f(2)
            assert (1, 0, 1) == (
                cache.read_errors,
                cache.write_errors,
                cache.stats.loads,
            )
        finally:
            client.close()

    def test_async_no_write_back_after_failed_read(
        self, own_redis, prefix, clock
    ):
        """Skips the write after a failed read from a coroutine function too."""

        async def main() -> tuple[int, int, int]:
            client = _fast_async_client(own_redis)
            try:
                cache = RedisCache(
                    client, ttl=30.0, prefix=prefix, retry_after=0
                )

                @cached(ttl=30.0, cache=cache, namespace="g")
                async def g(x: int) -> int:
                    return x * 2

                own_redis.stop()
                assert 4 == await g(2)
                return (
                    cache.read_errors,
                    cache.write_errors,
                    cache.stats.loads,
                )
            finally:
                await client.aclose()

        assert (1, 0, 1) == asyncio.run(main())

    def test_loads_and_negative_errors(self, redis_client, prefix, clock):
        """Counts loads in stats and re-raises a multi-argument cached error."""

        class Missing(Exception):
            def __init__(self, sku: str, reason: str) -> None:
                super().__init__(f"{sku}: {reason}")

        cache = RedisCache(redis_client, ttl=30.0, prefix=prefix)
        calls = []

        @cached(
            ttl=30.0,
            cache=cache,
            namespace="p",
            negative_ttl=10.0,
            negative_exceptions=(Missing,),
        )
        def product(sku: str) -> str:
            calls.append(sku)
            if sku == "gone":
                raise Missing(sku, "deleted")
            return sku

        assert ("a", "a") == (product("a"), product("a"))
        for _ in range(2):
            with pytest.raises(Missing, match="gone: deleted"):
                product("gone")
        assert ["a", "gone"] == calls
        assert (1, 1) == (cache.stats.loads, cache.stats.load_errors)

    def test_sync_function_on_async_client(self, redis_proc, prefix):
        """Refuses a plain function on an asyncio RedisCache, naming cache."""
        client = redis_proc.async_client()
        cache = RedisCache(client, ttl=30.0, prefix=prefix)

        with pytest.raises(TypeError, match="cache=RedisCache has an asyncio"):
            cached(ttl=30.0, cache=cache, namespace="s")(lambda x: x)
        asyncio.run(client.aclose())

    def test_lambdas_need_namespace(self, redis_client, prefix):
        """Refuses two lambdas on one RedisCache without namespace=."""
        cache = RedisCache(redis_client, ttl=30.0, prefix=prefix)

        with pytest.raises(ConfigurationError, match="namespace"):
            cached(ttl=30.0, cache=cache)(lambda x: x + 1)
