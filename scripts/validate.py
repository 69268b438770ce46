"""Learning check: train every registered agent on a few easy tasks and put the final returns next to
published learning curves at the same env step (`make validate`). Not part of CI.

    python scripts/validate.py [--agents iqrl,sac] [--tasks cartpole-swingup,walker-walk] [--steps 100000]
        [--seeds 1] [--out results/validate] [--small] [--jobs N] [--eval-every 10000] [--extra k=v ...]
        [--table-only] [--reference FOLDER|FILE] [--step-tolerance 1000]

1. Runs `python -m iqrl.train agent=A task=T seed=S steps=N out=OUT/A/T/<variant>/seed<S> sweep=validate
   variant=<variant> eval_every=E checkpoint_every=E` for every agent x task x seed (agents: all of
   `iqrl.core.registry.agent_names()`
   unless --agents is given), at most --jobs at a time (default: all cores), each with OMP_NUM_THREADS=1,
   logging to OUT/logs/. The variant is `small` with --small and `default` otherwise. A finished run is left
   alone and an interrupted one resumes, so re-running the command only does what is missing. Before any run
   starts, every run gets the trainer's own checks: an unknown task, key or value, an unavailable device or a
   folder that holds a run with another config (e.g. another --steps; use another --out) is one `error:` line
   and exit 2.
2. Writes OUT/validate.md (also printed) and OUT/validate.csv:
   * ours: each run's mean over its last 2 evaluations with env_step <= --steps, averaged over seeds;
   * published (the shipped `analysis/reference/data/published_dmc.csv.gz`, or --reference's table or folder
     of tables; main results only = empty `ablation`):
     each (source, algorithm) curve's value at its largest env_step <= --steps + --step-tolerance, per seed,
     averaged over the seeds whose step is >= --steps - --step-tolerance (a seed whose curve stops earlier
     is left out, and a curve without such a seed is not shown). The tolerance (default 1000) absorbs the
     sources' evaluation offsets (e.g. TCRL and the iQRL draft's TD3 evaluate at 1k, 26k, ..., 101k); the
     seeds used and the largest env step used are shown.
3. Exits 0; 1 where a run exited with anything but 0 (done) or 3 (interrupted, resumes on the next call),
   each such run named on one line with its log (the table is written all the same); 2 for bad input;
   130 after Ctrl-C.

--small caps network sizes for CPU budgets, for every agent whose config has the key and whose value
(after its task overrides) is larger: mlp_dims <= [256, 256], enc_mlp_dims <= [256], latent_dim <= 64 (the
easy-task latent size of the iQRL code's earlier versions; width 128 with FSQ levels [8, 8]).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from analysis.errors import AnalysisError  # noqa: E402
from analysis.reference.table import (  # noqa: E402
    DEFAULT_REFERENCE,
    PUBLISHED_NAME,
    SHIPPED,
    published_at,
    reference_tables,
)
from analysis.runs.load import read_evals  # noqa: E402

DEFAULT_TASKS = ["cartpole-swingup", "walker-walk"]
SMALL_CAPS = {"mlp_dims": [256, 256], "enc_mlp_dims": [256], "latent_dim": 64}
LAST_EVALS = 2
#: What the error for an eval.csv cell that is no number tells the user to do.
UNREADABLE_EVAL = (
    "no final return can be drawn from that run; correct or delete the row, or delete the run folder to "
    "train it again"
)


# ---------------------------------------------------------------------------------------------- runs
def small_overrides(agent: str, task: str) -> list[str]:
    """`agent.key=value` overrides that cap the network sizes of SMALL_CAPS, where the agent has the key."""
    from iqrl.config.build import build_config

    cfg = build_config([f"agent={agent}", f"task={task}"]).agent
    have = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}
    out = []
    for key, cap in SMALL_CAPS.items():
        if key not in have:
            continue
        value = have[key]
        larger = sum(value) > sum(cap) if isinstance(cap, list) else value > cap
        if larger:
            shown = "[" + ",".join(str(v) for v in cap) + "]" if isinstance(cap, list) else str(cap)
            out.append(f"agent.{key}={shown}")
    return out


def run_dir(out: Path, agent: str, task: str, variant: str, seed: int) -> Path:
    from iqrl.envs.tasks import task_dir

    return task_dir(out / agent, task) / variant / f"seed{seed}"


def train_argv(
    out: Path, agent: str, task: str, seed: int, steps: int, small: bool, eval_every: int, extra: list[str]
) -> list[str]:
    from iqrl.config.build import layered

    variant = "small" if small else "default"
    argv = [
        f"agent={agent}",
        f"task={task}",
        f"seed={seed}",
        f"steps={steps}",
        f"out={run_dir(out, agent, task, variant, seed)}",
        "sweep=validate",
        f"variant={variant}",
        f"eval_every={eval_every}",
        f"checkpoint_every={eval_every}",
    ]
    return layered(argv, small_overrides(agent, task) if small else [], extra)


def extra_overrides(own: list[list[str]], extra: list[str]) -> str | None:
    """The line that says which of the learning check's own keys (`own`: its runs' command lines without
    --extra) `extra` gives another value, e.g. EVAL_EVERY's eval_every; None where it gives none."""
    values: dict[str, set[str]] = {}
    for argv in own:
        for arg in argv:
            key, _, value = arg.partition("=")
            values.setdefault(key, set()).add(value)
    over = [
        f"{arg} over {key}={'/'.join(sorted(values[key]))}"
        for arg in extra
        if (key := arg.partition("=")[0]) in values and values[key] != {arg.partition("=")[2]}
    ]
    return f"note: EXTRA overrides the learning check's own keys: {'; '.join(over)}" if over else None


def log_file(out: Path, folder: str) -> Path:
    """OUT/logs/<agent>_<task>_<variant>_seed<k>.log for the run folder
    OUT/<agent>/<task>/<variant>/seed<k>."""
    return out / "logs" / (Path(folder).relative_to(out).as_posix().replace("/", "_") + ".log")


def acts_in(agent: str, task: str) -> bool:
    """Whether `agent` can act in `task`'s kind of action space (Agent.ACTION_SPACES against the task's suite;
    an unknown task counts as one it can: the run's config check names it)."""
    from iqrl.core.registry import action_refusal
    from iqrl.envs.tasks import suite_of

    try:
        kind = suite_of(task).actions
    except ValueError:
        return True
    return action_refusal(agent, task, kind) is None


def plan(agents: list[str], tasks: list[str], named: bool) -> list[tuple[str, str]]:
    """The (agent, task) pairs to train: each agent on the tasks it can act in. An agent that can act in none
    of them is left out with one note line, or, when `named` by --agents, refused (ConfigError, one line)."""
    from iqrl.config.run import ConfigError
    from iqrl.core.registry import action_refusal
    from iqrl.envs.tasks import suite_of

    pairs = [(a, t) for a in agents for t in tasks if acts_in(a, t)]
    idle = [a for a in agents if not any(a == p for p, _ in pairs)]
    if idle and named:
        raise ConfigError(action_refusal(idle[0], tasks[0], suite_of(tasks[0]).actions))
    if idle:
        idle_text, tasks_text = ", ".join(idle), ", ".join(tasks)
        print(f"note: {idle_text} cannot act in {tasks_text}: left out (give their tasks to --tasks)")
    return pairs


def check_job(argv: list[str]) -> None:
    """The checks `python -m iqrl.train ARGV` makes before it trains (config, run folder, device), made here
    for every run before any starts. Raises ConfigError (one line), e.g. for a folder that holds another
    config."""
    from iqrl.config.build import build_config
    from iqrl.loop.preflight import preflight

    preflight(build_config(argv))


def run_all(jobs: list[list[str]], out: Path, parallel: int) -> dict[str, int]:
    """Run `python -m iqrl.train ARGV` for each argv, `parallel` at a time; returns {run folder: exit code}.

    Ctrl-C: no new run starts, and each running run gets one SIGINT, so it stops after its current agent step
    with a checkpoint (the runs sit in their own sessions, so the terminal's Ctrl-C reaches only this
    process); then KeyboardInterrupt is raised again. Re-running the same command resumes.
    """
    (out / "logs").mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "MUJOCO_GL": "disable",
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    running, lock, stopping = set(), threading.Lock(), threading.Event()

    def one(argv: list[str]) -> tuple[str, int]:
        folder = next(a.split("=", 1)[1] for a in argv if a.startswith("out="))
        if stopping.is_set():
            return folder, -1
        with open(log_file(out, folder), "a") as log:
            log.write(f"$ python -m iqrl.train {' '.join(argv)}\n")
            log.flush()
            with lock:
                if stopping.is_set():
                    return folder, -1
                proc = subprocess.Popen(
                    [sys.executable, "-m", "iqrl.train", *argv],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    cwd=REPO,
                    start_new_session=True,
                )
                running.add(proc)
            rc = proc.wait()
            with lock:
                running.discard(proc)
        return folder, rc

    codes, t0 = {}, time.time()
    with concurrent.futures.ThreadPoolExecutor(max_workers=parallel) as pool:
        futures = [pool.submit(one, argv) for argv in jobs]
        try:
            for future in concurrent.futures.as_completed(futures):
                folder, rc = future.result()
                codes[folder] = rc
                print(f"[{time.time() - t0:7.0f}s] {'ok' if rc == 0 else f'exit {rc}'}: {folder}", flush=True)
        except KeyboardInterrupt:
            with lock:
                stopping.set()
                for f in futures:
                    f.cancel()
                for proc in running:
                    proc.send_signal(signal.SIGINT)
                n = len(running)
            print(
                f"\ninterrupted: {n} running run(s) stop after their current agent step with a checkpoint; "
                "re-run the same command to resume",
                file=sys.stderr,
                flush=True,
            )
            raise
    return codes


# --------------------------------------------------------------------------------------------- table
def run_result(folder: Path, steps: int) -> dict:
    """One run: state, last eval step and its final return (mean of the last LAST_EVALS evals <= steps).
    AnalysisError (one line naming the file, its line and column) for an eval.csv that cannot be read as
    numbers: a final return is never drawn from a run without some of its rows."""
    row = {"state": "missing", "last_step": math.nan, "final_return": math.nan}
    if (folder / "status.json").is_file():
        status = json.loads((folder / "status.json").read_text())
        row["state"] = status.get("state", "unknown")
        if status.get("error"):
            row["state"] += f" ({status['error']})"
    if (folder / "eval.csv").is_file():
        try:
            ev = read_evals(folder, None, UNREADABLE_EVAL)
        except ValueError as e:  # no such column, an empty file, a line pandas cannot split
            raise AnalysisError(f"{folder / 'eval.csv'}: {e}") from None
        ev = ev[ev["env_step"] <= steps].sort_values("env_step")
        if len(ev):
            row["last_step"] = int(ev["env_step"].iloc[-1])
            row["final_return"] = float(ev["episode_return"].iloc[-LAST_EVALS:].mean())
    return row


def our_results(
    out: Path, agents: list[str], tasks: list[str], seeds: list[int], variant: str, steps: int
) -> pd.DataFrame:
    """One row per (agent, task): ours (mean over seeds), seeds with a result, last eval step, states."""
    rows = []
    for agent in agents:
        for task in (t for t in tasks if acts_in(agent, t)):
            runs = [run_result(run_dir(out, agent, task, variant, s), steps) for s in seeds]
            finals = [r["final_return"] for r in runs if not math.isnan(r["final_return"])]
            steps_seen = [r["last_step"] for r in runs if not math.isnan(r["last_step"])]
            states = sorted({r["state"] for r in runs})
            rows.append(
                {
                    "agent": agent,
                    "task": task,
                    "ours": sum(finals) / len(finals) if finals else math.nan,
                    "seeds": f"{len(finals)}/{len(seeds)}",
                    "last_step": min(steps_seen) if steps_seen else math.nan,
                    "state": ", ".join(states),
                }
            )
    return pd.DataFrame(rows, columns=["agent", "task", "ours", "seeds", "last_step", "state"])


def same_method(agent: str, task: str, published: pd.DataFrame) -> str:
    name = PUBLISHED_NAME.get(agent)
    rows = (
        published[(published["task"] == task) & (published["algorithm"] == name)] if name else published[:0]
    )
    return "; ".join(f"{r.label}: {r.published:.1f} @{int(r.env_step)}" for r in rows.itertuples()) or "—"


def _fmt(x, digits: int = 1) -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def to_markdown(
    ours: pd.DataFrame, published: pd.DataFrame, steps: int, tolerance: int, note: str = ""
) -> str:
    lines = [
        "# Learning check: final returns next to published curves",
        "",
        f"Ours: mean of each run's last {LAST_EVALS} evaluations at env_step <= {steps}, averaged over "
        f"seeds. Published: main-result curves of `published_dmc.csv.gz`, each (source, algorithm) seed "
        f"at its largest env_step <= {steps} + {tolerance}, averaged over the seeds whose curve reaches "
        f"{steps} - {tolerance} (the seeds column counts them).",
        "",
    ]
    if note:
        lines += [note, ""]
    for task in ours["task"].drop_duplicates():
        lines += [
            f"## {task} ({steps:,} env steps)",
            "",
            "| agent | ours | seeds | last eval step | state | published, same method |",
            "|---|---:|---:|---:|---|---|",
        ]
        for r in ours[ours["task"] == task].itertuples():
            last = "—" if math.isnan(r.last_step) else str(int(r.last_step))
            lines.append(
                f"| {r.agent} | {_fmt(r.ours)} | {r.seeds} | {last} | {r.state} | "
                f"{same_method(r.agent, task, published)} |"
            )
        pub = published[published["task"] == task].sort_values("published", ascending=False)
        lines += ["", "| published [source] | return | seeds | at env_step |", "|---|---:|---:|---:|"]
        lines += [
            f"| {r.label} | {r.published:.1f} | {r.n_seeds} | {int(r.env_step)} |" for r in pub.itertuples()
        ]
        if pub.empty:
            lines.append("| (no published main-result curve for this task) | | | |")
        lines.append("")
    return "\n".join(lines)


def long_table(ours: pd.DataFrame, published: pd.DataFrame, steps: int) -> pd.DataFrame:
    """Both kinds of rows in one CSV: kind (ours | published), task, name, return, seeds, env_step, state."""
    a = pd.DataFrame(
        {
            "kind": "ours",
            "task": ours["task"],
            "name": ours["agent"],
            "return": ours["ours"],
            "seeds": ours["seeds"],
            "env_step": ours["last_step"],
            "state": ours["state"],
        }
    )
    b = pd.DataFrame(
        {
            "kind": "published",
            "task": published["task"],
            "name": published["label"],
            "return": published["published"],
            "seeds": published["n_seeds"].astype(str),
            "env_step": published["env_step"],
            "state": "",
        }
    )
    out = pd.concat([f for f in (a, b) if len(f)] or [a], ignore_index=True)  # pandas warns on empty parts
    out.insert(2, "target_step", steps)
    return out


def write_report(
    out: Path, ours: pd.DataFrame, published: pd.DataFrame, steps: int, tolerance: int, note: str = ""
) -> str:
    out.mkdir(parents=True, exist_ok=True)
    text = to_markdown(ours, published, steps, tolerance, note)
    (out / "validate.md").write_text(text + "\n")
    long_table(ours, published, steps).to_csv(out / "validate.csv", index=False)
    return text


# ----------------------------------------------------------------------------------------------- CLI
def _csv(text: str) -> list[str]:
    """The comma-separated names, each once (a repeated name would start two runs on one folder)."""
    return list(dict.fromkeys(t.strip() for t in text.split(",") if t.strip()))


def main(argv: list[str] | None = None) -> int:
    from iqrl.config.build import layered
    from iqrl.config.run import ConfigError
    from iqrl.core.registry import agent_names
    from iqrl.runfolder.exits import EXIT_INTERRUPTED, EXIT_OK

    p = argparse.ArgumentParser(
        description="Learning check against published DMC curves (see module docstring)."
    )
    p.add_argument("--agents", default="", help="comma-separated; default: every registered agent")
    p.add_argument("--tasks", default=",".join(DEFAULT_TASKS))
    p.add_argument("--steps", type=int, default=100_000, help="env steps per run")
    p.add_argument("--seeds", type=int, default=1, help="seeds 1..N")
    # absolute: the runs are started in the repository, the table is read here
    p.add_argument(
        "--out",
        type=lambda path: Path(path).absolute(),
        default="results/validate",
        help="relative to the current directory",
    )
    p.add_argument("--small", action="store_true", help="cap network sizes (see module docstring)")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="runs in parallel (default: cores)")
    p.add_argument("--eval-every", type=int, default=10_000)
    p.add_argument("--extra", nargs="*", default=[], help="more key=value overrides for every run")
    p.add_argument("--table-only", action="store_true", help="only build the table from existing runs")
    p.add_argument(
        "--reference", default=str(DEFAULT_REFERENCE), help="a published table, or a folder of them"
    )
    p.add_argument("--step-tolerance", type=int, default=1000)
    args = p.parse_args(argv)
    agents, tasks = _csv(args.agents) or agent_names(), _csv(args.tasks)
    unknown = sorted(set(agents) - set(agent_names()))
    if unknown or not tasks or args.steps < 1 or args.seeds < 1 or args.jobs < 1:
        print(
            f"error: bad arguments (unknown agents: {unknown}; tasks: {tasks})"
            if unknown or not tasks
            else "error: --steps, --seeds and --jobs must be >= 1",
            file=sys.stderr,
        )
        return 2
    out, seeds = args.out, list(range(1, args.seeds + 1))
    try:  # before any training: a missing reference file should not surface hours later
        if not Path(args.reference).exists():
            raise AnalysisError(f"reference {args.reference} does not exist")
        ref, _ = reference_tables(Path(args.reference))
        if ref is None:
            raise AnalysisError(f"{args.reference} holds no published curves")
    except AnalysisError as e:  # not there, or not readable as published curves
        hint = (
            ""
            if Path(args.reference).is_file()
            else f" (the shipped tables are {SHIPPED}; pass --reference PATH)"
        )
        print(f"error: {e}{hint}", file=sys.stderr)
        return 2
    codes = {}  # run folder -> the trainer's exit code
    if not args.table_only:
        try:  # bad input stops everything before any run starts, with one line
            own = [  # the check's own keys; EXTRA's replace them, said in one line (extra_overrides)
                train_argv(out, a, t, s, args.steps, args.small, args.eval_every, [])
                for a, t in plan(agents, tasks, named=bool(args.agents))
                for s in seeds
            ]
            jobs = [layered(argv, args.extra) for argv in own]
            for job in jobs:
                check_job(job)
        except ConfigError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        if line := extra_overrides(own, args.extra):
            print(line, flush=True)
        print(f"{len(jobs)} runs, {args.jobs} at a time, logs in {out / 'logs'}", flush=True)
        try:
            codes = run_all(jobs, out, args.jobs)
        except KeyboardInterrupt:
            return 130
    variant = "small" if args.small else "default"
    try:
        ours = our_results(out, agents, tasks, seeds, variant, args.steps)
    except AnalysisError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.table_only and (ours["seeds"].str.startswith("0/") & (ours["state"] == "missing")).all():
        # nothing to tabulate: keep the report there is (e.g. of the other variant) instead of overwriting it
        others = sorted({d.name for d in out.glob("*/*/*") if d.is_dir() and d.name != variant})
        hint = (
            f"; runs of variant(s) {', '.join(others)} exist"
            + (", pass --small" if "small" in others else "")
            if others
            else ""
        )
        print(f"error: no {variant!r} runs of these agents and tasks under {out}{hint}", file=sys.stderr)
        return 2
    published = published_at(ref, tasks, args.steps, args.step_tolerance)
    note = (
        (
            "Networks capped with --small: "
            + ", ".join(f"{k} <= {v}" for k, v in SMALL_CAPS.items())
            + " (where an agent has the key)."
        )
        if args.small
        else ""
    )
    if args.extra:
        note += (" " if note else "") + "Extra overrides: " + " ".join(args.extra) + "."
    print(write_report(out, ours, published, args.steps, args.step_tolerance, note))
    print(f"\nwrote {out / 'validate.md'} and {out / 'validate.csv'}")
    # an interrupted run (e.g. its own SIGTERM) resumes on the next call: not a failure
    failed = sorted(folder for folder, rc in codes.items() if rc not in (EXIT_OK, EXIT_INTERRUPTED))
    for folder in failed:
        print(f"error: run exited {codes[folder]}: {folder} (log: {log_file(out, folder)})", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
