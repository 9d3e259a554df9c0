"""ASGI and WSGI middleware and the decorator, on real apps and servers."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import http.client
import threading
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest

from dprims.errors import RateLimitExceeded
from dprims.ratelimit import (
    ConcurrencyLimiter,
    FixedWindow,
    MemoryStore,
    MultiLimiter,
    TokenBucket,
)
from dprims.ratelimit.middleware import (
    ASGIRateLimitMiddleware,
    RequestInfo,
    WSGIRateLimitMiddleware,
    rate_limit_headers,
    rate_limited,
)


if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

    from dprims.testing import FakeClock, RedisServer


# ------------------------------------------------------------- helpers


@dataclasses.dataclass(frozen=True)
class Verdict:
    """A stand-in decision with exactly the fields the headers read."""

    allowed: bool
    limit: int = 10
    remaining: int = 0
    retry_after: float = 0.0
    reset_after: float = 0.0


class AsgiApp:
    """A tiny raw ASGI app: 200 "hello" over HTTP, echo over websocket."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.calls.append(scope["type"])
        if scope["type"] == "lifespan":
            message = await receive()
            await send({"type": f"{message['type']}.complete"})
            return
        if scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.close", "code": 1000})
            return
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/plain")],
            }
        )
        await send({"type": "http.response.body", "body": b"hello"})


@dataclasses.dataclass
class AsgiResult:
    """What an ASGI app sent back for one request."""

    messages: list[dict[str, Any]]

    @property
    def status(self) -> int:
        return int(self.messages[0]["status"])

    @property
    def headers(self) -> dict[str, str]:
        return {
            name.decode(): value.decode()
            for name, value in self.messages[0].get("headers", [])
        }

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.messages[1:])


def http_scope(
    path: str = "/",
    *,
    headers: Iterable[tuple[str, str]] = (),
    client: tuple[str, int] | None = ("10.0.0.1", 5000),
    kind: str = "http",
    **extra: Any,
) -> dict[str, Any]:
    return {
        "type": kind,
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (name.lower().encode(), value.encode()) for name, value in headers
        ],
        "client": client,
        "server": ("127.0.0.1", 8000),
        **extra,
    }


async def run_asgi(app: Any, scope: dict[str, Any]) -> AsgiResult:
    """Run one ASGI exchange with real receive/send callables."""
    first = (
        {"type": "websocket.connect"}
        if scope["type"] == "websocket"
        else {"type": "http.request", "body": b"", "more_body": False}
    )
    incoming = [first]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if incoming:
            return incoming.pop(0)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return AsgiResult(sent)


def call_asgi(app: Any, scope: dict[str, Any]) -> AsgiResult:
    """Run one ASGI exchange in a fresh event loop, bounded in time."""
    return asyncio.run(asyncio.wait_for(run_asgi(app, scope), timeout=10))


class QuietHandler(WSGIRequestHandler):
    """A request handler that does not log to stderr."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def serve_wsgi(app: Any) -> Iterator[int]:
    """Serve *app* with wsgiref on 127.0.0.1 in a thread; yield the port."""
    server: WSGIServer = make_server(
        "127.0.0.1", 0, app, handler_class=QuietHandler
    )
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}
    )
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


def get(
    port: int, path: str = "/", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def hello_wsgi(calls: list[str]) -> Callable[..., Iterable[bytes]]:
    def app(environ: Any, start_response: Any) -> Iterable[bytes]:
        calls.append(environ["PATH_INFO"])
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"hello"]

    return app


# --------------------------------------------------------------- headers


class TestRateLimitHeaders:
    def test_allowed_has_no_retry_after(self) -> None:
        """Gives the three RateLimit headers, and no Retry-After, when allowed."""
        headers = rate_limit_headers(
            Verdict(allowed=True, limit=5, remaining=4, reset_after=0.5)
        )

        assert [
            ("RateLimit-Limit", "5"),
            ("RateLimit-Remaining", "4"),
            ("RateLimit-Reset", "1"),
        ] == headers

    @pytest.mark.parametrize(
        ("retry_after", "want"),
        [
            (0.2, "1"),
            (1.0, "1"),
            (2.5, "3"),
            # Float noise must not cost the client a whole second.
            (5.000000000001, "5"),
            # A refusal always asks for at least one second.
            (0.0, "1"),
        ],
    )
    def test_retry_after_rounds_up(
        self, retry_after: float, want: str
    ) -> None:
        """Rounds Retry-After up to whole seconds, at least 1."""
        headers = dict(
            rate_limit_headers(Verdict(allowed=False, retry_after=retry_after))
        )

        assert want == headers["Retry-After"]

    def test_negative_remaining_is_zero(self) -> None:
        """Never announces a negative remaining count."""
        headers = dict(
            rate_limit_headers(Verdict(allowed=False, remaining=-3))
        )

        assert "0" == headers["RateLimit-Remaining"]

    @pytest.mark.parametrize(
        ("reset_after", "want"),
        [(float("nan"), "0"), (-1.0, "0"), (float("inf"), "2147483647")],
    )
    def test_odd_reset_values(self, reset_after: float, want: str) -> None:
        """Turns odd reset values into a header number anyway."""
        headers = dict(
            rate_limit_headers(Verdict(allowed=True, reset_after=reset_after))
        )

        assert want == headers["RateLimit-Reset"]


# ------------------------------------------------------------------ ASGI


class TestASGI:
    def test_admits_then_refuses_with_headers(self, clock: FakeClock) -> None:
        """Admits the burst with exact headers, then answers 429 itself."""
        app = AsgiApp()
        limited = ASGIRateLimitMiddleware(
            app, limiter=TokenBucket(rate=1.0, burst=2, clock=clock)
        )

        first = call_asgi(limited, http_scope())
        second = call_asgi(limited, http_scope())
        third = call_asgi(limited, http_scope())

        assert (200, b"hello") == (first.status, first.body)
        assert "2" == first.headers["ratelimit-limit"]
        assert "1" == first.headers["ratelimit-remaining"]
        assert "1" == first.headers["ratelimit-reset"]
        assert "text/plain" == first.headers["content-type"]
        assert "retry-after" not in first.headers
        assert "0" == second.headers["ratelimit-remaining"]
        assert 429 == third.status
        assert b"Too many requests\n" == third.body
        assert "1" == third.headers["retry-after"]
        assert "0" == third.headers["ratelimit-remaining"]
        assert "2" == third.headers["ratelimit-limit"]
        assert ["http", "http"] == app.calls

    def test_admits_again_after_refill(self, clock: FakeClock) -> None:
        """Admits again once the clock has moved past Retry-After."""
        limited = ASGIRateLimitMiddleware(
            AsgiApp(), limiter=TokenBucket(rate=0.5, burst=1, clock=clock)
        )
        call_asgi(limited, http_scope())
        refused = call_asgi(limited, http_scope())
        clock.advance(float(refused.headers["retry-after"]))

        again = call_asgi(limited, http_scope())

        assert (429, "2") == (refused.status, refused.headers["retry-after"])
        assert 200 == again.status

    def test_key_header_separates_users(self, clock: FakeClock) -> None:
        """Counts each value of the key header separately."""
        limited = ASGIRateLimitMiddleware(
            AsgiApp(),
            limiter=FixedWindow(limit=1, window=5.0, clock=clock),
            key_header="X-User",
        )

        statuses = [
            call_asgi(limited, http_scope(headers=[("X-User", user)])).status
            for user in ("ada", "bob", "ada")
        ]

        assert [200, 200, 429] == statuses

    def test_missing_key_header_falls_back_to_address(
        self, clock: FakeClock
    ) -> None:
        """Counts a request without the key header under its address."""
        limited = ASGIRateLimitMiddleware(
            AsgiApp(),
            limiter=FixedWindow(limit=1, window=5.0, clock=clock),
            key_header="X-User",
        )

        statuses = [
            call_asgi(limited, http_scope(client=client)).status
            for client in (("10.0.0.1", 1), ("10.0.0.2", 1), ("10.0.0.1", 2))
        ]

        assert [200, 200, 429] == statuses

    def test_unknown_client_shares_one_key(self, clock: FakeClock) -> None:
        """Counts requests without a known address under one shared key."""
        limited = ASGIRateLimitMiddleware(
            AsgiApp(), limiter=FixedWindow(limit=1, window=5.0, clock=clock)
        )

        statuses = [
            call_asgi(limited, http_scope(client=None)).status
            for _ in range(2)
        ]

        assert [200, 429] == statuses

    def test_key_function_sees_request(self, clock: FakeClock) -> None:
        """Passes a RequestInfo to the key function; None lets it through."""
        seen: list[RequestInfo] = []

        def key(info: RequestInfo) -> str | None:
            seen.append(info)
            return None if info.path == "/free" else info.headers["x-team"]

        limited = ASGIRateLimitMiddleware(
            AsgiApp(),
            limiter=FixedWindow(limit=1, window=5.0, clock=clock),
            key=key,
        )
        scope = http_scope("/api", headers=[("X-Team", "a"), ("X-Team", "b")])

        results = [
            call_asgi(limited, scope),
            call_asgi(limited, scope),
            call_asgi(limited, http_scope("/free")),
        ]

        assert [200, 429, 200] == [r.status for r in results]
        assert "ratelimit-limit" not in results[2].headers
        info = seen[0]
        assert ("GET", "/api", "10.0.0.1") == (
            info.method,
            info.path,
            info.client,
        )
        assert "a, b" == info.headers["x-team"]
        assert scope is info.raw

    def test_cost_function(self, clock: FakeClock) -> None:
        """Charges what the cost function says; 0 is not counted at all."""
        limited = ASGIRateLimitMiddleware(
            AsgiApp(),
            limiter=FixedWindow(limit=3, window=5.0, clock=clock),
            cost=lambda info: {"/big": 2, "/free": 0}.get(info.path, 1),
        )

        results = [
            call_asgi(limited, http_scope(path))
            for path in ("/big", "/free", "/small", "/small")
        ]

        assert [200, 200, 200, 429] == [r.status for r in results]
        assert "1" == results[0].headers["ratelimit-remaining"]
        assert "ratelimit-limit" not in results[1].headers

    def test_cost_with_key_header(self, clock: FakeClock) -> None:
        """Uses the key header even when a cost function builds the info."""
        limited = ASGIRateLimitMiddleware(
            AsgiApp(),
            limiter=FixedWindow(limit=2, window=5.0, clock=clock),
            key_header="X-User",
            cost=lambda info: 2,
        )

        statuses = [
            call_asgi(limited, http_scope(headers=[("X-User", user)])).status
            for user in ("ada", "bob", "ada")
        ]

        assert [200, 200, 429] == statuses

    def test_exempt_paths(self, clock: FakeClock) -> None:
        """Never counts exempt paths: exact entries and '*' prefixes."""
        limited = ASGIRateLimitMiddleware(
            AsgiApp(),
            limiter=FixedWindow(limit=1, window=5.0, clock=clock),
            exempt_paths=["/health", "/static/*"],
        )

        results = [
            call_asgi(limited, http_scope(path))
            for path in ("/health", "/static/a.css", "/", "/healthz")
        ]

        assert [200, 200, 200, 429] == [r.status for r in results]
        assert "ratelimit-limit" not in results[0].headers

    def test_headers_off(self, clock: FakeClock) -> None:
        """Leaves admitted responses alone with headers=False, not refusals."""
        limited = ASGIRateLimitMiddleware(
            AsgiApp(),
            limiter=FixedWindow(limit=1, window=5.0, clock=clock),
            headers=False,
        )

        admitted = call_asgi(limited, http_scope())
        refused = call_asgi(limited, http_scope())

        assert {"content-type": "text/plain"} == admitted.headers
        assert "5" == refused.headers["retry-after"]

    def test_lifespan_passes_through(self, clock: FakeClock) -> None:
        """Hands lifespan scopes to the app without counting them."""
        app = AsgiApp()
        limited = ASGIRateLimitMiddleware(
            app, limiter=FixedWindow(limit=1, window=5.0, clock=clock)
        )
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "lifespan.startup"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        for _ in range(3):
            asyncio.run(limited({"type": "lifespan"}, receive, send))

        assert [{"type": "lifespan.startup.complete"}] * 3 == sent
        assert ["lifespan"] * 3 == app.calls

    def test_websocket_passes_through_by_default(
        self, clock: FakeClock
    ) -> None:
        """Does not count websocket connections unless told to."""
        limited = ASGIRateLimitMiddleware(
            AsgiApp(), limiter=FixedWindow(limit=1, window=5.0, clock=clock)
        )

        results = [
            call_asgi(limited, http_scope(kind="websocket")) for _ in range(3)
        ]

        assert [{"type": "websocket.accept"}] * 3 == [
            r.messages[0] for r in results
        ]

    def test_websocket_refused_with_close(self, clock: FakeClock) -> None:
        """Closes a refused websocket with 1008 before accepting it."""
        limited = ASGIRateLimitMiddleware(
            AsgiApp(),
            limiter=FixedWindow(limit=1, window=5.0, clock=clock),
            websocket=True,
        )

        accepted = call_asgi(limited, http_scope(kind="websocket"))
        refused = call_asgi(limited, http_scope(kind="websocket"))

        assert {"type": "websocket.accept"} == accepted.messages[0]
        assert [{"type": "websocket.close", "code": 1008}] == refused.messages

    def test_websocket_refused_with_http_response(
        self, clock: FakeClock
    ) -> None:
        """Answers 429 over the websocket.http.response extension if offered."""
        limited = ASGIRateLimitMiddleware(
            AsgiApp(),
            limiter=FixedWindow(limit=1, window=5.0, clock=clock),
            websocket=True,
        )
        scope = http_scope(
            kind="websocket", extensions={"websocket.http.response": {}}
        )

        call_asgi(limited, scope)
        refused = call_asgi(limited, scope)

        start, body = refused.messages
        assert ("websocket.http.response.start", 429) == (
            start["type"],
            start["status"],
        )
        assert (b"retry-after", b"5") in start["headers"]
        assert b"Too many requests\n" == body["body"]

    def test_keeps_app_headers(self, clock: FakeClock) -> None:
        """Appends to the app's own headers instead of replacing them."""

        async def app(scope: Any, receive: Any, send: Any) -> None:
            await send(
                {
                    "type": "http.response.start",
                    "status": 201,
                    "headers": [(b"x-app", b"1")],
                }
            )
            await send({"type": "http.response.body", "body": b""})

        limited = ASGIRateLimitMiddleware(
            app, limiter=FixedWindow(limit=3, window=5.0, clock=clock)
        )

        result = call_asgi(limited, http_scope())

        assert 201 == result.status
        assert ["x-app", "ratelimit-limit"] == list(result.headers)[:2]

    def test_scope_without_headers(self, clock: FakeClock) -> None:
        """Treats a scope without headers as a request with none."""
        limited = ASGIRateLimitMiddleware(
            AsgiApp(),
            limiter=FixedWindow(limit=1, window=5.0, clock=clock),
            key_header="X-User",
        )
        scope = http_scope()
        del scope["headers"]

        assert 200 == call_asgi(limited, scope).status
        assert 429 == call_asgi(limited, http_scope()).status

    def test_repr(self, clock: FakeClock) -> None:
        """Shows the app, the limiter and the key source."""
        limited = ASGIRateLimitMiddleware(
            AsgiApp(),
            limiter=FixedWindow(limit=3, window=5.0, clock=clock),
            key_header="X-User",
        )

        assert "key='x-user'" in repr(limited)
        assert repr(limited).startswith("ASGIRateLimitMiddleware(app=")


# ------------------------------------------------------------------ WSGI


class TestWSGI:
    def test_real_server_admits_then_refuses(self, clock: FakeClock) -> None:
        """Answers 200 with headers, then 429 with Retry-After, over HTTP."""
        calls: list[str] = []
        app = WSGIRateLimitMiddleware(
            hello_wsgi(calls),
            limiter=FixedWindow(limit=2, window=5.0, clock=clock),
            key_header="X-User",
        )

        with serve_wsgi(app) as port:
            first = get(port, headers={"X-User": "ada"})
            second = get(port, headers={"X-User": "ada"})
            third = get(port, headers={"X-User": "ada"})
            other = get(port, headers={"X-User": "bob"})

        assert (200, b"hello") == (first[0], first[2])
        assert "2" == first[1]["RateLimit-Limit"]
        assert "1" == first[1]["RateLimit-Remaining"]
        assert "5" == first[1]["RateLimit-Reset"]
        assert "text/plain" == first[1]["Content-Type"]
        assert "Retry-After" not in first[1]
        assert "0" == second[1]["RateLimit-Remaining"]
        assert 429 == third[0]
        assert b"Too many requests\n" == third[2]
        assert "5" == third[1]["Retry-After"]
        assert "0" == third[1]["RateLimit-Remaining"]
        assert 200 == other[0]
        assert ["/", "/", "/"] == calls

    def test_real_server_reason_phrase(self, clock: FakeClock) -> None:
        """Sends the status line 429 Too Many Requests."""
        app = WSGIRateLimitMiddleware(
            hello_wsgi([]),
            limiter=FixedWindow(limit=1, window=5.0, clock=clock),
        )

        with serve_wsgi(app) as port:
            get(port)
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("GET", "/")
            response = conn.getresponse()
            response.read()
            conn.close()

        assert (429, "Too Many Requests") == (
            response.status,
            response.reason,
        )

    def test_address_key_exempt_and_cost(self, clock: FakeClock) -> None:
        """Keys by REMOTE_ADDR, skips exempt paths and charges the cost."""
        calls: list[str] = []
        seen: list[RequestInfo] = []

        def cost(info: RequestInfo) -> int:
            seen.append(info)
            return 2 if info.path == "/big" else 1

        app = WSGIRateLimitMiddleware(
            hello_wsgi(calls),
            limiter=FixedWindow(limit=3, window=5.0, clock=clock),
            cost=cost,
            exempt_paths=["/health"],
        )

        with serve_wsgi(app) as port:
            statuses = [
                get(port, path, headers={"X-Trace": "t1"})[0]
                for path in ("/health", "/big", "/health", "/a", "/b")
            ]

        assert [200, 200, 200, 200, 429] == statuses
        assert ("GET", "/big", "127.0.0.1") == (
            seen[0].method,
            seen[0].path,
            seen[0].client,
        )
        assert "t1" == seen[0].headers["x-trace"]

    def test_key_function_none_and_no_headers(self, clock: FakeClock) -> None:
        """Lets None-keyed requests through; headers=False leaves 200s alone."""
        responses: list[tuple[str, list[tuple[str, str]]]] = []

        def start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Callable[[bytes], object]:
            responses.append((status, headers))
            return lambda data: None

        app = WSGIRateLimitMiddleware(
            hello_wsgi([]),
            limiter=FixedWindow(limit=1, window=5.0, clock=clock),
            key=lambda info: None if info.path == "/free" else "all",
            headers=False,
        )
        environ = {
            "REQUEST_METHOD": "POST",
            "PATH_INFO": "/x",
            "CONTENT_TYPE": "text/plain",
            "CONTENT_LENGTH": "0",
        }

        app(environ, start_response)
        app({**environ, "PATH_INFO": "/free"}, start_response)
        app(environ, start_response)

        assert ["200 OK", "200 OK", "429 Too Many Requests"] == [
            status for status, _ in responses
        ]
        assert [("Content-Type", "text/plain")] == responses[0][1]

    def test_info_has_content_headers(self, clock: FakeClock) -> None:
        """Includes Content-Type and Content-Length in the request info."""
        seen: list[RequestInfo] = []
        app = WSGIRateLimitMiddleware(
            hello_wsgi([]),
            limiter=FixedWindow(limit=1, window=5.0, clock=clock),
            key=lambda info: seen.append(info) or "k",
        )

        app(
            {
                "REQUEST_METHOD": "POST",
                "SCRIPT_NAME": "/app",
                "PATH_INFO": "/x",
                "CONTENT_TYPE": "text/plain",
                "CONTENT_LENGTH": "3",
            },
            lambda status, headers, exc_info=None: None,
        )

        assert {"content-type": "text/plain", "content-length": "3"} == dict(
            seen[0].headers
        )
        assert ("POST", "/app/x", None) == (
            seen[0].method,
            seen[0].path,
            seen[0].client,
        )

    def test_repr(self, clock: FakeClock) -> None:
        """Shows the key source."""
        app = WSGIRateLimitMiddleware(
            hello_wsgi([]),
            limiter=FixedWindow(limit=1, window=5.0, clock=clock),
        )

        assert "key='client address'" in repr(app)


# ------------------------------------------------------------ bad input


class TestBadInput:
    @pytest.mark.parametrize(
        ("options", "error", "word"),
        [
            ({"limiter": object()}, TypeError, "limiter"),
            ({"key": "x-user"}, TypeError, "key"),
            ({"key_header": 3}, TypeError, "key_header"),
            ({"key_header": ""}, ValueError, "key_header"),
            ({"key_header": "X User"}, ValueError, "key_header"),
            ({"key_header": "X-User", "key": str}, ValueError, "key_header"),
            ({"cost": 0}, ValueError, "cost"),
            ({"cost": 1.5}, TypeError, "cost"),
            ({"cost": True}, TypeError, "cost"),
            ({"exempt_paths": "/health"}, TypeError, "exempt_paths"),
            ({"exempt_paths": ["health"]}, ValueError, "exempt_paths"),
            ({"exempt_paths": [3]}, ValueError, "exempt_paths"),
        ],
    )
    @pytest.mark.parametrize(
        "middleware", [ASGIRateLimitMiddleware, WSGIRateLimitMiddleware]
    )
    def test_middleware_options(
        self,
        middleware: Any,
        options: dict[str, Any],
        error: type[Exception],
        word: str,
        clock: FakeClock,
    ) -> None:
        """Names the bad argument at construction."""
        options = {
            "limiter": TokenBucket(rate=1.0, burst=1, clock=clock),
            **options,
        }

        with pytest.raises(error, match=word):
            middleware(AsgiApp(), **options)

    @pytest.mark.parametrize(
        "middleware", [ASGIRateLimitMiddleware, WSGIRateLimitMiddleware]
    )
    def test_app_not_callable(self, middleware: Any, clock: FakeClock) -> None:
        """Refuses an app that cannot be called."""
        with pytest.raises(TypeError, match="app"):
            middleware(
                None, limiter=TokenBucket(rate=1.0, burst=1, clock=clock)
            )

    def test_key_function_returns_non_str(self, clock: FakeClock) -> None:
        """Says so when the key function returns something else than a str."""
        limited = ASGIRateLimitMiddleware(
            AsgiApp(),
            limiter=TokenBucket(rate=1.0, burst=1, clock=clock),
            key=lambda info: 42,  # type: ignore[arg-type,return-value]
        )

        with pytest.raises(TypeError, match="key function"):
            call_asgi(limited, http_scope())

    @pytest.mark.parametrize(
        ("cost", "error"),
        [(lambda info: "1", TypeError), (lambda info: -1, ValueError)],
    )
    def test_cost_function_returns_bad_value(
        self, cost: Any, error: type[Exception], clock: FakeClock
    ) -> None:
        """Says so when the cost function returns a bad value."""
        limited = ASGIRateLimitMiddleware(
            AsgiApp(),
            limiter=TokenBucket(rate=1.0, burst=1, clock=clock),
            cost=cost,
        )

        with pytest.raises(error, match="cost function"):
            call_asgi(limited, http_scope())

    @pytest.mark.parametrize(
        ("options", "error", "word"),
        [
            ({"limiter": object()}, TypeError, "limiter"),
            ({"key": 3}, TypeError, "key"),
            ({"cost": 0}, ValueError, "cost"),
            ({"cost": lambda: 1}, TypeError, "cost"),
            ({"timeout": -1.0}, ValueError, "timeout"),
            ({"timeout": float("inf")}, ValueError, "timeout"),
            ({"timeout": float("nan")}, ValueError, "timeout"),
            ({"timeout": "1"}, TypeError, "timeout"),
        ],
    )
    def test_decorator_options(
        self,
        options: dict[str, Any],
        error: type[Exception],
        word: str,
        clock: FakeClock,
    ) -> None:
        """Names the bad argument when the decorator is built."""
        options = {
            "limiter": TokenBucket(rate=1.0, burst=1, clock=clock),
            "key": "k",
            **options,
        }
        limiter = options.pop("limiter")

        with pytest.raises(error, match=word):
            rate_limited(limiter, **options)

    @pytest.mark.parametrize(
        "build",
        [
            lambda lim: ASGIRateLimitMiddleware(
                AsgiApp(), limiter=lim, cost=3
            ),
            lambda lim: WSGIRateLimitMiddleware(
                hello_wsgi([]), limiter=lim, cost=3
            ),
            lambda lim: rate_limited(lim, key="k", cost=3),
        ],
    )
    def test_cost_above_capacity(
        self, build: Callable[[Any], object], clock: FakeClock
    ) -> None:
        """Refuses at construction a fixed cost the limiter could never admit."""
        store = MemoryStore()
        limiter = MultiLimiter(
            [
                FixedWindow(limit=2, window=1.0, store=store, clock=clock),
                TokenBucket(rate=1.0, burst=5, store=store, clock=clock),
            ],
            store=store,
            clock=clock,
        )

        with pytest.raises(ValueError, match="capacity 2") as raised:
            build(limiter)
        assert "cost" in str(raised.value)

    def test_cost_at_capacity_admitted(self, clock: FakeClock) -> None:
        """Accepts a fixed cost equal to the capacity and admits it once."""
        limited = rate_limited(
            TokenBucket(rate=1.0, burst=2, clock=clock), key="k", cost=2
        )(lambda: "done")

        assert limited() == "done"
        with pytest.raises(RateLimitExceeded):
            limited()

    def test_decorator_needs_callable(self, clock: FakeClock) -> None:
        """Refuses to decorate something that is not callable."""
        decorate = rate_limited(
            TokenBucket(rate=1.0, burst=1, clock=clock), key="k"
        )

        with pytest.raises(TypeError, match="function"):
            decorate(3)  # type: ignore[arg-type]


# ------------------------------------------------------------- decorator


class TestDecorator:
    def test_sync_raises_over_limit(self, clock: FakeClock) -> None:
        """Raises RateLimitExceeded carrying retry_after and the decision."""
        bucket = TokenBucket(rate=1.0, burst=2, clock=clock)

        @rate_limited(bucket, key=lambda user, n=1: f"user:{user}")
        def fetch(user: str, n: int = 1) -> str:
            """Fetch something."""
            return user * n

        results = [fetch("a"), fetch("b", n=2), fetch("a")]
        with pytest.raises(RateLimitExceeded) as info:
            fetch("a")

        assert ["a", "bb", "a"] == results
        assert 1.0 == pytest.approx(info.value.retry_after)
        assert info.value.decision is not None
        assert info.value.decision.allowed is False
        assert "user:a" in str(info.value)
        assert ("fetch", "Fetch something.") == (fetch.__name__, fetch.__doc__)

    def test_fixed_key_and_cost(self, clock: FakeClock) -> None:
        """Counts every call under a fixed key at the given cost."""
        calls: list[int] = []

        @rate_limited(
            FixedWindow(limit=4, window=1.0, clock=clock), key="jobs", cost=2
        )
        def job(n: int) -> None:
            calls.append(n)

        job(1)
        job(2)
        with pytest.raises(RateLimitExceeded):
            job(3)
        clock.advance(1.0)
        job(4)

        assert [1, 2, 4] == calls

    def test_key_function_must_return_str(self, clock: FakeClock) -> None:
        """Raises TypeError when the key function returns a non-str."""

        @rate_limited(
            TokenBucket(rate=1.0, burst=1, clock=clock),
            key=lambda n: n,  # type: ignore[arg-type,return-value]
        )
        def job(n: int) -> int:
            return n

        with pytest.raises(TypeError, match="key function"):
            job(1)

    def test_sync_wait_admits(self, clock: FakeClock) -> None:
        """Waits for capacity (on the manual clock) and then runs the call."""
        bucket = TokenBucket(rate=1.0, burst=1, clock=clock)

        @rate_limited(bucket, key="k", wait=True, timeout=5.0)
        def job(n: int) -> int:
            return n

        assert [0, 1, 2] == [job(n) for n in range(3)]
        assert 1002.0 == pytest.approx(clock.monotonic())

    def test_sync_wait_times_out(self, clock: FakeClock) -> None:
        """Raises RateLimitExceeded when the wait would exceed the timeout."""
        bucket = TokenBucket(rate=0.1, burst=1, clock=clock)

        @rate_limited(bucket, key="k", wait=True, timeout=5.0)
        def job() -> str:
            return "ran"

        assert "ran" == job()
        with pytest.raises(RateLimitExceeded) as info:
            job()
        assert 10.0 == pytest.approx(info.value.retry_after)

    def test_async_raises_over_limit(self, clock: FakeClock) -> None:
        """Limits a coroutine function with the async methods."""
        bucket = TokenBucket(rate=1.0, burst=1, clock=clock)

        @rate_limited(bucket, key=lambda user: user)
        async def fetch(user: str) -> str:
            return user.upper()

        async def main() -> tuple[str, str, RateLimitExceeded | None]:
            first = await fetch("a")
            other = await fetch("b")
            try:
                await fetch("a")
            except RateLimitExceeded as exc:
                return first, other, exc
            return first, other, None

        first, other, error = asyncio.run(main())

        assert ("A", "B") == (first, other)
        assert error is not None
        assert 1.0 == pytest.approx(error.retry_after)

    def test_async_wait(self, clock: FakeClock) -> None:
        """Awaits capacity for a coroutine function, then times out."""
        fast = TokenBucket(rate=1.0, burst=1, clock=clock)
        slow = TokenBucket(rate=0.1, burst=1, clock=clock)

        @rate_limited(fast, key="k", wait=True, timeout=5.0)
        async def quick(n: int) -> int:
            return n

        @rate_limited(slow, key="k", wait=True, timeout=5.0)
        async def rare() -> str:
            return "ran"

        async def main() -> list[object]:
            results: list[object] = [await quick(n) for n in range(3)]
            results.append(await rare())
            try:
                await rare()
            except RateLimitExceeded as exc:
                results.append(type(exc))
            return results

        assert [0, 1, 2, "ran", RateLimitExceeded] == asyncio.run(main())
        assert 1002.0 == pytest.approx(clock.monotonic())


# ------------------------------------------------------------ concurrency


class TestConcurrencyLimiter:
    def test_asgi_holds_slot_while_in_flight(self, clock: FakeClock) -> None:
        """Refuses a second request while the first is in flight, not after."""
        nested: list[AsgiResult] = []

        async def app(scope: Any, receive: Any, send: Any) -> None:
            if scope["path"] == "/outer":
                nested.append(await run_asgi(limited, http_scope("/inner")))
            await AsgiApp()(scope, receive, send)

        limited = ASGIRateLimitMiddleware(
            app, limiter=ConcurrencyLimiter(1, lease=30.0, clock=clock)
        )

        outer = call_asgi(limited, http_scope("/outer"))
        after = call_asgi(limited, http_scope("/after"))

        assert 429 == nested[0].status
        assert "1" == nested[0].headers["ratelimit-limit"]
        assert "0" == nested[0].headers["ratelimit-remaining"]
        assert (200, 200) == (outer.status, after.status)

    def test_asgi_releases_when_app_fails(self, clock: FakeClock) -> None:
        """Gives the slot back when the app raises."""

        async def app(scope: Any, receive: Any, send: Any) -> None:
            if scope["path"] == "/boom":
                raise RuntimeError("boom")
            await AsgiApp()(scope, receive, send)

        limited = ASGIRateLimitMiddleware(
            app, limiter=ConcurrencyLimiter(1, lease=30.0, clock=clock)
        )

        with pytest.raises(RuntimeError, match="boom"):
            call_asgi(limited, http_scope("/boom"))

        assert 200 == call_asgi(limited, http_scope("/")).status

    def test_wsgi_holds_slot_until_body_closed(self, clock: FakeClock) -> None:
        """Holds the slot until the server closes the body, and closes it."""
        closed: list[bool] = []

        class Body:
            def __iter__(self) -> Iterator[bytes]:
                return iter([b"hello"])

            def close(self) -> None:
                closed.append(True)

        def app(environ: Any, start_response: Any) -> Body:
            start_response("200 OK", [])
            return Body()

        statuses: list[str] = []
        limited = WSGIRateLimitMiddleware(
            app, limiter=ConcurrencyLimiter(1, lease=30.0, clock=clock)
        )

        def start(
            status: str, headers: Any, exc_info: Any = None
        ) -> Callable[[bytes], object]:
            statuses.append(status)
            return lambda data: None

        environ = {"PATH_INFO": "/", "REMOTE_ADDR": "10.0.0.1"}
        body = limited(environ, start)
        limited(environ, start)
        assert [b"hello"] == list(body)
        body.close()  # type: ignore[attr-defined]
        limited(environ, start)

        assert ["200 OK", "429 Too Many Requests", "200 OK"] == statuses
        assert [True] == closed

    def test_wsgi_real_server_releases(self, clock: FakeClock) -> None:
        """Frees the slot after each response served by wsgiref."""
        app = WSGIRateLimitMiddleware(
            hello_wsgi([]),
            limiter=ConcurrencyLimiter(1, lease=30.0, clock=clock),
        )

        with serve_wsgi(app) as port:
            results = [get(port) for _ in range(3)]

        assert [200, 200, 200] == [status for status, _, _ in results]
        assert "1" == results[0][1]["RateLimit-Limit"]

    def test_wsgi_releases_when_app_fails(self, clock: FakeClock) -> None:
        """Gives the slot back when the app raises."""

        def app(environ: Any, start_response: Any) -> Iterable[bytes]:
            raise RuntimeError("boom")

        limiter = ConcurrencyLimiter(1, lease=30.0, clock=clock)
        limited = WSGIRateLimitMiddleware(app, limiter=limiter, headers=False)
        environ = {"PATH_INFO": "/", "REMOTE_ADDR": "10.0.0.1"}

        with pytest.raises(RuntimeError, match="boom"):
            limited(environ, lambda status, headers, exc_info=None: None)

        assert limiter.acquire("client:10.0.0.1").allowed

    def test_decorator_sync(self, clock: FakeClock) -> None:
        """Holds the slot during the call; a nested call is refused."""
        limiter = ConcurrencyLimiter(1, lease=30.0, clock=clock)
        seen: list[str] = []

        @rate_limited(limiter, key="job")
        def job(nested: bool) -> str:
            if nested:
                try:
                    job(nested=False)
                except RateLimitExceeded:
                    seen.append("refused")
            return "done"

        @rate_limited(limiter, key="job", wait=True, timeout=1.0)
        def patient() -> str:
            return "waited"

        assert "done" == job(nested=True)
        assert ["refused"] == seen
        assert "waited" == patient()
        assert limiter.acquire("job").allowed

    def test_decorator_sync_wait_times_out(self, clock: FakeClock) -> None:
        """Waits on the manual clock for a slot, then gives up."""
        limiter = ConcurrencyLimiter(1, lease=30.0, clock=clock)

        @rate_limited(limiter, key="job", wait=True, timeout=1.0)
        def job() -> str:
            return "ran"

        with limiter.acquire("job"), pytest.raises(RateLimitExceeded):
            job()

        assert "ran" == job()

    def test_decorator_async(self, clock: FakeClock) -> None:
        """Holds the slot across the await; waits and refuses as asked."""
        limiter = ConcurrencyLimiter(1, lease=30.0, clock=clock)

        @rate_limited(limiter, key="job")
        async def job() -> str:
            try:
                await job()
            except RateLimitExceeded:
                return "inner refused"
            return "inner ran"

        @rate_limited(limiter, key="job", wait=True, timeout=1.0)
        async def patient() -> str:
            return "waited"

        async def main() -> list[str]:
            results = [await job(), await patient()]
            async with await limiter.acquire_async("job"):
                try:
                    await patient()
                except RateLimitExceeded:
                    results.append("timed out")
            return results

        assert ["inner refused", "waited", "timed out"] == asyncio.run(
            asyncio.wait_for(main(), timeout=10)
        )

    @pytest.mark.parametrize(
        "build",
        [
            lambda lim: ASGIRateLimitMiddleware(
                AsgiApp(), limiter=lim, cost=2
            ),
            lambda lim: WSGIRateLimitMiddleware(
                hello_wsgi([]), limiter=lim, cost=lambda info: 1
            ),
            lambda lim: rate_limited(lim, key="k", cost=3),
        ],
    )
    def test_cost_must_be_one(
        self, build: Callable[[Any], object], clock: FakeClock
    ) -> None:
        """Refuses a cost other than 1 with a concurrency limiter."""
        with pytest.raises(ValueError, match="cost must be 1"):
            build(ConcurrencyLimiter(1, lease=30.0, clock=clock))


# ----------------------------------------------------------------- Redis


@pytest.mark.redis
class TestRedisBacked:
    def test_wsgi_on_redis(self, redis_proc: RedisServer, prefix: str) -> None:
        """Shares one limit between two WSGI apps through Redis."""
        from dprims.ratelimit import RedisStore

        client = redis_proc.client()
        try:
            apps = [
                WSGIRateLimitMiddleware(
                    hello_wsgi([]),
                    limiter=FixedWindow(
                        limit=2,
                        window=30.0,
                        store=RedisStore(client, prefix=prefix),
                    ),
                    key_header="X-User",
                )
                for _ in range(2)
            ]
            with serve_wsgi(apps[0]) as one, serve_wsgi(apps[1]) as two:
                results = [
                    get(port, headers={"X-User": "ada"})
                    for port in (one, two, one)
                ]
        finally:
            client.close()

        assert [200, 200, 429] == [status for status, _, _ in results]
        assert 1 <= int(results[2][1]["Retry-After"]) <= 30

    def test_asgi_on_async_redis(
        self, redis_proc: RedisServer, prefix: str
    ) -> None:
        """Uses the async limiter methods with an asyncio Redis client."""
        from dprims.ratelimit import RedisStore

        async def main() -> list[int]:
            client = redis_proc.async_client()
            try:
                limited = ASGIRateLimitMiddleware(
                    AsgiApp(),
                    limiter=FixedWindow(
                        limit=2,
                        window=30.0,
                        store=RedisStore(client, prefix=prefix),
                    ),
                )
                statuses = []
                for _ in range(3):
                    sent: list[dict[str, Any]] = []

                    async def receive() -> dict[str, Any]:
                        return {"type": "http.request", "body": b""}

                    async def send(
                        message: dict[str, Any], sent: list[Any] = sent
                    ) -> None:
                        sent.append(message)

                    await limited(http_scope(), receive, send)
                    statuses.append(sent[0]["status"])
                return statuses
            finally:
                await client.aclose()

        assert [200, 200, 429] == asyncio.run(
            asyncio.wait_for(main(), timeout=15)
        )

    def test_asgi_on_blocking_redis(
        self, redis_client: Any, prefix: str
    ) -> None:
        """Decides off the event loop with a blocking Redis client."""
        from dprims.ratelimit import RedisStore

        limited = ASGIRateLimitMiddleware(
            AsgiApp(),
            limiter=FixedWindow(
                limit=1,
                window=30.0,
                store=RedisStore(redis_client, prefix=prefix),
            ),
        )

        statuses = [call_asgi(limited, http_scope()).status for _ in range(2)]

        assert [200, 429] == statuses

    def test_async_store_refused_where_blocking(
        self, redis_proc: RedisServer, prefix: str
    ) -> None:
        """Refuses an asyncio store for WSGI and for plain functions."""
        from dprims.ratelimit import RedisStore

        limiter = FixedWindow(
            limit=1,
            window=30.0,
            store=RedisStore(redis_proc.async_client(), prefix=prefix),
        )

        with pytest.raises(TypeError, match="asyncio"):
            WSGIRateLimitMiddleware(hello_wsgi([]), limiter=limiter)
        with pytest.raises(TypeError, match="asyncio"):
            rate_limited(limiter, key="k")(len)

    def test_async_function_on_blocking_redis(
        self, redis_client: Any, prefix: str
    ) -> None:
        """Limits a coroutine function with a blocking Redis store."""
        from dprims.ratelimit import RedisStore

        store = RedisStore(redis_client, prefix=prefix)
        once = FixedWindow(limit=1, window=30.0, store=store)
        fast = TokenBucket(rate=1000.0, burst=1, store=store)

        @rate_limited(once, key="a")
        async def limited() -> str:
            return "ran"

        @rate_limited(fast, key="b", wait=True, timeout=5.0)
        async def waiting(n: int) -> int:
            return n

        async def main() -> list[object]:
            results: list[object] = [await limited()]
            try:
                await limited()
            except RateLimitExceeded as exc:
                results.append(type(exc))
            results.extend([await waiting(n) for n in range(3)])
            return results

        assert ["ran", RateLimitExceeded, 0, 1, 2] == asyncio.run(
            asyncio.wait_for(main(), timeout=15)
        )

    def test_concurrency_on_blocking_redis(
        self, redis_client: Any, prefix: str
    ) -> None:
        """Holds and frees Redis concurrency slots from ASGI and async code."""
        from dprims.ratelimit import RedisStore

        limiter = ConcurrencyLimiter(
            1, lease=30.0, store=RedisStore(redis_client, prefix=prefix)
        )
        nested: list[AsgiResult] = []

        async def app(scope: Any, receive: Any, send: Any) -> None:
            if scope["path"] == "/outer":
                nested.append(await run_asgi(limited, http_scope("/inner")))
            await AsgiApp()(scope, receive, send)

        limited = ASGIRateLimitMiddleware(app, limiter=limiter)

        @rate_limited(limiter, key="job", wait=True, timeout=5.0)
        async def job() -> str:
            return "ran"

        outer = call_asgi(limited, http_scope("/outer"))
        after = call_asgi(limited, http_scope("/after"))
        ran = asyncio.run(asyncio.wait_for(job(), timeout=10))

        assert (429, 200, 200) == (
            nested[0].status,
            outer.status,
            after.status,
        )
        assert "ran" == ran
        assert limiter.acquire("job").allowed

    def test_concurrency_on_async_redis(
        self, redis_proc: RedisServer, prefix: str
    ) -> None:
        """Holds and frees slots with an asyncio Redis client."""
        from dprims.ratelimit import RedisStore

        async def main() -> tuple[int, int, int]:
            client = redis_proc.async_client()
            try:
                limiter = ConcurrencyLimiter(
                    1, lease=30.0, store=RedisStore(client, prefix=prefix)
                )
                nested: list[AsgiResult] = []

                async def app(scope: Any, receive: Any, send: Any) -> None:
                    if scope["path"] == "/outer":
                        nested.append(
                            await run_asgi(limited, http_scope("/inner"))
                        )
                    await AsgiApp()(scope, receive, send)

                limited = ASGIRateLimitMiddleware(app, limiter=limiter)
                outer = await run_asgi(limited, http_scope("/outer"))
                after = await run_asgi(limited, http_scope("/after"))
                return nested[0].status, outer.status, after.status
            finally:
                await client.aclose()

        assert (429, 200, 200) == asyncio.run(
            asyncio.wait_for(main(), timeout=15)
        )
