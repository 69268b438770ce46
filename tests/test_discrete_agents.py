"""iQRL on discrete actions (docs/discrete.md): the representation unchanged, one-hot actions into the
dynamics and the critics, MR.Q's Gumbel-softmax actor on the TD3 learner (`GumbelTD3Learner`); the agents
that act in discrete action spaces and those refused. MR.Q's own discrete path: tests/test_mrq.py."""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest
import torch

from iqrl.agent.config import IQRLConfig
from iqrl.agent.iqrl import IQRL
from iqrl.core.registry import action_refusal
from iqrl.core.replay import SequenceReplay
from iqrl.core.spaces import ActionSpec
from iqrl.learners.td3 import GumbelTD3Learner, TD3LearnerConfig

from agent_helpers import params, same

OBS, N = 6, 4


def gumbel_of(generator: torch.Generator, shape) -> torch.Tensor:
    """Gumbel(0, 1) draws as iqrl.nn.maths.gumbel_noise makes them: -log(-log U)."""
    u = torch.rand(shape, generator=generator).clamp_min(torch.finfo(torch.float32).tiny)
    return -(-u.log()).log()


def learner(**kw) -> GumbelTD3Learner:
    torch.manual_seed(0)
    cfg = TD3LearnerConfig(mlp_dims=[16, 16], num_critics=3, q_subsample=2, **kw)
    return GumbelTD3Learner(cfg, OBS, N, torch.Generator().manual_seed(1), tau=10.0)


def test_gumbel_td3_target_bootstraps_the_one_hot_argmax_of_the_smoothed_relaxed_target_action():
    lrn = learner(policy_noise=0.1, noise_clip=0.15)
    x_next, ret, discount = torch.randn(8, OBS), torch.rand(8), torch.full((8,), 0.9)
    state = lrn.generator.get_state()
    draws = lrn.target_draws(8)
    assert list(draws) == ["gumbel", "noise", "members"]
    y = lrn.td_target(ret, discount, x_next, **draws)
    lrn.generator.set_state(state)
    gumbel, eps = gumbel_of(lrn.generator, (8, N)), torch.randn(8, N, generator=lrn.generator)
    members = torch.randperm(3, generator=lrn.generator)[:2]
    with torch.no_grad():
        soft = torch.softmax((lrn.actor_target(x_next) + gumbel) / 10.0, -1)
        a = torch.nn.functional.one_hot((soft + (0.1 * eps).clamp(-0.15, 0.15)).argmax(-1), N).float()
        q = lrn.critic_target(torch.cat([x_next, a], -1), members).squeeze(-1).amin(0)
    assert torch.allclose(y, ret + discount * q)


def test_gumbel_td3_actor_maximises_q_of_the_relaxed_action_and_acts_by_argmax():
    lrn = learner()
    x = torch.randn(8, OBS)
    gumbel, members = gumbel_of(torch.Generator().manual_seed(2), (8, N)), torch.tensor([0, 2])
    relaxed = torch.softmax((lrn.actor(x) + gumbel) / 10.0, -1)
    by_hand = -lrn.critic(torch.cat([x, relaxed], -1), members).squeeze(-1).mean(0).mean()
    loss = lrn.actor_loss(x, gumbel=gumbel, members=members)
    assert torch.allclose(loss, by_hand)
    (grad,) = torch.autograd.grad(loss, lrn.actor[0].weight)
    assert grad.abs().sum() > 0  # the actor learns through the relaxed action
    greedy = lrn.act(x)
    assert greedy.dtype == torch.int64 and torch.equal(greedy, lrn.actor(x).argmax(-1))
    draws = lrn.act_draws((8,), explore=True)
    assert [d.shape for d in draws.values()] == [(8, lrn.act_dim)] * 2  # Gumbel noise, then the Gaussian
    assert lrn.act(x, **draws).shape == (8,)


def make(**kw) -> IQRL:
    torch.manual_seed(0)
    cfg = IQRLConfig(**{"latent_dim": 4, "mlp_dims": [16, 16], "enc_mlp_dims": [16], "batch_size": 8, **kw})
    return IQRL(cfg, OBS, N, torch.device("cpu"), seed=0, action_spec=ActionSpec.discrete(N))


def discrete_replay(seq_len: int = 5) -> SequenceReplay:
    g = torch.Generator().manual_seed(0)
    r = SequenceReplay(OBS, ActionSpec.discrete(N), seq_len=seq_len, seed=0)
    for _ in range(2):
        r.start_episode(torch.randn(OBS, generator=g))
        for t in range(30):
            a = torch.randint(N, (), generator=g).numpy()
            r.add(a, float(torch.rand((), generator=g)), torch.randn(OBS, generator=g), t == 29, False)
    return r


def test_iqrl_on_discrete_actions_feeds_one_hot_actions_to_its_dynamics_and_critics():
    agent = make()
    assert isinstance(agent.learner, GumbelTD3Learner) and agent.learner.gumbel_tau == 10.0
    assert agent.dynamics[0].in_features == agent.latent_width + N
    r = discrete_replay()
    r.generator.manual_seed(5)
    index = r.sample(8).action
    r.generator.manual_seed(5)
    batch = agent.augment(r.sample(8))
    assert batch.action.shape == (8, 5, N) and torch.equal(batch.action.argmax(-1), index)
    obs = torch.randn(5, OBS).numpy()
    acts = agent.act(obs, explore=False)
    assert acts.dtype == np.int64 and acts.shape == (5,) and agent.act(obs[0], explore=True).shape == ()


@pytest.mark.parametrize(
    "keys",
    [
        {},
        {"fsq_levels": [3, 3]},
        {"horizon": 1},
        {"horizon": 3, "nstep": 3},
        {"quantizer": "none"},
        {"quantizer": "simnorm"},
        {"quantizer": "vq", "vq_dim": 4},
    ],
    ids=lambda k: ",".join(f"{a}={b}" for a, b in k.items()) or "default",
)
def test_iqrls_ablations_train_on_discrete_actions(keys):
    """FSQ levels, horizon and quantizer: each arm's updates run on discrete windows and move its encoder."""
    agent, r = make(**keys), discrete_replay()
    before = params(agent.encoder)
    for _ in range(2):
        metrics = agent.update(r, 0)
    assert np.isfinite(float(metrics["consistency_loss"])) and np.isfinite(float(metrics["q_loss"]))
    assert not same(agent.encoder, before)


def test_agents_that_act_in_discrete_spaces_and_the_refused():
    assert action_refusal("iqrl", "atari:Pong", "discrete") is None
    assert action_refusal("mrq", "atari:Pong", "discrete") is None
    refusal = action_refusal("iqrl-sac", "atari:Pong", "discrete")
    assert refusal and "iqrl-sac" in refusal and "mrq" in refusal and "iqrl," in refusal
    assert action_refusal("td3", "atari:Pong", "discrete")


# ---------------------------------------------------------------------------------- K seeds, kill and resume
def discrete_agent_and_replay(agent: str, seed: int):
    """A tiny `agent` on 3 discrete actions and a replay of one 100-step episode of random indices."""
    from test_multiseed import agent_and_replay

    return agent_and_replay([f"agent={agent}"], seed, ActionSpec.discrete(3))


@pytest.mark.parametrize("agent", ["iqrl", "mrq"])
def test_k_seed_group_of_a_discrete_agent_matches_each_seeds_plain_update(agent):
    """4 updates of a 2-seed group (iqrl.multiseed) against each seed's own agent.update, on discrete
    actions (the Gumbel draws of each seed from its own generator): same losses and parameters up to float
    rounding."""
    from test_multiseed import group_updates
    from test_multiseed import params as all_params

    from iqrl.multiseed.group import SeedGroup

    plain = [discrete_agent_and_replay(agent, s) for s in (0, 1)]
    grouped = [discrete_agent_and_replay(agent, s) for s in (0, 1)]
    metrics = group_updates(SeedGroup([a for a, _ in grouped]), [r for _, r in grouped], 4)
    for k, (a, replay) in enumerate(plain):
        for i in range(4):
            m = a.update(replay, i)
            for name in m:
                assert float(metrics[k][i][name]) == pytest.approx(float(m[name]), rel=1e-4, abs=1e-6)
        mine, theirs = all_params(a), all_params(grouped[k][0])
        for name in mine:
            torch.testing.assert_close(theirs[name], mine[name], rtol=1e-5, atol=1e-6, msg=name)


needs_ale = pytest.mark.skipif(
    importlib.util.find_spec("ale_py") is None and not os.environ.get("CI"),
    reason="ale-py is not installed: pip install -e '.[atari]'",
)


@needs_ale
def test_iqrl_on_breakout_killed_and_resumed_ends_with_the_same_numbers(tmp_path):
    """agent=iqrl task=atari:Breakout at tiny sizes (32 x 32 frames, 200-frame games): stopped at frame 492,
    in its third game (ALE's emulator, its sticky-action stream, the replay of integer actions, the Gumbel
    actor's generator and the open game checkpointed mid-run), then resumed: eval.csv as the uninterrupted
    run's."""
    from iqrl.runfolder.exits import EXIT_INTERRUPTED, EXIT_OK
    from iqrl.train import main

    from conftest import open_episode, stop_after_steps, tiny_argv
    from test_train import eval_numbers

    extra = ["task=atari:Breakout", "image_size=32", "updates_per_step=0.25"]
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    assert main(tiny_argv("iqrl", whole, steps=800, extra=extra)) == EXIT_OK
    stop = stop_after_steps(123)  # 4 frames an agent step
    assert main(tiny_argv("iqrl", parts, steps=800, extra=extra), should_stop=stop) == EXIT_INTERRUPTED
    assert open_episode(parts)["actions"]
    assert main(tiny_argv("iqrl", parts, steps=800, extra=extra)) == EXIT_OK
    assert eval_numbers(parts) == eval_numbers(whole) and len(eval_numbers(whole)) >= 3


def test_mrq_trains_to_done_on_minigrid_and_records_success(tmp_path):
    """agent=mrq task=minigrid:MiniGrid-DoorKey-5x5-v0 at tiny sizes: the trainer's discrete path end to end
    (uniform seed actions, the Gumbel actor's exploring and greedy actions, updates, evaluations), success
    rates in eval.csv."""
    import csv

    from iqrl.runfolder.exits import EXIT_OK
    from iqrl.train import main

    from conftest import tiny_argv

    extra = [
        "task=minigrid:MiniGrid-DoorKey-5x5-v0",
        "episode_length=100",
        "seed_steps=200",
        "eval_every=300",
    ]
    assert main(tiny_argv("mrq", tmp_path / "run", steps=600, extra=extra)) == EXIT_OK
    rows = list(csv.DictReader(open(tmp_path / "run" / "eval.csv")))
    assert [int(r["env_step"]) for r in rows] == [0, 300, 600] and all(
        0 <= float(r["success"]) <= 1 for r in rows
    )
