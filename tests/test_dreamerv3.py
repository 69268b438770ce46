"""DreamerV3's maths (baselines/dreamerv3.py, baselines/dreamerv3_nets.py, iqrl/nn/maths.py, iqrl/nn/optim.py
LaProp) against hand computations and the reference code's formulas (github.com/danijar/dreamerv3 at e3f0224):
symlog and the symexp two-hot bins, the two-hot loss and its symmetric mean, the unimix categorical and its
samples, KL balancing with free bits, lambda-returns, the percentile return normaliser, LaProp with AGC and
warm-up, the block GRU, the image decoder's layout, a window started from a replayed context against the
step-by-step rollout, and the three quirk switches."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

from baselines.dreamerv3 import SIZES, DreamerV3
from baselines.dreamerv3_nets import BlockLinear, Decoder, ReturnNorm, kl_balance
from iqrl.config.build import build_config
from iqrl.config.run import ConfigError
from iqrl.core.registry import make_agent
from iqrl.core.replay import SequenceReplay
from iqrl.core.spaces import ActionSpec
from iqrl.nn.maths import (
    categorical_index,
    lambda_return,
    straight_through_one_hot,
    symexp,
    symexp_bins,
    symlog,
    two_hot,
    two_hot_cross_entropy,
    two_hot_mean,
    unimix_logits,
)
from iqrl.nn.optim import LaProp

from conftest import tiny_keys


def agent(extra=(), spec=None, obs=5, seed=0) -> DreamerV3:
    cfg = build_config(tiny_keys("dreamerv3", extra)).agent
    torch.manual_seed(seed)
    return make_agent(cfg, obs, spec or ActionSpec.box(2), torch.device("cpu"), seed)


# ---------------------------------------------------------------------------------------- symlog, two-hot
def test_symlog_and_symexp_are_inverse_and_log1p_shaped():
    x = torch.tensor([-1000.0, -math.e + 1, -0.5, 0.0, 0.5, math.e - 1, 1000.0])
    torch.testing.assert_close(symlog(x)[[1, 3, 5]], torch.tensor([-1.0, 0.0, 1.0]))
    torch.testing.assert_close(symexp(symlog(x)), x, rtol=1e-6, atol=1e-6)


def test_bins_are_symexp_of_an_even_grid_mirrored_about_zero():
    """heads.py symexp_twohot: 255 bins, symlog of them linspace(-20, 20), b_i = -b_{254-i}, b_127 = 0."""
    b = symexp_bins(255)
    assert b.shape == (255,) and b[127] == 0 and torch.equal(b, -b.flip(0))
    torch.testing.assert_close(
        symlog(b.double()), torch.linspace(-20, 20, 255, dtype=torch.float64), atol=1e-5, rtol=0
    )
    assert torch.equal(
        symexp_bins(4), torch.tensor([-symexp(torch.tensor(20.0)), 0.0, 0.0, symexp(torch.tensor(20.0))])
    )


def test_two_hot_mean_is_exactly_zero_at_uniform_where_a_plain_sum_is_not():
    b, logits = symexp_bins(255), torch.zeros(3, 255)
    assert torch.equal(two_hot_mean(logits, b), torch.zeros(3))
    assert float((torch.softmax(logits, -1) * b).sum(-1).abs().max()) > 0.1  # 5e8-sized bins, in any order
    x = torch.randn(4, 255) * 3
    torch.testing.assert_close(
        two_hot_mean(x, b), (torch.softmax(x.double(), -1) * b.double()).sum(-1).float(), rtol=1e-5, atol=1e-3
    )


def test_two_hot_loss_puts_weights_by_distance_on_the_two_neighbouring_bins():
    """outs.py TwoHot.loss: y between b_k and b_k+1 gets |b_k+1 - y| / (b_k+1 - b_k) on b_k and the rest on
    b_k+1 (in raw space, on the symexp-spaced bins); outside the bins all of it on the end bin."""
    b = symexp_bins(5, limit=2.0)  # [-6.389, -1.718, 0, 1.718, 6.389]
    y = torch.tensor([1.0, 6.389056 * 2, -100.0, 0.0])
    w = two_hot(y, b)
    expected = torch.zeros(4, 5)
    expected[0, 2], expected[0, 3] = (b[3] - 1.0) / b[3], 1.0 / b[3]
    expected[1, 4], expected[2, 0], expected[3, 2] = 1.0, 1.0, 1.0
    torch.testing.assert_close(w, expected)
    logits = torch.randn(4, 5)
    torch.testing.assert_close(
        two_hot_cross_entropy(logits, y, b), -(expected * torch.log_softmax(logits, -1)).sum(-1)
    )


# ------------------------------------------------------------------------------------------- categoricals
def test_unimix_mixes_one_percent_of_the_uniform():
    logits = torch.tensor([[10.0, 0.0, -10.0, 0.0]])
    p = torch.softmax(logits, -1)
    torch.testing.assert_close(unimix_logits(logits, 0.01).exp(), 0.99 * p + 0.01 / 4)
    assert float(unimix_logits(torch.tensor([[1e4, 0.0, 0.0]]), 0.01).exp().min()) >= 0.01 / 3 - 1e-7
    assert torch.equal(unimix_logits(logits, 0.0), logits)


def test_categorical_index_inverts_the_distribution_function():
    p = torch.tensor([0.2, 0.5, 0.3])
    u = torch.tensor([0.0, 0.1, 0.2, 0.25, 0.69, 0.71, 0.999999])
    assert categorical_index(p.expand(7, 3), u).tolist() == [0, 0, 0, 1, 1, 2, 2]
    g = torch.Generator().manual_seed(0)
    draws = categorical_index(p.expand(100_000, 3), torch.rand(100_000, generator=g))
    np.testing.assert_allclose(np.bincount(draws.numpy()) / 1e5, p.numpy(), atol=0.005)


def test_samples_are_one_hot_forward_and_pass_the_probabilities_gradient_back():
    logits = torch.randn(2, 4, requires_grad=True)
    probs = torch.softmax(logits, -1)
    x = straight_through_one_hot(torch.tensor([1, 3]), probs)
    assert torch.equal(x.detach(), torch.tensor([[0.0, 1, 0, 0], [0, 0, 0, 1]]))
    w = torch.randn(2, 4)
    (x * w).sum().backward()
    expected = torch.autograd.grad((torch.softmax(logits, -1) * w).sum(), logits)[0]
    torch.testing.assert_close(logits.grad, expected)


def test_kl_balancing_with_free_bits():
    """rssm.py RSSM.loss: dyn = max(1, KL(sg(q) || p)) trains the prior only, rep = max(1, KL(q || sg(p))) the
    posterior only, each KL summed over the latents; below one nat no gradient."""
    q = torch.randn(3, 2, 4, requires_grad=True)
    p = torch.randn(3, 2, 4, requires_grad=True)
    lq, lp = torch.log_softmax(q, -1), torch.log_softmax(p, -1)
    kl = (lq.exp() * (lq - lp)).sum((-2, -1))
    dyn, rep = kl_balance(q, p, 1.0)
    torch.testing.assert_close(dyn, kl.clamp(min=1.0))
    torch.testing.assert_close(rep, kl.clamp(min=1.0))
    assert torch.autograd.grad(dyn.sum(), q, allow_unused=True)[0] is None
    assert torch.autograd.grad(rep.sum(), p, allow_unused=True)[0] is None
    small = q.detach() * 0, p.detach() * 0 + 1e-3  # equal latents: KL 0 < 1, no gradient at all
    sq, sp = (t.clone().requires_grad_() for t in small)
    d, r = kl_balance(sq, sp, 1.0)
    assert torch.equal(d, torch.ones(3)) and not torch.autograd.grad(d.sum() + r.sum(), sp)[0].any()
    torch.testing.assert_close(kl_balance(q, p, 0.0)[0], kl)


# --------------------------------------------------------------------------------------------- returns
def test_lambda_return_by_hand():
    """agent.py lambda_return, T = 3: R_2 = boot_2; R_1 = r_2 + g_2 ((1 - c_2) v_2 + c_2 R_2); R_0 likewise,
    g = disc (1 - term), c = lam (1 - last)."""
    rew = torch.tensor([[0.0, 1.0, 2.0]])
    boot = torch.tensor([[10.0, 20.0, 30.0]])
    term = torch.tensor([[0.0, 0.0, 0.0]])
    last = torch.zeros(1, 3)
    d, lam = 0.9, 0.5
    r1 = 2.0 + d * ((1 - lam) * 30.0 + lam * 30.0)
    r0 = 1.0 + d * ((1 - lam) * 20.0 + lam * r1)
    torch.testing.assert_close(lambda_return(last, term, rew, boot, d, lam), torch.tensor([[r0, r1]]))
    term[0, 2] = 1.0  # a terminal third step: no bootstrap into or past it
    r1 = 2.0
    r0 = 1.0 + d * ((1 - lam) * 20.0 + lam * r1)
    torch.testing.assert_close(lambda_return(last, term, rew, boot, d, lam), torch.tensor([[r0, r1]]))
    last[0, 1] = 1.0  # an episode's last step: its return is its reward and value
    torch.testing.assert_close(
        lambda_return(last, term * 0, rew, boot, d, lam)[0, 0], torch.tensor(1.0 + d * 20.0)
    )


def test_return_norm_is_the_ema_of_the_5_95_percentiles_range_at_least_one():
    """utils.py Normalize('perc', rate 0.01, limit 1, debias False): lo, hi from 0 by EMA of the batch's
    linearly interpolated percentiles; scale max(1, hi - lo)."""
    norm = ReturnNorm(0.01, 1.0, 5.0, 95.0)
    x = torch.randn(1000) * 10
    p5, p95 = np.percentile(x.numpy(), [5, 95])
    assert float(norm.update(x)) == 1.0  # 0.01 (p95 - p5) = ~0.3 < 1
    np.testing.assert_allclose([float(norm.lo), float(norm.hi)], [0.01 * p5, 0.01 * p95], rtol=1e-5)
    for _ in range(2000):
        scale = norm.update(x)
    np.testing.assert_allclose(float(scale), p95 - p5, rtol=1e-4)


# ----------------------------------------------------------------------------------------------- LaProp
def test_laprop_with_agc_and_warmup_by_hand():
    """opt.py: clip_by_agc(0.3), scale_by_rms(0.999, eps), scale_by_momentum(0.9), lr ramped from 0."""
    p = torch.nn.Parameter(torch.tensor([3.0, 4.0]))  # |p| = 5: AGC bound 1.5
    opt = LaProp([p], lr=0.1, eps=1e-20, agc=0.3, warmup=2)
    grads = [torch.tensor([30.0, 40.0]), torch.tensor([0.3, -0.4])]
    nu, mu, value = torch.zeros(2), torch.zeros(2), p.detach().clone()
    for t, g in enumerate(grads, 1):
        g = g / max(1.0, float(g.norm()) / (0.3 * max(1e-3, float(value.norm()))))
        nu = 0.999 * nu + 0.001 * g * g
        u = g / ((nu / (1 - 0.999**t)).sqrt() + 1e-20)
        mu = 0.9 * mu + 0.1 * u
        value = value - 0.1 * min(t - 1, 2) / 2 * mu / (1 - 0.9**t)
        p.grad = grads[t - 1].clone()
        opt.step()
        torch.testing.assert_close(p.detach(), value)
    assert not torch.equal(p.detach(), torch.tensor([3.0, 4.0]))


def test_laprop_first_step_moves_nothing_under_warmup():
    p = torch.nn.Parameter(torch.ones(3))
    opt = LaProp([p], lr=1.0, warmup=10)
    p.grad = torch.ones(3)
    opt.step()
    assert torch.equal(p.detach(), torch.ones(3)) and float(opt.state[p]["step"]) == 1


# --------------------------------------------------------------------------------------------- networks
def test_block_linear_is_a_block_diagonal_linear():
    torch.manual_seed(0)
    layer = BlockLinear(12, 6, 3, full_fan_in=True)
    dense = torch.block_diag(*layer.weight.detach())  # [12, 6]
    x = torch.randn(5, 12)
    torch.testing.assert_close(layer(x), x @ dense + layer.bias)


def test_block_gru_gates_by_hand():
    """rssm.py _core's last lines: h' = u tanh(sigmoid(r) c) + (1 - u) h, u = sigmoid(u - 1), the gates of
    each block contiguous in the GRU layer's output."""
    a = agent()
    rssm = a.rssm
    torch.manual_seed(1)
    h, z, act = torch.randn(2, a.D), torch.softmax(torch.randn(2, a.S, a.C), -1), torch.randn(2, 2)
    x = torch.cat([n(v) for n, v in zip(rssm.dynin, (h, z.flatten(-2), act / act.abs().clamp(min=1)))], -1)
    g = rssm.blocks
    x = torch.cat([h.view(2, g, -1), x[:, None].expand(2, g, x.shape[-1])], -1).flatten(1)
    gates = rssm.gru(rssm.dynhid(x)).view(2, g, 3, -1)
    r, c, u = (gates[:, :, i].flatten(1) for i in range(3))
    u = torch.sigmoid(u - 1)
    torch.testing.assert_close(rssm.core(h, z, act), u * torch.tanh(torch.sigmoid(r) * c) + (1 - u) * h)


def test_image_decoder_first_layer_is_the_codes_block_layout():
    """rssm.py Decoder, bspace: '... (g h w c) -> ... h w (g c)' of the block-linear map of deter."""
    a = agent(["obs=pixels", "image_size=32", "frame_stack=1"], obs=(3, 32, 32))
    dec: Decoder = a.decoder
    deter = torch.randn(2, a.D)
    g, s = dec.bspace, dec.side
    flat = dec.sp0(deter).detach().numpy()
    c = dec.depth // g
    ref = flat.reshape(2, g, s, s, c).transpose(0, 2, 3, 1, 4).reshape(2, s, s, g * c)  # NHWC
    x0 = dec.sp0(deter).unflatten(-1, (g, s, s, -1)).permute(0, 1, 4, 2, 3).flatten(1, 2)
    np.testing.assert_allclose(x0.detach().numpy(), ref.transpose(0, 3, 1, 2), rtol=1e-6)
    out = dec(deter, torch.zeros(2, a.S, a.C))
    assert out.shape == (2, 3, 32, 32) and float(out.min()) >= 0 and float(out.max()) <= 1


def test_sizes_are_the_codes():
    assert SIZES["1m"] == {"deter": 512, "hidden": 64, "classes": 4, "depth": 4, "units": 64}
    assert SIZES["200m"] == {"deter": 8192, "hidden": 1024, "classes": 64, "depth": 64, "units": 1024}
    cfg = build_config(["agent=dreamerv3"]).agent
    assert cfg.resolved(False)["size"] == "1m" and cfg.resolved(True)["size"] == "200m"
    assert cfg.resolved(False)["train_ratio"] == 1024 and cfg.resolved(True)["train_ratio"] == 256


# ------------------------------------------------------------------ the window's start, against a rollout
def test_a_window_from_its_replayed_context_continues_the_step_by_step_rollout():
    """The posterior over o_0 .. o_9 step by step from the reset state; a window starting at o_4 whose
    context is the state after o_4 gives the states after o_5 .. o_9 with the same draws (the code's
    replay_context); started from the reset instead, its first state is the reset's posterior of o_4."""
    a = agent()
    torch.manual_seed(3)
    T, B = 10, 2
    tokens = a.encoder(torch.randn(T, B, 5))
    actions = torch.randn(T, B, 2)
    u = torch.rand(T, B, a.S)
    d, z = torch.zeros(B, a.D), torch.zeros(B, a.S, a.C)
    states = []
    for t in range(T):  # acting: the previous action, reset at t = 0
        reset = torch.full((B,), t == 0)
        prev = actions[t - 1] if t else torch.zeros(B, 2)
        d, z, _ = a.rssm.observe_step(d, z, prev, tokens[t], reset, u[t])
        states.append((d, z))
    context = torch.cat([states[4][0], states[4][1].flatten(-2)], -1)
    d0, z0, _ = a.start(tokens[4], context, torch.ones(B, dtype=torch.bool), u[4])
    deter, stoch, _ = a.rssm.observe(
        d0, z0, actions[4:9], tokens[5:], torch.zeros(5, B, dtype=torch.bool), u[5:]
    )
    for i, t in enumerate(range(5, T)):
        torch.testing.assert_close(deter[i], states[t][0])
        torch.testing.assert_close(stoch[i], states[t][1])
    d_reset, _, _ = a.start(tokens[0], context, torch.zeros(B, dtype=torch.bool), u[0])
    torch.testing.assert_close(d_reset, states[0][0])  # no context: the episode start's posterior


def test_acting_carries_the_posterior_and_resets_at_episode_start():
    a = agent()
    obs = np.random.default_rng(0).normal(size=(3, 5)).astype(np.float32)
    a.on_episode_start(training=True)
    a.act(obs[0], explore=True)
    first = [x.clone() for x in a.carry[True]]
    a.act(obs[1], explore=True)
    assert not torch.equal(first[0], a.carry[True][0])
    a.on_episode_start(training=True)
    assert a.carry[True] is None
    a.act(obs[0], explore=False)  # evaluation has its own carry and generator
    assert a.carry[True] is None and a.carry[False] is not None


# ------------------------------------------------------------------------------------------- switches
def test_dv3_1_the_discrete_policy_is_unimixed_unless_the_codes_switch():
    spec = ActionSpec.discrete(4)
    for switch, floor in ((False, 0.01 / 4), (True, 0.0)):
        a = agent([f"agent.dreamerv3_actor_no_unimix={str(switch).lower()}"], spec=spec)
        with torch.no_grad():
            for p in a.policy.head.outs[0].parameters():
                p.mul_(0).add_(torch.linspace(-50, 50, p.numel()).view_as(p))  # a near-deterministic policy
        f = torch.randn(64, a.context_dim)
        logp, _ = a.policy.log_prob_entropy(f, torch.zeros(64, dtype=torch.long).add(3 - int(switch) * 3))
        p_min = float(
            torch.stack([a.policy.log_prob_entropy(f, torch.full((64,), k))[0] for k in range(4)]).exp().min()
        )
        assert p_min >= floor - 1e-7 and (switch or p_min < 0.01)


def test_dv3_2_evaluation_acts_by_the_modes_unless_the_codes_switch():
    obs = np.random.default_rng(0).normal(size=5).astype(np.float32)
    a = agent()
    runs = []
    for _ in range(2):
        a.on_episode_start(training=False)
        runs.append([a.act(obs, explore=False) for _ in range(3)])
    np.testing.assert_array_equal(runs[0], runs[1])  # deterministic: the same episode twice
    b = agent(["agent.dreamerv3_eval_sample=true"])
    b.on_episode_start(training=False)
    x = [b.act(obs, explore=False) for _ in range(3)]
    b.on_episode_start(training=False)
    assert not np.array_equal(x, [b.act(obs, explore=False) for _ in range(3)])


def test_dv3_3_block_init_reads_one_blocks_fan_in_unless_the_codes_switch():
    torch.manual_seed(0)
    own, full = BlockLinear(4096, 512, 8, full_fan_in=False), BlockLinear(4096, 512, 8, full_fan_in=True)
    np.testing.assert_allclose(float(own.weight.std()), 1 / math.sqrt(512), rtol=0.02)
    np.testing.assert_allclose(float(full.weight.std()), 1 / math.sqrt(4096), rtol=0.02)


# ------------------------------------------------------------------------------------------- config
@pytest.mark.parametrize(
    "key,value,message",
    [
        ("size", "3m", "agent.size must be one of"),
        ("deter", 30, "must be a multiple of agent.blocks"),
        ("kernel", 4, "agent.kernel must be odd"),
        ("retnorm_high", 2.0, "retnorm_low and agent.retnorm_high"),
        ("unimix", 1.0, "agent.unimix must be in [0, 1)"),
        ("train_ratio", 0, "agent.train_ratio must be > 0"),
        ("batch_length", 1, "agent.batch_length must be >= 2"),
    ],
)
def test_out_of_range_keys_are_refused_in_one_line(key, value, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        build_config(["agent=dreamerv3", f"agent.{key}={value}"])


def test_pixels_need_frames_the_image_stages_divide():
    with pytest.raises(ConfigError, match="image_size 84 must be a multiple of 16"):
        build_config(["agent=dreamerv3", "obs=pixels", "image_size=84"])
    build_config(["agent=dreamerv3", "obs=pixels"])  # the code's frames by default: 64


def test_the_replay_keeps_the_context_of_every_acted_observation():
    """Contexts from acting (the state after each training observation but an episode's first) reach the
    replay at the next update, and the update writes back the states of the steps it trained."""
    a = agent()
    spec = ActionSpec.box(2)
    replay = SequenceReplay(
        5, spec, a.spec.seq_len, "cpu", 0, context_dim=a.spec.context_dim, context_dtype=torch.bfloat16
    )
    rng = np.random.default_rng(0)
    o = rng.normal(size=5).astype(np.float32)
    a.on_episode_start(True)
    a.observe(o)
    replay.start_episode(o)
    acted = []
    for _ in range(20):
        action = a.act(o, True)
        acted.append(torch.cat([a.carry[True][0], a.carry[True][1].flatten(-2)], -1)[0])
        o = rng.normal(size=5).astype(np.float32)
        a.observe(o, 0.0, False)
        replay.add(action, 0.0, o, False, False)
    assert len(a.pending) == 19  # the first observation's state is recomputed from the reset, not stored
    a.flush_contexts(replay)
    written = replay.contexts.written[: replay.n_obs]
    assert not written[0] and written[1:20].all() and not written[20]
    torch.testing.assert_close(replay.contexts.values[5].float(), acted[5].bfloat16().float())
    batch = replay.sample(2)
    assert batch.has_context.tolist() == [not int(i) == 0 for i in batch.obs_index[:, 0]]


def test_updates_per_step_beside_train_ratio_is_refused_with_the_ratio_to_set():
    """train_ratio counts replayed steps (batch_size x batch_length per update): updates_per_step=0.25 at
    DMC's action repeat 2 is 0.5 updates per agent step, which train_ratio 512 gives; the default 1024 gives
    1."""
    with pytest.raises(ConfigError, match=re.escape("set agent.train_ratio=512 instead")):
        build_config(["agent=dreamerv3", "updates_per_step=0.25"])
    build_config(["agent=dreamerv3", "updates_per_step=0.5"])
    assert agent().spec.updates_per_agent_step == 8 / (4 * 4)  # the tiny train_ratio over its batches
