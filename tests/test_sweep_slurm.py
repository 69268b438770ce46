"""End to end on a real Slurm cluster (slurm/local-cluster.sh) with the real trainer, through `make`.

1. The smoke sweep, started by two `make sweep` at once: every run is submitted once; one running job is
   SIGKILLed and another scancelled; `make status` shows both as interrupted; the next `make sweep`
   resubmits exactly those two, which resume from their checkpoints and finish; a further `make sweep`
   submits nothing.
2. A running job that gets USR2 (what Slurm sends ahead of a time limit or on preemption) checkpoints, is
   requeued by submitit and finishes with the same eval.csv as the same run trained without interruption.
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
    return subprocess.run(["make", "-s", "--no-print-directory", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, **kw)


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
    out = subprocess.run(["squeue", "-h", "-r", "-n", f"iqrl-{name}", "-o", "%i"], capture_output=True, text=True)
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
    procs = [subprocess.Popen(["make", "-s", "--no-print-directory", *args], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for _ in range(2)]
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
    assert sorted(submitted(results, "smoke")) == sorted(runs + [str(killed.relative_to(base)),
                                                                 str(cancelled.relative_to(base))])
    assert not sweep_jobs("smoke")


LONG = """name: long
agents: [iqrl]
tasks: [walker-walk]
seeds: [0]
steps: 7000
fixed:
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


def test_usr2_requeue_gives_the_same_eval_csv(tmp_path):
    """Slurm warns a job of its time limit (and of preemption) with USR2 to every job step, `signal_delay_s`
    ahead. We send that same signal with `scancel --signal=USR2` once the run has checkpointed, instead of
    waiting for a 1-minute limit: whether a run outlasts a fixed limit depends on the machine's speed (a
    fast CI machine finished this run before its limit and the test failed). The limit itself is Slurm's
    job; we check that the submission asks for it."""
    sweep_file = tmp_path / "long.yaml"
    sweep_file.write_text(LONG)
    results = tmp_path / "res"

    from slurm.submit import load

    _, (run,) = load(sweep_file, results, validator=None)
    ref_dir = tmp_path / "reference"
    argv = [a if not a.startswith("out=") else f"out={ref_dir}" for a in run.argv(results)]
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    reference = subprocess.Popen([sys.executable, "-m", "iqrl.train", *argv], cwd=ROOT, env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    out = make("sweep", f"SWEEP={sweep_file}", "CLUSTER=local-slurm", f"RESULTS={results}")
    assert out.returncode == 0 and "submitted 1 runs" in out.stdout, out.stdout + out.stderr
    assert "#SBATCH" not in out.stdout
    run_dir = run.run_dir(results)

    def checkpointed_mid_run():
        st = read_json(run_dir / "status.json")
        ok = st.get("state") == "running" and 1000 <= st.get("env_step", 0) <= 4000
        return read_json(run_dir / ".claim").get("job_id") if ok and (run_dir / "checkpoint/ckpt.pt").exists() else None

    job = wait_for(checkpointed_mid_run, 300, "the run to pass its first checkpoint")
    subprocess.run(["scancel", "--signal=USR2", job], check=True)
    wait_for(lambda: read_json(run_dir / "status.json").get("state") == "done" and not sweep_jobs("long"),
             420, "the signalled run to be requeued and finish", poll=1)
    assert reference.wait(timeout=300) == 0, reference.stderr.read()

    scripts = "".join(p.read_text() for p in (results / ".submitit/long").glob("*/*_submission.sh"))
    assert "#SBATCH --signal=USR2@20" in scripts and "#SBATCH --time=30" in scripts, scripts
    log = "".join(p.read_text() for p in (results / ".submitit/long").glob("*/*_log.*"))
    assert "[slurm.run] got SIGUSR2" in log
    assert "Requeued job" in log and "interrupted at env_step" in log and "resumed from checkpoint" in log
    assert eval_rows(run_dir / "eval.csv") == eval_rows(ref_dir / "eval.csv")
    assert len(eval_rows(run_dir / "eval.csv")) == 8
