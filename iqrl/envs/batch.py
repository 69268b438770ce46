"""Envs stepped together: their physics in one call into MuJoCo where its threads pay, each env's own Python
around it.

An env whose class has `phased_step` (the DMC envs and the wrappers over them: iqrl/envs/step.py `phased`)
hands out its physics steps. `EnvBatch.step` runs the phased steps of several envs side by side in the calling
thread, and each time all of them wait on their physics, steps those physics (where that pays, below) in one
call of MuJoCo's `mujoco.batch.Batch` (its simulations on a thread pool of its own, the interpreter lock
released): no Python round trip per env per physics step, and no pipe. dm_control's task code
(`before_step`, rewards, observations, terminations) and the harness's wrappers run in the calling thread
between those calls.

Where MuJoCo's threads pay. Handing the physics to MuJoCo's threads costs copies of each env's state in
and out and the pool's wake-ups, about 20-40 µs of CPU per env step on a 2-core EPYC (docs/performance.md),
which only a physics of some tens of µs per env step, run on two cores or more, pays back in wall time (and
stepped each alone, in the calling thread, the physics costs the least CPU). So an EnvBatch left to choose
(`nthread=None`) steps its first TIMED physics steps alone, timing them in CPU time, and batches from then on
only where they took THREADED_PHYSICS_US each or more and the process has two cores (walker-walk's ten MuJoCo
steps, 80 µs there: batched; cheetah-run's one, 7 µs: alone). Either way each env's numbers are the same, so
the choice changes speed only.

Bit for bit. MuJoCo's batch steps each simulation as a loop over one MjData would ("bit-identical ... at any
thread count", mujoco/batch.py in MuJoCo 3.17). Each call copies an env's whole integration state
(mjSTATE_INTEGRATION: time, positions, velocities, activations, warm start, controls, applied forces, mocap,
user data) into its row, runs n calls of mj_step and then the position and velocity stages (mjSTAGE_VEL:
dm_control's legacy step ends with mj_step1, so its observations see the new state), and copies the
simulation's whole MjData back into the env's own (`Batch.get_data` of a persistent batch), where dm_control's
task code and the renderer read it; new warnings raise dm_control's PhysicsError, as its `Physics.step` does.
So an env's numbers are those it has stepped alone (tests/test_env_batch.py: every task of the suite, resets
and restored states included), and a batch of one env is stepped alone, by dm_control's `Physics.step`.

A failure stays with its env: `step` returns the exception an env's step raised in place of its Step, and
steps the others on. A batch is used by one thread at a time (mujoco.batch's rule).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import mujoco
import numpy as np
from mujoco import batch as mujoco_batch

from iqrl.envs.step import PhasedStep, Step, phased

INTEGRATION = mujoco.mjtState.mjSTATE_INTEGRATION.value
#: CPU µs of one env's physics step (dm_control's Physics.step of its n MuJoCo steps) from which a batch left
#: to choose steps its physics on MuJoCo's threads (module docstring), timed over its first TIMED steps
THREADED_PHYSICS_US = 50.0
TIMED = 16


def usable_cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class PhysicsBatch:
    """The physics (dm_control `Physics`) of envs of one task, stepped in one native call (module docstring).
    `nthread`: MuJoCo's threads for the call, the caller's included (None: one per simulation, at most the
    usable cores)."""

    def __init__(self, physics: list, nthread: int | None = None):
        self.physics = physics
        n = len(physics)
        nthread = min(n, usable_cores()) if nthread is None else nthread
        self.batch = mujoco_batch.Batch(physics[0].model.ptr, n, nthread, persistent=True)
        self.batch.set_models([p.model.ptr for p in physics])  # each env's own model, as it steps alone

    def step(self, ids: list[int], nstep: int) -> dict[int, BaseException]:
        """Simulations `ids` advanced by `nstep` MuJoCo steps as dm_control's `Physics.step(nstep)` advances
        each; the exception of each simulation that failed (MuJoCo's error, which leaves its state as it was;
        a PhysicsError of dm_control's check)."""
        legacy = {self.physics[i].legacy_step for i in ids}
        if len(legacy) != 1:
            raise ValueError("a batch's physics step one way: dm_control's legacy step for all, or for none")
        # dm_control's legacy step ends with mj_step1, the position and velocity stages at the new state
        stage = mujoco.mjtStage.mjSTAGE_VEL if legacy.pop() else mujoco.mjtStage.mjSTAGE_NONE
        checks = {}
        for i in ids:
            p = self.physics[i]
            checks[i] = p.check_invalid_state()  # dm_control's PhysicsError on new warnings
            checks[i].__enter__()
            mujoco.mj_getState(p.model.ptr, p.data.ptr, self.batch.state[i], INTEGRATION)
        failed: dict[int, BaseException] = {}
        try:
            self.batch.step(np.asarray(ids, np.int32), nstep, stage)
        except mujoco_batch.SimulationError as e:  # MuJoCo's error in some: the others ran to completion
            failed = {int(i): mujoco.FatalError(self.batch.error(int(i))) for i in e.ids}
        for i in ids:
            if i not in failed:
                self.batch.get_data(i, self.physics[i].data.ptr)
            try:
                checks[i].__exit__(None, None, None)
            except Exception as e:
                failed.setdefault(i, e)
        return failed


class EnvBatch:
    """A fixed list of envs stepped together (module docstring). Envs without phased steps (other suites, envs
    in worker processes) step whole, one after the other."""

    def __init__(self, envs: list, nthread: int | None = None):
        self.envs = envs
        self.nthread = nthread  # MuJoCo's threads for the batched physics; None: chosen (module docstring)
        self._physics: PhysicsBatch | None = None  # made at the first step that batches two envs or more
        self._index: dict[int, int] = {}  # id(physics) -> its simulation
        self._timed: list[float] = []  # CPU s of each of the first physics steps stepped alone (TIMED)
        self._threads: bool | None = None  # threads_pay's answer, once the steps are timed

    def threads_pay(self) -> bool:
        """Whether the physics of several envs step in one call on MuJoCo's threads: always with `nthread`
        given; else once TIMED physics steps stepped alone took THREADED_PHYSICS_US each or more on average,
        in a process with two cores or more."""
        if self.nthread is not None:
            return True
        if self._threads is None and len(self._timed) >= TIMED:
            heavy = sum(self._timed) * 1e6 >= THREADED_PHYSICS_US * len(self._timed)
            self._threads = heavy and usable_cores() >= 2
        return bool(self._threads)

    def _batch(self) -> PhysicsBatch:
        if self._physics is None:
            physics = [env.physics for env in self.envs if hasattr(type(env), "phased_step")]
            self._index = {id(p): i for i, p in enumerate(physics)}
            self._physics = PhysicsBatch(physics, self.nthread)
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
