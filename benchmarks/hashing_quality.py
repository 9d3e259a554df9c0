"""Quality table and plots for dprims.hashing (reported, not timed as tests).

For each algorithm over 100 nodes it measures:

- max/mean and min/mean load over ``--keys`` keys (default 1e6);
- the share of keys moved when 1 of the 100 nodes leaves (ideal 1%), and
  how many of those did not have to move (keys of surviving nodes);
- the memory the structure holds (tracemalloc) and its build time.

It also times ``node_for`` at 10, 100 and 1000 nodes for the lookup-cost
plot. Run::

    pip install -r benchmarks/requirements-hashing.txt
    python benchmarks/hashing_quality.py            # table + docs/_static PNGs
    python benchmarks/hashing_quality.py --keys 100000 --no-plots

The table is printed as Markdown, ready for docs/hashing.md.
"""

from __future__ import annotations

import argparse
import gc
import math
import time
import timeit
import tracemalloc
from collections import Counter
from pathlib import Path

from dprims.hashing import (
    BoundedLoadRing,
    ConsistentHashRing,
    JumpHash,
    MaglevHash,
    MultiProbeHash,
    RendezvousHash,
)


STATIC = Path(__file__).resolve().parents[1] / "docs" / "_static"
NODES = 100


def node_names(n: int) -> list[str]:
    return [f"10.0.{i // 256}.{i % 256}:11211" for i in range(n)]


def factories() -> dict[str, object]:
    table = {
        "ring (vnodes 40)": lambda nodes: ConsistentHashRing(nodes, vnodes=40),
        "ring (vnodes 160)": lambda nodes: ConsistentHashRing(nodes),
        "ring, ketama mode": lambda nodes: ConsistentHashRing(
            nodes, mode="ketama"
        ),
        "rendezvous": RendezvousHash,
        "jump": JumpHash,
        "maglev (M=65537)": MaglevHash,
        "multi-probe (21)": MultiProbeHash,
    }
    try:
        import uhashring

        table["uhashring (md5, 160)"] = lambda nodes: _UHashRing(
            uhashring.HashRing(nodes)
        )
    except ImportError:  # pragma: no cover -- peer not installed
        print("uhashring not installed: its row is left out")
    return table


class _UHashRing:
    """Adapter giving uhashring the node_for/remove names."""

    def __init__(self, ring) -> None:
        self.ring = ring
        self.node_for = ring.get_node

    def remove(self, node: str) -> None:
        self.ring.remove_node(node)


def measure(name: str, factory, keys: list[str]) -> dict[str, object]:
    nodes = node_names(NODES)
    start = time.perf_counter()
    factory(nodes)
    build = time.perf_counter() - start
    # A second build under tracemalloc, which slows it, for the memory.
    gc.collect()
    tracemalloc.start()
    selector = factory(nodes)
    memory = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    before = list(map(selector.node_for, keys))
    counts = Counter(before)
    mean = len(keys) / NODES
    gone = nodes[len(nodes) // 2]
    if name == "jump":
        # Jump can only drop the last bucket without renumbering; that is
        # how jump is used, so measure that.
        gone = nodes[-1]
    selector.remove(gone)
    after = list(map(selector.node_for, keys))
    moved = sum(a != b for a, b in zip(before, after, strict=True))
    needless = sum(
        a not in (b, gone) for a, b in zip(before, after, strict=True)
    )
    return {
        "name": name,
        "max": max(counts.values()) / mean,
        "min": min(counts.get(n, 0) for n in nodes) / mean,
        "loads": [counts.get(n, 0) / mean for n in nodes],
        "moved": moved / len(keys),
        "needless": needless / len(keys),
        "memory": memory,
        "build": build,
    }


def measure_bounded(keys: list[str]) -> dict[str, object]:
    nodes = node_names(NODES)
    start = time.perf_counter()
    BoundedLoadRing(nodes, load_factor=1.25)
    build = time.perf_counter() - start
    gc.collect()
    tracemalloc.start()
    ring = BoundedLoadRing(nodes, load_factor=1.25)
    memory = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    for key in keys:
        ring.assign(key)
    loads = ring.loads
    mean = len(keys) / NODES
    gone = nodes[len(nodes) // 2]
    owned = loads[gone]
    moved = ring.remove(gone)
    return {
        "name": "bounded ring (c=1.25)",
        "max": max(loads.values()) / mean,
        "min": min(loads.values()) / mean,
        "loads": [loads[n] / mean for n in nodes],
        "moved": len(moved) / len(keys),
        "needless": (len(moved) - owned) / len(keys),
        "memory": memory,
        "build": build,
    }


def lookup_costs() -> dict[str, dict[int, float]]:
    """Return ns per node_for by algorithm and node count.

    Every lookup function is timed once per round, round after round, and
    the best round counts, so load from other processes hits all of them
    alike instead of skewing whichever ran during a busy moment.
    """
    keys = [f"user:{i}:session" for i in range(2000)]
    lookups = {}
    for name, factory in factories().items():
        if name in ("ring (vnodes 40)", "jump"):
            continue
        for n in (10, 100, 1000):
            lookups[name, n] = factory(node_names(n)).node_for
    best = dict.fromkeys(lookups, math.inf)
    for _ in range(7):
        for entry, lookup in lookups.items():
            took = timeit.timeit(
                lambda lookup=lookup: list(map(lookup, keys)), number=2
            )
            best[entry] = min(best[entry], took / (2 * len(keys)) * 1e9)
    costs: dict[str, dict[int, float]] = {}
    for (name, n), ns in best.items():
        costs.setdefault(name, {})[n] = ns
    return costs


def table(rows: list[dict[str, object]]) -> str:
    lines = [
        (
            "| algorithm | max/mean | min/mean | moved when 1 of 100 leaves "
            "| of which needless | memory | build |"
        ),
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['name']} | {row['max']:.3f} | {row['min']:.3f} "
            f"| {row['moved']:.2%} | {row['needless']:.2%} "
            f"| {row['memory'] / 1024:,.0f} KiB | {row['build'] * 1000:,.1f} ms |"
        )
    return "\n".join(lines)


def plots(rows: list[dict[str, object]], costs) -> None:
    import matplotlib as mpl

    mpl.use("Agg")
    import matplotlib.pyplot as plt

    STATIC.mkdir(parents=True, exist_ok=True)
    names = [str(r["name"]) for r in rows]

    fig, ax = plt.subplots(figsize=(9, 4.5))
    ax.boxplot(
        [r["loads"] for r in rows], orientation="horizontal", whis=(0, 100)
    )
    ax.set_yticks(range(1, len(names) + 1), names)
    ax.axvline(1.0, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("load of each of 100 nodes / mean load (whiskers: min, max)")
    ax.set_title("Load distribution over 100 nodes")
    fig.tight_layout()
    fig.savefig(STATIC / "hashing-load.png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(9, 4.5))
    needed = [float(r["moved"]) - float(r["needless"]) for r in rows]
    needless = [float(r["needless"]) for r in rows]
    pos = range(len(names))
    ax.barh(pos, [x * 100 for x in needed], label="keys of the node that left")
    ax.barh(
        pos,
        [x * 100 for x in needless],
        left=[x * 100 for x in needed],
        label="keys that did not have to move",
    )
    ax.set_yticks(list(pos), names)
    ax.axvline(1.0, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("% of keys moved when 1 of 100 nodes leaves (ideal 1%)")
    ax.legend(loc="lower right")
    ax.set_title("Disruption on a membership change")
    fig.tight_layout()
    fig.savefig(STATIC / "hashing-moved.png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for name, by_n in costs.items():
        xs = sorted(by_n)
        ax.plot(xs, [by_n[x] / 1000 for x in xs], marker="o", label=name)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("nodes")
    ax.set_ylabel("µs per node_for (lower is better)")
    ax.set_title("Lookup cost against node count (pure Python, one core)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(STATIC / "hashing-lookup.png", dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--no-plots", action="store_true")
    args = parser.parse_args()
    keys = [f"key:{i}" for i in range(args.keys)]
    rows = []
    for name, factory in factories().items():
        start = time.perf_counter()
        rows.append(measure(name, factory, keys))
        print(f"measured {name} in {time.perf_counter() - start:.1f} s")
    rows.append(measure_bounded(keys))
    sampling = 1 + 3 * math.sqrt(NODES / args.keys)
    print()
    print(table(rows))
    print()
    print(
        f"(sampling noise alone gives max/mean about {sampling:.3f} for "
        f"{args.keys:,} keys over {NODES} nodes)"
    )
    if not args.no_plots:
        costs = lookup_costs()
        for name, by_n in costs.items():
            shown = ", ".join(f"{n}: {ns:,.0f} ns" for n, ns in by_n.items())
            print(f"lookup {name}: {shown}")
        plots(rows, costs)
        print(f"plots written to {STATIC}")


if __name__ == "__main__":
    main()
