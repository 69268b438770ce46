"""A K-seed group's training envs stepped together: each seed's env step is handed to the group as host work
(`SeedUpdater.host`, iqrl/multiseed/group.py), and once every seed still training has handed in something, the
steps handed in run in the group's serving thread as one `EnvBatch.step` (iqrl/envs/batch.py): the envs' task
code one after the other, their physics side by side on threads that release the interpreter lock where
that pays (else each env's alone, in the same thread). No pipe, no process, no round trip to another process;
each env's numbers are those it has stepped alone (so a seed's run is the one it has with env_workers=true,
or alone).

What is stepped together is each seed's DMC env inside its wrappers: its pixels are rendered and its
perturbations drawn in the seed's own thread, as before. Envs in worker processes (env_workers=true: a
group's default where the process has two cores, iqrl.multiseed.runs.workers_help) and the suites without a
dm_control physics (Gym, Atari, MiniGrid, ...) step on their own, in their seeds' threads.
"""

from __future__ import annotations

from iqrl.envs.batch import EnvBatch, stepped_by
from iqrl.envs.tasks import split_task, task_list
from iqrl.multiseed.group import SeedUpdater


def steps_together(cfg) -> bool:
    """Whether a group of runs like `cfg` steps its seeds' training envs together: DMC tasks with the envs in
    this process."""
    return not cfg.env_workers and all(split_task(t)[0] == "dmc" for t in task_list(cfg.task))


def step_together(trainers: list) -> list[EnvBatch]:
    """Each task's training envs of a group's seeds (their agents in the group: SeedUpdater) made to step
    together in the group's rounds (nothing where `steps_together` says no); the batches, one per task."""
    if not steps_together(trainers[0].cfg):
        return []
    seeds: list[SeedUpdater] = [t.agent.updater for t in trainers]  # each seed's hand to the group
    batches = []
    for task in range(len(trainers[0].parts.envs)):
        batch: list[EnvBatch] = []  # filled below: the hand-ins run its step

        def hand_in(k: int, action, batch=batch):
            step = seeds[k].host(batch[0].step, k, action)
            if isinstance(step, BaseException):  # that env's step failed, in the serving thread
                raise step
            return step

        batch.append(stepped_by([t.parts.envs[task] for t in trainers], hand_in))
        batches += batch
    return batches
