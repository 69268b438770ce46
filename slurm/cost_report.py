"""The pricing model's reports, over slurm/cost.py (counts and fits) and slurm/projection.py (the measured
rows): `python -m slurm.cost_report SWEEP.yaml ...` counts every config of the sweeps missing from the table
(and the bench rows' own configs) and writes it; `--doc` prints docs/sweeps.md's tables of the fits
(hold-one-out errors, variants' ratios); `--time` re-times the CPU rows' updates
(slurm.cost.interleaved_rates)."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

from slurm.cost import (
    CPU_RESULTS,
    FEATURES,
    GPU_FEATURES,
    TABLE,
    bench_config,
    config_id,
    count,
    cpu_rows,
    holdout,
    interleaved_rates,
    read_table,
)
from slurm.projection import Model, fit_rows, measured_rows


def holdout_table(rows: list[dict], device: str) -> list[str]:
    """Markdown: each eager K = 1 row of `device` (slurm/projection.py fit_rows), its measured milliseconds
    per update and the fit to the other rows' prediction of it."""
    samples = [(name, c, s) for name, c, s, _ in fit_rows(rows, device)]
    lines = ["| row | ms per update | predicted from the others | error |", "|---|---:|---:|---:|"]
    for name, s, e in holdout(samples, GPU_FEATURES if device == "cuda" else FEATURES):
        lines.append(f"| {name} | {1000 * s:.2f} | {1000 * s * (1 + e):.2f} | {e:+.0%} |")
    return lines


def ratio_checks(rows: list[dict]) -> list[tuple[str, float, float]]:
    """Each variant row of this CPU's bench rows (its `set` keys): its seconds per update over its agent's
    default row's, measured and predicted by the CPU fit to the default rows (a variant's own row is not in
    the fit)."""
    model = Model.of(rows, "cpu")
    default = {r["agent"]: r for r in rows if not r["set"]}
    out = []
    for r in (r for r in rows if r["set"]):
        base = model.seconds(r["agent"], bench_config(r["agent"]))
        predicted = model.seconds(r["agent"], bench_config(r["agent"], extra=r["set"]), r["set"]) / base
        out.append(
            (
                " ".join([r["agent"], *r["set"]]),
                default[r["agent"]]["updates_per_s"] / r["updates_per_s"],
                predicted,
            )
        )
    return out


def doc_lines() -> list[str]:
    """The tables of docs/sweeps.md's pricing section (`python -m slurm.cost_report --doc` prints them)."""
    cpu = cpu_rows()
    lines = ["On the GPU (eager K = 1 rows of docs/gpu-results, launches alone):", ""]
    lines += holdout_table(measured_rows(), "cuda")
    lines += [
        "",
        f"On this CPU ({cpu[0]['hardware']}; docs/cpu-results.jsonl, FLOPs, bytes and launches):",
        "",
    ]
    lines += holdout_table(cpu, "cpu")
    lines += [
        "",
        "| variant | measured time per update against its default | predicted | error |",
        "|---|---:|---:|---:|",
    ]
    for name, measured, predicted in ratio_checks(cpu):
        lines.append(f"| `{name}` | {measured:.2f} | {predicted:.2f} | {predicted / measured - 1:+.0%} |")
    return lines


def main(argv: list[str]) -> int:
    """`python -m slurm.cost SWEEP.yaml ...`: count every config of the sweeps missing from the table (and the
    bench rows' own configs) and write the table; `--doc`: print docs/sweeps.md's tables of the fits;
    `--time`: re-time the updates of docs/cpu-results.jsonl's rows (`interleaved_rates`)."""
    from iqrl.runfolder.atomic import atomic_write_text

    if argv == ["--doc"]:
        print("\n".join(doc_lines()))
        return 0
    if argv == ["--time"]:  # re-time the CPU rows' updates, interleaved
        rows = [json.loads(line) for line in CPU_RESULTS.read_text().splitlines() if line.strip()]
        rates = interleaved_rates([(r["agent"], r["set"]) for r in rows])
        rows = [{**r, "updates_per_s": round(u, 3), "timed": "interleaved"} for r, u in zip(rows, rates)]
        atomic_write_text(CPU_RESULTS, "".join(json.dumps(r) + "\n" for r in rows))
        return 0
    from iqrl.config.build import build_config
    from iqrl.runfolder.atomic import atomic_write_text
    from slurm.spec import built_config, config_runs
    from slurm.submit import load

    table = read_table()
    todo = [(name, bench_config(name), ()) for name in sorted({r["agent"] for r in cost_rows()})]
    todo += [(r["agent"], bench_config(r["agent"], extra=r["set"]), r["set"]) for r in cpu_rows()]
    for path in argv:
        _, runs = load(path, Path("/tmp/iqrl-cost"), None, validator=None)
        for r in config_runs(runs).values():
            cfg = built_config(build_config, tuple(r.argv(Path("/tmp/iqrl-cost"))))
            todo.append((r.agent, cfg, r.overrides))
    for agent, cfg, overrides in todo:
        key = config_id(agent, cfg)
        if key not in table:
            from iqrl.envs.tasks import task_list

            task = task_list(cfg.task)[0]
            table[key] = {"agent": agent, "task": task, "overrides": list(overrides)}
            table[key] |= asdict(count(agent, task, cfg.obs, overrides))
            print(key, table[key], flush=True)
            atomic_write_text(TABLE, json.dumps(dict(sorted(table.items())), indent=1) + "\n")
    return 0


def cost_rows() -> list[dict]:
    return [r for r in measured_rows() if r.get("kind") == "bench"]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
