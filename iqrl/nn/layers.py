"""Building blocks with parameters: the MLP builder, vectorised ensembles, FSQ, target copies, and the one
random layer, dropout whose masks are draws (`MaskedDropout`).

Every agent builds from these, so an ablation that switches a block changes the same object in every
agent that uses it; `build_seeded` builds one again for a reset. Pure tensor functions (no parameters) are in
`iqrl/nn/maths.py`, optimizer helpers in `iqrl/nn/optim.py`, layers with running statistics in
`iqrl/nn/stats.py`. Nothing here holds training state.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from iqrl.nn.kernels import baddbmm, compiling_own_kernels, linear, mish
from iqrl.nn.trunks import HyperLinear, ResidualNet, residual_shape

# --------------------------------------------------------------------------------------------------
# MLP builder: per hidden width Linear -> [LayerNorm] -> activation, then a plain Linear.
# --------------------------------------------------------------------------------------------------


class Mish(nn.Mish):
    """The networks' Mish. Eager (and in the K-seed mode's pieces): PyTorch's kernel (F.mish), so eager runs
    compute what they always did.
    Under torch.compile (`compile=true`): `iqrl.nn.kernels.mish`, the same function through one exponential,
    which inductor fuses with the LayerNorm before it into one loop, forward and backward; on this
    project's CPUs that made a compiled iQRL update 9-12% faster than compiling F.mish
    (docs/performance.md). The two agree to a few ulps, within the compiled update's tolerance."""

    def forward(self, x: Tensor) -> Tensor:
        return mish(x) if compiling_own_kernels() else F.mish(x)


INITS = ("default", "orthogonal", "xavier")


def init_weight_(weight: Tensor, bias: Tensor, init: str) -> None:
    """Initialise one Linear's weight [out, in] and bias in place: 'orthogonal' (gain 1) or 'xavier'
    (Glorot-uniform, gain 1: DroQ's and REDQ's `weights_init_`), each with a zero bias."""
    if init == "orthogonal":
        nn.init.orthogonal_(weight)
    elif init == "xavier":
        nn.init.xavier_uniform_(weight)
    else:
        raise ValueError(f"unknown init {init!r}; valid: {', '.join(INITS)}")
    nn.init.zeros_(bias)


def init_linear_(module: nn.Module, init: str) -> None:
    """Initialise every nn.Linear in `module`: 'default' (PyTorch), or `init_weight_`'s 'orthogonal' or
    'xavier'."""
    if init == "default":
        return
    for m in module.modules():
        if isinstance(m, nn.Linear):
            init_weight_(m.weight, m.bias, init)


class Linear(nn.Linear):
    """nn.Linear through `iqrl.nn.kernels.linear`: PyTorch's product when eager, oneDNN's float32 GEMM under
    torch.compile on CPU (see `iqrl.nn.kernels.onednn_matmul`). The same parameters and state_dict."""

    def forward(self, x: Tensor) -> Tensor:
        return linear(x, self.weight, self.bias)


class ScalarHead(Linear):
    """A Linear with a single output (a Q-value, value or reward head), computed in float32 even under bf16
    autocast (`precision=bf16`). A bf16 output would round Q ~ 200 to whole units (bf16 spacing is 1.0 on
    [128, 256]), as large as one step's reward on DMC, and the TD targets and errors with it. Costs nothing:
    one output column."""

    def forward(self, x: Tensor) -> Tensor:
        with torch.autocast(x.device.type, enabled=False):
            return linear(x.float(), self.weight, self.bias)


def out_linear(in_dim: int, out_dim: int) -> Linear:
    """The output layer of an MLP: a float32 `ScalarHead` for one output, else a plain Linear."""
    return ScalarHead(in_dim, 1) if out_dim == 1 else Linear(in_dim, out_dim)


def mlp(
    in_dim: int,
    hidden: Sequence[int],
    out_dim: int,
    init: str = "default",
    act: type[nn.Module] = Mish,
    norm: bool = True,
    network: str = "mlp",
) -> nn.Module:
    """The one MLP builder: per hidden width Linear -> LayerNorm (if `norm`) -> `act`, then a plain Linear
    (a float32 `ScalarHead` for a single output). Initialised by `init_linear_`.

    The defaults are the TD-MPC2 / iQRL NormedMLP (LayerNorm + Mish); TCRL's heads are `act=nn.ELU,
    norm=False, init="orthogonal"`, TD7's networks `norm=False` with ReLU or ELU. `network` simba, simbav2 or
    bronet builds that residual network instead (`iqrl.nn.trunks.ResidualNet`, a block per hidden width, its
    own layers and init: `init`, `act` and `norm` do not apply), the `network` key of the agents that offer
    the choice (docs/agents.md).
    """
    if network != "mlp":
        return ResidualNet(network, in_dim, *residual_shape(hidden), out_dim)
    layers: list[nn.Module] = []
    d = in_dim
    for h in hidden:
        layers += [Linear(d, h), nn.LayerNorm(h), act()] if norm else [Linear(d, h), act()]
        d = h
    layers.append(out_linear(d, out_dim))
    net = nn.Sequential(*layers)
    init_linear_(net, init)
    return net


class Temperature(nn.Module):
    """A SAC temperature alpha = exp(log alpha), one parameter (CrossQ's `EntropyCoef`, SimbaV2's
    `SimbaV2Temperature`); forward() -> alpha."""

    def __init__(self, initial: float):
        super().__init__()
        self.log_alpha = nn.Parameter(torch.tensor(math.log(initial)))

    def forward(self) -> Tensor:
        return self.log_alpha.exp()


def ensemble_mlp(
    n: int,
    in_dim: int,
    hidden: Sequence[int],
    out_dim: int,
    init: str = "default",
    act: type[nn.Module] = Mish,
    norm: bool = True,
    network: str = "mlp",
    dropout: float = 0.0,
) -> nn.Module:
    """`mlp`'s ensemble form: n members evaluated together, forward(x, members=None) -> [E, B, out]: an
    `EnsembleMLP` (with `dropout` > 0 a `MaskedDropout` after each hidden Linear, its masks passed in), or
    with `network` the residual network's ensemble (`iqrl.nn.trunks.ResidualNet`, without dropout)."""
    if network != "mlp":
        if dropout > 0:
            raise ValueError(f"dropout is offered by network=mlp only, got network={network!r}")
        return ResidualNet(network, in_dim, *residual_shape(hidden), out_dim, n=n)
    return EnsembleMLP(n, in_dim, hidden, out_dim, init, act, norm, dropout)


def after_step(module: nn.Module):
    """What a step of `module` runs after it (`Updater.step(after=...)`): its `project` method (SimbaV2's
    projection of its weights onto the sphere, `iqrl.nn.trunks.project_to_sphere`) when it holds SimbaV2
    layers, else None (nothing runs)."""
    return module.project if any(isinstance(m, HyperLinear) for m in module.modules()) else None


def frozen_copy(module: nn.Module) -> nn.Module:
    """A deep copy with gradients switched off (target networks)."""
    target = copy.deepcopy(module)
    target.requires_grad_(False)
    return target


def draw_seed(generator: torch.Generator) -> int:
    """A seed for a re-initialisation (`Updater.reset`), drawn from an agent's generator: one draw, so that
    the networks a reset builds follow from the agent's seed and its checkpointed generator."""
    return int(torch.randint(0, 2**62, (), generator=generator, device=generator.device))


def build_seeded(build: Callable[[], Any], seed: int) -> Any:
    """build() with PyTorch's global generators (CPU and CUDA), which module initialisation draws from, seeded
    by `seed` for its duration and restored after."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return build()


def module_tensors(modules: nn.Module | Sequence[nn.Module]) -> dict[str, Tensor]:
    """Every parameter and buffer of a module (or a sequence of them, prefixed by their index), by name."""
    if isinstance(modules, nn.Module):
        return dict([*modules.named_parameters(), *modules.named_buffers()])
    return {f"{i}.{n}": t for i, m in enumerate(modules) for n, t in module_tensors(m).items()}


# --------------------------------------------------------------------------------------------------
# Random layers: dropout whose masks are draws, so that every execution mode computes the same numbers.
# --------------------------------------------------------------------------------------------------


class MaskedDropout(nn.Module):
    """Inverted dropout (Srivastava et al. 2014) whose keep masks are draws: forward(x, mask) = x * mask /
    (1 - p), with `mask` a tensor of x's shape, 1 (keep) or 0 (drop), drawn beforehand by `draw` from the
    agent's generator and passed in; mask None: x as it is (no dropout: acting, evaluation).

    torch.nn.Dropout draws its mask from torch's global generator inside forward, which vmap refuses (the
    K-seed mode) and compiled code replaces with draws of its own (other numbers than eager); a mask drawn
    outside the update's pure functions, like any other draw, is the same in every mode, each seed's from its
    own generator, and resumes with the agent's generator. The scaling is torch's: on CPU a mask drawn from a
    generator seeded s gives F.dropout's output under torch.manual_seed(s), bit for bit.
    """

    def __init__(self, p: float):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout rate must be in [0, 1), got {p}")
        self.p = p

    def draw(self, shape: Sequence[int], generator: torch.Generator) -> Tensor:
        """A keep mask of `shape`: float32 ones and zeros, Bernoulli(1 - p), from `generator` (its device)."""
        return torch.empty(tuple(shape), device=generator.device).bernoulli_(
            1.0 - self.p, generator=generator
        )

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        return x if mask is None else x * (mask / (1.0 - self.p)).to(x.dtype)

    def extra_repr(self) -> str:
        return f"p={self.p}"


# torch's modules that draw from its global generator inside forward (in training mode), by the attribute
# holding their rate (None: they draw at any rate); a rate of 0 draws nothing.
GLOBAL_RANDOM: dict[type[nn.Module], str | None] = {
    nn.modules.dropout._DropoutNd: "p",  # Dropout, Dropout1d/2d/3d, AlphaDropout, FeatureAlphaDropout
    nn.MultiheadAttention: "dropout",  # dropout on the attention weights (Transformer layers hold one)
    nn.RNNBase: "dropout",  # RNN, LSTM, GRU: dropout between stacked layers
    nn.RReLU: None,  # a random negative slope in training mode
}


def draws_globally(m: nn.Module) -> bool:
    """Whether module `m` itself draws from torch's global generator inside its forward (GLOBAL_RANDOM)."""
    for cls, rate in GLOBAL_RANDOM.items():
        if isinstance(m, cls):
            return rate is None or getattr(m, rate) > 0
    return False


def global_random_module(networks: dict[str, nn.Module]) -> str | None:
    """The first module of `networks` (name -> network) that draws from torch's global generator inside its
    forward, as "<network>.<path> (<class>)", or None. What the K-seed mode and compile=true refuse."""
    for net, module in networks.items():
        for path, m in module.named_modules():
            if draws_globally(m):
                return f"{'.'.join(filter(None, (net, path)))} ({type(m).__name__})"
    return None


# --------------------------------------------------------------------------------------------------
# Vectorised ensemble of MLPs: E members evaluated with one batched matmul per layer.
# --------------------------------------------------------------------------------------------------


class EnsembleLinear(nn.Module):
    """E independent Linear layers. Input [E, B, in] (or [B, in], shared by all), output [E, B, out].
    With a single output (the critics' Q) it computes in float32 under autocast, as `ScalarHead`."""

    def __init__(self, n: int, in_dim: int, out_dim: int, init: str = "default"):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n, in_dim, out_dim))
        self.bias = nn.Parameter(torch.empty(n, 1, out_dim))
        bound = 1.0 / math.sqrt(in_dim)  # what nn.Linear's default init gives for weight and bias
        for k in range(n):
            if init == "default":
                nn.init.uniform_(self.weight.data[k], -bound, bound)
                nn.init.uniform_(self.bias.data[k], -bound, bound)
            else:
                init_weight_(self.weight.data[k].T, self.bias.data[k], init)

    def forward(self, x: Tensor, members: Tensor | None = None) -> Tensor:
        if self.weight.shape[-1] == 1:
            with torch.autocast(x.device.type, enabled=False):
                return self._forward(x.float(), members)
        return self._forward(x, members)

    def _forward(self, x: Tensor, members: Tensor | None) -> Tensor:
        w, b = (self.weight, self.bias) if members is None else (self.weight[members], self.bias[members])
        if x.dim() == 2:
            x = x.unsqueeze(0).expand(w.shape[0], -1, -1)
        return baddbmm(b, x, w)


class EnsembleLayerNorm(nn.Module):
    """LayerNorm with a separate affine per ensemble member. Input [E, B, d]."""

    def __init__(self, n: int, dim: int, eps: float = 1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n, 1, dim))
        self.bias = nn.Parameter(torch.zeros(n, 1, dim))
        self.eps = eps

    def forward(self, x: Tensor, members: Tensor | None = None) -> Tensor:
        w, b = (self.weight, self.bias) if members is None else (self.weight[members], self.bias[members])
        return F.layer_norm(x, x.shape[-1:], eps=self.eps) * w + b


class EnsembleMLP(nn.Module):
    """E independent MLPs evaluated together (e.g. a critic ensemble), the ensemble form of `mlp`: per hidden
    width Linear -> [dropout] -> LayerNorm (if `norm`) -> `act`, then a Linear. The defaults are the
    NormedMLP (LayerNorm + Mish); SAC+AE's critics are `act=nn.ReLU, norm=False`.

    forward(x [B, in]) -> [E, B, out]; `members` (LongTensor of indices) evaluates only a subset,
    which is how a random pair of target critics is computed without running all of them.

    `dropout` > 0: a `MaskedDropout` after each hidden Linear, before its LayerNorm (DroQ's Q-functions,
    Hiraoka et al. 2022, arXiv 2110.02034). forward's `masks` are the keep masks of one evaluation, from
    `draw_masks`; masks None: no dropout. Fewer masks than hidden layers: dropout after the first len(masks)
    hidden layers only (TD-MPC2's Q-functions drop after their first).
    """

    def __init__(
        self,
        n: int,
        in_dim: int,
        hidden: Sequence[int],
        out_dim: int,
        init: str = "default",
        act: type[nn.Module] = Mish,
        norm: bool = True,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.n = n
        self.dropout = MaskedDropout(dropout) if dropout > 0 else None
        self.linears = nn.ModuleList()
        self.norms = nn.ModuleList()  # empty without `norm` (plain MLP heads, as DrQ-v2's)
        d = in_dim
        for h in hidden:
            self.linears.append(EnsembleLinear(n, d, h, init))
            if norm:
                self.norms.append(EnsembleLayerNorm(n, h))
            d = h
        self.out = EnsembleLinear(n, d, out_dim, init)
        self.act = act()  # after each hidden layer (SAC+AE, DrQ-v2 and TACO critics: nn.ReLU)

    def draw_masks(
        self, batch_size: int, generator: torch.Generator, n: int | None = None
    ) -> list[Tensor] | None:
        """The keep masks of one forward over `batch_size` inputs and `n` members (all by default; a subset's
        size for `members`): one [n, B, width] per hidden layer, drawn in layer order from `generator`. None
        without dropout, drawing nothing."""
        if self.dropout is None:
            return None
        n = self.n if n is None else n
        return [self.dropout.draw((n, batch_size, lin.weight.shape[-1]), generator) for lin in self.linears]

    def forward(
        self, x: Tensor, members: Tensor | None = None, masks: Sequence[Tensor] | None = None
    ) -> Tensor:
        for k, lin in enumerate(self.linears):
            x = lin(x, members)
            if masks is not None and k < len(masks):
                x = self.dropout(x, masks[k])
            x = self.act(self.norms[k](x, members) if self.norms else x)
        return self.out(x, members)


# --------------------------------------------------------------------------------------------------
# Convolutional encoder of pixel observations (obs=pixels): the stack shared by SAC+AE, DrQ(-v2), TACO and
# MR.Q's image encoder.
# --------------------------------------------------------------------------------------------------


def conv_output_size(image_size: int, num_layers: int) -> int:
    """Width (= height) of the feature map of `ConvEncoder`: one 3x3 stride-2 convolution, then
    `num_layers - 1` 3x3 stride-1 ones, all unpadded (84 -> 41 -> 39 -> 37 -> 35 with 4 layers)."""
    size = (image_size - 3) // 2 + 1
    return size - 2 * (num_layers - 1)


def delta_orthogonal_(conv: nn.Conv2d, gain: float) -> None:
    """Delta-orthogonal init (Xiao et al. 2018, arXiv 1806.05393): zero kernel but for an orthogonal
    matrix at its centre tap, zero bias; what the SAC+AE and DrQ(-v2) code initialise convolutions with."""
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)
    mid = conv.kernel_size[0] // 2
    nn.init.orthogonal_(conv.weight.data[:, :, mid, mid], gain)


class ConvEncoder(nn.Module):
    """Frame stacks [N, C, H, W] (uint8, or floats on the 0-255 scale) -> features [N, out_dim].

    x / 255 - `center` (SAC+AE: 0; DrQ-v2, TACO and MR.Q: 0.5), then a 3x3 stride-2 convolution and
    `num_layers - 1` 3x3 stride-1 ones, each followed by ReLU, and the feature map flattened
    (out_dim = filters * conv_output_size(image_size, num_layers)^2: 39200 at 84 x 84 with 4 layers of 32).
    The heads that follow (Linear -> LayerNorm -> tanh in SAC+AE and DrQ-v2) belong to each method.
    """

    def __init__(
        self,
        in_channels: int,
        image_size: int,
        num_layers: int = 4,
        num_filters: int = 32,
        center: float = 0.5,
        init: str = "delta_orthogonal",
    ):
        super().__init__()
        if conv_output_size(image_size, num_layers) < 1:
            raise ValueError(f"image_size {image_size} is too small for {num_layers} convolutions")
        layers: list[nn.Module] = []
        for k in range(num_layers):
            conv = nn.Conv2d(
                in_channels if k == 0 else num_filters, num_filters, 3, stride=2 if k == 0 else 1
            )
            if init == "delta_orthogonal":
                delta_orthogonal_(conv, nn.init.calculate_gain("relu"))
            elif init == "orthogonal":  # the whole kernel orthogonal (DrQ-v2's and TACO's utils.weight_init)
                nn.init.orthogonal_(conv.weight, nn.init.calculate_gain("relu"))
                nn.init.zeros_(conv.bias)
            elif init != "default":
                raise ValueError(f"unknown init {init!r}; valid: default, delta_orthogonal, orthogonal")
            layers += [conv, nn.ReLU()]
        self.convs = nn.Sequential(*layers)
        self.center = center
        self.out_dim = num_filters * conv_output_size(image_size, num_layers) ** 2

    def forward(self, obs: Tensor) -> Tensor:
        x = obs.float() / 255.0 - self.center
        return self.convs(x).flatten(1)


class ConvDecoder(nn.Module):
    """Features [N, feature_dim] -> frame stacks [N, C, H, W], the mirror of `ConvEncoder` (SAC+AE's
    deterministic decoder, Yarats et al. 2019, arXiv 1910.01741; pytorch_sac_ae `decoder.py`).

    Linear to `num_filters` maps of the encoder's final size s = conv_output_size(image_size, num_layers),
    ReLU, then `num_layers - 1` 3x3 stride-1 transposed convolutions with ReLU (s + 2 each) and one 3x3
    stride-2 transposed convolution to C channels, with an output padding (0 or 1) that lands on image_size
    (84 with 4 layers: 35 -> 37 -> 39 -> 41 -> 84). The output is unbounded (the targets are centred on 0).
    The Linear orthogonal, the transposed convolutions delta-orthogonal (SAC+AE's `weight_init`).
    """

    def __init__(
        self, feature_dim: int, out_channels: int, image_size: int, num_layers: int = 4, num_filters: int = 32
    ):
        super().__init__()
        self.size = conv_output_size(image_size, num_layers)
        self.num_filters = num_filters
        self.fc = nn.Linear(feature_dim, num_filters * self.size**2)
        init_linear_(self.fc, "orthogonal")
        layers: list[nn.Module] = []
        for _ in range(num_layers - 1):
            layers += [nn.ConvTranspose2d(num_filters, num_filters, 3, stride=1), nn.ReLU()]
        before_last = self.size + 2 * (num_layers - 1)
        pad = image_size - ((before_last - 1) * 2 + 3)
        layers.append(nn.ConvTranspose2d(num_filters, out_channels, 3, stride=2, output_padding=pad))
        for m in layers:
            if isinstance(m, nn.ConvTranspose2d):
                delta_orthogonal_(m, nn.init.calculate_gain("relu"))
        self.deconvs = nn.Sequential(*layers)

    def forward(self, h: Tensor) -> Tensor:
        x = torch.relu(self.fc(h)).view(-1, self.num_filters, self.size, self.size)
        return self.deconvs(x)
