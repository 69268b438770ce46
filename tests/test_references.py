"""Docs and comments follow the code: every repository file a page or a docstring names exists, and every
dotted name of the package (`iqrl.envs.perturb.PerturbedEnv`, `python -m iqrl.multiseed`) imports and
resolves. The tracked files here; an agent's own modules, tracked or not, in its registry-wide test
(`make test-agent`: a new agent's module before its first commit, or a scratch registry's)."""

from __future__ import annotations

import importlib
import re
import subprocess
from pathlib import Path

import pytest

from conftest import agent_modules

ROOT = Path(__file__).resolve().parents[1]
TOP = ("iqrl", "baselines", "analysis", "slurm", "scripts", "tests", "docs", "ablations", ".ci")
# a file of the repository: a top-level folder, then a path ending in a file name with an extension
PATH = re.compile(
    r"(?<![\w./-])((?:" + "|".join(re.escape(t) for t in TOP) + r")/[\w/.-]*\.(?:py|md|yaml|sh))\b"
)
# a module of the package and what follows it: iqrl.<module>[.<name>...], and the old flat modules' names
MODULES = "core|nn|agent|learners|multiseed|bench|train|video|demo|agents|envs|replay|layers|maths|optim"
MODULES += "|checks|config|runfolder|loggers|diagnostics|quantizers|bench_plain|gpu_report"
DOTTED = re.compile(
    r"(?<![\w./-])((?:iqrl\.(?:" + MODULES + r")|baselines\.[a-z_]+)(?:\.[A-Za-z_]\w*)*)(?!\.py)\b"
)
# names that look like package paths but are examples of names a user would make (docs/extending.md)
EXAMPLES = {
    "baselines/ddpg.py",
    "baselines/dpg.py",
    "baselines.ddpg",
    "baselines.dpg",
    "iqrl/configs/ddpg_tasks.yaml",
    "iqrl/configs/dpg_tasks.yaml",
    "baselines/mini_dqn.py",
    "baselines.mini_dqn",
    "iqrl/configs/mini_dqn_tasks.yaml",
    "baselines/curl.py",
    "baselines.curl",
    "slurm/profiles/mycluster.yaml",  # README.md: a copy of gpu.yaml for the reader's cluster
}


def sources() -> list[Path]:
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return [ROOT / f for f in files.split() if f.endswith((".md", ".py", ".yaml")) and (ROOT / f).is_file()]


def line_of(text: str, index: int) -> int:
    return text.count("\n", 0, index) + 1


def resolves(dotted: str) -> bool:
    """Whether the longest importable module prefix of `dotted` has the rest as attributes."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for name in parts[i:]:
            if not hasattr(obj, name):
                return False
            obj = getattr(obj, name)
        return True
    return False


def missing_paths(text: str) -> list[tuple[int, str]]:
    """(line, path) of each repository path `text` names that does not exist (a pattern with * or <...>
    names none)."""
    found = [(line_of(text, m.start()), m.group(1).rstrip(".")) for m in PATH.finditer(text)]
    return [
        (line, path)
        for line, path in found
        if "*" not in path and "<" not in path and path not in EXAMPLES and not (ROOT / path).exists()
    ]


def broken_names(text: str) -> list[tuple[int, str]]:
    """(line, name) of each dotted name of the package in `text` that does not resolve."""
    found = [(line_of(text, m.start()), m.group(1).rstrip(".")) for m in DOTTED.finditer(text)]
    return [(line, name) for line, name in found if name not in EXAMPLES and not resolves(name)]


def test_every_repository_path_a_page_or_docstring_names_exists():
    missing = {
        str(f.relative_to(ROOT)): sorted({path for _, path in paths})
        for f in sources()
        if (paths := missing_paths(f.read_text()))
    }
    assert not missing, f"paths that do not exist: {missing}"


def test_every_dotted_name_of_the_package_resolves():
    broken = {
        str(f.relative_to(ROOT)): [name for _, name in names]
        for f in sources()
        if (names := broken_names(f.read_text()))
    }
    assert not broken, f"names that do not resolve: {broken}"


@pytest.mark.registry
def test_the_agents_modules_name_only_what_exists(agent):
    """The paths and package names the agent's modules cite (docstrings, comments) exist, read from the files
    themselves: `make test-agent` checks a module git does not track yet as `make test` checks the tracked."""
    bad = []
    for path in agent_modules(agent):
        text = path.read_text()
        bad += [f"{path}:{line}: {p} (not a file of this repository)" for line, p in missing_paths(text)]
        bad += [f"{path}:{line}: {name} (does not resolve)" for line, name in broken_names(text)]
    assert not bad, f"{agent}'s modules cite what does not exist: " + "; ".join(bad)
