"""Task groups (easy / medium / hard) for the figures: the core's mapping, plus "other"; and DMC-hard (dog and
humanoid), a group that overlaps them."""

from __future__ import annotations

import pandas as pd

from iqrl.envs.tasks import DMC_HARD, TASK_GROUPS

#: Order in which groups are shown; unknown tasks fall into "other".
GROUP_ORDER: tuple[str, ...] = ("easy", "medium", "hard", "other")

_TASK_TO_GROUP: dict[str, str] = {t: g for g, tasks in TASK_GROUPS.items() for t in tasks}


def task_group(task: str) -> str:
    """'walker-walk' -> 'easy'; a task outside the mapping -> 'other'."""
    return _TASK_TO_GROUP.get(task, "other")


#: The overlapping group of DMC's dog and humanoid tasks (iqrl.envs.tasks.DMC_HARD), shown after GROUP_ORDER.
DMC_HARD_GROUP = "dmc-hard"


def panel_groups(evals: pd.DataFrame) -> list[str]:
    """The groups a figure shows a panel for: 'all'; each group of GROUP_ORDER when the runs span several;
    'dmc-hard' when some but not all of their tasks are dog or humanoid tasks."""
    present = [g for g in GROUP_ORDER if g in set(evals["group"])]
    hard = evals["task"].isin(DMC_HARD)
    return (
        ["all"]
        + (present if len(present) > 1 else [])
        + ([DMC_HARD_GROUP] if hard.any() and not hard.all() else [])
    )


def group_rows(evals: pd.DataFrame, group: str) -> pd.DataFrame:
    """The rows of `evals` in a panel group of `panel_groups`."""
    if group == "all":
        return evals
    if group == DMC_HARD_GROUP:
        return evals[evals["task"].isin(DMC_HARD)]
    return evals[evals["group"] == group]
