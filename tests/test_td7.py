"""TD7 agent: SALE, encoder copies, LAP-Huber, value clipping, policy checkpoints."""

import copy
import math

import pytest
import torch

from baselines.td7 import TD7, PolicyCheckpoints, TD7Config, lap_huber
from iqrl.config.build import build_config
from iqrl.config.run import ConfigError
from iqrl.core.replay import SequenceReplay
from iqrl.core.schedule import PerStep

from agent_helpers import (
    assert_actions_bounded,
    assert_resume_matches,
    assert_same_continuation,
    params,
    same,
)

OBS, ACT = 6, 2


def make(**kw):
    torch.manual_seed(0)
    cfg = TD7Config(**{"zs_dim": 8, "enc_mlp_dims": [16, 16], "mlp_dims": [16, 16], "batch_size": 32, **kw})
    return TD7(cfg, OBS, ACT, torch.device("cpu"), seed=0)


def replay(n_episodes=3, length=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    r = SequenceReplay(OBS, ACT, seq_len=1, seed=seed)
    for _ in range(n_episodes):
        r.start_episode(torch.randn(OBS, generator=g))
        for t in range(length):
            r.add(
                torch.rand(ACT, generator=g) * 2 - 1,
                float(torch.rand((), generator=g)),
                torch.randn(OBS, generator=g),
                False,
                t == length - 1,
            )
    return r


def fixed_batch(seed=1, B=32):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(B, OBS, generator=g),
        torch.rand(B, ACT, generator=g) * 2 - 1,
        torch.randn(B, OBS, generator=g),
    )


def test_shapes_action_bounds_and_embeddings():
    agent = make()
    obs = assert_actions_bounded(agent, OBS, ACT)
    zs = agent.encoder.zs(obs)
    assert zs.shape == (5, 8) and torch.allclose(zs.abs().mean(-1), torch.ones(5))  # AvgL1Norm
    assert agent.encoder.zsa(zs, torch.zeros(5, ACT)).shape == (5, 8)
    assert agent.critic(obs, torch.zeros(5, ACT), torch.randn(5, 8), zs).shape == (2, 5)
    assert agent.critic.hidden[0].weight.shape[1] == 16 + 2 * 8  # [AvgL1Norm(W[o, a]), z_sa, z_s]
    assert agent.latent(obs).shape == (5, 8)
    assert agent.spec.seq_len == 1 and isinstance(agent.schedule, PolicyCheckpoints)
    assert isinstance(make(use_checkpoints=False).schedule, PerStep)


def test_lap_huber_value_and_gradient():
    delta = torch.tensor([[0.5, 2.0], [0.0, 1.0]], requires_grad=True)  # [heads, B]
    loss = lap_huber(delta)
    # per sample: sum over heads; mean over the batch
    assert loss.item() == pytest.approx(((0.125 + 0.0) + (2.0 + 1.0)) / 2)
    loss.backward()
    assert torch.allclose(delta.grad, torch.tensor([[0.25, 0.5], [0.0, 0.5]]))  # Huber(1) gradient / B


def test_encoder_and_critic_losses_decrease_on_a_fixed_batch():
    agent = make()
    o, a, o2 = fixed_batch()
    first = agent.update_encoder(o, a, o2).item()
    for _ in range(100):  # the target f(o') moves with the encoder, so this is slower than regression
        last = agent.update_encoder(o, a, o2).item()
    assert last < 0.6 * first
    y = torch.randn(32)
    zs = agent.fixed_encoder.zs(o).detach()
    first = agent.update_critic(o, a, y, zs)[1]["q_loss"].item()
    for _ in range(150):
        last = agent.update_critic(o, a, y, zs)[1]["q_loss"].item()
    assert last < 0.7 * first


def grads(module):
    return [p.grad for p in module.parameters()]


def test_each_step_trains_exactly_its_own_parameters():
    agent = make()
    o, a, o2 = fixed_batch()
    others = [
        "fixed_encoder",
        "fixed_encoder_target",
        "checkpoint_encoder",
        "actor_target",
        "critic_target",
        "checkpoint_actor",
    ]

    def no_grads(*names):
        return all(g is None for n in names for g in grads(getattr(agent, n)))

    agent.update_encoder(o, a, o2)  # online f and g only
    assert all(g is not None for g in grads(agent.encoder))
    assert no_grads("actor", "critic", *others)
    agent.encoder.zero_grad(set_to_none=True)
    zs = agent.fixed_encoder.zs(o)
    agent.update_critic(o, a, torch.zeros(32), zs)  # critic only: encoder inputs under no-grad
    assert all(g is not None for g in grads(agent.critic))
    assert no_grads("encoder", "actor", *others)
    agent.critic.zero_grad(set_to_none=True)
    critic_before = params(agent.critic)
    agent.update_actor(o, zs)  # actor only; the gradient passes through g_fix and Q without touching them
    assert all(g is not None and g.abs().sum() > 0 for g in grads(agent.actor))
    assert no_grads("encoder", "critic", *others)
    assert same(agent.critic, critic_before) and all(p.requires_grad for p in agent.critic.parameters())


def test_update_writes_lap_priorities_of_the_critic_td_errors():
    agent, r = make(), replay()
    seen = {}
    update_critic = agent.update_critic

    def spy(*args):
        delta, m = update_critic(*args)
        seen["delta"] = delta
        return delta, m

    agent.update_critic = spy
    write, sample = r.update_priorities, r.sample
    r.update_priorities = lambda index, p: (seen.update(index=index, p=p), write(index, p))
    r.sample = lambda *args, **kw: (seen.update(sample=(args, kw)), sample(*args, **kw))[1]
    agent.update(r, 0)
    assert seen["sample"] == ((32, 1), {"prioritized": True})  # single transitions, drawn by priority
    expected = seen["delta"].amax(0).clamp(min=1.0).pow(0.4)  # max over both heads, floored at 1, ^0.4
    assert torch.allclose(seen["p"], expected)
    assert torch.allclose(r._prio[seen["index"]], expected)


def test_value_clipping_and_hard_sync_every_target_update():
    agent, r = make(target_update_every=3), replay()
    o, a, o2 = fixed_batch()
    # before the first sync the clip range is (0, 0): targets are the rewards
    rew = torch.rand(32)
    y = agent.td_target(rew, torch.ones(32), o2, agent.clip_lo, agent.clip_hi, **agent.target_draws(32))
    assert torch.equal(y, rew)
    agent.y_min, agent.y_max = torch.tensor(math.inf), torch.tensor(-math.inf)
    snapshots = {n: params(getattr(agent, n)) for n in ("fixed_encoder", "encoder", "actor", "critic")}
    for _ in range(2):
        agent.update(r, 0)
    for n in ("fixed_encoder", "fixed_encoder_target", "actor_target", "critic_target"):
        assert same(getattr(agent, n), snapshots["fixed_encoder" if "encoder" in n else n.split("_")[0]])
    r.update_priorities(torch.tensor([0]), torch.tensor([50.0]))
    r.update_priorities(torch.tensor([0]), torch.tensor([1.0]))
    fixed_before, y_lo, y_hi = params(agent.fixed_encoder), agent.y_min.clone(), agent.y_max.clone()
    agent.update(r, 0)  # third update: hard sync
    assert same(agent.fixed_encoder_target, fixed_before)
    assert same(agent.fixed_encoder, params(agent.encoder))
    assert same(agent.actor_target, params(agent.actor)) and same(agent.critic_target, params(agent.critic))
    assert r.max_priority == pytest.approx(float(r._prio[: r.size].max())) and r.max_priority < 50
    assert agent.clip_lo == agent.y_min and agent.clip_hi == agent.y_max
    assert agent.y_min <= y_lo and agent.y_max >= y_hi and agent.y_min < agent.y_max
    assert not same(agent.encoder, snapshots["encoder"])  # the online encoder trains every step


def test_policy_checkpoint_schedule():
    agent = make(steps_before_checkpointing=2, max_eps_when_checkpointing=3, target_update_every=1000)
    r = replay()

    def perturb_actor():
        with torch.no_grad():
            for p in agent.actor.parameters():
                p.add_(0.1)

    def ckpt_is_actor():
        return same(agent.checkpoint_actor, params(agent.actor))

    assert (
        agent.updates_due(100.0, 200, 0.5) == 100
    )  # 1-episode assessment passed: checkpoint, train 200 x 0.5
    assert ckpt_is_actor() and agent.best_min_return == 100.0
    perturb_actor()
    assert agent.updates_due(90.0, 200, 0.5) == 100  # worse than the best minimum: train, keep the checkpoint
    assert not ckpt_is_actor() and agent.best_min_return == 100.0
    assert agent.updates_due(110.0, 201, 0.5) == 100  # odd env steps: the half update is carried over
    assert ckpt_is_actor() and agent.best_min_return == 110.0 and agent.update_credit == 0.5
    for _ in range(3):  # reaching steps_before_checkpointing: best * 0.9, 3-episode assessments
        agent.update(r, 0)
    assert agent.best_min_return == pytest.approx(99.0) and agent.eps_per_assessment == 3
    perturb_actor()
    assert [agent.updates_due(ret, 200, 0.5) for ret in (120.0, 130.0)] == [0, 0]  # still being assessed
    assert not ckpt_is_actor()
    assert agent.updates_due(125.0, 199, 0.5) == 300  # 599 x 0.5 + 0.5 carried over
    assert ckpt_is_actor() and agent.best_min_return == 120.0  # the minimum over the assessment
    assert agent.updates_due(119.0, 200, 0.5) == 100  # below the best minimum after one episode: stop early
    assert agent.eps_since == 0 and agent.min_return == math.inf
    assert agent.updates_due(119.0, 200, 1.0) == 200  # the burst follows the run's updates_per_step


def test_evaluation_uses_the_checkpoint_networks():
    agent = make()
    obs = torch.randn(4, OBS)
    with torch.no_grad():
        for p in agent.actor.parameters():
            p.add_(0.3)
        expected = agent.checkpoint_actor(obs, agent.checkpoint_encoder.zs(obs))
        current = agent.actor(obs, agent.fixed_encoder.zs(obs))
    assert torch.allclose(torch.as_tensor(agent.act(obs.numpy(), explore=False)), expected)
    assert not torch.allclose(expected, current)
    agent.cfg.use_checkpoints = False
    assert torch.allclose(torch.as_tensor(agent.act(obs.numpy(), explore=False)), current)


def test_state_dict_round_trip_continues_identically():
    a, r = make(target_update_every=2), replay()
    for _ in range(3):
        a.update(r, 0)
    a.updates_due(50.0, 100, 0.5)
    b = make(target_update_every=2, use_checkpoints=True)
    b.load_state_dict(copy.deepcopy(a.state_dict()))
    r2 = SequenceReplay(OBS, ACT, seq_len=1)
    r2.load_state_dict(r.state_dict())
    assert_same_continuation(a, b, r, r2, torch.randn(3, OBS).numpy())
    assert a.updates_due(70.0, 100, 0.5) == b.updates_due(70.0, 100, 0.5) == 50
    assert a.best_min_return == b.best_min_return == 70.0


def test_config_validation_names_the_key():
    with pytest.raises(ConfigError, match="agent.max_eps_when_checkpointing"):
        build_config(["agent=td7", "agent.max_eps_when_checkpointing=0"])
    assert build_config(["agent=td7", "task=walker-walk"]).agent == TD7Config()


@pytest.mark.slow
@pytest.mark.parametrize("checkpoints", ["true", "false"])
def test_interrupt_and_resume_gives_identical_eval(checkpoints, tmp_path, finished_runs):
    assert_resume_matches("td7", tmp_path, finished_runs, [f"agent.use_checkpoints={checkpoints}"])
