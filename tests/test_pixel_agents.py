"""iQRL and MR.Q from pixels (obs=pixels): encoder shapes, which losses train the convolutional encoder, the
EMA target encoder, the random-shift augmentation of the update, and the refusals. Batches are built by hand
(uint8 frame stacks at 32 x 32, 3 frames of 3 channels)."""

import types
from dataclasses import replace

import numpy as np
import pytest
import torch

from baselines.mrq import MRQ, MRQConfig
from baselines.mrq_nets import MrqCNN
from iqrl.agent.config import IQRLConfig, IQRLSACConfig
from iqrl.agent.iqrl import IQRL
from iqrl.core.replay import SequenceBatch
from iqrl.multiseed.refusals import unsupported
from iqrl.nn.layers import ConvEncoder, conv_output_size
from iqrl.nn.maths import random_shift, shift_offsets

from agent_helpers import FixedReplay, params, same
from test_sync_free import SyncGuard

SHAPE, ACT = (9, 32, 32), 2


def frames(*lead, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (*lead, *SHAPE), generator=g, dtype=torch.uint8)


def window(B=4, L=5, seed=0) -> SequenceBatch:
    g = torch.Generator().manual_seed(seed + 1)
    return SequenceBatch(
        obs=frames(B, L + 1, seed=seed),
        action=torch.rand(B, L, ACT, generator=g) * 2 - 1,
        reward=torch.rand(B, L, generator=g),
        terminal=torch.zeros(B, L, dtype=torch.bool),
        valid=torch.ones(B, L),
        index=torch.arange(B),
    )


def make_iqrl(sac=False, **kw) -> IQRL:
    torch.manual_seed(0)
    cls = IQRLSACConfig if sac else IQRLConfig
    cfg = cls(**{"latent_dim": 4, "mlp_dims": [16, 16], "enc_mlp_dims": [16], "batch_size": 4, **kw})
    return IQRL(cfg, SHAPE, ACT, torch.device("cpu"), seed=0)


# ---------------------------------------------------------------------------------- iQRL


@pytest.mark.parametrize("sac", [False, True])
def test_iqrl_pixel_latent_is_fsq_codes_of_the_conv_encoder(sac):
    agent = make_iqrl(sac=sac)
    conv = agent.encoder.conv
    assert isinstance(conv, ConvEncoder) and isinstance(agent.encoder_target.conv, ConvEncoder)
    assert conv.out_dim == 32 * conv_output_size(32, 4) ** 2 == 32 * 9 * 9
    assert agent.encoder.head[0].in_features == conv.out_dim and agent.latent_width == 8  # 4 groups x [8, 8]
    obs = frames(5)
    z = agent.latent(obs)
    assert z.shape == (5, 8) and z.dtype == torch.float32
    # FSQ with 8 levels: the values (k - 4) / 4, k = 0..7
    assert torch.equal(z * 4, torch.round(z * 4)) and z.min() >= -1 and z.max() <= 0.75
    codes = agent.codes(obs)
    assert codes.shape == (5, 4) and codes.min() >= 0 and codes.max() < 64
    assert torch.equal(z, agent.encode(obs.float()))  # uint8 and its float value encode alike
    # any leading dims: a window [B, L+1, C, H, W] encodes frame by frame
    w = frames(2, 3)
    assert torch.equal(agent.encode(w), agent.encode(w.flatten(0, 1)).view(2, 3, 8))
    for explore in (False, True):
        a = agent.act(obs.numpy(), explore)
        assert a.shape == (5, ACT) and np.abs(a).max() <= 1
        assert agent.act(obs[0].numpy(), explore).shape == (ACT,)


def test_iqrl_pixel_consistency_loss_trains_the_conv_encoder_and_rl_does_not():
    agent = make_iqrl()
    b = window()
    loss, _ = agent.representation_loss(b)
    loss.backward()
    conv_grads = [p.grad for p in agent.encoder.conv.parameters()]
    assert all(g is not None and g.abs().sum() > 0 for g in conv_grads)
    assert all(p.grad is None for p in agent.encoder_target.parameters())
    agent.repr_opt.zero_grad(set_to_none=True)
    before = params(agent.encoder)
    agent.update_rl(b)
    assert same(agent.encoder, before)
    assert all(p.grad is None for p in agent.encoder.parameters())  # no RL gradient reached E_θ


def test_iqrl_pixel_target_conv_encoder_is_an_ema_copy():
    agent = make_iqrl(enc_tau=0.25)
    assert all(
        torch.equal(p, q) for p, q in zip(agent.encoder.parameters(), agent.encoder_target.parameters())
    )
    target_before = params(agent.encoder_target)
    agent.update_representation(window())
    online = params(agent.encoder)
    assert not all(torch.equal(p, q) for p, q in zip(online, target_before))  # the online conv moved
    for t, old, new in zip(agent.encoder_target.parameters(), target_before, online):
        torch.testing.assert_close(t, 0.75 * old + 0.25 * new)


def test_iqrl_pixel_update_shifts_every_frame_stack_before_the_losses():
    """update = augment (B (L+1) offsets from the agent's generator, first) then the state update on the
    shifted window: an agent with image_pad=0 handed that shifted window after the same draws matches it."""
    a, b = make_iqrl(), make_iqrl(image_pad=0)
    batch = window()
    g = torch.Generator().manual_seed(0)
    g.set_state(b.generator.get_state())
    offsets = shift_offsets(4 * 6, 4, g)
    shifted = random_shift(batch.obs.flatten(0, 1), 4, offsets).view_as(batch.obs)
    assert shifted.dtype == torch.uint8 and not torch.equal(shifted, batch.obs)
    b.generator.set_state(g.get_state())
    ma = a.update(FixedReplay(batch), 0)
    mb = b.update(FixedReplay(replace(batch, obs=shifted)), 0)
    assert ma.keys() == mb.keys() and all(torch.equal(ma[k], mb[k]) for k in ma)
    assert all(torch.equal(p, q) for p, q in zip(a.encoder.parameters(), b.encoder.parameters()))
    assert b.augment(batch) is batch  # image_pad=0: no shift, no draw


def test_iqrl_ae_is_refused_from_pixels_and_state_runs_ignore_image_pad():
    with pytest.raises(ValueError, match="use_rec_loss"):
        make_iqrl(use_rec_loss=True)
    with pytest.raises(ValueError, match="use_rec_loss"):  # the check a run config can call before building
        IQRLConfig(use_rec_loss=True).validate_pixels(32)
    IQRLConfig().validate_pixels(32)
    with pytest.raises(ValueError, match="image_pad"):
        IQRLConfig(image_pad=-1).validate()
    torch.manual_seed(0)
    s1 = IQRL(IQRLConfig(latent_dim=4, enc_mlp_dims=[16], mlp_dims=[16]), 7, ACT, "cpu", 0)
    torch.manual_seed(0)
    s2 = IQRL(IQRLConfig(latent_dim=4, enc_mlp_dims=[16], mlp_dims=[16], image_pad=0), 7, ACT, "cpu", 0)
    x = torch.randn(3, 7)
    assert torch.equal(s1.latent(x), s2.latent(x)) and s1.augment(b := window()) is b


def test_multiseed_takes_pixel_runs():
    """The K-seed mode runs pixel updates too: each seed draws its shifts in its own thread
    (tests/test_multiseed.py::test_pixel_seeds_match_their_plain_updates)."""
    cfg = types.SimpleNamespace(
        agent=IQRLConfig(),
        obs="pixels",
        precision="fp32",
        compile=False,
        init_from="",
        freeze=[],
        task="walker-walk",
    )
    assert unsupported(cfg) is None


# ---------------------------------------------------------------------------------- MR.Q


class LapReplay(FixedReplay):
    """The prioritised replay's interface around one fixed window (horizon sliced from it)."""

    has_terminal = False

    def sample(self, n, horizon=None, prioritized=False):
        b = self.batch
        h = horizon or b.action.shape[1]
        return SequenceBatch(b.obs[:, : h + 1], b.action[:, :h], b.reward[:, :h], b.terminal[:, :h],
                             b.valid[:, :h], b.index)  # fmt: skip

    def reward_abs_mean(self):
        return self.batch.reward.abs().mean()

    def update_priorities(self, index, priority):
        self.priority = priority


def make_mrq(**kw) -> MRQ:
    torch.manual_seed(0)
    cfg = MRQConfig(
        **{"zs_dim": 16, "za_dim": 8, "zsa_dim": 16, "enc_mlp_dims": [32], "mlp_dims": [32], "batch_size": 4,
           "target_update_every": 2, **kw}
    )  # fmt: skip
    return MRQ(cfg, SHAPE, ACT, torch.device("cpu"), seed=0)


def test_mrq_pixel_encoder_is_the_codes_cnn():
    # the code's Linear(1568, zs_dim): 32 x 7 x 7 features at 84 x 84 (84 -> 41 -> 20 -> 9 -> 7)
    assert MrqCNN((9, 84, 84), 512).linear.in_features == 1568
    agent = make_mrq()
    cnn = agent.encoder.zs_net
    assert isinstance(cnn, MrqCNN) and [c.stride for c in cnn.convs] == [(2, 2), (2, 2), (2, 2), (1, 1)]
    assert cnn.convs[0].in_channels == 9 and cnn.linear.in_features == 32  # 32 -> 15 -> 7 -> 3 -> 1
    assert all(c.bias.abs().sum() == 0 for c in cnn.convs)  # Xavier weights, zero bias
    obs = frames(5)
    zs = agent.latent(obs)
    assert zs.shape == (5, 16)
    # z_s = ELU(LN(.)): zero mean before the ELU, so at least one negative entry per row, all > -1
    assert (zs > -1).all() and (zs < 0).any(1).all()
    torch.testing.assert_close(agent.encoder.zs(frames(2, 3)), agent.encoder.zs(frames(6)).view(2, 3, 16))
    for explore in (False, True):
        a = agent.act(obs.numpy(), explore)
        assert a.shape == (5, ACT) and np.abs(a).max() <= 1


def test_mrq_pixel_encoder_is_trained_by_the_encoder_loss_only():
    agent = make_mrq()
    b = window(L=5)
    loss, _ = agent.encoder_loss(b, use_done=False)
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in agent.encoder.zs_net.parameters())
    agent.encoder_opt.zero_grad(set_to_none=True)
    before = params(agent.encoder)
    agent.update_rl(LapReplay(b).sample(4, 3))
    assert same(agent.encoder, before)
    assert all(p.grad is None for p in agent.encoder.parameters())


def test_mrq_pixel_batches_are_shifted_with_the_agents_generator():
    agent, batch = make_mrq(), window(L=5)
    replay = LapReplay(batch)
    g = torch.Generator().manual_seed(0)
    g.set_state(agent.generator.get_state())
    got = agent.sample(replay, 3)
    want = random_shift(batch.obs[:, :4].flatten(0, 1), 4, shift_offsets(4 * 4, 4, g)).view(4, 4, *SHAPE)
    assert torch.equal(got.obs, want) and torch.equal(agent.generator.get_state(), g.get_state())
    assert make_mrq(image_pad=0).sample(replay, 3).obs.equal(batch.obs[:, :4])
    # a whole update (target sync, a 2-step encoder burst, the RL step) runs on pixels and moves the CNN
    before = params(agent.encoder.zs_net)
    metrics = agent.update(replay, 0)
    assert not same(agent.encoder.zs_net, before) and torch.isfinite(metrics["q_loss"])
    assert replay.priority.shape == (4,)


@pytest.mark.parametrize("name", ["iqrl", "mrq"])
def test_pixel_updates_and_acting_never_synchronise(name):
    """The shift draws and the gathers of the augmentation stay on the device (the guard of test_sync_free.py;
    the replay here is a stand-in, so only the agent's own operations are checked)."""
    agent = make_iqrl() if name == "iqrl" else make_mrq()
    replay = FixedReplay(window()) if name == "iqrl" else LapReplay(window())
    for step in range(3):
        agent.update(replay, step)
    with SyncGuard() as guard:
        for step in range(3, 6):
            agent.update(replay, step)
        agent.act(frames(1, seed=3)[0].numpy(), explore=True)
        agent.act(frames(2, seed=3).numpy(), explore=False)
    assert not guard.found, "\n".join(sorted(set(guard.found)))
