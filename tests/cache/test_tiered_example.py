"""Smoke test: examples/cache_tiered_redis.py against a real redis-server."""

from __future__ import annotations

import importlib.util
import pathlib

import pytest


EXAMPLE = (
    pathlib.Path(__file__).parents[2] / "examples" / "cache_tiered_redis.py"
)


@pytest.fixture
def example():
    spec = importlib.util.spec_from_file_location(
        "cache_tiered_redis", EXAMPLE
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.redis
def test_runs_with_its_own_server(example, capsys, prefix, redis_proc):
    """Tells the whole story, outage included, on a server it starts."""
    assert 0 == example.main(["--delay", "0.05", "--prefix", prefix])
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert "queries=1" in lines[1]
    assert "queries=1" in lines[2]
    assert "(local hit: True)" in lines[3]
    assert "B dropped its copy: True" in out
    assert "'price': 99.0" in lines[6]
    assert "database queries for the burst: 1" in out
    assert "read fell back to the database" in out
    assert "read_errors=1, write_errors=0, skipped=1" in out
    assert "Redis is back: {'sku': 'sku-3', 'price': 13.0}" in out


@pytest.mark.redis
def test_runs_against_a_url(example, capsys, prefix, redis_proc):
    """Uses an existing Redis given by URL and skips the outage step."""
    argv = ["--delay", "0.01", "--prefix", prefix, "--redis-url"]
    assert 0 == example.main([*argv, redis_proc.url])
    out = capsys.readouterr().out
    assert "database queries for the burst: 1" in out
    assert "Redis goes down" not in out
