"""The residual networks of BRO, Simba and SimbaV2 (iqrl/nn/trunks.py) and the distributional critics' losses
(iqrl/nn/maths.py), against the formulas of their public code written out again here in NumPy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from iqrl.nn.maths import (
    categorical_cross_entropy,
    categorical_projection,
    quantile_huber_loss,
    quantile_midpoints,
)
from iqrl.nn.trunks import (
    HyperLinear,
    ResidualNet,
    Scaler,
    Trunk,
    l2_normalize,
    l2_normalize_rows,
    residual_shape,
)


def np_params(module) -> dict[str, np.ndarray]:
    return {k: v.detach().double().numpy() for k, v in module.named_parameters()}


def np_ln(x, w, b, eps=1e-6):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def np_l2(x):
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-8)


relu = lambda x: np.maximum(x, 0.0)  # noqa: E731


def bronet_np(p, x, blocks):
    """naumix/BiggerRegularizedOptimistic at 5870a13, jaxrl/networks/common.py BroNet (depth = blocks)."""
    x = relu(
        np_ln(
            x @ p["trunk.embed.weight"] + p["trunk.embed.bias"],
            p["trunk.embed_norm.weight"],
            p["trunk.embed_norm.bias"],
        )
    )
    for k in range(blocks):
        q = {n.split(f"trunk.blocks.{k}.")[1]: v for n, v in p.items() if n.startswith(f"trunk.blocks.{k}.")}
        res = relu(np_ln(x @ q["w1.weight"] + q["w1.bias"], q["ln1.weight"], q["ln1.bias"]))
        x = x + np_ln(res @ q["w2.weight"] + q["w2.bias"], q["ln2.weight"], q["ln2.bias"])
    return x @ p["out.weight"] + p["out.bias"]


def simba_np(p, x, blocks):
    """dojeon-ai/SimbaV2 at 14fafb2, scale_rl/agents/simba: embedder, PreLNResidualBlock, LayerNorm, head."""
    x = x @ p["trunk.embed.weight"] + p["trunk.embed.bias"]
    for k in range(blocks):
        q = {n.split(f"trunk.blocks.{k}.")[1]: v for n, v in p.items() if n.startswith(f"trunk.blocks.{k}.")}
        h = np_ln(x, q["ln.weight"], q["ln.bias"])
        x = x + relu(h @ q["w1.weight"] + q["w1.bias"]) @ q["w2.weight"] + q["w2.bias"]
    x = np_ln(x, p["trunk.final_norm.weight"], p["trunk.final_norm.bias"])
    return x @ p["out.weight"] + p["out.bias"]


def simbav2_np(p, x, blocks, width, c_shift=3.0):
    """dojeon-ai/SimbaV2 at 14fafb2, simbaV2_layer.py: HyperEmbedder, HyperLERPBlock, the predictors' head."""
    s0 = math.sqrt(2 / width)
    x = np_l2(np.concatenate([x, np.full(x.shape[:-1] + (1,), c_shift)], -1))
    x = np_l2(x @ p["trunk.embed.w.weight"] * p["trunk.embed.scaler.scale"] * (s0 / s0))
    a0, a1 = 1 / (blocks + 1), 1 / math.sqrt(width)
    for k in range(blocks):
        q = {n.split(f"trunk.blocks.{k}.")[1]: v for n, v in p.items() if n.startswith(f"trunk.blocks.{k}.")}
        h = relu(x @ q["mlp.w1.weight"] * q["mlp.scaler.scale"] * ((s0 / 2) / (s0 / 2))) + 1e-8
        h = np_l2(h @ q["mlp.w2.weight"])
        x = np_l2(x + q["alpha.scale"] * (a0 / a1) * (h - x))
    z = (x @ p["out.w1.weight"]) * p["out.scaler.scale"]
    return z @ p["out.w2.weight"] + p["out.bias"]


REFERENCE = {"bronet": bronet_np, "simba": simba_np, "simbav2": simbav2_np}


@pytest.mark.parametrize("kind", ["bronet", "simba", "simbav2"])
def test_each_network_computes_its_codes_forward_pass(kind):
    torch.manual_seed(0)
    net = ResidualNet(kind, 5, 8, 2, 3).double()
    with torch.no_grad():  # move every parameter off its initial value, so each term shows
        for p in net.parameters():
            p.add_(0.1 * torch.randn_like(p))
    x = torch.randn(4, 5, dtype=torch.float64)
    args = (2, 8) if kind == "simbav2" else (2,)
    want = REFERENCE[kind](np_params(net), x.numpy(), *args)
    torch.testing.assert_close(net(x), torch.from_numpy(want), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("kind", ["bronet", "simba", "simbav2"])
def test_an_ensemble_member_is_the_single_network_with_its_weights(kind):
    torch.manual_seed(1)
    ens = ResidualNet(kind, 6, 8, 2, 1, n=3)
    single = ResidualNet(kind, 6, 8, 2, 1)
    single.load_state_dict(
        {k: v[2].reshape(single.state_dict()[k].shape) for k, v in ens.state_dict().items()}
    )
    x = torch.randn(5, 6)
    out = ens(x)
    assert out.shape == (3, 5, 1)
    torch.testing.assert_close(out[2], single(x))
    # a subset of members, and a per-member input [E, B, in]
    torch.testing.assert_close(ens(x, torch.tensor([2, 0])), out[[2, 0]])
    torch.testing.assert_close(ens(x.expand(3, -1, -1)), out)


def test_simbav2_features_and_weight_rows_lie_on_the_unit_sphere():
    torch.manual_seed(2)
    trunk = Trunk("simbav2", 7, 16, 2)
    z = trunk(100 * torch.randn(9, 7))
    torch.testing.assert_close(z.norm(dim=-1), torch.ones(9))
    for m in trunk.modules():
        if isinstance(m, HyperLinear):  # [in, out]: each output unit's weights over the inputs, unit norm
            torch.testing.assert_close(m.weight.norm(dim=0), torch.ones(m.weight.shape[1]))
    # the appended constant keeps the input's norm: x and 2x embed differently
    x = torch.randn(1, 7)
    assert (trunk.embed(x) - trunk.embed(2 * x)).abs().max() > 1e-3


def test_l2_normalize_rows_of_single_and_stacked_weights_and_the_norm_floor():
    w = torch.tensor([[3.0, 0.0], [4.0, 2.0]])  # [in, out]: column j is output unit j
    torch.testing.assert_close(l2_normalize_rows(w), torch.tensor([[0.6, 0.0], [0.8, 1.0]]))
    torch.testing.assert_close(
        l2_normalize_rows(torch.stack([w, 2 * w])), torch.stack([l2_normalize_rows(w)] * 2)
    )
    torch.testing.assert_close(l2_normalize(torch.zeros(2, 3)), torch.zeros(2, 3))  # max(norm, 1e-8), no NaN


def test_scaler_starts_at_init_and_its_parameter_at_scale():
    s = Scaler(3, init=0.5, scale=0.1)
    torch.testing.assert_close(s.scale.detach(), torch.full((3,), 0.1))
    torch.testing.assert_close(s(torch.ones(3)), torch.full((3,), 0.5))
    s(torch.ones(3)).sum().backward()  # d/ds (s * init/scale * x) = init/scale
    torch.testing.assert_close(s.scale.grad, torch.full((3,), 5.0))


def test_residual_shape_takes_equal_widths_one_block_each():
    assert residual_shape([512, 512]) == (512, 2)
    with pytest.raises(ValueError, match="equal widths"):
        residual_shape([512, 256])


# --------------------------------------------------------------------------------------------------
# Distributional losses
# --------------------------------------------------------------------------------------------------


def simbav2_projection_np(probs, atoms, lo, hi):
    """dojeon-ai/SimbaV2 at 14fafb2, simbaV2_update.py categorical_td_loss: floor / ceil split."""
    n = probs.shape[-1]
    b = (np.clip(atoms, lo, hi) - lo) / ((hi - lo) / (n - 1))
    lower, upper = np.floor(b).astype(int), np.ceil(b).astype(int)
    out = np.zeros_like(probs)
    for r in range(probs.shape[0]):
        for j in range(n):
            out[r, lower[r, j]] += probs[r, j] * (upper[r, j] + (lower[r, j] == upper[r, j]) - b[r, j])
            out[r, upper[r, j]] += probs[r, j] * (b[r, j] - lower[r, j])
    return out


def test_categorical_projection_by_hand_and_as_simbav2_computes_it():
    probs = torch.tensor([[0.2, 0.3, 0.5]])
    atoms = torch.tensor([[-0.5, 0.0, 2.0]])  # bins -1, 0, 1: half-way, on a bin, clipped onto the top bin
    torch.testing.assert_close(
        categorical_projection(probs, atoms, -1.0, 1.0), torch.tensor([[0.1, 0.4, 0.5]])
    )
    g = torch.Generator().manual_seed(0)
    probs = torch.softmax(torch.randn(6, 11, generator=g, dtype=torch.float64), -1)
    atoms = 0.3 + 0.97 * (
        torch.linspace(-5, 5, 11, dtype=torch.float64) - 0.2 * torch.rand(6, 1, generator=g)
    )
    out = categorical_projection(probs, atoms, -5.0, 5.0)
    torch.testing.assert_close(
        out, torch.from_numpy(simbav2_projection_np(probs.numpy(), atoms.numpy(), -5, 5))
    )
    torch.testing.assert_close(out.sum(-1), torch.ones(6, dtype=torch.float64))  # mass is kept


def test_categorical_cross_entropy_holds_the_target_fixed():
    logits = torch.randn(4, 5, requires_grad=True)
    target = torch.softmax(torch.randn(4, 5), -1).requires_grad_()
    loss = categorical_cross_entropy(torch.log_softmax(logits, -1), target)
    torch.testing.assert_close(loss, -(target * torch.log_softmax(logits, -1)).sum(-1).mean())
    loss.backward()
    assert target.grad is None
    torch.testing.assert_close(logits.grad, (torch.softmax(logits, -1) - target).detach() / 4)


def test_quantile_midpoints():
    torch.testing.assert_close(quantile_midpoints(4), torch.tensor([0.125, 0.375, 0.625, 0.875]))


def bro_quantile_loss_np(pred, target, taus, kappa):
    """naumix/BiggerRegularizedOptimistic at 5870a13, jaxrl/bro/critic.py: td_errors = target_q - q[..., None]
    with target_q [B, 1, M], q [B, N]; sum over axis 1 (the predicted quantiles), mean over the rest."""
    td = target[:, None, :] - pred[..., None]
    huber = np.where(np.abs(td) <= kappa, 0.5 * td**2, kappa * (np.abs(td) - 0.5 * kappa))
    return (np.abs(taus[None, :, None] - (td < 0)) * huber / kappa).sum(1).mean()


def test_quantile_huber_loss_by_hand_against_bro_and_its_gradient():
    pred = torch.tensor([[0.0, 1.0]], requires_grad=True)
    loss = quantile_huber_loss(pred, torch.tensor([[0.5]]), torch.tensor([0.25, 0.75]))
    torch.testing.assert_close(loss, torch.tensor(0.0625))  # 0.25 * 0.125 for each quantile
    loss.backward()  # u = 0.5 above theta_0 pulls it up, u = -0.5 below theta_1 pulls it down
    torch.testing.assert_close(pred.grad, torch.tensor([[-0.125, 0.125]]))
    g = torch.Generator().manual_seed(3)
    pred, target = (
        3 * torch.randn(5, 7, generator=g, dtype=torch.float64),
        3 * torch.randn(5, 7, generator=g, dtype=torch.float64),
    )
    taus = quantile_midpoints(7).double()
    want = bro_quantile_loss_np(pred.numpy(), target.numpy(), taus.numpy(), 1.0)
    torch.testing.assert_close(
        quantile_huber_loss(pred, target, taus), torch.tensor(want, dtype=torch.float64)
    )
    target.requires_grad_()
    torch.autograd.gradcheck(lambda p: quantile_huber_loss(p, target, taus), pred.clone().requires_grad_())
