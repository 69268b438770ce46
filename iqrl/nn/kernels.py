"""Fast kernels that run only under torch.compile (`compile=true`): oneDNN's float32 GEMM for the CPU's matrix
products and Mish through one exponential. Eager code never reaches them: `linear`, `baddbmm` and `mish` fall
back to PyTorch's own operators outside compiled code, so eager runs compute exactly what plain PyTorch does.
`iqrl/nn/layers.py` routes its Linear, ensemble and Mish layers through here.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.overrides import TorchFunctionMode

# --------------------------------------------------------------------------------------------------
# Matrix products on CPU
# --------------------------------------------------------------------------------------------------


@torch.library.custom_op("iqrl::onednn_matmul", mutates_args=())
def onednn_matmul(a: Tensor, b: Tensor) -> Tensor:
    """a @ b for float32 CPU tensors, [M, K] @ [K, N] or [E, M, K] @ [E, K, N], computed by oneDNN's
    float32 GEMM (float32 arithmetic, summed in another order than MKL's) instead of the MKL sgemm that
    torch.mm calls. On AMD CPUs MKL runs its AVX2 code: on a host with full-width AVX-512 its sgemm ran
    the update's shapes at 165-220 GFLOP/s on two cores and oneDNN's at 360-500; on a Zen 4 host (family
    25), whose AVX-512 runs at AVX2's width, the two ran alike (`python -m iqrl.bench --peak`,
    docs/performance.md). Any strides; `b` is read in place, while PyTorch's oneDNN op copies a
    non-contiguous `a` first (the a.mT of a weight gradient). A custom op, so inductor calls it as one
    opaque kernel."""
    if a.dim() == 2:
        return _onednn_mm(a, b)
    return torch.stack([_onednn_mm(a[e], b[e]) for e in range(a.shape[0])])


def _onednn_mm(a: Tensor, b: Tensor) -> Tensor:
    # mkldnn's linear computes x @ w.T with w [N, K]; b.T is that w, as a view
    return torch.ops.mkldnn._linear_pointwise(a, b.T, None, "none", [], "")


@onednn_matmul.register_fake
def _(a: Tensor, b: Tensor) -> Tensor:
    return a.new_empty((*a.shape[:-1], b.shape[-1]))


def _onednn_matmul_backward(ctx, grad: Tensor):
    a, b = ctx.saved_tensors
    grad_a = onednn_matmul(grad, b.mT) if ctx.needs_input_grad[0] else None
    grad_b = onednn_matmul(a.mT, grad) if ctx.needs_input_grad[1] else None
    return grad_a, grad_b


def _onednn_matmul_setup(ctx, inputs, output):
    ctx.save_for_backward(*inputs)


onednn_matmul.register_autograd(_onednn_matmul_backward, setup_context=_onednn_matmul_setup)


_over_seeds = False  # True while the K-seed mode runs a piece (`over_seeds`)


class _LayerNormInFloat32(TorchFunctionMode):
    """F.layer_norm of a bfloat16 input with float32 weights (what CPU autocast leaves it: layer_norm is not
    in its float32 list, as it is in CUDA's) computed on the input cast to float32, the output cast back:
    torch.func's batched backward of the mixed-dtype kernel fails ("expected scalar type BFloat16 but found
    Float", torch 2.13), the float32 one runs. The same arithmetic (the mixed kernel computes in float32 and
    rounds its output to bfloat16), up to the order of its sums."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.layer_norm:
            x, shape, *rest = args
            weight = rest[0] if rest else kwargs.get("weight")
            if weight is not None and x.dtype != weight.dtype:
                return F.layer_norm(x.to(weight.dtype), shape, *rest, **kwargs).to(x.dtype)
        return func(*args, **kwargs)


@contextlib.contextmanager
def over_seeds():
    """The K-seed mode's pieces run inside it (torch.func's vmap and grad over seeds,
    iqrl/multiseed/pieces.py): their products and Mish stay PyTorch's (`compiling_own_kernels`), which
    torch.func batches and differentiates. Compiled code reads the flag when it is traced (dynamo guards on
    it), so the group's graphs and a seed's own are traced apart. Under CPU autocast (precision=bf16),
    LayerNorm computes in float32 there (`_LayerNormInFloat32`)."""
    global _over_seeds
    before, _over_seeds = _over_seeds, True
    try:
        with _LayerNormInFloat32() if torch.is_autocast_enabled("cpu") else contextlib.nullcontext():
            yield
    finally:
        _over_seeds = before


def compiling_own_kernels() -> bool:
    """Whether this module's kernels run: under torch.compile, outside the K-seed mode's pieces
    (`over_seeds`: `onednn_matmul`'s autograd and `mish`'s autograd.Function do not compose with torch.func's
    transforms under dynamo; PyTorch's operators there, as eager)."""
    return torch.compiler.is_compiling() and not _over_seeds


def compiling_over_seeds() -> bool:
    """Whether a K-seed piece is being compiled (`over_seeds` under torch.compile): dynamo runs an
    autograd.Function under torch.func's vmap only without its vmap rule, so a layer that has one
    (iqrl/nn/quantizers.py's FSQ) computes the same values and gradients with plain operators there."""
    return torch.compiler.is_compiling() and _over_seeds


def _onednn(a: Tensor, b: Tensor) -> bool:
    """Whether a product of `a` and `b` goes to `onednn_matmul`: under torch.compile (`compile=true`),
    float32 on CPU, outside autocast, outside the K-seed mode's pieces (`compiling_own_kernels`). Eager
    products stay PyTorch's, so eager runs compute exactly what they always did (as `iqrl.nn.layers.Mish`)."""
    return (
        compiling_own_kernels()
        and a.device.type == "cpu"
        and a.dtype == b.dtype == torch.float32
        and not torch.is_autocast_enabled("cpu")
    )


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """F.linear(x, weight, bias): x [..., in], weight [out, in]; through `onednn_matmul` where `_onednn`."""
    if not _onednn(x, weight):
        return F.linear(x, weight, bias)
    y = onednn_matmul(x.reshape(-1, x.shape[-1]), weight.T).reshape(*x.shape[:-1], weight.shape[0])
    return y if bias is None else y + bias


def baddbmm(bias: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """torch.baddbmm(bias, a, b) = bias + a @ b, batched; through `onednn_matmul` where `_onednn`."""
    if not _onednn(a, b):
        return torch.baddbmm(bias, a, b)
    return onednn_matmul(a, b) + bias


# --------------------------------------------------------------------------------------------------
# Activations
# --------------------------------------------------------------------------------------------------

#: Above this, Mish(x) = x in float32 (1 - tanh(softplus(20)) is about 8e-18), so `mish` saturates here.
MISH_SATURATION = 20.0


def _mish_terms(x: Tensor) -> tuple[Tensor, Tensor]:
    """(u, n) = (e^x, u (u + 2)) at x clamped to MISH_SATURATION (no overflow)."""
    u = torch.exp(x.clamp(max=MISH_SATURATION))
    return u, u * (u + 2.0)


class _Mish(torch.autograd.Function):
    """Mish with its derivative in closed form, both from one exponential (see `mish`). Autograd through
    the forward formula would difference two terms of order n near saturation (an error of about x ulps);
    d/dx [x n / (n + 2)] = n / (n + 2) + x 4 u (1 + u) / (n + 2)^2 has no such cancellation."""

    @staticmethod
    def forward(x: Tensor) -> Tensor:
        _, n = _mish_terms(x)
        return x * (n / (n + 2.0))

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(inputs[0])

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        (x,) = ctx.saved_tensors
        u, n = _mish_terms(x)
        d = n + 2.0
        return grad * (n / d + x * (4.0 * u * (1.0 + u)) / (d * d))


def mish(x: Tensor) -> Tensor:
    """Mish(x) = x tanh(softplus(x)) (Misra 2019, arXiv 1908.08681) through one exponential: with u = e^x,
    tanh(log(1 + u)) = ((1 + u)^2 - 1) / ((1 + u)^2 + 1) = n / (n + 2), n = u (u + 2).

    PyTorch's kernel (and inductor's lowering of it) evaluates exp, log1p and tanh per element, and its
    backward a sigmoid on top; this form needs one exp forward and one backward, which is what makes a
    compiled LayerNorm + Mish network cheaper on CPUs with slow transcendentals (`iqrl.nn.layers.Mish`).
    Computed in float32 (as PyTorch's kernel computes bf16 inputs); values and gradients equal F.mish's to
    a few ulps (tests/test_layers.py)."""
    return _Mish.apply(x.float()).to(x.dtype)
