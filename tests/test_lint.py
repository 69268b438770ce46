"""ruff on an agent's own files in `make test-agent` (`make test` runs it on every file first: `make lint`):
its modules, tracked or not, and the test files of its own maths."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import agent_modules, own_test_files

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.registry
def test_the_agents_files_pass_ruff(agent, request):
    """The formatter's check and the linter, with the repository's configuration (pyproject.toml: a scratch
    registry's modules outside the repository get it too)."""
    if not request.config.getoption("--agent"):
        pytest.skip("make test runs ruff on every file (make lint)")
    tests = [ROOT / "tests" / name for name in sorted(own_test_files([agent]))]
    files = [str(f) for f in [*agent_modules(agent), *tests] if f.exists()]
    config = ["--config", str(ROOT / "pyproject.toml")]
    for check in (["format", "--check", "--diff"], ["check"]):
        r = subprocess.run(
            [sys.executable, "-m", "ruff", *check, *config, *files], cwd=ROOT, capture_output=True, text=True
        )
        assert r.returncode == 0, f"ruff {' '.join(check)} on {agent}'s files:\n{r.stdout}{r.stderr}"
