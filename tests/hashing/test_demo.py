"""The hashing section of ``python -m dprims demo``."""

from __future__ import annotations

from dprims.hashing import _demo


def test_tour_prints_what_it_did():
    """Prints deterministic lines about each selector it tried."""
    lines: list[str] = []
    _demo.tour(lines.append)
    again: list[str] = []
    _demo.tour(again.append)
    assert lines == again
    assert any("all of them to cache-d" in line for line in lines)
    assert any(line.startswith("shard router") for line in lines)
