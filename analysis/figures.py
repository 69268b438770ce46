"""`make figures`: every figure and score table from a results folder.

    python -m analysis.figures --results R [--out O] [--reference [PATH]] [--reference-gym MRQ_RESULTS]
                               [--reference-atari MRQ_RESULTS] [--reference-bbf BBF_SCORES]
                               [--reference-simba SIMBAV2_RESULTS] [--reference-drq DRQ_RESULTS]
                               [--steps 100000,500000]
                               [--exclude-partial] [--reps-curve N] [--reps-final N] [--seed K]

Bad input (missing/empty results, malformed steps, missing reference file) prints one `error:` line
and exits with status 2. Data issues (partial runs, runs left out of a step, skipped figures) print
`warning:` / `note:` lines. Nothing under RESULTS is written; the load cache lives in OUT/.cache.
Bootstrap repetitions: --reps-curve (env IQRL_REPS_CURVE, default 2000) per curve point, profile and
probability of improvement; --reps-final (env IQRL_REPS_FINAL, default 20000) for the final intervals,
the score tables and the ablation points.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import re
import sys
import time
import warnings
from pathlib import Path

import pandas as pd

from analysis.load import (
    MULTI_TASK,
    AnalysisError,
    AnalysisWarning,
    cross_sweep_runs,
    eval_rows,
    load_results,
)
from analysis.reference import (
    SUITES_REFERENCE,
    load_reference,
    read_bbf_scores,
    read_drq_results,
    read_mrq_results,
    read_simba_results,
)
from analysis.scores import add_scores, measure_name, one_suite_score
from analysis.task_groups import DMC_HARD_GROUP, group_rows
from iqrl.envs.tasks import DMC_HARD, split_task

DEFAULT_STEPS = "100000,500000,1000000"


def poi_reference(methods: list[str]) -> tuple[str | None, str]:
    """The method the probability-of-improvement figure compares against: `iqrl`, else the only iqrl
    variant (e.g. `iqrl/small`, when every iqrl run of the results folder is of one variant).
    Returns (method, "") or (None, why not)."""
    if "iqrl" in methods:
        return "iqrl", ""
    variants = sorted(m for m in methods if m.startswith("iqrl/"))
    if len(variants) == 1:
        return variants[0], ""
    return (
        None,
        f"several iqrl variants ({', '.join(variants)}) and no plain iqrl" if variants else "no iqrl runs",
    )


def parse_steps(text: str) -> list[int]:
    """'100000,500k,1M' -> [100000, 500000, 1000000] (sorted, unique); AnalysisError when malformed."""
    steps = []
    for piece in text.split(","):
        piece = piece.strip().replace("_", "")
        m = re.fullmatch(r"(\d+(?:\.\d+)?)([kKmM]?)", piece)
        if not m:
            raise AnalysisError(
                f"malformed STEPS {text!r}: expected comma-separated env steps like 100000,500000"
            )
        value = float(m.group(1)) * {"": 1, "k": 1e3, "m": 1e6}[m.group(2).lower()]
        if not value.is_integer() or value <= 0:
            raise AnalysisError(
                f"malformed STEPS {text!r}: {piece!r} is not a positive whole number of steps"
            )
        steps.append(int(value))
    return sorted(set(steps))


def check_out(out: Path) -> None:
    """OUT is a folder, or can be made one, before anything is read or written: AnalysisError (one line) when
    it or a folder above it is a file, or its nearest existing folder cannot be written."""
    for p in (out, *out.parents):
        if p.exists():
            if not p.is_dir():
                raise AnalysisError(f"OUT={out}: {p} is a file, not a folder; choose another OUT=")
            if not os.access(p, os.W_OK | os.X_OK):
                raise AnalysisError(f"OUT={out}: {p} cannot be written; choose another OUT=")
            return


def _int_arg(name: str, value, minimum: int = 1) -> int:
    try:
        n = int(value)
    except (TypeError, ValueError):
        n = minimum - 1
    if n < minimum:
        raise AnalysisError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return n


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m analysis.figures", description=__doc__.split("\n\n")[0])
    p.add_argument("--results", required=True, help="folder holding run folders (any depth)")
    p.add_argument("--out", default="figures", help="output folder (default: figures)")
    p.add_argument(
        "--reference",
        nargs="?",
        const="1",
        default=None,
        help="overlay published curves: no value = shared/reference-data/published_dmc.csv.gz, "
        "or a path to such a file",
    )
    p.add_argument(
        "--reference-gym",
        default=None,
        help="overlay MR.Q's per-seed Gym curves on the Gym panels: the path of results/gym_results.txt in "
        "a facebookresearch/MRQ checkout",
    )
    p.add_argument(
        "--reference-atari",
        default=None,
        help="overlay MR.Q's per-seed Atari curves on the Atari panels: the path of "
        "results/atari_results.txt in a facebookresearch/MRQ checkout",
    )
    p.add_argument(
        "--reference-bbf",
        default=None,
        help="the Atari 100k scores released with BBF, a point per game at 400k env steps on the Atari "
        "panels and rows of the Atari score tables: the path of bigger_better_faster/scores/RR8_BBF.csv in a "
        "google-research/google-research checkout",
    )
    p.add_argument(
        "--reference-simba",
        default=None,
        help="overlay the per-seed curves released with SimbaV2 (SimbaV2, BRO, Simba, TD-MPC2, MR.Q, SAC; "
        "CrossQ, DroQ, REDQ on Gym) on every suite's panels: the `results` folder of a dojeon-ai/SimbaV2 "
        "checkout",
    )
    p.add_argument(
        "--reference-drq",
        default=None,
        help="overlay the per-seed curves released with DR.Q (DR.Q, states and pixels, and its baselines) on "
        "every suite's panels and in the DMC-hard mean: the `results` folder of a dmksjfl/DR.Q checkout",
    )
    p.add_argument(
        "--steps", default=DEFAULT_STEPS, help=f"env steps for final scores (default {DEFAULT_STEPS})"
    )
    p.add_argument("--exclude-partial", action="store_true", help="drop runs whose status is not done")
    p.add_argument("--reps-curve", default=os.environ.get("IQRL_REPS_CURVE", "2000"))
    p.add_argument("--reps-final", default=os.environ.get("IQRL_REPS_FINAL", "20000"))
    p.add_argument("--seed", default="0", help="bootstrap seed (default 0)")
    p.add_argument("--no-cache", action="store_true", help="do not read or write OUT/.cache")
    return p


#: Each suite's score in its per-task curves (docs/suites.md): the evaluation rows' column (eval.csv's, or
#: derived by analysis.scores.add_scores) and its axis label.
SUITE_SCORES = {
    "dmc": ("episode_return", "Episode return"),
    "gym": ("episode_return", "Episode return"),
    "metaworld": ("success", "Success rate"),
    "myosuite": ("success", "Success rate"),
    "atari": ("human_normalized", "Human-normalised score"),
    "minigrid": ("success", "Success rate"),
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
    (a published-curves file, or such a table already read; DMC and Gym: returns; Meta-World, MyoSuite,
    MiniGrid: success rates; Atari: human-normalised scores, the reference's returns normalised alike) when
    given, and the published scores at one step of `points` (a table in the same layout: BBF's Atari 100k
    scores) as markers."""
    from analysis import metrics, plots
    from analysis.reference import load_reference, select_reference

    value, label = SUITE_SCORES[suite]
    where = "" if suite == "dmc" else f", {suite}"
    evals = add_scores(evals)
    if value not in evals or evals[value].isna().all():
        note(f"{suite} runs without a {value} column: their per-task figure is skipped")
        return []
    task_curves = metrics.per_task_curves(evals[evals[value].notna()], value, seed=seed)
    ref = None
    if reference is not None:
        what = f"reference file {reference}" if isinstance(reference, Path) else f"the {suite} reference"
        ref = select_reference(
            add_scores(load_reference(reference) if isinstance(reference, Path) else reference),
            task_curves["task"].unique(),
            max_step=float(evals["env_step"].max()),
            value=value,
        )
        if ref.empty:
            note(f"{what} has no main-result curves for these tasks")
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


def overlay(*references):
    """The published curves of several references (files or tables already read; None for one not given)
    as one table, or None when none is given."""
    tables = [load_reference(r) if isinstance(r, Path) else r for r in references if r is not None]
    return pd.concat(tables, ignore_index=True) if tables else None


def released_curves(simba: Path | None, drq: Path | None, note):
    """The curves released with SimbaV2 and with DR.Q (the `results` folders of their checkouts; None for one
    not given) as one table, or None. DR.Q's folder carries SimbaV2 UTD 2 (and MR.Q) again: a curve of it that
    SimbaV2's release holds with the same numbers is drawn once, as `[simbav2-repo]`, and a note counts them;
    one whose numbers differ stays, labelled `[drq-repo]`."""
    from analysis.reference import without_repeated_curves

    simba = read_simba_results(simba) if simba is not None else None
    drq = read_drq_results(drq) if drq is not None else None
    if simba is not None and drq is not None:
        drq, repeated = without_repeated_curves(drq, simba)
        if repeated:
            methods = ", ".join(sorted({algorithm for algorithm, _ in repeated}))
            note(
                f"{len(repeated)} curves of the DR.Q results ({methods}) are SimbaV2's released ones, number "
                "for number: drawn once, as [simbav2-repo]"
            )
    return overlay(simba, drq)


def dmc_hard_figure(evals, reference, out: Path, colors: dict, seed: int, note) -> list[Path]:
    """The mean return over the seven DMC-hard tasks (iqrl.envs.tasks.DMC_HARD) vs env steps, per method
    with runs on all seven (its per-task means averaged at the steps every task has), beside each published
    method with curves on all seven (the numbers of issues 48 and 60: DR.Q, SimbaV2 UTD 8, BRO UTD 10, MR.Q,
    TD-MPC2 at 1M),
    and those curves as `dmc_hard_mean.csv`: the table when the runs hold a DMC-hard task, the figure when a
    method has runs on all seven."""
    from analysis import metrics, plots
    from analysis.reference import select_reference

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


def suite_aggregates(
    evals,
    suite: str,
    out: Path,
    steps: list[int],
    colors: dict,
    reps_curve: int,
    reps_final: int,
    seed: int,
    note,
    published=None,
):
    """The figures and score tables that pool one suite's tasks (final intervals, sample efficiency,
    performance profiles, probability of improvement) on that suite's score (analysis.scores: DMC return /
    1000, Gym TD3-normalised, Meta-World and MyoSuite success rate); suites are never pooled together.
    DMC's files keep their names (`sample_efficiency`, `scores.csv`); another suite's carry its name
    (`sample_efficiency_gym`, `final_intervals_metaworld_1M`, `scores_gym.csv`). `published`: per-run scores
    of published methods in the published-curves layout (BBF's Atari 100k scores), rows of the score tables
    where they have scores (`published_estimates`).
    Returns (figure paths, table paths, scores table)."""
    from analysis import metrics, plots, tables

    suffix, where = ("", "") if suite == "dmc" else (f"_{suite}", f", {suite}")
    if suffix:  # another suite's notes say which suite they are about
        outer_note = note

        def note(msg: str) -> None:
            outer_note(f"{suite}: {msg}")

    scored, score = one_suite_score(evals)  # the rows of one suite: never None
    missing = sorted(set(evals["task"]) - set(scored["task"]))
    if missing:
        note(f"no {measure_name(score)} for {', '.join(missing)}: left out of the pooled figures")
    evals = scored
    if evals.empty:
        return [], [], None
    value = {"column": score.column, "scale": score.scale}
    written: list[Path] = []
    # Final scores at each requested step that some run reached; when none was (a smoke sweep), at the
    # largest step every method reached, as the ablations do.
    reached = [s for s in steps if (evals["env_step"] >= s).any()]
    if reached:
        for s in steps:
            if s not in reached:
                note(f"no run reached {metrics.format_steps(s)} env steps: no scores or final figures for it")
    else:
        fallback, _ = metrics.largest_common_step(evals, steps)
        reached = [fallback]
        note(
            f"no run reached any of STEPS ({', '.join(metrics.format_steps(s) for s in steps)}): "
            f"final scores and figures at {metrics.format_steps(fallback)} env steps instead, "
            "the largest step every method reached"
        )
    final = metrics.final_estimates(evals, reached, reps_final, seed, **value)
    for line in final.notes:
        note(line)
    scores = tables.scores_table(final.table)
    if published is not None:
        theirs, lines = published_estimates(published, evals, reached, reps_final, seed, score)
        for line in lines:
            note(line)
        if len(theirs):  # at each step, after our methods
            scores = pd.concat([scores, tables.scores_table(theirs)]).sort_values("env_step", kind="stable")
            scores = scores.reset_index(drop=True)
    table_paths = tables.write_tables(scores, out, f"scores{suffix}", score.digits)

    # Sample efficiency (IQM across tasks and seeds vs steps), overall and per task group.
    curves = metrics.sample_efficiency(evals, reps_curve, seed, **value)
    if curves.empty:
        note(
            "no env step at which every task of a method has an evaluation: sample-efficiency figure skipped"
        )
    else:
        written += plots.save_figure(
            plots.plot_sample_efficiency(
                curves, colors, curve_task_sets(evals, curves), measure=measure_name(score), where=where
            ),
            out,
            f"sample_efficiency{suffix}",
        )
        single = sorted(set(curves.loc[curves["ci_low"].isna(), "method"]))
        if single:
            note(f"sample efficiency: no CI band where a method has one run per task ({', '.join(single)})")

    for step in reached:
        at = f"{metrics.format_steps(step)} steps"
        tag = f"{suite}_{metrics.format_steps(step)}" if suffix else metrics.format_steps(step)
        est = final.table[final.table["env_step"] == step]
        with_tasks = {m: v for (m, s), v in final.scores.items() if s == step}
        # methods on fewer tasks than the step's methods together are labelled `m (k of N tasks)` throughout
        labels = plots.coverage_labels({m: tasks for m, (_, tasks) in with_tasks.items()})
        written += plots.save_figure(
            plots.plot_final_intervals(
                est, colors, step, labels, score=f"{score.label} ({score.unit})", where=where
            ),
            out,
            f"final_intervals_{tag}",
        )
        profiles = metrics.performance_profiles(
            {m: cols for m, (cols, _) in with_tasks.items()}, score.taus, reps_curve, seed
        )
        measure = measure_name(score)
        written += plots.save_figure(
            plots.plot_performance_profiles(
                profiles, score.taus * score.scale, colors, step, labels, measure=measure, where=where
            ),
            out,
            f"performance_profiles_{tag}",
        )
        ref_method, why = poi_reference(list(with_tasks))
        if ref_method is None:
            note(f"{why} at {at}: probability of improvement skipped")
        elif len(with_tasks) < 2:
            note(f"only {ref_method} at {at}: probability of improvement skipped")
        else:
            poi = metrics.improvement_estimates(with_tasks, ref_method, reps_curve, seed)
            if poi.empty:
                note(
                    f"no other method shares a task with {ref_method} at {at}: "
                    "probability of improvement skipped"
                )
            else:
                written += plots.save_figure(
                    plots.plot_probability_of_improvement(poi, colors, step, labels, where=where),
                    out,
                    f"probability_of_improvement_{tag}",
                )

    return written, table_paths, scores


def published_estimates(published, evals, steps: list[int], reps: int, seed: int, score):
    """The aggregates of published per-run scores (`published`, the published-curves layout: BBF's Atari 100k
    scores) at each of `steps` where they have scores, over the tasks that our runs (`evals`, one suite's
    scored rows) have a score for at that step, as `metrics.final_estimates` computes ours: rows of its table,
    the method named "algorithm [source]". Returns (that table, notes)."""
    from analysis import metrics
    from analysis.reference import reference_label

    rows = add_scores(published)
    labels = [reference_label(s, a) for s, a in zip(rows["source"], rows["algorithm"])]
    rows = rows.assign(
        method=labels, group="", run=[f"{m}/{t}/{k}" for k, (m, t) in enumerate(zip(labels, rows["task"]))]
    )
    tables, notes = [], []
    for method, theirs in rows.groupby("method", sort=True):
        at = sorted(set(theirs["env_step"]))
        shown = ", ".join(metrics.format_steps(x) for x in at)
        if not set(at) & set(steps):
            notes.append(
                f"{method}: its scores are at {shown} env steps, not among STEPS: STEPS={shown} adds them to "
                "the score tables"
            )
        for step in sorted(set(at) & set(steps)):
            ours = set(metrics.scores_at_step(evals, step, score.column)[0]["task"])
            kept = theirs[(theirs["env_step"] == step) & theirs["task"].isin(ours)]
            if kept.empty:
                notes.append(f"{method}: no score at {shown} env steps of a task of our runs")
                continue
            est = metrics.final_estimates(kept, [step], reps, seed, score.column, score.scale)
            tables.append(est.table)
            games = kept["task"].nunique()
            notes.append(
                f"{method} at {metrics.format_steps(step)} env steps: the score tables pool its {len(kept)} "
                f"runs on the {games} of its {theirs['task'].nunique()} tasks that our runs have"
            )
    return (pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()), notes


def make_figures(
    results,
    out,
    *,
    steps: list[int],
    reference: Path | None = None,
    reference_gym: Path | None = None,
    reference_atari: Path | None = None,
    reference_bbf: Path | None = None,
    reference_simba: Path | None = None,
    reference_drq: Path | None = None,
    exclude_partial=False,
    reps_curve=2000,
    reps_final=20000,
    seed=0,
    use_cache=True,
) -> dict:
    """Load, estimate, plot and tabulate; returns {"figures": [paths], "tables": [paths], "notes": [...]}."""
    from analysis import metrics, plots

    def note(msg: str) -> None:
        notes.append(msg)
        warnings.warn(msg, AnalysisWarning, stacklevel=2)

    out = Path(out)
    notes: list[str] = []
    # Each sweep's own runs for its ablations; everything else counts a repeated run once across sweeps.
    sweep_table, info = load_results(
        results,
        cache_dir=out / ".cache" if use_cache else None,
        exclude_partial=exclude_partial,
        per_sweep=True,
    )
    table = cross_sweep_runs(sweep_table)
    evals, suite_evals = split_suites(eval_rows(table))
    plots.setup_style()
    colors = plots.method_colors(sweep_table["method"].unique())

    # Pooled figures and score tables, per suite on its own score (analysis.scores); published per-run scores
    # (BBF's Atari 100k) join the tables and the panels of their suite.
    published = {"atari": read_bbf_scores(reference_bbf)} if reference_bbf is not None else {}
    written, table_paths, scores, suite_scores = [], [], None, {}
    if evals.empty:
        note("no DMC runs: the DMC pooled figures and score tables (returns / 1000) are skipped")
    else:
        written, table_paths, scores = suite_aggregates(
            evals, "dmc", out, steps, colors, reps_curve, reps_final, seed, note
        )
    for suite, rows in suite_evals.items():
        figs, paths, suite_scores[suite] = suite_aggregates(
            rows, suite, out, steps, colors, reps_curve, reps_final, seed, note, published.get(suite)
        )
        written, table_paths = written + figs, table_paths + paths

    # Per-task learning curves, optionally with published curves: DMC returns, then each other suite's score.
    released = released_curves(reference_simba, reference_drq, note)
    if not evals.empty:
        dmc_reference = overlay(reference, released)
        written += task_curve_figure(evals, "dmc", dmc_reference, out, colors, seed, note, "per_task_curves")
        written += dmc_hard_figure(evals, dmc_reference, out, colors, seed, note)
    mrq_results = {"gym": reference_gym, "atari": reference_atari}  # MR.Q's released curves, per suite
    for suite, rows in suite_evals.items():
        if suite in mrq_results:
            path = mrq_results[suite]
            suite_reference = read_mrq_results(path) if path is not None else None
        else:
            suite_reference = (
                SUITES_REFERENCE if reference is not None and SUITES_REFERENCE.is_file() else None
            )
        written += task_curve_figure(
            rows,
            suite,
            overlay(suite_reference, released),
            out,
            colors,
            seed,
            note,
            f"per_task_curves_{suite}",
            points=published.get(suite),
        )

    # Diagnostics of the iQRL paper: latent rank, active codebook share.
    if "latent_rank" in table and table["latent_rank"].notna().any():
        rank = metrics.per_task_curves(table, "latent_rank", seed=seed)
        written += plots.save_figure(
            plots.plot_task_panels(
                rank,
                colors,
                ylabel="Latent rank",
                title="Latent rank over training (mean over seeds, 95% CI)",
            ),
            out,
            "latent_rank",
        )
    else:
        note("no run has a latent_rank column: latent-rank figure skipped")
    if "active_codebook_pct_mean" in table and table["active_codebook_pct_mean"].notna().any():
        code = metrics.per_task_curves(table, "active_codebook_pct_mean", seed=seed)
        bounds = {
            b: metrics.per_task_curves(table, f"active_codebook_pct_{b}", seed=seed)
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
                title="Active codebook share over training per FSQ setting (mean over seeds, 95% CI)",
            ),
            out,
            "active_codebook",
        )
    else:
        note("no run has an active_codebook_pct_mean column: active-codebook figure skipped")

    # Transfer: target tasks by arm, scratch as the reference (docs/transfer.md).
    written += transfer_figures(sweep_table, steps, reps_final, seed, out, note)

    # Ablations: one figure per swept key of every (sweep, agent), from that sweep's own runs (not its
    # sources: their pre-training tasks are no arm of the sweep's tasks).
    sweep_table = sweep_table[~is_source_run(sweep_table)]
    sweep_evals = eval_rows(sweep_table)
    for grid in metrics.ablation_grids(sweep_table.drop_duplicates("run")):
        name = plots.safe_name(f"ablation_{grid.sweep or 'nosweep'}_{grid.agent}_{grid.key}")
        mine = sweep_evals[
            (sweep_evals["sweep"] == grid.sweep) & sweep_evals["method"].isin(grid.points["method"])
        ]
        picked = one_suite_score(mine)
        if picked is None:
            note(f"{name}: its tasks span several suites, whose scores do not pool: figure skipped")
            continue
        grid_evals, score = picked
        points, step, ablation_notes = metrics.ablation_estimates(
            grid_evals, grid, steps, reps_final, seed, score.column, score.scale
        )
        for msg in ablation_notes:
            note(msg)
        if points["value"].nunique() < 2:
            continue
        where = {"key": grid.key, "agent": grid.agent, "sweep": grid.sweep, "step": step}
        fig = plots.plot_ablation(points, colors, measure=measure_name(score), **where)
        written += plots.save_figure(fig, out, name)
        # the same grid's latent rank (train.csv), at the step of its returns: does the arm keep its rank?
        ranks, rank_notes = metrics.ablation_rank_estimates(sweep_table, grid, step, reps_final, seed)
        for msg in rank_notes:
            note(msg)
        if ranks["value"].nunique() >= 2:
            fig = plots.plot_ablation(ranks, colors, measure="latent rank", **where)
            written += plots.save_figure(fig, out, f"{name}_latent_rank")
    index = watch_index(table, Path(results), out)
    return {
        "figures": written,
        "tables": table_paths,
        "notes": notes,
        "info": info,
        "scores": scores,
        "suite_scores": suite_scores,
        "index": index,
    }


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
    from analysis import metrics, plots

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
        evals, score = picked  # the target tasks' suite's score (analysis.scores)
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


def watch_index(table, results: Path, out: Path) -> Path:
    """OUT/index.html: per method and task, the run folders drawn and their videos (RUN/videos/*.mp4,
    by env step: iqrl.video), linked relative to OUT, so a point of a figure leads to its episodes."""

    def link(path: Path, text: str) -> str:
        return f'<a href="{html.escape(os.path.relpath(path, out))}">{html.escape(text)}</a>'

    rows = []
    runs = table.drop_duplicates("run").sort_values(["method", "task", "seed", "run"], kind="stable")
    for (method, task), group in runs.groupby(["method", "task"], sort=False):
        cells = []
        for run, seed in zip(group["run"], group["seed"]):
            videos = sorted(
                (results / run / "videos").glob("*.mp4"),
                key=lambda p: (int(re.match(r"\d*", p.name).group() or -1), p.name),
            )
            links = [link(results / run, f"seed {seed}")] + [link(v, v.stem) for v in videos]
            cells.append(" ".join(links))
        rows.append(
            f"<tr><td>{html.escape(method)}</td><td>{html.escape(task)}</td><td>"
            + "<br>".join(cells)
            + "</td></tr>"
        )
    page = (
        "<!doctype html><meta charset=utf-8><title>Runs and videos</title>\n<h1>Runs and videos</h1>\n"
        "<p>Videos: &lt;env step&gt;[-ep&lt;k&gt;]-return&lt;return&gt; (docs/watching.md).</p>\n"
        "<table border=1 cellpadding=4><tr><th>method</th><th>task</th><th>runs and videos</th></tr>\n"
        + "\n".join(rows)
        + "\n</table>\n"
    )
    out.mkdir(parents=True, exist_ok=True)
    (out / "index.html").write_text(page)
    return out / "index.html"


def curve_task_sets(evals, curves) -> dict[str, dict[str, set]]:
    """{group: {method: its tasks in that group}} for the methods of each sample-efficiency panel (a
    method's curve spans all its tasks of the group, see metrics.curve_segments)."""
    out = {}
    for group, sub in curves.groupby("group", sort=False):
        rows = group_rows(evals, group)
        out[group] = {m: set(rows.loc[rows["method"] == m, "task"]) for m in sub["method"].unique()}
    return out


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


def _show_warning(message, category, filename, lineno, file=None, line=None):
    prefix = "warning" if issubclass(category, AnalysisWarning) else f"warning ({category.__name__})"
    print(f"{prefix}: {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with warnings.catch_warnings():  # restores the caller's warning settings afterwards
        warnings.showwarning = _show_warning
        warnings.simplefilter("always", AnalysisWarning)
        return _run(args)


def _run(args) -> int:
    start = time.time()
    try:
        from analysis.reference import resolve_reference

        steps = parse_steps(args.steps)
        check_out(Path(args.out))
        reference = resolve_reference(args.reference)
        if reference is not None:
            load_reference(reference)  # a cell that is no number is an error before anything is written
        reference_gym = Path(args.reference_gym) if args.reference_gym else None
        reference_atari = Path(args.reference_atari) if args.reference_atari else None
        for path in (reference_gym, reference_atari):
            if path is not None:
                read_mrq_results(path)  # a bad file is an error before anything is written
        reference_bbf = Path(args.reference_bbf) if args.reference_bbf else None
        if reference_bbf is not None:
            read_bbf_scores(reference_bbf)
        reference_simba = Path(args.reference_simba) if args.reference_simba else None
        if reference_simba is not None:
            read_simba_results(reference_simba)  # likewise a folder without SimbaV2's results
        reference_drq = Path(args.reference_drq) if args.reference_drq else None
        if reference_drq is not None:
            read_drq_results(reference_drq)
        result = make_figures(
            args.results,
            args.out,
            steps=steps,
            reference=reference,
            reference_gym=reference_gym,
            reference_atari=reference_atari,
            reference_bbf=reference_bbf,
            reference_simba=reference_simba,
            reference_drq=reference_drq,
            exclude_partial=args.exclude_partial,
            reps_curve=_int_arg("--reps-curve", args.reps_curve),
            reps_final=_int_arg("--reps-final", args.reps_final),
            seed=_int_arg("--seed", args.seed, minimum=0),
            use_cache=not args.no_cache,
        )
    except AnalysisError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    info = result["info"]
    print(
        f"wrote {len(result['figures']) // 2} figures (PNG+PDF) and {len(result['tables'])} tables to "
        f"{args.out} from {info.n_runs} runs{' (cached table)' if info.from_cache else ''} "
        f"in {time.time() - start:.0f}s; runs and videos: {result['index']}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
