"""Smoke test of examples/sharding_proxy.py (scenario 6) on real Redis."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


EXAMPLE = Path(__file__).parents[2] / "examples" / "sharding_proxy.py"


@pytest.mark.redis
def test_sharding_proxy_moves_only_what_it_must(redis_proc):
    """Runs the example over real redis-servers; a third shard takes ~1/3."""
    # redis_proc makes a missing redis-server a skip (a failure in CI); the
    # example starts its own three servers.
    result = subprocess.run(
        [sys.executable, str(EXAMPLE), "--keys", "1500"],
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )
    assert 0 == result.returncode, result.stderr
    out = result.stdout
    assert "in front of 2 redis shards" in out
    assert "all to shard-3: True" in out
    assert "every key still reads back through the proxy: True" in out
    assert "modulo (hash % N) from 2 to 3 shards would move" in out
    sizes = next(line for line in out.splitlines() if line.startswith("after"))
    assert "'shard-3'" in sizes


@pytest.mark.redis
def test_run_reports_fractions(redis_proc):
    """Returns moved fractions near theory: ring ~1/3, modulo ~2/3."""
    sys.path.insert(0, str(EXAMPLE.parent))
    try:
        import sharding_proxy
    finally:
        sys.path.remove(str(EXAMPLE.parent))
    lines: list[str] = []
    results = sharding_proxy.run(keys=600, out=lines.append)
    assert 0.25 < results["ring"] < 0.42
    assert 0.6 < results["modulo"] < 0.73
    assert results["remove-jump"] > results["remove-ring"]
    assert 13 == len(lines)
