"""The dprims.cache package: public names, lazy backends, the demo tour."""

from __future__ import annotations

import subprocess
import sys

import pytest

import dprims.cache
from dprims.cache import _demo


def test_all_is_sorted_and_resolvable():
    """Lists its public names sorted, and each one resolves."""
    assert sorted(dprims.cache.__all__) == dprims.cache.__all__
    for name in ("TTLCache", "cached", "CacheStats", "CacheStore"):
        assert name in dprims.cache.__all__
        assert getattr(dprims.cache, name) is not None


def test_import_does_not_import_redis():
    """Keeps redis out of sys.modules on a plain import of dprims.cache."""
    code = (
        "import sys, dprims.cache; "
        "print('redis' in sys.modules, 'dprims.cache.redis' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.split()

    assert ["False", "False"] == out


def test_redis_cache_resolves_lazily():
    """Serves RedisCache from dprims.cache.redis on first access."""
    pytest.importorskip("redis")
    from dprims.cache import redis as backend

    assert backend.RedisCache is dprims.cache.RedisCache


def test_tiered_cache_resolves_lazily():
    """Serves TieredCache from dprims.cache.tiered on first access."""
    backend = pytest.importorskip("dprims.cache.tiered")

    assert backend.TieredCache is dprims.cache.TieredCache


def test_unknown_attribute():
    """Raises AttributeError naming an unknown attribute."""
    with pytest.raises(AttributeError, match="NoSuchCache"):
        dprims.cache.NoSuchCache  # noqa: B018


def test_demo_tour():
    """Prints hits, a miss at expiry and one query for a threaded burst."""
    lines: list[str] = []
    _demo.tour(lines.append)

    text = "\n".join(lines)
    assert "3 calls for p1: 1 query, 2 hits, 1 miss" in text
    assert "expired exactly at its TTL" in text
    assert "8 threads missed 'hot' together: 1 query (single-flight)" in text
