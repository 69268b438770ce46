"""`make demo`: train iqrl and td3 briefly on CPU (a few minutes), draw their runs and say what they show.

The embedded default is a short budget on an easy task with reduced network sizes, so that it runs on
a laptop; it is a smoke run of the whole pipeline, not a paper configuration. It ends with a figure of the
runs' returns (OUT/demo.png) and a comparison that says what one seed at this budget can show (that each
agent learns) and what it cannot (which agent is better). Re-running it finds the finished runs and only
draws and prints again.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from iqrl.core.exits import EXIT_OK
from iqrl.train import main as train

DEMO = {
    "task": "cartpole-balance",
    "seed": 1,
    "steps": 8_000,
    "seed_steps": 2_000,
    "eval_every": 2_000,
    "eval_episodes": 5,
    "diag_every": 2_000,
    "checkpoint_every": 5_000,
}
AGENT_OVERRIDES = {
    "iqrl": [
        "agent.mlp_dims=[128,128]",
        "agent.enc_mlp_dims=[128]",
        "agent.latent_dim=32",
        "agent.batch_size=128",
    ],
    "td3": ["agent.mlp_dims=[128,128]", "agent.batch_size=128"],
}
# How far above its untrained policy's return a run must end to count as having learned, in return units:
# the spread of a 5-episode evaluation of one policy on cartpole-balance is a few units.
LEARNED_MARGIN = 50.0


def run_demo(out: Path) -> int:
    for agent, extra in AGENT_OVERRIDES.items():
        run_dir = out / agent
        argv = [f"agent={agent}", f"out={run_dir}"] + [f"{k}={v}" for k, v in DEMO.items()] + extra
        print(f"== {agent}: python -m iqrl.train {' '.join(argv)}", flush=True)
        rc = train(argv)
        if rc != EXIT_OK:
            print(f"error: demo run {agent} failed (exit {rc}); see {run_dir}/status.json", file=sys.stderr)
            return rc
    table = demo_table(out)
    figure = draw(table, out)
    print(summary(table, out, figure))
    return EXIT_OK


def demo_table(out: Path):
    """The demo's runs as analysis's tidy table (analysis.load), evaluation rows only."""
    from analysis.load import eval_rows, load_results

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # other folders a user left under OUT are not the demo's business
        table, _ = load_results(out)
    return eval_rows(table[table["run"].isin(list(AGENT_OVERRIDES))])


def draw(table, out: Path) -> Path:
    """OUT/demo.png (and .pdf): each run's evaluation return against env steps, as `make figures` draws
    per-task curves."""
    from analysis import metrics, plots

    plots.setup_style()
    curves = metrics.per_task_curves(table, "episode_return", seed=0)
    title = f"make demo: {DEMO['task']}, one seed, {DEMO['steps']} env steps"
    fig = plots.plot_task_panels(curves, plots.method_colors(table["method"].unique()), title=title)
    return plots.save_figure(fig, out, "demo")[0]


def summary(table, out: Path, figure: Path) -> str:
    """The returns before and after training, what they show and what they cannot."""
    from analysis.metrics import format_steps

    lines = [
        f"\nDemo results ({DEMO['task']}, {DEMO['steps']} env steps, seed {DEMO['seed']}; returns lie in "
        "0..1000):",
        f"{'agent':<6} {'untrained':>10} {'trained':>9}  run folder",
    ]
    learned = {}
    for agent in AGENT_OVERRIDES:
        rows = table[table["run"] == agent].sort_values("env_step")
        first, last = rows["episode_return"].iloc[0], rows["episode_return"].iloc[-1]
        learned[agent] = last >= first + LEARNED_MARGIN
        lines.append(f"{agent:<6} {first:>10.1f} {last:>9.1f}  {out / agent}")
    did, did_not = [a for a, ok in learned.items() if ok], [a for a, ok in learned.items() if not ok]
    shows = ""
    if did:
        shows += f"{_names(did)} learned: {_their(did)} evaluation return ended well above the untrained "
        shows += "policy's. "
    if did_not:
        shows += f"{_names(did_not)} did not rise above {_their(did_not)} untrained policy at this budget. "
    lines += [
        f"\nFigure: {figure} (return against env steps; {figure.with_suffix('.pdf').name} beside it).",
        f"\nWhat this shows: {shows}What it cannot show: which agent is better. One seed at "
        f"{format_steps(DEMO['steps'])} env steps with reduced networks is a smoke run of the pipeline; the "
        "agents' published differences appear at 100k to 1M env steps over several seeds "
        "(make validate: docs/learning-check.md; the paper benchmark: make sweep SWEEP=ablations/main.yaml).",
        "\nEach run folder holds config.yaml, eval.csv, train.csv, status.json and checkpoint/ "
        "(docs/run-folder.md).",
    ]
    return "\n".join(lines)


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
