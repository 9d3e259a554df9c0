"""Rate-limit decision speed beside the floors and `limits`, interleaved.

pytest-benchmark (``benchmarks/test_ratelimit.py``) times one entry after
another; on a shared machine a busy moment then favours whichever entry ran
in a quiet one. This script times every entry once per round, alternating
the order, and prints for each the median decisions per second, the median
of its per-round ratio to the floor, and its ratio to the fastest `limits`
strategy of the same run:

- ``redis``: one blocking client to a real redis-server started here; the
  floor is a trivial ``EVALSHA`` (``return 1``, one key) on the same
  client. `limits` uses ``RedisStorage``.
- ``memory``: the floor is the bare inline token-bucket function of
  ``test_ratelimit.py`` (a dict, a refill, a store; no lock, no result
  object), called once per decision. `limits` uses ``MemoryStorage``.

Every limiter allows 100 per second. ``hot`` hammers one key per entry (so
nearly every decision is a refusal); ``many`` cycles through 2000 keys per
entry (so nearly every decision admits and writes)::

    pip install -r benchmarks/requirements-ratelimit.txt
    python benchmarks/ratelimit_speed.py [redis|memory|all] [rounds] [hot|many]
"""

from __future__ import annotations

import statistics
import sys
import time
from typing import TYPE_CHECKING, Any

import limits
from limits import strategies
from limits.storage import MemoryStorage, RedisStorage
from test_ratelimit import floor_token_bucket  # this script's directory

from dprims.ratelimit import (
    GCRA,
    FixedWindow,
    RedisStore,
    SlidingLog,
    SlidingWindow,
    TokenBucket,
)
from dprims.testing import redis_server


if TYPE_CHECKING:
    from collections.abc import Callable

    Runner = Callable[[int], None]

PEERS = (
    ("limits fixed", strategies.FixedWindowRateLimiter),
    ("limits moving", strategies.MovingWindowRateLimiter),
    ("limits sliding", strategies.SlidingWindowCounterRateLimiter),
)


def _keys(name: str, mode: str, count: int) -> list[str]:
    if mode == "hot":
        return [name] * count
    return [f"{name}:{i}" for i in range(count)]


def _dprims(store: Any) -> dict[str, Any]:
    return {
        "dprims TokenBucket": TokenBucket(rate=100.0, burst=100, store=store),
        "dprims FixedWindow": FixedWindow(limit=100, window=1.0, store=store),
        "dprims SlidingWindow": SlidingWindow(100, 1.0, store=store),
        "dprims GCRA": GCRA(rate=100.0, burst=100, store=store),
        "dprims SlidingLog": SlidingLog(limit=100, window=1.0, store=store),
    }


def _entries(
    store: Any, storage: Any, mode: str, count: int
) -> dict[str, Runner]:
    entries: dict[str, Runner] = {}
    for name, limiter in _dprims(store).items():

        def run(n: int, acquire: Any = limiter.acquire, name: str = name):
            for key in _keys(name, mode, n):
                acquire(key)

        entries[name] = run
    item = limits.parse("100/second")
    for name, cls in PEERS:
        hit = cls(storage).hit

        def run_peer(n: int, hit: Any = hit, name: str = name) -> None:
            for key in _keys(name.replace(" ", "-"), mode, n):
                hit(item, key)

        entries[name] = run_peer
    return entries


def _race(entries: dict[str, Runner], floor: str, rounds: int, n: int) -> None:
    for run in entries.values():
        run(200)  # warm up: scripts loaded, keys created
    rates: dict[str, list[float]] = {name: [] for name in entries}
    ratios: dict[str, list[float]] = {name: [] for name in entries}
    for number in range(rounds):
        order = list(entries.items())
        if number % 2:
            order.reverse()
        this = {}
        for name, run in order:
            started = time.perf_counter()
            run(n)
            this[name] = n / (time.perf_counter() - started)
        for name in entries:
            rates[name].append(this[name])
            ratios[name].append(this[name] / this[floor])
    medians = {name: statistics.median(rates[name]) for name in entries}
    best = max((name for name, _ in PEERS), key=medians.__getitem__)
    print(f"| | decisions/s | vs floor | vs {best} |")
    print("|---|---|---|---|")
    for name in entries:
        print(
            f"| {name} | {medians[name]:,.0f} | "
            f"{statistics.median(ratios[name]):.2f}x | "
            f"{medians[name] / medians[best]:.2f}x |"
        )


def redis_race(rounds: int, mode: str) -> None:
    """Race one blocking client's decisions against a trivial EVALSHA."""
    with redis_server() as server:
        client = server.client()
        sha = client.script_load("return 1")

        def floor(n: int) -> None:
            evalsha = client.evalsha
            for key in _keys("floor", mode, n):
                evalsha(sha, 1, key)

        entries: dict[str, Runner] = {"floor: EVALSHA return 1": floor}
        storage = RedisStorage(f"redis://127.0.0.1:{server.port}")
        entries.update(_entries(RedisStore(client), storage, mode, 2000))
        print(f"\nRedis, one client, {mode} key(s), {rounds} rounds\n")
        _race(entries, "floor: EVALSHA return 1", rounds, 2000)


def memory_race(rounds: int, mode: str) -> None:
    """Race in-process decisions against a bare inline token bucket."""

    # The same floor as the pytest-benchmark suite: a function per
    # decision, as a limiter is called.
    take = floor_token_bucket()

    def floor(n: int) -> None:
        for key in _keys("floor", mode, n):
            take(key)

    entries: dict[str, Runner] = {"floor: bare inline token bucket": floor}
    entries.update(_entries(None, MemoryStorage(), mode, 50_000))
    print(f"\nIn process, {mode} key(s), {rounds} rounds\n")
    _race(entries, "floor: bare inline token bucket", rounds, 50_000)


if __name__ == "__main__":
    which = sys.argv[1] if len(sys.argv) > 1 else "all"
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 9
    mode = sys.argv[3] if len(sys.argv) > 3 else "hot"
    if which in {"redis", "all"}:
        redis_race(rounds, mode)
    if which in {"memory", "all"}:
        memory_race(rounds, mode)
