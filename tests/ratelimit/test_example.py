"""Smoke test of examples/ratelimit_api.py: two real server processes."""

from __future__ import annotations

import contextlib
import http.client
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from dprims.testing import free_port


if TYPE_CHECKING:
    from collections.abc import Iterator

    from dprims.testing import RedisServer


EXAMPLE = Path(__file__).parents[2] / "examples" / "ratelimit_api.py"
START_TIMEOUT = 20.0


def get(
    port: int, user: str, path: str = "/"
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers={"X-User": user})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def wait_until_serving(process: subprocess.Popen[str], port: int) -> None:
    """Poll the health page until it answers; fail with the server's log."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            if get(port, "probe", "/health")[0] == 200:
                return
        except OSError:
            time.sleep(0.05)
    process.kill()
    _, log = process.communicate(timeout=10)
    pytest.fail(f"the example did not start on port {port}:\n{log}")


@contextlib.contextmanager
def example_server(*args: str) -> Iterator[int]:
    """Run the example on a free port with *args*; yield the port."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(EXAMPLE), "--port", str(port), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until_serving(process, port)
        yield port
    finally:
        process.terminate()
        try:
            process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate(timeout=10)


FAST = (
    "--db-delay", "0.01",
    "--interval", "30",
    "--ban-after", "3",
    "--ban-window", "60",
    "--ban", "600",
)  # fmt: skip


@pytest.mark.redis
def test_limit_and_ban_hold_across_processes(
    own_redis: RedisServer, prefix: str
) -> None:
    """Holds one user's limit, and then a ban, across two server processes."""
    shared = ("--redis-url", own_redis.url, "--prefix", prefix, *FAST)
    with example_server(*shared) as one, example_server(*shared) as two:
        first = get(one, "ada")
        second = get(two, "ada")
        other_user = get(two, "bob")
        # ada keeps hammering both processes: three refusals earn a ban.
        hammering = [get(port, "ada")[0] for port in (one, two, one)]
        banned = get(two, "ada")

    assert 200 == first[0]
    assert b'"user": "ada"' in first[2]
    assert "1" == first[1]["RateLimit-Limit"]
    assert 429 == second[0]
    assert b"Too many requests\n" == second[2]
    assert 1 <= int(second[1]["Retry-After"]) <= 30
    assert 200 == other_user[0]
    assert [429, 429, 429] == hammering
    # The ban (600 s) outlasts the limit's own wait (at most 30 s).
    assert 30 < int(banned[1]["Retry-After"]) <= 600


def test_in_process_without_redis() -> None:
    """Limits users in one process when no Redis URL is given."""
    with example_server(*FAST) as port:
        statuses = [get(port, user)[0] for user in ("ada", "ada", "bob")]

    assert [200, 429, 200] == statuses


def test_tour_shows_burst_then_refusal() -> None:
    """Prints a burst admitted, the refusal's retry_after, then a refill."""
    from dprims.ratelimit._demo import tour

    lines: list[str] = []
    tour(lines.append)

    assert "7 requests at once: 5 admitted, 2 refused" in lines[1]
    assert "retry_after=0.5s" in lines[2]
    assert lines[3].endswith("allowed=True")
    assert lines[4].endswith("allowed=True")
