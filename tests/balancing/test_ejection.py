"""Tests for outlier ejection, panic mode and slow start on a fake clock."""

from __future__ import annotations

import collections

import pytest

from dprims.balancing import (
    LeastConnections,
    OutlierDetection,
    RoundRobin,
    WeightedRandom,
    WeightedRoundRobin,
)
from dprims.errors import NoEndpointAvailable


def fail(lb, endpoint, times):
    """Record *times* failed leases on *endpoint* (bounded attempts)."""
    done = 0
    for _ in range(times * 20):
        if done == times:
            return
        lease = lb.lease()
        with lease as picked:
            if picked == endpoint:
                lease.mark_failure()
                done += 1
    raise AssertionError(f"could not fail {endpoint} {times} times")


def succeed(lb, endpoint):
    for _ in range(50):
        with lb.lease() as picked:
            if picked == endpoint:
                return
    raise AssertionError(f"never picked {endpoint}")


def ejected(lb):
    return [s.endpoint for s in lb.stats() if s.ejected]


class TestOutlierDetection:
    def make(self, clock, endpoints=("a", "b", "c"), **options):
        options.setdefault("max_ejection_fraction", 1.0)
        return RoundRobin(
            list(endpoints),
            outlier_detection=OutlierDetection(
                consecutive_failures=3, base_ejection_time=10.0, **options
            ),
            panic_threshold=0.0,
            clock=clock,
        )

    def test_ejects_after_consecutive_failures(self, clock):
        """Ejects after N failures in a row, not before."""
        lb = self.make(clock)
        fail(lb, "b", 2)
        assert [] == ejected(lb)
        fail(lb, "b", 1)
        assert ["b"] == ejected(lb)
        assert {"a", "c"} == {lb.pick() for _ in range(30)}

    def test_logs_ejections(self, clock, caplog):
        """Logs one warning per ejection with the endpoint and the end."""
        lb = self.make(clock)
        with caplog.at_level("WARNING", logger="dprims.balancing"):
            fail(lb, "b", 3)
        (record,) = caplog.records
        assert ("balancing.endpoint_ejected", "b", 1010.0) == (
            record.getMessage(),
            record.endpoint,
            record.ejected_until,
        )

    def test_success_resets_the_count(self, clock):
        """Needs the failures to be consecutive."""
        lb = self.make(clock)
        fail(lb, "b", 2)
        succeed(lb, "b")
        fail(lb, "b", 2)
        assert [] == ejected(lb)
        assert 2 == lb.stats()[1].consecutive_failures

    def test_returns_after_base_time(self, clock):
        """Brings the endpoint back after the base ejection time."""
        lb = self.make(clock)
        fail(lb, "b", 3)
        assert clock.monotonic() + 10.0 == lb.stats()[1].ejected_until
        clock.advance(9.999)
        assert "b" not in {lb.pick() for _ in range(30)}
        clock.advance(0.001)
        assert "b" in {lb.pick() for _ in range(30)}
        assert [] == ejected(lb)

    @pytest.mark.parametrize(
        ("gap", "expected"),
        [
            (0.0, 20.0),  # right away: the second ejection is twice as long
            (10.0, 10.0),  # rested one base time: back to one
        ],
    )
    def test_ejection_time_grows(self, clock, gap, expected):
        """Grows each ejection by the base time, relaxing while healthy."""
        lb = self.make(clock)
        fail(lb, "b", 3)
        clock.advance(10.0)
        clock.advance(gap)
        start = clock.monotonic()
        fail(lb, "b", 3)
        assert start + expected == lb.stats()[1].ejected_until

    def test_ejection_time_is_capped(self, clock):
        """Never ejects for longer than max_ejection_time."""
        lb = self.make(clock, max_ejection_time=25.0)
        for _ in range(4):
            start = clock.monotonic()
            fail(lb, "b", 3)
            until = lb.stats()[1].ejected_until
            clock.set(until)
        assert start + 25.0 == until

    def test_max_ejected_fraction(self, clock):
        """Ejects no more than the allowed fraction (at least one)."""
        lb = self.make(
            clock, endpoints=("a", "b", "c", "d"), max_ejection_fraction=0.5
        )
        fail(lb, "a", 3)
        fail(lb, "b", 3)
        fail(lb, "c", 3)
        assert ["a", "b"] == ejected(lb)

    def test_at_least_one_may_be_ejected(self, clock):
        """Ejects one endpoint even when the fraction rounds down to zero."""
        lb = self.make(clock, max_ejection_fraction=0.1)
        fail(lb, "a", 3)
        fail(lb, "b", 3)
        assert ["a"] == ejected(lb)

    def test_all_ejected_without_panic(self, clock):
        """Raises NoEndpointAvailable when all are ejected, panic off."""
        lb = self.make(clock, endpoints=("a",))
        fail(lb, "a", 3)
        with pytest.raises(NoEndpointAvailable, match="panic"):
            lb.pick()
        clock.advance(10.0)
        assert "a" == lb.pick()

    def test_removed_endpoint_not_ejected(self, clock):
        """Ignores failures from a lease on an endpoint that was removed."""
        lb = self.make(clock, endpoints=("a", "b"))
        fail(lb, "a", 2)
        lease = lb.lease()
        with lease as picked:
            lb.remove(picked)
            lease.mark_failure()
        assert [] == ejected(lb)

    @pytest.mark.parametrize(
        ("option", "value"),
        [
            ("consecutive_failures", 0),
            ("base_ejection_time", 0.0),
            ("max_ejection_time", 1.0),
            ("max_ejection_fraction", 1.5),
        ],
    )
    def test_rejects_bad_options(self, option, value):
        """Rejects thresholds below one and inconsistent times."""
        with pytest.raises(ValueError, match=option):
            OutlierDetection(**{option: value})

    @pytest.mark.parametrize(
        ("option", "value"),
        [
            ("consecutive_failures", 2.5),
            ("consecutive_failures", "5"),
            ("base_ejection_time", "30"),
            ("max_ejection_fraction", None),
        ],
    )
    def test_wrong_types_name_the_argument(self, option, value):
        """Raises TypeError naming the field for a value of the wrong type."""
        with pytest.raises(TypeError, match=option):
            OutlierDetection(**{option: value})

    def test_rejects_infinite_base_time(self):
        """Names base_ejection_time when it is infinite."""
        with pytest.raises(ValueError, match="base_ejection_time must"):
            OutlierDetection(base_ejection_time=float("inf"))


class TestPanic:
    def test_panics_when_too_few_are_healthy(self, clock):
        """Uses every endpoint when fewer than the threshold are healthy."""
        lb = RoundRobin(["a", "b", "c"], panic_threshold=0.5, clock=clock)
        lb.set_healthy("a", False)
        assert {"b", "c"} == {lb.pick() for _ in range(30)}
        assert not lb.panicking
        lb.set_healthy("b", False)
        assert lb.panicking
        assert {"a", "b", "c"} == {lb.pick() for _ in range(30)}
        assert "RoundRobin(endpoints=['a', 'b', 'c'], panic)" == repr(lb)
        lb.set_healthy("b", True)
        assert {"b", "c"} == {lb.pick() for _ in range(30)}

    def test_no_panic_when_off(self, clock):
        """Raises NoEndpointAvailable when all are unhealthy, panic off."""
        lb = RoundRobin(["a", "b"], panic_threshold=0.0, clock=clock)
        lb.set_healthy("a", False)
        lb.set_healthy("b", False)
        with pytest.raises(NoEndpointAvailable, match="unhealthy"):
            lb.pick()

    def test_all_unhealthy_panics_by_default(self, clock):
        """Sends traffic to all endpoints when none is healthy (default)."""
        lb = RoundRobin(["a", "b"], clock=clock)
        lb.set_healthy("a", False)
        lb.set_healthy("b", False)
        assert {"a", "b"} == {lb.pick() for _ in range(10)}

    def test_set_healthy_twice_is_harmless(self, clock):
        """Ignores a verdict that does not change anything."""
        lb = RoundRobin(["a", "b"], clock=clock)
        lb.set_healthy("a", True)
        assert {"a", "b"} == {lb.pick() for _ in range(10)}


class TestSlowStart:
    def test_new_endpoint_ramps_up(self, clock):
        """Gives a new endpoint 10% of its weight first, full weight later."""
        lb = WeightedRoundRobin({"a": 1}, slow_start=60.0, clock=clock)
        lb.add("b")
        assert [1.0, 0.1] == [s.effective_weight for s in lb.stats()]
        clock.advance(30.0)
        assert [1.0, 0.5] == [s.effective_weight for s in lb.stats()]
        counts = collections.Counter(lb.pick() for _ in range(300))
        assert {"a": 200, "b": 100} == dict(counts)
        clock.advance(30.0)
        assert [1.0, 1.0] == [s.effective_weight for s in lb.stats()]

    def test_initial_endpoints_start_at_full_weight(self, clock):
        """Starts the first endpoints of a pool at full weight."""
        lb = WeightedRandom({"a": 1}, slow_start=60.0, clock=clock)
        lb.add("b")
        lb.remove("a")
        lb.remove("b")
        lb.add("c")
        assert [1.0] == [s.effective_weight for s in lb.stats()]

    def test_recovered_endpoint_ramps_up(self, clock):
        """Ramps an endpoint that becomes healthy again."""
        lb = LeastConnections(["a", "b"], slow_start=10.0, clock=clock)
        lb.set_healthy("b", False)
        clock.advance(100.0)
        lb.set_healthy("b", True)
        assert [1.0, 0.1] == [s.effective_weight for s in lb.stats()]
        clock.advance(10.0)
        assert [1.0, 1.0] == [s.effective_weight for s in lb.stats()]

    def test_returning_from_ejection_ramps_up(self, clock):
        """Ramps an endpoint whose ejection ended."""
        lb = WeightedRoundRobin(
            ["a", "b"],
            outlier_detection=OutlierDetection(
                consecutive_failures=1, base_ejection_time=5.0
            ),
            slow_start=10.0,
            panic_threshold=0.0,
            clock=clock,
        )
        fail(lb, "b", 1)
        clock.advance(5.0)
        assert [1.0, 0.1] == [s.effective_weight for s in lb.stats()]
        clock.advance(5.0)
        assert [1.0, 0.5] == [s.effective_weight for s in lb.stats()]
