"""The per-task figures: each task's score over env steps with the published curves beside it (every suite on
its own score), the DMC-hard mean, the iQRL paper's diagnostics (latent rank, active codebook share) and the
representation diagnostics (docs/diagnostics.md). Called by analysis.figures.make.make_figures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.errors import shown
from analysis.runs.task_groups import DMC_HARD_GROUP, group_rows
from analysis.stats.scores import add_scores
from iqrl.envs.tasks import DMC_HARD, split_task

#: Each suite's score in its per-task curves (docs/suites.md): the evaluation rows' column (eval.csv's, or
#: derived by analysis.stats.scores.add_scores) and its axis label.
SUITE_SCORES = {
    "dmc": ("episode_return", "Episode return"),
    "gym": ("episode_return", "Episode return"),
    "metaworld": ("success", "Success rate"),
    "myosuite": ("success", "Success rate"),
    "atari": ("human_normalized", "Human-normalised score"),
    "minigrid": ("success", "Success rate"),
}


#: How the diagnostics' curves pool a method's seeds on a task (metrics.per_task_iqm_curves), in their titles.
IQM_OVER_SEEDS = "(IQM over seeds, 95% stratified-bootstrap CI)"

#: train.csv's representation diagnostics drawn over training and against a sweep's values (each where a run
#: logs it; docs/diagnostics.md): column -> axis label.
REPRESENTATION = {
    "latent_srank": "srank (delta = 0.01)",
    "latent_erank": "Entropy effective rank",
    "encoder_dormant_tau0.1": "Dormant encoder units (tau = 0.1)",
    "critic_dormant_tau0.1": "Dormant critic units (tau = 0.1)",
    "actor_dormant_tau0.1": "Dormant actor units (tau = 0.1)",
    "latent_state_r2": "Linear probe R^2 of the true state (latent)",
    "codebook_perplexity_mean": "Codebook perplexity (mean over groups)",
    "latent_pred_cos_k1": "1-step latent prediction error (cosine)",
}


def split_suites(evals):
    """Evaluation rows -> (DMC rows, {suite: rows} of the other suites present)."""
    suite = evals["task"].map(lambda t: split_task(t)[0])
    others = {s: evals[suite == s] for s in sorted(set(suite)) if s != "dmc"}
    return evals[suite == "dmc"], others


def task_curve_figure(
    evals, suite: str, reference, out: Path, colors: dict, seed: int, note, name: str, points=None
):
    """One panel per task of one suite: its score over env steps, with the published curves of `reference`
    (the published-curves table of analysis.reference.overlays, every suite's; None for none) on these tasks
    (DMC and Gym: returns; Meta-World, MyoSuite, MiniGrid: success rates; Atari: human-normalised scores, the
    curves' returns normalised alike), and the published scores at one step of `points` (a table in the same
    layout: BBF's Atari 100k scores) as markers."""
    from analysis.figures import plots
    from analysis.reference.released import PROTOCOL_NOTES
    from analysis.reference.table import published_name, select_reference
    from analysis.stats import metrics

    value, label = SUITE_SCORES[suite]
    where = "" if suite == "dmc" else f", {suite}"
    evals = add_scores(evals)
    if value not in evals or evals[value].isna().all():
        note(f"{suite} runs without a {value} column: their per-task figure is skipped")
        return []
    task_curves = metrics.per_task_curves(evals[evals[value].notna()], value, seed=seed)
    ref = None
    if reference is not None:
        what = "the published curves" if suite == "dmc" else f"the published curves ({suite})"
        tasks = task_curves["task"].unique()
        theirs = reference[reference["task"].isin({published_name(t) for t in tasks})]  # before scoring them
        ref = select_reference(
            add_scores(theirs), tasks, max_step=float(evals["env_step"].max()), value=value
        )
        for source in sorted(set(ref["source"]) & {s for s, k in PROTOCOL_NOTES if k == suite}):
            note(PROTOCOL_NOTES[source, suite])
        if ref.empty:
            note(f"{what}: none of a main result on these tasks")
        elif not ref.groupby(["task", "label"])["env_step"].nunique().ge(2).any():
            note(
                f"{what}: no published curve has 2 points up to "
                f"{metrics.format_steps(evals['env_step'].max())} env steps: none is drawn"
            )
    marks = None
    if points is not None:
        last = float(evals["env_step"].max())
        marks = select_reference(add_scores(points), task_curves["task"].unique(), max_step=last, value=value)
        if marks.empty:
            at = ", ".join(metrics.format_steps(x) for x in sorted(points["env_step"].unique()))
            note(f"the published scores at {at} env steps have none of these tasks up to our last evaluation")
    return plots.save_figure(
        plots.plot_task_panels(
            task_curves,
            colors,
            reference=ref,
            points=marks,
            ylabel=label,
            title=f"Per-task learning curves{where} (mean over seeds, 95% bootstrap CI)",
            ylim={"success": (0, 1.05), "episode_return": (0, None)}.get(value),
        ),
        out,
        name,
    )


def dmc_hard_figure(evals, reference, out: Path, colors: dict, seed: int, note) -> list[Path]:
    """The mean return over the seven DMC-hard tasks (iqrl.envs.tasks.DMC_HARD) vs env steps, per method
    with runs on all seven (its per-task means averaged at the steps every task has), beside each published
    method with curves on all seven (the numbers of issues 48 and 60: DR.Q, SimbaV2 UTD 8, BRO UTD 10, MR.Q,
    TD-MPC2 at 1M),
    and those curves as `dmc_hard_mean.csv`: the table when the runs hold a DMC-hard task, the figure when a
    method has runs on all seven."""
    from analysis.figures import plots
    from analysis.reference.table import select_reference
    from analysis.stats import metrics

    if not evals["task"].isin(DMC_HARD).any():
        return []
    rows = group_rows(evals, DMC_HARD_GROUP)
    name = f"DMC-hard mean ({len(DMC_HARD)} tasks)"
    ours = metrics.mean_over_tasks(
        metrics.per_task_curves(rows, "episode_return", seed=seed), DMC_HARD, ["method"], name
    )
    ref = None
    if reference is not None:
        published = select_reference(reference, list(DMC_HARD))
        ref = metrics.mean_over_tasks(published, DMC_HARD, ["source", "algorithm", "label"], name)
        mine = ours.rename(columns={"method": "label"}).assign(source="this run folder")
        parts = [t for t in (mine, ref) if not t.empty]  # pandas warns on concatenating an empty frame
        columns = ["source", "label", "env_step", "mean"]
        table = pd.concat(parts)[columns] if parts else pd.DataFrame(columns=columns)
        table.to_csv(out / "dmc_hard_mean.csv", index=False)
    if ours.empty:
        note(
            f"no method has runs on all {len(DMC_HARD)} DMC-hard tasks: dmc_hard figure skipped"
            + (" (dmc_hard_mean.csv holds the published means)" if ref is not None else "")
        )
        return []
    return plots.save_figure(
        plots.plot_task_panels(
            ours,
            colors,
            reference=ref,
            ylabel="Mean episode return",
            title="DMC-hard: mean return over the dog and humanoid tasks",
            ylim=(0, None),
        ),
        out,
        "dmc_hard",
    )


def diagnostic_figures(table, colors: dict, seed: int, out: Path, note) -> list[Path]:
    """The diagnostics of the iQRL paper over training, per task and method: `latent_rank` and the active
    codebook share (`active_codebook_pct_mean`, its min and max over FSQ groups dotted), each skipped with a
    note when no run logs it; and each REPRESENTATION column that a run logs, named after it. Each is the IQM
    over seeds with a 95% stratified-bootstrap interval, as the sample-efficiency curves
    (metrics.per_task_iqm_curves)."""
    from analysis.figures import plots
    from analysis.stats import metrics

    written: list[Path] = []
    if "latent_rank" in table and table["latent_rank"].notna().any():
        rank = metrics.per_task_iqm_curves(table, "latent_rank", seed=seed)
        written += plots.save_figure(
            plots.plot_task_panels(
                rank,
                colors,
                ylabel="Latent rank",
                title=f"Latent rank over training {IQM_OVER_SEEDS}",
            ),
            out,
            "latent_rank",
        )
    else:
        note("no run has a latent_rank column: latent-rank figure skipped")
    if "active_codebook_pct_mean" in table and table["active_codebook_pct_mean"].notna().any():
        code = metrics.per_task_iqm_curves(table, "active_codebook_pct_mean", seed=seed)
        bounds = {
            b: metrics.per_task_iqm_curves(table, f"active_codebook_pct_{b}", seed=seed)
            for b in ("min", "max")
            if f"active_codebook_pct_{b}" in table
        }
        written += plots.save_figure(
            plots.plot_task_panels(
                code,
                colors,
                ylabel="Active codebook (%)",
                bounds=bounds or None,
                ylim=(0, 105),
                labels=fsq_labels(table[table["active_codebook_pct_mean"].notna()]),
                title=f"Active codebook share over training per FSQ setting {IQM_OVER_SEEDS}",
            ),
            out,
            "active_codebook",
        )
    else:
        note("no run has an active_codebook_pct_mean column: active-codebook figure skipped")
    for column, label in REPRESENTATION.items():  # silently absent where no agent logs it
        if column in table and table[column].notna().any():
            fig = plots.plot_task_panels(
                metrics.per_task_iqm_curves(table, column, seed=seed),
                colors,
                ylabel=label,
                title=f"{label} over training {IQM_OVER_SEEDS}",
            )
            written += plots.save_figure(fig, out, column)
    return written


#: The diagnostics the figures draw (diagnostic_figures and the ablations' latent-rank panels), each with the
#: prefix of the columns logged beside it at a diagnostic step (iqrl.core.diagnostics).
DIAGNOSTICS = {
    "latent_rank": "latent_",
    **{f"active_codebook_pct_{b}": "active_codebook_pct_" for b in ("mean", "min", "max")},
}


def finite_diagnostics(table: pd.DataFrame, note) -> pd.DataFrame:
    """`table` with the drawn diagnostics' values that are no number left out (nan, as a step without
    diagnostics), the runs holding them named in a note: inf, or nan at a step where the run logged the
    column's other diagnostics (a value the diagnostic could not define, not a step without one). Averaged
    in, an inf made a curve of inf and nan under numpy's warning alone."""
    for column, prefix in DIAGNOSTICS.items():
        if column not in table:
            continue
        values = table[column].astype(float)
        beside = [c for c in table.columns if c.startswith(prefix) and c != column]
        logged = table[beside].notna().any(axis=1) if beside else pd.Series(False, index=table.index)
        bad = np.isinf(values) | (values.isna() & logged)
        if bad.any():
            runs = table.loc[bad, "run"].value_counts(sort=False).sort_index()
            named = [f"{run} ({n} row(s))" for run, n in runs.items()]
            note(
                f"{column} is nan or inf in {int(bad.sum())} row(s) of {len(runs)} run(s), left out of its "
                f"figures: {shown(named, 5, '; ')}"
            )
            table = table.assign(**{column: values.where(~np.isinf(values))})
    return table


def fsq_labels(table) -> dict[str, str]:
    """{method: "method (fsq_levels=8-8)"} where the runs' FSQ levels are known (override or config)."""
    out = {}
    for row in table.drop_duplicates("method").itertuples():
        levels = json.loads(row.overrides).get("fsq_levels") or json.loads(row.config_values).get(
            "fsq_levels"
        )
        out[row.method] = (
            f"{row.method} (fsq_levels={levels})" if levels and "fsq_levels" not in row.method else row.method
        )
    return out
