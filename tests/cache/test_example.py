"""Smoke test: examples/cache_aside.py runs in-process and shows its story."""

from __future__ import annotations

import importlib.util
import pathlib

import pytest


EXAMPLE = pathlib.Path(__file__).parents[2] / "examples" / "cache_aside.py"


@pytest.fixture
def example():
    spec = importlib.util.spec_from_file_location("cache_aside", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_runs_in_process(example, capsys):
    """Runs with a short delay and queries once per key in the cold burst."""
    assert 0 == example.main(
        ["--delay", "0.001", "--requests", "40", "--threads", "8"]
    )

    lines = capsys.readouterr().out.splitlines()
    cold = next(line for line in lines if "cold burst" in line)
    assert "pages=1 " in cold
    assert "products=4 " in cold
    assert "stock=40" in cold
    unknown = next(line for line in lines if "unknown product" in line)
    assert "products=1 " in unknown
    assert lines[-1].startswith("sample: Product 1 $11.00")
