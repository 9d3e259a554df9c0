"""Tests for the balancing policies: sequences, shares, membership, leases."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import random
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dprims.balancing import (
    Balancer,
    EndpointStats,
    LeastConnections,
    PeakEWMA,
    PowerOfTwoChoices,
    RandomChoice,
    RoundRobin,
    WeightedRandom,
    WeightedRoundRobin,
)
from dprims.errors import ConfigurationError, NoEndpointAvailable


ALL_POLICIES = [
    RoundRobin,
    WeightedRoundRobin,
    RandomChoice,
    WeightedRandom,
    LeastConnections,
    PowerOfTwoChoices,
    PeakEWMA,
]

weights_strategy = st.dictionaries(
    st.sampled_from("abcdefgh"),
    st.integers(min_value=1, max_value=9),
    min_size=1,
    max_size=6,
)


class TestWeightedRoundRobin:
    @pytest.mark.parametrize(
        ("weights", "expected"),
        [
            ({"a": 3, "b": 1}, "aaba"),
            ({"a": 5, "b": 1, "c": 1}, "aabacaa"),
            ({"a": 1, "b": 1}, "ab"),
            ({"a": 2, "b": 1, "c": 1}, "abca"),
            ({"a": 1, "b": 2, "c": 4}, "cbcacbc"),
            ({"a": 4, "b": 3, "c": 2}, "abcabacba"),
        ],
    )
    def test_smooth_sequence(self, weights, expected):
        """Gives nginx's smooth sequence for several weight sets, twice over."""
        lb = WeightedRoundRobin(weights)
        got = "".join(lb.pick() for _ in range(2 * len(expected)))
        assert expected * 2 == got

    def test_never_bursts(self):
        """Gives b exactly once in every window of four picks at 3:1."""
        lb = WeightedRoundRobin({"a": 3, "b": 1})
        sequence = "".join(lb.pick() for _ in range(400))
        windows = {sequence[i : i + 4].count("b") for i in range(397)}
        assert {1} == windows

    @settings(max_examples=40, deadline=None)
    @given(weights=weights_strategy, rounds=st.integers(1, 4))
    def test_exact_shares_per_period(self, weights, rounds):
        """Gives each endpoint exactly weight x rounds picks per period."""
        lb = WeightedRoundRobin(weights)
        total = sum(weights.values())
        counts = collections.Counter(lb.pick() for _ in range(total * rounds))
        assert {k: w * rounds for k, w in weights.items()} == dict(counts)

    def test_exact_shares_under_threads(self):
        """Keeps exact 3:1 shares when four threads pick at once."""
        lb = WeightedRoundRobin({"a": 3, "b": 1})
        counts: list[collections.Counter[str]] = []
        barrier = threading.Barrier(4)

        def worker():
            barrier.wait(timeout=10)
            counts.append(collections.Counter(lb.pick() for _ in range(4000)))

        threads = [threading.Thread(target=worker) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert {"a": 12000, "b": 4000} == sum(counts, collections.Counter())

    def test_set_weight_changes_shares(self):
        """Follows a weight change at runtime."""
        lb = WeightedRoundRobin({"a": 1, "b": 1})
        lb.set_weight("a", 3)
        counts = collections.Counter(lb.pick() for _ in range(400))
        assert {"a": 300, "b": 100} == dict(counts)

    def test_floats(self):
        """Accepts fractional weights."""
        lb = WeightedRoundRobin({"a": 0.5, "b": 1.5})
        counts = collections.Counter(lb.pick() for _ in range(400))
        assert {"a": 100, "b": 300} == dict(counts)


class TestRoundRobin:
    def test_cycles_in_order(self):
        """Cycles through the endpoints in insertion order."""
        lb = RoundRobin(["a", "b", "c"])
        assert list("abcabca") == [lb.pick() for _ in range(7)]

    def test_picks_and_leases_share_the_turns(self):
        """Takes turns across pick and lease alike."""
        lb = RoundRobin(["a", "b", "c"])
        first = lb.pick()
        with lb.lease() as second:
            pass
        assert ["a", "b", "c"] == [first, second, lb.pick()]

    def test_ignores_weights(self):
        """Ignores weights given as a mapping."""
        lb = RoundRobin({"a": 5, "b": 1})
        assert list("abab") == [lb.pick() for _ in range(4)]

    def test_fair_under_threads(self):
        """Shares picks exactly evenly between endpoints across 8 threads."""
        lb = RoundRobin(["a", "b", "c", "d"])
        counts: list[collections.Counter[str]] = []
        barrier = threading.Barrier(8)

        def worker():
            barrier.wait(timeout=10)
            counts.append(collections.Counter(lb.pick() for _ in range(5000)))

        threads = [threading.Thread(target=worker) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        total = sum(counts, collections.Counter())
        assert {"a": 10000, "b": 10000, "c": 10000, "d": 10000} == total

    def test_membership_changes_under_threads(self):
        """Keeps picking members while other threads add and remove them."""
        lb = RoundRobin(["a", "b"])
        errors: list[BaseException] = []
        stop = threading.Event()
        seen: set[str] = set()

        def picker():
            try:
                for _ in range(20000):
                    if stop.is_set():
                        return
                    seen.add(lb.pick())
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        def churner():
            for i in range(300):
                lb.add(f"x{i}")
                lb.remove(f"x{i}")
            stop.set()

        threads = [threading.Thread(target=picker) for _ in range(3)]
        threads.append(threading.Thread(target=churner))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert [] == errors
        assert {"a", "b"} <= seen
        assert ("a", "b") == lb.endpoints


class TestRandomPolicies:
    @settings(max_examples=25, deadline=None)
    @given(weights=weights_strategy, seed=st.integers(0, 2**32))
    def test_weighted_random_shares(self, weights, seed):
        """Gives each endpoint a share close to its weight share."""
        lb = WeightedRandom(weights, rng=random.Random(seed))
        picks = 4000
        counts = collections.Counter(lb.pick() for _ in range(picks))
        total = sum(weights.values())
        for endpoint, weight in weights.items():
            assert abs(weight / total - counts[endpoint] / picks) < 0.05

    def test_random_choice_uniform(self):
        """Spreads picks evenly, ignoring weights."""
        lb = RandomChoice({"a": 9, "b": 1}, rng=random.Random(7))
        counts = collections.Counter(lb.pick() for _ in range(4000))
        assert abs(2000 - counts["a"]) < 200

    def test_reproducible_with_seed(self):
        """Repeats the same sequence for the same seed."""
        first = RandomChoice(["a", "b", "c"], rng=random.Random(1))
        second = RandomChoice(["a", "b", "c"], rng=random.Random(1))
        assert [first.pick() for _ in range(20)] == [
            second.pick() for _ in range(20)
        ]

    def test_default_rng(self):
        """Works without an explicit random source."""
        assert WeightedRandom(["a"]).pick() == "a"
        assert RandomChoice(["a"]).pick() == "a"


class TestLoadAware:
    @settings(max_examples=25, deadline=None)
    @given(weights=weights_strategy, rounds=st.integers(1, 3))
    def test_least_connections_spreads_by_weight(self, weights, rounds):
        """Keeps open leases within one of weight x rounds per endpoint."""
        lb = LeastConnections(weights)
        total = sum(weights.values())
        leases = [lb.lease() for _ in range(total * rounds)]
        counts = collections.Counter(lease.__enter__() for lease in leases)
        for endpoint, weight in weights.items():
            assert abs(weight * rounds - counts[endpoint]) <= 1
        for lease in leases:
            lease.__exit__(None, None, None)
        assert all(0 == s.in_flight for s in lb.stats())

    def test_least_connections_avoids_busy(self):
        """Sends new requests away from an endpoint with open leases."""
        lb = LeastConnections(["a", "b"])
        lease = lb.lease()
        busy = lease.__enter__()
        assert [busy] != [lb.pick() for _ in range(1)]
        assert {"a", "b"} - {busy} == {lb.pick() for _ in range(5)}
        lease.__exit__(None, None, None)

    def test_least_connections_round_robins_ties(self):
        """Rotates between endpoints that are equally idle."""
        lb = LeastConnections(["a", "b", "c"])
        assert {"a", "b", "c"} == {lb.pick() for _ in range(3)}

    @settings(max_examples=20, deadline=None)
    @given(weights=weights_strategy, seed=st.integers(0, 2**32))
    def test_p2c_spreads_by_weight(self, weights, seed):
        """Keeps open leases proportional to weight, even at 1:1:7."""
        lb = PowerOfTwoChoices(weights, rng=random.Random(seed))
        total = sum(weights.values())
        rounds = 20
        leases = [lb.lease() for _ in range(total * rounds)]
        counts = collections.Counter(lease.__enter__() for lease in leases)
        for endpoint, weight in weights.items():
            assert abs(weight * rounds - counts[endpoint]) <= max(
                3, weight * rounds * 0.2
            )
        for lease in leases:
            lease.__exit__(None, None, None)

    def test_peak_ewma_spreads_by_weight(self, clock):
        """Gives a heavier endpoint a larger share when latencies are equal."""
        lb = PeakEWMA(
            {"a": 1, "b": 1, "c": 7}, rng=random.Random(4), clock=clock
        )
        leases = [lb.lease() for _ in range(90)]
        counts = collections.Counter(lease.__enter__() for lease in leases)
        assert counts["c"] > 3 * max(counts["a"], counts["b"])
        for lease in leases:
            lease.__exit__(None, None, None)

    def test_p2c_single_endpoint(self):
        """Returns the only endpoint without drawing."""
        assert PowerOfTwoChoices(["a"]).pick() == "a"

    def test_p2c_never_picks_ejected(self, clock):
        """Never picks an endpoint that outlier detection ejected."""
        from dprims.balancing import OutlierDetection

        lb = PowerOfTwoChoices(
            ["a", "b", "c"],
            outlier_detection=OutlierDetection(
                consecutive_failures=1, max_ejection_fraction=1.0
            ),
            rng=random.Random(3),
            clock=clock,
        )
        for _ in range(10):
            lease = lb.lease()
            with lease as endpoint:
                if endpoint == "b":
                    lease.mark_failure()
            if any(s.ejected for s in lb.stats()):
                break
        assert "b" not in {lb.pick() for _ in range(200)}


class TickingClock:
    """A clock that moves a microsecond on every read, like a real one."""

    def __init__(self):
        self.now = 0.0

    def monotonic(self):
        self.now += 1e-6
        return self.now

    def time(self):
        return self.monotonic()


class TestSharesWithoutLeases:
    @pytest.mark.parametrize(
        ("weights", "expected"),
        [
            ({"a": 3, "b": 1}, "aaba"),
            ({"a": 5, "b": 1, "c": 1}, "aabacaa"),
        ],
    )
    def test_least_connections_ties_follow_smooth_order(
        self, weights, expected
    ):
        """Breaks ties in nginx's smooth weighted order, as nginx does."""
        lb = LeastConnections(weights)
        assert expected * 2 == "".join(
            lb.pick() for _ in range(2 * len(expected))
        )

    @settings(max_examples=25, deadline=None)
    @given(weights=weights_strategy, rounds=st.integers(1, 3))
    def test_least_connections_short_leases_share_by_weight(
        self, weights, rounds
    ):
        """Shares exactly by weight when leases end before the next pick."""
        lb = LeastConnections(weights)
        counts = collections.Counter()
        for _ in range(sum(weights.values()) * rounds):
            with lb.lease() as endpoint:
                counts[endpoint] += 1
        assert {k: w * rounds for k, w in weights.items()} == dict(counts)

    @pytest.mark.parametrize(
        "weights",
        [
            {"a": 1, "b": 1, "c": 1, "d": 1},
            {"a": 5, "b": 3, "c": 1, "d": 1},
        ],
    )
    def test_peak_ewma_picks_share_by_weight(self, weights):
        """Shares picks by weight on a moving clock when nothing is measured."""
        lb = PeakEWMA(weights, rng=random.Random(5), clock=TickingClock())
        picks = 20_000
        counts = collections.Counter(lb.pick() for _ in range(picks))
        total = sum(weights.values())
        for endpoint, weight in weights.items():
            assert weight / total == pytest.approx(
                counts[endpoint] / picks, abs=0.02
            )

    def test_peak_ewma_short_leases_share_by_weight(self, clock):
        """Shares by weight when every lease ends at once on a still clock."""
        weights = {"a": 5, "b": 3, "c": 1, "d": 1}
        lb = PeakEWMA(weights, rng=random.Random(6), clock=clock)
        counts = collections.Counter()
        for _ in range(20_000):
            with lb.lease() as endpoint:
                counts[endpoint] += 1
        for endpoint, weight in weights.items():
            assert weight / 10 == pytest.approx(
                counts[endpoint] / 20_000, abs=0.02
            )


class TestWeightedRoundRobinChanges:
    @staticmethod
    def reference(weights, healthy, current):
        """Return one step of nginx's algorithm over plain dicts."""
        available = [k for k in weights if healthy[k]]
        total = sum(weights[k] for k in available)
        best, best_score = None, float("-inf")
        for k in available:
            current[k] += weights[k]
            if current[k] > best_score:
                best, best_score = k, current[k]
        current[best] -= total
        return best

    @settings(max_examples=60, deadline=None)
    @given(
        initial=weights_strategy,
        ops=st.lists(
            st.tuples(
                st.sampled_from(["pick", "lease", "add", "remove", "weight"])
                | st.sampled_from(["down", "up"]),
                st.sampled_from("abcdefgh"),
                st.integers(1, 6),
            ),
            max_size=40,
        ),
    )
    def test_same_order_as_step_by_step(self, initial, ops):
        """Picks in exactly nginx's order across adds, removes and weights."""
        lb = WeightedRoundRobin(initial, panic_threshold=0.0)
        weights = {k: float(w) for k, w in initial.items()}
        healthy = dict.fromkeys(weights, True)
        current = dict.fromkeys(weights, 0.0)
        for op, endpoint, number in ops:
            up = [k for k in weights if healthy[k]]
            if op in {"pick", "lease"}:
                for _ in range(number * 3):
                    if op == "pick":
                        got = lb.pick()
                    else:
                        with lb.lease() as got:
                            pass
                    assert self.reference(weights, healthy, current) == got
            elif op == "add" and endpoint not in weights:
                lb.add(endpoint, number)
                weights[endpoint] = float(number)
                healthy[endpoint] = True
                current[endpoint] = 0.0
            elif op == "remove" and endpoint in weights and len(up) > 1:
                lb.remove(endpoint)
                del weights[endpoint], healthy[endpoint], current[endpoint]
            elif op == "weight" and endpoint in weights:
                lb.set_weight(endpoint, number)
                weights[endpoint] = float(number)
            elif op == "down" and endpoint in up and len(up) > 1:
                lb.set_healthy(endpoint, False)
                healthy[endpoint] = False
            elif op == "up" and endpoint in weights:
                lb.set_healthy(endpoint, True)
                healthy[endpoint] = True

    @pytest.mark.parametrize(
        "weights",
        [{"a": 9000.0, "b": 7000.0, "c": 1.0}, {"a": 2.5, "b": 1.0}],
    )
    def test_step_by_step_path_keeps_the_order(self, weights):
        """Keeps nginx's order for weights too large or fractional to precompute."""
        lb = WeightedRoundRobin(weights)
        healthy = dict.fromkeys(weights, True)
        current = dict.fromkeys(weights, 0.0)
        expected = [
            self.reference(weights, healthy, current) for _ in range(500)
        ]
        assert expected == [lb.pick() for _ in range(500)]

    def test_exact_counts_under_eight_threads(self):
        """Gives exact 5:2:1 counts when eight threads pick at once."""
        lb = WeightedRoundRobin({"a": 5, "b": 2, "c": 1})
        counts: list[collections.Counter[str]] = []
        barrier = threading.Barrier(8)

        def worker():
            barrier.wait(timeout=10)
            counts.append(collections.Counter(lb.pick() for _ in range(4000)))

        threads = [threading.Thread(target=worker) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        expected = {"a": 20000, "b": 8000, "c": 4000}
        assert expected == sum(counts, collections.Counter())


class TestPeakEWMA:
    def _serve(self, lb, clock, latency, rounds=200, fail=()):
        counts = collections.Counter()
        for _ in range(rounds):
            lease = lb.lease()
            with lease as endpoint:
                counts[endpoint] += 1
                clock.advance(latency[endpoint])
                if endpoint in fail:
                    lease.mark_failure()
        return counts

    def test_prefers_fast_endpoint(self, clock):
        """Sends most requests to the endpoint with the lower latency."""
        lb = PeakEWMA(["fast", "slow"], rng=random.Random(1), clock=clock)
        counts = self._serve(lb, clock, {"fast": 0.01, "slow": 0.2})
        assert counts["fast"] > 4 * counts["slow"]

    def test_fast_failures_are_penalised(self, clock):
        """Does not favour an endpoint because it fails quickly."""
        lb = PeakEWMA(["good", "broken"], rng=random.Random(2), clock=clock)
        counts = self._serve(
            lb, clock, {"good": 0.05, "broken": 0.001}, fail={"broken"}
        )
        assert counts["good"] > 4 * counts["broken"]

    def test_fast_failures_fool_it_without_penalty(self, clock):
        """Favours the quick failures when failures are not marked."""
        lb = PeakEWMA(["good", "broken"], rng=random.Random(2), clock=clock)
        counts = self._serve(lb, clock, {"good": 0.05, "broken": 0.001})
        assert counts["broken"] > counts["good"]

    def test_estimate_decays_when_idle(self, clock):
        """Lets a slow endpoint's estimate decay so it is tried again."""
        lb = PeakEWMA(["a"], decay=1.0, clock=clock)
        with lb.lease():
            clock.advance(2.0)
        (before,) = lb.stats()
        clock.advance(5.0)
        (after,) = lb.stats()
        assert before.latency == pytest.approx(2.0)
        assert after.latency == pytest.approx(2.0 * 2.718281828**-5)

    def test_peak_then_smoothing(self, clock):
        """Jumps to a slower sample at once and blends in faster ones."""
        lb = PeakEWMA(["a"], decay=1.0, default_rtt=0.1, clock=clock)
        with lb.lease():
            clock.advance(0.5)
        assert 0.5 == lb.stats()[0].latency
        with lb.lease():
            clock.advance(0.1)
        assert 0.1 < lb.stats()[0].latency < 0.5

    def test_default_rtt_for_new_endpoints(self, clock):
        """Starts every endpoint at the default estimate."""
        lb = PeakEWMA(["a", "b"], default_rtt=0.25, clock=clock)
        assert [0.25, 0.25] == [s.latency for s in lb.stats()]

    def test_zero_cost_with_pending_is_not_free(self, clock):
        """Treats a zero estimate with requests in flight as expensive."""
        lb = PeakEWMA(["a", "b"], rng=random.Random(0), clock=clock)
        members = lb._view.members
        for member in members:
            member.ewma = 0.0
        members[0].in_flight = 1
        assert {"b"} == {lb.pick() for _ in range(20)}
        members[0].in_flight = 0

    def test_cancelled_lease_raises_the_estimate(self, clock):
        """Learns from a cancelled lease that the endpoint is at least that slow."""
        lb = PeakEWMA(["a"], default_rtt=0.01, clock=clock)
        with pytest.raises(KeyboardInterrupt), lb.lease():
            clock.advance(3.0)
            raise KeyboardInterrupt
        (stats,) = lb.stats()
        assert (3.0, 0, 0, 0) == (
            stats.latency,
            stats.successes,
            stats.failures,
            stats.in_flight,
        )

    def test_cancelled_lease_never_lowers_the_estimate(self, clock):
        """Keeps the estimate when a cancelled lease was quicker than it."""
        lb = PeakEWMA(["a"], default_rtt=0.5, clock=clock)
        with pytest.raises(KeyboardInterrupt), lb.lease():
            raise KeyboardInterrupt
        assert 0.5 == lb.stats()[0].latency

    def test_hanging_endpoint_loses_traffic_to_timeouts(self, clock):
        """Steers away from an endpoint whose leases are cancelled by timeouts."""
        lb = PeakEWMA(["ok", "hangs"], rng=random.Random(3), clock=clock)

        async def call():
            async with lb.lease() as endpoint:
                if endpoint == "hangs":
                    clock.advance(1.0)
                    await asyncio.sleep(10)
                clock.advance(0.01)
                return endpoint

        async def one():
            # wait_for, not asyncio.timeout: the package supports 3.10.
            with contextlib.suppress(asyncio.TimeoutError):
                return await asyncio.wait_for(call(), 0.001)
            return "hangs"

        async def main():
            return collections.Counter([await one() for _ in range(40)])

        counts = asyncio.run(main())
        assert counts["ok"] > 4 * counts["hangs"]

    @pytest.mark.parametrize(
        ("option", "value"),
        [
            ("decay", 0),
            ("default_rtt", -1),
            ("failure_penalty", 0.5),
            ("decay", float("inf")),
        ],
    )
    def test_rejects_bad_options(self, option, value):
        """Rejects non-positive decay and rtt, and a penalty below one."""
        with pytest.raises(ValueError, match=option):
            PeakEWMA(["a"], **{option: value})

    def test_repr(self):
        """Shows the decay in its repr."""
        assert "decay=10.0" in repr(PeakEWMA(["a"]))


class TestCommon:
    @pytest.mark.parametrize("policy", ALL_POLICIES)
    def test_empty_pool(self, policy):
        """Raises NoEndpointAvailable for an empty pool."""
        lb = policy()
        with pytest.raises(NoEndpointAvailable, match="empty"):
            lb.pick()
        with pytest.raises(NoEndpointAvailable), lb.lease():
            pass  # pragma: no cover - the lease cannot be entered

    @pytest.mark.parametrize("policy", ALL_POLICIES)
    def test_is_a_balancer(self, policy):
        """Satisfies the Balancer protocol for typing and duck typing."""
        lb: Balancer[str] = policy(["a"])
        assert "a" == lb.pick()
        with lb.lease() as endpoint:
            assert "a" == endpoint

    @pytest.mark.parametrize("policy", ALL_POLICIES)
    def test_add_and_remove(self, policy):
        """Adds and removes endpoints at runtime."""
        lb = policy(["a"])
        lb.add("b", weight=2)
        assert ("a", "b") == lb.endpoints
        assert 2 == len(lb)
        assert "b" in lb
        lb.remove("a")
        assert {"b"} == {lb.pick() for _ in range(10)}

    @pytest.mark.parametrize("policy", ALL_POLICIES)
    @pytest.mark.parametrize("weight", [0, -1, float("nan"), float("inf")])
    def test_rejects_bad_weight(self, policy, weight):
        """Rejects weights that are not finite numbers above zero."""
        with pytest.raises(ValueError, match="weight"):
            policy({"a": weight})
        lb = policy(["a"])
        with pytest.raises(ValueError, match="weight"):
            lb.add("b", weight=weight)
        with pytest.raises(ValueError, match="weight"):
            lb.set_weight("a", weight)

    def test_rejects_non_numeric_weight(self):
        """Rejects a weight that is not a number, booleans included."""
        with pytest.raises(TypeError, match="weight"):
            WeightedRoundRobin({"a": True})
        with pytest.raises(TypeError, match="weight"):
            WeightedRoundRobin({"a": "3"})

    def test_rejects_unknown_and_duplicate(self):
        """Rejects removing unknown endpoints and adding duplicates."""
        lb = RoundRobin(["a"])
        with pytest.raises(ValueError, match="not in the pool"):
            lb.remove("zzz")
        with pytest.raises(ValueError, match="already"):
            lb.add("a")
        with pytest.raises(ValueError, match="unique"):
            RoundRobin(["a", "a"])
        with pytest.raises(ConfigurationError, match="not in the pool"):
            lb.set_healthy("zzz", False)

    def test_rejects_string_endpoints(self):
        """Rejects a bare string, which would be split into characters."""
        with pytest.raises(TypeError, match="endpoints"):
            RoundRobin("abc")

    @pytest.mark.parametrize(
        ("option", "value"),
        [
            ("panic_threshold", 1.5),
            ("panic_threshold", -0.1),
            ("slow_start", -1.0),
        ],
    )
    def test_rejects_bad_options(self, option, value):
        """Rejects an out-of-range panic threshold or slow start."""
        with pytest.raises(ValueError, match=option):
            WeightedRoundRobin(["a"], **{option: value})

    @pytest.mark.parametrize(
        ("policy", "option", "value"),
        [
            (RoundRobin, "panic_threshold", "0.5"),
            (WeightedRoundRobin, "slow_start", None),
            (RoundRobin, "clock", 0.0),
            (RandomChoice, "rng", 42),
            (PowerOfTwoChoices, "rng", object()),
            (PeakEWMA, "decay", "10"),
            (PeakEWMA, "default_rtt", None),
            (PeakEWMA, "failure_penalty", "4"),
        ],
    )
    def test_wrong_types_name_the_argument(self, policy, option, value):
        """Raises TypeError naming the argument for a value of the wrong type."""
        with pytest.raises(TypeError, match=option):
            policy(["a"], **{option: value})

    @pytest.mark.parametrize("endpoints", [None, 5])
    def test_rejects_non_iterable_endpoints(self, endpoints):
        """Raises TypeError naming endpoints when they are not iterable."""
        with pytest.raises(TypeError, match="endpoints"):
            RoundRobin(endpoints)

    def test_rejects_bad_outlier_type(self):
        """Rejects an outlier_detection that is not OutlierDetection."""
        with pytest.raises(TypeError, match="outlier_detection"):
            RoundRobin(["a"], outlier_detection={"consecutive_failures": 1})

    def test_any_hashable_endpoint(self):
        """Accepts any hashable endpoint object."""
        lb = RoundRobin([("10.0.0.1", 80), ("10.0.0.2", 80)])
        assert ("10.0.0.1", 80) == lb.pick()

    def test_repr(self):
        """Shows members and availability."""
        assert "RoundRobin(endpoints=['a'], available=1)" == repr(
            RoundRobin(["a"])
        )

    def test_stats(self):
        """Reports weights, in-flight counts and outcomes."""
        lb = WeightedRoundRobin({"a": 2})
        with lb.lease():
            (during,) = lb.stats()
        assert (
            EndpointStats(
                endpoint="a",
                weight=2.0,
                effective_weight=2.0,
                in_flight=1,
                healthy=True,
                ejected=False,
                ejected_until=None,
                successes=0,
                failures=0,
                consecutive_failures=0,
                latency=None,
            )
            == during
        )
        assert (1, 0) == (lb.stats()[0].successes, lb.stats()[0].in_flight)


class TestLease:
    def test_counts_in_flight(self):
        """Counts a lease in flight until it ends."""
        lb = RoundRobin(["a"])
        with lb.lease():
            assert 1 == lb.stats()[0].in_flight
        assert 0 == lb.stats()[0].in_flight

    def test_exception_is_failure(self):
        """Records an exception raised inside the lease as a failure."""
        lb = RoundRobin(["a"])
        with pytest.raises(RuntimeError), lb.lease():
            raise RuntimeError("boom")
        assert (0, 1) == (lb.stats()[0].successes, lb.stats()[0].failures)

    def test_mark_failure_and_success(self):
        """Lets the caller decide the outcome explicitly."""
        lb = RoundRobin(["a"])
        lease = lb.lease()
        with lease:
            lease.mark_failure()
        lease = lb.lease()
        with pytest.raises(KeyError), lease:
            lease.mark_success()
            raise KeyError("handled elsewhere")
        assert (1, 1) == (lb.stats()[0].successes, lb.stats()[0].failures)

    def test_cancellation_records_nothing(self):
        """Releases without an outcome on BaseException (cancellation)."""
        lb = RoundRobin(["a"])
        with pytest.raises(asyncio.CancelledError), lb.lease():
            raise asyncio.CancelledError
        (stats,) = lb.stats()
        assert (0, 0, 0) == (stats.successes, stats.failures, stats.in_flight)

    def test_async_with(self):
        """Works as an async context manager."""
        lb = RoundRobin(["a", "b"])

        async def main():
            async with lb.lease() as endpoint:
                return endpoint, lb.stats()

        endpoint, stats = asyncio.run(main())
        assert "a" == endpoint
        assert 1 == stats[0].in_flight
        assert 1 == lb.stats()[0].successes

    def test_concurrent_tasks(self):
        """Spreads concurrent asyncio tasks by their open leases."""
        lb = LeastConnections(["a", "b", "c"])
        peak: list[int] = []

        async def request(release):
            async with lb.lease():
                peak.append(max(s.in_flight for s in lb.stats()))
                await release.wait()

        async def main():
            release = asyncio.Event()
            tasks = [asyncio.create_task(request(release)) for _ in range(9)]
            for _ in range(20):
                await asyncio.sleep(0)
            in_flight = [s.in_flight for s in lb.stats()]
            release.set()
            await asyncio.gather(*tasks)
            return in_flight

        assert [3, 3, 3] == asyncio.run(main())
        assert [0, 0, 0] == [s.in_flight for s in lb.stats()]
        assert 3 == max(peak)

    def test_single_use(self):
        """Refuses to be entered twice."""
        lb = RoundRobin(["a"])
        lease = lb.lease()
        with lease:
            pass
        with pytest.raises(RuntimeError, match="single-use"), lease:
            pass  # pragma: no cover - never entered

    def test_endpoint_property(self):
        """Exposes the endpoint only once entered."""
        lease = RoundRobin(["a"]).lease()
        assert "not entered" in repr(lease)
        with pytest.raises(RuntimeError, match="not been entered"):
            _ = lease.endpoint
        with lease:
            assert "a" == lease.endpoint
            assert "Lease('a')" == repr(lease)

    def test_exit_without_enter(self):
        """Ignores an exit that had no enter."""
        lb = RoundRobin(["a"])
        lb.lease().__exit__(None, None, None)
        assert 0 == lb.stats()[0].in_flight

    def test_removed_endpoint_finishes(self):
        """Lets a lease finish on an endpoint removed meanwhile."""
        lb = RoundRobin(["a", "b"])
        with lb.lease() as endpoint:
            lb.remove(endpoint)
        assert ("b",) == lb.endpoints
