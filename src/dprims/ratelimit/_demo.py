"""The rate-limiting part of ``python -m dprims demo``.

It runs on a manual clock advanced by hand, so the tour never sleeps and
prints the same lines on every run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dprims._clock import FakeClock
from dprims.ratelimit import TokenBucket


if TYPE_CHECKING:
    from collections.abc import Callable


__all__ = ()


def tour(out: Callable[[str], None]) -> None:
    """Show a token bucket admitting a burst, refusing, then refilling."""
    clock = FakeClock()
    bucket = TokenBucket(rate=2.0, burst=5, clock=clock)
    out("TokenBucket(rate=2.0, burst=5): 2 requests/s, bursts of up to 5")
    verdicts = [bucket.acquire("user:42") for _ in range(7)]
    admitted = sum(1 for verdict in verdicts if verdict.allowed)
    out(
        f"t=0.0s  7 requests at once: {admitted} admitted, "
        f"{len(verdicts) - admitted} refused"
    )
    refused = verdicts[-1]
    out(
        f"        refused with retry_after={refused.retry_after:.1f}s "
        f"(remaining={refused.remaining}, full again in "
        f"{refused.reset_after:.1f}s)"
    )
    clock.advance(refused.retry_after)
    again = bucket.acquire("user:42")
    out(
        f"t={clock.monotonic():.1f}s  after waiting retry_after: "
        f"allowed={again.allowed}"
    )
    out(
        f"        another user has its own bucket: "
        f"allowed={bucket.acquire('user:7').allowed}"
    )
