"""`make bench`: throughput and memory of every agent at its paper configuration.

    python -m iqrl.bench [--agents iqrl,td3] [--tasks walker-walk,dog-run] [--dtypes fp32,bf16]
                         [--compile false,true] [--device cpu] [--updates 20] [--out bench.json]
                         [--obs state,pixels] [--image-size 84] [--set KEY=VALUE ...] [--collect-s 20]
    python -m iqrl.bench --compare old.json new.json      # speed ratios between two bench files
    python -m iqrl.bench --matmul-split --agents iqrl --tasks walker-walk  # matrix-product share of an update
    python -m iqrl.bench --plain --tasks walker-walk --compile false,true  # against a plain implementation
    python -m iqrl.bench --end-to-end 30000 --agents td3 --tasks walker-walk --seeds 1,4   # real runs
    python -m iqrl.bench --collect 4000 --tasks walker-walk --seeds 1,4,16  # an env step's CPU vs physics
    python -m iqrl.bench --host-share --tasks walker-walk --seeds 1,4,16  # ops and syncs per step, per update
    python -m iqrl.bench --overlap 1200 --tasks cartpole-balance --seeds 4  # collection hidden by cohorts

Each row is measured in a fresh subprocess (so peak memory is that row's own): build the run's trainer
from `build_config(agent=..., task=...)` exactly as a run would (with episodes of 20 env steps, see
iqrl/bench/measure.py BENCH_RUN), fill its replay with its own seed episodes, then time `updates` gradient
updates after 3 warm-up updates (updates_per_s; on CUDA at least 500, timed with CUDA events), count the
operators one update runs (ops_per_update: kernel launches on an eager GPU, see `count_ops`), time data
collection with the agent acting in the trainer's own episode loop, whole episodes for about 20 s
(env_steps_per_s, env steps = physics steps; the trainer's window leaves out the updates that per-step
agents run between actions), and time deterministic acting (act_ms). `--compile true` measures the run key
compile=true (`cudagraphs`: compile=true cudagraphs=true, CUDA only); compile_s is the warm-up's extra
time over 3 timed updates and 2 actions, i.e. what compiling costs once per process. hours_per_1m is the
wall time of 1M env steps at these rates (collection plus the agent's updates per env step; evaluation
left out). `--obs pixels` measures the agents built for pixels (Agent.PIXELS) on rendered frame stacks:
collection then includes rendering, and render_ms is the time of one frame alone.
A K-seed row (`--seeds` K > 1) reports beside its updates the group's collection: its K envs stepping at once
with random actions as the group's runs step them by default (group_env_steps_per_s, all K together: in
worker processes where the process has two cores), in this process
(group_env_steps_per_s_threads) and the first against one env alone (collect_vs_one; docs/performance.md).
Rows: agent, task, obs, device, dtype, compile, seeds, updates_per_s, ops_per_update, env_steps_per_s,
group_env_steps_per_s, group_env_steps_per_s_threads, collect_vs_one, act_ms, render_ms, compile_s,
hours_per_1m, peak_mem_mb, mem_floor_mb, timed_updates, torch, hardware, and how it was measured: its `--set`
keys (set) and envs per seed (train_envs), which `--compare` requires alike in the rows it pairs. A row is
timed only where its updates ran: after timing, every seed's count of updates must have advanced by the timed
count and its parameters changed (else the row is an error naming the seed); `flag` marks a row whose peak
memory is below its own floor (networks, stacks, optimizer state: mem_floor_mb).

`--end-to-end STEPS` measures whole runs instead (iqrl/bench/endtoend.py, row kind `run`): a real training
run of STEPS env steps for each agent, task, dtype, compile mode and K of `--seeds` (K > 1: a K-seed group),
at the run's own configuration (`--set` keys over it), reporting env steps/s per seed and in all, the wall
time's split (collect, act, update, evaluate, write) and, beside a K = 1 row of the same kind, the group's
rate in all against it (vs_one_seed).

`--collect STEPS` measures collection alone (iqrl/bench/collect.py, row kind `collect`): the CPU time per env
step in all of one seed or a K-seed group in its seed phase, whole process tree, beside MuJoCo's bare physics
and dm_control's own step measured in the same process, for each env backend of `--backends`.

`--host-share` counts what the host does for iqrl K-seed groups (iqrl/bench/hostshare.py, row kind
`host_share`): operators, host-device syncs and moves to the device per agent step, per update and per
evaluation step, and acting calls per evaluation step, and seconds per evaluation of the group.

`--overlap STEPS` measures how much of a K-seed group's collection its cohorts hide behind its updates
(iqrl/bench/overlap.py, row kind `overlap`): collection alone, update alone and the wall per env step of
iqrl K-seed jobs at the demo's sizes in one group and in two cohorts.

This module is the command line (its docstring is `--help`); a row's measurements are measure.py, the
matrix-product ceilings matmul.py, `--compare` compare.py. It imports the bench's modules, the core's config,
registry and preflight checks, and the K-seed mode's list of agents.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import torch

from iqrl.bench import plain
from iqrl.bench.arguments import MAX_TIMED_UPDATES, bad_arguments, seed_counts, staging, unlisted
from iqrl.bench.collect import BACKENDS, collect_main, measure_collection
from iqrl.bench.compare import compare
from iqrl.bench.endtoend import measure_run, run_argv, split_text
from iqrl.bench.hostshare import host_share_main
from iqrl.bench.matmul import matmul_peak, matmul_split
from iqrl.bench.measure import (
    COLLECT_BUDGET_S,
    COMPILE_MODES,
    FIELDS,
    bench_argv,
    measure,
    measure_seeds,
    plain_comparison,
)
from iqrl.bench.overlap import overlap_main
from iqrl.config.build import build_config
from iqrl.config.run import ConfigError
from iqrl.config.validate import warnings_of
from iqrl.core.registry import agent_class, agent_names
from iqrl.loop.preflight import check_compile, check_precision
from iqrl.multiseed.refusals import unsupported

DEFAULT_TASKS = ["walker-walk", "dog-run"]
#: What the K-seed rows measure (iqrl/multiseed: eager updates, fp32; the bench feeds them states).
KSEED_ROWS = "the K-seed mode's rows are measured with --obs state only"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--agents", default="", help="comma-separated; default: every registered agent")
    p.add_argument("--tasks", default=",".join(DEFAULT_TASKS))
    p.add_argument(
        "--dtypes", default=None, help="comma-separated among fp32, bf16, tf32 (default fp32,bf16)"
    )
    p.add_argument(
        "--compile",
        default="false",
        help="comma-separated among false, true, cudagraphs (CUDA): rows with those run keys, in one run",
    )
    p.add_argument("--device", default="cpu")
    p.add_argument(
        "--updates",
        type=int,
        default=20,
        help=f"timed updates per row (at most {MAX_TIMED_UPDATES:,})",
    )
    p.add_argument(
        "--seeds",
        default="1",
        help="K-seed mode rows for K in this comma-separated list "
        "(iqrl agents; K = 1 is the plain single-seed row)",
    )
    p.add_argument(
        "--obs",
        default="state",
        help="comma-separated among state, pixels: pixel rows for the agents built for pixels",
    )
    p.add_argument("--image-size", type=int, default=84, help="pixel rows: frame width and height")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a run key for every row, over the paper configuration "
        "(repeatable; e.g. tiny sizes for a smoke run)",
    )
    p.add_argument(
        "--collect-s",
        type=float,
        default=COLLECT_BUDGET_S,
        help="seconds of data collection timed per row (whole episodes, at least one)",
    )
    p.add_argument(
        "--end-to-end",
        type=int,
        default=None,
        metavar="STEPS",
        help="rows of whole training runs of STEPS env steps (K-seed groups for --seeds K > 1)",
    )
    p.add_argument(
        "--collect",
        type=int,
        default=0,
        metavar="STEPS",
        help="collection rows: STEPS env steps per seed of a seed phase, CPU per env step beside the physics",
    )
    p.add_argument(
        "--backends",
        default="workers,together",
        help="--collect: K-seed rows' envs (default, workers, together)",
    )
    p.add_argument(
        "--host-share",
        action="store_true",
        help="iqrl: operators, syncs and moves to the device per agent step and per update of K-seed groups",
    )
    p.add_argument(
        "--overlap",
        type=int,
        default=0,
        metavar="STEPS",
        help="iqrl: collection hidden behind updates by two cohorts, K-seed jobs of STEPS env steps",
    )
    p.add_argument("--out", default="bench.json")
    p.add_argument("--compare", nargs=2, metavar=("OLD", "NEW"))
    p.add_argument(
        "--peak",
        action="store_true",
        help="print the fp32/bf16 matrix-product GFLOP/s of this "
        "machine at the update's shapes (the ceiling of updates/s) and exit",
    )
    p.add_argument(
        "--matmul-split",
        action="store_true",
        help="CPU, fp32: for each agent, task and --compile value, how much of an update is matrix "
        "products (profiled) and the most any implementation could gain; print JSON lines and exit",
    )
    p.add_argument(
        "--plain",
        action="store_true",
        help="CPU, fp32, iqrl: each --compile value's update against a plain PyTorch implementation of it "
        "(iqrl/bench/plain.py), timed in one process; rows with vs_plain to --out",
    )
    p.add_argument("--one", nargs=3, metavar=("AGENT", "TASK", "DTYPE"), help=argparse.SUPPRESS)
    p.add_argument("--one-collect", nargs=4, metavar=("TASK", "K", "BACKEND", "OBS"), help=argparse.SUPPRESS)
    p.add_argument("--group", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--one-compile", default="false", help=argparse.SUPPRESS)
    p.add_argument("--one-obs", default="state", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.dtypes is None:
        args.dtypes = "fp32" if args.plain else "fp32,bf16"
    if args.compare:
        return compare(*args.compare)
    if args.peak:
        for r in matmul_peak(args.device):
            print(
                f"{r['op']:<4} {r['shape']:<16} {r['dtype']:<5} {r['kernel']:<7} "
                f"{r['gflop_per_s']:>8.1f} GFLOP/s "
                f"({r['threads']} threads, {r['hardware']})",
                flush=True,
            )
        return 0
    if args.one:
        print(json.dumps(one_row(args)))
        return 0
    if args.one_collect:
        task, k, backend, obs = args.one_collect
        print(json.dumps(measure_collection(task, int(k), backend, obs, args.collect, args.set)))
        return 0
    if problem := bad_arguments(args):  # before anything is measured
        print(f"error: {problem}", file=sys.stderr)
        return 2
    seeds = seed_counts(args.seeds)
    if seeds is None:
        print(
            f"error: --seeds must be a comma-separated list of ints >= 1, got {args.seeds!r}", file=sys.stderr
        )
        return 2
    if args.host_share:
        return host_share_main(args, seeds, write_rows)
    if args.overlap:
        return overlap_main(args, seeds, write_rows)
    if args.collect:
        if bad := unlisted("--backends", args.backends, BACKENDS):
            print(bad, file=sys.stderr)
            return 2
        return collect_main(args, seeds, write_rows)
    agents = [a for a in args.agents.split(",") if a] or (["iqrl"] if args.plain else agent_names())
    tasks = [t for t in args.tasks.split(",") if t]
    dtypes = [d for d in args.dtypes.split(",") if d]
    modes = [m for m in args.compile.split(",") if m]
    observations = [o for o in args.obs.split(",") if o]
    if bad := unlisted("--compile", args.compile, COMPILE_MODES):
        print(bad, file=sys.stderr)
        return 2
    groups = [k for k in seeds if k > 1]
    device_type = torch.device("cuda" if args.device.startswith("cuda") else "cpu")
    notes = []  # what a valid end-to-end run does that its row's user may not expect (its seed phase)
    try:
        for a in agents:
            for t in tasks:
                for d in dtypes:
                    for m, o in ((m, o) for m in modes for o in observations):
                        if o == "pixels" and not agent_class(a).PIXELS:
                            continue  # pixel rows only for the agents built for pixels
                        cfg = build_config(bench_argv(a, t, d, args.device, m, o, args.image_size, args.set))
                        check_precision(cfg, device_type)
                        check_compile(cfg, device_type)
                        if args.end_to_end:  # the run itself, as its row's process will build it
                            steps, size = args.end_to_end, args.image_size
                            run = build_config(run_argv(a, t, d, args.device, m, steps, o, size, args.set))
                            notes += [f"{a} on {t} ({d}, compile {m}): {w}" for w in warnings_of(run)]
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for line in dict.fromkeys(notes):
        print(f"warning: {line}; its end-to-end row times that", file=sys.stderr)
    if args.plain:
        return plain_main(args, tasks, modes)
    if args.matmul_split:
        if args.device != "cpu":
            print("error: --matmul-split profiles CPU time; use --device cpu", file=sys.stderr)
            return 2
        for a, t, m in ((a, t, m) for a in agents for t in tasks for m in modes):
            print(json.dumps(matmul_split(a, t, m, args.updates)), flush=True)
        return 0
    refusals = {a: unsupported(build_config([f"agent={a}"])) for a in agents}
    plan = [(a, ([1] if 1 in seeds else []) + (groups if refusals[a] is None else [])) for a in agents]
    if not any(ks for _, ks in plan):
        print(
            f"error: --seeds {args.seeds} asks only for K-seed rows, which the K-seed mode refuses for "
            f"{', '.join(agents)} at their paper configs; add 1 to --seeds or pick other agents",
            file=sys.stderr,
        )
        return 2
    todo, skipped = [], []  # the rows to measure; one line per row left out, with the reason
    if groups:
        skipped += [
            f"{a}'s K-seed rows (K={','.join(map(str, groups))}): {refusals[a]}"
            for a in agents
            if refusals[a]
        ]
    for a, ks in plan:
        for t in tasks:
            for d, m, k, o in ((d, m, k, o) for d in dtypes for m in modes for k in ks for o in observations):
                if o == "pixels" and not agent_class(a).PIXELS:
                    continue  # pixel rows only for the agents built for pixels
                if k > 1 and o != "state":
                    skipped.append(f"{a} on {t} ({d}, compile {m}, {o}, {k} seeds): {KSEED_ROWS}")
                    continue
                todo.append((a, t, d, m, k, o))
    if not todo:  # every row asked for is a K-seed row the mode cannot measure: nothing to write
        print(
            f"error: --seeds {args.seeds} with --dtypes {args.dtypes}, --compile {args.compile} and --obs "
            f"{args.obs} asks only for K-seed rows, and {KSEED_ROWS}; add 1 to --seeds or measure those",
            file=sys.stderr,
        )
        return 2
    for line in skipped:
        print(f"warning: skipped {line}", file=sys.stderr)
    if args.end_to_end:
        return end_to_end_main(args, todo)
    rows = []
    for a, t, d, m, k, o in todo:
        cmd = row_command(
            a, t, d, m, k, o, args.device, args.updates, args.image_size, args.set, args.collect_s
        )
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            print(
                f"error: bench of {a} on {t} ({d}, compile {m}, {k} seeds) failed: "
                f"{failure_line(r.stderr, r.returncode)}",
                file=sys.stderr,
            )
            if rows:
                print(f"{args.out} holds the {len(rows)} row(s) measured before it", file=sys.stderr)
            return 1
        rows.append(json.loads(r.stdout.strip().splitlines()[-1]))
        write_rows(rows, args.out)  # as they are measured: a later failure loses none
        env_sps, group_sps = rows[-1]["env_steps_per_s"], rows[-1].get("group_env_steps_per_s")
        print(
            f"{a:<14} {t:<12} {o:<6} {d:<5} compile={m:<5} K={k:<3} "
            f"{rows[-1]['updates_per_s']:>8.2f} updates/s per seed "
            + (f"{env_sps:>9.1f} env steps/s" if env_sps is not None else "")
            + (
                f"{group_sps:>9.1f} env steps/s of the group's envs ({rows[-1]['collect_vs_one']}x one env's)"
                if group_sps is not None
                else ""
            ),
            flush=True,
        )
    print()
    print_table(rows)
    print(f"\nwrote {args.out}")
    return 0


def one_row(args) -> dict:
    """The row that `--one AGENT TASK DTYPE` measures in this process: a whole run (`--end-to-end`), a K-seed
    group's updates (`--group K`) or one seed's; with the `--set` keys and envs per seed it was measured with
    (`--compare` pairs only rows measured alike)."""
    a, t, d = args.one
    cfg = build_config(
        bench_argv(a, t, d, args.device, args.one_compile, args.one_obs, args.image_size, args.set)
    )
    return {**measured_row(args), "set": list(args.set), "train_envs": cfg.train_envs}


def measured_row(args) -> dict:
    a, t, d = args.one
    if args.end_to_end:
        k, obs, size = max(args.group, 1), args.one_obs, args.image_size
        return measure_run(a, t, d, args.device, args.one_compile, k, args.end_to_end, obs, size, args.set)
    if args.group:
        return measure_seeds(
            a, t, d, args.device, args.updates, args.group, args.set, args.one_compile, args.collect_s
        )
    return measure(
        a,
        t,
        d,
        args.device,
        args.updates,
        args.one_compile,
        args.one_obs,
        args.image_size,
        args.set,
        args.collect_s,
    )


def end_to_end_main(args, todo: list) -> int:
    """`--end-to-end`: one whole run per row, each in its own process; a K-seed row beside the K = 1 row of
    the same agent, task, dtype and mode gets its rate in all against it (vs_one_seed)."""
    rows = []
    for a, t, d, m, k, o in todo:
        cmd = row_command(a, t, d, m, k, o, args.device, 0, args.image_size, args.set)
        r = subprocess.run([*cmd, "--end-to-end", str(args.end_to_end)], capture_output=True, text=True)
        if r.returncode != 0:
            print(
                f"error: run of {a} on {t} (K={k}) failed: {failure_line(r.stderr, r.returncode)}",
                file=sys.stderr,
            )
            if rows:
                print(f"{args.out} holds the {len(rows)} row(s) measured before it", file=sys.stderr)
            return 1
        row = json.loads(r.stdout.strip().splitlines()[-1])
        one = next((x for x in rows if x["seeds"] == 1 and x["agent"] == a and x["task"] == t), None)
        if k > 1 and one is not None and one["dtype"] == d and one["compile"] == row["compile"]:
            row["vs_one_seed"] = round(row["group_env_steps_per_s"] / one["group_env_steps_per_s"], 2)
            row["train_vs_one_seed"] = round(row["train_env_steps_per_s"] / one["train_env_steps_per_s"], 2)
        rows.append(row)
        write_rows(rows, args.out)
        vs = f" ({row['vs_one_seed']}x K=1 in all)" if "vs_one_seed" in row else ""
        train = f"training alone {row['train_env_steps_per_s']:.1f} in all"
        vs += f"; {train}" + (f" ({row['train_vs_one_seed']}x K=1)" if "vs_one_seed" in row else "")
        print(
            f"{a:<14} {t:<12} {d:<5} compile={m:<5} K={k:<3} {row['env_steps_per_s']:>8.1f} env steps/s per "
            f"seed {row['group_env_steps_per_s']:>9.1f} in all{vs}; {split_text(row)}"
            + (
                f"; diagnostics {100 * row['diagnostics_share']:.2f}% of the wall"
                if row.get("diagnostics_share")
                else ""
            ),
            flush=True,
        )
    print(f"wrote {args.out}")
    return 0


def failure_line(stderr: str, returncode: int) -> str:
    """One line saying why a row's process failed: a command's own `error:` line (a run it started refused
    its config), else the exception's type and the first line of its message when stderr ends in a Python
    traceback (the last exception of a chain), else stderr's last line. The last line alone can be the middle
    of a message of several lines (CUDA graphs' "accessing tensor output of CUDAGraphs that has been
    overwritten" quotes a stack trace)."""
    lines = stderr.strip().splitlines()
    if not lines:
        return f"exit {returncode}"
    if errors := [line for line in lines if line.startswith("error: ")]:
        return errors[-1]
    starts = [i for i, line in enumerate(lines) if line.startswith("Traceback (most recent call last):")]
    if starts:
        for line in lines[starts[-1] + 1 :]:
            if line.strip() and not line[0].isspace():  # the frames are indented, the exception is not
                return line.strip()
    return lines[-1].strip()


def row_command(
    agent: str,
    task: str,
    dtype: str,
    compile_mode: str,
    seeds: int,
    obs: str,
    device: str,
    updates: int,
    image_size: int = 84,
    extra=(),
    collect_s: float = COLLECT_BUDGET_S,
) -> list[str]:
    """The command that measures one row in a process of its own (so that peak memory is the row's own)
    and prints it as its last line, JSON. `seeds` > 1: a K-seed row; `extra`: run keys over the paper
    configuration (`--set`). A GPU report runs its bench rows through it too."""
    return [
        sys.executable,
        "-m",
        "iqrl.bench",
        "--one",
        agent,
        task,
        dtype,
        "--device",
        device,
        "--updates",
        str(updates),
        "--group",
        str(seeds if seeds > 1 else 0),
        "--one-compile",
        compile_mode,
        "--one-obs",
        obs,
        "--image-size",
        str(image_size),
        "--collect-s",
        str(collect_s),
        *(f"--set={kv}" for kv in extra),
    ]


def plain_main(args, tasks: list[str], modes: list[str]) -> int:
    """`--plain`: refuse what the plain implementation does not cover (one error line), then measure."""
    problem = None
    if args.agents.split(",") not in (["iqrl"], [""]):
        problem = f"--plain compares iqrl's update only, got --agents {args.agents}"
    elif args.device != "cpu" or args.dtypes != "fp32" or "cudagraphs" in modes:
        problem = "--plain measures CPU fp32 updates: use --device cpu --dtypes fp32 and no cudagraphs"
    else:
        for t in tasks:
            bad = plain.unsupported(build_config(["agent=iqrl", f"task={t}"]).agent)
            if bad:
                problem = f"the plain iqrl update does not implement {', '.join(bad)} (task {t})"
                break
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    rows = []
    for t in tasks:
        for r in plain_comparison(t, modes, args.updates):
            rows.append(r)
            write_rows(rows, args.out)
            print(json.dumps(r), flush=True)
    print(f"wrote {args.out}")
    return 0


def write_rows(rows: list[dict], out: str) -> None:
    """The rows as a JSON list, written atomically."""
    tmp = staging(Path(out))
    tmp.write_text(json.dumps(rows, indent=1) + "\n")
    tmp.replace(out)


def print_table(rows: list[dict]) -> None:
    cols = FIELDS[:-2]
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in cols}
    print("  ".join(c.ljust(widths[c]) for c in cols))
    for r in rows:
        print("  ".join(str(r.get(c, "")).ljust(widths[c]) for c in cols))
    if rows:
        print(f"torch {rows[0]['torch']} on {rows[0]['hardware']}")
