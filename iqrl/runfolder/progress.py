"""A run's progress on the terminal: the lines the trainer prints (evaluations, warnings, the end).

It imports tqdm and the task names (iqrl/envs/tasks.py); the run config comes in as an argument (it prints
its agent, task, seed and steps).
"""

from __future__ import annotations

import sys
import threading

from tqdm import tqdm

from iqrl.envs.tasks import task_label

#: The seeds of a K-seed group print from their own threads: one whole line at a time (print() writes the line
#: and its newline apart, so two seeds' lines could run together).
_ONE_LINE = threading.Lock()


class Progress:
    """tqdm on an interactive terminal, plain log lines otherwise."""

    def __init__(self, cfg, start: int, resumed: bool):
        self.cfg = cfg
        self.prefix = f"[{cfg.agent.name} {task_label(cfg.task)} seed{cfg.seed}]"
        self.bar = None
        if sys.stderr.isatty():
            self.bar = tqdm(total=cfg.steps, initial=start, unit="step", desc=self.prefix, dynamic_ncols=True)
        if resumed:
            self.write(f"resumed from checkpoint at env_step {start}")

    def write(self, msg: str) -> None:
        line = f"{self.prefix} {msg}"
        if self.bar is not None:
            self.bar.write(line)
        else:
            with _ONE_LINE:
                sys.stdout.write(line + "\n")
                sys.stdout.flush()

    def log_eval(self, row: dict) -> None:
        task = f" {row['task']}" if "task" in row else ""  # a multi-task run's rows name their task
        self.write(
            f"eval{task} env_step {row['env_step']}: return {row['episode_return']:.1f} "
            f"± {row['episode_return_std']:.1f} ({row['n_episodes']} episodes)"
        )

    def update(self, env_step: int, ep_return: float) -> None:
        if self.bar is not None:
            self.bar.n = env_step
            self.bar.set_postfix(train_return=f"{ep_return:.1f}", refresh=False)
            self.bar.refresh()

    def close(self, msg: str) -> None:
        self.write(msg)
        if self.bar is not None:
            self.bar.close()
