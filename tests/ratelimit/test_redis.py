"""RedisStore specifics: asyncio clients, TTLs, Cluster, scripts, config."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from typing import Any

import pytest

from dprims.errors import RateLimitExceeded
from dprims.ratelimit import (
    GCRA,
    ConcurrencyLimiter,
    FixedWindow,
    MultiLimiter,
    Penalty,
    RateLimitMetrics,
    RedisStore,
    SlidingLog,
    SlidingWindow,
    TokenBucket,
)


ALL = [
    (TokenBucket, (0.001, 5)),
    (GCRA, (0.001, 5)),
    (FixedWindow, (5, 1e6)),
    (SlidingWindow, (5, 1e6)),
    (SlidingLog, (5, 1e6)),
]


def _async_scenario(handle: Any, prefix: str) -> None:
    """Exercise every asyncio method of every algorithm on *handle*."""

    async def scenario() -> None:
        # The client must live and die inside one event loop.
        client = handle.async_client()
        try:
            await _exercise(RedisStore(client, prefix=prefix))
        finally:
            await client.aclose()

    asyncio.run(scenario())


async def _exercise(store: RedisStore) -> None:
    """Run every asyncio method against *store*."""
    for cls, args in ALL:
        limiter = cls(*args, store=store)
        decision = await limiter.acquire_async("k", 2)
        assert (True, 3) == (decision.allowed, decision.remaining)
        many = await limiter.acquire_many_async(["a", "b", ("k", 3)])
        assert [4, 4, 0] == [d.remaining for d in many]
        assert not (await limiter.peek_async("k")).allowed
        with pytest.raises(RateLimitExceeded):
            await limiter.wait_async("k", timeout=0.5)
        await limiter.reset_async("k")
        assert (await limiter.wait_async("k", cost=5)).allowed
    bucket = TokenBucket(0.01, 2, store=store, name="reserve")
    first = await bucket.reserve_async("r", 2)
    second = await bucket.reserve_async("r", 1)
    assert (0.0, True) == (first.delay, 99 < second.delay <= 100)
    await second.cancel_async()
    assert 0 == (await bucket.peek_async("r")).remaining
    slots = ConcurrencyLimiter(1, lease=60.0, store=store)
    async with await slots.acquire_async("db") as permit:
        assert permit.allowed
        assert await permit.renew_async()
        assert not (await slots.acquire_async("db")).allowed
    assert (await slots.peek_async("db")).allowed
    await slots.reset_async("db")


class TestAsync:
    @pytest.mark.redis
    def test_standalone(self, redis_proc: Any, prefix: str) -> None:
        """Every _async method works on a redis.asyncio client."""
        _async_scenario(redis_proc, prefix)

    @pytest.mark.redis_cluster
    def test_cluster(self, redis_cluster_proc: Any, prefix: str) -> None:
        """Every _async method works on a redis.asyncio cluster client."""
        _async_scenario(redis_cluster_proc, prefix)

    @pytest.mark.redis
    def test_wrong_flavour_is_a_type_error(
        self, redis_proc: Any, redis_client: Any, prefix: str
    ) -> None:
        """Blocking calls on an asyncio store (and back) fail clearly."""
        blocking = RedisStore(redis_client, prefix=prefix)

        async def scenario() -> None:
            async_client = redis_proc.async_client()
            async_store = RedisStore(async_client, prefix=prefix)
            with pytest.raises(TypeError, match="_async"):
                TokenBucket(1, 1, store=async_store).acquire("k")
            with pytest.raises(TypeError, match="_async"):
                ConcurrencyLimiter(1, store=async_store).acquire("k")
            with pytest.raises(TypeError, match="blocking"):
                await TokenBucket(1, 1, store=blocking).acquire_async("k")
            with pytest.raises(TypeError, match="blocking"):
                await ConcurrencyLimiter(1, store=blocking).acquire_async("k")
            await async_client.aclose()

        asyncio.run(scenario())


@pytest.mark.redis
class TestKeys:
    def test_every_key_has_a_ttl(self, redis_client: Any, prefix: str) -> None:
        """Every key a limiter writes expires on its own."""
        store = RedisStore(redis_client, prefix=prefix)
        penalty = Penalty(threshold=1, window=5.0, ban=5.0)
        for cls, args in ALL:
            limiter = cls(*args, store=store, penalty=penalty)
            limiter.acquire_many(["k", ("k", 5)])
        TokenBucket(1, 2, store=store, name="r").reserve("k", 2)
        ConcurrencyLimiter(1, store=store).acquire("k")

        keys = redis_client.keys(f"{prefix}:*")
        assert 12 == len(keys)
        assert all(redis_client.pttl(key) > 0 for key in keys)

    def test_key_shape(self, redis_client: Any, prefix: str) -> None:
        """Keys are prefix:{escaped user key}:limiter name."""
        store = RedisStore(redis_client, prefix=prefix)
        FixedWindow(1, 60.0, store=store, name="api").acquire("u:{1}")

        assert [f"{prefix}:{{u:%7B1%7D}}:api".encode()] == redis_client.keys(
            f"{prefix}:*"
        )

    def test_sliding_log_stays_bounded(
        self, redis_client: Any, prefix: str
    ) -> None:
        """The log never holds more members than the limit."""
        store = RedisStore(redis_client, prefix=prefix)
        limiter = SlidingLog(50, 1e6, store=store, name="log")
        limiter.acquire_many([("k", 3)] * 40)

        assert 48 == redis_client.zcard(f"{prefix}:{{k}}:log")

    def test_script_flush_is_survived(
        self, redis_client: Any, prefix: str
    ) -> None:
        """After SCRIPT FLUSH the script is re-sent, and counted once."""
        store = RedisStore(redis_client, prefix=prefix)
        limiter = FixedWindow(10, 1e6, store=store)
        limiter.acquire("k", 3)
        redis_client.script_flush()

        assert 6 == limiter.acquire("k").remaining
        redis_client.script_flush()
        assert [5, 9] == [
            d.remaining for d in limiter.acquire_many(["k", "j"])
        ]
        script = limiter._backend._script
        assert [True] == redis_client.script_exists(script.sha)

    def test_configuration_errors(self, redis_proc: Any) -> None:
        """Bad policies, prefixes and timeout-less clients are refused."""
        client = redis_proc.client()
        no_timeout = redis_proc.client(socket_timeout=None)
        with pytest.raises(ValueError, match="on_error"):
            RedisStore(client, on_error="maybe")
        with pytest.raises(ValueError, match="prefix"):
            RedisStore(client, prefix="a{b}")
        with pytest.raises(ValueError, match="retry_interval"):
            RedisStore(client, retry_interval=0)
        with pytest.raises(ValueError, match="socket_timeout"):
            RedisStore(no_timeout)
        assert "RedisStore(prefix='dprims:rl', standalone" in repr(
            RedisStore(client)
        )
        client.close()
        no_timeout.close()

    def test_hooks_see_latency(self, redis_client: Any, prefix: str) -> None:
        """Backend hooks receive one call per round trip."""
        metrics = RateLimitMetrics()
        limiter = GCRA(
            1, 2, store=RedisStore(redis_client, prefix=prefix), hooks=metrics
        )
        limiter.acquire_many(["a", "b", "c"])
        limiter.acquire("a")

        assert (2, 0) == (metrics.backend_calls, metrics.backend_errors)
        assert metrics.backend_seconds > 0
        assert "allowed=4" in repr(metrics)


@pytest.mark.redis_cluster
class TestCluster:
    def test_many_slots_in_one_call(
        self, redis_cluster_client: Any, prefix: str
    ) -> None:
        """acquire_many over keys in every node never raises CROSSSLOT."""
        store = RedisStore(redis_cluster_client, prefix=prefix)
        both = MultiLimiter(
            [
                TokenBucket(0.001, 2, store=store),
                FixedWindow(3, 1e6, store=store),
            ],
            store=store,
        )
        keys = [f"user:{i}" for i in range(60)]

        first = both.acquire_many(keys + keys + keys)

        assert [True] * 120 + [False] * 60 == [d.allowed for d in first]
        assert 3 == len(
            {
                redis_cluster_client.get_node_from_key(
                    f"{prefix}:{{{key}}}"
                ).name
                for key in keys
            }
        )

    def test_script_flush_on_every_node(
        self, redis_cluster_client: Any, prefix: str
    ) -> None:
        """NOSCRIPT inside a per-node pipeline is re-sent, counted once."""
        store = RedisStore(redis_cluster_client, prefix=prefix)
        limiter = SlidingWindow(4, 1e6, store=store)
        keys = [f"k{i}" for i in range(20)]
        limiter.acquire_many(keys)
        for node in redis_cluster_client.get_primaries():
            redis_cluster_client.get_redis_connection(node).script_flush()

        assert [2] * 20 == [d.remaining for d in limiter.acquire_many(keys)]


@pytest.mark.redis
def test_import_does_not_load_redis() -> None:
    """import dprims.ratelimit leaves redis-py unloaded until RedisStore."""
    code = (
        "import sys, dprims.ratelimit as rl\n"
        "print('redis' in sys.modules)\n"
        "rl.RedisStore\n"
        "print('redis' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )

    assert ["False", "True"] == result.stdout.split()


def test_unknown_attribute() -> None:
    """The lazy module attribute hook only serves RedisStore."""
    import dprims.ratelimit

    with pytest.raises(AttributeError, match="nope"):
        _ = dprims.ratelimit.nope  # type: ignore[attr-defined]


def test_lua_files_state_their_contract() -> None:
    """Every Lua file opens with its KEYS, ARGV and Returns header."""
    from importlib import resources

    files = [
        entry
        for entry in resources.files("dprims.ratelimit._lua").iterdir()
        if entry.name.endswith(".lua")
    ]

    assert 13 == len(files)
    for entry in files:
        head = entry.read_text("utf-8").splitlines()[:20]
        for marker in ("-- KEYS[", "-- ARGV[", "-- Returns"):
            assert any(line.startswith(marker) for line in head), entry.name


class TestFastPath:
    """``acquire`` of one limit uses its algorithm's own script."""

    @pytest.mark.parametrize(("cls", "args"), ALL)
    def test_agrees_with_the_general_script(
        self, redis_client: Any, prefix: str, cls: Any, args: Any
    ) -> None:
        """The hot-path script decides as the general driver does."""
        store = RedisStore(redis_client, prefix=prefix)
        limiter = cls(*args, store=store)
        costs = [2, 1, 3, 1, 1, 5, 1]
        fast = [limiter.acquire("fast", cost) for cost in costs]
        slow = [limiter.acquire_many([("slow", cost)])[0] for cost in costs]

        assert [d[:3] for d in slow] == [d[:3] for d in fast]
        for one, other in zip(fast, slow, strict=True):
            assert one.retry_after == pytest.approx(other.retry_after, abs=1)
            assert one.reset_after == pytest.approx(other.reset_after, abs=1)
        # Both scripts share the key: the general one reads what it wrote.
        assert limiter.peek("fast")[:3] == limiter.peek("slow")[:3]

    def test_reconfigure_reaches_the_fast_path(
        self, redis_client: Any, prefix: str
    ) -> None:
        """A new limit applies to the very next acquire."""
        store = RedisStore(redis_client, prefix=prefix)
        limiter = FixedWindow(3, 1e6, store=store)
        assert 2 == limiter.acquire("k").remaining
        limiter.reconfigure(limit=10)
        decision = limiter.acquire("k", 4)

        assert (True, 10, 5) == decision[:3]

    def test_decoded_replies(self, redis_proc: Any, prefix: str) -> None:
        """A client with decode_responses=True gets the same decisions."""
        store = RedisStore(
            redis_proc.client(decode_responses=True), prefix=prefix
        )
        for cls, args in ALL:
            limiter = cls(*args, store=store)
            assert (True, 5, 3) == limiter.acquire("k", 2)[:3]
            assert (False, 5, 3) == limiter.acquire("k", 4)[:3]

    def test_key_names_are_escaped_and_bounded(
        self, redis_client: Any, prefix: str, monkeypatch: Any
    ) -> None:
        """The fast path's key cache escapes like tagged_key, and is bounded."""
        from dprims.ratelimit import redis as redis_module

        monkeypatch.setattr(redis_module, "_NAMES_MAX", 3)
        store = RedisStore(redis_client, prefix=prefix)
        limiter = FixedWindow(5, 1e6, store=store, name="fw")
        keys = ["a}:x{", "%7B", "{b}", "c", "d", "a}:x{"]
        for key in keys:
            limiter.acquire(key)

        assert len(limiter._backend._fast_names) <= 3
        assert {
            f"{prefix}:{{a%7D:x%7B}}:fw",
            f"{prefix}:{{%257B}}:fw",
            f"{prefix}:{{%7Bb%7D}}:fw",
            f"{prefix}:{{c}}:fw",
            f"{prefix}:{{d}}:fw",
        } == {k.decode() for k in redis_client.keys(f"{prefix}:*")}
        assert 3 == limiter.peek("a}:x{").remaining
