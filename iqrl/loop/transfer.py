"""Starting a run from parts of another run (`init_from`, `init_parts`) and keeping parts fixed (`freeze`).

Each agent names its parts once (`Agent.TRANSFER_PARTS`: representation, actor, critic, optimizers; see
iqrl/core/interface.py). A fresh run with `init_from` builds its agent as any run does, then copies the named
parts' tensors from the source's checkpoint into it, records where they came from under `meta.init` of its
config.yaml, and writes its own first checkpoint at once; from then on it resumes from its own checkpoints
and never reads the source again, so its kill-and-resume is as exact as any run's.

What cannot transfer is refused before anything is written (ConfigError, one line): a source of another
agent, a part whose defining keys differ (the quantizer, the FSQ levels), tensors of other shapes (naming the
config keys in which the two runs differ), a part this run has and the source lacks, and a source that is
not done unless a checkpoint is named with @<env step>. A part the source has and this run lacks (the reward
head of a run pre-trained with the reward term) is skipped and recorded as skipped.

A frozen part (`freeze`) keeps its build-time or loaded weights: its parameters stop requiring gradients
and its targets stop following it (iqrl/core/update.py, `Updater.freeze`).

It imports torch, the run config, the envs and the registry (to rebuild the source's agent), the checkpoints
and the run folder's readers.
"""

from __future__ import annotations

import contextlib
import hashlib
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import Tensor, nn

from iqrl.config.build import from_yaml_dict
from iqrl.config.run import ConfigError, RunConfig, observation, perturbations, protocol, to_yaml_dict
from iqrl.core.interface import Agent
from iqrl.core.registry import make_agent
from iqrl.envs.make import make_env
from iqrl.envs.tasks import task_list
from iqrl.runfolder import checkpoints
from iqrl.runfolder.layout import CHECKPOINT
from iqrl.runfolder.status import read_status
from iqrl.runfolder.yamlfile import UnreadableConfig, read_config


# ---------------------------------------------------------------------- the source
@dataclass
class Source:
    spec: str  # the init_from value as given
    run_dir: Path | None  # the source's run folder (None for a checkpoint file outside one)
    checkpoint: Path
    state: dict  # the checkpoint, loaded on the CPU
    config: dict  # the source's config (config.yaml, else the one inside the checkpoint)
    config_sha256: str  # of its config.yaml's bytes (else of the checkpoint's config as YAML)

    @property
    def env_step(self) -> int:
        return int(self.state["counters"]["env_step"])


def split_init_from(spec: str) -> tuple[Path, int | None]:
    """`RUN`, `RUN@<env step>` or a checkpoint file -> (path, env step or None)."""
    path, at, step = spec.rpartition("@") if "@" in spec else (spec, "", "")
    if not at:
        return Path(spec), None
    if not step.isdigit():
        raise ConfigError(
            f"init_from={spec}: the suffix after @ must be an env step (an integer), got {step!r}"
        )
    return Path(path), int(step)


def resolve_source(spec: str) -> Source:
    """The checkpoint `spec` names, loaded (ConfigError, one line, if it cannot be used)."""
    path, step = split_init_from(spec)
    if path.is_file():
        if step is not None:
            raise ConfigError(
                f"init_from={spec}: @<env step> picks a checkpoint of a run folder, not of a file"
            )
        return _file_source(spec, path)
    if not path.is_dir():
        raise ConfigError(f"init_from={spec}: {path} does not exist (give a run folder or a checkpoint file)")
    if not (path / "config.yaml").is_file():
        raise ConfigError(f"init_from={spec}: {path} is not a run folder (it has no config.yaml)")
    gens = checkpoints.generations(path, "cpu")
    found = [g for g in gens if g.state is not None]
    if not found:
        why = "; ".join(f"{g.path.name}: {g.reason}" for g in gens)
        raise ConfigError(f"init_from={spec}: {path} has no usable checkpoint" + f" ({why})" * bool(why))
    steps = ", ".join(str(checkpoints.step_of(g)) for g in found)
    if step is None:
        status = read_status(path) or {}
        if status.get("state") != "done":
            raise ConfigError(
                f"init_from={spec}: the source run is not done (state {status.get('state', 'unknown')}); "
                f"name one of its checkpoints with @<env step> (it has env steps {steps})"
            )
        if gens[0].state is None:  # not its final checkpoint's parts without a word
            raise ConfigError(
                f"init_from={spec}: its last checkpoint {gens[0].path} cannot be used ({gens[0].reason}); "
                f"name a usable one with @<env step> (it has env steps {steps})"
            )
        chosen = found[0]
    else:
        chosen = next((g for g in found if checkpoints.step_of(g) == step), None)
        if chosen is None:
            raise ConfigError(
                f"init_from={spec}: {path} has no checkpoint at env step {step} (it has {steps})"
            )
    text = (path / "config.yaml").read_bytes()
    return Source(spec, path, chosen.path, chosen.state, _source_config(spec, path), _sha256(text))


def _file_source(spec: str, path: Path) -> Source:
    try:
        state = checkpoints.verified(path, "cpu")
    except checkpoints.Unreadable as e:
        raise ConfigError(f"init_from={spec}: {path} cannot be used as a checkpoint ({e})") from None
    run_dir = path.parent.parent if path.parent.name == CHECKPOINT.parent.name else None
    if run_dir is not None and (run_dir / "config.yaml").is_file():
        text = (run_dir / "config.yaml").read_bytes()
        return Source(spec, run_dir, path, state, _source_config(spec, run_dir), _sha256(text))
    text = yaml.safe_dump(state["config"], sort_keys=True).encode()  # outside a run folder: its own config
    return Source(spec, None, path, state, state["config"], _sha256(text))


def _source_config(spec: str, run_dir: Path) -> dict:
    try:
        return read_config(run_dir)
    except UnreadableConfig as e:
        raise ConfigError(f"init_from={spec}: {e}") from None


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@contextlib.contextmanager
def _kept_rng():
    """Build things without moving the global python, numpy and torch generators: a run's numbers must not
    depend on whether it was started from another."""
    py, npy = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        try:
            yield
        finally:
            random.setstate(py)
            np.random.set_state(npy)


def built_agent(cfg: RunConfig) -> Agent:
    """The agent of run config `cfg` on the CPU as its run builds it (weights at initialisation); a multi-task
    run's (a task list) for all its tasks, whose spaces are its first task's."""
    tasks = task_list(cfg.task)
    with _kept_rng():
        env = make_env(
            tasks[0],
            cfg.seed,
            cfg.action_repeat,
            cfg.episode_length,
            perturbations(cfg),
            observation(cfg),
            protocol=protocol(cfg),
        )
        return make_agent(cfg.agent, env.obs_dim, env.action_spec, "cpu", cfg.seed, num_tasks=len(tasks))


def source_run(source: Source) -> tuple[RunConfig, Agent]:
    """The source's run config and its agent with the checkpoint's state loaded."""
    try:
        cfg = from_yaml_dict(source.config)
    except ConfigError as e:
        raise ConfigError(
            f"init_from={source.spec}: its config cannot be read by this version ({e})"
        ) from None
    agent = built_agent(cfg)
    agent.load_state_dict(source.state["agent"])
    return cfg, agent


# ---------------------------------------------------------------------- parts
def part_objects(agent: Agent, name: str, cfg: RunConfig) -> dict[str, Any]:
    """Part `name`'s objects in `agent` (ConfigError if this configuration of the agent has none)."""
    objs = agent.part_objects(name)
    if not objs:
        parts = [p for p in agent.TRANSFER_PARTS if agent.part_objects(p)]
        raise ConfigError(
            f"agent {cfg.agent.name} with obs={cfg.obs} has no {name} (its parts here: {', '.join(parts)})"
        )
    return objs


def freeze(agent: Agent, cfg: RunConfig) -> None:
    """Keep the parts `cfg.freeze` names fixed (see the module docstring)."""
    for name in cfg.freeze:
        agent.updater.freeze(part_objects(agent, name, cfg).values())


@dataclass
class LoadPlan:
    loaded: dict[str, list[str]] = field(default_factory=dict)  # part -> paths copied
    skipped: dict[str, list[str]] = field(default_factory=dict)  # part -> source paths this run lacks
    pairs: list[tuple[Any, Any]] = field(default_factory=list)  # (target object, source object)


def plan_load(agent: Agent, cfg: RunConfig, src: Agent, src_cfg: RunConfig, spec: str) -> LoadPlan:
    """What loading `cfg.init_parts` from `src` copies, after checking every part can transfer."""
    if type(src) is not type(agent):
        raise ConfigError(
            f"init_from={spec}: the source is a {src_cfg.agent.name} run and this is {cfg.agent.name}: parts "
            "transfer between runs of one agent"
        )
    plan = LoadPlan()
    for name in cfg.init_parts:
        mine, theirs = part_objects(agent, name, cfg), src.part_objects(name)
        _check_keys(agent, name, cfg, src_cfg, spec)
        lacking = [p for p in mine if p not in theirs]
        if lacking:
            raise ConfigError(
                f"init_from={spec}: this run's {name} has {', '.join(lacking)}, the source's has not "
                f"({_differences(src_cfg, cfg)})"
            )
        for path, obj in mine.items():
            if (why := _mismatch(theirs[path], obj)) is not None:
                raise ConfigError(
                    f"init_from={spec}: {name} cannot transfer: {path}{why} ({_differences(src_cfg, cfg)})"
                )
            plan.pairs.append((obj, theirs[path]))
        plan.loaded[name] = list(mine)
        plan.skipped[name] = [p for p in theirs if p not in mine]
    return plan


def _check_keys(agent: Agent, name: str, cfg: RunConfig, src_cfg: RunConfig, spec: str) -> None:
    for key in agent.TRANSFER_PARTS[name].keys:
        a, b = getattr(src_cfg.agent, key), getattr(cfg.agent, key)
        if a != b:
            raise ConfigError(
                f"init_from={spec}: {name} cannot transfer: agent.{key} is {a} in the source and {b} here"
            )


def _shapes(obj) -> dict[str, tuple]:
    """Every tensor of `obj` (a module, a parameter, an optimizer) by name, as its shape."""
    if isinstance(obj, Tensor):
        return {"": tuple(obj.shape)}
    state = obj.state_dict()
    if isinstance(obj, torch.optim.Optimizer):
        sizes = {f"group {i}": (len(g["params"]),) for i, g in enumerate(state["param_groups"])}
        return sizes | {
            f"state[{i}].{k}": tuple(v.shape)
            for i, s in state["state"].items()
            for k, v in s.items()
            if isinstance(v, Tensor)
        }
    return {k: tuple(v.shape) for k, v in state.items()}


def _mismatch(src_obj, obj) -> str | None:
    """Why `src_obj`'s tensors do not fit `obj`'s (names or shapes), or None."""
    theirs, mine = _shapes(src_obj), _shapes(obj)
    for key in sorted(set(theirs) | set(mine)):
        if key.startswith("state[") and (key not in theirs or key not in mine):
            continue  # an optimizer that has not stepped a parameter yet holds no state for it
        if theirs.get(key) != mine.get(key):
            where = f".{key}" if key else ""
            return f"{where} is {_shape(theirs.get(key))} in the source, {_shape(mine.get(key))} here"
    return None


def _shape(shape: tuple | None) -> str:
    return "absent" if shape is None else str(list(shape))


def _flat(tree: dict, prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in tree.items():
        out.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


# Keys that tell where and how a run ran, not what its networks are: left out of the differences shown.
_NOT_SHAPING = {"out", "seed", "steps", "sweep", "variant", "overrides", "init_from", "init_parts", "freeze"}


def _differences(src_cfg: RunConfig, cfg: RunConfig, most: int = 4) -> str:
    """The config keys in which source and target differ, as `key: source vs this run` (the likely causes)."""
    a, b = _flat(to_yaml_dict(src_cfg)), _flat(to_yaml_dict(cfg))
    keys = [
        k for k in sorted(set(a) | set(b)) if k.split(".")[0] not in _NOT_SHAPING and a.get(k) != b.get(k)
    ]
    if not keys:
        return "the two configs agree"
    shown = "; ".join(f"{k}: {a.get(k)} vs {b.get(k)}" for k in keys[:most])
    return f"source vs this run: {shown}" + (f"; {len(keys) - most} more" if len(keys) > most else "")


@torch.no_grad()
def copy_into(obj, src_obj) -> None:
    """Copy `src_obj`'s state into `obj`. An optimizer keeps its own hyper-parameters (learning rate, weight
    decay: this run's config) and takes the source's moments and step counts."""
    if isinstance(obj, Tensor):
        obj.copy_(src_obj)
    elif isinstance(obj, torch.optim.Optimizer):
        state = src_obj.state_dict()
        own = obj.state_dict()["param_groups"]
        state["param_groups"] = [{**g, "params": s["params"]} for g, s in zip(own, state["param_groups"])]
        obj.load_state_dict(state)
    else:
        assert isinstance(obj, nn.Module)
        obj.load_state_dict(src_obj.state_dict())


def check_transfer(cfg: RunConfig, agent: Agent) -> tuple[Source, LoadPlan] | None:
    """Every check of `cfg`'s freeze and init_from on its built `agent` (ConfigError, one line); the source
    and what to load, or None without init_from."""
    for name in cfg.freeze:
        part_objects(agent, name, cfg)
    if not cfg.init_from:
        return None
    source = resolve_source(cfg.init_from)
    src_cfg, src = source_run(source)
    return source, plan_load(agent, cfg, src, src_cfg, cfg.init_from)


def load_parts(agent: Agent, cfg: RunConfig) -> dict:
    """Load `cfg.init_parts` from `cfg.init_from` into `agent`; the provenance that config.yaml records under
    `meta.init`."""
    source, plan = check_transfer(cfg, agent)
    for obj, src_obj in plan.pairs:
        copy_into(obj, src_obj)
    src = source.config
    return {
        "init_from": cfg.init_from,
        "run": str(source.run_dir.resolve()) if source.run_dir is not None else None,
        "checkpoint": str(source.checkpoint.resolve()),
        "config_sha256": source.config_sha256,
        "env_step": source.env_step,
        "agent": src["agent"]["name"],
        "task": src["task"],
        "seed": src["seed"],
        "sweep": src.get("sweep", ""),
        "variant": src.get("variant", "default"),
        "parts": list(cfg.init_parts),
        "loaded": plan.loaded,
        "skipped": plan.skipped,
        "frozen": list(cfg.freeze),
    }
