"""Consistent hashing with bounded loads (Mirrokni, Thorup, Zadimoghaddam).

Status: stable.
"""

from __future__ import annotations

import math
import threading
from typing import TYPE_CHECKING

from dprims.errors import ConfigurationError
from dprims.hashing._base import (
    NoNodesError,
    check_node,
    check_weight,
    coerce_key,
)
from dprims.hashing._ring import ConsistentHashRing, walk


if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from dprims.hashing._base import Key


__all__ = ()


class BoundedLoadRing:
    """Assign keys on a consistent hash ring without overloading any node.

    This is "consistent hashing with bounded loads" (Mirrokni, Thorup and
    Zadimoghaddam, 2018), the scheme behind HAProxy's ``hash-balance-factor``
    and Vimeo's video cache. Keys are *assigned* and later *released* (think
    of open sessions or connections, not of all the keys that exist), and
    the ring keeps, at every moment, for every node::

        load(node) <= ceil(load_factor * assigned_keys * weight / total_weight)

    which, with equal weights, is ``ceil(load_factor * average)``. `assign`
    walks the ring clockwise from the key, as `ConsistentHashRing.node_for`
    does, and takes the first node below its cap; a key, once assigned,
    stays where it is (assigning it again returns the same node) until it
    is released or has to move.

    Keys move only when the invariant forces them to, and then as few as it
    forces: when a node leaves, its keys; when a node joins or a key is
    released, the caps may shrink by one and each node above its new cap
    hands over its excess. The keys that leave a node are the ones that sit
    farthest down their own preference list (the ones already displaced
    from nearer nodes), most recent first, and each goes to the first node
    below its cap in its own preference list. Every method that can move
    keys returns them as a dict of key to new node, so a cache can drop or
    copy them.

    *load_factor* (``c`` in the paper, at least 1) trades balance for
    stability: at 1.25 the busiest node holds at most 25% above the mean,
    and an assignment inspects a few nodes on average; nearer to 1, more
    keys overflow to later nodes and more move on each change.

    Assignment state lives in this object, so it suits one process that
    routes for everyone (a proxy, a load balancer). All methods are
    thread-safe; they serialize on one lock.

    Keys are normalized as everywhere in `dprims.hashing`: an ``int`` is
    its decimal string, so ``assign(42)`` and ``assign("42")`` are the same
    key, and returned dicts hold the normalized form.

    Args:
        nodes: Node names, or a mapping of node name to weight.
        load_factor: The ``c`` above, a float of at least 1.
        vnodes: Points per node on the underlying ring.
        weights: Relative weights by node name; caps scale with them.

    Raises:
        ValueError: On ``load_factor < 1``, and on what
            `ConsistentHashRing` rejects.

    Example::

        >>> from dprims.hashing import BoundedLoadRing
        >>> ring = BoundedLoadRing(["a", "b"], load_factor=1.25)
        >>> node = ring.assign("session:1")
        >>> ring.loads[node]
        1
        >>> ring.release("session:1")
        {}

    .. versionadded:: 0.1
    """

    __slots__ = (
        "_c",
        "_keys",
        "_lock",
        "_members",
        "_ring",
        "_total",
        "_uniform",
    )

    def __init__(
        self,
        nodes: Iterable[str] | Mapping[str, float] = (),
        *,
        load_factor: float = 1.25,
        vnodes: int = 160,
        weights: Mapping[str, float] | None = None,
    ) -> None:
        if isinstance(load_factor, bool) or not isinstance(
            load_factor, (int, float)
        ):
            raise TypeError(
                f"load_factor must be a float, got {load_factor!r}"
            )
        if not (math.isfinite(load_factor) and load_factor >= 1):
            raise ConfigurationError(
                f"load_factor must be a finite number >= 1, got {load_factor!r}"
            )
        self._c = float(load_factor)
        self._ring = ConsistentHashRing(nodes, vnodes=vnodes, weights=weights)
        self._lock = threading.Lock()
        # key -> node, and per node: key -> its node's rank in the key's
        # preference list (0 = its first choice), in assignment order.
        self._keys: dict[str | bytes, str] = {}
        self._members: dict[str, dict[str | bytes, int]] = {
            node: {} for node in self._ring.nodes
        }
        self._total = 0.0
        self._uniform: float | None = None
        self._weights_changed()

    # ------------------------------------------------------------ keys

    def assign(self, key: Key) -> str:
        """Return the node for *key*, assigning it if it is new.

        A key already assigned keeps its node. A new key goes to the first
        node clockwise from it whose load is below its cap once the key is
        counted.

        Raises:
            NoNodesError: If there are no nodes.
            TypeError: If *key* is not ``str``, ``bytes`` or ``int``.
        """
        norm = coerce_key(key)
        with self._lock:
            node = self._keys.get(norm)
            if node is not None:
                return node
            if not self._members:
                raise NoNodesError("there are no nodes; add one first")
            # The new key counts towards the caps it is placed under.
            return self._put(norm, keys=len(self._keys) + 1)

    def release(self, key: Key) -> dict[str | bytes, str]:
        """Forget *key*; return the keys that had to move, with new nodes.

        Releasing lowers the number of assigned keys, so a cap can drop by
        one; a node left above its new cap moves its excess away. Most
        releases move nothing.

        Raises:
            KeyError: If *key* is not assigned.
        """
        norm = coerce_key(key)
        with self._lock:
            node = self._keys.pop(norm)
            del self._members[node][norm]
            common = self._uniform
            if common is not None:
                # Every load is within the cap for one more key; if that cap
                # equals the new one (the usual case), nobody is over.
                keys = len(self._keys)
                if self._cap(common, keys) == self._cap(common, keys + 1):
                    return {}
            return self._enforce_caps()

    def owner(self, key: Key) -> str | None:
        """Return the node *key* is assigned to, or None if it is not."""
        return self._keys.get(coerce_key(key))

    # ------------------------------------------------------------ nodes

    def add(self, node: str, weight: float = 1) -> dict[str | bytes, str]:
        """Add *node*; return the keys that moved (to stay within caps).

        Raises:
            ValueError: If *node* is already present or *weight* is not
                above 0.
        """
        check_node(node)
        check_weight(weight)
        with self._lock:
            self._ring.add(node, weight)
            self._members[node] = {}
            self._weights_changed()
            return self._enforce_caps()

    def remove(self, node: str) -> dict[str | bytes, str]:
        """Remove *node*; return the keys that moved, with their new nodes.

        Raises:
            ValueError: If *node* is not present.
            NoNodesError: If keys are assigned and *node* is the last node.
        """
        with self._lock:
            if node not in self._members:
                raise ConfigurationError(f"node: {node!r} is not present")
            orphans = self._members[node]
            if orphans and len(self._members) == 1:
                raise NoNodesError(
                    f"cannot remove {node!r}: it is the last node and "
                    f"{len(orphans)} keys are assigned; release them first"
                )
            self._ring.remove(node)
            del self._members[node]
            self._weights_changed()
            # Fewer nodes means larger caps, so nothing else is over.
            keys = len(self._keys)
            return {key: self._put(key, keys=keys) for key in orphans}

    # ------------------------------------------------------------ views

    @property
    def nodes(self) -> tuple[str, ...]:
        """The node names, in the order they were added."""
        return self._ring.nodes

    @property
    def load_factor(self) -> float:
        """The ``c`` in ``ceil(c * average)``."""
        return self._c

    @property
    def loads(self) -> dict[str, int]:
        """The number of keys assigned to each node (a copy)."""
        with self._lock:
            return {node: len(keys) for node, keys in self._members.items()}

    @property
    def assignments(self) -> dict[str | bytes, str]:
        """A copy of the key-to-node assignment."""
        with self._lock:
            return dict(self._keys)

    def capacity(self, node: str) -> int:
        """Return the most keys *node* may hold now (its cap)."""
        with self._lock:
            return self._cap(self._ring._snap.weights[node], len(self._keys))

    @property
    def ring(self) -> ConsistentHashRing:
        """The underlying ring (read it; change nodes through this object)."""
        return self._ring

    def __len__(self) -> int:
        """Return the number of assigned keys."""
        return len(self._keys)

    def __repr__(self) -> str:
        return (
            f"BoundedLoadRing(nodes={len(self._members)}, "
            f"keys={len(self._keys)}, load_factor={self._c})"
        )

    # ------------------------------------------------------------ internals

    def _weights_changed(self) -> None:
        weights = self._ring._snap.weights.values()
        self._total = sum(weights)
        distinct = set(weights)
        self._uniform = distinct.pop() if len(distinct) == 1 else None

    def _cap(self, weight: float, keys: int) -> int:
        # The epsilon keeps ceil() from rounding 3.0000000000000004 up to 4.
        return math.ceil(self._c * keys * weight / self._total - 1e-9)

    def _put(
        self, key: str | bytes, *, keys: int, exclude: str | None = None
    ) -> str:
        """Assign *key* to the first node below its cap; return the node.

        *keys* is the number of assigned keys the caps are computed for.
        """
        snap = self._ring._snap
        for rank, node in enumerate(walk(snap, key)):
            members = self._members[node]
            if node != exclude and len(members) < self._cap(
                snap.weights[node], keys
            ):
                self._keys[key] = node
                members[key] = rank
                return node
        # The caps add up to at least the number of keys, so some node
        # always has room for one more.
        raise AssertionError("no node below its cap")  # pragma: no cover

    def _enforce_caps(self) -> dict[str | bytes, str]:
        snap = self._ring._snap
        keys = len(self._keys)
        moved: dict[str | bytes, str] = {}
        for node, members in self._members.items():
            excess = len(members) - self._cap(snap.weights[node], keys)
            for _ in range(max(0, excess)):
                # Farthest from home first; among equals, the latest.
                key = max(reversed(members), key=members.__getitem__)
                del members[key]
                moved[key] = self._put(key, keys=keys, exclude=node)
        return moved
