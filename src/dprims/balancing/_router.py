"""Path-based routing: a path prefix or pattern picks the pool.

Status: provisional.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Hashable, Iterable, Mapping
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar, overload

from dprims.errors import ConfigurationError, NoEndpointAvailable


if TYPE_CHECKING:
    from dprims.balancing._base import Balancer, Lease


__all__ = ()

E = TypeVar("E", bound=Hashable)


class PathPattern(Protocol):
    r"""**Protocol:** a path pattern, such as a compiled ``re.Pattern``.

    A route with a pattern matches a path when ``pattern.match(path)`` is
    truthy, so ``re.compile(r"/users/\d+")`` works as it is.

    .. versionadded:: 0.1
    """

    def match(self, path: str, /) -> object:
        """Return something truthy when *path* matches."""
        ...


def _check_matcher(matcher: object) -> str | PathPattern:
    if isinstance(matcher, re.Pattern) and not isinstance(
        matcher.pattern, str
    ):
        raise TypeError(
            f"route pattern must be a str pattern, got {matcher!r}"
        )
    if not isinstance(matcher, str):
        if callable(getattr(matcher, "match", None)):
            return matcher  # type: ignore[return-value]  # checked by duck typing just above
        raise TypeError(
            "route must be a path prefix (str) or a pattern with a match() "
            f"method such as re.compile(...), got {matcher!r}"
        )
    if not matcher.startswith("/"):
        raise ConfigurationError(
            f"route prefix must start with '/', got {matcher!r}"
        )
    return matcher


def _check_pool(matcher: object, pool: object) -> None:
    if not (
        callable(getattr(pool, "pick", None))
        and callable(getattr(pool, "lease", None))
    ):
        raise TypeError(
            f"the pool for route {matcher!r} must be a balancer (with pick "
            f"and lease), got {pool!r}"
        )


class PathRouter(Generic[E]):
    """Send each request path to the pool of its route, then to an endpoint.

    A route is a path prefix (a ``str`` such as ``"/orders/"``, matched as a
    plain string prefix) or a `PathPattern` such as a compiled
    ``re.Pattern`` (matched at the start of the path with its ``match``).
    Routes see the path without its query string or fragment (what follows
    ``?`` or ``#``). As in nginx, the first pattern
    that matches wins, in the order given; otherwise the longest matching
    prefix wins; otherwise the *default* pool, if any. Each pool is any
    balancer, with its own policy, health checking and ejection.

    :meth:`~dprims.balancing.Balancer.pick` and :meth:`~dprims.balancing.Balancer.lease` take the path as *key* and pass it on to the pool,
    so a `HashBalancer` pool keeps each path on the same endpoint. To be
    sticky by something else, route first: ``router.route(path).lease(
    key=client_ip)``. Routing is O(number of routes); routes can be added
    and removed at runtime (thread-safe).

    Args:
        routes: a mapping (or pairs) of prefix or pattern to pool.
        default: the pool for paths no route matches; None means such
            paths raise `NoEndpointAvailable`.

    .. versionadded:: 0.1
    """

    __slots__ = ("_default", "_lock", "_patterns", "_prefixes")

    # Mapping keys are invariant, so a dict of prefixes and a dict that
    # mixes prefixes and patterns each need their own overload to type-check
    # as users write them.
    @overload
    def __init__(
        self,
        routes: Mapping[str, Balancer[E]],
        *,
        default: Balancer[E] | None = None,
    ) -> None: ...

    @overload
    def __init__(
        self,
        routes: Mapping[str | PathPattern, Balancer[E]],
        *,
        default: Balancer[E] | None = None,
    ) -> None: ...

    @overload
    def __init__(
        self,
        routes: Iterable[tuple[str | PathPattern, Balancer[E]]] = (),
        *,
        default: Balancer[E] | None = None,
    ) -> None: ...

    def __init__(
        self,
        routes: Mapping[str, Balancer[E]]
        | Mapping[str | PathPattern, Balancer[E]]
        | Iterable[tuple[str | PathPattern, Balancer[E]]] = (),
        *,
        default: Balancer[E] | None = None,
    ) -> None:
        if default is not None:
            _check_pool("default", default)
        self._default = default
        self._lock = threading.Lock()
        self._patterns: tuple[tuple[PathPattern, Balancer[E]], ...] = ()
        # Longest first, so the first prefix that matches is the longest.
        self._prefixes: tuple[tuple[str, Balancer[E]], ...] = ()
        pairs = routes.items() if isinstance(routes, Mapping) else routes
        for matcher, pool in pairs:
            self.add_route(matcher, pool)

    @property
    def routes(self) -> tuple[tuple[str | PathPattern, Balancer[E]], ...]:
        """Return the routes, patterns in order then prefixes longest first."""
        return (*self._patterns, *self._prefixes)

    def add_route(self, matcher: str | PathPattern, pool: Balancer[E]) -> None:
        """Add a route from *matcher* (prefix or pattern) to *pool*.

        Raises:
            ValueError: if the route exists already or a prefix does not
                start with ``/``.
            TypeError: if *matcher* is neither a ``str`` nor a pattern, or
                *pool* is not a balancer.
        """
        matcher = _check_matcher(matcher)
        _check_pool(matcher, pool)
        with self._lock:
            if any(m == matcher for m, _ in self.routes):
                raise ConfigurationError(
                    f"route {matcher!r} is already defined"
                )
            if isinstance(matcher, str):
                prefixes = [*self._prefixes, (matcher, pool)]
                prefixes.sort(key=lambda route: -len(route[0]))
                self._prefixes = tuple(prefixes)
            else:
                self._patterns = (*self._patterns, (matcher, pool))

    def remove_route(self, matcher: str | PathPattern) -> None:
        """Remove the route for *matcher*.

        Raises:
            ValueError: if there is no such route.
        """
        with self._lock:
            patterns = tuple(r for r in self._patterns if r[0] != matcher)
            prefixes = tuple(r for r in self._prefixes if r[0] != matcher)
            if len(patterns) + len(prefixes) == len(self.routes):
                raise ConfigurationError(f"there is no route {matcher!r}")
            self._patterns = patterns
            self._prefixes = prefixes

    def route(self, path: str) -> Balancer[E]:
        """Return the pool for *path*.

        Raises:
            NoEndpointAvailable: if no route matches and there is no
                default pool.
            TypeError: if *path* is not a ``str``.
        """
        if not isinstance(path, str):
            raise TypeError(f"path must be a str, got {path!r}")
        # Routes match the path alone, as nginx's locations do: a query
        # string must not stop "/static/app.js?v=3" matching r"\.js$".
        path = path.partition("?")[0].partition("#")[0]
        for pattern, pool in self._patterns:
            if pattern.match(path):
                return pool
        for prefix, pool in self._prefixes:
            if path.startswith(prefix):
                return pool
        if self._default is None:
            raise NoEndpointAvailable(
                f"no route matches the path {path!r} and there is no "
                "default pool"
            )
        return self._default

    def pick(self, key: str | None = None) -> E:
        """Return an endpoint for the request path *key*.

        Raises:
            ValueError: if *key* (the path) is None.
            NoEndpointAvailable: if no route matches or its pool has no
                endpoint to give.
        """
        return self.route(self._path(key)).pick(key)

    def lease(self, key: str | None = None) -> Lease[E]:
        """Return a lease on the pool of the request path *key*.

        Raises:
            ValueError: if *key* (the path) is None.
            NoEndpointAvailable: if no route matches.
        """
        return self.route(self._path(key)).lease(key)

    @staticmethod
    def _path(key: str | None) -> str:
        if key is None:
            raise ConfigurationError(
                "key must be the request path for a PathRouter, got None"
            )
        return key

    def __repr__(self) -> str:
        matchers = [
            m.pattern if isinstance(m, re.Pattern) else m
            for m, _ in self.routes
        ]
        return (
            f"PathRouter(routes={matchers!r}, "
            f"default={'yes' if self._default is not None else 'no'})"
        )
