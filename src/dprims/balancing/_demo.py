"""The balancing part of ``python -m dprims demo``."""

from __future__ import annotations

import collections
from typing import TYPE_CHECKING

from dprims._clock import FakeClock
from dprims.balancing._base import OutlierDetection
from dprims.balancing._round_robin import WeightedRoundRobin


if TYPE_CHECKING:
    from collections.abc import Callable


__all__ = ()


def tour(out: Callable[[str], None]) -> None:
    """Show 3:1 weighted picks, then an endpoint ejected and returning."""
    clock = FakeClock()
    lb = WeightedRoundRobin(
        {"web-1:8080": 3, "web-2:8080": 1},
        outlier_detection=OutlierDetection(
            consecutive_failures=3, base_ejection_time=30.0
        ),
        panic_threshold=0.0,
        clock=clock,
    )
    picks = [lb.pick() for _ in range(8)]
    out("WeightedRoundRobin({'web-1:8080': 3, 'web-2:8080': 1})")
    out(f"  8 picks: {' '.join(p.split(':')[0] for p in picks)}")
    counts = collections.Counter(lb.pick() for _ in range(400))
    out(f"  400 picks: {dict(sorted(counts.items()))}")
    # web-1 starts failing: three failures in a row eject it for 30 s.
    requests = 0
    while requests < 10 and not any(s.ejected for s in lb.stats()):
        requests += 1
        lease = lb.lease()
        with lease as endpoint:
            if endpoint == "web-1:8080":
                lease.mark_failure()
    out(f"  web-1 fails: ejected after {requests} requests")
    out(f"  next picks: {' '.join(lb.pick() for _ in range(3))}")
    clock.advance(30.0)
    back = " ".join(lb.pick().split(":")[0] for _ in range(4))
    out(f"  30 s later web-1 is back: {back}")
