"""The figures of sweeps: transfer (target tasks by arm, scratch the reference) and ablations (the final score
against each swept key). Called by analysis.figures.make.make_figures."""

from __future__ import annotations

from pathlib import Path

from analysis.figures.curves import REPRESENTATION
from analysis.runs.load import MULTI_TASK, eval_rows
from analysis.stats.scores import measure_name, one_suite_score


def is_source_run(table):
    """Rows of a sweep's source runs: the runs others start from, which slurm/spec.py puts in variant
    `source-<name>`."""
    return table["variant"].str.startswith("source-")


def transfer_arms(runs) -> dict[str, str]:
    """Legend text per method of a transfer sweep's target runs (one row per run): `scratch` for runs from
    nothing, else the method with its source and the parts it loaded."""
    labels = {}
    for method, g in runs.groupby("method"):
        sources = sorted(set(g["source"]) - {""})
        parts = " / ".join(sorted(set(g["source_parts"]) - {""}))
        if sources:
            labels[method] = f"{method}: from {', '.join(sources)} [{parts}]"
        else:  # from scratch, on the target task alone or beside its domain's other tasks
            labels[method] = method if method.endswith(MULTI_TASK) else f"{method}: scratch"
    return labels


def transfer_figures(sweep_table, steps: list[int], reps: int, seed: int, out: Path, note) -> list[Path]:
    """For every (sweep, agent) with runs started from another run's parts: its target tasks' curves with one
    line per arm (the scratch arm the reference), and the IQM, median, mean and optimality gap of each arm
    across the target tasks at every step of `steps` some run reached (else the largest step all reached),
    with 95% CIs. The sources' own runs are not arms."""
    from analysis.figures import plots
    from analysis.stats import metrics

    written: list[Path] = []
    targets = sweep_table[~is_source_run(sweep_table)]
    for (sweep, agent), runs in targets.groupby(["sweep", "agent"], sort=True):
        if not (runs["source"] != "").any():
            continue
        runs = runs[runs["task"].isin(set(runs.loc[runs["source"] != "", "task"]))]
        labels = transfer_arms(runs.drop_duplicates("run"))
        colors = plots.method_colors(labels)
        name = plots.safe_name(f"transfer_{sweep or 'nosweep'}_{agent}")
        picked = one_suite_score(eval_rows(runs))
        if picked is None:
            note(f"{name}: its target tasks span several suites, whose scores do not pool: figures skipped")
            continue
        evals, score = picked  # the target tasks' suite's score (analysis.stats.scores)
        curves = metrics.per_task_curves(evals, score.column, seed=seed)
        title = f"Transfer ({sweep or 'no sweep'}, {agent}): target tasks by arm (mean over seeds, 95% CI)"
        fig = plots.plot_task_panels(
            curves, colors, labels=labels, title=title, ylim=(0, None), ylabel=score.label
        )
        written += plots.save_figure(fig, out, name)
        reached = [s for s in steps if (evals["env_step"] >= s).any()]
        reached = reached or [metrics.largest_common_step(evals, steps)[0]]
        final = metrics.final_estimates(evals, reached, reps, seed, score.column, score.scale)
        for line in final.notes:
            note(f"transfer {sweep}/{agent}: {line}")
        for step in reached:
            est = final.table[final.table["env_step"] == step]
            if not est.empty:
                fig = plots.plot_final_intervals(
                    est, colors, step, labels, score=f"{score.label} ({score.unit})"
                )
                written += plots.save_figure(fig, out, f"{name}_{metrics.format_steps(step)}")
    return written


def ablation_figures(
    sweep_table, colors: dict, steps: list[int], reps_final: int, seed: int, out: Path, note
) -> list[Path]:
    """One figure per swept key of every (sweep, agent), from that sweep's own runs (not its sources: their
    pre-training tasks are no arm of the sweep's tasks): the final IQM against the key's value on the grid's
    suite's score, and at the same step the latent rank and each representation diagnostic the runs log."""
    from analysis.figures import ablation_plot, plots
    from analysis.stats import ablations

    written: list[Path] = []
    sweep_table = sweep_table[~is_source_run(sweep_table)]
    sweep_evals = eval_rows(sweep_table)
    for grid in ablations.ablation_grids(sweep_table.drop_duplicates("run")):
        name = plots.safe_name(f"ablation_{grid.sweep or 'nosweep'}_{grid.agent}_{grid.key}")
        mine = sweep_evals[
            (sweep_evals["sweep"] == grid.sweep) & sweep_evals["method"].isin(grid.points["method"])
        ]
        picked = one_suite_score(mine)
        if picked is None:
            note(f"{name}: its tasks span several suites, whose scores do not pool: figure skipped")
            continue
        grid_evals, score = picked
        points, step, ablation_notes = ablations.ablation_estimates(
            grid_evals, grid, steps, reps_final, seed, score.column, score.scale
        )
        for msg in ablation_notes:
            note(msg)
        if points["value"].nunique() < 2:
            continue
        where = {"key": grid.key, "agent": grid.agent, "sweep": grid.sweep, "step": step}
        fig = ablation_plot.plot_ablation(points, colors, measure=measure_name(score), **where)
        written += plots.save_figure(fig, out, name)
        needed = ablations.seeds_needed_rows(
            grid_evals, grid, step, score.column, min(reps_final, 2000), seed
        )
        if not needed.empty:
            needed.to_csv(out / f"{name}_seeds_needed.csv", index=False)
        # the same grid's diagnostics (train.csv) at the step of its returns: does the arm keep its rank?
        for column, label in {"latent_rank": "latent rank", **REPRESENTATION}.items():
            points, diag_notes = ablations.ablation_diagnostic_estimates(
                sweep_table, grid, step, reps_final, seed, column
            )
            for msg in diag_notes:
                note(msg)
            if points["value"].nunique() >= 2:
                fig = ablation_plot.plot_ablation(points, colors, measure=label, **where)
                written += plots.save_figure(fig, out, f"{name}_{column}")
    return written
