"""`make reference` (analysis/reference/build.py) and the published tables of analysis/reference/data: the
build from a folder of released files (tiny synthetic files in each source's layout, with their own
checksums: no fetched file), the checksum refusal, downloads, the shipped tables' sources and suites, the
readers of the sources' layouts, and `REFERENCE=1` drawing every shipped source of the runs' suites."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.errors import AnalysisError
from analysis.reference import build as reference_build
from analysis.reference.sources import SOURCES
from analysis.reference.table import SHIPPED, load_reference, reference_tables, select_reference
from analysis.stats.scores import human_normalized
from iqrl.envs.tasks import ATARI_26

REPO = Path(__file__).resolve().parents[1]
SIMBA_HEADER = ",exp_name,env_name,seed,metric,env_step,value\n"


def simba_rows(exp: str) -> str:
    """Two seeds of `exp` on dog-run (SimbaV2's underscored name) and one on Gym Hopper."""
    rows = [(exp, "dog_run", s, "avg_return", t, 100.0 * s + t / 1000) for s in (0, 1) for t in (0, 50)]
    rows.append((exp, "Hopper_v4", 0, "avg_return", 0, 7.5))
    return SIMBA_HEADER + "".join(f"{i},{','.join(map(str, r))}\n" for i, r in enumerate(rows))


def dreamer_runs(path: str) -> bytes:
    suite, method = Path(path).name.removesuffix(".json.gz").split("-")
    task = "atari_up_n_down" if suite == "atari100k" else "dmc_ball_in_cup_catch"
    runs = [
        {"task": task, "method": method, "seed": s, "xs": [0.0, 2000.0], "ys": [1.0, 2.0 + s]} for s in (0, 1)
    ]
    return gzip.compress(json.dumps(runs).encode(), mtime=0)


def synthetic_file(repo: str, path: str) -> bytes:
    """A small made-up file in the layout of `repo`'s `path` (analysis.reference.released,
    analysis.reference.released_dmc)."""
    name = Path(path).name
    if repo == "aidanscannell/dcmpc" and name == "dmc-dcmpc.csv":
        text = (
            "agent,env,env_step,episode_reward,seed\nDCWM,cup-catch,0.0,1.5,1\nDCWM,cup-catch,25000.0,2.5,1\n"
        )
    elif repo == "aidanscannell/dcmpc" and name.endswith("-dcmpc.csv"):
        env = "mw-reach" if name.startswith("mw") else "myo-hand-reach"
        text = f"agent,env,env_step,episode_reward,episode_success,seed\nDCWM,{env},0.0,10.0,0.0,1\n"
        text += f"DCWM,{env},100000.0,20.0,1.0,1\n"
    elif repo == "aidanscannell/dcmpc":  # TD-MPC2's baselines as re-packaged there
        agent = {"tdmpc2": "TD-MPC2", "tdmpc": "TD-MPC", "sac": "SAC", "dreamerv3": "DreamerV3"}[
            Path(name).stem
        ]
        text = ",step,success,seed,env,agent,episode_success,env_step,reward,episode_reward\n"
        text += f"0,0,,1,dog-run,{agent},,0,4.5,4.5\n1,0,0.5,1,mw-reach,{agent},0.5,0,,\n"
        text += f"2,0,,1,lift-cube,{agent},,0,1.0,1.0\n"  # ManiSkill: dropped
    elif repo == "zhaoyi11/tcrl":
        text = "env_step,episode_reward,env,seed,agent\n1000.0,19.5,reacher-hard,767,TCRL\n"
    elif repo == "aidanscannell/iqrl-minimal":
        agent = {
            "iqrl": "iQRL",
            "alm_main": "ALM",
            "sac_main": "SAC",
            "td3_main": "TD3",
            "tdmpc_main": "TD-MPC",
        }
        algorithm = agent.get(Path(name).stem, "REDQ")
        value = 10.0 if "utd10" in name else 1.0  # REDQ: UTD 10 but on fish-swim
        text = ",env_step,episode_reward,env,seed,agent\n"
        text += f"0,15000,{value},fish-swim,1,{algorithm}\n1,15000,{value},walker-walk,1,{algorithm}\n"
    elif repo == "facebookresearch/MRQ":
        env = "Gym-Hopper-v4" if "gym" in name else "Atari-Pong-v5"
        text = f"----\nEnv: {env}\nTimestep\tSeed 0\t\tSeed 1\n0\t\t1.5\t2.5\n100000\t\t3.5\t4.5\n"
    elif repo in ("dojeon-ai/SimbaV2", "dmksjfl/DR.Q"):
        text = simba_rows(Path(name).stem)
    elif repo == "google-research/google-research":  # the Atari 100k group, the 55-game group (bbf tests)
        text = BBF
    elif repo == "danijar/dreamerv3":
        return dreamer_runs(path)
    else:
        raise AssertionError(f"no synthetic file for {repo}/{path}")
    return text.encode()


# RR8_BBF.csv's layout: runs of its Atari 100k group (29598-31481), then of its 55-game group (11623-12716):
# Pong (one of the 26) in both, Asteroids (not one) in the second, VideoPinball scored from a random return of
# 0 where DQN Zoo has 16256.9 (BBF's 1.68 is our 9.54).
BBF = (
    ",seed,game,GameScoreAverage,GameScoreNormalized\n"
    "96,29598,pong,14.6,1.0\n"
    "97,29599,pong,-3.05,0.5\n"
    "70,11693,pong,19.809999465942383,1.1475920677185059\n"
    "8,11631,asteroids,1176.699951171875,0.009805098176002502\n"
    "102,11725,videopinball,29715.390625,1.681885838508606\n"
)


@pytest.fixture
def released(tmp_path):
    """(a folder of synthetic released files laid out as `<owner>/<repo>/<path>`, the sources with their
    checksums)."""
    folder, sources = tmp_path / "released", []
    for source in SOURCES:
        files = {}
        for path in source.files:
            data = synthetic_file(source.repo, path)
            (folder / source.repo / path).parent.mkdir(parents=True, exist_ok=True)
            (folder / source.repo / path).write_bytes(data)
            files[path] = hashlib.sha256(data).hexdigest()
        sources.append(dataclasses.replace(source, files=files))
    return folder, tuple(sources)


def test_the_tables_built_from_a_folder_of_released_files(tmp_path, released):
    folder, sources = released
    report = reference_build.build(tmp_path / "out", folder, sources=sources, shipped=tmp_path / "none")
    dmc = load_reference(tmp_path / "out" / "published_dmc.csv.gz")
    assert set(dmc["source"]) == {"dcwm-iclr25", "tdmpc2-results", "tcrl-repo", "iqrl-icml24-draft"}
    key = ["source", "algorithm", "task", "env_step", "episode_return"]
    dcwm = dmc[dmc["source"] == "dcwm-iclr25"][key].values.tolist()
    assert dcwm == [["dcwm-iclr25", "DCWM", "ball_in_cup-catch", s, r] for s, r in ((0, 1.5), (25000, 2.5))]
    tdmpc2 = dmc[dmc["source"] == "tdmpc2-results"]
    assert set(tdmpc2["task"]) == {"dog-run"} and len(tdmpc2) == 4  # lift-cube (ManiSkill) dropped
    redq = dmc[dmc["algorithm"] == "REDQ"].set_index("task")["episode_return"].to_dict()
    assert redq == {"fish-swim": 1.0, "walker-walk": 10.0}  # UTD 10, but UTD 1 on fish-swim
    suites = pd.read_csv(tmp_path / "out" / "published_suites.csv.gz", keep_default_na=False, dtype=str)
    assert suites.columns.tolist() == [
        "source", "algorithm", "suite", "task", "env_step", "seed", "episode_return", "success"
    ]  # fmt: skip
    assert sorted(set(zip(suites["suite"], suites["task"]))) == [
        ("metaworld", "mw-reach"),
        ("myosuite", "myo-hand-reach"),
    ]
    assert set(suites.loc[suites["source"] == "tdmpc2-results", "episode_return"]) == {""}  # none released
    mrq = pd.read_csv(tmp_path / "out" / "mrq.csv.gz")
    assert mrq[["task", "env_step"]].drop_duplicates().values.tolist() == [
        ["atari:Pong", 0],
        ["atari:Pong", 400000],  # 100k agent steps of 4 frames
        ["gym:Hopper-v4", 0],
        ["gym:Hopper-v4", 100000],
    ]
    dreamer = pd.read_csv(tmp_path / "out" / "dreamerv3.csv.gz")
    assert sorted(set(zip(dreamer["algorithm"], dreamer["task"]))) == [
        ("CURL (pixels)", "ball_in_cup-catch"),
        ("DrQ-v2 (pixels)", "ball_in_cup-catch"),
        ("DreamerV3", "atari:UpNDown"),
        ("DreamerV3", "ball_in_cup-catch"),
        ("DreamerV3 (pixels)", "ball_in_cup-catch"),
        ("PPO (pixels)", "ball_in_cup-catch"),
        ("SAC (pixels)", "ball_in_cup-catch"),
    ]
    provenance = (tmp_path / "out" / "PROVENANCE.md").read_text()
    assert all(sha in provenance for s in sources for sha in s.files.values())
    assert all(line.endswith("differs from the shipped " + Path(line.split(":")[0]).name) for line in report)
    # the same files give the same bytes, and the command says so against a folder that holds them
    again = reference_build.build(tmp_path / "again", folder, sources=sources, shipped=tmp_path / "out")
    assert all(line.endswith("identical to the shipped file") for line in again)
    for name in os.listdir(tmp_path / "out"):
        assert (tmp_path / "out" / name).read_bytes() == (tmp_path / "again" / name).read_bytes()
    assert gzip.decompress((tmp_path / "out" / "bbf.csv.gz").read_bytes())[:6] == b"source"


def test_a_missing_or_altered_file_is_one_error_line_and_exit_2_before_anything_is_written(
    tmp_path, released, capsys
):
    folder, sources = released
    bad = folder / "zhaoyi11/tcrl/results/tcrl.csv"
    bad.write_text(bad.read_text().replace("19.5", "19.6"))
    expected = sources[1].files["results/tcrl.csv"]
    with pytest.raises(AnalysisError) as err:
        reference_build.build(tmp_path / "out", folder, sources=sources)
    got, url = hashlib.sha256(bad.read_bytes()).hexdigest(), sources[1].url("results/tcrl.csv")
    assert str(err.value) == f"{bad} has sha256 {got}, not {expected}: not the file of {url}"
    assert not (tmp_path / "out").exists()
    # the command line, with the recorded checksums: one line naming the first file, its source, how many more
    argv = ["--out", str(tmp_path / "out"), "--from", str(folder)]
    assert reference_build.main(argv) == 2
    out, err = capsys.readouterr()
    first = SOURCES[0]
    path = next(iter(first.files))
    assert (
        out == ""
        and err.count("\n") == 1
        and err.startswith(f"error: {folder / first.repo / path} has sha256 ")
    )
    more = sum(len(s.files) for s in SOURCES) - 1
    assert f"not {first.files[path]}: not the file of {first.url(path)} (and {more} more file(s)" in err
    assert not (tmp_path / "out").exists()
    (folder / first.repo / path).unlink()
    assert reference_build.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(
        f"error: {folder / first.repo / path} is missing (the file of {first.url(path)}, sha256 "
    )


def test_downloads_are_checked_and_kept_for_the_next_build(tmp_path, released):
    folder, sources = released
    urls = {s.url(p): (folder / s.repo / p).read_bytes() for s in sources for p in s.files}
    fetched = []

    def fetch(url):
        fetched.append(url)
        return urls[url]

    reference_build.build(tmp_path / "out", sources=sources, fetch=fetch, shipped=tmp_path / "none")
    assert sorted(fetched) == sorted(urls) and (tmp_path / "out/raw/zhaoyi11/tcrl/results/tcrl.csv").is_file()
    reference_build.build(
        tmp_path / "out", sources=sources, fetch=None, shipped=tmp_path / "none"
    )  # no fetch
    (tmp_path / "out/raw/zhaoyi11/tcrl/results/tcrl.csv").write_text("altered")
    url = sources[1].url("results/tcrl.csv")
    urls[url] = b"not the release"
    with pytest.raises(AnalysisError, match=f"^{url} sent a file with sha256 "):
        reference_build.build(tmp_path / "other", sources=sources, raw=tmp_path / "out/raw", fetch=fetch)

    def offline(url):
        raise OSError("no network")

    with pytest.raises(AnalysisError, match="cannot download zhaoyi11/tcrl/results/tcrl.csv from .* FROM="):
        reference_build.build(tmp_path / "other", sources=sources, raw=tmp_path / "out/raw", fetch=offline)
    assert not (tmp_path / "other").exists()


def test_bbf_keeps_its_atari_100k_runs_on_the_26_games_and_scores_only_as_bbf_did(tmp_path):
    """BBF's file holds two row groups: the Atari 100k agent (runs 29598-31481, the 26 games) is `BBF`; the
    55-game runs are kept apart, on the other games only; VideoPinball, which BBF normalised with a random
    return of 0 (ours: DQN Zoo's 16256.9), is left out, so every score drawn is BBF's own."""
    from analysis.reference.released import read_bbf_scores

    (path := tmp_path / "RR8_BBF.csv").write_text(BBF)
    ref = read_bbf_scores(path)
    assert ref[["algorithm", "task", "seed"]].values.tolist() == [
        ["BBF", "atari:Pong", 29598],
        ["BBF", "atari:Pong", 29599],
        ["BBF (55-game runs)", "atari:Asteroids", 11631],
    ]
    theirs = pd.read_csv(path).set_index("seed")["GameScoreNormalized"]
    ours = [human_normalized(t, r) for t, r in zip(ref["task"], ref["episode_return"])]
    np.testing.assert_allclose(ours, theirs[ref["seed"]].to_numpy(), rtol=1e-6)
    assert human_normalized("atari:VideoPinball", 29715.390625) == pytest.approx(9.54, abs=0.01)


def test_the_shipped_tables_hold_every_source_on_its_suites():
    curves, points = reference_tables(SHIPPED)
    sources = curves.groupby("source")["task"].apply(
        lambda t: sorted({x.partition(":")[0] for x in t if ":" in x})
    )
    assert set(sources.index) == {
        "dcwm-iclr25", "tdmpc2-results", "tcrl-repo", "iqrl-icml24-draft", "simbav2-repo", "drq-repo",
        "mrq-repo", "dreamerv3-repo",
    }  # fmt: skip
    assert sources["mrq-repo"] == ["atari", "gym"] and sources["dreamerv3-repo"] == ["atari"]
    assert sources["simbav2-repo"] == ["gym"] and sources["tcrl-repo"] == []
    suites = set(curves.loc[curves["source"].isin(["dcwm-iclr25", "tdmpc2-results"]), "task"])
    assert {"mw-reach", "myo-hand-reach", "walker-walk", "ball_in_cup-catch"} <= suites
    assert set(points["source"]) == {"bbf-repo"} and set(points["env_step"]) == {400_000}
    bbf = points.groupby("algorithm")["task"].apply(set)
    assert bbf["BBF"] == set(ATARI_26) and not bbf["BBF (55-game runs)"] & set(ATARI_26)
    assert "atari:VideoPinball" not in set(points["task"])
    assert {"DreamerV3", "DreamerV3 (pixels)", "DrQ-v2 (pixels)", "CURL (pixels)", "SAC (pixels)"} <= set(
        curves.loc[curves["source"] == "dreamerv3-repo", "algorithm"]
    )
    size = sum(p.stat().st_size for p in SHIPPED.iterdir())
    assert size < 8 * 2**20  # a few MB, in the repository
    provenance = (SHIPPED / "PROVENANCE.md").read_text()
    assert all(f"`{path}` sha256 `{sha}`" in provenance for s in SOURCES for path, sha in s.files.items())
    assert all(s.licence and s.commit in provenance for s in SOURCES)


@pytest.mark.skipif(
    not os.environ.get("IQRL_REFERENCE_RAW"),
    reason="IQRL_REFERENCE_RAW=<folder of the released files> not set",
)
def test_the_released_files_rebuild_the_shipped_tables_byte_for_byte(tmp_path):
    report = reference_build.build(tmp_path / "out", Path(os.environ["IQRL_REFERENCE_RAW"]))
    assert len(report) == len(os.listdir(SHIPPED)) and all(
        r.endswith("identical to the shipped file") for r in report
    )


def test_reference_1_draws_every_shipped_source_that_has_the_runs_tasks():
    from analysis.reference.overlays import gather_overlays

    notes = []
    overlays = gather_overlays(SHIPPED, {}, notes.append)
    assert notes == [
        "43 curves of the DR.Q results (SimbaV2 (UTD 2)) are SimbaV2's released ones, number for number: "
        "drawn once, as [simbav2-repo]"
    ]
    expected = {
        "walker-walk": {"dcwm-iclr25", "tdmpc2-results", "tcrl-repo", "iqrl-icml24-draft", "simbav2-repo",
                        "drq-repo", "dreamerv3-repo"},
        "metaworld:assembly": {"dcwm-iclr25", "tdmpc2-results"},  # SimbaV2's and DR.Q's: returns only
        "myosuite:myoHandKeyTurnFixed-v0": {"dcwm-iclr25", "tdmpc2-results", "simbav2-repo"},
        "gym:Hopper-v4": {"mrq-repo", "simbav2-repo", "drq-repo"},
        "atari:Pong": {"mrq-repo", "dreamerv3-repo"},
    }  # fmt: skip
    for task, sources in expected.items():
        value = "success" if task.startswith(("metaworld", "myosuite")) else "episode_return"
        assert set(select_reference(overlays.curves, [task], value=value)["source"]) == sources, task
    assert set(select_reference(overlays.points, ["atari:Pong"])["label"]) == {"BBF [bbf-repo]"}


def test_a_checkout_stands_in_for_its_source_in_the_shipped_tables(tmp_path):
    from analysis.reference.overlays import gather_overlays

    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "gym_results.txt").write_text(
        "Env: Gym-Hopper-v4\nTimestep\tSeed 0\n0\t\t1.5\n5000\t\t2.5\n"
    )
    mine = gather_overlays(SHIPPED, {"gym": tmp_path / "results" / "gym_results.txt"}).curves
    mrq = mine[mine["source"] == "mrq-repo"]
    assert set(mrq.loc[mrq["task"].str.startswith("gym:"), "task"]) == {"gym:Hopper-v4"}
    assert len(mrq[mrq["task"].str.startswith("gym:")]) == 2  # the checkout's, not the shipped 10 seeds
    assert mrq["task"].str.startswith("atari:").any()  # MR.Q's Atari curves stay


def test_the_demo_band_names_no_path_outside_the_repository(monkeypatch):
    from apps import demo

    band, note = demo.published_band()
    assert band is not None and band.empty
    assert note == (
        "no published iQRL or TD3 curve of cartpole-balance up to 20k env steps in the published tables that "
        "ship with the harness"
    )
    monkeypatch.setitem(demo.DEMO, "task", "walker-walk")
    monkeypatch.setitem(demo.DEMO, "steps", 100_000)
    band, note = demo.published_band()
    assert note == "" and set(band["label"]) == {"iQRL [iqrl-icml24-draft]", "TD3 [iqrl-icml24-draft]"}
    labels = [demo.band_label(curve) for _, curve in band.groupby("label")]
    assert not [text for text in [note, *labels] if "/" in text or str(REPO.parent) in text]


def test_make_figures_with_reference_1_draws_the_shipped_curves_of_the_runs_tasks(tmp_path):
    from analysis.figures import make as figures

    from analysis_helpers import write_run

    for seed in (0, 1):
        write_run(
            tmp_path / "r" / "iqrl" / "walker-walk" / f"seed{seed}", [(0, 50.0), (50_000, 400.0 + seed)]
        )
    argv = ["--results", tmp_path / "r", "--out", tmp_path / "f", "--reference", "--steps", "50000"]
    assert figures.main([str(a) for a in argv + ["--reps-curve", "20", "--reps-final", "20"]]) == 0
    assert (tmp_path / "f" / "per_task_curves.png").is_file()
    out = figures.make_figures(
        tmp_path / "r", tmp_path / "g", steps=[50_000], reps_curve=20, reps_final=20, reference=SHIPPED
    )
    assert not [n for n in out["notes"] if "published curves" in n]  # every shipped source found its task


def test_one_run_per_seed_keeps_the_longest_run_and_a_repeated_steps_last_row():
    """A seed label whose steps start again from its first step holds two runs (TD-MPC2's release): the one
    with more evaluations stays, the later on a tie; a step listed twice in one run keeps its last row; rows
    whose steps only interleave (TCRL's fish-swim seed 843) are one run."""
    from analysis.reference.released_dmc import dmc_task_name, one_run_per_seed

    rows = [(1, s, 1.0) for s in (0, 100, 200)] + [(1, s, 2.0) for s in (0, 100)]  # the first is longer
    rows += [(2, s, 1.0) for s in (0, 100)] + [(2, s, 2.0) for s in (0, 100)]  # a tie: the later
    rows += [(3, 0, 1.0), (3, 100, 1.0), (3, 100, 2.0)]  # a repeated step
    rows += [(4, 1000, 1.0), (4, 176000, 2.0), (4, 26000, 3.0), (4, 201000, 4.0), (4, 176000, 5.0)]
    df = pd.DataFrame(rows, columns=["seed", "env_step", "episode_return"]).assign(algorithm="A", task="t")
    kept = one_run_per_seed(df, ["algorithm", "task", "seed"])
    assert kept[["seed", "env_step", "episode_return"]].values.tolist() == [
        [1, 0, 1.0], [1, 100, 1.0], [1, 200, 1.0], [2, 0, 2.0], [2, 100, 2.0], [3, 0, 1.0], [3, 100, 2.0],
        [4, 1000, 1.0], [4, 26000, 3.0], [4, 201000, 4.0], [4, 176000, 5.0],
    ]  # fmt: skip
    assert [
        dmc_task_name(e) for e in ("cup-catch", "cartpole-balance-sparse", "finger-turn_easy", "lift-cube")
    ] == [
        "ball_in_cup-catch",
        "cartpole-balance_sparse",
        "finger-turn_easy",
        None,
    ]


def test_dreamerv3_scores_name_tasks_as_ours_and_refuse_a_file_they_cannot_read(tmp_path):
    from analysis.reference.released import dreamerv3_task, read_dreamerv3_scores

    assert [
        dreamerv3_task(t) for t in ("dmc_cartpole_balance_sparse", "dmc_ball_in_cup_catch", "atari_up_n_down")
    ] == [
        "cartpole-balance_sparse",
        "ball_in_cup-catch",
        "atari:UpNDown",
    ]
    assert dreamerv3_task("crafter_reward") is None
    runs = [{"task": "dmc_walker_walk", "method": "sac", "seed": 3, "xs": [0, 20000], "ys": [1.25, 2.5]}]
    (tmp_path / "dmc_vision-sac.json.gz").write_bytes(gzip.compress(json.dumps(runs).encode()))
    (tmp_path / "atari57-dreamerv3.json.gz").write_bytes(b"not read: another suite")
    ref = read_dreamerv3_scores(tmp_path)
    assert ref[["source", "algorithm", "task", "env_step", "seed", "episode_return"]].values.tolist() == [
        ["dreamerv3-repo", "SAC (pixels)", "walker-walk", 0, 3, 1.25],
        ["dreamerv3-repo", "SAC (pixels)", "walker-walk", 20000, 3, 2.5],
    ]
    runs[0]["ys"] = [1.0]
    (bad := tmp_path / "dmc_proprio-dreamerv3.json.gz").write_bytes(gzip.compress(json.dumps(runs).encode()))
    with pytest.raises(AnalysisError, match=f"^{bad} is not a DreamerV3 scores file .*2 steps, 1 returns"):
        read_dreamerv3_scores(tmp_path)
    bad.write_bytes(b"{}")
    with pytest.raises(AnalysisError, match=f"^{bad} is not a DreamerV3 scores file"):
        read_dreamerv3_scores(tmp_path)
    with pytest.raises(AnalysisError, match="holds no DreamerV3 scores"):
        read_dreamerv3_scores(tmp_path / "atari57-dreamerv3.json.gz")
