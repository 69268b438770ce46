"""Every iQRL ablation switch changes what it claims to change (values, counts, formulas), not only runs.

Complements tests/test_iqrl.py (rho weights with a constant term, masks, sign direction, enc_tau EMA,
random critic pair), which is not repeated here.
"""

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from iqrl.config.build import build_config
from iqrl.config.run import ConfigError
from iqrl.core.replay import SequenceReplay
from iqrl.learners.sac import SACLearner
from iqrl.learners.td3 import TD3Learner
from iqrl.loop.trainer import Trainer
from iqrl.runfolder.exits import EXIT_OK
from iqrl.train import main

from conftest import tiny_argv
from test_iqrl import ACT, OBS, batch, make


def record_targets(agent):
    """Wrap consistency_terms to record (prediction, target) of every rollout step."""
    seen, original = [], agent.consistency_terms

    def wrapped(pred, target):
        seen.append((pred, target))
        return original(pred, target)

    agent.consistency_terms = wrapped
    return seen


@torch.no_grad()
def rollout_by_hand(agent, b):
    """[z_0, ẑ_1 .. ẑ_H]: encoded first latent, then the open-loop dynamics on the real actions."""
    z = [agent.encode(b.obs[:, 0])]
    for h in range(agent.cfg.horizon):
        z.append(agent.next_latent(z[-1], b.action[:, h]))
    return z


def perturb_(module):
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn_like(p))


def fsq_values(L: int) -> set:
    half = L // 2
    return {k / half for k in (range(-half, half) if L % 2 == 0 else range(-half, half + 1))}


# ----------------------------------------------------------------------------------------------- FSQ
def test_use_fsq_false_gives_raw_latents_and_no_codes():
    on, off = make(), make(use_fsq=False)
    obs = torch.randn(256, OBS)
    z_on, z_off = on.latent(obs), off.latent(obs)
    assert set(z_on.unique().tolist()) <= fsq_values(8)
    assert torch.equal(z_off, off.encoder(obs).detach())  # the encoder output itself
    assert not set(z_off.unique().tolist()) <= fsq_values(8)
    a = torch.rand(256, ACT) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(off.next_latent(z_off, a), z_off + off.dynamics(torch.cat([z_off, a], -1)))
    assert off.codes(obs) is None and off.codebook_size is None
    assert on.codes(obs).shape == (256, 4) and on.codebook_size == 64


@pytest.mark.parametrize("levels", [[8, 8], [5, 3], [8, 6, 5], [2, 2, 2, 2], [7]])
def test_fsq_levels_set_value_set_width_and_codebook(levels):
    agent = make(fsq_levels=levels, latent_dim=3)
    c = len(levels)
    assert agent.latent_width == 3 * c and agent.encoder[-1].out_features == 3 * c
    # quantize a sweep of raw values: channel j takes exactly the L_j values of the FSQ formula
    sweep = torch.linspace(-6, 6, 4001)[:, None].expand(-1, 3 * c)
    q = agent.quantize(sweep).reshape(-1, 3, c)
    for j, L in enumerate(levels):
        assert q[..., j].unique().tolist() == pytest.approx(sorted(fsq_values(L)))
    K = math.prod(levels)
    assert agent.codebook_size == K
    codes = agent.quantizer.indices(q.reshape(-1, 3 * c))
    assert codes.min() == 0 and codes.max() == K - 1  # the whole implicit codebook is reachable
    obs_codes = agent.codes(torch.randn(64, OBS))
    assert obs_codes.shape == (64, 3) and 0 <= obs_codes.min() and obs_codes.max() < K


@pytest.mark.parametrize(
    "G, levels, use_fsq, half_width, width",
    [
        (16, [8, 8], True, False, 32),
        (16, [8, 6, 5], True, False, 48),
        (16, [8, 8], False, False, 32),  # no FSQ at equal width (default)
        (16, [8, 8], False, True, 16),  # the official switch: half the width
    ],
)
def test_latent_dim_sets_the_width_of_every_network(G, levels, use_fsq, half_width, width):
    agent = make(
        latent_dim=G,
        fsq_levels=levels,
        use_fsq=use_fsq,
        official_nofsq_half_width=half_width,
        use_rec_loss=True,
        use_rew_loss=True,
    )
    assert agent.latent(torch.randn(5, OBS)).shape == (5, width)
    assert agent.encoder[-1].out_features == agent.dynamics[-1].out_features == width
    assert agent.dynamics[0].in_features == agent.reward_head[0].in_features == width + ACT
    assert agent.decoder[0].in_features == width and agent.decoder[-1].out_features == OBS
    assert agent.learner.actor[0].in_features == width
    assert agent.learner.critic.linears[0].weight.shape[1] == width + ACT
    if use_fsq:
        assert agent.codes(torch.randn(5, OBS)).shape == (5, G)


# ----------------------------------------------------------------------------------- horizon, rho
@pytest.mark.parametrize("H", range(1, 11))
def test_horizon_sets_rollout_terms_and_replay_window(H):
    agent = make(horizon=H, nstep=1)
    assert agent.spec.seq_len == H
    replay = SequenceReplay(OBS, ACT, agent.spec.seq_len, seed=0)
    replay.start_episode(torch.randn(OBS))
    for _ in range(25):
        replay.add(torch.rand(ACT) * 2 - 1, 0.5, torch.randn(OBS), False, False)
    b = replay.sample(8)
    assert b.obs.shape == (8, H + 1, OBS) and b.action.shape == (8, H, ACT)
    calls = {"n": 0}
    step = agent.next_latent

    def counted(z, a):
        calls["n"] += 1
        return step(z, a)

    agent.next_latent = counted
    seen = record_targets(agent)
    metrics = agent.update_representation(b)
    assert calls["n"] == H and len(seen) == H  # one dynamics step and one consistency term per h
    with torch.no_grad():
        expected = agent.quantize(make(horizon=H).encoder_target(b.obs[:, H]))
    assert torch.equal(seen[-1][1], expected)  # the last target is o_{t+H}
    assert math.isfinite(float(metrics["consistency_loss"]))
    assert math.isfinite(float(agent.update(replay, 0)["q_loss"]))  # the full update samples its own window
    assert make(horizon=H, nstep=H + 2).spec.seq_len == H + 2  # the window also covers the n-step return


def test_horizon_sets_the_trainers_replay_window(tmp_path):
    trainer = Trainer(build_config(tiny_argv("iqrl", tmp_path / "r", extra=["agent.horizon=7"])))
    assert trainer.replay.seq_len == 7


@pytest.mark.parametrize("rho", [1.0, 0.5, 0.9])
def test_rho_weights_each_rollout_step(rho):
    agent = make(horizon=4, rho=rho)
    step = itertools.count(1)
    agent.consistency_terms = lambda pred, target: (
        torch.full(pred.shape[:1], float(next(step))) + 0 * pred.sum(-1)
    )
    loss, _ = agent.representation_loss(batch(L=4))
    assert loss.item() == pytest.approx(sum(rho**h * (h + 1) for h in range(4)) / 4)


# --------------------------------------------------------------------------- consistency loss form
@pytest.mark.parametrize("kind", ["cos", "mse"])
def test_consistency_loss_formula_on_a_rollout(kind):
    agent = make(consistency_loss=kind, horizon=3, rho=0.8)
    b = batch(L=3)
    z = rollout_by_hand(agent, b)
    with torch.no_grad():
        targets = agent.encode(b.obs[:, 1:4], target=True)
    if kind == "cos":
        terms = [-F.cosine_similarity(z[h + 1], targets[:, h], dim=-1, eps=1e-6) for h in range(3)]
    else:
        terms = [((z[h + 1] - targets[:, h]) ** 2).mean(-1) for h in range(3)]
    expected = sum(0.8**h * terms[h].mean() for h in range(3)) / 3
    loss, metrics = agent.representation_loss(b)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert set(metrics) == {"consistency_loss"}


def test_tc_loss_sign_flips_the_cosine_loss():
    b = batch()
    paper, official = make(tc_loss_sign=-1), make(tc_loss_sign=1)
    assert official.representation_loss(b)[0].item() == pytest.approx(-paper.representation_loss(b)[0].item())
    assert make(consistency_loss="mse", tc_loss_sign=1).representation_loss(b)[0].item() == pytest.approx(
        make(consistency_loss="mse").representation_loss(b)[0].item()
    )  # sign: cosine only


# ------------------------------------------------------------------------- targets and projection
@pytest.mark.parametrize("use_target", [True, False])
def test_use_target_encoder_selects_where_targets_come_from(use_target):
    agent = make(use_target_encoder=use_target, horizon=3)
    perturb_(agent.encoder_target)  # make the two encoders differ
    b = batch(L=3)
    seen = record_targets(agent)
    agent.representation_loss(b)
    recorded = torch.stack([t for _, t in seen], 1)
    with torch.no_grad():
        online, target = agent.encode(b.obs[:, 1:4]), agent.encode(b.obs[:, 1:4], target=True)
    chosen, other = (target, online) if use_target else (online, target)
    assert torch.equal(recorded, chosen) and not torch.allclose(recorded, other)
    assert not recorded.requires_grad  # stop-gradient on targets either way


def test_projection_maps_predictions_and_targets_and_tracks_by_ema():
    agent = make(use_projection=True, projection_dim=3, horizon=2, enc_tau=0.3)
    perturb_(agent.projection_target)
    b = batch(L=2)
    seen = record_targets(agent)
    agent.representation_loss(b)
    z = rollout_by_hand(agent, b)
    with torch.no_grad():
        for h, (pred, tgt) in enumerate(seen):
            assert pred.shape[-1] == tgt.shape[-1] == 3
            assert torch.allclose(pred, agent.projection(z[h + 1]))  # online projection of the prediction
            assert torch.allclose(tgt, agent.projection_target(agent.encode(b.obs[:, h + 1], target=True)))
    old = [p.clone() for p in agent.projection_target.parameters()]
    agent.update_representation(b)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in agent.projection.parameters())
    for t_old, t_new, online in zip(old, agent.projection_target.parameters(), agent.projection.parameters()):
        assert torch.allclose(t_new, 0.7 * t_old + 0.3 * online, atol=1e-6)
    plain = make()
    seen = record_targets(plain)
    plain.representation_loss(batch())
    assert plain.projection is None and seen[0][1].shape[-1] == plain.latent_width


# --------------------------------------------------------------------------- reward and decoder heads
@pytest.mark.parametrize("shifted", [False, True])
def test_reward_head_loss_value_and_gradient(shifted):
    agent = make(use_rew_loss=True, reward_head_shifted_latent=shifted, horizon=3, rho=0.5)
    b = batch(L=3)
    z = rollout_by_hand(agent, b)
    with torch.no_grad():
        r_hat = [
            agent.reward_head(torch.cat([z[h + 1 if shifted else h], b.action[:, h]], -1)).squeeze(-1)
            for h in range(3)
        ]
    expected = sum(0.5**h * ((r_hat[h] - b.reward[:, h]) ** 2).mean() for h in range(3)) / 3
    loss, metrics = agent.representation_loss(b)
    assert metrics["reward_loss"].item() == pytest.approx(expected.item(), rel=1e-5)
    assert loss.item() == pytest.approx(
        (metrics["consistency_loss"] + metrics["reward_loss"]).item(), rel=1e-6
    )
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in agent.reward_head.parameters())
    assert any(p is q for p in agent.reward_head.parameters() for q in agent.repr_params)
    plain = make(horizon=3)
    assert plain.reward_head is None and "reward_loss" not in plain.representation_loss(b)[1]


def test_reward_only_representation_has_no_consistency_term():
    agent = make(use_rew_loss=True, use_tc_loss=False)
    loss, metrics = agent.representation_loss(batch())
    assert set(metrics) == {"reward_loss"} and loss.item() == pytest.approx(metrics["reward_loss"].item())


def test_rec_loss_along_the_rollout_formula_and_decoder_gradient():
    agent = make(use_rec_loss=True, horizon=3, rho=0.5)
    b = batch(L=3, terminal_at=0)  # cumulative mask m = [1, 0, 0] -> decoder weights m' = [1, 1, 0]
    z = rollout_by_hand(agent, b)
    with torch.no_grad():
        err = [((agent.decoder(z[h]) - b.obs[:, h]) ** 2).mean(-1).mean() for h in range(3)]
    # o_0 .. o_{H-1} only, rho^h weighted and divided by H like the consistency loss
    expected = (err[0] + 0.5 * err[1]) / 3
    loss, metrics = agent.representation_loss(b)
    assert metrics["rec_loss"].item() == pytest.approx(expected.item(), rel=1e-5)
    assert loss.item() == pytest.approx((metrics["consistency_loss"] + metrics["rec_loss"]).item(), rel=1e-6)
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in agent.decoder.parameters())
    assert all(any(p is q for q in agent.repr_params) for p in agent.decoder.parameters())
    assert "decoder" in agent.state_dict()
    assert make().decoder is None and "decoder" not in make().state_dict()


def test_reconstruction_only_autoencoder():
    agent = make(use_rec_loss=True, use_tc_loss=False, horizon=3, enc_lr=3e-3)
    b = batch(L=3, terminal_at=1)  # mask [1, 1, 0] over o_0 .. o_2
    with torch.no_grad():
        err = ((agent.decoder(agent.encode(b.obs[:, :3])) - b.obs[:, :3]) ** 2).mean(-1)  # [B, 3]
    loss, metrics = agent.representation_loss(b)
    assert set(metrics) == {"rec_loss"}
    assert loss.item() == pytest.approx((err[:, :2].sum() / err.numel()).item(), rel=1e-5)
    loss.backward()
    assert all(p.grad is None for p in agent.dynamics.parameters())  # no latent rollout at all
    assert all(p.grad is not None for p in agent.encoder.parameters())
    losses = [float(agent.update_representation(b)["rec_loss"]) for _ in range(40)]
    assert losses[-1] < 0.5 * losses[0]


def test_use_tc_loss_false_alone_is_refused():
    with pytest.raises(ConfigError, match="use_tc_loss=false needs use_rec_loss=true or use_rew_loss=true"):
        build_config(["agent=iqrl", "agent.use_tc_loss=false"])


def test_presets_turn_on_their_switches():
    ae = build_config(["agent=iqrl-ae", "task=walker-walk"]).agent
    assert ae.use_rec_loss and ae.use_tc_loss and ae.rl_algo == "td3"
    assert build_config(["agent=iqrl-sac", "task=walker-walk"]).agent.rl_algo == "sac"


def test_use_delta_switches_residual_dynamics():
    agent = make(use_delta=False, use_fsq=False)
    z, a = torch.randn(4, agent.latent_width), torch.rand(4, ACT)
    with torch.no_grad():
        assert torch.allclose(agent.next_latent(z, a), agent.dynamics(torch.cat([z, a], -1)))


@pytest.mark.parametrize("algo, cls", [("td3", TD3Learner), ("sac", SACLearner)])
def test_rl_algo_selects_the_learner(algo, cls):
    assert type(make(rl_algo=algo).learner) is cls


# --------------------------------------------------------------------------------- actor-critic
@pytest.mark.parametrize("n, k", [(2, 2), (3, 1), (5, 2), (10, 3)])
def test_num_critics_and_q_subsample(n, k):
    agent = make(num_critics=n, q_subsample=k)
    ac = agent.learner
    assert ac.critic.linears[0].weight.shape[0] == ac.critic_target.out.weight.shape[0] == n
    calls = {"online": [], "target": []}
    for name, net in (("online", ac.critic), ("target", ac.critic_target)):

        def wrapped(x, members=None, _net=net, _name=name):
            out = type(_net).forward(_net, x, members)
            calls[_name].append(out.shape[0])
            return out

        net.forward = wrapped
    b = batch()
    agent.update_rl(b)  # critic step
    agent.update_rl(b)  # critic step + actor step
    assert calls["target"] == [k, k]  # the TD target: a random subset of k target critics
    assert calls["online"] == [n, n, k]  # critic loss over all n; the actor objective over k


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_nstep_targets_use_gamma_n_and_the_nth_latent(n):
    agent = make(nstep=n, horizon=2, gamma=0.9)
    L = agent.spec.seq_len
    assert L == max(2, n)
    b = batch(L=L)
    captured = {}
    agent.learner.update = lambda u, *args: captured.setdefault("args", args) and {}
    agent.update_rl(b)
    x, a, ret, discount, x_next = captured["args"]
    with torch.no_grad():
        assert torch.equal(x, agent.encode(b.obs[:, 0])) and torch.equal(a, b.action[:, 0])
        assert torch.equal(x_next, agent.encode(b.obs[:, n]))
    assert torch.allclose(ret, sum(0.9**k * b.reward[:, k] for k in range(n)))
    assert torch.allclose(discount, torch.full_like(discount, 0.9**n))
    if n == 1:  # the official quirk: n = 1 targets undiscounted
        bug = make(nstep=1, horizon=2, gamma=0.9, official_nstep1_gamma_bug=True)
        bug.learner.update = lambda u, *args: captured.update(bug=args) or {}
        bug.update_rl(b)
        assert torch.equal(captured["bug"][3], torch.ones_like(discount))


@pytest.mark.parametrize("tau", [0.2, 0.05])
def test_tau_sets_critic_and_actor_target_ema(tau):
    agent = make(tau=tau)
    ac, b = agent.learner, batch()
    critic_t0 = [p.clone() for p in ac.critic_target.parameters()]
    actor_t0 = [p.clone() for p in ac.actor_target.parameters()]
    agent.update_rl(b)  # critic step only: the actor target stays
    for old, new, online in zip(critic_t0, ac.critic_target.parameters(), ac.critic.parameters()):
        assert torch.allclose(new, (1 - tau) * old + tau * online, atol=1e-6)
    assert all(torch.equal(o, p) for o, p in zip(actor_t0, ac.actor_target.parameters()))
    agent.update_rl(b)  # with an actor step
    for old, new, online in zip(actor_t0, ac.actor_target.parameters(), ac.actor.parameters()):
        assert torch.allclose(new, (1 - tau) * old + tau * online, atol=1e-6)


@pytest.mark.parametrize("enc_tau", [0.5, 0.01])
def test_enc_tau_sets_target_encoder_ema(enc_tau):
    agent = make(enc_tau=enc_tau)
    old = [p.clone() for p in agent.encoder_target.parameters()]
    agent.update_representation(batch())
    for t_old, t_new, online in zip(old, agent.encoder_target.parameters(), agent.encoder.parameters()):
        assert torch.allclose(t_new, (1 - enc_tau) * t_old + enc_tau * online, atol=1e-6)


# ------------------------------------------------------------------------------------- trainer
@pytest.mark.parametrize("ups, updates", [(None, 200), (1.0, 400), (0.125, 50)])
def test_updates_per_step_sets_the_trainers_update_count(ups, updates, tmp_path, monkeypatch):
    from iqrl.agent.iqrl import IQRL

    calls = []
    original = IQRL.update
    monkeypatch.setattr(
        IQRL, "update", lambda self, replay, step: calls.append(step) or original(self, replay, step)
    )
    extra = ["diag_every=800"] + ([] if ups is None else [f"updates_per_step={ups}"])
    assert main(tiny_argv("iqrl", tmp_path / "run", steps=800, extra=extra)) == EXIT_OK
    # learning starts after 400 seed steps: 400 agent-collected env steps x updates_per_step (default 0.5)
    assert len(calls) == updates and calls == list(range(updates))


@pytest.mark.parametrize("agent", ["iqrl", "iqrl-official", "td3"])
def test_the_official_codes_update_count_one_per_stored_transition(agent):
    """IQ-14 / TD3-1: the official code updates once per agent step of its frame-skip-2 env, one per stored
    transition = 0.5 per env step; every preset of it runs that rate by default (no key to switch)."""
    from iqrl.loop.memory import meta_agent, run_spaces

    cfg = build_config([f"agent={agent}", "task=walker-walk"])
    assert cfg.updates_per_step is None and cfg.action_repeat == 2
    assert meta_agent(cfg, *run_spaces(cfg)).spec.rate(cfg.action_repeat) == 1 / cfg.action_repeat
