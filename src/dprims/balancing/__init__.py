"""Load balancing: policies, health checking, outlier ejection, routing.

Every policy is a pool of endpoints (any hashable objects) with the same
small interface, the `Balancer` protocol: :meth:`~dprims.balancing.Balancer.pick` chooses an
endpoint and :meth:`~dprims.balancing.Balancer.lease` also tracks the request, so load-, latency-
and failure-aware logic can learn from it::

    lb = WeightedRoundRobin({"10.0.0.1:80": 3, "10.0.0.2:80": 1})
    with lb.lease() as endpoint:
        send(endpoint)

Status: provisional.
"""

from __future__ import annotations

from dprims.balancing._base import (
    Balancer,
    EndpointStats,
    Lease,
    OutlierDetection,
    RandomSource,
)
from dprims.balancing._hash import HashBalancer
from dprims.balancing._health import (
    HealthChecker,
    HealthStatus,
    HealthTarget,
    http_check,
)
from dprims.balancing._least import (
    LeastConnections,
    PeakEWMA,
    PowerOfTwoChoices,
)
from dprims.balancing._random import RandomChoice, WeightedRandom
from dprims.balancing._round_robin import RoundRobin, WeightedRoundRobin
from dprims.balancing._router import PathPattern, PathRouter
from dprims.errors import NoEndpointAvailable


__all__ = [
    "Balancer",
    "EndpointStats",
    "HashBalancer",
    "HealthChecker",
    "HealthStatus",
    "HealthTarget",
    "Lease",
    "LeastConnections",
    "NoEndpointAvailable",
    "OutlierDetection",
    "PathPattern",
    "PathRouter",
    "PeakEWMA",
    "PowerOfTwoChoices",
    "RandomChoice",
    "RandomSource",
    "RoundRobin",
    "WeightedRandom",
    "WeightedRoundRobin",
    "http_check",
]
