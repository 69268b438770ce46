"""The docs' list of sweep files cannot go stale: docs/sweeps.md's list is what slurm/sweep_docs.py writes
from ablations/*.yaml (`make switches`), and a sweep file added without `make switches` fails the check."""

from __future__ import annotations

import shutil

from slurm import sweep_docs

SMALL = """# Two agents (a study. of things): on one task.
# More.
agents: [iqrl, td3]
tasks: [walker-walk]
seeds: 3
steps: 1000
"""


def test_the_sweep_lists_are_what_make_switches_writes():
    old = sweep_docs.stale(sweep_docs.ROOT)
    assert not old, f"the sweep lists of {old} are stale: run `make switches`"
    assert "docs/sweeps.md" in {
        str(p.relative_to(sweep_docs.ROOT))
        for p in sweep_docs.pages(sweep_docs.ROOT)
        if sweep_docs.MARKED.search(p.read_text())
    }


def test_a_new_sweep_file_is_listed_with_its_size_and_headline_and_fails_the_check_until_written(tmp_path):
    folder = tmp_path / "ablations"
    shutil.copytree(sweep_docs.ABLATIONS, folder)
    (folder / "zz_new.yaml").write_text(SMALL)
    assert sweep_docs.headline(folder / "zz_new.yaml") == "Two agents (a study. of things)"
    line = "- `zz_new.yaml` (2 agents, 1 task, 3 seeds): Two agents (a study. of things)"
    assert sweep_docs.sweep_list(folder).strip().splitlines()[-1] == line
    stale = sweep_docs.stale(sweep_docs.ROOT, folder)
    assert [str(p.relative_to(sweep_docs.ROOT)) for p in stale] == ["docs/sweeps.md"]
