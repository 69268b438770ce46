"""A run's parts, built from its run config in one place: the training env, the evaluation env, the agent
and the replay, seeded as every run seeds them.

The trainer, the bench, `python -m iqrl.video` and (through the trainer) the K-seed mode build their envs
and agents here, so all of them get the numbers a run gets. It imports numpy, torch, the run config, the
envs, the registry (agents by name) and the replay.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import numpy as np
import torch

from iqrl.config.run import RunConfig, observation, perturbations, protocol
from iqrl.core.interface import Agent
from iqrl.core.registry import make_agent
from iqrl.core.replay import SequenceReplay
from iqrl.core.replay_lanes import LaneReplay
from iqrl.core.replay_multitask import MultiTaskReplay
from iqrl.envs.dmc import DMCEnv, PixelEnv
from iqrl.envs.make import SEED_LIMIT, make_env
from iqrl.envs.perturb import PerturbedEnv
from iqrl.envs.tasks import eval_seed, task_list, zero_history
from iqrl.envs.workers import EnvWorker
from iqrl.loop.evaluation import step_seed
from iqrl.loop.transfer import freeze

Env = DMCEnv | PerturbedEnv | PixelEnv | EnvWorker


@dataclass
class RunParts:
    envs: list[Env]  # the training env of each task (one, or those of a multi-task run in task order)
    eval_envs: list[Env]  # the evaluation env of each task, seeded eval_seed
    agent: Agent
    # a MultiTaskReplay (one replay per task) for a task list, a LaneReplay (one per env) for train_envs > 1
    replay: SequenceReplay | MultiTaskReplay | LaneReplay
    eval_seed: int  # train seed + 10000, or the train seed (agent.official_shared_eval_seed)
    replay_capacity: int | None  # the effective FIFO size: the run's replay_capacity or the agent's default
    device: torch.device
    seed: int  # the run's seed
    # the training envs after the first of a run that collects from several (train_envs > 1;
    # iqrl/loop/lanes.py), env i seeded `train_env_seed(seed, i)`
    more_envs: list[Env] = field(default_factory=list)

    def seed_evaluation(self, env_step: int) -> None:
        """The evaluation at `env_step` starts from the run's seed and that step alone (run key eval_reseed):
        each task's evaluation env as one built with a seed drawn from (eval_seed, env_step), the agent's
        evaluation draws as an agent built with a seed drawn from (seed, env_step). Its return then depends
        on the parameters at that step only, not on the evaluations before it (eval_every, a resume, a
        re-evaluation of the checkpoint)."""
        for env in self.eval_envs:
            env.reseed(step_seed(self.eval_seed, env_step))
        self.agent.seed_evaluation(step_seed(self.seed, env_step))

    @property
    def env(self) -> Env:
        """The (first task's) training env."""
        return self.envs[0]

    @property
    def eval_env(self) -> Env:
        """The (first task's) evaluation env."""
        return self.eval_envs[0]

    def close(self) -> None:
        """End the envs' worker processes (env_workers=true; the envs of this process stay as they are)."""
        for env in self.envs + self.more_envs:
            if isinstance(env, EnvWorker):
                env.close()


def build_parts(cfg: RunConfig, device: torch.device) -> RunParts:
    """The parts of the run `cfg` on `device`. The order is part of the numbers: the global python, numpy and
    torch generators are seeded with the run's seed, then the training envs, the agent (compiled with
    compile=true, its `freeze` parts kept fixed), the evaluation envs and the replay are built, each from its
    own seed.

    A multi-task run has an env pair per task, each seeded as a single-task run on that task with the same
    seed would be (its task sees the initial states that run sees), and one replay per task (task i's sampling
    generator seeded seed + 1 + i 2**32: task 0's is the single-task replay's, the others' apart from every
    run's)."""
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    tasks = task_list(cfg.task)
    envs = [run_env(cfg, task, cfg.seed, perturbations(cfg)) for task in tasks]
    env = envs[0]  # every task's spaces are the first's (iqrl.config.validate.validate_tasks)
    agent = make_agent(cfg.agent, env.obs_dim, env.action_spec, device, cfg.seed, num_tasks=len(tasks))
    if cfg.compile:
        agent.compile(cudagraphs=cfg.cudagraphs)
    freeze(agent, cfg)  # after compile, which gives the agent its updater
    spec = agent.spec
    seed = eval_seed(cfg.seed, spec.shared_eval_seed)
    perturb = perturbations(cfg, evaluation=True)
    eval_envs = [run_env(cfg, task, seed, perturb, evaluation=True) for task in tasks]
    capacity = spec.replay_capacity if cfg.replay_capacity is None else (cfg.replay_capacity or None)
    E = cfg.train_envs or 1
    if E > 1:  # one replay per training env, each capacity / E, sampled together (LaneReplay)
        lane_capacity = None if capacity is None else -(-capacity // E)
        lanes = [
            new_replay(cfg, env, spec, device, tasks[0], cfg.seed + 1 + i, lane_capacity) for i in range(E)
        ]
        replay = LaneReplay(lanes, cfg.seed + 1)  # (its generator draws the windows: the one replay's seed)
    else:
        seeds = [cfg.seed + 1 + i * SEED_LIMIT for i in range(len(tasks))]
        replays = [
            new_replay(cfg, env, spec, device, t, s, capacity) for t, s in zip(tasks, seeds, strict=True)
        ]
        replay = replays[0] if len(tasks) == 1 else MultiTaskReplay(replays)
    parts = RunParts(envs, eval_envs, agent, replay, seed, capacity, device, cfg.seed)
    if E > 1:  # built last: the first env, the agent and the evaluation are those of a run of one env
        parts.more_envs = [
            run_env(cfg, tasks[0], train_env_seed(cfg.seed, i), perturbations(cfg), lane=i)
            for i in range(1, E)
        ]
        agent.train_envs = E
    return parts


def new_replay(
    cfg: RunConfig, env: Env, spec, device: torch.device, task: str, seed: int, capacity: int | None
) -> SequenceReplay:
    """A replay on `device` of `env`'s observations and actions on `task` for an agent of `spec` (its windows,
    contexts and online queue), its sampling generator seeded `seed`, keeping `capacity` transitions."""
    return SequenceReplay(
        env.obs_dim,
        env.action_spec,
        spec.seq_len,
        device,
        seed,
        capacity=capacity,
        frame_stack=cfg.frame_stack if cfg.obs == "pixels" else 1,
        context_dim=spec.context_dim,
        context_dtype=spec.context_dtype,
        online=spec.online_replay,
        zero_history=zero_history(task, cfg.protocol, cfg.protocol_changes),
    )


def train_env_seed(seed: int, i: int) -> int:
    """The seed of training env i of a run seeded `seed`: the run's own for the first, one drawn from
    (seed, i) for each other (DreamerV3's code hashes (seed, index) likewise: dreamerv3/main.py `make_env`,
    lines 241-242 at danijar/dreamerv3@e3f0224)."""
    return seed if i == 0 else int(np.random.SeedSequence([seed, i, 1]).generate_state(1)[0])


def eval_env_copy(cfg: RunConfig, task: str, seed: int) -> Env:
    """Another evaluation env of the run's `task`, for evaluation episodes side by side (iqrl.loop.evaluation.
    eval_batch, which sets its random stream); batched evaluation runs only without per-step perturbations,
    so it has none."""
    return run_env(cfg, task, seed, None, evaluation=True)


def run_env(cfg: RunConfig, task: str, seed: int, perturb, evaluation: bool = False, lane: int = 0) -> Env:
    """An env of the run `cfg` on `task` seeded `seed`: its action repeat, episode length, observation and
    protocol, with `perturb`; the evaluation env's settings with `evaluation`. A training env of a run with
    env_workers=true is built and stepped in a worker process of its own (iqrl.envs.workers), named by the
    run's seed and, in a run of several training envs, the env's index `lane` (not its derived seed)."""
    args = (task, seed, cfg.action_repeat, cfg.episode_length, perturb, observation(cfg))
    kwargs = {"protocol": protocol(cfg), "evaluation": evaluation}
    if cfg.env_workers and not evaluation:
        E = cfg.train_envs or 1
        name = f"{task} seed {cfg.seed}" + (f", training env {lane} of {E}" if E > 1 else "")
        return EnvWorker(make_env, args, kwargs, name=name)
    return make_env(*args, **kwargs)
