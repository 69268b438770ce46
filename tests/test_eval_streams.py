"""Evaluation leaves training alone: an evaluation draws from its own generators and envs only, so how often a
run evaluates (eval_every), how many episodes (eval_episodes) and whether side by side (eval_batched) change
no training number (docs/run-folder.md, "Evaluation")."""

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
from iqrl.runfolder.files import TIME_COLUMNS
from iqrl.train import main

from conftest import count_evaluations_beside, missing_suite, tiny_argv, tiny_keys


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


def parameters(run) -> dict:
    return training_state(
        torch.load(run / "checkpoint" / "ckpt.pt", map_location="cpu", weights_only=False)["agent"]
    )


@pytest.mark.registry
@pytest.mark.computes
def test_evaluation_cadence_episodes_and_batching_change_no_training_number(agent, tmp_path, monkeypatch):
    """Two runs that differ in eval_every, eval_episodes, eval_batched and eval_beside only: the same
    train.csv (time columns aside) and, bit for bit, the same final checkpoint of the agent. The frequent
    evaluations run beside training, on a snapshot of the agent, where the agent allows it."""
    if why := missing_suite(agent):
        pytest.skip(why)
    started = count_evaluations_beside(monkeypatch)
    runs = []
    for name, keys in (
        ("often", ["eval_every=100", "eval_episodes=2", "eval_batched=true", "eval_beside=true"]),
        ("rarely", ["eval_every=400", "eval_episodes=1", "eval_batched=false", "eval_beside=false"]),
    ):
        runs.append(tmp_path / name)
        extra = ["episode_length=100", "seed_steps=200", "diag_every=100", "checkpoint_every=400", *keys]
        assert main(tiny_argv(agent, runs[-1], steps=400, extra=extra)) == 0
    rows = train_csv(runs[0])
    assert int(rows[-1]["updates"]) > 0  # the evaluations fell among updates
    assert [len(open(r / "eval.csv").readlines()) for r in runs] == [6, 3]  # a header and 5 or 2 rows
    assert rows == train_csv(runs[1])
    assert_same(parameters(runs[0]), parameters(runs[1]))
    beside = registry.agent_class(agent).evaluates_beside
    assert [e.env_step for e in started] == ([0, 100, 200, 300] if beside else [])
