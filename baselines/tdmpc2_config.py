"""TD-MPC2's configuration (Hansen, Su, Wang, "TD-MPC2: Scalable, Robust World Models for Continuous
Control", ICLR 2024, arXiv 2310.16828): its model sizes, every setting's default and the discount heuristic.
Reference code: github.com/nicklashansen/tdmpc2 at e9f5932 (cited as `file:lines`, all under tdmpc2/). The
agent (baselines/tdmpc2.py) tables where each default comes from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from baselines.dcwm_mppi import MPPIConfig
from iqrl.core.checks import require
from iqrl.core.interface import AgentConfig
from iqrl.core.schedule import SeedPhase

# common/__init__.py:1-24 (MODEL_SIZE; num_q 5 from config.yaml:62 where a size does not set it)
MODEL_SIZES: dict[int, dict[str, int]] = {
    1: {"enc_dim": 256, "mlp_dim": 384, "latent_dim": 128, "num_enc_layers": 2, "num_q": 2},
    5: {"enc_dim": 256, "mlp_dim": 512, "latent_dim": 512, "num_enc_layers": 2, "num_q": 5},
    19: {"enc_dim": 1024, "mlp_dim": 1024, "latent_dim": 768, "num_enc_layers": 3, "num_q": 5},
    48: {"enc_dim": 1792, "mlp_dim": 1792, "latent_dim": 768, "num_enc_layers": 4, "num_q": 5},
    317: {"enc_dim": 4096, "mlp_dim": 4096, "latent_dim": 1376, "num_enc_layers": 5, "num_q": 8},
}
SIZE_KEYS = ("enc_dim", "mlp_dim", "latent_dim", "num_enc_layers", "num_q")
Q_PAIR = 2  # Q-functions drawn for targets, planning values and the policy loss (world_model.py:212)


@dataclass
class TDMPC2Config(AgentConfig):
    # max(1000, 5 episodes) agent steps (DMC 5000 env steps, Gym 5000, Meta-World 2000), then PerStepSeedBurst
    SEED_PHASE = SeedPhase(1000, 5, source="nicklashansen/tdmpc2@e9f5932 envs/__init__.py:82")  # a ClassVar
    # the tests' tiny sizes, MPPI's too
    TINY: ClassVar[dict] = {
        "enc_dim": 32,
        "mlp_dim": 32,
        "latent_dim": 16,
        "num_q": 2,
        "num_bins": 51,
        "batch_size": 16,
        "num_samples": 32,
        "num_pi_trajs": 4,
        "num_elites": 8,
        "iterations": 2,
    }
    name: str = "tdmpc2"
    # --- architecture (common/__init__.py:1-24, config.yaml:55-64) ---
    model_size: int = 5  # parameters in millions: 1, 5, 19, 48 or 317; sets the five widths below
    enc_dim: int | None = None  # encoder hidden width; None: model_size's
    mlp_dim: int | None = None  # hidden width of dynamics, reward, policy and Q; None: model_size's
    latent_dim: int | None = None  # latent width (a multiple of simnorm_dim); None: model_size's
    num_enc_layers: int | None = None  # encoder layers (max(n - 1, 1) hidden); None: model_size's
    num_q: int | None = None  # Q-functions in the ensemble; None: model_size's
    simnorm_dim: int = 8  # SimNorm: softmax over groups of this many latent channels
    task_dim: int = 96  # multi-task runs: width of the task embedding every network reads
    dropout: float = 0.01  # dropout rate after each Q-function's first hidden layer
    num_bins: int = 101  # bins of the two-hot regression of reward and value
    vmin: float = -10.0  # lowest bin, in symlog space
    vmax: float = 10.0  # highest bin, in symlog space
    # --- training (config.yaml:15-28) ---
    batch_size: int = 256  # windows per update
    horizon: int = 3  # rollout steps of the model loss, and planning horizon
    rho: float = 0.5  # per-step weight rho^t of the rollout losses and the policy loss
    consistency_coef: float = 20.0  # weight of the latent consistency loss
    reward_coef: float = 0.1  # weight of the reward cross-entropy
    value_coef: float = 0.1  # weight of the Q cross-entropy
    lr: float = 3e-4  # Adam learning rate of the model (and policy)
    enc_lr_scale: float = 0.3  # the encoder's learning rate is lr times this
    grad_clip: float = 20.0  # max total gradient norm of the model step and of the policy step
    tau: float = 0.01  # EMA rate of the target Q-functions and of the policy loss's Q scale
    gamma: float | None = None  # the discount; None: the heuristic below (tdmpc2.py:57-70)
    # discount heuristic: clip((T/denom - 1) / (T/denom), min, max) for T agent steps per episode
    discount_episode_length: int = 500  # T: agent steps per episode (DMC: 1000 env steps / action repeat 2)
    discount_denom: float = 5.0  # denominator of the discount heuristic
    discount_min: float = 0.95  # lower clip of the discount heuristic
    discount_max: float = 0.995  # upper clip of the discount heuristic
    # --- policy prior (config.yaml:45-47) ---
    log_std_min: float = -10.0  # lower bound of the policy's log std (tanh-bounded)
    log_std_max: float = 2.0  # upper bound of the policy's log std
    entropy_coef: float = 1e-4  # alpha: weight of the action-dim-scaled entropy in the policy loss
    tdmpc2_presquash_entropy: bool = False  # TDMPC2-1: the code's entropy (tanh correction cancelled)
    # --- MPPI at act time (config.yaml:34-42) ---
    mpc: bool = True  # plan with MPPI; false: act with the policy prior alone
    iterations: int = 6  # MPPI iterations per action
    extra_iterations_large_action: int = 2  # added to iterations when the action has >= 20 dims
    num_samples: int = 512  # sequences per iteration, the policy's included
    num_elites: int = 64  # sequences the mean and std are refitted to
    num_pi_trajs: int = 24  # sequences sampled from the policy prior
    min_std: float = 0.05  # lower clamp of the sampling std
    max_std: float = 2.0  # initial sampling std and its upper clamp
    temperature: float = 0.5  # softmax temperature of the elites' weights

    def validate(self) -> None:
        super().validate()
        a = self.arch
        require(
            [
                (self.model_size in MODEL_SIZES, f"agent.model_size must be one of {sorted(MODEL_SIZES)}"),
                *[(a[k] >= 1, f"agent.{k} must be >= 1, got {a[k]}") for k in SIZE_KEYS],
                (a["num_q"] >= Q_PAIR, f"agent.num_q must be >= {Q_PAIR}, got {a['num_q']}"),
                (
                    self.simnorm_dim >= 1 and a["latent_dim"] % self.simnorm_dim == 0,
                    f"agent.latent_dim ({a['latent_dim']}) must be a multiple of agent.simnorm_dim "
                    f"({self.simnorm_dim})",
                ),
                (self.task_dim >= 1, f"agent.task_dim must be >= 1, got {self.task_dim}"),
                (0.0 <= self.dropout < 1.0, f"agent.dropout must be in [0, 1), got {self.dropout}"),
                (self.num_bins >= 2, f"agent.num_bins must be >= 2, got {self.num_bins}"),
                (self.vmax > self.vmin, "agent.vmax must be > agent.vmin"),
                (self.batch_size >= 1, f"agent.batch_size must be >= 1, got {self.batch_size}"),
                (self.horizon >= 1, f"agent.horizon must be >= 1, got {self.horizon}"),
                (0.0 < self.rho <= 1.0, f"agent.rho must be in (0, 1], got {self.rho}"),
                *[
                    (getattr(self, k) >= 0, f"agent.{k} must be >= 0, got {getattr(self, k)}")
                    for k in ("consistency_coef", "reward_coef", "value_coef", "entropy_coef", "grad_clip")
                ],
                (self.lr > 0, f"agent.lr must be > 0, got {self.lr}"),
                (self.enc_lr_scale > 0, f"agent.enc_lr_scale must be > 0, got {self.enc_lr_scale}"),
                (0.0 < self.tau <= 1.0, f"agent.tau must be in (0, 1], got {self.tau}"),
                (
                    self.discount_episode_length >= 1,
                    f"agent.discount_episode_length must be >= 1, got {self.discount_episode_length}",
                ),
                (self.discount_denom > 0, f"agent.discount_denom must be > 0, got {self.discount_denom}"),
                (
                    0.0 < self.discount_min <= self.discount_max <= 1.0,
                    "agent.discount_min and agent.discount_max must satisfy 0 < min <= max <= 1",
                ),
                (
                    self.gamma is None or 0.0 < self.gamma <= 1.0,
                    f"agent.gamma must be in (0, 1] or null, got {self.gamma}",
                ),
                (self.log_std_max > self.log_std_min, "agent.log_std_max must be > agent.log_std_min"),
                (
                    self.extra_iterations_large_action >= 0,
                    "agent.extra_iterations_large_action must be >= 0",
                ),
            ]
        )
        try:
            self.mppi(act_dim=1).validate()
        except ValueError as e:
            raise ValueError(f"agent.{e}") from None

    @property
    def arch(self) -> dict[str, int]:
        """The five widths: each key's value, or model_size's where it is None."""
        preset = MODEL_SIZES.get(self.model_size, MODEL_SIZES[5])
        return {k: preset[k] if getattr(self, k) is None else getattr(self, k) for k in SIZE_KEYS}

    def discount(self) -> float:
        """`gamma`, or where it is None the heuristic's discount for discount_episode_length."""
        if self.gamma is not None:
            return self.gamma
        return heuristic_discount(
            self.discount_episode_length, self.discount_denom, self.discount_min, self.discount_max
        )

    def mppi(self, act_dim: int) -> MPPIConfig:
        """The planner's settings; 2 more iterations for >= 20 action dims (tdmpc2.py:34)."""
        return MPPIConfig.from_keys(
            self,
            iterations=self.iterations + self.extra_iterations_large_action * int(act_dim >= 20),
            discount=self.discount(),  # the plan's value discounts by gamma (tdmpc2.py:131-132)
        )


def heuristic_discount(episode_length: int, denom: float, low: float, high: float) -> float:
    """gamma = clip((T/denom - 1) / (T/denom), low, high): longer episodes look further ahead
    (tdmpc2.py:57-70). DMC (T = 500 agent steps): 0.99."""
    frac = episode_length / denom
    return min(max((frac - 1) / frac, low), high)
