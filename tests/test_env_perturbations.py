"""Stochastic and distracting environments (run keys obs_noise, action_noise, sticky_actions, distractor_dims,
distractor, perturb_eval; iqrl.envs.perturb.PerturbedEnv): each changes exactly what it claims, nothing when
off,
and runs with them resume bit-identically."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from iqrl.config.build import build_config
from iqrl.config.run import ConfigError, perturbations
from iqrl.envs.dmc import DMCEnv
from iqrl.envs.make import make_env
from iqrl.envs.perturb import Perturbations, PerturbedEnv
from iqrl.envs.step import Step
from iqrl.runfolder.exits import EXIT_INTERRUPTED, EXIT_OK
from iqrl.train import main

from conftest import stop_after_steps, tiny_argv
from test_train import eval_numbers


class FakeEnv:
    """Observation = the last executed action, repeated to 4 entries; reward = its first entry."""

    obs_dim, act_dim = 4, 2

    def __init__(self):
        self.executed: list[np.ndarray] = []

    def reset(self):
        self.executed = []
        return np.zeros(4, np.float32)

    def step(self, action):
        a = np.asarray(action, np.float32)
        self.executed.append(a)
        return Step(np.tile(a, 2), float(a[0]), False, False)

    def get_state(self):
        return {"random": 0}

    def set_state(self, state):
        pass


def perturbed(**kw) -> PerturbedEnv:
    return PerturbedEnv(FakeEnv(), Perturbations(**kw), seed=3)


def test_observation_noise_has_zero_mean_and_the_set_std():
    env = perturbed(obs_noise=0.3)
    env.reset()
    a = np.array([0.5, -0.5], np.float32)
    noise = np.stack([env.step(a).obs - np.tile(a, 2) for _ in range(5000)])
    assert noise.std() == pytest.approx(0.3, rel=0.03) and abs(noise.mean()) < 4 * 0.3 / np.sqrt(noise.size)
    assert np.array_equal(np.stack(env._env.executed), np.tile(a, (5000, 1)))  # actions untouched


def test_action_noise_perturbs_the_executed_action_and_clips_it():
    env = perturbed(action_noise=0.2)
    env.reset()
    a = np.array([0.0, 0.95], np.float32)
    obs = np.stack([env.step(a).obs for _ in range(5000)])
    executed = np.stack(env._env.executed)
    assert np.array_equal(obs[:, :2], executed)  # no observation noise
    assert (executed[:, 0] - 0.0).std() == pytest.approx(0.2, rel=0.03)
    assert executed.max() <= 1.0 and (executed[:, 1] == 1.0).mean() == pytest.approx(0.4013, abs=0.03)
    # P(0.95 + N(0, 0.2^2) > 1) = P(N(0, 1) > 0.25) = 0.4013


def test_sticky_actions_repeat_the_previous_action_with_the_set_probability():
    env = perturbed(sticky_actions=0.25)
    env.reset()
    n = 8000
    for t in range(n):
        env.step(np.array([t, -t], np.float32) / n)
    executed = np.stack(env._env.executed)
    repeated = (executed[1:] == executed[:-1]).all(1)
    tol = 4 * np.sqrt(0.25 * 0.75 / n)
    assert repeated.mean() == pytest.approx(0.25, abs=tol)
    assert np.array_equal(executed[0], [0.0, 0.0])  # the first step of an episode is never sticky


@pytest.mark.parametrize("kind", ["noise", "signal"])
def test_distractors_are_independent_of_actions_and_leave_the_reward_alone(kind):
    runs = []
    for actions in (np.zeros((300, 2)), np.random.default_rng(0).uniform(-1, 1, (300, 2))):
        env = perturbed(distractor_dims=3, distractor=kind)
        first = env.reset()
        steps = [env.step(a.astype(np.float32)) for a in actions]
        runs.append((first[4:], np.stack([s.obs[4:] for s in steps]), [s.reward for s in steps], actions))
        assert env.obs_dim == 7 and first.shape == (7,)
    (f0, d0, _, _), (f1, d1, r1, a1) = runs
    assert np.array_equal(f0, f1) and np.array_equal(d0, d1)  # the same draws whatever the agent does
    assert r1 == pytest.approx(list(a1[:, 0]))  # the reward is the task's
    if kind == "noise":
        assert d0.std() == pytest.approx(1.0, rel=0.1)
    else:  # smooth: consecutive values close, bounded by the amplitude
        assert np.abs(np.diff(d0, axis=0)).max() < 1.0 and np.abs(d0).max() <= 1.5


def test_everything_off_is_todays_env_exactly():
    assert not Perturbations().active
    assert type(make_env("cartpole-swingup", 1, 2, 200, Perturbations())) is DMCEnv
    plain, wrapped = (
        DMCEnv("cartpole-swingup", 1, 2, 200),
        PerturbedEnv(DMCEnv("cartpole-swingup", 1, 2, 200), Perturbations(), 1),
    )
    rng = np.random.default_rng(0)
    assert np.array_equal(plain.reset(), wrapped.reset())
    for _ in range(50):
        a = rng.uniform(-1, 1, 1).astype(np.float32)
        s, w = plain.step(a), wrapped.step(a)
        assert np.array_equal(s.obs, w.obs) and s.reward == w.reward


def test_state_round_trip_continues_the_same_draws():
    env = perturbed(obs_noise=0.1, sticky_actions=0.3, distractor_dims=2, distractor="signal")
    env.reset()
    state = env.get_state()
    a = np.array([0.1, 0.2], np.float32)
    first = [env.reset()] + [env.step(a).obs for _ in range(20)]
    env.set_state(state)
    again = [env.reset()] + [env.step(a).obs for _ in range(20)]
    assert all(np.array_equal(x, y) for x, y in zip(first, again))


def test_evaluation_keeps_only_the_distractors_with_perturb_eval_false():
    run = build_config(
        ["agent=td3", "obs_noise=0.1", "sticky_actions=0.2", "distractor_dims=4", "perturb_eval=false"]
    )
    assert perturbations(run) == Perturbations(0.1, 0.0, 0.2, 4, "noise")
    assert perturbations(run, evaluation=True) == Perturbations(distractor_dims=4)
    on = build_config(["agent=td3", "obs_noise=0.1"])
    assert perturbations(on, evaluation=True) == perturbations(on)


@pytest.mark.parametrize(
    "arg, message",
    [
        ("obs_noise=-0.1", "obs_noise and action_noise must be >= 0"),
        ("sticky_actions=1.0", "sticky_actions must be in [0, 1)"),
        ("distractor_dims=-1", "distractor_dims must be >= 0"),
        ("distractor=video", "distractor must be one of noise, signal"),
    ],
)
def test_bad_perturbation_settings_are_one_clear_error(arg, message):
    with pytest.raises(
        ConfigError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")
    ):
        build_config(["agent=td3", arg])


PERTURBED = ["obs_noise=0.05", "action_noise=0.1", "sticky_actions=0.2", "distractor_dims=2"]


def test_a_perturbed_run_resumes_bit_identically(tmp_path):
    ref, run = tmp_path / "ref", tmp_path / "run"
    assert main(tiny_argv("td3", ref, seed=2, extra=PERTURBED)) == EXIT_OK
    assert main(tiny_argv("td3", run, seed=2, extra=PERTURBED), should_stop=stop_after_steps(337)) == (
        EXIT_INTERRUPTED
    )
    assert main(tiny_argv("td3", run, seed=2, extra=PERTURBED)) == EXIT_OK
    assert eval_numbers(run) == eval_numbers(ref)
    assert main(tiny_argv("td3", tmp_path / "plain", seed=2)) == EXIT_OK
    assert eval_numbers(tmp_path / "plain") != eval_numbers(ref)  # the perturbations did change the run


def test_a_run_folder_from_before_the_perturbation_keys_resumes(tmp_path):
    run = tmp_path / "run"
    assert main(tiny_argv("td3", run, seed=1), should_stop=stop_after_steps(200)) == EXIT_INTERRUPTED
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    for key in (
        "obs_noise",
        "action_noise",
        "sticky_actions",
        "distractor_dims",
        "distractor",
        "perturb_eval",
    ):
        del cfg[key]
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    assert main(tiny_argv("td3", run, seed=1)) == EXIT_OK
    from analysis.runs.load import load_results

    table, _ = load_results(tmp_path)
    assert len(table["run"].unique()) == 1
