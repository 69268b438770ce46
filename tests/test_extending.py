"""docs/extending.md's promise, tried as a new user would: its three example agents (DDPG on a shared learner,
DPG on the interface itself, a one-step DQN in discrete action spaces), built from the page's code blocks
alone, pass every registry-wide test (`make test-agent`) in a scratch registry. The module, the registry line
and the task file are all they need; the page's checklist is what this test follows."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "extending.md"


def blocks() -> list[tuple[str, str]]:
    """(language, code) of every fenced block of the page."""
    return re.findall(r"```(\w+)\n(.*?)```", PAGE.read_text(), re.S)


EXAMPLES = ("ddpg", "dpg", "mini-dqn")


def example(name: str) -> tuple[str, str, str]:
    """The module, the registry line and the task file of the page's example agent `name`: the module is the
    block whose config is named `name` (`name: str = "<name>"`), the registry line the block with
    `"<name>": AgentEntry(`."""
    code = dict(blocks())
    modules = [c for lang, c in blocks() if lang == "python" and f'    name: str = "{name}"\n' in c]
    lines = [c for lang, c in blocks() if lang == "python" and f'"{name}": AgentEntry(' in c]
    assert len(modules) == len(lines) == 1, (
        f"docs/extending.md: no single module and registry line for {name}"
    )
    return modules[0], lines[0].strip().rstrip(","), code["yaml"]


def scratch_registry(tmp_path: Path) -> Path:
    """The examples written where the page puts them, relocated to a scratch package (baselines/ is this
    repository's, iqrl/configs too): modules in scratch_agents/, task files beside them."""
    package = tmp_path / "scratch_agents"
    package.mkdir()
    (package / "__init__.py").write_text("")
    entries = []
    for name in EXAMPLES:
        module, line, tasks = example(name)
        stem = name.replace("-", "_")  # a module's name (and its task file's) has _ where the agent's has -
        assert f'"baselines.{stem}:' in line and f'"{stem}_tasks.yaml"' in line, line
        (package / f"{stem}.py").write_text(module)
        (package / f"{stem}_tasks.yaml").write_text(tasks)
        line = line.replace('"baselines.', '"scratch_agents.')
        entries.append(line.replace(f'"{stem}_tasks.yaml"', repr(str(package / f"{stem}_tasks.yaml"))))
    registry = tmp_path / "scratch_registry.py"
    registry.write_text(
        "from iqrl.core.registry import REGISTRY, AgentEntry\n\nREGISTRY.update({\n"
        + "".join(f"    {e},\n" for e in entries)
        + "})\n"
    )
    return registry


def test_the_pages_examples_pass_every_registry_wide_test(tmp_path):
    """`make test-agent NAME=ddpg,dpg,mini-dqn` on the examples, as pytest runs it (the compile check through
    AOT only, as in the full suite: inductor would take minutes)."""
    registry = scratch_registry(tmp_path)
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-n",
        "0",
        "-p",
        "no:cacheprovider",
        "-m",
        "registry",
        "--agent",
        ",".join(EXAMPLES),
        "--scratch-registry",
        str(registry),
        "--compile-check",
        "aot",
        "tests",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-3000:]
    passed = int(re.search(r"(\d+) passed", r.stdout).group(1))
    assert (
        passed >= len(EXAMPLES) * 12 and " failed" not in r.stdout
    )  # conformance, ranges, parts, switches, K-seed, compile


def test_make_test_agent_with_an_unknown_name_is_one_error_line_before_any_test_is_collected():
    """`make test-agent NAME=td4`: one line naming the close agents and all of them, exit 2, nothing collected
    (it was a collection error per test module after a minute)."""
    from iqrl.core.registry import agent_names

    cmd = [sys.executable, "-m", "pytest", "-q", "-n", "0", "-p", "no:cacheprovider", "-m", "registry"]
    r = subprocess.run([*cmd, "--agent", "td3,td4", "tests"], cwd=ROOT, capture_output=True, text=True)
    assert (r.returncode, r.stdout) == (2, "")
    assert (
        r.stderr
        == f"error: unknown agent 'td4' (did you mean td7, td3?); valid agents: {', '.join(agent_names())}\n"
    )
