"""The quantizer family (`agent.quantizer`, iqrl/nn/quantizers.py): values, straight-through gradients, the VQ
commitment term and EMA codebook against hand computations, and each quantizer inside iQRL (width,
diagnostics, checkpoint, resume)."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from iqrl.config.build import build_config
from iqrl.config.run import ConfigError
from iqrl.core.registry import make_agent
from iqrl.nn.quantizers import GroupNorm, VectorQuantizer
from iqrl.runfolder.exits import EXIT_INTERRUPTED, EXIT_OK
from iqrl.train import main

from conftest import stop_after_steps, tiny_argv
from test_iqrl import ACT, OBS
from test_train import eval_numbers


def vq_with(codebook: list[list[float]], beta: float = 0.25, decay: float = 0.5) -> VectorQuantizer:
    vq = VectorQuantizer(len(codebook), len(codebook[0]), beta, decay, torch.Generator())
    with torch.no_grad():
        vq.codebook.copy_(torch.tensor(codebook))
        vq.ema_sum.copy_(vq.codebook)
    return vq


def test_vq_assigns_the_nearest_entry_and_commits_by_hand():
    vq = vq_with([[0.0], [1.0]], beta=0.25)
    y = torch.tensor([[0.2, 0.9, 0.7]])  # three groups of one channel
    assert vq.assign(y).tolist() == [[0, 1, 1]]
    assert vq(y).tolist() == [[0.0, 1.0, 1.0]]
    # beta * mean((0.2 - 0)^2, (0.9 - 1)^2, (0.7 - 1)^2) = 0.25 * 0.14 / 3
    assert vq.commitment(y).item() == pytest.approx(0.25 * 0.14 / 3)


def test_vq_two_dimensional_entries_by_hand():
    vq = vq_with([[0.0, 0.0], [1.0, 1.0], [-1.0, 2.0]])
    y = torch.tensor([[0.9, 0.8, -0.6, 1.5, 0.1, -0.2]])  # groups (0.9, 0.8), (-0.6, 1.5), (0.1, -0.2)
    assert vq.assign(y).tolist() == [[1, 2, 0]]
    assert vq.indices(vq(y)).tolist() == [[1, 2, 0]]


def test_vq_ema_codebook_update_by_hand():
    """decay 0.5, counts and sums starting at (1, entry): entry 0 gets y = 0.2, entry 1 gets 0.9 and 0.7.
    N = 0.5 [1, 1] + 0.5 [1, 2] = [1, 1.5]; m = 0.5 [0, 1] + 0.5 [0.2, 1.6] = [0.1, 1.3];
    e = m / N = [0.1, 0.8667]."""
    vq = vq_with([[0.0], [1.0]], decay=0.5)
    vq.ema_update(torch.tensor([[0.2, 0.9, 0.7]]))
    assert vq.ema_count.tolist() == pytest.approx([1.0, 1.5])
    assert vq.codebook.flatten().tolist() == pytest.approx([0.1, 1.3 / 1.5])
    unused = vq_with([[0.0], [1.0], [5.0]], decay=0.5)  # entry 2 is never chosen: it stays where it started
    unused.ema_update(torch.tensor([[0.2, 0.9, 0.7]]))
    assert unused.codebook[2].item() == pytest.approx(5.0)


def test_vq_straight_through_gradient_is_the_identity():
    vq = vq_with([[0.0], [1.0]])
    y = torch.tensor([[0.2, 0.9, 0.7]], requires_grad=True)
    w = torch.tensor([[1.0, -2.0, 3.0]])
    (vq(y) * w).sum().backward()
    assert torch.equal(y.grad, w)


def test_simnorm_is_a_softmax_per_group_with_its_gradient():
    y = torch.tensor([[0.0, 1.0, 2.0, -1.0]], requires_grad=True)  # two groups of two
    z = GroupNorm("simnorm", 2)(y)
    e = torch.e
    hand = [1 / (1 + e), e / (1 + e), e**3 / (1 + e**3), 1 / (1 + e**3)]
    assert z.detach().flatten().tolist() == pytest.approx(hand)
    assert z.detach().unflatten(-1, (2, 2)).sum(-1).flatten().tolist() == pytest.approx([1.0, 1.0])
    w = torch.tensor([[1.0, 0.0, 0.0, 2.0]])
    (z * w).sum().backward()
    # d/dy_j sum_i w_i s_i = s_j (w_j - sum_i w_i s_i), per group
    s = torch.tensor(hand)
    g1 = s[:2] * (w[0, :2] - (w[0, :2] * s[:2]).sum())
    g2 = s[2:] * (w[0, 2:] - (w[0, 2:] * s[2:]).sum())
    assert y.grad.flatten().tolist() == pytest.approx(torch.cat([g1, g2]).tolist(), abs=1e-6)


def test_l2_puts_each_group_on_the_unit_sphere_with_its_gradient():
    y = torch.tensor([[3.0, 4.0, 0.0, -2.0]], requires_grad=True)
    z = GroupNorm("l2", 2)(y)
    assert z.detach().flatten().tolist() == pytest.approx([0.6, 0.8, 0.0, -1.0])
    w = torch.tensor([[1.0, 0.0, 1.0, 1.0]])
    (z * w).sum().backward()
    # d/dy (w . y/|y|) = (w - (w . u) u) / |y|: group 1 u = (0.6, 0.8), |y| = 5; group 2 u = (0, -1), |y| = 2
    g1 = (torch.tensor([1.0, 0.0]) - 0.6 * torch.tensor([0.6, 0.8])) / 5
    g2 = (torch.tensor([1.0, 1.0]) - (-1.0) * torch.tensor([0.0, -1.0])) / 2
    assert y.grad.flatten().tolist() == pytest.approx(torch.cat([g1, g2]).tolist(), abs=1e-6)


TINY = ["agent.mlp_dims=[16,16]", "agent.latent_dim=4", "agent.enc_mlp_dims=[16]", "agent.batch_size=8"]


def build(*extra: str):
    cfg = build_config(["agent=iqrl", "task=cartpole-balance", *TINY, *extra]).agent
    return make_agent(cfg, OBS, ACT, torch.device("cpu"), 0)


@pytest.mark.parametrize(
    "argv, kind, codebook",
    [
        ([], "fsq", 64),
        (["agent.quantizer=vq", "agent.vq_dim=4", "agent.vq_codebook_size=16"], "vq", 16),
        (["agent.quantizer=simnorm", "agent.quant_group_dim=4"], "simnorm", None),
        (["agent.quantizer=l2", "agent.quant_group_dim=4"], "l2", None),
        (["agent.quantizer=none"], "none", None),
        (["agent.use_fsq=false"], "none", None),  # the old spelling
    ],
)
def test_each_quantizer_shapes_iqrls_latent(argv, kind, codebook):
    a = build(*argv)
    assert a.cfg.quantizer_kind == kind and a.codebook_size == codebook
    obs = torch.randn(32, OBS)
    z = a.latent(obs)
    assert z.shape == (32, 8)  # latent_dim 4 x len([8, 8]) for every quantizer
    codes = a.codes(obs)
    if codebook is None:
        assert codes is None
    else:
        assert codes.shape[0] == 32 and int(codes.max()) < codebook
    if kind == "simnorm":
        assert torch.allclose(z.unflatten(-1, (2, 4)).sum(-1), torch.ones(32, 2))
    if kind == "l2":
        assert torch.allclose(z.unflatten(-1, (2, 4)).norm(dim=-1), torch.ones(32, 2))


def test_vq_update_adds_the_commitment_and_moves_the_codebook_and_checkpoints_it():
    from agent_helpers import FixedReplay
    from test_iqrl import batch

    a = build("agent.quantizer=vq", "agent.vq_dim=4", "agent.vq_codebook_size=16")
    before = a.vq.codebook.clone()
    b = batch()
    metrics = a.update(FixedReplay(b), 0)
    assert metrics["vq_commitment"].item() > 0
    assert not torch.equal(a.vq.codebook, before)
    state = (
        a.state_dict()
    )  # the codebook and its EMA statistics are checkpointed (resume: the run test below)
    twin = build("agent.quantizer=vq", "agent.vq_dim=4", "agent.vq_codebook_size=16")
    assert not torch.equal(twin.vq.codebook, a.vq.codebook)
    twin.load_state_dict(state)
    for name in ("codebook", "ema_count", "ema_sum"):
        assert torch.equal(getattr(twin.vq, name), getattr(a.vq, name))


@pytest.mark.parametrize(
    "argv, message",
    [
        (["agent.quantizer=kmeans"], "agent.quantizer must be one of fsq, vq, simnorm, l2, none"),
        (["agent.use_fsq=false", "agent.quantizer=vq"], "use_fsq=false means agent.quantizer=none"),
        (["agent.quantizer=simnorm", "agent.quant_group_dim=3"], "must divide the latent width 8"),
        (["agent.quantizer=vq", "agent.vq_dim=5"], "agent.vq_dim=5 must divide the latent width 8"),
        (["agent.quantizer=vq", "agent.vq_decay=1.0"], "agent.vq_decay in [0, 1)"),
    ],
)
def test_bad_quantizer_settings_are_one_clear_error(argv, message):
    with pytest.raises(
        ConfigError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")
    ):
        build_config(["agent=iqrl", "task=cartpole-balance", *TINY, *argv])


def test_a_vq_run_resumes_bit_identically(tmp_path):
    extra = ["agent.quantizer=vq", "agent.vq_dim=4", "agent.vq_codebook_size=32"]
    ref, run = tmp_path / "ref", tmp_path / "run"
    assert main(tiny_argv("iqrl", ref, seed=2, extra=extra)) == EXIT_OK
    assert main(tiny_argv("iqrl", run, seed=2, extra=extra), should_stop=stop_after_steps(337)) == (
        EXIT_INTERRUPTED
    )
    assert main(tiny_argv("iqrl", run, seed=2, extra=extra)) == EXIT_OK
    assert eval_numbers(run) == eval_numbers(ref)
    rows = (run / "train.csv").read_text().splitlines()
    assert "active_codebook_pct_mean" in rows[0]


def test_a_run_folder_from_before_the_quantizer_keys_resumes(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(tiny_argv("iqrl", run, seed=1), should_stop=stop_after_steps(200)) == EXIT_INTERRUPTED
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    for key in ("quantizer", "quant_group_dim", "vq_codebook_size", "vq_dim", "vq_beta", "vq_decay"):
        del cfg["agent"][key]
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    assert main(tiny_argv("iqrl", run, seed=1)) == EXIT_OK
    assert json.loads((run / "status.json").read_text())["state"] == "done"
    from analysis.runs.load import load_results
    from analysis.runs.repeats import legacy_filled

    table, _ = load_results(tmp_path)
    assert len(table["run"].unique()) == 1
    assert legacy_filled(json.loads(table["config_values"].iloc[0]))["quantizer"] == "fsq"
