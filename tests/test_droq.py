"""DroQ (baselines/droq.py; Hiraoka et al. 2022, arXiv 2110.02034, code at TakuyaHiraoka/Dropout-Q-Functions-
for-Doubly-Efficient-Reinforcement-Learning@f89a79a): the critics' dropout placement and rate, masks drawn per
evaluation from the agent's generator, the target with dropout in the target critics, the critic loss, the
actor's objective as the mean of the two critics, the code's initialisation and log-std clamp, and UTD 20 with
one actor step per 20 critic steps.

Expected values are written out from the code's formulas with the critics' raw tensors (weights [E, in, out],
biases [E, 1, out], LayerNorm affines), not through the networks' forward."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from test_sac import ACT, IN, data  # the SAC tests' batches: 6-dim inputs, 3-dim actions
from torch import nn

from baselines.droq import DroQ, DroQConfig, DroQLearner
from iqrl.config.build import build_config
from iqrl.core.registry import make_agent
from iqrl.core.schedule import PerStep
from iqrl.core.update import Updater
from iqrl.learners.sac import SACLearner, SACLearnerConfig
from iqrl.nn.layers import EnsembleLinear, EnsembleMLP

B = 16
WIDTHS = [32, 24]


def learner(**kw) -> DroQLearner:
    """A DroQ learner at the defaults of `droq` but for small widths (and `kw`)."""
    torch.manual_seed(0)
    cfg = DroQConfig(mlp_dims=list(WIDTHS), **kw).learner
    return DroQLearner(cfg, IN, ACT, torch.Generator().manual_seed(0))


def q_by_hand(net: EnsembleMLP, x, a, masks, p: float) -> torch.Tensor:
    """Q [E, B] of the code's critics: per hidden layer Linear -> Dropout(p) -> LayerNorm -> ReLU (KU/model.py
    lines 24-33), a unit's output multiplied by keep / (1 - p), then the output Linear."""
    h = torch.cat([x, a], -1).expand(net.n, -1, -1)
    for lin, ln, m in zip(net.linears, net.norms, masks):
        h = h @ lin.weight + lin.bias
        h = h * m / (1 - p)
        h = F.layer_norm(h, h.shape[-1:]) * ln.weight + ln.bias
        h = torch.relu(h)
    return (h @ net.out.weight + net.out.bias).squeeze(-1)


def draw_masks_by_hand(g: torch.Generator, p: float, n: int = 2) -> list[torch.Tensor]:
    """Bernoulli(1 - p) keep masks [n, B, width], one per hidden layer in layer order."""
    return [torch.empty(n, B, w).bernoulli_(1 - p, generator=g) for w in WIDTHS]


# ---------------------------------------------------------------------------------- the networks
def test_defaults_are_the_codes_settings():
    c = DroQConfig()
    assert (c.critic_dropout, c.utd, c.actor_update_freq, c.num_critics, c.q_subsample) == (
        0.01,
        20.0,
        20,
        2,
        2,
    )
    assert (c.mlp_dims, c.batch_size, c.lr, c.alpha_lr, c.gamma, c.tau, c.nstep) == (
        [256, 256],
        256,
        3e-4,
        3e-4,
        0.99,
        0.005,
        1,
    )
    assert (c.actor_q_reduce, c.critic_loss_reduce, c.init, c.init_temperature) == (
        "mean",
        "sum",
        "xavier",
        1.0,
    )
    assert (c.log_std_min, c.log_std_max, c.target_entropy, c.grad_clip) == (-20.0, 2.0, None, 0.0)


def test_critics_drop_after_each_hidden_linear_before_layernorm_and_relu_the_actor_has_neither():
    ac = learner()
    for net in (ac.critic, ac.critic_target):
        assert isinstance(net, EnsembleMLP) and net.n == 2 and net.dropout.p == 0.01
        assert [lin.weight.shape[-1] for lin in net.linears] == WIDTHS and len(net.norms) == 2
        assert isinstance(net.act, nn.ReLU)
    assert not any(p.requires_grad for p in ac.critic_target.parameters())
    kinds = [type(m).__name__ for m in ac.actor]
    assert kinds == ["Linear", "ReLU", "Linear", "ReLU", "Linear"]  # no LayerNorm, no dropout
    x, a, *_ = data()
    masks = draw_masks_by_hand(torch.Generator().manual_seed(3), 0.01)
    assert any((m == 0).any() for m in masks)
    got = ac.q(x, a, masks=masks)
    torch.testing.assert_close(got, q_by_hand(ac.critic, x, a, masks, 0.01), rtol=1e-6, atol=1e-6)
    assert not torch.allclose(got, ac.q(x, a))  # masks None: no dropout (acting, evaluation)
    # all kept: the 1 / (1 - p) scaling of a whole layer is undone by its LayerNorm, as in the code's order
    ones = [torch.ones_like(m) for m in masks]
    torch.testing.assert_close(ac.q(x, a, masks=ones), ac.q(x, a), rtol=1e-5, atol=1e-5)


def test_every_linear_is_xavier_uniform_with_zero_bias():
    """KU/model.py line 16, rltorch builder.py lines 44-50: Glorot-uniform weights (gain 1), zero biases."""
    ac = learner()
    torch.manual_seed(7)
    lin = EnsembleLinear(2, 6, 4, "xavier")
    torch.manual_seed(
        7
    )  # U(-b, b), b = sqrt(6 / (fan_in + fan_out)), filling each member's [in, out] in order
    want = [nn.init.xavier_uniform_(torch.empty(6, 4)) for _ in range(2)]
    assert torch.equal(lin.weight, torch.stack(want)) and not lin.bias.any()
    bound = math.sqrt(6 / (IN + ACT + WIDTHS[0]))
    assert ac.critic.linears[0].weight.abs().max() <= bound and not ac.critic.linears[0].bias.any()
    assert ac.actor[0].weight.abs().max() <= math.sqrt(6 / (IN + WIDTHS[0])) and not ac.actor[0].bias.any()


def test_log_std_is_clamped_not_softly_bounded():
    """KU/model.py lines 113-115: clamp(log_std, -20, 2)."""
    ac = learner()
    with torch.no_grad():
        ac.actor[-1].bias.zero_()
        ac.actor[-1].weight.zero_()
        ac.actor[-1].bias[ACT:] = torch.tensor([5.0, 0.7, -30.0])
    _, log_std = ac.gaussian(torch.randn(3, IN))
    assert torch.equal(log_std, torch.tensor([2.0, 0.7, -20.0]).expand(3, ACT))


# ---------------------------------------------------------------------------------- draws and the update
def test_masks_are_drawn_per_evaluation_from_the_learners_generator_after_the_other_draws():
    ac = learner()
    g = ac.generator
    state = g.get_state()
    target, critic, actor = ac.target_draws(B), ac.critic_draws(B), ac.actor_draws(B)
    g.set_state(state)
    eps = torch.randn(B, ACT, generator=g)  # both critics: `members` draws nothing
    assert torch.equal(target["eps"], eps) and torch.equal(target["members"], torch.arange(2))
    for got, want in zip(target["masks"], draw_masks_by_hand(g, 0.01)):
        assert torch.equal(got, want)
    for got, want in zip(critic["masks"], draw_masks_by_hand(g, 0.01)):
        assert torch.equal(got, want)
    assert torch.equal(actor["eps"], torch.randn(B, ACT, generator=g))
    for got, want in zip(actor["masks"], draw_masks_by_hand(g, 0.01)):
        assert torch.equal(got, want)
    assert not torch.equal(target["masks"][0], critic["masks"][0])  # each evaluation its own masks


def test_the_agents_learner_draws_from_the_agents_generator():
    cfg = build_config(["agent=droq", "agent.mlp_dims=[8]"])
    agent = make_agent(cfg.agent, IN, ACT, torch.device("cpu"), 0)
    assert isinstance(agent, DroQ) and agent.learner.generator is agent.generator


def test_target_is_the_min_of_the_target_critics_with_their_own_dropout_minus_the_entropy_term():
    """KU/agent.py lines 169-183: y = r + gamma (min(Q̄1, Q̄2)(s', a') - alpha log pi(a'|s')), the target
    critics in training mode."""
    ac = learner(init_temperature=0.5)
    with torch.no_grad():  # a target that differs from the online critics
        for p in ac.critic_target.parameters():
            p.add_(0.05 * torch.randn_like(p))
    _, _, r, d, x_next = data()
    draws = ac.target_draws(B)
    y = ac.td_target(r, d, x_next, **draws)
    with torch.no_grad():
        a, log_prob = ac.sample(x_next, draws["eps"])
        q = q_by_hand(ac.critic_target, x_next, a, draws["masks"], 0.01)
        torch.testing.assert_close(y, r + d * (q.amin(0) - 0.5 * log_prob))
        no_dropout = ac.td_target(r, d, x_next, eps=draws["eps"], members=draws["members"])
    assert not torch.allclose(y, no_dropout)


def test_critic_loss_sums_both_critics_mse_under_the_critic_steps_own_masks():
    """KU/agent.py lines 321-322 (one loss and one Adam per critic: their sum under one Adam is that step)."""
    ac = learner()
    x, a, _, _, _ = data()
    y = torch.randn(B)
    masks = ac.critic_draws(B)["masks"]
    loss, q = ac.critic_loss(x, a, y, masks=masks)
    want = q_by_hand(ac.critic, x, a, masks, 0.01)
    torch.testing.assert_close(q, want)
    torch.testing.assert_close(loss, ((want - y) ** 2).mean(1).sum())


def test_actor_objective_is_the_mean_of_the_two_critics_with_dropout():
    """KU/agent.py lines 334-343 (0.5 (q1 + q2) when the rate is above 0) and REDQ's ave_q
    (redq_sac.py lines 226-232): mean(alpha log pi(a|s) - (Q1 + Q2) / 2)."""
    ac = learner(init_temperature=0.3)
    x = data()[0]
    draws = ac.actor_draws(B)
    loss, log_prob = ac.actor_loss(x, **draws)
    with torch.no_grad():
        a, lp = ac.sample(x, draws["eps"])
        q = q_by_hand(ac.critic, x, a, draws["masks"], 0.01)
        torch.testing.assert_close(log_prob, lp)
        torch.testing.assert_close(loss, (0.3 * lp - q.mean(0)).mean())
        assert not torch.allclose(loss, (0.3 * lp - q.amin(0)).mean())


def test_one_actor_and_temperature_step_per_20_critic_steps():
    """REDQ/main.py line 27 (policy_update_delay=20) at UTD 20: one policy step per env step, after its 20
    critic steps (KU/agent.py lines 243-289)."""
    ac = learner()
    u, batch = Updater(), data()
    actor_before, alpha_before = [p.clone() for p in ac.actor.parameters()], ac.log_alpha.clone()
    trained = []
    for k in range(1, 41):
        metrics = ac.update(u, *batch)
        if "actor_loss" in metrics:
            trained.append(k)
        if k == 19:  # 19 critic steps: the actor and temperature untouched
            assert all(torch.equal(p, q) for p, q in zip(ac.actor.parameters(), actor_before))
            assert torch.equal(ac.log_alpha, alpha_before)
    assert trained == [20, 40] and ac.critic_steps == 40
    assert not torch.equal(ac.log_alpha, alpha_before)


def test_utd_is_20_updates_per_stored_transition_after_every_agent_step():
    cfg = build_config(["agent=droq", "agent.mlp_dims=[8]"])
    agent = make_agent(cfg.agent, 3, 1, torch.device("cpu"), 0)
    assert (agent.spec.rate(2), agent.spec.rate(1)) == (10.0, 20.0)  # DMC's action repeat 2, Gym's 1
    assert isinstance(agent.schedule, PerStep) and agent.spec.batch_size == 256 and agent.spec.seq_len == 1
    cfg = build_config(["agent=droq", "agent.mlp_dims=[8]", "agent.utd=4"])
    assert make_agent(cfg.agent, 3, 1, torch.device("cpu"), 0).spec.rate(2) == 2.0


# ---------------------------------------------------------------------------------- the hook
def test_a_learner_without_dropout_draws_nothing_more_than_before():
    """The shared learners' hook (`critic_masks`) adds no draw and no keyword where the critics have no
    dropout: SAC's target draws are its action noise alone (both critics), its critic step none."""
    torch.manual_seed(0)
    cfg = SACLearnerConfig(mlp_dims=[16], num_critics=2, q_subsample=2)
    sac = SACLearner(cfg, IN, ACT, torch.Generator().manual_seed(0))
    g = sac.generator
    state = g.get_state()
    draws = sac.target_draws(B)
    assert set(draws) == {"eps", "members"} and sac.critic_draws(B) == {}
    g.set_state(state)
    torch.randn(B, ACT, generator=g)
    assert torch.equal(g.get_state(), sac.generator.get_state())
    assert learner(critic_dropout=0.0).critic_draws(B) == {}


def test_build_critic_is_what_the_target_and_optimizer_are_made_of():
    ac = learner()
    assert [p.shape for p in ac.critic.parameters()] == [p.shape for p in ac.critic_target.parameters()]
    for p, t in zip(ac.critic.parameters(), ac.critic_target.parameters()):
        assert torch.equal(p, t) and p is not t
    optimised = {id(p) for group in ac.critic_opt.param_groups for p in group["params"]}
    assert optimised == {id(p) for p in ac.critic.parameters()}
