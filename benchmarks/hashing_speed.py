"""Lookup speed beside the peers, interleaved so machine load hits all alike.

pytest-benchmark (``benchmarks/test_hashing.py``) times one entry after
another; on a shared machine a busy moment can then favour whichever entry
ran in a quiet one. This script times every lookup function once per round,
for nine rounds, keeps each one's best round, and prints a Markdown table
of lookups per second with the ratio to uhashring's ``get_node``::

    pip install -r benchmarks/requirements-hashing.txt
    python benchmarks/hashing_speed.py
"""

from __future__ import annotations

import math
import timeit

import hashring
import jump
import mmh3
import uhashring

from dprims.hashing import (
    ConsistentHashRing,
    MaglevHash,
    MultiProbeHash,
    RendezvousHash,
    jump_hash,
)


KEYS = [f"user:{i}:session" for i in range(2000)]
INT_KEYS = [mmh3.hash64(k)[0] & (2**64 - 1) for k in KEYS]
ROUNDS = 9


def names(n: int) -> list[str]:
    return [f"10.0.{i // 256}.{i % 256}:11211" for i in range(n)]


def lookups(n: int) -> dict[str, object]:
    return {
        "ring": ConsistentHashRing(names(n)).node_for,
        "ring, ketama mode": ConsistentHashRing(
            names(n), mode="ketama"
        ).node_for,
        "maglev": MaglevHash(names(n)).node_for,
        "multi-probe": MultiProbeHash(names(n)).node_for,
        "uhashring": uhashring.HashRing(names(n)).get_node,
        "uhashring, ketama": uhashring.HashRing(
            names(n), hash_fn="ketama"
        ).get_node,
        "hashring": hashring.HashRing(names(n)).get_node,
        "rendezvous": RendezvousHash(names(n)).node_for,
        "rendezvous, weights 1-3": RendezvousHash(
            {name: 1 + i % 3 for i, name in enumerate(names(n))}
        ).node_for,
        "mmh3.hash alone (floor)": mmh3.hash,
    }


def best_seconds(entries: dict[str, object], keys: list, call) -> dict:
    best = dict.fromkeys(entries, math.inf)
    for _ in range(ROUNDS):
        for name, fn in entries.items():
            took = timeit.timeit(lambda fn=fn: call(fn, keys), number=2)
            best[name] = min(best[name], took / (2 * len(keys)))
    return best


def main() -> None:
    sizes = (10, 100, 1000)
    results = {
        n: best_seconds(lookups(n), KEYS, lambda fn, ks: list(map(fn, ks)))
        for n in sizes
    }
    print("| node_for | 10 nodes | 100 nodes | 1000 nodes | x uhashring |")
    print("|---|---:|---:|---:|---:|")
    for name in results[10]:
        cells, ratios = [], []
        for n in sizes:
            seconds = results[n].get(name)
            if seconds is None:
                cells.append("-")
                ratios.append("-")
                continue
            cells.append(f"{1 / seconds / 1e6:.2f} M/s")
            ratios.append(f"{results[n]['uhashring'] / seconds:.1f}")
        print(f"| {name} | {' | '.join(cells)} | {' / '.join(ratios)} |")
    jumps = {
        "jump_hash (ours, Python)": jump_hash,
        "jump-consistent-hash, C": jump.c_hash,
        "jump-consistent-hash, Python": jump.py_hash,
    }
    best = best_seconds(
        jumps, INT_KEYS, lambda fn, ks: [fn(k, 1000) for k in ks]
    )
    print()
    print("| jump, 1000 buckets | lookups/s |")
    print("|---|---:|")
    for name, seconds in best.items():
        print(f"| {name} | {1 / seconds / 1e6:.2f} M/s |")


if __name__ == "__main__":
    main()
