"""`make sweep` on Slurm without a cluster: a fake submitit executor and queue. Array chunking under
MaxArraySize, claims, skipping live and done runs, resubmitting stale ones, concurrent sweeps, DRY output."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import submitit

from slurm import cluster
from slurm.claim import read_claim
from slurm.profiles import load_profile
from slurm.run import Run
from slurm.submit import run_sweep

GROUPS = {"easy": ["walker-walk", "cartpole-balance"], "medium": ["cheetah-run"], "hard": []}
SWEEP = """name: fk
agents: [iqrl, td3]
tasks: [walker-walk]
seeds: [0, 1]
steps: 100
grid: {agent.horizon: [1, 3]}
"""  # 2 agents x 2 variants x 2 seeds = 8 runs (td3 has no horizon, but validation is off here)


class FakeSlurm:
    """Records arrays; its queue is what squeue would print."""

    def __init__(self, max_array: int = 3):
        self.queue: dict[str, tuple[str, str]] = {}
        self.arrays: list[list[Run]] = []
        self.params: list[dict] = []
        self.next_id = 100
        self.fail_on_array: int | None = None
        self.failure: Exception = RuntimeError("sbatch: error: QOSMaxSubmitJobPerUserLimit")
        self.lock = threading.Lock()
        self.max_array = max_array

    def executor(self, folder, max_num_timeout=3):
        fake = self

        class Job:
            def __init__(self, job_id):
                self.job_id = job_id

        class Executor:
            def update_parameters(self, **kw):
                fake.params.append(kw)

            def submit_array(self, runs):
                with fake.lock:
                    if fake.fail_on_array is not None and len(fake.arrays) == fake.fail_on_array:
                        raise fake.failure
                    assert len(runs) <= fake.max_array, "array larger than MaxArraySize"
                    array_id, fake.next_id = fake.next_id, fake.next_id + 1
                    fake.arrays.append(list(runs))
                    jobs = [Job(f"{array_id}_{i}") for i in range(len(runs))]
                    for j in jobs:
                        fake.queue[j.job_id] = ("PENDING", "Priority")
                    return jobs

        return Executor()


@pytest.fixture
def fake(monkeypatch):
    f = FakeSlurm()
    monkeypatch.setattr(submitit, "SlurmExecutor", f.executor)
    monkeypatch.setattr(cluster, "slurm_present", lambda: True)
    monkeypatch.setattr(cluster, "queue", lambda: dict(f.queue))
    monkeypatch.setattr(cluster, "max_array_size", lambda: f.max_array)
    return f


def sweep(tmp_path: Path, text: str = SWEEP, **kw):
    p = tmp_path / "fk.yaml"
    p.write_text(text)
    lines: list[str] = []
    rc = run_sweep(
        p,
        tmp_path / "res",
        kw.pop("cluster_name", "local-slurm"),
        out=lines.append,
        task_groups=GROUPS,
        validator=None,
        **kw,
    )
    return rc, "\n".join(lines)


def run_dirs(tmp_path):
    return sorted((tmp_path / "res" / "fk").glob("*/*/*/seed*"))


def test_arrays_are_chunked_below_max_array_size_and_claims_get_job_ids(tmp_path, fake):
    rc, out = sweep(tmp_path)
    assert rc == 0
    assert [len(a) for a in fake.arrays] == [3, 3, 2]  # MaxArraySize 3: indices 0..2
    assert "submitted 8 runs in 3 array job(s)" in out
    dirs = run_dirs(tmp_path)
    assert len(dirs) == 8
    ids = sorted(read_claim(d).job_id for d in dirs)
    assert ids == sorted(f"{a}_{i}" for a, n in ((100, 3), (101, 3), (102, 2)) for i in range(n))
    p = fake.params[0]
    assert p["partition"] == "debug" and p["array_parallelism"] == 4 and p["job_name"] == "iqrl-fk"
    run = fake.arrays[0][0]
    assert run.entry == "iqrl.train:main" and "device=cpu" in run.argv and run.threads == 1
    assert Path(run.run_dir).is_absolute()
    log = [
        json.loads(line)
        for line in (tmp_path / "res/.submitit/fk/submissions.jsonl").read_text().splitlines()
    ]
    assert sum(len(e["runs"]) for e in log) == 8


def test_second_sweep_submits_nothing_while_jobs_are_queued_and_skips_done(tmp_path, fake):
    sweep(tmp_path)
    rc, out = sweep(tmp_path)
    assert rc == 0 and "nothing to submit" in out and len(fake.arrays) == 3
    assert "8 running or queued (skipped)" in out
    # jobs leave the queue: two runs finished, the others died without a trace (scancel, node failure)
    done = run_dirs(tmp_path)[:2]
    for d in done:
        (d / "status.json").write_text(json.dumps({"state": "done", "env_step": 100, "steps": 100}))
    fake.queue.clear()
    rc, out = sweep(tmp_path)
    assert "2 done (skipped)" in out and "6 to run (6 missing)" in out
    assert [len(a) for a in fake.arrays[3:]] == [3, 3]
    resubmitted = {r.run_dir for a in fake.arrays[3:] for r in a}
    assert resubmitted == {str(d.absolute()) for d in run_dirs(tmp_path)[2:]}
    for d in done:
        assert read_claim(d) is None or read_claim(d).job_id.startswith("10")  # untouched


def test_failed_sbatch_releases_the_claims_it_could_not_submit(tmp_path, fake):
    fake.fail_on_array = 1
    with pytest.raises(RuntimeError, match="QOSMaxSubmitJobPerUserLimit"):
        sweep(tmp_path)
    claimed = [d for d in run_dirs(tmp_path) if read_claim(d)]
    assert len(claimed) == 3 and all(read_claim(d).job_id for d in claimed)
    fake.fail_on_array = None
    rc, out = sweep(tmp_path)
    assert "3 running or queued (skipped), 5 to run" in out
    assert sum(len(a) for a in fake.arrays) == 8


def test_concurrent_sweeps_never_submit_a_run_twice(tmp_path, fake):
    (tmp_path / "fk.yaml").write_text(SWEEP)
    outs: list[list[str]] = [[], [], [], []]

    def go(i):
        run_sweep(
            tmp_path / "fk.yaml",
            tmp_path / "res",
            "local-slurm",
            out=outs[i].append,
            task_groups=GROUPS,
            validator=None,
        )

    threads = [threading.Thread(target=go, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    submitted = [r.run_dir for a in fake.arrays for r in a]
    assert len(submitted) == len(set(submitted)) == 8
    assert sum("nothing to submit" in "\n".join(o) for o in outs) == 3


def test_stale_claim_without_job_id_is_replaced(tmp_path, fake):
    from slurm.claim import Claim, try_claim

    d = tmp_path / "res/fk/iqrl/walker-walk/horizon=1/seed0"
    try_claim(d, Claim(None, "slurm", "elsewhere", 1, 0.0, "fk"))  # its sweep died before sbatch
    rc, out = sweep(tmp_path)
    assert sum(len(a) for a in fake.arrays) == 8 and read_claim(d).job_id


def test_dry_run_prints_runs_and_sbatch_flags_and_changes_nothing(tmp_path, fake):
    rc, out = sweep(tmp_path, dry=True)
    assert rc == 0 and not fake.arrays
    assert not (tmp_path / "res").exists()
    assert "DRY RUN: nothing claimed or submitted. 8 runs in 3 array job(s) (MaxArraySize 3)" in out
    assert out.count("#SBATCH --array=0-2%3") == 2 and out.count("#SBATCH --array=0-1%2") == 1
    for flag in (
        "--partition=debug",
        "--cpus-per-task=1",
        "--mem=2GB",
        "--time=30",
        "--signal=USR2@20",
        "--job-name=iqrl-fk",
    ):
        assert f"#SBATCH {flag}" in out
    assert "python -m iqrl.train agent=iqrl task=walker-walk seed=0 steps=100" in out
    assert "variant=horizon=1 'overrides=[\"agent.horizon=1\"]' agent.horizon=1 device=cpu" in out


def test_dry_run_gpu_profile_flags(tmp_path, fake):
    fake.max_array = 1001
    rc, out = sweep(tmp_path, dry=True, cluster_name="gpu")
    assert "#SBATCH --gpus-per-node=1" in out and "#SBATCH --partition=gpu" in out
    assert "#SBATCH --array=0-7%8" in out and "device=cuda" in out


def test_dry_run_with_a_gpu_hour_budget_prints_the_measured_modes_against_it(tmp_path, fake, capsys):
    """`make sweep ... DRY=1 GPU_HOURS=700`: the projection (at docs/gpu-results' rows) ends with the table
    of agent, mode and K, GPU-hours, and the total against the budget."""
    from slurm.__main__ import main as cli

    p = tmp_path / "ok.yaml"
    p.write_text("name: fk\nagents: [iqrl]\ntasks: [walker-walk]\nseeds: [0, 1]\nsteps: 100\n")
    argv = ["sweep", str(p), "--results", str(tmp_path / "res"), "--cluster", "gpu", "--dry"]
    assert cli(argv + ["--gpu-hours", "700"]) == 0 and not fake.arrays
    out = capsys.readouterr().out.splitlines()
    assert (
        out[-3] == "budget 700 GPU-hours, measured rows only: agent, fastest measured mode and K, GPU-hours"
    )
    assert out[-2].split()[0] == "iqrl" and out[-1] == "  fits: 0 of 700 GPU-hours in the modes and K above"


def test_dry_run_custom_profile_flags_reach_the_script(tmp_path, fake):
    prof = tmp_path / "mine.yaml"
    prof.write_text(
        "executor: slurm\npartition: big\naccount: lab42\nqos: long\nconstraint: avx512\n"
        "time_min: 240\ncpus: 4\nmem_gb: 16\ngpus: 0\narray_parallelism: 3\n"
        "sbatch: {exclude: node7, mail-type: FAIL}\nsetup: [module load cuda/12.4]\n"
    )
    rc, out = sweep(tmp_path, dry=True, cluster_name=str(prof))
    assert rc == 0 and not fake.arrays
    for flag in (
        "--partition=big",
        "--account=lab42",
        "--qos=long",
        "--constraint=avx512",
        "--time=240",
        "--cpus-per-task=4",
        "--mem=16GB",
        "--exclude=node7",
        "--mail-type=FAIL",
    ):
        assert f"#SBATCH {flag}" in out, (flag, out)
    assert "%3" in out and "--gpus" not in out


def test_profile_errors(tmp_path):
    from slurm.profiles import ProfileError

    with pytest.raises(ProfileError, match="unknown cluster profile 'nope'.*local-slurm"):
        load_profile("nope")
    bad = tmp_path / "p.yaml"
    bad.write_text("executor: slurm\ntime_min: 0.5\n")
    with pytest.raises(ProfileError, match="time_min must be a whole number"):
        load_profile(str(bad))
    bad.write_text("executor: slurm\npartitoin: x\n")
    with pytest.raises(ProfileError, match="unknown key 'partitoin'"):
        load_profile(str(bad))
    bad.write_text("executor: slurm\npartition: a\npartition: b\n")
    with pytest.raises(
        ProfileError, match=r"line 3, column 1: duplicate key 'partition' \(first given at line 2\)"
    ):
        load_profile(str(bad))
    for name in ("local", "local-slurm", "cpu", "gpu"):
        load_profile(name)


@pytest.mark.parametrize(
    "line, message",
    [
        ("setup: module load cuda", "setup must be a list of shell lines"),  # would be split into characters
        ("setup: [module load cuda, 3]", "setup must be a list of shell lines"),
        ("sbatch: [exclusive]", "sbatch must be a mapping"),
        ("parallelism: 0", "parallelism must be auto or an integer >= 1, got 0"),  # the local loop would spin
        ("parallelism: many", "parallelism must be auto or an integer >= 1"),
        ("cpus: 0", "cpus must be an integer >= 1, got 0"),
        ("array_parallelism: 0", "array_parallelism must be an integer >= 1, got 0"),
        ("max_array_size: 0", "max_array_size must be an integer >= 1"),
        ("gpus: -1", "gpus must be an integer >= 0"),
        ("signal_delay_s: true", "signal_delay_s must be an integer >= 0, got True"),
        ("mem_gb: 32G", "mem_gb must be a positive number of GB"),
        ("pack_mode: fast", "pack_mode must be one of auto, eager, compiled, graphs, got 'fast'"),
        ("pack_mode: graphs", "pack_mode graphs captures CUDA graphs: set device: cuda"),
    ],
)
def test_profile_values_are_checked(tmp_path, line, message):
    from slurm.profiles import ProfileError

    p = tmp_path / "p.yaml"
    p.write_text(f"executor: local\n{line}\n")
    with pytest.raises(ProfileError) as e:
        load_profile(str(p))
    assert message in str(e.value) and "\n" not in str(e.value)


def test_profile_setup_lines_reach_sbatch(tmp_path):
    p = tmp_path / "p.yaml"
    p.write_text("executor: slurm\nsetup: [module load cuda/12.4, source env.sh]\nparallelism: 2\n")
    prof = load_profile(str(p))
    assert prof.slurm_parameters("j")["setup"] == ["module load cuda/12.4", "source env.sh"]
    assert prof.local_parallelism() == 2


def sweep_with_failing_sbatch(tmp_path, fake, capsys, failure, fail_on_array: int, agents: str) -> str:
    """`make sweep` of `agents` x walker-walk x 4 seeds whose sbatch call number `fail_on_array` raises
    `failure`; asserts one line on stderr, exit 1, no traceback, and returns that line."""
    from slurm.__main__ import main as cli

    fake.fail_on_array, fake.failure = fail_on_array, failure
    p = tmp_path / "ok.yaml"
    p.write_text(f"name: fk\nagents: [{agents}]\ntasks: [walker-walk]\nseeds: [0, 1, 2, 3]\nsteps: 100\n")
    rc = cli(["sweep", str(p), "--results", str(tmp_path / "res"), "--cluster", "local-slurm"])
    err = capsys.readouterr().err
    assert rc == 1 and err.count("\n") == 1 and "Traceback" not in err
    return err


def test_refused_sbatch_is_one_line_exit_1_and_releases_unsubmitted_claims(tmp_path, fake, capsys):
    """sbatch refusing an array (bad partition, QOS limit) raises submitit's FailedJobError with sbatch's
    stderr: `make sweep` prints one line, exits 1, keeps the claims of submitted arrays and drops the rest."""
    from submitit.core.utils import FailedJobError

    err = sweep_with_failing_sbatch(
        tmp_path,
        fake,
        capsys,
        FailedJobError(
            "sbatch: error: invalid partition specified: gpu-typo\n"
            "sbatch: error: Batch job submission failed: Invalid partition name specified"
        ),
        1,
        "iqrl, td3",
    )
    assert err.startswith("error: sbatch failed: sbatch: error: invalid partition specified: gpu-typo; ")
    assert "(3 of 8 runs submitted before; the other claims are released)" in err
    claims = [read_claim(d) for d in run_dirs(tmp_path)]
    assert [c.job_id for c in claims if c] == ["100_0", "100_1", "100_2"]
    assert sum(c is None for c in claims) == 5


def test_unreadable_sbatch_reply_is_one_line_exit_1(tmp_path, fake, capsys):
    from submitit.core.utils import FailedSubmissionError

    err = sweep_with_failing_sbatch(
        tmp_path,
        fake,
        capsys,
        FailedSubmissionError('Could not make sense of sbatch output ""\nJob id regexp: ...'),
        0,
        "td3",
    )
    assert err.startswith("error: sbatch's reply could not be read (Could not make sense of sbatch output")
    assert "check squeue" in err and "0 of 4 runs submitted before" in err


def test_no_cluster_given_means_local_unless_slurm_is_installed(monkeypatch):
    from slurm.profiles import ProfileError
    from slurm.submit import choose_profile

    monkeypatch.setattr(cluster, "slurm_present", lambda: False)
    assert choose_profile(None).executor == "local"
    monkeypatch.setattr(cluster, "slurm_present", lambda: True)
    with pytest.raises(ProfileError, match="choose a cluster profile with CLUSTER="):
        choose_profile(None)


def test_chunks():
    assert cluster.chunks(list(range(7)), 3) == [[0, 1, 2], [3, 4, 5], [6]]
    assert cluster.chunks(list(range(1001)), 1001) == [list(range(1001))]
    assert [len(c) for c in cluster.chunks(list(range(2500)), 1001)] == [1001, 1001, 498]
    with pytest.raises(ValueError):
        cluster.chunks([1], 0)


def test_packed_profile_submits_one_task_per_pack_and_claims_name_its_job(tmp_path, fake):
    """runs_per_job: 2 with the stand-in entry (no K-seed grouping): 8 runs -> 4 tasks in arrays under
    MaxArraySize 3; both runs of a task claimed by that task's job; DRY shows the same grouping."""
    from slurm.pack import Pack

    prof = tmp_path / "packed.yaml"
    prof.write_text(
        "executor: slurm\npartition: debug\ntime_min: 30\ncpus: 4\nmem_gb: 2\ngpus: 0\n"
        "array_parallelism: 3\nsignal_delay_s: 20\nruns_per_job: 2\n"
    )
    rc, out = sweep(tmp_path, dry=True, cluster_name=str(prof), entry="fake_trainer:main")
    assert rc == 0 and not fake.arrays
    assert (
        "DRY RUN: nothing claimed or submitted. 8 runs as 4 array tasks of up to 2 runs in 2 array job(s)"
        in out
    )
    assert out.count("runs, 2 processes, 2 thread(s) each:") == 4
    rc, out = sweep(tmp_path, cluster_name=str(prof), entry="fake_trainer:main")
    assert rc == 0 and "submitted 8 runs in 2 array job(s) (4 jobs of up to 2 runs)" in out, out
    tasks = [t for a in fake.arrays for t in a]
    assert [len(a) for a in fake.arrays] == [3, 1] and all(isinstance(t, Pack) for t in tasks)
    assert all(len(t.runs) == 2 and t.mode == "processes" and t.threads == 4 for t in tasks)
    jobs = {}
    for d in run_dirs(tmp_path):
        jobs.setdefault(read_claim(d).job_id, []).append(d)
    assert len(jobs) == 4 and all(len(ds) == 2 for ds in jobs.values())
    log = [
        json.loads(line)
        for line in (tmp_path / "res/.submitit/fk/submissions.jsonl").read_text().splitlines()
    ]
    assert [len(t) for line in log for t in line["tasks"]] == [2, 2, 2, 2]


def test_a_broken_pipe_closes_no_stream_of_an_in_process_caller(monkeypatch):
    """`main` run in a caller's own process (a test, a notebook) lets a BrokenPipeError out and leaves the
    caller's streams open (it closed sys.stderr once, and pytest then lost its own); `python -m slurm`
    (`entry`) ends with 0 and prints nothing when its reader leaves (`make status | head`)."""
    import slurm.__main__ as cli

    def broken(*args, **kwargs):
        raise BrokenPipeError

    monkeypatch.setattr(cli, "run_sweep", broken)
    with pytest.raises(BrokenPipeError):
        cli.main(["sweep", "ablations/smoke.yaml", "--dry"])
    assert not sys.stderr.closed and not sys.stdout.closed
    code = (  # a reader that leaves at once: writing 400 kB into its pipe raises BrokenPipeError in main
        "import sys, slurm.__main__ as cli\n"
        "def much(argv=None):\n    print('row\\n' * 100000)\n    return 0\n"
        "cli.main = much\nsys.exit(cli.entry())\n"
    )
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen(
        [sys.executable, "-c", code], cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    proc.stdout.close()
    err = proc.stderr.read()
    assert (proc.wait(timeout=60), err) == (0, "")
