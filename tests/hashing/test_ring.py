"""ConsistentHashRing: lookups, changes, errors, ketama mode, threads."""

from __future__ import annotations

import threading
from collections import Counter

import pytest

from dprims.errors import ConfigurationError
from dprims.hashing import ConsistentHashRing, NoNodesError, Selector
from dprims.hashing._ring import walk


NODES = ["a", "b", "c"]


class TestConsistentHashRing:
    def test_is_a_selector(self):
        """Satisfies the Selector Protocol (checked by mypy too)."""
        ring: Selector = ConsistentHashRing(NODES)
        assert ring.node_for("x") in NODES

    def test_keys_of_all_types_hash_consistently(self):
        """Hashes an int like its decimal string, and accepts bytes."""
        ring = ConsistentHashRing(NODES)
        assert ring.node_for("42") == ring.node_for(42)
        assert ring.node_for("k") == ring.node_for(b"k")
        assert ring.node_for(bytearray(b"k")) == ring.node_for(b"k")

    def test_rejects_keys_of_other_types(self):
        """Raises TypeError naming the key's type."""
        with pytest.raises(TypeError, match="float"):
            ConsistentHashRing(NODES).node_for(1.5)  # type: ignore[arg-type]

    def test_balance_at_160_vnodes(self):
        """Keeps max/mean load within what 160 vnodes allow (about 1.2)."""
        ring = ConsistentHashRing([f"n{i}" for i in range(10)])
        counts = Counter(ring.node_for(f"k{i}") for i in range(50_000))
        assert max(counts.values()) / 5_000 < 1.3

    def test_add_and_remove_change_nodes(self):
        """Adds and removes nodes, keeping insertion order."""
        ring = ConsistentHashRing(NODES)
        ring.add("d", weight=2)
        assert ("a", "b", "c", "d") == ring.nodes
        assert 160 * 5 == ring.points
        assert 2.0 == ring.weights["d"]
        ring.remove("a")
        assert ("b", "c", "d") == ring.nodes
        assert "a" not in ring
        assert 3 == len(ring)

    def test_nodes_mapping_gives_weights(self):
        """Takes {node: weight} as nodes, and weights= overrides it."""
        ring = ConsistentHashRing(
            {"a": 2, "b": 1}, weights={"b": 3}, vnodes=10
        )
        assert {"a": 2.0, "b": 3.0} == ring.weights
        assert 50 == ring.points

    def test_nodes_for_zero_and_all(self):
        """Returns [] for n=0 and every node for n=len(nodes)."""
        ring = ConsistentHashRing(NODES)
        assert [] == ring.nodes_for("k", 0)
        assert set(NODES) == set(ring.nodes_for("k", 3))

    def test_empty_ring_lookup_raises_clear_error(self):
        """Raises NoNodesError on an empty ring, for any key type."""
        ring = ConsistentHashRing()
        for key in ("k", 42):
            with pytest.raises(NoNodesError, match="no nodes"):
                ring.node_for(key)
        with pytest.raises(NoNodesError):
            ring.nodes_for("k", 1)
        assert [] == ring.nodes_for("k", 0)

    @pytest.mark.parametrize(
        ("kwargs", "error", "match"),
        [
            ({"nodes": ["a", "a"]}, ValueError, "duplicate"),
            ({"nodes": ["a"], "weights": {"a": 0}}, ValueError, "weights"),
            ({"nodes": ["a"], "weights": {"a": -1}}, ValueError, "weights"),
            ({"nodes": ["a"], "weights": {"z": 1}}, ValueError, "weights"),
            ({"nodes": ["a"], "weights": {"a": "x"}}, TypeError, "weights"),
            ({"nodes": ["a"], "vnodes": 0}, ValueError, "vnodes"),
            ({"nodes": ["a"], "vnodes": 1.5}, TypeError, "vnodes"),
            ({"nodes": ["a"], "mode": "md5"}, ValueError, "mode"),
            (
                {"nodes": ["a"], "mode": "ketama", "vnodes": 10},
                ValueError,
                "vnodes",
            ),
            ({"nodes": [""]}, ValueError, "nodes"),
            ({"nodes": [1]}, TypeError, "nodes"),
            ({"nodes": "abc"}, TypeError, "nodes"),
            (
                {"nodes": ["a"], "weights": [("a", 2)]},
                TypeError,
                "weights must be a mapping",
            ),
        ],
    )
    def test_bad_construction(self, kwargs, error, match):
        """Rejects bad arguments with an error naming the argument."""
        with pytest.raises(error, match=match) as caught:
            ConsistentHashRing(**kwargs)
        if error is ValueError:
            assert isinstance(caught.value, ConfigurationError)

    def test_bad_changes(self):
        """Rejects duplicate adds, unknown removes and bad n."""
        ring = ConsistentHashRing(NODES)
        with pytest.raises(ValueError, match="already"):
            ring.add("a")
        with pytest.raises(ValueError, match="weight"):
            ring.add("z", weight=0)
        with pytest.raises(TypeError, match="weight"):
            ring.add("z", weight=True)
        with pytest.raises(ValueError, match="not in the ring"):
            ring.remove("z")
        with pytest.raises(ValueError, match="n=4"):
            ring.nodes_for("k", 4)
        with pytest.raises(ValueError, match="n must be >= 0"):
            ring.nodes_for("k", -1)
        with pytest.raises(TypeError, match="n must be an int"):
            ring.nodes_for("k", 1.0)  # type: ignore[arg-type]

    def test_copy_is_independent(self):
        """Changes to a copy leave the original alone."""
        ring = ConsistentHashRing(NODES)
        clone = ring.copy()
        clone.add("d")
        assert ("a", "b", "c") == ring.nodes
        assert ("a", "b", "c", "d") == clone.nodes

    def test_repr_shows_state(self):
        """Shows nodes, weights, vnodes, mode and points."""
        ring = ConsistentHashRing({"a": 1, "b": 2.5}, vnodes=4)
        assert (
            "ConsistentHashRing({'a': 1, 'b': 2.5}, vnodes=4, mode='mmh3', "
            "points=14)" == repr(ring)
        )

    def test_reads_stay_correct_while_another_thread_changes_nodes(self):
        """Readers see a whole ring before or after each change, never half."""
        stable = [f"s{i}" for i in range(5)]
        ring = ConsistentHashRing(stable, vnodes=40)
        keys = [f"k{i}" for i in range(200)]
        # Keys of stable nodes that the churning node never takes.
        extra = ConsistentHashRing([*stable, "churn"], vnodes=40)
        fixed = {
            k: ring.node_for(k) for k in keys if extra.node_for(k) != "churn"
        }
        errors: list[str] = []
        stop = threading.Event()

        def read() -> None:
            while not stop.is_set():
                for key, node in fixed.items():
                    got = ring.node_for(key)
                    if got != node:
                        errors.append(f"{key}: {got} != {node}")
                        return

        readers = [threading.Thread(target=read) for _ in range(3)]
        for t in readers:
            t.start()
        for _ in range(200):
            ring.add("churn")
            ring.remove("churn")
        stop.set()
        for t in readers:
            t.join(timeout=30)
        assert [] == errors


class TestKetamaMode:
    def test_matches_uhashring_on_the_same_nodes(self):
        """Agrees with uhashring's ketama ring on every sampled key."""
        uhashring = pytest.importorskip("uhashring")
        for nodes in (
            ["a", "b", "c"],
            [f"10.0.0.{i}:11211" for i in range(20)],
            {"m1": 3, "m2": 1, "m3": 2},
        ):
            ours = ConsistentHashRing(nodes, mode="ketama")
            theirs = uhashring.HashRing(nodes, hash_fn="ketama")
            for i in range(2000):
                assert theirs.get_node(f"key{i}") == ours.node_for(f"key{i}")

    def test_matches_uhashring_after_changes(self):
        """Still agrees after a node is added and another removed."""
        uhashring = pytest.importorskip("uhashring")
        ours = ConsistentHashRing(["a", "b", "c"], mode="ketama")
        theirs = uhashring.HashRing(["a", "b", "c"], hash_fn="ketama")
        ours.add("d", weight=2)
        theirs.add_node("d", {"weight": 2})
        ours.remove("a")
        theirs.remove_node("a")
        for i in range(2000):
            assert theirs.get_node(f"key{i}") == ours.node_for(f"key{i}")

    def test_float_weights_and_point_counts(self):
        """Scales each node's digests by weight share, as libketama does."""
        ring = ConsistentHashRing({"a": 1.5, "b": 0.5}, mode="ketama")
        # 40 digests * 2 nodes * 1.5 / 2.0 = 60 digests = 240 points.
        assert 240 + 80 == ring.points
        assert "ketama" == ring.mode
        assert 160 == ring.vnodes

    @pytest.mark.parametrize(
        ("weights", "vnodes"),
        [({"a": 1, "b": 0.001}, 160), ({"a": 100, "b": 1, "c": 1}, 4)],
    )
    def test_nodes_for_counts_nodes_without_points(self, weights, vnodes):
        """Returns n distinct nodes even when a tiny weight has no point."""
        ring = ConsistentHashRing(weights, mode="ketama", vnodes=vnodes)
        owners = {ring.node_for(f"k{i}") for i in range(200)}
        assert {"a"} == owners
        for i in range(50):
            chosen = ring.nodes_for(f"k{i}", len(weights))
            assert ["a", *sorted(set(weights) - {"a"})] == chosen

    def test_walk_visits_every_node_once(self):
        """Walks the whole ring once per node, starting at the owner."""
        ring = ConsistentHashRing(NODES, vnodes=8)
        for i in range(50):
            order = list(walk(ring._snap, f"k{i}"))
            assert sorted(NODES) == sorted(order)
            assert ring.node_for(f"k{i}") == order[0]

    def test_ketama_key_types(self):
        """Hashes ints as decimal strings and bytes as they are."""
        ring = ConsistentHashRing(NODES, mode="ketama")
        assert ring.node_for("7") == ring.node_for(7)
        assert ring.node_for("k") == ring.node_for(b"k")
