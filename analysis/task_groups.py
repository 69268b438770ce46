"""Task groups of the iQRL spec (easy / medium / hard), as data.

The core package owns the mapping (`iqrl.envs.TASK_GROUPS`); it is imported from there when that
module exists, so there is one source of truth. The literal copy below is the fallback for checkouts
without `iqrl.envs` (e.g. this branch before the core code is merged); `tests/test_analysis_load.py`
checks that the two agree whenever both exist.
"""

from __future__ import annotations

_SPEC_TASK_GROUPS: dict[str, list[str]] = {
    "easy": [
        "cartpole-balance", "ball_in_cup-catch", "finger-spin", "hopper-stand", "pendulum-swingup",
        "walker-stand", "walker-walk", "cartpole-swingup",
    ],
    "medium": [
        "acrobot-swingup", "cheetah-run", "finger-turn_easy", "finger-turn_hard", "hopper-hop",
        "quadruped-run", "quadruped-walk", "walker-run", "fish-swim", "fish-upright", "reacher-easy",
        "reacher-hard",
    ],
    "hard": [
        "dog-run", "dog-stand", "dog-trot", "dog-walk", "humanoid-run", "humanoid-stand",
        "humanoid-walk", "cartpole-swingup_sparse",
    ],
}

try:  # one source of truth once the core package provides it
    from iqrl.envs import TASK_GROUPS as _CORE_TASK_GROUPS
except ImportError:
    _CORE_TASK_GROUPS = None

TASK_GROUPS: dict[str, list[str]] = dict(_CORE_TASK_GROUPS or _SPEC_TASK_GROUPS)

#: Order in which groups are shown; unknown tasks fall into "other".
GROUP_ORDER: tuple[str, ...] = ("easy", "medium", "hard", "other")

_TASK_TO_GROUP: dict[str, str] = {t: g for g, tasks in TASK_GROUPS.items() for t in tasks}


def task_group(task: str) -> str:
    """'walker-walk' -> 'easy'; a task outside the mapping -> 'other'."""
    return _TASK_TO_GROUP.get(task, "other")
