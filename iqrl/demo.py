"""`make demo`: train iqrl and td3 briefly on CPU (a few minutes) and say where the results are.

The embedded default is a short budget on an easy task with reduced network sizes, so that it runs on
a laptop; it is a smoke run of the whole pipeline, not a paper configuration. Re-running it finds the
finished runs and only prints the summary again.
"""

from __future__ import annotations

import argparse
import csv
import sys
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


def run_demo(out: Path) -> int:
    rows = []
    for agent, extra in AGENT_OVERRIDES.items():
        run_dir = out / agent
        argv = [f"agent={agent}", f"out={run_dir}"] + [f"{k}={v}" for k, v in DEMO.items()] + extra
        print(f"== {agent}: python -m iqrl.train {' '.join(argv)}", flush=True)
        rc = train(argv)
        if rc != EXIT_OK:
            print(f"error: demo run {agent} failed (exit {rc}); see {run_dir}/status.json", file=sys.stderr)
            return rc
        with open(run_dir / "eval.csv") as f:
            ev = list(csv.DictReader(f))
        rows.append((agent, ev[0]["episode_return"], ev[-1]["episode_return"], ev[-1]["env_step"], run_dir))
    print(f"\nDemo results ({DEMO['task']}, {DEMO['steps']} env steps, seed {DEMO['seed']}):")
    print(f"{'agent':<6} {'return@0':>9} {'final return':>13} {'env_step':>9}  run folder")
    for agent, first, last, step, run_dir in rows:
        print(f"{agent:<6} {float(first):>9.1f} {float(last):>13.1f} {int(step):>9}  {run_dir}")
    print(
        "\nEach run folder holds config.yaml, eval.csv, train.csv, status.json and checkpoint/ "
        "(docs/run-folder.md)."
    )
    return EXIT_OK


def cli() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", default="runs/demo", help="where the demo run folders go")
    return run_demo(Path(p.parse_args().out))


if __name__ == "__main__":
    sys.exit(cli())
