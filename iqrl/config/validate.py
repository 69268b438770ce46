"""The checks of a resolved run config: ranges, finiteness, and keys that must agree with each other, the
task and the agent. Each raises ConfigError with one line naming the key and what it may be."""

from __future__ import annotations

import math
import types
import typing
from dataclasses import fields
from typing import get_type_hints

from iqrl.config.run import MAX_UPDATES, ConfigError, RunConfig, pixel_defaults
from iqrl.core import registry
from iqrl.core.checks import require
from iqrl.envs.make import OBSERVATIONS, SEED_LIMIT, task_spaces
from iqrl.envs.perturb import DISTRACTORS
from iqrl.envs.tasks import (
    SUITES,
    AtariProtocol,
    atari_protocol,
    eval_seed,
    split_task,
    suite_of,
    task_label,
    task_list,
)
from iqrl.runfolder.loggers import LOGGERS


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
        (run.cohorts >= 1, f"cohorts must be >= 1, got {run.cohorts}"),
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
    validate_protocol_changes(run.protocol_changes)
    validate_budget_repeat(run)
    validate_transfer(run)
    validate_effect(run)
    validate_tasks(run)
    validate_train_envs(run)
    try:
        run.agent.validate()
    except ValueError as e:
        msg = str(e)
        raise ConfigError(msg if msg.startswith("agent.") else f"agent.{msg}") from None
    validate_rate(run)


def warnings_of(run: RunConfig) -> list[str]:
    """What a valid run config does that its user may not expect, one line each (the commands print them as
    `warning:` lines before anything else)."""
    out = []
    if run.steps < run.seed_steps:
        out.append(
            f"steps={run.steps} ends inside the seed phase (seed_steps={run.seed_steps}; where not given, "
            f"{run.agent.name}'s code's): every episode acts at random and the run takes no gradient update"
        )
    return out


def validate_actions(run: RunConfig) -> None:
    """The agent acts in the kind of action space the task has (Agent.ACTION_SPACES; a suite's kind is
    iqrl.envs.tasks.Suite.actions); action_noise perturbs continuous actions only."""
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


# The most training envs one run builds: 16 times the most an agent's code runs (DreamerV3's 16), and each
# env a simulation, an open episode and a replay in this process. More is a slip of a digit.
MAX_TRAIN_ENVS = 256


def validate_train_envs(run: RunConfig) -> None:
    """train_envs: at least one; several only for an agent that acts for each from its own state (its config
    declares TRAIN_ENVS) and a run of one task."""
    n = 1 if run.train_envs is None else run.train_envs
    if n == 1:
        return
    takers = [a for a in registry.agent_names() if registry.config_class(a).TRAIN_ENVS]
    checks = [
        (1 <= n <= MAX_TRAIN_ENVS, f"train_envs must be in 1..{MAX_TRAIN_ENVS}, got {n}"),
        (
            bool(registry.config_class(run.agent.name).TRAIN_ENVS),
            f"train_envs={n}: agent {run.agent.name} acts for one training env; several work with "
            f"{', '.join(takers)}",
        ),
        (len(task_list(run.task)) == 1, f"train_envs={n}: a task list (multi-task run) takes one env"),
    ]
    require(checks, ConfigError)


# The frame sizes obs=pixels renders (the run key image_size), in pixels.
IMAGE_SIZES = range(16, 513)


def smallest_image_size(cfg) -> int | None:
    """The smallest frame size of IMAGE_SIZES that the agent config `cfg` takes from pixels
    (AgentConfig.validate_pixels: MR.Q's encoder needs 31, a crop needs frames larger than itself), or None
    where it takes none (iqrl-ae's decoder rebuilds state vectors)."""
    for size in IMAGE_SIZES:
        try:
            cfg.validate_pixels(size)
            return size
        except ValueError:
            continue
    return None


def pixel_sizes() -> dict[str, int]:
    """The agents obs=pixels works with, each with the smallest image_size it takes (its preset's config):
    built for pixels (Agent.PIXELS) and not refused at every size by their preset."""
    sizes = {}
    for name in registry.agent_names():
        if registry.agent_class(name).PIXELS:
            size = smallest_image_size(
                registry.config_class(name)(name=name, **registry.get_entry(name).preset)
            )
            if size is not None:
                sizes[name] = size
    return sizes


def pixel_agents() -> list[str]:
    """The agents obs=pixels works with (`pixel_sizes`: an agent that needs frames larger than the default
    image_size among them)."""
    return list(pixel_sizes())


def described_pixel_agents() -> str:
    """The agents obs=pixels works with, as a refusal names them: each whose default image_size is below the
    smallest it takes with that smallest (`curl (image_size >= 85)`)."""
    default = {n: pixel_defaults(n, SUITES["dmc"], "pixels")["image_size"] for n in registry.agent_names()}
    return ", ".join(
        name if size <= default[name] else f"{name} (image_size >= {size})"
        for name, size in pixel_sizes().items()
    )


def validate_observation(run: RunConfig) -> None:
    """obs and its keys; pixels only for agents built for them, and without the state-vector noises; an agent
    that learns from pixels only (Agent.PIXELS_ONLY) only from them."""
    agent = registry.agent_class(run.agent.name)
    pixel_encoder = agent.PIXELS
    checks = [
        (run.obs in OBSERVATIONS, f"obs must be one of {', '.join(OBSERVATIONS)}, got {run.obs!r}"),
        (
            IMAGE_SIZES.start <= run.image_size < IMAGE_SIZES.stop,
            f"image_size must be in {IMAGE_SIZES.start}..{IMAGE_SIZES.stop - 1} pixels, got {run.image_size}",
        ),
        (1 <= run.frame_stack <= 16, f"frame_stack must be in 1..16, got {run.frame_stack}"),
    ]
    if run.obs == "pixels":
        checks += [
            (
                pixel_encoder,
                f"agent {run.agent.name} has no pixel encoder; obs=pixels works with "
                f"{described_pixel_agents() if not pixel_encoder else ''}",
            ),
            (
                not run.obs_noise and not run.distractor_dims,
                "obs_noise and distractor_dims perturb state vectors: with obs=pixels leave them 0",
            ),
        ]
    elif run.obs in OBSERVATIONS:
        with_pixels = [name for name, suite in SUITES.items() if "pixels" in suite.observations]
        checks.append(
            (
                not agent.PIXELS_ONLY,
                f"agent {run.agent.name} learns from pixels only: leave obs unset (or obs=pixels) on a task "
                f"of {', '.join(with_pixels)}, not obs={run.obs} ({task_label(run.task)})",
            )
        )
    require(checks, ConfigError)
    if run.obs == "pixels":
        try:
            run.agent.validate_pixels(run.image_size)
        except ValueError as e:
            raise ConfigError(f"obs=pixels: {e}") from None


def validate_budget_repeat(run: RunConfig) -> None:
    """An Atari protocol whose budget counts agent steps of a frame skip (AtariProtocol.budget_repeat: Atari
    100k's 100k agent steps of 4 frames) runs at that action_repeat: another would keep its frames and change
    its agent steps, neither the protocol's interactions nor its frame skip."""
    if split_task(task_list(run.task)[0])[0] != "atari":  # the protocol is one of Atari's: checked before
        return
    protocol = atari_protocol(run.protocol, run.protocol_changes)
    skip, budget = protocol.budget_repeat, protocol.steps
    repeat = run.action_repeat
    if skip and repeat != skip:
        raise ConfigError(
            f"protocol={run.protocol} is {budget // skip:,} agent steps of {skip} frames ({budget:,} "
            f"frames); action_repeat={repeat} would make them {budget // repeat:,} agent steps of {repeat}: "
            f"leave action_repeat at {skip}, or choose another protocol (mrq)"
        )


def validate_protocol_changes(changes) -> None:
    """protocol_changes: a mapping of AtariProtocol's settings to values of their kind (a switch true or
    false; a count, a whole number >= 0; a probability in [0, 1); a reward clip >= 0)."""
    kinds = get_type_hints(AtariProtocol)
    if not isinstance(changes, dict):
        raise ConfigError(
            f"protocol_changes must be a mapping of settings to values ({{}}: none), got {changes!r}"
        )
    for key, v in changes.items():
        if key not in kinds:
            raise ConfigError(
                f"protocol_changes: {key} is not a protocol setting; they are {', '.join(kinds)}"
            )
        kind, number = kinds[key], isinstance(v, (int, float)) and not isinstance(v, bool)
        high = 1.0 if key in ("sticky_actions", "eval_epsilon") else math.inf
        fits = {bool: isinstance(v, bool), int: number and v == int(v) and v >= 0}.get(
            kind, number and 0 <= v < high
        )
        if not fits:
            raise ConfigError(f"protocol_changes: {key}={v!r} is not a value of its kind ({kind.__name__})")


def validate_transfer(run: RunConfig) -> None:
    """init_parts and freeze name parts of the agent (Agent.TRANSFER_PARTS), each once; optimizers have no
    weights to keep fixed. Whether a named part exists in this configuration (td3 from states learns no
    representation) is checked on the built agent (iqrl.loop.transfer.check_transfer)."""
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
            or [run.frame_stack, run.image_size]
            == list(pixel_defaults(run.agent.name, suite_of(task_list(run.task)[0]), run.obs).values()),
            "image_size and frame_stack shape pixel observations: set obs=pixels too, or leave them out",
        ),
        (
            split_task(task_list(run.task)[0])[0] == "atari" or not run.protocol_changes,
            f"protocol_changes={run.protocol_changes} changes an Atari protocol's settings: leave it out on "
            f"{task_label(run.task)}",
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
    # updates per agent step (the key may count otherwise)
    utd = run.agent.updates_per_agent_step(run.obs == "pixels")
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
