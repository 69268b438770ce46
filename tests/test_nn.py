"""Shared blocks: EMA, vectorised ensemble, MLP layout, exploration schedule."""

import numpy as np
import pytest
import torch
from torch import nn

from iqrl.nn import EnsembleMLP, ema_update_, linear_schedule, mlp


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
    assert kinds == [nn.Linear, nn.LayerNorm, nn.Mish, nn.Linear, nn.LayerNorm, nn.Mish, nn.Linear]
    assert net[0].in_features == 5 and net[-1].out_features == 3


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
