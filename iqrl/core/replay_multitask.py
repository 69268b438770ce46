"""A multi-task run's replay: one `SequenceReplay` per task and batches that hold every task in a fixed
proportion (docs/transfer.md)."""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from iqrl.core.replay import SequenceBatch, SequenceReplay


def task_shares(batch_size: int, num_tasks: int) -> list[int]:
    """Windows per task in a multi-task batch: equal shares, the first batch_size mod num_tasks tasks one
    more."""
    share, extra = divmod(batch_size, num_tasks)
    return [share + (i < extra) for i in range(num_tasks)]


class MultiTaskReplay:
    """One `SequenceReplay` per task of a multi-task run (docs/transfer.md).

    Episodes go into the replay of the current `task` (the trainer sets it before each episode). `sample(B)`
    draws `task_shares(B, T)` windows from each task's replay, task 0's first, and concatenates them with the
    task index of each window in `SequenceBatch.task`: every update sees every task in a fixed proportion,
    however unequal the replays' sizes. Each replay samples with its own generator (checkpointed with it).
    """

    def __init__(self, replays: list[SequenceReplay]):
        self.replays = replays
        self.task = 0

    @property
    def size(self) -> int:
        return sum(r.size for r in self.replays)

    def start_episode(self, obs) -> None:
        self.replays[self.task].start_episode(obs)

    def add(self, action, reward: float, next_obs, terminated: bool, truncated: bool) -> None:
        self.replays[self.task].add(action, reward, next_obs, terminated, truncated)

    def holds_window(self) -> bool:
        return all(r.holds_window() for r in self.replays)

    def sample(self, batch_size: int, seq_len: int | None = None) -> SequenceBatch:
        shares = task_shares(batch_size, len(self.replays))
        parts = [r.sample(n, seq_len) for r, n in zip(self.replays, shares) if n]
        fields = [f.name for f in dataclasses.fields(SequenceBatch) if f.name != "task"]
        fields = [k for k in fields if getattr(parts[0], k) is not None]
        task = torch.tensor([i for i, n in enumerate(shares) for _ in range(n)])  # built on the host: no sync
        return SequenceBatch(
            **{k: torch.cat([getattr(p, k) for p in parts]) for k in fields},
            task=task.to(parts[0].obs.device),
        )

    def sample_obs(self, n: int, generator: torch.Generator | None = None, replace: bool = True) -> Tensor:
        """n observations, `task_shares(n, T)` from each task's replay (diagnostics)."""
        shares = task_shares(n, len(self.replays))
        return torch.cat([r.sample_obs(k, generator, replace) for r, k in zip(self.replays, shares) if k])

    def state_dict(self) -> dict:
        return {"tasks": [r.state_dict() for r in self.replays], "task": self.task}

    def load_state_dict(self, state: dict) -> None:
        for replay, s in zip(self.replays, state["tasks"], strict=True):
            replay.load_state_dict(s)
        self.task = state["task"]
