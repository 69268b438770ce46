"""What the sweep tests share when they run the stand-in trainer (tests/fake_trainer.py) or another trainer of
tests/ in sweep jobs: its environment, sweep and profile files, `run_sweep` with its output collected, and
the reference a run must match (the same run trained in one go)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from slurm.submit import run_sweep

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
SWEEP = """name: {name}
agents: [iqrl]
tasks: [walker-walk]
seeds: {seeds}
steps: {steps}
fixed: {{episode_length: 100, eval_every: 500{extra}}}
"""
LOCAL_PROFILE = {
    "executor": "local",
    "parallelism": 2,
    "cpus": 1,
    "time_min": 10.0,
    "signal_delay_s": 5,
    "max_num_timeout": 5,
}


def jobs_import_tests(monkeypatch) -> None:
    """Job processes (local, or Slurm's: sbatch exports the environment) import this checkout and the
    trainers of tests/ (`fake_trainer`, `throttled_trainer`)."""
    paths = [str(ROOT), str(TESTS), os.environ.get("PYTHONPATH", "")]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(paths))


def use_fake_trainer(monkeypatch) -> None:
    """Jobs import `fake_trainer`; its episodes sleep 0.02 s unless a test sets FAKE_TRAINER_EPISODE_S."""
    jobs_import_tests(monkeypatch)
    monkeypatch.setenv("FAKE_TRAINER_EPISODE_S", "0.02")


def write_files(tmp_path: Path, name: str, steps: int, extra: str = "", seeds=(0, 1, 2), **profile):
    """`<name>.yaml` (iqrl on walker-walk, 100-step episodes, an eval every 500) and `prof.yaml` (the local
    profile above, with `profile`'s keys replaced or added)."""
    sweep_file, profile_file = tmp_path / f"{name}.yaml", tmp_path / "prof.yaml"
    sweep_file.write_text(SWEEP.format(name=name, seeds=list(seeds), steps=steps, extra=extra))
    profile_file.write_text("".join(f"{k}: {v}\n" for k, v in {**LOCAL_PROFILE, **profile}.items()))
    return sweep_file, profile_file


def sweep(tmp_path: Path, sweep_file: Path, profile: Path, entry: str = "fake_trainer:main", **kw):
    """`make sweep` in-process into tmp_path/res: (exit code, its output)."""
    lines: list[str] = []
    rc = run_sweep(
        sweep_file, tmp_path / "res", str(profile), out=lines.append, entry=entry, validator=None, **kw
    )
    return rc, "\n".join(lines)


def concurrently(fn, n: int = 2) -> list:
    """fn() in n threads at once; their results."""
    results: list = [None] * n

    def go(i: int) -> None:
        results[i] = fn()

    threads = [threading.Thread(target=go, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    return results


def starts(d: Path) -> list[str]:
    """The stand-in trainer's start lines ("start <env_step> <pid>"), one per (re)start of the run."""
    p = d / "starts.log"
    return p.read_text().splitlines() if p.exists() else []


def reference_eval(tmp_path: Path, seed: int, steps: int, extra_argv=()) -> str:
    """eval.csv of the same run trained in one go, in-process (without the episodes' sleep, which paces the
    sweep's jobs and changes no number)."""
    import fake_trainer

    out = tmp_path / f"ref{seed}"
    argv = [
        f"seed={seed}",
        f"steps={steps}",
        f"out={out}",
        "episode_length=100",
        "eval_every=500",
        *extra_argv,
    ]
    pace = os.environ.get("FAKE_TRAINER_EPISODE_S")
    os.environ["FAKE_TRAINER_EPISODE_S"] = "0"
    try:
        assert fake_trainer.main(argv) == 0
    finally:
        if pace is None:
            del os.environ["FAKE_TRAINER_EPISODE_S"]
        else:
            os.environ["FAKE_TRAINER_EPISODE_S"] = pace
    return (out / "eval.csv").read_text()


def assert_resumed_to_the_reference(tmp_path: Path, run_dir: Path, seed: int, steps: int) -> None:
    """The run was stopped and resumed at least once, each time from further on (never from scratch), and
    ends with the eval.csv of the same run trained in one go: no row lost or written twice."""
    lines = starts(run_dir)
    assert len(lines) >= 2, (run_dir, lines)
    assert all(int(a.split()[1]) < int(b.split()[1]) for a, b in zip(lines, lines[1:])), (run_dir, lines)
    assert (run_dir / "eval.csv").read_text() == reference_eval(tmp_path, seed, steps), run_dir
