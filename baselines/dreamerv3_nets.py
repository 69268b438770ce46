"""DreamerV3's networks (Hafner, Pasukonis, Ba, Lillicrap, "Mastering diverse control tasks through world
models", Nature 2025; github.com/danijar/dreamerv3 at e3f0224, cited as `file: name`): the RSSM with its
block GRU and unimix categorical latents, the observation encoder and decoder (vectors and images), the MLP
heads, the policy and the return normaliser. The agent (baselines/dreamerv3.py) composes them; every
function here is pure, its random draws passed in (drawn beforehand from the agent's generator).

Layout: time-major where a sequence is involved; a latent state is a pair (deter [..., D], stoch [..., S,
C]), stoch one-hot samples with straight-through gradients; `feat` is [deter, stoch flattened]
(`Agent.feat2tensor`).
Every layer is the code's: Linear -> RMSNorm (eps 1e-4, a learned scale, embodied/jax/nets.py: Norm) ->
SiLU; weights from a truncated normal (2 std) scaled 1.1368 / sqrt(fan-in), zero biases (`Initializer`), the
output layers scaled by their `outscale`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from iqrl.nn.maths import (
    categorical_entropy,
    categorical_index,
    categorical_kl,
    log_softmax_last,
    one_hot,
    percentile,
    softmax_last,
    straight_through_one_hot,
    symlog,
    unimix_logits,
)
from iqrl.nn.stats import StatLayer, read, write

RMS_EPS = 1e-4  # nets.py: Norm.eps
TRUNC_SCALE = 1.1368  # nets.py: Initializer, trunc_normal: the std of N(0, 1) truncated at 2 std, undone


def trunc_normal_(weight: Tensor, fan_in: int, scale: float = 1.0) -> None:
    """nets.py `Initializer('trunc_normal', 'in')`: N(0, 1) truncated to [-2, 2], times 1.1368 /
    sqrt(fan_in), times `scale` (a layer's outscale; 0: zeros)."""
    with torch.no_grad():
        nn.init.trunc_normal_(weight, 0.0, 1.0, -2.0, 2.0)
        weight.mul_(TRUNC_SCALE * scale / math.sqrt(fan_in))


def linear(d_in: int, d_out: int, outscale: float = 1.0) -> nn.Linear:
    """nets.py `Linear`: the code's init, zero bias."""
    layer = nn.Linear(d_in, d_out)
    trunc_normal_(layer.weight, d_in, outscale)
    nn.init.zeros_(layer.bias)
    return layer


def dense(d_in: int, d_out: int) -> nn.Sequential:
    """Linear -> RMSNorm -> SiLU: every hidden layer of the code (nets.py `MLP`, the RSSM's layers)."""
    return nn.Sequential(linear(d_in, d_out), nn.RMSNorm(d_out, eps=RMS_EPS), nn.SiLU())


def mlp(d_in: int, layers: int, units: int) -> nn.Sequential:
    """nets.py `MLP(layers, units)`: `layers` dense layers (none: the identity)."""
    return nn.Sequential(*[dense(d_in if i == 0 else units, units) for i in range(layers)])


class BlockLinear(nn.Module):
    """nets.py `BlockLinear(units, blocks)`: the input split into `blocks` equal groups, each mapped by its
    own weight [in / g, out / g] to its group of the output (block-diagonal), plus a bias [out]. The code's
    init reads the fan-in of the whole input, g times a block's (`Initializer.compute_fans` of the kernel
    [g, in/g, out/g]): `full_fan_in=False` takes a block's own, the variance-preserving one (DV3-3)."""

    def __init__(self, d_in: int, d_out: int, blocks: int, full_fan_in: bool):
        super().__init__()
        self.blocks = blocks
        self.weight = nn.Parameter(torch.empty(blocks, d_in // blocks, d_out // blocks))
        self.bias = nn.Parameter(torch.zeros(d_out))
        trunc_normal_(self.weight, d_in if full_fan_in else d_in // blocks)

    def forward(self, x: Tensor) -> Tensor:
        x = x.unflatten(-1, (self.blocks, -1))
        return torch.einsum("...gi,gio->...go", x, self.weight).flatten(-2) + self.bias


class ChannelNorm(nn.RMSNorm):
    """RMSNorm over the channels of an image [N, C, H, W] (the code normalises its NHWC maps' last axis)."""

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x.movedim(1, -1)).movedim(-1, 1)


def conv(d_in: int, d_out: int, kernel: int, outscale: float = 1.0) -> nn.Conv2d:
    """nets.py `Conv2D(depth, kernel)`, stride 1, 'same' padding; fan-in kernel^2 x d_in."""
    layer = nn.Conv2d(d_in, d_out, kernel, padding=kernel // 2)
    trunc_normal_(layer.weight, kernel * kernel * d_in, outscale)
    nn.init.zeros_(layer.bias)
    return layer


# ------------------------------------------------------------------------------------------------ RSSM
class RSSM(nn.Module):
    """rssm.py `RSSM`: deterministic state h (`deter`, D), stochastic state z (`stoch`, S categoricals of C
    classes each, unimix), actions of width A (one-hot for discrete ones).

    core(h, z, a): the block GRU (`_core`), a / max(1, |a|) (sg) first; three inputs, each Linear -> RMSNorm
    -> SiLU to `hidden`, concatenated and repeated per block next to h's block; `dynlayers` BlockLinear(D) ->
    RMSNorm -> SiLU; the gates BlockLinear(3D) split per block into reset r, candidate c, update u: h' = u
    tanh(sigmoid(r) c) + (1 - u) h with u = sigmoid(u - 1).
    prior(h): `imglayers` dense layers then logits [S, C]; posterior(h, e): `obslayers` dense layers of
    [h, e] (e the encoder's tokens; `absolute`: of e alone) then logits. Logits are unimixed (`_dist`)."""

    def __init__(self, cfg, act_dim: int, token_dim: int):
        super().__init__()
        D, H, S, C, g = cfg.deter, cfg.hidden, cfg.stoch, cfg.classes, cfg.blocks
        self.deter, self.stoch, self.classes, self.blocks = D, S, C, g
        self.unimix, self.free_nats, self.absolute = cfg.unimix, cfg.free_nats, cfg.absolute
        full = cfg.dreamerv3_block_full_fan_in
        self.dynin = nn.ModuleList([dense(D, H), dense(S * C, H), dense(act_dim, H)])
        hid, width = [], D + 3 * H * g
        for _ in range(cfg.dynlayers):
            hid += [BlockLinear(width, D, g, full), nn.RMSNorm(D, eps=RMS_EPS), nn.SiLU()]
            width = D
        self.dynhid = nn.Sequential(*hid)
        self.gru = BlockLinear(width, 3 * D, g, full)
        self.prior_net = nn.Sequential(mlp(D, cfg.imglayers, H), linear(H, S * C, cfg.rssm_outscale))
        post_in = token_dim if cfg.absolute else D + token_dim
        self.post_net = nn.Sequential(mlp(post_in, cfg.obslayers, H), linear(H, S * C, cfg.rssm_outscale))

    def core(self, deter: Tensor, stoch: Tensor, action: Tensor) -> Tensor:
        action = action / action.detach().abs().clamp(min=1.0)
        x = torch.cat([net(v) for net, v in zip(self.dynin, (deter, stoch.flatten(-2), action))], -1)
        g = self.blocks
        x = torch.cat([deter.unflatten(-1, (g, -1)), x.unsqueeze(-2).expand(*x.shape[:-1], g, -1)], -1)
        gates = self.gru(self.dynhid(x.flatten(-2))).unflatten(-1, (g, 3, -1))
        reset, cand, update = (gates[..., i, :].flatten(-2) for i in range(3))
        cand = torch.tanh(torch.sigmoid(reset) * cand)
        update = torch.sigmoid(update - 1.0)
        return update * cand + (1.0 - update) * deter

    def logits(self, net: nn.Module, x: Tensor) -> Tensor:
        """Unimixed logits [..., S, C] of the prior or posterior network on x."""
        return unimix_logits(net(x).unflatten(-1, (self.stoch, self.classes)), self.unimix)

    def prior(self, deter: Tensor) -> Tensor:
        return self.logits(self.prior_net, deter)

    def posterior(self, deter: Tensor, tokens: Tensor) -> Tensor:
        return self.logits(self.post_net, tokens if self.absolute else torch.cat([deter, tokens], -1))

    def sample(self, logits: Tensor, u: Tensor | None) -> Tensor:
        """A one-hot sample [..., S, C] of the latent with straight-through gradients, from uniforms u
        [..., S] (`outs.OneHot.sample`); u None: the mode (evaluation's, DV3-2)."""
        probs = softmax_last(logits)
        index = logits.argmax(-1) if u is None else categorical_index(probs, u)
        return straight_through_one_hot(index, probs)

    def observe_step(self, deter, stoch, action, tokens, reset, u):
        """One posterior step (`_observe`): the carry and the previous action zeroed where `reset` [...]
        (bool), then h' = core(h, z, a), the posterior logits at (h', tokens) and a sample z'. Returns
        (h', z', posterior logits)."""
        keep = (~reset).to(deter.dtype).unsqueeze(-1)
        deter, action = deter * keep, action * keep
        stoch = stoch * keep.unsqueeze(-1)
        deter = self.core(deter, stoch, action)
        logits = self.posterior(deter, tokens)
        return deter, self.sample(logits, u), logits

    def observe(self, deter, stoch, actions, tokens, reset, u):
        """The posterior over a sequence, time-major: actions [T, B, A] (the action before each step), tokens
        [T, B, E], reset [T, B], u [T, B, S] -> deter [T, B, D], stoch [T, B, S, C], logits [T, B, S, C]."""
        out = []
        for t in range(tokens.shape[0]):
            deter, stoch, logits = self.observe_step(deter, stoch, actions[t], tokens[t], reset[t], u[t])
            out.append((deter, stoch, logits))
        return tuple(torch.stack(x) for x in zip(*out))

    def imagine_step(self, deter: Tensor, stoch: Tensor, action: Tensor, u: Tensor):
        """One prior step (`imagine`): h' = core(h, z, a), z' a sample of the prior at h'."""
        deter = self.core(deter, stoch, action)
        return deter, self.sample(self.prior(deter), u)

    def kl_losses(self, post: Tensor, prior: Tensor) -> tuple[Tensor, Tensor]:
        return kl_balance(post, prior, self.free_nats)


def kl_balance(post: Tensor, prior: Tensor, free_nats: float) -> tuple[Tensor, Tensor]:
    """The dynamics and representation losses (`RSSM.loss`) [...] of posterior and prior logits [..., S, C]:
    KL(sg(post) || prior) and KL(post || sg(prior)), each summed over the S latents and then at least
    `free_nats` (free bits: below it a loss has no gradient; 0: none)."""
    dyn = categorical_kl(post.detach(), prior).sum(-1)
    rep = categorical_kl(post, prior.detach()).sum(-1)
    if free_nats:
        dyn, rep = dyn.clamp(min=free_nats), rep.clamp(min=free_nats)
    return dyn, rep


def feat(deter: Tensor, stoch: Tensor) -> Tensor:
    """The features the heads read, [deter, stoch flattened] (`Agent.feat2tensor`)."""
    return torch.cat([deter, stoch.flatten(-2)], -1)


# ------------------------------------------------------------------------------------- encoder, decoder
def image_depths(cfg) -> list[int]:
    return [cfg.depth * m for m in cfg.mults]


class Encoder(nn.Module):
    """rssm.py `Encoder`: state vectors symlog'd (`symlog`) through `enc_layers` dense layers of `units`;
    images (uint8 [.., C, H, W]) / 255 - 0.5 through, per depth of depth x mults, a 'same' convolution of
    `kernel`, a 2 x 2 max-pool, RMSNorm over channels and SiLU, then flattened."""

    def __init__(self, cfg, obs_shape: tuple[int, ...]):
        super().__init__()
        self.pixels = len(obs_shape) == 3
        self.symlog = cfg.symlog_inputs
        if self.pixels:
            layers, d = [], obs_shape[0]
            for depth in image_depths(cfg):
                layers += [
                    conv(d, depth, cfg.kernel),
                    nn.MaxPool2d(2),
                    ChannelNorm(depth, eps=RMS_EPS),
                    nn.SiLU(),
                ]
                d = depth
            self.net = nn.Sequential(*layers, nn.Flatten())
            side = obs_shape[-1] // 2 ** len(cfg.mults)
            self.out_dim = d * side * side
        else:
            self.net = mlp(obs_shape[0], cfg.enc_layers, cfg.units)
            self.out_dim = cfg.units if cfg.enc_layers else obs_shape[0]

    def forward(self, obs: Tensor) -> Tensor:
        if self.pixels:
            lead = obs.shape[:-3]
            x = obs.flatten(0, -4).float() / 255.0 - 0.5
            return self.net(x).unflatten(0, lead)
        return self.net(symlog(obs) if self.symlog else obs)


class Decoder(nn.Module):
    """rssm.py `Decoder`. Vectors: `dec_layers` dense layers of `units` on [stoch, deter], a linear output of
    symlog(obs) (`symlog_mse`: the loss is the squared error to symlog(obs) summed over the dims). Images
    (`bspace` = 8): the features to a 4 x 4 (image side / 16) map of the last depth, the sum of a BlockLinear
    of deter (8 blocks, each a group of channels) and a two-layer path of stoch, RMSNorm, SiLU; then per
    depth, backwards, a nearest 2x upsampling, a 'same' convolution, RMSNorm, SiLU; the last upsampling and a
    convolution to the image's channels, a sigmoid; the loss is the squared error to obs / 255 summed over
    the pixels and channels."""

    def __init__(self, cfg, obs_shape: tuple[int, ...], deter: int, stoch_flat: int):
        super().__init__()
        self.pixels = len(obs_shape) == 3
        if not self.pixels:
            self.net = nn.Sequential(
                mlp(deter + stoch_flat, cfg.dec_layers, cfg.units),
                linear(cfg.units if cfg.dec_layers else deter + stoch_flat, obs_shape[0], cfg.dec_outscale),
            )
            return
        depths = image_depths(cfg)
        self.side = obs_shape[-1] // 2 ** len(depths)
        self.depth, g = depths[-1], cfg.bspace
        u = self.depth * self.side**2
        self.sp0 = BlockLinear(deter, u, g, cfg.dreamerv3_block_full_fan_in)
        self.sp1 = nn.Sequential(dense(stoch_flat, 2 * cfg.units), linear(2 * cfg.units, u))
        self.sp_norm = nn.Sequential(ChannelNorm(self.depth, eps=RMS_EPS), nn.SiLU())
        self.bspace = g
        layers, d = [], self.depth
        for depth in reversed(depths[:-1]):
            layers += [nn.Upsample(scale_factor=2), conv(d, depth, cfg.kernel)]
            layers += [ChannelNorm(depth, eps=RMS_EPS), nn.SiLU()]
            d = depth
        layers += [nn.Upsample(scale_factor=2), conv(d, obs_shape[0], cfg.kernel, cfg.dec_outscale)]
        self.up = nn.Sequential(*layers)

    def forward(self, deter: Tensor, stoch: Tensor) -> Tensor:
        """The reconstruction: symlog(obs) [..., obs_dim], or image pixels in [0, 1] [..., C, H, W]."""
        if not self.pixels:
            return self.net(torch.cat([stoch.flatten(-2), deter], -1))
        lead, s, g = deter.shape[:-1], self.side, self.bspace
        # '... (g h w c) -> ... h w (g c)': block k fills channels k c .. (k + 1) c - 1 of every position
        x0 = self.sp0(deter.flatten(0, -2)).unflatten(-1, (g, s, s, -1)).permute(0, 1, 4, 2, 3).flatten(1, 2)
        x1 = self.sp1(stoch.flatten(-2).flatten(0, -2)).unflatten(-1, (s, s, self.depth)).permute(0, 3, 1, 2)
        x = self.up(self.sp_norm(x0 + x1))
        return torch.sigmoid(x).unflatten(0, lead)

    def loss(self, recon: Tensor, obs: Tensor) -> Tensor:
        """The reconstruction loss [...] (`outs.MSE`, summed over the observation's dims)."""
        if self.pixels:
            return (recon - obs.float() / 255.0).square().sum((-3, -2, -1))
        return (recon - symlog(obs)).square().sum(-1)


# ------------------------------------------------------------------------------------------------ heads
class Head(nn.Module):
    """heads.py `MLPHead`: `layers` dense layers of `units`, then the output layer(s): `out` outputs, each
    Linear(units, out) with its `outscale`."""

    def __init__(self, d_in: int, layers: int, units: int, outs: tuple[int, ...], outscale: float):
        super().__init__()
        self.mlp = mlp(d_in, layers, units)
        width = units if layers else d_in
        self.outs = nn.ModuleList([linear(width, n, outscale) for n in outs])

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        x = self.mlp(x)
        return tuple(out(x) for out in self.outs)


class Policy(nn.Module):
    """The policy (`MLPHead` with the `categorical` or `bounded_normal` output, heads.py): for discrete
    actions a categorical of its logits mixed with `mix` of the uniform (DV3-1); for a box Normal(tanh(mean),
    (maxstd - minstd) sigmoid(std + 2) + minstd) per dim. Each function returns the action twice where it
    returns one: as the RSSM reads it (one-hot; the Gaussian sample unclipped, which the GRU's input clips:
    `_core`) and as its log-probability reads it (the index; the sample)."""

    def __init__(self, d_in: int, layers: int, units: int, act_dim: int, discrete: bool, cfg):
        super().__init__()
        self.discrete, self.act_dim = discrete, act_dim
        self.minstd, self.maxstd = cfg.minstd, cfg.maxstd
        self.mix = 0.0 if cfg.dreamerv3_actor_no_unimix else cfg.policy_unimix
        self.head = Head(d_in, layers, units, (act_dim,) * (1 if discrete else 2), cfg.policy_outscale)

    def logits(self, f: Tensor) -> Tensor:
        return unimix_logits(self.head(f)[0], self.mix)

    def normal(self, f: Tensor) -> tuple[Tensor, Tensor]:
        mean, std = self.head(f)
        return torch.tanh(mean), (self.maxstd - self.minstd) * torch.sigmoid(std + 2.0) + self.minstd

    def sample(self, f: Tensor, draw: Tensor) -> tuple[Tensor, Tensor]:
        """A sample at features f [..., F] from its draw: uniforms [...] (discrete), N(0, 1) [..., A]."""
        if self.discrete:
            index = categorical_index(softmax_last(self.logits(f)), draw)
            return one_hot(index, self.act_dim), index
        mean, std = self.normal(f)
        x = mean + std * draw
        return x, x

    def mode(self, f: Tensor) -> tuple[Tensor, Tensor]:
        """The mode (`pred`): the likeliest action, or tanh(mean)."""
        if self.discrete:
            index = self.head(f)[0].argmax(-1)
            return one_hot(index, self.act_dim), index
        mean = self.normal(f)[0]
        return mean, mean

    def log_prob_entropy(self, f: Tensor, action: Tensor) -> tuple[Tensor, Tensor]:
        """log pi(action | f) and the entropy at f, [...] each (summed over a box's dims: `Agg`)."""
        if self.discrete:
            logits = self.logits(f)
            logp = log_softmax_last(logits).gather(-1, action.unsqueeze(-1)).squeeze(-1)
            return logp, categorical_entropy(logits)
        mean, std = self.normal(f)
        logp = -0.5 * ((action - mean) / std).square() - std.log() - 0.5 * math.log(2 * math.pi)
        return logp.sum(-1), (0.5 * torch.log(2 * math.pi * std.square()) + 0.5).sum(-1)


class ReturnNorm(StatLayer):
    """The percentile return normaliser (embodied/jax/utils.py `Normalize('perc')`, no debiasing): lo, hi <-
    EMAs (rate) of the low and high percentile of a batch of returns, both from 0; scale = max(limit, hi -
    lo). `update` writes the new percentiles (`iqrl.nn.stats.write`) and returns the scale."""

    def __init__(self, rate: float, limit: float, low: float, high: float):
        super().__init__()
        self.rate, self.limit, self.low, self.high = rate, limit, low, high
        self.register_buffer("lo", torch.zeros(()))
        self.register_buffer("hi", torch.zeros(()))

    def update(self, x: Tensor) -> Tensor:
        s = x.detach().flatten().sort().values
        lo = (1.0 - self.rate) * read(self, "lo") + self.rate * percentile(s, self.low)
        hi = (1.0 - self.rate) * read(self, "hi") + self.rate * percentile(s, self.high)
        write(self, "lo", lo)
        write(self, "hi", hi)
        return (hi - lo).clamp(min=self.limit)


def binary_log_prob(logit: Tensor, target: Tensor) -> Tensor:
    """`outs.Binary.logp`: t log sigmoid(l) + (1 - t) log sigmoid(-l), for a soft target t."""
    return target * F.logsigmoid(logit) + (1.0 - target) * F.logsigmoid(-logit)
