"""docs/extending.md's promise, tried as a new user would: its example agents (DDPG on a shared learner, DPG
on the interface itself, a one-step DQN in discrete action spaces, CURL from pixels only), built from the
page's code blocks alone, pass every registry-wide test (`make test-agent`) in a scratch registry. The module
and the registry line (and a task file, where the example has one) are all they need; the page's checklist
is what this test follows. `make test-agent` also fails where `make test` would for a new agent: a switch
page that `make switches` has not rewritten, a module citing what does not exist."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "extending.md"


def blocks() -> list[tuple[str, str]]:
    """(language, code) of every fenced block of the page."""
    return re.findall(r"```(\w+)\n(.*?)```", PAGE.read_text(), re.S)


EXAMPLES = ("ddpg", "dpg", "mini-dqn")
PIXEL_EXAMPLE = "curl"


def example(name: str) -> tuple[str, str]:
    """The module and the registry line of the page's example agent `name`: the module is the block whose
    config is named `name` (`name: str = "<name>"`), the registry line the block with
    `"<name>": AgentEntry(`."""
    modules = [c for lang, c in blocks() if lang == "python" and f'    name: str = "{name}"\n' in c]
    lines = [c for lang, c in blocks() if lang == "python" and f'"{name}": AgentEntry(' in c]
    assert len(modules) == len(lines) == 1, (
        f"docs/extending.md: no single module and registry line for {name}"
    )
    return modules[0], lines[0].strip().rstrip(",")


def scratch_registry(tmp_path: Path, names=EXAMPLES, edit=lambda module: module) -> Path:
    """The examples written where the page puts them, relocated to a scratch package (baselines/ is this
    repository's, iqrl/configs too): modules in scratch_agents/, a task file (the page's two-line one, where
    the registry line names one) beside them. `edit` changes a module's text first."""
    package = tmp_path / "scratch_agents"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    tasks = dict(blocks())["yaml"]
    entries = []
    for name in names:
        module, line = example(name)
        stem = name.replace("-", "_")  # a module's name (and its task file's) has _ where the agent's has -
        assert f'"baselines.{stem}:' in line, line
        (package / f"{stem}.py").write_text(edit(module))
        line = line.replace('"baselines.', '"scratch_agents.')
        if f'"{stem}_tasks.yaml"' in line:
            (package / f"{stem}_tasks.yaml").write_text(tasks)
            line = line.replace(f'"{stem}_tasks.yaml"', repr(str(package / f"{stem}_tasks.yaml")))
        entries.append(line)
    registry = tmp_path / "scratch_registry.py"
    registry.write_text(
        "from iqrl.core.registry import REGISTRY, AgentEntry\n\nREGISTRY.update({\n"
        + "".join(f"    {e},\n" for e in entries)
        + "})\n"
    )
    return registry


def switch_page(tmp_path: Path, registry: Path) -> Path:
    """docs/switches.md as `make switches` writes it once the scratch agents are registered: what a user runs
    after adding the registry line; the agent lists of README.md and docs/ it writes too, into a copy of them
    beside it (`docs_root`: the folder above the page's)."""
    root = tmp_path / "docs-root"
    shutil.copytree(ROOT / "docs", root / "docs")
    shutil.copy(ROOT / "README.md", root / "README.md")
    page = root / "docs" / "switches.md"
    code = (
        f"import runpy, sys\nsys.path.insert(0, {str(registry.parent)!r})\n"
        f"runpy.run_path({str(registry)!r})\n"
        "from iqrl import agent_docs\nfrom iqrl.config import switch_docs\nfrom iqrl.core import registry\n"
        "text = switch_docs.PAGE.read_text()\n"
        f"open({str(page)!r}, 'w').write(switch_docs.page(registry.agent_names(), text))\n"
        f"agent_docs.main(['--root', {str(root)!r}])\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
    return page


def docs_root(page: Path) -> str:
    """The copy of README.md and docs/ that `switch_page` wrote the page into."""
    return str(page.parent.parent)


def make_test_agent(names, *options: str, tests: tuple[str, ...] = ("tests",)) -> subprocess.CompletedProcess:
    """The command `make test-agent NAME=<names>` runs (read from the Makefile with `make -n`), with
    `options` added and `tests` as its test paths."""
    dry = subprocess.run(
        ["make", "-n", "-s", "test-agent", f"NAME={','.join(names)}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    line = next(line for line in dry.stdout.splitlines() if " -m pytest " in line)
    cmd = shlex.split(line)
    assert cmd[-1] == "tests" and "--agent" in cmd, line  # its test paths last, to replace
    cmd = [sys.executable, *cmd[1:-1], "-p", "no:cacheprovider", *options, *tests]
    # its tests' CPU profile (IQRL_TEST_CPU) is this test's own: not written a second time by the inner run
    env = {**{k: v for k, v in os.environ.items() if k != "IQRL_TEST_CPU"}, "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)


def passed(r: subprocess.CompletedProcess) -> int:
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-3000:]
    assert " failed" not in r.stdout
    return int(re.search(r"(\d+) passed", r.stdout).group(1))


def test_the_pages_examples_pass_every_registry_wide_test(tmp_path):
    """`make test-agent NAME=ddpg,dpg,mini-dqn` on the examples, as pytest runs it (the compile check through
    AOT only, as in the full suite: inductor would take minutes)."""
    registry = scratch_registry(tmp_path)
    page = switch_page(tmp_path, registry)
    options = ("--scratch-registry", str(registry), "--switch-page", str(page))
    options += ("--docs-root", docs_root(page), "--compile-check", "aot")
    # conformance, ranges, parts, switches, K-seed, compile, citations, ruff
    assert passed(make_test_agent(EXAMPLES, *options)) >= len(EXAMPLES) * 14


@pytest.mark.slow
def test_the_pixel_example_passes_every_registry_wide_test(tmp_path, renderer):
    """`make test-agent NAME=curl` on the pixel-only example (its module and its registry line, no task file):
    every registry-wide test builds it from tiny frame stacks and its runs render them."""
    registry = scratch_registry(tmp_path, [PIXEL_EXAMPLE])
    page = switch_page(tmp_path, registry)
    options = ("--scratch-registry", str(registry), "--switch-page", str(page))
    options += ("--docs-root", docs_root(page), "--compile-check", "aot")
    r = make_test_agent([PIXEL_EXAMPLE], "-rA", *options)
    assert passed(r) >= 20
    # the tests say it was built from pixels
    ran = re.findall(rf"PASSED tests/\S+::(\w+)\[{PIXEL_EXAMPLE}-from-pixels\]", r.stdout)
    assert {"test_interrupt_and_resume_gives_identical_eval", "test_the_agents_files_pass_ruff"} <= set(ran)


def test_make_test_agent_fails_on_a_stale_switch_page(tmp_path):
    """A new agent registered without `make switches`: its keys are missing from docs/switches.md, and `make
    test-agent` says to run it; with the page `make switches` writes it passes."""
    registry = scratch_registry(tmp_path, ["dpg"])
    tests = ("tests/test_switch_map.py",)
    r = make_test_agent(["dpg"], "--scratch-registry", str(registry), tests=tests)
    assert r.returncode == 1, r.stdout[-3000:]
    assert "docs/switches.md is not up to date: run `make switches`" in r.stdout
    page = switch_page(tmp_path, registry)
    assert passed(
        make_test_agent(["dpg"], "--scratch-registry", str(registry), "--switch-page", str(page), tests=tests)
    )


def test_make_test_agent_fails_on_a_bad_citation_in_a_new_module(tmp_path):
    """A module git does not track citing a file and a name that do not exist: `make test-agent` names each,
    with the file and line; the page's module as written passes."""
    # written in two pieces here, so that this file cites neither (tests/test_references.py reads it too)
    path, name = "iqrl/nn/" + "no_such_file.py", "iqrl.nn.maths." + "no_such_function"
    bad = f"# its target: {path}, computed by {name}"
    tests = ("tests/test_references.py",)
    registry = scratch_registry(tmp_path / "bad", ["dpg"], lambda module: f"{bad}\n{module}")
    r = make_test_agent(["dpg"], "--scratch-registry", str(registry), tests=tests)
    assert r.returncode == 1, r.stdout[-3000:]
    module = tmp_path / "bad" / "scratch_agents" / "dpg.py"
    assert f"{module}:1: {path} (not a file of this repository)" in r.stdout
    assert f"{module}:1: {name} (does not resolve)" in r.stdout
    registry = scratch_registry(tmp_path / "good", ["dpg"])
    assert passed(make_test_agent(["dpg"], "--scratch-registry", str(registry), tests=tests)) == 1


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
