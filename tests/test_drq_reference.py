"""The per-seed curves released with DR.Q (dmksjfl/DR.Q at cc307a5, `results/*.csv`, SimbaV2's layout) read in
place as published curves: our task names, env steps, pixels apart from states, DR.Q's row of the DMC-hard
mean, and SimbaV2's runs that both releases carry drawn once. Tiny hand-made files in that layout, not the
data."""

from __future__ import annotations

import pandas as pd
import pytest

from iqrl.envs.tasks import DMC_HARD

from analysis_helpers import write_run, write_simba

M = 1_000_000


def drq_folder(root):
    """DR.Q on dog_run (two seeds), cartpole_balance_sparse, ball_in_cup_catch, Gym and HumanoidBench (h1,
    h1hand: no suite here); DR.Q from pixels on dog_run; SimbaV2 UTD 2 with seeds and steps as floats, as its
    copy in DR.Q's folder writes them; FOG on Meta-World; an empty mrq.csv (its file is not stored)."""
    write_simba(
        root,
        "drq.csv",
        [
            ("drq", "dog_run", 0, "avg_return", 0, 5.0),
            ("drq", "dog_run", 0, "avg_return", 50000, 100.0),
            ("drq", "dog_run", 1, "avg_return", 0, 7.0),
            ("drq", "dog_run", 1, "avg_return", 50000, 300.0),
            ("drq", "cartpole_balance_sparse", 0, "avg_return", 50000, 1000.0),
            ("drq", "ball_in_cup_catch", 0, "avg_return", 50000, 900.0),
            ("drq", "Humanoid_v4", 0, "avg_return", 25000, 400.0),
            ("drq", "h1hand_run_v0", 0, "avg_return", 50000, 1.0),
            ("drq", "h1_walk_v0", 0, "avg_return", 50000, 1.0),
            ("drq", "visual_dog_run", 0, "avg_return", 50000, 40.0),
        ],
    )
    write_simba(root, "simbaV2_utd2.csv", [("simbaV2_utd2", "dog-run", 9000.0, "avg_return", 50000.0, 250.0)])
    write_simba(root, "fog.csv", [("fog", "assembly-v2-goal-observable", 25, "avg_return", 25000.0, 2.9)])
    (root / "mrq.csv").write_text("")
    return root


def test_drqs_files_read_as_published_curves_in_our_names_and_env_steps_with_pixels_apart(tmp_path):
    from analysis.reference.released import read_drq_results
    from analysis.reference.table import select_reference

    ref = read_drq_results(drq_folder(tmp_path))
    assert set(ref["source"]) == {"drq-repo"} and set(ref["ablation"]) == {""}
    curves = ref.groupby("algorithm")["task"].apply(set).to_dict()
    assert curves == {
        "DR.Q": {"dog-run", "cartpole-balance_sparse", "ball_in_cup-catch", "gym:Humanoid-v4"},
        "DR.Q (pixels)": {"dog-run"},
        "SimbaV2 (UTD 2)": {"dog-run"},
        "FOG": {"mw-assembly"},
    }
    # the file's env steps are ours (DMC: 500k agent steps at action repeat 2 end at 1M): none is rescaled
    assert sorted(set(ref["env_step"])) == [0, 25000, 50000]
    simba = ref[ref["algorithm"] == "SimbaV2 (UTD 2)"].iloc[0]
    assert (simba["seed"], simba["env_step"], simba["episode_return"]) == (9000, 50000, 250.0)
    # pixels and states are separate curves of one task: the state mean is seeds 0 and 1 alone
    dog = select_reference(ref, ["dog-run"]).set_index(["algorithm", "env_step"])["mean"]
    assert dog[("DR.Q", 0)] == 6.0 and dog[("DR.Q", 50000)] == 200.0 and dog[("DR.Q (pixels)", 50000)] == 40.0
    assert select_reference(ref, ["dog-run"])["label"].str.endswith("[drq-repo]").all()


def test_drqs_dmc_hard_row_is_the_mean_of_its_per_task_means(tmp_path, capsys):
    """DR.Q on the seven DMC-hard tasks, dog-run with two seeds: dmc_hard_mean.csv holds the mean over tasks
    of each task's mean over seeds (400), not the mean over all runs (362.5). The pixel runs, on dog-run and
    humanoid-run only, have no row."""
    from analysis.figures import make as figures

    root = tmp_path / "drq"
    rows = []
    for k, task in enumerate(DMC_HARD):  # task means 100 (k + 1): 100 ... 700, mean 400
        ends = [50.0, 150.0] if task == "dog-run" else [100.0 * (k + 1)]
        for seed, end in enumerate(ends):
            rows += [("drq", task.replace("-", "_"), seed, "avg_return", 0, 0.0)]
            rows += [("drq", task.replace("-", "_"), seed, "avg_return", M, end)]
    rows += [
        ("drq", f"visual_{t}", 0, "avg_return", s, 1.0) for t in ("dog_run", "humanoid_run") for s in (0, M)
    ]
    write_simba(root, "drq.csv", rows)
    write_run(tmp_path / "r" / "td3" / "dog-run" / "seed0", [(0, 0.0), (M, 5.0)])
    argv = ["--results", tmp_path / "r", "--out", tmp_path / "f", "--reference-drq", root, "--steps", str(M)]
    assert figures.main([str(a) for a in argv + ["--reps-curve", "20", "--reps-final", "20"]]) == 0
    table = pd.read_csv(tmp_path / "f" / "dmc_hard_mean.csv")
    assert table.values.tolist() == [
        ["drq-repo", "DR.Q [drq-repo]", 0, 0.0],
        ["drq-repo", "DR.Q [drq-repo]", M, pytest.approx(400.0)],
    ]
    assert "dmc_hard figure skipped (dmc_hard_mean.csv holds the published means)" in capsys.readouterr().err

    argv = ["--results", tmp_path / "r", "--out", tmp_path / "g", "--reference-drq", tmp_path / "none"]
    assert figures.main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "holds no DR.Q results" in err and not (tmp_path / "g").exists()


def test_runs_both_releases_carry_are_drawn_once_and_differing_ones_apart(tmp_path):
    """SimbaV2 UTD 2 in DR.Q's folder equal to SimbaV2's release up to the digits a copy rewrites: drawn once,
    as [simbav2-repo], with a note; MR.Q whose numbers differ in one seed stays under each source."""
    from analysis.reference.overlays import gather_overlays

    simba, drq = tmp_path / "simba", tmp_path / "drq"
    utd2 = [
        ("simbaV2_utd2", "dog-run", s, "avg_return", t, 100.0 + s + t / 1000) for s in (0, 1) for t in (0, 50)
    ]
    write_simba(simba, "simbaV2_utd2.csv", utd2)
    write_simba(drq, "simbaV2_utd2.csv", [(*r[:5], r[5] + 3e-12) for r in utd2])
    mrq = [("mrq", "dog_run", s, "avg_return", 50, 10.0 * s) for s in (0, 1)]
    write_simba(simba, "baseline/mrq.csv", mrq)
    write_simba(drq, "mrq.csv", [*mrq[:1], ("mrq", "dog_run", 1, "avg_return", 50, 11.0)])
    write_simba(drq, "drq.csv", [("drq", "dog_run", 0, "avg_return", 50, 1.0)])
    notes = []
    both = gather_overlays(None, {"simba": simba, "drq": drq}, notes.append).curves
    assert sorted(set(both["algorithm"] + " [" + both["source"] + "]")) == [
        "DR.Q [drq-repo]",
        "MR.Q [drq-repo]",
        "MR.Q [simbav2-repo]",
        "SimbaV2 (UTD 2) [simbav2-repo]",
    ]
    assert len(both[both["algorithm"] == "SimbaV2 (UTD 2)"]) == 4  # SimbaV2's four rows, once
    assert notes == [
        "1 curves of the DR.Q results (SimbaV2 (UTD 2)) are SimbaV2's released ones, number for number: "
        "drawn once, as [simbav2-repo]"
    ]
    alone = gather_overlays(
        None, {"drq": drq}, notes.append
    ).curves  # without SimbaV2's release DR.Q's copy stays
    assert "SimbaV2 (UTD 2)" in set(alone["algorithm"]) and len(notes) == 1


def test_the_new_agents_pair_with_their_methods_published_curves(tmp_path):
    """dr-q -> DR.Q (DR.Q's release), droq -> SimbaV2's `DroQ_utd20` runs, tdmpc2 -> TD-MPC2 (TD-MPC2's
    results and SimbaV2's copy): the names the readers give, which validate's 'published, same method'
    column looks up."""
    from analysis.reference.released import SIMBA_ALGORITHMS, read_drq_results, read_simba_results
    from analysis.reference.table import PUBLISHED_NAME, published_at

    drq = read_drq_results(drq_folder(tmp_path / "drq"))
    write_simba(
        tmp_path / "simba",
        "baseline/droq_utd20.csv",
        [("DroQ_utd20", "Hopper-v4", 0, "avg_return", 1.0, 3.0)],
    )
    simba = read_simba_results(tmp_path / "simba")
    assert set(simba["algorithm"]) == {PUBLISHED_NAME["droq"]}
    assert PUBLISHED_NAME["tdmpc2"] == SIMBA_ALGORITHMS["tdmpc2"] == "TD-MPC2"
    pub = published_at(drq, ["dog-run"], 50000)
    same = pub[pub["algorithm"] == PUBLISHED_NAME["dr-q"]]
    assert same[["label", "published", "n_seeds"]].values.tolist() == [["DR.Q [drq-repo]", 200.0, 2]]


def test_a_drq_file_that_cannot_be_drawn_is_one_error_naming_it_and_its_line(tmp_path, capsys):
    from analysis.figures import make as figures

    path = write_simba(tmp_path / "drq", "drq.csv", [("drq", "dog_run", 0, "avg_return", 50000, "nan")])
    write_run(tmp_path / "r" / "td3" / "dog-run" / "seed0", [(0, 0.0), (100, 5.0)])
    argv = ["--results", tmp_path / "r", "--out", tmp_path / "f", "--reference-drq", tmp_path / "drq"]
    assert figures.main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err == f"error: DR.Q results file {path} line 2: value is 'nan', not a finite number\n"
    assert not (tmp_path / "f").exists()
