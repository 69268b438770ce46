"""The real trainer (`iqrl.train.main`) with every DMC env step of its own (`DMCEnv.step`) followed by a
sleep of THROTTLED_STEP_S seconds (env var, default 0.02), for tests that need a real run to outlast a
wall-clock limit without spending the CPU of one: a sleep draws no random number and touches no state, so
the run's numbers are those of `python -m iqrl.train` with the same arguments, and a run of N env steps takes
at least N x THROTTLED_STEP_S seconds whatever the machine's speed. Jobs import it as the sweep's entry
(`throttled_trainer:main`, tests/ on PYTHONPATH)."""

from __future__ import annotations

import os
import time

from iqrl.envs import dmc
from iqrl.train import main as train

_step = dmc.DMCEnv.step


def _throttled_step(self, action):
    step = _step(self, action)
    time.sleep(float(os.environ.get("THROTTLED_STEP_S", "0.02")))
    return step


def main(argv, should_stop=None) -> int:
    dmc.DMCEnv.step = _throttled_step
    return train(argv, should_stop=should_stop)
