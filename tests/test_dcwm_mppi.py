"""MPPI planner on toy models with known rewards: direction, beats random, warm start, elites, batching."""

import pytest
import torch

from baselines.dcwm_mppi import MPPIConfig, mppi_plan, shift_plan, trajectory_value

SMALL = MPPIConfig(horizon=3, iterations=4, num_samples=128, num_pi_trajs=0, num_elites=16, temperature=5.0)


# A 1-D integrator: z = (position x, target g); x' = x + 0.5 a; reward -(x' - g)^2. Known optimum: move to g.
def dynamics(z, a):
    return torch.stack([z[..., 0] + 0.5 * a[..., 0], z[..., 1]], -1)


def reward(z, a):
    return -((dynamics(z, a)[..., 0] - z[..., 1]) ** 2)


def zero_value(z):
    return torch.zeros(z.shape[:-1])


def plan(z0, cfg=SMALL, seed=0, **kw):
    g = torch.Generator().manual_seed(seed)
    kw.setdefault("terminal_value", zero_value)
    return mppi_plan(z0, dynamics=dynamics, reward=reward, act_dim=1, cfg=cfg, generator=g, **kw)


def value_of(z0, seqs):
    """Value of action sequences seqs [N, S, H, 1] from z0 [N, 2] (discount 0.9, no terminal value)."""
    return trajectory_value(z0, seqs, dynamics, reward, zero_value, 0.9)


@pytest.mark.parametrize("target, sign", [(1.5, 1.0), (-1.5, -1.0)])
def test_first_action_points_at_the_target_and_beats_random(target, sign):
    z0 = torch.tensor([[0.0, target]])
    out = plan(z0)
    assert out.action.shape == (1, 1) and out.plan.shape == (1, 3, 1)
    assert out.action.item() * sign > 0.5  # the best first action is +-1 (the target is 3 full steps away)
    assert out.mean[0, 0, 0].item() * sign > 0.5
    g = torch.Generator().manual_seed(1)
    random = torch.rand(1, 1000, 3, 1, generator=g) * 2 - 1
    planned = value_of(z0, out.plan[:, None])
    assert planned.item() > value_of(z0, random).mean().item()
    assert planned.item() >= torch.quantile(value_of(z0, random), 0.95).item()


def test_plans_each_environment_of_a_batch_separately():
    z0 = torch.tensor([[0.0, 1.5], [0.0, -1.5], [1.0, 1.0]])
    out = plan(z0)
    assert out.action.shape == (3, 1)
    assert out.action[0].item() > 0.5 and out.action[1].item() < -0.5
    assert abs(out.mean[2, 0, 0].item()) < 0.5  # already at the target: stay near 0
    assert out.action.abs().max() <= 1.0  # candidates are clamped to the action bounds


def test_terminal_value_is_used_with_discount_to_the_power_h():
    # No reward at all; the terminal value prefers x_H = -1: the plan must head there.
    cfg = MPPIConfig(horizon=2, iterations=4, num_samples=128, num_pi_trajs=0, num_elites=16, temperature=5.0)
    z0 = torch.tensor([[0.0, 0.0]])
    g = torch.Generator().manual_seed(0)
    out = mppi_plan(
        z0,
        dynamics=dynamics,
        reward=lambda z, a: torch.zeros(z.shape[:-1]),
        terminal_value=lambda z: -((z[..., 0] + 1.0) ** 2),
        act_dim=1,
        cfg=cfg,
        generator=g,
    )
    assert out.action.item() < -0.5
    # trajectory value = sum_t d^t r_t + d^H V(z_H), checked by hand on one sequence
    seq = torch.tensor([[[[1.0], [-1.0]]]])  # x: 0 -> 0.5 -> 0
    v = trajectory_value(
        z0,
        seq,
        dynamics,
        lambda z, a: torch.ones(z.shape[:-1]),
        lambda z: torch.full(z.shape[:-1], 10.0),
        0.5,
    )
    assert v.item() == pytest.approx(1 + 0.5 + 0.25 * 10)


def test_policy_prior_trajectories_are_candidates():
    # Few random samples and one iteration: a perfect prior (always +1 toward a far target) should win.
    cfg = MPPIConfig(
        horizon=3, iterations=1, num_samples=6, num_pi_trajs=2, num_elites=2, temperature=50.0, max_std=0.05
    )
    z0 = torch.tensor([[0.0, 3.0]])
    seen = []

    def prior(z):
        seen.append(z.shape)
        return torch.ones(*z.shape[:-1], 1)

    out = plan(z0, cfg, policy_prior=prior)
    assert seen == [(1, 2, 2)] * 3  # rolled out once, H steps, over the P prior rows
    assert torch.allclose(out.plan, torch.ones(1, 3, 1))


def test_warm_start_shifts_the_previous_plan():
    prev = torch.tensor([[[0.1], [0.2], [0.3]]])
    assert torch.equal(shift_plan(prev), torch.tensor([[[0.2], [0.3], [0.0]]]))
    # With tiny std the refitted mean stays at the (shifted) warm start; without one it starts at 0.
    cfg = MPPIConfig(
        horizon=3, iterations=1, num_samples=64, num_pi_trajs=0, num_elites=8, min_std=1e-6, max_std=1e-6
    )
    z0 = torch.tensor([[0.0, 0.0]])
    assert torch.allclose(plan(z0, cfg, prev_mean=prev).mean, shift_plan(prev), atol=1e-5)
    assert torch.allclose(plan(z0, cfg).mean, torch.zeros(1, 3, 1), atol=1e-5)


def test_std_is_refitted_to_the_weighted_elites_then_clamped():
    """std starts at max_std and is refitted as sqrt(sum_i w_i (a_i - mean)^2 / sum_i w_i) over the elites,
    then clamped to [min_std, max_std]. All weight on one elite (huge temperature) gives 0, clamped to
    min_std; equal weights give the spread of elites drawn inside [-1, 1]: at most 1, down from the starting
    2.0; min_std = max_std pins it."""
    z0 = torch.tensor([[0.0, 1.5]])
    kw = dict(horizon=3, iterations=1, num_samples=64, num_pi_trajs=0, num_elites=8)
    greedy = plan(z0, MPPIConfig(**kw, temperature=1e6, min_std=0.01, max_std=0.6))
    assert torch.allclose(greedy.std, torch.full((1, 3, 1), 0.01))
    flat = plan(z0, MPPIConfig(**kw, temperature=1e-9, min_std=1e-6, max_std=2.0))
    assert (flat.std <= 1.0).all() and (flat.std > 0.05).any()  # from 2.0 to the elites' spread
    pinned = plan(z0, MPPIConfig(**kw, temperature=1e-9, min_std=0.3, max_std=0.3))
    assert torch.equal(pinned.std, torch.full((1, 3, 1), 0.3))


def test_returned_action_is_an_elite_drawn_by_weight():
    z0 = torch.tensor([[0.0, 0.7]])
    out = plan(z0)
    assert out.value.item() == pytest.approx(value_of(z0, out.plan[:, None]).item(), abs=1e-5)
    assert out.value.item() == out.elite_value[0, out.pick[0]].item()
    assert (out.elite_value[0, :-1] >= out.elite_value[0, 1:]).all()  # best first
    # Huge temperature: all weight on the best elite. Temperature ~0: every elite equally likely.
    greedy = MPPIConfig(
        horizon=3, iterations=2, num_samples=64, num_pi_trajs=0, num_elites=8, temperature=1e6
    )
    flat = MPPIConfig(horizon=3, iterations=2, num_samples=64, num_pi_trajs=0, num_elites=8, temperature=1e-9)
    assert all(plan(z0, greedy, seed=s).pick.item() == 0 for s in range(20))
    picks = [plan(z0, flat, seed=s).pick.item() for s in range(40)]
    assert len(set(picks)) >= 4 and picks.count(0) < 20


def test_nan_values_count_as_zero():
    """A sequence whose value is NaN ranks as value 0: with every other step rewarded -1, the sequences that
    touch an action above 0.9 (NaN reward) are the best elites, at value exactly 0."""

    def nan_reward(z, a):
        return torch.where(a[..., 0] > 0.9, torch.tensor(float("nan")), torch.tensor(-1.0))

    g = torch.Generator().manual_seed(0)
    cfg = MPPIConfig(horizon=3, iterations=1, num_samples=128, num_pi_trajs=0, num_elites=16, temperature=1e6)
    out = mppi_plan(
        torch.tensor([[0.0, 1.5]]),
        dynamics=dynamics,
        reward=nan_reward,
        terminal_value=zero_value,
        act_dim=1,
        cfg=cfg,
        generator=g,
    )
    assert out.elite_value[0, 0].item() == 0.0 and out.value.item() == 0.0
    assert (out.plan > 0.9).any()  # the pick is a NaN-valued sequence, ranked at 0 above every -1 step
    assert (
        torch.isfinite(out.action).all() and torch.isfinite(out.mean).all() and torch.isfinite(out.std).all()
    )


def test_same_generator_state_same_plan():
    z0 = torch.tensor([[0.0, 1.5]])
    a, b = plan(z0, seed=3), plan(z0, seed=3)
    assert torch.equal(a.action, b.action) and torch.equal(a.mean, b.mean)


def test_config_validation_names_the_field():
    with pytest.raises(ValueError, match="num_elites"):
        MPPIConfig(num_samples=8, num_elites=9, num_pi_trajs=0).validate()
    with pytest.raises(ValueError, match="plan_horizon"):
        MPPIConfig(horizon=0).validate(keys={"horizon": "plan_horizon"})
