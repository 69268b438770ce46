"""`make bench`'s arguments are checked before anything is measured (one `error:` line, exit 2, nothing
written), its rows are written as they are measured, a run's own `error:` line is what a failed end-to-end
row says, an end-to-end row inside its agent's seed phase is said to time that, and `--compare` names the file
it cannot read."""

from __future__ import annotations

import json
import subprocess

import pytest

from iqrl.bench import cli
from iqrl.bench.cli import failure_line, main
from iqrl.bench.measure import FIELDS

TD3 = ["--agents", "td3", "--tasks", "cartpole-balance", "--dtypes", "fp32"]


@pytest.fixture
def rows_measured(monkeypatch):
    """The rows' processes, answered without measuring: the commands they got."""
    measured = []

    def fake_row(cmd, **_):
        measured.append(cmd)
        agent, task = cmd[cmd.index("--one") + 1 : cmd.index("--one") + 3]
        row = dict.fromkeys(FIELDS, 1.0) | {"agent": agent, "task": task, "torch": "t", "hardware": "h"}
        row |= {"seeds": 1, "train_env_steps_per_s": 1.0, "shares": {}}  # and an end-to-end row's
        return subprocess.CompletedProcess(cmd, 0, json.dumps(row) + "\n", "")

    monkeypatch.setattr(cli.subprocess, "run", fake_row)
    return measured


@pytest.mark.parametrize(
    "args, message",
    [
        (["--end-to-end", "0"], "--end-to-end takes a positive number of env steps, got 0"),
        (["--end-to-end", "-5"], "--end-to-end takes a positive number of env steps, got -5"),
        (["--updates", "0"], "--updates takes a positive number of timed updates, got 0"),
        (["--updates", "-3"], "--updates takes a positive number of timed updates, got -3"),
        (["--collect-s", "0"], "--collect-s takes a positive number of seconds, got 0"),
    ],
)
def test_bad_numbers_are_one_line_before_anything_is_measured(tmp_path, capsys, rows_measured, args, message):
    assert main([*TD3, *args, "--out", str(tmp_path / "b.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert rows_measured == [] and not (tmp_path / "b.json").exists()


def test_an_end_to_end_budget_off_the_action_repeat_is_the_runs_own_error(tmp_path, capsys, rows_measured):
    """3 env steps are not whole agent steps of cartpole's action repeat 2: the run's own refusal, before
    anything is measured (it was 'the run ended with exit code 2', its reason swallowed)."""
    assert main([*TD3, "--end-to-end", "3", "--out", str(tmp_path / "b.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "multiple of action_repeat" in err[0], err
    assert rows_measured == [] and not (tmp_path / "b.json").exists()


def test_an_out_in_a_missing_folder_is_refused_before_anything_is_measured(tmp_path, capsys, rows_measured):
    out = tmp_path / "missing" / "b.json"
    assert main([*TD3, "--out", str(out)]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: --out {out}: its folder {out.parent} does not exist"
    ]
    assert rows_measured == []


def test_rows_are_written_as_they_are_measured(tmp_path, monkeypatch, capsys):
    """The second row's process fails: the first row is in --out already (written when it was measured)."""
    out = tmp_path / "b.json"
    seen = []

    def rows(cmd, **_):
        seen.append(json.loads(out.read_text()) if out.exists() else [])
        if len(seen) == 2:
            return subprocess.CompletedProcess(
                cmd, 1, "", "Traceback (most recent call last):\nOSError: gone\n"
            )
        row = dict.fromkeys(FIELDS, 1.0) | {"agent": "td3", "task": "cartpole-balance", "torch": "t"}
        return subprocess.CompletedProcess(cmd, 0, json.dumps(row | {"hardware": "h"}) + "\n", "")

    monkeypatch.setattr(cli.subprocess, "run", rows)
    assert main([*TD3, "--dtypes", "fp32,bf16", "--out", str(out)]) == 1
    assert [len(s) for s in seen] == [0, 1] and len(json.loads(out.read_text())) == 1
    err = capsys.readouterr().err
    assert "error: bench of td3 on cartpole-balance (bf16" in err and "OSError: gone" in err
    assert f"{out} holds the 1 row(s) measured before it" in err


def test_an_end_to_end_row_inside_the_seed_phase_says_so_before_it_is_measured(
    tmp_path, capsys, rows_measured
):
    """td3's seed phase is 10,000 env steps: a 400-step row acts at random and takes no update; the run's
    warning reaches the bench's user (the row's process kept it to itself)."""
    main([*TD3, "--end-to-end", "400", "--out", str(tmp_path / "b.json")])
    err = capsys.readouterr().err.splitlines()
    assert err[0] == (
        "warning: td3 on cartpole-balance (fp32, compile false): steps=400 ends inside the seed phase "
        "(seed_steps=10000; where not given, td3's code's): every episode acts at random and the run takes "
        "no gradient update; its end-to-end row times that"
    )
    assert len(rows_measured) == 1  # and it is measured after


def test_a_failed_rows_own_error_line_is_what_it_says():
    stderr = "error: steps=3 is bad\nTraceback (most recent call last):\nRuntimeError: exit code 2\n"
    assert failure_line(stderr, 1) == "error: steps=3 is bad"


@pytest.mark.parametrize("bad", ["old", "new"])
def test_compare_names_the_one_file_it_cannot_read(tmp_path, capsys, bad):
    row = dict(agent="td3", task="walker-walk", device="cpu", dtype="fp32", compile=False, updates_per_s=1.0)
    files = {name: tmp_path / f"{name}.json" for name in ("old", "new")}
    for name, path in files.items():
        path.write_text("[{" if name == bad else json.dumps([row]))
    assert main(["--compare", str(files["old"]), str(files["new"])]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: cannot read bench file {files[bad]}: "), err
    other = files["new" if bad == "old" else "old"]
    assert str(other) not in err[0]


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--set", "agent.mlp_dims=[32,32"],
            "invalid value for agent.mlp_dims: '[32,32' is not valid YAML (did not find expected ',' or ']')",
        ),
        (["--agents", "td3,sac,td3"], "--agents names td3 more than once"),
        (["--dtypes", "fp32,bf16,fp32,bf16"], "--dtypes names bf16, fp32 more than once"),
        (["--seeds", "1,1"], "--seeds names 1 more than once"),
        (
            ["--updates", "99999999999"],
            "--updates takes at most 100,000 timed updates per row, got 99,999,999,999",
        ),
    ],
)
def test_unreadable_sets_repeated_rows_and_endless_updates_are_refused_before_measuring(
    tmp_path, capsys, rows_measured, args, message
):
    assert main([*TD3, *args, "--out", str(tmp_path / "b.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert rows_measured == [] and list(tmp_path.iterdir()) == []


def test_an_out_that_cannot_be_created_is_refused_before_anything_is_measured(
    tmp_path, capsys, rows_measured
):
    """/proc is a folder whose mode bits may allow writing (as root), yet no file can be made in it."""
    assert main([*TD3, "--out", "/proc/b.json"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "error: --out /proc/b.json cannot be written: no such file or directory while writing "
        "/proc/b.json.tmp"
    ]
    assert main([*TD3, "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: --out {tmp_path} is a folder; give a file name such as {tmp_path / 'bench.json'}"
    ]
    assert rows_measured == [] and list(tmp_path.iterdir()) == []


def test_a_row_records_its_set_keys_and_envs_per_seed(monkeypatch):
    monkeypatch.setattr(cli, "measure", lambda *a: {"updates_per_s": 1.0})
    args = cli.argparse.Namespace(
        one=["dreamerv3", "cartpole-balance", "fp32"], device="cpu", one_compile="false", one_obs="state",
        image_size=84, set=["train_envs=4"], end_to_end=None, group=0, updates=2, collect_s=1.0,
    )  # fmt: skip
    assert cli.one_row(args) == {
        "updates_per_s": 1.0,
        "set": ["train_envs=4"],
        "train_envs": 4,
    }


def test_compare_pairs_only_rows_measured_alike(tmp_path, capsys):
    """Rows that record other --set keys or envs per seed are named, not given a ratio; a row from before rows
    recorded them is compared with a line saying what cannot be checked."""
    row = dict(agent="td3", task="walker-walk", device="cpu", dtype="fp32", compile=False, updates_per_s=2.0)
    alike = {"set": [], "train_envs": 1}
    old = [row | alike, row | alike | {"task": "dog-run"}, row | {"task": "cheetah-run"}]
    new = [
        row | {"set": ["agent.mlp_dims=[32,32]"], "train_envs": 1, "updates_per_s": 30.0},
        row | alike | {"task": "dog-run", "train_envs": 4, "updates_per_s": 8.0},
        row | alike | {"task": "cheetah-run", "updates_per_s": 3.0},
    ]
    files = [tmp_path / "old.json", tmp_path / "new.json"]
    for path, rows in zip(files, (old, new)):
        path.write_text(json.dumps(rows))
    assert main(["--compare", *map(str, files)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[-1] for line in out[1:-2]] == ["1.50x"]  # cheetah-run alone
    assert out[-2:] == [
        "1 pair(s) above include a row that records no --set keys or train_envs (a bench file from before "
        "rows recorded them): make sure both were measured with the same ones",
        "not compared, measured with other settings (2): td3 walker-walk cpu fp32 K=1 state (set [] vs "
        "['agent.mlp_dims=[32,32]']); td3 dog-run cpu fp32 K=1 state (train_envs 1 vs 4)",
    ]
