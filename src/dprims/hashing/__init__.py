"""Spread keys over nodes: consistent, rendezvous, jump and Maglev hashing.

Every selector here maps a key (``str``, ``bytes`` or ``int``) to node names
deterministically across processes, machines and Python versions (placement
uses MurmurHash3 at fixed seeds, never ``hash()``), moves as few keys as its
algorithm allows when nodes come and go, and stays correct for readers while
another thread adds or removes nodes. They share the `Selector` Protocol, so
one can replace another.

- `ConsistentHashRing`: virtual nodes on a ring; ``mode="ketama"`` matches
  libketama / ``uhashring`` placements.
- `BoundedLoadRing`: ring assignment where no node holds more than
  ``ceil(c * average)`` keys.
- `RendezvousHash`: weighted highest-random-weight hashing.
- `MaglevHash`: constant-time lookups from a prime-sized table.
- `MultiProbeHash`: one point per node, several probes per key.
- `jump_hash` and `JumpHash`: numbered buckets with no memory.
- `RangeMap` and `RegionMap`: the non-hashing ways, for comparison.
- `ShardRouter`: keys to named shards, with `ShardRouter.plan` to see what
  a `ShardChange` would move.

Status: stable.
"""

from __future__ import annotations

from dprims.hashing._base import Key, NoNodesError, Selector
from dprims.hashing._bounded import BoundedLoadRing
from dprims.hashing._jump import JumpHash, jump_hash
from dprims.hashing._maglev import MaglevHash
from dprims.hashing._maps import RangeMap, RegionMap
from dprims.hashing._multiprobe import MultiProbeHash
from dprims.hashing._rendezvous import RendezvousHash
from dprims.hashing._ring import ConsistentHashRing
from dprims.hashing._router import MovePlan, ShardChange, ShardRouter


__all__ = [
    "BoundedLoadRing",
    "ConsistentHashRing",
    "JumpHash",
    "Key",
    "MaglevHash",
    "MovePlan",
    "MultiProbeHash",
    "NoNodesError",
    "RangeMap",
    "RegionMap",
    "RendezvousHash",
    "Selector",
    "ShardChange",
    "ShardRouter",
    "jump_hash",
]
