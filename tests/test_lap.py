"""LAP prioritised replay: priority formula, max priority, sampling, checkpointing."""

import pytest
import torch

from iqrl.core.replay import SequenceReplay, lap_priority


def filled(n=10, seq_len=1, seed=0, episodes=1, terminal=False):
    """`episodes` episodes of n transitions; obs = [episode, t], reward = t - 3."""
    r = SequenceReplay(2, 1, seq_len=seq_len, seed=seed, initial_capacity=4)
    for ep in range(episodes):
        r.start_episode([ep, 0])
        for t in range(n):
            last = t == n - 1
            r.add([0.0], t - 3.0, [ep, t + 1], terminal and last, (not terminal) and last)
    return r


def test_lap_priority_formula():
    td = torch.tensor([[0.5, 0.2], [3.0, 1.0], [2.0, 5.0], [1.0, 0.0]])  # [B, heads]
    p = lap_priority(td, alpha=0.4, min_priority=1.0)
    # max over heads, floored at min_priority, to the power alpha
    assert p.tolist() == pytest.approx([1.0, 3.0**0.4, 5.0**0.4, 1.0])
    assert lap_priority(torch.tensor([[0.1]]), alpha=0.5, min_priority=0.25).item() == pytest.approx(0.5)


def test_new_transitions_get_the_current_max_priority():
    r = filled(4)
    r._upload()  # (what add() stores reaches the device arrays when the replay is next read)
    assert r.max_priority == 1.0 and r._prio[:4].tolist() == [1.0] * 4  # starts at 1
    r.update_priorities(torch.tensor([1, 2]), torch.tensor([3.0, 0.5]))
    assert r._prio[:4].tolist() == [1.0, 3.0, 0.5, 1.0]
    assert r.max_priority == 3.0
    r.update_priorities(torch.tensor([1]), torch.tensor([2.0]))
    assert r.max_priority == 3.0  # max priority never decreases on write-back
    r.start_episode([1, 0])
    r.add([0.0], 0.0, [1, 1], False, False)
    r._upload()
    assert r._prio[4].item() == 3.0
    # TD7's reset: the max of what is stored now (index 1 is 2.0 since the last write)
    r.reset_max_priority()
    assert r.max_priority == 3.0  # transition 4 still holds 3.0
    r.update_priorities(torch.tensor([4]), torch.tensor([1.5]))
    r.reset_max_priority()
    assert r.max_priority == 2.0
    r.add([0.0], 0.0, [1, 2], False, True)
    r._upload()
    assert r._prio[5].item() == 2.0


def test_duplicate_indices_keep_the_largest_priority():
    r = filled(4)
    r.update_priorities(torch.tensor([2, 2, 0]), torch.tensor([1.7, 2.5, 1.2]))
    assert r._prio[:4].tolist() == pytest.approx([1.2, 1.0, 2.5, 1.0])


def test_sampling_frequencies_follow_priorities():
    r = filled(10, seed=5)
    prio = torch.arange(1.0, 11.0)
    prio[3] = 0.0  # a zero priority is never drawn
    r.update_priorities(torch.arange(10), prio)
    n = 200_000
    counts = torch.bincount(r.sample(n, prioritized=True).index, minlength=10).double()
    expected = prio.double() / prio.sum()
    # binomial std of a frequency is at most sqrt(0.25 / n) ~ 0.0011; tolerance ~4.5 sigma
    assert torch.allclose(counts / n, expected, atol=0.005)
    assert counts[3] == 0
    uniform = torch.bincount(r.sample(n).index, minlength=10).double() / n
    assert torch.allclose(uniform, torch.full((10,), 0.1, dtype=torch.float64), atol=0.005)


def test_prioritized_windows_start_only_at_valid_starts():
    r = filled(8, seq_len=3)  # valid starts 0..5 (the window must stay inside the episode)
    r.update_priorities(torch.tensor([6, 7]), torch.tensor([100.0, 100.0]))  # not window starts
    b = r.sample(4000, prioritized=True)
    assert int(b.index.max()) <= 5
    t = b.obs[..., 1]
    assert (t[:, 1:] - t[:, :-1] == 1).all() and torch.equal(t[:, 0], b.index.float())


def test_prioritized_sampling_is_deterministic_and_checkpointed():
    a, b = filled(12, seed=3, episodes=2), filled(12, seed=3, episodes=2)
    for r in (a, b):
        r.update_priorities(torch.tensor([0, 5, 13]), torch.tensor([4.0, 2.0, 9.0]))
    assert torch.equal(a.sample(64, prioritized=True).index, b.sample(64, prioritized=True).index)
    c = SequenceReplay(2, 1, seq_len=1, seed=99)
    c.load_state_dict(a.state_dict())
    assert torch.equal(c._prio[: c.size], a._prio[: a.size]) and c.max_priority == a.max_priority == 9.0
    assert torch.equal(c.sample(64, prioritized=True).index, a.sample(64, prioritized=True).index)
    # new transitions after the round trip still enter at the restored max priority
    for r in (a, c):
        r.start_episode([5, 0])
        r.add([0.0], 0.0, [5, 1], False, False)
        r._upload()
    assert a._prio[a.size - 1].item() == c._prio[c.size - 1].item() == 9.0


def test_checkpoint_without_priorities_loads_with_unit_priorities():
    a = filled(5)
    state = a.state_dict()
    del state["prio"], state["max_prio"]
    c = SequenceReplay(2, 1, seq_len=1)
    c.load_state_dict(state)
    assert c._prio[:5].tolist() == [1.0] * 5 and c.max_priority == 1.0


def test_reward_abs_mean_and_terminal_flag():
    r = filled(5)  # rewards -3, -2, -1, 0, 1
    assert r.reward_abs_mean() == pytest.approx(7 / 5)
    assert not r.has_terminal
    t = filled(3, terminal=True)
    assert t.has_terminal
    c = SequenceReplay(2, 1, seq_len=1)
    c.load_state_dict(t.state_dict())
    assert c.has_terminal
