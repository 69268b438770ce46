"""A run folder's names: its files (config.yaml, eval.csv, train.csv, status.json, checkpoint/ckpt.pt, the
lock), the columns of eval.csv and train.csv that the trainer, slurm/ and analysis/ share, and a run's method
label (docs/run-folder.md). It imports nothing of the harness.
"""

from __future__ import annotations

from pathlib import Path

EVAL_COLUMNS = ["env_step", "episode_return", "episode_return_std", "n_episodes", "wall_time_s"]
#: Where a run's wall time goes (iqrl/loop/timing.py): train.csv's columns time_<phase>_s, status.json's
#: time_split.
TIME_SPLIT_PHASES = ("collect", "act", "update", "evaluate", "write")
#: The columns of eval.csv and train.csv that measure time, not learning: all that may differ between two runs
#: of one config (a resumed run and one never interrupted, two evaluation cadences).
TIME_COLUMNS = frozenset(
    {"wall_time_s", "env_steps_per_s", "updates_per_s", *(f"time_{p}_s" for p in TIME_SPLIT_PHASES)}
)
# eval.csv's last column on suites that define success (Meta-World, MyoSuite): the fraction of evaluation
# episodes that succeeded; absent on DMC and Gym, and in run folders written before the suites.
SUCCESS_COLUMN = "success"
#: eval.csv's Q-bias columns (iqrl/core/diagnostics.py, q_bias), written with the diagnostics by agents with
#: a critic: the bias's mean and std over the evaluation's scored steps, normalised by |mean G_t| (REDQ), the
#: mean Q and return G_t there, and their count (alone where no step is scored).
Q_BIAS_COLUMNS = (
    "q_bias_mean",
    "q_bias_std",
    "q_bias_norm_mean",
    "q_bias_norm_std",
    "q_mean",
    "q_return_mean",
    "q_bias_steps",
)
CHECKPOINT = Path("checkpoint") / "ckpt.pt"
#: The files of a run folder that hold its results (the checkpoint aside): what analysis/ reads, and all a
#: copy of a run needs to load as one (a GPU report commits its learning runs with these alone).
RESULT_FILES = ("config.yaml", "eval.csv", "train.csv", "status.json")
LOCK = ".lock"


def method_label(agent: str, variant: str) -> str:
    """The method a run folder belongs to: the agent name for variant `default`, `agent/variant` otherwise
    (the figures' legends and the W&B group)."""
    return agent if variant in ("", "default") else f"{agent}/{variant}"


def eval_columns(rows: list[dict]) -> list[str]:
    """eval.csv's columns: EVAL_COLUMNS, then success, all the Q-bias's (even where no step was scored) and
    task where the rows have them."""
    groups = ([SUCCESS_COLUMN], list(Q_BIAS_COLUMNS), ["task"])
    return EVAL_COLUMNS + [c for g in groups if any(g[-1] in r for r in rows) for c in g]
