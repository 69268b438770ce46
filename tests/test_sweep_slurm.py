"""End to end on a real Slurm cluster (slurm/local-cluster.sh) with the real trainer, through `make`.

1. The smoke sweep, started by two `make sweep` at once: every run is submitted once; one running job is
   SIGKILLed and another scancelled; `make status` shows both as interrupted; the next `make sweep`
   resubmits exactly those two, which resume from their checkpoints and finish; a further `make sweep`
   submits nothing.
2. Two runs (one job array) that take longer than their 1-minute time limit: each attempt gets USR2 from
   Slurm ahead of the limit, checkpoints, is requeued by submitit and resumes; seed 0 ends with the same
   eval.csv as the same run trained without interruption. The jobs run the real trainer with a sleep after
   each env step (tests/throttled_trainer.py), so they outlast the limit without the CPU of a long run.
   `make status` is checked while they run.
3. Packed jobs (two runs per array task, the stand-in trainer): half as many tasks as runs, one claim job
   for both runs of a task, a scancelled task's runs interrupted and resumed by the next sweep; a packed
   task past its time limit checkpoints both runs and is requeued until both finish.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sweep_helpers import (
    assert_resumed_to_the_reference,
    jobs_import_tests,
    reference_eval,
    sweep,
    use_fake_trainer,
    write_files,
)

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.slurm, pytest.mark.slow]


def _cluster_up() -> str | None:
    if not shutil.which("sbatch") or not shutil.which("scontrol"):
        return "Slurm is not installed (apt-get install slurmctld slurmd munge slurm-client)"
    ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True)
    if ping.returncode != 0 or "UP" not in ping.stdout:
        return "no Slurm controller answers: start one with `slurm/local-cluster.sh start` (root)"
    part = subprocess.run(["sinfo", "-h", "-p", "debug", "-o", "%a"], capture_output=True, text=True).stdout
    if "up" not in part:
        return "no `debug` partition: these tests expect the cluster of slurm/local-cluster.sh"
    return None


@pytest.fixture(scope="module", autouse=True)
def slurm_cluster():
    reason = _cluster_up()
    if reason and os.environ.get("IQRL_REQUIRE_SLURM") == "1":  # set by .ci/run
        pytest.fail(f"IQRL_REQUIRE_SLURM=1 but {reason}")
    if reason:
        pytest.skip(reason)


def make(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", "-s", "--no-print-directory", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        **kw,
    )


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def wait_for(cond, timeout: float, what: str, poll: float = 0.2):
    t0 = time.time()
    while True:
        value = cond()
        if value:
            return value
        if time.time() - t0 > timeout:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(poll)


def sweep_jobs(name: str) -> list[str]:
    out = subprocess.run(
        ["squeue", "-h", "-r", "-n", f"iqrl-{name}", "-o", "%i"], capture_output=True, text=True
    )
    return out.stdout.split()


def submitted(results: Path, name: str) -> list[str]:
    log = results / ".submitit" / name / "submissions.jsonl"
    if not log.exists():
        return []
    return [run for line in log.read_text().splitlines() for run in json.loads(line)["runs"]]


def eval_rows(path: Path) -> list[dict]:
    with open(path) as f:
        return [{k: v for k, v in row.items() if k != "wall_time_s"} for row in csv.DictReader(f)]


def test_smoke_sweep_with_sigkill_scancel_and_concurrent_sweeps(tmp_path):
    results = tmp_path / "res"
    args = ["sweep", "SWEEP=ablations/smoke.yaml", "CLUSTER=local-slurm", f"RESULTS={results}"]
    procs = [
        subprocess.Popen(
            ["make", "-s", "--no-print-directory", *args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    runs = submitted(results, "smoke")
    assert sorted(runs) == sorted(f"{a}/walker-walk/default/seed{k}" for a in ("iqrl", "td3") for k in (0, 1))

    base = results / "smoke"
    killed, cancelled = base / "iqrl/walker-walk/default/seed1", base / "td3/walker-walk/default/seed0"

    def mid_run(d: Path):
        holder = read_json(d / ".lock")
        st = read_json(d / "status.json")
        ok = st.get("state") == "running" and 1000 <= st.get("env_step", 0) <= 2400 and holder.get("pid")
        return holder if ok and (d / "checkpoint/ckpt.pt").exists() else None

    holder = wait_for(lambda: mid_run(killed), 240, "iqrl seed1 to pass its first checkpoint")
    os.kill(holder["pid"], signal.SIGKILL)  # dies without warning, like an OOM kill or a node failure
    wait_for(lambda: mid_run(cancelled), 240, "td3 seed0 to pass its first checkpoint")
    job = read_json(cancelled / ".claim")["job_id"]
    subprocess.run(["scancel", job], check=True)

    wait_for(lambda: not sweep_jobs("smoke"), 300, "the first round of jobs to leave the queue", poll=1)
    status = make("status", "SWEEP=ablations/smoke.yaml", f"RESULTS={results}")
    assert status.returncode == 0, status.stderr
    text = status.stdout
    assert "all                2        0        0            2       0        0      4" in text, text
    for d in (killed, cancelled):
        key = str(d.relative_to(base))
        assert f"  {key}  env_step" in text and "no live job" in text

    second = make(*args)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "2 done (skipped), 0 running or queued (skipped), 2 to run (2 interrupted)" in second.stdout
    wait_for(lambda: not sweep_jobs("smoke"), 300, "the resubmitted jobs to finish", poll=1)
    for d in base.glob("*/walker-walk/default/seed*"):
        assert read_json(d / "status.json")["state"] == "done", d
        steps = [int(r["env_step"]) for r in eval_rows(d / "eval.csv")]
        assert steps == [0, 1000, 2000, 3000], (d, steps)  # no row lost or written twice
    logs = "".join(p.read_text() for p in (results / ".submitit/smoke").glob("*/*_log.out"))
    assert logs.count("resumed from checkpoint at env_step") == 2

    third = make(*args)
    assert third.returncode == 0 and "nothing to submit" in third.stdout, third.stdout
    assert sorted(submitted(results, "smoke")) == sorted(
        runs + [str(killed.relative_to(base)), str(cancelled.relative_to(base))]
    )
    assert not sweep_jobs("smoke")


LONG_FIXED = """
  episode_length: 200
  seed_steps: 600
  eval_every: 1000
  eval_episodes: 2
  diag_every: 1000
  checkpoint_every: 1000
  agent.mlp_dims: [64, 64]
  agent.batch_size: 64
  agent.latent_dim: 16
  agent.enc_mlp_dims: [64]
"""
LONG = "name: long\nagents: [iqrl]\ntasks: [walker-walk]\nseeds: [0, 1]\nsteps: {steps}\nfixed:" + LONG_FIXED

# An attempt under the profile below trains for at most about 40 s (a 1-minute limit, USR2 20 s ahead and up
# to 30 s earlier). The jobs' trainer sleeps THROTTLED_STEP_S after each env step
# (tests/throttled_trainer.py), so a run of LONG_STEPS env steps takes at least 75 s on any machine, under
# any load, and every seed reaches its time limit at least once, for the CPU of a 3,000-step run (about 10 s
# here) rather than of 80 s of it.
LONG_STEPS = 3000
THROTTLED_STEP_S = 0.025


SHORT_LIMIT = """executor: slurm
partition: debug
time_min: 1
cpus: 1
mem_gb: 2
gpus: 0
array_parallelism: 2
signal_delay_s: 20
max_num_timeout: 20
device: cpu
"""


def test_time_limit_signals_checkpoints_requeues_and_matches_an_uninterrupted_run(tmp_path, monkeypatch):
    """A 1-minute limit per attempt against runs that take longer: Slurm sends USR2 ahead of the limit
    (`--signal=USR2@20`), the run checkpoints after its current agent step, submitit takes its timed-out
    branch and requeues the array task, and the requeued attempt resumes from the run folder. The jobs run the
    real trainer slowed by a sleep per env step (tests/throttled_trainer.py); seed 0's eval.csv must equal the
    same run trained in one go by `python -m iqrl.train`. `make status` is read while the jobs run."""
    sweep_file, profile = tmp_path / "long.yaml", tmp_path / "short-limit.yaml"
    steps = LONG_STEPS
    sweep_file.write_text(LONG.format(steps=steps))
    profile.write_text(SHORT_LIMIT)
    results = tmp_path / "res"
    jobs_import_tests(monkeypatch)  # the throttled trainer, and its sleep below
    monkeypatch.setenv("THROTTLED_STEP_S", str(THROTTLED_STEP_S))

    from slurm.submit import load

    _, runs = load(sweep_file, results, validator=None)
    run = next(r for r in runs if r.run_dir(results).name == "seed0")
    ref_dir = tmp_path / "reference"
    argv = [a if not a.startswith("out=") else f"out={ref_dir}" for a in run.argv(results)]
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    reference = subprocess.Popen(
        [sys.executable, "-m", "iqrl.train", *argv],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    rc, out = sweep(tmp_path, sweep_file, profile, entry="throttled_trainer:main")
    assert rc == 0 and "submitted 2 runs" in out, out
    run_dirs = [r.run_dir(results) for r in runs]

    def both_running():
        return all(
            read_json(d / "status.json").get("state") == "running"
            and read_json(d / ".lock").get("pid")
            and read_json(d / "status.json").get("env_step", 0) > 0
            for d in run_dirs
        )

    wait_for(both_running, 180, "both runs to be training")

    def status_shows_both_running():  # retried: an early USR2 may put a job between attempts just then
        status = make("status", f"SWEEP={sweep_file}", f"RESULTS={results}")
        assert status.returncode == 0, status.stderr
        table_ok = (
            "all                0        2        0            0       0        0      2" in status.stdout
        )
        return status.stdout if table_ok else None

    shown = wait_for(status_shows_both_running, 60, "make status to show both runs running", poll=1)
    for d in run_dirs:
        key = str(d.relative_to(results / "long"))
        assert f"  {key}  env_step " in shown and f"/{steps} (" in shown, shown

    wait_for(
        lambda: (
            all(read_json(d / "status.json").get("state") == "done" for d in run_dirs)
            and not sweep_jobs("long")
        ),
        900,
        "the time-limited runs to be requeued and finish",
        poll=2,
    )
    assert reference.wait(timeout=300) == 0, reference.stderr.read()

    scripts = "".join(p.read_text() for p in (results / ".submitit/long").glob("*/*_submission.sh"))
    assert "#SBATCH --signal=USR2@20" in scripts and "#SBATCH --time=1" in scripts, scripts
    assert "#SBATCH --array=0-1%2" in scripts, scripts
    for k, d in enumerate(run_dirs):
        log = "".join(p.read_text() for p in (results / ".submitit/long").glob(f"*_{k}/*_log.*"))
        assert "[slurm.run] got SIGUSR2" in log, log[-3000:]
        assert "Job has timed out" in log and requeued(log), log[-3000:]  # submitit's timed-out branch
        assert "interrupted at env_step" in log and "resumed from checkpoint" in log
        rows = [int(r["env_step"]) for r in eval_rows(d / "eval.csv")]
        assert rows == list(range(0, steps + 1, 1000)), (d, rows)  # no row lost or written twice
    assert eval_rows(run_dirs[0] / "eval.csv") == eval_rows(ref_dir / "eval.csv")


def requeued(log: str) -> bool:
    """A job's logs say Slurm requeued it: submitit's line once `scontrol requeue` returned, or Slurm's own
    when the requeue cancelled the job step first (its SIGTERM can reach scontrol, in the step, before it
    exits, and submitit then logs the CalledProcessError instead)."""
    return "Requeued job" in log or "DUE TO JOB REQUEUE" in log


# ---------------------------------------------------------------------------------------------- packed jobs
def packed_sweep(tmp_path: Path, steps: int, seeds: int = 4, time_min: int = 30, signal_delay_s: int = 20):
    """The stand-in trainer (tests/fake_trainer.py: every episode a sleep, then a checkpoint) in jobs of two
    runs on the local cluster. Returns a function that runs `make sweep` (rc, output), and the run folders."""
    from slurm.submit import load

    profile = dict(executor="slurm", partition="debug", time_min=time_min, cpus=1, mem_gb=1, gpus=0)
    profile.update(array_parallelism=2, signal_delay_s=signal_delay_s, max_num_timeout=20, runs_per_job=2)
    sweep_file, profile_file = write_files(tmp_path, "pk", steps, seeds=range(seeds), **profile)
    _, runs = load(sweep_file, tmp_path / "res", validator=None)
    return (lambda: sweep(tmp_path, sweep_file, profile_file)), [r.run_dir(tmp_path / "res") for r in runs]


@pytest.fixture
def fake_trainer_env(monkeypatch):
    use_fake_trainer(monkeypatch)  # the jobs inherit the environment (sbatch --export=ALL)
    monkeypatch.chdir(ROOT)


def test_packed_sweep_halves_the_array_tasks_and_a_scancelled_job_resumes_both_runs(
    tmp_path, monkeypatch, fake_trainer_env, capsys
):
    """Four runs, two per job: one array of two tasks, both runs of a task claimed by its job. The second
    task is scancelled mid-run: `make status` shows both of its runs interrupted, the next sweep resubmits
    exactly those two (again as one task), they resume and every run ends with the eval.csv of a run trained
    alone in one go; a further sweep submits nothing."""
    from slurm.__main__ import main as cli

    monkeypatch.setenv("FAKE_TRAINER_EPISODE_S", "0.25")
    steps = 6000
    sweep, dirs = packed_sweep(tmp_path, steps)
    rc, out = sweep()
    assert rc == 0 and "submitted 4 runs in 1 array job(s) (2 jobs of up to 2 runs)" in out, out
    log = read_json_lines(tmp_path / "res/.submitit/pk/submissions.jsonl")
    keys = [str(d.relative_to(tmp_path / "res/pk")) for d in dirs]
    assert log[0]["tasks"] == [keys[:2], keys[2:]]
    jobs = [read_json(d / ".claim")["job_id"] for d in dirs]
    assert jobs[0] == jobs[1] != jobs[2] == jobs[3] and jobs[0].endswith("_0") and jobs[2].endswith("_1")
    assert jobs[0].split("_")[0] == jobs[2].split("_")[0]  # one array

    def running_with_progress(d: Path) -> bool:
        st = read_json(d / "status.json")
        return (
            st.get("state") == "running"
            and 500 <= st.get("env_step", 0)
            and read_json(d / ".lock").get("pid")
        )

    wait_for(lambda: all(running_with_progress(d) for d in dirs[2:]), 240, "the second task's runs to train")
    subprocess.run(["scancel", jobs[2]], check=True)
    wait_for(lambda: not sweep_jobs("pk"), 300, "the jobs to leave the queue", poll=1)
    assert cli(["status", str(tmp_path / "pk.yaml"), "--results", str(tmp_path / "res")]) == 0
    text = capsys.readouterr().out
    assert "all                2        0        0            2       0        0      4" in text, text
    for key in keys[2:]:
        assert f"  {key}  env_step " in text
    assert text.count("no live job") == 2

    rc, out = sweep()
    assert rc == 0 and "2 done (skipped), 0 running or queued (skipped), 2 to run (2 interrupted)" in out, out
    assert "submitted 2 runs in 1 array job(s) (1 jobs of up to 2 runs)" in out, out
    again = read_json(dirs[2] / ".claim")["job_id"]
    assert again == read_json(dirs[3] / ".claim")["job_id"] and again.split("_")[0] != jobs[2].split("_")[0]
    wait_for(lambda: not sweep_jobs("pk"), 300, "the resubmitted job to finish", poll=1)
    for k, d in enumerate(dirs):
        assert read_json(d / "status.json")["state"] == "done", d
        assert (d / "eval.csv").read_text() == reference_eval(tmp_path, k, steps), d
        starts = (d / "starts.log").read_text().splitlines()
        assert len(starts) == (1 if k < 2 else 2), (d, starts)  # the scancelled runs resumed once
        if k >= 2:
            assert int(starts[1].split()[1]) >= 500  # from their checkpoint, not from 0
    rc, out = sweep()
    assert rc == 0 and "nothing to submit" in out and not sweep_jobs("pk")


def test_packed_job_outlasting_its_time_limit_checkpoints_both_runs_and_is_requeued(
    tmp_path, monkeypatch, fake_trainer_env
):
    """Two runs in one job with a 1-minute limit, each needing about 45 s of training: Slurm sends USR2 10-40
    s into an attempt (20 s before the limit, up to 30 s earlier), so each run is stopped at least once. USR2
    reaches the job, the job passes it to both runs, both checkpoint after their current agent step, submitit
    requeues the task, and the requeued attempt resumes both until they finish, with no eval row lost or
    written twice."""
    monkeypatch.setenv("FAKE_TRAINER_EPISODE_S", "0.5")
    steps = 9000  # 90 episodes of 0.5 s
    sweep, dirs = packed_sweep(tmp_path, steps, seeds=2, time_min=1, signal_delay_s=20)
    rc, out = sweep()
    assert rc == 0 and "submitted 2 runs in 1 array job(s) (1 jobs of up to 2 runs)" in out, out
    wait_for(
        lambda: (
            all(read_json(d / "status.json").get("state") == "done" for d in dirs) and not sweep_jobs("pk")
        ),
        900,
        "the time-limited runs to be requeued and finish",
        poll=2,
    )
    job_log = "".join(p.read_text() for p in (tmp_path / "res/.submitit/pk").glob("*/*_log.*"))
    assert "Job has timed out" in job_log and requeued(job_log), job_log[-3000:]
    for k, d in enumerate(dirs):
        log = (d / "job.log").read_text()
        assert "[slurm.run] got SIGUSR2" in log and "interrupted (SIGUSR2), resumable" in log, log[-2000:]
        rows = [int(r["env_step"]) for r in eval_rows(d / "eval.csv")]
        assert rows == list(range(500, steps + 1, 500)), (d, rows)  # no row lost or written twice
        assert_resumed_to_the_reference(tmp_path, d, k, steps)


def read_json_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]
