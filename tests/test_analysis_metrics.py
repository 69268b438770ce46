"""Scores, rliable estimates, ablation grids and the published-curve selection, on hand-computable data."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis.errors import AnalysisWarning
from analysis.reference.table import DEFAULT_REFERENCE, select_reference
from analysis.runs.load import eval_rows, load_results
from analysis.stats import ablations, metrics
from analysis.stats import estimators as astats

from analysis_helpers import HAND_SCORES, write_hand_results, write_run

REPS = 200


@pytest.fixture
def hand_evals(tmp_path):
    return eval_rows(load_results(write_hand_results(tmp_path))[0])


def test_iqm_matches_scipy_and_rliable():
    from rliable import metrics as rm

    rng = np.random.default_rng(0)
    for shape in [(1, 1), (3, 5), (4, 3), (7, 2), (10, 1)]:
        s = rng.random(shape)
        ours = astats.final_metric_values(s)
        theirs = [
            rm.aggregate_iqm(s),
            rm.aggregate_median(s),
            rm.aggregate_mean(s),
            rm.aggregate_optimality_gap(s),
        ]
        np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-15)
        assert astats.iqm(s) == pytest.approx(stats.trim_mean(s, 0.25, axis=None), rel=1e-12)
    curve = rng.random((3, 4, 6))
    np.testing.assert_allclose(
        astats.iqm_per_step(curve), [rm.aggregate_iqm(curve[..., j]) for j in range(6)], rtol=1e-12
    )


def test_probability_of_improvement_matches_rliable():
    from rliable import metrics as rm

    rng = np.random.default_rng(1)
    x, y = rng.integers(0, 4, (5, 3)).astype(float), rng.integers(0, 4, (3, 3)).astype(float)  # with ties
    assert astats.probability_of_improvement(x, y) == pytest.approx(rm.probability_of_improvement(x, y))
    assert astats.probability_of_improvement(x, x) == pytest.approx(0.5)
    # Hand-computed: x = [2, 0], y = [1] on one task -> 1 of 2 pairs wins -> 1/2; plus a task won outright.
    assert (
        astats.probability_of_improvement(np.array([[2.0, 5.0], [0.0, 6.0]]), np.array([[1.0, 1.0]])) == 0.75
    )


def test_final_estimates_hand_values(hand_evals):
    est = metrics.final_estimates(hand_evals, [100], reps=REPS)
    row = est.table.set_index("metric")
    all_scores = [v for values in HAND_SCORES.values() for v in values]
    assert row.loc["iqm", "value"] == pytest.approx(550.0)
    assert row.loc["iqm", "value"] == pytest.approx(stats.trim_mean(all_scores, 0.25))
    assert row.loc["mean", "value"] == pytest.approx((300 + 450 + 875) / 3)
    assert row.loc["median", "value"] == pytest.approx(450.0)
    assert row.loc["optimality_gap", "value"] == pytest.approx(1000 - (300 + 450 + 875) / 3)
    assert (row["n_tasks"] == 3).all() and (row["n_runs"] == 12).all()
    assert (row["ci_low"] <= row["value"]).all() and (row["value"] <= row["ci_high"]).all()
    assert (row["ci_high"] - row["ci_low"] > 0).all()


def test_bootstrap_reproducible_and_leaves_global_rng_alone(hand_evals):
    np.random.seed(123)
    state = np.random.get_state()[1].copy()
    a = metrics.final_estimates(hand_evals, [100], reps=REPS).table
    b = metrics.final_estimates(hand_evals, [100], reps=REPS).table
    pd.testing.assert_frame_equal(a, b)  # identical numbers, not merely close
    assert np.array_equal(np.random.get_state()[1], state)
    c = metrics.final_estimates(hand_evals, [100], reps=REPS, seed=1).table
    assert not np.array_equal(a["ci_low"].to_numpy(), c["ci_low"].to_numpy())


def test_ci_is_degenerate_when_runs_agree():
    # Every seed of a task has the same score: every resample is the original -> CI = [point, point].
    s = np.array([[0.2, 0.6, 0.9]] * 4)
    point, interval = astats.bootstrap(list(s.T), astats.FINAL_STAT, reps=REPS)
    np.testing.assert_allclose(interval[0], point)
    np.testing.assert_allclose(interval[1], point)
    # IQM of {0.2 x4, 0.6 x4, 0.9 x4}: drop three from each end -> (0.2 + 4 * 0.6 + 0.9) / 6.
    assert point[0] == pytest.approx(3.5 / 6)


def test_score_at_step_rule_and_runs_that_never_reached(tmp_path):
    write_run(tmp_path / "a" / "walker-walk" / "seed0", [(0, 1.0), (40, 2.0), (90, 3.0), (150, 4.0)])
    write_run(tmp_path / "a" / "walker-walk" / "seed1", [(0, 10.0), (100, 20.0)])
    write_run(tmp_path / "a" / "walker-walk" / "seed2", [(0, 5.0), (60, 6.0)], state="running", steps=150)
    with pytest.warns(UserWarning, match="not done"):
        evals = eval_rows(load_results(tmp_path)[0])
    scores, not_reached = metrics.scores_at_step(evals, 100)
    assert scores.set_index("seed")["episode_return"].to_dict() == {0: 3.0, 1: 20.0}  # 90 <= 100, exact 100
    assert scores.set_index("seed")["env_step"].to_dict() == {0: 90, 1: 100}
    assert not_reached[["seed", "last_eval"]].values.tolist() == [[2, 60]]
    est = metrics.final_estimates(evals, [100, 150], reps=REPS)
    assert "at 100 steps, 1 run(s) never reached it and are left out (a: 1)" in est.notes
    assert "at 150 steps, 2 run(s) never reached it and are left out (a: 2)" in est.notes
    iqm = est.table.set_index(["env_step", "metric"])["value"]
    assert iqm[(100, "iqm")] == pytest.approx(11.5) and iqm[(150, "iqm")] == pytest.approx(4.0)
    assert est.table.set_index(["env_step", "metric"]).loc[(100, "iqm"), "n_runs"] == 2


def test_run_first_evaluated_after_the_step_is_counted_as_left_out(tmp_path):
    write_run(tmp_path / "a" / "walker-walk" / "seed0", [(0, 1.0), (100, 2.0)])
    write_run(tmp_path / "a" / "walker-walk" / "seed1", [(150, 5.0), (200, 6.0)])  # first evaluation at 150
    evals = eval_rows(load_results(tmp_path)[0])
    scores, not_reached = metrics.scores_at_step(evals, 100)
    assert scores["seed"].tolist() == [0]
    assert not_reached[["seed", "first_eval", "last_eval"]].values.tolist() == [[1, 150, 200]]
    est = metrics.final_estimates(evals, [100], reps=REPS)
    assert (
        "at 100 steps, 1 run(s) never reached it and are left out (a: 1; 1 first evaluated after it)"
        in est.notes
    )


def test_tasks_with_unequal_runs_use_every_run(tmp_path):
    # walker-walk has 3 runs, cheetah-run 2: all 5 count (no run is dropped to equalise the tasks).
    for seed in range(3):
        write_run(tmp_path / "a" / "walker-walk" / f"seed{seed}", [(0, 0.0), (10, 100.0 * (seed + 1))])
    for seed in (0, 2):
        write_run(tmp_path / "a" / "cheetah-run" / f"seed{seed}", [(0, 0.0), (10, 50.0)])
    est = metrics.final_estimates(eval_rows(load_results(tmp_path)[0]), [10], reps=REPS)
    cols, tasks = est.scores[("a", 10)]
    assert tasks == ["cheetah-run", "walker-walk"]
    assert [c.tolist() for c in cols] == [[0.05, 0.05], [0.1, 0.2, 0.3]]
    row = est.table.set_index("metric")
    allv = [50.0, 50.0, 100.0, 200.0, 300.0]
    assert row.loc["iqm", "value"] == pytest.approx(stats.trim_mean(allv, 0.25))  # (50 + 100 + 200) / 3
    assert row.loc["mean", "value"] == pytest.approx(np.mean([50.0, 200.0]))  # of the per-task means
    assert row.loc["median", "value"] == pytest.approx(np.median([50.0, 200.0]))  # of the per-task means
    assert row.loc["optimality_gap", "value"] == pytest.approx(1000 - np.mean([50.0, 200.0]))
    assert (row["n_runs"] == 5).all() and (row["n_tasks"] == 2).all()
    assert (row["ci_low"] <= row["value"] + 1e-9).all() and (row["value"] <= row["ci_high"] + 1e-9).all()
    assert not any("left out" in n for n in est.notes)


def ragged_cols(rng, counts):
    return [rng.random(n) for n in counts]


def test_ragged_aggregates_equal_pooled_scores_and_ci_is_reproducible():
    rng = np.random.default_rng(3)
    cols = ragged_cols(rng, [1, 3, 5, 2, 4])  # one task with a single run
    allv = np.concatenate(cols)
    point, interval = astats.bootstrap(cols, astats.FINAL_STAT, reps=2000, seed=0)
    expected = [
        stats.trim_mean(allv, 0.25),
        np.median([c.mean() for c in cols]),
        np.mean([c.mean() for c in cols]),
        1.0 - np.mean([np.minimum(c, 1.0).mean() for c in cols]),
    ]
    np.testing.assert_allclose(point, expected, rtol=1e-12)
    assert np.isfinite(interval).all()
    assert (interval[0] <= point).all() and (point <= interval[1]).all() and (interval[1] > interval[0]).all()
    again = astats.bootstrap(cols, astats.FINAL_STAT, reps=2000, seed=0)
    assert np.array_equal(again[0], point) and np.array_equal(
        again[1], interval
    )  # identical, not merely close
    other = astats.bootstrap(cols, astats.FINAL_STAT, reps=2000, seed=1)[1]
    assert not np.array_equal(other, interval)
    # blocks of resamples (memory bound) do not change the numbers
    small = astats.ragged_bootstrap((cols,), astats.FINAL_STAT.pooled, reps=2000, seed=0, chunk=7)
    assert np.array_equal(small[1], interval)
    # IQM alone, and one run on every task: a point without an interval
    assert astats.bootstrap(cols, astats.IQM_STAT, reps=200)[0][0] == pytest.approx(
        stats.trim_mean(allv, 0.25)
    )
    single = astats.bootstrap([np.array([0.3]), np.array([0.5])], astats.FINAL_STAT, reps=200)
    assert single[0][0] == pytest.approx(0.4) and np.isnan(single[1]).all()


def test_stratified_resamples_stay_within_each_task():
    counts = [1, 3, 2]
    idx = astats.stratified_indices(counts, 5000, np.random.default_rng(0))
    assert idx.shape == (5000, 6)
    assert (idx[:, 0] == 0).all()  # the single-run task contributes its score to every resample
    assert ((idx[:, 1:4] >= 1) & (idx[:, 1:4] < 4)).all() and set(np.unique(idx[:, 1:4])) == {1, 2, 3}
    assert ((idx[:, 4:] >= 4) & (idx[:, 4:] < 6)).all() and set(np.unique(idx[:, 4:])) == {4, 5}
    # through the bootstrap: every resample of every task holds only that task's scores
    cols = [np.array([7.0]), np.array([1.0, 2.0, 3.0]), np.array([10.0, 20.0])]
    seen = []

    def record(x):
        seen.append(x[0].copy())
        return x[0][:, :1]

    astats.ragged_bootstrap((cols,), record, reps=300, seed=0)
    resamples = np.concatenate(seen[1:])  # seen[0] is the original (the point estimate)
    assert resamples.shape == (300, 6) and (resamples[:, 0] == 7.0).all()
    assert np.isin(resamples[:, 1:4], cols[1]).all() and np.isin(resamples[:, 4:], cols[2]).all()


def test_pooled_forms_match_rliable_on_balanced_data():
    from rliable import metrics as rm

    rng = np.random.default_rng(4)
    s = rng.random((5, 4))
    cols = list(s.T)
    np.testing.assert_allclose(
        astats.pooled_point((cols,), astats.FINAL_STAT.pooled),
        [rm.aggregate_iqm(s), rm.aggregate_median(s), rm.aggregate_mean(s), rm.aggregate_optimality_gap(s)],
        rtol=1e-12,
    )
    # balanced data still goes through rliable; the numpy bootstrap of the same data gives a close interval
    rl = astats.bootstrap(cols, astats.FINAL_STAT, reps=4000)
    ours = astats.ragged_bootstrap((cols,), astats.FINAL_STAT.pooled, reps=4000)
    np.testing.assert_allclose(ours[0], rl[0], rtol=1e-12)
    np.testing.assert_allclose(ours[1], rl[1], atol=0.02)
    curve = rng.random((3, 4, 6))
    np.testing.assert_allclose(
        astats.pooled_point(([curve[:, t] for t in range(4)],), astats.IQM_PER_STEP_STAT.pooled),
        astats.iqm_per_step(curve),
        rtol=1e-12,
    )


def test_ragged_probability_of_improvement_and_profile():
    from rliable import metrics as rm

    rng = np.random.default_rng(5)
    x = [rng.integers(0, 4, n).astype(float) for n in (2, 3, 1)]  # ties included
    y = [rng.integers(0, 4, n).astype(float) for n in (3, 1, 2)]
    per_task = [rm.probability_of_improvement(a[:, None], b[:, None]) for a, b in zip(x, y)]
    point, interval = astats.bootstrap((x, y), astats.IMPROVEMENT_STAT, reps=500)
    assert point[0] == pytest.approx(np.mean(per_task))
    assert interval[0, 0] <= point[0] <= interval[1, 0]
    # rectangular per method (x 2 runs, y 3 runs on every task): rliable, the same number as the pooled form
    xb, yb = [rng.random(2) for _ in range(3)], [rng.random(3) for _ in range(3)]
    rl = astats.bootstrap((xb, yb), astats.IMPROVEMENT_STAT, reps=200)[0][0]
    assert rl == pytest.approx(astats.pooled_point((xb, yb), astats.IMPROVEMENT_STAT.pooled)[0])
    taus = np.linspace(0, 1, 11)
    cols = ragged_cols(rng, [1, 4, 2])
    prof, ci = metrics.performance_profiles({"a": cols}, taus, reps=300)["a"]
    np.testing.assert_allclose(prof, (np.concatenate(cols)[:, None] > taus).mean(axis=0))
    assert (ci[0] <= prof + 1e-12).all() and (prof <= ci[1] + 1e-12).all()


def test_sample_efficiency_curve_points(tmp_path):
    # Two tasks x two seeds, evaluations at 0/50/100; seed1 of cheetah-run stops at 50.
    write_run(tmp_path / "a" / "walker-walk" / "seed0", [(0, 0.0), (50, 400.0), (100, 800.0)])
    write_run(tmp_path / "a" / "walker-walk" / "seed1", [(0, 0.0), (50, 200.0), (100, 600.0)])
    write_run(tmp_path / "a" / "cheetah-run" / "seed0", [(0, 0.0), (50, 100.0), (100, 300.0)])
    write_run(tmp_path / "a" / "cheetah-run" / "seed1", [(0, 0.0), (50, 300.0)], state="running", steps=100)
    with pytest.warns(UserWarning):
        evals = eval_rows(load_results(tmp_path)[0])
    curve = metrics.sample_efficiency(evals, reps=REPS)
    got = curve[curve["group"] == "all"].set_index("env_step")
    # At 100 one cheetah-run run is left; every run that reached 100 counts: walker 800 and 600, cheetah
    # 300 (IQM of 3 scores trims none), with a band (walker-walk's two runs still vary).
    assert got["iqm"].to_dict() == pytest.approx({0: 0.0, 50: 250.0, 100: (800 + 600 + 300) / 3})
    assert got.loc[100, "n_runs"] == 3 and got.loc[50, "n_runs"] == 4
    assert got[["ci_low", "ci_high"]].notna().all(axis=None)
    assert (got["ci_low"] <= got["iqm"] + 1e-9).all() and (got["iqm"] <= got["ci_high"] + 1e-9).all()
    assert got.loc[100, "ci_low"] < got.loc[100, "ci_high"]
    assert curve["group"].unique().tolist() == ["all", "easy", "medium"]


def test_per_task_curves_mean_and_ci(tmp_path):
    write_run(tmp_path / "a" / "walker-walk" / "seed0", [(0, 0.0), (100, 100.0)])
    write_run(tmp_path / "a" / "walker-walk" / "seed1", [(0, 0.0), (100, 300.0)])
    table = load_results(tmp_path)[0]
    curves = metrics.per_task_curves(table, "episode_return", reps=REPS).set_index("env_step")
    assert curves.loc[100, "mean"] == 200.0 and curves.loc[100, "n"] == 2
    assert 100.0 <= curves.loc[100, "ci_low"] <= 200.0 <= curves.loc[100, "ci_high"] <= 300.0
    assert curves.loc[0, "ci_low"] == curves.loc[0, "ci_high"] == 0.0


def run(variant, overrides, cfg):
    """One run row of sweep `abl` as `ablation_grids` reads it."""
    return {
        "sweep": "abl",
        "agent": "iqrl",
        "variant": variant,
        "method": "iqrl" if variant == "default" else f"iqrl/{variant}",
        "overrides": json.dumps(overrides),
        "config_values": json.dumps(cfg),
    }


def test_ablation_grids_from_overrides_config_and_variant_names():
    runs = pd.DataFrame(
        [
            run("default", {}, {"horizon": "5", "fsq_levels": "8-8"}),
            run("horizon=1", {"horizon": "1"}, {}),
            run("horizon=3", {"horizon": "3"}, {}),
            run("fsq_levels=5-5-5-5", {"fsq_levels": "5-5-5-5"}, {}),
            run("horizon=3,use_fsq=false", {"horizon": "3", "use_fsq": "false"}, {}),
        ]
    )
    grids = {g.key: g for g in ablations.ablation_grids(runs)}
    assert sorted(grids) == ["fsq_levels", "horizon"]  # use_fsq takes one value only
    h = grids["horizon"].points
    assert sorted(zip(h["value"], h["context"], h["method"])) == [
        ("1", "", "iqrl/horizon=1"),
        ("3", "", "iqrl/horizon=3"),
        ("3", "use_fsq=false", "iqrl/horizon=3,use_fsq=false"),
        ("5", "", "iqrl"),
    ]
    assert sorted(grids["fsq_levels"].points["value"], key=ablations.value_sort_key) == ["8-8", "5-5-5-5"]
    assert ablations.is_numeric(["1", "3", "5"]) and not ablations.is_numeric(["8-8", "5-5-5-5"])


def test_list_values_ordered_by_codebook_size():
    # ablations/fsq_levels.yaml's layouts: by the product of the levels (ties: fewer levels first), not as
    # text
    levels = ["8-8-8-8", "16-16", "2-2-2-2", "8-5-5-5", "4-4", "4-4-4", "8-8", "32-32", "8-6-5", "4-4-4-4"]
    assert sorted(levels, key=ablations.value_sort_key) == [
        "4-4",
        "2-2-2-2",
        "8-8",
        "4-4-4",
        "8-6-5",
        "16-16",
        "4-4-4-4",
        "8-5-5-5",
        "32-32",
        "8-8-8-8",
    ]
    # numbers first (by value), then lists, then text
    assert sorted(["default (8-8/4-4)", "4-4", "10", "2"], key=ablations.value_sort_key) == [
        "2",
        "10",
        "4-4",
        "default (8-8/4-4)",
    ]


def test_ablation_default_variant_set_per_task_is_not_placed_at_one_value():
    """The default variant's use_projection is true on one task and false on another (task overrides): it is
    labelled with both, not with the value of whichever run came first."""
    runs = pd.DataFrame(
        [
            run("default", {}, {"use_projection": "false"}),  # cheetah-run
            run("default", {}, {"use_projection": "true"}),  # fish-swim
            run("use_projection=true", {"use_projection": "true"}, {}),
            run("use_projection=false", {"use_projection": "false"}, {}),
        ]
    )
    (grid,) = ablations.ablation_grids(runs)
    assert sorted(grid.points["value"]) == ["default (false/true)", "false", "true"]


def test_select_reference_rows():
    ref = pd.DataFrame(
        {
            "source": ["s1", "s1", "s1", "s2", "s1", "s1", "s1"],
            "algorithm": ["SAC", "SAC", "SAC", "SAC", "SAC", "X", "SAC"],
            "ablation": ["", "", "", "", "study:arm", "", ""],
            "task": ["walker-walk"] * 5 + ["walker-walk", "cheetah-run"],
            "env_step": [0, 0, 1000, 0, 0, 5000, 0],
            "seed": [1, 2, 1, 1, 1, 1, 1],
            "episode_return": [10.0, 30.0, 50.0, 7.0, 999.0, 1.0, 3.0],
        }
    )
    out = select_reference(ref, ["walker-walk"], max_step=1000)
    assert out[["label", "env_step", "mean", "n_seeds"]].values.tolist() == [
        ["SAC [s1]", 0, 20.0, 2],
        ["SAC [s1]", 1000, 50.0, 1],
        ["SAC [s2]", 0, 7.0, 1],
    ]


def test_select_reference_interpolates_seeds_evaluated_at_other_steps():
    ref = pd.DataFrame(
        {
            "source": "s",
            "algorithm": "A",
            "ablation": "",
            "task": "walker-walk",
            "env_step": [0, 100, 200, 0, 200, 300],
            "seed": [1, 1, 1, 2, 2, 2],
            "episode_return": [0.0, 100.0, 200.0, 0.0, 400.0, 500.0],
        }
    )
    out = select_reference(ref, ["walker-walk"])
    # step 100: seed 2 interpolated to 200 -> (100 + 200) / 2; step 300 is past seed 1's last step
    assert out[["env_step", "mean", "n_seeds"]].values.tolist() == [
        [0, 0.0, 2],
        [100, 150.0, 2],
        [200, 300.0, 2],
        [300, 500.0, 1],
    ]
    # std: the seeds' sample standard deviation at each step (200 +- 100 x sqrt(2)), 0 for one seed
    assert out["std"].round(6).tolist() == [0.0, round(50 * 2**0.5, 6), round(100 * 2**0.5, 6), 0.0]


def test_select_reference_on_published_file():
    ref = pd.read_csv(DEFAULT_REFERENCE, dtype={"ablation": str}, keep_default_na=False)
    out = select_reference(ref, ["walker-walk"])
    assert set(out["task"]) == {"walker-walk"}
    labels = set(out["label"])
    # SAC appears in two sources and must stay two curves; DCWM's ablation arms must not appear.
    assert {"SAC [tdmpc2-results]", "SAC [iqrl-icml24-draft]", "iQRL [iqrl-icml24-draft]"} <= labels
    main = ref[(ref["task"] == "walker-walk") & (ref["ablation"] == "")]
    assert len(labels) == main.groupby(["source", "algorithm"]).ngroups


def test_ablation_notes_runs_left_out_and_other_task_sets(tmp_path):
    def cfg(horizon):
        return {
            "agent": {"name": "iqrl", "horizon": horizon},
            "sweep": "abl",
            "seed": 0,
            "variant": "default" if horizon == 5 else f"horizon={horizon}",
            "overrides": [] if horizon == 5 else [f"agent.horizon={horizon}"],
        }

    for h in (1, 5):
        for task, ret in (("walker-walk", 800.0), ("dog-run", 100.0)):
            for seed in range(2):
                c = {**cfg(h), "task": task, "seed": seed}
                last = 50 if (h == 5 and task == "dog-run") else 100  # horizon 5 on dog-run still running
                write_run(
                    tmp_path / "abl" / "iqrl" / task / c["variant"] / f"seed{seed}",
                    [(0, 0.0), (last, ret)],
                    config=c,
                    state="done" if last == 100 else "running",
                    steps=100,
                )
    with pytest.warns(AnalysisWarning, match="2 run\\(s\\) not done \\(2 running\\)"):
        evals = eval_rows(load_results(tmp_path)[0])
    runs = evals.drop_duplicates("run")
    (grid,) = ablations.ablation_grids(runs)
    points, step, notes = ablations.ablation_estimates(evals, grid, [100], reps=50)
    assert step == 100
    iqm = dict(zip(points["value"], points["iqm"]))
    assert iqm == pytest.approx({"1": 450.0, "5": 800.0}) and dict(
        zip(points["value"], points["n_tasks"])
    ) == {"1": 2, "5": 1}
    assert any("2 run(s) never reached it" in n and "iqrl: 2" in n for n in notes)
    assert any("different task sets" in n for n in notes)


def test_ablation_grid_ignores_overrides_every_variant_shares():
    # a sweep's `fixed: {eval_every: 10000}` lands in every variant's overrides, the default's too
    runs = pd.DataFrame(
        [
            run("default", {"eval_every": "10000"}, {"use_fsq": "true", "eval_every": "10000"}),
            run("use_fsq=false", {"use_fsq": "false", "eval_every": "10000"}, {}),
        ]
    )
    (grid,) = ablations.ablation_grids(runs)
    assert grid.key == "use_fsq"
    assert sorted(zip(grid.points["value"], grid.points["context"])) == [("false", ""), ("true", "")]


def test_method_order_iqrl_first_and_numbers_by_value():
    methods = ["td3", "iqrl/horizon=10", "iqrl/horizon=2", "iqrl", "dcwm", "iqrl/horizon=1,rho=0.5"]
    assert metrics.method_order(methods) == [
        "iqrl",
        "iqrl/horizon=1,rho=0.5",
        "iqrl/horizon=2",
        "iqrl/horizon=10",
        "dcwm",
        "td3",
    ]


def test_final_estimates_note_methods_on_different_task_sets(tmp_path):
    write_hand_results(tmp_path)  # method a on 3 tasks
    write_run(tmp_path / "s" / "b" / "walker-walk" / "default" / "seed0", [(0, 0.0), (100, 50.0)])
    notes = metrics.final_estimates(eval_rows(load_results(tmp_path)[0]), [100], reps=REPS).notes
    assert any("methods average different task sets (tasks per method: a: 3, b: 1)" in n for n in notes)
    same = metrics.final_estimates(
        eval_rows(load_results(write_hand_results(tmp_path / "h"))[0]), [100], reps=REPS
    )
    assert not any("different task sets" in n for n in same.notes)


def test_ablation_latent_rank_is_the_iqm_of_each_runs_last_rank_up_to_the_step():
    """Point a: last ranks 10, 20, 30, 40 at step 1000 (a later row at 2000 is ignored): IQM of four values
    = mean of the middle two = 25. Point b: 5, 5, 5, 5 -> 5 with a zero-width CI."""
    rows = []
    for method, ranks in (("iqrl", [10, 20, 30, 40]), ("iqrl/quantizer=vq", [5, 5, 5, 5])):
        for seed, r in enumerate(ranks):
            run = f"s/{method}/seed{seed}"
            rows += [
                {
                    "run": run,
                    "sweep": "s",
                    "method": method,
                    "task": "walker-walk",
                    "seed": seed,
                    "env_step": 500,
                    "latent_rank": 99.0,
                },
                {
                    "run": run,
                    "sweep": "s",
                    "method": method,
                    "task": "walker-walk",
                    "seed": seed,
                    "env_step": 1000,
                    "latent_rank": float(r),
                },
                {
                    "run": run,
                    "sweep": "s",
                    "method": method,
                    "task": "walker-walk",
                    "seed": seed,
                    "env_step": 2000,
                    "latent_rank": 1.0,
                },
            ]
    table = pd.DataFrame(rows)
    points = pd.DataFrame(
        [
            {"method": "iqrl", "value": "fsq", "context": ""},
            {"method": "iqrl/quantizer=vq", "value": "vq", "context": ""},
        ]
    )
    grid = ablations.AblationGrid("s", "iqrl", "quantizer", points)
    out, _ = ablations.ablation_diagnostic_estimates(table, grid, 1000, reps=200)
    got = dict(zip(out["value"], out["iqm"]))
    assert got == pytest.approx({"fsq": 25.0, "vq": 5.0})
    vq = out[out["value"] == "vq"].iloc[0]
    assert vq.ci_low == vq.ci_high == 5.0 and list(out["n_runs"]) == [4, 4]
    # any other diagnostic column the same way: srank = rank / 5 here
    srank, _ = ablations.ablation_diagnostic_estimates(
        table.assign(latent_srank=table["latent_rank"] / 5), grid, 1000, reps=200, column="latent_srank"
    )
    assert dict(zip(srank["value"], srank["iqm"])) == pytest.approx({"fsq": 5.0, "vq": 1.0})
    none, notes = ablations.ablation_diagnostic_estimates(table, grid, 1000, reps=200, column="latent_erank")
    assert none.empty and notes == []  # no run logs it


def test_seeds_needed_for_the_iqm_difference_to_exclude_zero():
    """Arms apart by more than their spread: 2 seeds each resolve it; identical arms: never; a smaller
    effect in the same spread needs at least as many seeds as a larger one."""
    from analysis.stats.estimators import seeds_needed

    base = np.array([0.0, 1.0, 2.0, 3.0])
    assert seeds_needed(base + 10, base, reps=500) == 2
    assert seeds_needed(base, base, reps=500, most=12) is None
    small, large = seeds_needed(base + 1.0, base, reps=500), seeds_needed(base + 2.0, base, reps=500)
    assert small is not None and large is not None and 2 < large < small


def test_seeds_needed_rows_pair_the_grids_values_per_task():
    """Two FSQ arms of 2 seeds on one task, returns at step 1000 (a later row ignored): one row for the pair,
    with each arm's seeds and IQM and `seeds_needed` of exactly those scores."""
    from analysis.stats.estimators import seeds_needed

    returns = {"iqrl": [800.0, 820.0], "iqrl/fsq_levels=5-5": [600.0, 650.0]}
    rows = [
        {"run": f"{m}/{s}", "sweep": "s", "method": m, "task": "walker-walk", "group": "", "seed": s}
        | {"env_step": step, "episode_return": r + step / 1000 - 1}
        for m, rs in returns.items()
        for s, r in enumerate(rs)
        for step in (1000, 2000)
    ]
    points = pd.DataFrame(
        [
            {"method": "iqrl", "value": "8-8", "context": ""},
            {"method": "iqrl/fsq_levels=5-5", "value": "5-5", "context": ""},
        ]
    )
    grid = ablations.AblationGrid("s", "iqrl", "fsq_levels", points)
    out = ablations.seeds_needed_rows(pd.DataFrame(rows), grid, 1000, "episode_return", reps=300)
    assert out.drop(columns="seeds_needed").to_dict("records") == [
        {"context": "", "task": "walker-walk", "a": "8-8", "b": "5-5", "seeds_a": 2, "seeds_b": 2}
        | {"iqm_a": 810.0, "iqm_b": 625.0}
    ]
    want = seeds_needed(np.array(returns["iqrl"]), np.array(returns["iqrl/fsq_levels=5-5"]), 300)
    assert out["seeds_needed"].tolist() == [want] and want == 2


def test_seeds_needed_rows_pair_each_value_once_where_contexts_share_it():
    """latent_dim 16 and 32 beside layout [8,5,5,5], 32 alone beside [8,8]: one pair (16, 32) in the first
    context and none in the second (a value shared by two contexts is not paired with itself)."""
    methods = {"iqrl/a16": ("8-5-5-5", "16"), "iqrl/a32": ("8-5-5-5", "32"), "iqrl/b32": ("8-8", "32")}
    rows = [
        {"run": f"{m}/{s}", "sweep": "s", "method": m, "task": "t", "group": "", "seed": s}
        | {"env_step": 1000, "episode_return": 100.0 * s + len(m)}
        for m in methods
        for s in range(2)
    ]
    points = pd.DataFrame([{"method": m, "value": v, "context": c} for m, (c, v) in methods.items()])
    grid = ablations.AblationGrid("s", "iqrl", "latent_dim", points)
    out = ablations.seeds_needed_rows(pd.DataFrame(rows), grid, 1000, "episode_return", reps=100)
    assert out[["context", "a", "b"]].to_dict("records") == [{"context": "8-5-5-5", "a": "16", "b": "32"}]
