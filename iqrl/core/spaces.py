"""Action spaces: what an agent's actions are, as a task declares them and an agent is built with.

A task's actions are continuous, a box of `n` dims (every action a float32 vector in [-1, 1]^n, rescaled by
the env to its own bounds), or discrete, `n` actions (every action an integer in 0..n-1, an int64 scalar;
a batch of them an int64 vector). Each agent class declares the kinds it can act in (`Agent.ACTION_SPACES`);
the run config refuses a task whose kind the agent lacks before anything is written.

It imports numpy only: envs, the agent interface, the replay and the config share it from below.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BOX, DISCRETE = "box", "discrete"
ACTION_KINDS = (BOX, DISCRETE)


@dataclass(frozen=True)
class ActionSpec:
    """A task's actions: `kind` box (continuous, `n` dims) or discrete (`n` actions)."""

    kind: str
    n: int

    def __post_init__(self):
        if self.kind not in ACTION_KINDS or self.n < 1:
            raise ValueError(f"an action spec is a box of n >= 1 dims or n >= 1 discrete actions, got {self}")

    @classmethod
    def box(cls, dims: int) -> ActionSpec:
        return cls(BOX, int(dims))

    @classmethod
    def discrete(cls, n: int) -> ActionSpec:
        return cls(DISCRETE, int(n))

    @property
    def is_discrete(self) -> bool:
        return self.kind == DISCRETE

    @property
    def width(self) -> int:
        """The width of an action as a vector: the box's dims, or n (a discrete action one-hot)."""
        return self.n

    @property
    def dtype(self) -> type:
        """The numpy dtype of an action: float32 components, or an int64 index."""
        return np.int64 if self.is_discrete else np.float32

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        """A uniformly random action (the seed phase's): a box's float32 vector in [-1, 1]^n, or an int64
        index in 0..n-1 (a 0-d array)."""
        if self.is_discrete:
            return np.asarray(rng.integers(self.n), np.int64)
        return rng.uniform(-1.0, 1.0, self.n).astype(np.float32)

    def describe(self) -> str:
        """'continuous actions (a box of 6 dims)' or '6 discrete actions', for messages."""
        return (
            f"{self.n} discrete actions"
            if self.is_discrete
            else f"continuous actions (a box of {self.n} dims)"
        )


def as_action_spec(action: int | ActionSpec) -> ActionSpec:
    """An ActionSpec as it is, or an int as the box of that many dims (what every caller passed before
    discrete actions existed)."""
    return action if isinstance(action, ActionSpec) else ActionSpec.box(action)
