"""An env in a worker process (run key `env_workers`): built and stepped in a child process, seen through a
proxy that the trainer cannot tell from the env itself.

dm_control's step (MuJoCo plus its Python wrapper) holds the interpreter lock, so the K-seed mode's seeds,
each in its own thread, step their envs one at a time. With each env in its own process, a seed's thread waits
on a pipe for the step (the wait releases the lock) and K envs step at once, one per core.

`EnvWorker(factory, args, kwargs)` builds `factory(*args, **kwargs)` in the child (`make_env` and its
arguments: the child builds the very env the process would have built) and forwards to it every method call
(reset, step, get_state, set_state, frame, ...) and attribute read: the spec attributes the trainer reads at
every step (obs_dim, obs_shape, act_dim, action_spec, task, action_repeat, episode_length, has_success,
control_timestep) are read once, when the child is ready; any other attribute is asked of the child
(a method is called there; `physics`, which cannot cross a process boundary, is one clear AttributeError).
Arguments and results cross the pipe pickled, and pickling keeps every bit of a float array, so an env in a
worker steps bitwise as the same env in the process (tests/test_env_worker.py). The env must not draw from
the process's global generators (random, numpy.random), which are the child's own there: DMC's and the other
suites' envs draw only from their own.

Steps after the first cross shared memory instead (`SharedStep`): the action in, the Step out (and the env's
true state after the step, where it has one: the state probe's `true_state()` after a step asks nothing of the
child), each side woken by a semaphore, with no pickle, no pipe and no poll. The first step crosses the pipe
and gives the layout (the action's and the observation's shape and dtype); a later action or Step that does
not fit it (another dtype, a reward that is no float), and any error, crosses the pipe as before, so every
result is the one the env returned, bit for bit and type for type. A pipe round trip cost about 130 µs of CPU
per walker-walk agent step on a 2-core EPYC, the shared one about 45 (docs/performance.md). Every request,
piped or shared, wakes the child through the same semaphore; the child, waiting on it, looks every POLL_S at
whether its parent still lives.

An exception in the child comes back as the same exception type with its message (the child's traceback
as a note); a child that dies is one EnvWorkerDied naming it and how it ended, and one that stops answering
(stopped by SIGSTOP or a debugger for STOPPED_GRACE_S, or silent on one request for ANSWER_TIMEOUT_S) is
killed and named in one EnvWorkerNotAnswering line, so that a run (a stop's checkpoint asks the env for its
state) ends with a reason instead of waiting for it without a word. The child ignores SIGINT and
SIGTERM (a Ctrl-C in the terminal reaches the whole process group; the trainer itself decides when to stop,
and its stop checkpoint still asks the env for its state), and exits when the parent closes the proxy or
when its end of the pipe closes (the parent ended, killed too): no orphans. Children start by `forkserver`
(a server process that imported the envs once forks each child; never a fork of a process with torch's
threads) where the platform has it, else by `spawn`.

It imports the standard library and numpy only; the envs' modules are imported in the child.
"""

from __future__ import annotations

import multiprocessing
import pickle
import signal
import struct
import threading
import time
import traceback
import weakref
from multiprocessing.shared_memory import SharedMemory

import numpy as np

from iqrl.envs.step import Step

#: The attributes read once when the child is ready (those the trainer, the agent's builder and the run's
#: provenance read; any other is asked of the child).
SPEC_ATTRIBUTES = (
    "task",
    "obs_dim",
    "obs_shape",
    "act_dim",
    "action_spec",
    "action_repeat",
    "episode_length",
    "has_success",
    "control_timestep",
)
#: What the forkserver imports once, so that each child forks with the envs' modules loaded.
PRELOAD = ["iqrl.envs.make"]
#: Seconds a closing child has to finish before it is terminated.
CLOSE_TIMEOUT_S = 5.0
#: Seconds a child may take to answer one request (its env's build, a step, its state) before it is taken for
#: hung: far above any suite's step or build (tens of seconds at most), so only a child that is stuck hits it.
ANSWER_TIMEOUT_S = 300.0
#: Seconds a child may stay stopped (SIGSTOP, a debugger) while a request waits for it.
STOPPED_GRACE_S = 10.0
#: How often a request that waits looks at its child.
POLL_S = 0.5


class EnvWorkerDied(RuntimeError):
    """The env's worker process ended while the run still needed it."""


class EnvWorkerNotAnswering(EnvWorkerDied):
    """The env's worker process stopped answering (stopped, or stuck): it was killed, its env is lost."""


def stopped(pid: int) -> bool:
    """Whether process `pid` is stopped (SIGSTOP, SIGTSTP, a debugger's trace stop): its state in
    /proc/<pid>/stat (Linux; False where that cannot be read)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] in ("T", "t")
    except (OSError, IndexError):
        return False


_context = None
_context_lock = threading.Lock()


def context():
    """The multiprocessing context of the workers: forkserver (its server preloading the envs), else spawn."""
    global _context
    with _context_lock:
        if _context is None:
            if "forkserver" in multiprocessing.get_all_start_methods():
                _context = multiprocessing.get_context("forkserver")
                _context.set_forkserver_preload(PRELOAD)
            else:
                _context = multiprocessing.get_context("spawn")
        return _context


# ---------------------------------------------------------------------- steps through shared memory
class SharedStep:
    """One worker's steps through shared memory (module docstring): a block with the request, the Step's
    flags and scalars (HEAD), the action, the observation and the env's true state after the step (where it
    has one: the state probe reads it at every step), laid out by the first step's action, Step and true
    state. The parent creates it (and unlinks it at the end); the child attaches to it by name."""

    # asked (1: a step waits), answer (SHARED: in the block; PIPED: on the pipe), terminated, truncated,
    # success, learner_reward given; reward, learner_reward. struct's bool and double come back as the
    # Python bool and float they were, every bit of them.
    HEAD = struct.Struct("<BB????xxdd")
    SHARED, PIPED = 1, 2
    ACTION_AT = 64  # the action, then the observation and the true state, each on the next 64-byte boundary

    def __init__(self, name: str | None, action, obs: np.ndarray, state: np.ndarray | None = None):
        self.scalar_action = isinstance(action, np.generic)  # given back as a numpy scalar, else an array
        action = np.asarray(action)
        obs_at = self.ACTION_AT + -(-action.nbytes // 64) * 64
        state_at = obs_at + -(-max(obs.nbytes, 1) // 64) * 64
        if name is None:
            self.memory = SharedMemory(create=True, size=state_at + (0 if state is None else state.nbytes))
        else:  # the child (its registration is the parent's resource tracker's, which the child shares)
            self.memory = SharedMemory(name=name)
        self.buf = self.memory.buf
        self.action = np.ndarray(action.shape, action.dtype, self.buf, self.ACTION_AT)
        self.obs = np.ndarray(obs.shape, obs.dtype, self.buf, obs_at)
        self.state = None if state is None else np.ndarray(state.shape, state.dtype, self.buf, state_at)

    def layout(self) -> tuple:
        """What the child needs to attach: the block's name and the first step's action, observation and true
        state (of their types, shapes and dtypes; None: the env has none)."""
        action = np.zeros_like(self.action)
        state = None if self.state is None else np.zeros_like(self.state)
        return self.memory.name, action[()] if self.scalar_action else action, np.zeros_like(self.obs), state

    @staticmethod
    def fits_step(step, obs: np.ndarray | None = None) -> bool:
        """Whether `step` is a Step whose fields come back identical, types included, from the block (of
        observation `obs`)."""
        return (
            type(step) is Step
            and type(step.obs) is np.ndarray
            and (obs is None or (step.obs.shape, step.obs.dtype) == (obs.shape, obs.dtype))
            and type(step.reward) is float
            and all(type(f) is bool for f in (step.terminated, step.truncated, step.success))
            and (step.learner_reward is None or type(step.learner_reward) is float)
        )

    @staticmethod
    def fits_type(action) -> bool:
        """Whether `action` comes back from the block as it is, type included: a plain array or a numpy
        scalar."""
        return type(action) is np.ndarray or isinstance(action, np.generic)

    def fits_action(self, action) -> bool:
        kind = isinstance(action, np.generic) if self.scalar_action else type(action) is np.ndarray
        return kind and (action.shape, action.dtype) == (self.action.shape, self.action.dtype)

    # the parent
    def ask(self, action) -> None:
        self.action[...] = action
        self.buf[0] = 1

    def piped(self) -> bool:
        return self.buf[1] == self.PIPED

    def answer(self) -> Step:
        _, _, terminated, truncated, success, learned, reward, learner = self.HEAD.unpack_from(self.buf)
        return Step(self.obs.copy(), reward, terminated, truncated, success, learner if learned else None)

    # the child
    def asked(self) -> bool:
        return self.buf[0] == 1

    def serve(self, env, conn) -> None:
        """The step asked, its Step into the block, or crossing the pipe (an error, a Step that does not
        fit)."""
        self.buf[0] = 0
        action = self.action[()] if self.scalar_action else self.action.copy()
        try:
            step = env.step(action)
            state = None if self.state is None else env.true_state()
        except Exception as e:
            conn.send(("error", _packed(e)))
            self.buf[1] = self.PIPED
            return
        if not self.fits_step(step, self.obs):
            conn.send(("ok", step))
            self.buf[1] = self.PIPED
            return
        self.obs[...] = step.obs
        if state is not None:
            self.state[...] = state
        learned = step.learner_reward is not None
        flags = step.terminated, step.truncated, step.success, learned
        self.HEAD.pack_into(
            self.buf, 0, 0, self.SHARED, *flags, step.reward, step.learner_reward if learned else 0.0
        )

    def close(self, unlink: bool) -> None:
        self.__dict__.pop("action", None)  # the views of the buffer first: it cannot close under them
        self.__dict__.pop("obs", None)
        self.__dict__.pop("state", None)
        self.buf.release()
        self.memory.close()
        if unlink:
            self.memory.unlink()


# ---------------------------------------------------------------------- the child
def _packed(e: BaseException) -> tuple:
    """An exception as it crosses the pipe: itself pickled where it pickles and unpickles, else its type's
    module, name and message; with the child's traceback."""
    tb = "".join(traceback.format_exception(e))
    try:
        data = pickle.dumps(e)
        pickle.loads(data)
        return ("pickled", data, tb)
    except Exception:
        return ("named", type(e).__module__, type(e).__qualname__, str(e), tb)


def _serve(conn, wake, done, factory, args, kwargs) -> None:
    """The child: build the env, send its spec attributes, then answer requests (each announced by `wake`: a
    shared step, answered in the block and by `done`, or a request on the pipe) until told to close, until
    the parent's end of the pipe closes or until the parent is gone."""
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, signal.SIG_IGN)
    try:
        env = factory(*args, **kwargs)
        spec = {name: getattr(env, name) for name in SPEC_ATTRIBUTES if hasattr(env, name)}
        conn.send(("ok", spec))
    except Exception as e:
        conn.send(("error", _packed(e)))
        return
    parent, shared = multiprocessing.parent_process(), None
    while True:
        if not wake.acquire(timeout=POLL_S):
            if parent is not None and not parent.is_alive():
                break
            continue
        if shared is not None and shared.asked():
            shared.serve(env, conn)
            done.release()
            continue
        try:
            op, name, call_args = conn.recv()
        except (EOFError, OSError):  # the parent is gone
            break
        try:
            if op == "share":
                shared = SharedStep(*call_args)
                result = None
            elif op == "call":
                result = getattr(env, name)(*call_args)
            elif op == "get":
                value = getattr(env, name)
                result = ("method", None) if callable(value) else ("value", value)
            elif op == "close":
                if callable(getattr(env, "close", None)):
                    env.close()
                conn.send(("ok", None))
                break
            else:
                raise ValueError(f"unknown request {op!r}")
            conn.send(("ok", result))
        except Exception as e:
            try:
                conn.send(("error", _packed(e)))
            except (EOFError, OSError):
                break
    if shared is not None:
        shared.close(unlink=False)
    conn.close()


# ---------------------------------------------------------------------- the parent
def _unpacked(packed: tuple, where: str) -> BaseException:
    if packed[0] == "pickled":
        e, tb = pickle.loads(packed[1]), packed[2]
    else:
        module, qualname, message, tb = packed[1:]
        e = None
        try:
            obj = __import__(module, fromlist=["_"])
            for part in qualname.split("."):
                obj = getattr(obj, part)
            e = obj(message)
        except Exception:
            pass
        if not isinstance(e, BaseException):
            e = RuntimeError(f"{module}.{qualname}: {message}")
    e.add_note(f"(raised in {where}; its traceback:)\n{tb.rstrip()}")
    return e


def _shutdown(process, conn, wake, shared: list) -> None:
    """Close a worker: ask it to close its env and end; terminate it after CLOSE_TIMEOUT_S, kill it after as
    long again; unlink its shared block (`shared`: none or one). Safe to call twice, and at the interpreter's
    exit (weakref.finalize)."""
    try:
        if process.is_alive():
            conn.send(("close", None, ()))
            wake.release()
            if conn.poll(CLOSE_TIMEOUT_S):
                conn.recv()
    except (EOFError, OSError, ValueError):
        pass
    finally:
        conn.close()
    process.join(CLOSE_TIMEOUT_S)
    if process.exitcode is None:
        process.terminate()
        process.join(CLOSE_TIMEOUT_S)
    if process.exitcode is None:
        process.kill()
        process.join()
    while shared:
        if block := shared.pop():
            block.close(unlink=True)


class EnvWorker:
    """The env `factory(*args, **kwargs)` in its own process, seen as the env itself (module docstring).
    One thread at a time uses it (each seed's trainer its own env); a lock keeps requests whole anyway."""

    def __init__(self, factory, args: tuple = (), kwargs: dict | None = None, name: str = "env"):
        ctx = context()
        conn, child = ctx.Pipe()
        wake, done = ctx.Semaphore(0), ctx.Semaphore(0)  # a request for the child; a shared step's answer
        process = ctx.Process(
            target=_serve, args=(child, wake, done, factory, args, kwargs or {}), name=name, daemon=True
        )
        process.start()
        child.close()  # the child's end lives in the child only: its death is EOF here
        d = self.__dict__
        d["_conn"], d["_process"], d["_name"], d["_lock"] = conn, process, name, threading.Lock()
        # the shared block after the first step: [SharedStep], or [False] where it could not be made
        d["_wake"], d["_done"], d["_shared"] = wake, done, []
        d["_fresh"] = [False]  # whether the shared block holds the true state after the last request (a step)
        d["_spec"] = {}
        d["_close"] = weakref.finalize(self, _shutdown, process, conn, wake, self._shared)
        d["_spec"] = self._answer()

    @property
    def pid(self) -> int:
        return self._process.pid

    def _where(self) -> str:
        return f"the env worker {self._name} (pid {self._process.pid})"

    def _died(self) -> EnvWorkerDied:
        self._process.join(1.0)
        code = self._process.exitcode
        if code is None:
            how = "closed its pipe"
        elif code < 0:
            how = f"was killed by {signal.Signals(-code).name}"
        else:
            how = f"exited with code {code}"
        return EnvWorkerDied(
            f"{self._where()} {how}: its env is lost; the run resumes from its last checkpoint when "
            "started again"
        )

    def _wait(self, what: str, answered=None) -> None:
        """Until the child's answer (or its end) is there: on the pipe, or `answered(timeout)` (a shared
        step's); EnvWorkerDied when the child ended, EnvWorkerNotAnswering, the child killed, when it stays
        stopped for STOPPED_GRACE_S or silent for ANSWER_TIMEOUT_S."""
        answered = answered or self._conn.poll
        start = time.monotonic()
        stopped_since = None
        while not answered(POLL_S):
            if answered is not self._conn.poll and not self._process.is_alive():
                raise self._died()
            now = time.monotonic()
            if not stopped(self._process.pid):
                stopped_since = None
            elif stopped_since is None:
                stopped_since = now
            if (stopped_since is not None and now - stopped_since >= STOPPED_GRACE_S) or (
                now - start >= ANSWER_TIMEOUT_S
            ):
                how = "is stopped (SIGSTOP or a debugger)" if stopped_since is not None else "is stuck"
                self._process.kill()
                self._close()
                raise EnvWorkerNotAnswering(
                    f"{self._where()} {how}: it did not answer {what} in {now - start:.0f} s and was killed; "
                    "its env is lost; the run resumes from its last checkpoint when started again"
                )

    def _answer(self, what: str = "its start"):
        self._wait(what)
        try:
            status, payload = self._conn.recv()
        except (EOFError, OSError):
            raise self._died() from None
        if status == "error":
            raise _unpacked(payload, self._where())
        return payload

    def _request(self, op: str, name: str, args: tuple = ()):
        with self._lock:
            return self._request_held(op, name, args)

    def _request_held(self, op: str, name: str, args: tuple = ()):
        if not self._close.alive:
            raise EnvWorkerDied(f"{self._where()} was closed; it cannot {op} {name!r}")
        return self._piped(op, name, args)

    def _piped(self, op: str, name: str, args: tuple = ()):
        """A request over the pipe and its answer (the lock held)."""
        self._fresh[0] = False
        try:
            self._conn.send((op, name, args))
        except (EOFError, OSError):
            raise self._died() from None
        self._wake.release()
        return self._answer(f"{name!r}")

    # the calls of every step, spelled out (no attribute request first)
    def reset(self):
        return self._request("call", "reset")

    def step(self, action):
        """The env's step: through the shared block where the action fits it (module docstring), else over
        the pipe; the first step's action and Step lay the block out."""
        with self._lock:
            shared = self._shared[0] if self._shared and self._close.alive else None
            if not shared or not shared.fits_action(action):
                step = self._request_held("call", "step", (action,))
                if not self._shared and SharedStep.fits_type(action) and SharedStep.fits_step(step):
                    self._share(action, step)
                return step
            shared.ask(action)
            self._wake.release()
            self._wait("'step'", lambda timeout: self._done.acquire(timeout=timeout))
            self._fresh[0] = not shared.piped() and shared.state is not None
            return self._answer("'step'") if shared.piped() else shared.answer()

    def _share(self, action, step) -> None:
        """The shared block laid out by this action and Step (and the env's true state, asked once), and the
        child attached to it; where shared memory fails (no /dev/shm, say), every step keeps to the pipe."""
        try:
            state = self._piped("call", "true_state")
        except AttributeError:  # an env without one
            state = None
        try:
            shared = SharedStep(None, action, step.obs, state if isinstance(state, np.ndarray) else None)
        except OSError:
            self._shared.append(False)
            return
        self._shared.append(shared)
        try:
            self._piped("share", "share", shared.layout())
        except OSError:  # the child could not attach (its own error, come back as raised there)
            self._shared[0] = False
            shared.close(unlink=True)

    def get_state(self) -> dict:
        return self._request("call", "get_state")

    def set_state(self, state: dict) -> None:
        return self._request("call", "set_state", (state,))

    def true_state(self):
        """The env's true state: after a step through the shared block, the one the child wrote there beside
        the Step (no round trip); else asked over the pipe."""
        with self._lock:
            if self._fresh[0]:
                return self._shared[0].state.copy()
            return self._request_held("call", "true_state")

    def __getattr__(self, name: str):
        spec = self.__dict__.get("_spec", {})
        if name in spec:
            return spec[name]
        if name.startswith("_") or "_conn" not in self.__dict__:
            raise AttributeError(name)
        if name == "physics":
            raise AttributeError(
                f"{self._where()} holds the env's physics, which stays in that process (env_workers=true); "
                "read it from an env of this process"
            )
        kind, value = self._request("get", name)
        if kind == "method":
            return lambda *args: self._request("call", name, args)
        return value

    def __setattr__(self, name: str, value) -> None:
        raise AttributeError(
            f"{self._where()}: its env's attributes are read-only from this process ({name})"
        )

    def close(self) -> None:
        """Close the env and end its process (again: nothing). A request under way in another thread has
        CLOSE_TIMEOUT_S to finish; the process ends after it anyway (an abort: that request fails)."""
        held = self._lock.acquire(timeout=CLOSE_TIMEOUT_S)
        try:
            self._close()
        finally:
            if held:
                self._lock.release()

    def __repr__(self) -> str:
        return (
            f"EnvWorker({self._name}, pid {self._process.pid}, {'open' if self._close.alive else 'closed'})"
        )
