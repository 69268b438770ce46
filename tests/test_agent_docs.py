"""The docs' lists of agents and per-agent defaults cannot go stale: README.md's and docs/'s generated parts
(iqrl/agent_docs.py, written by `make switches`) are what the registry gives, a new agent registered without
`make switches` fails the check until its pages are written again, and the hand-written tables that describe
agents one row each (docs/agents.md's sections, docs/pixels.md's encoders, docs/discrete.md's pieces) name
every agent they are about."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from iqrl import agent_docs
from iqrl.config.validate import pixel_agents
from iqrl.core import registry

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.registry
def test_the_agent_lists_are_what_make_switches_writes(request):
    """Run once by `make test-agent` as by `make test`, with a scratch registry's agents too (--docs-root: the
    pages `make switches` writes with them registered)."""
    root = Path(request.config.getoption("--docs-root"))
    old = agent_docs.stale(root, registry.agent_names())
    pages = ", ".join(str(p.relative_to(root)) for p in old)
    assert not old, f"the agent lists of {pages} are stale: run `make switches`"


def test_a_generated_part_is_written_between_its_markers_only():
    text = "a <!-- agents:count -->7<!-- /agents --> b\n<!-- agents:multitask -->x<!-- /agents -->"
    out = agent_docs.written(text, ["iqrl", "td3", "tdmpc2"])
    lists = "<!-- agents:multitask -->`iqrl` and `tdmpc2`<!-- /agents -->"
    assert out == f"a <!-- agents:count -->3<!-- /agents --> b\n{lists}"
    assert agent_docs.names(["a", "b", "c"]) == "`a`, `b` and `c`" and agent_docs.names(["a"]) == "`a`"
    with pytest.raises(ValueError, match="unknown generated part 'agent-colours'"):
        agent_docs.written("<!-- agents:agent-colours --><!-- /agents -->", ["td3"], "a-page.md")
    every = {m["name"] for p in agent_docs.pages(ROOT) for m in agent_docs.MARKED.finditer(p.read_text())}
    assert every == set(agent_docs.PARTS)  # each part is used somewhere


SCRATCH = """from iqrl.core.registry import REGISTRY, AgentEntry

REGISTRY["td3-copy"] = AgentEntry("baselines.td3:TD3", "baselines.td3:TD3Config", "td3_tasks.yaml")
"""


def docs_check(*options: str) -> subprocess.CompletedProcess:
    """The docs check as `make test-agent` runs it (pytest -m registry), with `options`."""
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
        *options,
    ]
    return subprocess.run([*cmd, "tests/test_agent_docs.py"], cwd=ROOT, capture_output=True, text=True)


def test_a_new_agent_fails_the_docs_check_until_make_switches_writes_its_pages(tmp_path):
    """An agent registered in a scratch registry (one line, no training): the check names the pages whose
    lists lack it; once `make switches` wrote them (here into a copy of the pages) it passes."""
    scratch = tmp_path / "scratch_registry.py"
    scratch.write_text(SCRATCH)
    r = docs_check("--scratch-registry", str(scratch))
    assert r.returncode == 1 and "are stale: run `make switches`" in r.stdout, r.stdout[-3000:]
    assert "docs/configuration.md" in r.stdout  # its table of each agent's defaults
    copy = tmp_path / "copy"
    shutil.copytree(ROOT / "docs", copy / "docs")
    shutil.copy(ROOT / "README.md", copy / "README.md")
    write = f"import runpy\nrunpy.run_path({str(scratch)!r})\nfrom iqrl import agent_docs\n"
    write += f"agent_docs.main(['--root', {str(copy)!r}])"  # `make switches` with the scratch agent
    subprocess.run([sys.executable, "-c", write], cwd=ROOT, check=True)
    assert "| `td3-copy` | boxes | states, pixels |" in (copy / "docs" / "configuration.md").read_text()
    r = docs_check("--scratch-registry", str(scratch), "--docs-root", str(copy))
    assert r.returncode == 0, r.stdout[-3000:]


def first_cells(page: str, header: str) -> set[str]:
    """The agent names in the first column of the table of docs/<page> whose header row starts so."""
    text = (ROOT / "docs" / page).read_text()
    table = text[text.index(header) :].split("\n\n")[0]
    return {n for row in table.splitlines()[2:] for n in re.findall(r"`([\w-]+)`", row.split("|")[1])}


def test_the_hand_written_agent_tables_name_every_agent_they_are_about():
    """docs/agents.md has a section for every agent (`## a, b`), docs/pixels.md's table of encoders a row for
    every agent obs=pixels works with, docs/discrete.md's table a row for every agent of discrete actions."""
    sections = re.findall(r"^## (.+)$", (ROOT / "docs" / "agents.md").read_text(), re.M)
    headed = {n.strip() for s in sections for n in s.split(",")}
    assert set(registry.agent_names()) <= headed, (
        f"docs/agents.md lacks a section for {sorted(set(registry.agent_names()) - headed)}"
    )
    assert first_cells("pixels.md", "| agent | encoder |") == set(pixel_agents())
    discrete = set(registry.action_agents("discrete"))
    assert discrete <= first_cells("discrete.md", "| piece | what it is |"), discrete
