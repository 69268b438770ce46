"""Evaluation beside training (run key `eval_beside`): an evaluation runs in a thread of its own on a snapshot
of the agent, while training goes on.

The snapshot is a deep copy of the agent taken where the loop would have evaluated: its own networks (training
moves the agent's, not the copy's), its own generators, eager acting (`Updater.act` is eager in every updater
but the K-seed group's, which acts in rounds of its seeds: such a run evaluates in line). It evaluates in the
run's evaluation envs, which training never steps, from the agent's evaluation stream; when it ends, the
stream it ran on from goes back into the agent. So the evaluation's episodes, its draws and its returns are
those of the evaluation in line, and training, which reads none of that, is unchanged: nothing but the rows'
wall times differ (tests/test_eval_beside.py, for every registered agent).

The loop takes the result (`result`) before anything reads the evaluation envs or the evaluation stream
again: before the next evaluation, a checkpoint (so no checkpoint holds an evaluation under way, and a resume
is the uninterrupted run's), a stop and the run's end. An agent whose evaluation keeps acting state of its
own beyond the stream (a planner's warm start, a recurrent carry: `Agent.evaluates_beside` false) evaluates
in line.

A run that ends while an evaluation is under way (a second Ctrl-C while the loop waits for it, a failure)
stops it (`stop`): its copy's next action raises in its thread, which then ends, so the process exits with
no thread of its own still in torch's code (that ended in SIGABRT at the interpreter's exit).

It imports torch and the loop's evaluation (iqrl/loop/evaluation.py); the trainer decides when it applies.
"""

from __future__ import annotations

import threading
import time

from iqrl.loop.evaluation import Outcome, eval_returns


class Stopped(Exception):
    """An evaluation beside training stopped before its end (`EvaluationBeside.stop`)."""


class EvaluationBeside:
    """One evaluation under way in its own thread: `eval_returns` of a snapshot of `agent` in `envs`, the
    evaluation due at `env_step` (with `probe`, the Q-bias's data)."""

    def __init__(self, agent, envs: list, episodes: int, batched: bool, env_step: int, probe: bool = False):
        self.env_step = env_step
        # a plain updater for the copy: acting is eager there, and the copy holds no compiled function
        self.snapshot = agent.snapshot()
        self.outcomes: list[Outcome] | None = None
        self.error: BaseException | None = None
        self.ended = 0.0  # time.time() at its end
        self.stopping = threading.Event()
        # its end, waited on instead of Thread.join: a KeyboardInterrupt that interrupts a join can leave the
        # thread marked as ended while it still runs (CPython gh-90882), which a second join then believes
        self.finished = threading.Event()
        act = self.snapshot.act

        def act_unless_stopped(*args, **kwargs):
            if self.stopping.is_set():
                raise Stopped
            return act(*args, **kwargs)

        self.snapshot.act = act_unless_stopped  # the copy's own: the agent acts as before
        self.thread = threading.Thread(
            target=self._evaluate, args=(envs, episodes, batched, probe), name="evaluation", daemon=True
        )
        self.thread.start()

    def _evaluate(self, envs: list, episodes: int, batched: bool, probe: bool) -> None:
        try:
            with self.snapshot.evaluating():
                self.outcomes = eval_returns(envs, self.snapshot, episodes, batched, probe=probe)
        except BaseException as e:  # raised in the loop's thread, by `result`
            self.error = e
        self.ended = time.time()
        self.finished.set()

    def stop(self) -> None:
        """End it before its episodes end (at its next action) and wait for its thread; no result."""
        self.stopping.set()
        wait_on(self.finished)

    def result(self, agent) -> list[Outcome]:
        """Its outcomes, once it ended; the evaluation stream it ran on goes back into `agent`."""
        wait_on(self.finished)
        if self.error is not None:
            raise self.error
        agent.eval_generator.set_state(self.snapshot.eval_generator.get_state())
        return self.outcomes


#: How often a loop waiting on an evaluation wakes to run the signal handlers due (`wait_on`), in seconds.
WAKE_S = 0.1


def wait_on(event: threading.Event) -> None:
    """event.wait(), woken every WAKE_S: the kernel may deliver a Ctrl-C to the evaluation's thread, which
    then only marks it due, and a Python handler runs in the main thread when it next runs Python, which an
    unbounded wait never does before the evaluation ends (a Ctrl-C then waited out the whole evaluation)."""
    while not event.wait(WAKE_S):
        pass
