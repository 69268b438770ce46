"""The updater's pieces that change networks besides a gradient step (iqrl/core/update.py), in every mode: a
reset that re-initialises networks and their optimizer state (BRO's resets), and parameters re-mapped after a
step (`step(after=...)`: SimbaV2's projection of its weights onto the unit sphere).

Pinned: a reset gives the networks that their build function makes from the seed drawn beforehand, and the
optimizer starts again (its next step is a fresh Adam's first step) for them only; a frozen network is not
reset; in the K-seed mode each seed re-draws from its own generator and trains on as its plain run does.
A projection after each step leaves unit rows, equal to a plain loop's in-place projection (eagerly bit for
bit, compiled and in the K-seed mode to rounding), and Adam's moments untouched.
"""

from __future__ import annotations

import threading
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from iqrl.core.interface import Agent, AgentSpec
from iqrl.core.update import Updater
from iqrl.multiseed.group import SeedGroup
from iqrl.nn.layers import build_seeded, draw_seed, mlp
from iqrl.nn.optim import adam
from iqrl.nn.stats import BatchNorm, write


def net() -> nn.Module:
    # no bias before the normalisation: its gradient is zero but for rounding, which Adam would amplify
    return nn.Sequential(nn.Linear(3, 8, bias=False), BatchNorm(8), nn.Mish(), nn.Linear(8, 1))


class ResettingAgent(Agent):
    """Regression of two networks; at update `reset_at` the first is re-initialised (as BRO resets)."""

    STATE_OBJECTS = ("first", "second", "opt")

    def __init__(self, seed: int, reset_at: int = 2):
        super().__init__(SimpleNamespace(name="resetting"), "cpu", seed)
        torch.manual_seed(seed)
        self.spec = AgentSpec(seq_len=1, batch_size=8)
        self.first, self.second = net(), net()
        self.opt = adam([*self.first.parameters(), *self.second.parameters()], 1e-2)
        self.reset_at = reset_at

    def act(self, obs, explore):
        return np.zeros(1, np.float32)

    def loss(self, x, y):
        return ((self.first(x) + self.second(x)).squeeze(-1) - y).square().mean()

    def update(self, data, i):
        u = self.updater
        if i == self.reset_at:
            u.reset(self.first, net, self.opt, seed=draw_seed(self.generator))
        x, y = data[i]
        return {"loss": u.step(self.loss, x, y, opt=self.opt).loss}


def regression(seed: int, n: int = 5):
    g = torch.Generator().manual_seed(seed)
    xs = [torch.randn(8, 3, generator=g) for _ in range(n)]
    return [(x, x.sum(-1).cos()) for x in xs]


def tensors(module: nn.Module) -> dict[str, torch.Tensor]:
    return {n: t.detach().clone() for n, t in module.state_dict().items()}


def test_a_reset_builds_the_networks_from_the_drawn_seed_and_restarts_their_optimizer_state():
    agent, data = ResettingAgent(0, reset_at=99), regression(0)
    for i in range(2):
        agent.update(data, i)
    second, moments = tensors(agent.second), dict(agent.opt.state[agent.second[0].weight])
    seed = draw_seed(agent.generator.clone_state())
    agent.updater.reset(agent.first, net, agent.opt, seed=draw_seed(agent.generator))
    want = build_seeded(net, seed)
    assert all(torch.equal(t, want.state_dict()[n]) for n, t in agent.first.state_dict().items())
    assert int(agent.first[1].num_batches_tracked) == 0  # buffers too
    assert all(p not in agent.opt.state for p in agent.first.parameters())
    assert torch.equal(agent.opt.state[agent.second[0].weight]["exp_avg"], moments["exp_avg"])
    assert all(torch.equal(t, second[n]) for n, t in agent.second.state_dict().items())
    # the reset network's next step is a fresh Adam's first step
    fresh = build_seeded(net, seed)
    fresh_opt = adam(fresh.parameters(), 1e-2)
    agent.update(data, 2)
    fresh_opt.zero_grad()
    x, y = data[2]
    ((fresh(x) + agent_second_before(agent, second)(x)).squeeze(-1) - y).square().mean().backward()
    fresh_opt.step()
    for n, t in agent.first.named_parameters():
        torch.testing.assert_close(t, dict(fresh.named_parameters())[n], rtol=0, atol=0, msg=n)
    assert float(agent.opt.state[agent.first[0].weight]["step"]) == 1


def agent_second_before(agent, second: dict) -> nn.Module:
    """A copy of the agent's second network with the values `second` (before its own step)."""
    copy = net()
    copy.load_state_dict(second)
    return copy


def test_a_frozen_network_is_not_reset():
    agent = ResettingAgent(0)
    agent.updater.freeze([agent.first])
    before = tensors(agent.first)
    agent.updater.reset(agent.first, net, agent.opt, seed=1)
    assert all(torch.equal(t, before[n]) for n, t in agent.first.state_dict().items())


def test_a_reset_refuses_networks_of_another_structure():
    with pytest.raises(ValueError, match="structure and shapes"):
        Updater().reset(net(), lambda: mlp(3, [4], 1), seed=0)


def test_in_the_k_seed_mode_each_seed_resets_from_its_own_generator_and_trains_on_as_its_plain_run():
    """Three seeds reset at their third update: each seed's losses and networks after five updates are its
    plain run's (to rounding), its checkpointed optimizer state too, and the seeds' reset networks differ."""
    seeds = (0, 1, 2)
    plain = {s: ResettingAgent(s) for s in seeds}
    want = {s: [float(plain[s].update(regression(s), i)["loss"]) for i in range(5)] for s in seeds}
    grouped = [ResettingAgent(s) for s in seeds]
    group = SeedGroup(grouped)
    got = {}

    def run(k):
        data = regression(seeds[k])
        got[k] = [float(grouped[k].update(data, i)["loss"]) for i in range(5)]

    threads = [threading.Thread(target=run, args=(k,)) for k in range(3)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    for k, s in enumerate(seeds):
        np.testing.assert_allclose(got[k], want[s], rtol=1e-5)
        for name in ("first", "second"):
            mine, theirs = tensors(getattr(plain[s], name)), tensors(getattr(grouped[k], name))
            for n in mine:
                torch.testing.assert_close(theirs[n], mine[n], rtol=1e-5, atol=1e-6, msg=f"{name}.{n}")
        group.write_optimizer_state(k)
        p_plain, p_group = plain[s].first[0].weight, grouped[k].first[0].weight
        assert float(grouped[k].opt.state[p_group]["step"]) == float(plain[s].opt.state[p_plain]["step"]) == 3
        torch.testing.assert_close(
            grouped[k].opt.state[p_group]["exp_avg"],
            plain[s].opt.state[p_plain]["exp_avg"],
            rtol=1e-4,
            atol=1e-7,
        )
    assert not torch.equal(grouped[0].first[3].weight, grouped[1].first[3].weight)


# ------------------------------------------------------------------------------------ re-mapped parameters
class UnitLinear(nn.Linear):
    """A linear layer whose weight rows live on the unit sphere: `project` writes them normalised."""

    def project(self) -> None:
        write(self, "weight", F.normalize(self.weight, dim=-1))


class ProjectingAgent(Agent):
    STATE_OBJECTS = ("net", "opt")

    def __init__(self, seed: int):
        super().__init__(SimpleNamespace(name="projecting"), "cpu", seed)
        torch.manual_seed(seed)
        self.spec = AgentSpec(seq_len=1, batch_size=8)
        self.net = nn.Sequential(UnitLinear(3, 8), nn.Mish(), UnitLinear(8, 1))
        self.opt = adam(self.net.parameters(), 1e-2)

    def act(self, obs, explore):
        return np.zeros(1, np.float32)

    def loss(self, x, y):
        return (self.net(x).squeeze(-1) - y).square().mean()

    def project(self) -> None:
        for layer in (self.net[0], self.net[2]):
            layer.project()

    def update(self, data, i):
        x, y = data[i]
        return {"loss": self.updater.step(self.loss, x, y, opt=self.opt, after=self.project).loss}


def projected_by_hand(seed: int, data) -> tuple[ProjectingAgent, list[float]]:
    """A plain PyTorch loop: step, then normalise the rows in place."""
    agent, losses = ProjectingAgent(seed), []
    for x, y in data:
        agent.opt.zero_grad()
        loss = agent.loss(x, y)
        loss.backward()
        agent.opt.step()
        with torch.no_grad():
            for layer in (agent.net[0], agent.net[2]):
                layer.weight.copy_(F.normalize(layer.weight, dim=-1))
        losses.append(float(loss.detach()))
    return agent, losses


def assert_unit_rows(agent) -> None:
    for layer in (agent.net[0], agent.net[2]):
        torch.testing.assert_close(layer.weight.norm(dim=-1), torch.ones(layer.out_features))


def test_parameters_re_mapped_after_each_step_eagerly_and_compiled():
    data = regression(0, n=3)
    plain, want = projected_by_hand(0, data)
    eager, compiled = ProjectingAgent(0), ProjectingAgent(0)
    compiled.compile()
    assert [float(eager.update(data, i)["loss"]) for i in range(3)] == want
    assert all(torch.equal(t, plain.net.state_dict()[n]) for n, t in eager.net.state_dict().items())
    np.testing.assert_allclose([float(compiled.update(data, i)["loss"]) for i in range(3)], want, rtol=1e-5)
    for n, t in compiled.net.state_dict().items():
        torch.testing.assert_close(t, plain.net.state_dict()[n], rtol=1e-5, atol=1e-6)
    assert_unit_rows(eager), assert_unit_rows(compiled)
    # the projection left Adam's moments as the step made them
    assert torch.equal(
        eager.opt.state[eager.net[0].weight]["exp_avg"], plain.opt.state[plain.net[0].weight]["exp_avg"]
    )


def test_parameters_re_mapped_after_each_step_in_the_k_seed_mode():
    seeds = (0, 1)
    plain = {s: projected_by_hand(s, regression(s, n=3)) for s in seeds}
    grouped = [ProjectingAgent(s) for s in seeds]
    group = SeedGroup(grouped)
    got = {}

    def run(k):
        data = regression(seeds[k], n=3)
        got[k] = [float(grouped[k].update(data, i)["loss"]) for i in range(3)]

    threads = [threading.Thread(target=run, args=(k,)) for k in range(2)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    for k, s in enumerate(seeds):
        agent, want = plain[s]
        np.testing.assert_allclose(got[k], want, rtol=1e-5)
        for n, t in grouped[k].net.state_dict().items():
            torch.testing.assert_close(t, agent.net.state_dict()[n], rtol=1e-5, atol=1e-6, msg=n)
            torch.testing.assert_close(group.stacked[f"parts.net.{n}"][k], t, rtol=0, atol=0)
        assert_unit_rows(grouped[k])
    assert group.round == 3 * 2  # a step and its projection per update
