"""The GPU's first command (`bash scripts/gpu_part.sh first`, `python -m apps.gpu_report part first`): in one
command of about 9 minutes on one H200, (a) the captured K-seed group against the compiled one at paper
sizes (16 seeds, 12 updates, every piece replayed: tests/test_cuda.py's GROUP_GRAPHS_TEST), then (b) a
trained policy against published points: iqrl on walker-walk at its paper sizes as a K = 4 group in the
fastest mode verified on this GPU model, 20,000 env steps (10,000 of seed phase, then 5,000 updates per
seed), evaluated every 5,000 env steps, so at 15,000 and 20,000 after updates, where the published iQRL
curve has points (`compared_steps`). It prints each seed's return there beside the published mean and its
band (mean ± std over the published seeds, analysis/reference/data), writes one `learn` row, and hands back
the seed folders less their checkpoints in OUT/runs.tar.gz, as runs/<agent>/<task>/seed<k>/ (`collect`
commits them under docs/gpu-results/runs/<gpu>-<date>/, apps/gpu_report/learning.py).

On a machine without CUDA only `--smoke` runs: the CPU form `make test` runs, where the test is collected
and skipped, the group has 2 tiny seeds evaluated after their first updates, and a step budget it reaches by
itself (no wall-clock stop: its verdict does not depend on the machine's speed).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from apps.gpu_report import plan
from apps.gpu_report.learning import group_split, keep_run, pack_runs, run_folder, seed_folders
from apps.gpu_report.parts import (
    REPO,
    STOP_GRACE_S,
    RowLog,
    committed_rows,
    learn_row,
    machine,
    matching_ways,
    pytest_command,
    read_evals,
    start_run,
    summary,
)
from apps.gpu_report.pytest_rows import ROWS_ENV
from iqrl.bench.gpu_rows import GROUP_GRAPHS_TEST, latest_test_outcomes
from iqrl.config.build import layered

#: The first command's rows: part 0 (OUT/part0.jsonl), merged by `collect` like the other parts'.
PART = 0
#: Its budget: a command of 10 minutes with the wheels' install and the imports.
BUDGET_S = 540.0
#: The most the captured group's check may take of it; the learning run has the rest.
TEST_BUDGET_S = 150.0
#: The learning run: iqrl on walker-walk, the method and task whose published curve starts earliest
#: (iQRL's shipped walker-walk curve has points every 5,000 env steps from 15,000).
AGENT, TASK = "iqrl", "walker-walk"
#: Its run keys: the agent's paper configuration; 20,000 env steps (the default seed phase of 10,000, then
#: updates), an evaluation every 5,000 of 5 episodes (not 10: in a run this short the evaluations are a large
#: share of the time, "s per evaluation" of the committed runs; each seed's mean return stays an unbiased
#: estimate), one checkpoint at the end.
RUN = ("steps=20000", "eval_every=5000", "eval_episodes=5", "checkpoint_every=20000")
#: The group's seeds: 4, so that it reaches 20,000 env steps within the budget.
K = 4
#: The smoke's group: 2 tiny seeds to 400 env steps, seeded for 200, evaluated every 100 (so at 300 and 400
#: after updates); it ends by itself.
SMOKE_RUN = (
    "steps=400",
    "seed_steps=200",
    "episode_length=100",
    "eval_every=100",
    "eval_episodes=1",
    "diag_every=100",
)


def key_value(keys: tuple[str, ...], name: str, default: int) -> int:
    """The integer value of run key `name` in `keys` (the last one given), else `default`."""
    values = [k.partition("=")[2] for k in keys if k.partition("=")[0] == name]
    return int(values[-1]) if values else default


def evaluation_steps(keys: tuple[str, ...]) -> list[int]:
    """The env steps a run of `keys` evaluates at: 0, then every `eval_every` up to `steps`."""
    steps, every = key_value(keys, "steps", 0), key_value(keys, "eval_every", 1)
    return list(range(0, steps + 1, every))


def seed_phase(keys: tuple[str, ...]) -> int:
    """The run's seed phase in env steps (`seed_steps`; the config's default 10,000)."""
    return key_value(keys, "seed_steps", 10000)


def published_band(step: int) -> dict[str, tuple[float, float, int]]:
    """{label: (mean, std, seeds)} of the published iQRL walker-walk curves that have a point at `step` (the
    shipped tables of analysis/reference/data, as `make figures REFERENCE=1` reads them)."""
    from analysis.reference.table import published_algorithm, select_reference
    from apps.gpu_report.learning import shipped_curves

    band = select_reference(shipped_curves(), [TASK])
    band = band[(band["algorithm"] == published_algorithm(AGENT, pixels=False)) & (band["env_step"] == step)]
    return {r.label: (float(r.mean), float(r.std), int(r.n_seeds)) for r in band.itertuples()}


def compared_steps(keys: tuple[str, ...]) -> list[int]:
    """The evaluations of a run of `keys` that come after its seed phase (so after updates) at env steps
    where the published curve has a point."""
    return [s for s in evaluation_steps(keys) if s > seed_phase(keys) and published_band(s)]


def comparison_lines(folder: Path, steps: list[int]) -> list[str]:
    """Per compared step: the published mean and band there, then each seed's return (its eval.csv), said
    inside or outside the band; a step the run did not reach is said so."""
    evals = [read_evals(s / "eval.csv") for s in seed_folders(folder)]
    lines = []
    for step in steps:
        for label, (mean, std, n) in published_band(step).items():
            lines.append(
                f"at {step} env steps: published {label}: mean {mean:.1f}, band {mean - std:.1f} to "
                f"{mean + std:.1f} (mean ± std over {n} seeds)"
            )
            for k, e in enumerate(evals):
                if step not in e:
                    lines.append(f"  seed {k}: not evaluated there (stopped before {step} env steps)")
                    continue
                inside = "inside" if abs(e[step] - mean) <= std else "outside"
                lines.append(f"  seed {k}: {e[step]:.1f} ({inside} the band)")
    return lines or ["no evaluation of this run is at a step of the published curve"]


def graphs_test_command(smoke: bool) -> tuple[list[str], dict]:
    """(a): pytest on the paper-size captured-group test with the row plugin; on the CPU (smoke) it skips."""
    env = {**os.environ}
    if smoke:
        env["CUDA_VISIBLE_DEVICES"] = ""
    return pytest_command(GROUP_GRAPHS_TEST, []), env


def group_mode(test_rows: list[dict]) -> str:
    """The fastest K-seed mode verified on this GPU model: captured where the paper-size group test passed,
    compiled where the compiled group's did, else eager (plan.fastest_mode of results.matching_ways)."""
    return plan.fastest_mode(matching_ways(test_rows), kseed=True)


def run_first(out: Path, smoke: bool, budget_s: float | None = None) -> int:
    """The first command (module docstring); rows in out/part0.jsonl, the run's seed folders in
    out/runs.tar.gz. Without CUDA and `smoke`: one error line and exit 2, nothing written."""
    if not smoke and (reason := no_cuda()):
        print(
            f"error: the first command trains on a CUDA GPU and {reason}; on a CPU run it as `--smoke`",
            file=sys.stderr,
        )
        return 2
    budget = budget_s if budget_s is not None else BUDGET_S
    started = time.monotonic()
    deadline = started + budget
    log = RowLog(out / f"part{PART}.jsonl", PART)
    mach = log.append({**machine(), "smoke": smoke})
    print(
        f"first command on {mach['gpu'] or mach['cpu']} (torch {mach['torch']}); rows: {log.path}", flush=True
    )
    cmd, env = graphs_test_command(smoke)
    env[ROWS_ENV] = str(log.path)
    try:
        subprocess.run(cmd, cwd=REPO, env=env, timeout=min(TEST_BUDGET_S, max(budget / 4, 30)))
    except subprocess.TimeoutExpired:
        log.append({"kind": "missing", "key": GROUP_GRAPHS_TEST, "reason": "cut off by the command's budget"})
    tests = committed_rows(1) + [r for r in log.rows() if r["kind"] == "test"]
    mode = "false" if smoke else group_mode(tests)
    print(f"captured group at paper sizes: {latest_test_outcomes(tests).get(GROUP_GRAPHS_TEST, 'not run')}")
    keys = learning_keys(mode, smoke)
    run = plan.LearnRun(AGENT, TASK, keys, seeds=2 if smoke else K)
    root = Path(tempfile.mkdtemp(prefix="iqrl-gpu-first-"))
    try:
        train(run, root, smoke, deadline, log)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"\nthe first command took {time.monotonic() - started:.1f} s; rows in {log.path}")
    print(summary(log.rows()))
    return 0


def no_cuda() -> str:
    """Why this machine cannot train on CUDA ('' where it can)."""
    import torch

    if not torch.cuda.is_available():
        return f"torch {torch.__version__} finds none here (torch.cuda.is_available() is False)"
    return ""


def train(run: plan.LearnRun, root: Path, smoke: bool, deadline: float, log: RowLog) -> None:
    """The learning run in root/<agent>/ (stopped at the deadline on a GPU), its `learn` row, the comparison
    with the published points, and its seed folders less their checkpoints packed into the rows' folder."""
    folder = root / AGENT
    print(f"learning: {AGENT} on {TASK}, {run.seeds} seeds, {run.mode}: {' '.join(run.keys)}", flush=True)
    t = time.monotonic()
    proc = start_run(run, folder, ["device=cpu" if smoke else "device=cuda"])
    if smoke:  # a step budget: it ends by itself
        proc.wait()
    else:
        stop_at_deadline(proc, deadline)
    row = learn_row(run, folder, proc.returncode, time.monotonic() - t)
    log.append({**row, "first": True, **group_split(folder)})
    print("\n".join(comparison_lines(folder, compared_steps(run.keys))), flush=True)
    keep_run(folder, run_folder(root / "runs", AGENT, TASK))
    pack_runs(root / "runs", log.path.parent)


def learning_keys(mode: str, smoke: bool) -> tuple[str, ...]:
    """The run keys of the learning run: the agent's paper configuration and RUN, `mode`'s compile keys; the
    smoke's tiny sizes and step budget."""
    run = layered([f"agent={AGENT}", f"task={TASK}"], RUN)
    if smoke:
        run = layered(run, SMOKE_RUN, plan.SMOKE_IQRL)
    run += [f"compile={str(mode != 'false').lower()}"] + ["cudagraphs=true"] * (mode == "cudagraphs")
    return tuple(run)


def stop_at_deadline(proc: subprocess.Popen, deadline: float) -> None:
    """SIGTERM at the deadline less a grace (the group stops after an agent step, with a checkpoint), then
    a kill when the grace is spent too."""
    while time.monotonic() < deadline - STOP_GRACE_S and proc.poll() is None:
        time.sleep(1.0)
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
