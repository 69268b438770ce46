"""The keys of a latent model rolled out over a horizon, shared by iQRL (iqrl/agent/) and DC-MPC
(baselines/dcwm.py): the FSQ latent's groups and levels, the encoder's widths, the horizon H and its
weight rho, and the model's optimizer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from iqrl.core.checks import require


@dataclass
class LatentModelConfig:
    """Keys of an FSQ latent model rolled out over a horizon (iQRL, DC-MPC), a part of their agent configs
    (`compose`, iqrl/core/interface.py)."""

    # the tests' tiny sizes (AgentConfig.TINY); a rollout of 2 steps still weights and sums over h, and
    # inductor's C++ kernels for the unrolled steps are most of a compiled update's compile time
    TINY: ClassVar[dict] = {"latent_dim": 8, "enc_mlp_dims": [32], "horizon": 2}

    latent_dim: int = 512  # number of FSQ groups G; latent width D = G * len(fsq_levels)
    fsq_levels: list[int] = field(default_factory=lambda: [8, 8])  # FSQ levels of each group's channels
    fsq_symmetric: bool = (
        False  # True: the symmetric FSQ bound of arXiv 2411.19842 (docs/fsq.md; needed for a level 2)
    )
    enc_mlp_dims: list[int] = field(default_factory=lambda: [256])  # the encoder's hidden widths
    horizon: int = 5  # H
    rho: float = 0.9  # per-step weight rho^h of the model loss
    enc_lr: float = 1e-4  # AdamW over encoder + dynamics (+ heads)
    enc_weight_decay: float = 0.01  # AdamW's weight decay of the representation step
    enc_grad_clip: float = 20.0  # gradient-norm clip of the representation step

    def validate(self) -> None:
        """The keys' ranges. The check of FSQ's bound is `validate_fsq`, apart: whether the latent goes
        through FSQ is the agent's choice (iQRL's quantizer)."""
        checks = [
            (
                len(self.enc_mlp_dims) >= 1 and all(h >= 1 for h in self.enc_mlp_dims),
                f"agent.enc_mlp_dims must be a non-empty list of positive widths, got {self.enc_mlp_dims}",
            ),
            (self.enc_lr > 0, f"agent.enc_lr must be > 0, got {self.enc_lr}"),
            (self.enc_weight_decay >= 0, f"agent.enc_weight_decay must be >= 0, got {self.enc_weight_decay}"),
            (
                len(self.fsq_levels) >= 1 and all(int(v) >= 2 for v in self.fsq_levels),
                f"agent.fsq_levels must be a non-empty list of ints >= 2, got {list(self.fsq_levels)}",
            ),
            (self.latent_dim >= 1, f"agent.latent_dim must be >= 1, got {self.latent_dim}"),
            (self.horizon >= 1, f"agent.horizon must be >= 1, got {self.horizon}"),
            (0.0 < self.rho <= 1.0, f"agent.rho must be in (0, 1], got {self.rho}"),
            (self.enc_grad_clip > 0, f"agent.enc_grad_clip must be > 0, got {self.enc_grad_clip}"),
        ]
        require(checks)

    def validate_fsq(self) -> None:
        """The levels under FSQ's bound, for a latent that goes through FSQ: the standard bound shifts a
        2-level channel by atanh(0.5 / 0.5005) ~ 3.8 (docs/fsq.md)."""
        message = (
            f"agent.fsq_levels={list(self.fsq_levels)} has a level of 2, which the standard FSQ bound maps "
            "to one code for every pre-activation above -3.8, so the latent is constant at initialisation "
            "and gets almost no gradient; use agent.fsq_symmetric=true (levels symmetric about 0, arXiv "
            "2411.19842) or levels >= 3"
        )
        require([(self.fsq_symmetric or 2 not in self.fsq_levels, message)])

    @property
    def latent_width(self) -> int:
        """D, the width of the FSQ latent: latent_dim x len(fsq_levels)."""
        return self.latent_dim * len(self.fsq_levels)
