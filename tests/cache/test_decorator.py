"""@cached: freshness, jitter, stale windows, negative caching, controls."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import threading
from typing import TYPE_CHECKING, Any

import pytest

from dprims.cache import (
    CacheStats,
    LoadTimeout,
    ReentrantLoadError,
    TTLCache,
    cached,
)
from dprims.cache._decorator import _REFRESHER
from dprims.cache._flight import SingleFlight, _Flight
from dprims.errors import ConfigurationError


if TYPE_CHECKING:
    from dprims.testing import FakeClock


def join_refreshes() -> None:
    """Wait (bounded) for every queued background refresh to finish."""
    assert _REFRESHER.wait_idle(5.0)


async def join_tasks() -> None:
    """Wait (bounded) for every other task of the loop to finish."""
    others = asyncio.all_tasks() - {asyncio.current_task()}
    if others:
        _, pending = await asyncio.wait(others, timeout=5.0)
        assert not pending


class Source:
    """A loader that counts calls and returns the next value of a counter."""

    def __init__(self, clock: FakeClock | None = None, cost: float = 0.0):
        self.calls: list[tuple[Any, ...]] = []
        self.fail: BaseException | None = None
        self.value: Any = None
        self.clock = clock
        self.cost = cost

    def __call__(self, *args: Any) -> Any:
        self.calls.append(args)
        if self.clock is not None and self.cost:
            self.clock.advance(self.cost)
        if self.fail is not None:
            raise self.fail
        if self.value is not None:
            return self.value
        return len(self.calls)


class DictStore:
    """A minimal shared-style store: str keys, JSON round trip, no expiry."""

    str_keys = True

    def __init__(self) -> None:
        self.data: dict[str, str] = {}
        self.ttls: dict[str, float | None] = {}

    @property
    def stats(self) -> CacheStats:
        return CacheStats()

    def get(self, key: str, default: Any = None) -> Any:
        assert isinstance(key, str)
        raw = self.data.get(key)
        return default if raw is None else json.loads(raw)

    def set(self, key: str, value: Any, ttl: float | None = None) -> None:
        assert isinstance(key, str)
        self.data[key] = json.dumps(value)
        self.ttls[key] = ttl

    def delete(self, key: str) -> bool:
        return self.data.pop(key, None) is not None

    def clear(self) -> None:
        self.data.clear()

    def __contains__(self, key: object) -> bool:
        return key in self.data

    def get_or_load(self, key: str, loader: Any, *, ttl: Any = None) -> Any:
        raise NotImplementedError


class AsyncDictStore(DictStore):
    """DictStore with the async methods of AsyncCacheStore."""

    def __init__(self) -> None:
        super().__init__()
        self.async_calls = 0

    async def get_async(self, key: str, default: Any = None) -> Any:
        self.async_calls += 1
        return self.get(key, default)

    async def set_async(self, key: str, value: Any, ttl: Any = None) -> None:
        self.async_calls += 1
        self.set(key, value, ttl)

    async def delete_async(self, key: str) -> bool:
        self.async_calls += 1
        return self.delete(key)

    async def clear_async(self) -> None:
        self.async_calls += 1
        self.clear()


class ObjectStore(AsyncDictStore):
    """An in-process store of any hashable key, with sync and async methods."""

    str_keys = False

    def __init__(self) -> None:
        super().__init__()
        self.items: dict[Any, Any] = {}

    def get(self, key: Any, default: Any = None) -> Any:
        return self.items.get(key, default)

    def set(self, key: Any, value: Any, ttl: Any = None) -> None:
        self.items[key] = value

    def delete(self, key: Any) -> bool:
        return self.items.pop(key, None) is not None

    def clear(self) -> None:
        self.items.clear()


class TestFreshness:
    def test_hit_then_expiry_exactly_at_ttl(self, clock):
        """Serves the cached value until ttl, and loads again at ttl."""
        src = Source()
        f = cached(ttl=5.0, clock=clock)(src)
        assert (1, 1) == (f("a"), f("a"))
        clock.advance(4.999)
        assert 1 == f("a")
        clock.advance(0.001)

        assert 2 == f("a")
        assert [("a",), ("a",)] == src.calls

    def test_arguments_make_keys(self, clock):
        """Keys differ by positional and keyword arguments."""
        src = Source()

        @cached(ttl=5.0, clock=clock)
        def f(a: int, b: int = 0) -> tuple[int, int, int]:
            return (a, b, src())

        assert (1, 0, 1) == f(1)
        assert (1, 0, 1) == f(1)
        assert (1, 2, 2) == f(1, b=2)
        assert (1, 2, 2) == f(1, b=2)
        assert (2, 0, 3) == f(2)
        assert 3 == len(src.calls)

    def test_custom_key(self, clock):
        """Uses key= to decide which calls share a result."""
        src = Source()
        f = cached(ttl=5.0, clock=clock, key=lambda user, _trace: user)(src)

        assert (1, 1) == (f("u1", "t1"), f("u1", "t2"))
        assert 2 == f("u2", "t1")

    def test_stats_and_cache_attribute(self, clock):
        """Exposes the private TTLCache with hits, misses and loads."""
        f = cached(ttl=5.0, maxsize=8, clock=clock)(Source())
        f(1)
        f(1)
        f(1)

        assert isinstance(f.cache, TTLCache)
        assert 8 == f.cache.maxsize
        assert CacheStats(hits=2, misses=1, loads=1) == f.cache.stats

    def test_signature_preserved(self):
        """Keeps name, docstring and __wrapped__ of the function."""

        def price(sku: str) -> int:
            """Return a price."""
            return 1

        f = cached(ttl=1.0)(price)

        assert ("price", "Return a price.", price) == (
            f.__name__,
            f.__doc__,
            f.__wrapped__,  # type: ignore[attr-defined]
        )

    def test_maxsize_bounds_private_cache(self, clock):
        """Evicts results beyond maxsize."""
        f = cached(ttl=60.0, maxsize=2, clock=clock)(Source())
        for key in "abc":
            f(key)

        assert 2 == len(f.cache)  # type: ignore[arg-type]


class TestJitter:
    def test_expiry_within_bounds_and_spread(self, clock):
        """Expires each key in [ttl*(1-jitter), ttl) and not all at once."""
        src = Source()
        f = cached(ttl=100.0, jitter=0.2, maxsize=500, clock=clock)(src)
        keys = range(200)
        for k in keys:
            f(k)
        clock.advance(79.999)
        for k in keys:
            f(k)
        assert 200 == len(src.calls)

        clock.advance(10.0)  # t = 89.999: some, not all, have expired
        for k in keys:
            f(k)
        reloaded = len(src.calls) - 200
        assert 0 < reloaded < 200

    def test_all_expired_at_ttl(self, clock):
        """Never keeps a jittered value past ttl."""
        src = Source()
        f = cached(ttl=100.0, jitter=0.5, maxsize=100, clock=clock)(src)
        for k in range(50):
            f(k)
        clock.advance(100.0)
        for k in range(50):
            f(k)

        assert 100 == len(src.calls)


class TestStaleWhileRevalidate:
    def test_serves_stale_and_refreshes_once(self, clock):
        """Serves the old value in the stale window and refreshes in the background."""
        src = Source()
        f = cached(ttl=10.0, stale_ttl=5.0, clock=clock)(src)
        assert 1 == f("a")
        clock.advance(10.0)

        assert 1 == f("a")  # stale, refresh started
        join_refreshes()
        assert 2 == f("a")
        assert 2 == len(src.calls)

    def test_one_refresh_at_a_time(self, clock):
        """Starts a single background refresh however many stale hits come."""
        gate = threading.Event()
        entered = threading.Event()
        calls = []

        @cached(ttl=10.0, stale_ttl=5.0, clock=clock)
        def f(key: str) -> int:
            calls.append(key)
            if len(calls) > 1:
                entered.set()
                assert gate.wait(5.0)
            return len(calls)

        f("a")
        clock.advance(11.0)
        assert [1] * 20 == [f("a") for _ in range(20)]
        assert entered.wait(5.0)
        gate.set()
        join_refreshes()

        assert ["a", "a"] == calls
        assert 2 == f("a")

    def test_window_end_is_a_miss(self, clock):
        """Loads in the caller once ttl + stale_ttl has passed."""
        src = Source()
        f = cached(ttl=10.0, stale_ttl=5.0, clock=clock)(src)
        f("a")
        clock.advance(15.0)

        assert 2 == f("a")
        assert 0 == f.dropped_refreshes()
        assert _REFRESHER.wait_idle(5.0)

    def test_failed_refresh_keeps_stale_and_logs(self, clock, caplog):
        """Keeps serving the stale value when the refresh fails, with a log line."""
        src = Source()
        f = cached(ttl=10.0, stale_ttl=5.0, clock=clock)(src)
        f("a")
        clock.advance(10.0)
        src.fail = OSError("db down")
        with caplog.at_level(logging.WARNING, logger="dprims.cache"):
            assert 1 == f("a")
            join_refreshes()

        assert 1 == f("a")
        assert "cache.refresh_failed" in caplog.messages

    def test_async_refresh_in_task(self, clock):
        """Refreshes a coroutine's stale value in a background task."""
        calls = []

        @cached(ttl=10.0, stale_ttl=5.0, clock=clock)
        async def f(key: str) -> int:
            calls.append(key)
            return len(calls)

        async def main():
            first = await f("a")
            clock.advance(12.0)
            stale = await f("a")
            again = await f("a")  # the refresh is in flight: still stale
            await join_tasks()
            return first, stale, again, await f("a")

        assert (1, 1, 1, 2) == asyncio.run(main())
        assert 2 == len(calls)

    def test_async_failed_refresh_logs(self, clock, caplog):
        """Logs a failed background task refresh and keeps the stale value."""
        state = {"fail": False}

        @cached(ttl=10.0, stale_ttl=5.0, clock=clock)
        async def f(key: str) -> int:
            if state["fail"]:
                raise OSError("down")
            return 1

        async def main():
            await f("a")
            clock.advance(10.0)
            state["fail"] = True
            stale = await f("a")
            await join_tasks()
            return stale, await f("a")

        with caplog.at_level(logging.WARNING, logger="dprims.cache"):
            assert (1, 1) == asyncio.run(main())
        assert "cache.refresh_failed" in caplog.messages


class TestEarlyRefresh:
    def test_refreshes_before_expiry(self, clock):
        """Refreshes a fresh value early when beta makes it near-certain."""
        src = Source(clock, cost=1.0)
        f = cached(ttl=10.0, early_refresh=1e9, clock=clock)(src)
        assert 1 == f("a")
        clock.advance(1.0)

        assert 1 == f("a")  # still fresh: served, refresh started
        join_refreshes()
        assert 2 == f("a")

    def test_no_refresh_when_load_is_instant(self, clock):
        """Never refreshes early when the last load took no time."""
        src = Source()
        f = cached(ttl=10.0, early_refresh=1.0, clock=clock)(src)
        f("a")
        clock.advance(9.0)
        f("a")
        join_refreshes()

        assert 1 == len(src.calls)

    def test_async_early_refresh(self, clock):
        """Refreshes a coroutine's value early in a task."""
        calls = []

        @cached(ttl=10.0, early_refresh=1e9, clock=clock)
        async def f(key: str) -> int:
            calls.append(key)
            clock.advance(1.0)
            return len(calls)

        async def main():
            first = await f("a")
            early = await f("a")
            await join_tasks()
            return first, early, await f("a")

        assert (1, 1, 2) == asyncio.run(main())


class NotFound(Exception):
    pass


class TestNegativeCaching:
    def test_none_cached_for_negative_ttl(self, clock):
        """Caches a None result for negative_ttl, not ttl."""
        src = Source()
        src.value = None
        calls = []

        @cached(ttl=60.0, negative_ttl=2.0, clock=clock)
        def f(key: str) -> int | None:
            calls.append(key)
            return None

        assert None is f("a")
        assert None is f("a")
        clock.advance(2.0)
        assert None is f("a")
        assert 2 == len(calls)

    def test_none_cached_normally_without_negative_ttl(self, clock):
        """Caches None for the full ttl when negative caching is off."""
        calls = []

        @cached(ttl=60.0, clock=clock)
        def f(key: str) -> None:
            calls.append(key)

        f("a")
        clock.advance(30.0)
        f("a")
        assert 1 == len(calls)

    def test_chosen_exception_cached(self, clock):
        """Raises a cached NotFound again without calling the function."""
        src = Source()
        src.fail = NotFound("no such sku")
        f = cached(
            ttl=60.0,
            negative_ttl=2.0,
            negative_exceptions=(NotFound,),
            clock=clock,
        )(src)
        for _ in range(3):
            with pytest.raises(NotFound, match="no such sku"):
                f("a")
        assert 1 == len(src.calls)
        clock.advance(2.0)
        src.fail = None

        assert 2 == f("a")

    def test_other_exceptions_not_cached(self, clock):
        """Does not cache exceptions outside negative_exceptions."""
        src = Source()
        src.fail = OSError("down")
        f = cached(
            ttl=60.0,
            negative_ttl=2.0,
            negative_exceptions=(NotFound,),
            clock=clock,
        )(src)
        with pytest.raises(OSError, match="down"):
            f("a")
        src.fail = None

        assert 2 == f("a")

    def test_async_negative(self, clock):
        """Caches a chosen exception of a coroutine function."""
        calls = []

        @cached(
            ttl=60.0,
            negative_ttl=2.0,
            negative_exceptions=(NotFound,),
            clock=clock,
        )
        async def f(key: str) -> int:
            calls.append(key)
            raise NotFound(key)

        async def main():
            for _ in range(3):
                with pytest.raises(NotFound):
                    await f("a")

        asyncio.run(main())
        assert 1 == len(calls)


class TestStaleIfError:
    def test_serves_last_good_value_on_error(self, clock, caplog):
        """Answers a failed load with the stale value inside the window."""
        src = Source()
        f = cached(ttl=10.0, stale_if_error=30.0, clock=clock)(src)
        f("a")
        clock.advance(20.0)
        src.fail = OSError("db down")

        with caplog.at_level(logging.WARNING, logger="dprims.cache"):
            assert 1 == f("a")
        assert "cache.stale_if_error" in caplog.messages

    def test_raises_after_window(self, clock):
        """Raises the loader error once the stale-if-error window is over."""
        src = Source()
        f = cached(ttl=10.0, stale_if_error=30.0, clock=clock)(src)
        f("a")
        clock.advance(40.0)
        src.fail = OSError("db down")

        with pytest.raises(OSError, match="db down"):
            f("a")

    def test_recovers_after_error(self, clock):
        """Stores the next good value after a stale-if-error answer."""
        src = Source()
        f = cached(ttl=10.0, stale_if_error=30.0, clock=clock)(src)
        f("a")
        clock.advance(20.0)
        src.fail = OSError("db down")
        f("a")
        src.fail = None

        assert 3 == f("a")
        assert 3 == f("a")

    def test_async_stale_if_error(self, clock):
        """Answers a failed coroutine load with the stale value."""
        state = {"fail": False}

        @cached(ttl=10.0, stale_if_error=30.0, clock=clock)
        async def f(key: str) -> int:
            if state["fail"]:
                raise OSError("down")
            return 7

        async def main():
            await f("a")
            clock.advance(20.0)
            state["fail"] = True
            return await f("a")

        assert 7 == asyncio.run(main())


class TestControls:
    def test_invalidate_one_key(self, clock):
        """Drops one result so the next call loads it again."""
        src = Source()
        f = cached(ttl=60.0, clock=clock)(src)
        f("a")
        f("b")

        assert (True, False) == (f.invalidate("a"), f.invalidate("zz"))
        assert (3, 2) == (f("a"), f("b"))

    def test_cache_clear(self, clock):
        """Drops every result."""
        src = Source()
        f = cached(ttl=60.0, clock=clock)(src)
        f("a")
        f("b")
        f.cache_clear()

        assert (3, 4) == (f("a"), f("b"))

    def test_invalidate_during_load_is_not_stored(self, clock):
        """Does not store a result whose load was invalidated in flight."""
        calls = []

        @cached(ttl=60.0, clock=clock)
        def f(key: str) -> int:
            calls.append(key)
            if len(calls) == 1:
                f.invalidate(key)
            return len(calls)

        assert 1 == f("a")
        assert 2 == f("a")

    def test_clear_during_load_is_not_stored(self, clock):
        """Does not store a result when the cache is cleared in flight."""
        calls = []

        @cached(ttl=60.0, clock=clock)
        def f(key: str) -> int:
            calls.append(key)
            if len(calls) == 1:
                f.cache_clear()
            return len(calls)

        assert 1 == f("a")
        assert 2 == f("a")

    def test_async_controls(self, clock):
        """Offers invalidate_async and cache_clear_async."""
        calls = []

        @cached(ttl=60.0, clock=clock)
        async def f(key: str) -> int:
            calls.append(key)
            return len(calls)

        async def main():
            await f("a")
            dropped = await f.invalidate_async("a")
            await f("a")
            await f.cache_clear_async()
            return dropped, await f("a")

        assert (True, 3) == asyncio.run(main())


class TestReentrancy:
    def test_recursion_into_other_keys(self):
        """Lets a function call itself for other keys (memoised recursion)."""

        @cached(ttl=60.0)
        def fib(n: int) -> int:
            return n if n < 2 else fib(n - 1) + fib(n - 2)

        assert 12586269025 == fib(50)

    def test_own_key_raises(self):
        """Raises ReentrantLoadError instead of deadlocking (cachebox#54)."""

        @cached(ttl=60.0)
        def f(n: int) -> int:
            return f(n)

        with pytest.raises(ReentrantLoadError, match=r"\(1,\)"):
            f(1)

    def test_cycle_across_threads_raises(self):
        """Detects a load cycle between two threads instead of hanging."""
        both = threading.Barrier(2, timeout=5.0)
        errors: list[BaseException] = []

        @cached(ttl=60.0)
        def f(n: int) -> int:
            both.wait()
            return f(1 - n)

        def run(n: int) -> None:
            try:
                f(n)
            except ReentrantLoadError as exc:
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(n,)) for n in (0, 1)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(5.0)

        assert not any(t.is_alive() for t in threads)
        assert 1 <= len(errors)

    def test_async_own_key_raises(self):
        """Raises ReentrantLoadError in a coroutine awaiting its own key."""

        @cached(ttl=60.0)
        async def f(n: int) -> int:
            return await f(n)

        with pytest.raises(ReentrantLoadError):
            asyncio.run(f(1))

    def test_async_recursion_into_other_keys(self):
        """Lets a coroutine await itself for other keys."""

        @cached(ttl=60.0)
        async def fib(n: int) -> int:
            return n if n < 2 else await fib(n - 1) + await fib(n - 2)

        assert 832040 == asyncio.run(fib(30))


class TestSharedStores:
    def test_shared_ttlcache_namespaces_functions(self, clock):
        """Keeps the results of two functions apart in one shared TTLCache."""
        store: TTLCache[Any, Any] = TTLCache(maxsize=10, ttl=60.0, clock=clock)
        f = cached(ttl=60.0, cache=store, namespace="f")(lambda x: ("f", x))
        g = cached(ttl=60.0, cache=store, namespace="g")(lambda x: ("g", x))

        assert (("f", 1), ("g", 1)) == (f(1), g(1))
        assert ("g", (1,)) in store
        assert 2 == len(store)
        assert f.cache is store

    def test_str_store_gets_json_envelopes(self, clock):
        """Writes str keys and JSON-friendly values to a str_keys store."""
        store = DictStore()
        src = Source()
        f = cached(
            ttl=60.0, stale_ttl=30.0, cache=store, clock=clock, namespace="p"
        )(src)

        assert (1, 1) == (f("a", 2), f("a", 2))
        (key,) = store.data
        assert 'p:["a",2]' == key
        assert 90.0 == store.ttls[key]

    def test_str_store_keyword_and_custom_keys(self, clock):
        """Builds str keys from keyword arguments and from key=."""
        store = DictStore()
        f = cached(ttl=60.0, cache=store, clock=clock, namespace="n")(
            lambda a, b=0: a + b
        )
        g = cached(
            ttl=60.0, cache=store, clock=clock, namespace="g", key=lambda a: a
        )(lambda a: a)
        h = cached(
            ttl=60.0,
            cache=store,
            clock=clock,
            namespace="h",
            key=lambda a: (a, 1),
        )(lambda a: a)
        f(1, b=2)
        g("x")
        h("y")

        assert {'n:[1];{"b":2}', "g:x", 'h:["y",1]'} == set(store.data)

    def test_str_store_expiry_uses_epoch_time(self, clock):
        """Times envelopes in a shared store with the wall clock."""
        store = DictStore()
        src = Source()
        f = cached(ttl=60.0, cache=store, clock=clock)(src)
        f("a")
        clock.advance(60.0)

        assert 2 == f("a")
        value, fresh_until, _ = json.loads(next(iter(store.data.values())))
        assert (2, clock.time() + 60.0) == (value, fresh_until)

    def test_str_store_negative_exception_round_trip(self, clock):
        """Re-creates a cached exception read back from a shared store."""
        store = DictStore()
        src = Source()
        src.fail = NotFound("sku 9")
        f = cached(
            ttl=60.0,
            negative_ttl=5.0,
            negative_exceptions=(KeyError, NotFound),
            cache=store,
            clock=clock,
        )(src)
        for _ in range(2):
            with pytest.raises(NotFound, match="sku 9"):
                f(9)

        assert 1 == len(src.calls)

    def test_str_store_garbage_is_a_miss(self, clock):
        """Treats values it did not write as misses."""
        store = DictStore()
        src = Source()
        f = cached(
            ttl=60.0,
            cache=store,
            clock=clock,
            namespace="n",
            negative_ttl=1.0,
            negative_exceptions=(NotFound,),
        )(src)
        for raw in (
            "x",
            [1],
            [1, "a", 0],
            [None, 1e12, 0, 7, "m"],
            [None, 1e12, 0, "i", "m"],
        ):
            store.data["n:[1]"] = json.dumps(raw)
            f(1)

        assert 5 == len(src.calls)

    def test_unjsonable_argument_names_type(self, clock):
        """Raises TypeError naming an argument that cannot form a str key."""
        f = cached(ttl=60.0, cache=DictStore(), clock=clock, namespace="f")(
            lambda x: x
        )

        with pytest.raises(TypeError, match="object"):
            f(object())

    def test_plain_object_store(self, clock):
        """Works with any in-process CacheStore that is not a TTLCache."""

        class Plain(DictStore):
            str_keys = False

            def __init__(self) -> None:
                super().__init__()
                self.items: dict[Any, Any] = {}

            def get(self, key: Any, default: Any = None) -> Any:
                return self.items.get(key, default)

            def set(self, key: Any, value: Any, ttl: Any = None) -> None:
                self.items[key] = value

            def delete(self, key: Any) -> bool:
                return self.items.pop(key, None) is not None

            def clear(self) -> None:
                self.items.clear()

        store = Plain()
        src = Source()
        f = cached(ttl=60.0, cache=store, clock=clock, namespace="p")(src)
        assert (1, 1) == (f("a"), f("a"))
        store.items[("p", ("b",))] = "not an entry"

        assert 2 == f("b")
        assert f.invalidate("a")
        f.cache_clear()
        assert {} == store.items

    def test_async_store_api_used_by_coroutines(self, clock):
        """Uses get_async/set_async of a store for coroutine functions."""
        store = AsyncDictStore()
        calls = []

        @cached(ttl=60.0, cache=store, clock=clock, namespace="a")
        async def f(x: int) -> int:
            calls.append(x)
            return x * 10

        async def main():
            first, second = await f(1), await f(1)
            dropped = await f.invalidate_async(1)
            await f.cache_clear_async()
            return first, second, dropped

        assert (10, 10, True) == asyncio.run(main())
        assert [1] == calls
        assert store.async_calls >= 4

    def test_sync_store_api_for_coroutines(self, clock):
        """Falls back to the sync API for a store without async methods."""
        store = DictStore()

        @cached(ttl=60.0, cache=store, clock=clock, namespace="f")
        async def f(x: int) -> int:
            return x

        async def main():
            await f(1)
            dropped = await f.invalidate_async(1)
            await f(1)
            await f.cache_clear_async()
            return dropped

        assert asyncio.run(main())
        assert {} == store.data


class TestBadInput:
    @pytest.mark.parametrize(
        ("kwargs", "name"),
        [
            ({"ttl": 0}, "ttl"),
            ({"ttl": -1.0}, "ttl"),
            ({"ttl": 1.0, "maxsize": 0}, "maxsize"),
            ({"ttl": 1.0, "jitter": -0.1}, "jitter"),
            ({"ttl": 1.0, "jitter": 1.0}, "jitter"),
            ({"ttl": 1.0, "stale_ttl": -1.0}, "stale_ttl"),
            ({"ttl": 1.0, "stale_if_error": float("inf")}, "stale_if_error"),
            ({"ttl": 1.0, "early_refresh": -1.0}, "early_refresh"),
            ({"ttl": 1.0, "negative_ttl": 0.0}, "negative_ttl"),
            (
                {"ttl": 1.0, "negative_exceptions": (KeyError,)},
                "negative_ttl",
            ),
            (
                {"ttl": 1.0, "maxsize": 5, "cache": TTLCache(1, 1.0)},
                "maxsize",
            ),
        ],
    )
    def test_value_errors_name_argument(self, kwargs, name):
        """Rejects bad numbers with a ValueError naming the argument."""
        with pytest.raises(ConfigurationError, match=name):
            cached(**kwargs)

    @pytest.mark.parametrize(
        ("kwargs", "name"),
        [
            ({"ttl": "1"}, "ttl"),
            ({"ttl": 1.0, "jitter": "0.1"}, "jitter"),
            ({"ttl": 1.0, "stale_ttl": None}, "stale_ttl"),
            ({"ttl": 1.0, "key": "user"}, "key"),
            ({"ttl": 1.0, "cache": {}}, "cache"),
            (
                {
                    "ttl": 1.0,
                    "negative_ttl": 1.0,
                    "negative_exceptions": (int,),
                },
                "negative_exceptions",
            ),
        ],
    )
    def test_type_errors_name_argument(self, kwargs, name):
        """Rejects wrong types with a TypeError naming the argument."""
        with pytest.raises(TypeError, match=name):
            cached(**kwargs)

    def test_unhashable_argument_names_type(self):
        """Raises TypeError naming the type of an unhashable argument."""
        f = cached(ttl=1.0)(lambda x: x)

        with pytest.raises(TypeError, match="list"):
            f([1, 2])
        with pytest.raises(TypeError, match="dict"):
            f.invalidate({})

    def test_unhashable_in_slow_paths(self):
        """Names the unhashable type on the non-fast paths too."""
        f = cached(ttl=1.0, early_refresh=1.0)(lambda x: x)

        async def coro(x: Any) -> Any:
            return x

        g = cached(ttl=1.0)(coro)
        with pytest.raises(TypeError, match="set"):
            f({1})
        with pytest.raises(TypeError, match="list"):
            asyncio.run(g([1]))


class TestRaces:
    def test_superseded_rules(self):
        """Skips a load only when a newer usable entry is already stored."""
        from dprims.cache._decorator import _Core, _Entry

        old = _Entry(1, fresh_until=10.0, delta=0.0)
        new = _Entry(2, fresh_until=20.0, delta=0.0)
        bad = _Entry(None, fresh_until=20.0, delta=0.0, error=KeyError("x"))
        table = [
            (None, old, 5.0, False, False),
            (old, None, 5.0, False, True),  # fresh entry: plain load moot
            (old, None, 10.0, False, False),  # expired: load
            (old, old, 5.0, True, False),  # same entry: refresh runs
            (new, old, 5.0, True, True),  # newer entry: refresh moot
            (bad, old, 5.0, True, False),  # newer but an error: refresh
            (new, None, 5.0, True, False),
        ]
        for done, stale, now, force, want in table:
            assert want == _Core.superseded(done, stale, now, force=force)

    def test_load_finished_between_read_and_flight(self, clock):
        """Answers from an entry stored after the caller's miss, without loading."""
        misses = {"left": 1}

        class FlakyRead(ObjectStore):  # str-key stores skip the re-read
            def get(self, key: str, default: Any = None) -> Any:
                if misses["left"]:
                    misses["left"] -= 1
                    return default
                return super().get(key, default)

        store = FlakyRead()
        src = Source()
        f = cached(ttl=60.0, cache=store, clock=clock, namespace="f")(src)
        misses["left"] = 0
        f("a")
        misses["left"] = 1  # the next first read misses, the recheck hits

        assert 1 == f("a")
        assert 1 == len(src.calls)

    def test_async_load_finished_between_read_and_flight(self, clock):
        """Answers a coroutine call from an entry stored after its miss."""
        misses = {"left": 0}

        class FlakyRead(ObjectStore):  # str-key stores skip the re-read
            async def get_async(self, key: str, default: Any = None) -> Any:
                if misses["left"]:
                    misses["left"] -= 1
                    return default
                return await super().get_async(key, default)

        calls = []

        @cached(ttl=60.0, cache=FlakyRead(), clock=clock, namespace="f")
        async def f(x: str) -> int:
            calls.append(x)
            return 5

        async def main():
            await f("a")
            misses["left"] = 1
            return await f("a")

        assert 5 == asyncio.run(main())
        assert ["a"] == calls


class SkuNotFound(Exception):
    """An error whose constructor does not take its own args back."""

    def __init__(self, sku: str, reason: str) -> None:
        super().__init__(f"{sku}: {reason}")
        self.sku = sku


class TestNamespaceRequired:
    def test_lambda_with_shared_cache_needs_namespace(self, clock):
        """Refuses a lambda on a shared cache= without namespace=, naming it."""
        store: TTLCache[Any, Any] = TTLCache(maxsize=10, ttl=60.0, clock=clock)

        with pytest.raises(ValueError, match="namespace") as info:
            cached(ttl=60.0, cache=store)(lambda x: x)
        assert isinstance(info.value, ConfigurationError)

    def test_factory_functions_need_namespace(self, clock):
        """Refuses functions made by a factory on a shared store (JSON too)."""

        def factory(n: int) -> Any:
            def scaled(x: int) -> int:
                return x * n

            return cached(ttl=60.0, cache=DictStore(), clock=clock)(scaled)

        with pytest.raises(ConfigurationError, match="<locals>"):
            factory(2)

    def test_namespaces_keep_lambdas_apart(self, clock):
        """Keeps two lambdas apart in one store once each has a namespace."""
        store = DictStore()
        f1 = cached(ttl=60.0, cache=store, namespace="a", clock=clock)(
            lambda x: x + 1
        )
        f2 = cached(ttl=60.0, cache=store, namespace="b", clock=clock)(
            lambda x: x * 100
        )

        assert (6, 500) == (f1(5), f2(5))

    def test_private_cache_needs_no_namespace(self, clock):
        """Accepts a lambda with its own private cache."""
        f = cached(ttl=60.0, clock=clock)(lambda x: x + 1)

        assert 2 == f(1)


class TestNegativeErrorsInJson:
    def test_multi_argument_exception_hits(self, clock):
        """Raises a cached NotFound(sku, reason) again on hits of a JSON store."""
        calls = []

        @cached(
            ttl=60.0,
            cache=DictStore(),
            namespace="nf",
            negative_ttl=30.0,
            negative_exceptions=(SkuNotFound,),
            clock=clock,
        )
        def product(sku: str) -> str:
            calls.append(sku)
            raise SkuNotFound(sku, "gone")

        for _ in range(3):
            with pytest.raises(SkuNotFound, match=r"^a: gone$"):
                product("a")
        assert ["a"] == calls

    def test_key_error_message_is_not_quoted_twice(self, clock):
        """Gives back a cached KeyError with its original args."""

        @cached(
            ttl=60.0,
            cache=DictStore(),
            namespace="ke",
            negative_ttl=30.0,
            negative_exceptions=(KeyError,),
            clock=clock,
        )
        def lookup(sku: str) -> str:
            raise KeyError(sku)

        with pytest.raises(KeyError) as first:
            lookup("b")
        with pytest.raises(KeyError) as second:
            lookup("b")

        assert ("b",) == second.value.args
        assert str(first.value) == str(second.value)

    def test_unbuildable_exception_is_a_miss(self, clock):
        """Treats a cached error that cannot be re-created as a miss."""

        class Odd(Exception):
            def __new__(cls, a: object, b: object) -> Odd:  # noqa: PYI034 -- a test double
                return super().__new__(cls, a, b)

            def __init__(self, a: object, b: object) -> None:
                super().__init__(f"{a}/{b}")

        calls = []

        @cached(
            ttl=60.0,
            cache=DictStore(),
            namespace="odd",
            negative_ttl=30.0,
            negative_exceptions=(Odd,),
            clock=clock,
        )
        def f(x: int) -> int:
            calls.append(x)
            raise Odd(x, "y")

        for _ in range(2):
            with pytest.raises(Odd):
                f(1)
        assert [1, 1] == calls

    def test_message_only_envelope_still_reads(self, clock):
        """Reads an error envelope written with a bare message (0.1 format)."""
        store = DictStore()

        @cached(
            ttl=60.0,
            cache=store,
            namespace="old",
            negative_ttl=30.0,
            negative_exceptions=(LookupError,),
            clock=clock,
        )
        def f(x: int) -> int:
            return x

        store.set("old:[1]", [None, clock.time() + 30.0, 0.0, 0, "gone"])

        with pytest.raises(LookupError, match=r"^gone$"):
            f(1)


class TestStoreModes:
    class AsyncOnly(AsyncDictStore):
        """A store that, like RedisCache on redis.asyncio, needs asyncio."""

        _is_async = True

    class BlockingOnly(AsyncDictStore):
        """A store that, like RedisCache on a blocking client, refuses async."""

        _is_async = False

    def test_plain_function_on_async_store(self, clock):
        """Refuses a plain function on an asyncio store at decoration time."""
        with pytest.raises(TypeError, match=r"cache=.*asyncio"):
            cached(ttl=60.0, cache=self.AsyncOnly(), namespace="m")(
                lambda x: x
            )

    def test_coroutine_function_on_blocking_store(self, clock):
        """Refuses a coroutine function on a blocking store at decoration."""

        async def f(x: int) -> int:
            return x

        with pytest.raises(TypeError, match=r"cache=.*blocking"):
            cached(ttl=60.0, cache=self.BlockingOnly(), namespace="m")(f)

    def test_controls_name_the_right_twin(self, clock):
        """Points invalidate() and cache_clear() to their async twins."""

        @cached(ttl=60.0, cache=self.AsyncOnly(), namespace="m", clock=clock)
        async def f(x: int) -> int:
            return x

        with pytest.raises(TypeError, match=r"invalidate_async\(\)"):
            f.invalidate(1)
        with pytest.raises(TypeError, match=r"cache_clear_async\(\)"):
            f.cache_clear()

        @cached(ttl=60.0, cache=self.BlockingOnly(), namespace="n")
        def g(x: int) -> int:
            return x

        with pytest.raises(TypeError, match=r"invalidate\(\)"):
            asyncio.run(g.invalidate_async(1))
        with pytest.raises(TypeError, match=r"cache_clear\(\)"):
            asyncio.run(g.cache_clear_async())

    def test_store_type_error_is_not_a_key_error(self, clock):
        """Lets a TypeError from the store through instead of blaming the key."""

        class Broken(DictStore):
            def get(self, key: str, default: Any = None) -> Any:
                raise TypeError("store is broken")

        f = cached(ttl=60.0, cache=Broken(), namespace="b", clock=clock)(
            lambda x: x
        )

        with pytest.raises(TypeError, match=r"^store is broken$"):
            f(1)


class TestKeyErrors:
    def test_unhashable_keyword_argument(self, clock):
        """Names the keyword argument and its type, not the key tuple."""
        f = cached(ttl=60.0, clock=clock)(lambda x, y=None: x)

        with pytest.raises(
            TypeError, match="keyword argument 'y' of type list"
        ) as info:
            f(1, y=[1])
        assert "object at" not in str(info.value)

    def test_unhashable_positional_argument(self, clock):
        """Names the position and type of an unhashable positional argument."""
        f = cached(ttl=60.0, clock=clock)(lambda x: x)

        with pytest.raises(
            TypeError, match="positional argument 0 of type dict"
        ):
            f({})

    def test_unhashable_argument_on_plain_store_and_async(self, clock):
        """Names the argument through the store path and for coroutines."""
        g = cached(ttl=60.0, cache=ObjectStore(), namespace="o")(lambda x: x)

        async def h(x: object) -> object:
            return x

        ah = cached(ttl=60.0, clock=clock)(h)

        with pytest.raises(
            TypeError, match="positional argument 0 of type set"
        ):
            g(set())
        with pytest.raises(
            TypeError, match="keyword argument 'x' of type list"
        ):
            asyncio.run(ah(x=[1]))

    def test_invalidate_with_unhashable_argument(self, clock):
        """Gives invalidate(x=[1]) the same clear TypeError."""
        f = cached(ttl=60.0, clock=clock)(lambda x=None: x)

        with pytest.raises(
            TypeError, match="keyword argument 'x' of type list"
        ):
            f.invalidate(x=[1])
        with pytest.raises(
            TypeError, match="keyword argument 'x' of type list"
        ):
            asyncio.run(f.invalidate_async(x=[1]))

    def test_user_key_unhashable_names_key_type(self, clock):
        """Names the key's type when a key= callable returns an unhashable key."""
        f = cached(ttl=60.0, clock=clock, key=lambda x: [x])(lambda x: x)

        with pytest.raises(TypeError, match="key of type list"):
            f(1)

    def test_unencodable_result_names_its_type(self, clock):
        """Names the result's type (set), not the envelope's, and writes nothing."""
        store = DictStore()
        f = cached(ttl=60.0, cache=store, namespace="s", clock=clock)(
            lambda x: {1, 2}
        )

        with pytest.raises(TypeError, match="result of type set") as info:
            f(1)
        assert "list" not in str(info.value).split(":")[0]
        assert {} == store.data


class TestSharedStoreRoundTrips:
    def test_miss_costs_one_read_and_one_write(self, clock):
        """Reads a shared str-key store once per miss: no re-check read."""

        class Counting(DictStore):
            reads = 0

            def get(self, key: str, default: Any = None) -> Any:
                Counting.reads += 1
                return super().get(key, default)

        store = Counting()
        f = cached(ttl=60.0, cache=store, namespace="c", clock=clock)(
            lambda x: x
        )

        assert 1 == f(1)
        assert (1, 1) == (Counting.reads, len(store.data))

    def test_loads_counted_by_store_hook(self, clock):
        """Reports the decorator's loads through a shared store's counter hook."""

        class Hooked(DictStore):
            def __init__(self) -> None:
                super().__init__()
                self.counted: list[bool] = []

            def _count_load(self, ok: bool) -> None:
                self.counted.append(ok)

        store = Hooked()

        def f(x: int) -> int:
            if x < 0:
                raise ValueError(x)
            return x

        g = cached(ttl=60.0, cache=store, namespace="h", clock=clock)(f)
        g(1)
        g(1)
        with pytest.raises(ValueError):
            g(-1)

        assert [True, False] == store.counted

    def test_tuple_result_comes_back_as_list(self, clock):
        """Returns a tuple result as a list on hits of a JSON store (documented)."""
        f = cached(ttl=60.0, cache=DictStore(), namespace="t", clock=clock)(
            lambda x: (x, x)
        )

        assert ((1, 1), [1, 1]) == (f(1), f(1))


class TestWaitTimeout:
    @pytest.mark.parametrize("bad", [0, -1.0, math.inf, math.nan])
    def test_bad_values(self, bad):
        """Refuses a wait_timeout that is not a finite number > 0."""
        with pytest.raises(ValueError, match="wait_timeout"):
            cached(ttl=1.0, wait_timeout=bad)

    def test_bad_type(self):
        """Refuses a wait_timeout that is not a number."""
        with pytest.raises(TypeError, match="wait_timeout"):
            cached(ttl=1.0, wait_timeout="1")  # type: ignore[arg-type]

    def test_none_means_unbounded(self):
        """Accepts wait_timeout=None (no bound) when asked explicitly."""
        f = cached(ttl=1.0, wait_timeout=None)(lambda x: x)

        assert 1 == f(1)

    def test_hung_loader_times_waiters_out(self):
        """Gives waiters LoadTimeout while a hung load stays the only one."""
        release = threading.Event()
        started = threading.Event()
        calls = []

        @cached(ttl=60.0, wait_timeout=0.05)
        def slow(x: int) -> int:
            calls.append(x)
            started.set()
            assert release.wait(10.0)
            return x

        leader = threading.Thread(target=slow, args=(1,))
        leader.start()
        try:
            assert started.wait(10.0)
            for _ in range(2):
                with pytest.raises(LoadTimeout, match="still running"):
                    slow(1)
        finally:
            release.set()
            leader.join(10.0)

        assert [1] == calls
        assert 1 == slow(1)
        assert isinstance(LoadTimeout("x"), TimeoutError)

    def test_loader_waiting_through_a_pool_for_its_own_key(self):
        """Ends a loader that waits for its own key through a thread pool."""
        import concurrent.futures

        pool = concurrent.futures.ThreadPoolExecutor(1)

        @cached(ttl=60.0, wait_timeout=0.05)
        def via_pool(x: str) -> str:
            return pool.submit(via_pool, x).result(10.0)

        try:
            with pytest.raises(LoadTimeout):
                via_pool("x")
        finally:
            pool.shutdown(wait=True)

    def test_loader_awaiting_a_task_for_its_own_key(self):
        """Ends a loader that awaits a new task asking for its own key."""

        @cached(ttl=60.0, wait_timeout=0.05)
        async def af(x: str) -> str:
            return await asyncio.ensure_future(af(x))

        with pytest.raises(LoadTimeout):
            asyncio.run(asyncio.wait_for(af("x"), 10.0))

    def test_loader_timeout_error_is_its_answer(self):
        """Passes a loader's own TimeoutError to waiters unchanged."""

        class Slow(TimeoutError):
            pass

        flight: _Flight[int] = _Flight(owner="other")
        flight.future.set_exception(Slow("db"))

        with pytest.raises(Slow):
            SingleFlight.wait(flight, "k", 0.01)
        with pytest.raises(Slow):
            asyncio.run(SingleFlight.wait_async(flight, "k", 0.01))


class TestBoundedRefreshes:
    def test_stale_burst_uses_few_threads(self, clock):
        """Refreshes 200 stale keys on at most 4 threads, dropping the excess."""
        release = threading.Event()
        blocked = {"on": False}

        @cached(ttl=10.0, stale_ttl=60.0, maxsize=500, clock=clock)
        def f(x: int) -> int:
            if blocked["on"]:
                assert release.wait(10.0)
            return x

        for i in range(200):
            f(i)
        clock.advance(10.0)
        blocked["on"] = True
        try:
            assert list(range(200)) == [f(i) for i in range(200)]
            workers = [
                t
                for t in threading.enumerate()
                if t.name.startswith("dprims-cache-refresh")
            ]
            assert len(workers) <= 4
            assert f.dropped_refreshes() >= 200 - 64 - 4
        finally:
            release.set()
            join_refreshes()

    def test_refresh_already_running_is_dropped(self, clock):
        """Counts a stale hit whose key is already refreshing as dropped."""
        release = threading.Event()
        blocked = {"on": False}

        @cached(ttl=10.0, stale_ttl=60.0, clock=clock)
        def f(x: int) -> int:
            if blocked["on"]:
                assert release.wait(10.0)
            return x

        f(1)
        clock.advance(10.0)
        blocked["on"] = True
        try:
            assert (1, 1) == (f(1), f(1))
            assert 1 == f.dropped_refreshes()
        finally:
            release.set()
            join_refreshes()

    def test_full_queue_drops_after_leading(self, clock, monkeypatch):
        """Ends the flight of a refresh the pool refused, so callers go on."""
        monkeypatch.setattr(
            type(_REFRESHER), "submit", lambda _self, _job: False
        )
        src = Source()
        f = cached(ttl=10.0, stale_ttl=60.0, clock=clock)(src)
        f("a")
        clock.advance(10.0)

        assert (1, 1) == (f("a"), f.dropped_refreshes())
        clock.advance(60.0)
        assert 2 == f("a")

    def test_async_refreshes_are_bounded(self, clock):
        """Runs at most 16 refresh tasks per coroutine function."""

        async def main() -> tuple[int, int]:
            release = asyncio.Event()
            blocked = {"on": False}

            @cached(ttl=10.0, stale_ttl=60.0, maxsize=100, clock=clock)
            async def f(x: int) -> int:
                if blocked["on"]:
                    await asyncio.wait_for(release.wait(), 10.0)
                return x

            for i in range(40):
                await f(i)
            clock.advance(10.0)
            blocked["on"] = True
            for i in range(40):
                await f(i)
            await asyncio.sleep(0)
            running = sum(
                "_refresh_task" in t.get_coro().__qualname__
                for t in asyncio.all_tasks()
            )
            release.set()
            await join_tasks()
            return running, f.dropped_refreshes()

        running, dropped = asyncio.run(main())
        assert 16 == running
        assert 24 == dropped
