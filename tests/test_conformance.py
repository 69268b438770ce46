"""The agent interface, checked for every registered agent (iqrl.core.registry.REGISTRY): a new agent is
tested here the moment it is registered, with nothing else to edit (`make test-agent NAME=<agent>` runs these
and the other registry-wide tests for one agent).

Per agent (agents without continuous actions: on 3 discrete actions, and their runs on a MiniGrid task; an
agent that learns from pixels only: on tiny frame stacks, its runs rendered, `[<agent>-from-pixels]`):
its tiny sizes are small; actions have the right shape, dtype and bounds; `state_dict` holds everything the
agent's future depends on (a fresh agent loaded from it acts and updates bit for bit like the original); the
interface members the trainer reads are declared; a short run writes a complete run folder; a run
interrupted after an agent step and resumed ends with the numbers of one never interrupted.
"""

import copy
import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from iqrl.config.build import build_config
from iqrl.core import registry as agents
from iqrl.core.interface import Agent, AgentSpec
from iqrl.core.registry import make_agent
from iqrl.core.replay import SequenceReplay
from iqrl.core.schedule import UpdateSchedule
from iqrl.core.spaces import ActionSpec
from iqrl.runfolder.layout import Q_BIAS_COLUMNS

from agent_helpers import assert_resume_matches, updates_to_step_every_optimizer
from conftest import (
    TINY_DISCRETE_TASK,
    agent_observations,
    e2e_run,
    render_for,
    tiny_keys,
)
from test_train import EVAL_COLS, read_csv

OBS, ACT = 5, 2


def action_spec(agent: str) -> ActionSpec:
    """The agent's test actions: a box of ACT dims, or 3 discrete actions for an agent without boxes."""
    return ActionSpec.box(ACT) if "box" in agents.agent_class(agent).ACTION_SPACES else ActionSpec.discrete(3)


def build(agent: str, seed: int) -> Agent:
    argv = tiny_keys(agent)
    torch.manual_seed(seed)  # network initialisation draws from the global generator, as in the trainer
    dim = agent_observations(agent, OBS).dim
    return make_agent(build_config(argv).agent, dim, action_spec(agent), torch.device("cpu"), seed)


def filled_replay(agent: Agent, seed: int = 0) -> SequenceReplay:
    """Two 60-step episodes of random transitions (the second ends by termination)."""
    spec, obs = action_spec(agent.cfg.name), agent_observations(agent.cfg.name, OBS)
    replay = obs.replay(spec, agent.spec.seq_len, torch.device("cpu"), seed)
    rng = np.random.default_rng(seed)
    for ep in range(2):
        replay.start_episode(obs.sample(rng))
        for t in range(60):
            replay.add(
                spec.sample(rng),
                float(rng.normal()),
                obs.sample(rng),
                ep == 1 and t == 59,
                ep == 0 and t == 59,
            )
    return replay


def as_numbers(metrics: dict) -> dict:
    return {k: float(v) for k, v in metrics.items()}


# What "tiny" means for the tests' runs: every agent of today fits with room (at most 38k parameters).
TINY_PARAMETERS, TINY_BATCH = 50_000, 32


@pytest.mark.registry
def test_tiny_sizes_are_small(agent):
    """The sizes every registry-wide test trains the agent at (its config's TINY) keep it small, so that its
    tests stay fast on CI's two cores."""
    a = build(agent, 0)
    n = sum(p.numel() for m in a.networks().values() for p in m.parameters())
    cls = agents.config_class(agent)
    assert n <= TINY_PARAMETERS and a.spec.batch_size <= TINY_BATCH, (
        f"{agent} at its tiny sizes has {n} parameters (at most {TINY_PARAMETERS}) and batches of "
        f"{a.spec.batch_size} (at most {TINY_BATCH}): declare the keys that shrink it on {cls.__module__}."
        f"{cls.__qualname__}, e.g. TINY: ClassVar[dict] = {{'mlp_dims': [32, 32], 'batch_size': 16}} "
        f"(AgentConfig.TINY, iqrl/core/interface.py); it now has {cls.TINY}"
    )


@pytest.mark.registry
def test_actions_have_the_right_shape_dtype_and_bounds(agent):
    a, spec = build(agent, 0), action_spec(agent)
    obs = agent_observations(agent, OBS).sample(np.random.default_rng(0), 4, scale=10)  # large inputs
    for explore in (False, True):
        batch, one = a.act(obs, explore=explore), a.act(obs[0], explore=explore)
        if spec.is_discrete:  # int64 indices in 0..n-1
            assert batch.shape == (4,) and one.shape == () and batch.dtype == one.dtype == np.int64
            assert 0 <= batch.min() and batch.max() < spec.n and 0 <= one < spec.n
            continue
        assert batch.shape == (4, ACT) and one.shape == (ACT,)
        assert batch.dtype == one.dtype == np.float32
        assert np.isfinite(batch).all() and (np.abs(batch) <= 1).all() and (np.abs(one) <= 1).all()


@pytest.mark.registry
@pytest.mark.computes
def test_state_dict_round_trip_continues_bit_for_bit(agent):
    """After a few updates, a fresh agent of another seed loaded from the saved state acts and updates exactly
    like the original: networks, targets, optimizers, counters and generators are all in the state."""
    a = build(agent, 0)
    replay = filled_replay(a)
    # 3 updates, or as many as it takes every optimizer to step (the actor's at any actor_update_freq)
    for step in range(max(3, updates_to_step_every_optimizer(agent))):
        a.update(replay, step)
        a.on_episode_end()
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    replay_state = copy.deepcopy(replay.state_dict())
    b = build(agent, 123)
    b.load_state_dict(torch.load(io.BytesIO(buf.getvalue()), weights_only=False))
    replay_b = filled_replay(b)
    replay_b.load_state_dict(replay_state)
    obs = agent_observations(agent, OBS).sample(np.random.default_rng(1), 3)
    for explore in (True, False):
        a.on_episode_start(training=explore)
        b.on_episode_start(training=explore)
        assert np.array_equal(a.act(obs, explore=explore), b.act(obs, explore=explore))
    assert as_numbers(a.update(replay, 3)) == as_numbers(b.update(replay_b, 3))
    assert np.array_equal(a.act(obs, explore=True), b.act(obs, explore=True))
    # the parameters after that update (actions alone can hide a difference: FSQ rounds the latent)
    nets_a, nets_b = a.networks(), b.networks()
    for name in nets_a:
        for (k, x), (_, y) in zip(nets_a[name].state_dict().items(), nets_b[name].state_dict().items()):
            assert torch.equal(x, y), f"{name}.{k}"


@pytest.mark.registry
def test_interface_members_the_trainer_reads(agent):
    a = build(agent, 0)
    assert isinstance(a, Agent) and isinstance(a.spec, AgentSpec)
    assert a.spec.seq_len >= 1 and a.spec.batch_size >= 1 and a.spec.updates_per_step > 0
    # an update-to-data ratio of its own is declared, so that updates_per_step cannot silently replace it
    key = type(a.cfg).UTD_KEY
    assert a.spec.updates_per_agent_step == (None if key is None else a.cfg.updates_per_agent_step()), (
        "AgentSpec.updates_per_agent_step comes from a config key: name it in the config's UTD_KEY"
    )
    assert isinstance(a.schedule, UpdateSchedule) and a.schedule.cycle >= 1
    assert a.PIXELS or not a.PIXELS_ONLY, (
        "an agent that learns from pixels only is built for them: PIXELS = True"
    )
    assert a.networks() and all(isinstance(m, torch.nn.Module) for m in a.networks().values())
    sigma = a.exploration_sigma
    assert sigma is None or (isinstance(sigma, float) and sigma >= 0)
    obs = torch.from_numpy(agent_observations(agent, OBS).sample(np.random.default_rng(0), 6))
    z = a.latent(obs)
    assert (z is None) == (a.latent_width is None)
    if z is not None:
        assert z.shape == (6, a.latent_width)
    codes = a.codes(obs)
    if codes is not None:
        assert a.codebook_size is not None and codes.dtype == torch.int64 and codes.shape[0] == 6
        assert 0 <= int(codes.min()) and int(codes.max()) < a.codebook_size


@pytest.mark.registry
@pytest.mark.computes
def test_agent_writes_complete_run_folder(agent, request, finished_runs):
    """The run folder of the agent's end-to-end run (conftest.e2e_run), which the resume test below and the
    evaluation tests compare with."""
    render_for(agent, request)
    out = finished_runs.get(e2e_run(agent))
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    task = "cartpole-balance" if not action_spec(agent).is_discrete else TINY_DISCRETE_TASK
    assert cfg["agent"]["name"] == agent and cfg["task"] == task and cfg["steps"] == 400
    assert cfg["meta"]["versions"]["torch"].startswith("2.13") and "git_commit" in cfg["meta"]
    lock = hashlib.sha256((Path(__file__).parents[1] / "uv.lock").read_bytes()).hexdigest()
    assert cfg["meta"]["lock"] == lock[:12]  # the dependency lock the environment was installed from
    # replay_capacity null: the effective one (the agent's default) is in meta, 0 = unbounded
    assert cfg["replay_capacity"] is None
    assert cfg["meta"]["replay_capacity"] == (build(agent, 0).spec.replay_capacity or 0)
    assert cfg["meta"].get("discrete_actions", False) == action_spec(agent).is_discrete
    ev = read_csv(out / "eval.csv")
    q_bias = list(Q_BIAS_COLUMNS) * (type(build(agent, 0)).probe_q is not Agent.probe_q)  # with a critic
    assert list(ev[0]) == EVAL_COLS + ["success"] * action_spec(agent).is_discrete + q_bias  # (MiniGrid's)
    # step 0, every 200, and the end (MiniGrid's episodes end early at the goal: the first episode end after)
    due = [0, 200, 400]
    late = 100 * action_spec(agent).is_discrete  # MiniGrid's Empty-5x5 episodes: <= 100 steps
    assert all(d <= int(r["env_step"]) <= d + late for d, r in zip(due, ev, strict=True))
    assert all(int(r["n_episodes"]) == 2 for r in ev)
    tr = read_csv(out / "train.csv")
    assert all(d <= int(r["env_step"]) <= d + late for d, r in zip(due[1:], tr, strict=True))
    assert float(tr[-1]["q_loss"]) >= 0 and float(tr[-1]["updates_per_s"]) > 0
    assert float(tr[-1]["env_steps_per_s"]) > 0
    if cfg["meta"]["latent_width"] is not None:
        assert 1 <= float(tr[-1]["latent_rank"]) <= cfg["meta"]["latent_width"]
    if cfg["meta"]["codebook_size"] is not None:
        assert 0 < float(tr[-1]["active_codebook_pct_mean"]) <= 100
    if agent.startswith("iqrl"):
        assert 1 <= float(tr[-1]["latent_rank"]) <= 16  # width 8 groups x 2 channels
        assert tr[-1]["consistency_loss"] != ""
    status = json.loads((out / "status.json").read_text())
    assert (
        status["state"] == "done"
        and status["env_step"] == int(ev[-1]["env_step"])
        and status["error"] is None
        and status["updates"] == int(tr[-1]["updates"]) > 0  # the final train.csv row is at the last step
    )
    assert (out / "checkpoint" / "ckpt.pt").exists()
    assert not [p for p in out.rglob("*.tmp")]  # no leftovers of atomic writes


@pytest.mark.registry
@pytest.mark.computes
def test_interrupt_and_resume_gives_identical_eval(agent, tmp_path, request, finished_runs):
    """The end-to-end run stopped at env step 250 (past its seed episodes, mid-episode) and resumed ends as
    the run never stopped."""
    render_for(agent, request)
    ref, run = assert_resume_matches(agent, tmp_path, finished_runs, reference=e2e_run(agent), stop=250)
    assert read_csv(run / "train.csv")[-1]["q_loss"] == read_csv(ref / "train.csv")[-1]["q_loss"]
