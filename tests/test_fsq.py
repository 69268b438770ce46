"""FSQ: value sets, straight-through gradient, grouping and code indices, under the standard
and the symmetric bound (arXiv 2411.19842); the agents' refusal of a level of 2 under the standard bound."""

import math

import pytest
import torch

from iqrl.nn.quantizers import FSQ


@pytest.mark.parametrize(
    "L, values",
    [
        (8, [-1, -0.75, -0.5, -0.25, 0, 0.25, 0.5, 0.75]),
        (6, [-1, -2 / 3, -1 / 3, 0, 1 / 3, 2 / 3]),
        (5, [-1, -0.5, 0, 0.5, 1]),
        (3, [-1, 0, 1]),
    ],
)
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


@pytest.mark.parametrize("compiled", [False, True])
@pytest.mark.parametrize("levels", [[8], [8, 8], [8, 5, 3]])  # equal levels take the scalar-constant path
def test_straight_through_gradient_is_derivative_of_bound(levels, compiled):
    """Eager and through torch.compile (compile=true): torch 2.11 compiled the Function with its output
    written in place to a zero gradient, which left compiled iqrl's encoder untrained on the first GPU."""
    fsq = FSQ(levels)
    c = len(levels)
    y = torch.linspace(-3, 3, 101 * c).view(101, c).requires_grad_(True)
    (torch.compile(fsq) if compiled else fsq)(y).sum().backward()
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
        assert torch.equal(q[:, 2 * g], FSQ([8])(y[:, 2 * g : 2 * g + 1]).squeeze(-1))
        assert torch.equal(q[:, 2 * g + 1], FSQ([5])(y[:, 2 * g + 1 : 2 * g + 2]).squeeze(-1))


@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("levels", [[8, 6, 5], [2, 3, 4], [7, 7]])
def test_indices_cover_codebook_and_round_trip(levels, symmetric):
    fsq = FSQ(levels, symmetric=symmetric)
    K = math.prod(levels)
    assert fsq.codebook_size == K
    idx = torch.arange(K).unsqueeze(-1)  # K samples, 1 group
    codes = fsq.codes_from_indices(idx)
    assert codes.shape == (K, len(levels))
    assert torch.equal(fsq.indices(codes), idx)
    assert len(set(map(tuple, codes.tolist()))) == K  # K distinct codes
    # quantizing random inputs only ever produces valid indices, and the codes they name are bit for bit
    # the quantized values
    y = torch.randn(1000, 10 * len(levels)) * 3
    ind = fsq.indices(fsq(y))
    assert ind.shape == (1000, 10) and ind.min() >= 0 and ind.max() < K
    assert torch.equal(fsq.codes_from_indices(ind), fsq(y))


def test_mixed_radix_index():
    fsq = FSQ([8, 8])
    # q = (-1, -1) -> digits (0, 0) -> 0 ; q = (0.75, 0.75) -> digits (7, 7) -> 7 + 7*8 = 63
    assert fsq.indices(torch.tensor([[-1.0, -1.0]])).item() == 0
    assert fsq.indices(torch.tensor([[0.75, 0.75]])).item() == 63
    assert fsq.indices(torch.tensor([[0.0, -1.0]])).item() == 4


def test_mixed_radix_index_symmetric():
    fsq = FSQ([2, 2], symmetric=True)
    # digits (k1, k2) of codes (2 k - 1): index k1 + 2 k2
    q = torch.tensor([[-1.0, -1.0], [1.0, -1.0], [-1.0, 1.0], [1.0, 1.0]])
    assert fsq.indices(q).squeeze(-1).tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize("levels", [[], [1], [8, 1], [0, 5]])
@pytest.mark.parametrize("symmetric", [False, True])
def test_invalid_levels(levels, symmetric):
    with pytest.raises(ValueError, match="levels"):
        FSQ(levels, symmetric=symmetric)


# ------------------------------------------------------------------------- L = 2 and the symmetric bound
def test_level_two_standard_bound_by_hand():
    """Standard bound, L = 2: h = 1 * 1.001 / 2 = 0.5005, o = 0.5, s = atanh(0.5 / 0.5005) = atanh(1000/1001)
    = ln(2001) / 2 = 3.80070, w = 1. q = round(0.5005 tanh(y + s) - 0.5) is 0 unless tanh(y + s) < 0."""
    fsq = FSQ([2])
    assert float(fsq._shift[0]) == pytest.approx(math.log(2001) / 2, abs=1e-5)
    assert math.log(2001) / 2 == pytest.approx(3.80070, abs=1e-5)
    y = torch.tensor([[0.0], [2.0], [-3.7], [-3.9], [-6.0]])
    # y = 0:    0.5005 * 1000/1001 - 0.5 = 0              -> 0
    # y = -3.7: 0.5005 * tanh(0.10070) - 0.5 = -0.4498    -> 0
    # y = -3.9: 0.5005 * tanh(-0.09930) - 0.5 = -0.5495   -> -1
    assert fsq(y).squeeze(-1).tolist() == [0.0, 0.0, 0.0, -1.0, -1.0]
    # the gradient at y = 0: (1 - (1000/1001)^2) * 0.5005 = 2001/1001^2 * 1001/2000 = 2001 / 2002000
    y0 = torch.zeros(1, 1, requires_grad=True)
    fsq(y0).sum().backward()
    assert float(y0.grad) == pytest.approx(
        2001 / 2002000, rel=1e-4
    )  # 0.0009995: 1000x weaker than at 0 for L=3


def test_level_two_symmetric_bound_by_hand():
    """Symmetric bound, L = 2: q = 2 round((tanh(y) + 1) / 2) - 1 = +1 for y > 0, -1 for y < 0;
    straight-through gradient 1 - tanh(y)^2 (tanh(ln 2) = 3/5, tanh(ln 3) = 4/5)."""
    fsq = FSQ([2], symmetric=True)
    y = torch.tensor([[0.3], [-0.3], [5.0], [-5.0], [1e-3], [-1e-3]])
    assert fsq(y).squeeze(-1).tolist() == [1.0, -1.0, 1.0, -1.0, 1.0, -1.0]
    y = torch.tensor([[0.0], [math.log(2)], [-math.log(3)]], requires_grad=True)
    fsq(y).sum().backward()
    assert y.grad.squeeze(-1).tolist() == pytest.approx([1.0, 16 / 25, 9 / 25], abs=1e-6)


@pytest.mark.parametrize(
    "L, values",
    [
        (2, [-1, 1]),
        (3, [-1, 0, 1]),
        (4, [-1, -1 / 3, 1 / 3, 1]),
        (5, [-1, -0.5, 0, 0.5, 1]),
        (8, [-1, -5 / 7, -3 / 7, -1 / 7, 1 / 7, 3 / 7, 5 / 7, 1]),
    ],
)
def test_symmetric_value_sets(L, values):
    """(2k - (L-1)) / (L-1), k = 0..L-1: for odd L the standard values, for even L no 0 and both ends."""
    q = FSQ([L], symmetric=True)(torch.linspace(-20, 20, 20001).unsqueeze(-1)).squeeze(-1)
    assert sorted(set(q.tolist())) == pytest.approx(values, abs=1e-6)


def test_symmetric_bound_is_odd():
    """q(-y) = -q(y) bit for bit (away from the measure-zero ties of the rounding)."""
    y = torch.randn(2000, 12, generator=torch.Generator().manual_seed(0)) * 2
    for levels in ([2, 2], [8, 8], [8, 5, 4], [2, 3, 4, 5, 6, 7]):
        fsq = FSQ(levels, symmetric=True)
        assert torch.equal(fsq(-y), -fsq(y))


@pytest.mark.parametrize(
    "levels", [[8], [8, 8], [8, 5, 2], [2, 2]]
)  # equal levels take the scalar-constant path
def test_symmetric_straight_through_gradient(levels):
    """dq/dy = 1 - tanh(y)^2 for every L: the code spacing 2/(L-1) cancels the scale (L-1)/2 of the bound."""
    c = len(levels)
    y = torch.linspace(-3, 3, 101 * c).view(101, c).requires_grad_(True)
    FSQ(levels, symmetric=True)(y).sum().backward()
    assert torch.allclose(y.grad, 1 - torch.tanh(y.detach()) ** 2, atol=1e-6)


def _agent_configs():
    from baselines.dcwm import DCWMConfig
    from iqrl.agent.config import IQRLConfig

    return [IQRLConfig, DCWMConfig]


@pytest.mark.parametrize("levels", [[2, 2], [8, 2], [2, 2, 2, 2]])
def test_agents_refuse_a_level_of_two_under_the_standard_bound(levels):
    for cls in _agent_configs():
        with pytest.raises(ValueError, match=r"has a level of 2.*use agent\.fsq_symmetric=true"):
            cls(fsq_levels=levels).validate()
        cls(fsq_levels=levels, fsq_symmetric=True).validate()  # well defined under the symmetric bound
    from iqrl.agent.config import IQRLConfig

    IQRLConfig(fsq_levels=levels, use_fsq=False).validate()  # no FSQ: the levels only set the latent width
