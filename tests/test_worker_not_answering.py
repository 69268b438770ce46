"""An env worker that stops answering (SIGSTOP, a debugger, a step that never returns) is named in one line
within a bounded wait, and killed (iqrl/envs/workers.py): the run fails with that line instead of hanging
without a word (a stop's checkpoint asks the env for its state), and its re-run resumes."""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import signal
import threading

import numpy as np
import pytest

from iqrl.envs import workers
from iqrl.envs.make import make_env
from iqrl.envs.workers import EnvWorker, EnvWorkerNotAnswering
from iqrl.runfolder.exits import EXIT_FAILED, EXIT_OK
from iqrl.train import main

from conftest import stop_after_steps, tiny_argv


@pytest.fixture
def short_waits(monkeypatch):
    monkeypatch.setattr(workers, "STOPPED_GRACE_S", 1.0)
    monkeypatch.setattr(workers, "POLL_S", 0.1)


def outcome(call):
    """What call() returned or raised, run in a thread: a call that never returns (the behaviour this file
    excludes) fails the test instead of hanging it."""
    raised = []

    def run():
        try:
            raised.append(call())
        except BaseException as e:
            raised.append(e)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(120)  # far beyond the waits above: only a hang reaches it
    assert not thread.is_alive(), "the request still waits for the worker"
    return raised[0]


class Stuck:
    """An env whose step never returns (a child that hangs while running)."""

    def __init__(self):
        self.obs_dim, self.action_repeat = 1, 1

    def reset(self):
        return np.zeros(1, np.float32)

    def step(self, action):
        threading.Event().wait()


@pytest.mark.parametrize("stepped", [False, True], ids=["before", "after a shared step"])
def test_a_stopped_worker_is_named_and_killed(short_waits, stepped):
    env = EnvWorker(make_env, ("cartpole-balance", 1, 2, 40), name="cartpole-balance seed 1")
    env.reset()
    for _ in range(2 * stepped):  # then the step waits on the shared block's answer
        env.step(np.zeros(1))
    os.kill(env.pid, signal.SIGSTOP)
    e = outcome(lambda: env.step(np.zeros(1)))
    assert isinstance(e, EnvWorkerNotAnswering)
    assert re.fullmatch(
        rf"the env worker cartpole-balance seed 1 \(pid {env.pid}\) is stopped \(SIGSTOP or a debugger\): it "
        r"did not answer 'step' in \d+ s and was killed; its env is lost; the run resumes from its last "
        r"checkpoint when started again",
        str(e),
    ), str(e)
    assert env._process.exitcode == -signal.SIGKILL
    env.close()


def test_a_worker_that_never_answers_is_named_and_killed(short_waits, monkeypatch):
    env = EnvWorker(Stuck, name="stuck")
    env.reset()
    monkeypatch.setattr(workers, "ANSWER_TIMEOUT_S", 2.0)  # (the child's start imports this file: longer)
    e = outcome(lambda: env.step(0))
    assert isinstance(e, EnvWorkerNotAnswering) and " is stuck: it did not answer 'step' in " in str(e), e
    assert env._process.exitcode == -signal.SIGKILL


def test_a_stop_with_a_stopped_worker_fails_in_one_line_and_resumes(short_waits, tmp_path, capsys):
    """SIGTERM (a stop) while the training env's worker is stopped: the stop's checkpoint asks the worker for
    its state; the run fails in one line naming it, status.json says so, and the re-run resumes."""
    out = tmp_path / "run"
    argv = tiny_argv("td3", out, steps=400, extra=["env_workers=true", "checkpoint_every=100"])
    after = stop_after_steps(70)  # past the checkpoint at env step 100

    def stop() -> bool:
        if not after():
            return False
        for p in multiprocessing.active_children():
            if p.name == "cartpole-balance seed 1":
                os.kill(p.pid, signal.SIGSTOP)
        return True

    assert outcome(lambda: main(argv, should_stop=stop)) == EXIT_FAILED
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and re.fullmatch(
        r"error: run failed: EnvWorkerNotAnswering: the env worker cartpole-balance seed 1 \(pid \d+\) is "
        r"stopped \(SIGSTOP or a debugger\): it did not answer 'get_state' in \d+ s and was killed; .*",
        err[0],
    ), err
    status = json.loads((out / "status.json").read_text())
    assert status["state"] == "failed" and "EnvWorkerNotAnswering" in status["error"]
    assert main(argv) == EXIT_OK
