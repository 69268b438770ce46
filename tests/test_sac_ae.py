"""SAC+AE (baselines/sac_ae.py) and the encoder the critic trains (iqrl/learners/encoders.py), which the pixel
`sac` and `td3` share: where each loss sends its gradients, the autoencoder loss and its targets, the target
rates and update frequencies, the tied convolutions, the hyper-parameters of pytorch_sac_ae's train.py."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from baselines.sac import SAC, SACAgentConfig
from baselines.sac_ae import SACAE, SACAEConfig, preprocess_frames
from baselines.td3 import TD3, TD3Config
from iqrl.core.replay import SequenceBatch
from iqrl.nn.maths import random_shift, shift_offsets
from iqrl.nn.optim import detached_weights

from test_sync_free import SyncGuard

SHAPE, ACT, B = (9, 24, 24), 2, 6  # 3 stacked RGB frames of 24 x 24
TINY = {"mlp_dims": [16, 16], "batch_size": B, "feature_dim": 8, "num_filters": 4}


def sac_ae(**kw) -> SACAE:
    torch.manual_seed(0)
    return SACAE(SACAEConfig(**{**TINY, **kw}), SHAPE, ACT, "cpu", 0)


def pixel_agent(cls, cfg_cls, **kw):
    torch.manual_seed(0)
    return cls(cfg_cls(**{**TINY, **kw}), SHAPE, ACT, "cpu", 0)


class FixedReplay:
    """Always the same batch of random uint8 frame stacks (one transition per window)."""

    def __init__(self, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.batch = SequenceBatch(
            torch.randint(0, 256, (B, 2, *SHAPE), generator=g, dtype=torch.uint8),
            torch.rand(B, 1, ACT, generator=g) * 2 - 1,
            torch.rand(B, 1, generator=g),
            torch.zeros(B, 1),
            torch.ones(B, 1),
            torch.arange(B),
        )

    def sample(self, n: int) -> SequenceBatch:
        assert n == B
        return self.batch


def obs_batch(seed: int = 1) -> torch.Tensor:
    return torch.randint(
        0, 256, (B, *SHAPE), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8
    )


def params_with_grad(named, loss) -> set[str]:
    """Names of the parameters (of `named`: name -> parameter) that `loss` sends a nonzero gradient to."""
    for p in named.values():
        p.grad = None
    loss.backward()
    return {n for n, p in named.items() if p.grad is not None and p.grad.abs().sum() > 0}


def groups(names: set[str]) -> set[str]:
    """Parameter names -> the parts they belong to (ac.encoder.trunk, ac.critic, decoder, ...)."""
    out = set()
    for n in names:
        parts = n.split(".")
        if parts[0] == "decoder":
            out.add("decoder")
        else:
            out.add(".".join(parts[:3]) if parts[:2] == ["ac", "encoder"] else ".".join(parts[:2]))
    return out


def all_params(agent) -> dict:
    named = {f"ac.{n}": p for n, p in agent.learner.named_parameters()}
    if getattr(agent, "decoder", None) is not None:
        named |= {f"decoder.{n}": p for n, p in agent.decoder.named_parameters()}
    return named


# ---------------------------------------------------------------------------------------------- gradients
def test_each_loss_reaches_exactly_the_parameters_of_the_paper():
    """Critic loss -> critics + the encoder (convs and the critic's head); actor loss -> the actor and its own
    head, not the convolutions (detach_encoder=True); autoencoder loss -> decoder + encoder, not the actor."""
    a = sac_ae()
    obs, named = obs_batch(), all_params(a)
    y = torch.randn(B)
    critic = params_with_grad(named, a.learner.critic_loss(obs, torch.rand(B, ACT) * 2 - 1, y)[0])
    assert groups(critic) == {"ac.critic", "ac.encoder.trunk", "ac.encoder.head"}
    # every convolution, weight and bias, gets the critic's gradient
    assert {n for n in critic if ".trunk." in n} == {n for n in named if n.startswith("ac.encoder.trunk.")}
    # the actor's step (update_actor): the critic's weights detached, as the reference's actor optimizer
    # steps only the actor's parameters
    actor_loss, _ = detached_weights(a.learner.actor_loss, a.learner.critic)(
        obs, **a.learner.actor_draws(len(obs))
    )
    assert groups(params_with_grad(named, actor_loss)) == {"ac.actor", "ac.encoder.actor_head"}
    loss, _ = a.decoder_loss(obs, noise=torch.rand(obs.shape))
    assert groups(params_with_grad(named, loss)) == {"decoder", "ac.encoder.trunk", "ac.encoder.head"}
    # the optimizers step what the paper says: critic Adam = critics + encoder, actor Adam = actor + actor
    # head, the autoencoder's two Adams = encoder and decoder
    opt = {k: {id(p) for g in o.param_groups for p in g["params"]} for k, o in a.learner.optimizers().items()}
    ids = lambda *mods: {id(p) for m in mods for p in m.parameters()}  # noqa: E731
    enc = a.learner.encoder
    assert opt["critic_opt"] == ids(a.learner.critic, enc.trunk, enc.head)
    assert opt["actor_opt"] == ids(a.learner.actor, enc.actor_head)
    assert {id(p) for p in a.encoder_opt.param_groups[0]["params"]} == ids(enc.trunk, enc.head)
    assert {id(p) for p in a.decoder_opt.param_groups[0]["params"]} == ids(a.decoder)


def test_the_actor_step_leaves_the_convolutions_and_the_critic_head_alone():
    a = sac_ae()
    obs = obs_batch()
    enc = a.learner.encoder
    before = {n: p.clone() for n, p in [*enc.trunk.named_parameters(), *enc.head.named_parameters()]}
    head_before = [p.clone() for p in enc.actor_head.parameters()]
    a.learner.update_actor(a.updater, obs)
    after = dict([*enc.trunk.named_parameters(), *enc.head.named_parameters()])
    assert all(torch.equal(before[n], after[n]) for n in before)
    assert any(not torch.equal(b, p) for b, p in zip(head_before, enc.actor_head.parameters()))


def test_the_actor_convolutions_are_the_critic_convolutions():
    """The conv layers are tied (one tensor each): the agent holds one online set; changing it changes the
    actor's features as well as the critic's."""
    a = sac_ae()
    enc = a.learner.encoder
    online_convs = [
        m for n, m in a.learner.named_modules() if isinstance(m, torch.nn.Conv2d) and "target" not in n
    ]
    assert len(online_convs) == a.cfg.conv_layers and all(m in set(enc.trunk.modules()) for m in online_convs)
    obs = obs_batch()
    with torch.no_grad():
        pi0, q0 = enc.actor_features(obs).clone(), enc(obs).clone()
        enc.trunk.convs[0].weight.mul_(2.0)
        pi1, q1 = enc.actor_features(obs), enc(obs)
    assert not torch.equal(pi0, pi1) and not torch.equal(q0, q1)
    # the actor's head is its own: the same trunk output through two different heads
    assert not torch.equal(enc.actor_head[0].weight, enc.head[0].weight)


# ------------------------------------------------------------------------------------------- autoencoder
def test_preprocessing_keeps_five_bits_adds_the_noise_and_centres():
    o = torch.tensor([0, 7, 8, 100, 255], dtype=torch.uint8)
    noise = torch.tensor([0.0, 0.5, 0.25, 0.0, 0.999])
    # floor(o / 8) = 0, 0, 1, 12, 31
    expected = torch.tensor([0.0, 0.5, 1.25, 12.0, 31.999]) / 32 - 0.5
    assert torch.allclose(preprocess_frames(o, 5, noise), expected)
    assert torch.allclose(preprocess_frames(o, 8, torch.zeros(5)), o.float() / 256 - 0.5)


def test_decoder_loss_is_the_hand_computed_mse_plus_the_latent_penalty():
    a = sac_ae(decoder_latent_lambda=0.3)  # a large lambda so that the penalty is visible in the sum
    obs, noise = obs_batch(), torch.rand(B, *SHAPE, generator=torch.Generator().manual_seed(5))
    enc = a.learner.encoder
    x = obs.float() / 255.0  # SAC+AE: no centring of the encoder's input
    for conv in enc.trunk.convs:
        x = conv(x)
    h = torch.tanh(enc.head[1](enc.head[0](x.flatten(1))))
    target = (torch.floor(obs.float() / 8) + noise) / 32 - 0.5
    rec = ((a.decoder(h) - target) ** 2).mean()
    latent = (0.5 * (h**2).sum(1)).mean()
    loss, (rec_loss, latent_loss) = a.decoder_loss(obs, noise=noise)
    assert torch.allclose(rec_loss, rec) and torch.allclose(latent_loss, latent)
    assert torch.allclose(loss, rec + 0.3 * latent)


def test_dequantisation_noise_is_drawn_from_the_agents_generator(monkeypatch):
    a = sac_ae()
    obs = obs_batch()
    expected = torch.rand(obs.shape, generator=torch.Generator().set_state(a.generator.get_state()))
    seen = []
    original = a.decoder_loss
    monkeypatch.setattr(a, "decoder_loss", lambda o, noise: seen.append(noise) or original(o, noise=noise))
    a.update_decoder(obs)
    assert torch.equal(seen[0], expected)


def test_decoder_weight_decay_and_optimizer_settings():
    a = sac_ae()
    dec = a.decoder_opt.param_groups[0]
    assert (
        dec["weight_decay"] == 1e-7 and dec["lr"] == 1e-3 and not isinstance(a.decoder_opt, torch.optim.AdamW)
    )
    assert a.encoder_opt.param_groups[0]["lr"] == 1e-3
    assert a.learner.alpha_opt.param_groups[0]["betas"] == (0.5, 0.999)
    assert a.learner.alpha_opt.param_groups[0]["lr"] == 1e-4
    for opt in (a.learner.critic_opt, a.learner.actor_opt):
        assert opt.param_groups[0]["betas"] == (0.9, 0.999) and opt.param_groups[0]["lr"] == 1e-3


# ------------------------------------------------------------------------------- targets and frequencies
def target_encoder(ac) -> list:
    return [*ac.encoder.target_trunk.parameters(), *ac.encoder.target_head.parameters()]


def test_targets_every_second_update_at_their_own_rates_and_actor_every_second():
    """Target critics at tau 0.01 and target encoder at encoder_tau 0.05, both after every second critic step
    (the decoder off here, so that the online encoder at the EMA is the one after the update)."""
    a = sac_ae(use_decoder=False)
    ac, replay = a.learner, FixedReplay()
    t_critic, t_enc = (
        [p.clone() for p in ac.critic_target.parameters()],
        [p.clone() for p in target_encoder(ac)],
    )
    m1 = a.update(replay, 0)
    assert all(torch.equal(t, p) for t, p in zip(t_critic, ac.critic_target.parameters()))
    assert all(torch.equal(t, p) for t, p in zip(t_enc, target_encoder(ac)))
    m2 = a.update(replay, 1)
    assert "actor_loss" not in m1 and "actor_loss" in m2
    for t0, t, p in zip(t_critic, ac.critic_target.parameters(), ac.critic.parameters()):
        assert torch.allclose(t, 0.99 * t0 + 0.01 * p, atol=1e-7)
    for t0, t, p in zip(t_enc, target_encoder(ac), ac.encoder.online_parameters()):
        assert torch.allclose(t, 0.95 * t0 + 0.05 * p, atol=1e-7)
    assert not any(torch.equal(t0, t) for t0, t in zip(t_enc[:1], target_encoder(ac)))


def test_the_decoder_steps_every_update_after_the_rl_step():
    a = sac_ae()
    replay = FixedReplay()
    assert all("ae_loss" in a.update(replay, step) for step in range(3))
    b = sac_ae(decoder_update_freq=2)
    assert ["ae_loss" in b.update(replay, step) for step in range(4)] == [False, True, False, True]


def test_alpha_loss_is_the_codes_alpha_form():
    """d/d log α of α (−log π − H̄) = α (−log π − H̄): SAC v2's log-α loss scaled by α."""
    a = sac_ae(init_temperature=0.3)
    log_prob = torch.tensor([-1.0, 0.5, 2.0])
    a.learner.log_alpha.grad = None
    a.learner.alpha_loss(log_prob).backward()
    expected = 0.3 * (-log_prob - a.learner.target_entropy).mean()
    assert math.isclose(a.learner.log_alpha.grad.item(), expected.item(), rel_tol=1e-6)


def test_defaults_are_pytorch_sac_ae_train_py():
    c = SACAEConfig()
    expected = {
        "batch_size": 128,
        "mlp_dims": [1024, 1024],
        "gamma": 0.99,
        "lr": 1e-3,
        "tau": 0.01,
        "encoder_tau": 0.05,
        "critic_target_update_freq": 2,
        "actor_update_freq": 2,
        "init_temperature": 0.1,
        "alpha_lr": 1e-4,
        "alpha_beta": 0.5,
        "log_std_min": -10.0,
        "log_std_max": 2.0,
        "feature_dim": 50,
        "conv_layers": 4,
        "num_filters": 32,
        "encoder_lr": 1e-3,
        "decoder_lr": 1e-3,
        "decoder_update_freq": 1,
        "decoder_latent_lambda": 1e-6,
        "decoder_weight_lambda": 1e-7,
        "rec_bits": 5,
        "num_critics": 2,
        "critic_loss_reduce": "sum",
        "actor_q_reduce": "min",
        "image_pad": 0,
        "nstep": 1,
    }
    assert {k: getattr(c, k) for k in expected} == expected
    a = sac_ae()
    # ReLU MLPs without LayerNorm (critics and actor), the encoder's input not centred
    assert not a.learner.critic.norms and isinstance(a.learner.critic.act, torch.nn.ReLU)
    assert not any(isinstance(m, (torch.nn.LayerNorm, torch.nn.Mish)) for m in a.learner.actor.modules())
    assert a.learner.encoder.trunk.center == 0.0


def test_state_observations_use_an_mlp_encoder_and_decoder():
    torch.manual_seed(0)
    a = SACAE(SACAEConfig(**TINY), 5, ACT, "cpu", 0)
    assert isinstance(a.learner.encoder.trunk, torch.nn.Identity) and a.learner.encoder.feature_dim == 8
    obs = torch.randn(B, 5)
    loss, (rec, _) = a.decoder_loss(obs, noise=None)
    assert torch.allclose(rec, F.mse_loss(a.decoder(a.learner.encoder(obs)), obs))


@pytest.mark.parametrize("cls,cfg_cls", [(SACAE, SACAEConfig), (SAC, SACAgentConfig), (TD3, TD3Config)])
def test_head_act_is_the_last_activation_of_every_head_of_the_encoder(cls, cfg_cls):
    """agent.head_act: each head (the critic's, the actor's own, the target's) is Linear -> LayerNorm -> tanh
    by default, and ends at the LayerNorm with `none` (CURL's encoder); anything else is refused."""
    obs = obs_batch()
    for act, last in (("tanh", torch.tanh), ("none", lambda x: x)):
        e = pixel_agent(cls, cfg_cls, head_act=act).learner.encoder
        heads = [e.head, e.target_head] + [e.actor_head] * (e.actor_head is not None)
        for head in heads:
            linear, norm = head[0], head[1]
            h = e.trunk(obs)
            by_hand = last(F.layer_norm(linear(h), (8,), norm.weight, norm.bias))
            torch.testing.assert_close(head(h), by_hand)
        x = e(obs)
        assert (x.abs() < 1).all() if act == "tanh" else (x.abs().amax() > 1)  # LayerNorm's scale: beyond 1
    with pytest.raises(ValueError, match="head_act must be one of tanh, none, got 'relu'"):
        cfg_cls(**TINY, head_act="relu").validate()


# ------------------------------------------------------------------------------------- pixel sac and td3
@pytest.mark.parametrize("cls,cfg_cls", [(SAC, SACAgentConfig), (TD3, TD3Config)])
def test_pixel_sac_td3_critic_trains_the_convolutions_the_actor_does_not(cls, cfg_cls):
    a = pixel_agent(cls, cfg_cls)
    named, obs = all_params(a), obs_batch()
    assert a.learner.encoder.actor_head is None and a.learner.encoder.trunk.center == 0.5
    critic = params_with_grad(
        named, a.learner.critic_loss(obs, torch.rand(B, ACT) * 2 - 1, torch.randn(B))[0]
    )
    assert groups(critic) == {"ac.critic", "ac.encoder.trunk", "ac.encoder.head"}
    out = detached_weights(a.learner.actor_loss, a.learner.critic)(obs, **a.learner.actor_draws(len(obs)))
    actor_loss = out[0] if isinstance(out, tuple) else out
    assert groups(params_with_grad(named, actor_loss)) == {"ac.actor"}
    # the critic's Adam steps the encoder, the actor's does not
    enc_ids = {id(p) for p in a.learner.encoder.parameters()}
    assert enc_ids & {id(p) for p in a.learner.critic_opt.param_groups[0]["params"]}
    assert not enc_ids & {id(p) for p in a.learner.actor_opt.param_groups[0]["params"]}


@pytest.mark.parametrize("cls,cfg_cls", [(SAC, SACAgentConfig), (TD3, TD3Config)])
def test_pixel_target_encoder_follows_at_the_critics_tau_every_update(cls, cfg_cls):
    a = pixel_agent(cls, cfg_cls)
    enc = a.learner.encoder
    t0 = [p.clone() for p in [*enc.target_trunk.parameters(), *enc.target_head.parameters()]]
    a.update(FixedReplay(), 0)
    for t_old, t, p in zip(
        t0, [*enc.target_trunk.parameters(), *enc.target_head.parameters()], enc.online_parameters()
    ):
        assert torch.allclose(t, (1 - a.cfg.tau) * t_old + a.cfg.tau * p, atol=1e-7)


def test_random_shift_shifts_both_observations_with_offsets_from_the_generator():
    a = pixel_agent(SAC, SACAgentConfig, image_pad=4)
    batch = FixedReplay().batch
    g = torch.Generator().set_state(a.generator.get_state())
    offsets = shift_offsets(2 * B, 4, g)
    x, _, _, _, x_next = a.rl_inputs(batch)
    assert torch.equal(x, random_shift(batch.obs[:, 0], 4, offsets[:B]))
    assert torch.equal(x_next, random_shift(batch.obs[:, 1], 4, offsets[B:]))
    assert x.dtype == torch.uint8 and not torch.equal(x, batch.obs[:, 0])


@pytest.mark.parametrize("cls,cfg_cls", [(SAC, SACAgentConfig), (TD3, TD3Config)])
def test_state_runs_have_no_encoder(cls, cfg_cls):
    """obs=state: the learner reads the observations themselves (the networks and optimizers of before)."""
    torch.manual_seed(0)
    a = cls(cfg_cls(mlp_dims=[16, 16]), 5, ACT, "cpu", 0)
    assert a.learner.encoder is None and a.image_pad == 0
    assert [id(p) for p in a.learner.critic_opt.param_groups[0]["params"]] == [
        id(p) for p in a.learner.critic.parameters()
    ]
    assert [id(p) for p in a.learner.actor_opt.param_groups[0]["params"]] == [
        id(p) for p in a.learner.actor.parameters()
    ]
    x = torch.randn(4, 5)
    assert torch.equal(a.learner.actor_input(x), x) and torch.equal(a.learner.target_input(x), x)


# ----------------------------------------------------------------------------------------------- plumbing
@pytest.mark.parametrize(
    "make",
    [sac_ae, lambda: pixel_agent(SAC, SACAgentConfig, image_pad=2), lambda: pixel_agent(TD3, TD3Config)],
    ids=["sac-ae", "sac", "td3"],
)
def test_pixel_update_and_act_never_synchronise(make):
    a, replay = make(), FixedReplay()
    for step in range(2):
        a.update(replay, step)
    frames = obs_batch().numpy()
    with SyncGuard() as guard:
        for step in range(2, 6):
            a.update(replay, step)
        one, many = a.act(frames[0], explore=True), a.act(frames, explore=False)
    assert not guard.found, "\n".join(sorted(set(guard.found)))
    assert one.shape == (ACT,) and many.shape == (B, ACT) and np.abs(many).max() <= 1


def test_sac_ae_image_pad_shifts_what_the_critic_and_the_decoder_see(monkeypatch):
    a = sac_ae(image_pad=2)
    batch = FixedReplay().batch
    offsets = shift_offsets(2 * B, 2, torch.Generator().set_state(a.generator.get_state()))
    seen = {}
    monkeypatch.setattr(a.learner, "update", lambda u, o, *rest: seen.setdefault("rl", (o, rest[-1])) and {})
    monkeypatch.setattr(a, "update_decoder", lambda o: seen.setdefault("ae", o) is None or {})
    a.update(FixedReplay(), 0)
    assert torch.equal(seen["rl"][0], random_shift(batch.obs[:, 0], 2, offsets[:B]))
    assert torch.equal(seen["rl"][1], random_shift(batch.obs[:, 1], 2, offsets[B:]))
    assert torch.equal(seen["ae"], seen["rl"][0])
