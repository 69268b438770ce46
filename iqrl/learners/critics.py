"""What every actor-critic learner here shares: the critic ensemble, its target, its step, random subsets.

The learners (`iqrl/learners/td3.py`, `iqrl/learners/sac.py`) act and learn on an input x [B, in_dim]
that they do not train: raw observations (`td3`, `sac`), iQRL's quantized latent or DC-MPC's codes. The
agent hands them detached inputs, so no RL gradient reaches a representation. The one exception is an
`encoder` (iqrl/learners/encoders.py: pixel `sac` / `td3`, `sac-ae`): then the inputs are observations, the
critic reads encoder(o) with gradients (the critic's optimizer steps the encoder too), the actor features
through which no gradient reaches the encoder, and the target critic a target encoder (EMA with the critics).

Update order (`CriticEnsembleLearner.update`): bootstrap target -> critic step on every critic -> EMA of
the target critics -> every `actor_update_freq` critic steps an actor step. The critic ensemble is one
vectorised module; the target takes the minimum over a random subset of `q_subsample` target critics (one
draw per update), the actor a reduction (`min` or `mean`) over another random subset of online critics, as
REDQ (Chen et al. 2021, arXiv 2101.05982) and the iQRL code do.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import Tensor, nn

from iqrl.core.checks import require
from iqrl.core.update import Updater
from iqrl.learners.encoders import CriticEncoder
from iqrl.nn.layers import INITS, Mish, after_step, ensemble_mlp, frozen_copy
from iqrl.nn.optim import adam
from iqrl.nn.trunks import NETWORKS, residual_widths_check


@dataclass
class CriticConfig:
    """Keys of every actor-critic learner (defaults: the iQRL code), a part of an agent config (`compose`,
    iqrl/core/interface.py). The actor's own keys are in `TD3LearnerConfig` (iqrl/learners/td3.py) and
    `SACLearnerConfig` (iqrl/learners/sac.py)."""

    # the tests' tiny sizes (AgentConfig.TINY)
    TINY: ClassVar[dict] = {"mlp_dims": [32, 32], "batch_size": 16}

    mlp_dims: list[int] = field(default_factory=lambda: [512, 512])  # actor and critic hidden widths
    batch_size: int = 256  # transitions per gradient update
    nstep: int = 1  # n-step return length (3 on some tasks, see the task YAML)
    gamma: float = 0.99  # discount
    lr: float = 3e-4  # actor and critic (Adam)
    tau: float = 0.005  # EMA rate of target actor and critics
    num_critics: int = 5  # critics of the ensemble
    q_subsample: int = 2  # target = min over this many randomly drawn target critics
    actor_q_reduce: str = "mean"  # actor objective over another random subset: mean | min
    critic_loss_reduce: str = "mean"  # over critics: mean (iQRL) | sum (TD3)
    actor_update_freq: int = 2  # an actor step every this many critic steps
    init: str = "default"  # default | orthogonal | xavier (iqrl.nn.layers.init_weight_)
    network: str = "mlp"  # actor and critics: mlp | simba | simbav2 | bronet (iqrl/nn/trunks.py)
    grad_clip: float = 0.0  # gradient-norm clip of the actor and the critic steps; 0 = none (DCWM: 20)
    # Quirks of the official iQRL code (off by default; IDs of docs/faithfulness.md):
    official_nstep1_gamma_bug: bool = False  # IQ-2: n = 1 targets are undiscounted (gamma = 1)
    official_ignore_terminal: bool = False  # IQ-3: terminal flags ignored in the n > 1 path
    warmup_with_policy: bool = False  # IQ-12: seed episodes: untrained policy + sigma noise, not uniform

    def validate(self) -> None:
        checks = [
            (self.nstep >= 1, f"nstep must be >= 1, got {self.nstep}"),
            (0.0 < self.gamma <= 1.0, f"gamma must be in (0, 1], got {self.gamma}"),
            (self.lr > 0, f"lr must be > 0, got {self.lr}"),
            (0.0 < self.tau <= 1.0, f"tau must be in (0, 1], got {self.tau}"),
            (self.num_critics >= 1, f"num_critics must be >= 1, got {self.num_critics}"),
            (
                1 <= self.q_subsample <= self.num_critics,
                f"q_subsample must be in 1..num_critics ({self.num_critics}), got {self.q_subsample}",
            ),
            (
                self.actor_q_reduce in ("mean", "min"),
                f"actor_q_reduce must be mean or min, got {self.actor_q_reduce!r}",
            ),
            (
                self.critic_loss_reduce in ("mean", "sum"),
                f"critic_loss_reduce must be mean or sum, got {self.critic_loss_reduce!r}",
            ),
            (self.actor_update_freq >= 1, f"actor_update_freq must be >= 1, got {self.actor_update_freq}"),
            (self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}"),
            (self.init in INITS, f"init must be one of {', '.join(INITS)}, got {self.init!r}"),
            (self.grad_clip >= 0, f"grad_clip must be >= 0 (0 = no clipping), got {self.grad_clip}"),
            (
                len(self.mlp_dims) >= 1 and all(h >= 1 for h in self.mlp_dims),
                f"mlp_dims must be a non-empty list of positive widths, got {list(self.mlp_dims)}",
            ),
            (self.network in NETWORKS, f"network must be one of {', '.join(NETWORKS)}, got {self.network!r}"),
        ]
        if self.network != "mlp":  # a residual network: one block per entry, all of one width
            checks.append(residual_widths_check("mlp_dims", self.mlp_dims))
        require(checks)


class CriticEnsembleLearner(nn.Module, abc.ABC):
    """What every actor-critic here shares: a vectorised critic ensemble with an EMA target, random
    critic subsets, the critic step, and the counters and optimizer state a checkpoint needs.
    Subclasses add the actor: `target_draws` and `td_target` (the bootstrap target), `actor_draws` and
    `update_actor` (the actor's step, a metrics dict).

    The hook for another critic (docs/extending.md, "A worked example with random layers: DroQ"):
    `build_critic` returns the ensemble, from which the learner makes the target and the optimizer; a
    critic with random layers gets its draws from `critic_masks`, which `critic_draws`, `target_draws` and
    `actor_draws` include, so each piece is handed its masks by keyword (none drawn without dropout)."""

    expl_sigma: float | None = (
        None  # std of the exploration noise; None: the actor explores by sampling (SAC)
    )
    # The hidden layers of the critics and the actor (`mlp` / `EnsembleMLP`): LayerNorm + Mish here, plain
    # ReLU in SAC+AE's learner.
    mlp_act: type[nn.Module] = Mish
    mlp_norm: bool = True

    def __init__(
        self,
        cfg: CriticConfig,
        in_dim: int,
        act_dim: int,
        generator: torch.Generator,
        encoder: CriticEncoder | None = None,
    ):
        super().__init__()
        self.cfg = cfg
        self.act_dim = act_dim
        self.generator = generator
        # With an encoder the learner's inputs are observations and its networks read encoder features.
        self.encoder = encoder
        in_dim = in_dim if encoder is None else encoder.feature_dim
        self.in_dim = in_dim
        self.critic = self.build_critic()
        self.critic_target = frozen_copy(self.critic)
        self.critic_after = after_step(self.critic)  # what runs after a critic step (SimbaV2's projection)
        self.critic_opt = self.make_critic_opt()
        self.critic_steps = 0
        self.episodes_trained = 0  # index into per-episode schedules (exploration noise)

    def build_critic(self) -> nn.Module:
        """The critic ensemble, forward([x, a] [B, in_dim + act_dim], members=None) -> [E, B, 1]: the hook an
        agent that changes its critics overrides (DroQ's dropout, baselines/droq.py). The learner makes the
        target (a frozen copy) and the optimizer from what it returns; a critic whose forward takes `masks`
        has them drawn by `critic_masks`."""
        c = self.cfg
        return ensemble_mlp(
            c.num_critics,
            self.in_dim + self.act_dim,
            c.mlp_dims,
            1,
            c.init,
            self.mlp_act,
            self.mlp_norm,
            c.network,
        )

    def make_critic_opt(self) -> torch.optim.Optimizer:
        """Adam on the critics and, with an encoder, its trunk and head (the critic loss trains them)."""
        params = list(self.critic.parameters())
        if self.encoder is not None:
            params += self.encoder.critic_parameters()
        return adam(params, lr=self.cfg.lr)

    def actor_params(self, actor: nn.Module) -> list[nn.Parameter]:
        """What the actor's optimizer steps: the actor and, with an encoder, the actor's own head."""
        extra = [] if self.encoder is None else self.encoder.actor_parameters()
        return [*actor.parameters(), *extra]

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"critic_opt": self.critic_opt}

    # ------------------------------------------------------------------ inputs (encoder or not)
    def critic_input(self, x: Tensor) -> Tensor:
        """The critics' input: x, or the encoder's features of the observations x (with gradients)."""
        return x if self.encoder is None else self.encoder(x)

    def target_input(self, x: Tensor) -> Tensor:
        """The target critics' input: x, or the target encoder's features."""
        return x if self.encoder is None else self.encoder.target_features(x)

    def actor_input(self, x: Tensor) -> Tensor:
        """The actor's input when acting and for the bootstrap action: x, or the encoder's actor features."""
        return x if self.encoder is None else self.encoder.actor_features(x)

    def actor_inputs(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(actor input, critic input) of the actor's objective: (x, x), or the encoder's (no gradient to the
        encoder's trunk or critic head)."""
        return (x, x) if self.encoder is None else self.encoder.actor_inputs(x)

    # ------------------------------------------------------------------ random draws
    def random_subset(self, k: int) -> Tensor:
        """k distinct critic indices drawn from the learner's generator; all of them, in order and without a
        draw, when k is the ensemble's size."""
        n, g = self.cfg.num_critics, self.generator
        if k == n:
            return torch.arange(n, device=g.device)
        return torch.randperm(n, generator=g, device=g.device)[:k]

    def normal(self, *shape: int) -> Tensor:
        """N(0, 1) draws of `shape` from the learner's generator."""
        return torch.randn(shape, generator=self.generator, device=self.generator.device)

    def critic_masks(self, batch_size: int, n: int | None = None) -> dict[str, list[Tensor]]:
        """The random layers' draws of one critic evaluation over `batch_size` inputs and `n` members (all
        by default): {"masks": one keep mask [n, B, width] per hidden layer} from the learner's generator
        when the critics drop units (`EnsembleMLP.draw_masks`, docs/extending.md "Random layers"), else {}
        and nothing drawn. The online and target critics have one structure, so one function draws for
        either; each evaluation (target, critic loss, actor loss) gets masks of its own."""
        draw = getattr(self.critic, "draw_masks", None)
        masks = None if draw is None else draw(batch_size, self.generator, n)
        return {} if masks is None else {"masks": masks}

    # ------------------------------------------------------------------ the update
    def q(
        self,
        x: Tensor,
        a: Tensor,
        members: Tensor | None = None,
        target: bool = False,
        masks: list[Tensor] | None = None,
    ) -> Tensor:
        """Q-values [E, B] of the online (or target) critics `members` (all when None), their units dropped by
        `masks` (`critic_masks`; None: no dropout)."""
        net = self.critic_target if target else self.critic
        xa = torch.cat([x, a], -1)
        return (net(xa, members) if masks is None else net(xa, members, masks)).squeeze(-1).float()

    @torch.no_grad()
    def probe_q(self, x: Tensor, a: Tensor) -> Tensor:
        """Q [E, B] of the online critics at inputs x (through the encoder, if any) and actions a, without
        dropout (`Agent.probe_q`)."""
        return self.q(self.critic_input(x), a)

    @abc.abstractmethod
    def target_draws(self, batch_size: int) -> dict[str, Tensor]:
        """The random draws of `td_target` for a batch of `batch_size`, by keyword."""

    @abc.abstractmethod
    def td_target(self, ret: Tensor, discount: Tensor, x_next: Tensor, **draws: Tensor) -> Tensor:
        """The bootstrap target y [B] of the critic step."""

    def critic_draws(self, batch_size: int) -> dict[str, list[Tensor]]:
        """The random draws of `critic_loss` for a batch of `batch_size`, by keyword: the critics' dropout
        masks (none without dropout)."""
        return self.critic_masks(batch_size)

    @abc.abstractmethod
    def update_actor(self, u: Updater, x: Tensor) -> dict:
        """The actor's step (and what follows it) on the critic step's inputs x; its metrics."""

    def update(
        self, u: Updater, x: Tensor, action: Tensor, ret: Tensor, discount: Tensor, x_next: Tensor
    ) -> dict:
        """One critic step on every critic (+ an actor step every `actor_update_freq`), detached inputs."""
        c = self.cfg
        y = u.call(self.td_target, ret, discount, x_next, **self.target_draws(len(x)))
        step = u.step(
            self.critic_loss,
            x,
            action,
            y,
            opt=self.critic_opt,
            max_norm=c.grad_clip,
            after=self.critic_after,
            **self.critic_draws(len(x)),
        )
        metrics = {"q_loss": step.loss, "q_mean": step.aux.mean(), "target_mean": y.mean()}
        if step.grad_norm is not None:
            metrics["q_grad_norm"] = step.grad_norm
        self.critic_steps += 1
        self.update_targets(u)
        if self.critic_steps % c.actor_update_freq == 0:
            metrics.update(self.update_actor(u, x))
        return metrics

    def update_targets(self, u: Updater) -> None:
        """EMA of the target critics (and of the target encoder) at rate tau, after every critic step."""
        u.ema(self.critic_target, self.critic, self.cfg.tau)
        if self.encoder is not None:
            self.encoder.update_target(u, self.cfg.tau)

    def critic_loss(
        self, x: Tensor, action: Tensor, y: Tensor, *, masks: list[Tensor] | None = None
    ) -> tuple[Tensor, Tensor]:
        """(loss, Q [E, B]): per-critic MSE to the target y, reduced over critics by `critic_loss_reduce`; the
        critics' units dropped by `masks` (None: no dropout)."""
        q = self.q(self.critic_input(x), action, masks=masks)
        per_critic = ((q - y) ** 2).mean(1)
        return (per_critic.mean() if self.cfg.critic_loss_reduce == "mean" else per_critic.sum()), q

    def actor_objective_q(
        self, x: Tensor, a: Tensor, members: Tensor, masks: list[Tensor] | None = None
    ) -> Tensor:
        """Q [B] for the actor's objective: `actor_q_reduce` over the online critics `members` (a random
        subset, `random_subset(q_subsample)`), their units dropped by `masks` (None: no dropout)."""
        q = self.q(x, a, members, masks=masks)
        return q.mean(0) if self.cfg.actor_q_reduce == "mean" else q.amin(0)

    @property
    def extra(self) -> LearnerCounters:
        """What a checkpoint needs beyond the module's tensors, as an object with state_dict()."""
        return LearnerCounters(self)

    def extra_state(self) -> dict:
        return {
            "critic_steps": self.critic_steps,
            "episodes_trained": self.episodes_trained,
            **{k: o.state_dict() for k, o in self.optimizers().items()},
        }

    def load_extra_state(self, s: dict) -> None:
        self.critic_steps, self.episodes_trained = s["critic_steps"], s["episodes_trained"]
        for k, o in self.optimizers().items():
            o.load_state_dict(s[k])


class LearnerCounters:
    """A learner's step counters and optimizer states, with the state_dict interface of a module."""

    def __init__(self, learner: CriticEnsembleLearner):
        self.learner = learner

    def state_dict(self) -> dict:
        return self.learner.extra_state()

    def load_state_dict(self, state: dict) -> None:
        self.learner.load_extra_state(state)
