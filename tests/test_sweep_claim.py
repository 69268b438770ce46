"""Claims, run locks and run states: atomicity, staleness, and what each state looks like on disk."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from slurm.claim import (
    Claim,
    RunLock,
    claim_alive,
    read_claim,
    release_claim,
    set_claim_job,
    sweep_lock,
    try_claim,
)
from slurm.state import inspect_run

from conftest import wait_for


def _claimer(run_dir: str, barrier, results) -> None:
    barrier.wait()
    results.put(try_claim(Path(run_dir), Claim.new("slurm", "s")))


def test_concurrent_claimers_exactly_one_wins(tmp_path):
    ctx = mp.get_context("fork")
    for round_ in range(15):
        run_dir = tmp_path / f"run{round_}"
        barrier, results = ctx.Barrier(4), ctx.Queue()
        procs = [ctx.Process(target=_claimer, args=(str(run_dir), barrier, results)) for _ in range(4)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(30)
        wins = [results.get(timeout=5) for _ in procs]
        assert sorted(wins) == [False, False, False, True], wins
        assert read_claim(run_dir).job_id is None  # complete JSON, never a half-written file


def test_claim_job_id_and_release_only_by_owner(tmp_path):
    assert try_claim(tmp_path, Claim.new("slurm", "s"))
    assert not try_claim(tmp_path, Claim.new("slurm", "s"))
    set_claim_job(tmp_path, "12_3")
    assert read_claim(tmp_path).job_id == "12_3"
    release_claim(tmp_path, job_id="99")  # not the owner: stays
    assert read_claim(tmp_path) is not None
    release_claim(tmp_path, job_id="12_3")
    assert read_claim(tmp_path) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no temp files left behind


def test_claim_liveness():
    c = Claim("7_1", "slurm", "h", 1, 0.0, "s")
    assert claim_alive(c, {"7_1": ("PENDING", "BeginTime")}) == (
        True,
        "PENDING",
        "job 7_1 PENDING (BeginTime)",
    )
    assert claim_alive(c, {"7_1": ("RUNNING", "None")})[:2] == (True, "RUNNING")
    assert claim_alive(c, {"7_1": ("CANCELLED", "None")})[0] is False
    assert (
        claim_alive(c, {"7_1": ("PREEMPTED", "None")})[0] is False
    )  # PreemptMode=CANCEL: it never runs again
    assert claim_alive(c, {"7_1": ("REQUEUED", "None")})[0] is True  # PreemptMode=REQUEUE: it runs again
    assert claim_alive(c, {})[0] is False  # gone from the queue: stale
    assert claim_alive(c, None)[0] is True  # Slurm unreachable: never assume dead
    assert claim_alive(Claim(None, "slurm", "h", 1, 0.0, "s"), {})[0] is False
    import socket

    me = socket.gethostname()
    assert claim_alive(Claim(str(os.getpid()), "local", me, 1, 0.0, "s"), None)[:2] == (True, "LOCAL")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    assert claim_alive(Claim(str(dead.pid), "local", me, 1, 0.0, "s"), None)[0] is False


HOLD = """
import sys, time
from pathlib import Path
from slurm.claim import RunLock
assert RunLock(Path(sys.argv[1])).acquire({"job_id": "x", "pid": 0})
print("locked", flush=True)
time.sleep(60)
"""


def test_run_lock_is_exclusive_and_dies_with_its_process(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        lock = RunLock(tmp_path)
        assert lock.held_elsewhere()
        assert not lock.acquire({}, timeout_s=0.3)
        assert lock.holder()["job_id"] == "x"
        os.kill(holder.pid, signal.SIGKILL)  # no cleanup code runs: the kernel drops the lock
        holder.wait()
        assert not lock.held_elsewhere()
        assert lock.acquire({"job_id": "y"}, timeout_s=0.3)
        lock.release()
    finally:
        holder.kill()


WAIT_FOR_SWEEP_LOCK = """
import sys
from pathlib import Path
from slurm.claim import sweep_lock
with sweep_lock(Path(sys.argv[1])):
    print("in after release" if Path(sys.argv[2]).exists() else "in while held", flush=True)
"""


def _blocked_flock_waiters(pid: int) -> bool:
    """Whether `pid` waits for an flock: the kernel lists a blocked request in /proc/locks as '-> FLOCK'."""
    for line in Path("/proc/locks").read_text().splitlines():
        f = line.split()
        if len(f) > 5 and f[1] == "->" and f[2] == "FLOCK" and f[5] == str(pid):
            return True
    return False


@pytest.mark.skipif(not Path("/proc/locks").exists(), reason="needs Linux /proc/locks to see a blocked flock")
def test_sweep_lock_serialises(tmp_path):
    """Event-driven: the second process is seen blocked in flock (by the kernel), and when it gets the lock
    the marker written just before our release exists; without the lock it would enter at once and say so."""
    released = tmp_path / "released"
    with sweep_lock(tmp_path / "sweep.lock"):
        p = subprocess.Popen(
            [sys.executable, "-c", WAIT_FOR_SWEEP_LOCK, str(tmp_path / "sweep.lock"), str(released)],
            stdout=subprocess.PIPE,
            text=True,
        )
        wait_for(lambda: _blocked_flock_waiters(p.pid), p, "the second process to block on the sweep lock")
        released.touch()
    assert p.communicate(timeout=60)[0].strip() == "in after release"


def _status(d: Path, state: str, step: int = 0, error=None):
    d.mkdir(parents=True, exist_ok=True)
    (d / "status.json").write_text(
        json.dumps({"state": state, "env_step": step, "steps": 100, "error": error, "updated_at": 0})
    )


def test_inspect_run_kinds(tmp_path):
    assert inspect_run(tmp_path / "none", {}).kind == "missing"
    d = tmp_path / "done"
    _status(d, "done", 100)
    try_claim(d, Claim("1", "slurm", "h", 1, 0, "s"))  # a leftover claim never matters for a done run
    assert inspect_run(d, {"1": ("RUNNING", "")}).kind == "done"

    d = tmp_path / "pending"
    try_claim(d, Claim("2_0", "slurm", "h", 1, 0, "s"))
    st = inspect_run(d, {"2_0": ("PENDING", "Resources")})
    assert (st.kind, st.job) == ("pending", "job 2_0 PENDING (Resources)")
    st = inspect_run(d, {})
    assert (st.kind, st.stale_claim) == ("missing", True)

    d = tmp_path / "running"
    _status(d, "running", 40)
    try_claim(d, Claim("3", "slurm", "h", 1, 0, "s"))
    st = inspect_run(d, {"3": ("RUNNING", "None")})
    assert (st.kind, st.env_step, st.steps) == ("running", 40, 100)
    st = inspect_run(d, {"3": ("CANCELLED", "None")})  # scancelled: resumable
    assert (st.kind, st.stale_claim) == ("interrupted", True)

    d = tmp_path / "failed"
    _status(d, "failed", 10, "NonFiniteLoss: nan")
    st = inspect_run(d, {})
    assert (st.kind, st.error) == ("failed", "NonFiniteLoss: nan")
    try_claim(d, Claim("4", "slurm", "h", 1, 0, "s"))  # resubmitted: pending again
    assert inspect_run(d, {"4": ("PENDING", "")}).kind == "pending"
