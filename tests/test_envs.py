"""DMCEnv against raw dm_control: flat float32 observations, [-1, 1] actions rescaled to the task's
bounds, summed rewards over the action repeat, time-limit truncation, seeds, task names."""

import numpy as np
import pytest
from dm_control import suite

from iqrl.config.build import build_config
from iqrl.envs.dmc import DMCEnv
from iqrl.loop.trainer import Trainer

from conftest import tiny_argv


def raw_env(task: str, seed: int):
    domain, name = task.split("-")
    return suite.load(domain, name, task_kwargs={"random": seed})


def flat(observation) -> np.ndarray:
    return np.concatenate([np.asarray(v, np.float32).ravel() for v in observation.values()])


def test_observations_are_flat_float32_in_the_suite_key_order():
    env, raw = DMCEnv("walker-walk", seed=3), raw_env("walker-walk", 3)
    # walker: orientations 14 + height 1 + velocity 9
    assert env.obs_dim == 24 == sum(int(np.prod(s.shape)) for s in raw.observation_spec().values())
    assert env.act_dim == 6
    obs, raw_obs = env.reset(), raw.reset().observation
    assert obs.dtype == np.float32 and obs.shape == (24,)
    assert np.array_equal(obs, flat(raw_obs))
    step = env.step(np.zeros(6))
    assert step.obs.dtype == np.float32 and step.obs.shape == (24,)


def test_actions_in_unit_box_are_rescaled_to_the_task_bounds():
    # quadruped's actuators have non-symmetric bounds (e.g. [-1, 1.1]) and a narrower [-0.8, 0.8]
    task, seed = "quadruped-walk", 0
    env, raw = DMCEnv(task, seed), raw_env(task, seed)
    spec = raw.action_spec()
    lo, hi = spec.minimum.astype(np.float64), spec.maximum.astype(np.float64)
    assert not np.allclose(lo, -hi), "pick a task with non-symmetric bounds"
    assert env.act_dim == spec.shape[0]
    env.reset()
    raw.reset()
    rng = np.random.default_rng(0)
    for a in (
        -np.ones(env.act_dim),
        np.ones(env.act_dim),
        np.zeros(env.act_dim),
        rng.uniform(-1, 1, env.act_dim),
    ):
        expected = lo + (a + 1.0) / 2.0 * (hi - lo)
        step = env.step(a)
        # the control the physics received is the rescaled action ...
        assert np.allclose(env._env.physics.data.ctrl, expected, atol=1e-6)
        # ... and the raw env stepped with the rescaled action twice (action repeat 2) ends in the same state
        reward = 0.0
        for _ in range(env.action_repeat):
            ts = raw.step(expected)
            reward += float(ts.reward)
        assert np.allclose(step.obs, flat(ts.observation), atol=1e-5)
        assert step.reward == pytest.approx(reward, abs=1e-6)
    assert np.allclose(lo + (np.ones(env.act_dim) + 1) / 2 * (hi - lo), hi)  # +1 -> max, -1 -> min


def test_reward_is_the_sum_over_the_action_repeat():
    task, seed = "cartpole-swingup", 7
    env, raw = DMCEnv(task, seed, action_repeat=2), raw_env(task, seed)
    assert np.array_equal(env.reset(), flat(raw.reset().observation))
    rng = np.random.default_rng(1)
    for _ in range(25):
        a = rng.uniform(-1, 1, env.act_dim)  # cartpole's bounds are [-1, 1]: no rescaling
        step = env.step(a)
        first, second = raw.step(a), raw.step(a)
        assert step.reward == float(first.reward) + float(second.reward)
        assert np.array_equal(step.obs, flat(second.observation))
    assert 0 < step.reward <= 2  # two steps of a reward in [0, 1]


@pytest.mark.parametrize("repeat, length", [(2, 1000), (4, 200)])
def test_time_limit_truncates_and_never_terminates(repeat, length):
    env = DMCEnv("cartpole-swingup", seed=0, action_repeat=repeat, episode_length=length)
    env.reset()
    zero = np.zeros(env.act_dim)
    for i in range(length // repeat):
        step = env.step(zero)
        assert not step.terminated
        assert step.truncated == (i == length // repeat - 1), f"wrapper step {i + 1}"
    # reset starts a fresh episode
    env.reset()
    assert not env.step(zero).truncated


def test_episode_length_must_be_a_multiple_of_the_repeat():
    with pytest.raises(ValueError, match="multiple"):
        DMCEnv("cartpole-swingup", seed=0, action_repeat=3, episode_length=1000)


def test_seeds_train_and_eval_envs_differ_and_same_seed_repeats(tmp_path):
    a = DMCEnv("cartpole-swingup", seed=5).reset()
    assert np.array_equal(a, DMCEnv("cartpole-swingup", seed=5).reset())
    assert not np.array_equal(a, DMCEnv("cartpole-swingup", seed=6).reset())
    cfg = build_config(tiny_argv("td3", tmp_path / "run", extra=["task=cartpole-swingup"]))
    t1, t2 = Trainer(cfg), Trainer(cfg)
    train1, eval1 = t1.env.reset(), t1.eval_env.reset()
    assert not np.array_equal(train1, eval1), "train and eval envs share a seed"
    assert np.array_equal(train1, t2.env.reset()) and np.array_equal(eval1, t2.eval_env.reset())
    assert np.array_equal(train1, DMCEnv("cartpole-swingup", seed=cfg.seed).reset())


@pytest.mark.parametrize(
    "task, obs_dim, act_dim",
    [("walker-walk", 24, 6), ("ball_in_cup-catch", 8, 2), ("finger-turn_hard", 12, 2)],
)
def test_dm_control_task_names_construct(task, obs_dim, act_dim):
    env = DMCEnv(task, seed=0)
    assert (env.obs_dim, env.act_dim) == (obs_dim, act_dim)
    assert env.reset().shape == (obs_dim,)


@pytest.mark.parametrize("task", ["walker-wlak", "walker_walk", "ball-in-cup-catch", "nope"])
def test_unknown_task_names_give_a_clear_error(task):
    with pytest.raises(ValueError, match=f"unknown task '{task}'.*valid tasks: .*walker-walk"):
        DMCEnv(task, seed=0)
    with pytest.raises(ValueError, match="did you mean walker-walk"):
        DMCEnv("walker-wlak", seed=0)


def test_task_folders_hold_no_colon_and_read_back_as_their_task():
    """A task's folder name writes a suite prefix's `:` as `-` (some file systems, archive tools and Slurm
    paths refuse `:`); the name reads back as the task, as does a folder named with the `:` before."""
    from iqrl.envs.tasks import ATARI_57, SUITES, TASK_GROUPS, folder_task, task_folder, task_label

    assert task_folder("atari:Pong") == "atari-Pong" and folder_task("atari-Pong") == "atari:Pong"
    pair = ["gym:Hopper-v4", "gym:Walker2d-v4"]
    assert task_folder(pair) == "gym-Hopper-v4+gym-Walker2d-v4" and folder_task(
        task_folder(pair)
    ) == "+".join(pair)
    tasks = (
        [s.example for s in SUITES.values()] + list(ATARI_57) + [t for g in TASK_GROUPS.values() for t in g]
    )
    assert (
        {folder_task(task_folder(t)) for t in tasks}
        == {folder_task(task_label(t)) for t in tasks}
        == set(tasks)
    )
    assert not any(":" in task_folder(t) for t in tasks)
    assert task_folder("walker-walk") == "walker-walk" == folder_task("walker-walk")
