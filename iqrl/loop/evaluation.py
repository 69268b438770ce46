"""Deterministic evaluation episodes: one at a time, or several side by side with one `act` per step and
their envs stepped together (iqrl/envs/batch.py: DMC physics side by side on threads where it pays).

It imports numpy and the envs' batch: envs and agents come in as arguments (iqrl/envs/make.py, the agent
interface).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from iqrl.envs.batch import EnvBatch
from iqrl.runfolder.layout import SUCCESS_COLUMN


def step_seed(seed: int, env_step: int) -> int:
    """A seed in [0, 2**32) drawn from (seed, env_step): the evaluation at `env_step` starts from it (run key
    eval_reseed), apart from every other (seed, step) pair's (numpy's SeedSequence hashes the pair)."""
    return int(np.random.SeedSequence([seed, env_step]).generate_state(1)[0])


class Outcome(NamedTuple):
    """An evaluation episode's return, and whether the task reported success at any step (DC-MPC's
    episode success: utils/evaluate.py at cc2a33a; always False on suites without success)."""

    ret: float
    success: bool


def eval_episode(env, agent, on_frame=None) -> Outcome:
    """One deterministic evaluation episode; its outcome. `on_frame()` is called after the reset and after
    every step (videos record frames there)."""
    obs, total, done, success = env.reset(), 0.0, False, False
    agent.on_episode_start(training=False)
    while True:
        if on_frame is not None:
            on_frame()
        if done:
            return Outcome(total, success)
        step = env.step(agent.act(obs, explore=False))
        total += step.reward
        success = success or step.success
        obs, done = step.obs, step.terminated or step.truncated


def eval_batch(envs: list, agent, on_frame=None) -> list[Outcome]:
    """len(envs) deterministic evaluation episodes side by side; their outcomes.

    One `act` call per step for all of them (on a GPU one batched forward pass, or one batched MPPI plan,
    instead of N), and one step of their envs together (`EnvBatch`: each env's numbers are its own).
    Episode i starts from the task state that episode i of the sequential loop starts from: env i takes the
    task's random stream where env i-1's reset left it (the suite's tasks draw only at reset), and env 0,
    the run's evaluation env, ends holding the stream after all N resets, as the sequential loop leaves it.
    Returns agree with `eval_episode` run N times up to the rounding of batched kernels
    (docs/performance.md); an agent that samples while evaluating (MPPI) draws other numbers. `on_frame()`
    is called after env 0's reset and after each of its steps (videos).
    """
    obs = []
    for i, env in enumerate(envs):
        if i:
            env.set_state(envs[i - 1].get_state())
        obs.append(env.reset())
    envs[0].set_state(envs[-1].get_state())
    agent.on_episode_start(training=False)
    obs, totals, running = np.stack(obs), np.zeros(len(envs)), np.ones(len(envs), bool)
    success = np.zeros(len(envs), bool)
    frame, batch = on_frame or (lambda: None), EnvBatch(envs)
    frame()
    while running.any():
        # every row acts, finished ones included, so an agent's per-row state (a warm-started plan) stays
        # aligned with its env
        actions = agent.act(obs, explore=False)
        live = np.flatnonzero(running)
        for i, step in zip(live, batch.step([(i, actions[i]) for i in live])):
            if isinstance(step, BaseException):
                raise step
            totals[i] += step.reward
            success[i] |= step.success
            obs[i], running[i] = step.obs, not (step.terminated or step.truncated)
            if i == 0:
                frame()  # env 0's picture: the other envs' steps leave its physics alone
    return [Outcome(r, bool(s)) for r, s in zip(totals.tolist(), success)]


def eval_returns(envs: list, agent, episodes: int, batched: bool, on_frame=None) -> list[Outcome]:
    """The outcomes of `episodes` evaluation episodes: side by side in `envs` (one env per episode,
    `eval_batch`) when `batched`, else one after another in envs[0]. `on_frame` sees the first episode."""
    if batched:
        return eval_batch(envs, agent, on_frame)
    return [eval_episode(envs[0], agent, on_frame if i == 0 else None) for i in range(episodes)]


def outcome_row(outcomes: list[Outcome], env_step: int, wall_time_s: float, success: bool) -> dict:
    """eval.csv's row of one evaluation: its episodes' mean return and spread at `env_step`, and where the
    task scores success (Meta-World, MyoSuite, ...) the fraction of episodes that succeeded."""
    returns = [o.ret for o in outcomes]
    row = {
        "env_step": env_step,
        "episode_return": float(np.mean(returns)),
        "episode_return_std": float(np.std(returns)),
        "n_episodes": len(returns),
        "wall_time_s": wall_time_s,
    }
    if success:
        row[SUCCESS_COLUMN] = float(np.mean([o.success for o in outcomes]))
    return row
