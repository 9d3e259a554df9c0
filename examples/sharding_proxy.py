"""Scenario 6: a sharding proxy in front of two, then three, Redis shards.

Run it with ``python examples/sharding_proxy.py`` (it needs ``redis-server``
on PATH, from the Debian package ``redis-server``). It:

1. starts two real redis-server processes with `dprims.testing`;
2. starts a small proxy that speaks the Redis protocol (GET, SET, DEL,
   EXISTS, PING) and routes each key to a shard with
   `dprims.hashing.ShardRouter`;
3. writes keys through the proxy with an ordinary redis-py client;
4. asks the router what adding a third shard would move (``plan``), starts
   the third server, moves exactly those keys, and checks that every key
   still reads back through the proxy;
5. compares with modulo sharding (``hash % N``), range sharding (A-F, G-P,
   Q-Z) and region sharding, to show why consistent hashing is the usual
   choice.
"""

from __future__ import annotations

import argparse
import contextlib
import socketserver
import threading
from collections import Counter

import mmh3
import redis

from dprims.hashing import (
    RangeMap,
    RegionMap,
    ShardChange,
    ShardRouter,
)
from dprims.testing import redis_server


# ------------------------------------------------------------------ the proxy


def _read_command(rfile) -> list[bytes] | None:
    """Read one RESP command (an array of bulk strings, or an inline line)."""
    line = rfile.readline()
    if not line:
        return None
    if not line.startswith(b"*"):
        return line.split()
    parts = []
    for _ in range(int(line[1:])):
        size = int(rfile.readline()[1:])
        parts.append(rfile.read(size + 2)[:-2])
    return parts


def _bulk(value: bytes | None) -> bytes:
    if value is None:
        return b"$-1\r\n"
    return b"$%d\r\n%s\r\n" % (len(value), value)


class ShardingProxy(socketserver.ThreadingTCPServer):
    """A Redis-protocol proxy that sends each key to its shard."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, router: ShardRouter[redis.Redis]) -> None:
        self.router = router
        super().__init__(("127.0.0.1", 0), _Handler)

    @property
    def port(self) -> int:
        return self.server_address[1]


class _Handler(socketserver.StreamRequestHandler):
    server: ShardingProxy

    def handle(self) -> None:
        while True:
            command = _read_command(self.rfile)
            if command is None:
                return
            self.wfile.write(self._execute(command))

    def _execute(self, command: list[bytes]) -> bytes:
        name = command[0].upper() if command else b""
        if name == b"PING":
            return b"+PONG\r\n"
        if name == b"CLIENT":  # redis-py announces itself; nothing to do
            return b"+OK\r\n"
        if name in (b"GET", b"SET", b"DEL", b"EXISTS") and len(command) >= 2:
            key = command[1]
            shard = self.server.router.route(key)
            if name == b"GET":
                return _bulk(shard.get(key))
            if name == b"SET":
                shard.set(key, command[2])
                return b"+OK\r\n"
            count = (shard.delete if name == b"DEL" else shard.exists)(key)
            return b":%d\r\n" % count
        return b"-ERR this proxy only knows GET SET DEL EXISTS PING\r\n"


# ------------------------------------------------------------------ the demo


def _sizes(router: ShardRouter[redis.Redis]) -> dict[str, int]:
    return {name: client.dbsize() for name, client in router.shards.items()}


def _migrate(router: ShardRouter[redis.Redis], moves) -> None:
    """Copy each moving key to its new shard, then delete the old copy."""
    shards = router.shards
    for key, (old, new) in moves.items():
        value = shards[old].get(key)
        if value is not None:
            shards[new].set(key, value)
            shards[old].delete(key)


def run(keys: int = 10_000, out=print) -> dict[str, float]:
    """Run the scenario and return the moved fractions it measured."""
    names = [f"user:{i}" for i in range(keys)]
    results: dict[str, float] = {}
    with contextlib.ExitStack() as stack:
        servers = [stack.enter_context(redis_server()) for _ in range(2)]
        clients = {
            f"shard-{i + 1}": stack.enter_context(s.client())
            for i, s in enumerate(servers)
        }
        router = ShardRouter(clients, strategy="ring")
        proxy = ShardingProxy(router)
        stack.callback(proxy.server_close)
        threading.Thread(target=proxy.serve_forever, daemon=True).start()
        stack.callback(proxy.shutdown)

        app = stack.enter_context(redis.Redis(port=proxy.port, protocol=2))
        out(f"proxy on 127.0.0.1:{proxy.port} in front of 2 redis shards")
        for name in names:
            app.set(name, f"profile of {name}")
        out(f"wrote {keys} keys through the proxy: {_sizes(router)}")

        # Plan before touching anything: which keys would a third shard take?
        plan = router.plan(ShardChange.add("shard-3"), names)
        results["ring"] = plan.fraction
        out(
            f"plan: adding shard-3 moves {plan.moved} of {keys} keys "
            f"({plan.fraction:.1%}; ideal {1 / 3:.1%}), "
            f"all to shard-3: {all(n == 'shard-3' for _, n in plan.moves.values())}"
        )

        third = stack.enter_context(redis_server())
        router.add("shard-3", stack.enter_context(third.client()))
        _migrate(router, plan.moves)
        out(f"after adding shard-3 and moving those keys: {_sizes(router)}")
        missing = sum(app.get(n) is None for n in names)
        out(f"every key still reads back through the proxy: {missing == 0}")

        # What removing a shard would cost, for the hash strategies.
        for strategy in ("ring", "rendezvous", "maglev", "jump"):
            demo = ShardRouter(
                dict.fromkeys(router.shards, None), strategy=strategy
            )
            removal = demo.plan(ShardChange.remove("shard-1"), names)
            results[f"remove-{strategy}"] = removal.fraction
            out(
                f"plan: removing shard-1 with {strategy:<10} moves "
                f"{removal.fraction:.1%} of keys"
            )

    # Modulo sharding: the same hash, but hash % N.
    def modulo(key: str, n: int) -> int:
        return mmh3.hash(key, signed=False) % n

    moved = sum(modulo(k, 2) != modulo(k, 3) for k in names)
    results["modulo"] = moved / keys
    out(
        f"modulo (hash % N) from 2 to 3 shards would move {moved / keys:.1%} "
        "of keys"
    )

    # Range and region maps: keys that people choose are not uniform.
    people = [
        f"{first}{i}"
        for i, first in enumerate(
            ["sam", "sara", "steve", "alex", "anna", "maria", "mike", "tom",
             "zoe", "sofia", "james", "john", "sarah", "scott", "david"]
            * (keys // 15 + 1)
        )
    ][:keys]  # fmt: skip
    ranges = RangeMap({"": "a-f", "g": "g-p", "q": "q-z"})
    spread = Counter(ranges.node_for(p) for p in people)
    out(f"range shards (A-F, G-P, Q-Z) over user names: {dict(spread)}")
    traffic = ["eu"] * 6 + ["us"] * 3 + ["apac"]
    regions = RegionMap({"eu": "db-eu", "us": "db-us", "apac": "db-apac"})
    spread = Counter(
        regions.node_for(f"{traffic[i % 10]}:{p}")
        for i, p in enumerate(people)
    )
    out(f"region shards (60% of users in the EU): {dict(spread)}")
    hashed = ShardRouter(dict.fromkeys(["s1", "s2", "s3"], None))
    spread = Counter(hashed.shard_for(p) for p in people)
    out(f"hash shards over the same names: {dict(spread)}")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=10_000)
    args = parser.parse_args()
    run(args.keys)


if __name__ == "__main__":
    main()
