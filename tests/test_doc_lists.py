"""Hand-written lists of the docs that name what the code defines agree with it: docs/configuration.md's task
groups are iqrl.envs.tasks.TASK_GROUPS, group by group and in order."""

from __future__ import annotations

import re
from pathlib import Path

from iqrl.envs.tasks import TASK_GROUPS

ROOT = Path(__file__).resolve().parents[1]


def braces_opened(text: str) -> list[str]:
    """`dog-{run, stand}, cartpole-swingup_sparse` -> ['dog-run', 'dog-stand', 'cartpole-swingup_sparse']."""
    text = re.sub(
        r"([\w-]+)\{([^}]*)\}", lambda m: ", ".join(m[1] + s.strip() for s in m[2].split(",")), text
    )
    return [t.strip() for t in text.split(",") if t.strip()]


def documented_groups(page: str) -> dict[str, list[str]]:
    """The page's sentence `Task groups (...): easy = a, b; medium = ...; hard = ... .`, group by group."""
    text = " ".join((ROOT / page).read_text().split())
    sentence = re.search(r"Task groups \(`iqrl\.envs\.tasks\.TASK_GROUPS`[^)]*\): (.*?)\. ", text)[1]
    return {name: braces_opened(tasks) for name, tasks in re.findall(r"(\w+) = ([^;]*)", sentence)}


def test_the_task_groups_of_the_configuration_page_are_the_codes():
    assert documented_groups("docs/configuration.md") == TASK_GROUPS
    assert braces_opened("dog-{run, stand}, x-y") == ["dog-run", "dog-stand", "x-y"]


def test_the_readmes_fsq_example_keeps_its_tasks_default_latent_width():
    """README's run with four FSQ levels sets latent_dim so that latent_dim x len(fsq_levels) is the task's
    default width, as its sentence says."""
    from iqrl.config.build import build_config

    line = next(x for x in (ROOT / "README.md").read_text().splitlines() if "agent.fsq_levels=" in x)
    args = [a for a in line.split() if "=" in a and not a.startswith("out=")]
    example, default = (
        build_config(args),
        build_config([a for a in args if a.startswith(("agent=", "task="))]),
    )
    width = lambda c: c.agent.latent_dim * len(c.agent.fsq_levels)  # noqa: E731
    assert len(example.agent.fsq_levels) == 4 != len(default.agent.fsq_levels)
    assert width(example) == width(default)
