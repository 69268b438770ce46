"""Where a run's wall time goes: collection, acting, updates, evaluation and writing.

The trainer enters a phase around each kind of work (`with split("act"): ...`); the time between two
changes of phase is charged to the phase inside which it passed, so nested phases (the updates a per-step
agent runs inside an agent step) are charged to themselves, never twice. The training loop's own work
between the marked phases (env steps, the replay, counters) is collection. Timing is host wall time at the
loop level: it adds no host-device sync, so on a GPU an update's time shows where the host next waits for
the device (the per-episode flush of the metrics, in `update`, or the next action's transfer, in `act`).

It imports the run folder's names of the phases (iqrl/runfolder/layout.py).
"""

from __future__ import annotations

import contextlib
import time

from iqrl.runfolder.layout import TIME_SPLIT_PHASES as PHASES


def column(phase: str) -> str:
    """The train.csv column of a phase's seconds in the row's window: `time_<phase>_s`."""
    return f"time_{phase}_s"


#: train.csv's columns of the split (seconds of each phase since the row before).
COLUMNS = tuple(column(p) for p in PHASES)


class TimeSplit:
    """Seconds per phase: in all (`total`, checkpointed with the run) and since the last train.csv row
    (`window`); the time outside every phase is `collect`'s."""

    def __init__(self, total: dict | None = None):
        self.total = dict.fromkeys(PHASES, 0.0) | dict(total or {})
        self.window = dict.fromkeys(PHASES, 0.0)
        self.stack = ["collect"]
        self.t = time.perf_counter()

    def restart(self) -> None:
        """The clock starts now: what passed since the split was made (building the run) is no phase's."""
        self.t = time.perf_counter()

    def _charge(self) -> None:
        now = time.perf_counter()
        dt, self.t = now - self.t, now
        self.total[self.stack[-1]] += dt
        self.window[self.stack[-1]] += dt

    @contextlib.contextmanager
    def __call__(self, phase: str):
        self._charge()
        self.stack.append(phase)
        try:
            yield
        finally:
            self._charge()
            self.stack.pop()

    def take_window(self) -> dict[str, float]:
        """The row's columns (seconds since the last row, rounded to 0.1 ms); the window starts again."""
        self._charge()
        row = {column(p): round(self.window[p], 4) for p in PHASES}
        self.window = dict.fromkeys(PHASES, 0.0)
        return row

    def summary(self) -> dict[str, float]:
        """Seconds per phase in all (rounded to 1 ms), for status.json."""
        self._charge()
        return {p: round(self.total[p], 3) for p in PHASES}


def summary_line(seconds: dict[str, float]) -> str:
    """ "time: collect 41% (12.3 s), act 9% (2.7 s), ...": each phase's share of their sum."""
    whole = sum(seconds.values()) or 1.0
    return "time: " + ", ".join(f"{p} {100 * s / whole:.0f}% ({s:.1f} s)" for p, s in seconds.items())
