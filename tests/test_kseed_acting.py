"""A K-seed group's acting as the seeds hand it in: observations on the host, stacked there and moved to the
device at once, and iqrl's exploration noise scaled inside the group's forward, give each seed the bits it
gets when it moves its own observations and scales its own noise."""

from __future__ import annotations

import numpy as np
import pytest
from test_multiseed import act_in_group, agent_and_replay

from iqrl.core.update import to_tensor
from iqrl.learners.td3 import TD3Learner


@pytest.mark.parametrize("extra", [[], ["agent.quantizer=none"]])  # without FSQ every bit of the input shows
def test_observations_moved_at_once_and_noise_scaled_in_the_forward_give_each_seed_the_same_bits(
    extra, monkeypatch
):
    """iqrl's seeds hand their observations in on the host (`HostArray`: the group stacks them there and moves
    them once) and their exploration noise unscaled (the forward scales it): every seed's actions, exploring
    and evaluating, are bitwise those of the group fed observations each seed moved itself and noise each
    scaled itself, from the same draws (float64 observations: converted as each seed converts its own)."""
    agents = [agent_and_replay(["agent=iqrl", *extra], seed)[0] for seed in (0, 1, 2)]
    for k, a in enumerate(agents):  # each seed at its own point of the sigma schedule, below 1
        a.learner.episodes_trained = 40 + 3 * k
    rng = np.random.default_rng(0)
    asks = [
        [(o, True), (o + 1, True), (rng.standard_normal((4, 5)), False)] for o in rng.standard_normal((3, 5))
    ]
    before = [a.generator.get_state() for a in agents]
    grouped, rounds = act_in_group(agents, asks)
    for a, state in zip(agents, before):
        a.generator.set_state(state)
    monkeypatch.setattr("iqrl.agent.iqrl.HostArray", to_tensor)  # each seed moves its own
    own_scale = lambda self, batch, explore: (  # noqa: E731
        {"noise": self.normal(*batch, self.act_dim) * self.expl_sigma} if explore else {}
    )
    monkeypatch.setattr(TD3Learner, "act_draws", own_scale)
    each, each_rounds = act_in_group(agents, asks)
    assert rounds == each_rounds == [[0, 1, 2]] * 3  # different sigmas still act in one round
    for k in range(3):
        for got, want in zip(grouped[k], each[k], strict=True):
            assert got.dtype == want.dtype == np.float32 and np.array_equal(got, want)
    explored = np.concatenate([g[0] for g in grouped] + [g[1] for g in grouped])
    assert len(set(explored.tolist())) == 6 and np.abs(explored).max() < 1  # noisy, not clamped
