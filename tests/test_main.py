from __future__ import annotations

import subprocess
import sys

import pytest

from dprims.__main__ import SECTIONS, main, run_demo


class TestCommandLine:
    def test_help_works(self, capsys: pytest.CaptureFixture[str]) -> None:
        """--help prints usage and exits 0."""
        with pytest.raises(SystemExit) as info:
            main(["--help"])

        assert 0 == info.value.code
        assert "demo" in capsys.readouterr().out

    def test_unknown_arguments_are_a_usage_error(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """An unknown argument exits 2 with a usage message."""
        with pytest.raises(SystemExit) as info:
            main(["demo", "--bogus"])

        assert 2 == info.value.code
        assert "unrecognized arguments: --bogus" in capsys.readouterr().err

    def test_no_command_prints_help(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Without a command the help is shown and the exit code is 2."""
        assert 2 == main([])
        assert "usage:" in capsys.readouterr().out

    @pytest.mark.parametrize("section", [name for name, _ in SECTIONS])
    def test_each_section_prints(self, section: str) -> None:
        """Every tour section runs and prints a few lines."""
        lines: list[str] = []

        run_demo([section], out=lines.append)

        assert f"== {section} ==" == lines[0]
        assert len(lines) >= 3

    def test_tour_runs_as_a_module(self) -> None:
        """python -m dprims demo runs the whole tour and exits 0."""
        result = subprocess.run(
            [sys.executable, "-m", "dprims", "demo"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

        assert 0 == result.returncode, result.stderr
        for name, _ in SECTIONS:
            assert f"== {name} ==" in result.stdout
