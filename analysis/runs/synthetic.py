"""A synthetic results folder with known returns, for tests and `make figures` demos.

    python -m analysis.runs.synthetic OUT_DIR

Layout (sweep layout of the run folder contract):
- `main/{iqrl,tcrl,td3}/<task>/default/seed{0,1,2}` on five tasks (easy, medium, hard), 500k steps,
  evaluations every 50k (from 0), train.csv every 25k. td3 runs have no config.yaml (as if copied
  from a cluster without configs). Two runs are not done: tcrl dog-run seed2 is `running` at 300k
  and td3 cheetah-run seed1 `failed` at 150k.
- `horizon/iqrl/<task>/horizon={1,3,5}/seed{0,1}`: a horizon grid on two tasks (config.yaml with
  `overrides: [agent.horizon=<h>]`).
- `fsq/iqrl/<task>/fsq_levels={8-8,5-5-5-5}/seed{0,1}`: an FSQ-levels grid without config.yaml (the
  override is parsed from the variant name).

A file `SYNTHETIC` at the root (MARKER) says what the folder is; `make figures` then writes "synthetic data"
across every figure it draws from the folder (analysis.figures.plots.watermark).

Returns follow `synthetic_return` exactly (rounded to 1e-3), so tests can recompute every score.
Diagnostics: `latent_rank` (iqrl variants and tcrl; tcrl's collapses), `active_codebook_pct_*` (iqrl
variants; lower for the larger 5-5-5-5 codebook), `latent_srank`, `encoder_dormant_tau0.1` and
`latent_pred_cos_k1` (iqrl variants; better for the better arms), plus losses and throughput for every agent.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import pandas as pd
import yaml

STEPS = 500_000
#: The file at the root of a synthetic results folder, and its text.
MARKER = "SYNTHETIC"
MARKER_TEXT = "synthetic data: made-up returns (python -m analysis.runs.synthetic), no agent was trained\n"
EVAL_EVERY = 50_000
DIAG_EVERY = 25_000
TASKS = ("walker-walk", "cartpole-swingup", "cheetah-run", "hopper-hop", "dog-run")
ABLATION_TASKS = ("walker-walk", "cheetah-run")
# Final returns (at infinite steps) per agent and task; learning speed per task.
FINAL = {
    "iqrl": {
        "walker-walk": 950,
        "cartpole-swingup": 860,
        "cheetah-run": 780,
        "hopper-hop": 320,
        "dog-run": 250,
    },
    "tcrl": {
        "walker-walk": 900,
        "cartpole-swingup": 840,
        "cheetah-run": 650,
        "hopper-hop": 220,
        "dog-run": 140,
    },
    "td3": {
        "walker-walk": 820,
        "cartpole-swingup": 800,
        "cheetah-run": 560,
        "hopper-hop": 120,
        "dog-run": 40,
    },
}
TAU = {
    "walker-walk": 60_000,
    "cartpole-swingup": 40_000,
    "cheetah-run": 150_000,
    "hopper-hop": 250_000,
    "dog-run": 300_000,
}
HORIZON_FACTOR = {1: 0.75, 3: 0.92, 5: 1.0}
FSQ_FACTOR = {"8-8": 1.0, "5-5-5-5": 0.9}
PARTIAL = {  # (sweep, agent, task, seed) -> (state, last env step)
    ("main", "tcrl", "dog-run", 2): ("running", 300_000),
    ("main", "td3", "cheetah-run", 1): ("failed", 150_000),
}


def synthetic_return(agent: str, task: str, seed: int, step: int, factor: float = 1.0) -> float:
    """The synthetic evaluation return: factor * FINAL * (1 - exp(-step / TAU)) + 15 (seed - 1), in [0,
    1000]."""
    value = factor * FINAL[agent][task] * (1.0 - math.exp(-step / TAU[task])) + 15.0 * (seed - 1)
    return round(min(max(value, 0.0), 1000.0), 3)


def _agent_config(agent: str, horizon: int = 5, fsq_levels=(8, 8)) -> dict:
    if agent == "iqrl":
        return {
            "name": "iqrl",
            "horizon": horizon,
            "fsq_levels": list(fsq_levels),
            "use_fsq": True,
            "latent_dim": 512,
            "lr": 3e-4,
        }
    return {"name": agent, "lr": 3e-4}


def _write_run(
    path: Path,
    *,
    agent: str,
    task: str,
    seed: int,
    factor: float,
    sweep: str,
    variant: str,
    overrides: list[str],
    agent_cfg: dict | None,
    state: str,
    last: int,
    diag: dict,
) -> None:
    path.mkdir(parents=True, exist_ok=True)
    steps = list(range(0, last + 1, EVAL_EVERY))
    ev = pd.DataFrame(
        {
            "env_step": steps,
            "episode_return": [synthetic_return(agent, task, seed, s, factor) for s in steps],
            "episode_return_std": 10.0,
            "n_episodes": 10,
            "wall_time_s": [s / 500.0 for s in steps],
        }
    )
    ev.to_csv(path / "eval.csv", index=False)
    diag_steps = list(range(DIAG_EVERY, last + 1, DIAG_EVERY))
    tr = {
        "env_step": diag_steps,
        "q_loss": [1.0 / (1 + s / 1e5) for s in diag_steps],
        "actor_loss": [-s / 1e4 for s in diag_steps],
    }
    for name, fn in diag.items():
        tr[name] = [round(fn(s, seed), 3) for s in diag_steps]
    tr["env_steps_per_s"], tr["updates_per_s"] = 250.0, 125.0
    pd.DataFrame(tr).to_csv(path / "train.csv", index=False)
    status = {
        "state": state,
        "env_step": last if state != "done" else STEPS,
        "steps": STEPS,
        "error": "RuntimeError: NaN in q_loss" if state == "failed" else None,
        "updated_at": 1.7e9,
    }
    (path / "status.json").write_text(json.dumps(status))
    if agent_cfg is not None:
        cfg = {
            "agent": agent_cfg,
            "task": task,
            "seed": seed,
            "steps": STEPS,
            "sweep": sweep,
            "variant": variant,
            "overrides": overrides,
            "meta": {"synthetic": True},
        }
        (path / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))


def _rank(agent: str):
    if agent == "tcrl":
        return lambda s, seed: 100 + 300 * math.exp(-s / 200_000) + 2 * seed
    return lambda s, seed: 400 + 60 * (1 - math.exp(-s / 150_000)) + 3 * seed


def _codebook(levels: str):
    share = 0.95 if levels == "8-8" else 0.6
    mean = lambda s, seed: 100 * share * (1 - math.exp(-s / 100_000)) + seed  # noqa: E731
    return {
        "active_codebook_pct_mean": mean,
        "active_codebook_pct_min": lambda s, seed: max(mean(s, seed) - 8, 0.0),
        "active_codebook_pct_max": lambda s, seed: min(mean(s, seed) + 8, 100.0),
    }


def _representation(factor: float):
    """srank, dormant encoder share and 1-step prediction error (docs/diagnostics.md): a better arm
    (larger factor) keeps more rank, fewer dormant units and predicts better."""
    return {
        "latent_srank": lambda s, seed: 300 * factor + 40 * math.exp(-s / 100_000) + 2 * seed,
        "encoder_dormant_tau0.1": lambda s, seed: (1.1 - factor) * (1 - math.exp(-s / 200_000)) + 0.01 * seed,
        "latent_pred_cos_k1": lambda s, seed: 0.05 / factor + 0.2 * math.exp(-s / 50_000) + 0.002 * seed,
    }


def make_synthetic_results(root: str | Path) -> pd.DataFrame:
    """Write the synthetic results folder under root; return one row per run (run, sweep, agent, variant,
    task, seed, state, last_step, factor)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / MARKER).write_text(MARKER_TEXT)
    manifest = []

    def add(sweep, agent, task, variant, seed, factor, overrides, agent_cfg, diag):
        state, last = PARTIAL.get((sweep, agent, task, seed), ("done", STEPS))
        path = root / sweep / agent / task / variant / f"seed{seed}"
        _write_run(
            path,
            agent=agent,
            task=task,
            seed=seed,
            factor=factor,
            sweep=sweep,
            variant=variant,
            overrides=overrides,
            agent_cfg=agent_cfg,
            state=state,
            last=last,
            diag=diag,
        )
        manifest.append(
            {
                "run": path.relative_to(root).as_posix(),
                "sweep": sweep,
                "agent": agent,
                "variant": variant,
                "task": task,
                "seed": seed,
                "state": state,
                "last_step": last,
                "factor": factor,
            }
        )

    for agent in ("iqrl", "tcrl", "td3"):
        diag = {}
        if agent in ("iqrl", "tcrl"):
            diag["latent_rank"] = _rank(agent)
        if agent == "iqrl":
            diag.update(_codebook("8-8"), **_representation(1.0))
        cfg = None if agent == "td3" else _agent_config(agent)
        for task in TASKS:
            for seed in range(3):
                add("main", agent, task, "default", seed, 1.0, [], cfg, diag)
    for h, factor in HORIZON_FACTOR.items():
        diag = {"latent_rank": _rank("iqrl"), **_codebook("8-8"), **_representation(factor)}
        for task in ABLATION_TASKS:
            for seed in range(2):
                add(
                    "horizon",
                    "iqrl",
                    task,
                    f"horizon={h}",
                    seed,
                    factor,
                    [f"agent.horizon={h}"],
                    _agent_config("iqrl", horizon=h),
                    diag,
                )
    for levels, factor in FSQ_FACTOR.items():
        diag = {"latent_rank": _rank("iqrl"), **_codebook(levels), **_representation(factor)}
        for task in ABLATION_TASKS:
            for seed in range(2):
                add("fsq", "iqrl", task, f"fsq_levels={levels}", seed, factor, [], None, diag)
    return pd.DataFrame(manifest)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """An argument parser, so that `--help` (or any option) is help or an error, never a folder name."""
    p = argparse.ArgumentParser(
        prog="python -m analysis.runs.synthetic",
        description="Write a synthetic results folder with known returns (for tests and make figures demos).",
    )
    p.add_argument("out_dir", metavar="OUT_DIR", help="a new or empty folder to write the runs into")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    root = Path(parse_args(argv).out_dir)
    if root.exists() and any(root.iterdir()):
        print(f"error: {root} exists and is not empty; choose a new folder", file=sys.stderr)
        return 2
    manifest = make_synthetic_results(root)
    print(
        f"wrote {len(manifest)} synthetic runs to {root} "
        f"({(manifest['state'] != 'done').sum()} not done); try: make figures RESULTS={root}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
