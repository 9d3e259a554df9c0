"""Tests for active health checking (thresholds, timeouts, thread, task)."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from dprims.balancing import (
    HealthChecker,
    HealthStatus,
    RoundRobin,
    WeightedRoundRobin,
)


class Flaky:
    """A check whose answer per endpoint the test sets."""

    def __init__(self):
        self.healthy = {}
        self.calls = 0

    def __call__(self, endpoint):
        self.calls += 1
        return self.healthy.get(endpoint, True)


class TestThresholds:
    def test_unhealthy_after_threshold_then_back(self, clock):
        """Stops traffic after N failed rounds and resumes after M passes."""
        lb = RoundRobin(["a", "b"], panic_threshold=0.0, clock=clock)
        check = Flaky()
        checker = HealthChecker(
            lb,
            check,
            interval=5.0,
            unhealthy_threshold=3,
            healthy_threshold=2,
            clock=clock,
        )
        try:
            check.healthy["b"] = False
            for _ in range(2):
                assert {"a": True, "b": False} == checker.check_once()
                clock.advance(5.0)
            assert {"a", "b"} == {lb.pick() for _ in range(10)}
            checker.check_once()
            assert {"a"} == {lb.pick() for _ in range(10)}
            check.healthy["b"] = True
            checker.check_once()
            assert {"a"} == {lb.pick() for _ in range(10)}
            checker.check_once()
            assert {"a", "b"} == {lb.pick() for _ in range(10)}
        finally:
            checker.stop_thread()

    def test_status(self, clock):
        """Reports streaks and the time of the last check."""
        lb = RoundRobin(["a"], clock=clock)
        check = Flaky()
        check.healthy["a"] = False
        checker = HealthChecker(lb, check, unhealthy_threshold=1, clock=clock)
        try:
            checker.check_once()
        finally:
            checker.stop_thread()
        assert (
            HealthStatus(
                endpoint="a",
                healthy=False,
                consecutive_successes=0,
                consecutive_failures=1,
                last_checked=1000.0,
            ),
        ) == checker.status()
        assert "unhealthy=['a']" in repr(checker)

    def test_exception_fails_the_check(self, clock):
        """Counts a check that raises, even a TypeError, as failed."""
        lb = RoundRobin(["a", "b"], panic_threshold=0.0, clock=clock)

        def check(endpoint):
            if endpoint == "b":
                raise TypeError(endpoint)
            return True

        checker = HealthChecker(lb, check, unhealthy_threshold=1, clock=clock)
        try:
            assert {"a": True, "b": False} == checker.check_once()
        finally:
            checker.stop_thread()
        assert {"a"} == {lb.pick() for _ in range(4)}

    def test_timeout_fails_the_check(self, clock):
        """Counts a check that outlives the timeout as failed."""
        lb = RoundRobin(["a", "b"], clock=clock)
        release = threading.Event()

        def check(endpoint):
            if endpoint == "b":
                release.wait(5.0)
            return True

        checker = HealthChecker(lb, check, timeout=0.05, clock=clock)
        try:
            assert {"a": True, "b": False} == checker.check_once()
        finally:
            release.set()
            checker.stop_thread()

    def test_coroutine_check_needs_asyncio(self, clock):
        """Refuses a coroutine check in thread mode, with a clear error."""
        lb = RoundRobin(["a"], clock=clock)

        async def check(endpoint):
            return True  # pragma: no cover - never awaited

        checker = HealthChecker(lb, check, clock=clock)
        try:
            with pytest.raises(TypeError, match="asyncio"):
                checker.check_once()
        finally:
            checker.stop_thread()

    def test_departed_endpoints_forgotten(self, clock):
        """Forgets endpoints that left the pool."""
        lb = RoundRobin(["a", "b"], clock=clock)
        checker = HealthChecker(lb, Flaky(), clock=clock)
        try:
            checker.check_once()
            lb.remove("b")
            checker.check_once()
        finally:
            checker.stop_thread()
        assert ["a"] == [s.endpoint for s in checker.status()]

    def test_removed_during_check(self, clock):
        """Ignores a verdict for an endpoint removed during its check."""
        lb = RoundRobin(["a", "b"], clock=clock)

        def check(endpoint):
            if endpoint == "b" and "b" in lb:
                lb.remove("b")
            return False

        checker = HealthChecker(lb, check, unhealthy_threshold=1, clock=clock)
        try:
            checker.check_once()
        finally:
            checker.stop_thread()
        assert ("a",) == lb.endpoints

    @pytest.mark.parametrize(
        ("option", "value", "error"),
        [
            ("interval", 0, ValueError),
            ("timeout", -1, ValueError),
            ("healthy_threshold", 0, ValueError),
            ("unhealthy_threshold", 0, ValueError),
            ("unhealthy_threshold", 1.5, TypeError),
            ("healthy_threshold", True, TypeError),
        ],
    )
    def test_rejects_bad_options(self, option, value, error):
        """Rejects non-positive times and thresholds below one."""
        with pytest.raises(error, match=option):
            HealthChecker(RoundRobin(["a"]), Flaky(), **{option: value})

    def test_rejects_non_callable(self):
        """Rejects a check that is not callable."""
        with pytest.raises(TypeError, match="check"):
            HealthChecker(RoundRobin(["a"]), "/health")


class TestThread:
    def test_thread_marks_unhealthy(self):
        """Runs rounds in a thread until stopped."""
        lb = WeightedRoundRobin({"a": 1, "b": 1}, panic_threshold=0.0)
        check = Flaky()
        check.healthy["b"] = False
        with HealthChecker(
            lb, check, interval=0.01, unhealthy_threshold=2
        ) as checker:
            deadline = time.monotonic() + 10.0
            while "b" in {lb.pick() for _ in range(4)}:
                assert time.monotonic() < deadline, "never marked unhealthy"
                time.sleep(0.01)
            assert "running=True" in repr(checker)
            with pytest.raises(RuntimeError, match="already running"):
                checker.start_thread()
        assert "running=False" in repr(checker)
        calls = check.calls
        time.sleep(0.05)
        assert calls == check.calls

    def test_round_errors_do_not_kill_the_thread(self, clock):
        """Logs a failing round and keeps going."""
        rounds = []

        class Broken(HealthChecker):
            def check_once(self):
                rounds.append(1)
                raise RuntimeError("round failed")

        checker = Broken(RoundRobin(["a"]), Flaky(), interval=0.01)
        with checker:
            deadline = time.monotonic() + 10.0
            while len(rounds) < 3 and time.monotonic() < deadline:
                time.sleep(0.01)
        assert len(rounds) >= 3


class TestAsyncio:
    def test_async_check_once(self, clock):
        """Awaits coroutine checks and runs sync ones in a thread."""
        lb = RoundRobin(["a", "b"], panic_threshold=0.0, clock=clock)

        async def check(endpoint):
            await asyncio.sleep(0)
            return endpoint == "a"

        checker = HealthChecker(lb, check, unhealthy_threshold=1, clock=clock)
        assert {"a": True, "b": False} == asyncio.run(
            checker.check_once_async()
        )
        assert {"a"} == {lb.pick() for _ in range(4)}
        flaky = Flaky()
        flaky.healthy["a"] = False
        other = RoundRobin(["a", "b"], panic_threshold=0.0, clock=clock)
        sync = HealthChecker(other, flaky, unhealthy_threshold=1, clock=clock)
        assert {"a": False, "b": True} == asyncio.run(sync.check_once_async())
        assert {"b"} == {other.pick() for _ in range(4)}

    def test_async_callable_object(self, clock):
        """Awaits an object whose __call__ is a coroutine function."""

        class Check:
            async def __call__(self, endpoint):
                return False

        lb = RoundRobin(["a"], clock=clock)
        checker = HealthChecker(lb, Check(), clock=clock)
        assert {"a": False} == asyncio.run(checker.check_once_async())

    def test_async_timeout_and_error(self, clock):
        """Fails checks that time out or raise."""

        async def check(endpoint):
            if endpoint == "slow":
                await asyncio.sleep(5.0)
            raise OSError("refused")

        lb = RoundRobin(["slow", "broken"], clock=clock)
        checker = HealthChecker(lb, check, timeout=0.05, clock=clock)
        assert {"slow": False, "broken": False} == asyncio.run(
            checker.check_once_async()
        )

    def test_run_as_task(self, clock):
        """Runs rounds as an asyncio task until cancelled."""
        lb = RoundRobin(["a", "b"], panic_threshold=0.0, clock=clock)
        seen = []

        async def check(endpoint):
            seen.append(endpoint)
            if endpoint == "b" and seen.count("b") == 2:
                raise RuntimeError("flaky check")
            return endpoint == "a"

        checker = HealthChecker(
            lb, check, interval=0.01, unhealthy_threshold=2, clock=clock
        )

        async def main():
            task = asyncio.create_task(checker.run_forever())
            for _ in range(500):
                if "b" not in {lb.pick() for _ in range(4)}:
                    break
                await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        asyncio.run(main())
        assert {"a"} == {lb.pick() for _ in range(4)}

    def test_round_errors_do_not_end_the_task(self, clock):
        """Logs a failing round and keeps the task going."""
        rounds = []

        class Broken(HealthChecker):
            async def check_once_async(self):
                rounds.append(1)
                raise RuntimeError("round failed")

        checker = Broken(RoundRobin(["a"]), Flaky(), interval=0.01)

        async def main():
            task = asyncio.create_task(checker.run_forever())
            for _ in range(500):
                if len(rounds) >= 3:
                    break
                await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        asyncio.run(main())
        assert len(rounds) >= 3


class TestWorkers:
    def test_grows_with_the_pool(self, clock):
        """Checks every endpoint concurrently as the pool grows."""
        lb = RoundRobin([f"e{i}" for i in range(2)], clock=clock)
        barrier = threading.Barrier(6, timeout=5.0)

        def check(endpoint):
            if len(lb) == 6:
                barrier.wait()
            return True

        checker = HealthChecker(lb, check, timeout=5.0, clock=clock)
        try:
            checker.check_once()
            for i in range(2, 6):
                lb.add(f"e{i}")
            assert all(checker.check_once().values())
        finally:
            checker.stop_thread()


class TestHungChecks:
    def test_hung_check_does_not_starve_the_others(self, clock):
        """Keeps other endpoints healthy while one check hangs round after round."""
        lb = RoundRobin(["good", "hung"], panic_threshold=0.0, clock=clock)
        release = threading.Event()
        started = []

        def check(endpoint):
            if endpoint == "hung":
                started.append(endpoint)
                release.wait(10.0)
            return True

        checker = HealthChecker(
            lb, check, timeout=0.02, unhealthy_threshold=2, clock=clock
        )
        try:
            rounds = [checker.check_once() for _ in range(8)]
        finally:
            release.set()
        assert [{"good": True, "hung": False}] * 8 == rounds
        assert {"good"} == {lb.pick() for _ in range(4)}
        assert ["hung"] == started

    def test_hung_async_fallback_check_is_not_restarted(self, clock):
        """Runs one thread at most for a hung synchronous check in asyncio mode."""
        lb = RoundRobin(["good", "hung"], panic_threshold=0.0, clock=clock)
        release = threading.Event()
        started = []

        def check(endpoint):
            if endpoint == "hung":
                started.append(endpoint)
                release.wait(10.0)
            return True

        checker = HealthChecker(lb, check, timeout=0.02, clock=clock)

        async def main():
            return [await checker.check_once_async() for _ in range(8)]

        try:
            rounds = asyncio.run(main())
        finally:
            release.set()
        assert [{"good": True, "hung": False}] * 8 == rounds
        assert ["hung"] == started

    def test_check_threads_are_daemons(self, clock):
        """Runs checks in daemon threads, so a hung one cannot block exit."""
        lb = RoundRobin(["a"], clock=clock)
        release = threading.Event()
        daemons = []

        def check(endpoint):
            daemons.append(threading.current_thread().daemon)
            release.wait(10.0)
            return True

        checker = HealthChecker(lb, check, timeout=0.02, clock=clock)
        try:
            assert {"a": False} == checker.check_once()
        finally:
            release.set()
        assert [True] == daemons


class TestBadInput:
    @pytest.mark.parametrize(
        ("option", "value"),
        [
            ("interval", "10"),
            ("timeout", None),
            ("interval", float("inf")),
            ("timeout", float("nan")),
        ],
    )
    def test_names_the_argument(self, option, value):
        """Names the argument in the error for a wrong type or value."""
        with pytest.raises((TypeError, ValueError), match=option):
            HealthChecker(RoundRobin(["a"]), bool, **{option: value})

    def test_rejects_a_pool_that_cannot_be_marked(self):
        """Refuses a pool without endpoints and set_healthy, naming pool."""
        with pytest.raises(TypeError, match="pool"):
            HealthChecker(object(), bool)

    def test_http_check_timeout_type(self):
        """Names timeout when http_check gets a string for it."""
        from dprims.balancing import http_check

        with pytest.raises(TypeError, match="timeout"):
            http_check(timeout="2")
