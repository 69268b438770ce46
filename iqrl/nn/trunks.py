"""The residual networks of the 2024-25 continuous-control agents, beside the plain MLP of `layers.py`:

* **BroNet** (BRO, Nauman et al. 2024, arXiv 2405.16158; naumix/BiggerRegularizedOptimistic at 5870a13,
  `jaxrl/networks/common.py`): Linear -> LayerNorm -> ReLU, then per block
  x <- x + LN(W2 ReLU(LN(W1 x))), then the output Linear; every Linear orthogonal with gain sqrt(2).
* **Simba** (Lee et al. 2024, arXiv 2410.09754; dojeon-ai/SimbaV2 at 14fafb2, `scale_rl/agents/simba/`):
  a Linear embedding, then per block the pre-LayerNorm residual x <- x + W2 ReLU(W1 LN(x)) (inverted
  bottleneck of 4x the width, He-normal), a final LayerNorm and the output Linear (orthogonal, gain 1).
* **SimbaV2** (Lee et al. 2025, arXiv 2502.15280; dojeon-ai/SimbaV2 at 14fafb2,
  `scale_rl/agents/simbaV2/simbaV2_layer.py`): every feature and every weight row on the unit sphere. The
  input, with a constant `c_shift` appended, is l2-normalised, embedded by a `HyperLinear` and a `Scaler`
  and l2-normalised again; per block an inverted-bottleneck `HyperMLP` whose output is l2-normalised, mixed
  into the residual by a learned per-feature interpolation (LERP) and l2-normalised; the output head is
  HyperLinear -> Scaler -> HyperLinear + bias, with no activation between (as the code's predictors).
  `HyperLinear`'s rows are put back on the sphere after every optimizer step (`l2_normalize_rows`).

Each network exists for one input [..., in] and as an ensemble of E members (a critic ensemble): then each
layer holds the E members' weights stacked, takes [B, in] (shared by all) or [E, B, in] and returns
[E, B, out]; `members` (indices) evaluates a subset, as `layers.EnsembleMLP` does. `network(...)` builds
one by name, the `network` key of the agents that offer the choice (docs/agents.md).

LayerNorm epsilon 1e-6 in BroNet and Simba, flax's default, which their code uses.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from iqrl.nn.kernels import baddbmm, linear
from iqrl.nn.stats import write

NETWORKS = ("mlp", "simba", "simbav2", "bronet")
FLAX_LN_EPS = 1e-6
EPS = 1e-8  # SimbaV2's floor of a norm (`l2normalize`) and of its ReLU (`HyperMLP`)


def l2_normalize(x: Tensor, dim: int = -1) -> Tensor:
    """x / max(||x||_2, 1e-8) along `dim`: SimbaV2's `l2normalize`."""
    return x / x.norm(dim=dim, keepdim=True).clamp(min=EPS)


# --------------------------------------------------------------------------------------------------
# Layers with one form for a single network (n = 0) and for an ensemble of n members
# --------------------------------------------------------------------------------------------------


class Dense(nn.Module):
    """A Linear layer: weight [in, out] (or [n, in, out] for n members) and bias [out] ([n, 1, out]) when
    `bias`. Input [..., in] (single), [B, in] or [n, B, in] (ensemble, shared or per member)."""

    def __init__(self, in_dim: int, out_dim: int, n: int = 0, bias: bool = True):
        super().__init__()
        self.n = n
        self.weight = nn.Parameter(torch.empty(*((n,) if n else ()), in_dim, out_dim))
        self.bias = nn.Parameter(torch.zeros(*((n, 1) if n else ()), out_dim)) if bias else None

    def members(self, members: Tensor | None) -> tuple[Tensor, Tensor | None]:
        if members is None or not self.n:
            return self.weight, self.bias
        return self.weight[members], None if self.bias is None else self.bias[members]

    def forward(self, x: Tensor, members: Tensor | None = None) -> Tensor:
        w, b = self.members(members)
        if not self.n:
            return linear(x, w.T, b)
        if x.dim() == 2:
            x = x.unsqueeze(0).expand(w.shape[0], -1, -1)
        return baddbmm(b, x, w) if b is not None else torch.bmm(x, w)

    def member_weights(self) -> list[Tensor]:
        """Each member's weight as [out, in] views (PyTorch's layout, for the initialisers)."""
        return [w.T for w in (self.weight.data if self.n else [self.weight.data])]


class HyperLinear(Dense):
    """SimbaV2's `HyperDense`: a Linear without bias whose every output unit's weight vector (a row of the
    [out, in] matrix) has unit norm: orthogonal at build, then l2-normalised, and put back on the sphere
    after each optimizer step by `l2_normalize_rows`."""

    def __init__(self, in_dim: int, out_dim: int, n: int = 0):
        super().__init__(in_dim, out_dim, n, bias=False)
        for w in self.member_weights():
            nn.init.orthogonal_(w)
        with torch.no_grad():
            self.weight.copy_(l2_normalize_rows(self.weight))


def l2_normalize_rows(weight: Tensor) -> Tensor:
    """A HyperLinear weight ([in, out] or [n, in, out]) with each output unit's vector over the inputs
    l2-normalised: SimbaV2's `l2normalize_layer` (axis 0 of a flax kernel, the input axis), what the code
    applies to the actor and the critic after each of their steps."""
    return l2_normalize(weight, dim=-2)


def project_to_sphere(module: nn.Module) -> None:
    """Every HyperLinear weight in `module` back on the unit sphere, through `iqrl.nn.stats.write`: the
    function an optimizer step of a SimbaV2 network runs after it (`Updater.step(after=...)`), in every
    mode; outside a step it writes in place. Scalers and biases are left as they are, as in the code."""
    for m in module.modules():
        if isinstance(m, HyperLinear):
            write(m, "weight", l2_normalize_rows(m.weight))


class Norm(nn.Module):
    """LayerNorm with a learned affine, per member in an ensemble (weight, bias [n, 1, d])."""

    def __init__(self, dim: int, n: int = 0, eps: float = FLAX_LN_EPS):
        super().__init__()
        shape = (n, 1, dim) if n else (dim,)
        self.weight, self.bias, self.n, self.eps = (
            nn.Parameter(torch.ones(shape)),
            nn.Parameter(torch.zeros(shape)),
            n,
            eps,
        )

    def forward(self, x: Tensor, members: Tensor | None = None) -> Tensor:
        w, b = (
            (self.weight, self.bias)
            if members is None or not self.n
            else (self.weight[members], self.bias[members])
        )
        return F.layer_norm(x, x.shape[-1:], eps=self.eps) * w + b


class Scaler(nn.Module):
    """SimbaV2's `Scaler`: a learned per-feature scale s * (init / scale) * x, the parameter s initialised to
    `scale`, so the effective scale starts at `init` while Adam moves it at a rate set by `scale`."""

    def __init__(self, dim: int, init: float, scale: float, n: int = 0):
        super().__init__()
        self.n, self.forward_scale = n, init / scale
        self.scale = nn.Parameter(torch.full((n, 1, dim) if n else (dim,), float(scale)))

    def forward(self, x: Tensor, members: Tensor | None = None) -> Tensor:
        s = self.scale if members is None or not self.n else self.scale[members]
        return s * self.forward_scale * x


def orthogonal_(layer: Dense, gain: float) -> Dense:
    for w in layer.member_weights():
        nn.init.orthogonal_(w, gain)
    return layer


def fan_in_normal_(layer: Dense, scale: float) -> Dense:
    """flax's `variance_scaling(scale, "fan_in", "truncated_normal")`: a normal truncated at 2 std, std
    sqrt(scale / fan_in) / 0.8796 (the truncation's correction); the bias stays zero. scale 2: `he_normal`
    (Simba's blocks), 1: `lecun_normal` (flax's Dense default, CrossQ's layers)."""
    for w in layer.member_weights():
        std = math.sqrt(scale / w.shape[1]) / 0.87962566103423978
        nn.init.trunc_normal_(w, 0.0, std, -2 * std, 2 * std)
    return layer


# --------------------------------------------------------------------------------------------------
# Blocks
# --------------------------------------------------------------------------------------------------


class BroBlock(nn.Module):
    """BroNet's residual block: x + LN(W2 ReLU(LN(W1 x)))."""

    def __init__(self, width: int, n: int = 0):
        super().__init__()
        self.w1, self.w2 = (orthogonal_(Dense(width, width, n), math.sqrt(2)) for _ in range(2))
        self.ln1, self.ln2 = Norm(width, n), Norm(width, n)

    def forward(self, x: Tensor, members: Tensor | None = None) -> Tensor:
        h = F.relu(self.ln1(self.w1(x, members), members))
        return x + self.ln2(self.w2(h, members), members)


class SimbaBlock(nn.Module):
    """Simba's pre-LayerNorm residual block: x + W2 ReLU(W1 LN(x)), W1: width -> 4 width."""

    def __init__(self, width: int, n: int = 0, expansion: int = 4):
        super().__init__()
        self.ln = Norm(width, n)
        self.w1 = fan_in_normal_(Dense(width, width * expansion, n), 2.0)
        self.w2 = fan_in_normal_(Dense(width * expansion, width, n), 2.0)

    def forward(self, x: Tensor, members: Tensor | None = None) -> Tensor:
        return x + self.w2(F.relu(self.w1(self.ln(x, members), members)), members)


class HyperMLP(nn.Module):
    """SimbaV2's `HyperMLP`: l2norm(W2 (ReLU(Scaler(W1 x)) + 1e-8)), W1: width -> 4 width (the floor keeps
    the output off the zero vector)."""

    def __init__(self, width: int, scaler_init: float, scaler_scale: float, n: int = 0, expansion: int = 4):
        super().__init__()
        self.w1 = HyperLinear(width, width * expansion, n)
        root = math.sqrt(expansion)
        self.scaler = Scaler(width * expansion, scaler_init / root, scaler_scale / root, n)
        self.w2 = HyperLinear(width * expansion, width, n)

    def forward(self, x: Tensor, members: Tensor | None = None) -> Tensor:
        h = F.relu(self.scaler(self.w1(x, members), members)) + EPS
        return l2_normalize(self.w2(h, members))


class HyperLerpBlock(nn.Module):
    """SimbaV2's `HyperLERPBlock`: x <- l2norm(x + alpha (HyperMLP(x) - x)), alpha a `Scaler` per feature."""

    def __init__(
        self,
        width: int,
        scaler_init: float,
        scaler_scale: float,
        alpha_init: float,
        alpha_scale: float,
        n: int = 0,
    ):
        super().__init__()
        self.mlp = HyperMLP(width, scaler_init, scaler_scale, n)
        self.alpha = Scaler(width, alpha_init, alpha_scale, n)

    def forward(self, x: Tensor, members: Tensor | None = None) -> Tensor:
        return l2_normalize(x + self.alpha(self.mlp(x, members) - x, members))


class HyperEmbedder(nn.Module):
    """SimbaV2's `HyperEmbedder`: l2norm(Scaler(W l2norm([x, c_shift]))): the constant coordinate keeps the
    input's norm in its direction after the first normalisation."""

    def __init__(
        self, in_dim: int, width: int, scaler_init: float, scaler_scale: float, c_shift: float, n: int = 0
    ):
        super().__init__()
        self.c_shift = c_shift
        self.w = HyperLinear(in_dim + 1, width, n)
        self.scaler = Scaler(width, scaler_init, scaler_scale, n)

    def forward(self, x: Tensor, members: Tensor | None = None) -> Tensor:
        x = l2_normalize(torch.cat([x, torch.full_like(x[..., :1], self.c_shift)], -1))
        return l2_normalize(self.scaler(self.w(x, members), members))


class HyperHead(nn.Module):
    """SimbaV2's output heads (`HyperNormalTanhPolicy`'s mean and log-std, `HyperCategoricalValue`):
    W2 Scaler(W1 z) + b, W1: width -> width with a Scaler of init and scale 1, no activation between."""

    def __init__(self, width: int, out_dim: int, n: int = 0):
        super().__init__()
        self.w1 = HyperLinear(width, width, n)
        self.scaler = Scaler(width, 1.0, 1.0, n)
        self.w2 = HyperLinear(width, out_dim, n)
        self.bias = nn.Parameter(torch.zeros((n, 1, out_dim) if n else (out_dim,)))
        self.n = n

    def forward(self, z: Tensor, members: Tensor | None = None) -> Tensor:
        b = self.bias if members is None or not self.n else self.bias[members]
        return self.w2(self.scaler(self.w1(z, members), members), members) + b


# --------------------------------------------------------------------------------------------------
# Whole networks: trunk (features of `width`) and output layer
# --------------------------------------------------------------------------------------------------


class Trunk(nn.Module):
    """A residual network without its output layer: [..., in] -> features [..., width] (ensemble:
    [E, B, width]). `kind` simba | simbav2 | bronet, `blocks` residual blocks of `width`."""

    def __init__(self, kind: str, in_dim: int, width: int, blocks: int, n: int = 0, c_shift: float = 3.0):
        super().__init__()
        self.kind, self.width = kind, width
        if kind == "bronet":
            self.embed = orthogonal_(Dense(in_dim, width, n), math.sqrt(2))
            self.embed_norm = Norm(width, n)
            self.blocks = nn.ModuleList(BroBlock(width, n) for _ in range(blocks))
        elif kind == "simba":
            self.embed = orthogonal_(Dense(in_dim, width, n), 1.0)
            self.blocks = nn.ModuleList(SimbaBlock(width, n) for _ in range(blocks))
            self.final_norm = Norm(width, n)
        elif kind == "simbav2":
            scaler = math.sqrt(2.0 / width)  # scaler_init = scaler_scale (configs/agent/simbaV2.yaml)
            self.embed = HyperEmbedder(in_dim, width, scaler, scaler, c_shift, n)
            alpha_init, alpha_scale = 1.0 / (blocks + 1), 1.0 / math.sqrt(width)
            self.blocks = nn.ModuleList(
                HyperLerpBlock(width, scaler, scaler, alpha_init, alpha_scale, n) for _ in range(blocks)
            )
        else:
            raise ValueError(f"unknown network {kind!r}; valid: {', '.join(NETWORKS)}")

    def forward(self, x: Tensor, members: Tensor | None = None) -> Tensor:
        x = self.embed(x, members)
        if self.kind == "bronet":
            x = F.relu(self.embed_norm(x, members))
        for block in self.blocks:
            x = block(x, members)
        return self.final_norm(x, members) if self.kind == "simba" else x


class ResidualNet(nn.Module):
    """A `Trunk` and its output layer, as each method's code puts one after its trunk: BroNet a Linear
    (orthogonal, gain sqrt(2)), Simba a Linear (orthogonal, gain 1), SimbaV2 a `HyperHead`. forward(x,
    members=None) as `layers.EnsembleMLP` (n > 0) or an `mlp` (n = 0)."""

    def __init__(self, kind: str, in_dim: int, width: int, blocks: int, out_dim: int, n: int = 0):
        super().__init__()
        self.kind = kind
        self.trunk = Trunk(kind, in_dim, width, blocks, n)
        if kind == "simbav2":
            self.out = HyperHead(width, out_dim, n)
        else:
            self.out = orthogonal_(Dense(width, out_dim, n), math.sqrt(2) if kind == "bronet" else 1.0)
        self.n = n

    def forward(self, x: Tensor, members: Tensor | None = None) -> Tensor:
        return self.out(self.trunk(x, members), members)

    def project(self) -> None:
        """SimbaV2's weight projection after a step (`project_to_sphere`; nothing in other networks)."""
        project_to_sphere(self)


def residual_shape(hidden) -> tuple[int, int]:
    """(width, blocks) of a residual network given as hidden widths: one block per entry, all of one width
    ([512, 512]: two blocks of 512, the critics of BRO, Simba and SimbaV2)."""
    hidden = list(hidden)
    if not hidden or len(set(hidden)) != 1:
        raise ValueError(f"a residual network takes equal widths (one per block), got {hidden}")
    return hidden[0], len(hidden)


def residual_widths_check(key: str, dims) -> tuple[bool, str]:
    """A config's check of a residual network's widths (`residual_shape`), as `iqrl.core.checks.require`
    takes it."""
    ok = len(dims) >= 1 and all(h >= 1 for h in dims) and len(set(dims)) == 1
    return (
        ok,
        f"agent.{key} must be a non-empty list of one positive width (one entry per block), got {list(dims)}",
    )
