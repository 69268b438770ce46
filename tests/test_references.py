"""Docs and comments follow the code: every repository file a page or a docstring names exists, and every
dotted name of the package (`iqrl.envs.perturb.PerturbedEnv`, `python -m iqrl.multiseed`) imports and
resolves."""

from __future__ import annotations

import importlib
import re
import subprocess
from pathlib import Path

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
}


def sources() -> list[Path]:
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return [ROOT / f for f in files.split() if f.endswith((".md", ".py", ".yaml")) and (ROOT / f).is_file()]


def cited_paths(text: str) -> set[str]:
    out = set()
    for m in PATH.finditer(text):
        path = m.group(1).rstrip(".")
        if "*" in path or "<" in path:
            continue
        out.add(path)
    return out


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


def test_every_repository_path_a_page_or_docstring_names_exists():
    missing = {}
    for f in sources():
        for path in cited_paths(f.read_text()):
            if path not in EXAMPLES and not (ROOT / path).exists():
                missing.setdefault(str(f.relative_to(ROOT)), []).append(path)
    assert not missing, f"paths that do not exist: {missing}"


def test_every_dotted_name_of_the_package_resolves():
    broken = {}
    for f in sources():
        for m in DOTTED.finditer(f.read_text()):
            name = m.group(1).rstrip(".")
            if name not in EXAMPLES and not resolves(name):
                broken.setdefault(str(f.relative_to(ROOT)), []).append(name)
    assert not broken, f"names that do not resolve: {broken}"
