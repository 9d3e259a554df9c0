"""RendezvousHash, MaglevHash, MultiProbeHash, JumpHash and jump_hash."""

from __future__ import annotations

import threading
from collections import Counter

import mmh3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dprims.hashing import (
    JumpHash,
    MaglevHash,
    MultiProbeHash,
    NoNodesError,
    RendezvousHash,
    Selector,
    jump_hash,
)
from dprims.hashing._maglev import is_prime
from dprims.hashing._rendezvous import (
    _KEY_SEED,
    _grouped_winner,
    _weighted_scores,
)


NODES = ["a", "b", "c", "d"]
ALL = {
    "rendezvous": RendezvousHash,
    "maglev": lambda nodes=(): MaglevHash(nodes, table_size=1009),
    "multiprobe": MultiProbeHash,
    "jump": JumpHash,
}


@pytest.mark.parametrize("kind", sorted(ALL))
class TestCommonBehaviour:
    def test_selector_basics(self, kind):
        """Looks up, adds, removes, copies and reports membership."""
        selector: Selector = ALL[kind](NODES)
        assert selector.node_for("k") in NODES
        assert selector.node_for(7) == selector.node_for("7")
        selector.add("e")
        assert ("a", "b", "c", "d", "e") == selector.nodes
        selector.remove("a")
        assert "a" not in selector  # type: ignore[operator]
        assert 4 == len(selector)  # type: ignore[arg-type]
        clone = selector.copy()  # type: ignore[attr-defined]
        clone.remove("b")
        assert "b" in selector.nodes
        assert type(selector).__name__ in repr(selector)

    def test_empty_lookup_raises(self, kind):
        """Raises NoNodesError when there is no node."""
        selector = ALL[kind]()
        with pytest.raises(NoNodesError):
            selector.node_for("k")
        with pytest.raises(NoNodesError):
            selector.nodes_for("k", 1)

    def test_bad_changes(self, kind):
        """Rejects duplicate adds, unknown removes and too large n."""
        selector = ALL[kind](NODES)
        with pytest.raises(ValueError, match="already"):
            selector.add("a")
        with pytest.raises(ValueError, match="not present"):
            selector.remove("zz")
        with pytest.raises(ValueError, match="n=5"):
            selector.nodes_for("k", 5)
        assert [] == selector.nodes_for("k", 0)
        with pytest.raises(ValueError, match="duplicate"):
            ALL[kind](["a", "a"])

    def test_balance_within_sampling_noise(self, kind):
        """Spreads 20k keys over 4 nodes within a few percent."""
        selector = ALL[kind](NODES)
        counts = Counter(selector.node_for(f"k{i}") for i in range(20_000))
        limit = 1.45 if kind == "multiprobe" else 1.06
        assert max(counts.values()) / 5000 < limit


class TestRendezvous:
    def test_weights_property_and_repr(self):
        """Reports weights and shows them in repr."""
        hrw = RendezvousHash(["a", "b"], weights={"b": 2})
        assert {"a": 1.0, "b": 2.0} == hrw.weights
        assert "RendezvousHash({'a': 1, 'b': 2})" == repr(hrw)

    def test_weighted_nodes_for_is_ordered_by_score(self):
        """Lists nodes best first with weights too."""
        hrw = RendezvousHash({"a": 1, "b": 5, "c": 1})
        firsts = Counter(hrw.nodes_for(f"k{i}", 2)[0] for i in range(3000))
        assert firsts.most_common(1)[0][0] == "b"

    @pytest.mark.parametrize(
        "weights",
        [
            {f"n{i}": 1 + i % 3 for i in range(40)},
            {f"n{i}": (0.5, 2.0)[i % 2] for i in range(17)},
        ],
        ids=["three-weights", "two-weights"],
    )
    def test_few_weights_place_as_scoring_every_node(self, weights):
        """Places keys exactly as scoring every node would, group or not."""
        hrw = RendezvousHash(weights)
        snap = hrw._snap
        assert snap.groups  # the grouped path is the one under test
        for i in range(3000):
            key = f"k{i}" if i % 2 else i
            seed = mmh3.hash(str(key), _KEY_SEED, signed=False)
            scores = _weighted_scores(snap, seed)
            assert snap.names[scores.index(max(scores))] == hrw.node_for(key)

    def test_grouped_tie_goes_to_the_first_name(self):
        """Breaks an exact tie between weight groups by name order."""
        groups = ((1.0, ("a",), (5,)), (1.0, ("a",), (2,)))
        assert 2 == _grouped_winner(groups, 7)

    def test_readers_during_changes(self):
        """Readers of unaffected keys never see a wrong node mid-change."""
        hrw = RendezvousHash(NODES)
        probe = RendezvousHash([*NODES, "x"])
        fixed = {
            f"k{i}": hrw.node_for(f"k{i}")
            for i in range(300)
            if probe.node_for(f"k{i}") != "x"
        }
        errors = []
        stop = threading.Event()

        def read():
            while not stop.is_set():
                for k, n in fixed.items():
                    if hrw.node_for(k) != n:
                        errors.append(k)
                        return

        t = threading.Thread(target=read)
        t.start()
        for _ in range(300):
            hrw.add("x")
            hrw.remove("x")
        stop.set()
        t.join(timeout=30)
        assert [] == errors


class TestMaglev:
    def test_table_size_must_be_prime(self):
        """Rejects a table size that is not prime, naming the argument."""
        with pytest.raises(ValueError, match="table_size"):
            MaglevHash(NODES, table_size=1000)
        with pytest.raises(TypeError, match="table_size"):
            MaglevHash(NODES, table_size=10.0)  # type: ignore[arg-type]

    def test_table_smaller_than_nodes_is_rejected(self):
        """Rejects more nodes than slots."""
        with pytest.raises(ValueError, match="smaller than the number"):
            MaglevHash(["a", "b", "c"], table_size=2)
        maglev = MaglevHash(["a", "b"], table_size=2)
        with pytest.raises(ValueError, match="smaller"):
            maglev.add("c")

    def test_slots_are_balanced_and_weighted(self):
        """Gives each node its share of slots, up to one slot."""
        maglev = MaglevHash({"a": 1, "b": 2, "c": 3}, table_size=4099)
        slots = maglev.slots()
        assert 4099 == sum(slots.values())
        for node, weight in (("a", 1), ("b", 2), ("c", 3)):
            assert abs(slots[node] - 4099 * weight / 6) <= 2
        assert 4099 == maglev.table_size
        assert {"a": 1.0, "b": 2.0, "c": 3.0} == maglev.weights
        assert "table_size=4099" in repr(maglev)

    @pytest.mark.parametrize(
        ("weights", "size"),
        [({"a": 1, "b": 1e-6}, 65537), ({"a": 100, "b": 1, "c": 1}, 11)],
    )
    def test_nodes_for_counts_nodes_that_own_no_slot(self, weights, size):
        """Returns n distinct nodes even when a tiny weight owns no slot."""
        maglev = MaglevHash(weights, table_size=size)
        assert 0 in maglev.slots().values()
        for i in range(50):
            chosen = maglev.nodes_for(f"k{i}", len(weights))
            assert sorted(weights) == sorted(chosen)
            assert maglev.node_for(f"k{i}") == chosen[0]

    def test_is_prime(self):
        """Tells primes from composites, including Carmichael numbers."""
        primes = [2, 3, 5, 251, 4099, 65537, 655373]
        composites = [0, 1, 4, 561, 1105, 65535, 4097, 43 * 47, 1373653]
        assert all(is_prime(p) for p in primes)
        assert not any(is_prime(c) for c in composites)


class TestMultiProbe:
    def test_weights_must_be_whole(self):
        """Rejects fractional weights, naming the argument."""
        with pytest.raises(ValueError, match="whole"):
            MultiProbeHash({"a": 1.5})
        with pytest.raises(ValueError, match="whole"):
            MultiProbeHash(["a"]).add("b", weight=0.5)
        with pytest.raises(ValueError, match="probes"):
            MultiProbeHash(["a"], probes=0)
        with pytest.raises(TypeError, match="probes"):
            MultiProbeHash(["a"], probes=2.0)  # type: ignore[arg-type]

    def test_more_probes_balance_better(self):
        """Lowers the peak load as probes grow."""
        nodes = [f"n{i}" for i in range(20)]

        def peak(probes: int) -> float:
            mp = MultiProbeHash(nodes, probes=probes)
            counts = Counter(mp.node_for(f"k{i}") for i in range(20_000))
            return max(counts.values()) / 1000

        assert peak(41) < peak(1)
        assert 41 == MultiProbeHash(nodes, probes=41).probes
        assert {"n0": 1.0} == MultiProbeHash(["n0"]).weights


class TestJump:
    def test_growth_moves_only_keys_to_the_new_bucket(self):
        """Moves a key only into the new last bucket when buckets grow."""
        for key in range(2000):
            before = jump_hash(key, 10)
            after = jump_hash(key, 11)
            assert after in (before, 10)

    @settings(max_examples=200, deadline=None)
    @given(
        key=st.one_of(
            st.text(max_size=20),
            st.binary(max_size=20),
            st.integers(min_value=-(2**70), max_value=2**70),
        ),
        buckets=st.integers(min_value=1, max_value=2**31 - 2),
    )
    def test_growth_property_for_any_key(self, key, buckets):
        """Stays in range and moves only into the new bucket, for any key."""
        before = jump_hash(key, buckets)
        assert 0 <= before < buckets
        assert jump_hash(key, buckets + 1) in (before, buckets)

    def test_errors(self):
        """Rejects bucket counts out of range and odd key types."""
        with pytest.raises(ValueError, match="num_buckets"):
            jump_hash(1, 0)
        with pytest.raises(ValueError, match="num_buckets"):
            jump_hash(1, 2**31)
        with pytest.raises(TypeError, match="num_buckets"):
            jump_hash(1, 2.0)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="key"):
            jump_hash(1.0, 2)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="weight"):
            JumpHash(["a"]).add("b", weight=2)

    def test_negative_and_bytes_keys(self):
        """Treats negative ints as two's complement and hashes bytes."""
        assert jump_hash(-1, 1000) == jump_hash(2**64 - 1, 1000)
        assert jump_hash(b"user:1", 1000) == jump_hash("user:1", 1000)

    def test_nodes_for_takes_the_following_buckets(self):
        """Lists the owner's bucket and the ones after it."""
        jh = JumpHash(NODES)
        first = jh.node_for("k")
        i = NODES.index(first)
        assert [NODES[(i + j) % 4] for j in range(3)] == jh.nodes_for("k", 3)
