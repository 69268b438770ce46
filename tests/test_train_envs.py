"""Several training envs at once (train_envs: iqrl/loop/lanes.py, iqrl/core/replay_lanes.py): the replay that
samples every env's windows as one, the envs' turns and seeds, the update count over every env's steps,
and the key's defaults and refusals. Kill-and-resume with two envs mid-episode is the registry-wide
conformance test's (tests/conftest.py `several_envs` gives DreamerV3's tiny runs two envs)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml

from iqrl.config.build import build_config
from iqrl.config.run import ConfigError
from iqrl.core.replay import SequenceReplay
from iqrl.core.replay_lanes import LaneReplay
from iqrl.envs.make import make_env
from iqrl.loop.parts import train_env_seed
from iqrl.loop.trainer import Trainer
from iqrl.runfolder.exits import EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_OK
from iqrl.train import main

from conftest import stop_after_steps, tiny_argv, tiny_keys
from test_train import read_csv


def lane_replay(episodes: list[int], seq_len: int = 2, online: bool = False, context_dim: int = 0):
    """A LaneReplay of one env per entry of `episodes`, env l holding one episode of that many transitions
    whose observations are [l, step] (stored in turn, one transition of each env that still has some)."""
    E = len(episodes)
    replays = [SequenceReplay(2, 1, seq_len, online=online, context_dim=context_dim) for _ in range(E)]
    lanes = LaneReplay(replays, seed=0)
    for lane in range(E):
        lanes.lane = lane
        lanes.start_episode(np.array([lane, 0.0]))
    for t in range(1, max(episodes) + 1):
        for lane, n in enumerate(episodes):
            if t <= n:
                lanes.lane = lane
                lanes.add(np.zeros(1), 0.0, np.array([lane, t]), False, t == n)
    return lanes


def test_windows_are_drawn_uniformly_from_every_envs_starts_together():
    lanes = lane_replay([9, 3])  # windows of 2: 8 starts in env 0, 2 in env 1
    batch = lanes.sample(20_000)
    env, start = batch.obs[:, 0, 0].long(), batch.obs[:, 0, 1].long()
    assert abs(float((env == 1).float().mean()) - 2 / 10) < 0.015  # 0.2 +- 5 sd
    assert torch.equal(batch.obs[:, 1, 1], batch.obs[:, 0, 1] + 1)  # each window inside its own env's episode
    assert torch.equal(batch.index, start * 2 + env)  # a stored index i of env l reads i E + l
    assert torch.equal(batch.obs_index[:, 0], start * 2 + env)
    counts = torch.bincount(start[env == 0], minlength=8)
    assert counts.min() > 0.8 * counts.float().mean()  # every start of env 0 drawn alike


def test_the_online_queue_takes_every_envs_tiles_in_the_order_they_completed():
    lanes = lane_replay([4, 4, 2], online=True)  # tiles of 2: env 0 at t=2, 4; env 1 too; env 2 at t=2
    batch = lanes.sample(5)
    got = [(int(e), int(s)) for e, s in zip(batch.obs[:, 0, 0], batch.obs[:, 0, 1])]
    assert got == [(0, 0), (1, 0), (2, 0), (0, 2), (1, 2)]  # completed in that order: t=2 of each, then t=4
    assert lanes.sample(1).obs.shape[0] == 1  # the queue is spent: drawn


def test_contexts_are_written_to_and_read_from_their_own_env():
    lanes = lane_replay([3, 3], context_dim=1)
    idx = torch.tensor([1 * 2 + 0, 1 * 2 + 1])  # observation 1 of env 0, of env 1
    lanes.write_context(idx, torch.tensor([[10.0], [11.0]]))
    for lane, value in ((0, 10.0), (1, 11.0)):
        got = lanes.replays[lane].contexts.read(torch.tensor([0, 1, 2]))
        assert got["has_context"].tolist() == [False, True, False]
        assert got["context"][1].item() == value


def test_state_dict_round_trips_the_draws_and_the_queue():
    a, b = lane_replay([5, 4], online=True), lane_replay([1, 1], online=True)
    a.sample(1)
    b.load_state_dict(a.state_dict())
    for _ in range(3):
        x, y = a.sample(3), b.sample(3)
        assert torch.equal(x.obs, y.obs) and torch.equal(x.index, y.index)


def dreamer(tmp_path, *extra: str) -> Trainer:
    return Trainer(build_config(tiny_keys("dreamerv3", [f"out={tmp_path}", *extra])))


def test_the_envs_take_turns_each_its_own_seeded_env(tmp_path):
    """Three envs through the seed phase: env l takes the agent steps at env_step / 2 = l mod 3, and what its
    replay holds is what an env seeded train_env_seed(seed, l) shows under its stored actions."""
    trainer = dreamer(tmp_path, "train_envs=3", "seed=5", "steps=300", "seed_steps=300", "episode_length=60")
    trainer.run()
    assert trainer.episode == 3 + 1  # one of 60 each, and the one the budget truncated (the last step's env)
    firsts = set()
    for lane, replay in enumerate(trainer.replay.replays):
        assert replay.size == 50  # 300 env steps, 2 per agent step, in turn
        env = make_env("cartpole-balance", train_env_seed(5, lane), 2, 60)
        obs = [env.reset()]
        for action in replay._act[: replay.size].numpy():
            step = env.step(action)
            obs += [step.obs, env.reset()] if step.truncated else [step.obs]
        assert np.array_equal(replay._obs[: replay.n_obs].numpy(), np.stack(obs[: replay.n_obs]))
        firsts.add(tuple(replay._obs[0].tolist()))
    assert len(firsts) == 3  # three seeds, three initial states
    assert train_env_seed(5, 0) == 5  # the first env is the run's own


def test_updates_count_every_envs_steps_from_the_seed_steps_on(tmp_path):
    """The rate counts env steps over all envs, as the code's ratio counts every env's transition: 0.5 updates
    per agent step (the tiny train_ratio) from env step seed_steps, wherever each env's episode stands."""
    out = tmp_path / "run"
    trainer = dreamer(
        out, "train_envs=2", "steps=640", "seed_steps=300", "diag_every=160", "episode_length=120"
    )
    trainer.run()
    rows = read_csv(out / "train.csv")
    steps = [int(r["env_step"]) for r in rows]
    assert [int(r["updates"]) for r in rows] == [max(0, (n - 300) // 2 // 2) for n in steps]


def test_the_default_is_the_codes_and_an_agent_that_acts_for_one_env_is_refused():
    assert build_config(["agent=dreamerv3", "task=walker-walk"]).train_envs == 16
    assert build_config(["agent=dreamerv3", "task=minigrid:MiniGrid-Empty-5x5-v0"]).train_envs == 1
    assert build_config(["agent=dreamerv3", "task=atari:Pong", "protocol=atari100k"]).train_envs == 1
    assert build_config(["agent=td3", "task=walker-walk"]).train_envs == 1
    with pytest.raises(
        ConfigError, match=r"^train_envs=2: agent td3 acts for one training env; several work "
    ):
        build_config(["agent=td3", "train_envs=2"])
    for bad in (0, -3, 257, 10**9):
        with pytest.raises(ConfigError, match=rf"^train_envs must be in 1..256, got {bad}$"):
            build_config(["agent=dreamerv3", f"train_envs={bad}"])
    for bad in ("1.5", "nan", "inf"):
        with pytest.raises(ConfigError, match=r"train_envs"):
            build_config(["agent=dreamerv3", f"train_envs={bad}"])


def test_an_older_unfinished_run_resumes_only_with_its_one_env(tmp_path, capsys):
    """A folder of a version before the key (config.yaml without train_envs: one env, DreamerV3 on DMC too) is
    refused another count with the value to pass, before anything is written; train_envs=1 resumes it."""
    run = tmp_path / "run"
    argv = tiny_argv("dreamerv3", run, steps=600, extra=["train_envs=1"])
    assert main(argv, should_stop=stop_after_steps(137)) == EXIT_INTERRUPTED
    saved = yaml.safe_load((run / "config.yaml").read_text())
    del saved["train_envs"]
    (run / "config.yaml").write_text(yaml.safe_dump(saved))
    before = {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file()}
    assert main(tiny_argv("dreamerv3", run, steps=600)) == EXIT_BAD_INPUT  # the tiny runs' two envs
    assert "resume it with train_envs=1" in capsys.readouterr().err
    assert {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file()} == before
    assert main(argv) == EXIT_OK


def test_the_agent_acts_for_every_env_at_once_at_the_start_of_each_round(tmp_path, monkeypatch):
    """Each round of turns starts with one `act_train_envs` for all envs (the code's driver acts for its envs
    at once, before their transitions' updates); no training act is taken env by env."""
    trainer = dreamer(tmp_path, "train_envs=3", "steps=240", "seed_steps=120", "episode_length=60")
    calls, act = [], trainer.agent.act

    def act_train_envs(obs):
        calls.append((trainer.env_step, trainer.updates, len(obs)))
        return type(trainer.agent).act_train_envs(trainer.agent, obs)

    def one_act(obs, explore):
        assert not explore, "a training act outside the round's"
        return act(obs, explore)

    monkeypatch.setattr(trainer.agent, "act_train_envs", act_train_envs)
    monkeypatch.setattr(trainer.agent, "act", one_act)
    trainer.run()
    assert [c[0] for c in calls] == list(range(0, 240, 6)) and {c[2] for c in calls} == {3}
    assert calls[-1][1] == (234 - 120) // 2 // 2  # the round's act sees the updates before it only


@pytest.mark.parametrize(
    "keys, seed_steps",
    [
        (["task=walker-walk"], (1024 + 16 * 64) * 2),  # 16 envs: the code trains from its 2048th agent step
        (["task=walker-walk", "train_envs=1"], (1024 + 64) * 2),  # one env: its 1088th
        (["task=atari:Pong", "protocol=atari100k"], (1024 + 64) * 4),  # its one Atari 100k env, 4 frames each
    ],
)
def test_dreamerv3s_seed_phase_is_its_codes_for_its_envs(keys, seed_steps):
    """DreamerV3's code trains once its replay holds 1024 sequences of 65 steps, each env's stream yielding
    one per step from its 65th step on (embodied/core/replay.py `Replay.add`): 1024 + 64 E agent steps."""
    assert build_config(["agent=dreamerv3", *keys]).seed_steps == seed_steps


def test_a_replay_capacity_that_leaves_an_env_less_than_a_window_is_refused_by_the_check(tmp_path, capsys):
    """DreamerV3's 16 envs split replay_capacity=1000 into replays of 63 transitions, fewer than its window of
    batch_length=64: --check and the run refuse it naming the smallest capacity that works, 63 x 16 + 1 (whose
    replays of 64 it accepts), before anything is written."""
    argv = ["agent=dreamerv3", "task=cartpole-balance", "train_envs=16", f"out={tmp_path / 'run'}"]
    line = (
        "error: replay_capacity={} split over train_envs=16 gives each env's replay 63 transitions, fewer "
        "than a sampled window of 64 (dreamerv3's): set replay_capacity >= 1009 (or 0, unbounded)\n"
    )
    for capacity in (1000, 1008):
        for check in (["--check"], []):
            assert main([*argv, f"replay_capacity={capacity}", *check]) == EXIT_BAD_INPUT
            assert capsys.readouterr().err == line.format(capacity)
    assert list(tmp_path.iterdir()) == []
    assert main([*argv, "replay_capacity=1009", "--check"]) == EXIT_OK
    # the replay's own rule, which the minimum meets: each env's replay of ceil(1009 / 16) = 64
    assert SequenceReplay(5, 1, 64, "cpu", 0, capacity=-(-1009 // 16)).capacity == 64
    with pytest.raises(ValueError, match="replay capacity must be >= seq_len"):
        SequenceReplay(5, 1, 64, "cpu", 0, capacity=-(-1008 // 16))
