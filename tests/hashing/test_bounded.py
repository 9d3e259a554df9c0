"""BoundedLoadRing: no node above ceil(c * average), few keys moved."""

from __future__ import annotations

import math
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dprims.hashing import BoundedLoadRing, ConsistentHashRing, NoNodesError


def assert_within_caps(ring: BoundedLoadRing) -> None:
    loads = ring.loads
    weights = ring.ring.weights
    total = sum(weights.values())
    for node, load in loads.items():
        cap = math.ceil(
            ring.load_factor * len(ring) * weights[node] / total - 1e-9
        )
        assert load <= cap, (node, load, cap)
        assert cap == ring.capacity(node)
    assert len(ring) == sum(loads.values())


operations = st.lists(
    st.tuples(
        st.sampled_from(["assign", "release", "add", "remove"]),
        st.integers(min_value=0, max_value=60),
    ),
    max_size=120,
)


class TestBoundedLoadRing:
    def test_assign_is_sticky_and_starts_on_the_ring(self):
        """Gives a new key its ring node, and the same node again later."""
        nodes = ["a", "b", "c"]
        bounded = BoundedLoadRing(nodes)
        plain = ConsistentHashRing(nodes)
        node = bounded.assign("first")
        assert plain.node_for("first") == node
        assert node == bounded.assign("first")
        assert node == bounded.owner("first")
        assert bounded.owner("other") is None
        assert 1 == len(bounded)

    def test_hot_node_overflows_to_the_next(self):
        """Sends keys past a full node to the next node clockwise."""
        bounded = BoundedLoadRing(["a", "b", "c", "d"], load_factor=1.0)
        for i in range(400):
            bounded.assign(f"k{i}")
        assert {"a": 100, "b": 100, "c": 100, "d": 100} == bounded.loads

    @settings(max_examples=60, deadline=None)
    @given(ops=operations, c=st.sampled_from([1.0, 1.1, 1.25, 2.0]))
    def test_never_above_the_cap(self, ops, c):
        """Keeps every node within its cap after any sequence of changes."""
        ring = BoundedLoadRing(["n0", "n1", "n2"], load_factor=c, vnodes=20)
        extra = 3
        for op, arg in ops:
            if op == "assign":
                ring.assign(f"k{arg}")
            elif op == "release" and ring.owner(f"k{arg}") is not None:
                ring.release(f"k{arg}")
            elif op == "add":
                ring.add(f"n{extra}", weight=1 + arg % 3)
                extra += 1
            elif op == "remove" and len(ring.nodes) > 1:
                ring.remove(ring.nodes[arg % len(ring.nodes)])
            assert_within_caps(ring)

    def test_moves_only_what_the_caps_force(self):
        """Moves exactly the excess over the new caps, and reports it."""
        ring = BoundedLoadRing([f"n{i}" for i in range(5)], load_factor=1.25)
        for i in range(1000):
            ring.assign(f"k{i}")
        before = ring.assignments
        loads = ring.loads
        moved = ring.add("n5")
        after = ring.assignments
        really = {k for k in before if before[k] != after[k]}
        assert really == set(moved)
        cap = ring.capacity("n0")
        assert sum(max(0, load - cap) for load in loads.values()) == len(moved)
        assert_within_caps(ring)

    def test_remove_moves_only_the_nodes_keys(self):
        """Reassigns the removed node's keys and leaves the others."""
        ring = BoundedLoadRing(["a", "b", "c", "d"])
        for i in range(300):
            ring.assign(f"k{i}")
        before = ring.assignments
        moved = ring.remove("b")
        assert {k for k, n in before.items() if n == "b"} == set(moved)
        assert "b" not in ring.loads
        assert_within_caps(ring)

    def test_release_usually_moves_nothing(self):
        """Releasing keys keeps the rest in place unless a cap shrinks."""
        ring = BoundedLoadRing([f"n{i}" for i in range(4)], load_factor=1.5)
        for i in range(200):
            ring.assign(f"k{i}")
        total = 0
        for i in range(0, 200, 2):
            total += len(ring.release(f"k{i}"))
            assert_within_caps(ring)
        assert total < 30
        assert 100 == len(ring)

    def test_weighted_caps(self):
        """Scales caps by weight."""
        ring = BoundedLoadRing({"big": 3, "small": 1}, load_factor=1.0)
        for i in range(400):
            ring.assign(i)
        assert {"big": 300, "small": 100} == ring.loads
        ring.release(0)
        assert_within_caps(ring)

    def test_errors(self):
        """Rejects bad arguments and impossible operations clearly."""
        with pytest.raises(ValueError, match="load_factor"):
            BoundedLoadRing(["a"], load_factor=0.9)
        with pytest.raises(TypeError, match="load_factor"):
            BoundedLoadRing(["a"], load_factor="2")  # type: ignore[arg-type]
        with pytest.raises(NoNodesError):
            BoundedLoadRing().assign("k")
        ring = BoundedLoadRing(["a"])
        ring.assign("k")
        with pytest.raises(KeyError):
            ring.release("missing")
        with pytest.raises(ValueError, match="not present"):
            ring.remove("zz")
        with pytest.raises(NoNodesError, match="last node"):
            ring.remove("a")
        with pytest.raises(ValueError, match="already"):
            ring.add("a")
        ring.release("k")
        assert {} == ring.remove("a")
        assert "BoundedLoadRing(nodes=0, keys=0, load_factor=1.25)" == repr(
            ring
        )

    def test_threads_assign_and_release_safely(self):
        """Keeps the invariant with four threads assigning and releasing."""
        ring = BoundedLoadRing([f"n{i}" for i in range(4)])

        def work(t: int) -> None:
            for i in range(300):
                ring.assign(f"{t}:{i}")
                if i % 3 == 0:
                    ring.release(f"{t}:{i}")

        threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert 4 * 200 == len(ring)
        assert_within_caps(ring)
        assert ("n0", "n1", "n2", "n3") == ring.nodes
