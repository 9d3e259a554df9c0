from __future__ import annotations

import pytest

from dprims import errors
from dprims.errors import (
    BackendError,
    BackendTimeout,
    ConfigurationError,
    DprimsError,
    MissingDependencyError,
    RateLimitExceeded,
    _map_errors,
    _missing_extra,
)


class TestErrorTree:
    @pytest.mark.parametrize("name", errors.__all__)
    def test_every_error_derives_from_the_root(self, name: str) -> None:
        """Every public error is a DprimsError with a docstring."""
        cls = getattr(errors, name)

        assert issubclass(cls, DprimsError)
        assert cls.__doc__

    def test_configuration_error_is_a_value_error(self) -> None:
        """Bad-argument errors can be caught as ValueError."""
        exc = ConfigurationError("rate must be > 0, got 0")

        assert isinstance(exc, ValueError)
        assert "rate must be > 0, got 0" == str(exc)

    def test_rate_limit_exceeded_carries_its_data(self) -> None:
        """RateLimitExceeded keeps retry_after and the decision."""
        exc = RateLimitExceeded("denied", retry_after=1.5, decision="d")

        assert 1.5 == exc.retry_after
        assert "d" == exc.decision
        assert "denied" == exc.message

    def test_missing_extra_names_the_extra(self) -> None:
        """The ImportError for a missing driver says what to install."""
        exc = _missing_extra("redis", "redis")

        assert isinstance(exc, ImportError)
        assert isinstance(exc, MissingDependencyError)
        assert "pip install 'dprims[redis]'" in str(exc)


class TestMapErrors:
    MAPPING = ((TimeoutError, BackendTimeout), (OSError, BackendError))

    def test_translates_and_chains(self) -> None:
        """A mapped driver error becomes a dprims error with the cause kept."""
        cause = ConnectionRefusedError("refused")

        with pytest.raises(BackendError) as info:
            with _map_errors("redis", self.MAPPING, "GET"):
                raise cause

        assert info.value.__cause__ is cause
        assert "redis" == info.value.backend
        assert "GET" in str(info.value)

    def test_first_match_wins(self) -> None:
        """TimeoutError maps to BackendTimeout although it is an OSError."""
        with pytest.raises(BackendTimeout):
            with _map_errors("redis", self.MAPPING, "GET"):
                raise TimeoutError

    def test_unmapped_and_dprims_errors_pass_through(self) -> None:
        """Programming errors and dprims errors are not re-wrapped."""
        with pytest.raises(KeyError):
            with _map_errors("redis", self.MAPPING, "GET"):
                raise KeyError("k")
        with pytest.raises(ConfigurationError):
            with _map_errors("redis", self.MAPPING, "GET"):
                raise ConfigurationError("bad")
