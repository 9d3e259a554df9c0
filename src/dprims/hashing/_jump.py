"""Jump consistent hash (Lamping and Veach, 2014) and a Selector over it.

Status: stable.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import mmh3

from dprims.errors import ConfigurationError
from dprims.hashing._base import (
    NoNodesError,
    check_count,
    check_node,
    check_weight,
    coerce_key,
    initial_nodes,
)


if TYPE_CHECKING:
    from collections.abc import Iterable

    from dprims.hashing._base import Key


__all__ = ()

_MASK64 = (1 << 64) - 1
_MAX_BUCKETS = (1 << 31) - 1
_hash128 = mmh3.hash128


def jump_hash(key: Key, num_buckets: int) -> int:
    """Return the bucket in ``range(num_buckets)`` for *key*.

    This is the jump consistent hash of Lamping and Veach ("A Fast, Minimal
    Memory, Consistent Hash Algorithm", 2014). Growing *num_buckets* from
    ``n`` to ``n + 1`` moves exactly the keys that go to the new bucket
    ``n`` (``1/(n+1)`` of them) and no other; shrinking it moves only the
    keys of the last bucket. Buckets are numbers, so it suits numbered
    shards that only grow or shrink at the end; a shard in the middle
    cannot leave without renumbering the ones after it (which moves many
    keys: see `ShardRouter.plan`). It needs no memory and runs
    ``O(log num_buckets)`` steps.

    An ``int`` key is used as the algorithm's 64-bit key (its two's
    complement, modulo 2**64), so results agree with the paper's C++ code,
    Guava's ``Hashing.consistentHash`` and the ``jump-consistent-hash``
    package. A ``str`` or ``bytes`` key is first hashed to 64 bits (the low
    half of its MurmurHash3 x64 128-bit hash, seed 0).

    Args:
        key: The key.
        num_buckets: The number of buckets, from 1 to 2**31 - 1.

    Raises:
        ValueError: If *num_buckets* is out of range.
        TypeError: If *key* is not ``str``, ``bytes`` or ``int``.

    Example::

        >>> from dprims.hashing import jump_hash
        >>> jump_hash(123456789, 1000)
        294

    .. versionadded:: 0.1
    """
    if isinstance(num_buckets, bool) or not isinstance(num_buckets, int):
        raise TypeError(f"num_buckets must be an int, got {num_buckets!r}")
    if not 1 <= num_buckets <= _MAX_BUCKETS:
        raise ConfigurationError(
            f"num_buckets must be between 1 and {_MAX_BUCKETS}, "
            f"got {num_buckets}"
        )
    if isinstance(key, int) and not isinstance(key, bool):
        k = key & _MASK64
    else:
        k = _hash128(coerce_key(key)) & _MASK64
    b, j = -1, 0
    while j < num_buckets:
        b = j
        k = (k * 2862933555777941757 + 1) & _MASK64
        # Same double arithmetic as the reference C++ code, so results
        # match it bit for bit.
        j = int((b + 1) * (2147483648.0 / ((k >> 33) + 1)))
    return b


class JumpHash:
    """Route keys to an ordered list of nodes with `jump_hash`.

    Node *i* in `nodes` is bucket *i*. Adding a node appends it (moving
    only the keys it takes); removing the *last* node moves only its keys,
    but removing any other renumbers the nodes after it and moves about
    half of all keys. That is the price of jump's zero memory; use it when
    shards only grow, such as numbered storage partitions. Weights are not
    supported (every bucket gets the same share).

    Unlike `jump_hash` itself, which uses an ``int`` key as is, this class
    hashes every key the same way (an ``int`` as its decimal string), like
    the other selectors here.

    Args:
        nodes: Node names, in bucket order.

    Raises:
        ValueError: On a duplicate node.

    .. versionadded:: 0.1
    """

    __slots__ = ("_lock", "_nodes")

    def __init__(self, nodes: Iterable[str] = ()) -> None:
        pairs = initial_nodes(nodes, None)
        self._nodes: tuple[str, ...] = tuple(name for name, _ in pairs)
        self._lock = threading.Lock()

    def node_for(self, key: Key) -> str:
        """Return the node whose bucket *key* jumps to.

        Raises:
            NoNodesError: If there are no nodes.
        """
        nodes = self._nodes
        if not nodes:
            raise NoNodesError("there are no nodes; add one first")
        return nodes[jump_hash(_hash128(coerce_key(key)), len(nodes))]

    def nodes_for(self, key: Key, n: int) -> list[str]:
        """Return *n* distinct nodes: the owner of *key*, then the next ones.

        Jump has no natural preference list; the replicas are the buckets
        that follow the owner's, which is what most jump-based stores do.

        Raises:
            NoNodesError: If there are no nodes (and *n* > 0).
            ValueError: If *n* is negative or more than the number of nodes.
        """
        nodes = self._nodes
        if not nodes and n:
            raise NoNodesError("there are no nodes; add one first")
        check_count(n, len(nodes))
        if n == 0:
            return []
        first = jump_hash(_hash128(coerce_key(key)), len(nodes))
        return [nodes[(first + i) % len(nodes)] for i in range(n)]

    def add(self, node: str, weight: float = 1) -> None:
        """Append *node* as the next bucket.

        Raises:
            ValueError: If *node* is present, or *weight* is not 1.
        """
        check_node(node)
        if check_weight(weight) != 1:
            raise ConfigurationError(
                f"weight must be 1 for JumpHash, got {weight!r}"
            )
        with self._lock:
            if node in self._nodes:
                raise ConfigurationError(f"node: {node!r} is already present")
            self._nodes = (*self._nodes, node)

    def remove(self, node: str) -> None:
        """Remove *node*; the nodes after it move down one bucket.

        Raises:
            ValueError: If *node* is not present.
        """
        with self._lock:
            if node not in self._nodes:
                raise ConfigurationError(f"node: {node!r} is not present")
            self._nodes = tuple(n for n in self._nodes if n != node)

    @property
    def nodes(self) -> tuple[str, ...]:
        """The node names in bucket order."""
        return self._nodes

    def copy(self) -> JumpHash:
        """Return an independent copy with the same nodes."""
        return JumpHash(self._nodes)

    def __len__(self) -> int:
        """Return the number of nodes."""
        return len(self._nodes)

    def __contains__(self, node: object) -> bool:
        """Return whether *node* is present."""
        return node in self._nodes

    def __repr__(self) -> str:
        return f"JumpHash({list(self._nodes)!r})"
