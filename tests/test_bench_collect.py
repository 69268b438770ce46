"""`make bench COLLECT=STEPS` (iqrl/bench/collect.py): a collection row's window of a real run's seed phase,
its CPU per env step beside the bare physics; the command's bad input refused before anything is measured."""

from __future__ import annotations

import json
import threading

import pytest

from iqrl.bench import collect
from iqrl.bench.cli import main
from iqrl.loop import beside, trainer


@pytest.mark.parametrize("k, backend", [(1, "default"), (2, "default"), (2, "workers"), (2, "together")])
def test_a_collection_row_counts_its_window_of_every_seeds_env_steps(k, backend, monkeypatch):
    """The window holds STEPS env steps of every seed (K x STEPS in all), after WARM agent steps each; its CPU
    per env step is the process tree's over the window, `vs_bare` and `vs_dm_control` its ratios to the
    floors measured beside it; the run is stopped by the window's end (so it never trains its budget), and
    the evaluation at step 0 has ended before the window opens (one beside training would run in it, and its
    acting and env steps would be counted as collection's: a seed's row read 1.6x its collection's CPU)."""
    monkeypatch.setattr(collect, "WARM", 5)
    monkeypatch.setattr(collect, "FLOOR_S", 0.05)
    events, lock = [], threading.Lock()

    def recorded(name, fn):
        def run(*args, **kwargs):
            out = fn(*args, **kwargs)
            with lock:
                events.append(name)
            return out

        return run

    for module in (trainer, beside):  # the evaluations in line and beside training
        monkeypatch.setattr(module, "eval_returns", recorded("evaluated", module.eval_returns))
    monkeypatch.setattr(collect, "tree_cpu_s", recorded("window mark", collect.tree_cpu_s))
    row = collect.measure_collection("cartpole-balance", k, backend, "state", 40)
    assert events == ["evaluated"] * k + ["window mark"] * 2
    assert (row["kind"], row["seeds"], row["backend"], row["env_steps"]) == ("collect", k, backend, 40 * k)
    assert row["cpu_us"] > 0 and row["bare_us"] > 0 and row["dm_control_us"] > row["bare_us"]
    assert row["vs_bare"] == pytest.approx(row["cpu_us"] / row["bare_us"], rel=0.01)  # of unrounded values
    assert row["vs_dm_control"] == pytest.approx(row["cpu_us"] / row["dm_control_us"], rel=0.01)
    assert row["env_steps_per_s"] > 0


def test_collect_rows_are_written_as_measured_with_their_ratio_to_one_seed(tmp_path, monkeypatch):
    """`--collect`: a row per K and backend (K = 1: one seed), each written as it is measured; a K-seed row
    gets its env steps/s over the one-seed row's."""
    made = []

    def row(task, k, backend, obs, steps, extra=()):
        made.append((task, k, backend, obs, steps))
        rate = {1: 100.0, 2: 150.0}[k]
        floors = {"cpu_us": 120.0, "vs_bare": 2.0, "bare_us": 60.0, "dm_control_us": 100.0, "load": 1.0}
        return {"task": task, "obs": obs, "seeds": k, "backend": backend, "env_steps_per_s": rate, **floors}

    def run(cmd, capture_output, text):  # the row's process, here in this one
        task, k, backend, obs = cmd[cmd.index("--one-collect") + 1 : cmd.index("--one-collect") + 5]
        steps = int(cmd[cmd.index("--collect") + 1])
        out = json.dumps(row(task, int(k), backend, obs, steps))
        return type("Done", (), {"returncode": 0, "stdout": out, "stderr": ""})

    monkeypatch.setattr(collect.subprocess, "run", run)
    out = tmp_path / "rows.json"
    argv = ["--collect", "30", "--tasks", "cartpole-balance", "--seeds", "1,2", "--out", str(out)]
    assert main(argv) == 0
    assert made == [("cartpole-balance", 1, "default", "state", 30)] + [
        ("cartpole-balance", 2, b, "state", 30) for b in ("workers", "together")
    ]
    rows = json.loads(out.read_text())
    assert [r.get("vs_one_seed") for r in rows] == [None, 1.5, 1.5]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--collect", "30", "--backends", "default,pipes"], "error: --backends must list values among"),
        (["--collect", "30", "--seeds", "0,4"], "error: --seeds must be a comma-separated list of ints >= 1"),
    ],
)
def test_bad_collect_arguments_are_one_line_before_anything_runs(
    argv, message, tmp_path, capsys, monkeypatch
):
    monkeypatch.setattr(collect.subprocess, "run", lambda *a, **k: pytest.fail("measured anyway"))
    assert main([*argv, "--out", str(tmp_path / "rows.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(message)
    assert not (tmp_path / "rows.json").exists()
