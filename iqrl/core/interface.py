"""The one agent interface, and the registry that maps agent names to implementations.

The trainer, sweeps and analysis know an agent only through this interface:

* `spec` (AgentSpec): the batch it needs (window length L = max(horizon, n-step), batch size), its
  default updates per env step and how seed-phase actions are chosen.
* `act(obs, explore)`: obs [*obs_shape] or [N, *obs_shape] numpy -> action(s): in a box, float32 [act_dim] or
  [N, act_dim] in [-1, 1]; with discrete actions, int64 indices in 0..n-1, of shape [] or [N].
* the actions (iqrl/core/spaces.py): an agent acts in the kinds of action space its class lists in
  `ACTION_SPACES` (default: a box only). Its constructor's `act_dim` is the action's width (the box's dims, or
  n for n discrete actions); a class that lists "discrete" also gets the keyword `action_spec` (the task's
  ActionSpec, a box's too). A task whose kind the agent lacks is refused by the config (one line).
* the observations: with `obs=state` (the default) float32 vectors and the constructor's `obs_dim` their
  width (an int); with `obs=pixels` uint8 frame stacks [C, H, W] (3 channels per frame, the newest frame
  last) and `obs_dim` that shape (a tuple). Only agents with PIXELS = True are built for pixels (the config
  refuses the others); `pixel_shape(obs_dim)` tells the two apart. An agent with PIXELS_ONLY = True (CURL's
  crops) learns from pixels only: its runs see pixels where the task has them (obs unset), obs=state is
  refused, and the registry-wide tests build it from tiny frame stacks.
* `update(replay, step)`: one gradient step; samples what it needs from the replay and returns a flat
  dict of scalar metrics (floats or 0-d tensors; the trainer syncs them once per episode). A metric that is
  not smooth in the parameters (an accuracy, an argmax) is named in NONSMOOTH_METRICS with how far the tests
  let it move where float rounding flips a near-tie (the K-seed and compiled modes sum in other orders).
* `on_episode_start(training)`: called right after every environment reset (training episodes, seed
  episodes included, with training=True; evaluation episodes with training=False). For per-episode
  acting state: DCWM's MPPI warm start, TCRL's episode-indexed sigma. Optional (default: nothing).
* `on_episode_end()`: per-episode schedules (exploration noise), called after each training episode.
* `observe(obs, reward, done)`: every observation of a training episode as it is collected (seed episodes
  included), for statistics of the data (SimbaV2's normalisers). Optional (default: nothing).
* `state_dict()` / `load_state_dict()`: networks, targets, optimizers, counters and RNG state.
* `TRANSFER_PARTS`: the agent's named parts (representation, actor, critic, optimizers), what a run may
  load from another run's checkpoint (`init_from`, `init_parts`) or keep fixed (`freeze`;
  iqrl/loop/transfer.py).
* multi-task runs (a task list; docs/transfer.md): an agent with MULTITASK = True is built with the keyword
  `num_tasks` (> 1) and samples a `MultiTaskReplay`; `task` is the index of the task that the following `act`
  calls and episodes are of (the trainer sets it before each episode). Other agents are refused by the config.
* `latent(obs)` [n, D] and `codes(obs)` [n, G] (+ `codebook_size`, `latent_width`) for diagnostics, where
  they exist; `probe_q(obs, action)` (the online critic's Q) and `predict_latents(obs, action)` (the latent
  model's k-step predictions beside their targets) for the representation diagnostics, where the agent has a
  critic on its latent and a latent model, and `probe_actor(obs)` (the online actor's deterministic action)
  where it has an actor on its latent (iqrl/loop/latent_probe.py); with `probe_q`, `value_discount()` and
  `value_rewards(r)` (the discount and the rewards the critic's returns are made of) for the Q-bias of
  evaluation episodes (iqrl/loop/evaluation.py); `exploration_sigma` (the current
  exploration std, for train.csv) where the agent has one.

Every agent's config dataclass derives from `AgentConfig` (the keys all agents share); one built from shared
pieces (a learner, a latent model, an encoder) composes their configs with `compose`.

A new agent is one module, a registry line below and a task file in iqrl/configs (docs/extending.md);
tests/test_conformance.py runs every registered agent through this interface.
"""

from __future__ import annotations

import abc
import contextlib
import copy
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, get_type_hints

import numpy as np
import torch
from torch import Tensor, nn

from iqrl.core.checks import Refused
from iqrl.core.schedule import PerEpisode, SeedPhase, UpdateSchedule
from iqrl.core.update import Updater, graph_step, to_tensor  # noqa: F401 (to_tensor: every `act`'s first step)
from iqrl.nn.layers import global_random_module

#: The evaluation generator's seed: the agent's seed + this (apart from the seeds of every other stream).
EVAL_GENERATOR_OFFSET = 1_000_033
#: The acting generators' seeds (`Agent.init_act_generators`): the agent's seed + this times 1 (training) or
#: 2 (evaluation).
ACT_GENERATOR_OFFSET = 1_000_003


@dataclass
class AgentConfig:
    """Keys every agent has (`agent.<key>`): the base of each agent's config dataclass."""

    # The parts `compose` joined, by role (role -> part class); none for a config of its own keys only.
    PARTS: ClassVar[dict[str, type]] = {}
    # The tests' tiny sizes of this config (key -> value: hidden widths, batch size, latent sizes, planner
    # samples), which `make test-agent` and every registry-wide test train it at; `compose` puts its parts'
    # own TINY first, this class's after. tests/test_conformance.py::test_tiny_sizes_are_small says what to
    # declare when the tiny agent is not small.
    TINY: ClassVar[dict[str, Any]] = {}
    # The key holding the agent's update-to-data ratio (updates per agent step: AgentSpec's
    # updates_per_agent_step) where it has one (BRO, SimbaV2, CrossQ: "utd"); the run key `updates_per_step`
    # would replace it, so the run config refuses the two where they disagree (config.validate_rate).
    UTD_KEY: ClassVar[str | None] = None
    # What the UTD_KEY counts, as the run config's refusal names it; an agent whose key counts otherwise than
    # updates per agent step converts it (`updates_per_agent_step`, `utd_key_value`: DreamerV3's train_ratio
    # counts replayed steps).
    UTD_UNIT: ClassVar[str] = "updates per agent step"
    # The seed phase of the agent's code (iqrl.core.schedule.SeedPhase, with its source lines): the default of
    # the run key seed_steps. None: the harness's 10,000 env steps (HARNESS_SEED_PHASE). A registry preset
    # whose code seeds otherwise gives its own (AgentEntry.seed_phase).
    SEED_PHASE: ClassVar[SeedPhase | None] = None
    # obs=pixels: the frames of the agent's code where they are not the harness's (frame_stack: the suite's;
    # image_size: 84), the defaults of those run keys (DreamerV3: one frame of 64 pixels).
    PIXEL_FRAMES: ClassVar[dict[str, int]] = {}
    # The agent's code's changes to the Atari protocols' settings (iqrl.envs.tasks.AtariProtocol's fields,
    # with the code's lines): the default of the run key protocol_changes, each where the run's protocol
    # differs (DreamerV3 learns from unclipped rewards under atari100k, which clips them for the other agents
    # as BBF's runner did). {}: the protocols as they are.
    PROTOCOL_CHANGES: ClassVar[dict[str, Any]] = {}
    # The training envs the agent's code collects from at once, per suite (suite name -> count, with the
    # code's lines in a comment): the default of the run key train_envs (1 where a suite is not named). An
    # agent that declares them acts for each env from that env's own state (`Agent.select_train_env`); {}: it
    # collects from one env, and train_envs > 1 is refused.
    TRAIN_ENVS: ClassVar[dict[str, int]] = {}

    # IQ-10, a quirk of the official iQRL code (docs/faithfulness.md): the evaluation env gets the training
    # env's
    # seed. Default: train seed + EVAL_SEED_OFFSET (10000). On in the `iqrl-official` preset.
    official_shared_eval_seed: bool = False

    def validate(self) -> None:
        """Raise ValueError (one line, naming the key) for a bad value. Here each part's own checks; an agent
        config checks its own keys, and those that combine parts, after `super().validate()`."""
        for role in self.PARTS:
            getattr(self, role).validate()

    def updates_per_agent_step(self, pixels: bool = False) -> float | None:
        """The update-to-data ratio UTD_KEY sets, in updates per agent step (AgentSpec.updates_per_agent_step)
        for a run from pixels or states: the key's value; None without a key."""
        return None if self.UTD_KEY is None else getattr(self, self.UTD_KEY)

    def utd_key_value(self, updates_per_agent_step: float) -> float:
        """The value of UTD_KEY that gives `updates_per_agent_step` (what the run config's refusal
        suggests)."""
        return updates_per_agent_step

    def kseed_refusal(self) -> str | None:
        """Why the K-seed mode (iqrl/multiseed/) cannot train this config, in one line, or None: it runs any
        update whose networks change only through the agent's updater. Nothing to refuse by default."""
        return None

    def validate_pixels(self, image_size: int) -> None:
        """The checks of obs=pixels at frames of `image_size` (ValueError, one line): run by the run config
        before anything is built, for agents with PIXELS = True. Nothing to check by default."""


def compose(**parts):
    """Class decorator: the agent config `cls` (an AgentConfig subclass, not yet a dataclass) made of parts,
    the configs of the pieces it shares with other agents, given by role as a class or as an instance whose
    values are this agent's defaults: `@compose(learner=TD3LearnerConfig(num_critics=2), encoder=...)`.

    A part is a plain dataclass that owns its keys and validates only them (`validate()`). The result stays
    one flat dataclass (AgentConfig's keys, then each part's in the order given, then the class's own),
    because every key is `agent.<key>` on the command line, in presets, task files and config.yaml; a key
    owned twice (by two parts, or by a part and the class) is a TypeError at import: a part's default is
    changed by giving the part as an instance. `cfg.<role>` is the part built from the flat keys, what the
    piece is handed (a learner gets `cfg.learner` and sees only its keys); `AgentConfig.validate` validates
    every part.
    """

    def decorate(cls: type[AgentConfig]) -> type[AgentConfig]:
        own = dict(cls.__dict__.get("__annotations__", {}))
        owner = {f.name: "the base class" for f in fields(cls)}
        annotations, cls.PARTS = {}, {}
        for role, part in parts.items():
            defaults = part() if isinstance(part, type) else part
            part_cls = cls.PARTS[role] = type(defaults)
            _claim(owner, role, f"the role {role}", cls)  # `cfg.<role>` names the part, never a key
            types = get_type_hints(part_cls)
            for f in fields(part_cls):
                _claim(owner, f.name, role, cls)
                annotations[f.name] = types[f.name]
                setattr(cls, f.name, _default(getattr(defaults, f.name)))
            setattr(cls, role, _part_view(part_cls))
        for key in own:
            _claim(owner, key, cls.__name__, cls)
        cls.__annotations__ = {**annotations, **own}
        tiny = [getattr(part, "TINY", {}) for part in cls.PARTS.values()] + [cls.__dict__.get("TINY", {})]
        cls.TINY = {k: v for t in tiny for k, v in t.items()}
        return dataclass(cls)

    return decorate


def _claim(owner: dict[str, str], key: str, by: str, cls: type) -> None:
    """Record that `by` owns `key`; a TypeError if another owner has it, or (for a part's key or role) the
    class has that name already (a method or property the key's default would hide)."""
    if key in owner or (by != cls.__name__ and hasattr(cls, key)):
        raise TypeError(f"{cls.__name__}: key {key!r} of {by} is also {owner.get(key, cls.__name__)}'s")
    owner[key] = by


def _default(value):
    """A dataclass default of `value`; a list through a factory, so that no two configs share one."""
    if value.__hash__ is None:
        return field(default_factory=lambda: copy.deepcopy(value))
    return value


def _part_view(part_cls: type) -> property:
    keys = [f.name for f in fields(part_cls)]

    def view(self):
        return part_cls(**{k: getattr(self, k) for k in keys})

    return property(view, doc=f"The {part_cls.__name__} of this config's values of its keys.")


@dataclass
class AgentSpec:
    """What the trainer reads of an agent (`Agent.spec`, set in its constructor): the windows it samples, its
    default rate of gradient updates and how its seed phase acts.

    The default rate is given one of two ways. `updates_per_step`: gradient updates per env step, whatever the
    action repeat makes of it (0.5 = one per agent step at DMC's action repeat 2; iQRL, TD3 and most agents).
    `updates_per_agent_step`: an update-to-data ratio, updates per stored transition (per agent step) at any
    action repeat (BRO, SimbaV2 and CrossQ, from their key `utd`; 0.5: one update every second agent step),
    which replaces `updates_per_step` when given; `rate(action_repeat)` is what the trainer runs, carrying a
    fraction over to the next step. The run key `updates_per_step` overrides either; an agent whose ratio is a
    config key names it in `AgentConfig.UTD_KEY`, and the run config refuses the two where they disagree
    (`iqrl.config.validate.validate_rate`)."""

    seq_len: int  # transitions per sampled window (L)
    batch_size: int
    updates_per_step: float = 0.5  # default gradient updates per env step (0.5 = 1 per agent step)
    # The default as an update-to-data ratio instead: updates per agent step (per stored transition) at any
    # action repeat (BRO, SimbaV2, CrossQ); when given it replaces `updates_per_step` (`rate`).
    updates_per_agent_step: float | None = None
    warmup_with_policy: bool = False  # seed phase: the agent's exploration policy instead of uniform
    # Default FIFO size of the replay in transitions (None: keep and sample every transition). The run's
    # top-level `replay_capacity` overrides it.
    replay_capacity: int | None = None
    # The evaluation env is seeded with the training seed instead of seed + EVAL_SEED_OFFSET. Set by
    # make_agent from `agent.official_shared_eval_seed`, so no agent has to pass it on.
    shared_eval_seed: bool = False
    # The replay's options for an agent with a recurrent state (iqrl/core/replay_options.py): a context of
    # this width (0: none) and dtype per observation, which the agent writes; the online queue of new windows.
    context_dim: int = 0
    context_dtype: torch.dtype = torch.float32
    online_replay: bool = False
    # Samples per update that pass through a network, by its attribute name, where not batch_size x seq_len
    # (the memory estimate's activations, iqrl/loop/memory.py): DreamerV3 imagines from every replayed state.
    network_samples: dict[str, int] = field(default_factory=dict)

    def rate(self, action_repeat: int) -> float:
        """The default gradient updates per env step at `action_repeat`."""
        if self.updates_per_agent_step is None:
            return self.updates_per_step
        return self.updates_per_agent_step / action_repeat


@dataclass(frozen=True)
class Part:
    """A named part of an agent, for transfer between runs (iqrl/loop/transfer.py): the dotted attribute paths
    of its objects (networks and their targets, parameters, optimizers; a path whose attribute is missing or
    None in a given configuration is skipped) and the config keys whose values must agree between two runs
    for the part to mean the same thing in both (shapes are compared separately: these are the keys that
    change what equal shapes compute, such as the quantizer)."""

    paths: tuple[str, ...]
    keys: tuple[str, ...] = ()


def learner_parts(path: str = "learner") -> dict[str, Part]:
    """The actor, critic and optimizer parts of a shared learner (iqrl/learners/) at `path`: SAC's
    temperature goes with its actor, TD3's target actor too."""
    return {
        "actor": Part((f"{path}.actor", f"{path}.actor_target", f"{path}.log_alpha")),
        "critic": Part((f"{path}.critic", f"{path}.critic_target")),
        "optimizers": Part((f"{path}.actor_opt", f"{path}.critic_opt", f"{path}.alpha_opt")),
    }


def _split(entry: str) -> tuple[str, str]:
    key, _, path = entry.partition("=")
    return key, path or key


_REQUIRED = object()


def _get(obj, path: str, default=_REQUIRED):
    for part in path.split("."):
        obj = getattr(obj, part) if default is _REQUIRED else getattr(obj, part, default)
    return obj


def _set(obj, path: str, value) -> None:
    *parents, last = path.split(".")
    for part in parents:
        obj = getattr(obj, part)
    setattr(obj, last, value)


class Agent(abc.ABC):
    """Base class: subclasses call `super().__init__(cfg, device, seed)`, set `spec`, implement act and
    update, and name their state in STATE_OBJECTS / STATE_VALUES.

    The checkpointed state is declared, not written out: `state_dict()` holds, under their names,
    STATE_OBJECTS (networks, targets, optimizers: anything with its own state_dict; an attribute that is None
    is left out), STATE_VALUES (plain attributes: counters, floats, tensors that are replaced, never changed
    in place), and the agent's torch `generator`. An entry "key=path" stores the attribute at a dotted path
    under `key` (e.g. "ac_extra=learner.extra", the learner's counters and optimizers).
    """

    spec: AgentSpec
    STATE_OBJECTS: tuple[str, ...] = ()
    STATE_VALUES: tuple[str, ...] = ()
    # Whether the agent learns from pixel observations (obs=pixels: a convolutional encoder in front).
    PIXELS: bool = False
    # Whether it learns from pixels only (PIXELS too): obs=state is refused, a run without `obs` sees pixels,
    # and the registry-wide tests build it from pixels at their tiny size (tests/conftest.py, tiny_keys).
    PIXELS_ONLY: ClassVar[bool] = False
    # Its parts by name (Part above), each object in one part; "representation" is what a run loads from
    # another by default (init_parts). An agent declares them once, beside STATE_OBJECTS.
    TRANSFER_PARTS: ClassVar[dict[str, Part]] = {}
    # Whether it trains several tasks in one run (a task list): built with `num_tasks`, acting for `task`.
    MULTITASK: bool = False
    # The kinds of action space it acts in (iqrl.core.spaces: "box", "discrete"). An agent that lists
    # "discrete" is built with the keyword `action_spec` (the task's ActionSpec).
    ACTION_SPACES: ClassVar[tuple[str, ...]] = ("box",)
    # How far its compiled update (compile=true) may drift from the eager one in the tests, relative to each
    # tensor's scale (tests/test_compile.py): rounding differs in fused kernels; batch normalisation under
    # Adam amplifies it (a gradient that is zero but for rounding becomes a full step), so such an agent
    # declares more.
    COMPILE_TOLERANCE: ClassVar[float] = 1e-5
    # The update's metrics that are not smooth in the parameters (an accuracy, an argmax: rounding in another
    # order flips a near-tie, and the value jumps), each with the absolute difference the tests allow between
    # two modes' values of it (the K-seed group's and the plain update's, the compiled and the eager
    # update's); every other metric is compared to rounding.
    NONSMOOTH_METRICS: ClassVar[dict[str, float]] = {}
    task: int = 0  # the task index the following `act` calls are for (multi-task runs)
    # The run's training envs (run key train_envs), and the one the following `on_episode_start`, `observe`
    # and training `act` calls are for (`select_train_env`; the trainer's turn: iqrl/loop/lanes.py).
    train_envs: int = 1
    train_env: int = 0
    # Whether an evaluation may run beside training on a copy of the agent (run key eval_beside,
    # iqrl/loop/beside.py): evaluating changes nothing of the agent but its `eval_generator`. An agent whose
    # evaluation keeps acting state of its own (a planner's warm start, a recurrent carry) sets False.
    evaluates_beside: ClassVar[bool] = True

    def __init__(self, cfg, device: torch.device | str, seed: int):
        self.cfg = cfg
        self.device = torch.device(device)
        self.generator = torch.Generator(device=self.device)  # every random draw of the updates (and acting)
        self.generator.manual_seed(seed)
        # What `act` draws while the trainer evaluates (`evaluating`): a stream of its own, so that evaluating
        # moves no number of training (docs/run-folder.md, "Evaluation").
        self.eval_generator = torch.Generator(device=self.device)
        self.eval_generator.manual_seed(seed + EVAL_GENERATOR_OFFSET)
        # What runs the update's pieces (iqrl/core/update.py): eagerly, compiled (`compile`), or
        # vectorised over seeds by the K-seed mode, which sets its own.
        self.updater = Updater()
        # When its updates run (iqrl/core/schedule.py); an agent with another choice sets its own.
        self.schedule: UpdateSchedule = PerEpisode()

    # A stream of its own per acting mode (True: training, False: evaluation), apart from the updates', for an
    # agent whose `act` samples (the planners' MPPI, DreamerV3): `init_act_generators`. None: it has none.
    act_generators: dict[bool, torch.Generator] | None = None
    codebook_size: int | None = None  # codes per group of a quantized latent (diagnostics)
    latent_width: int | None = None  # width D of the latent the actor and critic consume (diagnostics)

    @property
    def exploration_sigma(self) -> float | None:
        """The current std of the exploration noise (logged in train.csv); None where there is none."""
        return None

    @abc.abstractmethod
    def act(self, obs: np.ndarray, explore: bool) -> np.ndarray: ...

    @abc.abstractmethod
    def update(self, replay, step: int) -> dict[str, Any]: ...

    def compile(self, cudagraphs: bool = False) -> None:
        """compile=true: every piece of the update runs through torch.compile (with cudagraphs: inductor's
        CUDA graphs, mode "reduce-overhead", each update one step of the graph tree and what the pieces
        return cloned out of the graphs' memory pool; iqrl/core/update.py), then `compile_acting`. The
        optimizer steps, target updates and random draws stay eager between them, so the random streams and
        the update order are those of the eager agent. A network that draws from torch's global generator
        inside its forward (nn.Dropout) would draw other numbers compiled: refused in one line (Refused, exit
        2), when the run is built, before anything is written."""
        if drawing := global_random_module(self.networks()):
            raise Refused(
                f"compile=true: {self.cfg.name}'s {drawing} draws from torch's global generator inside its "
                "forward, which compiled code draws otherwise than eager; use iqrl.nn.layers.MaskedDropout, "
                "whose masks are draws"
            )
        self.updater = Updater(compile=True, cudagraphs=cudagraphs)
        if cudagraphs and not hasattr(self.update, "__wrapped__"):  # compiled twice: marked once
            self.update = graph_step(self.update)
        self.compile_acting()

    def compile_acting(self) -> None:  # noqa: B027 (an optional hook, not abstract)
        """compile=true: compile what acting evaluates where it pays (DC-MPC's planner). Nothing by
        default."""

    def snapshot(self) -> Agent:
        """A deep copy of the agent with an eager updater of its own (nothing compiled is copied): what an
        evaluation beside training acts with (iqrl/loop/beside.py), and a K-seed group's stand-in in the slot
        of a seed it does not train (iqrl/multiseed/group.py)."""
        return copy.deepcopy(self, {id(self.updater): Updater()})

    def init_act_generators(self, seed: int) -> None:
        """`act_generators`, seeded from the agent's `seed`: acting in one mode moves no stream of the
        other."""
        self.act_generators = {
            explore: torch.Generator(device=self.device).manual_seed(seed + ACT_GENERATOR_OFFSET * (k + 1))
            for k, explore in enumerate((True, False))
        }

    def seed_evaluation(self, seed: int) -> None:
        """Its evaluation's draws (`eval_generator`, and the evaluation's acting stream where it has one)
        as an agent built with `seed` starts them: with run key `eval_reseed`, each evaluation's draws come
        from (run seed, env step) (iqrl.loop.parts.RunParts.seed_evaluation), not from the evaluations
        before."""
        self.eval_generator.manual_seed(seed + EVAL_GENERATOR_OFFSET)
        if self.act_generators is not None:
            self.act_generators[False].manual_seed(seed + 2 * ACT_GENERATOR_OFFSET)

    @contextlib.contextmanager
    def evaluating(self):
        """Evaluation episodes inside: what acting draws from the agent's `generator` (and so from every part
        built with it: the learner's, the encoder's) comes from the evaluation's own stream instead, and
        training's stream is as it was after. Swapping the states, not the objects, reaches every holder of
        the generator; no host-device sync (a generator's state lives on the host)."""
        train = self.generator.get_state()
        self.generator.set_state(self.eval_generator.get_state())
        try:
            yield
        finally:
            self.eval_generator.set_state(self.generator.get_state())
            self.generator.set_state(train)

    def select_train_env(self, i: int) -> None:
        """Act for training env i from here on, from the state its own episode left (train_envs > 1: an agent
        whose config declares TRAIN_ENVS keeps its training acting state per env). One env has none to
        keep."""
        if i != self.train_env:
            raise NotImplementedError(f"{self.cfg.name} acts for one training env (AgentConfig.TRAIN_ENVS)")

    def act_train_envs(self, obs: list) -> list:
        """A training action for each of the run's training envs (train_envs > 1; their observations in env
        order), each acted on from that env's own state, at the start of the envs' round of turns
        (iqrl/loop/lanes.py): here one `act` each, in env order; an agent whose code acts for all its envs at
        once (DreamerV3) does so."""
        current, actions = self.train_env, []
        for i, o in enumerate(obs):
            self.select_train_env(i)
            actions.append(self.act(o, explore=True))
        self.select_train_env(current)
        return actions

    def on_episode_start(self, training: bool) -> None:  # noqa: B027 (an optional hook, not abstract)
        """Called right after each environment reset: training=True for training episodes (seed
        episodes included), False for evaluation episodes. The default does nothing."""

    def observe(self, obs: np.ndarray, reward: float | None = None, done: bool = False) -> None:  # noqa: B027
        """Called for every observation of a training episode as it is collected, seed episodes included:
        the reset observation (reward None), then each step's next observation with that step's reward and
        whether it ended the episode. For statistics of the collected data (SimbaV2's observation and return
        normalisers); outside the update's pieces, so a stat layer changed here writes in place. The default
        does nothing."""

    def on_episode_end(self) -> None:  # noqa: B027 (an optional hook, not abstract)
        """Advance per-episode schedules; called once after each training episode."""

    def networks(self) -> dict[str, nn.Module]:
        """The modules among STATE_OBJECTS (networks and their targets), by name, in declaration order."""
        objs = {key: _get(self, path) for key, path in map(_split, self.STATE_OBJECTS)}
        return {key: obj for key, obj in objs.items() if isinstance(obj, nn.Module)}

    def part_objects(self, name: str) -> dict[str, Any]:
        """The objects of part `name` in this agent's configuration, by path (missing or None ones left
        out)."""
        found = {path: _get(self, path, None) for path in self.TRANSFER_PARTS[name].paths}
        return {path: obj for path, obj in found.items() if obj is not None}

    def state_dict(self) -> dict:
        s = {}
        for entry in self.STATE_OBJECTS:
            key, path = _split(entry)
            if (obj := _get(self, path)) is not None:
                s[key] = obj.state_dict()
        s.update({key: _get(self, path) for key, path in map(_split, self.STATE_VALUES)})
        s["generator"] = self.generator.get_state()
        s["eval_generator"] = self.eval_generator.get_state()
        return s

    def load_state_dict(self, state: dict) -> None:
        for entry in self.STATE_OBJECTS:
            key, path = _split(entry)
            if (obj := _get(self, path)) is not None:
                obj.load_state_dict(state[key])
        for key, path in map(_split, self.STATE_VALUES):
            _set(self, path, state[key])
        self.generator.set_state(state["generator"].cpu())
        # A checkpoint of before the evaluation's own stream: it starts afresh from the run's seed here, which
        # changes no training number (only the draws of evaluations after the resume, where acting draws).
        if "eval_generator" in state:
            self.eval_generator.set_state(state["eval_generator"].cpu())

    def latent(self, obs: Tensor) -> Tensor | None:
        """The latent the actor/critic consume, [n, D]; None for agents without one."""
        return None

    def codes(self, obs: Tensor) -> Tensor | None:
        """Integer code indices [n, G] for quantized latents; None otherwise."""
        return None

    def probe_q(self, obs: Tensor, action: Tensor) -> Tensor | None:
        """Q(obs, action) of the online critics for the diagnostics: a pure forward (no draw, no change of a
        network's mode or statistics) of obs [n, ...] and actions [n, ...] as the replay stores them, in the
        agent's return units (a distribution's expected value, any reward scale undone): [E, n] for an
        ensemble E whose bootstrap target takes the minimum over its members, else [n] (the ensemble reduced
        as the target reduces it). None for an agent without a critic. The critic's dormant units are those
        that run in it (train.csv), and the Q-bias of evaluation episodes reads its values (eval.csv)."""
        return None

    def probe_actor(self, obs: Tensor) -> Tensor | None:
        """The online actor's deterministic action [n, A] (its evaluation mean, no draws) at obs, for the
        diagnostics (its dormant units); None for an agent without an actor on its latent."""
        return None

    def value_discount(self) -> float:
        """The per-step discount gamma of the returns the critic estimates (an n-step target discounts n steps
        by gamma^n: the same gamma per step)."""
        return self.cfg.gamma

    def value_rewards(self, rewards: np.ndarray) -> np.ndarray:
        """An episode's rewards as the critic's targets sum them: the env's, unless the agent transforms them
        (clips them) before its update."""
        return rewards

    def predict_latents(self, obs: Tensor, action: Tensor) -> tuple[Tensor, Tensor] | None:
        """Windows obs [n, L+1, ...] and action [n, L] -> the latent model's open-loop predictions of the
        latents of o_{t+1..t+H} from o_t and a_{t..t+H-1}, and the latents of those observations it is
        trained towards (the target encoder's, where it has one), both [H, n, D], H its own horizon; None for
        an agent without a latent model."""
        return None


def pixel_shape(obs_dim) -> tuple[int, int, int] | None:
    """(C, H, W) when an agent is built for pixel observations (`obs_dim` is that shape), else None."""
    if isinstance(obs_dim, (tuple, list)) and len(obs_dim) == 3:
        return tuple(int(d) for d in obs_dim)
    return None
