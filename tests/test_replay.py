"""Sequence replay and n-step targets: windows never cross episodes, termination vs truncation."""

import pytest
import torch

from iqrl.core.replay import SequenceReplay, nstep_targets

G = 0.9


def fill(replay, episodes):
    """episodes: list of (length, terminated). obs = [episode id, t]; reward = 100 * ep + t."""
    for ep, (length, terminated) in enumerate(episodes):
        replay.start_episode([ep, 0])
        for t in range(length):
            last = t == length - 1
            replay.add([float(t)], 100 * ep + t, [ep, t + 1], terminated and last, (not terminated) and last)


def test_windows_never_cross_episodes():
    r = SequenceReplay(2, 1, seq_len=4, seed=0)
    fill(r, [(6, False), (3, False), (9, False), (5, False)])
    # starts with a full window inside the episode: 6-3 + 0 + 9-3 + 5-3 = 3 + 0 + 6 + 2
    assert r.n_starts == 11
    b = r.sample(2000)
    ep = b.obs[..., 0]
    t = b.obs[..., 1]
    assert (ep == ep[:, :1]).all(), "a window mixes two episodes"
    assert (t[:, 1:] - t[:, :-1] == 1).all(), "observations are not consecutive"
    assert torch.equal(b.action[..., 0], t[:, :-1])  # a_t pairs with o_t
    assert torch.equal(b.reward, 100 * ep[:, :-1] + t[:, :-1])
    assert b.valid.all() and not b.terminal.any()
    assert set(b.index.tolist()) == set(r._starts[: r.n_starts].tolist())  # every start gets drawn


def test_terminated_episode_windows_are_padded_and_masked():
    r = SequenceReplay(2, 1, seq_len=3, seed=0)
    fill(r, [(4, True)])
    # full windows start at 0, 1; padded windows at 2, 3 (run past the terminal at t=3)
    assert sorted(r._starts[: r.n_starts].tolist()) == [0, 1, 2, 3]
    b = r.sample(500)
    for i in range(len(b)):
        s = int(b.index[i])
        n_valid = min(3, 4 - s)
        assert b.valid[i].tolist() == [1.0] * n_valid + [0.0] * (3 - n_valid)
        assert b.terminal[i].tolist() == [t == 3 for t in range(s, s + 3) if t <= 3] + [False] * (3 - n_valid)
        # obs = [episode, t]: o_s .. o_{s+n_valid}, then every padded slot holds the terminal's next obs o_4
        assert b.obs[i, :, 1].tolist() == [float(min(t, 4)) for t in range(s, s + 4)]


def test_sample_shorter_window_and_errors():
    r = SequenceReplay(2, 1, seq_len=3, seed=0)
    with pytest.raises(RuntimeError):
        r.sample(4)
    fill(r, [(5, False)])
    b = r.sample(8, seq_len=2)
    assert b.obs.shape == (8, 3, 2) and b.action.shape == (8, 2, 1)
    with pytest.raises(ValueError):
        r.sample(8, seq_len=4)


def test_state_dict_round_trip_continues_identically():
    a = SequenceReplay(2, 1, seq_len=2, seed=3, initial_capacity=2)
    fill(a, [(5, False), (4, True)])
    b = SequenceReplay(2, 1, seq_len=2, seed=99)
    b.load_state_dict(a.state_dict())
    x, y = a.sample(64), b.sample(64)
    assert torch.equal(x.obs, y.obs) and torch.equal(x.index, y.index)


def rows(*r):
    return torch.tensor(r, dtype=torch.float32)


def test_nstep_no_episode_end():
    rew = rows([1.0, 2.0, 3.0, 4.0])
    z = torch.zeros(1, 4)
    ret, disc, boot = nstep_targets(rew, z, torch.ones(1, 4), G, 3)
    assert ret.item() == pytest.approx(1 + G * 2 + G**2 * 3)
    assert disc.item() == pytest.approx(G**3)
    assert boot.item() == 3


def test_nstep_termination_stops_return_and_bootstrap():
    rew = rows([1.0, 2.0, 3.0])
    term = rows([0.0, 1.0, 0.0])
    valid = rows([1.0, 1.0, 0.0])  # padded after the terminal
    ret, disc, boot = nstep_targets(rew, term, valid, G, 3)
    assert ret.item() == pytest.approx(1 + G * 2)  # the terminal step's reward counts
    assert disc.item() == 0.0  # no bootstrap after a termination
    assert boot.item() == 2


def targets_by_start(replay, n):
    """n-step (ret, discount, bootstrap obs) of every window start, from sampled windows."""
    b = replay.sample(2000)
    ret, disc, boot = nstep_targets(b.reward, b.terminal, b.valid, G, n)
    boot_obs = b.obs[torch.arange(len(b)), boot]
    return {int(s): (ret[i].item(), disc[i].item(), boot_obs[i].tolist()) for i, s in enumerate(b.index)}


@pytest.mark.parametrize("terminated", [False, True])
def test_truncation_is_not_termination(terminated):
    # Episode 0 (5 steps) ends by truncation (time limit) or by termination; episode 1 follows it.
    n = 3
    r = SequenceReplay(2, 1, seq_len=n, seed=0)
    fill(r, [(5, terminated), (4, False)])
    got = targets_by_start(r, n)
    # the window whose last step is the episode's last transition (t = 2, 3, 4; o_5 = [0, 5] is stored)
    ret, disc, boot_obs = got[2]
    assert ret == pytest.approx(2 + G * 3 + G**2 * 4)
    if terminated:
        assert disc == 0.0  # no bootstrap past a true termination
        assert sorted(s for s in got if s < 5) == [0, 1, 2, 3, 4]  # padded windows past the terminal
    else:
        # truncation bootstraps from the last observation of the episode, with gamma^n
        assert disc == pytest.approx(G**n) and boot_obs == [0.0, 5.0]
        assert sorted(s for s in got if s < 5) == [0, 1, 2]  # no window crosses the reset
    assert r._term[:5].tolist() == [False] * 4 + [terminated]  # only a termination is stored as terminal
    assert all(d == pytest.approx(G**n) for s, (_, d, _) in got.items() if s >= 5)  # episode 1 untouched


def test_nstep1_discount_and_official_bug():
    rew, z, v = rows([5.0]), torch.zeros(1, 1), torch.ones(1, 1)
    _, disc, _ = nstep_targets(rew, z, v, G, 1)
    assert disc.item() == pytest.approx(G)
    _, disc_bug, _ = nstep_targets(rew, z, v, G, 1, unit_discount_n1=True)
    assert disc_bug.item() == 1.0  # official code: undiscounted n=1 targets
    _, disc_t, _ = nstep_targets(rew, rows([1.0]), v, G, 1, unit_discount_n1=True)
    assert disc_t.item() == 0.0


def test_official_ignore_terminal_for_n_gt_1():
    rew, term, valid = rows([1.0, 2.0]), rows([1.0, 0.0]), rows([1.0, 0.0])
    _, disc, _ = nstep_targets(rew, term, valid, G, 2, ignore_terminal=True)
    # terminal ignored: one valid step accumulated, bootstrap gamma^1 instead of 0
    assert disc.item() == pytest.approx(G)


def test_nstep_batch_mixes_cases():
    rew = rows([1.0, 1.0, 1.0], [1.0, 1.0, 1.0])
    term = rows([0.0, 0.0, 0.0], [1.0, 0.0, 0.0])
    valid = rows([1.0, 1.0, 1.0], [1.0, 0.0, 0.0])
    ret, disc, boot = nstep_targets(rew, term, valid, G, 3)
    assert ret.tolist() == pytest.approx([1 + G + G * G, 1.0])
    assert disc.tolist() == pytest.approx([G**3, 0.0])
    assert boot.tolist() == [3, 1]


def test_capacity_is_a_fifo_for_sampling_priorities_and_reward_scale():
    # episodes of 6 transitions (rewards 100 * ep + t); capacity 10 keeps transitions 8..17 of 18
    r = SequenceReplay(2, 1, seq_len=3, seed=0, capacity=10)
    fill(r, [(6, False), (6, False), (6, False)])
    assert r.size == 18 and r.first_kept == 8
    b = r.sample(4000)
    starts = set(b.index.tolist())
    # full windows inside an episode that begin at or after transition 8: ep 1 starts 8, 9; ep 2 starts 12..15
    assert starts == {8, 9, 12, 13, 14, 15}
    assert (b.obs[..., 0] >= 1).all()  # nothing of episode 0 is ever drawn
    assert set(r._starts[r._sample_by_priority(4000) + r._first_start].tolist()) == starts
    r._prio[:8] = 50.0  # evicted transitions no longer count for TD7's max-priority reset
    r._prio[8:] = 2.0
    r.reset_max_priority()
    assert r.max_priority == 2.0
    kept_rewards = [100 * 1 + t for t in range(2, 6)] + [200 + t for t in range(6)]
    assert r.reward_abs_mean() == pytest.approx(sum(kept_rewards) / 10)
    assert (r.sample_obs(500)[:, 0] >= 1).all()
    # unbounded (the default): every start is drawn
    u = SequenceReplay(2, 1, seq_len=3, seed=0)
    fill(u, [(6, False), (6, False), (6, False)])
    assert u.first_kept == 0 and set(u.sample(4000).index.tolist()) == set(u._starts[: u.n_starts].tolist())
    # a checkpoint restores the eviction point
    c = SequenceReplay(2, 1, seq_len=3, seed=5, capacity=10)
    c.load_state_dict(r.state_dict())
    x, y = r.sample(64), c.sample(64)
    assert c._first_start == r._first_start and torch.equal(x.index, y.index)
    with pytest.raises(ValueError, match="capacity"):
        SequenceReplay(2, 1, seq_len=3, capacity=2)


def test_sample_obs_without_replacement_draws_each_observation_once():
    n = 16
    r = SequenceReplay(n, 1, seq_len=2, seed=0)
    eye = torch.eye(n)
    r.start_episode(eye[0])
    for t in range(n):  # o_0 .. o_{n-1} = the n unit vectors; the final next observation is no o_t
        r.add([0.0], 0.0, eye[t + 1] if t + 1 < n else torch.full((n,), 2.0), False, t == n - 1)
    train_state = r.generator.get_state()
    g = torch.Generator().manual_seed(1)
    batch = r.sample_obs(n, g, replace=False)
    assert batch.shape == (n, n) and torch.linalg.matrix_rank(batch) == n  # full rank
    assert torch.equal(batch[batch.argmax(1).argsort()], eye)  # each stored o_t exactly once
    assert not torch.equal(batch, eye)  # in random order
    assert torch.equal(r.generator.get_state(), train_state)  # the replay's own generator is not used
    # with replacement (the default) a draw of n from n repeats rows and loses rank
    assert torch.linalg.matrix_rank(r.sample_obs(n, torch.Generator().manual_seed(1))) < n
    # fewer stored than asked: all of them, once each; more: n distinct ones
    assert sorted(r.sample_obs(3 * n, g, replace=False).argmax(1).tolist()) == list(range(n))
    assert len(set(r.sample_obs(5, g, replace=False).argmax(1).tolist())) == 5


def test_sample_obs_default_is_unchanged_and_respects_capacity():
    r = SequenceReplay(2, 1, seq_len=3, seed=4, capacity=10)
    fill(r, [(6, False), (6, False), (6, False)])  # transitions 8..17 kept: o_t = [1, 2..5], [2, 0..5]
    ref = torch.Generator().manual_seed(4)
    expected = torch.randint(10, (50,), generator=ref) + 8
    assert torch.equal(r.sample_obs(50), r._obs[r._obs_ptr[expected]])  # with replacement, replay generator
    kept = r._obs[r._obs_ptr[8:18]]
    got = r.sample_obs(20, torch.Generator().manual_seed(0), replace=False)
    assert len(got) == 10 and sorted(map(tuple, got.tolist())) == sorted(map(tuple, kept.tolist()))


def test_an_episode_is_uploaded_once_when_the_replay_is_next_read():
    """add() stages on the host; the first read after the episode uploads it in one copy per array, and
    what is stored equals a replay uploaded after every single add."""
    once, every = SequenceReplay(2, 1, seq_len=3, seed=0), SequenceReplay(2, 1, seq_len=3, seed=0)
    for r in (once, every):
        r.start_episode([0, 0])
    for t in range(6):
        for r in (once, every):
            r.add([float(t)], 0.5 * t, [0, t + 1], False, t == 5)
        every._upload()
        assert once._uploaded == (0, 0, 0)  # nothing has reached the device arrays yet
    batch_once, batch_every = once.sample(32), every.sample(32)
    assert once._uploaded == (7, 6, 4) and not any(once._staged.values())
    for field in ("obs", "action", "reward", "terminal", "valid", "index"):
        assert torch.equal(getattr(batch_once, field), getattr(batch_every, field)), field
    for name in ("_obs", "_act", "_rew", "_term", "_obs_ptr", "_term_at", "_prio"):
        n = once.n_obs if name == "_obs" else once.size
        assert torch.equal(getattr(once, name)[:n], getattr(every, name)[:n]), name


# ------------------------------------------------------- the options for a recurrent agent (replay_options)
def test_contexts_are_written_per_observation_the_last_of_repeated_indices_winning():
    replay = SequenceReplay(2, 1, seq_len=3, seed=0, initial_capacity=4, context_dim=2)
    fill(replay, [(6, False), (5, False)])  # 13 observations: the context store grows past 4
    idx = torch.tensor([[1, 2, 3], [3, 4, 50]])  # 3 twice; 50 is no stored observation
    values = torch.arange(12.0).view(2, 3, 2)
    keep = torch.tensor([[True, False, True], [True, True, True]])
    replay.write_context(idx, values, keep)
    c = replay.contexts
    assert c.written[: replay.n_obs].tolist() == [i in (1, 3, 4) for i in range(13)]
    assert c.values[1].tolist() == [0.0, 1.0] and c.values[2].tolist() == [0.0, 0.0]
    assert c.values[3].tolist() == [6.0, 7.0]  # the second window's, given later
    assert not c.written[c.values.shape[0] - 1] and not c.values[-1].any()  # the spare row stays clear
    batch = replay.sample(64)
    assert torch.equal(batch.has_context, c.written[batch.obs_index[:, 0]])
    assert torch.equal(batch.context, c.values[batch.obs_index[:, 0]])
    # the stored indices are the observations' own: obs [episode, t] of each window's steps
    stored = replay._obs[batch.obs_index]
    assert torch.equal(stored, batch.obs)
    again = SequenceReplay(2, 1, seq_len=3, seed=0, context_dim=2)
    again.load_state_dict(replay.state_dict())
    assert torch.equal(again.contexts.values[:13], c.values[:13])
    assert torch.equal(again.contexts.written[:13], c.written[:13])


def test_the_online_queue_tiles_each_episode_and_is_sampled_first():
    """Every seq_len-th window of an episode, then at a termination the padded rest and at a truncation the
    last full window; a sample takes them oldest first before drawing."""
    replay = SequenceReplay(2, 1, seq_len=3, seed=0, online=True)
    fill(replay, [(7, False), (5, True), (2, False)])  # transitions 0-6, 7-11, 12-13
    assert list(replay.queue.host) == [0, 3, 4, 7, 10]  # 0-2, 3-5, last full 4-6; 7-9, padded 10-12
    batch = replay.sample(3)
    assert batch.index.tolist()[:3] == [0, 3, 4]
    batch = replay.sample(4)
    assert batch.index.tolist()[:2] == [7, 10] and replay.queue.head == 5
    state = replay.state_dict()
    again = SequenceReplay(2, 1, seq_len=3, seed=0, online=True)
    again.load_state_dict(state)
    assert list(again.queue.host) == [0, 3, 4, 7, 10] and again.queue.head == 5
    fill(again, [(3, False)])
    assert again.sample(2).index.tolist()[0] == 14
