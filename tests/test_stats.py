"""Layers with running statistics (iqrl/nn/stats.py) and their path through the updater: the statistics a
piece's layers return are written by the updater, eagerly, compiled and in the K-seed mode.

Pinned: each layer's training and evaluation forward and its statistics after several batches against a hand
computation (nn.BatchNorm1d for BatchNorm, CrossQ's formulas for BatchRenorm, SimbaV2's RunningMeanStd for
RunningNorm); a network of all three trained through the eager updater equals the same network trained by
hand with its statistics written in place, bit for bit; compiled and K-seed training reach the same numbers.
"""

from __future__ import annotations

import threading
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from iqrl.core.interface import Agent, AgentSpec
from iqrl.multiseed.group import SeedGroup
from iqrl.nn.layers import Linear
from iqrl.nn.optim import adam
from iqrl.nn.stats import BatchNorm, BatchRenorm, RunningNorm, read, returning_writes, write


def batches(n: int, shape=(16, 4), seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=g) * (1 + i) + i for i in range(n)]


# ------------------------------------------------------------------------------------------ the layers
def test_batch_norm_computes_what_nn_batchnorm1d_computes():
    """Training output, running statistics and counter after 5 batches, and the evaluation output, against
    PyTorch's BatchNorm1d with the same momentum and eps."""
    ours, torchs = BatchNorm(4, momentum=0.2), nn.BatchNorm1d(4, momentum=0.2)
    with torch.no_grad():
        ours.weight.copy_(torch.tensor([1.0, 2.0, 0.5, -1.0]))
        torchs.weight.copy_(ours.weight)
        ours.bias.fill_(0.3)
        torchs.bias.fill_(0.3)
    for x in batches(5):
        torch.testing.assert_close(ours(x), torchs(x))
    for name in ("running_mean", "running_var"):
        torch.testing.assert_close(getattr(ours, name), getattr(torchs, name))
    assert int(ours.num_batches_tracked) == 5
    ours.eval(), torchs.eval()
    x = batches(1, seed=1)[0]
    torch.testing.assert_close(ours(x), torchs(x))


def test_batch_norm_on_windows_and_with_the_biased_variance():
    """Inputs [B, T, C] are normalised over B and T; unbiased=False moves the running variance by the biased
    batch variance (Flax's BatchNorm)."""
    x = batches(1, shape=(4, 3, 2))[0]
    bn = BatchNorm(2, momentum=0.5, unbiased=False)
    y = bn(x)
    flat = x.reshape(-1, 2)
    torch.testing.assert_close(y.reshape(-1, 2).mean(0), torch.zeros(2), atol=1e-6, rtol=0)
    torch.testing.assert_close(bn.running_var, 0.5 + 0.5 * flat.var(0, correction=0))


def renorm_by_hand(xs, momentum, eps, r_max, d_max, warmup):
    """CrossQ's BatchRenorm (sbx/sac/policies.py at a318a26) written out in float64: outputs and running
    statistics after each training batch."""
    m, v = np.zeros(xs[0].shape[-1]), np.ones(xs[0].shape[-1])
    outs = []
    for step, x in enumerate(xs):
        x = x.double().numpy()
        mu, var = x.mean(0), x.var(0)
        std, ra_std = np.sqrt(var + eps), np.sqrt(v + eps)
        r = np.clip(std / ra_std, 1 / r_max, r_max)
        d = np.clip((mu - m) / ra_std, -d_max, d_max)
        if step >= warmup:
            mu, var = mu - d * np.sqrt(var) / r, var / r**2
        outs.append((x - mu) / np.sqrt(var + eps))
        m = momentum * m + (1 - momentum) * x.mean(0)
        v = momentum * v + (1 - momentum) * x.var(0)
    return outs, m, v


def test_batch_renorm_follows_crossq_through_warm_up_and_clipping():
    """Two warm-up batches normalise by the batch statistics, the rest renormalise with r and d clipped (the
    batches drift far from the running statistics, so r_max and d_max bind); running statistics and steps
    after 6 batches; evaluation by the running statistics."""
    xs = batches(6)
    brn = BatchRenorm(4, momentum=0.9, r_max=1.5, d_max=0.5, warmup_steps=2)
    outs, m, v = renorm_by_hand(xs, 0.9, 1e-3, 1.5, 0.5, 2)
    for x, want in zip(xs, outs):
        torch.testing.assert_close(brn(x).double(), torch.from_numpy(want), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(brn.running_mean.double(), torch.from_numpy(m), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(brn.running_var.double(), torch.from_numpy(v), rtol=1e-6, atol=1e-6)
    assert int(brn.steps) == 6
    brn.eval()
    x = xs[0]
    torch.testing.assert_close(brn(x), (x - brn.running_mean) / torch.sqrt(brn.running_var + 1e-3))


def test_batch_renorm_sends_no_gradient_through_r_and_d():
    """After warm-up, d(y)/d(x) is the batch-norm Jacobian scaled by r: r and d are constants (stop-gradient),
    while the batch mean and variance are differentiated."""
    x = batches(1)[0].requires_grad_(True)
    brn = BatchRenorm(4, warmup_steps=0, r_max=1.0, d_max=0.0)  # r = 1, d = 0: exactly batch norm
    bn = BatchNorm(4, eps=1e-3)
    (g1,) = torch.autograd.grad((brn(x) ** 3).sum(), x)
    (g2,) = torch.autograd.grad((bn(x) ** 3).sum(), x)
    torch.testing.assert_close(g1, g2)


class RunningMeanStd:
    """SimbaV2's RunningMeanStd (scale_rl/agents/wrappers/utils.py at 14fafb2) in NumPy, as the reference."""

    def __init__(self, d):
        self.mean, self.var, self.count = np.zeros(d, np.float32), np.ones(d, np.float32), 1e-4

    def update(self, x):
        bm, bv, n = np.mean(x, axis=0), np.var(x, axis=0), x.shape[0]
        delta = bm - self.mean
        tot = self.count + n
        ratio = n / tot
        self.mean = self.mean + delta * np.float32(ratio)
        m2 = (
            self.var * np.float32(self.count)
            + bv * n
            + np.square(delta) * np.float32(self.count) * np.float32(ratio)
        )
        self.var, self.count = m2 / np.float32(tot), tot


def test_running_norm_follows_simbav2s_running_mean_std():
    """One observation at a time (as SimbaV2 acts) and then batches: the statistics equal RunningMeanStd's,
    and forward normalises by them; 400 observations later they are those of the data."""
    rn, ref = RunningNorm(3), RunningMeanStd(3)
    data = np.random.default_rng(0).normal(2.0, 3.0, size=(400, 3)).astype(np.float32)
    for row in data[:300]:
        rn.update(torch.from_numpy(row))
        ref.update(row[None])
    for chunk in np.split(data[300:], 4):
        rn.update(torch.from_numpy(chunk))
        ref.update(chunk)
    torch.testing.assert_close(rn.mean, torch.from_numpy(ref.mean), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(rn.var, torch.from_numpy(ref.var), rtol=1e-5, atol=1e-6)
    assert float(rn.count) == pytest.approx(400 + 1e-4, abs=1e-9)
    np.testing.assert_allclose(rn.mean.numpy(), data.mean(0), rtol=1e-4)
    np.testing.assert_allclose(rn.var.numpy(), data.var(0), rtol=1e-3)
    x = torch.from_numpy(data[:5])
    torch.testing.assert_close(rn(x), (x - rn.mean) / torch.sqrt(rn.var + 1e-8))
    before = rn.mean.clone()
    rn.train(), rn(x), rn.eval(), rn(x)
    assert torch.equal(rn.mean, before)  # forward never updates it


def test_writes_inside_a_piece_are_returned_not_applied_and_read_back_within_it():
    bn = BatchNorm(4)
    xs = batches(2)

    def twice(a, b):
        return bn(a), bn(b), read(bn, "num_batches_tracked")

    (ya, yb, count), writes = returning_writes(twice)(*xs)
    assert int(bn.num_batches_tracked) == 0 and torch.equal(bn.running_mean, torch.zeros(4))  # untouched
    assert int(count) == 2 and int(writes[bn, "num_batches_tracked"]) == 2
    plain = BatchNorm(4)
    plain(xs[0]), plain(xs[1])  # outside a piece: in place, call after call
    assert torch.equal(writes[bn, "running_mean"], plain.running_mean)
    assert torch.equal(writes[bn, "running_var"], plain.running_var)
    write(bn, "running_mean", torch.ones(4))  # outside a piece: at once
    assert torch.equal(bn.running_mean, torch.ones(4))


# ------------------------------------------------------------------------------------------ every mode
class StatsNet(nn.Module):
    """An observation normaliser, a BatchNorm and a BatchRenorm (warm-up of two calls) in one network."""

    def __init__(self):
        super().__init__()
        self.norm = RunningNorm(4)
        self.body = nn.Sequential(
            # no bias before a normalisation: its gradient is zero but for rounding, which Adam would amplify
            Linear(4, 8, bias=False),
            BatchNorm(8),
            nn.Mish(),
            Linear(8, 8, bias=False),
            BatchRenorm(8, warmup_steps=2),
            Linear(8, 1),
        )

    def forward(self, x):
        return self.body(self.norm(x))


class StatsAgent(Agent):
    """Updates a StatsNet by regression; acting (exploring) folds the observations into its normaliser, in
    place, in the seed's own thread."""

    STATE_OBJECTS = ("net", "opt")

    def __init__(self, seed: int):
        super().__init__(SimpleNamespace(name="stats"), "cpu", seed)
        torch.manual_seed(seed)
        self.spec = AgentSpec(seq_len=1, batch_size=16)
        self.net = StatsNet()
        self.opt = adam(self.net.parameters(), 1e-2)

    @torch.no_grad()
    def act(self, obs, explore):
        if explore:
            self.net.norm.update(torch.as_tensor(obs))
        return np.zeros(1, np.float32)

    def loss(self, x, y):
        # the body twice: the second call reads the statistics the first one wrote
        return ((self.net(x).squeeze(-1) - y) ** 2).mean() + 0.1 * self.net(x + 1).square().mean()

    def update(self, data, i):
        x, y = data[i]
        return {"loss": self.updater.step(self.loss, x, y, opt=self.opt).loss}


def training_data(seed: int, n: int = 5):
    xs = batches(n, seed=seed)
    return [(x, x.sum(-1).sin()) for x in xs], [x[0].numpy() for x in xs]


def train(agent, data, obs, by_hand=False) -> list[float]:
    losses = []
    for i in range(len(data)):
        agent.act(obs[i], explore=True)
        if by_hand:  # a plain PyTorch loop: the layers write their statistics in place during the forward
            agent.opt.zero_grad()
            loss = agent.loss(*data[i])
            loss.backward()
            agent.opt.step()
            losses.append(float(loss.detach()))
        else:
            losses.append(float(agent.update(data, i)["loss"]))
    return losses


def state(agent) -> dict[str, torch.Tensor]:
    return dict(agent.net.state_dict())


def test_the_eager_updater_writes_the_statistics_a_plain_loop_writes_in_place():
    """Bit for bit: the statistics are written after the step instead of during the forward, which changes
    nothing (the layers read back what they wrote within the piece); 5 steps pass the warm-up."""
    data, obs = training_data(0)
    plain, ours = StatsAgent(0), StatsAgent(0)
    assert train(plain, data, obs, by_hand=True) == train(ours, data, obs)
    for name, t in state(plain).items():
        assert torch.equal(state(ours)[name], t), name
    assert int(ours.net.body[4].steps) == 10 and int(ours.net.body[1].num_batches_tracked) == 10
    assert float(ours.net.norm.count) == pytest.approx(5 + 1e-4)


def test_a_frozen_networks_statistics_are_not_written():
    data, obs = training_data(0)
    agent = StatsAgent(0)
    agent.updater.freeze([agent.net.body])
    train(agent, data, obs)
    assert int(agent.net.body[1].num_batches_tracked) == 0 and int(agent.net.body[4].steps) == 0


def test_the_compiled_updater_writes_the_same_statistics():
    """compile=true: the statistics come out of the compiled loss (nothing in place inside it) and agree with
    the eager run to rounding."""
    data, obs = training_data(0)
    eager, compiled = StatsAgent(0), StatsAgent(0)
    compiled.compile()
    frames = torch._dynamo.utils.counters["frames"]["ok"]
    np.testing.assert_allclose(train(compiled, data, obs), train(eager, data, obs), rtol=1e-5)
    assert torch._dynamo.utils.counters["frames"]["ok"] > frames
    for name, t in state(eager).items():
        torch.testing.assert_close(state(compiled)[name], t, rtol=1e-5, atol=1e-6, msg=name)
    assert int(compiled.net.body[4].steps) == 10


def test_the_k_seed_mode_writes_each_seeds_statistics_into_its_stacks_and_its_own_buffers():
    """Three seeds in a group: each seed's losses, parameters and statistics are those of its plain run (to
    rounding), its normaliser's updates while acting reach the stacked copy, and the seeds differ."""
    seeds = (0, 1, 2)
    plain = {s: StatsAgent(s) for s in seeds}
    runs = {s: training_data(s) for s in seeds}
    want = {s: train(plain[s], *runs[s]) for s in seeds}
    grouped = [StatsAgent(s) for s in seeds]
    group = SeedGroup(grouped)
    got = {}

    def seed(k):
        got[k] = train(grouped[k], *runs[seeds[k]])
        group.leave(k)

    threads = [threading.Thread(target=seed, args=(k,)) for k in range(3)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    for k, s in enumerate(seeds):
        np.testing.assert_allclose(got[k], want[s], rtol=1e-5)
        for name, t in state(plain[s]).items():
            torch.testing.assert_close(state(grouped[k])[name], t, rtol=1e-5, atol=1e-6, msg=name)
            torch.testing.assert_close(group.stacked[f"parts.net.{name}"][k], state(grouped[k])[name])
        group.check_in_sync(k)
    assert not torch.equal(grouped[0].net.body[1].running_mean, grouped[1].net.body[1].running_mean)
    assert int(grouped[2].net.body[4].steps) == 10


def test_a_compiled_piece_compiles_once_in_any_thread():
    """A piece's first call in a thread used to create that thread's stack of pieces inside the compiled
    code, so the next call failed the guard on its absence and compiled again (every K-seed piece on the
    H200, TORCH_LOGS=recompiles): one frame for three calls here, in a new thread and then in this one."""
    m = nn.Module()
    m.register_buffer("b", torch.zeros(3))

    def fn(x):
        write(m, "b", x.sum(0))
        return x * 2

    piece = torch.compile(returning_writes(fn), backend="eager")
    torch._dynamo.reset()
    frames = torch._dynamo.utils.counters["frames"]["ok"]
    results = []

    def calls():
        results.extend(piece(torch.ones(2, 3)) for _ in range(3))

    thread = threading.Thread(target=calls)
    thread.start()
    thread.join()
    calls()
    assert torch._dynamo.utils.counters["frames"]["ok"] - frames == 1
    assert len(results) == 6
    for out, writes in results:
        assert torch.equal(out, torch.full((2, 3), 2.0))
        assert torch.equal(writes[m, "b"], torch.full((3,), 2.0))
    assert torch.equal(m.b, torch.zeros(3))  # a piece writes nothing in place
