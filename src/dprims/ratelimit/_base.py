"""Value types, rate parsing and argument checks shared by the limiters."""

from __future__ import annotations

import math
import re
import threading
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import attrs

from dprims.errors import ConfigurationError


if TYPE_CHECKING:
    from collections.abc import Callable


__all__ = ()


class Decision(NamedTuple):
    """The answer of a limiter to one request.

    A `Decision` is an immutable value (a named tuple, so that building one
    costs a fraction of a microsecond on the hot path). Times are relative
    seconds, measured on the clock of the store that decided (the injected
    clock in process, the Redis server's clock on Redis), so they mean the
    same thing to every client whatever its own clock says.

    Attributes:
        allowed: Whether the request was admitted (and its cost consumed).
        limit: The capacity of the limit that decided: *limit* for the window
            algorithms, *burst* for `TokenBucket` and `GCRA`.
        remaining: How many more units could be admitted right now (never
            negative).
        retry_after: Seconds until a request of the same cost could be
            admitted; ``0.0`` when *allowed*.
        reset_after: Seconds until the key is back to full capacity.

    .. versionadded:: 0.1
    """

    allowed: bool
    limit: int
    remaining: int
    retry_after: float
    reset_after: float


#: ``tuple.__new__`` bound for the hot path: it skips the generated
#: ``__new__`` wrapper of the named tuple, halving the cost of a decision.
_new_decision: Callable[..., Decision] = tuple.__new__


def make_decision(
    allowed: bool,
    limit: int,
    remaining: int,
    retry_after: float,
    reset_after: float,
) -> Decision:
    """Return a `Decision` built on the fast path."""
    return _new_decision(
        Decision, (allowed, limit, remaining, retry_after, reset_after)
    )


@attrs.frozen
class Penalty:
    """Bans a key that keeps getting denied.

    When a key collects *threshold* denials within *window* seconds (the
    window starts at the first of them), every request for it is denied for
    the next *ban* seconds, whatever the limit says. Denials during a ban do
    not extend it. :meth:`~dprims.ratelimit.Limiter.reset` lifts a ban.

    Args:
        threshold: Denials that trigger a ban (at least 1).
        window: Seconds within which the denials must fall (> 0).
        ban: Seconds the ban lasts (> 0).

    Raises:
        ValueError: if an argument is out of range; the message names it.

    .. versionadded:: 0.1
    """

    threshold: int
    window: float
    ban: float

    def __attrs_post_init__(self) -> None:
        check_int(self.threshold, "threshold")
        check_positive(self.window, "window")
        check_positive(self.ban, "ban")


class RateLimitHooks(Protocol):
    """**Protocol:** receives what a limiter decides, for metrics.

    Hooks run in the calling thread after the decision, outside any lock;
    they must be quick and must not raise.

    .. versionadded:: 0.1
    """

    def on_decision(self, name: str, key: str, decision: Decision) -> None:
        """Record one decision of the limiter called *name* on *key*."""
        ...

    def on_backend(self, seconds: float, error: BaseException | None) -> None:
        """Record one round trip to a shared store and its outcome."""
        ...


class RateLimitMetrics:
    """Counts decisions and backend round trips; a ready-made hook.

    Pass it as ``hooks=`` to each limiter (a `RedisStore` takes no hooks:
    a limiter on a `RedisStore` reports that store's round trips, with
    their latency and errors, to its own hooks). Counters are exact
    under threads. Export them by reading the attributes periodically.

    Attributes:
        allowed: Admitted requests.
        denied: Refused requests.
        backend_calls: Round trips to the shared store.
        backend_errors: Round trips that failed.
        backend_seconds: Total seconds spent in round trips.
        backend_max_seconds: Longest round trip seen.

    .. versionadded:: 0.1
    """

    __slots__ = (
        "_lock",
        "allowed",
        "backend_calls",
        "backend_errors",
        "backend_max_seconds",
        "backend_seconds",
        "denied",
    )

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.allowed = 0
        self.denied = 0
        self.backend_calls = 0
        self.backend_errors = 0
        self.backend_seconds = 0.0
        self.backend_max_seconds = 0.0

    def on_decision(
        self,
        name: str,  # noqa: ARG002 -- the hook's signature
        key: str,  # noqa: ARG002 -- the hook's signature
        decision: Decision,
    ) -> None:
        """Count *decision* as allowed or denied."""
        with self._lock:
            if decision[0]:
                self.allowed += 1
            else:
                self.denied += 1

    def on_backend(self, seconds: float, error: BaseException | None) -> None:
        """Count one round trip of *seconds*, failed if *error* is set."""
        with self._lock:
            self.backend_calls += 1
            self.backend_seconds += seconds
            self.backend_max_seconds = max(self.backend_max_seconds, seconds)
            if error is not None:
                self.backend_errors += 1

    def __repr__(self) -> str:
        return (
            f"RateLimitMetrics(allowed={self.allowed}, denied={self.denied}, "
            f"backend_calls={self.backend_calls}, "
            f"backend_errors={self.backend_errors})"
        )


_UNITS = {
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "seconds": 1.0,
    "m": 60.0,
    "min": 60.0,
    "minute": 60.0,
    "minutes": 60.0,
    "h": 3600.0,
    "hr": 3600.0,
    "hour": 3600.0,
    "hours": 3600.0,
    "d": 86400.0,
    "day": 86400.0,
    "days": 86400.0,
}
_RATE_RE = re.compile(
    r"^\s*(\d+(?:\.\d+)?)\s*(?:/|per)\s*(\d+(?:\.\d+)?)?\s*([a-z]+)\s*$"
)


@attrs.frozen
class Rate:
    """An amount per period, as parsed by `parse_rate`.

    Attributes:
        amount: How many units (requests) are allowed per *period*.
        period: The period in seconds.

    .. versionadded:: 0.1
    """

    amount: float
    period: float

    @property
    def per_second(self) -> float:
        """The rate in units per second."""
        return self.amount / self.period


def parse_rate(text: str, *, argument: str = "rate") -> Rate:
    """Parse a rate such as ``"100/minute"``, ``"10/s"`` or ``"5 per 2h"``.

    The amount is a positive number; the period is an optional positive
    multiplier followed by a unit: ``s``/``sec``/``second(s)``,
    ``m``/``min``/``minute(s)``, ``h``/``hr``/``hour(s)`` or
    ``d``/``day(s)``. Case and spaces do not matter.

    >>> from dprims.ratelimit import parse_rate
    >>> parse_rate("100/minute")
    Rate(amount=100.0, period=60.0)
    >>> parse_rate("5 per 2h").per_second
    0.0006944444444444445

    Raises:
        TypeError: if *text* is not a str.
        ValueError: if *text* is malformed or the amount is zero; the
            message names *argument*.

    .. versionadded:: 0.1
    """
    if not isinstance(text, str):
        raise TypeError(f"{argument} must be a str, got {type(text).__name__}")
    match = _RATE_RE.match(text.lower())
    if match is None or match.group(3) not in _UNITS:
        raise ConfigurationError(
            f"{argument} must look like '100/minute', '10/s' or "
            f"'5 per 2h', got {text!r}"
        )
    amount = float(match.group(1))
    multiplier = float(match.group(2) or 1.0)
    if amount <= 0 or multiplier <= 0:
        raise ConfigurationError(
            f"{argument} must have an amount and a period > 0, got {text!r}"
        )
    return Rate(amount=amount, period=multiplier * _UNITS[match.group(3)])


def check_positive(value: object, argument: str) -> float:
    """Return *value* as a float if it is a finite number > 0, else raise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(
            f"{argument} must be a number, got {type(value).__name__}"
        )
    result = float(value)
    if not math.isfinite(result) or result <= 0:
        raise ConfigurationError(
            f"{argument} must be a finite number > 0, got {value!r}"
        )
    return result


def check_int(value: object, argument: str, minimum: int = 1) -> int:
    """Return *value* if it is an int >= *minimum*, else raise."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(
            f"{argument} must be an int, got {type(value).__name__}"
        )
    if value < minimum:
        raise ConfigurationError(
            f"{argument} must be >= {minimum}, got {value!r}"
        )
    return value


def check_name(name: object) -> str:
    """Return *name* if it can name a limiter, else raise.

    A name is one segment of a Redis key (``prefix:{key}:name``, and
    ``prefix:{key}:name:ban`` for a ban), so it must be non-empty and
    hold no ``:``, ``{`` or ``}``: otherwise one limiter's keys could be
    another's (a limiter named ``"n:ban"`` would read the ban of ``"n"``).
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    if not name or ":" in name or "{" in name or "}" in name:
        raise ConfigurationError(
            "name must be a non-empty str without ':', '{' or '}', "
            f"got {name!r}"
        )
    return name


def check_key(key: object) -> str:
    """Return *key* if it is a str, else raise a TypeError naming ``key``."""
    if not isinstance(key, str):
        raise TypeError(f"key must be a str, got {type(key).__name__}")
    return key


def check_cost(cost: object, capacity: int) -> int:
    """Return *cost* if it is an int in ``1..capacity``, else raise."""
    cost = check_int(cost, "cost")
    if cost > capacity:
        raise ConfigurationError(
            f"cost must be <= the limit's capacity {capacity} (it could "
            f"never be admitted), got {cost!r}"
        )
    return cost


def check_rate(rate: object, argument: str = "rate") -> float:
    """Return *rate* in units per second; a str is parsed with `parse_rate`."""
    if isinstance(rate, str):
        return parse_rate(rate, argument=argument).per_second
    return check_positive(rate, argument)


def restore_if_latest(
    state: object,
    now: float,  # noqa: ARG001 -- the signature of every refund
    cost: int,  # noqa: ARG001
    params: object,  # noqa: ARG001
    ticket: tuple[object, object],
) -> Any:
    """Return the state as it was before a booking, if still the latest.

    The refund of the window counters: *ticket* holds the states before
    and after the booking. Once anything else was counted after it,
    nothing is given back: taking units out of a shared count could let a
    newcomer into a window that a later booking also counts on.
    """
    before, booked = ticket
    return before if state == booked else state
