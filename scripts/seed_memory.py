"""What a seed of a run holds beyond its tensors, the figures behind iqrl.loop.memory's SEED_PROCESS,
ENV_IN_PROCESS and ENV_WORKER: N tiny runs' trainers built side by side in one process, as a K-seed group
builds its seeds'; the process's proportional memory (PSS) per trainer, and each env worker's private memory
(USS: what one more worker adds). Not part of CI.

    python scripts/seed_memory.py [--seeds 8] [--task cartpole-balance]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import psutil

from iqrl.config.build import build_config
from iqrl.loop.trainer import Trainer

MIB = 2**20


def measure(n: int, task: str, workers: bool) -> dict:
    root = Path(tempfile.mkdtemp())
    argv = [
        "agent=td3",
        f"task={task}",
        "agent.mlp_dims=[32,32]",
        "steps=4000",
        f"env_workers={workers}".lower(),
    ]
    cfgs = [build_config([*argv, f"seed={s}", f"out={root / str(s)}"]) for s in range(n + 1)]
    me = psutil.Process()
    trainers = [Trainer(cfgs[0])]  # the imports and first-time caches, which the process's overhead holds
    before = me.memory_full_info().pss
    trainers += [Trainer(c) for c in cfgs[1:]]
    row = {"workers": workers, "process_mib_per_seed": (me.memory_full_info().pss - before) / n / MIB}
    if workers:  # each trainer's training env in its worker
        own = [psutil.Process(t.env.pid).memory_full_info().uss for t in trainers]
        row["worker_mib"] = sum(own) / len(own) / MIB
    for t in trainers:
        t.close()
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=8)
    p.add_argument("--task", default="cartpole-balance")
    a = p.parse_args()
    for workers in (False, True):
        print(
            {
                k: round(v, 1) if isinstance(v, float) else v
                for k, v in measure(a.seeds, a.task, workers).items()
            }
        )


if __name__ == "__main__":
    main()
