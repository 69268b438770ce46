"""Run configuration: typed dataclasses merged with OmegaConf in one fixed order.

    dataclass defaults <- agent preset <- task overrides (group, then task) <- command line

`build_config(argv)` turns `agent=iqrl task=walker-walk seed=1 agent.horizon=3 ...` into a resolved,
validated `RunConfig` (agent hyper-parameters under `.agent`), or raises ConfigError with one line
that names the problem and the valid choices. Nothing is touched on disk before this succeeds.
"""

from __future__ import annotations

import difflib
import math
import os
import types
import typing
from dataclasses import dataclass, field, fields
from importlib import resources
from typing import Any, get_type_hints

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from iqrl.core import registry
from iqrl.core.checks import require
from iqrl.core.envs import (
    DISTRACTORS,
    OBSERVATIONS,
    SEED_LIMIT,
    Observation,
    Perturbations,
    check_task,
    task_spaces,
)
from iqrl.core.loggers import LOGGERS
from iqrl.core.tasks import eval_seed, split_task, suite_of, task_group, task_label, task_list


class ConfigError(ValueError):
    """A bad run configuration; the message is one line meant for the user."""


@dataclass
class RunConfig:
    """Top-level run keys (a stable contract for sweeps and scripts). Step counts are env steps."""

    agent: Any = None  # the agent's config dataclass; `agent=NAME` on the command line picks it
    # dm_control `domain-task`, or suite:name for another suite (gym:Hopper-v4, metaworld:reach,
    # myosuite:myoHandReachFixed-v0; iqrl.core.tasks.SUITES, docs/suites.md), or a list of tasks with the same
    # observation and action spaces for one multi-task run (`task=[walker-stand,walker-walk]`;
    # docs/transfer.md). Any: OmegaConf has no str | list.
    task: Any = "walker-walk"
    seed: int = 1  # the run's seed: the agent's generator, the envs and the seed-phase actions derive from it
    steps: int = 1_000_000  # env-step budget
    out: str = ""  # run folder; default runs/<agent>/<task>/seed<seed>
    seed_steps: int = 10_000  # env steps of seed (warm-up) episodes before learning starts
    updates_per_step: float | None = None  # gradient updates per env step; None = the agent's default
    # Transitions (agent steps) the learner samples from, newest first (a FIFO); None = the agent's
    # default (td7, mrq: 1M as their code; others unbounded), 0 = unbounded.
    replay_capacity: int | None = None
    eval_every: int = 10_000  # env steps between evaluations (eval.csv rows)
    eval_episodes: int = 10  # episodes per evaluation
    # true: the evaluation episodes side by side, one `act` call per step for all of them
    # (iqrl.core.evaluation.eval_batch)
    eval_batched: bool = True
    diag_every: int = 10_000  # train.csv rows: metrics, latent rank, active codebook, throughput
    checkpoint_every: int = 50_000  # env steps between checkpoints
    device: str = "cpu"  # cpu | cuda | cuda:N | auto
    # fp32 | bf16 | tf32 (CUDA): the gradient updates' arithmetic (iqrl.core.device.UpdatePrecision)
    precision: str = "fp32"
    compile: bool = False  # torch.compile the pieces of the update (Agent.compile; docs/performance.md)
    cudagraphs: bool = False  # with compile: replay them as CUDA graphs (CUDA only)
    # env steps per episode, and env steps per agent step; None = the suite's (DMC 1000 and 2, Gym 1000
    # and 1, Meta-World 200 and 2, MyoSuite 100 and 1: iqrl.core.tasks.SUITES)
    episode_length: int | None = None
    action_repeat: int | None = None  # env steps per agent step; None = the suite's (see episode_length)
    sweep: str = ""  # set by sweeps: which sweep and variant a run belongs to
    variant: str = "default"  # set by sweeps: the variant of the sweep
    overrides: list[str] = field(default_factory=list)  # the variant's overrides, for analysis
    # Trackers beside eval.csv/train.csv (iqrl.core.loggers): csv (always written), tensorboard, wandb.
    logger: list[str] = field(default_factory=lambda: ["csv"])
    video_every: int = 0  # env steps between evaluation videos (RUN/videos/, iqrl.core.render); 0 = none
    # Stochastic and distracting environments, all off by default (iqrl.core.envs.Perturbations;
    # docs/configuration.md).
    obs_noise: float = 0.0  # std of Gaussian noise on every observation entry
    action_noise: float = 0.0  # std of Gaussian noise on the executed action
    sticky_actions: float = 0.0  # probability of executing the previous action again, per agent step
    distractor_dims: int = 0  # observation entries unrelated to the task
    distractor: str = "noise"  # noise (iid N(0, 1)) | signal (sinusoids drawn per episode)
    perturb_eval: bool = True  # false: evaluation without the noises and sticky actions (distractors stay)
    # What the agent sees (iqrl.core.envs.PixelEnv; docs/pixels.md): state vectors, or pixels: the last
    # frame_stack RGB frames of image_size x image_size, rendered after each agent step (Atari: grayscale
    # screens, docs/suites.md). None = the suite's (state; Atari: pixels, 4 frames).
    obs: str | None = None  # state | pixels
    image_size: int = 84  # pixels: frame width and height (SAC+AE, DrQ, TACO, MR.Q's Atari: 84)
    frame_stack: int | None = None  # pixels: frames per observation (SAC+AE, DrQ, TACO: 3; Atari: 4)
    # The suite's protocol (iqrl.core.tasks.Suite.protocols): Atari's mrq (default), mrq-code or atari100k
    # (iqrl.core.tasks.ATARI_PROTOCOLS); `default` for the other suites. None = the suite's first.
    protocol: str | None = None
    # Start from parts of another run (iqrl.core.transfer; docs/transfer.md): its run folder (its latest
    # checkpoint), RUN@<env step> (that checkpoint generation), or a checkpoint file; "" = from scratch.
    init_from: str = ""
    init_parts: list[str] = field(default_factory=lambda: ["representation"])  # the parts init_from loads
    freeze: list[str] = field(default_factory=list)  # parts kept fixed: no optimizer step, no target update
    # GiB the run may take on its device; None = what the device has free when the run starts (CPU: the
    # available RAM; CUDA: the device's free memory). A run whose estimate exceeds it is refused before
    # anything is allocated (iqrl.core.memory; docs/configuration.md).
    memory_limit_gb: float | None = None
    # true: the training env in a worker process of its own (iqrl.core.env_worker), so that the K-seed mode's
    # seeds step their envs at once, one per core (dm_control's step holds the interpreter lock); bitwise the
    # in-process env. The K-seed mode turns it on for K > 1 seeds where the process has K + 1 cores, unless
    # given (iqrl.multiseed.runs.workers_help; docs/performance.md).
    env_workers: bool = False


TOP_LEVEL_KEYS = [f.name for f in fields(RunConfig)]
# The gradient updates one run may ask for (steps x updates_per_step): 10 to 100 times the longest schedules
# published for the agents here (BRO's UTD 10 over 1M DMC steps: 1e7; DQN's 50M agent steps at 1 update per
# 4: 1.25e7), and some 12 days at 1 ms per update. More is a slip of the exponent (updates_per_step=1e6).
MAX_UPDATES = 10**9


def task_file(name: str) -> dict:
    """The parsed task-override file iqrl/configs/<name> ({"groups": {...}, "tasks": {...}}); {} for an agent
    without one (name "")."""
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
        entry = registry.get_entry(name)
    except KeyError as e:
        raise ConfigError(str(e).strip("'\"")) from None
    agent_cls = registry.config_class(name)
    # Task first: its overrides depend on it. A multi-task run merges each task's overrides in the list's
    # order (a later task's value wins).
    tasks = task_list(_task_arg(overrides))
    try:
        for task in tasks:
            check_task(task)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    base = OmegaConf.structured(RunConfig(agent=agent_cls(name=name)))
    layers = [{"agent": entry.preset}] + [
        {"agent": o} for task in tasks for o in _task_overrides(entry, task, agent_cls)
    ]
    try:
        cfg = OmegaConf.merge(base, *layers, OmegaConf.from_dotlist(overrides))
        run: RunConfig = OmegaConf.to_object(cfg)
    except OmegaConfBaseException as e:
        raise ConfigError(_explain(e, agent_cls)) from None
    run.agent.name = name
    run.task = tasks[0] if len(tasks) == 1 else tasks  # `task=[walker-walk]` is the single-task run
    suite = suite_of(tasks[0])  # a multi-task run's tasks share spaces: one suite
    run.action_repeat = suite.action_repeat if run.action_repeat is None else run.action_repeat
    run.episode_length = suite.episode_length if run.episode_length is None else run.episode_length
    run.obs = suite.observations[0] if run.obs is None else run.obs
    run.frame_stack = suite.frame_stack if run.frame_stack is None else run.frame_stack
    run.protocol = suite.protocols[0] if run.protocol is None else run.protocol
    validate(run)
    if not run.out:
        run.out = os.path.join("runs", name, task_label(run.task), f"seed{run.seed}")
    return run


def _task_arg(overrides: list[str]) -> str | list[str]:
    """The value of the last `task=` override (a name or a list of names), else the default task."""
    args = [arg for arg in overrides if arg.startswith("task=")]
    if not args:
        return RunConfig.task
    raw = args[-1].partition("=")[2]
    try:
        task = OmegaConf.to_container(OmegaConf.from_dotlist(args[-1:]))["task"]
    except OmegaConfBaseException as e:
        raise ConfigError(f"invalid value for task: {e}") from None
    if isinstance(task, dict):  # YAML reads `gym:` or `gym: Hopper-v4` as a mapping: keep what was typed
        task = raw
    if not (
        isinstance(task, str) or (isinstance(task, list) and task and all(isinstance(t, str) for t in task))
    ):
        raise ConfigError(f"task must be a task name or a list of task names, got {task!r}")
    return task


def float_keys(cls: type) -> list[str]:
    """The fields of dataclass `cls` whose declared type admits a float (float, float | None,
    list[float], ...)."""
    hints = get_type_hints(cls)
    return [f.name for f in fields(cls) if _admits_float(hints[f.name])]


def _admits_float(tp) -> bool:
    if tp is float:
        return True
    return typing.get_origin(tp) in (typing.Union, types.UnionType, list, tuple) and any(
        _admits_float(a) for a in typing.get_args(tp)
    )


def validate_finite(run: RunConfig) -> None:
    """Every float key of the run config and of its agent's config is a finite number: YAML reads inf, .inf
    and 1e400 as infinity, which no key means (nan fails the range checks too, but names no cause)."""
    keyed = [(k, getattr(run, k)) for k in float_keys(RunConfig)]
    keyed += [(f"agent.{k}", getattr(run.agent, k)) for k in float_keys(type(run.agent))]
    for key, value in keyed:
        values = value if isinstance(value, (list, tuple)) else [value]
        bad = [v for v in values if isinstance(v, float) and not math.isfinite(v)]
        if bad:
            raise ConfigError(f"{key} must be a finite number, got {value}")


def validate(run: RunConfig) -> None:
    validate_finite(run)
    # numpy and dm_control take seeds in [0, 2**32); the eval env is seeded seed + offset (offset 0 with
    # agent.official_shared_eval_seed).
    offset = eval_seed(0, run.agent.official_shared_eval_seed)
    max_seed = SEED_LIMIT - 1 - offset
    first = task_list(run.task)[0]  # a multi-task run's tasks are of one suite (their spaces agree)
    suite_name, suite = split_task(first)[0], suite_of(first)
    longest = suite.max_episode_length
    checks = [
        (
            0 <= run.seed <= max_seed,
            f"seed must be in 0..{max_seed} (env seeds are < 2**32 and the eval env uses seed + {offset}), "
            f"got {run.seed}",
        ),
        (run.steps >= 1, f"steps must be >= 1, got {run.steps}"),
        (run.seed_steps >= 0, f"seed_steps must be >= 0, got {run.seed_steps}"),
        (
            run.updates_per_step is None or run.updates_per_step >= 0,
            f"updates_per_step must be >= 0, got {run.updates_per_step}",
        ),
        (
            run.replay_capacity is None or run.replay_capacity == 0 or run.replay_capacity >= 1000,
            f"replay_capacity must be 0 (unbounded) or >= 1000 transitions, got {run.replay_capacity}",
        ),
        (run.eval_every >= 1, f"eval_every must be >= 1, got {run.eval_every}"),
        (run.eval_episodes >= 1, f"eval_episodes must be >= 1, got {run.eval_episodes}"),
        (run.diag_every >= 1, f"diag_every must be >= 1, got {run.diag_every}"),
        (run.checkpoint_every >= 1, f"checkpoint_every must be >= 1, got {run.checkpoint_every}"),
        (run.action_repeat >= 1, f"action_repeat must be >= 1, got {run.action_repeat}"),
        # the env step is the clock: budgets and the steps things happen at are whole agent steps
        *(
            (
                run.action_repeat < 1 or getattr(run, key) % run.action_repeat == 0,
                f"{key} must be a multiple of action_repeat ({run.action_repeat}: an agent step is that many "
                f"env steps), got {getattr(run, key)}",
            )
            for key in ("steps", "eval_every", "diag_every", "checkpoint_every")
        ),
        # `and`: no modulo by an action_repeat < 1 (the check above reports it first)
        (
            run.action_repeat >= 1
            and 1 <= run.episode_length <= longest
            and run.episode_length % run.action_repeat == 0,
            f"episode_length must be in 1..{longest} and a multiple of action_repeat ({suite_name} tasks), "
            f"got {run.episode_length}",
        ),
        (
            run.obs in suite.observations or run.obs not in OBSERVATIONS,
            f"obs={run.obs}: {suite_name} tasks are seen as {' or '.join(suite.observations)} (obs=), not "
            f"{run.obs} ({run.task})",
        ),
        (
            "pixels" in suite.observations or run.video_every == 0,
            f"video_every records the frames of suites with pixels (DMC, Atari): not {run.task}",
        ),
        (
            run.protocol in suite.protocols,
            f"protocol must be one of {', '.join(suite.protocols)} on {suite_name} tasks, "
            f"got {run.protocol!r}",
        ),
        (
            run.device == "auto" or run.device == "cpu" or run.device.startswith("cuda"),
            f"device must be cpu, cuda, cuda:N or auto, got {run.device!r}",
        ),
        (
            run.precision in ("fp32", "bf16", "tf32"),
            f"precision must be fp32, bf16 or tf32 (CUDA), got {run.precision!r}",
        ),
        (
            run.compile or not run.cudagraphs,
            "cudagraphs=true captures the compiled loss functions as CUDA graphs: set compile=true too",
        ),
        (
            set(run.logger) <= set(LOGGERS),
            f"logger entries must be among {', '.join(LOGGERS)}, got {run.logger}",
        ),
        (run.video_every >= 0, f"video_every must be >= 0 (0 = no videos), got {run.video_every}"),
        (
            run.obs_noise >= 0 and run.action_noise >= 0,
            f"obs_noise and action_noise must be >= 0, got {run.obs_noise} and {run.action_noise}",
        ),
        (0 <= run.sticky_actions < 1, f"sticky_actions must be in [0, 1), got {run.sticky_actions}"),
        (run.distractor_dims >= 0, f"distractor_dims must be >= 0, got {run.distractor_dims}"),
        (
            run.memory_limit_gb is None or run.memory_limit_gb > 0,
            f"memory_limit_gb must be > 0 GiB (or null: the device's free memory), got {run.memory_limit_gb}",
        ),
        (
            run.distractor in DISTRACTORS,
            f"distractor must be one of {', '.join(DISTRACTORS)}, got {run.distractor!r}",
        ),
    ]
    require(checks, ConfigError)
    validate_actions(run)
    validate_observation(run)
    validate_transfer(run)
    validate_effect(run)
    validate_tasks(run)
    try:
        run.agent.validate()
    except ValueError as e:
        msg = str(e)
        raise ConfigError(msg if msg.startswith("agent.") else f"agent.{msg}") from None
    validate_rate(run)


def validate_actions(run: RunConfig) -> None:
    """The agent acts in the kind of action space the task has (Agent.ACTION_SPACES; a suite's kind is
    iqrl.core.tasks.Suite.actions); action_noise perturbs continuous actions only."""
    task = task_list(run.task)[0]  # a multi-task run's tasks are of one suite
    kind = suite_of(task).actions
    refusal = registry.action_refusal(run.agent.name, task_label(run.task), kind)
    if refusal:
        raise ConfigError(refusal)
    require(
        [
            (
                kind == "box" or not run.action_noise,
                f"action_noise perturbs continuous actions; task {task} has discrete actions: leave it 0",
            ),
            (
                split_task(task)[0] != "atari" or not run.sticky_actions,
                "Atari's sticky actions are its protocol's (ALE's, per frame; protocol=mrq: 0.25): leave "
                "sticky_actions 0",
            ),
        ],
        ConfigError,
    )


def multitask_agents() -> list[str]:
    """The agents a task list (one multi-task run) works with: Agent.MULTITASK."""
    return [name for name in registry.agent_names() if registry.agent_class(name).MULTITASK]


def validate_tasks(run: RunConfig) -> None:
    """A task list: distinct tasks with one observation width and action width, an agent conditioned on the
    task (Agent.MULTITASK), and none of the paths multi-task runs do not have yet (videos, pixels)."""
    tasks = task_list(run.task)
    if len(tasks) == 1:
        return
    spaces = {task: task_spaces(task) for task in tasks}
    first = tasks[0]
    other = next((t for t in tasks if spaces[t] != spaces[first]), None)
    checks = [
        (len(set(tasks)) == len(tasks), f"task lists each task once, got {tasks}"),
        (
            other is None,
            f"the tasks of a multi-task run share observation and action spaces: {first} has observation "
            f"width {spaces[first][0]} and {spaces[first][1].describe()}, {other} has "
            f"{spaces[other or first][0]} and {spaces[other or first][1].describe()}",
        ),
        (
            registry.agent_class(run.agent.name).MULTITASK,
            f"agent {run.agent.name} trains one task per run; a task list works with "
            f"{', '.join(multitask_agents())}",
        ),
        (run.obs == "state", "a task list (multi-task run) works with obs=state only"),
        (run.video_every == 0, "a task list (multi-task run) records no videos: leave video_every=0"),
    ]
    require(checks, ConfigError)


def pixel_agents() -> list[str]:
    """The agents obs=pixels works with: built for pixels (Agent.PIXELS) and not refused by their preset
    (iqrl-ae's decoder rebuilds state vectors) at the default image size or at 64 (DreamerV3's frames, whose
    image stages halve them four times)."""
    names = []
    for name in registry.agent_names():
        if registry.agent_class(name).PIXELS:
            cfg = registry.config_class(name)(name=name, **registry.get_entry(name).preset)
            for size in (84, 64):
                try:
                    cfg.validate_pixels(size)
                except ValueError:
                    continue
                names.append(name)
                break
    return names


def validate_observation(run: RunConfig) -> None:
    """obs and its keys; pixels only for agents built for them, and without the state-vector noises."""
    pixel_encoder = registry.agent_class(run.agent.name).PIXELS
    checks = [
        (run.obs in OBSERVATIONS, f"obs must be one of {', '.join(OBSERVATIONS)}, got {run.obs!r}"),
        (16 <= run.image_size <= 512, f"image_size must be in 16..512 pixels, got {run.image_size}"),
        (1 <= run.frame_stack <= 16, f"frame_stack must be in 1..16, got {run.frame_stack}"),
    ]
    if run.obs == "pixels":
        checks += [
            (
                pixel_encoder,
                f"agent {run.agent.name} has no pixel encoder; obs=pixels works with "
                f"{', '.join(pixel_agents()) if not pixel_encoder else ''}",
            ),
            (
                not run.obs_noise and not run.distractor_dims,
                "obs_noise and distractor_dims perturb state vectors: with obs=pixels leave them 0",
            ),
        ]
    require(checks, ConfigError)
    if run.obs == "pixels":
        try:
            run.agent.validate_pixels(run.image_size)
        except ValueError as e:
            raise ConfigError(f"obs=pixels: {e}") from None


def validate_transfer(run: RunConfig) -> None:
    """init_parts and freeze name parts of the agent (Agent.TRANSFER_PARTS), each once; optimizers have no
    weights to keep fixed. Whether a named part exists in this configuration (td3 from states learns no
    representation) is checked on the built agent (iqrl.core.transfer.check_transfer)."""
    names = list(registry.agent_class(run.agent.name).TRANSFER_PARTS)
    if not names and (run.init_from or run.freeze):
        raise ConfigError(
            f"agent {run.agent.name} names no parts to transfer: init_from and freeze need some"
        )
    for key in ("init_parts",) * bool(run.init_from) + ("freeze",):
        value = list(getattr(run, key))
        unknown = [v for v in value if v not in names]
        require(
            [
                (
                    not unknown,
                    f"{key}: {', '.join(map(str, unknown))} is not a part of {run.agent.name} "
                    f"(its parts: {', '.join(names)})",
                ),
                (len(set(value)) == len(value), f"{key} names a part twice: {value}"),
            ],
            ConfigError,
        )
    require(
        [
            (not run.init_from or run.init_parts, "init_from needs init_parts to name at least one part"),
            ("optimizers" not in run.freeze, "freeze: optimizers hold no weights to keep fixed"),
        ],
        ConfigError,
    )


def validate_effect(run: RunConfig) -> None:
    """Keys set away from their defaults where they change nothing in this run are refused: the user meant
    something (a forgotten key beside them), and a sweep variant built on them would be named for a
    difference its runs do not have. Keys whose default is inert here (image_size with obs=state) pass."""
    default = RunConfig()
    perturbed = run.obs_noise or run.action_noise or run.sticky_actions
    checks = [
        (
            run.init_from or run.init_parts == default.init_parts,
            f"init_parts={run.init_parts} names what init_from loads: set init_from too, or leave init_parts "
            "out",
        ),
        (
            run.distractor_dims or run.distractor == default.distractor,
            f"distractor={run.distractor} is the kind of the distractor entries: set distractor_dims > 0 "
            "too, or leave distractor out",
        ),
        (
            run.obs == "pixels"
            or (run.image_size, run.frame_stack)
            == (default.image_size, suite_of(task_list(run.task)[0]).frame_stack),
            "image_size and frame_stack shape pixel observations: set obs=pixels too, or leave them out",
        ),
        (
            perturbed or run.perturb_eval,
            "perturb_eval=false evaluates without obs_noise, action_noise and sticky_actions: set one of "
            "them too, or leave perturb_eval out",
        ),
    ]
    require(checks, ConfigError)


def validate_rate(run: RunConfig) -> None:
    """The run's rate of gradient updates, where a key sets it: `updates_per_step`, else the agent's own
    update-to-data ratio where it is a key (AgentConfig.UTD_KEY: updates per agent step; other agents' default
    rates are fixed, at most 1 per env step). Refused: a rate that asks for more than MAX_UPDATES updates over
    `steps`, and `updates_per_step` beside an agent's own ratio where the two disagree: the run key would
    replace the agent's ratio without a word (the trainer takes it first), and SimbaV2 also decays its
    learning rate over its ratio's updates."""
    key, repeat = type(run.agent).UTD_KEY, run.action_repeat
    utd = run.agent.updates_per_agent_step(
        run.obs == "pixels"
    )  # updates per agent step (the key may count otherwise)
    if run.updates_per_step is not None:
        given, value, rate, unit = "updates_per_step", run.updates_per_step, run.updates_per_step, "env step"
    elif key is not None:
        given, value, unit = f"agent.{key}", getattr(run.agent, key), "agent step"
        rate = utd / repeat
    else:
        return
    if rate * run.steps > MAX_UPDATES:
        raise ConfigError(
            f"{given}={value} over steps={run.steps} asks for {rate * run.steps:.3g} gradient updates, more "
            f"than the {MAX_UPDATES:,} a run may take: lower {given} (gradient updates per {unit})"
        )
    if key is None or run.updates_per_step is None:
        return
    if not math.isclose(run.updates_per_step * repeat, utd):
        value, fix = getattr(run.agent, key), run.agent.utd_key_value(run.updates_per_step * repeat)
        raise ConfigError(
            f"updates_per_step={run.updates_per_step} and agent.{key}={value} disagree: {run.agent.name}'s "
            f"update-to-data ratio is agent.{key} ({type(run.agent).UTD_UNIT}; {value} is {utd / repeat:g} "
            f"per env step at action_repeat {repeat}), which updates_per_step would replace: set "
            f"agent.{key}={fix:g} instead and leave updates_per_step out"
        )


def observation(run: RunConfig) -> Observation:
    """The run's observation settings (iqrl.core.envs.make_env)."""
    return Observation(run.obs, run.image_size, run.frame_stack)


def to_yaml_dict(run: RunConfig) -> dict:
    """Plain dict of the resolved config (what config.yaml holds, before `meta`)."""
    d = OmegaConf.to_container(OmegaConf.structured(run), resolve=True)
    return d


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


def perturbations(run: RunConfig, evaluation: bool = False) -> Perturbations:
    """The env perturbations of a run; for evaluation with perturb_eval=false only the distractors (the
    observation keeps its width)."""
    if evaluation and not run.perturb_eval:
        return Perturbations(distractor_dims=run.distractor_dims, distractor=run.distractor)
    return Perturbations(
        run.obs_noise, run.action_noise, run.sticky_actions, run.distractor_dims, run.distractor
    )
