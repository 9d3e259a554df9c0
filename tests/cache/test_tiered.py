"""TieredCache against real Redis: near cache, pub/sub invalidation, outages."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import time
from typing import TYPE_CHECKING, Any

import pytest
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.retry import Retry

from dprims.cache import TTLCache, cached
from dprims.cache.redis import RedisCache
from dprims.cache.tiered import TieredCache


if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from dprims.testing import RedisServer


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll *predicate* until it is true or *timeout* seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return bool(predicate())


def heard(
    reader: TieredCache, write: Callable[[], object], n: int = 1
) -> None:
    """Run *write* and wait until *reader* has received its n messages."""
    seen = reader._seen
    write()
    assert wait_until(lambda: reader._seen >= seen + n)


def make_tiered(client: Any, prefix: str, **kwargs: Any) -> TieredCache:
    # retry_after=0: every call tries Redis, so a restart is seen at once.
    return TieredCache(
        TTLCache(maxsize=100, ttl=60.0),
        RedisCache(client, ttl=60.0, prefix=prefix, retry_after=0),
        **kwargs,
    )


@pytest.fixture
def pair(redis_client, prefix) -> Iterator[tuple[TieredCache, TieredCache]]:
    """Two tiered caches sharing one prefix, as two processes would."""
    with (
        make_tiered(redis_client, prefix) as a,
        make_tiered(redis_client, prefix) as b,
    ):
        yield a, b


@pytest.mark.redis
class TestTieredCache:
    """The blocking API on a standalone server."""

    def test_reads_fill_local(self, pair):
        """Copies a Redis hit into the local store."""
        a, b = pair
        heard(b, lambda: a.set("k", {"v": 1}))
        assert "k" not in b.local
        assert {"v": 1} == b.get("k")
        assert {"v": 1} == b.local.get("k")
        assert "missing" == b.get("nope", "missing")
        assert (1, 1) == (b.stats.hits, b.stats.misses)

    def test_set_invalidates_other_instances(self, pair):
        """Drops another instance's local copy after a write."""
        a, b = pair
        heard(b, lambda: a.set("k", "old"))
        assert "old" == b.get("k")
        seen = a._seen
        a.set("k", "new")
        assert wait_until(lambda: "k" not in b.local)
        assert "new" == b.get("k")
        # The writer hears its own message and keeps its fresh copy.
        assert wait_until(lambda: a._seen > seen)
        assert "new" == a.local.get("k")

    def test_delete_and_clear_invalidate(self, pair):
        """Propagates delete and clear to other instances' local stores."""
        a, b = pair
        heard(b, lambda: (a.set("x", 1), a.set("y", 2)), 2)
        assert (1, 2) == (b.get("x"), b.get("y"))
        assert a.delete("x") is True
        assert wait_until(lambda: "x" not in b.local)
        assert "y" in b.local
        assert b.get("x") is None
        a.clear()
        assert wait_until(lambda: "y" not in b.local)
        assert "y" not in a
        assert a.delete("y") is False

    def test_get_or_load(self, pair):
        """Serves local, then remote, then the loader, counting each."""
        a, b = pair
        calls = []

        def loader():
            calls.append(1)
            return [1]

        assert [1] == a.get_or_load("k", loader)
        assert [1] == a.get_or_load("k", loader)
        assert [1] == b.get_or_load("k", loader, ttl=30.0)
        assert 1 == len(calls)
        assert (1, 1, 1, 0) == (
            a.stats.hits,
            a.stats.misses,
            a.stats.loads,
            a.stats.load_errors,
        )
        assert 0 == a.stats.evictions

    def test_loader_error_is_counted(self, pair):
        """Counts a failed load and stores nothing."""
        a, _ = pair

        def loader():
            raise LookupError("boom")

        with pytest.raises(LookupError):
            a.get_or_load("k", loader)
        assert 1 == a.stats.load_errors
        assert "k" not in a

    def test_per_call_ttl_caps_local_copy(self, redis_client, pair):
        """Sets the per-call TTL on Redis and bounds the local copy by it."""
        a, _ = pair
        a.set("k", 1, ttl=0.05)
        assert 0 < redis_client.pttl(a.remote.redis_key("k")) <= 50
        assert wait_until(lambda: "k" not in a.local)

    def test_unencodable_value_writes_nothing(self, pair):
        """Raises TypeError and leaves both tiers untouched."""
        a, _ = pair
        with pytest.raises(TypeError, match="object"):
            a.set("k", object())
        assert "k" not in a

    def test_invalidation_voids_racing_fill(self, pair):
        """Does not store a value read before a concurrent invalidation."""
        a, _ = pair
        generation = a._generation
        a._on_message(b'{"origin":"someone-else","key":"k"}')
        a._fill("k", "stale", generation)
        assert "k" not in a.local

    def test_other_message_kinds_are_ignored(self, pair):
        """Ignores pub/sub replies that are neither subscriptions nor data."""
        a, _ = pair
        a.local.set("k", 1)
        a._dispatch({"type": "pong", "data": b""})
        assert 1 == a.local.get("k")

    def test_local_store_without_ttl(self, redis_client, prefix):
        """Passes the per-call TTL to a local store with no default TTL."""

        class PlainLocal(TTLCache):
            ttl = None  # hides TTLCache.ttl, as a store without one would

        with TieredCache(
            PlainLocal(maxsize=10, ttl=60.0),
            RedisCache(redis_client, ttl=60.0, prefix=prefix),
        ) as tiered:
            tiered.set("k", 1, ttl=0.05)
            assert wait_until(lambda: "k" not in tiered.local)

    def test_malformed_messages_are_ignored(self, redis_client, pair, caplog):
        """Logs and skips messages that are not ours."""
        a, b = pair
        heard(a, lambda: b.set("k", 1))
        assert 1 == a.get("k")
        with caplog.at_level(logging.WARNING, logger="dprims.cache.tiered"):
            redis_client.publish(a.channel, b"not json")
            redis_client.publish(a.channel, b'{"origin":"x","key":3}')
            assert wait_until(lambda: caplog.text.count("malformed") >= 2)
        assert 1 == a.local.get("k")

    def test_custom_channel_and_repr(self, redis_client, prefix):
        """Uses the given channel and describes itself."""
        with make_tiered(redis_client, prefix, channel=f"{prefix}-ch") as c:
            assert f"{prefix}-ch" == c.channel
            assert c.str_keys is True
            assert c.listening is True
            assert "listening" in repr(c)
        assert "closed" in repr(c)
        c.close()

    @pytest.mark.parametrize(
        ("kwargs", "error"),
        [
            ({"channel": 3}, TypeError),
            ({"channel": ""}, ValueError),
            ({"start_timeout": 0}, ValueError),
        ],
    )
    def test_rejects_bad_arguments(self, redis_client, prefix, kwargs, error):
        """Raises for a bad channel or start timeout."""
        remote = RedisCache(redis_client, ttl=1.0, prefix=prefix)
        with pytest.raises(error):
            TieredCache(TTLCache(maxsize=1, ttl=1.0), remote, **kwargs)

    def test_rejects_non_redis_remote(self):
        """Raises TypeError when remote is not a RedisCache."""
        local = TTLCache(maxsize=1, ttl=1.0)
        with pytest.raises(TypeError, match="RedisCache"):
            TieredCache(local, local)  # type: ignore[arg-type]

    def test_async_start_refused_for_blocking(self, pair):
        """Refuses to start an asyncio listener on a blocking client."""
        a, _ = pair
        with pytest.raises(TypeError, match="blocking"):
            asyncio.run(a.start_async())


# ------------------------------------------------------- a second process


def _child(port: int, prefix: str, inbox: Any, outbox: Any) -> None:
    """Hold a tiered cache and report when local copies are dropped."""
    import redis

    client = redis.Redis(port=port, socket_timeout=5.0)
    tiered = TieredCache(
        TTLCache(maxsize=100, ttl=60.0),
        RedisCache(client, ttl=60.0, prefix=prefix),
    )
    try:
        got = [tiered.get(k) for k in ("k1", "k2", "k3")]
        outbox.put(("ready", got, tiered.listening))
        for key in ("k1", "k2", "k3"):
            inbox.get(timeout=30)
            deadline = time.monotonic() + 10.0
            while key in tiered.local and time.monotonic() < deadline:
                time.sleep(0.01)
            outbox.put((key, key not in tiered.local, tiered.get(key)))
    finally:
        tiered.close()
        client.close()


@pytest.mark.redis
def test_second_process_sees_invalidations(redis_proc, redis_client, prefix):
    """Drops a child process's local copies after set, delete and clear."""
    ctx = multiprocessing.get_context("spawn")
    inbox, outbox = ctx.Queue(), ctx.Queue()
    with make_tiered(redis_client, prefix) as parent:
        for key in ("k1", "k2", "k3"):
            parent.set(key, f"old-{key}")
        child = ctx.Process(
            target=_child, args=(redis_proc.port, prefix, inbox, outbox)
        )
        child.start()
        try:
            assert (
                "ready",
                ["old-k1", "old-k2", "old-k3"],
                True,
            ) == outbox.get(timeout=60)
            parent.set("k1", "new-k1")
            inbox.put("go")
            assert ("k1", True, "new-k1") == outbox.get(timeout=30)
            parent.delete("k2")
            inbox.put("go")
            assert ("k2", True, None) == outbox.get(timeout=30)
            parent.clear()
            inbox.put("go")
            assert ("k3", True, None) == outbox.get(timeout=30)
        finally:
            child.join(30)
            if child.is_alive():
                child.kill()
                child.join(5)
            for queue in (inbox, outbox):
                queue.close()
                queue.join_thread()
    assert 0 == child.exitcode


# ----------------------------------------------------------------- asyncio


@pytest.mark.redis
def test_async_instances_invalidate_each_other(redis_proc, prefix):
    """Propagates asyncio writes to another instance and back."""

    async def main():
        client = redis_proc.async_client()
        try:
            a = TieredCache(
                TTLCache(maxsize=10, ttl=60.0),
                RedisCache(client, ttl=60.0, prefix=prefix),
            )
            b = TieredCache(
                TTLCache(maxsize=10, ttl=60.0),
                RedisCache(client, ttl=60.0, prefix=prefix),
            )
            async with a, b:
                await a.set_async("k", "old")
                first = await b.get_async("k")
                await a.set_async("k", "new")
                for _ in range(500):
                    if "k" not in b.local:
                        break
                    await asyncio.sleep(0.01)
                dropped = "k" not in b.local
                second = await b.get_async("k")
                assert second == await b.get_async("k")  # now a local hit
                missing = await b.get_async("nope", "d")

                async def loader():
                    return 5

                loaded = await b.get_or_load_async("n", loader)
                again = await b.get_or_load_async("n", loader)
                present = await a.contains_async("n")
                removed = await b.delete_async("n")
                await b.clear_async()
                for _ in range(500):
                    if "k" not in a.local:
                        break
                    await asyncio.sleep(0.01)
                gone = await a.contains_async("k")
                with pytest.raises(TypeError, match="get_async"):
                    a.get("k")
            return (first, dropped, second, missing, loaded, again, present,
                    removed, gone, b.stats.loads)  # fmt: skip
        finally:
            await client.aclose()

    assert ("old", True, "new", "d", 5, 5, True, True, False, 1) == (
        asyncio.run(main())
    )


@pytest.mark.redis
def test_async_loader_error_is_counted(redis_proc, prefix):
    """Counts a failed async load; aclose is idempotent."""

    async def main():
        client = redis_proc.async_client()
        try:
            tiered = TieredCache(
                TTLCache(maxsize=10, ttl=60.0),
                RedisCache(client, ttl=60.0, prefix=prefix),
            )

            async def loader():
                raise LookupError("boom")

            with pytest.raises(LookupError):
                await tiered.get_or_load_async("k", loader)
            await tiered.aclose()
            await tiered.aclose()
            closed = TieredCache(TTLCache(maxsize=10, ttl=60.0), tiered.remote)
            closed.close()  # no thread on an asyncio instance
            await closed.aclose()
            with pytest.raises(RuntimeError, match="closed"):
                await closed.start_async()
            return tiered.stats.load_errors
        finally:
            await client.aclose()

    assert 1 == asyncio.run(main())


# ------------------------------------------------------------------ Cluster


@pytest.mark.redis_cluster
def test_cluster_invalidation(redis_cluster_client, prefix):
    """Invalidates across instances on Redis Cluster."""
    with (
        make_tiered(redis_cluster_client, prefix) as a,
        make_tiered(redis_cluster_client, prefix) as b,
    ):
        heard(b, lambda: a.set("k", 1))
        assert 1 == b.get("k")
        a.set("k", 2)
        assert wait_until(lambda: "k" not in b.local)
        assert 2 == b.get("k")


# ------------------------------------------------------------------ outages


def _fast_client(server: RedisServer) -> Any:
    return server.client(
        socket_timeout=0.5,
        socket_connect_timeout=0.5,
        retry=Retry(NoBackoff(), 1),
    )


@pytest.mark.redis
def test_redis_down_and_back(own_redis, prefix, caplog):
    """Serves local copies and loaders while down, resubscribes after."""
    client = _fast_client(own_redis)
    try:
        with make_tiered(client, prefix) as tiered:
            tiered.set("k", "v")
            own_redis.kill()
            with caplog.at_level(logging.DEBUG):
                assert "v" == tiered.get("k")
                assert "loaded" == tiered.get_or_load("x", lambda: "loaded")
                tiered.set("k", "w")  # dropped: Redis is down
                assert "k" not in tiered.local
                assert wait_until(lambda: not tiered.listening)
            assert "lost" in caplog.text
            assert "get_or_load failed" in caplog.text
            tiered.local.set("stale", 1)
            own_redis.start()
            assert wait_until(lambda: tiered.listening)
            # Resubscribing drops everything: invalidations may be lost.
            assert "stale" not in tiered.local
            tiered.set("k", "back")
            assert "back" == tiered.get("k")
    finally:
        client.close()


@pytest.mark.redis
def test_start_while_down(own_redis, prefix, caplog):
    """Starts without a subscription when Redis is down, and catches up."""
    client = _fast_client(own_redis)
    try:
        own_redis.stop()
        with caplog.at_level(logging.WARNING, logger="dprims.cache.tiered"):
            tiered = make_tiered(client, prefix, start_timeout=0.2)
        try:
            assert "not subscribed" in caplog.text
            assert tiered.listening is False
            assert "not listening" in repr(tiered)
            tiered.delete("k")  # publish fails, logged, no exception
            own_redis.start()
            assert wait_until(lambda: tiered.listening)
        finally:
            tiered.close()
    finally:
        client.close()


@pytest.mark.redis
def test_async_redis_down_and_back(own_redis, prefix, caplog):
    """Starts while Redis is down, drops writes, and catches up after."""

    async def main():
        client = own_redis.async_client(
            socket_timeout=0.5,
            socket_connect_timeout=0.5,
            retry=AsyncRetry(NoBackoff(), 1),
        )
        own_redis.stop()
        tiered = TieredCache(
            TTLCache(maxsize=10, ttl=60.0),
            RedisCache(client, ttl=60.0, prefix=prefix, retry_after=0),
            start_timeout=0.2,
        )
        try:
            await tiered.start_async()
            tiered.local.set("k", 0)
            await tiered.set_async("k", 1)  # dropped, local copy too
            dropped = "k" not in tiered.local
            removed = await tiered.delete_async("k")  # publish fails
            own_redis.start()
            for _ in range(500):
                if tiered.listening:
                    break
                await asyncio.sleep(0.01)
            listening = tiered.listening
            await asyncio.sleep(0.3)  # an idle poll with no message
            await tiered.set_async("k", 2)
            return dropped, removed, listening, await tiered.get_async("k")
        finally:
            await tiered.aclose()
            await client.aclose()

    with caplog.at_level(logging.WARNING):
        assert (True, False, True, 2) == asyncio.run(main())
    assert "not subscribed" in caplog.text


@pytest.mark.redis
def test_get_or_load_ttl_caps_local_copy(redis_client, prefix, clock):
    """Keeps the local copy of get_or_load(ttl=...) no longer than that ttl."""
    tiered = TieredCache(
        TTLCache(maxsize=10, ttl=60.0, clock=clock),
        RedisCache(redis_client, ttl=60.0, prefix=prefix),
    )
    try:
        assert 1 == tiered.get_or_load("k", lambda: 1, ttl=5.0)
        assert "k" in tiered.local
        clock.advance(5.0)

        assert "k" not in tiered.local
    finally:
        tiered.close()


@pytest.mark.redis
def test_async_get_or_load_ttl_caps_local_copy(redis_proc, prefix, clock):
    """Caps the local copy by ttl on the asyncio path too."""

    async def main() -> tuple[bool, bool]:
        client = redis_proc.async_client()
        tiered = TieredCache(
            TTLCache(maxsize=10, ttl=60.0, clock=clock),
            RedisCache(client, ttl=60.0, prefix=prefix),
        )
        try:

            async def load() -> int:
                return 1

            await tiered.get_or_load_async("k", load, ttl=5.0)
            before = "k" in tiered.local
            clock.advance(5.0)
            return before, "k" in tiered.local
        finally:
            await tiered.aclose()
            await client.aclose()

    assert (True, False) == asyncio.run(main())


@pytest.mark.redis
def test_cached_counts_loads_and_skips_on_outage(own_redis, prefix, clock):
    """Counts @cached loads in stats and loads without writing when down."""
    client = _fast_client(own_redis)
    try:
        with make_tiered(client, prefix) as tiered:
            f = cached(ttl=30.0, cache=tiered, namespace="f", clock=clock)(
                lambda x: x * 2
            )
            assert (4, 4) == (f(2), f(2))
            assert 1 == tiered.stats.loads
            own_redis.kill()
            assert 6 == f(3)
            assert (2, 0) == (tiered.stats.loads, tiered.remote.write_errors)
    finally:
        client.close()


@pytest.mark.redis
def test_async_cached_reads_through_tiers(redis_proc, prefix, clock):
    """Serves a coroutine function from the tiers, loading once."""

    async def main() -> tuple[int, int, int]:
        client = redis_proc.async_client()
        tiered = TieredCache(
            TTLCache(maxsize=10, ttl=60.0, clock=clock),
            RedisCache(client, ttl=60.0, prefix=prefix),
        )
        try:

            @cached(ttl=30.0, cache=tiered, namespace="a", clock=clock)
            async def g(x: int) -> int:
                return x * 2

            first, second = await g(2), await g(2)
            tiered.local.clear()
            third = await g(2)
            return (
                first + second + third,
                tiered.stats.loads,
                tiered.stats.hits,
            )
        finally:
            await tiered.aclose()
            await client.aclose()

    assert (12, 1, 2) == asyncio.run(main())
