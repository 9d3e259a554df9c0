"""A real HTTP test: two stdlib backends, one stopped and restarted."""

from __future__ import annotations

import http.server
import threading
import time

import pytest

from dprims.balancing import HealthChecker, WeightedRoundRobin, http_check


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        status = 200 if self.path in {"/health", "/"} else 404
        body = f"Hello from port {self.server.server_address[1]}".encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):
        """Keep test output quiet."""


class Backend:
    """A ThreadingHTTPServer that can be stopped and restarted on its port."""

    def __init__(self, port=0):
        self.port = port
        self.server = None
        self.thread = None
        self.start()

    def start(self):
        self.server = http.server.ThreadingHTTPServer(
            ("127.0.0.1", self.port), Handler
        )
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}
        )
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"


@pytest.fixture
def backends():
    started = [Backend(), Backend()]
    yield started
    for backend in started:
        if backend.server is not None:
            backend.stop()
            backend.server = None


def wait_for(predicate, what, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


class TestHttpHealth:
    def test_stop_and_restart_a_backend(self, backends):
        """Drops a stopped backend and takes it back once it is restarted."""
        first, second = backends
        lb = WeightedRoundRobin(
            {first.address: 3, second.address: 1}, panic_threshold=0.0
        )
        checker = HealthChecker(
            lb,
            http_check("/health", timeout=0.5),
            interval=0.05,
            timeout=1.0,
            unhealthy_threshold=2,
            healthy_threshold=2,
        )
        with checker:
            assert [first.address] * 3 + [second.address] == sorted(
                (lb.pick() for _ in range(4)),
                key=lambda a: a != first.address,
            )
            second.stop()
            wait_for(
                lambda: {first.address} == {lb.pick() for _ in range(8)},
                "the stopped backend to be dropped",
            )
            second.start()
            wait_for(
                lambda: second.address in {lb.pick() for _ in range(8)},
                "the restarted backend to come back",
            )

    def test_check_once_results(self, backends):
        """Passes a live backend and fails a stopped one, without a thread."""
        first, second = backends
        second.stop()
        second.server = None
        lb = WeightedRoundRobin([first.address, second.address])
        checker = HealthChecker(lb, http_check(timeout=0.5), timeout=1.0)
        try:
            assert {first.address: True, second.address: False} == (
                checker.check_once()
            )
        finally:
            checker.stop_thread()

    def test_status_codes(self, backends):
        """Fails a backend that answers with a status outside the set."""
        first, _ = backends
        assert http_check("/health")(first.address)
        assert not http_check("/missing")(first.address)
        assert http_check("/missing", statuses={404})(first.address)
        assert http_check("/", address=lambda e: e[1], headers={"Host": "x"})(
            ("name", first.address)
        )

    def test_https_refused(self, backends):
        """Fails an HTTPS check against a plain HTTP backend."""
        first, _ = backends
        assert not http_check("/health", https=True, timeout=0.5)(
            first.address
        )

    @pytest.mark.parametrize(
        ("args", "kwargs", "match"),
        [
            (("health",), {}, "path"),
            ((), {"timeout": 0}, "timeout"),
        ],
    )
    def test_rejects_bad_options(self, args, kwargs, match):
        """Rejects a relative path and a non-positive timeout."""
        with pytest.raises(ValueError, match=match):
            http_check(*args, **kwargs)
