"""The figures and score tables that pool one suite's tasks: final intervals, sample efficiency, performance
profiles and probability of improvement on the suite's score (analysis.stats.scores), with published per-run
scores (BBF's Atari 100k) as rows of the score tables. Called by analysis.figures.make.make_figures."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from analysis.errors import shown
from analysis.runs.task_groups import group_rows
from analysis.stats.scores import add_scores, measure_name, one_suite_score


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
    x: str = "steps",
):
    """The figures and score tables that pool one suite's tasks (final intervals, sample efficiency,
    performance profiles, probability of improvement) on that suite's score (analysis.stats.scores: DMC return
    / 1000, Gym TD3-normalised, Meta-World and MyoSuite success rate); suites are never pooled together.
    DMC's files keep their names (`sample_efficiency`, `scores.csv`); another suite's carry its name
    (`sample_efficiency_gym`, `final_intervals_metaworld_1M`, `scores_gym.csv`). `published`: per-run scores
    of published methods in the published-curves layout (BBF's Atari 100k scores), rows of the score tables
    where they have scores (`published_estimates`). x: the sample-efficiency curves' axis, "steps" or "wall"
    (wall-clock hours, `sample_efficiency_wall`; metrics.X_AXES).
    Returns (figure paths, table paths, scores table)."""
    from analysis.figures import plots, tables
    from analysis.stats import metrics

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

    # Sample efficiency (IQM across tasks and seeds vs steps or wall-clock hours), overall and per task group.
    axis = metrics.X_AXES[x]
    rows = evals if x == "steps" else wall_rows(evals, note)
    curves = metrics.sample_efficiency(rows, reps_curve, seed, **value, x=axis)
    if curves.empty and rows.empty:
        note("no run has wall times: the sample-efficiency figure against wall-clock hours is skipped")
    elif curves.empty:
        when = "env step" if x == "steps" else "wall-clock hour"
        note(f"no {when} at which every task of a method has an evaluation: sample-efficiency figure skipped")
    else:
        written += plots.save_figure(
            plots.plot_sample_efficiency(
                curves,
                colors,
                curve_task_sets(rows, curves),
                measure=measure_name(score),
                where=where,
                x=axis,
            ),
            out,
            ("sample_efficiency" if x == "steps" else "sample_efficiency_wall") + suffix,
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
    from analysis.reference.table import reference_label
    from analysis.stats import metrics

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


def wall_rows(evals, note):
    """The evaluation rows with `wall_hours`, eval.csv's wall_time_s / 3600 (the run's own wall time since it
    started, resumed attempts, evaluations and setup included); a run without a wall time on every row (an
    older eval.csv) is left out, with a note naming it."""
    wall = evals["wall_time_s"] if "wall_time_s" in evals else pd.Series(float("nan"), index=evals.index)
    lacking = sorted(set(evals.loc[wall.isna(), "run"]))
    if lacking:
        note(
            f"{len(lacking)} run(s) without wall_time_s left out of the curves against wall-clock hours: "
            f"{shown(lacking)}"
        )
    return evals.assign(wall_hours=wall / 3600.0)[~evals["run"].isin(lacking)]


def curve_task_sets(evals, curves) -> dict[str, dict[str, set]]:
    """{group: {method: its tasks in that group}} for the methods of each sample-efficiency panel (a
    method's curve spans all its tasks of the group, see metrics.curve_segments)."""
    out = {}
    for group, sub in curves.groupby("group", sort=False):
        rows = group_rows(evals, group)
        out[group] = {m: set(rows.loc[rows["method"] == m, "task"]) for m in sub["method"].unique()}
    return out
