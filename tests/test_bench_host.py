"""The host share of a K-seed group (iqrl/bench/hostshare.py): what its counts count, and what they pin of
the group's acting, update and evaluation: one move of the observations and one sync per agent step for the
whole group, one operator per seed (its own noise draw) beyond one forward, no sync in an update, one acting
call per evaluation step for every seed's episodes, each seed's evaluation its own."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from iqrl.bench.hostshare import Counts, build_group, group_evaluation, host_share
from iqrl.config.build import build_config, layered
from iqrl.core.update import Updater, to_tensor
from iqrl.envs.tasks import eval_seed
from iqrl.loop.evaluation import eval_returns
from iqrl.loop.parts import eval_env_copy

from conftest import TINY_RUN, tiny_agent


def test_counts_operators_syncs_and_moves_as_a_gpu_host_meets_them():
    def work():
        x = torch.as_tensor(np.arange(4.0, dtype=np.float32), device="cpu")  # a move
        torch.tensor([1.0, 2.0])  # no device named: stays on the host of a GPU run, not a move
        y = (x * 2).sum()  # 2 operators
        float(y)  # a sync: the scalar read is an operator too
        host = (x + 1).cpu()  # an operator and a sync
        host.numpy(), host[1:].numpy()  # already on the host: no sync
        x.nonzero()  # an operator whose output size depends on the data: a sync
        x.tolist()  # a sync

    counts = Counts(torch.device("cpu"))
    counts.counting(work)()
    assert counts.totals() == {"ops": 5, "syncs": 4, "moves": 1}


#: Tiny iqrl groups on cartpole: the tiny run's sizes, episodes of 20 env steps, 2 evaluation episodes.
KEYS = [*TINY_RUN, "seed_steps=100", "episode_length=20", *tiny_agent("iqrl")]


@pytest.fixture(scope="module")
def rows():
    """Host-share rows of tiny iqrl groups of 2 and 3 seeds."""
    return {
        k: host_share("cartpole-balance", k, steps=2, updates=1, extra=KEYS, timed_steps=2) for k in (2, 3)
    }


def test_a_group_step_moves_the_observations_once_and_syncs_once(rows):
    for r in rows.values():
        assert (r["act_moves"], r["act_syncs"]) == (
            1,
            1,
        )  # stacked on the host; the actions read back at once
        assert (r["update_moves"], r["update_syncs"]) == (0, 0)  # metrics stay on the device
        assert r["act_ms"] > 0
        # evaluating: every seed's 2 episodes in one acting call per step, their observations moved at once
        assert r["eval_episodes"] == 2 * r["seeds"]
        assert (r["eval_act_calls_per_step"], r["eval_moves"], r["eval_syncs"]) == (1, 1, 1)


def test_the_only_operator_of_a_seed_beyond_the_shared_forward_is_its_noise_draw(rows):
    assert rows[3]["act_ops"] - rows[2]["act_ops"] == 1


def test_a_groups_evaluation_returns_each_seeds_own_outcomes(monkeypatch):
    """The group's evaluation (one acting call per step for every seed's episodes): each seed's outcomes are
    bitwise those of the group fed observations each seed moved itself, and those of the seed evaluating
    alone up to the rounding of the batched forward."""
    group, trainer = build_group("cartpole-balance", 3, KEYS)

    def envs() -> list[list]:
        return [
            [eval_env_copy(trainer.cfg, "cartpole-balance", eval_seed(s)) for _ in range(2)] for s in range(3)
        ]

    grouped, rounds, steps = group_evaluation(group, envs())
    assert rounds == steps == 20 // trainer.cfg.action_repeat
    returns = np.array([[o.ret for o in outcomes] for outcomes in grouped])
    assert len(set(returns.ravel().tolist())) == 6  # every seed, every episode its own
    monkeypatch.setattr("iqrl.agent.iqrl.HostArray", to_tensor)  # each seed moves its own
    assert group_evaluation(group, envs())[0] == grouped
    alone = []
    for a, e in zip(group.agents, envs()):
        a.updater = Updater()
        with a.evaluating():
            alone.append([o.ret for o in eval_returns(e, a, 2, True)])
    np.testing.assert_allclose(returns, alone, rtol=1e-5)


def test_an_evaluation_of_the_group_is_timed_whole_and_at_the_tasks_own_episode_length(rows):
    """eval_s: the group's evaluation (episodes of 20 env steps); eval_s_at_length: at its rate per agent
    step, episodes of cartpole's 1000 env steps."""
    repeat = build_config(layered(["agent=iqrl"], KEYS)).action_repeat
    for r in rows.values():
        per_step = r["eval_ms_per_step"] / 1000  # each figure rounded: 3 decimals of ms, of s, 2 of s
        assert r["eval_s"] == pytest.approx(per_step * (20 // repeat), abs=6e-4)
        assert r["eval_s_at_length"] == pytest.approx(per_step * (1000 // repeat), abs=6e-3)
