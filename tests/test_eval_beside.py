"""Evaluation beside training (run key eval_beside, iqrl/loop/beside.py): an evaluation in its own thread on a
snapshot of the agent writes the numbers of the evaluation in line, moves no training number, and a run
stopped with one under way resumes to the uninterrupted run. (For every registered agent:
tests/test_eval_streams.py, which runs the agent's end-to-end run again with its evaluations beside.)"""

from __future__ import annotations

import csv

import pytest
import torch

from iqrl.runfolder.exits import EXIT_INTERRUPTED, EXIT_OK
from iqrl.runfolder.layout import TIME_COLUMNS
from iqrl.train import main

from conftest import count_evaluations_beside, missing_suite, stop_at_env_step, tiny_argv


def rows(path, drop=TIME_COLUMNS) -> list[dict]:
    with open(path) as f:
        return [{k: v for k, v in r.items() if k not in drop} for r in csv.DictReader(f)]


def agent_state(run) -> dict:
    return torch.load(run / "checkpoint" / "ckpt.pt", map_location="cpu", weights_only=False)["agent"]


def assert_equal_states(a, b, where="agent") -> None:
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            assert_equal_states(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_equal_states(x, y, f"{where}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    else:
        assert a == b, where


KEYS = ["episode_length=100", "seed_steps=200", "eval_every=200", "eval_episodes=3", "diag_every=200"]


def test_a_run_stopped_with_an_evaluation_beside_resumes_to_the_uninterrupted_run(tmp_path, monkeypatch):
    """Stopped at env step 410, ten steps after an evaluation started beside training: the checkpoint waits
    for it (its row is in eval.csv), and the resumed run ends with the uninterrupted run's eval.csv."""
    started = count_evaluations_beside(monkeypatch)
    whole, stopped = tmp_path / "whole", tmp_path / "stopped"
    extra = [*KEYS, "eval_beside=true"]
    assert main(tiny_argv("td3", whole, steps=800, extra=extra)) == EXIT_OK
    argv = tiny_argv("td3", stopped, steps=800, extra=extra)
    assert main(argv, should_stop=stop_at_env_step(argv, 410)) == EXIT_INTERRUPTED
    assert [r["env_step"] for r in rows(stopped / "eval.csv")] == ["0", "200", "400"]
    assert main(argv) == EXIT_OK
    assert [e.env_step for e in started] == [0, 200, 400, 600, 0, 200, 400, 600]
    assert rows(stopped / "eval.csv", drop={"wall_time_s"}) == rows(whole / "eval.csv", drop={"wall_time_s"})
    assert rows(stopped / "train.csv") == rows(whole / "train.csv")


def test_an_evaluation_that_samples_beside_training_draws_the_in_line_numbers(tmp_path, monkeypatch):
    """MR.Q's evaluation by Gumbel-softmax samples (official_gumbel_eval) draws from the evaluation stream:
    beside training, the snapshot's draws are the in-line evaluation's, and the stream it ran on from goes
    back into the agent (the final checkpoints are equal, `eval_generator` included)."""
    if why := missing_suite("mrq"):
        pytest.skip(why)
    started = count_evaluations_beside(monkeypatch)
    keys = ["task=minigrid:MiniGrid-Empty-5x5-v0", "agent.official_gumbel_eval=true", *KEYS]
    runs = {b: tmp_path / b for b in ("false", "true")}
    for b, run in runs.items():
        assert main(tiny_argv("mrq", run, steps=600, extra=[*keys, f"eval_beside={b}"])) == EXIT_OK
    assert len(started) == 3
    assert rows(runs["true"] / "eval.csv") == rows(runs["false"] / "eval.csv")
    assert_equal_states(agent_state(runs["true"]), agent_state(runs["false"]))
