"""A run's parts, built from its run config in one place: the training env, the evaluation env, the agent
and the replay, seeded as every run seeds them.

The trainer, the bench, `python -m iqrl.video` and (through the trainer) the K-seed mode build their envs
and agents here, so all of them get the numbers a run gets. It imports numpy, torch, the run config, the
envs, the registry (agents by name) and the replay.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import torch

from iqrl.core.config import RunConfig, observation, perturbations
from iqrl.core.envs import DMCEnv, PerturbedEnv, PixelEnv, make_env
from iqrl.core.interface import Agent
from iqrl.core.registry import make_agent
from iqrl.core.replay import SequenceReplay
from iqrl.core.tasks import eval_seed
from iqrl.core.transfer import freeze

Env = DMCEnv | PerturbedEnv | PixelEnv


@dataclass
class RunParts:
    env: Env  # the training env
    eval_env: Env  # the evaluation env, seeded eval_seed
    agent: Agent
    replay: SequenceReplay
    eval_seed: int  # train seed + 10000, or the train seed (agent.official_shared_eval_seed)
    replay_capacity: int | None  # the effective FIFO size: the run's replay_capacity or the agent's default
    device: torch.device


def build_parts(cfg: RunConfig, device: torch.device) -> RunParts:
    """The parts of the run `cfg` on `device`. The order is part of the numbers: the global python, numpy and
    torch generators are seeded with the run's seed, then the training env, the agent (compiled with
    compile=true, its `freeze` parts kept fixed), the evaluation env and the replay are built, each from its
    own seed."""
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    observe = observation(cfg)  # state vectors or pixel frame stacks
    env = make_env(cfg.task, cfg.seed, cfg.action_repeat, cfg.episode_length, perturbations(cfg), observe)
    agent = make_agent(cfg.agent, env.obs_dim, env.act_dim, device, cfg.seed)
    if cfg.compile:
        agent.compile(cudagraphs=cfg.cudagraphs)
    freeze(agent, cfg)  # after compile, which gives the agent its updater
    spec = agent.spec
    seed = eval_seed(cfg.seed, spec.shared_eval_seed)
    perturb = perturbations(cfg, evaluation=True)
    eval_env = make_env(cfg.task, seed, cfg.action_repeat, cfg.episode_length, perturb, observe)
    capacity = spec.replay_capacity if cfg.replay_capacity is None else (cfg.replay_capacity or None)
    replay = SequenceReplay(
        env.obs_dim,
        env.act_dim,
        spec.seq_len,
        device,
        cfg.seed + 1,
        capacity=capacity,
        frame_stack=cfg.frame_stack if cfg.obs == "pixels" else 1,
    )
    return RunParts(env, eval_env, agent, replay, seed, capacity, device)


def eval_env_copy(cfg: RunConfig, seed: int) -> Env:
    """Another evaluation env of the run, for evaluation episodes side by side (iqrl.core.evaluation.
    eval_batch, which sets its random stream); batched evaluation runs only without per-step perturbations,
    so it has none."""
    return make_env(cfg.task, seed, cfg.action_repeat, cfg.episode_length, None, observation(cfg))
