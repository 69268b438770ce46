"""TD3's actor on the shared critic ensemble (Fujimoto et al. 2018, arXiv 1802.09477).

Per update, on detached inputs x [B, in_dim] (`CriticEnsembleLearner.update` runs the steps in order):
1. target  y = R + Γ min_{k∈K} Q̄_k(x', clip(π̄(x') + clip(ε, -c, c), -1, 1)),  ε ~ N(0, σ_target²)
   (target-policy smoothing), K a random subset of `q_subsample` target critics;
2. critic step on every critic (MSE to y), EMA of the target critics;
3. every `actor_update_freq` critic steps: actor step on -Q(x, π(x)), Q reduced over a random subset of
   online critics (`actor_q_reduce`), then EMA of the target actor.
Acting: π(x) plus N(0, σ_expl²) noise when exploring, σ_expl decaying linearly over training episodes (the
iQRL code's schedule), clipped to [-1, 1].

`GumbelTD3Learner`: the same steps for n discrete actions with MR.Q's Gumbel-softmax actor (below).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from iqrl.core.checks import require
from iqrl.core.update import Updater
from iqrl.learners.critics import CriticConfig, CriticEnsembleLearner
from iqrl.learners.encoders import CriticEncoder
from iqrl.nn.layers import after_step, frozen_copy, mlp
from iqrl.nn.maths import (
    gumbel_action,
    gumbel_noise,
    gumbel_softmax,
    linear_schedule,
    noisy_action,
    one_hot,
)
from iqrl.nn.optim import adam


@dataclass
class TD3LearnerConfig(CriticConfig):
    """CriticConfig plus the keys of the TD3 actor: target-policy smoothing and exploration noise."""

    policy_noise: float = 0.2  # target-policy smoothing std
    noise_clip: float = 0.3  # clip of the target-policy smoothing noise
    expl_sigma_start: float = 1.0  # exploration std, linear over training episodes
    expl_sigma_end: float = 0.1  # the exploration std after expl_sigma_episodes
    expl_sigma_episodes: int = 50  # the code's default; per group 50 easy / 150 medium / 500 hard (task YAML)

    def validate(self) -> None:
        super().validate()
        checks = [
            (self.policy_noise >= 0, f"policy_noise must be >= 0, got {self.policy_noise}"),
            (self.noise_clip >= 0, f"noise_clip must be >= 0, got {self.noise_clip}"),
            (
                self.expl_sigma_start >= 0 and self.expl_sigma_end >= 0,
                f"expl_sigma_start and expl_sigma_end must be >= 0, got {self.expl_sigma_start} and "
                f"{self.expl_sigma_end}",
            ),
            (
                self.expl_sigma_episodes >= 1,
                f"expl_sigma_episodes must be >= 1, got {self.expl_sigma_episodes}",
            ),
        ]
        require(checks)


class TD3Learner(CriticEnsembleLearner):
    """TD3 actor (deterministic, target copy, target-policy smoothing) on the shared critic ensemble."""

    def __init__(
        self,
        cfg: TD3LearnerConfig,
        in_dim: int,
        act_dim: int,
        generator: torch.Generator,
        encoder: CriticEncoder | None = None,
    ):
        super().__init__(cfg, in_dim, act_dim, generator, encoder)
        self.actor = mlp(
            self.in_dim, cfg.mlp_dims, act_dim, cfg.init, self.mlp_act, self.mlp_norm, cfg.network
        )
        self.actor_target = frozen_copy(self.actor)
        self.actor_after = after_step(self.actor)
        self.actor_opt = adam(self.actor_params(self.actor), lr=cfg.lr)

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"actor_opt": self.actor_opt, "critic_opt": self.critic_opt}

    # ------------------------------------------------------------------ acting
    def policy(self, x: Tensor, target: bool = False) -> Tensor:
        return torch.tanh((self.actor_target if target else self.actor)(x))

    @property
    def expl_sigma(self) -> float:
        c = self.cfg
        return linear_schedule(
            c.expl_sigma_start, c.expl_sigma_end, c.expl_sigma_episodes, self.episodes_trained
        )

    def act_draws(self, batch: tuple[int, ...], explore: bool) -> dict[str, Tensor | float]:
        """The draws of `act` for inputs of batch shape `batch`: exploring, the noise's N(0, 1) draws
        [*batch, A] and the scheduled sigma_expl it is scaled by in `act` (a K-seed group scales every
        seed's in one product); evaluating, none."""
        return {"noise": self.normal(*batch, self.act_dim), "sigma": self.expl_sigma} if explore else {}

    def act(self, x: Tensor, *, noise: Tensor | None = None, sigma: float = 1.0) -> Tensor:
        """Behaviour action: pi(x) plus the exploration noise sigma * noise, clamped to [-1, 1], when one was
        drawn (`act_draws`); else pi(x)."""
        a = self.policy(self.actor_input(x))
        return a if noise is None else noisy_action(a, noise * sigma, None)

    # ------------------------------------------------------------------ learning
    def target_draws(self, batch_size: int) -> dict[str, Tensor]:
        """The draws of `td_target`: the smoothing noise ε ~ N(0, 1) [B, A] (scaled by σ_target there), the
        target critics K, then their dropout masks (none without dropout)."""
        k = self.cfg.q_subsample
        return {
            "noise": self.normal(batch_size, self.act_dim),
            "members": self.random_subset(k),
            **self.critic_masks(batch_size, k),
        }

    @torch.no_grad()
    def td_target(
        self,
        ret: Tensor,
        discount: Tensor,
        x_next: Tensor,
        *,
        noise: Tensor,
        members: Tensor,
        masks: list[Tensor] | None = None,
    ) -> Tensor:
        """y = R + discount * min over the target critics `members` of Q(x', smoothed pi'(x')), their units
        dropped by `masks` (None: none)."""
        c = self.cfg
        a = self.policy(self.actor_input(x_next), target=True)
        a = noisy_action(a, noise * c.policy_noise, c.noise_clip)
        q_next = self.q(self.target_input(x_next), a, members, target=True, masks=masks).amin(0)
        return ret + discount * q_next

    def actor_draws(self, batch_size: int) -> dict[str, Tensor]:
        """The draws of `actor_loss`: the online critics of its objective, then their dropout masks (none
        without dropout)."""
        k = self.cfg.q_subsample
        return {"members": self.random_subset(k), **self.critic_masks(batch_size, k)}

    def actor_loss(self, x: Tensor, *, members: Tensor, masks: list[Tensor] | None = None) -> Tensor:
        """-mean_b Q(x, pi(x)), Q reduced over the critics `members`, their units dropped by `masks`."""
        x_pi, x_q = self.actor_inputs(x)
        return -self.actor_objective_q(x_q, self.policy(x_pi), members, masks).mean()

    def update_actor(self, u: Updater, x: Tensor) -> dict:
        """Actor step (the critic's weights held fixed), then the EMA of the target actor."""
        c = self.cfg
        step = u.step(
            self.actor_loss,
            x,
            opt=self.actor_opt,
            max_norm=c.grad_clip,
            frozen=(self.critic,),
            after=self.actor_after,
            **self.actor_draws(len(x)),
        )
        u.ema(self.actor_target, self.actor, c.tau)
        return {"actor_loss": step.loss}


class GumbelTD3Learner(TD3Learner):
    """TD3 for n discrete actions with MR.Q's Gumbel-softmax actor (Fujimoto et al. 2025, arXiv 2501.16142;
    facebookresearch/MRQ at 8a44a7d, `models.py` Policy, `MRQ.py` select_action, train_rl, realign).

    The actor outputs logits u [B, n]; the critics read an action as a vector of width n. Per update:
    1. target  y = R + Γ min_{k∈K} Q̄_k(x', onehot(argmax(softmax((ū + g) / τ) + clip(ε, -c, c)))),
       ū = π̄(x'), g ~ Gumbel(0, 1), ε ~ N(0, σ_target²): the target policy's action by argmax;
    2. critic step on the stored actions, one-hot (the agent hands them so);
    3. actor step on -Q(x, softmax((u + g) / τ)), the Gumbel-softmax relaxation: its gradient reaches u
       through the relaxed action.
    Acting: argmax(softmax((u + g) / τ) + N(0, σ_expl²)) when exploring (σ_expl on the same schedule as the
    continuous actor), argmax(u) otherwise. Draws: Gumbel noise first, then the Gaussian (the code's order).
    """

    def __init__(self, *args, tau: float, **kwargs):
        """TD3Learner's arguments, and `tau` the Gumbel-softmax temperature."""
        super().__init__(*args, **kwargs)
        self.gumbel_tau = tau

    def gumbel(self, batch_size: int) -> Tensor:
        """Gumbel(0, 1) draws [B, n] from the learner's generator."""
        g = self.generator
        return gumbel_noise((batch_size, self.act_dim), g, g.device)

    def act_draws(self, batch: tuple[int, ...], explore: bool) -> dict[str, Tensor]:
        """The draws of `act`: exploring, Gumbel noise [*batch, n], then N(0, sigma_expl^2) [*batch, n];
        evaluating, none."""
        if not explore:
            return {}
        g, shape = self.generator, (*batch, self.act_dim)
        gumbel = gumbel_noise(shape, g, g.device)
        return {"gumbel": gumbel, "noise": self.normal(*shape) * self.expl_sigma}

    def act(self, x: Tensor, *, gumbel: Tensor | None = None, noise: Tensor | None = None) -> Tensor:
        """Indices: argmax(softmax((u + g) / tau) + noise) with the draws of an exploring step, else
        argmax(u)."""
        u = self.actor(self.actor_input(x))
        if gumbel is None:
            return u.argmax(-1)
        return gumbel_action(u, gumbel, self.gumbel_tau, noise, None)

    def target_draws(self, batch_size: int) -> dict[str, Tensor]:
        """Gumbel noise [B, n], then TD3's draws (smoothing noise, target critics)."""
        return {"gumbel": self.gumbel(batch_size), **super().target_draws(batch_size)}

    @torch.no_grad()
    def td_target(
        self,
        ret: Tensor,
        discount: Tensor,
        x_next: Tensor,
        *,
        gumbel: Tensor,
        noise: Tensor,
        members: Tensor,
        masks: list[Tensor] | None = None,
    ) -> Tensor:
        """y = R + discount * min over the target critics `members` (units dropped by `masks`) of
        Q(x', onehot(a')), a' the argmax of the target actor's smoothed Gumbel-softmax."""
        c = self.cfg
        u = self.actor_target(self.actor_input(x_next))
        index = gumbel_action(u, gumbel, self.gumbel_tau, noise * c.policy_noise, c.noise_clip)
        a = one_hot(index, self.act_dim, u.dtype)
        q_next = self.q(self.target_input(x_next), a, members, target=True, masks=masks)
        return ret + discount * q_next.amin(0)

    def actor_draws(self, batch_size: int) -> dict[str, Tensor]:
        """Gumbel noise [B, n], then the online critics of the objective."""
        return {"gumbel": self.gumbel(batch_size), **super().actor_draws(batch_size)}

    def actor_loss(
        self, x: Tensor, *, gumbel: Tensor, members: Tensor, masks: list[Tensor] | None = None
    ) -> Tensor:
        """-mean_b Q(x, softmax((pi(x) + g) / tau)), Q reduced over the critics `members` (units dropped by
        `masks`)."""
        x_pi, x_q = self.actor_inputs(x)
        a = gumbel_softmax(self.actor(x_pi), gumbel, self.gumbel_tau)
        return -self.actor_objective_q(x_q, a, members, masks).mean()
