"""Envs stepped together: their physics side by side on threads that release the interpreter lock, each env's
own Python around it.

An env whose class has `phased_step` (the DMC envs and the wrappers over them: iqrl/envs/step.py `phased`)
hands out its physics steps. `EnvBatch.step` runs the phased steps of several envs side by side in the calling
thread, and each time all of them wait on their physics, steps those physics (where that pays, below) on
`PhysicsThreads`: each env's own dm_control `Physics.step`, a share of the envs on each of min(envs, cores)
threads, the calling thread's included. MuJoCo's bindings release the interpreter lock inside `mj_step`, so
the shares' MuJoCo steps run at once on their cores; dm_control's task code (`before_step`, rewards,
observations, terminations) and the harness's wrappers run in the calling thread between those calls. No pipe,
no process, no copy of a simulation's state.

Where threads pay. Handing a share to another thread costs its wake-up and the lock's hand-overs around
the three MuJoCo calls of dm_control's step, about 10 µs of CPU per env step on a 2-core EPYC
(docs/performance.md), which only a physics of some tens of µs per env step, on two cores or more, pays back
in wall time (and stepped each alone, in the calling thread, the physics costs the least CPU). So an EnvBatch
left to choose (`nthread=None`) steps its first TIMED physics steps alone, timing them in CPU time, and on
threads from then on only where they took THREADED_PHYSICS_US each or more and the process has two cores
(walker-walk's ten MuJoCo steps, 60-80 µs there: on threads; cheetah-run's one, 7 µs: alone). MuJoCo's own
batch (`mujoco.batch.Batch`, each simulation's state copied in and out) stepped the same physics at the same
wall rate for about twice that CPU: its pool's threads stay busy between calls.

Bit for bit. Each env's physics is stepped by the MuJoCo calls of dm_control's own `Physics.step` on its own
MjData (`mujoco_step`), whichever thread calls it, so its numbers are those it has stepped alone
(tests/test_env_batch.py: every task of the suite, resets and restored states included); its warnings raise
dm_control's PhysicsError there (the physics' own check around the calls), and MuJoCo's errors its FatalError.

A failure stays with its env: `step` returns the exception an env's step raised in place of its Step, and
steps the others on. A batch is used by one thread at a time.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections.abc import Callable

import mujoco
import numpy as np

from iqrl.envs.step import PhasedStep, Step, phased

#: CPU µs of one env's physics step (dm_control's Physics.step of its n MuJoCo steps) from which a batch left
#: to choose steps its physics on threads (module docstring), timed over its first TIMED steps
THREADED_PHYSICS_US = 50.0
TIMED = 16


def usable_cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class _Helper:
    """A thread that runs one piece of work at a time, handed over by two locks used as semaphores (the
    cheapest wake-up the standard library has); it ends when its owner is collected."""

    def __init__(self):
        self.go, self.done = threading.Lock(), threading.Lock()
        self.go.acquire()
        self.done.acquire()
        self.work: Callable[[], None] | None = None
        threading.Thread(target=self._loop, name="physics", daemon=True).start()

    def _loop(self) -> None:
        while True:
            self.go.acquire()
            if self.work is None:  # stopped
                return
            try:
                self.work()
            finally:
                self.work = None
                self.done.release()

    def start(self, work: Callable[[], None]) -> None:
        self.work = work
        self.go.release()

    def wait(self) -> None:
        self.done.acquire()

    def stop(self) -> None:
        self.work = None
        self.go.release()


class PhysicsThreads:
    """The physics (dm_control `Physics`) of envs of one task, stepped side by side on `nthread` threads, the
    caller's included (None: one per simulation, at most the usable cores; module docstring)."""

    def __init__(self, physics: list, nthread: int | None = None):
        self.physics = physics
        nthread = min(len(physics), usable_cores()) if nthread is None else nthread
        self.helpers = [_Helper() for _ in range(max(nthread, 1) - 1)]
        for h in self.helpers:
            weakref.finalize(self, h.stop)

    def step(self, ids: list[int], nstep: int) -> dict[int, BaseException]:
        """Simulations `ids` advanced by `nstep` MuJoCo steps as their own dm_control `Physics.step(nstep)`
        advances them (`mujoco_step` inside the physics' own check of MuJoCo's warnings); the exception of
        each simulation whose step raised (dm_control's PhysicsError, MuJoCo's FatalError)."""
        failed: dict[int, BaseException] = {}
        checks, raw = {}, {}  # dm_control's warnings check around the calls; each simulation's MuJoCo structs
        for i in ids:
            p = self.physics[i]
            checks[i] = p.check_invalid_state()
            checks[i].__enter__()
            raw[i] = p.model.ptr, p.data.ptr, p.legacy_step

        # MuJoCo's calls alone: the least Python for the threads to contend on
        def run(share: list[int]) -> None:
            for i in share:
                try:
                    model, data, legacy = raw[i]
                    mujoco_step(model, data, nstep, legacy)
                except Exception as e:
                    failed[i] = e

        n = len(self.helpers) + 1
        started = [h for j, h in enumerate(self.helpers, 1) if ids[j::n]]
        for j, h in enumerate(started, 1):
            h.start(lambda share=ids[j::n]: run(share))
        run(ids[0::n])
        for h in started:
            h.wait()
        for i in ids:
            if i not in failed:
                try:
                    checks[i].__exit__(None, None, None)
                except Exception as e:
                    failed[i] = e
        return failed


def mujoco_step(model: mujoco.MjModel, data: mujoco.MjData, nstep: int, legacy: bool = True) -> None:
    """The MuJoCo calls of dm_control's `Physics.step(nstep)` (dm-control 1.0.50 `mujoco/engine.py:147-176`).
    Its default `legacy_step` finishes the step mj_step1 began, takes nstep - 1 whole steps, then mj_step1,
    so that the position- and velocity-dependent fields match the new state (RK4: nstep whole steps, then
    mj_step1); without it, nstep whole steps. Without dm_control's Python between the calls, two threads
    stepping physics side by side contend for the interpreter lock at three calls per env step, not at every
    line of its wrappers (about 10 µs of CPU less per walker-walk env step on two threads,
    docs/performance.md)."""
    if not legacy:
        mujoco.mj_step(model, data, nstep)
        return
    if model.opt.integrator != mujoco.mjtIntegrator.mjINT_RK4.value:
        mujoco.mj_step2(model, data)
        if nstep > 1:
            mujoco.mj_step(model, data, nstep - 1)
    else:
        mujoco.mj_step(model, data, nstep)
    mujoco.mj_step1(model, data)


class EnvBatch:
    """A fixed list of envs stepped together (module docstring). Envs without phased steps (other suites, envs
    in worker processes) step whole, one after the other."""

    def __init__(self, envs: list, nthread: int | None = None):
        self.envs = envs
        self.nthread = (
            nthread  # threads for the physics stepped side by side; None: chosen (module docstring)
        )
        self._physics: PhysicsThreads | None = None  # made at the first step that steps two envs or more
        self._index: dict[int, int] = {}  # id(physics) -> its simulation
        self._timed: list[float] = []  # CPU s of each of the first physics steps stepped alone (TIMED)
        self._threads: bool | None = None  # threads_pay's answer, once the steps are timed

    def threads_pay(self) -> bool:
        """Whether the physics of several envs step side by side on threads: always with `nthread`
        given; else once TIMED physics steps stepped alone took THREADED_PHYSICS_US each or more on average,
        in a process with two cores or more."""
        if self.nthread is not None:
            return True
        if self._threads is None and len(self._timed) >= TIMED:
            heavy = sum(self._timed) * 1e6 >= THREADED_PHYSICS_US * len(self._timed)
            self._threads = heavy and usable_cores() >= 2
        return bool(self._threads)

    def _batch(self) -> PhysicsThreads:
        if self._physics is None:
            physics = [env.physics for env in self.envs if hasattr(type(env), "phased_step")]
            self._index = {id(p): i for i, p in enumerate(physics)}
            self._physics = PhysicsThreads(physics, self.nthread)
        return self._physics

    def step(self, actions: list[tuple[int, np.ndarray]]) -> list[Step | BaseException]:
        """One step of env i with action a for each (i, a) of `actions` (each env once); their Steps in that
        order, or the exception an env's step raised."""
        out: dict[int, Step | BaseException] = {}
        asked: dict[int, tuple] = {}  # env -> (physics, n) it waits on
        steps: dict[int, PhasedStep] = {}
        for i, action in actions:
            steps[i] = phased(self.envs[i], action)
            self._advance(i, steps[i], None, asked, out)
        while asked:
            waiting: dict[int, list[int]] = {}  # n MuJoCo steps -> the envs that wait on them
            for i, (_, n) in asked.items():
                waiting.setdefault(n, []).append(i)
            failed = {}
            for n, envs in waiting.items():
                failed |= self._physics_step(envs, [asked[i][0] for i in envs], n)
            for envs in waiting.values():
                for i in envs:
                    del asked[i]
                    self._advance(i, steps[i], failed.get(i), asked, out)
        return [out[i] for i, _ in actions]

    def _physics_step(self, envs: list[int], physics: list, n: int) -> dict[int, BaseException]:
        """The physics of `envs` advanced n MuJoCo steps; what failed, by env."""
        if len(envs) == 1 or not self.threads_pay():  # alone: dm_control's own Physics.step
            failed = {}
            for i, p in zip(envs, physics):
                timing, start = len(self._timed) < TIMED, time.thread_time()
                try:
                    p.step(n)
                except Exception as e:
                    failed[i] = e
                if timing:
                    self._timed.append(time.thread_time() - start)
            return failed
        batch = self._batch()
        sims = [self._index[id(p)] for p in physics]
        return {envs[sims.index(s)]: e for s, e in batch.step(sims, n).items()}

    @staticmethod
    def _advance(i: int, step: PhasedStep, error, asked: dict, out: dict) -> None:
        """Env i's step on to its next physics step (into `asked`), or to its end (its Step into `out`);
        `error`: what its last physics step raised, raised inside its step."""
        try:
            asked[i] = step.send(None) if error is None else step.throw(error)
        except StopIteration as done:
            out[i] = done.value
        except Exception as e:  # its step failed: the others go on
            out[i] = e


def stepped_by(envs: list, hand_in: Callable[[int, np.ndarray], Step]) -> EnvBatch:
    """The DMC envs inside `envs` (their wrappers, pixels and perturbations, stay outside, where each env's
    owner steps them) made to hand each of their steps to `hand_in(i, action)`; the EnvBatch over them, which
    whoever takes the hand-ins steps (iqrl/multiseed/envs.py: the K-seed group's rounds)."""
    return EnvBatch([env.step_through(lambda action, i=i: hand_in(i, action)) for i, env in enumerate(envs)])
