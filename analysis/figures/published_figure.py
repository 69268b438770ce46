"""The README's figure: published per-seed DMC curves drawn by the harness's own sample-efficiency figure.

    python -m analysis.figures.published_figure [--out docs/img/published_iqm.png] [--reps 2000]

The shipped table `analysis/reference/data/published_dmc.csv.gz` (PROVENANCE.md there) holds each source's
runs seed by seed; on the seven DMC tasks of the iQRL draft (every method of the table ran them) they are
pooled exactly as `make figures` pools runs of ours: IQM of return / 1000 across tasks and seeds against env
steps, with 95% stratified-bootstrap bands (analysis.stats.metrics.sample_efficiency, analysis.figures.plots).
Every curve is a published one; nothing here was trained by the harness.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from analysis.figures import plots
from analysis.reference.table import DEFAULT_REFERENCE, load_reference, reference_label
from analysis.runs.task_groups import task_group
from analysis.stats import metrics

#: The methods drawn, as (source, algorithm) of the published table: iQRL and the methods it is compared with.
METHODS = (
    ("iqrl-icml24-draft", "iQRL"),
    ("iqrl-icml24-draft", "TD3"),
    ("tcrl-repo", "TCRL"),
    ("dcwm-iclr25", "DCWM"),
    ("tdmpc2-results", "TD-MPC2"),
    ("tdmpc2-results", "DreamerV3"),
    ("tdmpc2-results", "SAC"),
)
#: The tasks pooled: those of the first method's curves (the iQRL draft's seven).
MAX_STEP = 1_000_000
DEFAULT_OUT = Path("docs/img/published_iqm.png")


def published_runs(ref: pd.DataFrame, methods=METHODS, max_step: int = MAX_STEP) -> pd.DataFrame:
    """The main-result runs of `methods` on the first method's tasks up to `max_step`, as evaluation rows of
    our runs (method, task, group, seed, run, env_step, episode_return); `method` is `algorithm [source]`."""
    main = ref[ref["ablation"] == ""]
    first = main[(main["source"] == methods[0][0]) & (main["algorithm"] == methods[0][1])]
    tasks = sorted(first["task"].unique())
    picked = [
        main[(main["source"] == s) & (main["algorithm"] == a) & main["task"].isin(tasks)] for s, a in methods
    ]
    rows = pd.concat(picked)
    rows = rows[rows["env_step"] <= max_step]
    method = [reference_label(s, a) for s, a in zip(rows["source"], rows["algorithm"])]
    return pd.DataFrame(
        {
            "method": method,
            "task": rows["task"].to_numpy(),
            "group": [task_group(t) for t in rows["task"]],
            "seed": rows["seed"].to_numpy(),
            "run": [f"{m}/{t}/{s}" for m, t, s in zip(method, rows["task"], rows["seed"])],
            "env_step": rows["env_step"].to_numpy(),
            "episode_return": rows["episode_return"].to_numpy(float),
        }
    )


def draw(out: Path, reps: int = 2000, seed: int = 0) -> Path:
    """The figure of `published_runs` (its 'all tasks' panel) at `out` (PNG); returns `out`."""
    runs = published_runs(load_reference(DEFAULT_REFERENCE))
    curves = metrics.sample_efficiency(runs, reps, seed)
    curves = curves[curves["group"] == "all"]
    plots.setup_style()
    fig = plots.plot_sample_efficiency(curves, plots.method_colors(curves["method"].unique()))
    n_tasks = runs["task"].nunique()
    fig.suptitle(f"Published curves, {n_tasks} DMC tasks (IQM, 95% stratified-bootstrap CI)", y=1.02)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, bbox_inches="tight")
    plots.plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m analysis.figures.published_figure", description=__doc__.split("\n")[0]
    )
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"the PNG to write (default {DEFAULT_OUT})")
    p.add_argument("--reps", type=int, default=2000, help="bootstrap repetitions per curve point")
    args = p.parse_args(argv)
    print(f"wrote {draw(args.out, args.reps)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
