"""The actor and critic of a multi-task run: conditioned on a learned task embedding, or kept per task.

A multi-task run (a task list, docs/transfer.md) trains one representation on every task; only the learner
on top of it knows the task (`agent.task_heads`):

* `embedding` (TD-MPC2's approach, Hansen et al. 2024, arXiv 2310.16828: learnable task embeddings
  concatenated to the inputs of its networks): one actor and one critic ensemble read [x, e_task], e_task
  a learned vector of `task_dim` per task (`TaskEmbedding`). As in TD-MPC2's code (nicklashansen/tdmpc2
  at e9f5932, `tdmpc2/common/world_model.py` l. 21 and `tdmpc2/tdmpc2.py` l. 22-31) the embedding has
  norm at most 1, the critic's loss trains it (TD-MPC2 steps it with its model's optimizer, which holds
  the critics; the actor's optimizer does not hold it), the target critics read the online embedding
  (there is no target copy), and it starts uniform in [-0.02, 0.02] (`tdmpc2/common/init.py` l. 10-11).
  TD-MPC2's `nn.Embedding(max_norm=1)` rescales the stored rows in place when they are looked up; here
  the looked-up row is rescaled in the forward pass, e / max(1, |e|): the same values, as a pure function
  of the weights.
* `separate`: one learner (actor, critic ensemble, targets, optimizers) per task (`PerTaskLearners`), each
  stepped on its task's windows of the batch.

The task travels with the learner's input: x [..., d + 1] holds the task index in its last column
(`with_task`), so that every learner function keeps its signature (x, ...). It imports the learners'
pieces and the replay's batch layout, never an agent.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from iqrl.core.checks import require
from iqrl.core.replay_multitask import task_shares
from iqrl.core.update import Updater
from iqrl.learners.critics import CriticConfig, CriticEnsembleLearner

TASK_HEADS = ("embedding", "separate")


@dataclass
class TaskConditioningConfig:
    """Keys of a multi-task run's learner (inert with one task), a part of an agent config (`compose`)."""

    task_heads: str = "embedding"  # embedding (one actor-critic, a learned task embedding) | separate
    task_dim: int = 96  # width of the task embedding (TD-MPC2's config.yaml `task_dim: 96`)

    def validate(self) -> None:
        require(
            [
                (
                    self.task_heads in TASK_HEADS,
                    f"task_heads must be one of {', '.join(TASK_HEADS)}, got {self.task_heads!r}",
                ),
                (self.task_dim >= 1, f"task_dim must be >= 1, got {self.task_dim}"),
            ]
        )


def with_task(x: Tensor, task: Tensor | int) -> Tensor:
    """x [..., d] with the task index (a tensor [...], or one int for all rows) as its last column."""
    column = torch.as_tensor(task, dtype=x.dtype, device=x.device).expand(x.shape[:-1])
    return torch.cat([x, column[..., None]], -1)


def split_task(x: Tensor) -> tuple[Tensor, Tensor]:
    """(x [..., d], task index [...]) of an input made by `with_task`."""
    return x[..., :-1], x[..., -1].long()


class TaskEmbedding(nn.Module):
    """[x, task] -> [x, e_task] [..., d + task_dim]: the learner's `encoder` (the interface of
    iqrl/learners/encoders.py `CriticEncoder`), trained by the critic loss only; see the module docstring."""

    def __init__(self, in_dim: int, num_tasks: int, task_dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_tasks, task_dim).uniform_(-0.02, 0.02))
        self.feature_dim = in_dim + task_dim

    def forward(self, x: Tensor) -> Tensor:
        """The critic's input, with gradients to the embedding."""
        x, task = split_task(x)
        e = self.weight[task]
        e = e / e.norm(dim=-1, keepdim=True).clamp(min=1.0)  # max norm 1 (TD-MPC2)
        return torch.cat([x, e.to(x.dtype)], -1)

    @torch.no_grad()
    def target_features(self, x: Tensor) -> Tensor:
        return self(x)

    @torch.no_grad()
    def actor_features(self, x: Tensor) -> Tensor:
        return self(x)

    def actor_inputs(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The actor's loss reads the embedding but does not train it."""
        y = self.actor_features(x)
        return y, y

    def critic_parameters(self) -> list[nn.Parameter]:
        return [self.weight]

    def actor_parameters(self) -> list[nn.Parameter]:
        return []

    def update_target(self, u: Updater, tau: float) -> None:
        """No target copy: the target critics read the online embedding."""


class PerTaskLearners(nn.Module):
    """One learner per task (`task_heads=separate`) behind one learner's interface, on inputs made by
    `with_task`. An update splits the batch into its tasks' blocks, the layout of `MultiTaskReplay.sample`
    (`task_shares` windows per task, task 0 first), and steps each task's learner on its block in task order;
    the metrics are the means over tasks. Acting runs every task's actor on every row and keeps each row's
    own task's action (no host read of the task index; each learner makes its draws)."""

    def __init__(self, learners: list[CriticEnsembleLearner]):
        super().__init__()
        self.learners = nn.ModuleList(learners)

    @property
    def episodes_trained(self) -> int:
        return self.learners[0].episodes_trained

    @episodes_trained.setter
    def episodes_trained(self, n: int) -> None:  # every task's exploration schedule counts the run's episodes
        for learner in self.learners:
            learner.episodes_trained = n

    @property
    def expl_sigma(self) -> float | None:
        return self.learners[0].expl_sigma

    def act_draws(self, batch: tuple[int, ...], explore: bool) -> dict[str, list[dict[str, Tensor]]]:
        """Every task's learner's draws of `act`, task by task."""
        return {"per_task": [learner.act_draws(batch, explore) for learner in self.learners]}

    def act(self, x: Tensor, *, per_task: list[dict[str, Tensor]]) -> Tensor:
        x, task = split_task(x)
        actions = torch.stack(
            [learner.act(x, **d) for learner, d in zip(self.learners, per_task)]
        )  # [T, ..., A]
        index = task[None, ..., None].expand(1, *actions.shape[1:])
        return actions.gather(0, index).squeeze(0)

    def probe_q(self, x: Tensor, a: Tensor) -> Tensor:
        """Q [E, B] of each row's own task's critics (every task's run on every row, as `act`)."""
        x, task = split_task(x)
        q = torch.stack([learner.probe_q(x, a) for learner in self.learners])  # [T, E, B]
        return q.gather(0, task[None, None].expand(1, *q.shape[1:])).squeeze(0)

    def update(
        self, u: Updater, x: Tensor, action: Tensor, ret: Tensor, discount: Tensor, x_next: Tensor
    ) -> dict:
        shares = task_shares(len(x), len(self.learners))
        blocks = [
            torch.split(t, shares) for t in (split_task(x)[0], action, ret, discount, split_task(x_next)[0])
        ]
        per_task = [learner.update(u, *parts) for learner, parts in zip(self.learners, zip(*blocks))]
        return {k: torch.stack([torch.as_tensor(m[k]) for m in per_task]).mean() for k in per_task[0]}

    @property
    def extra(self) -> _PerTaskCounters:
        return _PerTaskCounters(self)


class _PerTaskCounters:
    """Every task learner's counters and optimizer states, with the state_dict interface of a module."""

    def __init__(self, owner: PerTaskLearners):
        self.owner = owner

    def state_dict(self) -> dict:
        return {"tasks": [learner.extra_state() for learner in self.owner.learners]}

    def load_state_dict(self, state: dict) -> None:
        for learner, s in zip(self.owner.learners, state["tasks"], strict=True):
            learner.load_extra_state(s)


def make_learner(
    learner_cls: type[CriticEnsembleLearner],
    cfg: CriticConfig,
    tasks: TaskConditioningConfig,
    in_dim: int,
    act_dim: int,
    generator: torch.Generator,
    num_tasks: int = 1,
) -> CriticEnsembleLearner | PerTaskLearners:
    """The learner on inputs of width in_dim: plain with one task; with several, on inputs made by
    `with_task`, conditioned on a task embedding or kept per task (`tasks.task_heads`)."""
    if num_tasks == 1:
        return learner_cls(cfg, in_dim, act_dim, generator)
    if tasks.task_heads == "embedding":
        return learner_cls(cfg, in_dim, act_dim, generator, TaskEmbedding(in_dim, num_tasks, tasks.task_dim))
    return PerTaskLearners([learner_cls(cfg, in_dim, act_dim, generator) for _ in range(num_tasks)])
