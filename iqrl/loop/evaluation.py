"""Deterministic evaluation episodes: one at a time, or several side by side with one `act` per step and
their envs stepped together (iqrl/envs/batch.py: DMC physics side by side on threads where it pays).

With `probe` (run key `diagnostics`), each episode also records the Q-bias's data: Q(s_t, a_t) of the action
taken (`Agent.probe_q`, a pure forward: no action or stream changes; read in chunks of Q_CHUNK steps), and
the rewards as the critic sums them; `outcome_row` scores it (iqrl/core/diagnostics.py, q_bias).

It imports numpy, torch and the envs' batch: envs and agents come in as arguments (iqrl/envs/make.py, the
agent interface).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from iqrl.core.diagnostics import q_bias
from iqrl.envs.batch import EnvBatch
from iqrl.runfolder.layout import SUCCESS_COLUMN


def step_seed(seed: int, env_step: int) -> int:
    """A seed in [0, 2**32) drawn from (seed, env_step): the evaluation at `env_step` starts from it (run key
    eval_reseed), apart from every other (seed, step) pair's (numpy's SeedSequence hashes the pair)."""
    return int(np.random.SeedSequence([seed, env_step]).generate_state(1)[0])


class QTrace(NamedTuple):
    """An evaluation episode's Q(s_t, a_t) [T] of the actions taken, its rewards [T] as the critic sums them
    (`Agent.value_rewards`), the critic's discount, and whether it ended by termination (not by time)."""

    q: np.ndarray
    rewards: np.ndarray
    gamma: float
    terminated: bool


class Outcome(NamedTuple):
    """An evaluation episode's return, whether the task reported success at any step (DC-MPC's episode
    success: utils/evaluate.py at cc2a33a; always False on suites without success), and with `probe` its
    Q-bias's data (None without, or for an agent without a critic)."""

    ret: float
    success: bool
    trace: QTrace | None = None


def probe_q(agent, obs: np.ndarray, actions: np.ndarray) -> np.ndarray | None:
    """Q(s, a) [n] of observations [n, ...] and the actions taken [n, ...]: `Agent.probe_q`, an ensemble's
    [E, n] reduced by its minimum (the target's); None for an agent without a critic."""
    device = agent.device
    q = agent.probe_q(torch.as_tensor(obs, device=device), torch.as_tensor(actions, device=device))
    if q is None:
        return None
    q = q.reshape(-1, q.shape[-1]).amin(0) if q.dim() > 1 else q
    return q.double().cpu().numpy()


#: Evaluation steps whose Q(s, a) one `probe_q` call reads: the critic's forward over a few hundred rows costs
#: little more than over one, while a call per step would cost about as much as the episode's acting.
Q_CHUNK = 256


class QRecorder:
    """The (s_t, a_t) of an evaluation's episodes, their Q(s_t, a_t) read in chunks of Q_CHUNK rows (one
    forward per chunk); `values(i)` is episode i's Q in step order, None for an agent without a critic."""

    def __init__(self, agent, episodes: int):
        self.agent, self.waiting, self.q = agent, [], [[] for _ in range(episodes)]
        self.no_critic = False

    def add(self, episode: int, obs, action) -> None:
        self.waiting.append((episode, np.array(obs, copy=True), np.array(action, copy=True)))
        if len(self.waiting) >= Q_CHUNK:
            self.read()

    def read(self) -> None:
        if not self.waiting or self.no_critic:
            return
        episodes, obs, actions = zip(*self.waiting)
        self.waiting = []
        values = probe_q(self.agent, np.stack(obs), np.stack(actions))
        if values is None:
            self.no_critic = True
            return
        for i, v in zip(episodes, values):
            self.q[i].append(v)

    def values(self, episode: int) -> list | None:
        self.read()
        return None if self.no_critic else self.q[episode]


def trace(agent, q: list | None, rewards: list, terminated: bool) -> QTrace | None:
    """The episode's QTrace from its per-step Q values (None where the agent has no critic) and rewards."""
    if not q:
        return None
    r = agent.value_rewards(np.asarray(rewards, dtype=np.float64))
    return QTrace(np.asarray(q, dtype=np.float64), r, float(agent.value_discount()), bool(terminated))


def eval_episode(env, agent, on_frame=None, probe: bool = False) -> Outcome:
    """One deterministic evaluation episode; its outcome (with `probe`, its QTrace). `on_frame()` is called
    after the reset and after every step (videos record frames there)."""
    obs, total, done, success = env.reset(), 0.0, False, False
    recorder, rewards, terminated = QRecorder(agent, 1) if probe else None, [], False
    agent.on_episode_start(training=False)
    while True:
        if on_frame is not None:
            on_frame()
        if done:
            return Outcome(
                total, success, trace(agent, recorder.values(0), rewards, terminated) if probe else None
            )
        action = agent.act(obs, explore=False)
        if probe:
            recorder.add(0, obs, action)
        step = env.step(action)
        total += step.reward
        rewards.append(step.reward)
        success, terminated = success or step.success, step.terminated
        obs, done = step.obs, step.terminated or step.truncated


def eval_batch(envs: list, agent, on_frame=None, probe: bool = False) -> list[Outcome]:
    """len(envs) deterministic evaluation episodes side by side; their outcomes.

    One `act` call per step for all of them (on a GPU one batched forward pass, or one batched MPPI plan,
    instead of N), and one step of their envs together (`EnvBatch`: each env's numbers are its own).
    Episode i starts from the task state that episode i of the sequential loop starts from: env i takes the
    task's random stream where env i-1's reset left it (the suite's tasks draw only at reset), and env 0,
    the run's evaluation env, ends holding the stream after all N resets, as the sequential loop leaves it.
    Returns agree with `eval_episode` run N times up to the rounding of batched kernels
    (docs/performance.md); an agent that samples while evaluating (MPPI) draws other numbers. `on_frame()`
    is called after env 0's reset and after each of its steps (videos). With `probe`, their live rows' Q read
    in chunks (QRecorder).
    """
    obs = []
    for i, env in enumerate(envs):
        if i:
            env.set_state(envs[i - 1].get_state())
        obs.append(env.reset())
    envs[0].set_state(envs[-1].get_state())
    agent.on_episode_start(training=False)
    obs, totals, running = np.stack(obs), np.zeros(len(envs)), np.ones(len(envs), bool)
    success, terminated = np.zeros(len(envs), bool), np.zeros(len(envs), bool)
    recorder, rewards = QRecorder(agent, len(envs)) if probe else None, [[] for _ in envs]
    frame, batch = on_frame or (lambda: None), EnvBatch(envs)
    frame()
    while running.any():
        # every row acts, finished ones included, so an agent's per-row state (a warm-started plan) stays
        # aligned with its env
        actions = agent.act(obs, explore=False)
        live = np.flatnonzero(running)
        for i in live if probe else ():
            recorder.add(i, obs[i], actions[i])
        for i, step in zip(live, batch.step([(i, actions[i]) for i in live])):
            if isinstance(step, BaseException):
                raise step
            totals[i] += step.reward
            success[i] |= step.success
            rewards[i].append(step.reward)
            terminated[i] = step.terminated
            obs[i], running[i] = step.obs, not (step.terminated or step.truncated)
            if i == 0:
                frame()  # env 0's picture: the other envs' steps leave its physics alone
    traces = [
        trace(agent, recorder.values(i), rewards[i], terminated[i]) if probe else None
        for i in range(len(envs))
    ]
    return [Outcome(r, bool(s), t) for r, s, t in zip(totals.tolist(), success, traces)]


def eval_returns(
    envs: list, agent, episodes: int, batched: bool, on_frame=None, probe: bool = False
) -> list[Outcome]:
    """The outcomes of `episodes` evaluation episodes: side by side in `envs` (one env per episode,
    `eval_batch`) when `batched`, else one after another in envs[0]. `on_frame` sees the first episode; with
    `probe` each outcome holds its QTrace."""
    if batched:
        return eval_batch(envs, agent, on_frame, probe)
    return [eval_episode(envs[0], agent, on_frame if i == 0 else None, probe) for i in range(episodes)]


def outcome_row(outcomes: list[Outcome], env_step: int, wall_time_s: float, success: bool) -> dict:
    """eval.csv's row of one evaluation: its episodes' mean return and spread at `env_step`, where the
    task scores success (Meta-World, MyoSuite, ...) the fraction of episodes that succeeded, and where the
    outcomes hold QTraces the Q-bias over their scored steps (Q_BIAS_COLUMNS)."""
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
    traces = [o.trace for o in outcomes if o.trace is not None]
    if traces:
        q, rewards = ([torch.from_numpy(getattr(t, k)) for t in traces] for k in ("q", "rewards"))
        row |= q_bias(q, rewards, traces[0].gamma, [t.terminated for t in traces])
    return row
