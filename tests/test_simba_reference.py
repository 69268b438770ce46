"""The per-seed curves released with SimbaV2 (dojeon-ai/SimbaV2 at 14fafb2, `results/`) read in place as
published curves, and the DMC-hard group of the figures. Tiny hand-made files in that layout, not the data."""

from __future__ import annotations

import pandas as pd
import pytest

from iqrl.envs.tasks import DMC_HARD

from analysis_helpers import write_run, write_simba


def simba_folder(root):
    """SimbaV2 UTD 8 on dog-run (underscored, its two seeds then a copy under swapped labels, as the real
    file), on Gym and on MyoSuite (return and success); BRO on Meta-World under its own name; MR.Q on DMC;
    an empty file, and results/simbaV2_utd8.csv a copy of the baseline one."""
    rows = [
        ("simbaV2_utd8", "dog_run", 0, "avg_return", 0.0, 10.0),
        ("simbaV2_utd8", "dog_run", 0, "avg_return", 100.0, 500.0),
        ("simbaV2_utd8", "dog_run", 1000, "avg_return", 0.0, 20.0),
        ("simbaV2_utd8", "dog_run", 1000, "avg_return", 100.0, 700.0),
        ("simbaV2_utd8", "dog_run", 1000, "avg_return", 100.0, 500.0),  # the copy: labels swapped
        ("simbaV2_utd8", "dog_run", 0, "avg_return", 100.0, 700.0),
        ("simbaV2_utd8", "Humanoid_v4", 0, "avg_return", 50.0, 3000.0),
        ("simbaV2_utd8", "myo_key_turn_hard", 0, "avg_return", 50.0, 12.5),
        ("simbaV2_utd8", "myo_key_turn_hard", 0, "avg_success", 50.0, 0.75),
        ("simbaV2_utd8", "h1_walk_v0", 0, "avg_return", 50.0, 1.0),  # HumanoidBench: no suite here
    ]
    write_simba(root, "baseline/simbaV2_utd8.csv", rows)
    write_simba(root, "simbaV2_utd8.csv", rows)
    write_simba(
        root,
        "baseline/bro_utd10.csv",
        [("bro_utd10", "assembly-v2-goal-observable", 1, "avg_success", 25000, 1.0)],
    )
    write_simba(root, "baseline/mrq.csv", [("mrq", "ball_in_cup-catch", 0, "avg_return", 20000, 300.0)])
    (root / "baseline" / "mad-td_utd8.csv").write_text("")
    return root


def test_the_released_files_read_as_published_curves_in_our_task_names(tmp_path):
    from analysis.reference.released import read_simba_results, simba_task_name
    from analysis.reference.table import select_reference

    ref = read_simba_results(simba_folder(tmp_path))
    assert set(ref["source"]) == {"simbav2-repo"} and set(ref["ablation"]) == {""}
    assert set(ref["algorithm"]) == {"SimbaV2 (UTD 8)", "BRO (UTD 10)", "MR.Q"}
    assert set(ref["task"]) == {
        "dog-run", "gym:Humanoid-v4", "myo-hand-key-turn-hard", "mw-assembly", "ball_in_cup-catch",
    }  # fmt: skip
    dog = ref[ref["task"] == "dog-run"].sort_values(["env_step", "seed"])
    # one row per (seed, step): the copies of the two runs keep their last rows, both runs stay
    assert dog[["seed", "env_step", "episode_return"]].values.tolist() == [
        [0, 0, 10.0], [1000, 0, 20.0], [0, 100, 700.0], [1000, 100, 500.0],
    ]  # fmt: skip
    myo = ref[ref["task"] == "myo-hand-key-turn-hard"].iloc[0]
    assert (myo["episode_return"], myo["success"]) == (12.5, 0.75)
    assert ref.loc[ref["task"] == "mw-assembly", "success"].tolist() == [1.0]
    assert select_reference(ref, ["dog-run"]).set_index("env_step")["mean"].to_dict() == {0: 15.0, 100: 600.0}
    # the spellings of one task across the files, and TD-MPC2's
    names = ["finger_turn_easy", "finger-turn-easy", "finger-turn_easy"]
    assert {simba_task_name(n) for n in names} == {"finger-turn_easy"}
    assert simba_task_name("cup-catch") == simba_task_name("ball_in_cup_catch") == "ball_in_cup-catch"
    assert simba_task_name("cartpole-swingup-sparse") == "cartpole-swingup_sparse"
    assert simba_task_name("myo-pen-twirl") == "myosuite:myoHandPenTwirlFixed-v0"
    assert simba_task_name("mw-assembly") == "metaworld:assembly"


def test_make_figures_overlays_them_and_draws_the_dmc_hard_mean(tmp_path, capsys):
    """With runs on all seven DMC-hard tasks and a cartpole task: the per-task panels carry the released
    curves, sample efficiency gets a DMC-hard panel, and dmc_hard_mean.csv is the mean over the seven tasks,
    ours and the published method's that covers them all."""
    from analysis.figures import make as figures
    from analysis.runs.load import load_results
    from analysis.stats import metrics

    root = tmp_path / "simba"
    rows = []
    for k, task in enumerate(DMC_HARD):
        for seed in (0, 1000):
            rows += [
                (
                    "simbaV2_utd8",
                    task.replace("-", "_"),
                    seed,
                    "avg_return",
                    s,
                    100.0 * k + s / 10 + seed / 100,
                )
                for s in (0, 100)
            ]
    write_simba(root, "baseline/simbaV2_utd8.csv", rows)
    write_simba(
        root, "baseline/bro_utd10.csv", [("bro_utd10", "dog-run", 1, "avg_return", s, 5.0) for s in (0, 100)]
    )
    for k, task in enumerate([*DMC_HARD, "cartpole-swingup"]):
        write_run(tmp_path / "r" / "td3" / task / "seed0", [(0, 0.0), (100, 10.0 * k)])
    out = figures.make_figures(
        tmp_path / "r", tmp_path / "f", steps=[100], reps_curve=20, reps_final=20, reference_simba=root
    )
    names = {p.stem for p in out["figures"]}
    assert {"per_task_curves", "dmc_hard", "sample_efficiency"} <= names
    assert not [n for n in out["notes"] if "reference" in n]
    table = pd.read_csv(tmp_path / "f" / "dmc_hard_mean.csv")
    got = {(r.label, r.env_step): r.mean for r in table.itertuples()}
    # SimbaV2: seeds 0 and 1000 average to 100 k + s / 10 + 5; over k = 0..6 the mean of 100 k is 300
    assert got[("SimbaV2 (UTD 8) [simbav2-repo]", 100)] == pytest.approx(300.0 + 10.0 + 5.0)
    assert got[("td3", 100)] == pytest.approx(30.0)  # 10 k over k = 0..6
    assert not any("BRO" in label for label, _ in got)  # on dog-run only: no mean over the seven
    evals = load_results(tmp_path / "r")[0]
    groups = set(metrics.sample_efficiency(evals[evals["episode_return"].notna()], 20)["group"])
    assert "dmc-hard" in groups

    argv = [
        "--results",
        str(tmp_path / "r"),
        "--out",
        str(tmp_path / "g"),
        "--reference-simba",
        str(tmp_path / "none"),
    ]
    assert figures.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "no SimbaV2 results" in err and not (tmp_path / "g").exists()


@pytest.mark.parametrize(
    "cells, message",
    [
        (None, "is not text (byte 0 is 0x00)"),  # a binary file under the name
        ("25000,high", "line 2: value is 'high', not a finite number"),
        ("25000,nan", "line 2: value is 'nan', not a finite number"),  # was dropped without a word
        ("25000,-inf", "line 2: value is '-inf', not a finite number"),
        ("25000.5,1.0", "line 2: env_step is '25000.5', not a whole number"),
        ("step,1.0", "line 2: env_step is 'step', not a whole number"),
    ],
)
def test_a_released_file_that_cannot_be_drawn_is_one_error_naming_the_file_and_line(
    tmp_path, capsys, cells, message
):
    from analysis.figures import make as figures

    path = simba_folder(tmp_path / "simba") / "baseline" / "bro_utd10.csv"
    if cells is None:
        path.write_bytes(bytes(range(256)))
    else:
        path.write_text(path.read_text().replace("25000,1.0", cells))
    write_run(tmp_path / "r" / "td3" / "dog-run" / "seed0", [(0, 0.0), (100, 5.0)])
    argv = ["--results", tmp_path / "r", "--out", tmp_path / "f", "--reference-simba", tmp_path / "simba"]
    assert figures.main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: SimbaV2 results file {path} {message}") and err.count("\n") == 1, err
    assert not (tmp_path / "f").exists()


def test_runs_on_some_dmc_hard_tasks_write_the_published_means_and_skip_the_figure_with_a_note(tmp_path):
    from analysis.figures import make as figures

    root = tmp_path / "simba"
    rows = [("bro_utd10", t, 1, "avg_return", s, 10.0) for t in DMC_HARD for s in (0, 100)]
    write_simba(root, "baseline/bro_utd10.csv", rows)
    write_run(tmp_path / "r" / "td3" / "dog-run" / "seed0", [(0, 0.0), (100, 5.0)])
    out = figures.make_figures(
        tmp_path / "r", tmp_path / "f", steps=[100], reps_curve=20, reps_final=20, reference_simba=root
    )
    assert "dmc_hard" not in {p.stem for p in out["figures"]}
    assert any(
        "no method has runs on all 7 DMC-hard tasks: dmc_hard figure skipped" in n for n in out["notes"]
    )
    table = pd.read_csv(tmp_path / "f" / "dmc_hard_mean.csv")
    assert table["label"].tolist() == ["BRO (UTD 10) [simbav2-repo]"] * 2 and table["mean"].tolist() == [
        10.0,
        10.0,
    ]
