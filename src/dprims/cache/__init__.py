"""Caching: an in-process TTL cache, a stampede-proof decorator, shared stores.

`TTLCache` and `cached` work in-process. `RedisCache` (Redis, standalone or
Cluster) and `TieredCache` (a near cache in front of Redis) are imported
lazily, on first access, so ``import dprims.cache`` never imports redis.

Status: stable.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from dprims.cache._base import AsyncCacheStore, CacheStats, CacheStore
from dprims.cache._decorator import CachedFunction, cached
from dprims.cache._flight import LoadTimeout, ReentrantLoadError
from dprims.cache._serializers import JSONSerializer, Serializer
from dprims.cache._ttl import TTLCache


if TYPE_CHECKING:
    from dprims.cache.redis import RedisCache
    from dprims.cache.tiered import TieredCache


__all__ = [
    "AsyncCacheStore",
    "CacheStats",
    "CacheStore",
    "CachedFunction",
    "JSONSerializer",
    "LoadTimeout",
    "RedisCache",
    "ReentrantLoadError",
    "Serializer",
    "TTLCache",
    "TieredCache",
    "cached",
]

#: Names served by module __getattr__, and the module each comes from.
_LAZY = {
    "RedisCache": "dprims.cache.redis",
    "TieredCache": "dprims.cache.tiered",
}


def __getattr__(name: str) -> object:
    """Import `RedisCache` and `TieredCache` on first access."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
