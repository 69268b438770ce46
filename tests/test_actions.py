"""Action spaces behind the one interface (iqrl/core/spaces.py): a task's box or discrete actions, the agents'
declared kinds, the refusal of an agent that cannot act in a task, and integer actions through the replay
(windows, padding past a terminal, n-step targets, priorities, checkpoints)."""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from iqrl.config.build import build_config
from iqrl.core import registry
from iqrl.core.interface import Agent, AgentConfig, AgentSpec
from iqrl.core.registry import AgentEntry, action_refusal, make_agent
from iqrl.core.replay import SequenceReplay, nstep_targets, nstep_transition
from iqrl.core.spaces import ActionSpec, as_action_spec


def test_a_box_samples_the_seed_phase_actions_of_old_and_discrete_samples_indices():
    box = ActionSpec.box(3)
    old = np.random.default_rng(7).uniform(-1.0, 1.0, 3).astype(np.float32)  # the trainer's draw before specs
    assert (
        np.array_equal(box.sample(np.random.default_rng(7)), old)
        and box.sample(np.random.default_rng(0)).dtype == np.float32
    )
    d = ActionSpec.discrete(4)
    rng = np.random.default_rng(0)
    draws = [d.sample(rng) for _ in range(400)]
    assert all(a.dtype == np.int64 and a.shape == () for a in draws)
    assert sorted({int(a) for a in draws}) == [0, 1, 2, 3]  # uniform over all four
    assert as_action_spec(5) == ActionSpec.box(5) and as_action_spec(d) is d
    assert d.width == 4 and d.is_discrete and not box.is_discrete
    assert d.describe() == "4 discrete actions" and box.describe() == "continuous actions (a box of 3 dims)"
    with pytest.raises(ValueError):
        ActionSpec("multi", 2)


def discrete_replay(seq_len: int, actions: list[list[int]], terminal_last=(False, True)) -> SequenceReplay:
    """Episodes of 1-dim observations o_t = 100 e + t, rewards r_t = t + 1 and the given integer actions; each
    episode ends by truncation, or termination where `terminal_last` says so."""
    replay = SequenceReplay(1, ActionSpec.discrete(5), seq_len, "cpu", 0)
    for e, acts in enumerate(actions):
        replay.start_episode(np.array([100.0 * e], np.float32))
        for t, a in enumerate(acts):
            last = t == len(acts) - 1
            term = last and terminal_last[e]
            replay.add(
                np.int64(a), float(t + 1), np.array([100.0 * e + t + 1], np.float32), term, last and not term
            )
    return replay


def test_integer_actions_are_stored_as_indices_and_sampled_beside_their_transitions():
    acts = [[0, 1, 2, 3, 4, 0], [4, 3, 2]]
    replay = discrete_replay(3, acts)
    assert replay._act.dtype == torch.int64 and replay._act.dim() == 1  # one index per transition
    b = replay.sample(64)
    assert b.action.dtype == torch.int64 and b.action.shape == (64, 3)
    for i in range(64):
        ep, t0 = divmod(int(b.obs[i, 0, 0]), 100)
        for k in range(3):
            if b.valid[i, k]:
                t = t0 + k
                assert int(b.action[i, k]) == acts[ep][t] and float(b.reward[i, k]) == t + 1
    # the terminated episode's windows run past its end: padded with the terminal step's action, masked
    past = b.valid.sum(1) < 3
    assert past.any() and (b.obs[past, 0, 0] >= 100).all()
    last_valid = b.valid.sum(1).long() - 1
    padded = b.action[past][:, -1]
    assert torch.equal(padded, b.action[past].gather(1, last_valid[past, None])[:, 0])


def test_nstep_targets_of_integer_action_windows_are_those_of_their_rewards():
    replay = discrete_replay(3, [[2, 2, 2, 2], [1, 0, 1]])
    b = replay.sample(32)
    gamma = 0.9
    ret, discount, boot = nstep_targets(b.reward, b.terminal, b.valid, gamma, 3)
    for i in range(32):
        ep, t0 = divmod(int(b.obs[i, 0, 0]), 100)
        n_ep = 4 if ep == 0 else 3
        m = min(3, n_ep - t0)  # steps up to the episode's end
        assert float(ret[i]) == pytest.approx(sum(gamma**k * (t0 + k + 1) for k in range(m)))
        terminated = ep == 1 and t0 + m == n_ep
        assert float(discount[i]) == pytest.approx(0.0 if terminated else gamma**m) and int(boot[i]) == m
    o, a, *_ = nstep_transition(b, gamma, 3)
    assert a.dtype == torch.int64 and a.shape == (32,) and torch.equal(a, b.action[:, 0])


def test_integer_actions_survive_a_checkpoint_and_priorities_apply_to_them():
    replay = discrete_replay(2, [[3, 1, 4, 1, 0]])
    replay.update_priorities(torch.tensor([0, 1, 2, 3]), torch.tensor([0.0, 0.0, 0.0, 5.0]))
    state = io.BytesIO()
    torch.save(replay.state_dict(), state)
    again = SequenceReplay(1, ActionSpec.discrete(5), 2, "cpu", 99)
    again.load_state_dict(torch.load(io.BytesIO(state.getvalue()), weights_only=False))
    assert again._act.dtype == torch.int64 and torch.equal(again._act[:5], torch.tensor([3, 1, 4, 1, 0]))
    assert torch.equal(replay.sample(8).action, again.sample(8).action)  # the sampler's stream continues
    # only the start with a positive priority is drawn: window 3 .. 4
    assert torch.equal(again.sample(16, prioritized=True).action, torch.tensor([[1, 0]] * 16))


# ---------------------------------------------------------------------------------- agents' declared kinds
@dataclass
class DiscreteTinyConfig(AgentConfig):
    name: str = "discrete-tiny"


class DiscreteTiny(Agent):
    """An agent that acts in both kinds: it records what it was built with."""

    ACTION_SPACES = ("box", "discrete")

    def __init__(self, cfg, obs_dim, act_dim, device, seed, action_spec: ActionSpec):
        super().__init__(cfg, device, seed)
        self.spec = AgentSpec(seq_len=1, batch_size=4)
        self.built_with = (act_dim, action_spec)

    def act(self, obs, explore):
        return np.zeros(np.shape(obs)[:-1], np.int64)

    def update(self, replay, step):
        return {}


@pytest.fixture
def with_discrete_tiny(monkeypatch):
    monkeypatch.setitem(
        registry.REGISTRY,
        "discrete-tiny",
        AgentEntry(f"{__name__}:DiscreteTiny", f"{__name__}:DiscreteTinyConfig", "td3_tasks.yaml"),
    )


def test_an_agent_listing_discrete_is_built_with_the_spec_and_the_others_with_the_width(with_discrete_tiny):
    cfg = DiscreteTinyConfig()
    agent = make_agent(cfg, 5, ActionSpec.discrete(6), "cpu", 0)
    assert agent.built_with == (6, ActionSpec.discrete(6))
    assert make_agent(cfg, 5, 3, "cpu", 0).built_with == (3, ActionSpec.box(3))  # an int: a box
    td3 = build_config(["agent=td3", "agent.mlp_dims=[8]"]).agent
    assert make_agent(td3, 5, ActionSpec.box(2), "cpu", 0).learner.act_dim == 2
    with pytest.raises(ValueError, match="agent td3 cannot act in 6 discrete actions"):
        make_agent(td3, 5, ActionSpec.discrete(6), "cpu", 0)


def test_the_refusal_names_the_agent_the_task_and_the_agents_that_can(with_discrete_tiny):
    line = action_refusal("td3", "atari:Pong", "discrete")
    able = registry.action_agents("discrete")
    assert "discrete-tiny" in able and "td3" not in able
    assert line == (
        "agent td3 acts in continuous (box) action spaces only and task atari:Pong has discrete actions; "
        f"agents that can act in it: {', '.join(able)}"
    )
    assert action_refusal("discrete-tiny", "atari:Pong", "discrete") is None
    assert action_refusal("td3", "walker-walk", "box") is None
    # every agent written before discrete actions acts in a box by default: none needed a change
    assert Agent.ACTION_SPACES == ("box",)


@pytest.mark.registry
def test_the_agent_acts_in_the_kinds_its_class_lists_and_is_refused_the_others(agent):
    """ACTION_SPACES decides: the lists of agents per kind and the run config's refusal."""
    spaces = registry.agent_class(agent).ACTION_SPACES
    assert spaces and set(spaces) <= {"box", "discrete"}, f"{agent}: ACTION_SPACES {spaces}"
    for kind in ("box", "discrete"):
        assert (agent in registry.action_agents(kind)) == (kind in spaces)
        assert (action_refusal(agent, "a-task", kind) is None) == (kind in spaces)
