"""Smoke test for examples/reverse_proxy.py (scenarios 1 and 3)."""

from __future__ import annotations

import asyncio
import collections
import importlib.util
import pathlib
import sys


EXAMPLE = pathlib.Path(__file__).parents[2] / "examples" / "reverse_proxy.py"


def load():
    spec = importlib.util.spec_from_file_location("reverse_proxy", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules["reverse_proxy"] = module
    spec.loader.exec_module(module)
    return module


def test_weighted_routed_and_failover():
    """Forwards 3:1 with the header, routes by path and fails over."""
    example = load()

    async def scenario():
        deployment = example.Deployment()
        await deployment.start(interval=0.05)
        try:
            port = deployment.proxy_port
            first, second = deployment.ports
            bodies = [await example.get(port, "/") for _ in range(40)]
            counts = collections.Counter(
                body.split(" via ")[0] for body in bodies
            )
            assert {
                f"Hello from port {first}": 30,
                f"Hello from port {second}": 10,
            } == counts
            assert all(b.endswith("via dprims-proxy") for b in bodies)
            orders = await example.get(port, "/orders/7")
            payments = await example.get(port, "/payments/7")
            assert orders.startswith(f"Hello from port {first} ")
            assert payments.startswith(f"Hello from port {second} ")

            await deployment.stop_backend(1)
            after = [await example.get(port, "/") for _ in range(12)]
            assert all(
                b.startswith(f"Hello from port {first} ") for b in after
            )
            for _ in range(200):
                if not deployment.pools[2].stats()[0].healthy:
                    break
                await asyncio.sleep(0.02)
            assert "no backend" == await example.get(port, "/payments/7")

            await deployment.restart_backend(1)
            for _ in range(200):
                if deployment.pools[2].stats()[0].healthy:
                    break
                await asyncio.sleep(0.02)
            assert (await example.get(port, "/payments/7")).startswith(
                f"Hello from port {second} "
            )
        finally:
            await deployment.close()

    asyncio.run(scenario())
