"""The caching part of ``python -m dprims demo``.

Expiry runs on a manual clock, so the tour never waits for a TTL; the
single-flight part uses real threads that block on the first loader call
for a few milliseconds at most.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from dprims._clock import FakeClock
from dprims.cache import cached
from dprims.cache._flight import _WAITING


if TYPE_CHECKING:
    from collections.abc import Callable


__all__ = ()

_THREADS = 8


def tour(out: Callable[[str], None]) -> None:
    """Show hits, a miss after expiry and a single-flight load."""
    clock = FakeClock()
    queries: list[str] = []

    @cached(ttl=60.0, maxsize=1000, clock=clock)
    def product(sku: str) -> str:
        queries.append(sku)
        if sku == "hot":
            # Hold the load until the other threads are queued behind it,
            # so the tour shows them sharing it (bounded: 2 s at most).
            deadline = time.monotonic() + 2.0
            while len(_WAITING) < _THREADS - 1 and (
                time.monotonic() < deadline
            ):
                time.sleep(0.001)
        return f"<{sku} description>"

    out("@cached(ttl=60.0) over a slow product query")
    product("p1")
    product("p1")
    product("p1")
    stats = product.cache.stats
    out(
        f"t=0s   3 calls for p1: {len(queries)} query, {stats.hits} hits, "
        f"{stats.misses} miss"
    )
    clock.advance(60.0)
    product("p1")
    out(f"t=60s  p1 expired exactly at its TTL: miss, query #{len(queries)}")

    results: list[str] = []
    barrier = threading.Barrier(_THREADS, timeout=5.0)

    def worker() -> None:
        barrier.wait()
        results.append(product("hot"))

    threads = [threading.Thread(target=worker) for _ in range(_THREADS)]
    before = len(queries)
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5.0)
    out(
        f"       {_THREADS} threads missed 'hot' together: "
        f"{len(queries) - before} query (single-flight), "
        f"{len(set(results))} shared value for {len(results)} callers"
    )
    out(f"       stats: {product.cache.stats}")
