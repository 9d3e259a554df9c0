"""Stampede: many concurrent misses of one key call the loader once."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from dprims.cache import TTLCache, _flight, cached


N = 64


def wait_for_waiters(n: int) -> None:
    """Block (bounded) until *n* callers wait on some flight."""
    deadline = time.monotonic() + 10.0
    while len(_flight._WAITING) < n:
        assert time.monotonic() < deadline, "waiters never arrived"
        time.sleep(0.001)
    time.sleep(0.01)  # brief: the loader "is slow"


class LoaderError(Exception):
    pass


def run_threads(target, n: int = N) -> list[object]:
    results: list[object] = [None] * n
    barrier = threading.Barrier(n, timeout=10.0)

    def worker(i: int) -> None:
        barrier.wait()
        try:
            results[i] = target()
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10.0)
    assert not any(t.is_alive() for t in threads)
    return results


class TestThreads:
    def test_one_load_for_64_threads(self):
        """Calls the loader once for 64 threads missing one key."""
        calls = []

        @cached(ttl=60.0)
        def slow(key: str) -> str:
            calls.append(key)
            wait_for_waiters(N - 1)
            return key.upper()

        results = run_threads(lambda: slow("hot"))

        assert ["hot"] == calls
        assert ["HOT"] * N == results

    def test_error_reaches_all_and_is_not_cached(self):
        """Gives all 64 threads the loader's error and caches nothing."""
        calls = []

        @cached(ttl=60.0)
        def slow(key: str) -> str:
            calls.append(key)
            if len(calls) == 1:
                wait_for_waiters(N - 1)
                raise LoaderError("db down")
            return "ok"

        results = run_threads(lambda: slow("hot"))

        assert 1 == len(calls)
        assert N == sum(isinstance(r, LoaderError) for r in results)
        assert "ok" == slow("hot")
        assert 2 == len(calls)

    def test_get_or_load_one_load(self):
        """Calls a TTLCache loader once for 64 threads."""
        cache: TTLCache[str, int] = TTLCache(maxsize=10, ttl=60.0)
        calls = []

        def load() -> int:
            calls.append(1)
            wait_for_waiters(N - 1)
            return 42

        results = run_threads(lambda: cache.get_or_load("k", load))

        assert [1] == calls
        assert [42] * N == results


class TestTasks:
    def test_one_load_for_64_tasks(self):
        """Awaits the loader once for 64 tasks missing one key."""
        calls = []

        @cached(ttl=60.0)
        async def slow(key: str) -> str:
            calls.append(key)
            for _ in range(1000):
                if len(_flight._WAITING) >= N - 1:
                    break
                await asyncio.sleep(0.001)
            await asyncio.sleep(0.01)
            return key.upper()

        async def main() -> list[str]:
            return await asyncio.gather(*(slow("hot") for _ in range(N)))

        assert ["HOT"] * N == asyncio.run(main())
        assert ["hot"] == calls

    def test_error_reaches_all_tasks_and_is_not_cached(self):
        """Gives all 64 tasks the loader's error and caches nothing."""
        calls = []

        @cached(ttl=60.0)
        async def slow(key: str) -> str:
            calls.append(key)
            await asyncio.sleep(0.02)
            if len(calls) == 1:
                raise LoaderError("db down")
            return "ok"

        async def main() -> list[object]:
            return await asyncio.gather(
                *(slow("hot") for _ in range(N)), return_exceptions=True
            )

        results = asyncio.run(main())

        assert 1 == len(calls)
        assert N == sum(isinstance(r, LoaderError) for r in results)
        assert "ok" == asyncio.run(slow("hot"))

    def test_tasks_in_two_loops_share_a_load(self):
        """Shares one load between tasks of two event loops in two threads."""
        calls = []
        started = threading.Event()
        release = threading.Event()

        @cached(ttl=60.0)
        async def slow(key: str) -> str:
            calls.append(key)
            started.set()
            for _ in range(1000):
                if release.is_set():
                    break
                await asyncio.sleep(0.001)
            return key

        results: list[object] = []

        def other_loop() -> None:
            assert started.wait(10.0)

            async def waiter() -> str:
                task = asyncio.ensure_future(slow("k"))
                await asyncio.sleep(0.01)
                release.set()
                return await task

            results.append(asyncio.run(waiter()))

        thread = threading.Thread(target=other_loop)
        thread.start()
        results.append(asyncio.run(slow("k")))
        thread.join(10.0)

        assert ["k", "k"] == results
        assert ["k"] == calls

    def test_cancelled_waiter_does_not_cancel_load(self):
        """Keeps the load going for others when one waiting task is cancelled."""
        calls = []

        @cached(ttl=60.0)
        async def slow(key: str) -> str:
            calls.append(key)
            await asyncio.sleep(0.05)
            return key

        async def main() -> str:
            leader = asyncio.ensure_future(slow("k"))
            await asyncio.sleep(0)
            doomed = asyncio.ensure_future(slow("k"))
            await asyncio.sleep(0.01)
            doomed.cancel()
            with pytest.raises(asyncio.CancelledError):
                await doomed
            return await asyncio.wait_for(leader, 5.0)

        assert "k" == asyncio.run(main())
        assert ["k"] == calls


class TestSyncAbandon:
    def test_interrupted_leader_hands_over(self):
        """Lets a waiting thread load when the leader dies of a BaseException."""
        entered = threading.Event()
        calls = []

        class Stop(BaseException):
            pass

        @cached(ttl=60.0)
        def f(key: str) -> str:
            calls.append(key)
            if len(calls) == 1:
                entered.set()
                wait_for_waiters(1)
                raise Stop
            return "second"

        out: list[object] = []

        def leader() -> None:
            try:
                f("k")
            except Stop:
                out.append("stopped")

        thread = threading.Thread(target=leader)
        thread.start()
        assert entered.wait(10.0)
        out.append(f("k"))
        thread.join(10.0)

        assert ["stopped", "second"] == sorted(out, reverse=True)
        assert 2 == len(calls)


class TestThreadsAndTasks:
    @staticmethod
    def stampede(fail: bool) -> tuple[list[int], list[object], TTLCache]:
        """Miss one key from 64 threads and 64 tasks (on another thread)."""
        cache: TTLCache[str, int] = TTLCache(maxsize=10, ttl=60.0)
        calls: list[int] = []

        def answer() -> int:
            calls.append(1)
            if fail:
                raise LoaderError("db down")
            return 42

        def load() -> int:
            wait_for_waiters(2 * N - 1)
            return answer()

        async def load_async() -> int:
            for _ in range(10_000):
                if len(_flight._WAITING) >= 2 * N - 1:
                    break
                await asyncio.sleep(0.001)
            return answer()

        async def tasks() -> list[object]:
            return await asyncio.gather(
                *(cache.get_or_load_async("k", load_async) for _ in range(N)),
                return_exceptions=True,
            )

        task_results: list[object] = []
        loop_thread = threading.Thread(
            target=lambda: task_results.extend(asyncio.run(tasks()))
        )
        loop_thread.start()
        results = run_threads(lambda: cache.get_or_load("k", load))
        loop_thread.join(10.0)
        assert not loop_thread.is_alive()
        return calls, results + task_results, cache

    def test_one_load_for_threads_and_tasks(self):
        """Calls the loader once for 64 threads and 64 tasks missing one key."""
        calls, results, _ = self.stampede(fail=False)

        assert [1] == calls
        assert [42] * (2 * N) == results

    def test_error_reaches_threads_and_tasks(self):
        """Gives all 128 callers the loader's error and caches nothing."""
        calls, results, cache = self.stampede(fail=True)

        assert [1] == calls
        assert 2 * N == sum(isinstance(r, LoaderError) for r in results)
        assert "k" not in cache
