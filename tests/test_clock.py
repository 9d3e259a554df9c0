from __future__ import annotations

import threading
import time

import pytest

from dprims._clock import SYSTEM_CLOCK, Clock, FakeClock, SystemClock
from dprims.testing import FakeClock as PublicFakeClock


class TestFakeClock:
    def test_starts_where_told(self) -> None:
        """Starts at the given monotonic and epoch readings."""
        clock = FakeClock(5.0, epoch=1000.0)

        assert 5.0 == clock.monotonic()
        assert 1000.0 == clock.time()

    def test_advance_moves_both_readings(self) -> None:
        """Advancing moves monotonic and wall time together."""
        clock = FakeClock(0.0, epoch=100.0)

        clock.advance(2.5)

        assert 2.5 == clock.monotonic()
        assert 102.5 == clock.time()

    def test_refuses_to_go_backwards(self) -> None:
        """Negative advances and earlier set() targets are rejected."""
        clock = FakeClock(10.0)

        with pytest.raises(ValueError, match="seconds"):
            clock.advance(-1.0)
        with pytest.raises(ValueError, match="now"):
            clock.set(9.0)
        assert 10.0 == clock.monotonic()

    def test_set_and_sleep(self) -> None:
        """set() jumps forward and sleep() advances instead of blocking."""
        clock = FakeClock()

        clock.set(3.0)
        clock.sleep(1.0)
        clock.sleep(-5.0)

        assert 4.0 == clock.monotonic()

    def test_concurrent_advances_are_not_lost(self) -> None:
        """Advances from many threads all count."""
        clock = FakeClock()

        def work() -> None:
            for _ in range(1000):
                clock.advance(1.0)

        threads = [threading.Thread(target=work) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)

        assert 8000.0 == clock.monotonic()

    def test_is_the_public_testing_clock(self) -> None:
        """dprims.testing.FakeClock is the same class."""
        assert PublicFakeClock is FakeClock
        assert "FakeClock(now=1.0)" == repr(FakeClock(1.0))


class TestSystemClock:
    def test_follows_the_time_module(self) -> None:
        """Reads the real monotonic and wall clocks."""
        before = time.monotonic()
        reading = SYSTEM_CLOCK.monotonic()
        after = time.monotonic()

        assert before <= reading <= after
        assert abs(SYSTEM_CLOCK.time() - time.time()) < 60
        assert "SystemClock()" == repr(SystemClock())

    def test_both_clocks_satisfy_the_protocol(self) -> None:
        """SystemClock and FakeClock are Clocks."""
        assert isinstance(SYSTEM_CLOCK, Clock)
        assert isinstance(FakeClock(), Clock)
