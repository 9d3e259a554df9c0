"""Scenario 4: rate limiting a public API in front of a slow database.

A small HTTP server (standard library only) serves a page read from a slow
"database" (about one second per read). Each user, named by the ``X-User``
request header, gets one request every five seconds; beyond that the server
answers ``429 Too many requests`` with ``Retry-After`` without touching the
database. A client that keeps hammering (5 refusals within 30 s) is banned
for two minutes.

With ``--redis-url`` every server process shares the limits through Redis,
so start as many as you like behind a load balancer (should Redis become
unreachable, each process goes on limiting on its own); without it the
limits live in this process.

Run two processes sharing one Redis::

    python examples/ratelimit_api.py --port 8001 --redis-url redis://127.0.0.1:6379/0
    python examples/ratelimit_api.py --port 8002 --redis-url redis://127.0.0.1:6379/0
    curl -i -H 'X-User: ada' http://127.0.0.1:8001/   # 200 after ~1 s
    curl -i -H 'X-User: ada' http://127.0.0.1:8002/   # 429, Retry-After: 4
"""

from __future__ import annotations

import argparse
import json
import socketserver
import sys
import time
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from dprims.ratelimit import MemoryStore, Penalty, TokenBucket
from dprims.ratelimit.middleware import WSGIRateLimitMiddleware


if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence


class ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    """A WSGI server with a thread per request: slow reads overlap."""

    daemon_threads = True


class QuietHandler(WSGIRequestHandler):
    """Logs one short line per request instead of wsgiref's default."""

    def log_message(self, format: str, *args: Any) -> None:
        sys.stderr.write(f"{self.address_string()} {format % args}\n")


def slow_database(delay: float) -> Callable[[str], dict[str, Any]]:
    """Return a reader that takes *delay* seconds per read, as a busy DB."""

    def read(user: str) -> dict[str, Any]:
        time.sleep(delay)
        return {"user": user, "orders": [17, 42], "read_seconds": delay}

    return read


def page(
    read: Callable[[str], dict[str, Any]],
) -> Callable[..., Iterable[bytes]]:
    """Return the WSGI app that serves the slow page."""

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        user = environ.get("HTTP_X_USER", "anonymous")
        body = json.dumps(read(user)).encode() + b"\n"
        start_response(
            "200 OK",
            [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(body))),
            ],
        )
        return [body]

    return app


def build_store(redis_url: str | None, prefix: str) -> Any:
    """Return a Redis store for *redis_url*, or an in-process one."""
    if not redis_url:
        return MemoryStore()
    # Only a Redis-backed run needs the redis extra.
    import redis  # noqa: PLC0415

    from dprims.ratelimit import RedisStore  # noqa: PLC0415

    client = redis.Redis.from_url(
        redis_url, socket_timeout=2.0, socket_connect_timeout=2.0
    )
    # If Redis becomes unreachable each process keeps limiting on its own
    # (a per-process limiter) instead of failing every request.
    return RedisStore(client, prefix=prefix, on_error="local")


def build_app(args: argparse.Namespace) -> WSGIRateLimitMiddleware:
    """Return the slow page behind the rate limiter, as *args* configure."""
    limiter = TokenBucket(
        rate=1.0 / args.interval,
        burst=1,
        store=build_store(args.redis_url, args.prefix),
        penalty=Penalty(
            threshold=args.ban_after, window=args.ban_window, ban=args.ban
        ),
    )
    return WSGIRateLimitMiddleware(
        page(slow_database(args.db_delay)),
        limiter=limiter,
        key_header="X-User",
        exempt_paths=["/health"],
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--redis-url", help="share limits through this Redis (redis://...)"
    )
    parser.add_argument("--prefix", default="example-api")
    parser.add_argument(
        "--db-delay",
        type=float,
        default=1.0,
        help="seconds per database read (default 1)",
    )
    parser.add_argument(
        "--interval",
        type=float,
        default=5.0,
        help="seconds between two requests of one user (default 5)",
    )
    parser.add_argument(
        "--ban-after",
        type=int,
        default=5,
        help="refusals that get a user banned (default 5)",
    )
    parser.add_argument(
        "--ban-window",
        type=float,
        default=30.0,
        help="seconds within which those refusals count (default 30)",
    )
    parser.add_argument(
        "--ban", type=float, default=120.0, help="ban length (default 120 s)"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    app = build_app(args)
    server = make_server(
        args.host,
        args.port,
        app,
        server_class=ThreadingWSGIServer,
        handler_class=QuietHandler,
    )
    host, port = server.server_address[:2]
    where = f"Redis at {args.redis_url}" if args.redis_url else "this process"
    print(
        f"listening on http://{host}:{port}/ (limits shared via {where})",
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
