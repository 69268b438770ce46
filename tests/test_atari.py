"""Atari (iqrl/envs/atari.py, docs/suites.md): MR.Q's preprocessing and the Atari 100k protocol against
hand-made frames of a fake ALE game (frame skip, the max over the last two frames, area resizing, the history,
life loss, the episode caps, the evaluation epsilon, no-op starts, checkpoints), then ale-py's own games
(sticky actions, seeding, no-op starts, checkpoints before a reset and mid-game) where ale-py is installed,
and the run keys and refusals of the suite."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os

import numpy as np
import pytest
import torch

from iqrl.config.build import build_config
from iqrl.config.run import ConfigError
from iqrl.core.replay import SequenceReplay
from iqrl.core.spaces import ActionSpec
from iqrl.envs.atari import AtariEnv, area_resize, area_taps
from iqrl.envs.tasks import ATARI_26, ATARI_57, ATARI_PROTOCOLS, SUITES, AtariProtocol
from iqrl.loop.trainer import Trainer
from iqrl.runfolder.exits import EXIT_BAD_INPUT
from iqrl.train import main

needs_ale = pytest.mark.skipif(
    importlib.util.find_spec("ale_py") is None and not os.environ.get("CI"),
    reason="ale-py is not installed: pip install -e '.[atari]'",
)


class FakeState:
    def __init__(self, data: dict):
        self.data = data

    def serialize(self) -> bytes:
        return json.dumps(self.data).encode()


class FakeALE:
    def __init__(self, game):
        self.game = game

    def cloneState(self, include_rng: bool = False):  # noqa: N802 (ALE's name)
        g = self.game
        return FakeState({"k": g.k, "lives": g.lives, "resets": g.resets, "actions": g.actions})

    def restoreState(self, state: FakeState) -> None:  # noqa: N802
        for key, value in state.data.items():
            setattr(self.game, key, value)

    def getRAM(self):  # noqa: N802
        """128 bytes: the frame number k, the lives, then zeros."""
        return np.array([self.game.k % 256, self.game.lives] + [0] * 126, np.uint8)

    def getScreenRGB(self):  # noqa: N802
        """A horizontal gradient shifted by the frame number k: pixel (r, c) holds (c + k) mod 256."""
        gradient = (np.arange(160)[None, :, None] + self.game.k) % 256
        return np.broadcast_to(gradient, (210, 160, 3)).astype(np.uint8)


class FakeGame:
    """ALE at frame level, by hand. Frame k (frames since the game's reset; 0 at the reset) is 8 x 8: its top
    half holds 10 k + the action (mod 256), its bottom half 200 on odd frames and 0 on even ones; each frame's
    reward is k. Three lives: one is lost at each frame in `lose_at`; the game is over at frame `over_at`."""

    class action_space:  # noqa: N801 (gymnasium's attribute)
        n = 6

    def __init__(self, lose_at=(), over_at=10**9):
        self.lose_at, self.over_at = set(lose_at), over_at
        self.k = self.lives = self.resets = 0
        self.actions: list[int] = []
        self.ale = FakeALE(self)
        self.seeds: list = []

    def frame(self, action: int) -> np.ndarray:
        f = np.zeros((8, 8), np.uint8)
        f[:4] = (10 * self.k + action) % 256
        f[4:] = 200 * (self.k % 2)
        return f

    def reset(self, seed=None):
        self.seeds.append(seed)
        self.k, self.lives, self.resets = 0, 3, self.resets + 1
        return self.frame(0), {"lives": self.lives}

    def step(self, action):
        self.k += 1
        self.actions.append(int(action))
        self.lives -= self.k in self.lose_at
        return self.frame(action), float(self.k), self.k >= self.over_at, False, {"lives": self.lives}

    @staticmethod
    def state_from_bytes(data: bytes) -> FakeState:
        return FakeState(json.loads(data))


def fake_env(protocol="mrq", evaluation=False, repeat=4, length=400, stack=3, **game) -> AtariEnv:
    return AtariEnv("atari:Pong", 5, repeat, length, 4, stack, protocol, evaluation, game=FakeGame(**game))


@pytest.fixture
def no_noop_starts(monkeypatch):
    """atari100k without its no-op starts: tests of its other settings count frames from the game's reset."""
    monkeypatch.setitem(
        ATARI_PROTOCOLS, "atari100k", dataclasses.replace(ATARI_PROTOCOLS["atari100k"], noop_max=0)
    )


def expected_frame(k: int, action: int) -> np.ndarray:
    """The observation after frames k-1 and k of the fake game (k >= 1), action held: 8x8 -> 4x4."""
    top = (10 * k + action) % 256  # the max of frames k-1 and k is frame k's top half
    out = np.full((4, 4), 200, np.uint8)  # one of two consecutive frames is odd: the max holds 200
    out[:2] = top
    return out


# ---------------------------------------------------------------------------------- resizing
def test_area_resize_averages_the_covered_pixels_by_their_overlap():
    idx, weights = area_taps(5, 2)  # as a dense matrix: each output's weights over the five inputs
    dense = np.zeros((2, 5))
    np.add.at(dense, (np.arange(2)[:, None], idx), weights)
    assert np.allclose(dense, [[0.4, 0.4, 0.2, 0, 0], [0, 0, 0.2, 0.4, 0.4]])
    row = np.array([[0, 10, 20, 30, 40]] * 5, np.uint8)
    # (0 + 10 + 20/2) / 2.5 = 8 and (20/2 + 30 + 40) / 2.5 = 32, on both output rows
    assert area_resize(row, 2).tolist() == [[8, 32], [8, 32]]
    blocks = np.arange(16, dtype=np.uint8).reshape(4, 4) * 10
    assert area_resize(blocks, 2).tolist() == [[25, 45], [105, 125]]  # 2 x 2 means
    # rounding to the nearest integer: (1 + 2) / 2 = 1.5 -> 2 (half to even), (2 + 3) / 2 = 2.5 -> 2
    assert area_resize(np.array([[1, 2], [1, 2]], np.uint8), 1).tolist() == [[2]]
    assert area_resize(np.array([[2, 3], [2, 3]], np.uint8), 1).tolist() == [[2]]
    frame = np.random.default_rng(0).integers(0, 256, (210, 160)).astype(np.uint8)
    out = area_resize(frame, 84)
    assert out.shape == (84, 84) and out.dtype == np.uint8
    assert abs(float(out.mean()) - float(frame.mean())) < 0.5  # area averaging keeps the mean


# ---------------------------------------------------------------------------------- preprocessing
def test_frame_skip_sums_rewards_and_observes_the_max_of_the_last_two_frames():
    env = fake_env()
    obs = env.reset()
    assert obs.shape == (3, 4, 4) and obs.dtype == np.uint8
    first = np.zeros((4, 4), np.uint8)  # frame 0 pooled with itself: top 0, bottom 0
    assert all(np.array_equal(o, first) for o in obs)  # the history starts as copies of the first
    step = env.step(np.int64(2))
    assert step.reward == 1 + 2 + 3 + 4 and not (step.terminated or step.truncated)
    assert env._env.actions == [2, 2, 2, 2]  # the action held for the frame skip
    assert np.array_equal(step.obs[-1], expected_frame(4, 2))  # the newest last
    assert np.array_equal(step.obs[0], first) and np.array_equal(step.obs[1], first)
    step = env.step(5)
    assert step.reward == 5 + 6 + 7 + 8
    for o, e in zip(step.obs, [first, expected_frame(4, 2), expected_frame(8, 5)], strict=True):
        assert np.array_equal(o, e)  # the history shifts: oldest first


def test_an_early_game_over_ends_the_step_and_pools_the_last_two_frames_seen():
    env = fake_env(over_at=6)
    env.reset()
    env.step(1)
    step = env.step(1)  # frames 5 and 6: the game ends at frame 6
    assert step.terminated and not step.truncated and step.reward == 5 + 6
    assert env._env.k == 6 and np.array_equal(step.obs[-1], expected_frame(6, 1))
    env.reset()
    assert env._env.resets == 2 and env._env.seeds == [5, None]  # seeded once, at the first reset


def test_life_loss_ends_the_training_episode_in_atari100k_only_and_the_game_goes_on(no_noop_starts):
    env = fake_env("atari100k", lose_at=(3,))
    env.reset()
    step = env.step(1)
    assert step.terminated and step.reward == 1 + 2 + 3  # the life is lost at frame 3: the step ends there
    obs = env.reset()  # the next life of the same game: no reset of the emulator, a fresh history
    assert env._env.resets == 1 and env._env.k == 3
    assert np.array_equal(obs[-1], expected_frame(3, 1)) and not obs[:-1].any()  # zeros before it (Dopamine)
    assert env.step(1).reward == 4 + 5 + 6 + 7
    for protocol, evaluation in (("atari100k", True), ("mrq", False), ("mrq", True)):
        env = fake_env(protocol, evaluation, lose_at=(3,))
        env.reset()
        assert not env.step(1).terminated and env._env.lives == 2  # the life is lost, the episode goes on


def test_atari100k_clips_the_training_envs_rewards_for_the_learner_only():
    """Dopamine's runner clips each agent step's summed reward to [-1, 1] for every agent's training and sums
    the unclipped ones into the returns (run_experiment.py:363-370 at a34615c); MR.Q's protocol clips none."""
    env = fake_env("atari100k", length=4000)
    env.reset()
    steps = [env.step(1) for _ in range(3)]
    k = env._env.k  # frames since the game's reset, its no-op starts included
    assert [s.reward for s in steps] == [float(sum(range(k - 11 + 4 * i, k - 7 + 4 * i))) for i in range(3)]
    assert [s.learner_reward for s in steps] == [1.0, 1.0, 1.0]
    for protocol, evaluation in (("atari100k", True), ("mrq", False), ("mrq-code", False)):
        env = fake_env(protocol, evaluation)
        env.reset()
        step = env.step(1)
        assert step.learner_reward is None and step.reward > 1


def test_atari100k_stacks_start_from_zeros_and_the_replay_rebuilds_them():
    """Dopamine's agents start an episode's state as zeros and its first frame (dqn_agent.py:368-370, 385-386,
    397-398 at a34615c); MR.Q's preprocessing repeats the first frame. The replay rebuilds every stack the
    agent saw from frames stored once."""
    mrq = fake_env("mrq").reset()
    assert all(np.array_equal(o, mrq[-1]) for o in mrq)
    env = fake_env("atari100k", length=12, stack=3)
    replay = SequenceReplay((3, 4, 4), ActionSpec.discrete(6), 2, "cpu", 0, frame_stack=3, zero_history=True)
    seen = []
    for _ in range(
        3
    ):  # a new game each (after 8, 18 and 13 no-ops: its first frame not blank), 3 agent steps
        obs = env.reset()
        assert not obs[:2].any() and np.array_equal(obs[2], env._frame()[0]) and obs[2].any()
        replay.start_episode(obs)
        seen.append(obs)
        for _ in range(3):
            step = env.step(2)
            replay.add(2, step.learner_reward, step.obs, step.terminated, step.truncated)
            seen.append(step.obs)
    assert torch.equal(replay.observations(torch.arange(len(seen))), torch.from_numpy(np.stack(seen)))
    assert not seen[1][0].any() and seen[1][1].any()  # the zeros leave the stack one frame at a time


def test_an_atari100k_run_learns_from_clipped_rewards_and_reports_the_games_returns(monkeypatch, tmp_path):
    monkeypatch.setattr("iqrl.envs.atari.make_game", lambda name, protocol: FakeGame())
    argv = ["agent=dqn", "task=atari:Pong", "protocol=atari100k", "image_size=36", "episode_length=40"]
    argv += ["agent.conv_channels=[4,4,4]", "agent.mlp_dims=[16]", "steps=80", f"out={tmp_path}"]
    trainer = Trainer(build_config(argv))
    ret, _ = trainer.collect_episode()
    k = trainer.env._env.k  # the game's frames: its no-op starts, then the episode's 40
    assert ret == sum(range(k - 39, k + 1))  # the game's own return
    assert trainer.replay.size == 10 and trainer.replay.reward_abs_mean() == 1.0  # what the learner stores


def test_the_cap_truncates_a_game_at_episode_length_frames():
    env = fake_env(length=12)
    env.reset()
    steps = [env.step(0) for _ in range(3)]
    assert [s.truncated for s in steps] == [False, False, True] and not any(s.terminated for s in steps)
    env.reset()
    assert env._env.resets == 2 and env._env.k == 0  # a new game


def test_the_evaluation_epsilon_acts_randomly_in_the_evaluation_env_only(monkeypatch):
    monkeypatch.setitem(ATARI_PROTOCOLS, "always", AtariProtocol(0.0, False, eval_epsilon=1.0))
    env = fake_env("always", evaluation=True, repeat=1)
    env.reset()
    for _ in range(600):
        env.step(0)
    taken = np.bincount(env._env.actions, minlength=6)
    assert taken.min() > 60  # uniform over the six actions, whatever the agent asked
    train = fake_env("always", evaluation=False, repeat=1)
    train.reset()
    for _ in range(50):
        train.step(0)
    assert set(train._env.actions) == {0}
    # the protocols' epsilon: 1e-3 at evaluation; MR.Q's code draws it in training too (mrq-code)
    assert fake_env("mrq", True).epsilon == 1e-3 and fake_env("mrq", False).epsilon == 0.0
    assert fake_env("mrq-code", False).epsilon == 1e-3 and fake_env("atari100k", True).epsilon == 1e-3


def test_a_checkpoint_mid_game_continues_the_same_frames_and_draws(no_noop_starts):
    env = fake_env("atari100k", evaluation=False, lose_at=(7,))
    env.reset()
    env.step(3)
    assert env.step(3).terminated  # a life lost at frame 7: the episode ends mid-game
    state = env.get_state()
    after = [env.reset()] + [env.step(a).obs for a in (1, 2, 4)]
    again = fake_env("atari100k", evaluation=False, lose_at=(7,))  # a fresh env: its game not started
    again.set_state(state)
    assert again._env.k == 7 and again._env.lives == 2
    replay = [again.reset()] + [again.step(a).obs for a in (1, 2, 4)]
    assert all(np.array_equal(a, b) for a, b in zip(after, replay, strict=True))


# ---------------------------------------------------------------------------------- no-op starts
def test_atari100k_starts_each_new_game_with_0_to_29_noops_drawn_from_the_envs_generator():
    """Dopamine's Atari 100k runner: max_noops=30 drawn by jax.random.randint(rng, (), 0, 30) (0 to 29), each
    no-op an env step of action 0 (4 frames), rewards dropped, frames outside the episode."""
    assert ATARI_PROTOCOLS["atari100k"].noop_max == 30
    draws = np.random.default_rng([5, 0xA7A])
    env = fake_env("atari100k", length=8)  # two agent steps per episode: every reset starts a new game
    counts = []
    for game in range(1, 301):
        env.reset()
        n = int(draws.integers(30))  # the training env draws nothing else
        assert env._env.resets == game and env._env.k == 4 * n  # n no-ops of 4 frames since the game's reset
        actions = env._env.actions
        assert actions[len(actions) - 4 * n :] == [0] * (4 * n)  # the no-ops: action 0, NOOP
        first = env.step(2)
        k = 4 * n  # the first step plays frames k+1..k+4: their rewards only
        assert first.reward == sum(range(k + 1, k + 5)) and not first.truncated
        assert env.step(2).truncated  # episode_length counts the episode's frames, after the no-ops
        counts.append(n)
    assert min(counts) == 0 and max(counts) == 29  # both ends drawn, never 30
    assert np.bincount(counts, minlength=30).min() >= 2  # the 30 values all come up (300 draws)


def test_noops_start_new_games_not_next_lives_in_both_envs_and_mrq_has_none():
    draws = np.random.default_rng([5, 0xA7A])
    first = int(draws.integers(30))
    assert first > 0  # the tests below see a no-op start
    env = fake_env("atari100k", evaluation=True)
    env.reset()
    assert env._env.k == 4 * first  # the evaluation env's games start so too
    train = fake_env("atari100k", lose_at=(4 * first + 4,))  # a life lost in the episode's first step
    train.reset()
    assert train.step(1).terminated
    train.reset()  # the next life of the same game: no no-ops, no draw
    assert train._env.k == 4 * first + 4 and train._env.resets == 1
    assert train.rng.bit_generator.state == draws.bit_generator.state
    for protocol in ("mrq", "mrq-code"):
        assert ATARI_PROTOCOLS[protocol].noop_max == 0
        mrq = fake_env(protocol, length=4)
        for _ in range(3):
            mrq.reset()
            assert mrq._env.k == 0  # no no-ops
            mrq.step(1)
    assert mrq.rng.bit_generator.state != np.random.default_rng([5, 0xA7A]).bit_generator.state  # epsilon's
    untouched = fake_env("mrq", length=4)
    for _ in range(3):
        untouched.reset()
        untouched.step(1)
    assert untouched.rng.bit_generator.state == np.random.default_rng([5, 0xA7A]).bit_generator.state


def test_a_game_over_during_the_noops_resets_the_game_and_the_count_goes_on():
    n = int(np.random.default_rng([5, 0xA7A]).integers(30))  # 8
    env = fake_env("atari100k", over_at=6)  # each game is over at its frame 6, in its second no-op
    env.reset()
    assert env._env.resets == 1 + n // 2 and env._env.k == 4 * (n % 2)
    assert set(env._env.actions) == {0}


def test_the_protocols_cap_on_a_game_counts_its_noop_frames_and_truncates(monkeypatch):
    """dopamine-rl 4.0.5 (BBF's) caps a game at 108,000 frames only (episode_length); a later Dopamine's ALE
    env at 100,000 frames (max_num_frames_per_episode), no-ops included: protocol atari100k-ale-cap."""
    assert ATARI_PROTOCOLS["atari100k"].max_game_frames == 0 and SUITES["atari"].episode_length == 108_000
    assert ATARI_PROTOCOLS["atari100k-ale-cap"] == dataclasses.replace(
        ATARI_PROTOCOLS["atari100k"], max_game_frames=100_000
    )
    capped = dataclasses.replace(ATARI_PROTOCOLS["atari100k-ale-cap"], max_game_frames=200)
    monkeypatch.setitem(ATARI_PROTOCOLS, "capped", capped)
    n = int(np.random.default_rng([5, 0xA7A]).integers(30))
    env = fake_env("capped", length=10_000)
    env.reset()
    steps = [env.step(1) for _ in range(50 - n)]  # 4 n no-op frames + 4 (50 - n) frames = 200
    assert [s.truncated for s in steps] == [False] * (49 - n) + [True] and not any(
        s.terminated for s in steps
    )
    env.reset()
    assert env._env.resets == 2  # a new game


def test_a_state_taken_before_a_reset_replays_the_noops_and_the_episode():
    env = fake_env("atari100k", evaluation=True, length=40)
    for _ in range(3):
        state = env.get_state()
        played = [env.reset()] + [env.step(a).obs for a in (1, 2, 3, 4, 5)]
        again = fake_env("atari100k", evaluation=True, length=40)  # a fresh env
        again.set_state(state)
        replayed = [again.reset()] + [again.step(a).obs for a in (1, 2, 3, 4, 5)]
        assert all(np.array_equal(a, b) for a, b in zip(played, replayed, strict=True))
        assert again._env.k == env._env.k and again.rng.bit_generator.state == env.rng.bit_generator.state
        while not env.step(0).truncated:
            pass


def test_a_state_taken_mid_episode_continues_its_frame_history():
    env = fake_env("atari100k", evaluation=True)
    env.reset()
    env.step(1)
    state = env.get_state()
    played = [env.step(a).obs for a in (2, 3, 4)]
    again = fake_env("atari100k", evaluation=True)
    again.set_state(state)
    assert all(np.array_equal(a, again.step(b).obs) for a, b in zip(played, (2, 3, 4), strict=True))


def test_videos_record_the_emulators_rgb_screen_without_a_renderer(tmp_path):
    from iqrl.envs.render import EpisodeRecorder
    from iqrl.loop.evaluation import eval_episode

    env = fake_env(length=20)
    recorder = EpisodeRecorder(env, 256)  # no OpenGL: the env's own frames

    class Agent:
        def act(self, obs, explore):
            return np.int64(1)

        def on_episode_start(self, training):
            pass

    eval_episode(env, Agent(), recorder.on_frame)
    assert len(recorder.frames) == 1 + 5  # after the reset and after each of the 5 agent steps (20 frames)
    assert [int(f[0, 0, 0]) for f in recorder.frames] == [0, 4, 8, 12, 16, 20]  # the screen at each step
    assert recorder.frames[0].shape == (210, 160, 3)
    assert env.control_timestep * env.action_repeat == pytest.approx(4 / 60)  # 15 frames per second
    assert recorder.save(tmp_path / "ep.mp4").stat().st_size > 0


# ---------------------------------------------------------------------------------- ale-py's games
@needs_ale
def test_ale_games_are_built_with_the_protocols_sticky_actions_and_minimal_action_sets():
    from iqrl.envs.make import make_env

    env = make_env("atari:Pong", 1, 4, 108_000, protocol="mrq")
    assert env.obs_shape == (4, 84, 84) and env.action_spec.n == 6 and env.action_spec.is_discrete
    assert env._env.ale.getFloat("repeat_action_probability") == pytest.approx(0.25)
    env100k = make_env("atari:Breakout", 1, 4, 108_000, protocol="atari100k")
    assert env100k._env.ale.getFloat("repeat_action_probability") == 0.0 and env100k.action_spec.n == 4


@needs_ale
def test_ale_seeds_its_games_and_a_checkpoint_carries_the_sticky_action_stream():
    from iqrl.envs.make import make_env

    def play(env, n=120):
        rng = np.random.default_rng(0)
        out = [env.reset()]
        for _ in range(n):
            step = env.step(rng.integers(env.act_dim))
            out.append(step.obs)
            if step.terminated or step.truncated:
                out.append(env.reset())
        return out

    a, b = make_env("atari:Breakout", 7, 4, 108_000), make_env("atari:Breakout", 7, 4, 108_000)
    assert all(np.array_equal(x, y) for x, y in zip(play(a), play(b)))
    state = a.get_state()
    first = play(a)
    a.set_state(state)
    assert all(np.array_equal(x, y) for x, y in zip(first, play(a)))  # sticky draws included


@needs_ale
def test_atari100k_noops_are_noop_and_a_state_before_a_reset_replays_the_game_exactly():
    """The no-op starts' action 0 is NOOP in each Atari 100k game; an atari100k env's state taken before each
    reset replays the episode that follows (its no-op count, frames, rewards) in a fresh env."""
    from ale_py import Action

    from iqrl.envs.atari import NOOP, make_game

    protocol = ATARI_PROTOCOLS["atari100k"]
    for task in ATARI_26:
        game = make_game(task.removeprefix("atari:"), protocol)
        assert game.unwrapped.ale.getMinimalActionSet()[NOOP] == Action.NOOP, task
        game.close()

    from iqrl.envs.make import make_env

    env = make_env("atari:Breakout", 3, 4, 400, protocol="atari100k")  # 100 agent steps per episode
    rng, noops = np.random.default_rng(0), []
    for _ in range(3):
        state = env.get_state()
        actions = rng.integers(env.act_dim, size=100)
        played = [(env.reset(), 0.0)]
        noops.append(env._game_frames - env._frames)
        played += [(s.obs, s.reward) for s in map(env.step, actions)]
        fresh = make_env(
            "atari:Breakout", 99, 4, 400, protocol="atari100k"
        )  # another seed: all from the state
        fresh.set_state(state)
        replayed = [(fresh.reset(), 0.0)] + [(s.obs, s.reward) for s in map(fresh.step, actions)]
        assert all(np.array_equal(a, b) and r == q for (a, r), (b, q) in zip(played, replayed, strict=True))
    assert any(noops) and all(n % 4 == 0 and n < 4 * 30 for n in noops)


@needs_ale
def test_the_game_lists_name_games_ale_py_ships():
    from iqrl.envs.atari import game_names

    assert len(set(ATARI_26)) == 26 and len(set(ATARI_57)) == 57 and set(ATARI_26) <= set(ATARI_57)
    assert {t.removeprefix("atari:") for t in ATARI_57} <= set(game_names())


# ---------------------------------------------------------------------------------- run keys and refusals
@needs_ale
def test_atari_runs_take_the_suites_defaults_and_refuse_what_it_cannot_do():
    cfg = build_config(["agent=td3", "task=walker-walk"])
    assert (cfg.obs, cfg.frame_stack, cfg.protocol) == ("state", 3, "default")  # other suites as before
    atari = SUITES["atari"]
    assert (atari.action_repeat, atari.episode_length, atari.frame_stack) == (4, 108_000, 4)
    with pytest.raises(ConfigError, match="protocol must be one of default on dmc tasks"):
        build_config(["agent=td3", "protocol=atari100k"])
    dqn = ["agent=dqn", "task=atari:Pong"]
    cfg = build_config(dqn)
    assert (cfg.obs, cfg.frame_stack, cfg.action_repeat, cfg.episode_length, cfg.protocol) == (
        "pixels",
        4,
        4,
        108_000,
        "mrq",
    )
    assert build_config([*dqn, "protocol=atari100k"]).protocol == "atari100k"
    for bad, message in (
        ("obs=state", "obs=state: atari tasks are seen as pixels"),
        ("protocol=default", "protocol must be one of mrq, mrq-code, atari100k, atari100k-ale-cap on atari"),
        ("sticky_actions=0.25", "Atari's sticky actions are its protocol's"),
        ("action_noise=0.1", "action_noise perturbs continuous actions"),
        ("episode_length=108004", "episode_length must be in 1..108000"),
    ):
        with pytest.raises(ConfigError, match=message):
            build_config([*dqn, bad])


@needs_ale
def test_an_agent_that_cannot_act_in_atari_is_one_error_line_and_exit_2(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["agent=td3", "task=atari:Pong", f"out={out}"]) == EXIT_BAD_INPUT
    assert main(["agent=td3", "task=atari:Pong", "--check"]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and err[0] == err[1] and err[0].startswith("error: agent td3 acts in continuous")
    assert "task atari:Pong has discrete actions; agents that can act in it:" in err[0]
    assert not out.exists()


def test_a_sweep_names_the_atari_game_lists():
    from slurm.spec import parse_sweep
    from slurm.submit import default_task_groups

    data = {"agents": ["td3"], "tasks": ["atari26", "walker-walk"], "seeds": 1, "steps": 400_000}
    sweep = parse_sweep(data, "atari.yaml", "atari", default_task_groups())
    assert list(sweep.tasks) == [*ATARI_26, "walker-walk"]
