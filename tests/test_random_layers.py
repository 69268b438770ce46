"""Random layers (docs/extending.md, "Random layers"): dropout whose masks are draws
(iqrl.nn.layers.MaskedDropout) computes the same numbers in every mode; torch's own random modules are refused
where they would not.

The layer's values and gradients; a scratch agent whose critics drop units as DroQ's do (Hiraoka et al. 2022,
arXiv 2110.02034: in the target, the critic loss and the actor loss) updates alike eagerly and compiled, per
seed in a K-seed group, and after a state_dict round trip; an agent holding torch's nn.Dropout is refused by
the K-seed mode and by compile=true in one line, and trains (and resumes) eagerly.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F
from test_compile import assert_compiled_matches_eager
from test_multiseed import TINY_NEW, TinyAgent, TinyConfig, assert_group_update_matches_plain
from torch import nn

from iqrl.config.build import build_config
from iqrl.core import registry
from iqrl.core.registry import AgentEntry, agent_class, make_agent
from iqrl.multiseed.runs import main as multiseed_main
from iqrl.nn.layers import EnsembleMLP, MaskedDropout, ensemble_mlp, frozen_copy, global_random_module, mlp
from iqrl.nn.optim import adam
from iqrl.runfolder.exits import EXIT_BAD_INPUT
from iqrl.train import main as train_main

from agent_helpers import agent_and_replay, assert_resume_matches
from conftest import tiny_keys


# ---------------------------------------------------------------------------------- the layer
def test_masked_dropout_scales_the_kept_units_as_torch_does():
    """forward(x, mask) = x * mask / (1 - p); a mask drawn from a generator seeded s is torch's CPU dropout
    under torch.manual_seed(s), bit for bit (the same Bernoulli draws, the same scaling)."""
    layer, x = MaskedDropout(0.3), torch.randn(64, 32)
    mask = layer.draw(x.shape, torch.Generator().manual_seed(5))
    assert set(mask.unique().tolist()) == {0.0, 1.0} and 0.2 < 1 - float(mask.mean()) < 0.4
    torch.testing.assert_close(layer(x, mask), x * mask / 0.7)
    torch.manual_seed(5)
    assert torch.equal(layer(x, mask), F.dropout(x, 0.3, training=True))


def test_masked_dropout_gradient_is_the_mask_scaled():
    layer, x = MaskedDropout(0.25), torch.randn(8, 6, requires_grad=True)
    mask, w = layer.draw(x.shape, torch.Generator().manual_seed(0)), torch.randn(8, 6)
    (grad,) = torch.autograd.grad((layer(x, mask) * w).sum(), x)
    assert torch.equal(grad, w * (mask / 0.75))
    assert (grad[mask == 0] == 0).all()


def test_masked_dropout_at_rate_zero_or_without_a_mask_is_the_identity():
    x = torch.randn(4, 5)
    zero = MaskedDropout(0.0)
    assert torch.equal(zero(x, zero.draw(x.shape, torch.Generator().manual_seed(0))), x)
    assert MaskedDropout(0.5)(x, None) is x
    for p in (-0.1, 1.0):
        with pytest.raises(ValueError, match="dropout rate must be in"):
            MaskedDropout(p)


def test_ensemble_mlp_drops_after_each_hidden_linear_with_the_masks_it_is_given():
    """Linear -> dropout -> LayerNorm -> act per hidden layer (DroQ's order), one [E, B, width] mask per
    hidden layer drawn in layer order; masks None computes the network without dropout."""
    torch.manual_seed(0)
    net, x = EnsembleMLP(3, 4, [8, 6], 1, dropout=0.2), torch.randn(5, 4)
    g = torch.Generator().manual_seed(1)
    masks = net.draw_masks(5, g)
    assert [m.shape for m in masks] == [(3, 5, 8), (3, 5, 6)]
    g.manual_seed(1)
    assert torch.equal(masks[0], net.dropout.draw((3, 5, 8), g))  # the first layer's mask is drawn first
    h = x
    for k, lin in enumerate(net.linears):
        h = net.act(net.norms[k](lin(h) * (masks[k] / 0.8)))
    torch.testing.assert_close(net(x, masks=masks), net.out(h), rtol=0, atol=0)
    plain = EnsembleMLP(3, 4, [8, 6], 1)
    plain.load_state_dict(net.state_dict())  # dropout holds no tensors: the same state
    assert torch.equal(net(x), plain(x)) and not torch.equal(net(x, masks=masks), plain(x))
    members = torch.tensor([2, 0])
    sub = net.draw_masks(5, g, n=2)
    assert net(x, members, sub).shape == (2, 5, 1)


def test_an_ensemble_without_dropout_draws_nothing():
    g = torch.Generator().manual_seed(3)
    before = g.get_state()
    assert ensemble_mlp(2, 4, [8], 1, dropout=0.0).draw_masks(5, g) is None
    assert torch.equal(g.get_state(), before)
    with pytest.raises(ValueError, match="network=mlp only"):
        ensemble_mlp(2, 4, [8], 1, network="simba", dropout=0.1)


@pytest.mark.parametrize(
    "module, found",
    [
        (nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.1)), "critic.1 (Dropout)"),
        (nn.Dropout1d(0.1), "critic (Dropout1d)"),
        (nn.Dropout2d(0.1), "critic (Dropout2d)"),
        (nn.Dropout3d(0.1), "critic (Dropout3d)"),
        (nn.AlphaDropout(0.1), "critic (AlphaDropout)"),
        (nn.FeatureAlphaDropout(0.1), "critic (FeatureAlphaDropout)"),
        (nn.RReLU(), "critic (RReLU)"),
        (nn.MultiheadAttention(4, 2, dropout=0.1), "critic (MultiheadAttention)"),
        (nn.GRU(4, 4, num_layers=2, dropout=0.1), "critic (GRU)"),
        (nn.TransformerEncoderLayer(4, 2, 8), "critic.self_attn (MultiheadAttention)"),
        (nn.Dropout(0.0), None),  # draws nothing
        (nn.MultiheadAttention(4, 2), None),
        (EnsembleMLP(2, 4, [8], 1, dropout=0.5), None),  # masks passed in
        (mlp(4, [8], 1), None),
    ],
)
def test_modules_drawing_from_torchs_global_generator_are_found_by_structure(module, found):
    assert global_random_module({"critic": module}) == found


# ---------------------------------------------------------------------------------- a critic with dropout
@dataclass
class DropoutConfig(TinyConfig):
    dropout: float = 0.2  # large, so that the masks change the numbers of a few updates


class DropoutCriticAgent(TinyAgent):
    """test_multiseed's TinyAgent (DDPG on raw observations) with two critics whose hidden layers drop units,
    as DroQ's Q-functions do: in the target, the critic loss and the actor loss, each evaluation with its own
    masks, drawn from the agent's generator by the `*_draws` function beside the function that takes them."""

    def __init__(self, cfg: DropoutConfig, obs_dim: int, act_dim: int, device, seed: int):
        super().__init__(cfg, obs_dim, act_dim, device, seed)
        self.critic = ensemble_mlp(2, obs_dim + act_dim, [16, 16], 1, dropout=cfg.dropout).to(self.device)
        self.critic_target = frozen_copy(self.critic)
        self.critic_opt = adam(self.critic.parameters(), lr=cfg.lr)

    def q(self, obs, action, masks, target: bool = False) -> torch.Tensor:
        """Q [2, B] of the online (or target) critics, their units dropped by `masks` (None: none dropped)."""
        critic = self.critic_target if target else self.critic
        return critic(torch.cat([obs, action], -1), masks=masks).squeeze(-1)

    def target_draws(self, batch_size: int) -> dict:
        return {"masks": self.critic_target.draw_masks(batch_size, self.generator)}

    @torch.no_grad()
    def td_target(self, reward, discount, next_obs, masks):
        next_q = self.q(next_obs, torch.tanh(self.actor(next_obs)), masks, target=True)
        return reward + discount * next_q.amin(0)

    def critic_draws(self, batch_size: int) -> dict:
        return {"masks": self.critic.draw_masks(batch_size, self.generator)}

    def critic_loss(self, obs, action, y, masks):
        return ((self.q(obs, action, masks) - y) ** 2).mean()

    def actor_draws(self, batch_size: int) -> dict:
        return {"masks": self.critic.draw_masks(batch_size, self.generator)}

    def actor_loss(self, obs, masks):
        return -self.q(obs, torch.tanh(self.actor(obs)), masks).mean()

    def update(self, replay, step: int) -> dict:
        u, b = self.updater, replay.sample(self.cfg.batch_size)
        obs, action, next_obs, n = b.obs[:, 0], b.action[:, 0], b.obs[:, 1], len(b.obs)
        discount = self.cfg.gamma * (1.0 - b.terminal[:, 0].float())
        y = u.call(self.td_target, b.reward[:, 0], discount, next_obs, **self.target_draws(n))
        critic = u.step(self.critic_loss, obs, action, y, opt=self.critic_opt, **self.critic_draws(n))
        actor = u.step(self.actor_loss, obs, opt=self.actor_opt, frozen=(self.critic,), **self.actor_draws(n))
        u.ema(self.critic_target, self.critic, self.cfg.tau)
        return {"q_loss": critic.loss, "actor_loss": actor.loss}


class TorchDropoutAgent(TinyAgent):
    """test_multiseed's TinyAgent with torch's nn.Dropout in its critic, which draws from torch's global
    generator inside forward."""

    def __init__(self, cfg, obs_dim: int, act_dim: int, device, seed: int):
        super().__init__(cfg, obs_dim, act_dim, device, seed)
        self.critic = nn.Sequential(
            nn.Linear(obs_dim + act_dim, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 1)
        ).to(self.device)
        self.critic_target = frozen_copy(self.critic)
        self.critic_opt = adam(self.critic.parameters(), lr=cfg.lr)


@pytest.fixture
def scratch(monkeypatch):
    """The two agents above in the registry (task overrides: td3's file, whose keys they lack)."""
    monkeypatch.setitem(
        registry.REGISTRY,
        "dropout-critic",
        AgentEntry(f"{__name__}:DropoutCriticAgent", f"{__name__}:DropoutConfig", "td3_tasks.yaml"),
    )
    monkeypatch.setitem(
        registry.REGISTRY,
        "torch-dropout",
        AgentEntry(f"{__name__}:TorchDropoutAgent", f"{__name__}:TinyConfig", "td3_tasks.yaml"),
    )


def test_the_masks_change_the_update_and_are_the_agents_draws(scratch):
    """With dropout the update differs from the same agent's without (same networks and batches), and its
    generator has advanced by the masks: three evaluations of two hidden layers per update."""
    drop, replay_d, _ = agent_and_replay("dropout-critic")
    _, replay_p, _ = agent_and_replay("dropout-critic")
    torch.manual_seed(0)  # as agent_and_replay builds: the same networks
    plain = make_agent(build_config(tiny_keys("dropout-critic", ["agent.dropout=0"])).agent, 5, 2, "cpu", 0)
    assert all(torch.equal(p, q) for p, q in zip(drop.critic.parameters(), plain.critic.parameters()))
    m_drop, m_plain = drop.update(replay_d, 0), plain.update(replay_p, 0)
    assert not torch.equal(m_drop["q_loss"], m_plain["q_loss"])
    g = torch.Generator().manual_seed(0)
    for _ in range(3):
        drop.critic.draw_masks(16, g)
    assert torch.equal(drop.generator.get_state(), g.get_state())


def test_eager_and_compiled_updates_of_a_critic_with_dropout_agree(scratch):
    """compile=true (inductor) computes the eager update within the agent's COMPILE_TOLERANCE: the masks are
    drawn eagerly, from the same generator, and passed into the compiled functions."""
    agent = "dropout-critic"
    assert_compiled_matches_eager(
        agent, "cpu", cudagraphs=False, tol=agent_class(agent).COMPILE_TOLERANCE, updates=20
    )


def test_k_seed_group_update_of_a_critic_with_dropout_is_each_seeds_plain_update(scratch):
    """Each seed's masks come from its own generator and are stacked like any other draw: a 3-seed group's
    updates are each seed's own, and far from the other seeds'."""
    assert_group_update_matches_plain(["agent=dropout-critic"])


def test_a_state_dict_round_trip_mid_training_continues_bit_for_bit(scratch):
    """3 updates, state_dict into a fresh agent of another seed, 3 more: the numbers of 6 updates without a
    stop, bit for bit (the masks come from the checkpointed generator)."""
    (straight, replay_s, _), (first, replay_f, _) = (
        agent_and_replay("dropout-critic"),
        agent_and_replay("dropout-critic"),
    )
    for step in range(3):
        straight.update(replay_s, step), first.update(replay_f, step)
    resumed = make_agent(build_config(tiny_keys("dropout-critic")).agent, 5, 2, torch.device("cpu"), 7)
    resumed.load_state_dict(copy.deepcopy(first.state_dict()))
    for step in range(3, 6):
        m_s, m_r = straight.update(replay_s, step), resumed.update(replay_f, step)
        assert all(torch.equal(m_s[k], m_r[k]) for k in m_s)
    s, r = straight.state_dict(), resumed.state_dict()
    for net in straight.networks():
        assert all(torch.equal(s[net][k], r[net][k]) for k in s[net]), net
    assert torch.equal(s["generator"], r["generator"])


# ---------------------------------------------------------------------------------- torch's nn.Dropout
def test_the_k_seed_mode_refuses_torchs_dropout_in_one_line(scratch, tmp_path, capsys):
    root = tmp_path / "group"
    assert multiseed_main([*TINY_NEW, "agent=torch-dropout", "seeds=0,1", f"out={root}"]) == EXIT_BAD_INPUT
    assert capsys.readouterr().err.strip().splitlines() == [
        "error: K-seed mode: torch-dropout's critic.2 (Dropout) draws from torch's global generator inside "
        "its forward; use iqrl.nn.layers.MaskedDropout, whose masks are draws"
    ]
    assert not root.exists()  # nothing written: not even the run locks' folders


def test_compile_refuses_torchs_dropout_in_one_line(scratch, tmp_path, capsys):
    run = tmp_path / "run"
    assert train_main([*TINY_NEW, "agent=torch-dropout", "compile=true", f"out={run}"]) == EXIT_BAD_INPUT
    assert capsys.readouterr().err.strip().splitlines() == [
        "error: compile=true: torch-dropout's critic.2 (Dropout) draws from torch's global generator "
        "inside its forward, which compiled code draws otherwise than eager; use "
        "iqrl.nn.layers.MaskedDropout, whose masks are draws"
    ]
    assert not run.exists()


def test_eager_single_seed_runs_keep_torchs_dropout_and_resume_exactly(scratch, tmp_path, finished_runs):
    """Eagerly, nn.Dropout draws from torch's global CPU generator, which the trainer checkpoints: a run
    interrupted and resumed ends as the one never stopped."""
    assert_resume_matches("torch-dropout", tmp_path, finished_runs)
