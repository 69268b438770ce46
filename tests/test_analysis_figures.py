"""End to end: `python -m analysis.figures.make` on the synthetic results folder (known returns)."""

from __future__ import annotations

import contextlib
import io
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis.figures import make as figures
from analysis.figures import pooled as figures_pooled
from analysis.figures.tables import SCORE_COLUMNS, scores_table
from analysis.runs import synthetic
from analysis.runs.load import eval_rows, load_results
from analysis.runs.synthetic import TASKS, synthetic_return
from analysis.stats import metrics

from analysis_helpers import documented_outputs, undocumented, write_hand_results, write_run

REPO = Path(__file__).resolve().parents[1]
FAST = ["--reps-curve", "200", "--reps-final", "500"]
EXPECTED_FIGURES = [
    "sample_efficiency",
    "final_intervals_100k",
    "final_intervals_500k",
    "performance_profiles_100k",
    "performance_profiles_500k",
    "probability_of_improvement_100k",
    "probability_of_improvement_500k",
    "per_task_curves",
    "latent_rank",
    "active_codebook",
    "ablation_horizon_iqrl_horizon",
    "ablation_horizon_iqrl_horizon_latent_rank",
    "ablation_fsq_iqrl_fsq_levels",
    "ablation_fsq_iqrl_fsq_levels_latent_rank",
    # the representation diagnostics (docs/diagnostics.md) the synthetic iqrl runs log
    *(
        f"{prefix}{column}"
        for column in ("latent_srank", "encoder_dormant_tau0.1", "latent_pred_cos_k1")
        for prefix in ("", "ablation_horizon_iqrl_horizon_", "ablation_fsq_iqrl_fsq_levels_")
    ),
]


def run_cli(argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = figures.main([str(a) for a in argv])
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    results, out = root / "results", root / "figs"
    manifest = synthetic.make_synthetic_results(results)
    ref = pd.DataFrame(
        {
            "source": "paper-x",
            "algorithm": "SAC",
            "ablation": ["", "", "arm:1"],
            "task": "walker-walk",
            "env_step": [0, 100_000, 0],
            "seed": 1,
            "episode_return": [0.0, 500.0, 1.0],
        }
    )
    ref.to_csv(root / "ref.csv.gz", index=False)
    before = sorted((p.relative_to(results), p.stat().st_mtime_ns) for p in results.rglob("*"))
    rc, stdout, stderr = run_cli(
        ["--results", results, "--out", out, "--reference", root / "ref.csv.gz", *FAST]
    )
    after = sorted((p.relative_to(results), p.stat().st_mtime_ns) for p in results.rglob("*"))
    return {
        "manifest": manifest,
        "out": out,
        "rc": rc,
        "stdout": stdout,
        "stderr": stderr,
        "results_unchanged": before == after,
        "results": results,
    }


def test_cli_writes_every_figure_and_table(synthetic_run):
    assert synthetic_run["rc"] == 0, synthetic_run["stderr"]
    out = synthetic_run["out"]
    for name in EXPECTED_FIGURES:
        png, pdf = out / f"{name}.png", out / f"{name}.pdf"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000, name
        assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 5_000, name
    assert sorted(p.stem for p in out.glob("*.png")) == sorted(EXPECTED_FIGURES)
    for name in ("scores.csv", "scores.md", "scores.tex"):
        assert (out / name).stat().st_size > 0
    assert synthetic_run["results_unchanged"]  # nothing written under RESULTS
    assert synthetic_run["stdout"].startswith(f"wrote {len(EXPECTED_FIGURES)} figures (PNG+PDF) and 3 tables")


def test_every_output_is_in_the_page_of_figures_and_every_name_there_is_written_by_the_code(synthetic_run):
    """docs/figures.md's table of outputs cannot go stale: a file `make figures` writes that the table lacks
    fails here (the transfer figures: tests/test_transfer.py), and so does a name of the table that no code of
    analysis/ spells (its part before the first `<...>`)."""
    files = [p for p in synthetic_run["out"].iterdir() if p.is_file()]
    names = {p.stem if p.suffix in (".png", ".pdf") else p.name for p in files}
    assert "index.html" in names and "ablation_fsq_iqrl_fsq_levels_latent_rank" in names
    assert not undocumented(names), "make figures writes files docs/figures.md does not list"
    code = "".join(p.read_text() for p in (REPO / "analysis").rglob("*.py"))
    heads = {re.split(r"[<./]", name)[0].rstrip("_") for name in documented_outputs()}
    assert not {h for h in heads if f'"{h}' not in code and f"{{name}}_{h}" not in code}


def test_cli_warnings(synthetic_run):
    err = synthetic_run["stderr"]
    assert "warning: 2 run(s) not done (1 failed, 1 running) included up to their last evaluation" in err
    assert "warning: no run reached 1M env steps" in err
    assert "warning: at 500k steps, 2 run(s) never reached it and are left out (tcrl: 1, td3: 1)" in err
    assert "left out so that every task has" not in err


def _expected(agent, runs, step, factor=1.0):
    """IQM / median / mean / optimality gap of synthetic_return over (task, seed) runs, by hand: IQM over all
    run x task scores; median, mean and optimality gap of the per-task means (every task weighs alike)."""
    by_task = {}
    for task, seed in runs:
        by_task.setdefault(task, []).append(synthetic_return(agent, task, seed, step, factor))
    allv = [v for vals in by_task.values() for v in vals]
    task_means = [np.mean(v) for v in by_task.values()]
    capped = [np.mean(np.minimum(v, 1000)) for v in by_task.values()]
    return {
        "iqm": stats.trim_mean(allv, 0.25),
        "median": np.median(task_means),
        "mean": np.mean(task_means),
        "optimality_gap": 1000 - np.mean(capped),
        "n_tasks": len(by_task),
        "n_runs": len(allv),
    }


def test_scores_table_pins_known_returns(synthetic_run):
    scores = pd.read_csv(synthetic_run["out"] / "scores.csv")
    assert list(scores.columns) == SCORE_COLUMNS
    assert sorted(scores["env_step"].unique()) == [100_000, 500_000]  # 1M never reached
    assert len(scores) == 2 * 8  # 8 methods x 2 steps
    row = scores.set_index(["method", "env_step"])
    cases = {
        ("iqrl", 100_000): _expected("iqrl", [(t, s) for t in TASKS for s in range(3)], 100_000),
        # td3 cheetah-run seed1 failed at 150k and tcrl dog-run seed2 is at 300k: left out at 500k; every
        # other run counts (14 each, tasks with unequal run counts).
        ("td3", 500_000): _expected(
            "td3", [(t, s) for t in TASKS for s in range(3) if (t, s) != ("cheetah-run", 1)], 500_000
        ),
        ("tcrl", 500_000): _expected(
            "tcrl", [(t, s) for t in TASKS for s in range(3) if (t, s) != ("dog-run", 2)], 500_000
        ),
        ("iqrl/horizon=3", 500_000): _expected(
            "iqrl", [(t, s) for t in synthetic.ABLATION_TASKS for s in range(2)], 500_000, factor=0.92
        ),
    }
    for key, exp in cases.items():
        got = row.loc[key]
        for metric in ("iqm", "median", "mean", "optimality_gap"):
            assert got[metric] == pytest.approx(exp[metric], abs=1e-3), (key, metric)
        assert (got["n_tasks"], got["n_runs"]) == (exp["n_tasks"], exp["n_runs"])
        assert got["iqm_ci_low"] <= got["iqm"] <= got["iqm_ci_high"]
    md = (synthetic_run["out"] / "scores.md").read_text()
    assert md.splitlines()[0].startswith("| method | env steps | IQM |") and "| iqrl | 100k |" in md
    tex = (synthetic_run["out"] / "scores.tex").read_text()
    assert r"iqrl/fsq\_levels=8-8 & 500k" in tex and tex.count(r"\\") == 1 + len(scores)


def test_same_input_gives_identical_numbers(synthetic_run):
    # Recompute the 500k rows from the cached table with the CLI's seed and reps: the same numbers.
    with pytest.warns(UserWarning, match="not done"):
        table, info = load_results(synthetic_run["results"], cache_dir=synthetic_run["out"] / ".cache")
    assert info.from_cache
    est = metrics.final_estimates(eval_rows(table), [500_000], reps=500, seed=0)
    again = scores_table(est.table)
    first = pd.read_csv(synthetic_run["out"] / "scores.csv")
    first = first[first["env_step"] == 500_000].reset_index(drop=True)
    assert again["method"].tolist() == first["method"].tolist()
    np.testing.assert_allclose(
        again[SCORE_COLUMNS[2:]].to_numpy(float), first[SCORE_COLUMNS[2:]].to_numpy(float), rtol=1e-5
    )  # scores.csv keeps 6 significant digits


def test_exclude_partial_and_skipped_figures(tmp_path):
    write_hand_results(tmp_path / "r")  # one method, no train.csv, no iqrl
    rc, out, err = run_cli(
        ["--results", tmp_path / "r", "--out", tmp_path / "o", "--steps", "100", "--exclude-partial", *FAST]
    )
    assert rc == 0, err
    assert "no run has a latent_rank column: latent-rank figure skipped" in err
    assert "no iqrl runs at 100 steps: probability of improvement skipped" in err
    scores = pd.read_csv(tmp_path / "o" / "scores.csv")
    assert scores[["method", "env_step", "iqm", "n_tasks", "n_runs"]].values.tolist() == [
        ["a", 100, 550.0, 3, 12]
    ]
    assert not (tmp_path / "o" / "latent_rank.png").exists()


def test_diagnostics_that_are_no_number_are_left_out_naming_their_runs(tmp_path):
    """inf in a latent rank, and nan for the codebook share where its min and max were logged: left out of
    the curves (which stay finite) under one note per column naming the runs; nan on a row without
    diagnostics (the step's training row) is no diagnostic and passes unnamed."""
    rank = {0: [4.0, 6.0], 1: [5.0, float("inf")], 2: [5.0, 7.0]}
    code = {0: [50.0, 60.0], 1: [50.0, 70.0], 2: [float("nan"), 80.0]}
    for seed in range(3):
        train = {
            "env_step": [50, 100, 100, 200],
            "latent_rank": [rank[seed][0], float("nan"), rank[seed][1], 8.0],
            "active_codebook_pct_mean": [code[seed][0], float("nan"), code[seed][1], 90.0],
            "active_codebook_pct_min": [40.0, float("nan"), 50.0, 80.0],
        }
        write_run(
            tmp_path / "r" / "iqrl" / "walker-walk" / f"seed{seed}", [(0, 0.0), (200, 5.0)], train=train
        )
    rc, out, err = run_cli(["--results", tmp_path / "r", "--out", tmp_path / "o", "--steps", "200", *FAST])
    assert rc == 0, err
    notes = [line for line in err.splitlines() if "nan or inf" in line or "Warning" in line]
    assert notes == [
        "warning: latent_rank is nan or inf in 1 row(s) of 1 run(s), left out of its figures: "
        "iqrl/walker-walk/seed1 (1 row(s))",
        "warning: active_codebook_pct_mean is nan or inf in 1 row(s) of 1 run(s), left out of its figures: "
        "iqrl/walker-walk/seed2 (1 row(s))",
    ]
    assert (tmp_path / "o" / "latent_rank.png").exists() and (tmp_path / "o" / "active_codebook.png").exists()


def test_no_shared_task_with_iqrl_skips_probability_of_improvement(tmp_path):
    for seed in range(2):
        write_run(tmp_path / "r" / "iqrl" / "walker-walk" / f"seed{seed}", [(0, 0.0), (100, 500.0 + seed)])
        write_run(tmp_path / "r" / "td3" / "cheetah-run" / f"seed{seed}", [(0, 0.0), (100, 300.0 + seed)])
    rc, out, err = run_cli(["--results", tmp_path / "r", "--out", tmp_path / "o", "--steps", "100", *FAST])
    assert rc == 0, err
    assert "no other method shares a task with iqrl at 100 steps: probability of improvement skipped" in err
    assert not (tmp_path / "o" / "probability_of_improvement_100.png").exists()


def test_probability_of_improvement_against_the_only_iqrl_variant(tmp_path):
    # a learning-check folder: every run is of variant `small`, so the methods are `iqrl/small`, ...
    for seed in range(2):
        for agent, ret in (("iqrl", 500.0), ("td3", 300.0)):
            write_run(
                tmp_path / "r" / agent / "walker-walk" / "small" / f"seed{seed}",
                [(0, 0.0), (100, ret + seed)],
                config={
                    "agent": {"name": agent},
                    "task": "walker-walk",
                    "seed": seed,
                    "variant": "small",
                    "sweep": "validate",
                },
            )
    rc, out, err = run_cli(["--results", tmp_path / "r", "--out", tmp_path / "o", "--steps", "100", *FAST])
    assert rc == 0, err
    assert "probability of improvement skipped" not in err
    assert (tmp_path / "o" / "probability_of_improvement_100.png").is_file()
    assert figures_pooled.poi_reference(["iqrl", "iqrl/small", "td3"]) == ("iqrl", "")
    assert figures_pooled.poi_reference(["iqrl/h=3", "iqrl/h=5"]) == (
        None,
        "several iqrl variants (iqrl/h=3, iqrl/h=5) and no plain iqrl",
    )
    assert figures_pooled.poi_reference(["iqrl-sac/small"]) == (None, "no iqrl runs")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--results", "{tmp}/missing"], "error: results folder {tmp}/missing does not exist"),
        (["--results", "{tmp}/empty"], "error: no run folders (folders with an eval.csv) under {tmp}/empty"),
        (["--results", "{tmp}/r", "--steps", "100,abc"], "error: malformed STEPS '100,abc'"),
        (
            ["--results", "{tmp}/r", "--reference", "{tmp}/nope.csv.gz"],
            "error: reference file {tmp}/nope.csv.gz not found",
        ),
        (  # was a traceback where the overlay was drawn, after the other figures
            ["--results", "{tmp}/r", "--reference", "{tmp}/text.csv"],
            "error: reference file {tmp}/text.csv line 3: episode_return is 'n/a', not a finite number",
        ),
    ],
)
def test_bad_input_is_one_line_and_nonzero(tmp_path, args, message):
    (tmp_path / "empty").mkdir()
    write_hand_results(tmp_path / "r")
    (tmp_path / "text.csv").write_text(
        "source,algorithm,ablation,task,env_step,seed,episode_return\n"
        "s,SAC,,walker-walk,0,1,1.0\ns,SAC,,walker-walk,100,1,n/a\n"
    )
    rc, out, err = run_cli([a.format(tmp=tmp_path) for a in args] + ["--out", tmp_path / "o"])
    assert rc == 2 and out == "" and not (tmp_path / "o").exists()
    assert len(err.strip().splitlines()) == 1 and err.startswith(message.format(tmp=tmp_path))


def test_an_unscorable_return_or_an_out_that_is_a_file_stops_before_anything_is_written(tmp_path):
    write_hand_results(tmp_path / "r")
    path = tmp_path / "r" / "s" / "a" / "dog-run" / "default" / "seed2" / "eval.csv"
    path.write_text(path.read_text().replace("1000.0", "inf"))
    rc, out, err = run_cli(["--results", tmp_path / "r", "--out", tmp_path / "o", *FAST])
    assert rc == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert err.startswith("error: s/a/dog-run/default/seed2/eval.csv line 3: episode_return is 'inf'")
    assert not (tmp_path / "o").exists()
    (tmp_path / "file").write_text("")
    for out_arg in (tmp_path / "file", tmp_path / "file" / "figs"):
        rc, out, err = run_cli(["--results", tmp_path / "r", "--out", out_arg, *FAST])
        assert (
            rc == 2
            and err
            == f"error: OUT={out_arg}: {tmp_path / 'file'} is a file, not a folder; choose another OUT=\n"
        )
    assert (tmp_path / "file").read_text() == ""
    # /proc is a folder that anyone's mode bits (and root) may write, yet it takes no file
    rc, out, err = run_cli(["--results", tmp_path / "r", "--out", "/proc/figs", *FAST])
    assert rc == 2 and out == "" and len(err.splitlines()) == 1
    assert err.startswith("error: OUT=/proc/figs cannot be written: ") and "while writing /proc;" in err


def test_process_exit_status_and_make_target(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "analysis.figures.make", "--results", str(tmp_path / "missing")],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0 and proc.stderr.startswith("error:")
    dry = subprocess.run(
        ["make", "-n", "figures", "RESULTS=r", "REFERENCE=1", "STEPS=100000"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    cmd = " ".join(dry.stdout.replace("\\\n", " ").split())
    assert '-m analysis.figures.make --results "r" --out "figures" --steps "100000" --reference' in cmd


def test_ablation_keeps_its_default_variant_when_the_main_sweep_repeats_it(tmp_path):
    # ablations/components.yaml runs iqrl unchanged (`{}`, variant default) beside one-change variants; the
    # main sweep holds the same iqrl runs. Both are done and `parts` sorts after `main`.
    def cfg(sweep, task, seed, rew):
        variant = "use_rew_loss=true" if rew else "default"
        return {
            "agent": {"name": "iqrl", "use_rew_loss": rew},
            "task": task,
            "seed": seed,
            "steps": 100,
            "sweep": sweep,
            "variant": variant,
            "overrides": ["agent.use_rew_loss=true"] if rew else [],
        }

    for task in ("walker-walk", "cheetah-run"):
        for seed in range(2):
            for sweep, rew, ret in (("main", False, 600.0), ("parts", False, 600.0), ("parts", True, 500.0)):
                c = cfg(sweep, task, seed, rew)
                write_run(
                    tmp_path / "r" / sweep / "iqrl" / task / c["variant"] / f"seed{seed}",
                    [(0, 0.0), (100, ret + seed)],
                    config=c,
                )
    rc, out, err = run_cli(["--results", tmp_path / "r", "--out", tmp_path / "o", "--steps", "100", *FAST])
    assert rc == 0, err
    assert (tmp_path / "o" / "ablation_parts_iqrl_use_rew_loss.png").is_file()
    assert "warning: 4 run(s) repeat the method, task and seed of a run in another sweep" in err
    scores = pd.read_csv(tmp_path / "o" / "scores.csv").set_index("method")
    assert scores.loc["iqrl", "n_runs"] == 4  # counted once across sweeps


def test_one_run_on_a_task_keeps_every_run_and_the_interval(tmp_path):
    # dog-run has one run, the other tasks three: all 7 runs count, and the CI comes from the tasks whose
    # runs vary (dog-run's single score is in every resample).
    for task, seeds in (("walker-walk", 3), ("cheetah-run", 3), ("dog-run", 1)):
        for seed in range(seeds):
            write_run(tmp_path / "r" / "iqrl" / task / f"seed{seed}", [(0, 0.0), (100, 300.0 + 100 * seed)])
    rc, out, err = run_cli(["--results", tmp_path / "r", "--out", tmp_path / "o", "--steps", "100", *FAST])
    assert rc == 0, err
    scores = pd.read_csv(tmp_path / "o" / "scores.csv").iloc[0]
    allv = [300.0, 400.0, 500.0] * 2 + [300.0]
    assert scores["iqm"] == pytest.approx(stats.trim_mean(allv, 0.25)) and scores["n_runs"] == 7
    assert scores["iqm_ci_low"] < scores["iqm"] < scores["iqm_ci_high"]
    assert "left out" not in err and "no 95% CI" not in err


def test_one_run_per_task_gives_no_confidence_interval(tmp_path):
    # A stratified bootstrap of one run on every task resamples the same scores every time (zero width).
    for task, ret in (("walker-walk", 300.0), ("cheetah-run", 500.0)):
        write_run(tmp_path / "r" / "iqrl" / task / "seed0", [(0, 0.0), (100, ret)])
    rc, out, err = run_cli(["--results", tmp_path / "r", "--out", tmp_path / "o", "--steps", "100", *FAST])
    assert rc == 0, err
    scores = pd.read_csv(tmp_path / "o" / "scores.csv")
    assert scores[["iqm", "n_runs"]].values.tolist() == [[400.0, 2]]
    assert scores[["iqm_ci_low", "iqm_ci_high"]].isna().all(axis=None)
    assert "| iqrl | 100 | 400.0 | — |" in (tmp_path / "o" / "scores.md").read_text()
    assert r"iqrl & 100 & 400.0 & --- &" in (tmp_path / "o" / "scores.tex").read_text()
    assert "warning: at 100 steps, iqrl: one run per task: no 95% CI" in err


def test_smoke_sweep_with_the_default_steps_falls_back_to_the_largest_common_step(tmp_path):
    # ablations/smoke.yaml: iqrl and td3 on walker-walk, 2 seeds, 3000 env steps, evaluated every 1000;
    # none of the default STEPS (100k, 500k, 1M) is reached. One td3 run stopped at 2000.
    for agent, base in (("iqrl", 100.0), ("td3", 50.0)):
        for seed in range(2):
            last = 2000 if (agent, seed) == ("td3", 1) else 3000
            write_run(
                tmp_path / "r" / "smoke" / agent / "walker-walk" / "default" / f"seed{seed}",
                [(s, base + s / 100 + seed) for s in range(0, last + 1, 1000)],
                steps=3000,
                state="done" if last == 3000 else "failed",
            )
    rc, out, err = run_cli(["--results", tmp_path / "r", "--out", tmp_path / "o", *FAST])  # default --steps
    assert rc == 0, err
    assert (
        "warning: no run reached any of STEPS (100k, 500k, 1M): final scores and figures at 3k env steps "
        "instead, the largest step every method reached"
    ) in err
    assert "no run reached 100k env steps" not in err
    for name in ("final_intervals_3k", "performance_profiles_3k", "probability_of_improvement_3k"):
        assert (tmp_path / "o" / f"{name}.png").is_file(), name
    scores = pd.read_csv(tmp_path / "o" / "scores.csv")
    assert scores[["method", "env_step", "n_runs"]].values.tolist() == [["iqrl", 3000, 2], ["td3", 3000, 1]]


def test_largest_common_step():
    evals = pd.DataFrame({"method": ["a", "a", "b"], "env_step": [1000, 3000, 2000]})
    assert metrics.largest_common_step(evals, [1000, 2000, 3000]) == (2000, True)
    assert metrics.largest_common_step(evals, [100_000]) == (2000, False)


def _ablation_points(values, contexts=("",)):
    rows = [
        {
            "method": f"iqrl/{c or 'x'}/{v}",
            "value": v,
            "context": c,
            "iqm": 500.0 + i,
            "ci_low": 490.0 + i,
            "ci_high": 510.0 + i,
            "n_tasks": 2,
            "n_runs": 4,
        }
        for c in contexts
        for i, v in enumerate(values)
    ]
    return pd.DataFrame(rows)


def _joining_lines(fig):
    return [
        line
        for line in fig.axes[0].get_lines()
        if line.get_linestyle() not in ("None", "none", "") and len(line.get_xdata()) > 1
    ]


def test_ablation_plot_orders_lists_by_codebook_size_and_joins_only_numeric_values():
    from analysis.figures import ablation_plot, plots

    points = _ablation_points(["2-2-2-2", "16-16", "8-8-8-8", "4-4"], contexts=("", "horizon=3"))
    colors = plots.method_colors(points["method"])
    fig = ablation_plot.plot_ablation(points, colors, key="fsq_levels", agent="iqrl", sweep="fsq", step=100)
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == [
        "4-4\nK=16",
        "2-2-2-2\nK=16",
        "16-16\nK=256",
        "8-8-8-8\nK=4096",
    ]
    assert _joining_lines(fig) == []  # categories: no line suggesting a trend
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["(none)", "horizon=3"]
    points = _ablation_points(["1", "3", "5"])
    fig = ablation_plot.plot_ablation(
        points, plots.method_colors(points["method"]), key="horizon", agent="iqrl", sweep="h", step=100
    )
    assert len(_joining_lines(fig)) == 1
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["1", "3", "5"]


def test_synthetic_help_prints_help_and_writes_nothing(tmp_path, monkeypatch, capsys):
    """`python -m analysis.runs.synthetic --help` is help, not a folder named `--help` with 65 runs in it."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        synthetic.main(["--help"])
    assert e.value.code == 0 and "OUT_DIR" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        synthetic.main([])
    assert e.value.code == 2
    assert not list(tmp_path.iterdir())


def test_learning_check_page_is_generated_from_its_run_summaries():
    """docs/learning-check.md's generated sections equal `python -m analysis.figures.learning_check`'s output
    (regenerate with it after changing docs/learning-check/*.csv), and the pooled Gym scores are MR.Q's
    TD3-normalised score, (return - random) / (TD3 - random), averaged over the tasks at each run's latest
    evaluation not after 25k: td7 Hopper 332 at 20.1k, Walker2d 1241 at 25k, HalfCheetah 5088 at 25k."""
    from analysis.figures import learning_check

    page = learning_check.PAGE.read_text()
    for name in learning_check.SECTIONS:
        assert learning_check.section(name) in page, f"run python -m analysis.figures.learning_check ({name})"
    td7 = np.mean(
        [(332 - 18.791) / (3226 - 18.791), (1241 - 2.791) / (3946 - 2.791), (5088 + 289.415) / 10863.415]
    )
    td3 = np.mean(
        [(112 - 18.791) / (3226 - 18.791), (279 - 2.791) / (3946 - 2.791), (2443 + 289.415) / 10863.415]
    )
    assert (
        f"td7 mean {td7:.3f} (IQM {td7:.3f}); td3 mean {td3:.3f} (IQM {td3:.3f}); iqrl and mrq stopped"
        in page
    )
    assert (f"{td7:.3f}", f"{td3:.3f}") == ("0.302", "0.117")


def test_each_ablation_grid_says_how_many_seeds_would_resolve_each_pair(synthetic_run):
    """The FSQ grid of the synthetic set (8-8 and 5-5-5-5, 2 seeds on each of two tasks): one row per task
    with each arm's IQM of the returns at the figure's step and the seeds that resolve the pair."""
    from analysis.stats.estimators import seeds_needed

    table = pd.read_csv(synthetic_run["out"] / "ablation_fsq_iqrl_fsq_levels_seeds_needed.csv")
    assert sorted(table["task"]) == sorted(synthetic.ABLATION_TASKS)
    for row in table.itertuples():
        arms = [[synthetic_return("iqrl", row.task, s, 500_000, synthetic.FSQ_FACTOR[v]) for s in (0, 1)]
                for v in (row.a, row.b)]  # fmt: skip
        assert (row.seeds_a, row.seeds_b) == (2, 2)
        assert row.iqm_a == pytest.approx(np.mean(arms[0])) and row.iqm_b == pytest.approx(np.mean(arms[1]))
        assert row.seeds_needed == seeds_needed(np.array(arms[0]), np.array(arms[1]), 500)
