"""Argument checks: costs, keys, limiter names, timeouts, client retries."""

from __future__ import annotations

import asyncio
import inspect
import logging
from typing import TYPE_CHECKING, Any

import pytest
from redis.backoff import NoBackoff
from redis.retry import Retry

from dprims.errors import ConfigurationError
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


if TYPE_CHECKING:
    from collections.abc import Callable

    from dprims.testing import FakeClock


ALL = [
    pytest.param(TokenBucket, (0.001, 5), id="TokenBucket"),
    pytest.param(GCRA, (0.001, 5), id="GCRA"),
    pytest.param(FixedWindow, (5, 60.0), id="FixedWindow"),
    pytest.param(SlidingWindow, (5, 60.0), id="SlidingWindow"),
    pytest.param(SlidingLog, (5, 60.0), id="SlidingLog"),
]

BAD_COSTS = [
    pytest.param(1.0, id="float"),
    pytest.param(True, id="bool"),
    pytest.param(2.0, id="float2"),
]

BAD_KEYS = [
    pytest.param(42, id="int"),
    pytest.param(None, id="None"),
    pytest.param(b"x", id="bytes"),
]

PENALTY = Penalty(threshold=3, window=60.0, ban=60.0)


class TestCost:
    @pytest.mark.parametrize("cost", BAD_COSTS)
    @pytest.mark.parametrize(("cls", "args"), ALL)
    def test_non_int_cost_is_a_type_error(
        self,
        make: Callable[..., Any],
        cls: type,
        args: tuple[Any, ...],
        cost: Any,
    ) -> None:
        """A cost that is not an int (1.0, True) raises a TypeError naming cost."""
        limiter = make(cls, *args)

        with pytest.raises(TypeError, match="cost"):
            limiter.acquire("k", cost)
        with pytest.raises(TypeError, match="cost"):
            limiter.acquire_many([("k", cost)])

    @pytest.mark.parametrize("cost", BAD_COSTS)
    def test_non_int_cost_with_a_penalty(
        self, make: Callable[..., Any], cost: Any
    ) -> None:
        """The penalty path checks the cost's type as the fast path does."""
        limiter = make(FixedWindow, 5, 60.0, penalty=PENALTY)

        with pytest.raises(TypeError, match="cost"):
            limiter.acquire("k", cost)

    def test_float_cost_does_not_make_remaining_a_float(
        self, make: Callable[..., Any]
    ) -> None:
        """After a rejected 1.0, an int cost of 1 still counts in ints."""
        limiter = make(FixedWindow, 5, 60.0)

        with pytest.raises(TypeError, match="cost"):
            limiter.acquire("k", 1.0)
        decision = limiter.acquire("k", 1)

        assert (True, 4) == (decision.allowed, decision.remaining)
        assert int is type(decision.remaining)

    def test_float_cost_is_refused_on_the_asyncio_path(
        self, clock: FakeClock
    ) -> None:
        """acquire_async refuses a float cost like acquire does."""
        limiter = FixedWindow(5, 60.0, clock=clock)

        with pytest.raises(TypeError, match="cost"):
            asyncio.run(limiter.acquire_async("k", 1.0))


class TestKey:
    @pytest.mark.parametrize("key", BAD_KEYS)
    @pytest.mark.parametrize(("cls", "args"), ALL)
    def test_non_str_key_is_a_type_error(
        self,
        make: Callable[..., Any],
        cls: type,
        args: tuple[Any, ...],
        key: Any,
    ) -> None:
        """Every store refuses a key that is not a str, naming key."""
        limiter = make(cls, *args)

        with pytest.raises(TypeError, match="key"):
            limiter.acquire(key)
        with pytest.raises(TypeError, match="key"):
            limiter.peek(key)
        with pytest.raises(TypeError, match="key"):
            limiter.reset(key)
        with pytest.raises(TypeError, match="key"):
            limiter.wait(key, timeout=1.0)
        with pytest.raises(TypeError, match="key"):
            limiter.acquire_many([(key, 1)])

    @pytest.mark.parametrize("key", BAD_KEYS)
    @pytest.mark.parametrize(("cls", "args"), ALL[:2])
    def test_reserve_refuses_a_non_str_key(
        self,
        make: Callable[..., Any],
        cls: type,
        args: tuple[Any, ...],
        key: Any,
    ) -> None:
        """reserve refuses a key that is not a str, naming key."""
        limiter = make(cls, *args)

        with pytest.raises(TypeError, match="key"):
            limiter.reserve(key)

    @pytest.mark.parametrize("key", BAD_KEYS)
    def test_penalty_and_multi_paths_refuse_a_non_str_key(
        self, make: Callable[..., Any], store: Any, key: Any
    ) -> None:
        """Limiters with a penalty or several limits check the key too."""
        banned = make(FixedWindow, 5, 60.0, penalty=PENALTY)
        multi = MultiLimiter(
            [make(FixedWindow, 5, 60.0), make(TokenBucket, 1.0, 5)],
            store=store,
        )

        for limiter in (banned, multi):
            with pytest.raises(TypeError, match="key"):
                limiter.acquire(key)
            with pytest.raises(TypeError, match="key"):
                limiter.peek(key)

    def test_bad_key_leaves_no_state(self, clock: FakeClock) -> None:
        """A refused key is not stored, so it is refused every time."""
        limiter = FixedWindow(5, 60.0, clock=clock)

        for _ in range(2):
            with pytest.raises(TypeError, match="key"):
                limiter.acquire(42)  # type: ignore[arg-type]

        assert 5 == limiter.peek("42").remaining

    def test_acquire_many_refuses_a_bare_non_str_item(
        self, clock: FakeClock
    ) -> None:
        """acquire_many([42]) raises a TypeError naming items."""
        limiter = FixedWindow(5, 60.0, clock=clock)

        with pytest.raises(TypeError, match="items"):
            limiter.acquire_many([42])  # type: ignore[list-item]

    def test_wait_refuses_a_non_number_timeout(self, clock: FakeClock) -> None:
        """wait(timeout="1") raises a TypeError naming timeout."""
        limiter = FixedWindow(5, 60.0, clock=clock)

        with pytest.raises(TypeError, match="timeout"):
            limiter.wait("k", timeout="1")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="timeout"):
            asyncio.run(limiter.wait_async("k", timeout="1"))  # type: ignore[arg-type]


class TestName:
    @pytest.mark.parametrize("name", ["n:ban", "a:b", "a{b", "a}b", "}"])
    def test_name_with_a_key_separator_is_refused(self, name: str) -> None:
        """A name holding ':', '{' or '}' raises a ConfigurationError naming name."""
        with pytest.raises(ConfigurationError, match="name"):
            FixedWindow(5, 60.0, name=name)
        with pytest.raises(ConfigurationError, match="name"):
            ConcurrencyLimiter(5, name=name)

    @pytest.mark.parametrize(("cls", "args"), ALL)
    def test_default_names_are_valid(
        self, cls: type, args: tuple[Any, ...]
    ) -> None:
        """Every default generated name passes the name check."""
        limiter = cls(*args)

        assert ":" not in limiter.name
        assert "fw100/60s" == FixedWindow(100, 60.0).name
        assert "cc3" == ConcurrencyLimiter(3).name

    @pytest.mark.redis
    def test_ban_key_cannot_be_another_limiters_key(
        self, redis_client: Any, prefix: str
    ) -> None:
        """A ban of limiter "n" never shares a Redis key with another limiter."""
        store = RedisStore(redis_client, prefix=prefix)
        banned = FixedWindow(
            1, 60.0, store=store, name="n", penalty=Penalty(1, 60.0, 60.0)
        )
        banned.acquire("k")
        assert not banned.acquire("k").allowed  # the denial bans "k"

        with pytest.raises(ConfigurationError, match="name"):
            FixedWindow(5, 60.0, store=store, name="n:ban")
        other = FixedWindow(5, 60.0, store=store, name="ban")
        decision = other.acquire("k")

        assert (True, 4) == (decision.allowed, decision.remaining)
        assert not banned.acquire("k").allowed


class TestRedisRetries:
    @pytest.mark.redis
    def test_many_retries_log_a_warning(
        self, redis_client: Any, prefix: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A client that retries more than once gets a warning naming the fix."""
        assert redis_client.get_retry()._retries > 1  # redis-py's default

        with caplog.at_level(logging.WARNING, logger="dprims.ratelimit.redis"):
            RedisStore(redis_client, prefix=prefix)

        messages = [record.getMessage() for record in caplog.records]
        assert 1 == len(messages)
        assert "Retry(NoBackoff(), 1)" in messages[0]

    @pytest.mark.redis
    @pytest.mark.parametrize("retries", [0, 1])
    def test_few_retries_log_nothing(
        self,
        redis_proc: Any,
        prefix: str,
        caplog: pytest.LogCaptureFixture,
        retries: int,
    ) -> None:
        """A client that retries at most once is accepted silently."""
        client = redis_proc.client(retry=Retry(NoBackoff(), retries))
        try:
            with caplog.at_level(
                logging.WARNING, logger="dprims.ratelimit.redis"
            ):
                RedisStore(client, prefix=prefix)
        finally:
            client.close()

        assert [] == caplog.records


class TestDocstrings:
    def test_metrics_are_passed_to_limiters_not_stores(self) -> None:
        """RateLimitMetrics' docstring points only at hooks= parameters that exist."""
        doc = inspect.getdoc(RateLimitMetrics) or ""

        assert "hooks" not in inspect.signature(RedisStore).parameters
        assert "hooks" in inspect.signature(FixedWindow).parameters
        assert "as ``hooks=`` to a `RedisStore`" not in doc
        assert "``hooks=`` to each limiter" in doc

    def test_redis_store_states_the_real_time_bound(self) -> None:
        """RedisStore and wait document that retries multiply socket_timeout."""
        store_doc = inspect.getdoc(RedisStore) or ""
        wait_doc = inspect.getdoc(FixedWindow.wait) or ""

        assert "Retry(NoBackoff(), 1)" in store_doc
        assert "retries" in wait_doc
