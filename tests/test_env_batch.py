"""Envs stepped together (iqrl/envs/batch.py) and the phased DMC step under it (iqrl/envs/dmc.py): each env's
numbers are dm_control's own, bit for bit, stepped alone or in a batch of any size."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from dm_control import suite
from dm_control.rl.control import PhysicsError
from dm_control.suite.wrappers import action_scale

from iqrl.envs import batch as batch_module
from iqrl.envs.batch import EnvBatch, stepped_by
from iqrl.envs.dmc import DMCEnv, PixelEnv, all_tasks
from iqrl.envs.perturb import Perturbations, PerturbedEnv


class LibraryStep:
    """The suite's env stepped by dm_control's own `Environment.step`, as DMCEnv stepped it before its steps
    were phased: action repeat, summed rewards, time limit (the reference of every test here)."""

    def __init__(self, task: str, seed: int, action_repeat: int = 2, episode_length: int = 1000):
        domain, name = task.split("-", 1)
        self.env = action_scale.Wrapper(suite.load(domain, name, task_kwargs={"random": seed}), -1.0, 1.0)
        self.action_repeat, self.episode_length, self.t = action_repeat, episode_length, 0

    def reset(self) -> np.ndarray:
        self.t = 0
        return flat(self.env.reset().observation)

    def step(self, action) -> tuple:
        reward, terminated, truncated = 0.0, False, False
        for _ in range(self.action_repeat):
            ts = self.env.step(action)
            reward += float(ts.reward or 0.0)
            self.t += 1
            if ts.last():
                terminated = ts.discount is not None and float(ts.discount) == 0.0
                truncated = not terminated
                break
        truncated = truncated or (self.t >= self.episode_length and not terminated)
        return flat(ts.observation), reward, terminated, truncated


def flat(observation) -> np.ndarray:
    return np.concatenate([np.asarray(v, np.float32).ravel() for v in observation.values()])


def outcome(step) -> tuple:
    return step.obs, step.reward, step.terminated, step.truncated


def assert_same(a: tuple, b: tuple, where: str) -> None:
    assert np.array_equal(a[0], b[0]) and a[1:] == b[1:], where


def physics_state(env) -> np.ndarray:
    p = env.physics
    return np.concatenate([p.data.qpos, p.data.qvel, p.data.act, p.data.qacc_warmstart, [p.data.time]])


def actions(rng, env, n: int) -> list[np.ndarray]:
    return [env.action_spec.sample(rng) for _ in range(n)]


def library_or_skip(task: str, seed: int, length: int) -> LibraryStep:
    env = LibraryStep(task, seed, 2, length)
    try:
        env.reset()
    except RuntimeError as e:  # quadruped-escape, -fetch: dm_control's own reset needs a GL context
        pytest.skip(f"{task} cannot reset without OpenGL (MUJOCO_GL=disable): {e}")
    return env


@pytest.mark.parametrize("task", all_tasks())
def test_every_task_steps_as_dm_control_alone_and_in_a_batch(task):
    """Every task of the suite, two seeds stepped as one batch and dm_control's own step: observations,
    rewards and ends equal bit for bit, over a reset and an episode's end (episodes of 4 env steps); a third
    env of seed 0 stepped alone (as single runs step) too, and the batched one's physics state is its."""
    length, rng = 4, np.random.default_rng(0)
    library = [library_or_skip(task, s, length) for s in (0, 1)]
    batched = [DMCEnv(task, s, 2, length) for s in (0, 1)]
    alone = DMCEnv(task, 0, 2, length)
    batch = EnvBatch(batched, nthread=2)  # batched whatever the physics costs
    for env in [*batched, alone]:  # the reset library_or_skip tried
        env.reset()
    for episode in range(2):
        first = [env.reset() for env in library]
        assert all(np.array_equal(env.reset(), o) for env, o in zip(batched, first))
        alone.reset()
        for t in range(length // 2):
            acts = actions(rng, alone, 2)
            together = batch.step(list(enumerate(acts)))
            refs = [env.step(a) for env, a in zip(library, acts)]
            where = f"{task} episode {episode} step {t}"
            assert_same(outcome(alone.step(acts[0])), refs[0], f"{where}: alone")
            for k in (0, 1):
                assert_same(outcome(together[k]), refs[k], f"{where}: seed {k} in the batch")
            assert np.array_equal(physics_state(batched[0]), physics_state(alone)), where


def test_wrapped_envs_step_in_a_batch_as_alone(renderer):
    """Pixels (a frame rendered from each env's own physics after its batched physics step) and perturbations
    (their draws around it) give the frames, rewards and perturbed observations of the envs stepped alone;
    a state restored mid-way (a resume's replay: set_state, reset) steps on as alone too."""
    noise = Perturbations(obs_noise=0.1, action_noise=0.2, sticky_actions=0.3)

    def make(seed: int):
        return [
            PixelEnv(DMCEnv("cartpole-swingup", seed, 2, 20), 32, 2),
            PerturbedEnv(DMCEnv("walker-walk", seed, 2, 20), noise, seed),
        ]

    alone, batched = make(0) + make(1), make(0) + make(1)
    # the wrappers' envs of two tasks: one batch per task, as a group has
    batches = [EnvBatch(batched[0::2], nthread=2), EnvBatch(batched[1::2], nthread=2)]
    rng = np.random.default_rng(1)
    for episode in range(2):
        for a, b in zip(alone, batched):
            if episode:  # restored from the other seed's state, as a resume restores an episode's start
                a.set_state(alone[(alone.index(a) + 2) % 4].get_state())
                b.set_state(batched[(batched.index(b) + 2) % 4].get_state())
            assert np.array_equal(a.reset(), b.reset())
        for t in range(10):
            acts = [env.action_spec.sample(rng) for env in alone]
            steps = [
                *batches[0].step([(0, acts[0]), (1, acts[2])]),
                *batches[1].step([(0, acts[1]), (1, acts[3])]),
            ]
            for j, i in enumerate((0, 2, 1, 3)):
                assert_same(outcome(steps[j]), outcome(alone[i].step(acts[i])), f"env {i} step {t}")
    assert batched[0].obs_shape == (6, 32, 32) and np.asarray(steps[0].obs).std() > 2  # frames, not blanks


@pytest.mark.parametrize("nthread", [2, None])
def test_a_failing_env_fails_alone_in_its_batch(nthread):
    """An env whose physics goes bad (NaN positions: MuJoCo's warning, dm_control's PhysicsError) gets its
    PhysicsError back in place of its Step, as when stepped alone; the others' steps are theirs. On two
    threads (nthread=2: env 1 on the other) and each env's physics alone (a batch's first, timed steps)."""
    envs, alone = (
        [DMCEnv("walker-walk", s, 2) for s in range(3)],
        [DMCEnv("walker-walk", s, 2) for s in range(3)],
    )
    for env in envs + alone:
        env.reset()
    for env in (envs[1], alone[1]):
        env.physics.data.qpos[:] = np.nan
    acts = actions(np.random.default_rng(0), envs[0], 3)
    steps = EnvBatch(envs, nthread=nthread).step(list(enumerate(acts)))
    with pytest.raises(PhysicsError) as alone_error:
        alone[1].step(acts[1])
    assert isinstance(steps[1], PhysicsError) and str(steps[1]) == str(alone_error.value)
    for k in (0, 2):
        assert_same(outcome(steps[k]), outcome(alone[k].step(acts[k])), f"env {k}")


def test_steps_handed_in_run_where_the_batch_steps_them():
    """`stepped_by`: the DMC env inside each wrapper hands its steps to the one stepping the batch (a K-seed
    group's rounds; here the test's thread), which steps those handed in together: one physics call for the
    three envs, each wrapper's perturbation drawn in its own thread around it, the numbers each env's own."""
    calls = []

    class Counted(batch_module.PhysicsThreads):
        def step(self, ids, nstep):
            calls.append(sorted(ids))
            return super().step(ids, nstep)

    def make():
        return [PerturbedEnv(DMCEnv("walker-walk", s, 2), Perturbations(obs_noise=0.1), s) for s in range(3)]

    envs, ref = make(), make()
    handed, results, all_in = {}, {}, threading.Barrier(4)

    def hand_in(k, action):
        handed[k] = threading.Event(), action
        all_in.wait()
        handed[k][0].wait()
        return results[k]

    batch = stepped_by(envs, hand_in)
    batch.nthread = 2  # batched whatever the physics costs
    batch._physics = Counted([env.physics for env in envs])
    batch._index = {id(env.physics): i for i, env in enumerate(envs)}
    for env in envs + ref:
        env.reset()
    acts = actions(np.random.default_rng(0), envs[0], 3)
    out = {}
    threads = [
        threading.Thread(target=lambda k=k: out.setdefault(k, envs[k].step(acts[k]))) for k in range(3)
    ]
    for t in threads:
        t.start()
    all_in.wait()
    for k, step in zip(range(3), batch.step([(k, handed[k][1]) for k in range(3)])):
        results[k] = step
        handed[k][0].set()
    for t in threads:
        t.join()
    assert calls == [[0, 1, 2]] * 2  # both env steps of the agent step: one call for the three
    for k in range(3):
        assert_same(outcome(out[k]), outcome(ref[k].step(acts[k])), f"seed {k}")


def test_a_mujoco_error_on_the_other_thread_fails_its_env_alone(monkeypatch):
    """MuJoCo's error in a physics stepped on the batch's other thread (env 1 of three: the shares are envs
    0, 2 in the caller's thread and 1 in the other) comes back as that env's FatalError, with its message;
    the others get their own Steps, and the batch steps on."""
    import mujoco

    envs, ref = (
        [DMCEnv("walker-walk", s, 2) for s in range(3)],
        [DMCEnv("walker-walk", s, 2) for s in range(3)],
    )
    for env in envs + ref:
        env.reset()
    batch = EnvBatch(envs, nthread=2)
    threads, failing = [], envs[1].physics.data.ptr
    mujoco_step = batch_module.mujoco_step

    def fails_for_env_1(model, data, nstep, legacy):  # an arena out of memory, say
        if data is failing:
            threads.append(threading.current_thread())
            raise mujoco.FatalError("mj_stackAlloc: out of memory")
        mujoco_step(model, data, nstep, legacy)

    monkeypatch.setattr(batch_module, "mujoco_step", fails_for_env_1)
    acts = actions(np.random.default_rng(0), envs[0], 3)
    steps = batch.step(list(enumerate(acts)))
    assert threads and threads[0] is not threading.current_thread()
    assert type(steps[1]).__name__ == "FatalError" and "out of memory" in str(steps[1])
    for k in (0, 2):
        assert_same(outcome(steps[k]), outcome(ref[k].step(acts[k])), f"env {k}")
    monkeypatch.setattr(batch_module, "mujoco_step", mujoco_step)
    acts = actions(np.random.default_rng(1), envs[0], 3)
    for k, step_k in enumerate(batch.step(list(enumerate(acts)))):
        if k != 1:
            assert_same(outcome(step_k), outcome(ref[k].step(acts[k])), f"env {k}, the next step")


@pytest.mark.parametrize("threshold_us, cores, batched", [(0.0, 2, True), (1e9, 2, False), (0.0, 1, False)])
def test_a_batch_left_to_choose_steps_alone_until_its_physics_is_timed(
    threshold_us, cores, batched, monkeypatch
):
    """nthread=None: the first TIMED physics steps run alone (dm_control's Physics.step, timed in CPU time),
    then side by side on threads where they took THREADED_PHYSICS_US each or more on average and the
    process has two cores, else alone still; the numbers are those of envs stepped alone throughout, across
    the switch mid-episode."""
    monkeypatch.setattr(batch_module, "THREADED_PHYSICS_US", threshold_us)
    monkeypatch.setattr(batch_module, "usable_cores", lambda: cores)
    calls = []
    step = batch_module.PhysicsThreads.step

    def counted(self, ids, nstep):
        calls.append(sorted(ids))
        return step(self, ids, nstep)

    monkeypatch.setattr(batch_module.PhysicsThreads, "step", counted)
    envs, alone = (
        [DMCEnv("walker-walk", s, 2) for s in range(3)],
        [DMCEnv("walker-walk", s, 2) for s in range(3)],
    )
    for env in envs + alone:
        env.reset()
    batch, rng = EnvBatch(envs), np.random.default_rng(0)
    for t in range(8):  # 8 agent steps of 2 physics steps of 3 envs: the first 16 timed
        acts = actions(rng, envs[0], 3)
        for k, step_k in enumerate(batch.step(list(enumerate(acts)))):
            assert_same(outcome(step_k), outcome(alone[k].step(acts[k])), f"env {k} step {t}")
    assert len(batch._timed) == batch_module.TIMED
    # 6 rounds alone (the 16th timed step is the sixth round's first), then one call per round
    assert calls == ([[0, 1, 2]] * (16 - 6) if batched else [])
