"""Exactness across processes: 4 spawned processes hammer one key on Redis."""

from __future__ import annotations

import multiprocessing
from typing import Any

import pytest


# The child runs this with the builtin exec (picklable by reference), so no
# test module has to be importable in the spawned interpreter.
CHILD = """
import redis
import redis.cluster
from dprims.ratelimit import (
    GCRA, ConcurrencyLimiter, FixedWindow, RedisStore, SlidingLog,
    SlidingWindow, TokenBucket,
)

if cluster:
    client = redis.cluster.RedisCluster(
        host="127.0.0.1", port=port, socket_timeout=5.0)
else:
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=5.0)
store = RedisStore(client, prefix=prefix)
limiters = {
    "token_bucket": TokenBucket(0.0001, 20, store=store),
    "gcra": GCRA(0.0001, 20, store=store),
    "fixed_window": FixedWindow(20, 1e6, store=store),
    "sliding_window": SlidingWindow(20, 1e6, store=store),
    "sliding_log": SlidingLog(20, 1e6, store=store),
}
slots = ConcurrencyLimiter(3, lease=600.0, store=store)
counts = {name: 0 for name in limiters}
counts["concurrency"] = 0
barrier.wait(timeout=60)
for _ in range(15):
    for name, limiter in limiters.items():
        counts[name] += limiter.acquire("hot").allowed
    counts["concurrency"] += slots.acquire("hot").allowed
results.put(counts)
client.close()
"""


def _hammer(port: int, prefix: str, cluster: bool) -> dict[str, int]:
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    barrier = context.Barrier(4)
    namespace = {
        "port": port,
        "prefix": prefix,
        "cluster": cluster,
        "results": results,
        "barrier": barrier,
    }
    processes = [
        context.Process(target=exec, args=(CHILD, namespace), daemon=True)
        for _ in range(4)
    ]
    for process in processes:
        process.start()
    totals: dict[str, int] = {}
    try:
        for _ in processes:
            for name, count in results.get(timeout=90).items():
                totals[name] = totals.get(name, 0) + count
    finally:
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
    return totals


EXPECTED = {
    "token_bucket": 20,
    "gcra": 20,
    "fixed_window": 20,
    "sliding_window": 20,
    "sliding_log": 20,
    "concurrency": 3,
}


@pytest.mark.redis
def test_four_processes_on_redis(redis_proc: Any, prefix: str) -> None:
    """4 processes x 15 tries per algorithm admit exactly the limit."""
    assert EXPECTED == _hammer(redis_proc.port, prefix, cluster=False)


@pytest.mark.redis_cluster
def test_four_processes_on_cluster(
    redis_cluster_proc: Any, prefix: str
) -> None:
    """The same on Redis Cluster, with the key's slot on one node."""
    port = redis_cluster_proc.nodes[0].port
    assert EXPECTED == _hammer(port, prefix, cluster=True)
