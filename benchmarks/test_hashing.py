"""Lookup speed of dprims.hashing beside uhashring, hashring and jump.

Groups: ``node_for[N nodes]`` for N in 10, 100, 1000 (ours: ring, ring in
ketama mode, rendezvous unweighted and with weights 1-3, Maglev,
multi-probe; peers: uhashring ``get_node`` and hashring ``get_node``;
floor: ``mmh3.hash`` of the key alone), and ``jump`` (ours vs the
jump-consistent-hash package's C and Python code).

Every entry runs its function over the same 1000 keys per round (one round
is 1000 lookups), through the same loop, so ratios compare like with like. Quality (balance, keys moved, memory, build time) is in
``benchmarks/hashing_quality.py``.
"""

from __future__ import annotations

import mmh3
import pytest

from dprims.hashing import (
    ConsistentHashRing,
    MaglevHash,
    MultiProbeHash,
    RendezvousHash,
    jump_hash,
)


KEYS = [f"user:{i}:session" for i in range(1000)]
SIZES = [10, 100, 1000]


def nodes(n: int) -> list[str]:
    return [f"10.0.{i // 256}.{i % 256}:11211" for i in range(n)]


def run(benchmark, role: str, fn) -> None:
    # One round is a batch of 1000 lookups: timing one call at a time
    # would mostly measure the timer, and flatten every ratio towards 1.
    benchmark.extra_info["role"] = role

    def batch() -> object:
        result = None
        for key in KEYS:
            result = fn(key)
        return result

    assert benchmark(batch) is not None


def ours(kind: str, n: int):
    if kind == "ring":
        return ConsistentHashRing(nodes(n)).node_for
    if kind == "ring-ketama":
        return ConsistentHashRing(nodes(n), mode="ketama").node_for
    if kind == "rendezvous":
        return RendezvousHash(nodes(n)).node_for
    if kind == "rendezvous-weighted":
        names = nodes(n)
        return RendezvousHash(
            {name: 1 + i % 3 for i, name in enumerate(names)}
        ).node_for
    if kind == "maglev":
        return MaglevHash(nodes(n)).node_for
    return MultiProbeHash(nodes(n)).node_for


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize(
    "kind",
    [
        "ring",
        "ring-ketama",
        "rendezvous",
        "rendezvous-weighted",
        "maglev",
        "multiprobe",
    ],
)
def test_ours(benchmark, kind, n):
    benchmark.group = f"node_for[{n:>4} nodes]"
    run(benchmark, "ours", ours(kind, n))


@pytest.mark.parametrize("n", SIZES)
def test_uhashring(benchmark, n):
    uhashring = pytest.importorskip("uhashring")
    benchmark.group = f"node_for[{n:>4} nodes]"
    run(benchmark, "peer", uhashring.HashRing(nodes(n)).get_node)


@pytest.mark.parametrize("n", SIZES)
def test_uhashring_ketama(benchmark, n):
    uhashring = pytest.importorskip("uhashring")
    benchmark.group = f"node_for[{n:>4} nodes]"
    run(
        benchmark,
        "peer",
        uhashring.HashRing(nodes(n), hash_fn="ketama").get_node,
    )


@pytest.mark.parametrize("n", SIZES)
def test_hashring(benchmark, n):
    hashring = pytest.importorskip("hashring")
    benchmark.group = f"node_for[{n:>4} nodes]"
    run(benchmark, "peer", hashring.HashRing(nodes(n)).get_node)


@pytest.mark.parametrize("n", SIZES)
def test_mmh3_floor(benchmark, n):
    benchmark.group = f"node_for[{n:>4} nodes]"
    run(benchmark, "floor", mmh3.hash)


INT_KEYS = [mmh3.hash64(k)[0] & (2**64 - 1) for k in KEYS]


def run_jump(benchmark, role: str, fn) -> None:
    benchmark.group = "jump[1000 buckets]"
    benchmark.extra_info["role"] = role

    def batch() -> None:
        for key in INT_KEYS:
            fn(key, 1000)

    benchmark(batch)


def test_jump_ours(benchmark):
    run_jump(benchmark, "ours", jump_hash)


def test_jump_peer_c(benchmark):
    jump = pytest.importorskip("jump")
    if jump.c_hash is None:
        pytest.skip("jump-consistent-hash was installed without its C code")
    run_jump(benchmark, "peer", jump.c_hash)


def test_jump_peer_python(benchmark):
    jump = pytest.importorskip("jump")
    run_jump(benchmark, "peer", jump.py_hash)


def test_jump_floor(benchmark):
    run_jump(benchmark, "floor", lambda key, n: key % n)
