"""Clocks: the protocol, the system clock and a manual clock for tests.

Every time-dependent primitive takes a ``clock=`` argument instead of calling
`time` directly, so that tests and simulations can drive it on a manual
clock. Durations are always measured with `Clock.monotonic`; `Clock.time`
(seconds since the Unix epoch) is used only for values that cross machines.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol, runtime_checkable


__all__ = ()


@runtime_checkable
class Clock(Protocol):
    """**Protocol:** a source of time.

    .. versionadded:: 0.1
    """

    def monotonic(self) -> float:
        """Return seconds on a clock that never goes backwards."""
        ...

    def time(self) -> float:
        """Return wall-clock seconds since the Unix epoch."""
        ...


class SystemClock:
    """The real clock: `time.monotonic` and `time.time`.

    Thread-safe and stateless; ``SYSTEM_CLOCK`` is the shared instance.

    .. versionadded:: 0.1
    """

    __slots__ = ()

    def monotonic(self) -> float:
        """Return `time.monotonic`."""
        return time.monotonic()

    def time(self) -> float:
        """Return `time.time`."""
        return time.time()

    def __repr__(self) -> str:
        return "SystemClock()"


SYSTEM_CLOCK = SystemClock()


class FakeClock:
    """A manual clock that moves only when told to.

    Both readings start where given (*start* for `monotonic`, *epoch* for
    `time`) and move together with `advance`. It is thread-safe, so a test
    can advance it while worker threads read it. `sleep` advances the clock
    instead of blocking, so code that sleeps through an injected sleeper
    runs instantly in tests.

    >>> clock = FakeClock()
    >>> clock.monotonic()
    0.0
    >>> clock.advance(1.5)
    >>> clock.monotonic()
    1.5

    .. versionadded:: 0.1
    """

    __slots__ = ("_epoch_offset", "_lock", "_now")

    def __init__(self, start: float = 0.0, *, epoch: float = 1.7e9) -> None:
        self._lock = threading.Lock()
        self._now = float(start)
        self._epoch_offset = float(epoch) - float(start)

    def monotonic(self) -> float:
        """Return the current manual time in seconds."""
        return self._now

    def time(self) -> float:
        """Return the manual time as seconds since the Unix epoch."""
        return self._now + self._epoch_offset

    def advance(self, seconds: float) -> None:
        """Move the clock forward by *seconds* (which must not be negative).

        Raises:
            ValueError: if *seconds* is negative: monotonic time never goes
                backwards.
        """
        if seconds < 0:
            raise ValueError(
                f"seconds must be >= 0 (a monotonic clock never goes "
                f"backwards), got {seconds!r}"
            )
        with self._lock:
            self._now += seconds

    def set(self, now: float) -> None:
        """Move the clock to *now*, which must not be before the current time.

        Raises:
            ValueError: if *now* is earlier than the current time.
        """
        with self._lock:
            if now < self._now:
                raise ValueError(
                    f"now must be >= the current time {self._now!r}, "
                    f"got {now!r}"
                )
            self._now = float(now)

    def sleep(self, seconds: float) -> None:
        """Advance the clock by *seconds* instead of sleeping."""
        self.advance(max(0.0, seconds))

    def __repr__(self) -> str:
        return f"FakeClock(now={self._now!r})"
