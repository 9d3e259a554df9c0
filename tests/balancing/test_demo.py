"""Tests for the balancing section of the tour."""

from __future__ import annotations

from dprims.balancing import _demo


def test_tour_shows_weighted_picks_and_ejection():
    """Prints 3:1 picks and an ejected endpoint coming back."""
    lines: list[str] = []
    _demo.tour(lines.append)
    text = "\n".join(lines)
    assert "web-1 web-1 web-2 web-1" in text
    assert "{'web-1:8080': 300, 'web-2:8080': 100}" in text
    assert "next picks: web-2:8080 web-2:8080 web-2:8080" in text
    assert "web-1 is back" in text
