"""The one agent interface, and the registry that maps agent names to implementations.

The trainer, sweeps and analysis know an agent only through this interface:

* `spec` (AgentSpec): the batch it needs (window length L = max(horizon, n-step), batch size), its
  default updates per env step and how seed-phase actions are chosen.
* `act(obs, explore)`: obs [*obs_shape] or [N, *obs_shape] numpy -> action(s) in [-1, 1].
* the observations: with `obs=state` (the default) float32 vectors and the constructor's `obs_dim` their
  width (an int); with `obs=pixels` uint8 frame stacks [C, H, W] (3 channels per frame, the newest frame
  last) and `obs_dim` that shape (a tuple). Only agents with PIXELS = True are built for pixels (the config
  refuses the others); `pixel_shape(obs_dim)` tells the two apart.
* `update(replay, step)`: one gradient step; samples what it needs from the replay and returns a flat
  dict of scalar metrics (floats or 0-d tensors; the trainer syncs them once per episode).
* `on_episode_start(training)`: called right after every environment reset (training episodes, seed
  episodes included, with training=True; evaluation episodes with training=False). For per-episode
  acting state: DCWM's MPPI warm start, TCRL's episode-indexed sigma. Optional (default: nothing).
* `on_episode_end()`: per-episode schedules (exploration noise), called after each training episode.
* `state_dict()` / `load_state_dict()`: networks, targets, optimizers, counters and RNG state.
* `latent(obs)` [n, D] and `codes(obs)` [n, G] (+ `codebook_size`, `latent_width`) for diagnostics, where
  they exist; `exploration_sigma` (the current exploration std, for train.csv) where the agent has one.

Every agent's config dataclass derives from `AgentConfig` (the keys all agents share).

A new agent is one module, a registry line below and a task file in iqrl/configs (docs/extending.md);
tests/test_conformance.py runs every registered agent through this interface.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from iqrl.core.schedule import PerEpisode, UpdateSchedule
from iqrl.core.update import Updater


@dataclass
class AgentConfig:
    """Keys every agent has (`agent.<key>`): the base of each agent's config dataclass."""

    # IQ-10, a quirk of the official iQRL code (docs/faithfulness.md): the evaluation env gets the training
    # env's
    # seed. Default: train seed + EVAL_SEED_OFFSET (10000). On in the `iqrl-official` preset.
    official_shared_eval_seed: bool = False

    def kseed_refusal(self) -> str | None:
        """Why the K-seed mode (iqrl/multiseed/) cannot train this config, in one line, or None: it runs any
        update whose networks change only through the agent's updater. Nothing to refuse by default."""
        return None

    def validate_pixels(self, image_size: int) -> None:
        """The checks of obs=pixels at frames of `image_size` (ValueError, one line): run by the run config
        before anything is built, for agents with PIXELS = True. Nothing to check by default."""


@dataclass
class AgentSpec:
    seq_len: int  # transitions per sampled window (L)
    batch_size: int
    updates_per_step: float = 0.5  # default gradient updates per env step (0.5 = 1 per agent step)
    warmup_with_policy: bool = False  # seed phase: the agent's exploration policy instead of uniform
    # Default FIFO size of the replay in transitions (None: keep and sample every transition). The run's
    # top-level `replay_capacity` overrides it.
    replay_capacity: int | None = None
    # The evaluation env is seeded with the training seed instead of seed + EVAL_SEED_OFFSET. Set by
    # make_agent from `agent.official_shared_eval_seed`, so no agent has to pass it on.
    shared_eval_seed: bool = False


def _split(entry: str) -> tuple[str, str]:
    key, _, path = entry.partition("=")
    return key, path or key


def _get(obj, path: str):
    for part in path.split("."):
        obj = getattr(obj, part)
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

    def __init__(self, cfg, device: torch.device | str, seed: int):
        self.cfg = cfg
        self.device = torch.device(device)
        self.generator = torch.Generator(device=self.device)  # every random draw of the updates (and acting)
        self.generator.manual_seed(seed)
        # What runs the update's pieces (iqrl/core/update.py): eagerly, compiled (`compile`), or
        # vectorised over seeds by the K-seed mode, which sets its own.
        self.updater = Updater()
        # When its updates run (iqrl/core/schedule.py); an agent with another choice sets its own.
        self.schedule: UpdateSchedule = PerEpisode()

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
        CUDA graphs, mode "reduce-overhead"; iqrl/core/update.py), then `compile_acting`. The optimizer steps,
        target updates and random draws stay eager between them, so the random streams and the update order
        are those of the eager agent."""
        self.updater = Updater(compile=True, cudagraphs=cudagraphs)
        self.compile_acting()

    def compile_acting(self) -> None:  # noqa: B027 (an optional hook, not abstract)
        """compile=true: compile what acting evaluates where it pays (DC-MPC's planner). Nothing by
        default."""

    def on_episode_start(self, training: bool) -> None:  # noqa: B027 (an optional hook, not abstract)
        """Called right after each environment reset: training=True for training episodes (seed
        episodes included), False for evaluation episodes. The default does nothing."""

    def on_episode_end(self) -> None:  # noqa: B027 (an optional hook, not abstract)
        """Advance per-episode schedules; called once after each training episode."""

    def networks(self) -> dict[str, nn.Module]:
        """The modules among STATE_OBJECTS (networks and their targets), by name, in declaration order."""
        objs = {key: _get(self, path) for key, path in map(_split, self.STATE_OBJECTS)}
        return {key: obj for key, obj in objs.items() if isinstance(obj, nn.Module)}

    def state_dict(self) -> dict:
        s = {}
        for entry in self.STATE_OBJECTS:
            key, path = _split(entry)
            if (obj := _get(self, path)) is not None:
                s[key] = obj.state_dict()
        s.update({key: _get(self, path) for key, path in map(_split, self.STATE_VALUES)})
        s["generator"] = self.generator.get_state()
        return s

    def load_state_dict(self, state: dict) -> None:
        for entry in self.STATE_OBJECTS:
            key, path = _split(entry)
            if (obj := _get(self, path)) is not None:
                obj.load_state_dict(state[key])
        for key, path in map(_split, self.STATE_VALUES):
            _set(self, path, state[key])
        self.generator.set_state(state["generator"].cpu())

    def latent(self, obs: Tensor) -> Tensor | None:
        """The latent the actor/critic consume, [n, D]; None for agents without one."""
        return None

    def codes(self, obs: Tensor) -> Tensor | None:
        """Integer code indices [n, G] for quantized latents; None otherwise."""
        return None


def to_tensor(obs: np.ndarray, device) -> Tensor:
    """Observations as a tensor on `device`, what every `act` starts with: state vectors (any float dtype) as
    float32, pixel frames (uint8) as they are (the encoder scales them; a quarter of the bytes to copy)."""
    obs = np.asarray(obs)
    if obs.dtype == np.uint8:
        return torch.as_tensor(obs, device=device)
    return torch.as_tensor(obs.astype(np.float32, copy=False), device=device)


def pixel_shape(obs_dim) -> tuple[int, int, int] | None:
    """(C, H, W) when an agent is built for pixel observations (`obs_dim` is that shape), else None."""
    if isinstance(obs_dim, (tuple, list)) and len(obs_dim) == 3:
        return tuple(int(d) for d in obs_dim)
    return None
