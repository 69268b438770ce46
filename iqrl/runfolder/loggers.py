"""Live tracking beside the CSV files: TensorBoard event files and Weights & Biases (top-level key `logger`).

eval.csv and train.csv stay the record (`make figures` reads only them); each tracker receives the same rows
as they are written, with the same keys (`eval/<column>`, `train/<column>`) at step = env_step. Both
trackers are the optional extra `pip install 'iqrl-bench[tracking]'`, imported only when a run asks for them.

A resumed run replays the episodes after its checkpoint, so rows already sent by the interrupted attempt
come again (with the same values): TensorBoard drops the old ones (purge_step: readers discard points at or
after it written before it), and W&B, which cannot take a step twice, is sent only rows beyond the last step
it got (kept with the run id in RUN/wandb.json; the run id is reused, so the resumed run continues it).
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
from pathlib import Path

from iqrl.envs.tasks import task_label
from iqrl.runfolder.atomic import atomic_write_text
from iqrl.runfolder.layout import method_label

LOGGERS = ("csv", "tensorboard", "wandb")
_PACKAGE = {"tensorboard": "tensorboard", "wandb": "wandb"}
WANDB_STATE = "wandb.json"
WANDB_PROJECT = "iqrl-bench"


def missing_packages(names: list[str]) -> list[str]:
    """The trackers in `names` whose package is not installed."""
    return [
        n for n in dict.fromkeys(names) if n in _PACKAGE and importlib.util.find_spec(_PACKAGE[n]) is None
    ]


def _scalars(row: dict) -> dict[str, float]:
    return {
        k: float(v)
        for k, v in row.items()
        if k != "env_step" and isinstance(v, (int, float)) and not isinstance(v, bool)
    }


class TensorBoard:
    def __init__(self, run_dir: Path, first_new_step: int):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(Path(run_dir) / "tb"), purge_step=first_new_step)

    def log(self, kind: str, row: dict) -> None:
        for k, v in _scalars(row).items():
            self.writer.add_scalar(f"{kind}/{k}", v, row["env_step"])

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class WandB:
    """Offline unless WANDB_MODE says otherwise; project WANDB_PROJECT (default iqrl-bench), group
    <sweep>/<method> (the harness's method label: agent, or agent/variant), name <method> <task> seed<k>."""

    def __init__(self, run_dir: Path, config: dict):
        os.environ.setdefault("WANDB_MODE", "offline")
        import wandb

        self.path = Path(run_dir) / WANDB_STATE
        self.state = (
            json.loads(self.path.read_text())
            if self.path.exists()
            else {"id": secrets.token_hex(6), "last_step": {}}
        )
        self._save()
        agent, variant, sweep = (
            config["agent"]["name"],
            config.get("variant", "default"),
            config.get("sweep", ""),
        )
        method = method_label(agent, variant)
        self.run = wandb.init(
            project=os.environ.get("WANDB_PROJECT", WANDB_PROJECT),
            dir=str(run_dir),
            id=self.state["id"],
            resume="allow",
            reinit="create_new",  # the K-seed mode (iqrl.multiseed): one W&B run per seed in a process
            group=f"{sweep}/{method}" if sweep else method,
            name=f"{method} {task_label(config['task'])} seed{config['seed']}",
            config=config,
            settings=wandb.Settings(console="off", quiet=True, x_disable_stats=True),
        )
        self.run.define_metric("env_step")
        self.run.define_metric("*", step_metric="env_step")

    def _save(self) -> None:
        atomic_write_text(self.path, json.dumps(self.state) + "\n")

    def log(self, kind: str, row: dict) -> None:
        step = row["env_step"]
        if step <= self.state["last_step"].get(kind, -1):
            return  # sent by the interrupted attempt before this resume
        self.run.log({"env_step": step, **{f"{kind}/{k}": v for k, v in _scalars(row).items()}})
        self.state["last_step"][kind] = step
        self._save()

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.run.finish()


class Trackers:
    """The run's trackers (none for `logger=[csv]`): log(kind, row), flush() before checkpoints, close()."""

    def __init__(
        self, names=(), run_dir: Path | None = None, config: dict | None = None, first_new_step: int = 0
    ):
        self.trackers = []
        if "tensorboard" in names:
            self.trackers.append(TensorBoard(run_dir, first_new_step))
        if "wandb" in names:
            self.trackers.append(WandB(run_dir, config))

    def log(self, kind: str, row: dict) -> None:
        for t in self.trackers:
            t.log(kind, row)

    def flush(self) -> None:
        for t in self.trackers:
            t.flush()

    def close(self) -> None:
        for t in self.trackers:
            t.close()
        self.trackers = []
