"""The FSQ sweeps' figures name each arm's latent width and codebook size: fsq_levels.yaml widens the latent
with the layout's channels (as the paper did), fsq_levels_equal_width.yaml holds it, and only the width and
codebook size in the legend tell a reader which comparison a figure makes."""

from __future__ import annotations

import pandas as pd

from analysis.figures import ablation_plot, plots
from analysis.runs.load import eval_rows, load_results
from analysis.stats.ablations import ablation_grids
from slurm.naming import dotlist_value, variant_name

from analysis_helpers import write_run

#: (sweep, overrides, latent width, codebook size) of four arms as the trainer records them (meta).
ARMS = [
    ("fsq_levels", {"agent.fsq_levels": [8, 8]}, 1024, 64),
    ("fsq_levels", {"agent.fsq_levels": [8, 5, 5, 5]}, 2048, 1000),
    ("fsq_levels_equal_width", {"agent.fsq_levels": [8, 5, 5, 5], "agent.latent_dim": 256}, 1024, 1000),
    ("fsq_levels_equal_width", {"agent.use_fsq": False}, 1024, None),
]


def fsq_runs(root):
    for sweep, overrides, width, size in ARMS:
        variant = variant_name(overrides)
        overrides = [f"{k}={dotlist_value(v)}" for k, v in overrides.items()]
        config = {"agent": {"name": "iqrl"}, "task": "walker-run", "seed": 0, "sweep": sweep}
        config.update(
            variant=variant, overrides=overrides, meta={"latent_width": width, "codebook_size": size}
        )
        write_run(
            root / sweep / "iqrl" / "walker-run" / variant / "seed0", [(0, 1.0), (1000, 2.0)], config=config
        )
    write_run(  # the default arm: no latent key overridden, no label added
        root / "fsq_levels" / "iqrl" / "walker-run" / "default" / "seed0",
        [(0, 1.0), (1000, 2.0)],
        config={"agent": {"name": "iqrl"}, "task": "walker-run", "seed": 1, "sweep": "fsq_levels"}
        | {"variant": "default", "meta": {"latent_width": 1024, "codebook_size": 64}},
    )
    table, _ = load_results(root, per_sweep=True)
    return table


def test_every_fsq_arm_is_labelled_with_its_width_and_codebook_size(tmp_path):
    table = fsq_runs(tmp_path)
    methods = dict(eval_rows(table).drop_duplicates("run")[["variant", "method"]].itertuples(index=False))
    assert set(methods.values()) == {
        "iqrl",
        "iqrl/fsq_levels=8-8 (width 1024, codebook 64)",
        "iqrl/fsq_levels=8-5-5-5 (width 2048, codebook 1000)",
        "iqrl/fsq_levels=8-5-5-5,latent_dim=256 (width 1024, codebook 1000)",
        "iqrl/use_fsq=false (width 1024, no codebook)",
    }


def test_the_ablation_figure_ticks_give_the_width_beside_the_codebook_size(tmp_path):
    """The pooled figures' legends are the method labels above; the ablation figure's x axis puts each
    layout's width under its codebook size, so the paper sweep's widening shows."""
    table = fsq_runs(tmp_path)
    (grid,) = [g for g in ablation_grids(table.drop_duplicates("run")) if g.sweep == "fsq_levels"]
    points = grid.points.assign(iqm=1.0, ci_low=0.5, ci_high=1.5, n_tasks=1, n_runs=1)
    fig = ablation_plot.plot_ablation(
        pd.DataFrame(points),
        plots.method_colors(points["method"]),
        key=grid.key,
        agent="iqrl",
        sweep="s",
        step=1,
    )
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == [
        "8-8\nK=64\nwidth 1024, codebook 64",
        "8-5-5-5\nK=1000\nwidth 2048, codebook 1000",
    ]
