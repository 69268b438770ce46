"""Sweep files: parse and check them, and expand them into runs.

A sweep file (``ablations/*.yaml``)::

    name: horizon               # optional; defaults to the file name. Runs land in RESULTS/<name>/...
    agents: [iqrl]              # agent registry names
    tasks: [easy, cheetah-run]  # task names and/or the groups easy / medium / hard and the task lists
                                # atari26 / atari57 (iqrl.envs.tasks.TASK_LISTS); a list entry,
                                # [walker-stand, walker-walk], is one multi-task run (docs/transfer.md)
    seeds: 5                    # a count (seeds 0..4) or an explicit list [0, 3, 7]
    steps: {easy: 1000000, medium: 1000000, hard: 3000000}   # env steps per run: one int, or per group
                                                             # (a `default:` entry covers ungrouped tasks)
    fixed:                      # overrides for every run; recorded, but not part of the variant name
      eval_every: 10000
    per_agent:                  # optional fixed overrides for one agent's runs only
      iqrl: {agent.enc_mlp_dims: [256]}
    per_task:                   # optional fixed overrides for one task's runs only (e.g. its action repeat)
      cartpole-swingup: {action_repeat: 8}
    grid:                       # product over the keys; each value is a list of alternatives
      agent.horizon: [1, 2, 3, 5, 7, 10]
    zip:                        # optional; each entry is one axis whose keys advance together
      - {agent.fsq_levels: [[8, 8], [8, 5, 5, 5]], agent.latent_dim: [512, 256]}
    variants:                   # optional; one axis of explicit alternatives ({} = the defaults)
      - {}
      - {agent.use_fsq: false}
    sources:                    # optional; runs that other runs start from (init_from, docs/transfer.md)
      walk:                     # a variant's `init_from: walk` starts from this source
        tasks: {walker-run: walker-walk}   # each target task -> the task its source trains on
        steps: 500000
        overrides: {agent.use_rew_loss: true}   # optional; the source's own keys

The variants of a sweep are the product of its axes (``variants`` x each ``zip`` entry x each ``grid``
key); with no axes there is one variant, ``default``. Each run is agent x task x variant x seed and lives
in ``RESULTS/<name>/<agent>/<task>/<variant>/seed<k>`` (variant name: ``slurm.naming.variant_name``; <task>
with a suite prefix's ``:`` written ``-``, `iqrl.envs.tasks.task_folder`; a multi-task run's <task> is its
tasks joined by ``+``, in no task group: its budget is ``steps``' ``default`` entry).

A variant whose overrides say `init_from: <source name>` runs on the tasks that source maps, each run
depending on a source run: the same agent and seed on the
source's task for that target task, with the sweep's fixed and per-agent overrides and the source's own, in
``RESULTS/<name>/<agent>/<source task>/source-<source name>/seed<k>``. The target's command line gets the
source's folder as ``init_from``; its variant name and recorded overrides keep the source's name. ``runs()``
lists the sources first, each once.
Everything here is pure: task groups, the agent registry and the trainer's config check are passed in.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from iqrl.envs.tasks import label_tasks, task_dir, task_label
from slurm.naming import dotlist, dotlist_value, variant_name
from slurm.yamlfile import is_int, read_yaml

GROUPS = ("easy", "medium", "hard")
TOP_KEYS = {
    "name",
    "agents",
    "tasks",
    "seeds",
    "steps",
    "fixed",
    "per_agent",
    "per_task",
    "grid",
    "zip",
    "variants",
    "sources",
}
# Keys the sweep sets itself for every run; an override may not set them.
RESERVED = {"agent", "task", "seed", "steps", "out", "sweep", "variant", "overrides"}
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class SweepError(ValueError):
    """A malformed sweep file or a run the trainer's config rejects; the message is one line."""


@dataclass(frozen=True)
class RunSpec:
    """One run of a sweep: everything needed to name its folder and build its trainer command line."""

    sweep: str
    agent: str
    task: str
    seed: int
    steps: int
    variant: str
    overrides: tuple[str, ...]  # dotlist of the fixed, per-agent and variant overrides, sorted by key
    source: RunSpec | None = None  # the run this one starts from (init_from), which must be done first

    @property
    def key(self) -> str:
        return f"{self.agent}/{self.task}/{self.variant}/seed{self.seed}"

    def run_dir(self, results: Path | str) -> Path:
        """RESULTS/<sweep>/<agent>/<task folder>/<variant>/seed<k> (`iqrl.envs.tasks.task_dir`: no `:` in a
        task's folder, but the one an earlier version wrote with it where only that one exists)."""
        where = task_dir(Path(results) / self.sweep / self.agent, label_tasks(self.task))
        return where / self.variant / f"seed{self.seed}"

    def argv(self, results: Path | str) -> list[str]:
        """The trainer command line (``python -m iqrl.train <argv>``); ``out`` is absolute."""
        out = Path(self.run_dir(results)).absolute()
        return [
            f"agent={self.agent}",
            f"task={dotlist_value(label_tasks(self.task))}",
            f"seed={self.seed}",
            f"steps={self.steps}",
            f"out={dotlist_value(str(out))}",
            f"sweep={self.sweep}",
            f"variant={dotlist_value(self.variant)}",
            f"overrides={dotlist_value(list(self.overrides))}",
            *self.command_overrides(results),
        ]

    def command_overrides(self, results: Path | str) -> tuple[str, ...]:
        """The overrides with a source's name in ``init_from`` replaced by the source's absolute folder."""
        if self.source is None:
            return self.overrides
        folder = dotlist_value(str(self.source.run_dir(results).absolute()))
        return tuple(f"init_from={folder}" if o.startswith("init_from=") else o for o in self.overrides)


@dataclass(frozen=True)
class Source:
    """A sweep's pre-training runs (``sources.<name>``): per target task, the task to train on."""

    name: str
    tasks: Mapping[str, str]  # target task -> source task
    steps: int
    overrides: Mapping[str, Any]

    def run(self, target: RunSpec, base: Mapping[str, Any]) -> RunSpec:
        """The source run of `target`: its agent and seed, on this source's task, with the sweep's `base`
        overrides (fixed and per-agent) and the source's own."""
        merged = {**base, **self.overrides}
        overrides = tuple(dotlist({k: merged[k] for k in sorted(merged)}))
        task = self.tasks[target.task]
        return RunSpec(
            target.sweep, target.agent, task, target.seed, self.steps, f"source-{self.name}", overrides
        )


@dataclass(frozen=True)
class Sweep:
    name: str
    path: str
    agents: tuple[str, ...]
    tasks: tuple[str, ...]
    seeds: tuple[int, ...]
    steps: int | Mapping[str, int]
    fixed: Mapping[str, Any]
    per_agent: Mapping[str, Mapping[str, Any]]
    variants: Mapping[str, Mapping[str, Any]]  # variant name -> its overrides, in expansion order
    task_group: Mapping[str, str] = field(default_factory=dict)  # task -> group, for budgets
    per_task: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    sources: Mapping[str, Source] = field(default_factory=dict)

    def steps_for(self, task: str) -> int:
        if isinstance(self.steps, int):
            return self.steps
        group = self.task_group.get(task)
        if group in self.steps:
            return self.steps[group]
        return self.steps["default"]

    def runs(self, agents: Iterable[str] | None = None) -> list[RunSpec]:
        """All runs in a fixed order (agent, task, variant, seed), the sources they start from first (each
        once); ``agents`` restricts to a subset."""
        chosen = self.agents if agents is None else tuple(a for a in self.agents if a in set(agents))
        runs = []
        for agent in chosen:
            for task in self.tasks:
                for vname, ov in self.variants.items():
                    merged = {
                        **self.fixed,
                        **self.per_agent.get(agent, {}),
                        **self.per_task.get(task, {}),
                        **ov,
                    }
                    overrides = tuple(dotlist({k: merged[k] for k in sorted(merged)}))
                    source = self.sources.get(merged.get("init_from"))
                    if source is not None and task not in source.tasks:
                        continue  # a variant that starts from a source runs on the tasks it serves
                    base = {**self.fixed, **self.per_agent.get(agent, {})}
                    for seed in self.seeds:
                        run = RunSpec(self.name, agent, task, seed, self.steps_for(task), vname, overrides)
                        runs.append(replace(run, source=source.run(run, base)) if source else run)
        sources = dict.fromkeys(r.source for r in runs if r.source is not None)
        return [*sources, *runs]


def load_sweep(path: str | Path, task_groups: Mapping[str, Sequence[str]]) -> Sweep:
    """Read and check a sweep file. ``task_groups`` is ``iqrl.envs.tasks.TASK_GROUPS`` with its TASK_LISTS
    (named lists a sweep's tasks may use; only the groups key step budgets). Raises SweepError."""
    path = Path(path)
    data = read_yaml(path, "sweep file", SweepError)
    return parse_sweep(data, str(path), default_name=path.stem, task_groups=task_groups)


def parse_sweep(data: Any, where: str, default_name: str, task_groups: Mapping[str, Sequence[str]]) -> Sweep:
    def fail(msg: str) -> SweepError:
        return SweepError(f"{where}: {msg}")

    if not isinstance(data, dict):
        raise fail(
            "expected a mapping with keys agents, tasks, seeds, steps (and optionally name, fixed, grid, "
            "zip, variants)"
        )
    unknown = sorted(set(map(str, data)) - TOP_KEYS)
    if unknown:
        raise fail(f"unknown key {unknown[0]!r} (allowed: {', '.join(sorted(TOP_KEYS))})")
    for required in ("agents", "tasks", "seeds", "steps"):
        if required not in data:
            raise fail(f"missing required key {required!r}")

    name = data.get("name", default_name)
    if not isinstance(name, str) or not _NAME.match(name):
        raise fail(f"name: {name!r} is not a usable folder name (letters, digits, . _ -)")

    agents = _names(data["agents"], "agents", fail)
    group_of = {t: g for g in GROUPS for t in task_groups.get(g, ())}
    tasks: list[str] = []
    entries = data["tasks"] if isinstance(data["tasks"], list) else [data["tasks"]]
    for t in _names([task_label(e) if isinstance(e, list) and e else e for e in entries], "tasks", fail):
        for task in task_groups[t] if t in task_groups else [t]:
            if task not in tasks:
                tasks.append(task)

    seeds = _seeds(data["seeds"], fail)
    steps = _steps(data["steps"], fail)
    if isinstance(steps, dict):
        for task in tasks:
            if group_of.get(task) not in steps and "default" not in steps:
                grp = group_of.get(task)
                raise fail(
                    f"steps: no budget for task {task!r} ({f'group {grp}' if grp else 'in no group'}); "
                    f"add steps.{grp or 'default'}"
                )

    fixed = _overrides(data.get("fixed") or {}, "fixed", fail)
    per_agent = _per(data, "per_agent", agents, "agents", fixed, fail)
    per_task = _per(data, "per_task", tasks, "tasks", fixed, fail)
    for task, ov in per_task.items():
        for agent, agent_ov in per_agent.items():
            if set(ov) & set(agent_ov):
                key = sorted(set(ov) & set(agent_ov))[0]
                raise fail(
                    f"per_task.{task}: key {key!r} is also set in per_agent.{agent}; "
                    "set each key in one place"
                )
    axes = _axes(data, fail)
    keys_seen: dict[str, str] = {k: "fixed" for k in fixed}
    keys_seen.update({k: f"per_agent.{a}" for a, ov in per_agent.items() for k in ov})
    keys_seen.update({k: f"per_task.{t}" for t, ov in per_task.items() for k in ov})
    for label, keys, _ in axes:
        for k in keys:
            if k in keys_seen:
                raise fail(f"{label}: key {k!r} is also set in {keys_seen[k]}; set each key in one place")
            keys_seen[k] = label

    variants: dict[str, dict[str, Any]] = {}
    for combo in itertools.product(*(points for _, _, points in axes)):
        merged: dict[str, Any] = {}
        for point in combo:
            merged.update(point)
        vname = variant_name(merged)
        if vname in variants:
            raise fail(f"two grid points both give variant {vname!r}: {variants[vname]} and {merged}")
        variants[vname] = merged
    sources = _sources(data.get("sources"), tasks, variants, fixed, fail)
    return Sweep(
        name,
        where,
        tuple(agents),
        tuple(tasks),
        tuple(seeds),
        steps,
        fixed,
        per_agent,
        variants,
        group_of,
        per_task,
        sources,
    )


def _sources(
    value: Any,
    tasks: Sequence[str],
    variants: Mapping[str, Mapping[str, Any]],
    fixed: Mapping[str, Any],
    fail: Callable[[str], SweepError],
) -> dict[str, Source]:
    """`sources`: name -> {tasks: {target task: source task}, steps, overrides}, the target tasks among the
    sweep's; a variant whose init_from names a source runs on the tasks it maps (others, a multi-task entry
    say, have only the variants from scratch)."""
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise fail(
            f"sources: expected a mapping of source name -> {{tasks, steps, overrides}}, got {value!r}"
        )
    sources = {}
    for name, entry in value.items():
        where = f"sources.{name}"
        if not isinstance(name, str) or not _NAME.match(name):
            raise fail(f"sources: {name!r} is not a usable name (letters, digits, . _ -)")
        if (
            not isinstance(entry, dict)
            or set(entry) - {"tasks", "steps", "overrides"}
            or "tasks" not in entry
        ):
            raise fail(
                f"{where}: expected a mapping with tasks, steps and optionally overrides, got {entry!r}"
            )
        mapping = entry["tasks"]
        if not isinstance(mapping, dict) or not all(isinstance(v, str) and v for v in mapping.values()):
            raise fail(f"{where}.tasks: expected a mapping of target task -> source task, got {mapping!r}")
        overrides = _overrides(entry.get("overrides") or {}, f"{where}.overrides", fail)
        clash = sorted(set(overrides) & ({"init_from"} | set(fixed)))
        if clash:
            raise fail(
                f"{where}.overrides: {clash[0]!r} cannot be set here (a source starts from scratch, "
                "and fixed keys are set once)"
            )
        steps = _budget(entry.get("steps"), f"{where}.steps", fail)
        sources[name] = Source(name, dict(mapping), steps, overrides)
    if "init_from" in fixed:
        raise fail("fixed: init_from is set per variant (a source starts from scratch)")
    for vname, ov in variants.items():
        name = ov.get("init_from")
        if name is None or not isinstance(name, str) or "/" in name:
            continue  # from scratch, or a run folder given by its path
        if name not in sources:
            raise fail(
                f"variant {vname}: init_from {name!r} is neither a source of the sweep "
                f"({', '.join(sources) or 'none'}) nor a path"
            )
        unknown = [t for t in sources[name].tasks if t not in tasks]
        if unknown:
            raise fail(f"sources.{name}.tasks: {', '.join(unknown)} is not one of the sweep's tasks")
    return sources


def _per(
    data: Mapping,
    key: str,
    names: Sequence[str],
    what: str,
    fixed: Mapping,
    fail: Callable[[str], SweepError],
) -> dict[str, dict[str, Any]]:
    """`per_agent` or `per_task`: a mapping of one of the sweep's `what` -> overrides, none set in fixed."""
    raw = data.get(key) or {}
    if not isinstance(raw, dict):
        raise fail(f"{key}: expected a mapping of {what[:-1]} -> overrides, got {raw!r}")
    per = {}
    for name, ov in raw.items():
        if name not in names:
            raise fail(f"{key}: {name!r} is not one of the sweep's {what} ({', '.join(names)})")
        per[name] = _overrides(ov or {}, f"{key}.{name}", fail)
        clash = sorted(set(per[name]) & set(fixed))
        if clash:
            raise fail(f"{key}.{name}: key {clash[0]!r} is also set in fixed; set each key in one place")
    return per


def _names(value: Any, key: str, fail: Callable[[str], SweepError]) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise fail(f"{key}: expected a non-empty list of names, got {value!r}")
    if len(set(value)) != len(value):
        raise fail(f"{key}: duplicate entries in {value}")
    return list(value)


def _seeds(value: Any, fail: Callable[[str], SweepError]) -> list[int]:
    if is_int(value):
        if value < 1:
            raise fail(f"seeds: a count must be at least 1, got {value}")
        return list(range(value))
    if isinstance(value, list) and value and all(is_int(s) and s >= 0 for s in value):
        if len(set(value)) != len(value):
            raise fail(f"seeds: duplicate seeds in {value}")
        return list(value)
    raise fail(f"seeds: expected a count or a list of non-negative integers, got {value!r}")


def _budget(value: Any, key: str, fail: Callable[[str], SweepError]) -> int:
    if not is_int(value) or value <= 0:
        hint = " (YAML reads 1e6 as text; write 1000000 or 1_000_000)" if isinstance(value, str) else ""
        raise fail(f"{key}: expected a positive integer number of env steps, got {value!r}{hint}")
    return value


def _steps(value: Any, fail: Callable[[str], SweepError]) -> int | dict[str, int]:
    if isinstance(value, dict):
        if not value:
            raise fail("steps: empty mapping")
        bad = sorted(set(map(str, value)) - {*GROUPS, "default"})
        if bad:
            raise fail(f"steps: unknown group {bad[0]!r} (use {', '.join(GROUPS)} or default)")
        return {g: _budget(v, f"steps.{g}", fail) for g, v in value.items()}
    return _budget(value, "steps", fail)


def _check_value(value: Any, where: str, fail: Callable[[str], SweepError]) -> None:
    if isinstance(value, dict):
        raise fail(f"{where}: mappings are not supported as values; set each nested key (a.b.c: ...) instead")
    if isinstance(value, list):
        for v in value:
            _check_value(v, where, fail)
        return
    try:
        dotlist_value(value)
    except (TypeError, ValueError) as e:
        raise fail(f"{where}: {e}") from None


def _check_key(key: Any, where: str, fail: Callable[[str], SweepError]) -> str:
    if not isinstance(key, str) or not _KEY.match(key):
        raise fail(f"{where}: {key!r} is not a config key (dotted names like agent.horizon)")
    if key in RESERVED:
        raise fail(
            f"{where}: {key!r} is set by the sweep itself (use the top-level agents/tasks/seeds/steps keys)"
        )
    return key


def _overrides(value: Any, where: str, fail: Callable[[str], SweepError]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise fail(f"{where}: expected a mapping of config keys to values, got {value!r}")
    out = {}
    for k, v in value.items():
        _check_key(k, where, fail)
        _check_value(v, f"{where}.{k}", fail)
        out[k] = v
    return out


def _alternatives(value: Any, where: str, fail: Callable[[str], SweepError]) -> list[Any]:
    if not isinstance(value, list) or not value:
        raise fail(f"{where}: expected a non-empty list of alternatives, got {value!r}")
    _check_value(value, where, fail)
    return value


def _axes(
    data: Mapping[str, Any], fail: Callable[[str], SweepError]
) -> list[tuple[str, list[str], list[dict]]]:
    """The sweep's axes as (label, keys, points); a point is a dict of overrides."""
    axes: list[tuple[str, list[str], list[dict]]] = []
    if data.get("variants") is not None:
        value = data["variants"]
        if not isinstance(value, list) or not value:
            raise fail(
                f"variants: expected a non-empty list of override mappings ({{}} = defaults), got {value!r}"
            )
        points = [_overrides(v if v is not None else {}, f"variants[{i}]", fail) for i, v in enumerate(value)]
        keys = sorted({k for p in points for k in p})
        axes.append(("variants", keys, points))
    if data.get("zip") is not None:
        value = data["zip"]
        if not isinstance(value, list) or not value:
            raise fail(
                f"zip: expected a list of axes (mappings of key -> list of equal length), got {value!r}"
            )
        for i, axis in enumerate(value):
            where = f"zip[{i}]"
            if not isinstance(axis, dict) or not axis:
                raise fail(f"{where}: expected a mapping of key -> list of values, got {axis!r}")
            cols = {
                _check_key(k, where, fail): _alternatives(v, f"{where}.{k}", fail) for k, v in axis.items()
            }
            lengths = {k: len(v) for k, v in cols.items()}
            if len(set(lengths.values())) != 1:
                raise fail(f"{where}: zipped lists must have equal lengths, got {lengths}")
            n = next(iter(lengths.values()))
            axes.append((where, list(cols), [{k: cols[k][j] for k in cols} for j in range(n)]))
    if data.get("grid") is not None:
        value = data["grid"]
        if not isinstance(value, dict) or not value:
            raise fail(f"grid: expected a non-empty mapping of key -> list of values, got {value!r}")
        for k, v in value.items():
            _check_key(k, "grid", fail)
            axes.append((f"grid.{k}", [k], [{k: x} for x in _alternatives(v, f"grid.{k}", fail)]))
    return axes


def validate_runs(
    runs: Sequence[RunSpec],
    results: Path | str,
    build_config: Callable[[list[str]], Any],
    config_error: type[Exception],
    registered: Iterable[str] | None = None,
    where: str = "",
) -> None:
    """Reject the sweep before anything is submitted if the trainer would reject one of its runs.

    Unknown agents are reported together (with the registered ones). Every distinct config goes through the
    trainer's own ``build_config`` once, with its largest seed (`config_runs`).
    """
    prefix = f"{where}: " if where else ""
    if registered is not None:
        registered = sorted(registered)
        missing = sorted({r.agent for r in runs} - set(registered))
        if missing:
            raise SweepError(
                f"{prefix}agent(s) not in the registry: {', '.join(missing)} "
                f"(registered: {', '.join(registered)}); restrict with AGENTS=... to run the others"
            )
    for r in config_runs(runs).values():
        try:
            built_config(build_config, tuple(r.argv(results)))
        except config_error as e:
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise SweepError(f"{prefix}run {r.key}: {msg}") from None


def config_runs(runs: Sequence[RunSpec]) -> dict[tuple, RunSpec]:
    """Each distinct config of `runs` (everything but the seed), in the order configs first appear, with its
    run of the largest seed: the one run per config that is validated and priced (a seed can only be out of
    range upwards)."""
    largest: dict[tuple, RunSpec] = {}
    for r in runs:
        k = config_key(r)
        if k not in largest or r.seed > largest[k].seed:
            largest[k] = r
    return largest


def config_key(r: RunSpec) -> tuple:
    """What a run's config is made of but its seed (and its folder and source, which follow the seed)."""
    return (r.agent, r.task, r.variant, r.steps, r.overrides)


@functools.cache
def built_config(build_config: Callable[[list[str]], Any], argv: tuple[str, ...]) -> Any:
    """`build_config(argv)`, once per command line and process: validating a sweep and pricing it (a dry run)
    build the same configs (`config_runs`). The caller reads the config and never changes it."""
    return build_config(list(argv))
