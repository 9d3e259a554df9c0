"""The dprims exception tree.

Every error that dprims raises on purpose derives from `DprimsError`, so a
caller can catch "anything dprims decided" in one clause. Errors that are also
bad input derive from `ValueError` or `TypeError` as well, so code written
against the standard library's conventions keeps working.

Status: stable.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING


if TYPE_CHECKING:
    from collections.abc import Iterator


__all__ = [
    "BackendError",
    "BackendTimeout",
    "ConfigurationError",
    "DprimsError",
    "IdempotencyConflict",
    "LeadershipLost",
    "LockNotAcquired",
    "MissingDependencyError",
    "NoEndpointAvailable",
    "RateLimitExceeded",
    "ServerNotFoundError",
]


class DprimsError(Exception):
    """Root of every error that dprims raises on purpose.

    .. versionadded:: 0.1
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigurationError(DprimsError, ValueError):
    """Raised at construction when an argument has an invalid value.

    It is a `ValueError` too, and its message names the argument.

    .. versionadded:: 0.1
    """


class BackendError(DprimsError):
    """Raised when a shared engine (Redis, ZooKeeper) fails an operation.

    The driver's exception is kept as ``__cause__``; *backend* names the
    engine (``"redis"`` or ``"zookeeper"``).

    .. versionadded:: 0.1
    """

    def __init__(self, message: str, *, backend: str = "") -> None:
        super().__init__(message)
        self.backend = backend


class BackendTimeout(BackendError):
    """Raised when a shared engine does not answer within the set timeout.

    .. versionadded:: 0.1
    """


class RateLimitExceeded(DprimsError):
    """Raised by blocking rate-limit calls that could not be admitted in time.

    *retry_after* is the number of seconds after which a retry may succeed;
    *decision* is the limiter's last decision value, when there is one.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        message: str,
        *,
        retry_after: float,
        decision: object | None = None,
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.decision = decision


class LockNotAcquired(DprimsError):
    """Raised when a lock or leadership could not be acquired in time.

    .. versionadded:: 0.1
    """


class LeadershipLost(DprimsError):
    """Raised when an operation needs leadership that has been lost.

    .. versionadded:: 0.1
    """


class IdempotencyConflict(DprimsError):
    """Raised when an idempotency key is reused with a different request.

    .. versionadded:: 0.1
    """


class NoEndpointAvailable(DprimsError):
    """Raised when a balancer has no endpoint it may pick.

    This happens for an empty pool and when every endpoint is ejected or
    unhealthy and the panic threshold does not apply.

    .. versionadded:: 0.1
    """


class MissingDependencyError(DprimsError, ImportError):
    """Raised when an optional client library is not installed.

    The message names the extra to install, for example
    ``pip install 'dprims[redis]'``.

    .. versionadded:: 0.1
    """


class ServerNotFoundError(DprimsError, FileNotFoundError):
    """Raised by `dprims.testing` when a server binary cannot be found.

    The message names the Debian packages that provide it and the
    environment variable that can point at it.

    .. versionadded:: 0.1
    """


def _missing_extra(module: str, extra: str) -> MissingDependencyError:
    """Return the error raised when *module* from the *extra* is missing.

    Backend modules call this from an ``except ImportError`` around the
    driver import, so the message always has the same shape.
    """
    return MissingDependencyError(
        f"{module!r} is not installed; it is needed for this dprims "
        f"backend. Install it with: pip install 'dprims[{extra}]'"
    )


@contextlib.contextmanager
def _map_errors(
    backend: str,
    mapping: tuple[tuple[type[BaseException], type[BackendError]], ...],
    what: str,
) -> Iterator[None]:
    """Translate driver exceptions into dprims errors within the block.

    *mapping* pairs a driver exception class with the dprims class to raise
    for it; the first match wins, and the driver's exception becomes the
    ``__cause__``. Exceptions not in *mapping* pass through untouched, so
    programming errors are never hidden behind a backend error.
    """
    try:
        yield
    except DprimsError:
        raise
    except BaseException as exc:
        for source, target in mapping:
            if isinstance(exc, source):
                raise target(
                    f"{backend} failed during {what}: {exc}", backend=backend
                ) from exc
        raise
