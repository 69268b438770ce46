"""Packed jobs (`runs_per_job`, slurm/pack.py) without Slurm: how runs are grouped, and packed jobs run
through submitit's LocalExecutor with the stand-in trainer (tests/fake_trainer.py): completion with each run's
eval.csv equal to the unpacked run's, one claim naming the job of both runs, a failing run that does not fail
its neighbour, the time limit (USR2: every run checkpointed, the job requeued with the runs not done), Ctrl-C,
DRY output; and one vectorised packed job of the real trainer (`iqrl.multiseed`)."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from iqrl.bench.gpu_rows import GROUP_GRAPHS_TEST, GROUP_MATCH_TEST
from slurm.__main__ import main as cli
from slurm.claim import RunLock, read_claim
from slurm.pack import Pack, forward_signal, group_runs, seeds_argv, trainer_seeds_key
from slurm.run import Run
from slurm.spec import RunSpec
from slurm.state import inspect_run, read_status

from conftest import TINY_AGENT, TINY_RUN, sigint_as_terminal, wait_for
from sweep_helpers import (
    TESTS,
    assert_resumed_to_the_reference,
    concurrently,
    reference_eval,
    starts,
    sweep,
    use_fake_trainer,
    write_files,
)


@pytest.fixture(autouse=True)
def fake_trainer_env(monkeypatch):
    use_fake_trainer(monkeypatch)


def files(tmp_path, steps=1000, extra="", k=2, time_min=10.0, signal_delay_s=5, parallelism=2):
    profile = dict(time_min=time_min, signal_delay_s=signal_delay_s, parallelism=parallelism)
    return write_files(tmp_path, "pk", steps, extra, cpus=2, runs_per_job=k, max_num_timeout=8, **profile)


def run_dir(tmp_path, seed, agent="iqrl"):
    return tmp_path / "res" / "pk" / agent / "walker-walk" / "default" / f"seed{seed}"


# ---------------------------------------------------------------------------------------------- grouping
def spec(seed, agent="iqrl", variant="default"):
    return RunSpec("pk", agent, "walker-walk", seed, 1000, variant, ())


def test_seed_groups_become_vectorised_jobs_and_the_rest_shares_process_jobs():
    runs = [spec(s, "iqrl") for s in range(5)] + [spec(0, "td3"), spec(1, "td3"), spec(0, "iqrl", "h3")]
    key = lambda r: (r.agent, r.variant) if r.agent == "iqrl" else None  # noqa: E731
    jobs = group_runs(runs, 2, key)
    as_keys = [(mode, [(r.agent, r.variant, r.seed) for r in group]) for mode, group in jobs]
    assert as_keys == [
        ("seeds", [("iqrl", "default", 0), ("iqrl", "default", 1)]),
        ("seeds", [("iqrl", "default", 2), ("iqrl", "default", 3)]),
        # iqrl seed 4 is left alone in its seed group, and iqrl/h3 has no other seed: they join the rest
        ("processes", [("iqrl", "default", 4), ("td3", "default", 0)]),
        ("processes", [("td3", "default", 1), ("iqrl", "h3", 0)]),
    ]
    assert sorted(id(r) for _, g in jobs for r in g) == sorted(map(id, runs))  # every run once
    assert group_runs(runs, 1, key) == [("processes", [r]) for r in runs]
    assert [len(g) for _, g in group_runs(runs, 3, lambda r: None)] == [3, 3, 2]


def test_seeds_of_one_config_share_a_key_unless_their_checkpoints_differ(tmp_path):
    """The trainer's key: the config without the seed, and the env steps the checkpoints hold (the K-seed mode
    resumes a group at an env step all its seeds hold). Configs without the K-seed mode (td7) get no key."""
    import torch

    results = tmp_path / "res"
    iq = [RunSpec("pk", "iqrl", "walker-walk", s, 1000, "default", ()) for s in (0, 1, 2)]
    other = RunSpec("pk", "iqrl", "walker-walk", 3, 1000, "h3", ("agent.horizon=3",))
    vq = RunSpec("pk", "iqrl", "walker-walk", 0, 1000, "vq", ("agent.quantizer=vq",))  # VQ joins the mode
    bf16 = RunSpec("pk", "iqrl", "walker-walk", 0, 1000, "bf16", ("precision=bf16",))
    compiled = RunSpec("pk", "iqrl", "walker-walk", 0, 1000, "compiled", ("compile=true",))
    td7 = RunSpec("pk", "td7", "walker-walk", 0, 1000, "default", ())
    key = trainer_seeds_key(results)
    assert key(iq[0]) == key(iq[1]) == key(iq[2]) != key(other)
    assert key(vq) not in (None, key(iq[0]))
    # bf16 and compiled configs: K-seed groups of their own (a compiled group compiles its vectorised pieces)
    assert len({key(bf16), key(compiled), key(iq[0])}) == 3 and None not in (key(bf16), key(compiled))
    assert key(td7) is None
    ckpt = iq[2].run_dir(results) / "checkpoint" / "ckpt.pt"
    ckpt.parent.mkdir(parents=True)
    torch.save({"counters": {"env_step": 400}}, ckpt)
    assert key(iq[2]) != key(iq[0]) and key(iq[2])[-1] == frozenset({400})


def test_seeds_argv_is_the_multiseed_command_of_the_runs():
    argvs = [["agent=iqrl", f"seed={s}", f"out=/r/pk/iqrl/w/default/seed{s}", "steps=9"] for s in (3, 5)]
    assert seeds_argv(argvs) == ["agent=iqrl", "steps=9", "seeds=3,5", "out=/r/pk/iqrl/w/default"]
    with pytest.raises(ValueError, match="not the seeds of one config"):
        seeds_argv([argvs[0], ["agent=td3", "seed=5", "out=/r/pk/iqrl/w/default/seed5", "steps=9"]])


def test_a_seed_group_trains_in_the_fastest_mode_its_profile_allows(tmp_path, monkeypatch):
    """group_mode: on the CPU eager; on CUDA the mode of the cheapest measured row (iqrl: compiled in
    docs/gpu-results), compiled where no row exists (sac); the profile's pack_mode over auto; a mode the sweep
    pins or a run began in over both; a mode the K-seed mode refuses for the config falls back to eager."""
    import slurm.projection as projection
    from slurm.pack import group_mode

    results = tmp_path / "res"
    iq = [spec(s) for s in (0, 1)]
    folder = tmp_path / "rates"
    folder.mkdir()
    rows = [
        {"kind": "machine", "gpu": "GPU X", "date": "2026-01-01"},
        # two seeds: eager K=2 take one GPU for 1/20 s per update, compiled K=1 two GPUs for 1/50 s: compiled
        {"kind": "bench", "agent": "iqrl", "obs": "state", "dtype": "fp32", "device": "cuda", "seeds": 2,
         "compile": False, "key": "iqrl walker-walk state fp32 compile=false K=2", "updates_per_s": 20.0,
         "task": "walker-walk"},
        {"kind": "bench", "agent": "iqrl", "obs": "state", "dtype": "fp32", "device": "cuda", "seeds": 1,
         "compile": True, "key": "iqrl walker-walk state fp32 compile=true K=1", "updates_per_s": 50.0,
         "task": "walker-walk"},
    ]  # fmt: skip
    (folder / "x.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    monkeypatch.setattr(projection, "GPU_RESULTS", folder)
    monkeypatch.setattr(projection.measured_rows, "__defaults__", (folder,))
    monkeypatch.setattr(projection.group_graphs_verified, "__defaults__", (folder,))
    assert group_mode(iq, results, "auto", "cpu") == ((), "eager (auto on the CPU)")
    overrides, why = group_mode(iq, results, "auto", "cuda")
    assert overrides == ("compile=true",), why
    assert why.startswith("compiled (fastest measured: GPU X 2026-01-01")
    assert "compile=true K=1" in why
    # a faster captured group (K=2 at 100/s per seed) is trained in only once part 1 found it computes the
    # eager group's update
    rows.append(
        {"kind": "bench", "agent": "iqrl", "obs": "state", "dtype": "fp32", "device": "cuda", "seeds": 2,
         "compile": "cudagraphs", "key": "iqrl walker-walk state fp32 compile=cudagraphs K=2",
         "updates_per_s": 100.0, "task": "walker-walk"}
    )  # fmt: skip
    test = {"kind": "test", "test": GROUP_GRAPHS_TEST, "outcome": "failed"}
    tiny = {
        "kind": "test",
        "test": GROUP_MATCH_TEST.format("True"),
        "outcome": "passed",
    }  # 2 tiny seeds: not enough
    for outcome, mode in (("failed", ("compile=true",)), ("passed", ("compile=true", "cudagraphs=true"))):
        (folder / "x.jsonl").write_text(
            "\n".join(json.dumps(r) for r in [*rows, tiny, {**test, "outcome": outcome}])
        )
        assert group_mode(iq, results, "auto", "cuda")[0] == mode, outcome
    (folder / "x.jsonl").write_text("\n".join(json.dumps(r) for r in rows[:-1]))
    sac = [spec(s, "sac") for s in (0, 1)]
    assert group_mode(sac, results, "auto", "cuda") == (
        ("compile=true",),
        "compiled (auto on CUDA, no measured row)",
    )
    assert group_mode(iq, results, "graphs", "cuda")[0] == ("compile=true", "cudagraphs=true")
    assert group_mode(iq, results, "eager", "cuda")[0] == ()
    pinned = [RunSpec("pk", "iqrl", "walker-walk", s, 1000, "c", ("compile=false",)) for s in (0, 1)]
    assert group_mode(pinned, results, "graphs", "cuda") == ((), "as the sweep sets it")
    began = iq[1].run_dir(results)
    began.mkdir(parents=True)
    (began / "config.yaml").write_text("compile: false\ncudagraphs: false\n")
    assert group_mode(iq, results, "auto", "cuda") == ((), f"eager ({iq[1].key} began so)")
    monkeypatch.setattr("iqrl.multiseed.refusals.unsupported", lambda cfg: "no" if cfg.compile else None)
    assert group_mode(sac, results, "compiled", "cuda") == (
        (),
        "eager (the K-seed mode refuses compiled for this config)",
    )


def test_requeue_takes_only_the_runs_neither_done_nor_failed(tmp_path):
    import fake_trainer

    dirs = [tmp_path / name for name in ("done", "failed", "interrupted", "fresh")]
    for d, state in zip(dirs, ("done", "failed", "interrupted")):
        d.mkdir()
        fake_trainer._status(d, state, 100, 1000)
    pack = Pack(tuple(Run(str(d), ()) for d in dirs), mode="processes", threads=2)
    again = pack.checkpoint().function
    assert [Path(r.run_dir).name for r in again.runs] == ["interrupted", "fresh"]
    assert (again.mode, again.threads) == ("processes", 2)


# ------------------------------------------------------------------------------------------ local executor
def test_packed_local_sweep_runs_two_per_job_each_as_if_alone(tmp_path, monkeypatch, capsys):
    gate = tmp_path / "gate"
    monkeypatch.setenv("FAKE_TRAINER_GATE", str(gate))  # the runs stay open until the checks below are done
    s, p = files(tmp_path, steps=1000, parallelism=1)
    result: dict = {}
    t = threading.Thread(target=lambda: result.update(zip(("rc", "out"), sweep(tmp_path, s, p))))
    t.start()
    d0, d1 = run_dir(tmp_path, 0), run_dir(tmp_path, 1)
    wait_for(lambda: all(inspect_run(d, None).kind == "running" for d in (d0, d1)), None, "seeds 0, 1 to run")
    claims = [read_claim(d) for d in (d0, d1)]
    assert claims[0].job_id == claims[1].job_id and claims[0].job_id  # one job holds both runs
    assert inspect_run(run_dir(tmp_path, 2), None).kind == "missing"  # parallelism 1: the next job waits
    assert cli(["status", str(s), "--results", str(tmp_path / "res")]) == 0
    shown = capsys.readouterr().out
    pair = "iqrl/walker-walk/default/seed0, iqrl/walker-walk/default/seed1"
    assert f"packed jobs:\n  job {claims[0].job_id}: {pair}" in shown, shown
    gate.touch()
    t.join(300)
    assert result["rc"] == 0, result["out"]
    assert result["out"].count("started ") == 2 and result["out"].count("finished ") == 3
    assert (
        f"iqrl/walker-walk/default/seed0, iqrl/walker-walk/default/seed1 (local job {claims[0].job_id}, "
        in (result["out"])
    )
    for seed in range(3):
        d = run_dir(tmp_path, seed)
        assert inspect_run(d, None).kind == "done" and not (d / ".claim").exists()
        assert len(starts(d)) == 1
        assert (d / "eval.csv").read_text() == reference_eval(tmp_path, seed, 1000)
    log = (d0 / "job.log").read_text()  # a packed run's own output
    assert f"=== job {claims[0].job_id} " in log and "fake_trainer" in log and "seed1" not in log
    rc, out = sweep(tmp_path, s, p)
    assert rc == 0 and "3 done (skipped)" in out and "nothing to run" in out


def test_a_failing_run_does_not_fail_its_neighbour(tmp_path):
    s, p = files(tmp_path, extra=", fail_seed: 1")
    rc, out = sweep(tmp_path, s, p)
    assert rc == 1, out
    assert "FAILED iqrl/walker-walk/default/seed1: error: ValueError: asked to fail" in out
    assert "finished iqrl/walker-walk/default/seed0: done" in out and out.count("finished ") == 2
    assert (run_dir(tmp_path, 0) / "eval.csv").read_text() == reference_eval(tmp_path, 0, 1000)
    assert inspect_run(run_dir(tmp_path, 1), None).kind == "failed"


def test_time_limit_checkpoints_every_run_of_a_packed_job_and_requeues_it(tmp_path, monkeypatch):
    """USR2 reaches the packed job's process, which passes it to each run's process; every run checkpoints
    after its current agent step; the job asks submitit to requeue it with the runs not done; they resume."""
    monkeypatch.setenv("FAKE_TRAINER_EPISODE_S", "0.1")
    s, p = files(tmp_path, steps=5000, k=3, time_min=0.12, signal_delay_s=3, parallelism=1)
    rc, out = sweep(tmp_path, s, p)
    assert rc == 0, out
    for seed in range(3):
        d = run_dir(tmp_path, seed)
        assert_resumed_to_the_reference(tmp_path, d, seed, 5000)
        log = (d / "job.log").read_text()
        assert "[slurm.run] got SIGUSR2: stopping after the current agent step" in log
        assert "interrupted (SIGUSR2), resumable" in log
    logs = "".join(f.read_text() for f in (tmp_path / "res/.submitit/pk").glob("*_0_log.*"))
    assert logs.count("Requeued job") >= 1 and "[slurm.pack] started" in logs


def test_a_sigkilled_packed_job_leaves_every_run_resumable(tmp_path, monkeypatch):
    """SIGKILL of the job's process (an OOM kill, a node agent): its runs' processes get SIGTERM from the
    kernel (they asked for it, PR_SET_PDEATHSIG), stop after their current agent step with a checkpoint
    instead of training on orphaned, and the next sweep resumes them."""
    monkeypatch.setenv("FAKE_TRAINER_EPISODE_S", "0.2")
    s, p = files(tmp_path, steps=3000, parallelism=1)
    result: dict = {}
    t = threading.Thread(target=lambda: result.update(zip(("rc", "out"), sweep(tmp_path, s, p))))
    t.start()
    dirs = [run_dir(tmp_path, k) for k in (0, 1)]
    wait_for(
        lambda: all(inspect_run(d, None).env_step >= 300 for d in dirs), None, "both runs to make progress"
    )
    child = RunLock(dirs[0]).holder()["pid"]  # a run's process; its parent is the job's process
    job = int(Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[1])
    assert RunLock(dirs[1]).holder()["pid"] != child
    os.kill(job, signal.SIGKILL)
    t.join(300)
    wait_for(lambda: all(read_status(d)["state"] != "running" for d in dirs), None, "the runs to stop")
    assert "FAILED" in result["out"] or "stopped" in result["out"], result["out"]
    for d in dirs:
        st = inspect_run(d, None)
        assert st.kind == "interrupted" and read_status(d)["state"] == "interrupted", (d, st)
        assert json.loads((d / "checkpoint" / "ckpt.json").read_text())["env_step"] == st.env_step
    rc, out = sweep(tmp_path, s, p)
    assert rc == 0 and "2 interrupted" in out, out
    for seed, d in enumerate(dirs):
        assert_resumed_to_the_reference(tmp_path, d, seed, 3000)


def test_ctrl_c_stops_every_run_of_a_packed_job_with_a_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_TRAINER_EPISODE_S", "1.5")
    s, p = files(tmp_path, steps=100000, parallelism=1)
    dirs = [run_dir(tmp_path, k) for k in (0, 1)]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import sys; from slurm.submit import run_sweep; sys.exit(run_sweep({str(s)!r}, "
            f"{str(tmp_path / 'res')!r}, {str(p)!r}, entry='fake_trainer:main', validator=None))",
        ],
        cwd=TESTS.parent,
        start_new_session=True,
        preexec_fn=sigint_as_terminal,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    wait_for(lambda: all(inspect_run(d, None).env_step >= 200 for d in dirs), proc, "runs to make progress")
    os.killpg(proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C
    out = proc.communicate(timeout=60)[0]
    wait_for(lambda: all(inspect_run(d, None).kind != "running" for d in dirs), None, "the runs to stop")
    assert proc.returncode == 130 and "interrupted: stopping local jobs" in out, out
    for d in dirs:
        st = inspect_run(d, None)
        assert (st.kind, read_status(d)["state"]) == ("interrupted", "interrupted"), out
        assert json.loads((d / "checkpoint" / "ckpt.json").read_text())["env_step"] == st.env_step >= 200


def test_two_packed_sweeps_at_once_start_each_run_once(tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_TRAINER_EPISODE_S", "0.05")
    s, p = files(tmp_path, steps=1000)
    outs = concurrently(lambda: sweep(tmp_path, s, p))
    assert all(rc == 0 for rc, _ in outs), outs
    assert [len(starts(run_dir(tmp_path, k))) for k in range(3)] == [1, 1, 1]
    assert sum(o.count("finished ") for _, o in outs) == 3


def test_dry_run_prints_the_jobs_and_changes_nothing(tmp_path):
    s, p = files(tmp_path, k=2)
    rc, out = sweep(tmp_path, s, p, dry=True)
    assert rc == 0 and not (tmp_path / "res").exists()
    assert "Local executor: 2 job(s) of up to 2 runs at a time" in out
    assert out.count("job of 2 runs, 2 processes, 1 thread(s) each:") == 1
    assert out.count("python -m fake_trainer agent=iqrl") == 3


# ---------------------------------------------------------------------------------------- the real trainer
def test_seeds_of_one_config_train_as_one_vectorised_process(tmp_path, monkeypatch):
    """Two seeds of a tiny iqrl config in one job: `iqrl.multiseed` trains them (one process holds both run
    locks); each folder is an ordinary run, with the config.yaml of a plain run of its seed and the same
    first evaluation (before any update the K-seed mode is the plain run up to the rounding of its batched
    acting)."""
    monkeypatch.setenv("MUJOCO_GL", "disable")
    fixed = dict(a.split("=", 1) for a in [*TINY_RUN, *TINY_AGENT["iqrl"]] if not a.startswith("task="))
    fixed_yaml = ", ".join(f"{k}: {v}" for k, v in fixed.items())
    (tmp_path / "pk.yaml").write_text(
        "name: pk\nagents: [iqrl]\ntasks: [cartpole-balance]\nseeds: [0, 1]\nsteps: 800\n"
        f"fixed: {{{fixed_yaml}}}\n"
    )
    (tmp_path / "prof.yaml").write_text("executor: local\nparallelism: 1\ncpus: 2\nruns_per_job: 2\n")
    s, p = tmp_path / "pk.yaml", tmp_path / "prof.yaml"
    rc, out = sweep(tmp_path, s, p, entry="iqrl.train:main", dry=True)
    assert "job of 2 runs, one vectorised multiseed process, eager (auto on the CPU):" in out, out
    job = [line for line in out.splitlines() if "seeds=0,1" in line]  # the job's command: no mode set
    assert job and not any("compile=" in line for line in job)
    rc, out = sweep(tmp_path, s, p, entry="iqrl.train:main")
    assert rc == 0 and out.count("finished ") == 2, out
    logs = "".join(f.read_text() for f in (tmp_path / "res/.submitit/pk").glob("*_0_log.*"))
    assert "[slurm.pack] 2 seeds: iqrl.multiseed" in logs

    import yaml

    d0 = tmp_path / "res/pk/iqrl/cartpole-balance/default/seed0"
    ref = tmp_path / "ref"
    argv = [a if not a.startswith("out=") else f"out={ref}" for a in _argv_of(d0)]
    subprocess.run(
        [sys.executable, "-m", "iqrl.train", *argv], check=True, capture_output=True, cwd=TESTS.parent
    )

    def config(d):
        c = yaml.safe_load((d / "config.yaml").read_text())
        c.pop("meta", None)
        c.pop("out")
        c.pop("env_workers")  # the K-seed mode's own default (worker processes on 2 cores): no number changes
        return c

    def first_eval(d):
        with open(d / "eval.csv") as f:
            row = next(csv.DictReader(f))
        return {
            k: float(v) for k, v in row.items() if k != "wall_time_s" and v != ""
        }  # (unscored Q-bias: empty)

    assert config(d0) == config(ref)
    assert first_eval(d0) == pytest.approx(first_eval(ref), rel=1e-5, abs=1e-6)  # the std: ~5e-3 here
    assert read_status(d0)["state"] == read_status(d0.parent / "seed1")["state"] == "done"


def _argv_of(run_dir: Path) -> list[str]:
    """The trainer command line of a sweep run, from the sweep's own planning."""
    from slurm.submit import load

    results = run_dir.parents[4]
    _, runs = load(results.parent / "pk.yaml", results, validator=None)
    return next(r.argv(results) for r in runs if r.run_dir(results) == run_dir)


def test_a_packed_runs_threads_stay_its_share_of_the_job_when_fewer_runs_are_left():
    """Each run's threads are fixed when the job is made (the job's CPUs // its runs) and kept by a requeue
    with fewer runs: a run's float sums depend on its threads, so a rerun must not give it more."""
    runs = tuple(Run(f"/nonexistent/seed{s}", ()) for s in range(4))
    pack = Pack(runs, mode="processes", threads=8)
    assert pack.run_threads == 2
    assert replace(pack, runs=runs[:1]).run_threads == 2
    assert Pack(runs[:3], threads=8).run_threads == 2 and Pack(runs, threads=3).run_threads == 1


def test_a_signal_passes_by_a_child_whose_exit_the_wait_has_just_collected():
    """A job's signal arriving inside its `wait` on a child that has just exited: the wait's system call has
    collected it, `poll` (which cannot take the wait's lock there) says None, and the kill finds no process.
    The signal goes on to the other children, and the job on to its requeue (a ProcessLookupError there
    failed a packed job that Slurm's USR2 reached as its runs stopped)."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    collected = type("Collected", (), {"pid": gone.pid, "poll": lambda self: None})()
    running = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        forward_signal([collected, running], signal.SIGTERM)
        assert running.wait(timeout=30) == -signal.SIGTERM
    finally:
        running.kill()
