"""The host share of a K-seed group (iqrl/bench/hostshare.py): what its counts count, and what they pin of
the group's acting and update: one move of the observations and one sync per agent step for the whole group,
one operator per seed (its own noise draw) beyond one forward, and no sync in an update."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from iqrl.bench.hostshare import Counts, host_share

from conftest import TINY_RUN, tiny_agent


def test_counts_operators_syncs_and_moves_as_a_gpu_host_meets_them():
    def work():
        x = torch.as_tensor(np.arange(4.0, dtype=np.float32), device="cpu")  # a move
        torch.tensor([1.0, 2.0])  # no device named: stays on the host of a GPU run, not a move
        y = (x * 2).sum()  # 2 operators
        float(y)  # a sync: the scalar read is an operator too
        host = (x + 1).cpu()  # an operator and a sync
        host.numpy(), host[1:].numpy()  # already on the host: no sync
        x.nonzero()  # an operator whose output size depends on the data: a sync
        x.tolist()  # a sync

    counts = Counts(torch.device("cpu"))
    counts.counting(work)()
    assert counts.totals() == {"ops": 5, "syncs": 4, "moves": 1}


@pytest.fixture(scope="module")
def rows():
    """Host-share rows of tiny iqrl groups of 2 and 3 seeds (cartpole, the tiny run's sizes)."""
    keys = [*TINY_RUN, "seed_steps=100", *tiny_agent("iqrl")]
    return {
        k: host_share("cartpole-balance", k, steps=2, updates=1, extra=keys, timed_steps=2) for k in (2, 3)
    }


def test_a_group_step_moves_the_observations_once_and_syncs_once(rows):
    for r in rows.values():
        assert (r["act_moves"], r["act_syncs"]) == (
            1,
            1,
        )  # stacked on the host; the actions read back at once
        assert (r["update_moves"], r["update_syncs"]) == (0, 0)  # metrics stay on the device
        assert r["act_ms"] > 0


def test_the_only_operator_of_a_seed_beyond_the_shared_forward_is_its_noise_draw(rows):
    assert rows[3]["act_ops"] - rows[2]["act_ops"] == 1
