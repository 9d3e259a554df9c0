from __future__ import annotations

import re
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent


def _console_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text("utf-8")
    blocks = re.findall(r"```console\n(.*?)```", readme, flags=re.DOTALL)
    return [line.strip() for block in blocks for line in block.splitlines()]


class TestReadme:
    def test_ci_runs_the_readme_test_command_unchanged(self) -> None:
        """.ci/run calls exactly the test command that README.md shows."""
        test_commands = [c for c in _console_commands() if "-s tests" in c]
        ci = (ROOT / ".ci" / "run").read_text("utf-8").splitlines()

        assert 1 == len(test_commands)
        assert test_commands[0] in ci

    def test_readme_shows_the_tour_command(self) -> None:
        """README.md shows how to run the tour."""
        tour = [c for c in _console_commands() if "dprims demo" in c]

        assert ["python3 -m pip install . && python3 -m dprims demo"] == tour
