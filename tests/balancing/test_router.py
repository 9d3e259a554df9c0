"""Tests for PathRouter: prefixes, patterns, default, runtime routes."""

from __future__ import annotations

import re

import pytest

from dprims.balancing import (
    LeastConnections,
    PathRouter,
    RoundRobin,
    WeightedRoundRobin,
)
from dprims.errors import NoEndpointAvailable


@pytest.fixture
def router():
    return PathRouter(
        {
            "/orders/": RoundRobin(["o1", "o2"]),
            "/orders/archive/": RoundRobin(["archive"]),
            re.compile(r"/payments/\d+$"): LeastConnections(["p1"]),
            "/payments/": WeightedRoundRobin({"pay": 1}),
        },
        default=RoundRobin(["web"]),
    )


class TestPathRouter:
    @pytest.mark.parametrize(
        ("path", "expected"),
        [
            ("/orders/1", {"o1", "o2"}),
            ("/orders/archive/7", {"archive"}),
            ("/payments/42", {"p1"}),
            ("/payments/new", {"pay"}),
            ("/", {"web"}),
            ("/ordersX", {"web"}),
        ],
    )
    def test_routes(self, router, path, expected):
        """Sends a path to its pattern, else its longest prefix, else default."""
        assert expected == {router.pick(path) for _ in range(4)}

    @pytest.mark.parametrize(
        ("path", "expected"),
        [
            ("/payments/42?retry=1", {"p1"}),
            ("/payments/42#top", {"p1"}),
            ("/orders/archive/?page=2", {"archive"}),
            ("/?orders/archive/", {"web"}),
        ],
    )
    def test_routes_ignore_the_query_string(self, router, path, expected):
        """Matches routes on the path without its query string or fragment."""
        assert expected == {router.pick(path) for _ in range(4)}

    def test_lease_uses_the_pool(self, router):
        """Leases on the routed pool, which counts the request."""
        pool = router.route("/payments/1")
        with router.lease("/payments/1") as endpoint:
            assert "p1" == endpoint
            assert 1 == pool.stats()[0].in_flight

    def test_no_route(self):
        """Raises NoEndpointAvailable when nothing matches, no default."""
        router = PathRouter([("/a/", RoundRobin(["a"]))])
        with pytest.raises(NoEndpointAvailable, match="no route"):
            router.pick("/b")

    def test_path_required(self, router):
        """Requires the path as the key."""
        with pytest.raises(ValueError, match="key"):
            router.pick()
        with pytest.raises(ValueError, match="key"):
            router.lease()
        with pytest.raises(TypeError, match="path"):
            router.route(b"/orders/")

    def test_add_and_remove_routes(self, router):
        """Changes routes at runtime."""
        router.add_route("/orders/1", RoundRobin(["one"]))
        assert "one" == router.pick("/orders/1")
        router.remove_route("/orders/1")
        router.remove_route(re.compile(r"/payments/\d+$"))
        assert "pay" == router.pick("/payments/42")
        with pytest.raises(ValueError, match="no route"):
            router.remove_route("/nope/")
        with pytest.raises(ValueError, match="already"):
            router.add_route("/orders/", RoundRobin(["x"]))

    @pytest.mark.parametrize(
        ("matcher", "pool", "error", "match"),
        [
            ("orders", RoundRobin(["x"]), ValueError, "start with"),
            (42, RoundRobin(["x"]), TypeError, "route"),
            (re.compile(b"/x"), RoundRobin(["x"]), TypeError, "str pattern"),
            ("/x/", ["x"], TypeError, "balancer"),
        ],
    )
    def test_rejects_bad_routes(self, matcher, pool, error, match):
        """Rejects bad prefixes, matchers and pools."""
        with pytest.raises(error, match=match):
            PathRouter({matcher: pool})

    def test_rejects_bad_default(self):
        """Rejects a default that is not a balancer."""
        with pytest.raises(TypeError, match="default"):
            PathRouter(default="web")

    def test_repr_and_routes(self, router):
        """Shows the routes, patterns first, prefixes longest first."""
        assert (
            "PathRouter(routes=['/payments/\\\\d+$', '/orders/archive/', "
            "'/payments/', '/orders/'], default=yes)"
        ) == repr(router)
        assert 4 == len(router.routes)
