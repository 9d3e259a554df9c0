"""Rate limiting: fixed and sliding windows, token bucket, GCRA, concurrency.

Every limiter decides with :meth:`~dprims.ratelimit.Limiter.acquire` (never
blocks) and returns a `Decision`; :meth:`~dprims.ratelimit.Limiter.wait`
blocks until admitted. State lives in a store:
in process (`MemoryStore`, the default) or in Redis (`RedisStore`,
standalone or Cluster, blocking or asyncio clients). Each decision on Redis
is one Lua script, one round trip, on the Redis server's clock.

``RedisStore`` is imported lazily, so ``import dprims.ratelimit`` never
imports redis-py.

Status: stable.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dprims.errors import RateLimitExceeded
from dprims.ratelimit._base import (
    Decision,
    Penalty,
    Rate,
    RateLimitHooks,
    RateLimitMetrics,
    parse_rate,
)
from dprims.ratelimit._concurrency import ConcurrencyLimiter, Permit
from dprims.ratelimit._limiters import (
    GCRA,
    FixedWindow,
    Limiter,
    MultiLimiter,
    Reservation,
    SlidingLog,
    SlidingWindow,
    Store,
    TokenBucket,
)
from dprims.ratelimit.memory import MemoryStore


if TYPE_CHECKING:
    from dprims.ratelimit.redis import RedisStore


__all__ = [
    "GCRA",
    "ConcurrencyLimiter",
    "Decision",
    "FixedWindow",
    "Limiter",
    "MemoryStore",
    "MultiLimiter",
    "Penalty",
    "Permit",
    "Rate",
    "RateLimitExceeded",
    "RateLimitHooks",
    "RateLimitMetrics",
    "RedisStore",
    "Reservation",
    "SlidingLog",
    "SlidingWindow",
    "Store",
    "TokenBucket",
    "parse_rate",
]


def __getattr__(name: str) -> Any:
    if name == "RedisStore":
        from dprims.ratelimit.redis import RedisStore  # noqa: PLC0415

        return RedisStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
