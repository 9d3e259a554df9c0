"""Active health checking: a checker loop and a stdlib HTTP probe.

Status: provisional.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import http.client
import inspect
import logging
import math
import threading
from collections.abc import Awaitable, Callable, Hashable
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

import attrs

from dprims._clock import SYSTEM_CLOCK, Clock
from dprims.errors import ConfigurationError


if TYPE_CHECKING:
    from collections.abc import Container
    from types import TracebackType


__all__ = ()

E = TypeVar("E", bound=Hashable)

logger = logging.getLogger("dprims.balancing")


class HealthTarget(Protocol[E]):
    """**Protocol:** a pool whose endpoints a `HealthChecker` can mark.

    Every balancer in `dprims.balancing` except `PathRouter` is one.

    .. versionadded:: 0.1
    """

    @property
    def endpoints(self) -> tuple[E, ...]:
        """Every member endpoint."""
        ...

    def set_healthy(self, endpoint: E, healthy: bool) -> None:
        """Mark *endpoint* healthy or unhealthy."""
        ...


@attrs.frozen
class HealthStatus:
    """Describe what active checks concluded about one endpoint.

    Attributes:
        endpoint: the endpoint.
        healthy: the verdict passed to the pool.
        consecutive_successes: passed checks in a row.
        consecutive_failures: failed checks in a row.
        last_checked: monotonic time of the last check, or None.

    .. versionadded:: 0.1
    """

    endpoint: object
    healthy: bool
    consecutive_successes: int
    consecutive_failures: int
    last_checked: float | None


class _CoroutineCheckError(TypeError):
    """A coroutine check was given to the thread-based checker."""


class _State:
    __slots__ = ("failures", "healthy", "last_checked", "successes")

    def __init__(self) -> None:
        self.healthy = True
        self.successes = 0
        self.failures = 0
        self.last_checked: float | None = None


def _positive(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, got {value!r}")
    if not (value > 0 and math.isfinite(value)):
        raise ConfigurationError(
            f"{name} must be a finite number > 0 seconds, got {value!r}"
        )
    return float(value)


def _threshold(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < 1:
        raise ConfigurationError(f"{name} must be >= 1, got {value!r}")
    return value


class HealthChecker(Generic[E]):
    """Check every endpoint of a pool on an interval and mark its health.

    A check is a callable that takes an endpoint and returns whether it is
    healthy; it may be a coroutine function when the checker runs as an
    asyncio task. A check that raises or takes longer than *timeout*
    seconds fails. An endpoint becomes unhealthy after
    *unhealthy_threshold* failed checks in a row and healthy again after
    *healthy_threshold* passed checks in a row; the pool gives unhealthy
    endpoints no traffic. Endpoints start healthy, and members added to the
    pool later are checked from the next round on.

    Run it in a daemon thread (`start_thread` / `stop_thread`, or ``with
    checker:``) or as an asyncio task (`run_forever`, cancelled to stop). `check_once` runs one
    round now; tests and simulations call it instead of waiting.

    Synchronous checks run concurrently, each in its own daemon thread;
    coroutine checks run as tasks. A synchronous check that outlives
    *timeout* fails, and while it is still running its endpoint is not
    checked again: each later round counts it as failed at once, so a hung
    check never holds up the round or another endpoint's checks, and never
    more than one thread per endpoint is spent on it. Daemon threads do not
    keep the process from exiting; still, give network checks a socket
    timeout, as `http_check` does.

    Args:
        pool: the balancer whose endpoints are checked and marked.
        check: ``check(endpoint) -> bool`` (or an awaitable bool).
        interval: seconds between the starts of two rounds (> 0).
        timeout: seconds after which one check counts as failed (> 0).
        healthy_threshold: passed checks in a row that mark healthy.
        unhealthy_threshold: failed checks in a row that mark unhealthy.
        clock: the clock that stamps `HealthStatus.last_checked`. The loop
            itself waits on real time: drive `check_once` to simulate.

    .. versionadded:: 0.1
    """

    __slots__ = (
        "_check",
        "_clock",
        "_healthy_threshold",
        "_interval",
        "_lock",
        "_pool",
        "_round",
        "_running",
        "_states",
        "_stop",
        "_thread",
        "_timeout",
        "_unhealthy_threshold",
    )

    def __init__(
        self,
        pool: HealthTarget[E],
        check: Callable[[E], bool | Awaitable[bool]],
        *,
        interval: float = 10.0,
        timeout: float = 2.0,
        healthy_threshold: int = 2,
        unhealthy_threshold: int = 3,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if not callable(check):
            raise TypeError(f"check must be callable, got {check!r}")
        if not callable(getattr(pool, "set_healthy", None)) or not hasattr(
            pool, "endpoints"
        ):
            raise TypeError(
                "pool must be a balancer with endpoints and set_healthy() "
                f"(a PathRouter is not one: check each pool), got {pool!r}"
            )
        self._pool = pool
        self._check = check
        self._interval = _positive("interval", interval)
        self._timeout = _positive("timeout", timeout)
        self._healthy_threshold = _threshold(
            "healthy_threshold", healthy_threshold
        )
        self._unhealthy_threshold = _threshold(
            "unhealthy_threshold", unhealthy_threshold
        )
        self._clock = clock
        self._lock = threading.Lock()
        # Serialises rounds, so a manual check_once beside the thread does
        # not race it for the worker pool.
        self._round = threading.Lock()
        self._states: dict[E, _State] = {}
        # The check thread of each endpoint that has not returned yet.
        self._running: dict[E, concurrent.futures.Future[object]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ verdicts

    def status(self) -> tuple[HealthStatus, ...]:
        """Return what the checks concluded so far, one entry per endpoint."""
        with self._lock:
            return tuple(
                HealthStatus(
                    endpoint=endpoint,
                    healthy=state.healthy,
                    consecutive_successes=state.successes,
                    consecutive_failures=state.failures,
                    last_checked=state.last_checked,
                )
                for endpoint, state in self._states.items()
            )

    def _record(self, endpoint: E, ok: bool, now: float) -> None:
        with self._lock:
            state = self._states.get(endpoint)
            if state is None:
                state = self._states[endpoint] = _State()
            state.last_checked = now
            if ok:
                state.failures = 0
                state.successes += 1
                flip = (
                    not state.healthy
                    and state.successes >= self._healthy_threshold
                )
            else:
                state.successes = 0
                state.failures += 1
                flip = (
                    state.healthy
                    and state.failures >= self._unhealthy_threshold
                )
            if not flip:
                return
            state.healthy = ok
        logger.info(
            "balancing.health_changed",
            extra={"endpoint": endpoint, "healthy": ok},
        )
        # The endpoint may have left the pool while it was being checked.
        with contextlib.suppress(ValueError):
            self._pool.set_healthy(endpoint, ok)

    def _forget_departed(self, endpoints: tuple[E, ...]) -> None:
        with self._lock:
            for endpoint in set(self._states) - set(endpoints):
                del self._states[endpoint]
            for endpoint in set(self._running) - set(endpoints):
                del self._running[endpoint]

    def _start(
        self, endpoint: E, fn: Callable[[E], object]
    ) -> concurrent.futures.Future[object] | None:
        """Run ``fn(endpoint)`` in a daemon thread; None if one still runs."""
        with self._lock:
            running = self._running.get(endpoint)
            if running is not None and not running.done():
                return None
            future: concurrent.futures.Future[object] = (
                concurrent.futures.Future()
            )
            self._running[endpoint] = future

        def run() -> None:
            future.set_running_or_notify_cancel()
            try:
                future.set_result(fn(endpoint))
            except BaseException as exc:
                # Handed to the waiting round, which counts a failure.
                future.set_exception(exc)

        # A daemon thread, not a pool worker: a check that never returns
        # must not stop the process from exiting, and must not take a
        # worker that other endpoints' checks are queued behind.
        threading.Thread(
            target=run, name="dprims-health-check", daemon=True
        ).start()
        return future

    # ------------------------------------------------------------ threads

    def _run_sync(self, endpoint: E) -> bool:
        result = self._check(endpoint)
        if inspect.isawaitable(result):
            # Close the coroutine so it does not warn "never awaited".
            close = getattr(result, "close", None)
            if close is not None:
                close()
            raise _CoroutineCheckError(
                "check returned an awaitable: run the checker as an asyncio "
                "task (await checker.run_forever()) to use coroutine checks"
            )
        return bool(result)

    def check_once(self) -> dict[E, bool]:
        """Check every endpoint once, now, and return each result.

        Blocks for at most about *timeout* seconds (plus any round already
        running, as rounds take turns). Thread-safe.
        """
        with self._round:
            return self._check_round()

    def _check_round(self) -> dict[E, bool]:
        endpoints = self._pool.endpoints
        self._forget_departed(endpoints)
        futures = {
            endpoint: self._start(endpoint, self._run_sync)
            for endpoint in endpoints
        }
        done, _ = concurrent.futures.wait(
            [f for f in futures.values() if f is not None],
            timeout=self._timeout,
        )
        results: dict[E, bool] = {}
        for endpoint, future in futures.items():
            ok = False
            if future is None:
                logger.debug(
                    "balancing.check_error",
                    extra={
                        "endpoint": endpoint,
                        "error": "the previous check is still running",
                    },
                )
            elif future in done:
                try:
                    ok = bool(future.result())
                except _CoroutineCheckError:
                    # A wrong setup, not a failing endpoint: say so loudly.
                    raise
                except Exception as exc:
                    logger.debug(
                        "balancing.check_error",
                        extra={"endpoint": endpoint, "error": repr(exc)},
                    )
            results[endpoint] = ok
        now = self._clock.monotonic()
        for endpoint, ok in results.items():
            self._record(endpoint, ok, now)
        return results

    def start_thread(self) -> None:
        """Start checking in a daemon thread, one round per *interval*.

        Raises:
            RuntimeError: if the checker is already running.
        """
        if self._thread is not None and self._thread.is_alive():
            raise RuntimeError("the health checker is already running")
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._loop, name="dprims-health-checker", daemon=True
        )
        self._thread.start()

    def _loop(self) -> None:
        clock = self._clock
        while not self._stop.is_set():
            started = clock.monotonic()
            try:
                self.check_once()
            except Exception:
                logger.exception("balancing.check_round_failed")
            elapsed = clock.monotonic() - started
            self._stop.wait(max(0.0, self._interval - elapsed))

    def stop_thread(self, timeout: float = 5.0) -> None:
        """Stop the thread started by `start_thread` and wait up to *timeout* s."""
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            self._thread = None

    def __enter__(self) -> HealthChecker[E]:
        self.start_thread()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop_thread()

    # ------------------------------------------------------------ asyncio

    async def _run_async(self, endpoint: E) -> bool:
        result: object
        if inspect.iscoroutinefunction(self._check) or (
            inspect.iscoroutinefunction(
                getattr(self._check, "__call__", None)  # noqa: B004 -- async callable objects
            )
        ):
            result = self._check(endpoint)
        else:
            future = self._start(endpoint, self._check)
            if future is None:
                raise TimeoutError("the previous check is still running")
            result = await asyncio.wrap_future(future)
        if inspect.isawaitable(result):
            result = await result
        return bool(result)

    async def check_once_async(self) -> dict[E, bool]:
        """Check every endpoint once, concurrently, and return each result.

        The asyncio twin of `check_once`: coroutine checks are awaited,
        synchronous ones run in daemon threads, as in `check_once`.
        """
        endpoints = self._pool.endpoints
        self._forget_departed(endpoints)

        async def one(endpoint: E) -> bool:
            try:
                return await asyncio.wait_for(
                    self._run_async(endpoint), self._timeout
                )
            except Exception as exc:
                logger.debug(
                    "balancing.check_error",
                    extra={"endpoint": endpoint, "error": repr(exc)},
                )
                return False

        outcomes = await asyncio.gather(*(one(e) for e in endpoints))
        now = self._clock.monotonic()
        results = dict(zip(endpoints, outcomes, strict=True))
        for endpoint, ok in results.items():
            self._record(endpoint, ok, now)
        return results

    async def run_forever(self) -> None:
        """Check every *interval* seconds until the task is cancelled.

        Start it with ``task = asyncio.create_task(checker.run_forever())`` and
        stop it with ``task.cancel()``.
        """
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            try:
                await self.check_once_async()
            except Exception:
                logger.exception("balancing.check_round_failed")
            await asyncio.sleep(
                max(0.0, self._interval - (loop.time() - started))
            )

    def __repr__(self) -> str:
        with self._lock:
            unhealthy = [e for e, s in self._states.items() if not s.healthy]
        running = self._thread is not None and self._thread.is_alive()
        return (
            f"HealthChecker(interval={self._interval!r}, "
            f"timeout={self._timeout!r}, unhealthy={unhealthy!r}, "
            f"running={running})"
        )


def http_check(
    path: str = "/health",
    *,
    timeout: float = 2.0,
    address: Callable[[E], str] = str,
    statuses: Container[int] = range(200, 400),
    https: bool = False,
    headers: dict[str, str] | None = None,
) -> Callable[[E], bool]:
    """Return a check that sends ``GET path`` and expects a good status.

    It uses only ``http.client`` (no proxies from the environment, no
    redirects followed). An endpoint passes when it answers with a status
    in *statuses* (200-399 by default) within *timeout* seconds; a refused
    connection, a timeout or any other error fails it.

    Args:
        path: the request path, starting with ``/``.
        timeout: the socket timeout in seconds; keep it at or below the
            checker's *timeout*.
        address: maps an endpoint to ``"host:port"`` (default: ``str``).
        statuses: the statuses that count as healthy.
        https: use TLS with the default certificate checks.
        headers: extra request headers (a ``Host`` header, for example).

    Raises:
        ValueError: if *path* does not start with ``/`` or *timeout* is
            not > 0.

    .. versionadded:: 0.1
    """
    if not path.startswith("/"):
        raise ConfigurationError(f"path must start with '/', got {path!r}")
    timeout = _positive("timeout", timeout)
    extra = dict(headers or {})

    def check(endpoint: E) -> bool:
        target = address(endpoint)
        connection: http.client.HTTPConnection
        if https:
            connection = http.client.HTTPSConnection(target, timeout=timeout)
        else:
            connection = http.client.HTTPConnection(target, timeout=timeout)
        try:
            connection.request("GET", path, headers=extra)
            response = connection.getresponse()
            response.read()
            return response.status in statuses
        except (OSError, http.client.HTTPException):
            return False
        finally:
            connection.close()

    return check
