"""Task groups (easy / medium / hard) for the figures: the core's mapping, plus "other"."""

from __future__ import annotations

from iqrl.core.tasks import TASK_GROUPS

#: Order in which groups are shown; unknown tasks fall into "other".
GROUP_ORDER: tuple[str, ...] = ("easy", "medium", "hard", "other")

_TASK_TO_GROUP: dict[str, str] = {t: g for g, tasks in TASK_GROUPS.items() for t in tasks}


def task_group(task: str) -> str:
    """'walker-walk' -> 'easy'; a task outside the mapping -> 'other'."""
    return _TASK_TO_GROUP.get(task, "other")
