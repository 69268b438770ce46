"""docs/switches.md stays true: every key of every agent config and every run key is listed there, and every
test it names exists."""

from __future__ import annotations

import ast
import re
from dataclasses import fields
from pathlib import Path

import pytest

from iqrl.core import registry as agents
from iqrl.core.config import TOP_LEVEL_KEYS

ROOT = Path(__file__).resolve().parents[1]
PAGE = (ROOT / "docs" / "switches.md").read_text()


def listed_keys() -> set[str]:
    """The first cell of every table row that names a key in backticks."""
    return set(re.findall(r"^\| `([A-Za-z0-9_.]+)` \|", PAGE, flags=re.M))


def agent_keys(name: str) -> set[str]:
    return {f"agent.{f.name}" for f in fields(agents.config_class(name))}


def every_key() -> set[str]:
    keys = {k for k in TOP_LEVEL_KEYS if k != "agent"}
    for name in agents.agent_names():
        keys |= agent_keys(name)
    return keys


def rows_to_paste(name: str, keys: list[str]) -> str:
    """The rows a new key needs, in the two tables' formats, to fill in and paste."""
    tested = "\n".join(f"| `{k}` | {name} | `tests/test_{name}.py::<the test that pins it>` |" for k in keys)
    untested = "\n".join(f"| `{k}` | <why it needs no behavioural test of its own> |" for k in keys)
    return (
        f"add these keys of agent {name} to docs/switches.md, under 'Keys with a behavioural test':\n"
        f"{tested}\n"
        f"or, with the reason, under 'Keys that need no behavioural test of their own':\n{untested}"
    )


@pytest.mark.registry
def test_every_key_of_the_agent_is_on_the_page(agent):
    missing = sorted(agent_keys(agent) - listed_keys())
    assert not missing, rows_to_paste(agent, missing)


def test_every_run_key_is_on_the_page_and_every_listed_key_exists():
    missing = sorted({k for k in TOP_LEVEL_KEYS if k != "agent"} - listed_keys())
    assert not missing, (
        f"add these run keys to docs/switches.md (with their tests, or why none is needed): {missing}"
    )
    assert not sorted(listed_keys() - every_key()), "docs/switches.md lists keys that no config has"


def test_every_named_test_exists():
    named = set(re.findall(r"`tests/(test_\w+\.py)::(\w+)`", PAGE))
    assert len(named) > 50
    defined: dict[str, set[str]] = {}
    for file, test in sorted(named):
        if file not in defined:
            tree = ast.parse((ROOT / "tests" / file).read_text())
            defined[file] = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
        assert test in defined[file], f"docs/switches.md names tests/{file}::{test}, which does not exist"
