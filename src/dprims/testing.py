"""Helpers for testing code that uses dprims: real servers and a fake clock.

dprims' own test suite uses exactly these helpers, and they are public so
that your tests can do the same:

- `FakeClock`: a manual clock to pass as ``clock=`` to any time-dependent
  primitive.
- `redis_server`, `redis_cluster`, `zookeeper_server` and
  `zookeeper_ensemble`: context managers that start *real* servers as local
  processes on 127.0.0.1 on free ports, wait until they answer, and stop them
  on exit. Each yields a handle with the address to connect to and fault
  helpers (``stop``, ``kill``, ``pause``, ``resume``, ``start``) for tests
  of failure handling.

The servers come from the Debian packages ``redis-server``, ``redis-tools``
and ``zookeeper`` (and a Java runtime). Binaries are looked up on ``PATH``
unless an environment variable names them:

=============================== ==========================================
``DPRIMS_REDIS_SERVER``         path of ``redis-server``
``DPRIMS_REDIS_CLI``            path of ``redis-cli``
``DPRIMS_JAVA``                 path of ``java`` (else ``$JAVA_HOME/bin``)
``DPRIMS_ZOOKEEPER_CLASSPATH``  class path holding ZooKeeper's jars
=============================== ==========================================

A missing binary raises `ServerNotFoundError`, whose message names the
Debian packages to install.

Every started process is also killed if the Python process that started it
dies (Linux ``PR_SET_PDEATHSIG``) and at interpreter exit, so a crashed test
run leaves no servers behind. `running_servers` lists the live ones.

Status: stable.
"""

from __future__ import annotations

import abc
import atexit
import contextlib
import ctypes
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dprims._clock import FakeClock, SystemClock
from dprims.errors import DprimsError, ServerNotFoundError


if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence


__all__ = [
    "FakeClock",
    "RedisClusterHandle",
    "RedisServer",
    "ServerProcess",
    "ServerStartError",
    "SystemClock",
    "ZooKeeperEnsemble",
    "ZooKeeperServer",
    "free_port",
    "redis_cluster",
    "redis_server",
    "running_servers",
    "zookeeper_ensemble",
    "zookeeper_server",
]

_DEBIAN_PACKAGES = "redis-server redis-tools zookeeper"
_LIVE: dict[int, ServerProcess] = {}
_LIVE_LOCK = threading.Lock()


class ServerStartError(DprimsError):
    """Raised when a test server did not come up within its start timeout.

    The message ends with the tail of the server's log.

    .. versionadded:: 0.1
    """


# ------------------------------------------------------------------ binaries


def _find_binary(name: str, env: str) -> str:
    override = os.environ.get(env)
    if override:
        if not (Path(override).is_file() and os.access(override, os.X_OK)):
            raise ServerNotFoundError(
                f"{env}={override!r} is not an executable file"
            )
        return override
    found = shutil.which(name)
    if found is None:
        raise ServerNotFoundError(
            f"{name} was not found on PATH. Install the Debian packages "
            f"with `apt-get install {_DEBIAN_PACKAGES}`, or set {env} to "
            f"its path."
        )
    return found


def _find_java() -> str:
    override = os.environ.get("DPRIMS_JAVA")
    if override:
        return _find_binary("java", "DPRIMS_JAVA")
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        candidate = Path(java_home) / "bin" / "java"
        if candidate.is_file():
            return str(candidate)
    return _find_binary("java", "DPRIMS_JAVA")


def _zookeeper_classpath() -> str:
    override = os.environ.get("DPRIMS_ZOOKEEPER_CLASSPATH")
    if override:
        return override
    # The Debian package ships one jar whose manifest lists its
    # dependencies; an Apache tarball keeps everything under lib/.
    debian = Path("/usr/share/java/zookeeper.jar")
    if debian.is_file():
        return str(debian)
    home = os.environ.get("ZOOKEEPER_HOME")
    if home and (Path(home) / "lib").is_dir():
        return str(Path(home) / "lib" / "*")
    raise ServerNotFoundError(
        "ZooKeeper's jars were not found (looked for "
        "/usr/share/java/zookeeper.jar and $ZOOKEEPER_HOME/lib). Install "
        f"the Debian packages with `apt-get install {_DEBIAN_PACKAGES}`, "
        "or set DPRIMS_ZOOKEEPER_CLASSPATH."
    )


# --------------------------------------------------------------------- ports


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(*, also_free: Sequence[int] = ()) -> int:
    """Return a TCP port on 127.0.0.1 that is free right now.

    *also_free* lists offsets from the port that must be free too (Redis
    Cluster needs ``port + 10000`` for its bus). Ports are drawn from
    20000-39999, below Linux's ephemeral range, so clients' outgoing
    connections do not steal them between this check and the server's bind.

    Raises:
        OSError: if no free port was found after many tries.

    .. versionadded:: 0.1
    """
    rng = random.Random()
    for _ in range(500):
        port = rng.randrange(20000, 40000)
        if _port_is_free(port) and all(
            _port_is_free(port + offset) for offset in also_free
        ):
            return port
    raise OSError("no free TCP port found on 127.0.0.1")


# ------------------------------------------------------------------ processes


def _set_parent_death_signal() -> None:  # pragma: no cover -- in the child
    # Runs in the child between fork and exec: if the test process dies
    # (even by SIGKILL), the kernel kills the server too.
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGKILL)


def _kill_leftovers() -> None:
    with _LIVE_LOCK:
        leftovers = list(_LIVE.values())
    for server in leftovers:
        with contextlib.suppress(Exception):
            server.kill()


atexit.register(_kill_leftovers)


def running_servers() -> list[ServerProcess]:
    """Return the servers started by this module that are still running.

    A paused server counts as running. Tests use this to check that no
    server outlives its context manager.

    .. versionadded:: 0.1
    """
    with _LIVE_LOCK:
        return [s for s in _LIVE.values() if s.running]


class ServerProcess(abc.ABC):
    """One server process with the fault helpers tests need.

    Subclasses say how to build the command line and how to tell that the
    server is ready. :meth:`~dprims.testing.ServerProcess.start` can be
    called again after :meth:`~dprims.testing.ServerProcess.stop` or
    :meth:`~dprims.testing.ServerProcess.kill`, which restarts the server
    on the same port with the same data directory.

    .. versionadded:: 0.1
    """

    #: How long :meth:`~dprims.testing.ServerProcess.start` waits for an
    #: answer, in seconds.
    start_timeout: float = 30.0

    def __init__(self, name: str, port: int, workdir: Path) -> None:
        self.name = name
        self.host = "127.0.0.1"
        self.port = port
        self.workdir = workdir
        self.log_path = workdir / f"{name}.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._paused = False

    # -- what subclasses provide
    @abc.abstractmethod
    def _command(self) -> list[str]:
        """Return the argv that starts the server."""

    @abc.abstractmethod
    def _ready(self) -> bool:
        """Return whether this process (not another one) answers."""

    # -- life cycle
    @property
    def pid(self) -> int | None:
        """The process id while the server runs, else None."""
        process = self._process
        if process is None or process.poll() is not None:
            return None
        return process.pid

    @property
    def running(self) -> bool:
        """Whether the process is alive (paused counts as alive)."""
        return self.pid is not None

    @property
    def paused(self) -> bool:
        """Whether the process is stopped with SIGSTOP."""
        return self.running and self._paused

    def start(self) -> None:
        """Start the process and wait until it answers.

        Raises:
            ServerStartError: if it did not answer within
                :attr:`~dprims.testing.ServerProcess.start_timeout`,
                or exited early.
        """
        if self.running:
            return
        self.launch()
        self.wait_ready()

    def launch(self) -> None:
        """Start the process without waiting for it to answer.

        Use :meth:`~dprims.testing.ServerProcess.wait_ready` afterwards;
        launching several
        servers first and
        then waiting lets them boot in parallel.
        """
        if self.running:
            return
        self.workdir.mkdir(parents=True, exist_ok=True)
        # The kernel sends PDEATHSIG when the *thread* that forked exits, so
        # it is only safe from the main thread, which lives as long as the
        # process; atexit covers the other cases.
        preexec = (
            _set_parent_death_signal
            if sys.platform.startswith("linux")
            and threading.current_thread() is threading.main_thread()
            else None
        )
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                self._command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                start_new_session=True,
                preexec_fn=preexec,  # noqa: PLW1509 -- only sets PDEATHSIG
            )
        self._paused = False
        with _LIVE_LOCK:
            _LIVE[id(self)] = self

    def wait_ready(self) -> None:
        """Block until the launched process answers.

        Raises:
            ServerStartError: if it did not answer within
                :attr:`~dprims.testing.ServerProcess.start_timeout`,
                or exited early.
        """
        process = self._process
        if process is None:
            raise ServerStartError(f"{self.name} was never launched")
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                break
            with contextlib.suppress(OSError):
                if self._ready():
                    return
            time.sleep(0.05)
        code = process.poll()
        self.kill()
        state = (
            f"exited with code {code}"
            if code is not None
            else f"did not answer within {self.start_timeout} s"
        )
        raise ServerStartError(
            f"{self.name} on port {self.port} {state}. "
            f"Last log lines:\n{self.log_tail()}"
        )

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the process with SIGTERM, and SIGKILL after *timeout*."""
        process = self._process
        if process is None or process.poll() is not None:
            self._forget()
            return
        if self._paused:
            self.resume()
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        self._forget()

    def kill(self) -> None:
        """Kill the process at once (SIGKILL), as a crash would."""
        process = self._process
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()
        self._paused = False
        self._forget()

    def pause(self) -> None:
        """Freeze the process (SIGSTOP): sockets stay open, nothing answers."""
        process = self._process
        if process is None or process.poll() is not None:
            raise DprimsError(f"{self.name} is not running")
        process.send_signal(signal.SIGSTOP)
        self._paused = True

    def resume(self) -> None:
        """Unfreeze a paused process (SIGCONT)."""
        process = self._process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGCONT)
        self._paused = False

    def log_tail(self, lines: int = 20) -> str:
        """Return the last *lines* lines of the server's log."""
        try:
            text = self.log_path.read_text("utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def _forget(self) -> None:
        with _LIVE_LOCK:
            _LIVE.pop(id(self), None)

    def __repr__(self) -> str:
        state = (
            "paused"
            if self.paused
            else ("running" if self.running else "stopped")
        )
        return f"<{type(self).__name__} {self.host}:{self.port} {state}>"


# --------------------------------------------------------------------- Redis


def _resp_command(
    port: int, *args: str, timeout: float = 1.0
) -> str | int | None:
    """Send one command over RESP and return a simple reply.

    Handles the reply kinds our readiness checks need (simple string,
    error, integer, bulk string); it exists so that `dprims.testing` does not
    need redis-py.
    """
    payload = f"*{len(args)}\r\n".encode()
    for arg in args:
        data = arg.encode()
        payload += b"$%d\r\n%s\r\n" % (len(data), data)
    with socket.create_connection(("127.0.0.1", port), timeout) as sock:
        sock.sendall(payload)
        with sock.makefile("rb") as reader:
            line = reader.readline()
            kind, body = line[:1], line[1:].rstrip(b"\r\n")
            if kind == b"$" and int(body) >= 0:
                size = int(body)
                return reader.read(size + 2)[:size].decode()
    if not line:
        raise ConnectionError("connection closed")
    if kind == b"+":
        return body.decode()
    if kind == b":":
        return int(body)
    if kind == b"$":
        return None
    # "-ERR ..." and anything unexpected: the server is not usable yet.
    raise ConnectionError(f"unexpected reply {line!r}")


class RedisServer(ServerProcess):
    """A real ``redis-server`` process on 127.0.0.1.

    Persistence is off (no RDB, no AOF) unless *args* turn it on, so a
    restart after :meth:`~dprims.testing.ServerProcess.stop` or
    :meth:`~dprims.testing.ServerProcess.kill` comes
    back empty, as a failed-over cache
    node would.

    .. versionadded:: 0.1
    """

    start_timeout = 15.0

    def __init__(
        self,
        port: int,
        workdir: Path,
        *,
        args: Sequence[str] = (),
        cluster: bool = False,
    ) -> None:
        super().__init__(f"redis-{port}", port, workdir)
        self.binary = _find_binary("redis-server", "DPRIMS_REDIS_SERVER")
        self.extra_args = list(args)
        self.cluster = cluster

    @property
    def url(self) -> str:
        """The ``redis://`` URL of this server."""
        return f"redis://{self.host}:{self.port}/0"

    def _command(self) -> list[str]:
        command = [
            self.binary,
            "--port", str(self.port),
            "--bind", self.host,
            "--dir", str(self.workdir),
            "--save", "",
            "--appendonly", "no",
            "--protected-mode", "no",
            "--daemonize", "no",
        ]  # fmt: skip
        if self.cluster:
            command += [
                "--cluster-enabled", "yes",
                "--cluster-config-file", f"nodes-{self.port}.conf",
                "--cluster-node-timeout", "2000",
            ]  # fmt: skip
        return command + self.extra_args

    def _ready(self) -> bool:
        # Check the pid, not just a PONG: another server already on this
        # port would answer PING while ours failed to bind.
        info = _parse_info(str(_resp_command(self.port, "INFO", "server")))
        return info.get("process_id") == str(self.pid)

    def command(self, *args: str) -> str | int | None:
        """Send one command and return its simple reply (without redis-py)."""
        return _resp_command(self.port, *args, timeout=5.0)

    def client(self, **kwargs: Any) -> Any:
        """Return a redis-py ``redis.Redis`` client for this server.

        Socket timeouts default to 5 s (connect 2 s) so that a paused server
        gives an error rather than a hang; *kwargs* override any option.
        """
        import redis  # noqa: PLC0415 -- optional dependency

        options = _client_options(kwargs)
        return redis.Redis(host=self.host, port=self.port, **options)

    def async_client(self, **kwargs: Any) -> Any:
        """Return a ``redis.asyncio.Redis`` client for this server."""
        import redis.asyncio  # noqa: PLC0415 -- optional dependency

        options = _client_options(kwargs)
        return redis.asyncio.Redis(host=self.host, port=self.port, **options)


class RedisClusterHandle:
    """A running Redis Cluster made of cluster-enabled ``redis-server`` nodes.

    ``nodes`` lists every node; the first ``masters`` of them were created
    as primaries. Fault helpers are on each node (``nodes[i].kill()``).

    .. versionadded:: 0.1
    """

    def __init__(self, nodes: list[RedisServer], masters: int) -> None:
        self.nodes = nodes
        self.masters = masters

    @property
    def host(self) -> str:
        """The host of the first node (an entry point for clients)."""
        return self.nodes[0].host

    @property
    def port(self) -> int:
        """The port of the first node (an entry point for clients)."""
        return self.nodes[0].port

    @property
    def startup_nodes(self) -> list[tuple[str, int]]:
        """``(host, port)`` of every node."""
        return [(node.host, node.port) for node in self.nodes]

    def info(self) -> dict[str, str]:
        """Return ``CLUSTER INFO`` from the first running node as a dict."""
        for node in self.nodes:
            if node.running and not node.paused:
                reply = node.command("CLUSTER", "INFO")
                return _parse_info(str(reply))
        raise DprimsError("no cluster node is running")

    def client(self, **kwargs: Any) -> Any:
        """Return a redis-py ``RedisCluster`` client for this cluster."""
        from redis.cluster import RedisCluster  # noqa: PLC0415

        options = _client_options(kwargs)
        return RedisCluster(host=self.host, port=self.port, **options)

    def async_client(self, **kwargs: Any) -> Any:
        """Return a ``redis.asyncio.cluster.RedisCluster`` client."""
        from redis.asyncio.cluster import RedisCluster  # noqa: PLC0415

        options = _client_options(kwargs)
        return RedisCluster(host=self.host, port=self.port, **options)

    def __repr__(self) -> str:
        return f"<RedisClusterHandle nodes={self.startup_nodes}>"


def _client_options(overrides: dict[str, Any]) -> dict[str, Any]:
    # Bounded socket timeouts by default: a paused server must give a
    # client error, never a hung test.
    return {"socket_timeout": 5.0, "socket_connect_timeout": 2.0} | overrides


def _parse_info(text: str) -> dict[str, str]:
    info: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            info[key.strip()] = value.strip()
    return info


def _workdir(base: str | os.PathLike[str] | None, prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix, dir=base))


@contextlib.contextmanager
def redis_server(
    *,
    port: int | None = None,
    args: Sequence[str] = (),
    workdir: str | os.PathLike[str] | None = None,
) -> Iterator[RedisServer]:
    """Run a real ``redis-server`` on 127.0.0.1 for the duration of the block.

    Args:
        port: the port to listen on; a free one by default.
        args: extra ``redis-server`` command-line arguments.
        workdir: parent folder for the server's temporary directory.

    Yields:
        The running `RedisServer`; use ``server.client()`` or
        ``server.port``.

    Raises:
        ServerNotFoundError: if ``redis-server`` is not installed.
        ServerStartError: if it did not start.

    .. versionadded:: 0.1
    """
    directory = _workdir(workdir, "dprims-redis-")
    server = RedisServer(port or free_port(), directory, args=args)
    try:
        server.start()
        yield server
    finally:
        server.kill()
        shutil.rmtree(directory, ignore_errors=True)


@contextlib.contextmanager
def redis_cluster(
    masters: int = 3,
    *,
    replicas: int = 0,
    workdir: str | os.PathLike[str] | None = None,
) -> Iterator[RedisClusterHandle]:
    """Run a real Redis Cluster on 127.0.0.1 for the duration of the block.

    Starts ``masters * (1 + replicas)`` cluster-enabled ``redis-server``
    processes, joins them with ``redis-cli --cluster create`` and waits until
    every node reports ``cluster_state:ok``.

    Args:
        masters: number of primaries (at least 3, as Redis requires).
        replicas: replicas per primary.
        workdir: parent folder for the nodes' temporary directory.

    Yields:
        A `RedisClusterHandle`.

    Raises:
        ValueError: if *masters* < 3 or *replicas* < 0.
        ServerNotFoundError: if ``redis-server`` or ``redis-cli`` is missing.
        ServerStartError: if the cluster did not form.

    .. versionadded:: 0.1
    """
    if masters < 3:
        raise ValueError(f"masters must be >= 3, got {masters!r}")
    if replicas < 0:
        raise ValueError(f"replicas must be >= 0, got {replicas!r}")
    cli = _find_binary("redis-cli", "DPRIMS_REDIS_CLI")
    directory = _workdir(workdir, "dprims-redis-cluster-")
    nodes: list[RedisServer] = []
    try:
        ports: list[int] = []
        while len(ports) < masters * (1 + replicas):
            # A port and its bus port (+10000) must not collide with a
            # node launched a moment ago that has not bound yet.
            candidate = free_port(also_free=(10000,))
            if all(abs(candidate - p) not in {0, 10000} for p in ports):
                ports.append(candidate)
        for node_port in ports:
            node = RedisServer(node_port, directory, cluster=True)
            nodes.append(node)
            node.launch()
        for node in nodes:
            node.wait_ready()
        create = [
            cli, "--cluster", "create",
            *(f"{n.host}:{n.port}" for n in nodes),
            "--cluster-replicas", str(replicas),
            "--cluster-yes",
        ]  # fmt: skip
        result = subprocess.run(
            create,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        if result.returncode != 0:
            raise ServerStartError(
                "redis-cli --cluster create failed:\n"
                f"{result.stdout[-2000:]}{result.stderr[-2000:]}"
            )
        handle = RedisClusterHandle(nodes, masters)
        _wait_cluster_ok(nodes)
        yield handle
    finally:
        for node in nodes:
            node.kill()
        shutil.rmtree(directory, ignore_errors=True)


def _wait_cluster_ok(nodes: Sequence[RedisServer]) -> None:
    deadline = time.monotonic() + 30.0
    while time.monotonic() < deadline:
        states = []
        for node in nodes:
            with contextlib.suppress(OSError):
                info = _parse_info(str(node.command("CLUSTER", "INFO")))
                states.append(
                    info.get("cluster_state") == "ok"
                    and info.get("cluster_slots_ok") == "16384"
                    and int(info.get("cluster_known_nodes", "0")) == len(nodes)
                )
        if len(states) == len(nodes) and all(states):
            return
        time.sleep(0.1)
    raise ServerStartError("Redis Cluster did not reach cluster_state:ok")


# ----------------------------------------------------------------- ZooKeeper


def _four_letter(port: int, word: str, timeout: float = 1.0) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout) as sock:
        sock.sendall(word.encode())
        chunks = []
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks).decode("utf-8", errors="replace")


class ZooKeeperServer(ServerProcess):
    """A real ZooKeeper server (Java ``QuorumPeerMain``) on 127.0.0.1.

    Alone it runs standalone; as a member of a `ZooKeeperEnsemble` it knows
    its peers. Data lives in the work directory, so
    :meth:`~dprims.testing.ServerProcess.start` after
    :meth:`~dprims.testing.ServerProcess.stop` or
    :meth:`~dprims.testing.ServerProcess.kill` brings the member back with
    its data, as a restart would.
    """

    start_timeout = 45.0

    def __init__(
        self,
        port: int,
        workdir: Path,
        *,
        myid: int = 1,
        peers: Sequence[tuple[int, int, int]] = (),
        tick_time_ms: int = 500,
    ) -> None:
        super().__init__(f"zookeeper-{myid}-{port}", port, workdir)
        self.java = _find_java()
        self.classpath = _zookeeper_classpath()
        self.myid = myid
        self.peers = list(peers)
        self.tick_time_ms = tick_time_ms
        self.standalone_ok = not self.peers

    @property
    def hosts(self) -> str:
        """The ``host:port`` connection string of this server alone."""
        return f"{self.host}:{self.port}"

    def _write_config(self) -> Path:
        data = self.workdir / "data"
        data.mkdir(parents=True, exist_ok=True)
        (data / "myid").write_text(f"{self.myid}\n")
        lines = [
            f"tickTime={self.tick_time_ms}",
            "initLimit=20",
            "syncLimit=10",
            f"dataDir={data}",
            f"clientPort={self.port}",
            f"clientPortAddress={self.host}",
            "maxClientCnxns=0",
            "admin.enableServer=false",
            "4lw.commands.whitelist=*",
            "autopurge.purgeInterval=0",
        ]
        lines += [
            f"server.{myid}={self.host}:{peer_port}:{election_port}"
            for myid, peer_port, election_port in self.peers
        ]
        config = self.workdir / "zoo.cfg"
        config.write_text("\n".join(lines) + "\n")
        return config

    def _command(self) -> list[str]:
        config = self._write_config()
        return [
            self.java,
            "-Xms32m",
            "-Xmx256m",
            "-XX:+UseSerialGC",
            # C1 only: the server is short-lived and starts faster.
            "-XX:TieredStopAtLevel=1",
            f"-Dzookeeper.log.dir={self.workdir}",
            "-Dzookeeper.jmx.log4j.disable=true",
            "-cp",
            self.classpath,
            "org.apache.zookeeper.server.quorum.QuorumPeerMain",
            str(config),
        ]

    def mode(self) -> str | None:
        """Return ``standalone``, ``leader``, ``follower``, or None if down."""
        with contextlib.suppress(OSError):
            reply = _four_letter(self.port, "srvr")
            for line in reply.splitlines():
                if line.startswith("Mode:"):
                    return line.split(":", 1)[1].strip()
        return None

    def _ready(self) -> bool:
        mode = self.mode()
        if self.peers:
            # A lone member of an ensemble cannot serve until a quorum
            # forms; the ensemble waits for that itself.
            return mode is not None or self._listening()
        return mode == "standalone"

    def _listening(self) -> bool:
        with socket.create_connection((self.host, self.port), 0.5):
            return True

    def client(self, **kwargs: Any) -> Any:
        """Return a started kazoo ``KazooClient`` for this server.

        The caller stops it (``client.stop(); client.close()``).
        """
        return _kazoo_client(self.hosts, **kwargs)


def _kazoo_client(hosts: str, **kwargs: Any) -> Any:
    from kazoo.client import KazooClient  # noqa: PLC0415

    options: dict[str, Any] = {"timeout": 10.0}
    options.update(kwargs)
    client = KazooClient(hosts=hosts, **options)
    client.start(timeout=15.0)
    return client


class ZooKeeperEnsemble:
    """A running ZooKeeper ensemble of real servers on 127.0.0.1.

    ``members`` lists the servers; fault helpers are on each
    (``ensemble.leader().kill()``).

    .. versionadded:: 0.1
    """

    def __init__(self, members: list[ZooKeeperServer]) -> None:
        self.members = members

    @property
    def hosts(self) -> str:
        """The connection string listing every member."""
        return ",".join(member.hosts for member in self.members)

    def leader(self) -> ZooKeeperServer:
        """Return the member that is currently the leader.

        Raises:
            DprimsError: if no member reports being the leader.
        """
        for member in self.members:
            if (
                member.running
                and not member.paused
                and member.mode() == "leader"
            ):
                return member
        raise DprimsError("no ZooKeeper member is the leader right now")

    def followers(self) -> list[ZooKeeperServer]:
        """Return the members that currently report being followers."""
        return [
            m
            for m in self.members
            if m.running and not m.paused and m.mode() == "follower"
        ]

    def wait_for_quorum(self, timeout: float = 60.0) -> None:
        """Block until one leader and all other running members follow it.

        Raises:
            ServerStartError: if that did not happen within *timeout*.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            live = [m for m in self.members if m.running and not m.paused]
            modes = [m.mode() for m in live]
            if modes.count("leader") == 1 and all(
                mode in {"leader", "follower"} for mode in modes
            ):
                return
            time.sleep(0.1)
        raise ServerStartError(
            "ZooKeeper ensemble did not elect a leader in time"
        )

    def client(self, **kwargs: Any) -> Any:
        """Return a started kazoo ``KazooClient`` connected to the ensemble."""
        return _kazoo_client(self.hosts, **kwargs)

    def __repr__(self) -> str:
        return f"<ZooKeeperEnsemble {self.hosts}>"


@contextlib.contextmanager
def zookeeper_server(
    *,
    port: int | None = None,
    tick_time_ms: int = 500,
    workdir: str | os.PathLike[str] | None = None,
) -> Iterator[ZooKeeperServer]:
    """Run a real standalone ZooKeeper server for the duration of the block.

    Args:
        port: client port; a free one by default.
        tick_time_ms: ZooKeeper's tick; session timeouts are bounded to
            2-20 ticks, so the default allows sessions of 1-10 seconds.
        workdir: parent folder for the server's temporary directory.

    Yields:
        The running `ZooKeeperServer`; connect to ``server.hosts``.

    Raises:
        ServerNotFoundError: if Java or ZooKeeper's jars are missing.
        ServerStartError: if it did not start.

    .. versionadded:: 0.1
    """
    directory = _workdir(workdir, "dprims-zookeeper-")
    server = ZooKeeperServer(
        port or free_port(), directory, tick_time_ms=tick_time_ms
    )
    try:
        server.start()
        yield server
    finally:
        server.kill()
        shutil.rmtree(directory, ignore_errors=True)


@contextlib.contextmanager
def zookeeper_ensemble(
    size: int = 3,
    *,
    tick_time_ms: int = 500,
    workdir: str | os.PathLike[str] | None = None,
) -> Iterator[ZooKeeperEnsemble]:
    """Run a real ZooKeeper ensemble of *size* servers for the block.

    Args:
        size: number of members (3 or more, odd for a useful quorum).
        tick_time_ms: ZooKeeper's tick in milliseconds.
        workdir: parent folder for the members' temporary directories.

    Yields:
        A `ZooKeeperEnsemble` whose members have elected a leader.

    Raises:
        ValueError: if *size* < 3.
        ServerNotFoundError: if Java or ZooKeeper's jars are missing.
        ServerStartError: if no leader was elected in time.

    .. versionadded:: 0.1
    """
    if size < 3:
        raise ValueError(f"size must be >= 3, got {size!r}")
    directory = _workdir(workdir, "dprims-zk-ensemble-")
    taken: set[int] = set()

    def port() -> int:
        while True:
            candidate = free_port()
            if candidate not in taken:
                taken.add(candidate)
                return candidate

    specs = [(myid, port(), port(), port()) for myid in range(1, size + 1)]
    peers = [(myid, peer, election) for myid, _, peer, election in specs]
    members = [
        ZooKeeperServer(
            client_port,
            directory / f"member-{myid}",
            myid=myid,
            peers=peers,
            tick_time_ms=tick_time_ms,
        )
        for myid, client_port, _, _ in specs
    ]
    ensemble = ZooKeeperEnsemble(members)
    try:
        # Launch all JVMs before waiting on any: they boot in parallel.
        for member in members:
            member.launch()
        for member in members:
            member.wait_ready()
        ensemble.wait_for_quorum()
        yield ensemble
    finally:
        for member in members:
            member.kill()
        shutil.rmtree(directory, ignore_errors=True)
