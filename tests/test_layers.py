"""Shared blocks: EMA, vectorised ensemble, MLP layout, Mish, exploration schedule."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from iqrl.nn.kernels import mish, onednn_matmul
from iqrl.nn.layers import EnsembleLinear, EnsembleMLP, Linear, Mish, mlp
from iqrl.nn.maths import (
    cross_entropy_last,
    ema_update_,
    gumbel_noise,
    linear_schedule,
    log_softmax_last,
    softmax_last,
)


def test_ema_update_formula():
    target = [torch.tensor([1.0, 2.0]), torch.tensor([[0.0]])]
    online = [torch.tensor([3.0, 6.0]), torch.tensor([[10.0]])]
    ema_update_(target, online, 0.25)
    # (1 - tau) * target + tau * online
    assert torch.allclose(target[0], torch.tensor([1.5, 3.0]))
    assert torch.allclose(target[1], torch.tensor([[2.5]]))
    assert torch.equal(online[0], torch.tensor([3.0, 6.0]))  # online untouched


def test_mlp_layout():
    net = mlp(5, [7, 9], 3)
    kinds = [type(m) for m in net]
    assert kinds == [Linear, nn.LayerNorm, Mish, Linear, nn.LayerNorm, Mish, Linear]
    assert net[0].in_features == 5 and net[-1].out_features == 3


def _mish_reference(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mish and its derivative in float64 from the definition: x t and t + x (1 - t^2) sigmoid(x), with
    t = tanh(softplus(x))."""
    x = x.double()
    t = torch.tanh(F.softplus(x))
    return x * t, t + x * (1 - t * t) * torch.sigmoid(x)


def test_mish_formula_values_and_gradients_match_the_definition():
    """n / (n + 2) with n = e^x (e^x + 2) is tanh(softplus(x)): values and the closed-form derivative agree
    with the float64 definition to float32 rounding over [-100, 100] and beyond the saturation point, as
    closely as PyTorch's own kernel does (its gradient is off by up to 1e-6 near x = 9)."""
    x = torch.cat([torch.linspace(-100, 100, 40001), torch.tensor([19.99, 20.0, 20.01, 88.0, 1e4, -1e4])])
    x.requires_grad_(True)
    y = mish(x)
    (grad,) = torch.autograd.grad(y.sum(), x)
    y = y.detach()
    value_ref, grad_ref = _mish_reference(x.detach())
    assert torch.isfinite(y).all() and torch.isfinite(grad).all()
    assert float((y.double() - value_ref).abs().max()) < 1e-6
    assert float(((y.double() - value_ref).abs() / value_ref.abs().clamp_min(1.0)).max()) < 3e-7
    assert float((grad.double() - grad_ref).abs().max()) < 3e-7
    assert torch.equal(grad[x.detach() > 20.0], torch.ones_like(grad[x.detach() > 20.0]))  # saturated: x


def test_mish_keeps_the_dtype_and_computes_bf16_in_float32():
    x = torch.linspace(-8, 8, 2001).bfloat16()
    assert mish(x).dtype == torch.bfloat16
    # the float32 values, rounded once: at most half a bf16 step from F.mish's float32 result
    torch.testing.assert_close(mish(x), F.mish(x.float()).bfloat16(), rtol=2**-8, atol=1e-6)


def test_mish_module_is_pytorchs_kernel_eager_and_the_formula_compiled():
    """Eager runs compute what they always did (F.mish, bit for bit); compiled, the module traces
    `iqrl.nn.kernels.mish` (and agrees with F.mish to rounding, gradient included)."""
    torch.manual_seed(0)
    x = torch.randn(64, 32) * 4
    assert torch.equal(Mish()(x), F.mish(x))
    traced = []

    def backend(gm, example_inputs):
        traced.append(gm)
        return gm.forward

    compiled = torch.compile(Mish(), backend=backend)
    xg = x.clone().requires_grad_(True)
    y = compiled(xg)
    (grad,) = torch.autograd.grad(y.sum(), xg)
    # the traced graph, its autograd.Function's forward and backward bodies included: one exp each, no mish
    code = traced[0].print_readable(print_output=False, include_stride=False).split("\n")
    ops = [line for line in code if not line.strip().startswith("#")]
    assert sum("torch.exp(" in line for line in ops) == 2
    assert not any("mish" in line for line in ops)
    xr = x.clone().requires_grad_(True)
    (grad_ref,) = torch.autograd.grad(F.mish(xr).sum(), xr)
    torch.testing.assert_close(y, F.mish(x), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(grad, grad_ref, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("batched", [False, True])
def test_onednn_matmul_values_and_gradients_match_float64(batched):
    """oneDNN's float32 product, forward and both gradients, against float64; with the transposed
    (strided) operands the backward hands it. Within 1e-5 of the largest entry, as MKL's product."""
    torch.manual_seed(0)
    lead = (3,) if batched else ()
    a = torch.randn(*lead, 64, 130, requires_grad=True)
    b = torch.randn(*lead, 96, 130).mT.requires_grad_(True)  # a strided [130, 96] view
    g = torch.randn(*lead, 64, 96)
    y = onednn_matmul(a, b)
    grads = torch.autograd.grad(y, (a, b), g)
    a64, b64 = a.detach().double().requires_grad_(True), b.detach().double().requires_grad_(True)
    y64 = a64 @ b64
    grads64 = torch.autograd.grad(y64, (a64, b64), g.double())
    assert y.dtype == torch.float32 and y.shape == y64.shape
    for got, want in [(y, y64), *zip(grads, grads64)]:
        assert float((got.double() - want).detach().abs().max()) <= 1e-5 * float(want.abs().max())
    # the numbers are not PyTorch's own product by accident: oneDNN's kernel ran
    with torch.profiler.profile() as prof:
        onednn_matmul(a.detach(), b.detach())
    assert any(e.key == "mkldnn::_linear_pointwise" for e in prof.key_averages())


def _traced(module, *inputs):
    """(output, input gradients, traced graph code) of `module` under torch.compile."""
    graphs = []

    def backend(gm, example_inputs):
        graphs.append(gm.print_readable(print_output=False))
        return gm.forward

    inputs = [x.clone().requires_grad_(True) for x in inputs]
    y = torch.compile(module, backend=backend)(*inputs)
    return y, torch.autograd.grad(y.square().sum(), inputs), "\n".join(graphs)


@pytest.mark.parametrize("shared_input", [False, True])
def test_linear_layers_are_pytorchs_eager_and_onednn_compiled(shared_input):
    """Linear and EnsembleLinear: eager, PyTorch's F.linear and baddbmm bit for bit (eager runs compute
    what they always did); compiled in float32 on CPU, `onednn_matmul`, agreeing to rounding with
    gradients; under bf16 autocast, PyTorch's again (autocast decides the product's dtype)."""
    torch.manual_seed(0)
    lin, ens = Linear(40, 24), EnsembleLinear(3, 40, 24)
    x = torch.randn(2, 16, 40)
    xe = x[0] if shared_input else torch.randn(3, 16, 40)
    assert torch.equal(lin(x), F.linear(x, lin.weight, lin.bias))
    assert torch.equal(ens(xe), torch.baddbmm(ens.bias, xe.expand(3, -1, -1), ens.weight))
    for module, inp in [(lin, x), (ens, xe)]:
        y, (grad,), code = _traced(module, inp)
        assert "onednn_matmul" in code
        xr = inp.clone().requires_grad_(True)
        y_ref = module(xr)
        (grad_ref,) = torch.autograd.grad(y_ref.square().sum(), xr)
        torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(grad, grad_ref, rtol=1e-5, atol=1e-5)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y16, _, code16 = _traced(module, inp)
        assert "onednn_matmul" not in code16 and y16.dtype == torch.bfloat16


def test_ensemble_members_are_independent_mlps():
    torch.manual_seed(0)
    ens = EnsembleMLP(4, 6, [8, 8], 1)
    x = torch.randn(10, 6)
    out = ens(x)
    assert out.shape == (4, 10, 1)
    # member k equals a plain MLP built from its slice of the weights
    for k in range(4):
        h = x
        for lin, norm in zip(ens.linears, ens.norms):
            h = h @ lin.weight[k] + lin.bias[k]
            h = torch.nn.functional.layer_norm(h, (8,)) * norm.weight[k] + norm.bias[k]
            h = torch.nn.functional.mish(h)
        h = h @ ens.out.weight[k] + ens.out.bias[k]
        assert torch.allclose(out[k], h, atol=1e-5)
    # members have different initialisations
    assert not torch.allclose(out[0], out[1])
    # evaluating a subset equals indexing the full output
    members = torch.tensor([3, 1])
    assert torch.allclose(ens(x, members), out[members], atol=1e-6)


def test_ensemble_gradients_stay_per_member():
    ens = EnsembleMLP(3, 4, [5], 1)
    ens(torch.randn(2, 4), torch.tensor([1]))[0].sum().backward()
    g = ens.out.weight.grad
    assert g[1].abs().sum() > 0 and g[0].abs().sum() == 0 and g[2].abs().sum() == 0


def test_linear_schedule_matches_linspace():
    expected = np.linspace(1.0, 0.1, 50)
    got = [linear_schedule(1.0, 0.1, 50, i) for i in range(60)]
    assert got[:50] == pytest.approx(expected.tolist())
    assert got[1] == pytest.approx(0.9816326530612245)
    assert got[55] == pytest.approx(0.1)  # saturates at the end


@pytest.mark.parametrize(
    "shape", [(7, 5, 15), (256, 65), (3, 300)]
)  # short last dims take the transposed path
def test_softmax_helpers_equal_the_torch_functions(shape):
    x = (torch.randn(shape) * 4).requires_grad_()
    w = torch.randn(shape)
    for ours, ref in (
        (softmax_last, lambda t: F.softmax(t, -1)),
        (log_softmax_last, lambda t: F.log_softmax(t, -1)),
    ):
        y = ours(x)
        assert y.shape == x.shape and torch.allclose(y, ref(x), atol=1e-6)
        (g,) = torch.autograd.grad((y * w).sum(), x)
        (g_ref,) = torch.autograd.grad((ref(x) * w).sum(), x)
        assert torch.allclose(g, g_ref, atol=1e-5)
    k = torch.randint(0, shape[-1], shape[:-1])
    ce = F.cross_entropy(x.reshape(-1, shape[-1]), k.reshape(-1), reduction="none").view(shape[:-1])
    assert torch.allclose(cross_entropy_last(x, k), ce, atol=1e-5)


def test_gumbel_noise_has_the_gumbel_distribution_and_follows_its_generator():
    g = gumbel_noise(200_000, torch.Generator().manual_seed(0))
    assert torch.isfinite(g).all() and g.dtype == torch.float32
    assert gumbel_noise(3, torch.Generator(), dtype=torch.bfloat16).dtype == torch.bfloat16
    assert abs(g.mean().item() - 0.5772) < 0.01  # Euler-Mascheroni constant
    assert abs(g.var().item() - math.pi**2 / 6) < 0.03
    # P(G <= 0) = exp(-1)
    assert abs((g <= 0).float().mean().item() - math.exp(-1)) < 0.005
    assert torch.equal(g, gumbel_noise(200_000, torch.Generator().manual_seed(0)))
    assert not torch.equal(g, gumbel_noise(200_000, torch.Generator().manual_seed(1)))


def test_scalar_heads_stay_float32_under_bf16_autocast():
    torch.manual_seed(0)
    x = torch.randn(8, 10)
    nets = [mlp(10, [16], 1), mlp(10, [16], 1, act=nn.ELU, norm=False), EnsembleMLP(3, 10, [16], 1)]
    for net in nets:
        last = net[-1] if isinstance(net, nn.Sequential) else net.out
        with torch.no_grad():
            last.bias.fill_(200.3)  # a Q-value where bf16 spacing is 1.0
        ref = net(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = net(x)
        assert y.dtype == torch.float32
        # only the hidden layers ran in bf16: the output is not rounded to bf16's whole units
        assert (y - y.round()).abs().max() > 0.05 and torch.allclose(y, ref, atol=0.5)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # wider outputs (actions, latents) stay bf16
        assert mlp(10, [16], 4)(x).dtype == torch.bfloat16


def test_gumbel_softmax_is_the_tempered_softmax_of_the_perturbed_logits_with_its_gradient():
    """softmax((l + g) / tau), as F.gumbel_softmax(hard=False) with the same Gumbel draws; its Jacobian is
    (diag(y) - y y^T) / tau; its argmax samples softmax(l) whatever tau (the Gumbel-max trick)."""
    from iqrl.nn.maths import gumbel_softmax

    logits = torch.tensor([[0.5, -1.0, 2.0]], requires_grad=True)
    g = torch.tensor([[0.1, 0.7, -0.3]])
    y = gumbel_softmax(logits, g, tau=10.0)
    assert torch.allclose(y, torch.softmax((logits + g) / 10.0, -1))
    torch.manual_seed(0)
    ref = torch.nn.functional.gumbel_softmax(logits, tau=10.0)
    torch.manual_seed(0)
    drawn = -torch.empty_like(logits).exponential_().log()  # F.gumbel_softmax's draw
    assert torch.allclose(gumbel_softmax(logits, drawn, 10.0), ref)
    (jac,) = torch.autograd.grad(y[0, 0], logits)
    yd = y.detach()[0]
    assert torch.allclose(jac[0], (torch.eye(3)[0] * yd[0] - yd[0] * yd) / 10.0, atol=1e-7)
    p = torch.tensor([0.6, 0.3, 0.1])
    picks = gumbel_softmax(
        p.log().expand(20000, 3), gumbel_noise((20000, 3), torch.Generator().manual_seed(1)), 10.0
    )
    assert torch.allclose(torch.bincount(picks.argmax(-1), minlength=3) / 20000.0, p, atol=0.02)
