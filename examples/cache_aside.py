"""Cache-aside over a slow database, with a TTL per kind of data (scenario 5).

A shop reads four kinds of data from a slow database, and caches each for as
long as it may be out of date:

- static pages (FAQ, About): for hours;
- product descriptions: for minutes, served stale while one background
  refresh runs, and "no such product" cached briefly (negative caching);
- prices: for seconds;
- stock: never cached, always read live.

The run replays a traffic burst from many threads, then moves a simulated
clock forward to show each kind expiring on its own schedule. Watch the
"queries" column: with single-flight, a burst of misses costs one query per
key, not one per request.

    python examples/cache_aside.py                  # in-process, 50 ms queries
    python examples/cache_aside.py --delay 0.001    # fast (the smoke test)
    python examples/cache_aside.py --redis-url redis://127.0.0.1:6379/0
                                                    # descriptions in Redis

The simulated clock drives expiry; the database delay is real time.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from dprims.cache import CacheStore, TTLCache, cached
from dprims.testing import FakeClock


HOUR = 3600.0
MINUTE = 60.0


class NotFound(LookupError):
    """The database has no row for this key."""


class SlowDatabase:
    """A stand-in for a database: every query takes *delay* seconds."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.queries: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()
        self.pages = {"faq": "<h1>FAQ</h1>", "about": "<h1>About us</h1>"}
        self.products = {f"sku-{i}": f"Product {i}" for i in range(20)}
        self.prices = {sku: 10.0 + i for i, sku in enumerate(self.products)}

    def _query(self, table: str) -> None:
        with self._lock:
            self.queries[table] += 1
        time.sleep(self.delay)

    def page(self, slug: str) -> str:
        self._query("pages")
        return self.pages[slug]

    def description(self, sku: str) -> str:
        self._query("products")
        if sku not in self.products:
            raise NotFound(f"no product {sku!r}")
        return self.products[sku]

    def price(self, sku: str) -> float:
        self._query("prices")
        return self.prices[sku]

    def stock(self, sku: str) -> int:
        self._query("stock")
        return 7


class Shop:
    """The service: reads through per-kind caches in front of the database."""

    def __init__(
        self,
        db: SlowDatabase,
        clock: FakeClock,
        store: CacheStore[Any, Any] | None = None,
    ) -> None:
        self.db = db
        if store is None:
            # In-process by default; --redis-url swaps in a RedisCache.
            store = TTLCache(maxsize=10_000, ttl=5 * MINUTE, clock=clock)

        # Static pages change with a deploy: hours, with jitter so pages
        # cached together do not all expire in the same second.
        @cached(ttl=6 * HOUR, jitter=0.1, maxsize=100, clock=clock)
        def page(slug: str) -> str:
            return db.page(slug)

        # Descriptions change a few times a day: minutes. Past the TTL the
        # old text is served for one more minute while one background
        # refresh reloads it; unknown products are remembered for 30 s.
        @cached(
            ttl=5 * MINUTE,
            stale_ttl=MINUTE,
            jitter=0.1,
            negative_ttl=30.0,
            negative_exceptions=(NotFound,),
            clock=clock,
            cache=store,
            # Defined inside __init__: its qualname is not unique, so a
            # shared store needs an explicit namespace.
            namespace="shop.description",
        )
        def description(sku: str) -> str:
            return db.description(sku)

        # Prices may change any time, but a few seconds late is fine.
        @cached(ttl=2.0, maxsize=10_000, clock=clock)
        def price(sku: str) -> float:
            return db.price(sku)

        self.page = page
        self.description = description
        self.price = price

    def stock(self, sku: str) -> int:
        """Stock is live: never cached, one query per request."""
        return self.db.stock(sku)

    def product_page(self, sku: str) -> str:
        return (
            f"{self.description(sku)} ${self.price(sku):.2f} "
            f"({self.stock(sku)} in stock)"
        )


def burst(shop: Shop, requests: int, threads: int) -> None:
    """Serve *requests* page views for 4 hot products from many threads."""

    def view(i: int) -> None:
        shop.page("faq")
        shop.product_page(f"sku-{i % 4}")

    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(view, range(requests)))


def report(
    label: str, db: SlowDatabase, before: collections.Counter[str]
) -> None:
    diff = {
        t: db.queries[t] - before[t]
        for t in ("pages", "products", "prices", "stock")
    }
    cells = "  ".join(f"{table}={n:<3}" for table, n in diff.items())
    print(f"{label:<44} queries: {cells}")


def wait_for_refreshes() -> None:
    """Let background refreshes finish (bounded) before the next phase."""
    for thread in threading.enumerate():
        if thread.name.startswith("dprims-cache-refresh"):
            thread.join(10.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--delay", type=float, default=0.05, help="seconds per query"
    )
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument(
        "--redis-url", help="keep descriptions in Redis (RedisCache)"
    )
    args = parser.parse_args(argv)

    clock = FakeClock(0.0)
    db = SlowDatabase(args.delay)
    store = None
    if args.redis_url:
        # Optional: only this mode needs redis-py and a server.
        import redis  # noqa: PLC0415

        from dprims.cache import RedisCache  # noqa: PLC0415

        store = RedisCache(
            redis.Redis.from_url(args.redis_url, socket_timeout=2.0),
            ttl=5 * MINUTE,
            prefix="example:cache-aside",
        )
        store.clear()
    shop = Shop(db, clock, store)

    print(
        f"{args.requests} requests from {args.threads} threads, "
        f"{args.delay * 1000:g} ms per query"
    )
    before = collections.Counter(db.queries)
    burst(shop, args.requests, args.threads)
    report("t=0       cold burst (single-flight)", db, before)

    before = collections.Counter(db.queries)
    clock.advance(10.0)
    burst(shop, args.requests, args.threads)
    report("t=10s     prices expired, rest cached", db, before)

    before = collections.Counter(db.queries)
    clock.advance(5 * MINUTE)
    burst(shop, args.requests, args.threads)
    wait_for_refreshes()
    report("t=5m10s   descriptions stale: 1 refresh each", db, before)

    before = collections.Counter(db.queries)
    for _ in range(3):
        with contextlib.suppress(NotFound):
            shop.description("sku-404")
    report("          unknown product asked 3 times", db, before)

    before = collections.Counter(db.queries)
    clock.advance(7 * HOUR)
    burst(shop, args.requests, args.threads)
    report("t=7h      pages expired too", db, before)
    print(f"sample: {shop.product_page('sku-1')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
