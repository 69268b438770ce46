"""TACO (baselines/taco.py): the InfoNCE, the window each loss reads, which parameters each loss trains, the
auxiliary switches, the terminal mask, the critic's target, the exploration schedule and the task file."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from iqrl.config.build import build_config
from iqrl.core.registry import make_agent
from iqrl.core.replay import SequenceBatch, nstep_targets
from iqrl.nn.maths import info_nce, random_shift, shift_offsets

from conftest import tiny_keys

OBS, ACT, B, PIX = 5, 2, 8, (6, 32, 32)


def build(extra=(), obs_dim=OBS, seed=0):
    cfg = build_config(tiny_keys("taco", extra)).agent
    torch.manual_seed(seed)
    return make_agent(cfg, obs_dim, ACT, torch.device("cpu"), seed)


def window_batch(agent, pixels: bool = False, seed: int = 0) -> SequenceBatch:
    """B windows of the agent's length L with distinct observations, actions and rewards, no terminal."""
    g = torch.Generator().manual_seed(seed)
    L = agent.spec.seq_len
    if pixels:
        obs = torch.randint(0, 256, (B, L + 1, *PIX), generator=g, dtype=torch.uint8)
    else:
        obs = torch.randn(B, L + 1, OBS, generator=g)
    return SequenceBatch(
        obs=obs,
        action=torch.rand(B, L, ACT, generator=g) * 2 - 1,
        reward=torch.randn(B, L, generator=g),
        terminal=torch.zeros(B, L, dtype=torch.bool),
        valid=torch.ones(B, L),
        index=torch.arange(B),
    )


class FixedReplay:
    def __init__(self, batch):
        self.batch = batch

    def sample(self, batch_size):
        return self.batch


# ---------------------------------------------------------------------- InfoNCE
def test_info_nce_equals_a_hand_computation():
    logits = torch.tensor([[2.0, 0.0], [1.0, 3.0]])
    row0 = math.log(math.exp(2.0) + math.exp(0.0)) - 2.0
    row1 = math.log(math.exp(1.0) + math.exp(3.0)) - 3.0
    assert info_nce(logits).item() == pytest.approx((row0 + row1) / 2, rel=1e-6)
    # the cross-entropy with labels 0..B-1, as the code computes it
    ce = torch.nn.functional.cross_entropy(logits, torch.arange(2))
    assert info_nce(logits).item() == pytest.approx(ce.item(), rel=1e-6)
    # a weight of 0 drops a row from the mean
    assert info_nce(logits, torch.tensor([0.0, 1.0])).item() == pytest.approx(row1, rel=1e-6)


def test_info_nce_positives_are_on_the_diagonal():
    """A perfect predictor (each query scores its own key far above the others) has near-zero loss; the same
    scores shuffled so the best key of each query is another one's, a large one."""
    perfect = 50.0 * torch.eye(6)
    assert info_nce(perfect).item() < 1e-6
    shuffled = perfect[torch.roll(torch.arange(6), 1)]
    assert info_nce(shuffled).item() > 40.0
    # and in the agent's bilinear form: keys that equal the queries with W = I
    a = build()
    with torch.no_grad():
        a.heads.W.copy_(torch.eye(a.heads.W.shape[0]) * 100.0)
    z = torch.nn.functional.normalize(torch.randn(6, a.heads.W.shape[0]), dim=-1)
    assert info_nce(a.heads.logits(z, z)).item() < 1e-3
    assert info_nce(a.heads.logits(z, z[torch.roll(torch.arange(6), 1)])).item() > 10.0


# ---------------------------------------------------------------------- the window each loss reads
def record(agent, name):
    calls = []
    original = getattr(agent, name)

    def spy(*args, **draws):
        calls.append((*args, *draws.values()))
        return original(*args, **draws)

    setattr(agent, name, spy)
    return calls


@pytest.mark.parametrize("nstep", [1, 3, 4])
def test_losses_read_the_right_steps_of_the_window_states(nstep):
    """From states (no augmentation): the critic reads o_t, a_t, the n-step return and o_{t+n}; TACO reads
    o_t (anchor and positive), exactly a_t .. a_{t+K-1} and o_{t+K}; the window is max(K, n) long."""
    a = build([f"agent.nstep={nstep}", "agent.multistep=3"])
    assert a.spec.seq_len == max(3, nstep)
    batch = window_batch(a)
    critic_calls, taco_calls = record(a, "critic_loss"), record(a, "taco_losses")
    seq_calls = []
    original_seq = a.action_encoder.sequence
    a.action_encoder.sequence = lambda x: seq_calls.append(x) or original_seq(x)
    a.update(FixedReplay(batch), 0)
    obs, act, K = batch.obs, batch.action, 3
    ret, discount, _ = nstep_targets(batch.reward, batch.terminal, batch.valid, 0.99, nstep)
    o_t, a_t, r, d, o_n, _ = critic_calls[0]
    assert torch.equal(o_t, obs[:, 0]) and torch.equal(a_t, act[:, 0]) and torch.equal(o_n, obs[:, nstep])
    torch.testing.assert_close(r, ret)
    torch.testing.assert_close(d, torch.full((B,), 0.99**nstep))
    anchor, positive, actions, future, r2, mask = taco_calls[0]
    assert torch.equal(anchor, obs[:, 0]) and torch.equal(positive, obs[:, 0])
    assert torch.equal(actions, act[:, :K]) and torch.equal(seq_calls[0], act[:, :K])
    assert torch.equal(future, obs[:, K])
    torch.testing.assert_close(r2, ret)  # the reward head predicts the n-step return, as the code
    assert torch.equal(mask, torch.ones(B))


def test_pixel_update_draws_its_shifts_first_and_augments_each_batch_apart():
    """From pixels: five shifted batches (critic o_t, critic o_{t+n}, anchor, positive, o_{t+K}) with
    offsets drawn from the agent's generator before the losses, then the two action noises."""
    a = build(["agent.nstep=3", "agent.multistep=2"], obs_dim=PIX)
    assert a.PIXELS and a.pixels and a.spec.seq_len == 3
    batch = window_batch(a, pixels=True)
    g = torch.Generator().manual_seed(0)
    g.set_state(a.generator.get_state())
    offsets = shift_offsets(5 * B, 4, g).view(5, B, 2)
    normal = torch.randn((2, B, ACT), generator=g) * a.std
    critic_calls, taco_calls = record(a, "critic_loss"), record(a, "taco_losses")
    a.update(FixedReplay(batch), 0)
    obs = batch.obs
    o_t, _, _, _, o_n, noise = critic_calls[0]
    assert torch.equal(o_t, random_shift(obs[:, 0], 4, offsets[0]))
    assert torch.equal(o_n, random_shift(obs[:, 3], 4, offsets[1]))
    assert torch.equal(noise, normal[0])
    anchor, positive, actions, future, _, _ = taco_calls[0]
    assert torch.equal(anchor, random_shift(obs[:, 0], 4, offsets[2]))
    assert torch.equal(positive, random_shift(obs[:, 0], 4, offsets[3]))
    assert torch.equal(future, random_shift(obs[:, 2], 4, offsets[4]))  # o_{t+K}, K = 2
    assert torch.equal(actions, batch.action[:, :2])
    assert not torch.equal(anchor, positive)
    assert a.encoder.convs[0].in_channels == PIX[0]


# ---------------------------------------------------------------------- which parameters each loss trains
def grads(agent, loss) -> dict[str, bool]:
    return gradients_of(agent, loss.backward)


def gradients_of(agent, backward) -> dict[str, bool]:
    """Which parameter groups hold a nonzero gradient after `backward()` (a backward pass, or a step)."""
    for p in agent.optimizer_parameters():
        p.grad = None
    backward()
    groups = {
        "encoder": agent.encoder,
        "action_single": agent.action_encoder.single,
        "action_seq": agent.action_encoder.seq,
        "actor": agent.actor,
        "critic": agent.critic,
        "critic_target": agent.critic_target,
        "proj_s": agent.heads.proj_s,
        "proj_sa": agent.heads.proj_sa,
        "reward": agent.heads.reward,
    }
    out = {
        k: any(p.grad is not None and p.grad.abs().sum() > 0 for p in m.parameters())
        for k, m in groups.items()
    }
    out["W"] = agent.heads.W.grad is not None and bool(agent.heads.W.grad.abs().sum() > 0)
    return out


def trained(flags: dict[str, bool]) -> set[str]:
    return {k for k, v in flags.items() if v}


@pytest.mark.parametrize("obs_dim", [OBS, PIX], ids=["states", "pixels"])
def test_gradients_reach_exactly_the_parameters_each_loss_trains(obs_dim):
    a = build(obs_dim=obs_dim)
    a.optimizer_parameters = lambda: [p for m in a.networks().values() for p in m.parameters()]
    batch = window_batch(a, pixels=obs_dim == PIX)
    w = a.window(batch)
    normal = torch.randn(2, B, ACT)
    loss, (h, _, _) = a.critic_loss(w["o_t"], w["a_t"], w["ret"], w["discount"], w["o_n"], noise=normal[0])
    # critic -> critic, encoder and the single-step action encoder (its Q reads psi(a_t))
    assert trained(grads(a, loss)) == {"critic", "encoder", "action_single"}
    # actor on detached features -> the actor only (its step holds the critic and psi fixed)
    assert trained(gradients_of(a, lambda: a.update_actor(h.detach(), normal[1]))) == {"actor"}
    args = (w["o_t"], w["o_t"].clone(), w["a_seq"], w["o_K"], w["ret"], w["mask"])
    terms = a.taco_losses(*args)
    rep = {"encoder", "proj_s"}
    assert trained(grads(a, terms["taco"])) == rep | {"proj_sa", "W", "action_single", "action_seq"}
    terms = a.taco_losses(*args)
    assert trained(grads(a, terms["curl"])) == rep | {"W"}
    terms = a.taco_losses(*args)
    assert trained(grads(a, terms["reward"])) == rep | {"reward", "action_single", "action_seq"}


def test_optimizers_hold_the_parameters_of_the_code():
    """encoder_opt: encoder + action encoder (critic step); taco_opt: those + TACO's heads; actor and
    critic optimizers their own networks (agents/taco.py:TACOAgent)."""
    a = build()

    def ids(opt):
        return {id(p) for group in opt.param_groups for p in group["params"]}

    shared = {id(p) for m in (a.encoder, a.action_encoder) for p in m.parameters()}
    assert ids(a.encoder_opt) == shared
    assert ids(a.taco_opt) == shared | {id(p) for p in a.heads.parameters()}
    assert ids(a.actor_opt) == {id(p) for p in a.actor.parameters()}
    assert ids(a.critic_opt) == {id(p) for p in a.critic.parameters()}


# ---------------------------------------------------------------------- switches
@pytest.mark.parametrize("off", ["taco", "curl", "reward"])
def test_each_auxiliary_weight_of_zero_removes_its_term(off):
    a = build([f"agent.{off}_coef=0"])
    m = a.update(FixedReplay(window_batch(a)), 0)
    on = {"taco", "curl", "reward"} - {off}
    assert {k for k in m if k in ("taco_loss", "curl_loss", "reward_loss")} == {f"{k}_loss" for k in on}


def test_weights_scale_the_representation_loss():
    """The step's loss is sum_k c_k L_k: with c_curl = 2 the gradient on W is the taco gradient plus twice the
    curl gradient."""
    a = build(["agent.reward_coef=0"])
    w = a.window(window_batch(a))
    args = (w["o_t"], w["o_t"].clone(), w["a_seq"], w["o_K"], w["ret"], w["mask"])
    per_term = {}
    for k in ("taco", "curl"):
        a.heads.W.grad = None
        a.taco_losses(*args)[k].backward()
        per_term[k] = a.heads.W.grad.clone()
    a.cfg.curl_coef = 2.0
    captured = {}
    a.taco_opt.step = lambda: captured.setdefault("g", a.heads.W.grad.clone())
    a.update_taco(*args)
    torch.testing.assert_close(captured["g"], per_term["taco"] + 2.0 * per_term["curl"])


def test_all_weights_zero_is_drqv2_with_an_action_encoder():
    a = build(["agent.taco_coef=0", "agent.curl_coef=0", "agent.reward_coef=0"])
    before = {k: v.clone() for k, v in a.heads.state_dict().items()}
    m = a.update(FixedReplay(window_batch(a)), 0)
    assert "taco_loss" not in m and "q_loss" in m
    assert all(torch.equal(before[k], v) for k, v in a.heads.state_dict().items())
    assert not a.taco_opt.state


# ---------------------------------------------------------------------- terminals, target, schedule
def test_windows_whose_action_sequence_crosses_a_terminal_are_masked():
    """The code samples windows inside an episode; here a window whose a_t .. a_{t+K-1} runs past a terminal
    (padded steps) is masked out of the TACO and reward terms (a terminal at step K-1 itself is kept:
    o_{t+K} is its real next observation)."""
    a = build(["agent.multistep=3", "agent.nstep=1"])
    batch = window_batch(a)
    batch.terminal[0, 0] = True  # row 0 ends at its first step
    batch.valid[0, 1:] = 0.0
    batch.terminal[1, 2] = True  # row 1 ends at step K-1: kept
    w = a.window(batch)
    assert w["mask"].tolist() == [0.0, 1.0] + [1.0] * (B - 2)
    args = [w["o_t"], w["o_t"].clone(), w["a_seq"], w["o_K"], w["ret"], w["mask"]]
    out = a.taco_losses(*args)
    args[4] = w["ret"].clone()
    args[4][0] += 100.0
    assert a.taco_losses(*args)["reward"].item() == pytest.approx(out["reward"].item(), rel=1e-6)
    with torch.no_grad():  # the TACO term: the mean over the unmasked rows of the per-row InfoNCE
        z = a.heads.proj_s(a.encoder(w["o_t"]))
        u = a.action_encoder.sequence(w["a_seq"])
        logits = a.heads.logits(a.heads.proj_sa(torch.cat([z, u], -1)), a.heads.proj_s(a.encoder(w["o_K"])))
        rows = torch.logsumexp(logits, -1) - logits.diagonal()
    assert out["taco"].item() == pytest.approx(rows[1:].mean().item(), rel=1e-5)


def test_critic_target_is_the_clipped_double_q_of_the_online_actor():
    """y = R + gamma^n min_k Qbar_k(f(o_{t+n}), psi(a')), a' = mu(f(o_{t+n})) + clip(std eps): with std 0,
    a' = mu (clamped to 1 - 1e-6)."""
    a = build(["agent.std_start=0", "agent.std_end=0", "agent.nstep=2"])
    w = a.window(window_batch(a))
    _, (_, _, y) = a.critic_loss(
        w["o_t"], w["a_t"], w["ret"], w["discount"], w["o_n"], noise=torch.randn(B, ACT) * a.std
    )
    with torch.no_grad():
        h = a.encoder(w["o_n"])
        a_next = a.actor(h).clamp(-1 + 1e-6, 1 - 1e-6)
        q1, q2 = a.critic_target(h, a.action_encoder(a_next))
        expected = w["ret"] + 0.99**2 * torch.minimum(q1, q2)
    torch.testing.assert_close(y, expected)


def test_exploration_std_is_linear_in_the_exploring_steps():
    a = build(["agent.std_start=1.0", "agent.std_end=0.1", "agent.std_steps=10"])
    obs = np.zeros(OBS, dtype=np.float32)
    assert a.exploration_sigma == 1.0
    for _ in range(5):
        a.act(obs, explore=True)
    a.act(obs, explore=False)  # evaluation does not advance the clock
    assert a.explore_steps == 5 and a.exploration_sigma == pytest.approx(0.55)
    for _ in range(10):
        a.act(obs, explore=True)
    assert a.exploration_sigma == pytest.approx(0.1)


def test_task_overrides():
    def cfg(task):
        return build_config(["agent=taco", f"task={task}"]).agent

    assert (cfg("cartpole-swingup").std_steps, cfg("cartpole-swingup").nstep) == (100_000, 3)
    assert (cfg("cheetah-run").std_steps, cfg("cheetah-run").nstep) == (500_000, 3)
    assert (cfg("walker-walk").nstep, cfg("walker-run").nstep, cfg("walker-run").std_steps) == (1, 1, 500_000)
    assert cfg("humanoid-run").std_steps == 2_000_000
    assert cfg("cartpole-swingup_sparse").std_steps == 500_000
    c = cfg("quadruped-walk")
    assert (c.batch_size, c.feature_dim, c.mlp_dims, c.lr, c.tau, c.multistep) == (
        1024,
        50,
        [1024, 1024],
        1e-4,
        0.01,
        3,
    )


def test_latent_action_width_follows_the_code_heuristic():
    assert build().latent_a_dim == int(ACT * 1.25) + 1
    assert build(["agent.latent_a_dim=7"]).latent_a_dim == 7


def test_pixel_update_never_synchronises_and_resumes_bit_for_bit():
    """tests/test_sync_free.py and tests/test_conformance.py build every agent on states; the pixel path
    (shifts, convolutions) gets the same two checks here."""
    import io

    from test_sync_free import SyncGuard

    a = build(obs_dim=PIX)
    batch = window_batch(a, pixels=True)
    replay = FixedReplay(batch)
    for step in range(2):
        a.update(replay, step)
    with SyncGuard() as guard:
        a.update(replay, 2)
        a.act(batch.obs[:, 0].numpy(), explore=True)
        a.act(batch.obs[0, 0].numpy(), explore=False)
    assert not guard.found, guard.found
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    b = build(obs_dim=PIX, seed=5)
    b.load_state_dict(torch.load(io.BytesIO(buf.getvalue()), weights_only=False))
    ma, mb = a.update(replay, 3), b.update(replay, 3)
    assert {k: float(v) for k, v in ma.items()} == {k: float(v) for k, v in mb.items()}
    obs = batch.obs[:, 0].numpy()
    assert np.array_equal(a.act(obs, explore=True), b.act(obs, explore=True))
