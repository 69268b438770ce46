"""The three parts of the GPU report. Each appends JSON rows to OUT/part<N>.jsonl as it goes (the machine
first, then one row per test, bench row or training run), stops starting work when its time budget is
nearly spent, and ends with a summary table. A part cut off still leaves every row written before.

Row kinds: `machine` (every part's first row: GPU, driver, torch, CUDA, CPU, Python, package versions),
`host_share` and `overlap` (part 1: a `make bench --host-share` or `--overlap` row with the plan's `key`,
or its `error`), `test` (part 1: one per test of tests/test_cuda.py, from apps/gpu_report/pytest_rows.py),
`bench` (part 2: a `make bench` row with the plan's `key` and `packed`, or its `error`), `run` (part 2: an
end-to-end row), `learn` (part 3: env steps reached, returns, the published curve there), `missing` (a
planned row the part had no time for).
"""

from __future__ import annotations

import csv
import datetime
import functools
import json
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

import torch

from apps.gpu_report import learning, plan
from apps.gpu_report.pytest_rows import ROWS_ENV
from apps.gpu_report.results import load_rows, matching_ways
from iqrl.bench.cli import failure_line, row_command
from iqrl.bench.gpu_rows import latest_test_outcomes, rate_stands, run_row_stands
from iqrl.bench.measure import hardware
from iqrl.runfolder.provenance import git_commit
from iqrl.runfolder.status import read_status

REPO = Path(__file__).resolve().parents[2]
#: A full part's budget: 8 minutes, so that a part with the wheels' install and the imports fits a command of
#: 10 minutes, and the first command and three parts half an hour of a GPU with the machine's start-ups.
BUDGET_S = 480.0
#: The smoke (CPU, tiny sizes; tests/test_gpu_report.py) has no budget unless --budget-s gives one: its parts
#: run every row, and part 3 stops its runs once each has evaluated past env step 0 (an event): what it
#: checks never depends on how fast, or how loaded, the machine is.
SMOKE_BUDGET_S = math.inf
#: Part 2 starts no row with less than this left: a compiled row at paper size may take 1-2 minutes (cold
#: compile); a row cut off is recorded as missing, for the part's next run.
ROW_RESERVE_S = 90.0
#: Part 3: seconds a stopped run gets to finish its episode and write its checkpoint before it is killed.
STOP_GRACE_S = 60.0
#: Part 1's bench rows of the host's share (iqrl/bench/hostshare.py, overlap.py; plan.host_rows).
HOST_KINDS = ("host_share", "overlap")
CUT_OFF = "cut off by the part's budget"  # a row so marked is `missing`, measured by the part's next run
PACKAGES = ("numpy", "pandas", "mujoco", "dm-control", "omegaconf", "pytest", "triton")


class RowLog:
    """Appends rows to a JSON-lines file, each flushed to disk at once (a part may be killed any time)."""

    def __init__(self, path: Path, part: int):
        self.path, self.part = path, part
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")

    def append(self, row: dict) -> dict:
        row = {"part": self.part, **row}
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")
            f.flush()
            os.fsync(f.fileno())
        return row

    def rows(self) -> list[dict]:
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]


def machine() -> dict:
    """The machine row: what a result depends on, and the date (UTC) that names the result file."""
    row = {
        "kind": "machine",
        "date": datetime.datetime.now(datetime.UTC).date().isoformat(),
        "gpu": None,
        "gpu_memory_gb": None,
        "driver": None,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cpu": hardware(torch.device("cpu")),
        "python": platform.python_version(),
        "packages": {name: installed_version(name) for name in PACKAGES},
        "commit": git_commit(),  # "unknown" in a copy without git: `collect` then records its checkout's
    }
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        row.update(gpu=props.name, gpu_memory_gb=round(props.total_memory / 2**30, 1), driver=nvidia_driver())
    return row


def installed_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def nvidia_driver() -> str | None:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None


def run_part(part: int, out: Path, smoke: bool, budget_s: float | None = None, full: bool = False) -> int:
    """Run one part; its rows go to out/part<N>.jsonl (`full`: part 2's every row, plan.part2_rows). Exit
    0, or 2 when a full part has no CUDA GPU."""
    if not smoke and not torch.cuda.is_available():
        print("error: the GPU report needs a CUDA GPU; SMOKE=1 (--smoke) runs it on the CPU", file=sys.stderr)
        return 2
    budget = budget_s if budget_s is not None else (SMOKE_BUDGET_S if smoke else BUDGET_S)
    log = RowLog(out / f"part{part}.jsonl", part)
    started = time.monotonic()
    mach = log.append({**machine(), "smoke": smoke})
    print(f"part {part} on {mach['gpu'] or mach['cpu']} (Python {mach['python']}, torch {mach['torch']})")
    print(f"rows: {log.path}", flush=True)
    deadline = started + budget
    {1: part1, 2: functools.partial(part2, full=full), 3: part3}[part](log, smoke, deadline)
    print(f"\npart {part} took {time.monotonic() - started:.1f} s; rows in {log.path}")
    print(summary(log.rows()))
    return 0


def part1(log: RowLog, smoke: bool, deadline: float) -> None:
    """The host-share and overlap rows (`host_part`), then tests/test_cuda.py, one row per test as it ends (a
    test never reached: outcome `collected`), but the tests that passed on this GPU model in
    docs/gpu-results/ (so that a part 1 that was cut off or failed runs what is left when run again;
    IQRL_REPORT_ALL=1 runs them all again)."""
    host_part(log, smoke, deadline)
    passed = sorted(passed_tests(committed_rows(1)))
    if passed:
        print(f"{len(passed)} tests already passed on this GPU (docs/gpu-results/): left out", flush=True)
    cmd = pytest_command("tests/test_cuda.py", passed)
    env = {**os.environ, ROWS_ENV: str(log.path)}
    if smoke:  # the CPU check, also on a machine with a GPU: its CUDA tests skip
        env["CUDA_VISIBLE_DEVICES"] = ""
    try:
        subprocess.run(cmd, cwd=REPO, env=env, timeout=time_left(deadline))
    except subprocess.TimeoutExpired:
        log.append({"kind": "missing", "key": "tests/test_cuda.py", "reason": CUT_OFF})


def host_part(log: RowLog, smoke: bool, deadline: float) -> None:
    """plan.host_rows in order, each in its own `python -m iqrl.bench` process: its row (kind `host_share` or
    `overlap`) with the plan's `key`, or {"error": ...}; but those docs/gpu-results/ holds for this GPU model
    (IQRL_REPORT_ALL=1 measures them again), and those whose expected seconds no longer fit (`missing`)."""
    done = set() if os.environ.get("IQRL_REPORT_ALL") else host_keys(committed_rows(1))
    for row in (r for r in plan.host_rows(smoke) if r.key not in done):
        if deadline - time.monotonic() < row.expected_s:
            log.append({"kind": "missing", "key": row.key, "reason": "no time left in the part"})
            continue
        result = host_result(row, "cpu" if smoke else "cuda", deadline)
        if result is None:
            log.append({"kind": "missing", "key": row.key, "reason": CUT_OFF})
            continue
        r = log.append({**result, "key": row.key})
        print(f"{row.key}: {r.get('error') or host_text(r)}", flush=True)


def host_result(row: plan.HostRow, device: str, deadline: float) -> dict | None:
    """The bench's row of `row` on `device` (its last JSON line), {"kind": ..., "error": why it failed}, or
    None when the part's budget cut it off."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "iqrl.bench", *row.argv(device, f"{tmp}/rows.json")]
        try:
            proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=time_left(deadline))
        except subprocess.TimeoutExpired:
            return None
    if proc.returncode != 0:
        return {"kind": row.kind, "error": failure_line(proc.stderr, proc.returncode)}
    return json.loads([line for line in proc.stdout.splitlines() if line.startswith("{")][-1])


def host_keys(rows: list[dict]) -> set[str]:
    """The keys of the host-share and overlap rows in `rows` that measured (no `error`)."""
    return {r["key"] for r in rows if r["kind"] in HOST_KINDS and "error" not in r}


def host_text(row: dict) -> str:
    """A host row's figures in one line: acting ms and ops and syncs per agent step and seconds per evaluation
    of the group, or the share of collection the cohorts hid."""
    if row["kind"] == "host_share":
        ops = f"{row['act_ops']} ops, {row['act_syncs']} syncs per agent step"
        return f"{row['act_ms']} ms per agent step ({ops}), {row['eval_s']} s per evaluation"
    return f"hidden {row['hidden']} of collection (wall {row['wall_2_vs_1']} of one group's)"


def time_left(deadline: float) -> float | None:
    """Seconds to `deadline` (at least 1), a subprocess's timeout; None (no timeout) without a budget."""
    return None if math.isinf(deadline) else max(deadline - time.monotonic(), 1.0)


def pytest_command(path: str, leave_out: list[str]) -> list[str]:
    """pytest on `path` with the row plugin (apps/gpu_report/pytest_rows.py), but the tests `leave_out`."""
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "apps.gpu_report.pytest_rows",
        "-p",
        "no:cacheprovider",
    ]
    return cmd + [path] + [arg for test in leave_out for arg in ("--deselect", test)]


def passed_tests(rows: list[dict]) -> set[str]:
    """The tests whose last outcome in `rows` is a pass (none with IQRL_REPORT_ALL set)."""
    if os.environ.get("IQRL_REPORT_ALL"):
        return set()
    return {test for test, outcome in latest_test_outcomes(rows).items() if outcome == "passed"}


def part2(log: RowLog, smoke: bool, deadline: float, full: bool = False) -> None:
    """The plan's bench rows in order (plan.part2_rows: the campaigns' end-to-end rows in the modes part 1
    verified on this GPU model; `full`: every row), but those docs/gpu-results/ already holds for this GPU
    model (so that successive runs of part 2 fill the plan in; IQRL_REPORT_ALL=1 measures them again); each
    row in its own process(es), `packed` copies at once."""
    device = "cpu" if smoke else "cuda"
    if smoke:
        print("smoke: tiny rows on the CPU; compiled, tf32 and cudagraphs rows skipped (CUDA / minutes each)")
    done = set() if os.environ.get("IQRL_REPORT_ALL") else measured_keys(committed_rows(2))
    if done:
        print(f"{len(done)} rows already measured on this GPU (docs/gpu-results/): left out", flush=True)
    todo = plan.part2_rows(smoke, full, matching_ways(committed_rows(1)))
    for row in (r for r in todo if r.key not in done):
        if deadline - time.monotonic() < (0 if smoke else ROW_RESERVE_S):
            log.append({"kind": "missing", "key": row.key, "reason": "no time left in the part"})
            continue
        for copy, result in enumerate(bench(row, device, deadline, smoke)):  # packed: one row per copy
            if result.get("error") == CUT_OFF:
                log.append({"kind": "missing", "key": row.key, "reason": CUT_OFF})
                continue
            r = log.append({"kind": "bench", "key": row.key, "packed": row.packed, "copy": copy, **result})
            print(f"{row.key}: {r.get('error') or rate_text(r)}", flush=True)


def rate_text(row: dict) -> str:
    """A measured row's rate: an end-to-end row's env steps/s per seed, an update row's updates/s."""
    if row["kind"] == "run":
        return f"{row['env_steps_per_s']} env steps/s per seed end to end"
    return f"{row['updates_per_s']} updates/s per run"


def measured_keys(rows: list[dict]) -> set[str]:
    """The keys of the bench and end-to-end rows in `rows` whose rates stand (`rate_stands`,
    `run_row_stands`): not those that failed, are stale or flagged, nor those a part listed as missing (cut
    off, or no time left), which the part's next run measures."""
    return {r["key"] for r in rows if rate_stands(r) or run_row_stands(r)}


def bench(row: plan.BenchRow, device: str, deadline: float, smoke: bool) -> list[dict]:
    """The row's bench result(s), one per packed copy: the bench's JSON row (an end-to-end row's: kind
    `run`), or {"error": why it failed, one line (`failure_line`: an exception's type and first line)}."""
    # on CUDA a K = 1 row times >= 500 updates (measure), a K-seed row 20 rounds (measure_seeds)
    updates, collect_s = (2, 0.2) if smoke else (20, 5.0)
    cmd = row_command(
        row.agent,
        row.task,
        row.dtype,
        row.compile,
        row.seeds,
        row.obs,
        device,
        updates,
        row.image_size,
        row.extra,
        collect_s,
    )
    cmd += ["--end-to-end", str(row.end_to_end)] * (row.end_to_end > 0)
    procs = [
        subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(row.packed)
    ]
    results = []
    for p in procs:
        try:
            stdout, stderr = p.communicate(timeout=time_left(deadline))
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()
            results.append({"error": CUT_OFF})
            continue
        if p.returncode == 0:
            results.append(json.loads(stdout.strip().splitlines()[-1]))
        else:
            results.append({"error": failure_line(stderr, p.returncode)})
    return results


def part3(log: RowLog, smoke: bool, deadline: float) -> None:
    """Learning, as far as the part's time goes: the runs of plan.part3_runs side by side on the device,
    stopped (SIGTERM: after the current agent step, with a checkpoint) when the budget is spent (the smoke's:
    once each has evaluated), then compared with the
    published curves at the env step each reached."""
    # the smoke always takes the K-seed mode's path (the choice is timing, and unit-tested on its own)
    kseed, mode = (
        (True, "false")
        if smoke
        else learning_mode(part2_rows_of_this_machine(log.path.parent), matching_ways(committed_rows(1)))
    )
    runs = plan.part3_runs(kseed, mode, smoke)
    device = ["device=cpu" if smoke else "device=cuda"]
    root = Path(tempfile.mkdtemp(prefix="iqrl-gpu-report-"))  # run folders: large, never under OUT
    print(f"learning: {'K-seed mode, ' if kseed else ''}compile={mode}; run folders in {root}", flush=True)
    started = time.monotonic()
    procs = [start_run(run, root / run.agent, device) for run in runs]

    def stop_now() -> bool:
        """The smoke's runs once each has evaluated past env step 0 or ended (SMOKE_BUDGET_S); a GPU's at the
        part's budget, less the grace its runs get to stop."""
        if math.isinf(deadline):
            return all(p.poll() is not None or evaluated(root / r.agent) for r, p in zip(runs, procs))
        return time.monotonic() >= (deadline if smoke else deadline - STOP_GRACE_S)

    while any(p.poll() is None for p in procs) and not stop_now():
        time.sleep(1.0)
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)  # the trainer stops after its current agent step, with a checkpoint
    killed_at = time.monotonic() + STOP_GRACE_S  # one grace for all runs: the part ends within its budget
    for p in procs:
        try:
            p.wait(timeout=max(killed_at - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    wall = time.monotonic() - started
    for run, p in zip(runs, procs):
        log.append(learn_row(run, root / run.agent, p.returncode, wall))
    shutil.rmtree(root, ignore_errors=True)


def start_run(run: plan.LearnRun, folder: Path, device: list[str]) -> subprocess.Popen:
    if run.seeds > 1:
        seeds = ",".join(str(s) for s in range(run.seeds))
        cmd = ["-m", "iqrl.multiseed", f"seeds={seeds}", *run.keys, f"out={folder}", *device]
    else:
        cmd = ["-m", "iqrl.train", *run.keys, "seed=0", f"out={folder / 'seed0'}", *device]
    folder.mkdir(parents=True)
    with open(folder.parent / f"{run.agent}.log", "w") as log:
        return subprocess.Popen([sys.executable, *cmd], cwd=REPO, stdout=log, stderr=subprocess.STDOUT)


def learn_row(run: plan.LearnRun, folder: Path, rc: int, wall: float) -> dict:
    """Env steps reached and the seeds' returns at the last evaluation they all have, with the published
    main-result curves of the same method at that step (docs/learning-check.md's comparison)."""
    seeds = learning.seed_folders(folder)
    evals = [read_evals(s / "eval.csv") for s in seeds]
    steps = [(read_status(s) or {}).get("env_step", 0) for s in seeds]
    row = {"kind": "learn", "key": run.key, "mode": run.mode, "seeds": len(seeds), "exit": rc}
    row.update(wall_s=round(wall, 1), env_steps=min(steps, default=0))
    row["env_steps_per_s"] = round(row["env_steps"] / wall, 1) if wall > 0 else None
    common = set.intersection(*(set(e) for e in evals)) if evals and all(evals) else set()
    if not common:
        log_tail = (folder.parent / f"{run.agent}.log").read_text().strip().splitlines()[-1:]
        return {**row, "eval_step": None, "error": "no evaluation" + (f": {log_tail[0]}" if log_tail else "")}
    step = max(common)
    returns = [e[step] for e in evals]
    row.update(eval_step=step, returns=[round(r, 1) for r in returns])
    row["return_mean"] = round(sum(returns) / len(returns), 1)
    return {**row, "published": published(run.agent, run.task, step) if "obs=pixels" not in run.keys else {}}


def evaluated(folder: Path) -> bool:
    """Every seed of a run folder has an evaluation past env step 0 in its eval.csv."""
    seeds = learning.seed_folders(folder)
    return bool(seeds) and all(any(step > 0 for step in read_evals(s / "eval.csv")) for s in seeds)


def read_evals(path: Path) -> dict[int, float]:
    """eval.csv as {env_step: mean episode return}; {} when it is missing."""
    if not path.exists():
        return {}
    with open(path) as f:
        return {int(float(r["env_step"])): float(r["episode_return"]) for r in csv.DictReader(f)}


def published(agent: str, task: str, step: int) -> dict[str, float]:
    """{source label: mean published return} of the agent's method at `step` (within 1000 env steps), from
    the shipped DMC table (analysis/reference/data, tracked: it travels with the checkout); {} for a method
    without published curves."""
    from analysis.reference.table import DEFAULT_REFERENCE, PUBLISHED_NAME, load_reference, published_at

    name = PUBLISHED_NAME.get(agent)
    if name is None:
        return {}
    pub = published_at(load_reference(DEFAULT_REFERENCE), [task], step)
    return {r.label: round(float(r.published), 1) for r in pub.itertuples() if r.algorithm == name}


def committed_rows(part: int) -> list[dict]:
    """The rows of `part` that docs/gpu-results/ holds for this machine's GPU model (none without a GPU)."""
    gpu = machine()["gpu"]
    return [r for r in load_rows() if gpu and r.get("gpu") == gpu and r.get("part") == part]


def part2_rows_of_this_machine(out: Path) -> list[dict]:
    """Part 2's bench rows measured on this GPU: collected into docs/gpu-results/ (a command's OUT
    holds its own part's files only: collect part 2's before part 3), or in OUT/part2.jsonl (`PART=all`)."""
    rows = committed_rows(2)
    here = out / "part2.jsonl"
    if here.exists():
        rows += [json.loads(line) for line in here.read_text().splitlines() if line.strip()]
    return [r for r in rows if r.get("kind") == "bench"]


def learning_mode(rows: list[dict], ways: set[tuple[bool, str]] | None = None) -> tuple[bool, str]:
    """(K-seed mode?, compile mode) of part 3's iqrl run, from part 2's rows of iqrl on walker-walk in fp32:
    of one seed per process (K = 1) and K-seed groups of at most the run's five seeds (K = 4; the smoke's
    K = 2), in the `ways` given (default: all), the one that gave the most updates/s in all (a tie goes to
    the K-seed mode). Without rows, the eager K-seed mode: on the H100 measured eagerly (docs/performance.md)
    four seeds gave 65 updates/s in all against 52 for one run."""
    mine = [
        r
        for r in rows
        if r.get("key", "").startswith(f"iqrl {plan.STATE_TASK} state fp32 ")
        and r.get("packed") == 1
        and rate_stands(r)
        and r["seeds"] <= plan.PART3_SEEDS
    ]
    in_all = {}  # (K-seed mode?, compile mode): the most updates/s in all of its rows
    for r in mine:
        way = (r["seeds"] > 1, str(r["compile"]).lower())
        if ways is None or way in ways:
            in_all[way] = max(in_all.get(way, 0.0), r["seeds"] * r["updates_per_s"])
    return max(in_all, key=lambda way: (in_all[way], way[0]), default=(True, "false"))


# ---------------------------------------------------------------------------------------------- summary
def summary(rows: list[dict]) -> str:
    """The part's short table (plain text) from its rows."""
    lines = []
    tests = latest_test_outcomes(rows)
    if tests:
        counts = {o: sum(v == o for v in tests.values()) for o in sorted(set(tests.values()))}
        lines.append("tests/test_cuda.py: " + ", ".join(f"{n} {o}" for o, n in counts.items()))
        lines += [f"  {o:<9} {t}" for t, o in tests.items() if o not in ("passed", "skipped")]
    for r in rows:
        if r["kind"] == "bench":
            rate = r.get("error") or f"{r['updates_per_s']:>9.2f} updates/s  {r.get('hours_per_1m')} h/1M"
            lines.append(f"  {r['key']:<58} {rate}")
        elif r["kind"] == "run":
            lines.append(
                f"  {r['key']:<58} {r['env_steps_per_s']:>9.1f} env steps/s  {r['hours_per_1m']} h/1M"
            )
        elif r["kind"] in HOST_KINDS:
            lines.append(f"  {r['key']:<58} {r.get('error') or host_text(r)}")
        elif r["kind"] == "learn":
            got = r.get("error") or f"return {r['return_mean']} at {r['eval_step']} env steps"
            lines.append(f"  {r['key']:<30} {r['mode']:<10} {r['env_steps']:>7} env steps  {got}")
            lines += [f"      published {k}: {v}" for k, v in (r.get("published") or {}).items()]
    missing = [r for r in rows if r["kind"] == "missing"]
    if missing:
        names = ", ".join(r["key"] for r in missing[:3]) + (", ..." if len(missing) > 3 else "")
        lines.append(f"  missing: {len(missing)} rows ({missing[0]['reason']}): {names}")
    return "\n".join(lines)
