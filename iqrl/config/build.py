"""Run configuration: typed dataclasses merged with OmegaConf in one fixed order.

    dataclass defaults <- agent preset <- task overrides (group, then task) <- command line

Run keys left None take their defaults last: the suite's (action_repeat, episode_length, obs, protocol), the
agent's code's frames where it has them, else the suite's (frame_stack, image_size: `pixel_defaults`), the
agent's code's changes to the protocol (protocol_changes), the protocol's budget (steps), then its seed phase
at those (seed_steps).

`build_config(argv)` turns `agent=iqrl task=walker-walk seed=1 agent.horizon=3 ...` into a resolved,
validated `RunConfig` (agent hyper-parameters under `.agent`), or raises ConfigError with one line
that names the problem and the valid choices. Nothing is touched on disk before this succeeds.
"""

from __future__ import annotations

import difflib
import functools
from dataclasses import fields
from importlib import resources
from pathlib import Path

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from iqrl.config.run import DEFAULT_STEPS, TOP_LEVEL_KEYS, ConfigError, RunConfig, pixel_defaults
from iqrl.config.validate import validate
from iqrl.core import registry
from iqrl.envs.make import check_task
from iqrl.envs.tasks import (
    protocol_changes,
    protocol_steps,
    split_task,
    suite_of,
    task_dir,
    task_group,
    task_list,
)


@functools.cache
def task_file(name: str) -> dict:
    """The parsed task-override file iqrl/configs/<name> ({"groups": {...}, "tasks": {...}}); {} for an agent
    without one (name ""). Read once per process (a sweep builds hundreds of configs): callers never change
    what it returns."""
    if not name:
        return {}
    return yaml.safe_load(resources.files("iqrl").joinpath("configs", name).read_text()) or {}


def _task_overrides(entry: registry.AgentEntry, task: str, agent_cls) -> list[dict]:
    """The group layer, then the task layer, of the agent's task file. A task file serves every preset of one
    agent; a preset whose config lacks a key leaves it out (iqrl-sac has no exploration-noise schedule: SAC
    explores by sampling). tests/test_config_ranges.py checks that every key of every task file belongs to
    a config that reads that file."""
    data = task_file(entry.task_overrides)
    keys = {f.name for f in fields(agent_cls)}
    layers = [
        (data.get("groups") or {}).get(task_group(task)) or {},
        (data.get("tasks") or {}).get(task) or {},
    ]
    return [{k: v for k, v in layer.items() if k in keys} for layer in layers]


def layered(*argvs: list[str] | tuple[str, ...]) -> list[str]:
    """`key=value` lists joined, a later list's key replacing the same key of an earlier list in its place:
    how a command lays its own keys over a base (the bench's --set, the learning check's --extra). The
    command line itself gives each key once (build_config refuses a repeated key)."""
    merged: dict[str, str] = {}
    for argv in argvs:
        for arg in argv:
            key = arg.partition("=")[0]
            merged["agent" if key == "agent.name" else key] = arg
    return list(merged.values())


def _split_argv(argv: list[str]) -> tuple[str, list[str]]:
    """Separate `agent=NAME` (or agent.name=NAME) from the dotted overrides; check their shape, and that no
    key is given twice (OmegaConf would silently take the last)."""
    name, rest, given = "iqrl", [], {}
    for arg in argv:
        key, sep, value = arg.partition("=")
        if not sep or not key:
            raise ConfigError(f"bad argument {arg!r}: expected key=value (e.g. agent=iqrl, agent.horizon=3)")
        key = "agent" if key == "agent.name" else key
        if key in given:
            raise ConfigError(f"{key} is given twice ({given[key]} and {arg}); give each key once")
        given[key] = arg
        if key == "agent":
            name = value
        else:
            rest.append(arg)
    return name, rest


#: What a switch (a bool key) may be given as on the command line: OmegaConf also takes any integer as true.
BOOL_WORDS = frozenset({"true", "false", "yes", "no", "on", "off", "1", "0"})


def _check_switches(overrides: list[str], agent_cls) -> None:
    """A bool key is given as true or false (env_workers=2 or =-1 would silently be true): ConfigError."""
    for arg in overrides:
        key, _, value = arg.partition("=")
        cls, leaf = (agent_cls, key[6:]) if key.startswith("agent.") else (RunConfig, key)
        kinds = {f.name: f.type for f in fields(cls)}
        if kinds.get(leaf) in (bool, "bool") and value.strip().lower() not in BOOL_WORDS:
            raise ConfigError(f"{key} is a switch: give {key}=true or {key}=false, got {value!r}")


def _explain(e: OmegaConfBaseException, agent_cls) -> str:
    msg = str(e).splitlines()[0]
    key = getattr(e, "full_key", None) or getattr(e, "key", None)
    if type(e).__name__ == "ConfigKeyError" and key:
        if str(key).startswith("agent."):
            valid = [f.name for f in fields(agent_cls)]
            leaf = str(key).split(".", 1)[1]
            close = difflib.get_close_matches(leaf, valid, n=1)
            hint = f" (did you mean agent.{close[0]}?)" if close else ""
            return f"unknown config key {key!r}{hint}; valid agent keys: {', '.join(valid)}"
        close = difflib.get_close_matches(str(key), TOP_LEVEL_KEYS, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        return f"unknown config key {key!r}{hint}; valid keys: {', '.join(TOP_LEVEL_KEYS)}, agent.<key>"
    if key:
        return f"invalid value for {key}: {msg}"
    return msg


def build_config(argv: list[str]) -> RunConfig:
    """Resolve and validate a run config from command-line style `key=value` strings."""
    name, overrides = _split_argv(list(argv))
    try:
        registry.get_entry(name)
    except KeyError as e:
        raise ConfigError(str(e).strip("'\"")) from None
    agent_cls = registry.config_class(name)
    _check_switches(overrides, agent_cls)
    # Task first: its overrides depend on it. A multi-task run merges each task's overrides in the list's
    # order (a later task's value wins).
    tasks = task_list(_task_arg(overrides))
    try:
        for task in tasks:
            check_task(task)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    entry = registry.get_entry(name)
    layers = [{"agent": entry.preset}] + [
        {"agent": o} for task in tasks for o in _task_overrides(entry, task, agent_cls)
    ]
    try:
        cfg = OmegaConf.merge(_structured_defaults(agent_cls, name), *layers, _dotlist(overrides))
        run: RunConfig = OmegaConf.to_object(cfg)
    except OmegaConfBaseException as e:
        raise ConfigError(_explain(e, agent_cls)) from None
    run.agent.name = name
    run.task = tasks[0] if len(tasks) == 1 else tasks  # `task=[walker-walk]` is the single-task run
    suite = suite_of(tasks[0])  # a multi-task run's tasks share spaces: one suite
    run.action_repeat = suite.action_repeat if run.action_repeat is None else run.action_repeat
    run.episode_length = suite.episode_length if run.episode_length is None else run.episode_length
    if run.obs is None:  # the suite's first; pixels (where the suite has them) for an agent of pixels only
        pixels = registry.agent_class(name).PIXELS_ONLY and "pixels" in suite.observations
        run.obs = "pixels" if pixels else suite.observations[0]
    defaults = pixel_defaults(name, suite, run.obs)
    run.frame_stack = defaults["frame_stack"] if run.frame_stack is None else run.frame_stack
    run.image_size = defaults["image_size"] if run.image_size is None else run.image_size
    run.protocol = suite.protocols[0] if run.protocol is None else run.protocol
    if run.protocol_changes is None:
        run.protocol_changes = protocol_changes(tasks[0], run.protocol, agent_cls.PROTOCOL_CHANGES)
    if run.train_envs is None:
        run.train_envs = agent_cls.TRAIN_ENVS.get(split_task(tasks[0])[0], 1)
    if run.steps is None:  # a protocol with a budget of its own is run to it
        run.steps = protocol_steps(tasks[0], run.protocol) or DEFAULT_STEPS
    if run.seed_steps is None:
        phase = registry.seed_phase(name)
        run.seed_steps = phase.length(run.action_repeat, run.episode_length, run.train_envs)
    validate(run)
    if not run.out:
        run.out = str(task_dir(Path("runs", name), run.task) / f"seed{run.seed}")
    return run


def _dotlist(overrides: list[str]):
    """The `key=value` overrides as OmegaConf reads them: each value is YAML, so one that is not (an unclosed
    bracket, brace or quote) is a ConfigError naming its key rather than the YAML parser's traceback."""
    try:
        return OmegaConf.from_dotlist(overrides)
    except yaml.YAMLError:
        for arg in overrides:
            key, _, value = arg.partition("=")
            try:
                OmegaConf.from_dotlist([arg])
            except yaml.YAMLError as e:
                problem = getattr(e, "problem", None) or str(e).splitlines()[0]
                raise ConfigError(
                    f"invalid value for {key}: {value!r} is not valid YAML ({problem}); "
                    "close its bracket, brace or quote"
                ) from None
        raise


@functools.cache
def _structured_defaults(agent_cls: type, name: str):
    """The run's and the agent's dataclass defaults as OmegaConf's typed tree, built once per agent config
    class and process: building it is most of a config's cost (a dry sweep builds one config per distinct
    run), and `OmegaConf.merge` copies its first argument, so the cached tree is never changed."""
    return OmegaConf.structured(RunConfig(agent=agent_cls(name=name)))


def _task_arg(overrides: list[str]) -> str | list[str]:
    """The value of the last `task=` override (a name or a list of names), else the default task."""
    args = [arg for arg in overrides if arg.startswith("task=")]
    if not args:
        return RunConfig.task
    raw = args[-1].partition("=")[2]
    task = _parse_task(args[-1])
    if isinstance(task, dict):  # YAML reads `gym:` or `gym: Hopper-v4` as a mapping: keep what was typed
        task = raw
    if not (
        isinstance(task, str) or (isinstance(task, list) and task and all(isinstance(t, str) for t in task))
    ):
        raise ConfigError(f"task must be a task name or a list of task names, got {task!r}")
    return task


@functools.cache
def _parse_task(arg: str):
    """The value of a `task=` argument as the command line's other keys are read (once per distinct text)."""
    try:
        return OmegaConf.to_container(_dotlist([arg]))["task"]
    except OmegaConfBaseException as e:
        raise ConfigError(f"invalid value for task: {e}") from None


def from_yaml_dict(d: dict) -> RunConfig:
    """Rebuild a RunConfig from a config.yaml dict (meta dropped), re-validating it."""
    d = {k: v for k, v in d.items() if k != "meta"}
    agent = dict(d.pop("agent"))
    name = agent.pop("name")
    argv = (
        [f"agent={name}"]
        + [f"{k}={_fmt(v)}" for k, v in d.items()]
        + [f"agent.{k}={_fmt(v)}" for k, v in agent.items()]
    )
    return build_config(argv)


def _fmt(v) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, dict)):
        return yaml.safe_dump(v, default_flow_style=True).strip()
    if isinstance(v, str):
        return repr(v) if (v == "" or any(ch in v for ch in ",[]{}:= ")) else v
    return str(v)
