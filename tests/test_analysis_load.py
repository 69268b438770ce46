"""Loading run folders: discovery, identity (config.yaml vs sweep layout), partial runs, errors, cache."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.errors import AnalysisError, AnalysisWarning
from analysis.runs.identity import identity_from_layout, parse_overrides
from analysis.runs.load import eval_rows, load_results
from analysis.runs.task_groups import TASK_GROUPS, task_group
from analysis.stats import metrics
from iqrl.runfolder.layout import method_label

from analysis_helpers import write_hand_results, write_run


def test_task_groups_spec_and_other():
    assert task_group("walker-walk") == "easy"
    assert task_group("cartpole-swingup") == "easy"
    assert task_group("quadruped-run") == "medium"
    assert task_group("cartpole-swingup_sparse") == "hard"
    assert task_group("point_mass-easy") == "other"
    assert [len(TASK_GROUPS[g]) for g in ("easy", "medium", "hard")] == [8, 12, 8]


def test_method_label_and_override_parsing():
    assert method_label("iqrl", "default") == "iqrl"
    assert method_label("iqrl", "horizon=3") == "iqrl/horizon=3"
    assert parse_overrides(["agent.horizon=3", "agent.fsq_levels=[8, 5, 5]"]) == {
        "horizon": "3",
        "fsq_levels": "8-5-5",
    }
    assert parse_overrides(variant="fsq_levels=8-5-5-5,use_fsq=false") == {
        "fsq_levels": "8-5-5-5",
        "use_fsq": "false",
    }
    # A list value written with commas inside a combined variant name.
    assert parse_overrides(variant="fsq_levels=8,5,horizon=3") == {"fsq_levels": "8-5", "horizon": "3"}
    assert parse_overrides(variant="default") == {}


def test_identity_from_layout():
    assert identity_from_layout(("abl", "iqrl", "walker-walk", "horizon=3", "seed2")) == {
        "agent": "iqrl",
        "task": "walker-walk",
        "variant": "horizon=3",
        "seed": 2,
        "sweep": "abl",
    }
    # No variant folder, no sweep folder.
    assert identity_from_layout(("td3", "cheetah-run", "seed0")) == {
        "agent": "td3",
        "task": "cheetah-run",
        "variant": "default",
        "seed": 0,
        "sweep": "",
    }
    with pytest.raises(ValueError):
        identity_from_layout(("iqrl", "walker-walk", "run0"))


def test_identity_from_layout_with_a_freely_named_variant():
    # `make validate --small` writes <agent>/<task>/small/seed<k>: anchored on the known task name
    assert identity_from_layout(("validate", "iqrl", "walker-walk", "small", "seed0")) == {
        "agent": "iqrl",
        "task": "walker-walk",
        "variant": "small",
        "seed": 0,
        "sweep": "validate",
    }
    assert identity_from_layout(("td3", "walker-walk", "my-variant", "seed1"))["agent"] == "td3"
    # an unknown task: anchored on the registered agent name
    assert identity_from_layout(("x", "iqrl", "mytask", "small", "seed1")) == {
        "agent": "iqrl",
        "task": "mytask",
        "variant": "small",
        "seed": 1,
        "sweep": "x",
    }
    assert identity_from_layout(("x", "td3", "mytask", "seed1"))["variant"] == "default"


def test_layout_only_runs_of_a_freely_named_variant_do_not_collide(tmp_path):
    for agent in ("iqrl", "td3"):
        for seed in range(2):
            write_run(
                tmp_path / "validate" / agent / "walker-walk" / "small" / f"seed{seed}",
                [(0, 0.0), (100, 1.0)],
            )
    table, info = load_results(tmp_path)
    runs = table.drop_duplicates("run")
    assert info.n_runs == 4 and info.n_duplicates == 0
    assert sorted(runs["method"].unique()) == ["iqrl/small", "td3/small"]
    assert set(runs["task"]) == {"walker-walk"} and set(runs["sweep"]) == {"validate"}


def test_layout_only_runs_load(tmp_path):
    write_hand_results(tmp_path)
    table, info = load_results(tmp_path)
    assert info.n_runs == 12 and not info.from_cache
    runs = table.drop_duplicates("run").set_index("run")
    row = runs.loc["s/a/dog-run/default/seed3"]
    assert (row.agent, row.task, row.variant, row.seed, row.sweep, row.method, row.group) == (
        "a",
        "dog-run",
        "default",
        3,
        "s",
        "a",
        "hard",
    )
    assert not row.has_config
    final = table[(table["run"] == "s/a/dog-run/default/seed3") & (table["env_step"] == 100)]
    assert final["episode_return"].tolist() == [1000.0]


def test_config_yaml_wins_over_layout(tmp_path):
    cfg = {
        "agent": {"name": "iqrl", "horizon": 3, "fsq_levels": [8, 8]},
        "task": "walker-walk",
        "seed": 7,
        "steps": 200,
        "sweep": "abl",
        "variant": "horizon=3",
        "overrides": ["agent.horizon=3"],
        "meta": {},
    }
    # Folder names deliberately disagree with the config.
    write_run(tmp_path / "x" / "y" / "seed0", [(0, 1.0), (200, 2.0)], config=cfg)
    table, _ = load_results(tmp_path)
    row = table.iloc[0]
    assert (row.agent, row.task, row.seed, row.variant, row.sweep, row.method) == (
        "iqrl",
        "walker-walk",
        7,
        "horizon=3",
        "abl",
        "iqrl/horizon=3",
    )
    assert json.loads(row.overrides) == {"horizon": "3"}
    assert json.loads(row.config_values)["fsq_levels"] == "8-8"
    assert row.target_steps == 200


def test_train_diagnostics_are_joined_on_env_step(tmp_path):
    write_run(
        tmp_path / "iqrl" / "walker-walk" / "seed0",
        [(0, 1.0), (100, 5.0)],
        train={"env_step": [50, 100], "latent_rank": [10.0, 12.0], "q_loss": [0.5, 0.25]},
    )
    table, _ = load_results(tmp_path)
    assert table["env_step"].tolist() == [0, 50, 100]
    assert table["latent_rank"].tolist()[1:] == [10.0, 12.0]
    assert table["episode_return"].notna().tolist() == [True, False, True]


def test_partial_runs_included_with_warning_or_excluded(tmp_path):
    write_run(tmp_path / "a" / "walker-walk" / "seed0", [(0, 1.0), (100, 2.0)])
    write_run(tmp_path / "a" / "walker-walk" / "seed1", [(0, 1.0), (50, 3.0)], state="running", steps=100)
    write_run(tmp_path / "a" / "walker-walk" / "seed2", [(0, 1.0), (20, 1.5)], state="failed", steps=100)
    with pytest.warns(AnalysisWarning, match=r"2 run\(s\) not done \(1 failed, 1 running\) included"):
        table, info = load_results(tmp_path)
    assert info.n_runs == 3 and info.n_partial == 2
    # Included up to the last evaluation.
    assert table.loc[table["seed"] == 1, "env_step"].max() == 50
    with pytest.warns(AnalysisWarning, match=r"2 run\(s\) not done .* excluded"):
        table, info = load_results(tmp_path, exclude_partial=True)
    assert table["seed"].unique().tolist() == [0] and info.n_excluded == 2


def test_missing_or_empty_results_are_errors(tmp_path):
    with pytest.raises(AnalysisError, match="does not exist"):
        load_results(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(AnalysisError, match="no run folders"):
        load_results(tmp_path / "empty")
    # A run folder whose eval.csv has no rows yet is skipped; nothing readable left -> error.
    write_run(tmp_path / "header" / "a" / "walker-walk" / "seed0", [])
    with (
        pytest.warns(AnalysisWarning, match="no evaluations yet"),
        pytest.raises(AnalysisError, match="no readable"),
    ):
        load_results(tmp_path / "header")


def test_cache_reused_and_invalidated_when_a_run_changes(tmp_path):
    results, cache = tmp_path / "results", tmp_path / "out" / ".cache"
    write_hand_results(results)
    before = {p: p.stat().st_mtime_ns for p in results.rglob("*")}
    t1, i1 = load_results(results, cache_dir=cache)
    t2, i2 = load_results(results, cache_dir=cache)
    assert (i1.from_cache, i2.from_cache) == (False, True)
    assert t1.equals(t2)
    # Rewrite one run's evaluations: the cache must be rebuilt and show the new value.
    run = results / "s" / "a" / "walker-walk" / "default" / "seed0"
    write_run(run, [(0, 0.0), (100, 42.0), (200, 43.0)])
    os.utime(run / "eval.csv", ns=(1, 1))  # a different mtime even on coarse-clock filesystems
    t3, i3 = load_results(results, cache_dir=cache)
    assert not i3.from_cache
    assert t3.loc[t3["run"] == "s/a/walker-walk/default/seed0", "episode_return"].tolist() == [
        0.0,
        42.0,
        43.0,
    ]
    # A corrupt cache file is rebuilt, not trusted.
    (cache / "runs.parquet").write_bytes(b"not parquet")
    assert not load_results(results, cache_dir=cache)[1].from_cache
    # A new run folder also invalidates it.
    write_run(results / "s" / "a" / "hopper-hop" / "default" / "seed0", [(0, 1.0), (100, 2.0)])
    assert not load_results(results, cache_dir=cache)[1].from_cache
    # Nothing was written under RESULTS except the runs this test wrote itself.
    assert not any(p.name.startswith(".") or p.suffix == ".parquet" for p in results.rglob("*"))
    assert all(
        p.stat().st_mtime_ns == m
        for p, m in before.items()
        if p.is_file() and "walker-walk/default/seed0" not in str(p)
    )


def test_duplicate_method_task_seed_counted_once(tmp_path):
    # main/iqrl and the components sweep's default variant: the same method, task and seeds.
    for seed in range(5):
        write_run(
            tmp_path / "main" / "iqrl" / "walker-walk" / "default" / f"seed{seed}",
            [(0, 0.0), (100, 100.0 * (seed + 1))],
        )
    for seed in range(2):  # the components sweep only got to seeds 0 and 1, neither finished
        write_run(
            tmp_path / "components" / "iqrl" / "walker-walk" / "default" / f"seed{seed}",
            [(0, 0.0), (50, 7.0)],
            state="running" if seed else "failed",
            steps=100,
        )
    with pytest.warns(AnalysisWarning, match=r"2 run\(s\) repeat the method, task and seed"):
        table, info = load_results(tmp_path)
    runs = table.drop_duplicates("run")
    assert info.n_duplicates == 2 and info.n_runs == 5 and sorted(runs["seed"]) == [0, 1, 2, 3, 4]
    # the finished run wins over an unfinished one of the same experiment (same budget, same variant)
    assert set(runs["run"].str.split("/").str[0]) == {"main"}
    est = metrics.final_estimates(eval_rows(table), [100], reps=50).table.set_index("metric")
    assert est.loc["iqm", "value"] == pytest.approx(300.0) and est.loc["iqm", "n_runs"] == 5


def test_repeated_step_after_resume_keeps_the_last_row_whole(tmp_path):
    run = write_run(
        tmp_path / "a" / "walker-walk" / "seed0",
        [(0, 1.0), (100, 2.0), (100, 3.0)],
        train={"env_step": [100, 100], "q_loss": [0.5, None], "updates": [40, 50]},
    )
    ev = (run / "eval.csv").read_text().splitlines()
    ev[-1] = "100,3.0,,1,1.0"  # the repeated evaluation has no std
    (run / "eval.csv").write_text("\n".join(ev) + "\n")
    table, _ = load_results(tmp_path)
    row = table[table["env_step"] == 100].iloc[0]
    assert len(table[table["env_step"] == 100]) == 1
    assert row["episode_return"] == 3.0 and row["episode_return_std"] != row["episode_return_std"]  # NaN
    assert row["updates"] == 50 and row["q_loss"] != row["q_loss"]  # not 0.5 from the earlier row


def iqrl_config(sweep, seed, steps, variant="default", overrides=(), **top):
    """A resolved config.yaml of an iqrl walker-walk run (what the trainer writes; keys trimmed)."""
    return {
        "agent": {"name": "iqrl", "mlp_dims": [512, 512], "use_rew_loss": False},
        "task": "walker-walk",
        "seed": seed,
        "steps": steps,
        "out": f"/cluster/{sweep}/seed{seed}",
        "sweep": sweep,
        "variant": variant,
        "overrides": list(overrides),
        "episode_length": 1000,
        "device": "cuda",
        "checkpoint_every": 50000,
        "meta": {"host": sweep},
        **top,
    }


def test_a_smoke_run_does_not_stand_in_for_a_longer_run_of_another_config(tmp_path):
    # The main sweep's 1M-step runs are still running; the smoke sweep's 3000-step runs (200-step episodes,
    # small networks) are done. Same method, task and seeds, but another experiment: main must stay.
    smoke = ["episode_length=200", "agent.mlp_dims=[64,64]"]
    for seed in range(2):
        write_run(
            tmp_path / "main" / "iqrl" / "walker-walk" / "default" / f"seed{seed}",
            [(0, 0.0), (100_000, 300.0 + seed)],
            state="running",
            steps=1_000_000,
            config=iqrl_config("main", seed, 1_000_000),
        )
        write_run(
            tmp_path / "smoke" / "iqrl" / "walker-walk" / "default" / f"seed{seed}",
            [(0, 0.0), (3000, 20.0)],
            steps=3000,
            config={
                **iqrl_config("smoke", seed, 3000, overrides=smoke, episode_length=200),
                "agent": {"name": "iqrl", "mlp_dims": [64, 64], "use_rew_loss": False},
            },
        )
    with pytest.warns(AnalysisWarning) as record:
        table, info = load_results(tmp_path)
    assert sorted(table.drop_duplicates("run")["run"]) == [
        f"main/iqrl/walker-walk/default/seed{s}" for s in (0, 1)
    ]
    assert (info.n_duplicates, info.n_conflicts) == (0, 2)
    (line,) = [str(w.message) for w in record if "another configuration" in str(w.message)]
    assert (
        "smoke/iqrl/walker-walk/default/seed0 (kept main/iqrl/walker-walk/default/seed0; differs in "
        "episode_length, mlp_dims, steps)" in line
    )
    est = metrics.final_estimates(eval_rows(table), [100_000], reps=50).table.set_index("metric")
    assert est.loc["iqm", "value"] == pytest.approx(300.5) and est.loc["iqm", "n_runs"] == 2


def test_repeats_of_the_same_experiment_are_told_apart_from_where_and_how_they_ran(tmp_path):
    # Identical experiments in two sweeps: out, device, checkpoint cadence, meta, sweep and variant differ.
    write_run(
        tmp_path / "main" / "iqrl" / "walker-walk" / "default" / "seed0",
        [(0, 0.0), (100, 5.0)],
        config=iqrl_config("main", 0, 100),
    )
    write_run(
        tmp_path / "parts" / "iqrl" / "walker-walk" / "default" / "seed0",
        [(0, 0.0), (100, 6.0)],
        config={**iqrl_config("parts", 0, 100), "device": "cpu", "checkpoint_every": 10},
    )
    # A copy without config.yaml is compared by what its folder and status.json tell: variant and budget.
    write_run(
        tmp_path / "copy" / "iqrl" / "walker-walk" / "default" / "seed0", [(0, 0.0), (100, 7.0)], steps=100
    )
    with pytest.warns(AnalysisWarning, match=r"2 run\(s\) repeat the method, task and seed"):
        table, info = load_results(tmp_path)
    assert table["run"].unique().tolist() == ["copy/iqrl/walker-walk/default/seed0"]  # first path of equals
    assert (info.n_duplicates, info.n_conflicts) == (2, 0)


def test_a_run_from_before_a_key_was_added_repeats_a_new_run_with_the_legacy_value(tmp_path):
    # iqrl.runfolder.config_keys.LEGACY_VALUES: an older config.yaml lacks agent.official_shared_eval_seed; it
    # behaved as false, so a new run with false is the same experiment and one with true is another.
    old = iqrl_config("old", 0, 100)
    new = iqrl_config("new", 0, 100)
    new["agent"] = {**new["agent"], "official_shared_eval_seed": False}
    write_run(
        tmp_path / "old" / "iqrl" / "walker-walk" / "default" / "seed0", [(0, 0.0), (100, 5.0)], config=old
    )
    write_run(
        tmp_path / "new" / "iqrl" / "walker-walk" / "default" / "seed0", [(0, 0.0), (100, 6.0)], config=new
    )
    with pytest.warns(AnalysisWarning):
        _, info = load_results(tmp_path)
    assert (info.n_duplicates, info.n_conflicts) == (1, 0)
    new["agent"]["official_shared_eval_seed"] = True
    write_run(
        tmp_path / "new" / "iqrl" / "walker-walk" / "default" / "seed0", [(0, 0.0), (100, 6.0)], config=new
    )
    with pytest.warns(AnalysisWarning, match="differs in official_shared_eval_seed"):
        _, info = load_results(tmp_path)
    assert (info.n_duplicates, info.n_conflicts) == (0, 1)


def test_a_run_whose_config_carries_never_read_learner_keys_repeats_a_new_run(tmp_path):
    # iqrl.runfolder.config_keys.INERT_REMOVED_KEYS: older iqrl configs carried the SAC learner's keys, never
    # read; a new run without them is the same experiment (a key outside that set would make it another, test
    # above).
    old = iqrl_config("old", 0, 100)
    old["agent"] = {**old["agent"], "init_temperature": 0.1, "alpha_lr": 3e-4}
    new = iqrl_config("new", 0, 100)
    write_run(
        tmp_path / "old" / "iqrl" / "walker-walk" / "default" / "seed0", [(0, 0.0), (100, 5.0)], config=old
    )
    write_run(
        tmp_path / "new" / "iqrl" / "walker-walk" / "default" / "seed0", [(0, 0.0), (100, 6.0)], config=new
    )
    with pytest.warns(AnalysisWarning):
        _, info = load_results(tmp_path)
    assert (info.n_duplicates, info.n_conflicts) == (1, 0)


def _corrupt(path: Path, line: int, column: str, cell: str) -> None:
    """Replace one cell of a CSV file (line counted from 1, the header being line 1)."""
    rows = path.read_text().splitlines()
    header = rows[0].split(",")
    cells = rows[line - 1].split(",")
    cells[header.index(column)] = cell
    rows[line - 1] = ",".join(cells)
    path.write_text("\n".join(rows) + "\n")


@pytest.mark.parametrize(
    "line, column, cell",
    [
        (4, "episode_return", "inf"),  # the final return
        (4, "episode_return", "-inf"),
        (4, "episode_return", "nan"),  # was read as missing: "never reached" the final step
        (3, "episode_return", "inf"),  # inside the curve
        (3, "episode_return", "oops"),  # text in the return column
        (3, "episode_return", ""),
        (3, "env_step", "x"),
        (2, "success", "inf"),
    ],
)
def test_a_return_that_is_no_finite_number_is_one_error_naming_the_file_and_line(
    tmp_path, line, column, cell
):
    for seed in range(2):
        write_run(tmp_path / "a" / "walker-walk" / f"seed{seed}", [(0, 1.0), (50, 5.0), (100, 9.0)])
    path = tmp_path / "a" / "walker-walk" / "seed1" / "eval.csv"
    if column == "success":
        frame = pd.read_csv(path).assign(success=0.5)
        frame.to_csv(path, index=False)
    _corrupt(path, line, column, cell)
    message = (
        f"a/walker-walk/seed1/eval.csv line {line}: {column} is {cell!r}, not a finite number: no figure"
    )
    with pytest.raises(AnalysisError, match=re.escape(message)):
        load_results(tmp_path)


def test_runs_without_a_scorable_row_are_named_and_left_out(tmp_path):
    """A run with only its step-0 evaluation (never scored at the fallback step), one with an empty eval.csv,
    and a `done` run whose eval.csv is gone: each named in a warning and left out of the table."""
    for seed in range(2):
        write_run(tmp_path / "a" / "walker-walk" / f"seed{seed}", [(0, 1.0), (100, 9.0)])
    write_run(tmp_path / "a" / "walker-walk" / "seed2", [(0, 1.0)], state="running", steps=100)
    write_run(tmp_path / "a" / "walker-walk" / "seed3", [(0, 1.0), (100, 9.0)])
    (tmp_path / "a" / "walker-walk" / "seed3" / "eval.csv").unlink()
    write_run(tmp_path / "a" / "walker-walk" / "seed4", [], state="running", steps=100)
    with pytest.warns(AnalysisWarning) as record:
        table, info = load_results(tmp_path)
    lines = [str(w.message) for w in record]
    assert (
        "1 run folder(s) say done but hold neither eval.csv nor a checkpoint, so they are left out: "
        "a/walker-walk/seed3 (their evaluations are lost: train them again in another folder)" in lines
    )
    assert (
        "2 run folder(s) skipped: a/walker-walk/seed2: only its evaluation at env step 0, before any "
        "training; a/walker-walk/seed4: no evaluations yet" in lines
    )
    assert sorted(table["seed"].unique()) == [0, 1] and info.n_runs == 2


def test_a_run_file_that_is_not_utf8_is_named_where_its_run_is_skipped(tmp_path):
    """A config.yaml, eval.csv or train.csv saved in Latin-1 (an é): the run is left out under a warning
    naming its folder, the file and the byte (the decoder's message named no file)."""
    folders = [tmp_path / "a" / "walker-walk" / f"seed{seed}" for seed in range(4)]
    for run in folders:
        write_run(run, [(0, 1.0), (100, 9.0)], config={"agent": "a", "task": "walker-walk", "seed": 0})
    (folders[1] / "config.yaml").write_bytes("agent: a # café\ntask: walker-walk\n".encode("latin-1"))
    (folders[2] / "train.csv").write_bytes("env_step,q_loss\n100,1.0 é\n".encode("latin-1"))
    (folders[3] / "eval.csv").write_bytes("env_step,episode_return\n100,1.0\n# é\n".encode("latin-1"))
    with pytest.warns(AnalysisWarning) as record:
        table, info = load_results(tmp_path)
    assert "3 run folder(s) skipped: " + "; ".join(
        f"a/walker-walk/seed{seed}: {name} is not UTF-8 text (byte 0xe9 on line {line})"
        for seed, name, line in ((1, "config.yaml", 1), (2, "train.csv", 2), (3, "eval.csv", 3))
    ) in [str(w.message) for w in record]
    assert info.n_runs == 1 and table["run"].unique().tolist() == ["a/walker-walk/seed0"]


def test_text_in_a_train_csv_column_is_one_error_and_nan_there_stands(tmp_path):
    run = write_run(
        tmp_path / "a" / "walker-walk" / "seed0", [(0, 1.0), (100, 9.0)], train={"env_step": [0, 100]}
    )
    (run / "train.csv").write_text("env_step,latent_rank,q_loss\n0,5,nan\n100,6,inf\n")
    table, _ = load_results(tmp_path)
    assert table["latent_rank"].tolist() == [5, 6] and np.isnan(table["q_loss"].iloc[0])
    (run / "train.csv").write_text("env_step,latent_rank,q_loss\n0,5,nan\n100,oops,1.0\n")
    with pytest.raises(
        AnalysisError, match=r"^a/walker-walk/seed0/train.csv line 3: latent_rank is 'oops', not"
    ):
        load_results(tmp_path)


def test_runs_from_different_dependency_locks_are_counted_in_one_warning(tmp_path):
    """config.yaml's meta.lock (uv.lock's hash at install, iqrl.runfolder.provenance.lock_hash): runs of two
    locks
    stay in the table, under a warning that counts each lock's runs and those from before locks."""

    def run(seed: int, lock: str | None) -> None:
        cfg = {"agent": {"name": "iqrl"}, "task": "walker-walk", "seed": seed, "steps": 100}
        cfg["meta"] = {"lock": lock} if lock else {}
        write_run(tmp_path / f"seed{seed}", [(0, 1.0), (100, 2.0)], config=cfg)

    for seed, lock in ((1, "aaaaaaaaaaaa"), (2, "aaaaaaaaaaaa"), (3, "bbbbbbbbbbbb"), (4, None)):
        run(seed, lock)
    with pytest.warns(AnalysisWarning) as caught:
        table, info = load_results(tmp_path)
    (line,) = [str(w.message) for w in caught if "dependency locks" in str(w.message)]
    assert "2 dependency locks" in line and "aaaaaaaaaaaa: 2 run(s), bbbbbbbbbbbb: 1 run(s)" in line
    assert line.endswith("; 1 run(s) from before locks were recorded")
    assert info.n_runs == 4
    assert sorted(table.drop_duplicates("run")["lock"]) == [
        "",
        "aaaaaaaaaaaa",
        "aaaaaaaaaaaa",
        "bbbbbbbbbbbb",
    ]


def test_runs_of_one_lock_raise_no_lock_warning(tmp_path, recwarn):
    for seed in (1, 2):
        cfg = {"agent": {"name": "iqrl"}, "task": "walker-walk", "seed": seed, "steps": 100}
        write_run(
            tmp_path / f"seed{seed}", [(0, 1.0), (100, 2.0)], config={**cfg, "meta": {"lock": "c" * 12}}
        )
    load_results(tmp_path)
    assert not [w for w in recwarn if "dependency locks" in str(w.message)]
