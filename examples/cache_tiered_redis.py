"""A near cache in front of Redis, shared by two service instances.

Two instances of a product service (two `TieredCache` objects here; two
processes or hosts in production) cache product rows from a slow database:

1. instance A loads a product (one database query); instance B finds it in
   Redis and keeps a local copy; B's next read never leaves the process;
2. A changes the price: the write goes to Redis and an invalidation goes
   out over pub/sub, so B drops its local copy and reads the new price;
3. a burst of concurrent misses on both instances costs one query in
   total (single-flight across processes, through a lease in Redis);
4. Redis goes down: reads fall back to the database (with one warning in
   the log), writes are dropped, nothing raises; when Redis is back, the
   cache is used again.

    python examples/cache_tiered_redis.py                 # starts redis-server
    python examples/cache_tiered_redis.py --redis-url redis://127.0.0.1:6379/0

Without ``--redis-url`` the example starts a throwaway ``redis-server``
with `dprims.testing.redis_server` and also runs step 4 on it.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from dprims.cache import TTLCache
from dprims.cache.redis import RedisCache
from dprims.cache.tiered import TieredCache
from dprims.testing import redis_server


if TYPE_CHECKING:
    from collections.abc import Iterator


class SlowDatabase:
    """A stand-in for the database: every query takes *delay* seconds."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.queries = 0
        self.prices = {f"sku-{i}": 10.0 + i for i in range(10)}
        self._lock = threading.Lock()

    def product(self, sku: str) -> dict[str, Any]:
        with self._lock:
            self.queries += 1
        time.sleep(self.delay)
        return {"sku": sku, "price": self.prices[sku]}


# [docs-start]
def make_instance(client: redis.Redis, prefix: str) -> TieredCache:
    """Build one service instance's cache: 5 s in memory, 5 min in Redis."""
    remote = RedisCache(
        client,  # created with socket_timeout=..., as RedisCache requires
        ttl=300.0,
        prefix=prefix,
        single_flight=True,  # one loader across all processes
        lease_ttl=5.0,
    )
    return TieredCache(TTLCache(maxsize=10_000, ttl=5.0), remote)


def get_product(cache: TieredCache, db: SlowDatabase, sku: str) -> Any:
    """Return a product row, from memory, Redis or the database."""
    return cache.get_or_load(f"product:{sku}", lambda: db.product(sku))


def change_price(
    cache: TieredCache, db: SlowDatabase, sku: str, price: float
) -> None:
    """Write the database, then the cache; other instances drop copies."""
    db.prices[sku] = price
    cache.set(f"product:{sku}", db.product(sku))


# [docs-end]


def wait_until(predicate: Any, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return bool(predicate())


def tour(client: redis.Redis, db: SlowDatabase, prefix: str) -> None:
    with (
        make_instance(client, prefix) as a,
        make_instance(client, prefix) as b,
    ):
        a.clear()  # a fresh start when pointed at a long-lived Redis
        print("1. A loads, B reads through Redis, then from memory")
        print(f"   A: {get_product(a, db, 'sku-1')}  queries={db.queries}")
        print(f"   B: {get_product(b, db, 'sku-1')}  queries={db.queries}")
        print(
            f"   B: {get_product(b, db, 'sku-1')}  queries={db.queries} "
            f"(local hit: {'product:sku-1' in b.local})"
        )

        print("2. A changes the price; B's local copy is invalidated")
        change_price(a, db, "sku-1", 99.0)
        dropped = wait_until(lambda: "product:sku-1" not in b.local)
        print(f"   B dropped its copy: {dropped}")
        print(f"   B: {get_product(b, db, 'sku-1')}")

        print("3. 16 concurrent misses on two instances")
        before = db.queries
        threads = [
            threading.Thread(
                target=get_product, args=((a, b)[i % 2], db, "sku-2")
            )
            for i in range(16)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        print(f"   database queries for the burst: {db.queries - before}")
        print(f"   A stats: {a.stats}")
        print(f"   B stats: {b.stats}")


def outage(server: Any, db: SlowDatabase, prefix: str) -> None:
    # One quick retry instead of redis-py's default ten: a cache that is
    # down should cost little time per call.
    client = server.client(
        socket_timeout=0.5,
        socket_connect_timeout=0.5,
        retry=Retry(NoBackoff(), 1),
    )
    try:
        # After a connection failure the cache skips Redis for retry_after
        # seconds, so calls fail over at once instead of each timing out.
        cache = RedisCache(
            client, ttl=300.0, prefix=f"{prefix}-outage", retry_after=0.5
        )
        print("4. Redis goes down")
        server.stop()
        before = db.queries
        row = cache.get_or_load("product:sku-3", lambda: db.product("sku-3"))
        cache.set("product:sku-4", {"sku": "sku-4"})  # dropped, no error
        print(
            f"   read fell back to the database: {row} "
            f"(queries +{db.queries - before}, read_errors="
            f"{cache.read_errors}, write_errors={cache.write_errors}, "
            f"skipped={cache.skipped})"
        )
        server.start()
        time.sleep(0.5)  # let the circuit close: Redis is tried again
        cache.set("product:sku-3", row)
        print(f"   Redis is back: {cache.get('product:sku-3')}")
    finally:
        client.close()


@contextlib.contextmanager
def redis_for(url: str | None) -> Iterator[tuple[redis.Redis, Any]]:
    if url is not None:
        client = redis.Redis.from_url(url, socket_timeout=2.0)
        try:
            yield client, None
        finally:
            client.close()
        return
    with redis_server() as server:
        client = server.client(socket_timeout=2.0)
        try:
            yield client, server
        finally:
            client.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis-url", help="use this Redis instead")
    parser.add_argument(
        "--delay", type=float, default=0.2, help="seconds per query"
    )
    parser.add_argument(
        "--prefix", default="example:products", help="Redis key prefix"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="   log: %(message)s")
    db = SlowDatabase(args.delay)
    with redis_for(args.redis_url) as (client, server):
        tour(client, db, args.prefix)
        if server is not None:
            outage(server, db, args.prefix)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
