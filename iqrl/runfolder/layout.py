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
CHECKPOINT = Path("checkpoint") / "ckpt.pt"
#: The files of a run folder that hold its results (the checkpoint aside): what analysis/ reads, and all a
#: copy of a run needs to load as one (a GPU report commits its learning runs with these alone).
RESULT_FILES = ("config.yaml", "eval.csv", "train.csv", "status.json")
LOCK = ".lock"


def method_label(agent: str, variant: str) -> str:
    """The method a run folder belongs to: the agent name for variant `default`, `agent/variant` otherwise
    (the figures' legends and the W&B group)."""
    return agent if variant in ("", "default") else f"{agent}/{variant}"
