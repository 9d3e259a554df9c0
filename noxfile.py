"""Developer tasks. CI calls these sessions; so should you.

nox -s tests              unit + integration tests with branch coverage
nox -s lint typecheck docs
nox -s bench              benchmarks beside their peers, with ratios
nox -s demo               the tour
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import nox


ROOT = Path(__file__).parent
nox.options.default_venv_backend = "uv|virtualenv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["tests", "lint", "typecheck", "docs"]

TEST_DEPS = [
    "pytest>=8",
    "pytest-cov>=5",
    "pytest-timeout>=2.3",
    "pytest-randomly>=3.15",
    "hypothesis>=6.100",
    "coverage[toml]>=7.5",
    # The ketama mode of dprims.hashing is checked live against uhashring.
    "uhashring>=2.3",
]
DOCS_DEPS = ["sphinx>=7.3", "furo>=2024.1", "myst-parser>=3"]
SERVER_BINARIES = ("redis-server", "redis-cli", "java")
ZOOKEEPER_JAR = Path("/usr/share/java/zookeeper.jar")


def _servers_missing() -> list[str]:
    missing = [b for b in SERVER_BINARIES if shutil.which(b) is None]
    if not ZOOKEEPER_JAR.exists() and not os.environ.get(
        "DPRIMS_ZOOKEEPER_CLASSPATH"
    ):
        missing.append("zookeeper")
    return missing


def _ensure_servers(session: nox.Session) -> None:
    """Install the Debian server packages when missing and we are root."""
    missing = _servers_missing()
    if not missing:
        return
    if (
        hasattr(os, "geteuid")
        and os.geteuid() == 0
        and shutil.which("apt-get")
    ):
        session.log(f"installing Debian packages for: {', '.join(missing)}")
        env = {"DEBIAN_FRONTEND": "noninteractive"}
        session.run("apt-get", "update", "-q", external=True, env=env)
        session.run(
            "apt-get", "install", "-y", "-q", "--no-install-recommends",
            "redis-server", "redis-tools", "zookeeper",
            external=True, env=env,
        )  # fmt: skip
        # The Debian redis-server package starts a system service; our
        # tests start their own servers and do not need it.
        subprocess.run(
            ["service", "redis-server", "stop"], check=False,
            capture_output=True,
        )  # fmt: skip
        return
    message = (
        f"missing: {', '.join(missing)}. Install the Debian packages "
        "redis-server redis-tools zookeeper (and a Java runtime)"
    )
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        session.error(f"CI=true and servers are {message}")
    session.warn(f"{message}; tests that need them will be skipped")


@nox.session
def tests(session: nox.Session) -> None:
    """Run unit and integration tests (real servers) with branch coverage."""
    _ensure_servers(session)
    session.install("-e", ".[all]", *TEST_DEPS)
    session.run("coverage", "erase")
    session.run(
        "pytest",
        "--cov=dprims",
        "--cov-branch",
        "--cov-report=term-missing:skip-covered",
        "--cov-fail-under=90",
        *session.posargs,
    )


@nox.session
def lint(session: nox.Session) -> None:
    """Check style with ruff (lint and format)."""
    session.install("ruff>=0.6")
    targets = ["src", "tests", "benchmarks", "examples", "noxfile.py"]
    session.run("ruff", "check", *targets)
    session.run("ruff", "format", "--check", *targets)


@nox.session
def typecheck(session: nox.Session) -> None:
    """Type-check the package with mypy --strict."""
    session.install("-e", ".[all]", "mypy>=1.10", "types-cachetools")
    session.run("mypy", "--strict", "src/dprims")


@nox.session
def docs(session: nox.Session) -> None:
    """Build the docs with warnings as errors and run their doctests."""
    session.install("-e", ".[all]", *DOCS_DEPS)
    build = ROOT / "docs" / "_build"
    session.run(
        "sphinx-build", "-n", "-W", "--keep-going",
        "-b", "html", "docs", str(build / "html"),
    )  # fmt: skip
    session.run(
        "sphinx-build", "-n", "-W", "--keep-going",
        "-b", "doctest", "docs", str(build / "doctest"),
    )  # fmt: skip


@nox.session
def bench(session: nox.Session) -> None:
    """Run benchmarks beside their peer libraries and print ratios."""
    _ensure_servers(session)
    session.install(
        "-e", ".[all]", "pytest>=8", "pytest-benchmark>=4",
        "pytest-timeout>=2.3",
    )  # fmt: skip
    for requirements in sorted(ROOT.glob("benchmarks/requirements-*.txt")):
        session.install("-r", str(requirements))
    (ROOT / ".benchmarks").mkdir(exist_ok=True)
    session.run(
        "pytest",
        "benchmarks",
        "-p",
        "no:randomly",
        # Peers may warn about their own deprecations; that is not our bug.
        "-W",
        "default",
        "--timeout=900",
        "--benchmark-only",
        "--benchmark-columns=mean,ops,rounds",
        "--benchmark-sort=name",
        f"--benchmark-json={ROOT / '.benchmarks' / 'last.json'}",
        *session.posargs,
    )


@nox.session
def demo(session: nox.Session) -> None:
    """Run the tour of every primitive."""
    session.install(".")
    session.run("python", "-m", "dprims", "demo")
