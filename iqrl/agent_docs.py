"""The lists of agents and their defaults in README.md and docs/, written from the registry: `make switches`.

A page holds a generated part between two markers, `<!-- agents:NAME -->` and `<!-- /agents -->`, inline (a
list of agents inside a sentence or a table cell) or as a block of lines (a table); NAME is one of `PARTS`,
each a function of the registered agents. Nothing else of a page is touched, so the prose around a list stays
hand-written while the list cannot go stale: a new agent registered without `make switches` fails
tests/test_agent_docs.py, naming the pages to write again.

    python -m iqrl.agent_docs                # rewrite the generated parts of README.md and docs/*.md
    python -m iqrl.agent_docs --check        # exit 1, naming the pages that differ from what it writes
    python -m iqrl.agent_docs --root DIR     # the pages under DIR (a copy of the repository's) instead
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import fields
from functools import cache
from pathlib import Path

from iqrl.config.run import DEFAULT_IMAGE_SIZE
from iqrl.config.validate import IMAGE_SIZES, pixel_sizes
from iqrl.core import registry
from iqrl.core.schedule import SeedPhase
from iqrl.core.spaces import DISCRETE, ActionSpec
from iqrl.loop.memory import agent_on_meta

ROOT = Path(__file__).resolve().parents[1]
MARKED = re.compile(r"(<!-- agents:(?P<name>[\w-]+) -->)(?P<body>.*?)(<!-- /agents -->)", re.S)


def names(agents: list[str]) -> str:
    """`a`, `b` and `c`: agent names as a sentence lists them."""
    quoted = [f"`{a}`" for a in agents]
    return " and ".join(quoted) if len(quoted) < 3 else ", ".join(quoted[:-1]) + " and " + quoted[-1]


def learner(agent: str) -> str | None:
    """The shared learner of iqrl/learners/ the agent is built on (TD3's, SAC's), by its config's part."""
    part = registry.config_class(agent).PARTS.get("learner")
    bases = {c.__name__ for c in getattr(part, "__mro__", ())}
    return "td3" if "TD3LearnerConfig" in bases else "sac" if "SACLearnerConfig" in bases else None


@cache
def built(agent: str):
    """The agent at its preset, its large tensors on the meta device (iqrl.loop.memory): what its spec says
    (default rate of updates, replay capacity), built from an 8-wide state (frames where it takes nothing
    else) in 6 actions of the first kind it acts in."""
    cls = registry.agent_class(agent)
    cfg = registry.config_class(agent)(name=agent, **registry.get_entry(agent).preset)
    act = ActionSpec.discrete(6) if cls.ACTION_SPACES[0] == DISCRETE else 6
    obs = (3, DEFAULT_IMAGE_SIZE, DEFAULT_IMAGE_SIZE) if cls.PIXELS_ONLY else 8
    return agent_on_meta(cfg, obs, act)


def seed_phase(phase: SeedPhase) -> str:
    """A seed phase in its code's units, with its source."""
    parts = [f"{n:,} {unit}" for n, unit in zip(
        (phase.agent_steps, phase.episodes, phase.env_steps), ("agent steps", "episodes", "env steps")
    ) if n]  # fmt: skip
    if phase.env_agent_steps:
        parts[0] = f"{parts[0]} + {phase.env_agent_steps:,} per training env"
    length = parts[0] if len(parts) == 1 else f"max({', '.join(parts)})"
    return f"{length} ({phase.source})"


def updates(agent: str) -> str:
    """The agent's default rate of gradient updates: per env step, or its own ratio per agent step."""
    cfg = registry.config_class(agent)(name=agent, **registry.get_entry(agent).preset)
    key = type(cfg).UTD_KEY
    if key is None:
        return f"{built(agent).spec.updates_per_step:g} per env step"
    states, pixels = cfg.updates_per_agent_step(False), cfg.updates_per_agent_step(True)
    rate = f"{states:g} per agent step" + (f" ({pixels:g} from pixels)" if pixels != states else "")
    return f"{rate}, `agent.{key}`"


def observations(agent: str, sizes: dict[str, int]) -> str:
    """What the agent sees: states, pixels (from the smallest frames it takes, in its code's frames)."""
    cls, own = registry.agent_class(agent), registry.config_class(agent).PIXEL_FRAMES
    if agent not in sizes:
        return "states"
    pixels = "pixels" + (f" (image_size >= {sizes[agent]})" if sizes[agent] > IMAGE_SIZES.start else "")
    frames = ", ".join(f"{k} {v}" for k, v in own.items())
    pixels += f"; its frames: {frames}" if frames else ""
    return pixels if cls.PIXELS_ONLY else f"states, {pixels}"


def defaults_table(agents: list[str]) -> str:
    """Each agent's defaults of the run keys it sets otherwise than the harness, and what it works with."""
    sizes = pixel_sizes()
    rows = [
        "| agent | acts in | sees | seed phase (`seed_steps`) | gradient updates (`updates_per_step`) | "
        "replay (`replay_capacity`) | evaluates (`eval_beside`) | task lists | Atari (`protocol_changes`) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for a in agents:
        cls, config = registry.agent_class(a), registry.config_class(a)
        capacity = built(a).spec.replay_capacity
        changes = ", ".join(
            f"{k}: {str(v).lower() if isinstance(v, bool) else v}" for k, v in config.PROTOCOL_CHANGES.items()
        )
        cells = [
            f"`{a}`",
            ", ".join({"box": "boxes"}.get(k, k) for k in cls.ACTION_SPACES),
            observations(a, sizes),
            seed_phase(registry.seed_phase(a)) + "; acts with its policy" * built(a).spec.warmup_with_policy,
            updates(a),
            f"{capacity:,}" if capacity else "unbounded",
            "beside training" if cls.evaluates_beside else "in line",
            "yes" if cls.MULTITASK else "",
            f"`{{{changes}}}`" if changes else "",
        ]
        rows.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n\n" + "\n".join(rows) + "\n\n"


def parts_table(agents: list[str]) -> str:
    """Each agent's parts for transfer between runs (Agent.TRANSFER_PARTS): the attribute paths of each part's
    objects and the keys that must agree, one row per set of agents with the same parts."""
    roles = ("representation", "actor", "critic", "optimizers")
    rows: dict[tuple, list[str]] = {}
    for a in agents:
        parts = registry.agent_class(a).TRANSFER_PARTS
        cells = []
        for role in roles:
            part = parts.get(role)
            agree = f" (must agree: {', '.join(f'`{k}`' for k in part.keys)})" if part and part.keys else ""
            cells.append(", ".join(f"`{p}`" for p in part.paths) + agree if part else "none")
        rows.setdefault(tuple(cells), []).append(a)
    lines = ["| agent | " + " | ".join(roles) + " |", "|---" * (len(roles) + 1) + "|"]
    lines += [f"| {names(group)} | " + " | ".join(cells) + " |" for cells, group in rows.items()]
    return "\n\n" + "\n".join(lines) + "\n\n"


#: The generated parts, by marker name: a function of the registered agents (sorted) to the text between the
#: markers.
PARTS = {
    "defaults": defaults_table,
    "transfer-parts": parts_table,
    "count": lambda agents: str(len(agents)),
    "pixels": lambda agents: names([a for a in pixel_sizes() if a in agents]),
    "no-pixels": lambda agents: names([a for a in agents if not registry.agent_class(a).PIXELS]),
    "discrete": lambda agents: names(
        [a for a in agents if DISCRETE in registry.agent_class(a).ACTION_SPACES]
    ),
    "boxes-only": lambda agents: names(
        [a for a in agents if registry.agent_class(a).ACTION_SPACES == ("box",)]
    ),
    "multitask": lambda agents: names([a for a in agents if registry.agent_class(a).MULTITASK]),
    "in-line": lambda agents: names([a for a in agents if not registry.agent_class(a).evaluates_beside]),
    "td3-learner": lambda agents: names([a for a in agents if learner(a) == "td3"]),
    "sac-learner": lambda agents: names([a for a in agents if learner(a) == "sac"]),
    "network": lambda agents: names(
        [a for a in agents if "network" in {f.name for f in fields(registry.config_class(a))}]
    ),
}


def pages(root: Path) -> list[Path]:
    """The pages that may hold generated parts: README.md and docs/*.md under `root`."""
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def written(text: str, agents: list[str], where: str = "") -> str:
    """`text` with each generated part written for `agents`; ValueError (one line) for an unknown NAME."""

    def part(m: re.Match) -> str:
        if m["name"] not in PARTS:
            raise ValueError(f"{where}: unknown generated part {m['name']!r}; the parts: {', '.join(PARTS)}")
        return m[1] + PARTS[m["name"]](agents) + m[4]

    return MARKED.sub(part, text)


def stale(root: Path, agents: list[str]) -> list[Path]:
    """The pages under `root` whose generated parts differ from what `agents` give."""
    return [p for p in pages(root) if (t := p.read_text()) != written(t, agents, str(p))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m iqrl.agent_docs", description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when a page is not up to date")
    parser.add_argument("--root", type=Path, default=ROOT, help="the folder of README.md and docs/")
    args = parser.parse_args(argv)
    agents = registry.agent_names()
    try:
        old = stale(args.root, agents)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.check:
        if old:
            shown = ", ".join(str(p.relative_to(args.root)) for p in old)
            print(f"the agent lists of {shown} are not up to date: run `make switches`", file=sys.stderr)
            return 1
        return 0
    for p in old:
        p.write_text(written(p.read_text(), agents))
    return 0


if __name__ == "__main__":
    sys.exit(main())
