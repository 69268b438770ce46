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

It imports the standard library only; the envs' modules are imported in the child.
"""

from __future__ import annotations

import multiprocessing
import pickle
import signal
import threading
import time
import traceback
import weakref

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


def _serve(conn, factory, args, kwargs) -> None:
    """The child: build the env, send its spec attributes, then answer requests until told to close or until
    the parent's end of the pipe closes."""
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, signal.SIG_IGN)
    try:
        env = factory(*args, **kwargs)
        spec = {name: getattr(env, name) for name in SPEC_ATTRIBUTES if hasattr(env, name)}
        conn.send(("ok", spec))
    except Exception as e:
        conn.send(("error", _packed(e)))
        return
    while True:
        try:
            op, name, call_args = conn.recv()
        except (EOFError, OSError):  # the parent is gone
            break
        try:
            if op == "call":
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


def _shutdown(process, conn) -> None:
    """Close a worker: ask it to close its env and end; terminate it after CLOSE_TIMEOUT_S, kill it after as
    long again. Safe to call twice, and at the interpreter's exit (weakref.finalize)."""
    try:
        if process.is_alive():
            conn.send(("close", None, ()))
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


class EnvWorker:
    """The env `factory(*args, **kwargs)` in its own process, seen as the env itself (module docstring).
    One thread at a time uses it (each seed's trainer its own env); a lock keeps requests whole anyway."""

    def __init__(self, factory, args: tuple = (), kwargs: dict | None = None, name: str = "env"):
        ctx = context()
        conn, child = ctx.Pipe()
        process = ctx.Process(
            target=_serve, args=(child, factory, args, kwargs or {}), name=name, daemon=True
        )
        process.start()
        child.close()  # the child's end lives in the child only: its death is EOF here
        d = self.__dict__
        d["_conn"], d["_process"], d["_name"], d["_lock"] = conn, process, name, threading.Lock()
        d["_spec"] = {}
        d["_close"] = weakref.finalize(self, _shutdown, process, conn)
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

    def _wait(self, what: str) -> None:
        """Until the child's answer (or its end) is there; EnvWorkerNotAnswering, the child killed, when it
        stays stopped for STOPPED_GRACE_S or silent for ANSWER_TIMEOUT_S."""
        start = time.monotonic()
        stopped_since = None
        while not self._conn.poll(POLL_S):
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
            if not self._close.alive:
                raise EnvWorkerDied(f"{self._where()} was closed; it cannot {op} {name!r}")
            try:
                self._conn.send((op, name, args))
            except (EOFError, OSError):
                raise self._died() from None
            return self._answer(f"{name!r}")

    # the calls of every step, spelled out (no attribute request first)
    def reset(self):
        return self._request("call", "reset")

    def step(self, action):
        return self._request("call", "step", (action,))

    def get_state(self) -> dict:
        return self._request("call", "get_state")

    def set_state(self, state: dict) -> None:
        return self._request("call", "set_state", (state,))

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
