"""Benchmark setup: run each primitive beside its peers and print ratios.

Conventions every benchmark module follows:

- one ``group`` per comparison (``@pytest.mark.benchmark(group="...")``);
- ``benchmark.extra_info["role"]`` is ``"ours"``, ``"peer"`` or ``"floor"``
  (the cheapest possible way to do the work, e.g. a bare function);
- peers are installed only by ``nox -s bench`` (benchmarks/requirements-*.txt)
  and imported with ``pytest.importorskip`` so a missing peer is visible as a
  skip, never a silent pass.

At the end of the run a table prints, per group, each benchmark's operations
per second (from the median round) and its speed relative to every other
entry of the same run:
``x floor`` and ``x best peer`` (above 1.0 means faster than that entry).
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any


if TYPE_CHECKING:
    import pytest


def _ops(bench: Any) -> float:
    # The median, not the mean: on a shared machine a few rounds stalled by
    # other jobs drag the mean far more than they move the median.
    median = bench.stats.median
    return 1.0 / median if median else float("inf")


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    session = getattr(config, "_benchmarksession", None)
    if session is None or not session.benchmarks:
        return
    groups: dict[str, list[Any]] = defaultdict(list)
    for bench in session.benchmarks:
        if bench.stats is None or not bench.stats.rounds:
            continue
        groups[bench.group or "(no group)"].append(bench)
    write = terminalreporter.write_line
    terminalreporter.section("dprims: speed relative to peers (same run)")
    for group, benches in sorted(groups.items()):
        floors = [b for b in benches if b.extra_info.get("role") == "floor"]
        peers = [b for b in benches if b.extra_info.get("role") == "peer"]
        floor = max(floors, key=_ops) if floors else None
        best_peer = max(peers, key=_ops) if peers else None
        write(f"[{group}]")
        for bench in sorted(benches, key=_ops, reverse=True):
            role = bench.extra_info.get("role", "?")
            line = f"  {bench.name:<58} {role:<5} {_ops(bench):>14,.0f} ops/s"
            if floor is not None and bench is not floor:
                line += f"  {_ops(bench) / _ops(floor):6.2f}x floor"
            if best_peer is not None and bench is not best_peer:
                line += f"  {_ops(bench) / _ops(best_peer):6.2f}x best peer"
            write(line)
