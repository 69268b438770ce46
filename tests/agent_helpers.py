"""Helpers for the agent tests: parameter snapshots and the interrupt-then-resume check."""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest
import torch

from iqrl.config.build import build_config
from iqrl.core.registry import make_agent
from iqrl.runfolder.exits import EXIT_INTERRUPTED, EXIT_OK
from iqrl.train import main

from conftest import agent_actions, agent_observations, stop_at_env_step, tiny_keys, tiny_run
from test_train import eval_numbers


def agent_and_replay(name: str, device: str = "cpu"):
    """A tiny agent (seeded module init, 5-dim observations or a pixel-only agent's tiny frames, 2-dim
    actions) and a replay of one synthetic 300-step episode, the same each call; also the generator that made
    the episode."""
    device = torch.device(device)
    cfg = build_config(tiny_keys(name))
    torch.manual_seed(0)
    actions = agent_actions(name, 2)  # 3 discrete actions for an agent without boxes
    obs = agent_observations(name)
    agent = make_agent(cfg.agent, obs.dim, actions, device, 0)
    replay = obs.replay(actions, agent.spec.seq_len, device, 1)
    rng = np.random.default_rng(0)
    replay.start_episode(obs.sample(rng))
    for t in range(300):
        action = actions.sample(rng)
        replay.add(action, float(rng.normal()), obs.sample(rng), False, t == 299)
    return agent, replay, rng


class FixedReplay:
    """A replay stand-in whose sample() always returns the same batch (losses on a fixed batch)."""

    def __init__(self, batch, size: int = 0):
        self.batch = batch
        self.size = size  # the transitions it stands for (an agent may read `replay.size`)

    def sample(self, n):
        return self.batch


def assert_actions_bounded(agent, obs_dim: int, act_dim: int) -> torch.Tensor:
    """act() on a batch of 5 and on one observation, exploring or not: shape and [-1, 1] bounds.
    Returns the (large-valued) observations used."""
    obs = torch.randn(5, obs_dim) * 10
    for explore in (False, True):
        a = agent.act(obs.numpy(), explore=explore)
        assert a.shape == (5, act_dim) and (abs(a) <= 1).all()
        assert agent.act(obs[0].numpy(), explore=explore).shape == (act_dim,)
    return obs


def assert_metric_agrees(agent: str, key: str, got, want, where: str, rel: float = 1e-4, atol: float = 1e-6):
    """One metric of one update of `agent` in two modes (`got`: the K-seed group's or the compiled update's,
    `want`: the plain eager update's): within `rel` (and `atol`), or, where the agent declares the metric not
    smooth (Agent.NONSMOOTH_METRICS: an accuracy, an argmax), within its declared difference. A failure says
    which, and what to declare where the metric jumps."""
    from iqrl.core.registry import agent_class

    cls = agent_class(agent)
    g, w = float(got), float(want)
    if key in cls.NONSMOOTH_METRICS:
        allowed = cls.NONSMOOTH_METRICS[key]
        assert abs(g - w) <= allowed, (
            f"{where}: {key} is {g:.7g}, the plain update's {w:.7g}: more than the {allowed:g} its "
            f"NONSMOOTH_METRICS allows"
        )
        return
    assert g == pytest.approx(w, rel=rel, abs=atol), (
        f"{where}: {key} is {g:.7g}, the plain update's {w:.7g} (rel {rel:g}). {nonsmooth_hint(agent, key)}"
    )


def nonsmooth_hint(agent: str, key: str) -> str:
    """What to do where a metric of `agent` differs between two modes of one update by more than rounding."""
    from iqrl.core.registry import agent_class

    cls = agent_class(agent)
    return (
        f"If {key} is not smooth in the parameters (an accuracy, an argmax: a sum in another order flips a "
        f"near-tie and the value jumps), declare the difference it may show: {cls.__module__}."
        f"{cls.__qualname__}.NONSMOOTH_METRICS = {{{key!r}: <difference>}} (Agent.NONSMOOTH_METRICS, "
        f"iqrl/core/interface.py); if it is smooth, the two modes compute it otherwise"
    )


def params(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def same(module: torch.nn.Module, before: list[torch.Tensor]) -> bool:
    """Whether the module's parameters equal the snapshot `before` exactly."""
    return all(torch.equal(p, q) for p, q in zip(module.parameters(), before))


def assert_same_continuation(a, b, replay_a, replay_b, obs) -> None:
    """Agents a and b (b loaded from a's state) act, update and write priorities identically."""
    assert (a.act(obs, explore=True) == b.act(obs, explore=True)).all()
    ma, mb = a.update(replay_a, 0), b.update(replay_b, 0)
    assert ma.keys() == mb.keys() and all(torch.equal(ma[k], mb[k]) for k in ma)
    assert torch.equal(replay_a._prio[: replay_a.size], replay_b._prio[: replay_b.size])
    assert (a.act(obs, explore=False) == b.act(obs, explore=False)).all()


def assert_resume_matches(agent: str, tmp_path, finished_runs, extra=(), reference=None, stop: int = 700):
    """A run interrupted at env step `stop`, past its seed steps and mid-episode on most tasks, and resumed,
    ends with the eval.csv of one never stopped (the session's `finished_runs`): by default a tiny run of
    1200 env steps, or the command line `reference` (no out=). Returns the folders of both: (never stopped,
    resumed)."""
    reference = reference or tiny_run(agent, seed=4, extra=extra)
    ref, run = finished_runs.get(reference), tmp_path / "run"
    argv = [*reference, f"out={run}"]
    assert main(argv, should_stop=stop_at_env_step(argv, stop)) == EXIT_INTERRUPTED
    assert json.loads((run / "status.json").read_text())["state"] == "interrupted"
    assert main(argv) == EXIT_OK
    assert eval_numbers(run) == eval_numbers(ref)
    return ref, run


def assert_squashed_gaussian_acting(
    agent, obs: torch.Tensor, mean: torch.Tensor, explore_mean, explore_log_std
):
    """act() of a tanh-Gaussian policy on obs [N, D]: tanh(mean) in evaluation; exploring, tanh(explore_mean
    + exp(explore_log_std) eps) with eps [N, A] the agent generator's next normal draws."""
    from iqrl.nn.maths import tanh_gaussian

    torch.testing.assert_close(
        torch.from_numpy(agent.act(obs.numpy(), explore=False)), torch.tanh(mean).detach()
    )
    state = agent.generator.get_state()
    a = agent.act(obs.numpy(), explore=True)
    agent.generator.set_state(state)
    eps = torch.randn(explore_mean.shape, generator=agent.generator)
    want = tanh_gaussian(explore_mean, explore_log_std, eps)[0].detach()
    torch.testing.assert_close(torch.from_numpy(a), want)


def optimizers(agent) -> dict[str, torch.optim.Optimizer]:
    """The agent's optimizers by name: those of its `optimizers` transfer part (every optimizer it has,
    tests/test_transfer.py checks), the ones a configuration leaves out (None) left out."""
    if "optimizers" not in agent.TRANSFER_PARTS:
        return {}
    return {k: v for k, v in agent.part_objects("optimizers").items() if v is not None}


@functools.cache
def updates_to_step_every_optimizer(name: str, limit: int = 64) -> int:
    """How many updates of agent `name` (at its tiny sizes, on agent_and_replay's data) it takes until every
    optimizer of it has stepped: 1 for an agent whose every update steps everything; an actor updated every
    k-th critic step (actor_update_freq, CrossQ's policy_delay, a preset's slower rate) needs k. Tests that
    run a few updates run at least this many, so that they reach every piece of the update (the actor's step
    too) whatever the agent's update frequencies, and TINY stays about sizes. `limit` if some optimizer has
    not stepped by then (one that steps rarely by design, as MR.Q's encoder burst)."""
    agent, replay, _ = agent_and_replay(name)
    opts = optimizers(agent)
    for n in range(1, limit + 1):
        agent.update(replay, n - 1)
        if all(opt.state for opt in opts.values()):
            return n
    return limit
