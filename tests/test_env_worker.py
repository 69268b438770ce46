"""An env in a worker process (run key env_workers, iqrl/envs/workers.py): bitwise the env of this
process, its errors as they are raised there, one clear error when it dies, and no process left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from iqrl.envs.make import make_env
from iqrl.envs.perturb import Perturbations
from iqrl.envs.step import Step
from iqrl.envs.workers import EnvWorker, EnvWorkerDied

from conftest import sigint_as_terminal, wait_for

ROOT = Path(__file__).resolve().parents[1]
# a perturbed env: the task's random stream and the perturbations' own generator both cross the pipe
ARGS = ("walker-walk", 3, 2, 40, Perturbations(obs_noise=0.1, sticky_actions=0.3))


def test_an_env_in_a_worker_steps_bitwise_as_the_env_in_this_process():
    here, there = make_env(*ARGS), EnvWorker(make_env, ARGS, name="walker-walk seed 3")
    try:
        for name in (
            "obs_dim",
            "obs_shape",
            "act_dim",
            "action_spec",
            "task",
            "action_repeat",
            "has_success",
        ):
            assert getattr(there, name) == getattr(here, name), name
        assert there.p == here.p  # an attribute outside the spec: asked of the child
        rng = np.random.default_rng(0)
        saved = there.get_state()
        for _ in range(2):  # the second time from the state saved before the first reset
            assert np.array_equal(there.reset(), here.reset())
            for _ in range(50):  # past the end of an episode of 20 agent steps
                action = here.action_spec.sample(rng)
                a, b = there.step(action), here.step(action)
                assert np.array_equal(a.obs, b.obs) and a.obs.dtype == b.obs.dtype
                assert (a.reward, a.terminated, a.truncated) == (b.reward, b.terminated, b.truncated)
                assert np.array_equal(there.true_state(), here.true_state())  # the state probe's targets
                if b.truncated:
                    assert np.array_equal(there.reset(), here.reset())
            there.set_state(saved)
            here.set_state(saved)
        # an error in the child is the same exception, with its message and the child's traceback as a note
        with pytest.raises(KeyError) as worker_error:
            there.set_state({})
        with pytest.raises(KeyError) as own_error:
            here.set_state({})
        assert str(worker_error.value) == str(own_error.value)
        assert "raised in the env worker walker-walk seed 3" in worker_error.value.__notes__[0]
        with pytest.raises(AttributeError, match="physics, which stays in that process"):
            _ = there.physics
        assert np.array_equal(there.step(np.zeros(6)).obs, here.step(np.zeros(6)).obs)  # usable after errors
    finally:
        there.close()
    there.close()  # a second time: nothing
    with pytest.raises(EnvWorkerDied, match="was closed"):
        there.reset()


class Scripted:
    """An env whose Steps the action scripts: fields of every type a Step may carry, a Step the shared block
    cannot hold (a numpy bool, another shape), an error; its observation says the action's type (an array or
    not), which must reach the env as it was given."""

    obs_dim, action_repeat = 2, 1

    def reset(self):
        return np.zeros(2, np.float32)

    def step(self, action):
        a = int(np.asarray(action).ravel()[0])
        if a == 9:
            raise ValueError("no step 9")
        if a == 7:
            return Step(np.full(2, 0.7, np.float32), 1.5, np.bool_(True), False)
        if a == 8:
            return Step(np.zeros(3, np.float32), 0.1, False, False)
        learner = None if a % 2 else a / 7
        obs = np.array([a + 0.1, type(action) is np.ndarray], np.float32)
        return Step(obs, a * 0.3 + 1e-17, a == 3, a == 4, a == 5, learner)


def same(a, b) -> bool:
    """Two Steps with equal fields of equal types (the observation's dtype and bits too)."""
    fields = ("reward", "terminated", "truncated", "success", "learner_reward")
    return (
        np.array_equal(a.obs, b.obs)
        and a.obs.dtype == b.obs.dtype
        and all(getattr(a, f) == getattr(b, f) and type(getattr(a, f)) is type(getattr(b, f)) for f in fields)
    )


@pytest.mark.parametrize("kind", ["array", "0-d array", "scalar"])
def test_steps_after_the_first_cross_shared_memory_as_the_env_returned_them(kind):
    """After the first step (over the pipe, which lays the block out), steps cross shared memory: each Step is
    the one the env returned, field for field and type for type; a Step the block cannot hold, an action of
    another dtype and an error cross the pipe as before; the block is gone once the worker closes."""
    here, there = Scripted(), EnvWorker(Scripted, name="scripted")
    action = {
        "array": lambda a: np.full(3, a, np.float32),
        "0-d array": lambda a: np.array(a, np.int64),
        "scalar": np.int64,
    }[kind]
    try:
        assert same(there.step(action(1)), here.step(action(1)))
        (shared,) = there._shared
        name = shared.memory.name
        assert (Path("/dev/shm") / name).exists()
        for a in (0, 2, 3, 4, 5, 6, 1):
            assert same(there.step(action(a)), here.step(action(a))), a
            assert not shared.piped()  # in the block
        for a in (7, 8):
            assert same(there.step(action(a)), here.step(action(a))), a
            assert shared.piped()  # on the pipe
        other = {"array": np.full(3, 2, np.float64), "0-d array": np.int64(2), "scalar": 2}[kind]  # piped
        assert same(there.step(other), here.step(other))
        with pytest.raises(ValueError, match="no step 9") as error:
            there.step(action(9))
        assert "raised in the env worker scripted" in error.value.__notes__[0]
        assert same(there.step(action(2)), here.step(action(2))) and not shared.piped()
    finally:
        there.close()
    assert not (Path("/dev/shm") / name).exists()


def test_the_true_state_after_a_shared_step_comes_from_the_block_without_a_round_trip(monkeypatch):
    """The child writes the env's true state beside each shared step's Step: reading it after such a step
    asks nothing over the pipe and gives the env's own; after the first step (piped, which lays the block
    out) and after a reset it is asked over the pipe."""
    piped = []
    original = EnvWorker._piped
    monkeypatch.setattr(EnvWorker, "_piped", lambda self, *a: piped.append(a[1]) or original(self, *a))
    here, there = make_env(*ARGS), EnvWorker(make_env, ARGS, name="walker-walk seed 3")
    try:
        assert np.array_equal(there.reset(), here.reset())
        for a in (np.zeros(6), np.ones(6), -np.ones(6)):
            there.step(a), here.step(a)
            assert np.array_equal(there.true_state(), here.true_state())
        assert piped == ["reset", "step", "true_state", "share", "true_state"]  # the first step's alone
        assert np.array_equal(there.reset(), here.reset())
        assert np.array_equal(there.true_state(), here.true_state()) and piped[-2:] == ["reset", "true_state"]
    finally:
        there.close()


@pytest.mark.parametrize("stepped", [False, True], ids=["before", "after a shared step"])
def test_a_worker_that_dies_is_one_clear_error(stepped):
    env = EnvWorker(make_env, ARGS, name="walker-walk seed 3")
    env.reset()
    for _ in range(2 * stepped):  # the second step crosses the shared block: its wait sees the death too
        env.step(np.zeros(6))
    os.kill(env.pid, signal.SIGKILL)
    with pytest.raises(
        EnvWorkerDied, match=r"env worker walker-walk seed 3 \(pid \d+\) was killed by SIGKILL"
    ):
        env.step(np.zeros(6))
    env.close()


PARENT = textwrap.dedent(
    """
    import sys
    import numpy as np
    from iqrl.envs.workers import EnvWorker
    from iqrl.envs.make import make_env

    if __name__ == "__main__":
        env = EnvWorker(make_env, ("cartpole-balance", 0, 2, 1000))
        env.reset()
        try:  # entered before "ready": the test's Ctrl-C may come the moment the line is out
            print("ready", flush=True)
            if sys.stdin.readline().strip() == "raise":
                raise RuntimeError("the run failed")
        except KeyboardInterrupt:  # the worker ignored it: it still steps
            env.step(np.zeros(1))
            print("stepped after ctrl-c", flush=True)
            raise
    """
)


def descendants(pid: int) -> set[int]:
    """The processes below `pid` (its children, theirs, ...), from /proc."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, todo = set(), [pid]
    while todo:
        p = todo.pop()
        kids = {c for c, pp in parents.items() if pp == p}
        found |= kids
        todo.extend(kids)
    return found


def gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z"  # a zombie
    except OSError:
        return True


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process tree from /proc")
@pytest.mark.parametrize("end", ["exception", "sigkill", "ctrl-c"])
def test_no_worker_outlives_its_parent(end, tmp_path):
    """The parent fails with an exception, is SIGKILLed, or gets a terminal's Ctrl-C (SIGINT to the whole
    process group: the worker ignores it and still steps): every process it started ends with it."""
    script = tmp_path / "parent.py"
    script.write_text(PARENT)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    p = subprocess.Popen(
        [sys.executable, str(script)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
        preexec_fn=sigint_as_terminal,  # as a terminal starts it, though pytest runs in the background
    )
    try:
        assert p.stdout.readline().strip() == "ready", p.stderr.read()
        started = descendants(p.pid)
        assert started  # the forkserver and the worker
        if end == "exception":
            p.stdin.write("raise\n")
            p.stdin.flush()
        elif end == "sigkill":
            p.kill()
        else:
            os.killpg(p.pid, signal.SIGINT)
        out, err = p.communicate(timeout=60)
        if end == "exception":
            assert "RuntimeError: the run failed" in err
        if end == "ctrl-c":
            assert "stepped after ctrl-c" in out, err
        wait_for(lambda: all(gone(pid) for pid in started), what="the worker processes ending", hang_s=60)
    finally:
        if p.poll() is None:
            p.kill()
