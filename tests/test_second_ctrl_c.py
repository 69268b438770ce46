"""docs/run-folder.md: a second Ctrl-C aborts at once. While the loop waits for an evaluation beside training
(iqrl/loop/beside.py), it ends the evaluation's thread and the process in one line, exit 3, status.json
`interrupted` at the last checkpoint's env step saying so (no traceback, no SIGABRT of a thread left in
torch's code at the interpreter's exit), and the re-run resumes to the uninterrupted run's results."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from iqrl.loop.beside import wait_on
from iqrl.runfolder.exits import EXIT_INTERRUPTED, EXIT_OK
from iqrl.runfolder.layout import TIME_COLUMNS
from iqrl.train import main

from conftest import sigint_as_terminal, tiny_argv

ROOT = Path(__file__).resolve().parents[1]
SHORT = ["episode_length=100", "seed_steps=100", "eval_every=200", "checkpoint_every=100", "eval_beside=true"]

# The run of `python -m iqrl.train`, whose evaluation beside training at env step 200 never ends by itself
# (its episodes start again until it is stopped) and which says when its loop waits for it: at the
# checkpoint of that same step.
CHILD = """
import sys
from iqrl.loop import beside
from iqrl.train import main, stop_on_signals

evaluate, result = beside.eval_returns, beside.EvaluationBeside.result

def endless(*args):
    while True:
        evaluate(*args)

def evaluating(envs, agent, episodes, batched, on_frame=None, probe=False):
    run = endless if agent.evaluating_at == 200 else evaluate
    return run(envs, agent, episodes, batched, on_frame, probe)

def waiting(self, agent):
    if self.env_step == 200:
        print("WAITING", file=sys.stderr, flush=True)
    return result(self, agent)

start = beside.EvaluationBeside.__init__

def init(self, agent, envs, episodes, batched, env_step, probe=False):
    agent.evaluating_at = env_step  # copied into the snapshot
    start(self, agent, envs, episodes, batched, env_step, probe)

beside.eval_returns = evaluating
beside.EvaluationBeside.result, beside.EvaluationBeside.__init__ = waiting, init
sys.exit(main(sys.argv[1:], should_stop=stop_on_signals("iqrl.train")))
"""


def results(run: Path) -> dict:
    out = {}
    for name in ("eval.csv", "train.csv"):
        with open(run / name) as f:
            out[name] = [{k: v for k, v in r.items() if k not in TIME_COLUMNS} for r in csv.DictReader(f)]
    return out


def read_until(stream, text: str) -> list[str]:
    lines = []
    for line in stream:
        lines.append(line)
        if text in line:
            return lines
    raise AssertionError(f"the run ended before {text!r}:\n{''.join(lines)}")


def test_a_second_ctrl_c_while_waiting_for_an_evaluation_beside_exits_in_one_line(tmp_path):
    run, reference = tmp_path / "run", tmp_path / "ref"
    argv = tiny_argv("td3", run, steps=400, extra=SHORT)
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    env["OMP_NUM_THREADS"] = "1"  # this process's thread count (conftest): CPU float sums depend on it
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, *argv],
        env={**env, "PYTHONUNBUFFERED": "1"},
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=sigint_as_terminal,  # a suite started from a script would leave the child's SIGINT ignored
    )
    hang_guard = threading.Timer(300, child.kill)  # a run that never gets there fails read_until, no hang
    hang_guard.start()
    try:
        read_until(child.stderr, "WAITING")
        child.send_signal(signal.SIGINT)
        read_until(child.stderr, "press Ctrl-C again to abort now")
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=120)  # a hang guard far above the need
        assert child.returncode == EXIT_INTERRUPTED, err
    finally:
        hang_guard.cancel()
        child.kill()
    assert "Traceback" not in err and "terminate called" not in err, err
    assert err.strip().splitlines() == [
        "interrupted: aborted by a second Ctrl-C at env step 200; a re-run resumes from its checkpoint at "
        "env step 100"
    ]
    status = json.loads((run / "status.json").read_text())
    assert (status["state"], status["env_step"]) == ("interrupted", 100)
    assert status["error"].startswith("aborted by a second Ctrl-C")
    assert main(argv) == EXIT_OK
    assert main(tiny_argv("td3", reference, steps=400, extra=SHORT)) == EXIT_OK
    assert results(run) == results(reference)


def test_a_signal_the_evaluations_thread_receives_reaches_the_loop_waiting_on_it():
    """The kernel delivers a process's Ctrl-C to any thread; one delivered to the evaluation's (busy) thread
    only marks the Python handler due, which runs when the main thread next runs Python: the loop's wait on
    the evaluation wakes for it (`wait_on`), where an unbounded wait slept until the evaluation ended (the
    hang of the test above when the evaluation's thread took the signal)."""
    handled = []
    finished = threading.Event()
    gave_up = []

    def evaluation():  # busy in Python until the handler ran, or 10 s
        deadline = time.monotonic() + 10
        while not handled and time.monotonic() < deadline:
            pass
        gave_up.append(not handled)
        finished.set()

    old = signal.signal(signal.SIGUSR1, lambda signum, frame: handled.append(signum))
    try:
        thread = threading.Thread(target=evaluation)
        thread.start()
        signal.pthread_kill(thread.ident, signal.SIGUSR1)
        wait_on(finished)
        thread.join()
    finally:
        signal.signal(signal.SIGUSR1, old)
    assert handled == [signal.SIGUSR1] and gave_up == [False]
