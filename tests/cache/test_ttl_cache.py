"""TTLCache: expiry on a manual clock, eviction, stats, get_or_load."""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING

import pytest

from dprims.cache import CacheStats, LoadTimeout, ReentrantLoadError, TTLCache
from dprims.errors import ConfigurationError


if TYPE_CHECKING:
    from dprims.testing import FakeClock


@pytest.fixture
def cache(clock: FakeClock) -> TTLCache[str, int]:
    return TTLCache(maxsize=3, ttl=10.0, clock=clock)


class TestExpiry:
    def test_live_until_just_before_ttl(self, cache, clock):
        """Returns the value at every instant before set time + ttl."""
        cache.set("a", 1)
        clock.advance(9.999)

        assert 1 == cache.get("a")
        assert "a" in cache

    def test_expired_exactly_at_ttl(self, cache, clock):
        """Treats an item as expired from the instant set time + ttl."""
        cache.set("a", 1)
        clock.advance(10.0)

        assert None is cache.get("a")
        assert "a" not in cache
        assert 0 == len(cache)

    def test_default_returned_for_missing_and_expired(self, cache, clock):
        """Returns the given default for a missing or an expired key."""
        cache.set("a", 1)
        clock.advance(10.0)

        assert -1 == cache.get("a", -1)
        assert -1 == cache.get("zz", -1)

    @pytest.mark.parametrize(
        ("ttl", "at", "alive"),
        [
            (1.0, 0.999, True),
            (1.0, 1.0, False),
            (60.0, 59.0, True),
            (60.0, 60.0, False),
            (0.25, 0.2, True),
        ],
    )
    def test_per_entry_ttl(self, cache, clock, ttl, at, alive):
        """Honours the ttl given to set() instead of the default."""
        cache.set("a", 1, ttl=ttl)
        clock.advance(at)

        assert alive == ("a" in cache)

    def test_set_replaces_value_and_expiry(self, cache, clock):
        """Restarts the ttl of a key when it is set again."""
        cache.set("a", 1)
        clock.advance(8.0)
        cache.set("a", 2)
        clock.advance(8.0)

        assert 2 == cache.get("a")

    def test_none_value_is_a_hit(self, cache):
        """Stores None as a value, distinct from a miss."""
        cache.set("a", None)  # type: ignore[arg-type]

        assert "a" in cache
        assert None is cache.get("a", 5)
        assert 1 == cache.stats.hits


class TestEviction:
    def test_least_recently_written_goes_first(self, cache):
        """Evicts the oldest write when a new key arrives in a full cache."""
        for i, key in enumerate("abc"):
            cache.set(key, i)
        cache.get("a")
        cache.set("d", 3)

        assert [False, True, True, True] == [k in cache for k in "abcd"]
        assert 1 == cache.stats.evictions

    def test_expired_items_go_before_live_ones(self, cache, clock):
        """Drops an expired item rather than evicting a live one."""
        cache.set("short", 0, ttl=1.0)
        cache.set("b", 1)
        cache.set("c", 2)
        clock.advance(1.0)
        cache.set("d", 3)

        assert [True, True, True] == [k in cache for k in "bcd"]
        assert 3 == len(cache)

    def test_len_counts_live_items_only(self, cache, clock):
        """Counts only items that have not expired."""
        cache.set("a", 1, ttl=1.0)
        cache.set("b", 2)
        clock.advance(1.0)

        assert 1 == len(cache)
        assert 1 == cache.stats.evictions


class TestDeleteClear:
    def test_delete_reports_live_value(self, cache, clock):
        """Returns True only when a live value was removed."""
        cache.set("a", 1)
        cache.set("b", 2, ttl=1.0)
        clock.advance(1.0)

        assert (True, False, False) == (
            cache.delete("a"),
            cache.delete("b"),
            cache.delete("missing"),
        )
        assert "a" not in cache

    def test_clear_empties_and_keeps_working(self, cache):
        """Removes everything and accepts new items afterwards."""
        for i, key in enumerate("abc"):
            cache.set(key, i)
        cache.clear()
        cache.set("d", 4)

        assert 1 == len(cache)
        assert 4 == cache.get("d")


class TestStats:
    def test_counts_hits_misses_and_ratio(self, cache):
        """Counts one hit or miss per get and derives the hit ratio."""
        cache.set("a", 1)
        cache.get("a")
        cache.get("a")
        cache.get("a")
        cache.get("b")

        assert CacheStats(hits=3, misses=1) == cache.stats
        assert 0.75 == cache.stats.hit_ratio

    def test_hit_ratio_zero_without_lookups(self):
        """Reports a hit ratio of 0.0 before any lookup."""
        assert 0.0 == CacheStats().hit_ratio

    def test_contains_counts_nothing(self, cache):
        """Leaves the counters alone for `in`."""
        cache.set("a", 1)
        assert "a" in cache

        assert CacheStats() == cache.stats

    def test_repr_shows_state(self, cache):
        """Shows size, limits and hit ratio in the repr."""
        cache.set("a", 1)

        assert "TTLCache(maxsize=3, ttl=10.0, size=1, hit_ratio=0.00)" == repr(
            cache
        )
        assert (3, 10.0, False) == (cache.maxsize, cache.ttl, cache.str_keys)


class TestBadInput:
    @pytest.mark.parametrize("maxsize", [0, -1])
    def test_maxsize_below_one(self, maxsize):
        """Rejects maxsize < 1 with a ValueError naming it."""
        with pytest.raises(ValueError, match="maxsize"):
            TTLCache(maxsize=maxsize, ttl=1.0)

    @pytest.mark.parametrize("ttl", [0, -1.0, float("inf"), float("nan")])
    def test_ttl_not_positive(self, ttl):
        """Rejects a ttl that is not a positive finite number."""
        with pytest.raises(ConfigurationError, match="ttl"):
            TTLCache(maxsize=1, ttl=ttl)

    @pytest.mark.parametrize(
        ("kwargs", "name"),
        [
            ({"maxsize": 1.5, "ttl": 1.0}, "maxsize"),
            ({"maxsize": True, "ttl": 1.0}, "maxsize"),
            ({"maxsize": 1, "ttl": "1"}, "ttl"),
        ],
    )
    def test_wrong_types(self, kwargs, name):
        """Rejects arguments of the wrong type with a TypeError naming them."""
        with pytest.raises(TypeError, match=name):
            TTLCache(**kwargs)

    def test_per_entry_ttl_checked(self, cache):
        """Rejects a non-positive ttl passed to set()."""
        with pytest.raises(ValueError, match="ttl"):
            cache.set("a", 1, ttl=0)

    @pytest.mark.parametrize(
        "call",
        [
            lambda c: c.get([1]),
            lambda c: c.set({}, 1),
            lambda c: c.delete({1}),
            lambda c: [1] in c,
            lambda c: c.get_or_load([1], lambda: 1),
        ],
    )
    def test_unhashable_key_names_type(self, cache, call):
        """Raises a TypeError naming the type of an unhashable key."""
        with pytest.raises(TypeError, match=r"hashable.*(list|dict|set)"):
            call(cache)


class TestGetOrLoad:
    def test_loads_once_then_hits(self, cache):
        """Calls the loader on a miss only, and counts the load."""
        calls = []

        def load():
            calls.append(1)
            return 7

        assert (7, 7) == (
            cache.get_or_load("a", load),
            cache.get_or_load("a", load),
        )
        assert [1] == calls
        assert CacheStats(hits=1, misses=1, loads=1) == cache.stats

    def test_per_call_ttl(self, cache, clock):
        """Stores the loaded value for the ttl given to get_or_load."""
        cache.get_or_load("a", lambda: 1, ttl=2.0)
        clock.advance(2.0)

        assert "a" not in cache

    def test_error_not_cached(self, cache):
        """Propagates a loader error, stores nothing, counts a load error."""

        def boom():
            raise LookupError("db down")

        with pytest.raises(LookupError, match="db down"):
            cache.get_or_load("a", boom)

        assert "a" not in cache
        assert 1 == cache.stats.load_errors
        assert 3 == cache.get_or_load("a", lambda: 3)

    def test_own_key_raises_reentrant(self, cache):
        """Raises ReentrantLoadError when a loader needs its own key."""

        def load():
            return cache.get_or_load("a", load)

        with pytest.raises(ReentrantLoadError, match="'a'"):
            cache.get_or_load("a", load)
        assert "a" not in cache

    def test_other_key_from_loader(self, cache):
        """Lets a loader load other keys of the same cache."""

        def outer():
            return cache.get_or_load("inner", lambda: 20) + 1

        assert 21 == cache.get_or_load("outer", outer)
        assert 20 == cache.get("inner")

    def test_threads_share_one_load(self, cache):
        """Calls the loader once for many threads missing one key."""
        release = threading.Event()
        started = threading.Event()
        calls = []
        results = []

        def load():
            calls.append(1)
            started.set()
            assert release.wait(5.0)
            return 99

        def worker():
            results.append(cache.get_or_load("k", load))

        threads = [threading.Thread(target=worker) for _ in range(16)]
        for thread in threads:
            thread.start()
        assert started.wait(5.0)
        release.set()
        for thread in threads:
            thread.join(5.0)

        assert [1] == calls
        assert [99] * 16 == results

    def test_async_tasks_share_one_load(self, cache):
        """Awaits the loader once for many tasks missing one key."""
        calls = []

        async def load():
            calls.append(1)
            await asyncio.sleep(0.01)
            return 5

        async def main():
            return await asyncio.gather(
                *(cache.get_or_load_async("k", load) for _ in range(32))
            )

        assert [5] * 32 == asyncio.run(main())
        assert [1] == calls
        assert 5 == cache.get("k")

    def test_async_error_reaches_all(self, cache):
        """Gives every waiting task the loader's error and caches nothing."""

        async def load():
            await asyncio.sleep(0.01)
            raise KeyError("gone")

        async def main():
            return await asyncio.gather(
                *(cache.get_or_load_async("k", load) for _ in range(8)),
                return_exceptions=True,
            )

        results = asyncio.run(main())

        assert 8 == sum(isinstance(r, KeyError) for r in results)
        assert "k" not in cache
        assert 1 == cache.stats.load_errors

    def test_async_own_key_raises(self, cache):
        """Raises ReentrantLoadError when an async loader awaits its key."""

        async def load():
            return await cache.get_or_load_async("a", load)

        with pytest.raises(ReentrantLoadError):
            asyncio.run(cache.get_or_load_async("a", load))

    def test_async_hit_and_ttl(self, cache, clock):
        """Serves a hit without awaiting and honours the per-call ttl."""

        async def load():
            return 1

        async def main():
            first = await cache.get_or_load_async("a", load, ttl=1.0)
            second = await cache.get_or_load_async("a", load)
            return first, second

        assert (1, 1) == asyncio.run(main())
        clock.advance(1.0)
        assert "a" not in cache

    def test_cancelled_leader_lets_a_waiter_load(self, cache):
        """Hands the load to a waiter when the leading task is cancelled."""
        calls = []

        async def slow():
            calls.append("slow")
            await asyncio.sleep(10)
            return 0

        async def fast():
            calls.append("fast")
            return 2

        async def main():
            leader = asyncio.ensure_future(cache.get_or_load_async("k", slow))
            await asyncio.sleep(0)
            waiter = asyncio.ensure_future(cache.get_or_load_async("k", fast))
            await asyncio.sleep(0)
            leader.cancel()
            return await asyncio.wait_for(waiter, 5.0)

        assert 2 == asyncio.run(main())
        assert ["slow", "fast"] == calls

    def test_blocking_wait_inside_loading_loop_raises(self, cache):
        """Refuses a blocking wait for a key a task of the same loop loads."""

        async def load():
            return cache.get_or_load("a", lambda: 2)

        with pytest.raises(ReentrantLoadError, match="event loop"):
            asyncio.run(cache.get_or_load_async("a", load))


class TestAsyncFace:
    def test_async_methods_mirror_sync(self, cache, clock):
        """Offers get/set/delete/clear as coroutines with the same results."""

        async def main():
            await cache.set_async("a", 1)
            await cache.set_async("b", 2, ttl=1.0)
            got = (await cache.get_async("a"), await cache.get_async("x", 0))
            clock.advance(1.0)
            gone = await cache.get_async("b")
            deleted = await cache.delete_async("a")
            await cache.set_async("c", 3)
            await cache.clear_async()
            return got, gone, deleted, len(cache)

        assert ((1, 0), None, True, 0) == asyncio.run(main())

    def test_is_an_async_store_for_the_decorator(self, clock):
        """Serves as cache= of a coroutine function through its fast path."""
        from dprims.cache import cached

        store: TTLCache[object, object] = TTLCache(10, 60.0, clock=clock)
        calls = []

        @cached(ttl=60.0, cache=store, namespace="n")
        async def f(x: int) -> int:
            calls.append(x)
            return x

        async def main():
            return await f(1), await f(1)

        assert (1, 1) == asyncio.run(main())
        assert [1] == calls


class TestWaitTimeout:
    def test_waiter_times_out_and_flight_stays(self, cache):
        """Raises LoadTimeout for a waiter; the hung load stays the only one."""
        release = threading.Event()
        started = threading.Event()
        calls = []

        def hung() -> int:
            calls.append(1)
            started.set()
            assert release.wait(10.0)
            return 1

        leader = threading.Thread(target=cache.get_or_load, args=("k", hung))
        leader.start()
        try:
            assert started.wait(10.0)
            with pytest.raises(LoadTimeout):
                cache.get_or_load("k", hung, wait_timeout=0.05)
        finally:
            release.set()
            leader.join(10.0)

        assert [1] == calls
        assert 1 == cache.get("k")

    def test_async_waiter_times_out(self, cache):
        """Raises LoadTimeout for a task waiting on a hung async load."""

        async def main() -> list[int]:
            release = asyncio.Event()
            calls: list[int] = []

            async def hung() -> int:
                calls.append(1)
                await asyncio.wait_for(release.wait(), 10.0)
                return 1

            leader = asyncio.ensure_future(cache.get_or_load_async("k", hung))
            await asyncio.sleep(0)
            with pytest.raises(LoadTimeout):
                await cache.get_or_load_async("k", hung, wait_timeout=0.05)
            release.set()
            await asyncio.wait_for(leader, 10.0)
            return calls

        assert [1] == asyncio.run(main())

    def test_bad_wait_timeout(self, cache):
        """Refuses wait_timeout <= 0 before looking anything up."""
        with pytest.raises(ValueError, match="wait_timeout"):
            cache.get_or_load("k", lambda: 1, wait_timeout=0)
