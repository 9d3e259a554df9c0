"""Failure policies against a real Redis that is stopped or frozen."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import pytest
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.retry import Retry

from dprims.errors import BackendError, BackendTimeout
from dprims.ratelimit import (
    GCRA,
    FixedWindow,
    MultiLimiter,
    RateLimitMetrics,
    RedisStore,
    TokenBucket,
)


if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from dprims.testing import FakeClock


pytestmark = pytest.mark.redis

LOGGER = "dprims.ratelimit.redis"


@pytest.fixture
def connect(own_redis: Any) -> Iterator[Callable[[], Any]]:
    """Make clients of the private server; close them all afterwards."""
    made: list[Any] = []

    def factory() -> Any:
        # redis-py 6+ retries 3-10 times with backoff by default; a policy
        # test wants each round trip to fail once, after the socket timeout.
        client = own_redis.client(
            socket_timeout=0.5,
            socket_connect_timeout=0.5,
            retry=Retry(NoBackoff(), 0),
        )
        made.append(client)
        return client

    yield factory
    for client in made:
        client.close()


def _store(
    connect: Callable[[], Any], policy: str, clock: FakeClock
) -> RedisStore:
    return RedisStore(
        connect(),
        prefix="faults",
        on_error=policy,
        retry_interval=2.0,
        clock=clock,
    )


async def _async_steps(own_redis: Any, client: Any, clock: FakeClock) -> None:
    """Run the policy steps of test_asyncio_policy on *client*."""
    store = RedisStore(
        client, on_error="deny", retry_interval=2.0, clock=clock
    )
    limiter = TokenBucket(0.001, 3, store=store)
    assert (await limiter.acquire_async("k")).allowed
    own_redis.stop()
    assert not (await limiter.acquire_async("k")).allowed
    assert not (await limiter.peek_async("k")).allowed
    assert not (await limiter.reserve_async("k")).ok
    await limiter.reset_async("k")
    clock.advance(2.0)
    assert not (await limiter.peek_async("k")).allowed
    clock.advance(2.0)
    await (await limiter.reserve_async("k")).cancel_async()
    clock.advance(2.0)
    await limiter.reset_async("k")
    own_redis.start()
    clock.advance(2.0)
    assert (await limiter.acquire_async("k")).allowed


class TestStopped:
    def test_raise_is_the_default(
        self, own_redis: Any, connect: Callable[[], Any]
    ) -> None:
        """Without a policy an outage raises BackendError, then recovers."""
        limiter = FixedWindow(5, 1e6, store=RedisStore(connect()))
        assert limiter.acquire("k").allowed
        own_redis.stop()

        with pytest.raises(BackendError):
            limiter.acquire("k")
        with pytest.raises(BackendError):
            limiter.peek("k")
        own_redis.start()
        assert limiter.acquire("k").allowed
        assert 1 <= limiter.store.failures  # type: ignore[attr-defined]

    def test_deny_fails_closed_and_recovers(
        self,
        own_redis: Any,
        clock: FakeClock,
        connect: Callable[[], Any],
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        """Fail closed: deny, log once, skip Redis a while, then recover."""
        store = _store(connect, "deny", clock)
        metrics = RateLimitMetrics()
        limiter = TokenBucket(0.001, 5, store=store, hooks=metrics)
        assert limiter.acquire("k").allowed
        own_redis.stop()

        with caplog.at_level(logging.INFO, logger=LOGGER):
            first = limiter.acquire("k")
            second = limiter.acquire("k")
            own_redis.start()
            still_down = limiter.acquire("k")
            clock.advance(2.0)
            back = limiter.acquire("k")

        assert (False, 2.0) == (first.allowed, first.retry_after)
        assert not second.allowed
        assert not still_down.allowed
        assert back.allowed
        assert (1, 3) == (store.failures, store.fallbacks)
        assert 1 == metrics.backend_errors
        messages = [record.getMessage() for record in caplog.records]
        assert 1 == sum("redis_unavailable" in m for m in messages)
        assert 1 == sum("redis_recovered" in m for m in messages)
        assert store.available

    def test_allow_fails_open(
        self,
        own_redis: Any,
        clock: FakeClock,
        connect: Callable[[], Any],
    ) -> None:
        """Fail open: admit everything while Redis is away."""
        limiter = GCRA(0.001, 1, store=_store(connect, "allow", clock))
        limiter.acquire("k")
        own_redis.stop()

        decisions = limiter.acquire_many(["k", "k", "k"])
        peeked = limiter.peek("k")
        reservation = limiter.reserve("k")
        limiter.reset("k")
        reservation.cancel()

        assert [True] * 3 == [d.allowed for d in decisions]
        assert (True, 1) == (peeked.allowed, peeked.remaining)
        assert (True, 0.0) == (reservation.ok, reservation.delay)

    def test_local_falls_back_per_process(
        self,
        own_redis: Any,
        clock: FakeClock,
        connect: Callable[[], Any],
    ) -> None:
        """Fall back to an in-process limiter with the same parameters."""
        store = _store(connect, "local", clock)
        limiter = TokenBucket(0.001, 3, store=store)
        own_redis.stop()

        decisions = [limiter.acquire("k") for _ in range(4)]
        peeked = limiter.peek("k")
        limiter.reset("k")
        booked = limiter.reserve("k", 3)
        pending = limiter.reserve("k")
        pending.cancel()

        assert [True, True, True, False] == [d.allowed for d in decisions]
        assert not peeked.allowed
        assert (True, 0.0) == (booked.ok, booked.delay)
        assert 999 < pending.delay <= 1000
        assert 0 == limiter.peek("k").remaining
        own_redis.start()
        clock.advance(2.0)
        assert 2 == limiter.acquire("k").remaining

    def test_deny_under_every_operation(
        self,
        own_redis: Any,
        clock: FakeClock,
        connect: Callable[[], Any],
    ) -> None:
        """peek, reserve and reset follow the deny policy too."""
        store = _store(connect, "deny", clock)
        limiter = TokenBucket(1.0, 2, store=store)
        both = MultiLimiter([limiter], store=store)
        own_redis.stop()

        for _ in range(2):  # first call fails over, second skips Redis
            assert not limiter.peek("k").allowed
            assert not limiter.reserve("k").ok
            limiter.reset("k")
            limiter.reserve("k").cancel()
            assert not both.acquire("k").allowed

    def test_asyncio_policy(self, own_redis: Any, clock: FakeClock) -> None:
        """The asyncio path applies the same policy and recovers."""

        async def scenario() -> None:
            client = own_redis.async_client(
                socket_timeout=0.5,
                socket_connect_timeout=0.5,
                retry=AsyncRetry(NoBackoff(), 0),
            )
            try:
                await _async_steps(own_redis, client, clock)
            finally:
                await client.aclose()

        asyncio.run(scenario())


class TestPaused:
    def test_frozen_server_times_out(
        self,
        own_redis: Any,
        clock: FakeClock,
        connect: Callable[[], Any],
    ) -> None:
        """SIGSTOP: a bounded BackendTimeout, or the policy; no hang."""
        raising = FixedWindow(5, 1e6, store=RedisStore(connect()))
        denying = FixedWindow(5, 1e6, store=_store(connect, "deny", clock))
        raising.acquire("k")
        denying.acquire("k")
        own_redis.pause()
        try:
            with pytest.raises(BackendTimeout):
                raising.acquire("k")
            assert not denying.acquire("k").allowed
        finally:
            own_redis.resume()
        assert raising.acquire("k").allowed
