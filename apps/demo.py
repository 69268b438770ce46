"""`make demo`: train iqrl and td3 briefly on CPU, at the same time (one process and one torch thread each),
draw their runs and say what they show.

The embedded default is a short budget on an easy task with reduced network sizes, so that it runs on
a laptop; it is a demo of the method and of the whole pipeline, not a paper configuration. It ends with a
figure (OUT/demo.png) of the runs' returns beside the published curve of the same method on the same task
where the published tables that ship with the harness (analysis/reference/data) hold one, and beside them
what the harness measures of iqrl's representation (the latent's rank as a share of its width, the share of
FSQ's codes in use, srank and the encoder's dormant units), and a comparison that says what one seed at this
budget can show (that each agent learns) and what it cannot (which agent is better, unless the gap is beyond
the seed-to-seed spread).
Re-running it finds the finished runs and only draws and prints again.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import textwrap
import threading
import warnings
from pathlib import Path

from iqrl.config.demo_sizes import AGENT_OVERRIDES
from iqrl.runfolder.exits import EXIT_INTERRUPTED, EXIT_OK

# cartpole-balance for 20k env steps (9000 updates after 2000 seed steps), measured with one torch thread
# on 2 cores, seed 1: iqrl's evaluation return rises from 284 to 971, td3's from 141 to 894 (on another
# machine, before evaluations were reseeded per step: 283 to 610 and 141 to 853). At 12k env steps iqrl's
# seed 1 had risen by 98 only there, too little to show.
DEMO = {
    "task": "cartpole-balance",
    "seed": 1,
    "steps": 20_000,
    "seed_steps": 2_000,
    "eval_every": 2_000,
    "eval_episodes": 5,
    "diag_every": 2_000,
    "checkpoint_every": 10_000,
}
# How far above its untrained policy's return a run must end to count as having learned, in return units:
# on cartpole-balance a 5-episode evaluation of one policy spreads by up to about 90 per episode (about 40
# on the mean of 5), and an untrained policy scores 140 to 370 depending on the seed.
LEARNED_MARGIN = 100.0
# How much one agent's final return at this budget varies from seed to seed, in return units: the demo's
# settings over seeds 1, 2, 3 ended at 610, 365, 697 (iqrl) and 853, 993, 999 (td3) on one machine, a range
# of 332 and 146, and at 971, 696, 757 and 894, 999, 995 on another (275 and 105; docs/learning-check.md).
# A gap between the agents' final returns within this says nothing about which is better.
SEED_SPREAD = 335.0
# torch threads of each of the demo's runs, which train at the same time in processes of their own: at these
# network sizes one thread updated faster than two on a 2-core machine shared with other work (iqrl: 75 to 90
# updates/s against about 50), and the two runs take one core each.
THREADS = 1
# The published curves: a folder of tables or one table (analysis.reference.table.SHIPPED when None).
REFERENCE: Path | None = None


def run_demo(out: Path) -> int:
    rc = train_all(out)
    if rc != EXIT_OK:
        return rc
    table = demo_table(out)
    band, note = published_band()
    figure = draw(table, band, note, out)
    print(summary(table, out, figure, band, note))
    return EXIT_OK


def train_all(out: Path) -> int:
    """Every demo run trained at the same time, each `python -m iqrl.train` in a process of its own on THREADS
    torch threads, its output passed on whole, line by line (the trainer labels its lines with the run).
    Returns the first failed run's exit code (its `error:` line names the run folder), EXIT_INTERRUPTED after
    Ctrl-C (each run stops with a checkpoint: run the demo again to resume), else EXIT_OK."""
    env = {**os.environ, "OMP_NUM_THREADS": str(THREADS), "MKL_NUM_THREADS": str(THREADS)}
    runs, echoes = {}, []
    for agent, extra in AGENT_OVERRIDES.items():
        argv = [f"agent={agent}", f"out={out / agent}"] + [f"{k}={v}" for k, v in DEMO.items()] + extra
        print(f"== {agent}: python -m iqrl.train {' '.join(argv)}", flush=True)
        runs[agent] = subprocess.Popen(
            [sys.executable, "-m", "iqrl.train", *argv],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        echoes.append(threading.Thread(target=_echo, args=(runs[agent].stdout,), daemon=True))
        echoes[-1].start()
    try:
        codes = {agent: proc.wait() for agent, proc in runs.items()}
    except KeyboardInterrupt:  # the runs got the same Ctrl-C: each stops at its next env step, saved
        codes = {agent: proc.wait() for agent, proc in runs.items()}
    for echo in echoes:
        echo.join()
    for agent, rc in codes.items():
        if rc not in (EXIT_OK, EXIT_INTERRUPTED):
            print(
                f"error: demo run {agent} failed (exit {rc}); see {out / agent}/status.json", file=sys.stderr
            )
            return rc
    if EXIT_INTERRUPTED in codes.values():
        print(f"demo interrupted: make demo again resumes its runs from {out}", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_OK


def _echo(stream) -> None:
    """A run's output, a whole line at a time as it comes (two runs' lines never mix within a line)."""
    for line in stream:
        print(line, end="", flush=True)
    stream.close()


def demo_table(out: Path):
    """The demo's runs as analysis's tidy table (analysis.runs.load): evaluation rows (`episode_return`) and
    training rows (the diagnostics `latent_rank_pct`, `active_codebook_pct_*` every diag_every)."""
    from analysis.runs.load import load_results

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # other folders a user left under OUT are not the demo's business
        table, _ = load_results(out)
    return table[table["run"].isin(list(AGENT_OVERRIDES))]


#: What the figure's right-hand panels draw of each run that logs it: (train.csv column, axis label, factor
#: to the axis, axis top or None). The rank as a share of the latent's width D (rank_metrics: singular values
#: above 1e-2 of the largest, over a batch of the replay's observations), so that its maximum is visible; the
#: mean share of FSQ's codes each group takes over that batch (active_codebook); beside them
#: (docs/diagnostics.md) srank (delta = 0.01: the fewest singular values holding 99% of their sum) and the
#: encoder's tau-dormant units (tau = 0.1) in percent.
DIAGNOSTICS = (
    ("latent_rank_pct", "Latent rank\n(% of its width)", 1.0, 105),
    ("active_codebook_pct_mean", "Active codebook\n(% of codes)", 1.0, 105),
    ("latent_srank", "srank\n(delta = 0.01)", 1.0, None),
    ("encoder_dormant_tau0.1", "Dormant encoder\nunits (%, tau = 0.1)", 100.0, 105),
)


def diagnostic_rows(table, column: str):
    """The rows of `table` where `column` is logged, by run and env step ([] columns: an empty frame)."""
    if column not in table:
        return table.iloc[:0]
    return table[table[column].notna()].sort_values(["run", "env_step"])


def published_band(path: Path | None = None):
    """The published curves of the demo agents' methods (analysis.reference.table.PUBLISHED_NAME: iqrl ->
    iQRL, td3 -> TD3) on the demo's task, clipped to its env steps: analysis.reference.table.select_reference
    rows (source, algorithm, label, env_step, mean, std over seeds, n_seeds) from the tables at `path` (a
    folder or one table; the shipped ones by default), and a note saying why there are none ('' when there are
    some)."""
    from analysis.errors import AnalysisError
    from analysis.reference.table import PUBLISHED_NAME, SHIPPED, reference_tables, select_reference

    path = Path(path or REFERENCE or SHIPPED)
    names = [PUBLISHED_NAME[a] for a in AGENT_OVERRIDES if a in PUBLISHED_NAME]
    where = "the published tables that ship with the harness" if path == SHIPPED else path.name
    try:
        if not path.exists():
            raise AnalysisError(f"{path} does not exist")
        curves, _ = reference_tables(path)
        if curves is None:
            raise AnalysisError(f"{path} holds no published curves")
    except AnalysisError as exc:
        return None, f"no published curve drawn: {exc}"
    rows = select_reference(curves, [DEMO["task"]], max_step=DEMO["steps"])
    rows = rows[rows["algorithm"].isin(names)].reset_index(drop=True)
    if rows.empty:
        return rows, (
            f"no published {' or '.join(names)} curve of {DEMO['task']} up to "
            f"{_steps(DEMO['steps'])} env steps in {where}"
        )
    return rows, ""


def band_label(curve) -> str:
    """Legend text of one published curve: what it is, over how many seeds, how many points lie in range."""
    n, points = int(curve["n_seeds"].max()), len(curve)
    where = f"{points} evaluation{'s' if points > 1 else ''} up to {_steps(DEMO['steps'])} env steps"
    return f"published {curve['label'].iloc[0]}: mean ± std over {n} seed{'s' if n > 1 else ''} ({where})"


def demo_figure(table, band, note: str):
    """Returns on the left: each run's evaluation return against env steps, and each published curve of `band`
    as its mean with a ± std band (one point in range: a marker with an error bar) in its agent's colour;
    `note` as a legend line where no published curve is drawn. On the right, one panel per DIAGNOSTICS entry:
    the measure against env steps for each run that logs it (iqrl's; td3 has no latent), or 'no run logs it'
    (a run folder written before the measure was logged)."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    from analysis.figures import plots
    from analysis.reference.table import PUBLISHED_NAME

    colors = plots.method_colors(list(AGENT_OVERRIDES))
    fig = plt.figure(figsize=(13, 2 + 1.6 * len(DIAGNOSTICS)))
    grid = fig.add_gridspec(len(DIAGNOSTICS), 2, width_ratios=(1.6, 1))
    ax = fig.add_subplot(grid[:, 0])
    returns = table[table["episode_return"].notna()] if "episode_return" in table else table
    handles, labels = [], []
    for agent in AGENT_OVERRIDES:
        color = colors[agent]
        rows = returns[returns["run"] == agent].sort_values("env_step")
        (line,) = ax.plot(rows["env_step"], rows["episode_return"], "o-", color=color, lw=2.4, zorder=3)
        handles.append(line)
        labels.append(f"{agent} (this demo, seed {DEMO['seed']})")
        published = band[band["algorithm"] == PUBLISHED_NAME.get(agent)] if band is not None else band
        for _, curve in published.groupby("label") if published is not None else ():
            handles.append(plots.published_band(ax, curve, color))
            labels.append(band_label(curve))
    if note:  # wrapped: one long legend line would squeeze the axes to a sliver
        handles.append(Line2D([], [], ls="none"))
        labels.append(textwrap.fill(note, 90, break_on_hyphens=False))
    _steps_axis(ax)
    ax.set_ylim(0, 1000)
    ax.set_ylabel(f"{plots.RETURN_LABEL} (evaluation, mean of {DEMO['eval_episodes']} episodes)")
    ax.set_title(
        f"make demo: {DEMO['task']}, one seed per agent, {_steps(DEMO['steps'])} env steps\n"
        "reduced network sizes: a demo, not a paper configuration"
    )
    ax.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, -0.13), frameon=False, ncol=1)
    for i, (column, label, factor, top) in enumerate(DIAGNOSTICS):
        panel = fig.add_subplot(grid[i, 1])
        rows = diagnostic_rows(table, column)
        for agent, mine in rows.groupby("run", sort=False):
            panel.plot(mine["env_step"], factor * mine[column], "o-", color=colors[agent], lw=2, label=agent)
        if rows.empty:
            panel.text(0.5, 0.5, "no run logs it", ha="center", va="center", transform=panel.transAxes)
        _steps_axis(panel)
        panel.set_ylim(0, top or 1.1 * panel.get_ylim()[1])  # no top: a tenth above the highest point
        panel.set_ylabel(label)
    fig.axes[1].set_title("what the harness measures of the representation")
    fig.tight_layout()
    return fig


def _steps_axis(ax) -> None:
    from analysis.figures import plots

    ax.set_xlim(0, DEMO["steps"] * 1.02)
    ax.xaxis.set_major_formatter(plots.steps_formatter())
    ax.set_xlabel(f"{plots.STEPS_LABEL} (one episode = 1000)")


def draw(table, band, note: str, out: Path) -> Path:
    """OUT/demo.png (and .pdf): `demo_figure`, in the style of `make figures`."""
    from analysis.figures import plots

    plots.setup_style()
    return plots.save_figure(demo_figure(table, band, note), out, "demo")[0]


def summary(table, out: Path, figure: Path, band=None, note: str = "") -> str:
    """The returns before and after training, what they show and what they cannot, the published curves
    drawn beside them (`published_band`), and the figure's path last."""
    lines = [
        f"\nDemo results ({DEMO['task']}, {DEMO['steps']} env steps, seed {DEMO['seed']}; returns lie in "
        "0..1000):",
        f"{'agent':<6} {'untrained':>10} {'trained':>9}  run folder",
    ]
    learned, final = {}, {}
    returns = table[table["episode_return"].notna()]
    for agent in AGENT_OVERRIDES:
        rows = returns[returns["run"] == agent].sort_values("env_step")
        first, last = rows["episode_return"].iloc[0], rows["episode_return"].iloc[-1]
        learned[agent], final[agent] = last >= first + LEARNED_MARGIN, last
        lines.append(f"{agent:<6} {first:>10.1f} {last:>9.1f}  {out / agent}")
    did, did_not = [a for a, ok in learned.items() if ok], [a for a, ok in learned.items() if not ok]
    shows = ""
    if did:
        shows += f"{_names(did)} learned: {_their(did)} evaluation return ended at least "
        shows += f"{LEARNED_MARGIN:.0f} above the untrained policy's. "
    if did_not:
        shows += f"{_names(did_not)} did not rise {LEARNED_MARGIN:.0f} above {_their(did_not)} untrained "
        shows += "policy at this budget. "
    lines += [
        f"\nWhat this shows: {shows}{ranking(final)} One seed at {_steps(DEMO['steps'])} env steps with "
        "reduced networks is a demo; the agents' published differences appear at 100k to 1M env steps over "
        "several seeds (make validate: docs/learning-check.md; the paper benchmark: make sweep "
        "SWEEP=ablations/main.yaml).",
        f"\nPublished: {note or '; '.join(band_label(c) for _, c in band.groupby('label'))}.",
        *representation(table),
        "\nEach run folder holds config.yaml, eval.csv, train.csv, status.json and checkpoint/ "
        "(docs/run-folder.md).",
        f"\nFigure: {figure} (return, latent rank, active codebook, srank and dormant encoder units against "
        "env steps; "
        f"{figure.with_suffix('.pdf').name} beside it).",
    ]
    return "\n".join(lines)


def representation(table) -> list[str]:
    """What the right-hand panels show, per run that logs its latent's diagnostics: its rank as a share of the
    latent's width at the first and last diagnostic, the share of FSQ's codes in use at the last, and beside
    them the last srank and dormant encoder share."""
    rank, codes = (diagnostic_rows(table, column) for column, *_ in DIAGNOSTICS[:2])
    lines = []
    for agent, mine in rank.groupby("run", sort=False):
        first, last = mine["latent_rank_pct"].iloc[0], mine["latent_rank_pct"].iloc[-1]
        text = (
            f"{agent}'s latent rank went from {first:.0f}% to {last:.0f}% of its width (the singular values "
            "of a batch of latents above 1e-2 of the largest: 100% is no dimensional collapse, the iQRL "
            "paper's reason for quantising, arXiv 2406.02696)"
        )
        used = codes[codes["run"] == agent]
        if not used.empty:
            mean, low, high = (used.iloc[-1][f"active_codebook_pct_{s}"] for s in ("mean", "min", "max"))
            text += (
                f"; its FSQ groups used {mean:.0f}% of their codes on that batch at the end "
                f"(fewest {low:.0f}%, most {high:.0f}%)"
            )
        text += beside_rank(mine.iloc[-1])
        lines.append(f"\nRepresentation: {text}.")
    return lines


def beside_rank(row) -> str:
    """The last diagnostic row's srank and dormant encoder share (docs/diagnostics.md), where it has them."""
    import math

    logged = {k: v for k, v in row.items() if isinstance(v, float) and not math.isnan(v)}
    parts = []
    if "latent_srank" in logged:
        parts.append(
            f"its srank was {row['latent_srank']:.0f} (the fewest singular values holding 99% of their sum)"
        )
    if "encoder_dormant_tau0.1" in logged:
        parts.append(
            f"{100 * row['encoder_dormant_tau0.1']:.0f}% of its encoder's units were dormant (tau = 0.1)"
        )
    return f"; {' and '.join(parts)}" if parts else ""


def ranking(final: dict[str, float]) -> str:
    """What the agents' final returns (one seed each) say about which is better: nothing while the gap
    between the best and the worst lies within SEED_SPREAD, a hint for several seeds to confirm beyond."""
    order = sorted(final, key=final.get, reverse=True)
    best, worst = order[0], order[-1]
    gap = final[best] - final[worst]
    ended = f"{best} ended {gap:.0f} above {worst}" if gap > 0 else f"{_names(order)} ended level"
    if gap <= SEED_SPREAD:
        return (
            f"What it cannot show: which agent is better. {ended}, within the {SEED_SPREAD:.0f} by which one "
            "agent's final return at this budget varies from seed to seed, so one seed cannot rank them."
        )
    return (
        f"What it cannot settle: which agent is better. {ended}, more than the {SEED_SPREAD:.0f} by which "
        "one agent's final return at this budget varies from seed to seed: an order that several seeds "
        "must confirm."
    )


def _steps(x: float) -> str:
    from analysis.stats.metrics import format_steps

    return format_steps(x)


def _names(agents: list[str]) -> str:
    return " and ".join(agents)


def _their(agents: list[str]) -> str:
    return "their" if len(agents) > 1 else "its"


def cli() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", default="runs/demo", help="where the demo run folders go")
    return run_demo(Path(p.parse_args().out))


if __name__ == "__main__":
    sys.exit(cli())
