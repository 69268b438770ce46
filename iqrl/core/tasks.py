"""Task names, suites, task groups and the evaluation env's seed: what sweeps and analysis need about tasks.

A task names its suite (docs/suites.md): `walker-walk` (no prefix) is DeepMind Control, `gym:Hopper-v4` a
Gymnasium MuJoCo env, `metaworld:reach` a Meta-World task, `myosuite:myoHandReachFixed-v0` a MyoSuite env.

Light on purpose: `slurm/` (on login nodes) and `analysis/` import it without dm_control or torch, so it
imports nothing. The environments themselves are iqrl/core/envs.py.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Suite:
    """How the harness runs a suite's tasks by default (the run keys action_repeat and episode_length, in
    env steps) and what it needs installed. Sources per suite in docs/suites.md."""

    example: str  # a task name, for messages
    action_repeat: int
    episode_length: int  # env steps
    max_episode_length: int  # the longest episode the suite's envs allow, env steps
    package: str = ""  # the module its envs import ("" = a core dependency)
    extra: str = ""  # the pyproject extra that installs it
    success: bool = False  # whether its envs report success (eval.csv's `success` column)


SUITES: dict[str, Suite] = {
    "dmc": Suite("walker-walk", 2, 1000, 1000),
    # TD7 and MR.Q: action repeat 1, the 1000-step time limit of Gym's MuJoCo tasks
    "gym": Suite("gym:Hopper-v4", 1, 1000, 1000, "gymnasium", "gym"),
    # DC-MPC: action repeat 2, 100 agent steps (cfgs/env/metaworld.yaml, train.py max_steps at cc2a33a)
    "metaworld": Suite("metaworld:reach", 2, 200, 500, "metaworld", "metaworld", success=True),
    # DC-MPC: action repeat 1, 100 steps (cfgs/env/myosuite.yaml at cc2a33a)
    "myosuite": Suite("myosuite:myoHandReachFixed-v0", 1, 100, 1000, "myosuite", "myosuite", success=True),
}


def split_task(task: str) -> tuple[str, str]:
    """'gym:Hopper-v4' -> ('gym', 'Hopper-v4'); a name without a prefix is DMC: 'walker-walk' -> ('dmc',
    'walker-walk'). Raises ValueError naming the suites for an unknown prefix."""
    prefix, sep, name = task.partition(":")
    if not sep:
        return "dmc", task
    if prefix not in SUITES or prefix == "dmc" or not name:
        raise ValueError(f"unknown task {task!r}; a task is {suite_list()}")
    return prefix, name


def suite_list() -> str:
    """The task forms of every suite, for messages."""
    return "a DMC domain-task (walker-walk) or one of " + ", ".join(
        f"{k}:<name> ({s.example})" for k, s in SUITES.items() if k != "dmc"
    )


def suite_of(task: str) -> Suite:
    return SUITES[split_task(task)[0]]


#: DMC's dog and humanoid tasks, the "DMC-hard" set of BRO, SimbaV2 and MR.Q (dojeon-ai/SimbaV2 at 14fafb2,
#: `scale_rl/envs/dmc.py` DMC_HARD): a group of the figures beside TASK_GROUPS, whose "hard" group (the iQRL
#: code's) also holds cartpole-swingup_sparse.
DMC_HARD: tuple[str, ...] = (
    "dog-run",
    "dog-stand",
    "dog-trot",
    "dog-walk",
    "humanoid-run",
    "humanoid-stand",
    "humanoid-walk",
)

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
    "hard": [*DMC_HARD, "cartpole-swingup_sparse"],
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
    """The DMC group of a DMC task (TASK_GROUPS); the suite's name for a task of another suite (the agents'
    task files key suite-wide overrides by it)."""
    if ":" in task:
        return split_task(task)[0]
    for group, tasks in TASK_GROUPS.items():
        if task in tasks:
            return group
    return None
