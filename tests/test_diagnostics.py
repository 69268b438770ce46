"""Latent rank (three tolerances) and active codebook share against hand-computed cases; the trainer's
diagnostics batch; the collapse guard (train.csv column latent_collapsed, one run-log warning)."""

import pytest
import torch

from iqrl.core.diagnostics import active_codebook, latent_collapsed, numerical_rank, rank_metrics


def matrix_with_singular_values(sv, n=8, d=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    u, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    s = torch.zeros(n, d, dtype=torch.float64)
    for i, x in enumerate(sv):
        s[i, i] = x
    return u @ s @ v.T


def test_rank_at_three_tolerances():
    z = matrix_with_singular_values([10.0, 1.0, 0.05, 0.005, 1e-4, 0.0])
    # threshold = max(eps, eps * sigma_max) = 10 * eps here
    assert numerical_rank(z, 1e-1) == 1  # > 1.0: only 10 (1.0 is not above 1.0)
    assert numerical_rank(z, 1e-2) == 2  # > 0.1
    assert numerical_rank(z, 1e-3) == 3  # > 0.01
    m = rank_metrics(z)
    assert (m["latent_rank_tol1e-1"], m["latent_rank_tol1e-2"], m["latent_rank_tol1e-3"]) == (1, 2, 3)
    assert m["latent_rank"] == 2 and m["latent_rank_pct"] == pytest.approx(100 * 2 / 6)


def test_rank_threshold_is_absolute_for_small_matrices():
    # sigma_max < 1: the threshold is eps itself, not eps * sigma_max
    z = matrix_with_singular_values([0.5, 0.05, 0.02])
    assert numerical_rank(z, 1e-2) == 3  # all > 0.01
    assert numerical_rank(z, 1e-1) == 1  # 0.05 and 0.02 are below 0.1 (not below 0.05)


def test_rank_of_full_and_collapsed_latents():
    full = torch.eye(5)
    assert rank_metrics(full)["latent_rank"] == 5 and rank_metrics(full)["latent_cond"] == pytest.approx(1.0)
    collapsed = torch.ones(7, 5)  # every row the same vector
    assert rank_metrics(collapsed)["latent_rank"] == 1


def test_active_codebook_per_group():
    # 4 samples, 3 groups, K = 4 codes
    idx = torch.tensor([[0, 1, 3], [0, 2, 3], [0, 3, 3], [0, 0, 2]])
    m = active_codebook(idx, 4)
    # group 0 uses {0} = 25 %, group 1 uses {0,1,2,3} = 100 %, group 2 uses {2,3} = 50 %
    assert m["active_codebook_pct_min"] == 25.0
    assert m["active_codebook_pct_max"] == 100.0
    assert m["active_codebook_pct_mean"] == pytest.approx((25 + 100 + 50) / 3)


def test_trainer_diagnostics_batch_is_drawn_without_replacement(tmp_path):
    """n = latent width (16) distinct stored observations: the diagnostics see each exactly once, drawn
    with the diagnostics' generator only (the training generator and the global RNG are untouched)."""
    from iqrl.config.build import build_config
    from iqrl.loop.latent_probe import probe_latent
    from iqrl.loop.trainer import Trainer

    from conftest import tiny_argv

    t = Trainer(build_config(tiny_argv("iqrl", tmp_path / "run")))
    n = t.agent.latent_width
    assert n == 16
    obs = torch.zeros(n + 1, t.env.obs_dim)
    obs[:, 0] = torch.arange(n + 1.0)
    t.replay.start_episode(obs[0])
    for i in range(n):
        t.replay.add(torch.zeros(t.env.act_dim), 0.0, obs[i + 1], False, i == n - 1)
    seen, latent = [], t.agent.latent
    t.agent.latent = lambda o: seen.append(o.clone()) or latent(o)
    train_state, torch_state = t.replay.generator.get_state(), torch.get_rng_state()
    out = probe_latent(t.agent, t.replay, t.diag_generator)
    assert (
        "latent_rank" in out and out["latent_collapsed"] == 0
    )  # the initial encoder's latent is not collapsed
    batch = seen[-1]
    assert sorted(batch[:, 0].tolist()) == list(range(n))  # o_0 .. o_15, each once
    assert torch.equal(t.replay.generator.get_state(), train_state)
    assert torch.equal(torch.get_rng_state(), torch_state)


def test_latent_collapsed_by_rank_or_one_code_per_group():
    K = 64
    codes = active_codebook(torch.tensor([[3, 5], [3, 5], [3, 5]]), K)  # one code in each of 2 groups
    assert codes["active_codebook_pct_max"] == 100 / 64
    assert latent_collapsed({"latent_rank": 1.0, **codes}, K)  # constant nonzero latent: rank 1, one code
    assert latent_collapsed({"latent_rank": 0.0}, None)  # a ~zero latent, quantized or not
    two = active_codebook(torch.tensor([[3, 5], [3, 6], [3, 5]]), K)  # group 1 uses 2 codes
    assert not latent_collapsed({"latent_rank": 1.0, **two}, K)
    assert not latent_collapsed({"latent_rank": 1.0}, None)  # unquantized: only rank 0 counts


def test_collapsed_latent_is_recorded_and_warned_once(tmp_path, capsys):
    """A constant latent (encoder frozen at zero: every observation gets the code 0): every train.csv row
    records latent_collapsed = 1, the run log warns once, at the first such row."""
    import csv

    from iqrl.config.build import build_config
    from iqrl.loop.latent_probe import collapse_warning
    from iqrl.loop.trainer import Trainer

    from conftest import tiny_argv

    t = Trainer(build_config(tiny_argv("iqrl", tmp_path / "run", steps=800)))
    for p in t.agent.encoder.parameters():
        torch.nn.init.zeros_(p)
        p.requires_grad_(False)
    assert t.run() == 0
    rows = list(csv.DictReader((tmp_path / "run" / "train.csv").open()))
    assert [r["env_step"] for r in rows] == ["400", "800"]
    assert [r["latent_collapsed"] for r in rows] == ["1", "1"] and rows[0]["latent_rank"] == "0.0"
    warnings = [line for line in capsys.readouterr().out.splitlines() if "warning: collapsed latent" in line]
    assert len(warnings) == 1 and "at env_step 400 (latent rank 0" in warnings[0]
    assert collapse_warning(t.train_rows) is None  # the run's later rows do not warn again


def test_srank_and_entropy_rank_of_known_spectra():
    from iqrl.core.diagnostics import entropy_rank, singular_values, srank

    flat = singular_values(torch.diag(torch.ones(4, dtype=torch.float64)))
    assert srank(flat) == 4 and entropy_rank(flat) == pytest.approx(4.0)
    # cumulative shares 0.8, 0.95, 0.99, 1: three reach 1 - 0.01 (exactly), two 1 - 0.05, one 1 - 0.2
    sv = singular_values(torch.diag(torch.tensor([80.0, 15.0, 4.0, 1.0], dtype=torch.float64)))
    assert [srank(sv, d) for d in (0.01, 0.05, 0.2, 0.001)] == [3, 2, 1, 4] and srank(sv) == 3
    p = torch.tensor([0.8, 0.15, 0.04, 0.01], dtype=torch.float64)
    assert entropy_rank(sv) == pytest.approx(float(torch.exp(-(p * p.log()).sum())))
    one = singular_values(torch.diag(torch.tensor([3.0, 0.0, 0.0])))
    assert srank(one) == 1 and entropy_rank(one) == pytest.approx(1.0)
    assert srank(torch.zeros(3)) == 0 and entropy_rank(torch.zeros(3)) == 0.0


def test_dormant_fractions_of_a_crafted_layer():
    from iqrl.core.diagnostics import dormant_fraction

    # 5 units over 2 samples: mean |h| per unit 0, 1/16, 1, 31/16, 2 -> layer mean 1 (all exact in binary)
    h = torch.tensor([[0.0, 0.125, 1.0, -1.875, 2.0], [0.0, 0.0, -1.0, 2.0, 2.0]])
    assert dormant_fraction(h, 0.0) == pytest.approx(1 / 5)  # the silent unit
    assert dormant_fraction(h, 0.1) == pytest.approx(2 / 5)  # and the one at 1/16 of the layer's mean
    assert dormant_fraction(h, 1.0) == pytest.approx(3 / 5)  # score exactly tau counts as dormant
    assert dormant_fraction(torch.zeros(3, 4), 0.0) == 1.0


def test_linear_probe_r2_of_exact_and_noisy_maps():
    """The ridge probe: an exact linear map (with offset and an arbitrary scale per feature) scores 1;
    y = x w + e with var(x w) = 1 and var(e) = sigma^2 = 1/4 scores 1 - sigma^2 / var(y) = 1 - 0.25 / 1.25 =
    0.8; a target independent of x about 0; none to explain: nan."""
    from iqrl.core.diagnostics import ridge_r2

    g = torch.Generator().manual_seed(0)
    x = torch.randn(4000, 6, generator=g, dtype=torch.float64) * torch.tensor([1.0, 10, 0.1, 1, 100, 1])
    w = torch.randn(6, 3, generator=g, dtype=torch.float64)
    assert ridge_r2(x, x @ w + 2.0) == pytest.approx(1.0, abs=1e-6)
    w1 = torch.tensor([[0.6], [0.8], [0.0], [0.0], [0.0], [0.0]], dtype=torch.float64)
    y = (x / x.std(0)) @ w1 + 0.5 * torch.randn(4000, 1, generator=g, dtype=torch.float64)
    assert ridge_r2(x, y) == pytest.approx(0.8, abs=0.02)
    noise = torch.randn(4000, 1, generator=g, dtype=torch.float64)
    assert ridge_r2(x, noise) == pytest.approx(0, abs=0.01)
    assert torch.isnan(torch.tensor(ridge_r2(x, torch.ones(4000, 2))))


def test_linear_probe_skips_constant_dimensions_and_keeps_constant_features():
    """A state dimension constant on the fit or the scored rows is not averaged in (an exact column and two
    constant ones: 1, not 1/3); a constant feature (a dormant unit) leaves the fit solvable and exact."""
    from iqrl.core.diagnostics import probe_fit_rows, ridge_r2

    x = torch.randn(1000, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    scored_constant = torch.where(probe_fit_rows(1000), x[:, 1], torch.tensor(0.5, dtype=torch.float64))
    y = torch.stack([x[:, 0] - x[:, 2], torch.full((1000,), 3.0, dtype=torch.float64), scored_constant], 1)
    assert ridge_r2(x, y) == pytest.approx(1.0, abs=1e-6)
    x[:, 3] = 7.0
    assert ridge_r2(x, y[:, :1]) == pytest.approx(1.0, abs=1e-6)


def test_linear_probe_fits_the_even_blocks_and_scores_the_odd():
    """Rows 0..63, 128..191, ... are fit (blocks of PROBE_BLOCK = 64), rows 64..127, ... scored: with y = x w
    on the fit rows and x w' on the scored ones, the probe learns w alone, so its R^2 is the hand-computed one
    of x w as a prediction of x w' on the scored rows (and swapping the maps, that of x w' predicting x w), to
    the ridge's shrinkage (1e-4 of the fit)."""
    from iqrl.core.diagnostics import PROBE_BLOCK, probe_fit_rows, ridge_r2

    assert PROBE_BLOCK == 64
    fit = probe_fit_rows(1000)
    assert fit[:64].all() and not fit[64:128].any() and fit[128:192].all() and int(fit.sum()) == 512
    g = torch.Generator().manual_seed(3)
    x = torch.randn(1000, 3, generator=g, dtype=torch.float64)
    w, w2 = (
        torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64),
        torch.tensor([1.0, -1.0, 1.0], dtype=torch.float64),
    )

    def r2(pred, target):
        return float(1 - ((target - pred) ** 2).sum() / ((target - target.mean()) ** 2).sum())

    scored = x[~fit]
    y = torch.where(fit, x @ w, x @ w2)[:, None]
    assert ridge_r2(x, y) == pytest.approx(r2(scored @ w, scored @ w2), abs=1e-3)
    swapped = torch.where(fit, x @ w2, x @ w)[:, None]
    assert ridge_r2(x, swapped) == pytest.approx(r2(scored @ w2, scored @ w), abs=1e-3)
    assert r2(scored @ w, scored @ w2) != pytest.approx(r2(scored @ w2, scored @ w), abs=0.1)


def test_codebook_perplexity_of_uniform_and_one_hot_usage():
    from iqrl.core.diagnostics import codebook_perplexity

    # group 0 uses 4 codes equally, group 1 one code, group 2 two codes equally (K = 8)
    idx = torch.tensor([[0, 5, 1], [1, 5, 2], [2, 5, 1], [3, 5, 2]])
    m = codebook_perplexity(idx, 8)
    assert m["codebook_perplexity_min"] == pytest.approx(1.0)
    assert m["codebook_perplexity_mean"] == pytest.approx((4 + 1 + 2) / 3)


def test_prediction_error_of_identity_and_opposite_models():
    from iqrl.core.diagnostics import prediction_error

    z = torch.randn(3, 5, 4, generator=torch.Generator().manual_seed(1))
    same = prediction_error(z, z.clone())
    assert sorted(same) == sorted(f"latent_pred_{m}_k{k}" for m in ("cos", "mse") for k in (1, 2, 3))
    assert all(v == pytest.approx(0.0, abs=1e-12) for v in same.values())
    opposite = prediction_error(-z, z)  # cosine distance 2, squared error (2z)^2
    assert opposite["latent_pred_cos_k2"] == pytest.approx(2.0)
    assert opposite["latent_pred_mse_k1"] == pytest.approx(float((4 * z[0].double() ** 2).mean()))


def test_q_bias_against_a_hand_computed_discounted_sum():
    """gamma 0.1 (tail horizon H = 2): an episode cut at its time limit scores the steps with >= 2 steps
    left, one that terminated scores every step; the episodes' scored steps pooled."""
    from iqrl.core.diagnostics import discounted_returns, q_bias, scored_steps, tail_horizon

    r = torch.tensor([1.0, 0.0, 2.0, 4.0])
    # G_3 = 4, G_2 = 2 + 0.1 * 4 = 2.4, G_1 = 0 + 0.1 * 2.4 = 0.24, G_0 = 1 + 0.1 * 0.24 = 1.024
    assert discounted_returns(r, 0.1).tolist() == pytest.approx([1.024, 0.24, 2.4, 4.0])
    assert [tail_horizon(g) for g in (0.1, 0.5, 0.99, 1.0)] == [
        2,
        7,
        459,
        float("inf"),
    ]  # 0.5^7 < 0.01 < 0.5^6
    q = torch.tensor([2.024, 0.24, 1.4, 9.0], dtype=torch.float64)  # biases 1, 0, -1, 5
    cut = q_bias([q], [r], 0.1, [False])  # steps 0..2 scored: 4 - t >= 2
    assert cut["q_bias_steps"] == 3 and cut["q_bias_mean"] == pytest.approx(0.0, abs=1e-12)
    assert cut["q_bias_std"] == pytest.approx((2 / 3) ** 0.5)
    assert cut["q_mean"] == pytest.approx(3.664 / 3) and cut["q_return_mean"] == pytest.approx(3.664 / 3)
    assert cut["q_bias_norm_std"] == pytest.approx((2 / 3) ** 0.5 / (3.664 / 3))  # REDQ: over |mean G|
    ended = q_bias([q], [r], 0.1, [True])  # every step: biases 1, 0, -1, 5
    assert ended["q_bias_steps"] == 4 and ended["q_bias_mean"] == pytest.approx(1.25)
    pooled = q_bias([q, torch.tensor([1.0])], [r, torch.tensor([3.0])], 0.1, [False, True])
    assert pooled["q_bias_mean"] == pytest.approx(-0.5) and pooled["q_bias_std"] == pytest.approx(1.25**0.5)
    # one step left of a cut episode (< H), and gamma 1 (no horizon is enough): nothing scored
    assert q_bias([q[:1]], [r[:1]], 0.1, [False]) == {"q_bias_steps": 0}
    assert q_bias([q], [r], 1.0, [False]) == {"q_bias_steps": 0}
    assert q_bias([q], [r], 1.0, [True])["q_return_mean"] == pytest.approx((7 + 6 + 6 + 4) / 4)
    # docs/diagnostics.md: of 500 agent steps cut by time at gamma 0.99, the first 42 are scored
    assert len(scored_steps(torch.zeros(500), torch.zeros(500), 0.99, False)[0]) == 500 - 459 + 1 == 42
