"""A K-seed job in cohorts (run key `cohorts`, iqrl/multiseed/runs.py): its seeds in C groups of K / C, each
served by a thread of its own. Each seed computes as in a group of its cohort's seeds alone (its slot there,
recorded in meta.slot), so its rows are bitwise those of that group's run, whose seeds the K-seed tests bound
against single runs; a killed job resumes bitwise as the uninterrupted one, and only in its cohorts."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_multiseed import (
    GROUP,
    TINY,
    assert_killed_group_resumes_as_uninterrupted,
    eval_numbers,
    train_numbers,
    yaml_key,
)

from iqrl.multiseed.runs import cohort_slot, main
from iqrl.runfolder.exits import EXIT_BAD_INPUT
from iqrl.train import main as train_main

#: GROUP's keys (seeds=3,4, the session's finished group) without its seeds; envs in the process: four seeds'
#: worker processes would crowd a 2-core CI machine, and env_workers changes no bit (test_multiseed.py)
KEYS = [a for a in GROUP if not a.startswith(("seeds=", "env_workers="))] + ["env_workers=false"]


def test_cohort_slots_are_places_in_groups_of_k_over_c():
    assert [cohort_slot(k, 4, 2) for k in range(4)] == [(0, 2), (1, 2), (0, 2), (1, 2)]
    assert [cohort_slot(k, 4, 1) for k in range(4)] == [(k, 4) for k in range(4)]
    assert [cohort_slot(k, 6, 3) for k in range(6)] == [(0, 2), (1, 2)] * 3


def test_cohorts_train_each_seed_as_its_cohorts_group_and_resume_after_sigkill_bitwise(
    tmp_path, capsys, finished_runs
):
    """seeds=3,4,5,6 cohorts=2 (SIGKILLed once every seed checkpointed at 400, resumed): seeds 3, 4 write the
    rows of the group seeds=3,4 and seeds 5, 6 those of seeds=5,6, bit for bit; resumed with cohorts=1 (other
    slots, other rounding) it is refused in one line, nothing changed."""
    argv = [*KEYS, "cohorts=2"]

    def refused_in_one_group(run: Path) -> None:
        before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
        assert main([*KEYS, "cohorts=1", "seeds=3,4,5,6", f"out={run}"]) == EXIT_BAD_INPUT
        err = capsys.readouterr().err.splitlines()
        assert len(err) == 1 and "in slot 0 of 2 and would resume by" in err[0] and "slot 0 of 4" in err[0]
        assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before

    assert_killed_group_resumes_as_uninterrupted(tmp_path, argv, (3, 4, 5, 6), 400, refused_in_one_group)
    job = tmp_path / "ref"
    pairs = {3: GROUP, 5: [*KEYS, "seeds=5,6"]}
    for first, pair in pairs.items():
        ref = finished_runs.get(pair, group=True)
        for s in (first, first + 1):
            assert eval_numbers(job / f"seed{s}") == eval_numbers(ref / f"seed{s}")
            assert train_numbers(job / f"seed{s}") == train_numbers(ref / f"seed{s}")
            assert yaml_key(job / f"seed{s}", "meta")["slot"] == [s - first, 2]
            assert yaml_key(job / f"seed{s}", "cohorts") == 2
    assert eval_numbers(job / "seed3") != eval_numbers(job / "seed5")


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["seeds=0,1,2,3", "cohorts=3"],
            "error: cohorts=3 must divide the number of seeds (4): each cohort is a group of K / C seeds",
        ),
        (["seeds=0,1", "cohorts=0"], "error: cohorts must be >= 1, got 0"),
        (
            ["seeds=0,1", "cohorts=2", "compile=true", "cudagraphs=true"],
            "error: cohorts=2 with cudagraphs=true: a graph-captured group serves only in the main thread",
        ),
    ],
)
def test_cohorts_that_do_not_split_the_seeds_are_refused_in_one_line(tmp_path, capsys, argv, message):
    assert main([*TINY, *argv, f"out={tmp_path / 'job'}"]) == EXIT_BAD_INPUT
    assert capsys.readouterr().err.splitlines() == [message]
    assert not (tmp_path / "job").exists()


def test_a_single_run_takes_no_cohorts(tmp_path, capsys):
    assert train_main([*TINY, "seed=0", "cohorts=2", f"out={tmp_path / 'run'}"]) == EXIT_BAD_INPUT
    assert capsys.readouterr().err.splitlines() == [
        "error: cohorts=2 splits a K-seed group (python -m iqrl.multiseed seeds=...); a single run takes 1"
    ]
    assert not (tmp_path / "run").exists()
