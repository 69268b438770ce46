"""What one step of any environment returns: the type the DeepMind Control wrapper (iqrl/core/envs.py) and
the other suites' adapter (iqrl/core/suites.py) share, below both (envs.py dispatches to suites.py)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Step:
    obs: np.ndarray
    reward: float
    terminated: bool  # a true environment termination (never happens in the DMC suite)
    truncated: bool  # the time limit was reached
    success: bool = False  # the task's success signal (Meta-World, MyoSuite; always False elsewhere)
