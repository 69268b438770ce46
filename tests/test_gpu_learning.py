"""The GPU's committed learning runs (apps/gpu_report/learning.py): kept by the first command and `collect`
as ordinary run folders, summarised in the GPU section of docs/performance.md beside the published mean of
their method, and drawn against the published curves (docs/gpu-results/learning.png)."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from analysis.reference.table import DEFAULT_REFERENCE, load_reference, select_reference
from analysis.runs.load import eval_rows, load_results
from apps.gpu_report import learning, results
from iqrl.runfolder.csvfile import write_csv
from iqrl.runfolder.status import write_status
from iqrl.runfolder.yamlfile import write_yaml

GPU, DATE = "NVIDIA H100 80GB HBM3", "2026-12-01"
STEM = f"nvidia-h100-80gb-hbm3-{DATE}"
#: Two seeds' evaluations: {seed: {env step: return}}; both stopped by the budget past 30k env steps.
EVALS = {0: {0: 30.0, 10000: 100.0, 20000: 250.0, 30000: 480.0}, 1: {0: 20.0, 10000: 120.0, 20000: 200.0}}
EVALS[1][30000] = 530.6
REACHED = {0: 31000, 1: 30500}
LOOP_S = {0: 100.0, 1: 122.0}  # the seeds' time split in all: the slower seed sets the rate
UPDATES = {0: 10500, 1: 10250}  # in their status.json: the table shows the fewest


def trained_group(folder):
    """A K = 2 group's seed folders as iqrl.multiseed writes them (a checkpoint too, which is not kept)."""
    for seed, evals in EVALS.items():
        run = folder / f"seed{seed}"
        (run / "checkpoint").mkdir(parents=True)
        (run / "checkpoint" / "ckpt.pt").write_bytes(b"large")
        config = {"agent": {"name": "iqrl"}, "task": "walker-walk", "seed": seed, "steps": 1000000}
        config.update(compile=True, cudagraphs=False, obs="state", sweep="", variant="default")
        config.update(seed_steps=10000, eval_every=10000)
        write_yaml(run / "config.yaml", config)
        write_csv(run / "eval.csv", [{"env_step": s, "episode_return": r} for s, r in evals.items()])
        seeded = {"time_collect_s": 5.0, "time_act_s": 0.0, "time_update_s": 0.0, "time_write_s": 5.0}
        train = [{"env_step": s, "updates": max(s - 10000, 0) // 2, **seeded} for s in evals if s]
        write_csv(run / "train.csv", [{**t, "time_evaluate_s": 8.0, "critic_loss": 0.5} for t in train])
        split = {"collect": LOOP_S[seed] / 4, "act": 0.0, "update": LOOP_S[seed] / 2, "evaluate": 16.0}
        split["write"] = LOOP_S[seed] / 4
        write_status(run, "interrupted", REACHED[seed], 1000000, time_split=split, updates=UPDATES[seed])


def collected(tmp_path):
    """The group through the first command's keep_run into OUT/runs/, with its part0.jsonl, then `collect`
    into a results folder (docs/gpu-results/ of the test) and `doc` into a page with the section's markers."""
    out, docs = tmp_path / "out", tmp_path / "docs"
    trained_group(tmp_path / "group" / "iqrl")
    learning.keep_run(tmp_path / "group" / "iqrl", learning.run_folder(out / "runs", "iqrl", "walker-walk"))
    rows = [{"part": 0, "kind": "machine", "gpu": GPU, "date": DATE, "smoke": False}]
    learn = {"part": 0, "kind": "learn", "key": "iqrl walker-walk state", "mode": "K-seed compiled"}
    rows.append({**learn, "seeds": 2, "env_steps": 30500, "wall_s": 300.0, "first": True})
    (out / "part0.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    results.collect(out, docs)
    page = tmp_path / "performance.md"
    page.write_text(f"# Performance\n\n{results.BEGIN}\n{results.END}\n")
    return docs, page


def published_iqrl(step: int) -> float:
    """The shipped iQRL walker-walk curve at `step`: its seeds' mean at each published step, linear
    between."""
    ref = load_reference(DEFAULT_REFERENCE)
    rows = ref[(ref["algorithm"] == "iQRL") & (ref["task"] == "walker-walk") & (ref["ablation"] == "")]
    means = rows.groupby("env_step")["episode_return"].mean()
    below, above = means[means.index <= step].iloc[-1:], means[means.index >= step].iloc[:1]
    x0, x1 = below.index[0], above.index[0]
    return (
        below.iloc[0]
        if x0 == x1
        else below.iloc[0] + (above.iloc[0] - below.iloc[0]) * (step - x0) / (x1 - x0)
    )


def test_committed_runs_load_as_ordinary_run_folders(tmp_path):
    docs, _ = collected(tmp_path)
    kept = docs / "runs" / STEM / "iqrl" / "walker-walk"
    assert sorted(p.name for p in (kept / "seed0").iterdir()) == [
        "config.yaml",
        "eval.csv",
        "status.json",
        "train.csv",
    ]
    table, info = load_results(docs / "runs", per_sweep=True)
    runs = eval_rows(table).drop_duplicates("run")
    assert info.n_runs == 2 and set(runs["sweep"]) == {STEM} and set(runs["method"]) == {"iqrl"}
    assert set(runs["task"]) == {"walker-walk"} and sorted(runs["seed"]) == [0, 1]
    assert set(runs["state"]) == {"interrupted"}


def test_doc_draws_the_runs_and_lists_each_seed_beside_the_published_mean(tmp_path, monkeypatch):
    monkeypatch.setattr(results, "missing_lines", lambda rows: [])  # the plan's rows: not this test's (2 s)
    docs, page = collected(tmp_path)
    results.write_doc(path=page, folder=docs)
    assert (docs / learning.FIGURE).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = page.read_text()
    assert (
        f"![The committed GPU learning runs against the published curves](gpu-results/{learning.FIGURE})"
        in text
    )
    # reached: the slower seed's 30500; the seed phase 10000 env steps in 10 s of loop, then the slower
    # seed's 20500 env steps in its 122 - 10 s; evaluations of 16 s over 4 (seed 0) or 4 (seed 1) = 4 s each
    seeding, updating = 10000 / 10, min(21000 / 90, 20500 / 112)
    hours = (10000 / seeding + 990000 / updating + 101 * 4.0) / 3600 / 2
    update_ms = max(1000 * 50 / 10500, 1000 * 61 / 10250)
    published = published_iqrl(30000)
    assert round(published, 1) == 519.8  # iQRL's released mean at 30k env steps
    row = f"| iqrl walker-walk state | K-seed compiled | learning | 2 | 30500 | 10250 | {seeding:.1f} "
    row += f"| {updating:.1f} | {update_ms:.1f} | 4.0 | {hours:.2f} (every 10000) | 30000 "
    row += f"| 480.0, 530.6 | 505.3 | iQRL [iqrl-icml24-draft]: {published:.1f} |"
    assert row in text
    assert "| run | mode | seeds |" not in text  # its learn row: shown once, from its run folders
    assert "Committed GPU runs evaluated after an update (learning runs): 1 of 1." in text
    (run,) = learning.committed_runs(docs, results.load_rows(docs))
    assert (run.gpu, run.date, run.mode, run.seeds) == (GPU, DATE, "K-seed compiled", 2)
    assert run.published == {"iQRL [iqrl-icml24-draft]": pytest.approx(published, abs=1e-9)}
    assert not results.out_of_date(results.load_rows(docs), page, docs)

    shutil.rmtree(docs / "runs")  # no committed run: one line, and no figure left behind
    results.write_doc(path=page, folder=docs)
    text = page.read_text()
    assert "No GPU learning run is committed yet (docs/gpu-results/runs/)." in text
    assert learning.FIGURE not in text and not (docs / learning.FIGURE).exists()
    assert "| iqrl walker-walk state | K-seed compiled | 2 | 30500 | 5.0 |" in text  # the learn row again


def test_the_published_mean_is_the_curve_interpolated_between_its_steps():
    curves = load_reference(DEFAULT_REFERENCE)

    band = select_reference(curves, ["walker-walk"])
    band = band[band["algorithm"] == "iQRL"]
    label = "iQRL [iqrl-icml24-draft]"
    assert round(learning.published_means(band, 20000)[label], 1) == 194.8
    assert learning.published_means(band, 27500)[label] == pytest.approx(published_iqrl(27500), abs=1e-9)
    assert published_iqrl(27500) == pytest.approx((published_iqrl(25000) + published_iqrl(30000)) / 2)
    assert learning.published_means(band, 10000) == {}  # before the curve's first step (15k)


def test_collect_replaces_a_run_it_holds_whole(tmp_path):
    docs, _ = collected(tmp_path)
    shutil.rmtree(tmp_path / "out" / "runs" / "iqrl" / "walker-walk" / "seed1")
    results.collect(tmp_path / "out", docs)
    kept = docs / "runs" / STEM / "iqrl" / "walker-walk"
    assert [p.name for p in kept.iterdir()] == ["seed0"]
    assert pd.read_csv(kept / "seed0" / "eval.csv")["episode_return"].tolist() == list(EVALS[0].values())


def test_a_status_without_a_count_keeps_the_one_before_and_a_folder_without_counts_has_none(tmp_path):
    """A failure's status.json (written with no split or count) keeps the updates of the one before; a run
    folder whose status.json has no count (an earlier version's) shows none rather than a wrong one."""
    write_status(tmp_path / "seed0", "running", 500, 1000, time_split={"update": 1.0}, updates=250)
    write_status(tmp_path / "seed0", "failed", 500, 1000, error="disk full")
    assert learning.updates_made(tmp_path) == 250
    write_status(tmp_path / "seed1", "interrupted", 400, 1000)
    assert learning.updates_made(tmp_path) is None
