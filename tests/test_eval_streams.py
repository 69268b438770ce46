"""Evaluation leaves training alone: an evaluation draws from its own generators and envs only, so how often a
run evaluates (eval_every), whether side by side (eval_batched) and whether beside training (eval_beside)
change no training number, and an evaluation's numbers depend on the parameters and its step only
(docs/run-folder.md, "Evaluation")."""

from __future__ import annotations

import csv
import random

import numpy as np
import pytest
import torch

from iqrl.config.build import build_config
from iqrl.core import registry
from iqrl.core.interface import EVAL_GENERATOR_OFFSET
from iqrl.loop.trainer import Trainer
from iqrl.runfolder.layout import TIME_COLUMNS
from iqrl.train import main

from conftest import count_evaluations_beside, e2e_run, missing_suite, tiny_keys


def training_streams(t: Trainer) -> dict:
    """Every random stream and piece of state that training reads, as comparable values."""
    return {
        "agent generator": t.agent.generator.get_state(),
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state()[1].copy(),
        "python": random.getstate(),
        "seed actions": t.rng.bit_generator.state,
        "replay": t.replay.state_dict().get("generator"),
        "train envs": [repr(env.get_state()) for env in t.parts.envs],
        "agent": training_state(t.agent.state_dict()),
    }


def training_state(state: dict) -> dict:
    """An agent's checkpointed state but what evaluation owns: its generator, and the evaluation's own acting
    stream, warm start of the planners (DC-MPC's and TD-MPC2's MPPI: baselines/dcwm_mppi.py) and recurrent
    state (DreamerV3's carry)."""
    own = {k: v for k, v in state.items() if k != "eval_generator"}
    for key in ("act_generators", "plan_mean", "carry"):
        if key in own:
            own[key] = {explore: v for explore, v in own[key].items() if explore}
    return own


def assert_same(a, b, where: str = "") -> None:
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b), f"evaluation changed {where}"
    elif isinstance(a, np.ndarray):
        assert np.array_equal(a, b), f"evaluation changed {where}"
    else:
        assert a == b, f"evaluation changed {where}"


@pytest.mark.registry
@pytest.mark.computes
def test_an_evaluation_moves_no_training_stream(agent, tmp_path):
    """After a few training episodes with updates, an evaluation (batched and sequential, an MPC agent
    planning included) leaves the agent's generator, the global generators, the seed-phase actions, the
    replay's sampling, the training envs and the agent's checkpointed state as they were."""
    if why := missing_suite(agent):
        pytest.skip(why)
    evaluate_mid_episode(tiny_keys(agent, ["seed_steps=200", "eval_episodes=2"]), tmp_path)


def test_an_evaluation_that_samples_draws_from_its_own_generator(tmp_path):
    """MR.Q's evaluation by Gumbel-softmax samples (official_gumbel_eval, MRQ-3) draws from the evaluation's
    generator: it moved, training's did not."""
    keys = ["task=minigrid:MiniGrid-Empty-5x5-v0", "agent.official_gumbel_eval=true", "episode_length=100"]
    t = evaluate_mid_episode(tiny_keys("mrq", [*keys, "seed_steps=200", "eval_episodes=2"]), tmp_path)
    assert not torch.equal(t.agent.eval_generator.get_state(), t.agent.generator.get_state())
    fresh = torch.Generator().manual_seed(t.cfg.seed + EVAL_GENERATOR_OFFSET).get_state()
    assert not torch.equal(t.agent.eval_generator.get_state(), fresh)


def evaluate_mid_episode(keys: list[str], folder) -> Trainer:
    """A tiny run's trainer after 400 env steps and one agent step more, evaluated (batched, then one by one)
    with every training stream checked unchanged by each evaluation."""
    t = Trainer(build_config([*keys, f"out={folder}", "eval_beside=false"]))  # the evaluation in line
    try:
        while t.env_step < 400:
            start = t.env_step
            ret, by_agent = t.collect_episode()
            t.end_episode(ret, by_agent, t.env_step - start)
        assert t.updates > 0
        t.start_episode()  # an evaluation in the middle of a training episode, as the loop may do
        t.agent_step()
        for batched in (True, False):
            t.batched_eval = batched
            before = training_streams(t)
            t.evaluate()
            assert_same(before, training_streams(t))
    finally:
        t.close()
    return t


def train_csv(run) -> list[dict]:
    with open(run / "train.csv") as f:
        return [{k: v for k, v in r.items() if k not in TIME_COLUMNS} for r in csv.DictReader(f)]


def agent_state(run) -> dict:
    return torch.load(run / "checkpoint" / "ckpt.pt", map_location="cpu", weights_only=False)["agent"]


def parameters(run) -> dict:
    return training_state(agent_state(run))


def eval_rows(run) -> dict[int, dict]:
    """eval.csv by its row's env step, the wall time aside."""
    with open(run / "eval.csv") as f:
        return {
            int(r["env_step"]): {k: v for k, v in r.items() if k != "wall_time_s"} for r in csv.DictReader(f)
        }


@pytest.mark.registry
@pytest.mark.computes
def test_evaluation_beside_or_at_another_cadence_changes_no_number(
    agent, finished_runs, tmp_path, monkeypatch
):
    """The agent's end-to-end run (conftest.e2e_run: evaluated in line at env steps 0, 200 and 400) against
    two runs that differ from it in one evaluation key each:

    * eval_beside=true: the evaluations at 0 and 200 ran in their own thread on a snapshot of the agent
      where the agent allows it (`Agent.evaluates_beside`; the last one runs in line), and none did where
      the agent's evaluation keeps state of its own (a planner's warm start); eval.csv, train.csv (time
      columns aside) and the final checkpoint, evaluation state included, are the in-line run's bit for bit;
    * eval_every=400: the same train.csv and training parameters, and, bit for bit, the same evaluations
      at env steps 0 and 400, which depend on the parameters and the step only (eval_reseed: without it the
      evaluation at 200 would have moved the evaluation env's initial states and draws on)."""
    if why := missing_suite(agent):
        pytest.skip(why)
    in_line = finished_runs.get(e2e_run(agent))  # trained before anything is patched
    started = count_evaluations_beside(monkeypatch)
    beside, rarely = tmp_path / "beside", tmp_path / "rarely"
    assert main([*e2e_run(agent, ["eval_beside=true"]), f"out={beside}"]) == 0
    assert [e.env_step for e in started] == ([0, 200] if registry.agent_class(agent).evaluates_beside else [])
    assert eval_rows(beside) == eval_rows(in_line)
    assert train_csv(beside) == train_csv(in_line) and int(train_csv(in_line)[-1]["updates"]) > 0
    assert_same(agent_state(beside), agent_state(in_line))
    assert main([*e2e_run(agent, ["eval_every=400"]), f"out={rarely}"]) == 0
    assert train_csv(rarely) == train_csv(in_line)
    assert_same(parameters(rarely), parameters(in_line))
    often, rare = eval_rows(in_line), eval_rows(rarely)
    assert sorted(often) == [0, 200, 400] and sorted(rare) == [0, 400]
    assert rare[0] == often[0] and rare[400] == often[400]
