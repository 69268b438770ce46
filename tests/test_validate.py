"""scripts/validate.py: the table logic on a hand-made run folder and reference file (no training)."""

import importlib.util
import json
import math
from pathlib import Path

import pandas as pd
import pytest

from iqrl.config.build import build_config
from iqrl.core.registry import action_agents

from conftest import TINY_DISCRETE_TASK

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("validate", REPO / "scripts" / "validate.py")
validate = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(validate)


def reference() -> pd.DataFrame:
    rows = [
        # source s1, iQRL on walker-walk: two seeds on different step grids
        ("s1", "iQRL", "", "walker-walk", 0, 1, 10.0),
        ("s1", "iQRL", "", "walker-walk", 10000, 1, 100.0),
        ("s1", "iQRL", "", "walker-walk", 21000, 1, 300.0),
        ("s1", "iQRL", "", "walker-walk", 40000, 1, 900.0),
        ("s1", "iQRL", "", "walker-walk", 0, 2, 20.0),
        ("s1", "iQRL", "", "walker-walk", 15000, 2, 200.0),
        ("s1", "iQRL", "", "walker-walk", 25000, 2, 500.0),
        # an ablation arm: never a main result
        ("s1", "iQRL", "study:arm", "walker-walk", 20000, 1, 999.0),
        # SAC in two sources; s3's curve starts after the step asked for
        ("s2", "SAC", "", "walker-walk", 20000, 7, 40.0),
        ("s2", "SAC", "", "walker-walk", 20000, 8, 60.0),
        ("s3", "SAC", "", "walker-walk", 30000, 1, 77.0),
        # another task
        ("s2", "SAC", "", "cheetah-run", 20000, 7, 555.0),
    ]
    return pd.DataFrame(
        rows, columns=["source", "algorithm", "ablation", "task", "env_step", "seed", "episode_return"]
    )


def write_run(root: Path, agent: str, seed: int, evals, state="done", error=None, variant="default"):
    d = root / agent / "walker-walk" / variant / f"seed{seed}"
    d.mkdir(parents=True)
    pd.DataFrame(evals, columns=["env_step", "episode_return"]).assign(
        episode_return_std=0.0, n_episodes=10, wall_time_s=1.0
    ).to_csv(d / "eval.csv", index=False)
    (d / "status.json").write_text(json.dumps({"state": state, "env_step": evals[-1][0], "error": error}))


@pytest.fixture
def runs(tmp_path):
    write_run(tmp_path, "iqrl", 1, [(0, 10.0), (10000, 100.0), (20000, 300.0), (30000, 999.0)])
    write_run(tmp_path, "iqrl", 2, [(0, 0.0), (10000, 50.0), (20000, 150.0)])
    # seed 3 of iqrl is missing
    write_run(tmp_path, "td3", 1, [(0, 5.0), (10000, 7.0)], state="failed", error="NonFiniteLoss: nan")
    return tmp_path


def test_published_value_at_each_seeds_last_step_within_tolerance():
    pub = validate.published_at(reference(), ["walker-walk"], 20000, tolerance=1000)
    got = {r.label: (r.published, r.n_seeds, r.env_step) for r in pub.itertuples()}
    # iQRL: seed 1 at 21000 (300); seed 2's point before 20000 + 1000 is 15000, too early: left out.
    # The ablation row is ignored; s3's SAC curve starts after 21000.
    assert got == {"iQRL [s1]": (300.0, 1, 21000), "SAC [s2]": (50.0, 2, 20000)}
    strict = validate.published_at(reference(), ["walker-walk"], 20000, tolerance=0)
    # seed 1 falls back to 10000, seed 2 to 15000: no iQRL seed at 20000, so no iQRL row
    assert list(strict["label"]) == ["SAC [s2]"]
    assert validate.published_at(reference(), ["hopper-hop"], 20000).empty


def test_published_leaves_out_seeds_whose_curve_stops_early():
    # as DreamerV3 on dog-run in the TD-MPC2 results: seed 3 has only its step-0 point
    rows = (
        [("s", "D", "", "dog-run", 0, seed, 5.2) for seed in (1, 2, 3)]
        + [("s", "D", "", "dog-run", 100000, seed, 10.0 * seed) for seed in (1, 2)]
        + [("t", "E", "", "dog-run", 0, 1, 3.0)]
    )  # a curve with no seed near 100000: no row at all
    ref = pd.DataFrame(rows, columns=reference().columns)
    pub = validate.published_at(ref, ["dog-run"], 100000)
    assert [(r.label, r.published, r.n_seeds, r.env_step) for r in pub.itertuples()] == [
        ("D [s]", 15.0, 2, 100000)
    ]


def test_ours_is_the_mean_of_the_last_two_evals_then_over_seeds(runs):
    ours = validate.our_results(runs, ["iqrl", "td3"], ["walker-walk"], [1, 2, 3], "default", 20000)
    iqrl = ours[ours["agent"] == "iqrl"].iloc[0]
    # seed 1: evals <= 20000 -> mean(100, 300) = 200; seed 2: mean(50, 150) = 100
    assert iqrl.ours == 150.0 and iqrl.seeds == "2/3" and iqrl.last_step == 20000
    assert iqrl.state == "done, missing"
    td3 = ours[ours["agent"] == "td3"].iloc[0]
    assert td3.ours == 6.0 and td3.seeds == "1/3" and td3.last_step == 10000
    assert "failed (NonFiniteLoss: nan)" in td3.state
    none = validate.our_results(runs, ["iqrl"], ["walker-walk"], [1], "small", 20000).iloc[0]
    assert math.isnan(none.ours) and none.seeds == "0/1" and none.state == "missing"


def test_markdown_and_csv(runs):
    ours = validate.our_results(runs, ["iqrl", "td3", "sac"], ["walker-walk"], [1, 2, 3], "default", 20000)
    pub = validate.published_at(reference(), ["walker-walk"], 20000)
    text = validate.write_report(runs, ours, pub, 20000, 1000, note="a note")
    assert (runs / "validate.md").read_text() == text + "\n"
    lines = text.splitlines()
    assert "## walker-walk (20,000 env steps)" in lines and "a note" in lines
    assert "| iqrl | 150.0 | 2/3 | 20000 | done, missing | iQRL [s1]: 300.0 @21000 |" in lines
    assert any(ln.startswith("| td3 | 6.0 | 1/3 | 10000 | failed") and ln.endswith("| — |") for ln in lines)
    assert "| sac | — | 0/3 | — | missing | SAC [s2]: 50.0 @20000 |" in lines
    published = lines[lines.index("| published [source] | return | seeds | at env_step |") + 2 :]
    assert published[:2] == [
        "| iQRL [s1] | 300.0 | 1 | 21000 |",
        "| SAC [s2] | 50.0 | 2 | 20000 |",
    ]  # by return
    csv = pd.read_csv(runs / "validate.csv")
    assert list(csv.columns) == [
        "kind",
        "task",
        "target_step",
        "name",
        "return",
        "seeds",
        "env_step",
        "state",
    ]
    assert sorted(csv["kind"].unique()) == ["ours", "published"] and len(csv) == 5
    assert csv.set_index("name").loc["iqrl", "return"] == 150.0


def test_main_table_only(runs, tmp_path, capsys):
    ref = tmp_path / "ref.csv.gz"
    reference().to_csv(ref, index=False)
    argv = [
        "--table-only",
        "--agents",
        "iqrl",
        "--tasks",
        "walker-walk",
        "--steps",
        "20000",
        "--seeds",
        "2",
        "--out",
        str(runs),
        "--reference",
        str(ref),
    ]
    assert validate.main(argv) == 0
    assert "| iqrl | 150.0 | 2/2 | 20000 | done |" in capsys.readouterr().out
    assert (runs / "validate.csv").is_file()
    assert validate.main(argv[:2] + ["nope"] + argv[3:]) == 2
    assert validate.main(argv[:-1] + [str(tmp_path / "absent.csv.gz")]) == 2


@pytest.mark.parametrize(
    "column, cell", [("episode_return", "oops"), ("episode_return", "nan"), ("env_step", "20k")]
)
def test_a_cell_of_a_runs_eval_csv_that_is_no_number_is_one_error_line_and_writes_no_table(
    runs, tmp_path, capsys, column, cell
):
    ref = tmp_path / "ref.csv.gz"
    reference().to_csv(ref, index=False)
    path = runs / "iqrl" / "walker-walk" / "default" / "seed2" / "eval.csv"
    line = path.read_text().splitlines()[3].split(",")  # env step 20000: line 4
    line[["env_step", "episode_return"].index(column)] = cell
    path.write_text("\n".join([*path.read_text().splitlines()[:3], ",".join(line)]) + "\n")
    argv = ["--table-only", "--agents", "iqrl", "--tasks", "walker-walk", "--steps", "20000", "--seeds", "2"]
    assert validate.main([*argv, "--out", str(runs), "--reference", str(ref)]) == 2  # was a TypeError
    assert capsys.readouterr().err == (
        f"error: {path} line 4: {column} is {cell!r}, not a finite number: {validate.UNREADABLE_EVAL}\n"
    )
    assert not (runs / "validate.md").exists() and not (runs / "validate.csv").exists()


@pytest.mark.parametrize(
    "column, cell, what",
    [("episode_return", "n/a", "a finite"), ("env_step", "21k", "a whole"), ("seed", "1.5", "a whole")],
)
def test_a_reference_cell_that_is_no_number_is_one_error_line_before_any_training(
    tmp_path, capsys, column, cell, what
):
    ref = tmp_path / "ref.csv"
    frame = reference().astype(str)
    frame.loc[2, column] = cell  # the file's line 4
    frame.to_csv(ref, index=False)
    argv = ["--agents", "td3", "--tasks", "cartpole-balance", "--steps", "400", "--out", str(tmp_path / "v")]
    assert validate.main([*argv, "--reference", str(ref)]) == 2  # was a TypeError after the training
    err = capsys.readouterr().err
    assert err == f"error: reference file {ref} line 4: {column} is {cell!r}, not {what} number\n"
    assert not (tmp_path / "v").exists()


def test_table_only_without_runs_of_the_variant_fails_and_keeps_the_report(tmp_path, capsys):
    ref = tmp_path / "ref.csv.gz"
    reference().to_csv(ref, index=False)
    out = tmp_path / "v"
    write_run(out, "iqrl", 1, [(0, 10.0), (10000, 100.0)], variant="small")
    argv = [
        "--table-only",
        "--agents",
        "iqrl",
        "--tasks",
        "walker-walk",
        "--steps",
        "10000",
        "--out",
        str(out),
        "--reference",
        str(ref),
    ]
    assert validate.main(argv + ["--small"]) == 0
    report = (out / "validate.md").read_text()
    capsys.readouterr()
    assert validate.main(argv) == 2  # no 'default' runs: the small report stays as it was
    err = capsys.readouterr().err
    assert err.startswith("error: no 'default' runs") and "pass --small" in err and len(err.splitlines()) == 1
    assert (out / "validate.md").read_text() == report


def test_small_caps_only_larger_values_of_existing_keys(monkeypatch):
    assert validate.small_overrides("iqrl", "cartpole-swingup") == [
        "agent.mlp_dims=[256,256]",
        "agent.latent_dim=64",
    ]
    assert validate.small_overrides("td3", "cartpole-swingup") == ["agent.mlp_dims=[256,256]"]
    monkeypatch.setitem(validate.SMALL_CAPS, "latent_dim", 4096)
    assert validate.small_overrides("iqrl", "cartpole-swingup") == ["agent.mlp_dims=[256,256]"]


def test_train_argv_is_a_valid_run_config(tmp_path):
    argv = validate.train_argv(
        tmp_path, "iqrl-sac", "cartpole-swingup", 2, 20000, True, 5000, ["eval_episodes=3"]
    )
    cfg = build_config(argv)
    assert cfg.out == str(tmp_path / "iqrl-sac" / "cartpole-swingup" / "small" / "seed2")
    assert (cfg.seed, cfg.steps, cfg.eval_every, cfg.eval_episodes, cfg.sweep, cfg.variant) == (
        2,
        20000,
        5000,
        3,
        "validate",
        "small",
    )
    assert cfg.agent.mlp_dims == [256, 256] and cfg.agent.latent_dim == 64


def test_extra_keys_over_the_checks_own_are_named_before_the_runs_start(tmp_path, capsys, monkeypatch):
    """EXTRA's eval_every replaces EVAL_EVERY's (and checkpoint_every, --small's caps): one line names each
    key it replaces and the value it replaced, before any run starts; keys the check leaves alone are not
    named, nor a key given its own value."""
    ref = tmp_path / "ref.csv.gz"
    reference().to_csv(ref, index=False)
    started = []
    monkeypatch.setattr(validate, "run_all", lambda jobs, out, n: started.extend(jobs) or {})
    extra = [
        "eval_every=5000",
        "eval_episodes=3",
        "agent.mlp_dims=[64,64]",
        "seed_steps=4000",
        "sweep=validate",
    ]
    argv = [
        "--agents",
        "td3",
        "--tasks",
        "walker-walk",
        "--steps",
        "20000",
        "--small",
        "--eval-every",
        "10000",
    ]
    validate.main([*argv, "--out", str(tmp_path / "v"), "--reference", str(ref), "--extra", *extra])
    assert capsys.readouterr().out.splitlines()[0] == (
        "note: EXTRA overrides the learning check's own keys: eval_every=5000 over eval_every=10000; "
        "agent.mlp_dims=[64,64] over agent.mlp_dims=[256,256]"
    )
    assert len(started) == 1 and {"eval_every=5000", "agent.mlp_dims=[64,64]"} <= set(started[0])
    assert validate.extra_overrides([["eval_every=10000"]], ["eval_every=10000", "steps=5"]) is None


def test_missing_reference_fails_before_any_training(tmp_path, capsys):
    argv = [
        "--agents",
        "td3",
        "--tasks",
        "cartpole-balance",
        "--steps",
        "400",
        "--out",
        str(tmp_path / "v"),
        "--reference",
        str(tmp_path / "absent.csv.gz"),
    ]
    assert validate.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "pass --reference PATH" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "v").exists()  # nothing trained, no logs


def test_ctrl_c_stops_running_runs_after_their_step_and_starts_no_new_one(tmp_path):
    import os
    import signal
    import subprocess
    import sys

    from conftest import sigint_as_terminal, wait_for

    ref = tmp_path / "ref.csv.gz"
    reference().to_csv(ref, index=False)
    out = tmp_path / "v"
    tiny = [
        "episode_length=200",
        "seed_steps=400",
        "agent.mlp_dims=[32,32]",
        "agent.batch_size=16",
        "eval_episodes=1",
        "checkpoint_every=400",
    ]
    cmd = [
        sys.executable,
        str(REPO / "scripts" / "validate.py"),
        "--agents",
        "td3,sac",
        "--tasks",
        "cartpole-balance",
        "--steps",
        "6000",
        "--jobs",
        "1",
        "--eval-every",
        "400",
        "--out",
        str(out),
        "--reference",
        str(ref),
        "--extra",
        *tiny,
    ]
    p = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "MUJOCO_GL": "disable"},
        preexec_fn=sigint_as_terminal,
    )
    first = out / "td3" / "cartpole-balance" / "default" / "seed1"
    wait_for(lambda: (first / "eval.csv").exists(), p, "the first run's step-0 evaluation")
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=180)
    assert p.returncode == 130, err
    assert "interrupted: 1 running run(s) stop after their current agent step" in err
    status = json.loads((first / "status.json").read_text())
    assert status["state"] == "interrupted" and 0 < status["env_step"] < 6000 and status["env_step"] % 2 == 0
    assert (first / "checkpoint").exists()
    assert (
        "stopping after this agent step"
        in (out / "logs" / "td3_cartpole-balance_default_seed1.log").read_text()
    )
    assert not (out / "sac").exists()  # the next run never started


def test_relative_out_is_resolved_against_the_callers_directory(tmp_path, monkeypatch):
    ref = tmp_path / "ref.csv.gz"
    reference().to_csv(ref, index=False)
    started = []
    monkeypatch.setattr(validate, "run_all", lambda jobs, out, parallel: started.extend(jobs) or {})
    monkeypatch.chdir(tmp_path)  # not the repository: the trainer runs there (cwd=REPO), the table here
    argv = ["--agents", "td3", "--tasks", "cartpole-balance", "--out", "rel", "--reference", str(ref)]
    assert validate.main(argv) == 0
    [out] = [a.split("=", 1)[1] for a in started[0] if a.startswith("out=")]
    assert out == str(tmp_path / "rel" / "td3" / "cartpole-balance" / "default" / "seed1")
    assert (tmp_path / "rel" / "validate.md").is_file()


def no_training(monkeypatch) -> list:
    """Replace run_all by a recorder of the jobs it would start (no run starts)."""
    started = []
    monkeypatch.setattr(validate, "run_all", lambda jobs, out, parallel: started.extend(jobs) or {})
    return started


@pytest.mark.parametrize(
    "bad, message",
    [
        (["--extra", "nope=1"], "unknown config key 'nope'"),
        (["--extra", "eval_episodes=0"], "eval_episodes must be >= 1"),
        (["--tasks", "cartpole-nope"], "cartpole-nope"),
        (["--tasks", "cartpole-nope", "--small"], "cartpole-nope"),
    ],
)
def test_bad_run_config_fails_before_any_training(bad, message, tmp_path, monkeypatch, capsys):
    ref = tmp_path / "ref.csv.gz"
    reference().to_csv(ref, index=False)
    started = no_training(monkeypatch)
    argv = [
        "--agents",
        "td3",
        "--tasks",
        "cartpole-balance",
        "--out",
        str(tmp_path / "v"),
        "--reference",
        str(ref),
    ]
    assert validate.main(argv + bad) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and len(err.splitlines()) == 1
    assert not started and not (tmp_path / "v").exists()


def test_a_folder_holding_a_run_with_another_config_is_refused_before_any_training(
    tmp_path, monkeypatch, capsys
):
    from iqrl.config.run import to_yaml_dict
    from iqrl.runfolder.status import write_status
    from iqrl.runfolder.yamlfile import write_yaml

    ref = tmp_path / "ref.csv.gz"
    reference().to_csv(ref, index=False)
    out = tmp_path / "v"
    done = validate.train_argv(out, "td3", "cartpole-balance", 1, 400, False, 200, [])
    folder = Path(build_config(done).out)
    folder.mkdir(parents=True)
    write_yaml(folder / "config.yaml", to_yaml_dict(build_config(done)))
    write_status(folder, "done", 400, 400)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    started = no_training(monkeypatch)
    argv = [
        "--agents",
        "td3,sac",
        "--tasks",
        "cartpole-balance",
        "--steps",
        "400",
        "--eval-every",
        "200",
        "--out",
        str(out),
        "--reference",
        str(ref),
    ]
    assert validate.main(argv + ["--extra", "eval_episodes=3"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {folder} holds a run with a different config (differs in eval_episodes)")
    assert len(err.splitlines()) == 1 and not started  # not even the sac run, whose folder is free
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert validate.main(argv) == 0  # the same config: the finished run is accepted
    assert len(started) == 2


def test_failed_runs_make_the_check_fail_and_are_named_one_line_each(tmp_path, monkeypatch, capsys):
    ref = tmp_path / "ref.csv.gz"
    reference().to_csv(ref, index=False)
    out = tmp_path / "v"
    folders = [
        str(validate.run_dir(out, a, "cartpole-balance", "default", s))
        for a in ("td3", "sac")
        for s in (1, 2)
    ]
    codes = dict(zip(folders, [0, 3, 1, 2]))  # ok, interrupted (resumable: not a failure), failed, bad input
    monkeypatch.setattr(validate, "run_all", lambda jobs, out, parallel: codes)
    argv = [
        "--agents",
        "td3,sac",
        "--tasks",
        "cartpole-balance",
        "--seeds",
        "2",
        "--out",
        str(out),
        "--reference",
        str(ref),
    ]
    assert validate.main(argv) == 1
    captured = capsys.readouterr()
    assert "| td3 |" in captured.out and (out / "validate.md").is_file()  # the table is written all the same
    assert captured.err.splitlines() == [
        f"error: run exited 1: {folders[2]} (log: {out / 'logs' / 'sac_cartpole-balance_default_seed1.log'})",
        f"error: run exited 2: {folders[3]} (log: {out / 'logs' / 'sac_cartpole-balance_default_seed2.log'})",
    ]
    codes.update({folders[2]: 0, folders[3]: 0})
    assert validate.main(argv) == 0


def test_a_repeated_agent_or_task_is_one_job():
    assert validate._csv("td3, sac,td3,,sac") == ["td3", "sac"]


def test_the_default_plan_puts_each_agent_on_the_tasks_it_can_act_in(capsys):
    """`make validate`'s defaults: every registered agent on the default (continuous) tasks, the agents that
    act in discrete action spaces only left out with one note; each pair's run config is accepted."""
    from iqrl.core.registry import agent_names

    pairs = validate.plan(agent_names(), validate.DEFAULT_TASKS, named=False)
    discrete_only = sorted(set(agent_names()) - set(action_agents("box")))
    assert discrete_only == ["dqn", "drq-eps"]
    assert pairs == [(a, t) for a in action_agents("box") for t in validate.DEFAULT_TASKS]
    assert capsys.readouterr().out == (
        "note: dqn, drq-eps cannot act in cartpole-swingup, walker-walk: left out (give their tasks to "
        "--tasks)\n"
    )
    for agent, task in pairs:
        build_config(validate.train_argv(Path("/nonexistent"), agent, task, 1, 100_000, False, 10_000, []))
    mixed = validate.plan(["dqn", "td3"], ["walker-walk", TINY_DISCRETE_TASK], named=True)
    assert mixed == [("dqn", TINY_DISCRETE_TASK), ("td3", "walker-walk")]


def test_an_agent_named_for_tasks_it_cannot_act_in_is_one_error_line_before_any_training(
    tmp_path, monkeypatch, capsys
):
    ref = tmp_path / "ref.csv.gz"
    reference().to_csv(ref, index=False)
    started = no_training(monkeypatch)
    argv = ["--agents", "dqn", "--out", str(tmp_path / "v"), "--reference", str(ref)]
    assert validate.main(argv) == 2
    assert capsys.readouterr().err == (
        "error: agent dqn acts in discrete action spaces only and task cartpole-swingup has continuous (box) "
        f"actions; agents that can act in it: {', '.join(action_agents('box'))}\n"
    )
    assert not started and not (tmp_path / "v").exists()
