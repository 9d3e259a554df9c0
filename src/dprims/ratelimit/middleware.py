"""Rate limiting at the edge of a web application: ASGI, WSGI, decorator.

Nothing here imports a web framework. The two middleware classes speak the
raw ASGI and WSGI protocols, so they wrap any application that does:
Starlette and FastAPI (ASGI), Flask and Django (WSGI), or a bare function.

- `ASGIRateLimitMiddleware` wraps an ASGI application. HTTP requests are
  counted; ``lifespan`` passes through untouched, and so does ``websocket``
  unless asked for.
- `WSGIRateLimitMiddleware` wraps a WSGI application.
- `rate_limited` decorates a plain function (sync or ``async``): a call
  over the limit raises :exc:`~dprims.errors.RateLimitExceeded`, or waits for
  its turn when asked to.
- `rate_limit_headers` returns the response headers for a decision, for
  code that builds its own responses.

Every rate limiter of :mod:`dprims.ratelimit` works here, and so does a
:class:`~dprims.ratelimit.ConcurrencyLimiter`: a request (or call) then holds its slot until its
response has been sent (or the call has returned).

A refused request gets ``429 Too Many Requests`` with a ``Retry-After``
header (whole seconds, rounded up) and the IETF ``RateLimit-Limit``,
``RateLimit-Remaining`` and ``RateLimit-Reset`` headers, which admitted
responses carry too.

Status: provisional.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import math
from typing import TYPE_CHECKING, ParamSpec, TypeVar, cast

import attrs

from dprims.errors import RateLimitExceeded
from dprims.ratelimit._concurrency import ConcurrencyLimiter


if TYPE_CHECKING:
    from collections.abc import (
        Awaitable,
        Callable,
        Iterable,
        Iterator,
        Mapping,
        MutableMapping,
    )

    from _typeshed import OptExcInfo
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

    from dprims.ratelimit._base import Decision
    from dprims.ratelimit._concurrency import Permit
    from dprims.ratelimit._limiters import Limiter, MultiLimiter

    _Scope = MutableMapping[str, object]
    _Message = MutableMapping[str, object]
    _Receive = Callable[[], Awaitable[_Message]]
    _Send = Callable[[_Message], Awaitable[None]]


__all__ = [
    "ASGIRateLimitMiddleware",
    "RequestInfo",
    "WSGIRateLimitMiddleware",
    "rate_limit_headers",
    "rate_limited",
]

P = ParamSpec("P")
R = TypeVar("R")

#: The reason phrase and body of a refused request.
_TOO_MANY = "Too many requests"
_BODY = b"Too many requests\n"
# Float arithmetic turns a 5 s wait into 5.000000000001 s; without this
# slack such a value would be announced as 6 s.
_ROUNDING_SLACK = 1e-9


def _seconds(value: float) -> int:
    """Return *value* seconds as a whole number, rounded up, never negative."""
    if value <= 0.0 or math.isnan(value):
        return 0
    if math.isinf(value):
        # Never in practice; an HTTP header must still carry a number.
        return 2**31 - 1
    return math.ceil(value - _ROUNDING_SLACK)


def rate_limit_headers(decision: Decision) -> list[tuple[str, str]]:
    """Return the HTTP response headers that describe *decision*.

    Always ``RateLimit-Limit``, ``RateLimit-Remaining`` and
    ``RateLimit-Reset`` (seconds until the limit is fully reset, rounded
    up), as in the IETF draft *RateLimit header fields for HTTP*. A refused
    decision also gets ``Retry-After``: whole seconds, rounded up, at least
    1, so that a client never retries before it may succeed.

    Args:
        decision: what a limiter's ``acquire`` returned.

    Returns:
        ``(name, value)`` pairs, in the order above.

    .. versionadded:: 0.1
    """
    headers = [
        ("RateLimit-Limit", str(decision.limit)),
        ("RateLimit-Remaining", str(max(0, decision.remaining))),
        ("RateLimit-Reset", str(_seconds(decision.reset_after))),
    ]
    if not decision.allowed:
        headers.append(
            ("Retry-After", str(max(1, _seconds(decision.retry_after))))
        )
    return headers


@attrs.frozen(eq=False)
class RequestInfo:
    """Describe one request to a key or cost function, for ASGI and WSGI.

    The same key function therefore works under both kinds of middleware.

    Attributes:
        method: the HTTP method, upper case (``"GET"``); ``"WEBSOCKET"``
            for an ASGI websocket connection.
        path: the request path, without the query string.
        client: the client's address (host only), or None when the server
            does not know it (a Unix socket, for example).
        headers: the request headers, names in lower case; repeated
            headers are joined with ``", "``.
        raw: the ASGI scope or the WSGI environ, for anything else.

    .. versionadded:: 0.1
    """

    method: str
    path: str
    client: str | None
    headers: Mapping[str, str]
    raw: Mapping[str, object]


def _check_limiter(limiter: object, *, need_wait: bool = False) -> None:
    needed: tuple[str, ...] = ("acquire", "acquire_async")
    if need_wait:
        needed += ("wait", "wait_async")
    missing = [
        name for name in needed if not callable(getattr(limiter, name, None))
    ]
    if missing:
        raise TypeError(
            f"limiter must be a dprims rate limiter (with "
            f"{', '.join(m + '()' for m in needed)}), got {limiter!r} "
            f"(missing {', '.join(missing)})"
        )


def _io_kind(limiter: object) -> str:
    """Return how the limiter's store does I/O: "async", "blocking", "none".

    A store with an asyncio client has ``is_async`` true, a store with a
    blocking client false; an in-process store has no I/O at all.
    """
    is_async = getattr(getattr(limiter, "store", None), "is_async", None)
    if is_async is True:
        return "async"
    if is_async is False:
        return "blocking"
    return "none"


def _refuse_async_store(limiter: object, where: str) -> None:
    if _io_kind(limiter) == "async":
        raise TypeError(
            f"limiter must use a blocking store client for {where}, but "
            f"{limiter!r} has an asyncio client"
        )


def _admit(
    limiter: Limiter | MultiLimiter | ConcurrencyLimiter, key: str, cost: int
) -> tuple[Decision, Permit | None]:
    """Decide one request; also return the concurrency slot to free later."""
    if isinstance(limiter, ConcurrencyLimiter):
        permit = limiter.acquire(key)
        return permit.decision, permit if permit.allowed else None
    return limiter.acquire(key, cost), None


async def _admit_async(
    limiter: Limiter | MultiLimiter | ConcurrencyLimiter,
    io: str,
    key: str,
    cost: int,
) -> tuple[Decision, Permit | None]:
    """Do what `_admit` does without blocking the event loop."""
    if io == "blocking":
        # A blocking client would stall the event loop for a round trip:
        # run it on a worker thread instead.
        return await asyncio.to_thread(_admit, limiter, key, cost)
    if isinstance(limiter, ConcurrencyLimiter):
        permit = await limiter.acquire_async(key)
        return permit.decision, permit if permit.allowed else None
    return await limiter.acquire_async(key, cost), None


async def _release_async(permit: Permit | None, io: str) -> None:
    if permit is None:
        return
    if io == "blocking":
        await asyncio.to_thread(permit.release)
    else:
        await permit.release_async()


def _check_concurrency_cost(limiter: object, cost: object) -> None:
    if isinstance(limiter, ConcurrencyLimiter) and cost != 1:
        raise ValueError(
            f"cost must be 1 with a ConcurrencyLimiter (it counts requests "
            f"in flight, not units), got {cost!r}"
        )


def _check_capacity(limiter: object, cost: object) -> None:
    """Refuse a fixed *cost* that the limiter could never admit.

    Without this, a cost above the capacity is accepted here and then fails
    every request (or call) with a ValueError from the limiter.
    """
    if callable(cost) or not isinstance(cost, int):
        return
    parts = getattr(limiter, "limiters", None)
    found = parts if isinstance(parts, tuple) else (limiter,)
    capacities = [
        capacity
        for capacity in (getattr(part, "capacity", None) for part in found)
        if isinstance(capacity, int) and not isinstance(capacity, bool)
    ]
    if capacities and cost > min(capacities):
        raise ValueError(
            f"cost must be <= the limiter's capacity {min(capacities)} "
            f"(a request of that cost could never be admitted), got {cost!r}"
        )


def _check_cost(cost: object) -> None:
    if callable(cost):
        return
    if isinstance(cost, bool) or not isinstance(cost, int):
        raise TypeError(
            f"cost must be an int or a function of the request, got {cost!r}"
        )
    if cost < 1:
        raise ValueError(f"cost must be >= 1, got {cost!r}")


class _EdgeConfig:
    """The checked options shared by the ASGI and WSGI middleware."""

    __slots__ = (
        "cost",
        "exact_paths",
        "key",
        "key_header",
        "limiter",
        "prefix_paths",
        "send_headers",
    )

    def __init__(
        self,
        *,
        limiter: Limiter | MultiLimiter | ConcurrencyLimiter,
        key: Callable[[RequestInfo], str | None] | None,
        key_header: str | None,
        cost: int | Callable[[RequestInfo], int],
        exempt_paths: Iterable[str],
        send_headers: bool,
    ) -> None:
        _check_limiter(limiter)
        if key is not None and key_header is not None:
            raise ValueError(
                "key and key_header are exclusive: pass a key function or "
                "the name of the header that names the client, not both"
            )
        if key is not None and not callable(key):
            raise TypeError(
                f"key must be a function of the request, got {key!r}"
            )
        if key_header is not None:
            if not isinstance(key_header, str):
                raise TypeError(
                    f"key_header must be a header name (str), got "
                    f"{key_header!r}"
                )
            if (
                not key_header
                or not key_header.isascii()
                or any(ch in key_header for ch in " \t\r\n:")
            ):
                raise ValueError(
                    f"key_header must be a non-empty header name, got "
                    f"{key_header!r}"
                )
        _check_cost(cost)
        _check_concurrency_cost(limiter, cost)
        _check_capacity(limiter, cost)
        if isinstance(exempt_paths, str):
            raise TypeError(
                "exempt_paths must be a collection of paths, not one str "
                f"(got {exempt_paths!r}); wrap it in a list"
            )
        exact: set[str] = set()
        prefixes: list[str] = []
        for path in cast("Iterable[object]", exempt_paths):
            if not isinstance(path, str) or not path.startswith("/"):
                raise ValueError(
                    f"exempt_paths entries must be paths starting with "
                    f"'/', got {path!r}"
                )
            if path.endswith("*"):
                prefixes.append(path[:-1])
            else:
                exact.add(path)
        self.limiter = limiter
        self.key = key
        self.key_header = None if key_header is None else key_header.lower()
        self.cost = cost
        self.exact_paths = frozenset(exact)
        self.prefix_paths = tuple(prefixes)
        self.send_headers = bool(send_headers)

    def exempt(self, path: str) -> bool:
        return path in self.exact_paths or path.startswith(self.prefix_paths)

    def needs_info(self) -> bool:
        return self.key is not None or callable(self.cost)

    def key_and_cost(
        self,
        info: RequestInfo | None,
        header: str | None,
        client: str | None,
    ) -> tuple[str | None, int]:
        """Return the key and cost of a request; a None key exempts it."""
        if self.key is not None and info is not None:
            key = self.key(info)
            if key is not None and not isinstance(key, str):
                raise TypeError(
                    f"the key function must return a str or None, got {key!r}"
                )
        elif header is not None:
            key = f"{self.key_header}:{header}"
        else:
            key = f"client:{client or 'unknown'}"
        cost = self.cost
        if callable(cost):
            cost = cost(cast("RequestInfo", info))
            if isinstance(cost, bool) or not isinstance(cost, int):
                raise TypeError(
                    f"the cost function must return an int, got {cost!r}"
                )
            if cost < 0:
                raise ValueError(
                    f"the cost function must return >= 0, got {cost!r}"
                )
        return key, cost

    def describe(self, owner: str, app: object) -> str:
        return (
            f"{owner}(app={app!r}, limiter={self.limiter!r}, "
            f"key={self.key or self.key_header or 'client address'!r})"
        )


# ----------------------------------------------------------------- ASGI


def _asgi_headers(scope: _Scope) -> dict[str, str]:
    headers: dict[str, str] = {}
    raw = scope.get("headers")
    if not isinstance(raw, (list, tuple)):
        return headers
    for item in raw:
        name = bytes(item[0]).decode("latin-1").lower()
        value = bytes(item[1]).decode("latin-1")
        headers[name] = (
            f"{headers[name]}, {value}" if name in headers else value
        )
    return headers


def _asgi_client(scope: _Scope) -> str | None:
    client = scope.get("client")
    if isinstance(client, (list, tuple)) and client:
        return str(client[0])
    return None


def _encode(headers: list[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    return [
        (name.lower().encode("latin-1"), value.encode("latin-1"))
        for name, value in headers
    ]


class ASGIRateLimitMiddleware:
    """Wrap an ASGI application so that each client is rate limited.

    Every HTTP request is counted under a key: by default the client's address, or the value of the
    header named by *key_header* (a request without it falls back to its
    address), or whatever *key* returns. A request over the limit is
    answered here with ``429 Too Many Requests``, ``Retry-After`` and the
    ``RateLimit-*`` headers, and never reaches the application; admitted
    responses carry the ``RateLimit-*`` headers too (unless *headers* is
    False).

    ``lifespan`` and unknown scope types pass through. ``websocket``
    connections pass through unless *websocket* is True; a refused
    connection is then closed with code 1008 (policy violation) before it
    is accepted, or answered with a real 429 response where the server
    offers the ``websocket.http.response`` extension.

    With Starlette or FastAPI::

        app.add_middleware(ASGIRateLimitMiddleware, limiter=limiter)

    Decisions use the limiter's ``acquire_async``, so a :class:`~dprims.ratelimit.RedisStore` with
    an asyncio client never blocks the event loop; with a blocking Redis
    client each decision runs on a worker thread instead (it works, but an
    asyncio client is cheaper). The middleware keeps no state beyond its
    options; concurrency safety is the limiter's. Errors raised by the
    limiter (a Redis outage under the ``"raise"`` failure policy) propagate
    to the server.

    Args:
        app: the ASGI application to protect.
        limiter: a dprims rate limiter, for example ``TokenBucket(...)``,
            or a :class:`~dprims.ratelimit.ConcurrencyLimiter`, whose slot a request holds until its
            response has been sent.
        key: a function of the `RequestInfo` that returns the key to count
            the request under, or None to let it through uncounted.
        key_header: the name of a request header that names the client
            (``"X-User"``); exclusive with *key*. The key is
            ``"<header name>:<value>"``.
        cost: how many units a request costs, or a function of the
            `RequestInfo` that returns it (0 lets the request through
            uncounted); 1 with a :class:`~dprims.ratelimit.ConcurrencyLimiter`.
        exempt_paths: paths that are never counted; an entry ending in
            ``*`` matches every path that starts with the rest.
        headers: whether admitted responses get the ``RateLimit-*``
            headers.
        websocket: whether websocket connections are counted too.

    Raises:
        TypeError: if *app*, *limiter*, *key* or *cost* has the wrong type.
        ValueError: if *key_header*, *cost* or *exempt_paths* has a bad
            value (*cost* must be 1 with a :class:`~dprims.ratelimit.ConcurrencyLimiter`, and a fixed
            *cost* at most the limiter's capacity), or both *key* and
            *key_header* are given.

    .. versionadded:: 0.1
    """

    __slots__ = ("_config", "_io", "_websocket", "app")

    def __init__(
        self,
        app: Callable[..., Awaitable[None]],
        *,
        limiter: Limiter | MultiLimiter | ConcurrencyLimiter,
        key: Callable[[RequestInfo], str | None] | None = None,
        key_header: str | None = None,
        cost: int | Callable[[RequestInfo], int] = 1,
        exempt_paths: Iterable[str] = (),
        headers: bool = True,
        websocket: bool = False,
    ) -> None:
        if not callable(app):
            raise TypeError(f"app must be an ASGI application, got {app!r}")
        self._config = _EdgeConfig(
            limiter=limiter,
            key=key,
            key_header=key_header,
            cost=cost,
            exempt_paths=exempt_paths,
            send_headers=headers,
        )
        self._websocket = bool(websocket)
        self._io = _io_kind(limiter)
        self.app = app

    def __repr__(self) -> str:
        return self._config.describe(type(self).__name__, self.app)

    async def __call__(
        self, scope: _Scope, receive: _Receive, send: _Send
    ) -> None:
        """Count the request, then call the application or refuse it."""
        kind = scope.get("type")
        if kind != "http" and not (kind == "websocket" and self._websocket):
            await self.app(scope, receive, send)
            return
        config = self._config
        path = str(scope.get("path", "/"))
        if config.exempt(path):
            await self.app(scope, receive, send)
            return
        client = _asgi_client(scope)
        info: RequestInfo | None = None
        header: str | None = None
        if config.needs_info():
            info = RequestInfo(
                method="WEBSOCKET"
                if kind == "websocket"
                else str(scope.get("method", "GET")),
                path=path,
                client=client,
                headers=_asgi_headers(scope),
                raw=scope,
            )
        if config.key is None and config.key_header is not None:
            headers = _asgi_headers(scope) if info is None else info.headers
            header = headers.get(config.key_header)
        key, cost = config.key_and_cost(info, header, client)
        if key is None or cost == 0:
            await self.app(scope, receive, send)
            return
        decision, permit = await _admit_async(
            config.limiter, self._io, key, cost
        )
        extra = rate_limit_headers(decision)
        if not decision.allowed:
            if kind == "websocket":
                await self._refuse_websocket(scope, receive, send, extra)
            else:
                await _send_429(send, "http.response", extra)
            return
        try:
            await self._call_app(scope, receive, send, extra)
        finally:
            await _release_async(permit, self._io)

    async def _call_app(
        self,
        scope: _Scope,
        receive: _Receive,
        send: _Send,
        extra: list[tuple[str, str]],
    ) -> None:
        if not self._config.send_headers:
            await self.app(scope, receive, send)
            return
        encoded = _encode(extra)

        async def send_with_headers(message: _Message) -> None:
            if message.get("type") == "http.response.start":
                existing = message.get("headers") or []
                message = dict(message)
                message["headers"] = [
                    *cast("Iterable[tuple[bytes, bytes]]", existing),
                    *encoded,
                ]
            await send(message)

        await self.app(scope, receive, send_with_headers)

    @staticmethod
    async def _refuse_websocket(
        scope: _Scope,
        receive: _Receive,
        send: _Send,
        headers: list[tuple[str, str]],
    ) -> None:
        # The client's handshake is pending: read it, so that the server
        # sees a well-formed exchange, then refuse before accepting.
        await receive()
        extensions = scope.get("extensions")
        if isinstance(extensions, dict) and (
            "websocket.http.response" in extensions
        ):
            await _send_429(send, "websocket.http.response", headers)
            return
        await send({"type": "websocket.close", "code": 1008})


async def _send_429(
    send: _Send, prefix: str, headers: list[tuple[str, str]]
) -> None:
    await send(
        {
            "type": f"{prefix}.start",
            "status": 429,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(_BODY)).encode()),
                *_encode(headers),
            ],
        }
    )
    await send({"type": f"{prefix}.body", "body": _BODY})


# ----------------------------------------------------------------- WSGI


def _wsgi_headers(environ: WSGIEnvironment) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in environ.items():
        if name.startswith("HTTP_"):
            headers[name[5:].replace("_", "-").lower()] = str(value)
    for name in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if environ.get(name):
            headers[name.replace("_", "-").lower()] = str(environ[name])
    return headers


def _wsgi_path(environ: WSGIEnvironment) -> str:
    path = f"{environ.get('SCRIPT_NAME', '')}{environ.get('PATH_INFO', '')}"
    return path or "/"


class WSGIRateLimitMiddleware:
    """Wrap a WSGI application so that each client is rate limited.

    The WSGI twin of `ASGIRateLimitMiddleware`, with the same options and
    responses; it calls the limiter's blocking ``acquire``, so the limiter's
    store must not use an asyncio Redis client. The client address is
    ``REMOTE_ADDR``.

    With Flask::

        app.wsgi_app = WSGIRateLimitMiddleware(app.wsgi_app, limiter=limiter)

    Args:
        app: the WSGI application to protect.
        limiter: a dprims rate limiter, for example ``TokenBucket(...)``,
            or a :class:`~dprims.ratelimit.ConcurrencyLimiter`, whose slot a request holds until its
            response has been sent.
        key: a function of the `RequestInfo` that returns the key to count
            the request under, or None to let it through uncounted.
        key_header: the name of a request header that names the client
            (``"X-User"``); exclusive with *key*. The key is
            ``"<header name>:<value>"``.
        cost: how many units a request costs, or a function of the
            `RequestInfo` that returns it (0 lets the request through
            uncounted); 1 with a :class:`~dprims.ratelimit.ConcurrencyLimiter`.
        exempt_paths: paths that are never counted; an entry ending in
            ``*`` matches every path that starts with the rest.
        headers: whether admitted responses get the ``RateLimit-*``
            headers.

    Raises:
        TypeError: if *app*, *limiter*, *key* or *cost* has the wrong type,
            or the limiter's store has an asyncio client.
        ValueError: if *key_header*, *cost* or *exempt_paths* has a bad
            value (*cost* must be 1 with a :class:`~dprims.ratelimit.ConcurrencyLimiter`, and a fixed
            *cost* at most the limiter's capacity), or both *key* and
            *key_header* are given.

    .. versionadded:: 0.1
    """

    __slots__ = ("_config", "_environ_key", "app")

    def __init__(
        self,
        app: Callable[..., Iterable[bytes]],
        *,
        limiter: Limiter | MultiLimiter | ConcurrencyLimiter,
        key: Callable[[RequestInfo], str | None] | None = None,
        key_header: str | None = None,
        cost: int | Callable[[RequestInfo], int] = 1,
        exempt_paths: Iterable[str] = (),
        headers: bool = True,
    ) -> None:
        if not callable(app):
            raise TypeError(f"app must be a WSGI application, got {app!r}")
        self._config = _EdgeConfig(
            limiter=limiter,
            key=key,
            key_header=key_header,
            cost=cost,
            exempt_paths=exempt_paths,
            send_headers=headers,
        )
        _refuse_async_store(limiter, "WSGI")
        self._environ_key = (
            None
            if self._config.key_header is None
            else "HTTP_" + self._config.key_header.upper().replace("-", "_")
        )
        self.app = app

    def __repr__(self) -> str:
        return self._config.describe(type(self).__name__, self.app)

    def __call__(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        """Count the request, then call the application or refuse it."""
        config = self._config
        path = _wsgi_path(environ)
        if config.exempt(path):
            return self.app(environ, start_response)
        address = environ.get("REMOTE_ADDR")
        client = str(address) if address else None
        info: RequestInfo | None = None
        if config.needs_info():
            info = RequestInfo(
                method=str(environ.get("REQUEST_METHOD", "GET")),
                path=path,
                client=client,
                headers=_wsgi_headers(environ),
                raw=environ,
            )
        value = (
            None
            if self._environ_key is None
            else environ.get(self._environ_key)
        )
        header = None if value is None else str(value)
        key, cost = config.key_and_cost(info, header, client)
        if key is None or cost == 0:
            return self.app(environ, start_response)
        decision, permit = _admit(config.limiter, key, cost)
        extra = rate_limit_headers(decision)
        if not decision.allowed:
            start_response(
                f"429 {_TOO_MANY.title()}",
                [
                    ("Content-Type", "text/plain; charset=utf-8"),
                    ("Content-Length", str(len(_BODY))),
                    *extra,
                ],
            )
            return [_BODY]
        start = start_response
        if config.send_headers:

            def start_with_headers(
                status: str,
                headers: list[tuple[str, str]],
                exc_info: OptExcInfo | None = None,
            ) -> Callable[[bytes], object]:
                return start_response(status, [*headers, *extra], exc_info)

            start = start_with_headers
        if permit is None:
            return self.app(environ, start)
        try:
            body = self.app(environ, start)
        except BaseException:
            permit.release()
            raise
        # The request is in flight until the server has sent the body and
        # closed it, which may be long after the app returned.
        return _ReleaseOnClose(body, permit)


class _ReleaseOnClose:
    """A WSGI response body that frees a concurrency slot when closed."""

    __slots__ = ("_body", "_permit")

    def __init__(self, body: Iterable[bytes], permit: Permit) -> None:
        self._body = body
        self._permit = permit

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._body)

    def close(self) -> None:
        """Close the app's body (WSGI requires it), then free the slot."""
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            self._permit.release()


# ------------------------------------------------------------ decorator


def rate_limited(
    limiter: Limiter | MultiLimiter | ConcurrencyLimiter,
    *,
    key: str | Callable[..., str],
    cost: int = 1,
    wait: bool = False,
    timeout: float = 10.0,
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Return a decorator that rate limits every call of a function.

    Each call is counted under *key*: a fixed string, or a function that
    receives the call's arguments and returns the key (so that, say, each
    user is limited separately). By default a call over the limit raises
    :exc:`~dprims.errors.RateLimitExceeded`, whose ``retry_after`` says when to
    try again and whose ``decision`` is the limiter's; with *wait* the call
    blocks (``await``-s, for a coroutine function) until admitted, for at
    most *timeout* seconds, and raises the same error when that is not
    enough.

    ``async def`` functions are limited with the limiter's ``*_async``
    methods, so they never block the event loop (with a blocking Redis
    client, the call runs on a worker thread). A plain function needs a
    limiter whose store does not use an asyncio client.

    >>> from dprims.ratelimit import TokenBucket
    >>> from dprims.ratelimit.middleware import rate_limited
    >>> from dprims.testing import FakeClock
    >>> bucket = TokenBucket(rate=1.0, burst=2, clock=FakeClock())
    >>> @rate_limited(bucket, key=lambda user: f"user:{user}")
    ... def fetch(user: str) -> str:
    ...     return f"data for {user}"
    >>> fetch("ada"), fetch("ada")
    ('data for ada', 'data for ada')
    >>> fetch("ada")
    Traceback (most recent call last):
    ...
    dprims.errors.RateLimitExceeded: rate limit exceeded for 'user:ada'; retry after 1.000 s

    Args:
        limiter: a dprims rate limiter, for example ``TokenBucket(...)``,
            or a :class:`~dprims.ratelimit.ConcurrencyLimiter`, whose slot a call holds until it
            returns.
        key: the key every call is counted under, or a function of the
            call's arguments that returns it.
        cost: how many units one call costs; 1 with a
            :class:`~dprims.ratelimit.ConcurrencyLimiter`.
        wait: whether to wait for capacity instead of raising at once.
        timeout: with *wait*, the longest time to wait, in seconds.

    Returns:
        A decorator that keeps the decorated function's signature.

    Raises:
        TypeError: if *limiter*, *key* or *cost* has the wrong type, or a
            plain function is given a limiter with an asyncio store client.
        ValueError: if *cost* is below 1, above the limiter's capacity
            (or not 1 with a :class:`~dprims.ratelimit.ConcurrencyLimiter`), or *timeout* is
            negative.

    .. versionadded:: 0.1
    """
    _check_limiter(limiter, need_wait=wait)
    if not (isinstance(key, str) or callable(key)):
        raise TypeError(
            f"key must be a str or a function of the call's arguments, got "
            f"{key!r}"
        )
    if callable(cost):
        raise TypeError(f"cost must be an int, got {cost!r}")
    _check_cost(cost)
    _check_concurrency_cost(limiter, cost)
    _check_capacity(limiter, cost)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(
            f"timeout must be a number of seconds, got {timeout!r}"
        )
    if not timeout >= 0 or math.isinf(timeout):
        raise ValueError(
            f"timeout must be a finite number of seconds >= 0, got {timeout!r}"
        )

    def key_of(*args: object, **kwargs: object) -> str:
        if isinstance(key, str):
            return key
        value = key(*args, **kwargs)
        if not isinstance(value, str):
            raise TypeError(
                f"the key function must return a str, got {value!r}"
            )
        return value

    def refused(name: str, decision: Decision) -> RateLimitExceeded:
        return RateLimitExceeded(
            f"rate limit exceeded for {name!r}; retry after "
            f"{decision.retry_after:.3f} s",
            retry_after=decision.retry_after,
            decision=decision,
        )

    def decorate(function: Callable[P, R]) -> Callable[P, R]:
        if not callable(function):
            raise TypeError(
                f"rate_limited decorates a function, got {function!r}"
            )
        if inspect.iscoroutinefunction(function):
            io = _io_kind(limiter)

            @functools.wraps(function)
            async def limited_async(
                *args: P.args, **kwargs: P.kwargs
            ) -> object:
                name = key_of(*args, **kwargs)
                if wait:
                    permit = await _wait_async(
                        limiter, io, name, cost, timeout
                    )
                else:
                    decision, permit = await _admit_async(
                        limiter, io, name, cost
                    )
                    if not decision.allowed:
                        raise refused(name, decision)
                try:
                    return await function(*args, **kwargs)
                finally:
                    await _release_async(permit, io)

            return cast("Callable[P, R]", limited_async)

        _refuse_async_store(limiter, "a function that is not async")

        @functools.wraps(function)
        def limited(*args: P.args, **kwargs: P.kwargs) -> R:
            name = key_of(*args, **kwargs)
            if wait:
                permit = _wait(limiter, name, cost, timeout)
            else:
                decision, permit = _admit(limiter, name, cost)
                if not decision.allowed:
                    raise refused(name, decision)
            try:
                return function(*args, **kwargs)
            finally:
                if permit is not None:
                    permit.release()

        return limited

    return decorate


def _wait(
    limiter: Limiter | MultiLimiter | ConcurrencyLimiter,
    key: str,
    cost: int,
    timeout: float,
) -> Permit | None:
    """Block until admitted; return the concurrency slot to free, if any."""
    if isinstance(limiter, ConcurrencyLimiter):
        return limiter.wait(key, timeout=timeout)
    limiter.wait(key, cost, timeout=timeout)
    return None


async def _wait_async(
    limiter: Limiter | MultiLimiter | ConcurrencyLimiter,
    io: str,
    key: str,
    cost: int,
    timeout: float,
) -> Permit | None:
    """Do what `_wait` does without blocking the event loop."""
    if io == "blocking":
        return await asyncio.to_thread(_wait, limiter, key, cost, timeout)
    if isinstance(limiter, ConcurrencyLimiter):
        return await limiter.wait_async(key, timeout=timeout)
    await limiter.wait_async(key, cost, timeout=timeout)
    return None
