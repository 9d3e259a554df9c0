"""The selector Protocol, key hashing and argument checks shared by selectors.

Every placement in `dprims.hashing` is a pure function of node names, weights
and key bytes, computed with MurmurHash3 (``mmh3``) at fixed seeds. Python's
``hash()`` is never used, because ``PYTHONHASHSEED`` makes it differ between
processes.

Status: stable.
"""

from __future__ import annotations

import abc
import math
import numbers
from collections.abc import Mapping
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar, Union

from dprims.errors import ConfigurationError, DprimsError


if TYPE_CHECKING:
    import threading
    from collections.abc import Iterable
    from typing import TypeAlias


__all__ = ()

#: What a selector accepts as a key. ``str`` is hashed as its UTF-8 bytes,
#: ``bytes`` as is, and an ``int`` as its decimal string, so ``42`` and
#: ``"42"`` always land on the same node.
Key: TypeAlias = Union[str, bytes, int]  # noqa: UP007 -- a runtime alias on 3.10


class NoNodesError(DprimsError, LookupError):
    """Raised when a key is looked up on a selector that has no nodes.

    It is a ``LookupError`` too. Add a node first, or catch it where an empty
    pool is a normal state (for example while a service starts).

    .. versionadded:: 0.1
    """


class Selector(Protocol):
    """**Protocol:** maps keys to nodes, and changes its set of nodes.

    `ConsistentHashRing`, `RendezvousHash`, `MaglevHash` and
    `MultiProbeHash` all satisfy it, so code written against `Selector` can
    swap one algorithm for another. Nodes are names (``str``); keys are
    ``str``, ``bytes`` or ``int`` (see `Key`). Lookups are safe while another
    thread calls `add` or `remove`.

    .. versionadded:: 0.1
    """

    @property
    def nodes(self) -> tuple[str, ...]:
        """The current node names, in the order they were added."""
        ...

    def node_for(self, key: Key) -> str:
        """Return the node that owns *key*."""
        ...

    def nodes_for(self, key: Key, n: int) -> list[str]:
        """Return *n* distinct nodes for *key*, most preferred first."""
        ...

    def add(self, node: str, weight: float = 1) -> None:
        """Add *node* with relative *weight*."""
        ...

    def remove(self, node: str) -> None:
        """Remove *node*; only the keys it owned move."""
        ...


def coerce_key(key: object) -> str | bytes:
    """Return *key* in a form that ``mmh3`` hashes.

    Hot paths try the key as is first and call this only when ``mmh3``
    rejected it, so ``str`` and ``bytes`` keys never pay for the checks.
    """
    if isinstance(key, (str, bytes)):
        return key
    if isinstance(key, int) and not isinstance(key, bool):
        return str(key)
    if isinstance(key, (bytearray, memoryview)):
        return bytes(key)
    raise TypeError(
        f"key must be str, bytes or int, got {type(key).__name__}: {key!r}"
    )


def check_node(node: object, *, argument: str = "node") -> str:
    """Return *node* if it is a usable node name, else raise."""
    if not isinstance(node, str):
        raise TypeError(
            f"{argument} must be a str (a node name), got "
            f"{type(node).__name__}: {node!r}"
        )
    if not node:
        raise ConfigurationError(f"{argument} must be a non-empty string")
    return node


def check_weight(weight: object, *, argument: str = "weight") -> float:
    """Return *weight* as a float if it is a finite number above zero."""
    if isinstance(weight, bool) or not isinstance(weight, numbers.Real):
        raise TypeError(
            f"{argument} must be a number, got {type(weight).__name__}: "
            f"{weight!r}"
        )
    value = float(weight)
    if not (value > 0 and math.isfinite(value)):
        raise ConfigurationError(
            f"{argument} must be a finite number above 0, got {weight!r}"
        )
    return value


def check_count(n: object, limit: int, *, argument: str = "n") -> int:
    """Return *n* if ``0 <= n <= limit`` (the number of nodes), else raise."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(
            f"{argument} must be an int, got {type(n).__name__}: {n!r}"
        )
    if n < 0:
        raise ConfigurationError(f"{argument} must be >= 0, got {n}")
    if n > limit:
        raise ConfigurationError(
            f"{argument}={n} is more than the number of nodes ({limit})"
        )
    return n


def initial_nodes(
    nodes: Iterable[str] | Mapping[str, float],
    weights: Mapping[str, float] | None,
) -> list[tuple[str, float]]:
    """Return checked ``(node, weight)`` pairs for a selector's constructor.

    *nodes* may be an iterable of names or a mapping of name to weight;
    *weights* overrides the weight of the nodes it names (others get 1).
    Raises on duplicates, bad names, bad weights and weights for unknown
    nodes.
    """
    if isinstance(nodes, (str, bytes)):
        raise TypeError(
            "nodes must be an iterable of node names, not a single "
            f"{type(nodes).__name__}; wrap it in a list: [{nodes!r}]"
        )
    if weights is not None and not isinstance(weights, Mapping):
        raise TypeError(
            "weights must be a mapping of node name to weight, got "
            f"{type(weights).__name__}: {weights!r}"
        )
    given: dict[str, float] | None = None
    if isinstance(nodes, Mapping):
        given = dict(nodes)
    names = list(given if given is not None else nodes)
    pairs: list[tuple[str, float]] = []
    seen: set[str] = set()
    for name in names:
        check_node(name, argument="nodes")
        if name in seen:
            raise ConfigurationError(f"nodes: duplicate node {name!r}")
        seen.add(name)
        weight: object = 1
        if given is not None:
            weight = given[name]
        if weights is not None and name in weights:
            weight = weights[name]
        pairs.append(
            (name, check_weight(weight, argument=f"weights[{name!r}]"))
        )
    if weights is not None:
        unknown = sorted(set(weights) - seen)
        if unknown:
            raise ConfigurationError(
                f"weights: names nodes that are not in nodes: {unknown}"
            )
    return pairs


def weight_repr(weight: float) -> str:
    """Return *weight* as ``2`` rather than ``2.0`` when it is whole."""
    return str(int(weight)) if weight.is_integer() else repr(weight)


class _WeightedSnapshot(Protocol):
    weights: dict[str, float]


_S = TypeVar("_S", bound=_WeightedSnapshot)


class _Rebuilt(abc.ABC, Generic[_S]):
    """Membership changes for selectors that rebuild one snapshot each time.

    Readers use ``_snap`` without locking; a writer builds the next snapshot
    from the new weights under ``_lock`` and swaps it in whole, so a reader
    sees either the old membership or the new one, never a mix.
    """

    __slots__ = ("_lock", "_snap")
    _lock: threading.Lock
    _snap: _S

    @abc.abstractmethod
    def _build(self, weights: dict[str, float]) -> _S:
        """Return the snapshot for *weights* (node name to weight)."""

    def _insert(self, node: str, weight: float) -> None:
        with self._lock:
            current = self._snap.weights
            if node in current:
                raise ConfigurationError(f"node: {node!r} is already present")
            self._snap = self._build({**current, node: weight})

    def _delete(self, node: str) -> None:
        with self._lock:
            current = self._snap.weights
            if node not in current:
                raise ConfigurationError(f"node: {node!r} is not present")
            self._snap = self._build(
                {k: v for k, v in current.items() if k != node}
            )
