"""The GPU's first command (`bash scripts/gpu_part.sh first`, `python -m iqrl.gpu_report part first`): in one
command of under 8 minutes, (a) the captured K-seed group against the compiled one at paper sizes (16 seeds,
12 updates, every piece replayed: tests/test_cuda.py's GROUP_GRAPHS_TEST), then (b) a learning result: iqrl on
walker-walk as a K = 4 group in the fastest mode verified on this GPU model, end to end, for the rest of
the budget; its seed folders less their checkpoints in OUT/runs.tar.gz, as runs/<agent>/<task>/seed<k>/
(`collect` commits them under docs/gpu-results/runs/<gpu>-<date>/, iqrl/gpu_report/learning.py), and one
`learn` row with env steps/s per seed and in all, the time split, each seed's returns at the last evaluation
all seeds reached and the published iQRL curve there (iQRL's released mean: 194.8 at 20k, 519.8 at 30k env
steps).

Later GPU runs rotate the learning run through the campaigns' agents and tasks (`LEARNING_ROTATION`): the
run is chosen by how many learning rows of this command docs/gpu-results/ already holds.

`--smoke` is the CPU form `make test` runs: the test is collected and skipped (no CUDA), the group has 2 tiny
seeds and a step budget it reaches by itself (no wall-clock stop: its verdict does not depend on the
machine's speed).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from iqrl.config.build import layered
from iqrl.gpu_report import plan
from iqrl.gpu_report.learning import group_split, keep_run, pack_runs, run_folder
from iqrl.gpu_report.parts import (
    REPO,
    STOP_GRACE_S,
    RowLog,
    committed_rows,
    learn_row,
    machine,
    matching_ways,
    pytest_command,
    start_run,
    summary,
)
from iqrl.gpu_report.pytest_rows import ROWS_ENV
from iqrl.gpu_report.results import GROUP_GRAPHS_TEST, latest_test_outcomes

#: The first command's rows: part 0 (OUT/part0.jsonl), merged by `collect` like the other parts'.
PART = 0
#: Its budget: a command of 10 minutes with the wheels' install and the imports.
BUDGET_S = 480.0
#: The learning runs of successive first commands, in turn: (agent, task, keys). The campaigns' agents
#: (ablations/main.yaml, sota.yaml): iqrl first, then its hard task, DR.Q, SimbaV2 at UTD 8, TD-MPC2, TD3, a
#: pixel run and an Atari run.
LEARNING_ROTATION = (
    ("iqrl", "walker-walk", ()),
    ("iqrl", "dog-run", ()),
    ("dr-q", "walker-walk", ()),
    ("simbav2-utd8", "walker-walk", ()),
    ("tdmpc2", "walker-walk", ()),
    ("td3", "walker-walk", ()),
    ("sac-ae", plan.PIXEL_TASK, ("obs=pixels",)),
    ("mrq", plan.ATARI_TASK, ("obs=pixels", "updates_per_step=0.25", "eval_every=40000")),
)
#: The group's seeds. 4, not 16: the run must pass the seed phase (10k env steps) and reach the published
#: curves' first points (15k-20k) within the budget. An H200 updated a compiled iqrl group of 4 at 43
#: updates/s per seed against 19.5 at K = 16 (captured: 320 against 79), and at K = 16 compiled it reached
#: 13,000 env steps in its 232 s (2026-11-27, docs/performance.md).
K = 4
#: The smoke's group: 2 tiny seeds to 400 env steps, evaluated every 100 (it ends by itself).
SMOKE_RUN = (
    "steps=400",
    "seed_steps=200",
    "episode_length=100",
    "eval_every=100",
    "eval_episodes=1",
    "diag_every=100",
)


def graphs_test_command(smoke: bool) -> tuple[list[str], dict]:
    """(a): pytest on the paper-size captured-group test with the row plugin; on the CPU (smoke) it skips."""
    env = {**os.environ}
    if smoke:
        env["CUDA_VISIBLE_DEVICES"] = ""
    return pytest_command(GROUP_GRAPHS_TEST, []), env


def learning_run(rows: list[dict], smoke: bool) -> tuple[str, str, tuple[str, ...]]:
    """The run of this command: the next of LEARNING_ROTATION after the learning rows this command has
    committed for the GPU model (`rows`); the smoke's always the first."""
    done = 0 if smoke else sum(r.get("kind") == "learn" and r.get("first") for r in rows)
    return LEARNING_ROTATION[done % len(LEARNING_ROTATION)]


def group_mode(test_rows: list[dict]) -> str:
    """The fastest K-seed mode verified on this GPU model: captured where the paper-size group test passed,
    compiled where the compiled group's did, else eager (plan.fastest_mode of results.matching_ways)."""
    return plan.fastest_mode(matching_ways(test_rows), kseed=True)


def run_first(out: Path, smoke: bool, budget_s: float | None = None) -> int:
    """The first command (module docstring); rows in out/part0.jsonl, the run's seed folders in
    out/runs.tar.gz."""
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
        subprocess.run(cmd, cwd=REPO, env=env, timeout=max(deadline - time.monotonic() - 120, 60))
    except subprocess.TimeoutExpired:
        log.append({"kind": "missing", "key": GROUP_GRAPHS_TEST, "reason": "cut off by the command's budget"})
    tests = committed_rows(1) + [r for r in log.rows() if r["kind"] == "test"]
    mode = "false" if smoke else group_mode(tests)
    print(f"captured group at paper sizes: {latest_test_outcomes(tests).get(GROUP_GRAPHS_TEST, 'not run')}")
    agent, task, keys = learning_run(committed_rows(PART), smoke)
    run = plan.LearnRun(agent, task, learning_keys(agent, task, keys, mode, smoke), seeds=2 if smoke else K)
    root = Path(tempfile.mkdtemp(prefix="iqrl-gpu-first-"))
    print(f"learning: {agent} on {task}, {run.seeds} seeds, {run.mode}; run folders in {root}", flush=True)
    t = time.monotonic()
    proc = start_run(run, root / agent, ["device=cpu" if smoke else "device=cuda"])
    if smoke:  # a step budget: it ends by itself
        proc.wait()
    else:
        stop_at_deadline(proc, deadline)
    row = learn_row(run, root / agent, proc.returncode, time.monotonic() - t)
    log.append({**row, "first": True, **group_split(root / agent)})
    keep_run(root / agent, run_folder(root / "runs", agent, task))
    pack_runs(root / "runs", out)
    shutil.rmtree(root, ignore_errors=True)
    print(f"\nthe first command took {time.monotonic() - started:.1f} s; rows in {log.path}")
    print(summary(log.rows()))
    return 0


def learning_keys(agent: str, task: str, keys: tuple, mode: str, smoke: bool) -> tuple[str, ...]:
    """The run keys of the learning run: the agent's paper configuration, 1M env steps (stopped by the
    budget), evaluations every 10k env steps (the published curves' points), `mode`'s compile keys; the
    smoke's tiny sizes and step budget."""
    run = [f"agent={agent}", f"task={task}", "steps=1000000", "eval_every=10000", "checkpoint_every=1000000"]
    run = layered(run, keys)
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
