"""docs/switches.md stays true: every key of every agent config and every run key is documented where it is
declared (its comment), the page's key tables are what `make switches` generates from those comments and
docs/switch_tests.yaml, and every test the page names exists."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import ClassVar

import pytest

from iqrl.config import switch_docs
from iqrl.config.run import RunConfig
from iqrl.core import registry as agents

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "switches.md"


def where_to_write(name: str, missing: list[str]) -> str:
    return (
        f"agent {name}: these keys have no comment, which is their documentation in docs/switches.md: "
        f"{'; '.join(missing)}. Write one at each key's declaration (file:line), after it (`key: int = 3  "
        "# what it means`) or on the lines just above it, then run `make switches`"
    )


@pytest.mark.registry
def test_every_key_of_the_agent_has_a_comment(agent):
    missing = switch_docs.undocumented(agents.config_class(agent))
    assert not missing, where_to_write(agent, missing)


def test_every_run_key_has_a_comment():
    missing = [k for k in switch_docs.undocumented(RunConfig) if not k.startswith("agent ")]
    assert not missing, where_to_write("(the run keys, iqrl/config/build.py RunConfig)", missing)


@pytest.mark.registry
def test_the_page_is_what_make_switches_writes(request):
    """Every registered agent's keys (a scratch registry's too: tests/test_extending.py hands the page that
    `make switches` writes with them as --switch-page); run once by `make test-agent` as by `make test`."""
    page = Path(request.config.getoption("--switch-page"))
    text = page.read_text()
    assert text == switch_docs.page(agents.agent_names(), text), (
        f"{switch_docs.shown(str(page))} is not up to date: run `make switches`"
    )


def test_every_key_given_tests_exists():
    keys = {f.name for f in fields(RunConfig) if f.name != "agent"}
    for name in agents.agent_names():
        keys |= {f"agent.{f.name}" for f in fields(agents.config_class(name))}
    unknown = sorted(set(switch_docs.key_tests()) - keys)
    assert not unknown, f"docs/switch_tests.yaml names keys that no config has: {unknown}"


def test_every_named_test_exists():
    named = set(re.findall(r"`tests/(test_\w+\.py)::(\w+)`", PAGE.read_text()))
    assert len(named) > 50
    defined: dict[str, set[str]] = {}
    for file, test in sorted(named):
        if file not in defined:
            tree = ast.parse((ROOT / "tests" / file).read_text())
            defined[file] = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
        assert test in defined[file], f"docs/switches.md names tests/{file}::{test}, which does not exist"


@dataclass
class Documented:
    """A config whose keys are documented every way the generator reads (and one that is not)."""

    TINY: ClassVar[dict] = {}  # a class variable, no key
    after: int = 1  # the comment after the key
    # the lines above the key,
    # joined
    above: float = 0.5
    # --- a title, which documents nothing ---
    both: str = "x"  # and after it
    bare: bool = False
    wrapped: list[int] = field(
        default_factory=lambda: [1, 2]  # a comment inside the declaration
    )


def test_a_keys_documentation_is_the_comment_above_it_then_the_one_after_it():
    found = switch_docs.declarations(Documented)
    assert {k: d.doc for k, d in found.items()} == {
        "after": "the comment after the key",
        "above": "the lines above the key, joined",
        "both": "and after it",
        "bare": "",
        "wrapped": "a comment inside the declaration",
    }
    assert found["bare"].file == "tests/test_switch_map.py"
    lines = Path(__file__).read_text().splitlines()
    assert lines[found["bare"].line - 1].strip() == "bare: bool = False"
    assert switch_docs.undocumented(Documented) == [f"bare (tests/test_switch_map.py:{found['bare'].line})"]
    # a row's cells: `|` escaped, a default per group of agents, tests with their notes
    assert switch_docs.cell("cpu | cuda") == "cpu \\| cuda"
    assert switch_docs.by_agents({"a": "1", "b": "2", "c": "1"}, quote=True) == "a, c: `1`<br>b: `2`"
    assert (
        switch_docs.tests_cell(["tests/test_cuda.py::test_z (GPU only)"])
        == "`tests/test_cuda.py::test_z` (GPU only)"
    )
    assert switch_docs.tests_cell("value") == switch_docs.VALUE and switch_docs.tests_cell(None) == ""
