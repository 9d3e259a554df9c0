"""The balancer protocol, leases, and the pool every policy is built on.

A pool keeps the members (endpoint, weight, in-flight count, health,
ejection and latency state) and an immutable *view*: the endpoints a policy
may choose from right now, with their effective weights. Every change
(membership, weight, health, ejection, the end of an ejection or of a
slow-start step) replaces the view under the pool's lock; picks read the
current view without the lock, so the cheapest policies pick in O(1) without
contention.

Status: provisional.
"""

from __future__ import annotations

import abc
import logging
import math
import random
import threading
from collections.abc import Hashable, Iterable, Mapping
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar, cast

import attrs

from dprims._clock import SYSTEM_CLOCK, Clock
from dprims.errors import ConfigurationError, NoEndpointAvailable


if TYPE_CHECKING:
    from types import TracebackType


__all__ = ()

E = TypeVar("E", bound=Hashable)
T_co = TypeVar("T_co", covariant=True)

logger = logging.getLogger("dprims.balancing")
# A library never configures logging (the application does), and without a
# handler anywhere Python would print our warnings to stderr by itself.
logger.addHandler(logging.NullHandler())

#: Fraction of the full weight a slow-starting endpoint begins with.
_SLOW_START_FLOOR = 0.1
#: A slow-start ramp is applied in this many steps, so that the view is
#: rebuilt a bounded number of times per ramp instead of on every pick.
_SLOW_START_STEPS = 20


@attrs.frozen
class OutlierDetection:
    """Configure passive outlier ejection from the outcomes of leases.

    After *consecutive_failures* failed leases in a row an endpoint is
    ejected: it gets no traffic for *base_ejection_time* seconds times the
    number of times it has been ejected (capped at *max_ejection_time*).
    That count drops by one for every *base_ejection_time* the endpoint
    stays in the pool. At most *max_ejection_fraction* of the endpoints are
    ejected at once, but always at least one may be, as in Envoy.

    Args:
        consecutive_failures: failures in a row that eject (>= 1).
        base_ejection_time: seconds of the first ejection (> 0).
        max_ejection_time: cap on one ejection's length in seconds
            (>= *base_ejection_time*).
        max_ejection_fraction: largest share of the pool ejected at once,
            in [0, 1].

    .. versionadded:: 0.1
    """

    consecutive_failures: int = attrs.field(default=5)
    base_ejection_time: float = attrs.field(default=30.0)
    max_ejection_time: float = attrs.field(default=300.0)
    max_ejection_fraction: float = attrs.field(default=0.1)

    def __attrs_post_init__(self) -> None:
        if isinstance(self.consecutive_failures, bool) or not isinstance(
            self.consecutive_failures, int
        ):
            raise TypeError(
                "consecutive_failures must be an int, got "
                f"{self.consecutive_failures!r}"
            )
        for name in (
            "base_ejection_time",
            "max_ejection_time",
            "max_ejection_fraction",
        ):
            _number(name, getattr(self, name))
        if self.consecutive_failures < 1:
            raise ConfigurationError(
                "consecutive_failures must be >= 1, got "
                f"{self.consecutive_failures!r}"
            )
        if not (
            self.base_ejection_time > 0
            and math.isfinite(self.base_ejection_time)
        ):
            raise ConfigurationError(
                "base_ejection_time must be a finite number > 0 seconds, got "
                f"{self.base_ejection_time!r}"
            )
        if not self.max_ejection_time >= self.base_ejection_time:
            raise ConfigurationError(
                "max_ejection_time must be >= base_ejection_time, got "
                f"{self.max_ejection_time!r}"
            )
        if not 0.0 <= self.max_ejection_fraction <= 1.0:
            raise ConfigurationError(
                "max_ejection_fraction must be in [0, 1], got "
                f"{self.max_ejection_fraction!r}"
            )


@attrs.frozen
class EndpointStats:
    """Describe one endpoint of a pool at the moment it was read.

    Attributes:
        endpoint: the endpoint object.
        weight: its configured weight.
        effective_weight: the weight in use now (lower during slow start).
        in_flight: leases currently open on it.
        healthy: the last verdict of active health checking.
        ejected: whether passive outlier ejection has removed it now.
        ejected_until: monotonic time at which an ejection ends, or None.
        successes: leases that ended well.
        failures: leases that ended with a failure.
        consecutive_failures: failures since the last success.
        latency: the policy's latency estimate in seconds (PeakEWMA), or
            None for policies that do not keep one.

    .. versionadded:: 0.1
    """

    endpoint: object
    weight: float
    effective_weight: float
    in_flight: int
    healthy: bool
    ejected: bool
    ejected_until: float | None
    successes: int
    failures: int
    consecutive_failures: int
    latency: float | None


class Balancer(Protocol[T_co]):
    """**Protocol:** something that picks an endpoint for a request.

    :meth:`~dprims.balancing.Balancer.pick` only chooses; :meth:`~dprims.balancing.Balancer.lease` chooses and also counts the request as in
    flight until it ends, then records its latency and outcome, which the
    latency- and load-aware policies and outlier ejection feed on.

    .. versionadded:: 0.1
    """

    def pick(self, key: str | None = None) -> T_co:
        """Return the endpoint for the next request (*key* for sticky ones).

        Raises:
            NoEndpointAvailable: if no endpoint may be picked.
        """
        ...

    def lease(self, key: str | None = None) -> Lease[T_co]:
        """Return a single-use lease; entering it picks the endpoint."""
        ...


class RandomSource(Protocol):
    """**Protocol:** a source of uniform random floats, such as ``random.Random``.

    The random policies take one as ``rng=``; pass a seeded
    ``random.Random(42)`` for a reproducible sequence.

    .. versionadded:: 0.1
    """

    def random(self) -> float:
        """Return a float in the interval [0, 1)."""
        ...


class _Member(Generic[E]):
    """The mutable state of one endpoint; guarded by the pool's lock."""

    __slots__ = (
        "consecutive_failures",
        "current",
        "ejected_until",
        "ejections",
        "endpoint",
        "ewma",
        "ewma_stamp",
        "failures",
        "healthy",
        "in_flight",
        "returned_at",
        "since",
        "successes",
        "weight",
    )

    def __init__(
        self, endpoint: E, weight: float, since: float | None
    ) -> None:
        self.endpoint = endpoint
        self.weight = weight
        self.in_flight = 0
        self.healthy = True
        self.ejected_until: float | None = None
        self.ejections = 0
        self.returned_at = 0.0
        self.consecutive_failures = 0
        self.successes = 0
        self.failures = 0
        # Start of the current slow-start ramp; None means "full weight".
        self.since = since
        # nginx smooth weighted round robin's running weight.
        self.current = 0.0
        # PeakEWMA: cost estimate in seconds and when it was last updated.
        self.ewma = 0.0
        self.ewma_stamp = 0.0

    def __repr__(self) -> str:
        return (
            f"_Member({self.endpoint!r}, weight={self.weight!r}, "
            f"in_flight={self.in_flight})"
        )


class _View(Generic[E]):
    """An immutable choice set; replaced, never changed, after creation."""

    __slots__ = (
        "cumulative",
        "endpoints",
        "expires",
        "members",
        "panic",
        "reason",
        "total",
        "uniform",
        "weights",
    )

    def __init__(
        self,
        members: list[_Member[E]],
        weights: list[float],
        *,
        expires: float | None,
        panic: bool,
        reason: str,
    ) -> None:
        self.members = tuple(members)
        self.endpoints = tuple(m.endpoint for m in members)
        self.weights = tuple(weights)
        cumulative: list[float] = []
        running = 0.0
        for weight in weights:
            running += weight
            cumulative.append(running)
        self.cumulative = tuple(cumulative)
        self.total = running
        self.uniform = len(set(weights)) <= 1
        self.expires = expires
        self.panic = panic
        self.reason = reason


def _number(name: str, value: object) -> float:
    """Return *value* as a float, or raise TypeError naming *name*."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {value!r}")
    return float(value)


def _check_rng(rng: RandomSource | None) -> RandomSource:
    """Return *rng*, a fresh ``random.Random`` for None, or raise TypeError."""
    if rng is None:
        return random.Random()
    if not callable(getattr(rng, "random", None)):
        raise TypeError(
            f"rng must have a random() method like random.Random, got {rng!r}"
        )
    return rng


def _check_weight(endpoint: object, weight: float) -> float:
    if isinstance(weight, bool) or not isinstance(weight, (int, float)):
        raise TypeError(
            f"weight of {endpoint!r} must be a number, got {weight!r}"
        )
    if not (weight > 0 and math.isfinite(weight)):
        raise ConfigurationError(
            f"weight of {endpoint!r} must be a finite number > 0, "
            f"got {weight!r}"
        )
    return float(weight)


def _normalise(
    endpoints: Iterable[E] | Mapping[E, float],
) -> list[tuple[E, float]]:
    if isinstance(endpoints, (str, bytes)):
        raise TypeError(
            "endpoints must be an iterable of endpoints or a mapping of "
            f"endpoint to weight, got the string {endpoints!r}"
        )
    if not isinstance(endpoints, (Iterable, Mapping)):
        raise TypeError(
            "endpoints must be an iterable of endpoints or a mapping of "
            f"endpoint to weight, got {endpoints!r}"
        )
    if isinstance(endpoints, Mapping):
        pairs = [
            (endpoint, _check_weight(endpoint, weight))
            for endpoint, weight in endpoints.items()
        ]
    else:
        pairs = [(endpoint, 1.0) for endpoint in endpoints]
    seen: set[E] = set()
    for endpoint, _ in pairs:
        if endpoint in seen:
            raise ConfigurationError(
                f"endpoints must be unique, {endpoint!r} appears twice"
            )
        seen.add(endpoint)
    return pairs


class Lease(Generic[T_co]):
    """A single request on one endpoint, from pick to outcome.

    Entering the lease (``with`` or ``async with``) picks an endpoint,
    counts the request as in flight and starts its clock; leaving it
    records the latency and the outcome. The outcome is a failure when the
    block raises an ``Exception``; `mark_failure` and `mark_success` override
    that, for example to count an HTTP 503 as a failure without raising.
    A ``BaseException`` such as ``asyncio.CancelledError`` releases the
    endpoint without recording an outcome; `PeakEWMA` still learns that
    the request took at least that long, so a backend that hangs until
    the caller gives up does not look fast. To count a timeout as a
    failure, put the timeout inside the lease, where it raises
    ``TimeoutError``.

    A lease is single-use and not shared between threads. Leases come from
    a balancer's ``lease(key)``; *pool* is that balancer and *key* the key
    it picks with.

    .. versionadded:: 0.1
    """

    __slots__ = ("_key", "_member", "_outcome", "_pool", "_start")

    def __init__(self, pool: object, key: str | None) -> None:
        # Typed as object so the private pool class stays out of the
        # public signature; only balancers in this package create leases.
        self._pool = cast("_Pool[T_co]", pool)
        self._key = key
        self._member: _Member[T_co] | None = None
        self._start = 0.0
        self._outcome: bool | None = None

    @property
    def endpoint(self) -> T_co:
        """The picked endpoint.

        Raises:
            RuntimeError: if the lease has not been entered yet.
        """
        if self._member is None:
            raise RuntimeError("the lease has not been entered yet")
        return self._member.endpoint

    def mark_failure(self) -> None:
        """Record this request as a failure when the lease ends."""
        self._outcome = False

    def mark_success(self) -> None:
        """Record this request as a success when the lease ends."""
        self._outcome = True

    def __enter__(self) -> T_co:
        if self._member is not None:
            raise RuntimeError("a lease is single-use")
        member, start = self._pool._acquire(self._key)
        self._member = member
        self._start = start
        return member.endpoint

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        member = self._member
        if member is None:
            return
        outcome = self._outcome
        if outcome is None:
            if exc_type is None:
                outcome = True
            elif issubclass(exc_type, Exception):
                outcome = False
        self._pool._release(member, self._start, outcome)

    async def __aenter__(self) -> T_co:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    def __repr__(self) -> str:
        if self._member is None:
            return f"Lease(key={self._key!r}, not entered)"
        return f"Lease({self._member.endpoint!r})"


class _Pool(abc.ABC, Generic[E]):
    """Membership, health, ejection and views; the base of every policy.

    Subclasses implement ``_choose``, which returns an index into the view's
    members, and may extend ``_observe`` to learn from finished leases.
    """

    __slots__ = (
        "_clock",
        "_lock",
        "_members",
        "_outlier",
        "_panic_threshold",
        "_slow_start",
        "_view",
    )

    _uses_weights = True
    _view: _View[E]

    def __init__(
        self,
        endpoints: Iterable[E] | Mapping[E, float] = (),
        *,
        panic_threshold: float = 0.5,
        outlier_detection: OutlierDetection | None = None,
        slow_start: float = 0.0,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        _number("panic_threshold", panic_threshold)
        _number("slow_start", slow_start)
        if not callable(getattr(clock, "monotonic", None)):
            raise TypeError(
                f"clock must have a monotonic() method, got {clock!r}"
            )
        if not 0.0 <= panic_threshold <= 1.0:
            raise ConfigurationError(
                f"panic_threshold must be in [0, 1], got {panic_threshold!r}"
            )
        if not (slow_start >= 0 and math.isfinite(slow_start)):
            raise ConfigurationError(
                f"slow_start must be >= 0 seconds, got {slow_start!r}"
            )
        if outlier_detection is not None and not isinstance(
            outlier_detection, OutlierDetection
        ):
            raise TypeError(
                "outlier_detection must be an OutlierDetection or None, got "
                f"{outlier_detection!r}"
            )
        self._clock = clock
        self._lock = threading.Lock()
        self._panic_threshold = float(panic_threshold)
        self._outlier = outlier_detection
        self._slow_start = float(slow_start)
        now = clock.monotonic()
        self._members: dict[E, _Member[E]] = {}
        for endpoint, weight in _normalise(endpoints):
            self._members[endpoint] = self._new_member(
                endpoint, weight, None, now
            )
        self._rebuild(now)

    # ------------------------------------------------------------ membership

    def _new_member(
        self, endpoint: E, weight: float, since: float | None, now: float
    ) -> _Member[E]:
        """Return the state of a new member; *now* is one read for a batch."""
        member = _Member(endpoint, weight, since)
        member.ewma_stamp = since if since is not None else now
        return member

    @property
    def endpoints(self) -> tuple[E, ...]:
        """Every member endpoint, whatever its health, in insertion order."""
        return tuple(self._members)

    def __len__(self) -> int:
        return len(self._members)

    def __contains__(self, endpoint: object) -> bool:
        return endpoint in self._members

    def add(self, endpoint: E, weight: float = 1) -> None:
        """Add *endpoint* with *weight*; it slow-starts if configured.

        Thread-safe. The first endpoints of an empty pool start at full
        weight, as there is nobody to protect them from.

        Raises:
            ValueError: if *endpoint* is already a member or *weight* is not
                a finite number > 0.
        """
        weight = _check_weight(endpoint, weight)
        with self._lock:
            if endpoint in self._members:
                raise ConfigurationError(
                    f"endpoint {endpoint!r} is already in the pool"
                )
            now = self._clock.monotonic()
            since = now if self._slow_start and self._members else None
            self._members[endpoint] = self._new_member(
                endpoint, weight, since, now
            )
            self._rebuild(now)

    def remove(self, endpoint: E) -> None:
        """Remove *endpoint*; leases already open on it finish normally.

        Thread-safe.

        Raises:
            ValueError: if *endpoint* is not a member.
        """
        with self._lock:
            self._get(endpoint)
            del self._members[endpoint]
            self._rebuild(self._clock.monotonic())

    def set_weight(self, endpoint: E, weight: float) -> None:
        """Change the weight of *endpoint* to *weight*.

        Thread-safe. Policies that ignore weights keep the value for when it
        is read back with `stats`.

        Raises:
            ValueError: if *endpoint* is not a member or *weight* is not a
                finite number > 0.
        """
        weight = _check_weight(endpoint, weight)
        with self._lock:
            self._get(endpoint).weight = weight
            self._rebuild(self._clock.monotonic())

    def set_healthy(self, endpoint: E, healthy: bool) -> None:
        """Mark *endpoint* healthy or not (the verdict of active checks).

        An unhealthy endpoint gets no traffic (unless the pool panics). One
        that becomes healthy again slow-starts if configured. Thread-safe.

        Raises:
            ValueError: if *endpoint* is not a member.
        """
        with self._lock:
            member = self._get(endpoint)
            if member.healthy == bool(healthy):
                return
            now = self._clock.monotonic()
            member.healthy = bool(healthy)
            if healthy and self._slow_start:
                member.since = now
            self._rebuild(now)

    def stats(self) -> tuple[EndpointStats, ...]:
        """Return the state of every member, in insertion order."""
        with self._lock:
            now = self._clock.monotonic()
            view = self._view
            if view.expires is not None and now >= view.expires:
                view = self._rebuild(now)
            effective = dict(
                zip((id(m) for m in view.members), view.weights, strict=False)
            )
            return tuple(
                EndpointStats(
                    endpoint=m.endpoint,
                    weight=m.weight,
                    effective_weight=effective.get(id(m), 0.0),
                    in_flight=m.in_flight,
                    healthy=m.healthy,
                    ejected=m.ejected_until is not None,
                    ejected_until=m.ejected_until,
                    successes=m.successes,
                    failures=m.failures,
                    consecutive_failures=m.consecutive_failures,
                    latency=self._latency(m, now),
                )
                for m in self._members.values()
            )

    @property
    def panicking(self) -> bool:
        """Whether too few endpoints are available, so all are used."""
        return self._current(self._clock.monotonic()).panic

    def _latency(self, _member: _Member[E], _now: float) -> float | None:
        return None

    def _get(self, endpoint: E) -> _Member[E]:
        try:
            return self._members[endpoint]
        except KeyError:
            raise ConfigurationError(
                f"endpoint {endpoint!r} is not in the pool"
            ) from None

    # ------------------------------------------------------------ views

    def _rebuild(self, now: float) -> _View[E]:
        """Install and return the view at *now*; call with the lock held."""
        members = list(self._members.values())
        expires: float | None = None
        available: list[_Member[E]] = []
        for member in members:
            until = member.ejected_until
            if until is not None:
                if now < until:
                    expires = until if expires is None else min(expires, until)
                    continue
                # The ejection ended at *until*, however late this rebuild
                # runs; the relaxation and the ramp count from there.
                member.ejected_until = None
                member.returned_at = until
                if self._slow_start:
                    member.since = until
            if member.healthy:
                available.append(member)
        panic = bool(members) and (
            len(available) < self._panic_threshold * len(members)
        )
        chosen = members if panic else available
        weights: list[float] = []
        for member in chosen:
            weight = member.weight if self._uses_weights else 1.0
            since = member.since
            if since is not None:
                elapsed = now - since
                if elapsed >= self._slow_start:
                    member.since = None
                else:
                    step = self._slow_start / _SLOW_START_STEPS
                    done = math.floor(elapsed / step) + 1
                    weight *= max(
                        _SLOW_START_FLOOR, elapsed / self._slow_start
                    )
                    nxt = since + done * step
                    expires = nxt if expires is None else min(expires, nxt)
            weights.append(weight)
        if not members:
            reason = "the pool is empty"
        else:
            reason = (
                f"all {len(members)} endpoints are unhealthy or ejected and "
                "panic mode is off (panic_threshold=0)"
            )
        view = _View(
            chosen, weights, expires=expires, panic=panic, reason=reason
        )
        self._view = view
        self._installed(view)
        return view

    def _installed(self, view: _View[E]) -> None:
        """React to a new view; called with the lock held."""

    def _current(self, now: float | None) -> _View[E]:
        """Return the current view, rebuilt first if it has expired."""
        view = self._view
        expires = view.expires
        if expires is None:
            return view
        if now is None:
            now = self._clock.monotonic()
        if now < expires:
            return view
        with self._lock:
            view = self._view
            if view.expires is not None and now >= view.expires:
                view = self._rebuild(now)
            return view

    # ------------------------------------------------------------ picking

    def pick(self, key: str | None = None) -> E:
        """Return the endpoint for the next request.

        Most callers want :meth:`~dprims.balancing.Balancer.lease` instead, which also tells load-, latency-
        and failure-aware logic how the request went.

        Raises:
            NoEndpointAvailable: if the pool is empty, or every endpoint is
                unhealthy or ejected and panic mode is off.
        """
        view = self._view
        if view.expires is not None:
            view = self._current(None)
        if not view.members:
            raise NoEndpointAvailable(view.reason)
        return view.endpoints[self._choose(view, key, None)]

    def lease(self, key: str | None = None) -> Lease[E]:
        """Return a lease: ``with pool.lease() as endpoint: ...``.

        The lease picks when entered (``with`` or ``async with``), counts
        the request in flight, and records latency and outcome on exit.
        """
        return Lease(self, key)

    def _acquire(self, key: str | None) -> tuple[_Member[E], float]:
        now = self._clock.monotonic()
        view = self._current(now)
        if not view.members:
            raise NoEndpointAvailable(view.reason)
        member = view.members[self._choose(view, key, now)]
        with self._lock:
            member.in_flight += 1
        return member, now

    def _release(
        self, member: _Member[E], start: float, outcome: bool | None
    ) -> None:
        now = self._clock.monotonic()
        with self._lock:
            member.in_flight -= 1
            if outcome is None:
                self._censored(member, max(0.0, now - start), now)
                return
            self._observe(member, max(0.0, now - start), outcome, now)
            if outcome:
                member.successes += 1
                member.consecutive_failures = 0
                return
            member.failures += 1
            member.consecutive_failures += 1
            outlier = self._outlier
            if not (
                outlier is not None
                and member.consecutive_failures >= outlier.consecutive_failures
                and member.ejected_until is None
                and self._members.get(member.endpoint) is member
                and self._eject(member, outlier, now)
            ):
                return
            until = member.ejected_until
        # Logged outside the lock: handlers may be slow.
        logger.warning(
            "balancing.endpoint_ejected",
            extra={"endpoint": member.endpoint, "ejected_until": until},
        )

    def _eject(
        self, member: _Member[E], outlier: OutlierDetection, now: float
    ) -> bool:
        """Eject *member* unless too many are out; return whether it was."""
        ejected = sum(
            1
            for m in self._members.values()
            if m.ejected_until is not None and m.ejected_until > now
        )
        allowed = max(
            1, math.floor(outlier.max_ejection_fraction * len(self._members))
        )
        if ejected >= allowed:
            return False
        if member.ejections:
            # The multiplier relaxes by one for every base time spent back
            # in the pool, so an endpoint that failed once long ago is not
            # punished as a repeat offender.
            rested = (now - member.returned_at) / outlier.base_ejection_time
            member.ejections = max(0, member.ejections - math.floor(rested))
        member.ejections += 1
        member.ejected_until = now + min(
            outlier.base_ejection_time * member.ejections,
            outlier.max_ejection_time,
        )
        member.consecutive_failures = 0
        self._rebuild(now)
        return True

    @abc.abstractmethod
    def _choose(
        self, view: _View[E], key: str | None, now: float | None, /
    ) -> int:
        """Return the index in *view* of the member to pick."""

    def _observe(
        self, member: _Member[E], latency: float, success: bool, now: float
    ) -> None:
        """Learn from a finished lease; called with the lock held."""

    def _censored(
        self, member: _Member[E], elapsed: float, now: float
    ) -> None:
        """Learn from a cancelled lease, which lasted at least *elapsed*.

        Called with the lock held. The request's latency is unknown but no
        shorter than *elapsed*; there is no success or failure to count.
        """

    def _describe(self) -> str:
        return ""

    def __repr__(self) -> str:
        view = self._view
        state = "panic" if view.panic else f"available={len(view.members)}"
        return (
            f"{type(self).__name__}(endpoints={list(self._members)!r}, "
            f"{state}{self._describe()})"
        )


class _RandomPool(_Pool[E]):
    """A policy that draws from a random source: checks and keeps *rng*."""

    __slots__ = ("_rng",)

    def __init__(
        self,
        endpoints: Iterable[E] | Mapping[E, float] = (),
        *,
        panic_threshold: float = 0.5,
        outlier_detection: OutlierDetection | None = None,
        slow_start: float = 0.0,
        rng: RandomSource | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._rng = _check_rng(rng)
        super().__init__(
            endpoints,
            panic_threshold=panic_threshold,
            outlier_detection=outlier_detection,
            slow_start=slow_start,
            clock=clock,
        )
