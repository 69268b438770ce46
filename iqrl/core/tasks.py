"""Task names, task groups and the evaluation env's seed: what sweeps and analysis need about tasks.

Light on purpose: `slurm/` (on login nodes) and `analysis/` import it without dm_control or torch, so it
imports nothing. The environments themselves are iqrl/core/envs.py.
"""

from __future__ import annotations

# Task groups (the iQRL code's cfgs/env/{easy,medium,hard}.yaml; cartpole-swingup, which the final code lacks,
# sits with the easy tasks as in the earlier code). Exploration-noise decay lengths per group live in the
# agents' task YAML.
TASK_GROUPS: dict[str, list[str]] = {
    "easy": [
        "cartpole-balance",
        "cartpole-swingup",
        "ball_in_cup-catch",
        "finger-spin",
        "hopper-stand",
        "pendulum-swingup",
        "walker-stand",
        "walker-walk",
    ],
    "medium": [
        "acrobot-swingup",
        "cheetah-run",
        "finger-turn_easy",
        "finger-turn_hard",
        "hopper-hop",
        "quadruped-run",
        "quadruped-walk",
        "walker-run",
        "fish-swim",
        "fish-upright",
        "reacher-easy",
        "reacher-hard",
    ],
    "hard": [
        "dog-run",
        "dog-stand",
        "dog-trot",
        "dog-walk",
        "humanoid-run",
        "humanoid-stand",
        "humanoid-walk",
        "cartpole-swingup_sparse",
    ],
}

# eval env seed = train seed + this (agent.official_shared_eval_seed: + 0, as the official code)
EVAL_SEED_OFFSET = 10_000


def eval_seed(seed: int, shared: bool = False) -> int:
    """The evaluation env's seed: train seed + EVAL_SEED_OFFSET, or the train seed itself when `shared`
    (`agent.official_shared_eval_seed`, docs/faithfulness.md IQ-10)."""
    return seed if shared else seed + EVAL_SEED_OFFSET


def task_list(task: str | list[str]) -> list[str]:
    """The tasks of a run's `task` key: one name, or the list of a multi-task run."""
    return [task] if isinstance(task, str) else list(task)


def task_label(task: str | list[str]) -> str:
    """A run's task(s) as one name for folders and logs: the tasks of a multi-task run joined by '+'
    (`walker-stand+walker-walk`)."""
    return "+".join(task_list(task))


def label_tasks(label: str) -> str | list[str]:
    """The `task` value a label of `task_label` stands for: one name, or the list of a multi-task run."""
    tasks = label.split("+")
    return tasks[0] if len(tasks) == 1 else tasks


def task_group(task: str) -> str | None:
    for group, tasks in TASK_GROUPS.items():
        if task in tasks:
            return group
    return None
