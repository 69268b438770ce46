"""A K-seed group's training envs stepped together in the group's rounds (iqrl/multiseed/envs.py; DMC with
env_workers=false, the default on one core): one physics call per env step for all seeds (side by side on
threads), each hand-in waking only the thread it concerns; env_workers's default by the cores."""

from __future__ import annotations

import collections
import os
import threading

from iqrl.envs import batch as batch_module
from iqrl.multiseed import group as group_module
from iqrl.multiseed.runs import main, workers_help
from iqrl.runfolder.exits import EXIT_OK

from conftest import TINY_AGENT, TINY_RUN

TINY = ["agent=td3", *TINY_RUN, *TINY_AGENT["td3"], "steps=600"]


def test_a_groups_envs_step_in_one_physics_call_per_env_step(tmp_path, monkeypatch):
    """Three seeds in their seed phase (uniform random actions: nothing else makes them meet) step their
    envs in the group's rounds: every physics call of the training envs holds all three, one per env step,
    in this process (env_workers=false, in the run's config.yaml)."""
    calls = []
    step = batch_module.PhysicsThreads.step

    def counted(self, ids, nstep):
        calls.append((len(self.physics), sorted(ids)))
        return step(self, ids, nstep)

    monkeypatch.setattr(batch_module.PhysicsThreads, "step", counted)
    # batched whatever the physics costs (a tiny cartpole's is below THREADED_PHYSICS_US)
    monkeypatch.setattr(batch_module.EnvBatch, "threads_pay", lambda self: True)
    seeding = [k for k in TINY if not k.startswith("seed_steps=")] + ["seed_steps=600"]
    assert main([*seeding, "seeds=0,1,2", "env_workers=false", f"out={tmp_path}"]) == EXIT_OK
    training = [ids for n, ids in calls if n == 3]  # the evaluation's batches hold its 2 episodes' envs
    assert training == [[0, 1, 2]] * 600  # 600 env steps per seed: one call for the three at each
    for s in range(3):
        assert "env_workers: false" in (tmp_path / f"seed{s}" / "config.yaml").read_text()


def test_env_workers_by_default_where_the_process_has_two_cores(tmp_path, monkeypatch):
    """A group of two seeds or more gets each env in a worker where the process may use two cores or more
    (every suite's: an env's Python holds the interpreter lock), else its envs in its process, DMC's stepped
    together; given, the key stands. What the run's config.yaml records."""
    short = [k for k in TINY if not k.startswith(("steps=", "seed_steps="))] + ["steps=200", "seed_steps=200"]
    for cores, workers in ((1, "false"), (2, "true")):
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid, n=cores: set(range(n)))
        assert [workers_help(k) for k in (1, 4, 16)] == [False] + [cores >= 2] * 2
        out = tmp_path / f"cores{cores}"
        assert main([*short, "seeds=0,1", f"out={out}"]) == EXIT_OK
        assert f"env_workers: {workers}" in (out / "seed0" / "config.yaml").read_text()
    out = tmp_path / "given"
    assert main([*short, "seeds=0,1", "env_workers=false", f"out={out}"]) == EXIT_OK
    assert "env_workers: false" in (out / "seed0" / "config.yaml").read_text()


def test_a_hand_in_wakes_only_the_thread_it_concerns(tmp_path, monkeypatch):
    """Each piece a seed hands in (its env's steps, its actions, its update's pieces) costs it at most one
    wait: it sleeps until its own result is in, not once per other seed's hand-in (a notify_all for every
    hand-in woke every waiting seed); the serving thread wakes about once per round, not once per hand-in."""
    waits, pieces = collections.Counter(), collections.Counter()
    wait, submit = threading.Condition.wait, group_module.SeedGroup.submit
    handing_in = threading.local()  # a seed's waits counted inside its hand-ins only (a thread it starts
    # elsewhere, an evaluation's physics thread say, waits for that thread's start once)

    def counted_wait(self, timeout=None):
        if threading.current_thread() is threading.main_thread() or getattr(handing_in, "now", False):
            waits[threading.current_thread().name] += 1
        return wait(self, timeout)

    def counted_submit(self, k, piece):
        pieces[threading.current_thread().name] += 1
        handing_in.now = True
        try:
            return submit(self, k, piece)
        finally:
            handing_in.now = False

    monkeypatch.setattr(threading.Condition, "wait", counted_wait)
    monkeypatch.setattr(group_module.SeedGroup, "submit", counted_submit)
    assert main([*TINY, "seeds=0,1,2", f"out={tmp_path}"]) == EXIT_OK  # past its seed phase: updates too
    seeds = [f"seed{s}" for s in range(3)]
    assert all(pieces[s] > 600 for s in seeds)
    for s in seeds:
        assert waits[s] <= pieces[s], (s, waits[s], pieces[s])
    assert waits["MainThread"] <= 1.05 * max(pieces.values()) + 10  # rounds, not hand-ins (3 per round)
