"""DreamerV3's envs as its code runs them (danijar/dreamerv3 at e3f0224; docs/faithfulness.md DV3-9): on
Atari it learns from unclipped rewards after no-op starts of 0 to 30 single frames (AgentConfig.
PROTOCOL_CHANGES, the run key protocol_changes), under atari100k too, which still clips the other agents'
rewards as BBF's runner did; from pixels it sees one 64-pixel frame, no stack (AgentConfig.PIXEL_FRAMES).
Against the fake ALE game of tests/test_atari.py, whose frame k since the game's reset rewards k."""

from __future__ import annotations

import numpy as np
import pytest
from test_atari import FakeGame, fake_env

from iqrl.config.build import build_config
from iqrl.config.run import ConfigError, protocol
from iqrl.envs.tasks import ATARI_PROTOCOLS, atari_protocol
from iqrl.loop.trainer import Trainer

from conftest import tiny_agent

DV3 = ["agent=dreamerv3", *tiny_agent("dreamerv3")]


def test_dreamerv3_changes_atari100k_to_its_codes_rewards_and_noops_and_no_other_agent_does():
    changes = {"reward_clip": 0.0, "noop_max": 31, "noop_frames": True}
    atari = ["task=atari:Pong", "protocol=atari100k"]
    assert build_config([*DV3, *atari]).protocol_changes == changes
    # MR.Q's protocol clips nothing: only the no-ops change
    assert build_config([*DV3, "task=atari:Pong"]).protocol_changes == {"noop_max": 31, "noop_frames": True}
    assert build_config(["agent=dqn", *atari]).protocol_changes == {}  # BBF's atari100k, as before
    assert build_config([*DV3, "task=walker-walk"]).protocol_changes == {}  # nothing to change off Atari
    # {}: the protocol as every agent runs it; any agent may change a setting
    assert build_config([*DV3, *atari, "protocol_changes={}"]).protocol_changes == {}
    dqn = build_config(["agent=dqn", *atari, "protocol_changes={reward_clip: 0}"])
    assert protocol(dqn) == atari_protocol("atari100k", {"reward_clip": 0})
    assert protocol(dqn).reward_clip == 0 and ATARI_PROTOCOLS["atari100k"].reward_clip == 1.0
    for bad, message in (
        (["task=walker-walk", "protocol_changes={reward_clip: 1}"], "changes an Atari protocol's settings"),
        ([*atari, "protocol_changes={frame_skip: 2}"], "frame_skip is not a protocol setting"),
        ([*atari, "protocol_changes={noop_max: 2.5}"], r"noop_max=2.5 is not a value of its kind \(int\)"),
        ([*atari, "protocol_changes={sticky_actions: 1.0}"], "sticky_actions=1.0 is not a value"),
        ([*atari, "protocol_changes=[1]"], "protocol_changes must be a mapping"),
    ):
        with pytest.raises(ConfigError, match=message):
            build_config([*DV3, *bad])


def test_dreamerv3_sees_one_frame_of_64_pixels_and_the_others_the_suites_stacks():
    """Its code renders DMC and Atari 100k at 64 x 64 (configs.yaml lines 33, 36) and stacks no frames."""
    for task in ("walker-walk", "atari:Pong"):
        cfg = build_config(["agent=dreamerv3", f"task={task}", "obs=pixels"])
        assert (cfg.frame_stack, cfg.image_size) == (1, 64)
        given = build_config(
            ["agent=dreamerv3", f"task={task}", "obs=pixels", "frame_stack=3", "image_size=48"]
        )
        assert (given.frame_stack, given.image_size) == (3, 48)
    assert (
        build_config(["agent=sac", "obs=pixels"]).frame_stack,
        build_config(["agent=sac", "obs=pixels"]).image_size,
    ) == (3, 84)
    assert build_config(["agent=dqn", "task=atari:Pong"]).frame_stack == 4
    state = build_config(["agent=dreamerv3", "task=walker-walk"])  # inert from states: recorded as ever
    assert (state.obs, state.frame_stack, state.image_size) == ("state", 3, 84)


def test_noop_starts_of_single_frames_draw_0_to_30_and_show_the_last_one_alone():
    """embodied/envs/atari.py `Atari._reset` at e3f0224: `rng.integers(noops + 1)` no-ops of one `ale.act`
    each (noops 30: 0 to 30), a game over among them resets the game, and the first observation is the screen
    after them in both pooled buffers. The harness's atari100k plays 0 to 29 agent steps of 4 frames."""
    frames = atari_protocol("atari100k", {"noop_max": 31, "noop_frames": True})
    draws = np.random.default_rng([5, 0xA7A])
    env = fake_env(frames, length=8, stack=1)  # two agent steps per episode: every reset starts a new game
    counts = []
    for game in range(1, 301):
        obs = env.reset()
        n = int(draws.integers(31))
        assert (
            env._env.resets == game
            and env._env.k == n
            and env._env.actions[len(env._env.actions) - n :] == [0] * n
        )
        # frame n alone: its top 10 n, its bottom 200 on odd n (a pool with frame n - 1 would show 200 always)
        expected = np.full((4, 4), 200 * (n % 2), np.uint8)
        expected[:2] = 10 * n % 256
        assert np.array_equal(obs[0], expected)
        assert env.step(2).reward == sum(range(n + 1, n + 5))  # the episode's first step: frames n+1..n+4
        env.step(2)
        counts.append(n)
    assert (min(counts), max(counts)) == (0, 30) and np.bincount(counts).min() >= 2
    over = fake_env(frames, over_at=6)  # each game is over at its 6th frame: the count goes on in a new game
    over.reset()
    n = int(np.random.default_rng([5, 0xA7A]).integers(31))
    assert (over._env.resets, over._env.k) == (1 + n // 6, n % 6)
    bbf = fake_env("atari100k", length=8)
    bbf.reset()
    assert bbf._env.k == 4 * int(np.random.default_rng([5, 0xA7A]).integers(30))  # agent steps of 4 frames


@pytest.mark.parametrize("agent, clipped", [("dreamerv3", False), ("dqn", True)])
def test_an_atari100k_run_of_dreamerv3_stores_unclipped_rewards_and_another_agent_clipped(
    agent, clipped, monkeypatch, tmp_path
):
    """The replay of a dreamerv3 atari100k run holds each agent step's summed reward of the game (frames
    k-3..k reward k-3 + ... + k, above 1 from the second frame), a dqn run's the same clipped to 1."""
    monkeypatch.setattr("iqrl.envs.atari.make_game", lambda name, protocol: FakeGame())
    argv = [f"agent={agent}", *tiny_agent(agent), "task=atari:Pong", "protocol=atari100k", "image_size=48"]
    argv += ["frame_stack=1", "episode_length=40", "steps=80", f"out={tmp_path}"]
    trainer = Trainer(build_config(argv))
    ret, _ = trainer.collect_episode()
    k = trainer.env._env.k  # the game's frames: its no-op starts, then the episode's 40
    assert ret == sum(range(k - 39, k + 1))  # the return reported is the game's, for both
    stored = trainer.replay.reward_abs_mean()
    assert trainer.replay.size == 10
    assert stored == (1.0 if clipped else pytest.approx(ret / 10))
