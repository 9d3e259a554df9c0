from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from dprims import testing
from dprims.errors import DprimsError, ServerNotFoundError


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); its /proc state says Z.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


class TestBinaries:
    def test_missing_binary_names_the_packages(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A missing redis-server names the Debian packages to install."""
        monkeypatch.setenv("PATH", "/nonexistent")
        monkeypatch.delenv("DPRIMS_REDIS_SERVER", raising=False)

        with pytest.raises(ServerNotFoundError) as info:
            with testing.redis_server():
                pass

        assert "redis-server redis-tools zookeeper" in str(info.value)
        assert isinstance(info.value, FileNotFoundError)

    def test_env_override_must_be_executable(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        """An override that is not an executable file is reported."""
        monkeypatch.setenv("DPRIMS_REDIS_SERVER", str(tmp_path / "nope"))

        with pytest.raises(ServerNotFoundError, match="DPRIMS_REDIS_SERVER"):
            with testing.redis_server():
                pass

    def test_missing_zookeeper_jars(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        """Without ZooKeeper's jars the error says how to get them."""
        monkeypatch.setattr(testing, "_zookeeper_classpath", _no_classpath)

        with pytest.raises(ServerNotFoundError, match="zookeeper"):
            with testing.zookeeper_server(workdir=tmp_path):
                pass

    def test_bad_sizes_are_refused(self) -> None:
        """Clusters and ensembles below three members are refused."""
        with pytest.raises(ValueError, match="masters"):
            with testing.redis_cluster(2):
                pass
        with pytest.raises(ValueError, match="replicas"):
            with testing.redis_cluster(3, replicas=-1):
                pass
        with pytest.raises(ValueError, match="size"):
            with testing.zookeeper_ensemble(1):
                pass


def _no_classpath() -> str:
    raise ServerNotFoundError("zookeeper jars missing (test)")


class TestFreePort:
    def test_port_and_bus_port_are_bindable(self) -> None:
        """free_port returns a port whose +10000 twin is free as well."""
        port = testing.free_port(also_free=(10000,))

        for candidate in (port, port + 10000):
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", candidate))


@pytest.mark.redis
class TestRedisServerLifecycle:
    def test_faults_and_restart(self) -> None:
        """stop, start, pause, resume and kill behave like real faults."""
        with testing.redis_server() as server:
            assert "PONG" == server.command("PING")
            assert server.url.endswith(f":{server.port}/0")

            server.pause()
            assert server.paused
            with pytest.raises(OSError):
                testing._resp_command(server.port, "PING", timeout=0.2)
            server.resume()
            assert "PONG" == server.command("PING")

            server.stop()
            assert not server.running
            with pytest.raises(OSError):
                server.command("PING")

            server.start()
            assert "PONG" == server.command("PING")
            pid = server.pid
            assert pid is not None
            server.kill()
            assert not _alive(pid)
            assert "stopped" in repr(server)

    def test_no_process_outlives_its_context(self) -> None:
        """Leaving the context manager leaves no redis-server behind."""
        with testing.redis_server() as server:
            pid = server.pid
            assert pid is not None
            assert server in testing.running_servers()

        assert not _alive(pid)
        assert server not in testing.running_servers()

    def test_failed_start_reports_the_log(self, tmp_path: Path) -> None:
        """A server that cannot start raises with its log tail."""
        with testing.redis_server() as first:
            second = testing.RedisServer(first.port, tmp_path)
            with pytest.raises(testing.ServerStartError) as info:
                second.start()

        assert str(first.port) in str(info.value)
        assert not second.running

    def test_pausing_a_stopped_server_is_an_error(
        self, tmp_path: Path
    ) -> None:
        """pause() on a server that is not running says so."""
        server = testing.RedisServer(testing.free_port(), tmp_path)

        with pytest.raises(DprimsError, match="not running"):
            server.pause()
        with pytest.raises(testing.ServerStartError, match="never launched"):
            server.wait_ready()
        assert "(no log)" == server.log_tail()


@pytest.mark.redis_cluster
class TestClusterFaults:
    def test_cluster_info_skips_dead_nodes(self) -> None:
        """info() reads from a node that still answers."""
        with testing.redis_cluster(3) as cluster:
            cluster.nodes[0].kill()
            info = cluster.info()
            for node in cluster.nodes:
                node.kill()
            with pytest.raises(DprimsError, match="no cluster node"):
                cluster.info()

        assert "cluster_state" in info
