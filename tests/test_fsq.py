"""FSQ: value sets, straight-through gradient, grouping and code indices."""

import math

import pytest
import torch

from iqrl.layers import FSQ


@pytest.mark.parametrize("L, values", [
    (8, [-1, -0.75, -0.5, -0.25, 0, 0.25, 0.5, 0.75]),
    (6, [-1, -2 / 3, -1 / 3, 0, 1 / 3, 2 / 3]),
    (5, [-1, -0.5, 0, 0.5, 1]),
    (3, [-1, 0, 1]),
])
def test_value_sets(L, values):
    fsq = FSQ([L])
    y = torch.linspace(-20, 20, 20001).unsqueeze(-1)
    q = fsq(y).squeeze(-1)
    got = sorted(set(round(v, 6) for v in q.tolist()))
    assert got == pytest.approx(values, abs=1e-6)


@pytest.mark.parametrize("L, shift", [(8, 0.1437), (6, 0.2025), (5, 0.0), (3, 0.0)])
def test_shift(L, shift):
    assert float(FSQ([L])._shift[0]) == pytest.approx(shift, abs=1e-4)


def test_zero_maps_to_zero_code_for_even_levels():
    # tanh(0 + s) * h - o = o - o = 0: the shift centres 0 on a grid point.
    assert float(FSQ([8])(torch.zeros(1, 1))) == 0.0


@pytest.mark.parametrize("levels", [[8], [8, 8], [8, 5, 3]])  # equal levels take the scalar-constant path
def test_straight_through_gradient_is_derivative_of_bound(levels):
    fsq = FSQ(levels)
    c = len(levels)
    y = torch.linspace(-3, 3, 101 * c).view(101, c).requires_grad_(True)
    fsq(y).sum().backward()
    for j, L in enumerate(levels):
        h = (L - 1) * (1 + 1e-3) / 2
        s = math.atanh((0.5 if L % 2 == 0 else 0.0) / h)
        expected = (1 - torch.tanh(y.detach()[:, j] + s) ** 2) * h / (L // 2)
        assert torch.allclose(y.grad[:, j], expected, atol=1e-6)
    assert (y.grad > 0).all()  # rounding did not zero the gradient


def test_groups_are_contiguous_chunks():
    fsq = FSQ([8, 5])
    y = torch.randn(4, 6)  # 3 groups of 2 channels
    q = fsq(y)
    for g in range(3):
        # channel 0 of every group uses L=8, channel 1 uses L=5
        assert torch.equal(q[:, 2 * g], FSQ([8])(y[:, 2 * g: 2 * g + 1]).squeeze(-1))
        assert torch.equal(q[:, 2 * g + 1], FSQ([5])(y[:, 2 * g + 1: 2 * g + 2]).squeeze(-1))


def test_indices_cover_codebook_and_round_trip():
    fsq = FSQ([8, 6, 5])
    assert fsq.codebook_size == 240
    idx = torch.arange(240).unsqueeze(-1)  # 240 samples, 1 group
    codes = fsq.codes_from_indices(idx)
    assert codes.shape == (240, 3)
    assert torch.equal(fsq.indices(codes), idx)
    # quantizing random inputs only ever produces valid indices
    y = torch.randn(1000, 30) * 3
    ind = fsq.indices(fsq(y))
    assert ind.shape == (1000, 10) and ind.min() >= 0 and ind.max() < 240
    assert torch.equal(fsq.codes_from_indices(ind), fsq(y))


def test_mixed_radix_index():
    fsq = FSQ([8, 8])
    # q = (-1, -1) -> digits (0, 0) -> 0 ; q = (0.75, 0.75) -> digits (7, 7) -> 7 + 7*8 = 63
    assert fsq.indices(torch.tensor([[-1.0, -1.0]])).item() == 0
    assert fsq.indices(torch.tensor([[0.75, 0.75]])).item() == 63
    assert fsq.indices(torch.tensor([[0.0, -1.0]])).item() == 4


@pytest.mark.parametrize("levels", [[], [1], [8, 1], [0, 5]])
def test_invalid_levels(levels):
    with pytest.raises(ValueError, match="levels"):
        FSQ(levels)
