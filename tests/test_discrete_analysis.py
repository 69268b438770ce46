"""The discrete suites in `make figures` (analysis/stats/scores.py, analysis/reference/table.py,
docs/discrete.md): human-normalised Atari scores, MiniGrid success rates, MR.Q's released Atari curves read in
place."""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest

from analysis.figures import make as figures
from analysis.reference.released import read_mrq_results
from analysis.reference.table import select_reference
from analysis.stats.scores import ATARI_REFERENCE, add_scores, human_normalized
from iqrl.envs.tasks import ATARI_57

from analysis_helpers import write_run


def test_human_normalized_scores_of_hand_computed_games():
    """(return - random) / (human - random) with DQN Zoo's references (dqn_zoo/atari_data.py at 45061f4):
    Pong random -20.7, human 14.6; Breakout random 1.7, human 30.5."""
    assert human_normalized("atari:Pong", 21.0) == pytest.approx((21.0 + 20.7) / (14.6 + 20.7))  # 1.1813
    assert human_normalized("atari:Pong", -20.7) == pytest.approx(0.0)
    assert human_normalized("atari:Breakout", np.array([1.7, 30.5, 59.3])) == pytest.approx([0.0, 1.0, 2.0])
    assert human_normalized("atari:Skiing", -4336.9) == pytest.approx(1.0)  # both references negative
    assert np.isnan(human_normalized("atari:NotAGame", 1.0))
    assert np.isnan(human_normalized("gym:Hopper-v4", 1.0)) and np.isnan(human_normalized("walker-walk", 1.0))
    assert all(human > random for random, human in ATARI_REFERENCE.values())
    assert sorted(f"atari:{g}" for g in ATARI_REFERENCE) == sorted(ATARI_57)  # a score for each of the 57


def test_add_scores_normalises_each_suite_by_its_own_references():
    rows = pd.DataFrame(
        {
            "task": ["atari:Pong", "gym:Hopper-v4", "minigrid:MiniGrid-DoorKey-5x5-v0", "walker-walk"],
            "episode_return": [-3.05, 3226.0, 0.9, 500.0],
        }
    )
    scored = add_scores(rows).set_index("task")
    assert scored.loc["atari:Pong", "human_normalized"] == pytest.approx(0.5)  # half way from -20.7 to 14.6
    assert scored.loc["gym:Hopper-v4", "td3_normalized"] == pytest.approx(1.0)
    assert scored["human_normalized"].notna().sum() == 1 and scored["td3_normalized"].notna().sum() == 1


def _atari_runs(root, steps=(0, 400_000)):
    """Pong at human-normalised 0 and 1 (two seeds), Breakout at 1 and 1: per-task means 0.5 and 1."""
    for task, finals in (("atari:Pong", [-20.7, 14.6]), ("atari:Breakout", [30.5, 30.5])):
        for seed, final in enumerate(finals):
            write_run(root / "mrq" / task / f"seed{seed}", [(steps[0], 0.0), (steps[1], final)])


def test_atari_runs_pool_as_human_normalized_scores_and_minigrid_as_success_rates(tmp_path):
    _atari_runs(tmp_path / "r")
    for seed, rate in enumerate([0.25, 0.75]):
        run = write_run(
            tmp_path / "r" / "mrq" / "minigrid:MiniGrid-DoorKey-5x5-v0" / f"seed{seed}",
            [(0, 0.0), (1000, 0.0)],
        )
        pd.read_csv(run / "eval.csv").assign(success=[0.0, rate]).to_csv(run / "eval.csv", index=False)
    out = figures.make_figures(tmp_path / "r", tmp_path / "f", steps=[400_000], reps_curve=20, reps_final=20)
    names = {p.stem for p in out["figures"]}
    assert {"per_task_curves_atari", "sample_efficiency_atari", "final_intervals_atari_400k"} <= names
    assert {"per_task_curves_minigrid", "sample_efficiency_minigrid"} <= names
    atari = out["suite_scores"]["atari"].iloc[0]
    # run scores (0, 1, 1, 1): the IQM trims one at each end -> 1; per-task means 0.5 and 1 -> mean 0.75
    assert atari[["iqm", "mean", "median"]].tolist() == pytest.approx([1.0, 0.75, 0.75])
    assert atari["n_tasks"] == 2 and atari["n_runs"] == 4
    minigrid = out["suite_scores"]["minigrid"].iloc[-1]
    assert minigrid[["mean", "n_runs"]].tolist() == pytest.approx([0.5, 2])


def test_atari_runs_load_from_folders_named_with_or_without_the_colon(tmp_path):
    """`mrq/atari-Pong/seed0` (today's folder name, no config.yaml: the task read back from the name) and
    `mrq/atari:Pong/seed1` (an earlier version's, with its config.yaml) are two seeds of one task."""
    from analysis.runs.load import load_results

    write_run(tmp_path / "mrq" / "atari-Pong" / "seed0", [(0, -21.0), (1000, -20.0)])
    config = {"agent": {"name": "mrq"}, "task": "atari:Pong", "seed": 1, "steps": 1000}
    write_run(tmp_path / "mrq" / "atari:Pong" / "seed1", [(0, -21.0), (1000, -19.0)], config=config)
    table, info = load_results(tmp_path)
    runs = table.drop_duplicates("run")
    assert info.n_runs == 2 and runs[["method", "task", "seed"]].values.tolist() == [
        ["mrq", "atari:Pong", 0],
        ["mrq", "atari:Pong", 1],
    ]


@pytest.mark.parametrize("rate", ["1.7", "-0.25"])
def test_a_success_rate_outside_0_1_is_one_error_naming_the_file_and_line_and_writes_nothing(
    tmp_path, capsys, rate
):
    for seed in range(2):
        run = write_run(
            tmp_path / "r" / "mrq" / "minigrid:MiniGrid-DoorKey-5x5-v0" / f"seed{seed}",
            [(0, 0.0), (1000, 0.0)],
        )
        pd.read_csv(run / "eval.csv").assign(success=[0.0, 0.5]).to_csv(run / "eval.csv", index=False)
    (run / "eval.csv").write_text((run / "eval.csv").read_text().replace(",0.5\n", f",{rate}\n"))
    argv = ["--results", str(tmp_path / "r"), "--out", str(tmp_path / "f"), "--steps", "1000"]
    assert figures.main(argv) == 2
    assert capsys.readouterr().err == (
        f"error: mrq/minigrid:MiniGrid-DoorKey-5x5-v0/seed1/eval.csv line 3: success is '{rate}', not a "
        "success rate in [0, 1]: no figure can score that run; correct or delete the row, or move the run "
        "folder out of RESULTS\n"
    )
    assert not (tmp_path / "f").exists()


#: Two games in the layout of MR.Q's results/atari_results.txt (facebookresearch/MRQ at 8a44a7d), a DMC
#: block (skipped) between them; time steps are agent steps of 4 frames.
MRQ_ATARI = (
    "--------------------\nEnv: Atari-Pong-v5\nTimestep\tSeed 0\t\tSeed 1\t\t\n"
    "0\t\t-21.000\t\t-20.000\t\t\n100000\t\t-3.000\t\t-3.100\t\t\n"
    "--------------------\nEnv: Dmc-walker-walk\nTimestep\tSeed 0\t\t\n0\t\t30.0\t\t\n"
    "--------------------\nEnv: Atari-Breakout-v5\nTimestep\tSeed 0\t\t\n0\t\t1.7\t\t\n100000\t\t30.5\t\t\n"
)


def test_mrqs_released_atari_curves_load_in_frames_and_overlay_the_atari_panels(tmp_path, capsys):
    (path := tmp_path / "atari_results.txt").write_text(MRQ_ATARI)
    ref = read_mrq_results(path)
    assert set(ref["task"]) == {"atari:Pong", "atari:Breakout"} and set(ref["algorithm"]) == {"MR.Q"}
    pong = ref[ref["task"] == "atari:Pong"]
    assert pong[["env_step", "seed", "episode_return"]].values.tolist() == [
        [0, 0, -21.0], [0, 1, -20.0], [400_000, 0, -3.0], [400_000, 1, -3.1],
    ]  # fmt: skip
    # the overlay draws MR.Q's returns on the panels' score: Pong's mean -3.05 at 400k frames is 0.5
    normalised = select_reference(add_scores(ref), ["atari:Pong"], value="human_normalized")
    assert normalised.set_index("env_step")["mean"][400_000] == pytest.approx(0.5)

    _atari_runs(tmp_path / "r")
    out = figures.make_figures(
        tmp_path / "r", tmp_path / "f", steps=[400_000], reps_curve=20, reps_final=20, reference_atari=path
    )
    assert "per_task_curves_atari" in {p.stem for p in out["figures"]}
    assert not [n for n in out["notes"] if "reference" in n]  # the overlay found its curves

    gym_only = tmp_path / "gym.txt"
    gym_only.write_text("Env: Dmc-walker-walk\nTimestep\tSeed 0\n0\t\t1.0\n")
    argv = [
        "--results",
        str(tmp_path / "r"),
        "--out",
        str(tmp_path / "g"),
        "--reference-atari",
        str(gym_only),
    ]
    assert figures.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "not an MR.Q results file" in err and not (tmp_path / "g").exists()


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda t: gzip.compress(t.encode()), "is not text (byte 1 is 0x8b)"),  # the file gzipped
        (lambda t: t.replace("-3.100", "n/a"), "line 5: return is 'n/a', not a finite number"),
        (lambda t: t.replace("Env: Atari-Breakout-v5", "Env:"), "line 11: 'Env:' names no environment"),
        (
            lambda t: t.replace("100000\t\t30.5", "1e5.5\t\t30.5"),
            "line 14: time step is '1e5.5', not a whole",
        ),
        (lambda t: t.replace("100000\t\t30.5", "2.5\t\t30.5"), "line 14: time step is '2.5', not a whole"),
        (lambda t: t.replace("-3.100", "nan"), "line 5: return is 'nan', not a finite number"),  # was dropped
        (lambda t: t.replace("30.5", "inf"), "line 14: return is 'inf', not a finite number"),
    ],
)
def test_a_released_curves_file_that_cannot_be_drawn_is_one_error_naming_the_file_and_line(
    tmp_path, capsys, change, message
):
    _atari_runs(tmp_path / "r")
    text = change(MRQ_ATARI)
    path = tmp_path / "atari_results.txt"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    argv = ["--results", tmp_path / "r", "--out", tmp_path / "f", "--reference-atari", path]
    assert figures.main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: MR.Q results file {path} {message}") and err.count("\n") == 1, err


#: Rows in the layout of BBF's released scores (google-research/google-research at 5e78683,
#: bigger_better_faster/scores/RR8_BBF.csv: an unnamed index, a run's seed, the game in lower case, the mean
#: evaluation return after 100k agent steps, BBF's own normalisation). Alien's and Pong's first rows are the
#: file's; Pooyan is no game of the 57 (skipped).
# RR8_BBF.csv's layout; the run numbers in its Atari 100k row group (analysis.reference.released.BBF_GROUPS)
BBF_SCORES = (
    ",seed,game,GameScoreAverage,GameScoreNormalized\n"
    "0,29598,alien,1032.5,0.1166248768568039\n"
    "70,29599,pong,19.809999465942383,1.1475920677185059\n"
    "1,29600,pong,-3.05,0.5\n"
    "2,29601,pong,14.6,1.0\n"
    "3,29602,breakout,30.5,1.0\n"
    "4,29603,breakout,59.3,2.0\n"
    "5,29604,upndown,533.4,0.0\n"
    "6,29605,pooyan,100.0,0.5\n"
)


def test_bbfs_released_scores_load_as_runs_at_400k_frames_on_our_references(tmp_path):
    from analysis.reference.released import atari_game_task, read_bbf_scores

    (path := tmp_path / "RR8_BBF.csv").write_text(BBF_SCORES)
    ref = read_bbf_scores(path)
    assert ref.columns.tolist() == [
        "source",
        "algorithm",
        "ablation",
        "task",
        "env_step",
        "seed",
        "episode_return",
    ]
    assert (
        set(ref["source"]) == {"bbf-repo"}
        and set(ref["algorithm"]) == {"BBF"}
        and set(ref["ablation"]) == {""}
    )
    assert ref["task"].tolist() == ["atari:Alien"] + ["atari:Pong"] * 3 + ["atari:Breakout"] * 2 + [
        "atari:UpNDown"
    ]
    assert set(ref["env_step"]) == {400_000}  # 100k agent steps of 4 frames
    assert ref["seed"].tolist() == [29598, 29599, 29600, 29601, 29602, 29603, 29604]
    assert ref["episode_return"].iloc[0] == 1032.5
    assert (
        atari_game_task("montezumarevenge") == "atari:MontezumaRevenge" and atari_game_task("pooyan") is None
    )
    # DQN Zoo's references are BBF's: our normalisation of its returns is its own GameScoreNormalized
    ours = add_scores(ref)["human_normalized"].iloc[:2]
    assert ours.tolist() == pytest.approx([0.1166248768568039, 1.1475920677185059], abs=1e-6)
    (tmp_path / "RR2_BBF.csv").write_text(BBF_SCORES)
    assert set(read_bbf_scores(tmp_path / "RR2_BBF.csv")["algorithm"]) == {
        "RR2_BBF"
    }  # another file: its name


def test_bbfs_scores_are_a_point_on_the_atari_panels_and_rows_of_the_atari_score_tables(tmp_path):
    from analysis.figures.plots import plot_task_panels
    from analysis.reference.released import read_bbf_scores

    (path := tmp_path / "RR8_BBF.csv").write_text(BBF_SCORES)
    _atari_runs(tmp_path / "r")
    out = figures.make_figures(
        tmp_path / "r", tmp_path / "f", steps=[400_000], reps_curve=20, reps_final=20, reference_bbf=path
    )
    table = out["suite_scores"]["atari"].set_index("method")
    assert table.index.tolist() == ["mrq", "BBF [bbf-repo]"]
    bbf = table.loc["BBF [bbf-repo]"]
    # on our two games only: Pong's runs score 1.1476, 0.5 and 1, Breakout's 1 and 2 -> the IQM of the 5 run
    # scores (scipy's trim_mean, as rliable: one cut at each end) is that of 1, 1, 1.1476; per-game means
    # 0.8825 and 1.5
    iqm = (1.0 + 1.0 + 1.1475920677) / 3
    pong = (1.1475920677 + 0.5 + 1.0) / 3
    assert bbf[["iqm", "mean", "median"]].tolist() == pytest.approx([iqm, (pong + 1.5) / 2, (pong + 1.5) / 2])
    assert bbf["env_step"] == 400_000 and bbf["n_tasks"] == 2 and bbf["n_runs"] == 5
    assert any("BBF [bbf-repo] at 400k env steps: the score tables pool its 5 runs on the 2 of its 4" in n
               for n in out["notes"])  # fmt: skip
    assert "per_task_curves_atari" in {p.stem for p in out["figures"]}
    out = figures.make_figures(
        tmp_path / "r", tmp_path / "g", steps=[100_000], reps_curve=20, reps_final=20, reference_bbf=path
    )
    assert "BBF [bbf-repo]" not in set(out["suite_scores"]["atari"]["method"])
    assert any("not among STEPS: STEPS=400k adds them" in n for n in out["notes"])

    # the panel: a filled marker at 400k frames, Pong's mean of its three runs, beside our curve
    curves = pd.DataFrame(
        {"method": "mrq", "task": "atari:Pong", "env_step": [0, 400_000], "mean": [0.0, 0.5]}
    ).assign(ci_low=lambda d: d["mean"], ci_high=lambda d: d["mean"])
    marks = select_reference(add_scores(read_bbf_scores(path)), ["atari:Pong"], value="human_normalized")
    fig = plot_task_panels(curves, {"mrq": "C0"}, points=marks)
    points = [line for line in fig.axes[0].lines if line.get_linestyle() == "None"]
    assert len(points) == 1 and list(points[0].get_xdata()) == [400_000]
    assert points[0].get_ydata()[0] == pytest.approx(pong)
    assert "BBF [bbf-repo]" in [t.get_text() for legend in fig.legends for t in legend.get_texts()]


@pytest.mark.parametrize(
    "text, message",
    [
        (",seed,game,Score\n0,1,pong,3\n", "is not a BBF scores file: no column GameScoreAverage"),
        (
            ",seed,game,GameScoreAverage\n0,1,pong,3\n1,2,pong,n/a\n",
            "line 3 holds no seed and GameScoreAverage",
        ),
        (",seed,game,GameScoreAverage\n0,1,pooyan,3\n", "holds no score of an Atari game of the 57"),
    ],
)
def test_a_malformed_bbf_scores_file_is_one_error_line_before_anything_is_written(
    tmp_path, capsys, text, message
):
    _atari_runs(tmp_path / "r")
    (path := tmp_path / "RR8_BBF.csv").write_text(text)
    argv = ["--results", str(tmp_path / "r"), "--out", str(tmp_path / "f"), "--reference-bbf", str(path)]
    assert figures.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {path}") and message in err[0], err
    assert not (tmp_path / "f").exists()
