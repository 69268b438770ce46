"""TD3's actor on the shared critic ensemble (Fujimoto et al. 2018, arXiv 1802.09477).

Per update, on detached inputs x [B, in_dim] (`CriticEnsembleLearner.update` runs the steps in order):
1. target  y = R + Γ min_{k∈K} Q̄_k(x', clip(π̄(x') + clip(ε, -c, c), -1, 1)),  ε ~ N(0, σ_target²)
   (target-policy smoothing), K a random subset of `q_subsample` target critics;
2. critic step on every critic (MSE to y), EMA of the target critics;
3. every `actor_update_freq` critic steps: actor step on -Q(x, π(x)), Q reduced over a random subset of
   online critics (`actor_q_reduce`), then EMA of the target actor.
Acting: π(x) plus N(0, σ_expl²) noise when exploring, σ_expl decaying linearly over training episodes (the
iQRL code's schedule), clipped to [-1, 1].
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from iqrl.core.checks import require
from iqrl.learners.critics import CriticConfig, CriticEnsembleLearner
from iqrl.learners.encoders import CriticEncoder
from iqrl.nn.layers import frozen_copy, mlp
from iqrl.nn.maths import add_clipped_noise, ema_update_, linear_schedule
from iqrl.nn.optim import adam, detached_weights, optimizer_step


@dataclass
class TD3LearnerConfig(CriticConfig):
    """CriticConfig plus the keys of the TD3 actor: target-policy smoothing and exploration noise."""

    policy_noise: float = 0.2  # target-policy smoothing std
    noise_clip: float = 0.3
    expl_sigma_start: float = 1.0  # exploration std, linear over training episodes
    expl_sigma_end: float = 0.1
    expl_sigma_episodes: int = 50  # the code's default; per group 50 easy / 150 medium / 500 hard (task YAML)

    def validate_rl(self) -> None:
        super().validate_rl()
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
        self.actor = mlp(self.in_dim, cfg.mlp_dims, act_dim, cfg.init, self.mlp_act, self.mlp_norm)
        self.actor_target = frozen_copy(self.actor)
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

    def explore(self, action: Tensor) -> Tensor:
        return add_clipped_noise(action, self.expl_sigma, None, self.generator)

    def act(self, x: Tensor, explore: bool) -> Tensor:
        """Behaviour action: pi(x) plus the scheduled Gaussian noise when exploring, else pi(x)."""
        a = self.policy(self.actor_input(x))
        return self.explore(a) if explore else a

    # ------------------------------------------------------------------ learning
    @torch.no_grad()
    def td_target(self, ret: Tensor, discount: Tensor, x_next: Tensor) -> Tensor:
        """y = R + discount * min over a random subset of target critics of Q(x', smoothed pi'(x'))."""
        c = self.cfg
        a = self.policy(self.actor_input(x_next), target=True)
        noise = self._randn(a.shape, a.device) * c.policy_noise
        a = (a + noise.clamp(-c.noise_clip, c.noise_clip)).clamp(-1.0, 1.0)
        members = self._random_subset(c.q_subsample, a.device)
        q_next = self.q(self.target_input(x_next), a, members, target=True).amin(0)
        return ret + discount * q_next

    def update_actor(self, x: Tensor) -> dict:
        c = self.cfg
        # Only the actor is stepped: the critic's weights are detached, so backward skips their gradients.
        loss = detached_weights(self.actor_loss, self.critic)(x)
        optimizer_step(self.actor_opt, loss, self.actor_params(self.actor), c.grad_clip)
        ema_update_(self.actor_target.parameters(), self.actor.parameters(), c.tau)
        return {"actor_loss": loss.detach()}

    def actor_loss(self, x: Tensor) -> Tensor:
        x_pi, x_q = self.actor_inputs(x)
        return -self.actor_objective_q(x_q, self.policy(x_pi)).mean()

    def predraw(self, batch_size: int) -> list[Tensor]:
        """The random draws of the next `update` call, in the order it makes them: the target-policy
        smoothing noise and the target critics in `td_target`, then the actor's critics if that call
        takes an actor step. Drawn from this learner's generator, so the stream is the same as drawing
        inside `update`."""
        c = self.cfg
        draws = [
            self._randn((batch_size, self.act_dim), self.generator.device),
            self._random_subset(c.q_subsample, self.generator.device),
        ]
        if (self.critic_steps + 1) % c.actor_update_freq == 0:
            draws.append(self._random_subset(c.q_subsample, self.generator.device))
        return draws
