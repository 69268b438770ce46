"""The host share of a K-seed group (iqrl/bench/hostshare.py): what its counts count."""

from __future__ import annotations

import numpy as np
import torch

from iqrl.bench.hostshare import Counts


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
