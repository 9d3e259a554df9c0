"""Scenarios 1 and 3: a health-checked asyncio reverse proxy with routing.

Two backends answer "Hello from port N". The proxy in front of them:

- sends three requests to the first backend for every one to the second
  (smooth weighted round robin, weights 3:1);
- adds an ``X-Forwarded-By: dprims-proxy`` header to each forwarded request;
- checks ``GET /health`` on every backend every second and sends nothing to a
  backend that fails its checks until it recovers; a request that hits a
  backend that just died is retried once on another one;
- routes by path: ``/orders/`` to the orders pool (the first backend),
  ``/payments/`` to the payments pool (the second), everything else to the
  weighted pool.

Run it and try it from another terminal:

    python examples/reverse_proxy.py
    for i in 1 2 3 4 5 6 7 8; do curl -s localhost:8080/; echo; done
    curl -s localhost:8080/payments/42; echo

Only the standard library and dprims are used (asyncio streams, a tiny
HTTP/1.1 subset with ``Connection: close``).
"""

from __future__ import annotations

import asyncio
import contextlib

from dprims.balancing import (
    HealthChecker,
    OutlierDetection,
    PathRouter,
    RoundRobin,
    WeightedRoundRobin,
    http_check,
)
from dprims.errors import NoEndpointAvailable


HOST = "127.0.0.1"
TIMEOUT = 2.0


async def read_head(reader: asyncio.StreamReader) -> tuple[str, dict, bytes]:
    """Read one request's line, headers and body (Content-Length only)."""
    head = await reader.readuntil(b"\r\n\r\n")
    line, *fields = head.decode("latin-1").split("\r\n")
    headers = {}
    for field in fields:
        if ":" in field:
            name, value = field.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", 0)))
    return line, headers, body


def response(status: str, body: str) -> bytes:
    data = body.encode()
    return (
        f"HTTP/1.1 {status}\r\nContent-Type: text/plain\r\n"
        f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n"
    ).encode() + data


# ------------------------------------------------------------------ backends


async def start_backend(port: int = 0) -> asyncio.Server:
    """Start a backend that says hello and reports the proxy's header."""

    async def handle(reader, writer):
        with contextlib.suppress(Exception):
            line, headers, _ = await read_head(reader)
            own_port = writer.get_extra_info("sockname")[1]
            if line.split()[1] == "/health":
                writer.write(response("200 OK", "ok"))
            else:
                via = headers.get("x-forwarded-by", "nobody")
                writer.write(
                    response("200 OK", f"Hello from port {own_port} via {via}")
                )
            await writer.drain()
        writer.close()

    return await asyncio.start_server(handle, HOST, port)


# ------------------------------------------------------------------ proxy


class Proxy:
    """Forward requests to the endpoint the router picks for their path."""

    def __init__(self, router: PathRouter[str], attempts: int = 2) -> None:
        self.router = router
        self.attempts = attempts

    async def forward(self, endpoint: str, request: bytes) -> bytes:
        host, port = endpoint.rsplit(":", 1)
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, int(port)), TIMEOUT
        )
        try:
            writer.write(request)
            await writer.drain()
            return await asyncio.wait_for(reader.read(), TIMEOUT)
        finally:
            writer.close()

    async def handle(self, reader, writer):
        try:
            line, headers, body = await read_head(reader)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            writer.close()
            return
        method, path, _ = line.split(" ", 2)
        headers["x-forwarded-by"] = "dprims-proxy"
        headers["connection"] = "close"
        headers["content-length"] = str(len(body))
        request = (
            f"{method} {path} HTTP/1.1\r\n"
            + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            + "\r\n"
        ).encode("latin-1") + body
        reply = response("502 Bad Gateway", "no backend answered")
        for _ in range(self.attempts):
            try:
                # The lease records latency and outcome: a refused
                # connection (an exception) or a 5xx answer counts as a
                # failure and feeds outlier ejection.
                lease = self.router.lease(path)
                async with lease as endpoint:
                    reply = await self.forward(endpoint, request)
                    if reply[9:10] == b"5":  # "HTTP/1.1 5xx"
                        lease.mark_failure()
                break
            except NoEndpointAvailable:
                reply = response("503 Service Unavailable", "no backend")
                break
            except (OSError, asyncio.TimeoutError):
                continue
        writer.write(reply)
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        writer.close()


class Deployment:
    """Two backends, the pools, their health checkers and the proxy."""

    def __init__(self) -> None:
        self.backends: list[asyncio.Server] = []
        self.ports: list[int] = []
        self.proxy_server: asyncio.Server | None = None
        self.tasks: list[asyncio.Task[None]] = []
        self.pools: list[WeightedRoundRobin[str] | RoundRobin[str]] = []

    @property
    def proxy_port(self) -> int:
        assert self.proxy_server is not None
        return self.proxy_server.sockets[0].getsockname()[1]

    async def start(
        self,
        backend_ports: tuple[int, int] = (0, 0),
        proxy_port: int = 0,
        *,
        interval: float = 1.0,
    ) -> None:
        for port in backend_ports:
            server = await start_backend(port)
            self.backends.append(server)
            self.ports.append(server.sockets[0].getsockname()[1])
        first, second = (f"{HOST}:{port}" for port in self.ports)
        ejection = OutlierDetection(
            consecutive_failures=2, base_ejection_time=10.0
        )
        weighted = WeightedRoundRobin(
            {first: 3, second: 1},
            outlier_detection=ejection,
            panic_threshold=0.0,
        )
        # Panic mode off: a pool whose only backend is down answers 503
        # at once instead of trying the dead backend anyway.
        orders = RoundRobin([first], panic_threshold=0.0)
        payments = RoundRobin([second], panic_threshold=0.0)
        self.pools = [weighted, orders, payments]
        router = PathRouter(
            {"/orders/": orders, "/payments/": payments}, default=weighted
        )
        for pool in self.pools:
            checker = HealthChecker(
                pool,
                http_check("/health", timeout=0.5),
                interval=interval,
                timeout=1.0,
                unhealthy_threshold=2,
                healthy_threshold=2,
            )
            self.tasks.append(asyncio.create_task(checker.run_forever()))
        proxy = Proxy(router)
        self.proxy_server = await asyncio.start_server(
            proxy.handle, HOST, proxy_port
        )

    async def stop_backend(self, index: int) -> None:
        server = self.backends[index]
        server.close()
        await server.wait_closed()

    async def restart_backend(self, index: int) -> None:
        self.backends[index] = await start_backend(self.ports[index])

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        servers = [*self.backends]
        if self.proxy_server is not None:
            servers.append(self.proxy_server)
        for server in servers:
            server.close()
        for server in servers:
            await server.wait_closed()


async def get(port: int, path: str) -> str:
    """Send ``GET path`` to 127.0.0.1:*port* and return the body."""
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(HOST, port), TIMEOUT
    )
    writer.write(f"GET {path} HTTP/1.1\r\nHost: proxy\r\n\r\n".encode())
    await writer.drain()
    raw = await asyncio.wait_for(reader.read(), TIMEOUT * 3)
    writer.close()
    return raw.split(b"\r\n\r\n", 1)[-1].decode()


async def main() -> None:
    deployment = Deployment()
    await deployment.start((8001, 8002), 8080)
    print(f"proxy on http://{HOST}:8080, backends on {deployment.ports}")
    for _ in range(8):
        print(await get(deployment.proxy_port, "/"))
    print(await get(deployment.proxy_port, "/payments/42"))
    print("serving; press Ctrl-C to stop")
    try:
        await asyncio.Event().wait()
    finally:
        await deployment.close()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
