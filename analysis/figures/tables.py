"""Score tables (CSV, Markdown, LaTeX) from final estimates: one row per (method, env_step)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from analysis.stats.metrics import format_steps, method_order

SCORE_COLUMNS = [
    "method",
    "env_step",
    "iqm",
    "iqm_ci_low",
    "iqm_ci_high",
    "median",
    "mean",
    "optimality_gap",
    "n_tasks",
    "n_runs",
]


def scores_table(estimates: pd.DataFrame) -> pd.DataFrame:
    """Long estimates (method, env_step, metric, value, ci_low, ci_high, n_tasks, n_runs) -> SCORE_COLUMNS.

    Values stay on the 0-1000 return scale; rows are ordered by env_step, then method (iqrl first).
    """
    if estimates.empty:
        return pd.DataFrame(columns=SCORE_COLUMNS)
    wide = estimates.pivot_table(index=["method", "env_step"], columns="metric", values="value").reset_index()
    iqm = estimates[estimates["metric"] == "iqm"].set_index(["method", "env_step"])
    wide = wide.set_index(["method", "env_step"])
    wide["iqm_ci_low"] = iqm["ci_low"]
    wide["iqm_ci_high"] = iqm["ci_high"]
    wide["n_tasks"] = iqm["n_tasks"].astype(int)
    wide["n_runs"] = iqm["n_runs"].astype(int)
    wide = wide.reset_index()
    rank = {m: i for i, m in enumerate(method_order(wide["method"]))}
    wide = wide.assign(_r=wide["method"].map(rank)).sort_values(["env_step", "_r"]).drop(columns="_r")
    return wide[SCORE_COLUMNS].reset_index(drop=True)


def _fmt(x: float, digits: int = 1) -> str:
    return f"{x:.{digits}f}"


def _ci(low: float, high: float, missing: str, digits: int = 1) -> str:
    """The interval as [low, high], or `missing` where there is none (one run per task, NaN in the CSV)."""
    return missing if pd.isna(low) or pd.isna(high) else f"[{_fmt(low, digits)}, {_fmt(high, digits)}]"


def to_markdown(scores: pd.DataFrame, digits: int = 1) -> str:
    """A GitHub-flavoured Markdown table of the scores (env steps as 100k/1M, returns to 0.1; a suite's
    score in [0, 1] or about it with digits=3)."""
    header = ["method", "env steps", "IQM", "IQM 95% CI", "median", "mean", "optimality gap", "tasks", "runs"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * 2 + ["---:"] * 7) + "|"]
    for r in scores.itertuples():
        lines.append(
            "| "
            + " | ".join(
                [
                    r.method,
                    format_steps(r.env_step),
                    _fmt(r.iqm, digits),
                    _ci(r.iqm_ci_low, r.iqm_ci_high, "—", digits),
                    _fmt(r.median, digits),
                    _fmt(r.mean, digits),
                    _fmt(r.optimality_gap, digits),
                    str(r.n_tasks),
                    str(r.n_runs),
                ]
            )
            + " |"
        )
    return "\n".join(lines) + "\n"


_LATEX_SPECIAL = {
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\^{}",
    "\\": r"\textbackslash{}",
}


def latex_escape(text: str) -> str:
    """Escape LaTeX's special characters (method names contain '_' and '=')."""
    return "".join(_LATEX_SPECIAL.get(c, c) for c in text)


def to_latex(scores: pd.DataFrame, digits: int = 1) -> str:
    """A booktabs tabular of the scores (needs \\usepackage{booktabs}); digits as `to_markdown`."""
    lines = [
        r"\begin{tabular}{llrrrrrr}",
        r"\toprule",
        r"Method & Env steps & IQM & IQM 95\% CI & Median & Mean & Opt.\ gap & Tasks / runs \\",
        r"\midrule",
    ]
    previous = None
    for r in scores.itertuples():
        if previous is not None and r.env_step != previous:
            lines.append(r"\midrule")
        previous = r.env_step
        lines.append(
            " & ".join(
                [
                    latex_escape(r.method),
                    format_steps(r.env_step),
                    _fmt(r.iqm, digits),
                    _ci(r.iqm_ci_low, r.iqm_ci_high, "---", digits),
                    _fmt(r.median, digits),
                    _fmt(r.mean, digits),
                    _fmt(r.optimality_gap, digits),
                    f"{r.n_tasks} / {r.n_runs}",
                ]
            )
            + r" \\"
        )
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def write_tables(scores: pd.DataFrame, out_dir: Path, stem: str = "scores", digits: int = 1) -> list[Path]:
    """<stem>.csv (full precision), <stem>.md and <stem>.tex under out_dir (digits: as `to_markdown`)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{stem}.csv", out_dir / f"{stem}.md", out_dir / f"{stem}.tex"]
    scores.to_csv(paths[0], index=False, float_format="%.6g")
    paths[1].write_text(to_markdown(scores, digits))
    paths[2].write_text(to_latex(scores, digits))
    return paths
