"""The hashing part of ``python -m dprims demo``.

Status: stable.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dprims.hashing import (
    BoundedLoadRing,
    ConsistentHashRing,
    RendezvousHash,
    ShardChange,
    ShardRouter,
    jump_hash,
)


if TYPE_CHECKING:
    from collections.abc import Callable


__all__ = ["tour"]


def tour(out: Callable[[str], None]) -> None:
    """Print a short, deterministic tour of `dprims.hashing` via *out*."""
    ring = ConsistentHashRing(["cache-a", "cache-b", "cache-c"])
    keys = [f"user:{i}" for i in range(10_000)]
    out(f"ring: 'session:9f2' -> {ring.node_for('session:9f2')}")
    out(
        f"ring: replicas of 'session:9f2' -> {ring.nodes_for('session:9f2', 2)}"
    )
    before = {k: ring.node_for(k) for k in keys}
    ring.add("cache-d")
    moved = sum(before[k] != ring.node_for(k) for k in keys)
    out(
        f"ring: adding cache-d moved {moved / len(keys):.1%} of 10000 keys "
        "(ideal 25.0%), all of them to cache-d"
    )
    hrw = RendezvousHash({"small": 1, "big": 3})
    share = sum(hrw.node_for(k) == "big" for k in keys) / len(keys)
    out(f"rendezvous: weight 3 vs 1 -> 'big' gets {share:.1%} (ideal 75.0%)")
    out(f"jump_hash(123456789, 1000) -> {jump_hash(123456789, 1000)}")
    bounded = BoundedLoadRing(["a", "b", "c"], load_factor=1.25)
    for i in range(300):
        bounded.assign(f"conn:{i}")
    out(f"bounded loads (cap {bounded.capacity('a')}): {bounded.loads}")
    router = ShardRouter(
        {"shard-1": "redis://:6379", "shard-2": "redis://:6380"}
    )
    plan = router.plan(ShardChange.add("shard-3"))
    out(
        f"shard router: adding shard-3 would move {plan.fraction:.1%} of keys "
        "(ideal 33.3%)"
    )
