"""Helpers for the analysis tests: write tiny run folders with hand-chosen returns."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import yaml

FIGURES_MD = Path(__file__).resolve().parents[1] / "docs" / "figures.md"


def documented_outputs() -> list[str]:
    """The file names of docs/figures.md's table of `make figures` outputs, as written there
    (`final_intervals_<S>`, `scores.csv/.md/.tex`, ...)."""
    table = FIGURES_MD.read_text().split("**Outputs**", 1)[1].split("\n\n", 2)[1]
    return [name for row in table.splitlines()[2:] for name in re.findall(r"`([^`]+)`", row.split(" | ")[0])]


def undocumented(names) -> set[str]:
    """The output names (a figure's without its extension, other files' with it) that no name of
    docs/figures.md's table matches (a `<...>` there stands for any part of a name)."""
    patterns = []
    for name in documented_outputs():
        stem, *exts = name.split("/.")
        pattern = re.sub(r"<[^>]+>", ".+", re.escape(stem).replace("\\<", "<").replace("\\>", ">"))
        if exts:  # `scores.csv/.md/.tex`: the stem with each extension
            base, _, first = pattern.rpartition("\\.")
            pattern = f"{base}\\.({'|'.join([first, *exts])})"
        patterns.append(re.compile(pattern))
    return {n for n in names if not any(p.fullmatch(n) for p in patterns)}


def write_run(
    path: Path,
    evals: list[tuple[int, float]],
    *,
    state: str = "done",
    config: dict | None = None,
    train: dict | None = None,
    steps: int | None = None,
) -> Path:
    """A run folder with eval.csv rows (env_step, episode_return), status.json, optional config/train."""
    path.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(
        {
            "env_step": [s for s, _ in evals],
            "episode_return": [r for _, r in evals],
            "episode_return_std": 0.0,
            "n_episodes": 1,
            "wall_time_s": 1.0,
        }
    ).to_csv(path / "eval.csv", index=False)
    last = max(s for s, _ in evals) if evals else 0
    (path / "status.json").write_text(
        json.dumps(
            {"state": state, "env_step": last, "steps": steps or last, "error": None, "updated_at": 0.0}
        )
    )
    if config is not None:
        (path / "config.yaml").write_text(yaml.safe_dump(config))
    if train is not None:
        pd.DataFrame(train).to_csv(path / "train.csv", index=False)
    return path


SIMBA_HEADER = ",exp_name,env_name,seed,metric,env_step,value\n"


def write_simba(root: Path, name: str, rows: list[tuple]) -> Path:
    """A results file in the layout SimbaV2 released its curves in (and DR.Q after it): rows (exp_name,
    env_name, seed, metric, env_step, value), pandas' index first."""
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(SIMBA_HEADER + "".join(f"{i},{','.join(map(str, r))}\n" for i, r in enumerate(rows)))
    return path


# Hand-computable final scores: 3 tasks x 4 seeds of method "a" at env step 100.
#   sorted: 0 100 200 | 300 400 500 600 700 800 | 900 1000 1000  -> IQM = 550
#   task means: 300, 450, 875 -> mean 541.67, median 450; optimality gap = 1000 - 541.67
HAND_SCORES = {
    "walker-walk": [0, 100, 200, 900],
    "cheetah-run": [300, 400, 500, 600],
    "dog-run": [700, 800, 1000, 1000],
}


def write_hand_results(root: Path) -> Path:
    """Method `a` (layout only, no config) with HAND_SCORES at step 100 (and 0 at step 0)."""
    for task, values in HAND_SCORES.items():
        for seed, value in enumerate(values):
            write_run(root / "s" / "a" / task / "default" / f"seed{seed}", [(0, 0.0), (100, float(value))])
    return root
