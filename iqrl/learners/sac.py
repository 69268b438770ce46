"""Soft Actor-Critic learner on the shared critic ensemble (used by `sac` and by `iqrl-sac`).

SAC: Haarnoja et al., "Soft Actor-Critic: Off-Policy Maximum Entropy Deep RL with a Stochastic Actor"
(arXiv 1801.01290) with the automatic temperature of "Soft Actor-Critic Algorithms and Applications"
(arXiv 1812.05905, "SAC v2"). Paper order per update, on detached inputs x [B, in_dim]:

1. target  y = R + Γ (min_{k∈K} Q̄_k(x', a') − α log π(a'|x')),  a' ~ π(·|x')  (current policy; SAC has no
   target actor), K = a random subset of `q_subsample` target critics (all of them for twin critics);
2. critic step on every critic (MSE to y), then EMA of the target critics with rate τ;
3. every `actor_update_freq` critic steps: actor step  J_π = E[α log π(a|x) − Q(x, a)], a ~ π(·|x)
   reparameterised, Q = reduction (`actor_q_reduce`: min | mean) over another random subset;
4. temperature step  J(α) = E[−log α · (log π(a|x) + H̄)]  with target entropy H̄ = −|A| (SAC v2; the
   log-α parameterisation as in softlearning and Stable-Baselines3).

Policy: tanh-squashed Gaussian. The actor outputs (μ, s); log σ = lo + (hi − lo)(tanh(s) + 1)/2 (the soft
bound of SAC+AE); u = μ + σ ε, a = tanh(u);  log π(a|x) = Σ_i [log N(u_i; μ_i, σ_i) − log(1 − tanh²(u_i))],
with log(1 − tanh²(u)) = 2 (log 2 − u − softplus(−2u)) for numerical stability.
Acting: explore=True samples a ~ π(·|x); explore=False takes the mean action tanh(μ).

Hyper-parameters (SACLearnerConfig below + the shared CriticConfig):

| key | value | source |
|---|---|---|
| lr (actor, critic), alpha_lr | 3e-4, 3e-4 (Adam) | SAC v2, Table 1 |
| batch_size | 256 | SAC v2 |
| tau | 0.005, every critic step | SAC v2 |
| gamma | 0.99 | SAC v2 |
| target_entropy | −\\|A\\| (null) | SAC v2 |
| init_temperature | 0.1 | SAC+AE (Yarats et al. 2019, arXiv 1910.01741) and pytorch_sac on DMC; SAC v2's
code starts |
| | | at 1.0, which with DMC rewards of up to 2 per agent step swamps the reward in the first updates |
| log_std_min, log_std_max | −10, 2 (soft tanh bound) | SAC+AE |
| actor_update_freq | 1 for `sac` / `iqrl-sac` (α updated with the actor) | SAC v2 (SAC+AE: 2) |
| critics | 2, min (`sac`); iQRL's 5 with a random pair (`iqrl-sac`) | SAC v2 / the iQRL code |
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from iqrl.core.checks import require
from iqrl.core.update import Updater
from iqrl.learners.critics import CriticConfig, CriticEnsembleLearner
from iqrl.learners.encoders import CriticEncoder
from iqrl.nn.layers import after_step, mlp
from iqrl.nn.maths import soft_bounded, tanh_gaussian
from iqrl.nn.optim import adam


@dataclass
class SACLearnerConfig(CriticConfig):
    """CriticConfig plus the keys of the SAC actor and its temperature."""

    init_temperature: float = 0.1  # initial entropy temperature alpha
    alpha_lr: float = 3e-4  # Adam on log(alpha)
    log_std_min: float = -10.0  # soft bounds of the policy's log std
    log_std_max: float = 2.0  # upper soft bound of the actor's log std
    target_entropy: float | None = None  # None: -|A|

    def validate(self) -> None:
        super().validate()
        checks = [
            (self.init_temperature > 0, f"init_temperature must be > 0, got {self.init_temperature}"),
            (self.alpha_lr > 0, f"alpha_lr must be > 0, got {self.alpha_lr}"),
            (
                self.log_std_min < self.log_std_max,
                f"log_std_min must be < log_std_max, got {self.log_std_min} and {self.log_std_max}",
            ),
        ]
        require(checks)


class SACLearner(CriticEnsembleLearner):
    """Squashed-Gaussian actor and temperature on the shared critic ensemble; acts on x [B, in_dim]."""

    def __init__(
        self,
        cfg: SACLearnerConfig,
        in_dim: int,
        act_dim: int,
        generator: torch.Generator,
        encoder: CriticEncoder | None = None,
    ):
        super().__init__(cfg, in_dim, act_dim, generator, encoder)
        # (mu, s) per action dimension
        self.actor = mlp(
            self.in_dim, cfg.mlp_dims, 2 * act_dim, cfg.init, self.mlp_act, self.mlp_norm, cfg.network
        )
        self.actor_after = after_step(self.actor)
        self.log_alpha = nn.Parameter(torch.tensor(math.log(cfg.init_temperature)))
        self.target_entropy = -float(act_dim) if cfg.target_entropy is None else float(cfg.target_entropy)
        self.actor_opt = adam(self.actor_params(self.actor), lr=cfg.lr)
        self.alpha_opt = self.make_alpha_opt()

    def make_alpha_opt(self) -> torch.optim.Optimizer:
        return adam([self.log_alpha], lr=self.cfg.alpha_lr)

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"actor_opt": self.actor_opt, "critic_opt": self.critic_opt, "alpha_opt": self.alpha_opt}

    @property
    def alpha(self) -> Tensor:
        return self.log_alpha.exp()

    # ------------------------------------------------------------------ policy
    def gaussian(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(mu, log_std) [B, A] of the pre-tanh Gaussian, log_std softly bounded."""
        c = self.cfg
        mu, s = self.actor(x).chunk(2, dim=-1)
        return mu, soft_bounded(s, c.log_std_min, c.log_std_max)

    def policy(self, x: Tensor) -> Tensor:
        """The mean action tanh(mu) (evaluation)."""
        return torch.tanh(self.gaussian(x)[0])

    def sample(self, x: Tensor, eps: Tensor) -> tuple[Tensor, Tensor]:
        """a ~ pi(.|x) reparameterised by eps ~ N(0, 1) [B, A], and log pi(a|x) [B] with the tanh
        correction."""
        return tanh_gaussian(*self.gaussian(x), eps)

    def act_draws(self, batch: tuple[int, ...], explore: bool) -> dict[str, Tensor]:
        """The draws of `act`: exploring, the action's noise eps ~ N(0, 1) [*batch, A]; evaluating, none."""
        return {"eps": self.normal(*batch, self.act_dim)} if explore else {}

    def act(self, x: Tensor, *, eps: Tensor | None = None) -> Tensor:
        """a ~ pi(.|x) by eps when exploring (`act_draws`), else the mean action."""
        x = self.actor_input(x)
        return self.policy(x) if eps is None else self.sample(x, eps)[0]

    # ------------------------------------------------------------------ learning
    def target_draws(self, batch_size: int) -> dict[str, Tensor]:
        """The draws of `td_target`: the next action's noise [B, A], the target critics, then their dropout
        masks (none without dropout)."""
        k = self.cfg.q_subsample
        return {
            "eps": self.normal(batch_size, self.act_dim),
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
        eps: Tensor,
        members: Tensor,
        masks: list[Tensor] | None = None,
    ) -> Tensor:
        """y = R + discount * (min over the target critics `members` of Q(x', a') - alpha log pi(a'|x')),
        a' ~ pi(.|x') by eps, the target critics' units dropped by `masks` (None: none)."""
        a, log_prob = self.sample(self.actor_input(x_next), eps)
        q_next = self.q(self.target_input(x_next), a, members, target=True, masks=masks).amin(0)
        return ret + discount * (q_next - self.alpha * log_prob)

    def actor_draws(self, batch_size: int) -> dict[str, Tensor]:
        """The draws of `actor_loss`: the action's noise [B, A], the critics of its objective, then their
        dropout masks (none without dropout)."""
        k = self.cfg.q_subsample
        return {
            "eps": self.normal(batch_size, self.act_dim),
            "members": self.random_subset(k),
            **self.critic_masks(batch_size, k),
        }

    def actor_loss(
        self, x: Tensor, *, eps: Tensor, members: Tensor, masks: list[Tensor] | None = None
    ) -> tuple[Tensor, Tensor]:
        """(mean over the batch of alpha log pi(a|x) - Q(x, a) with a ~ pi by eps, the temperature held
        fixed and Q reduced over the critics `members`, their units dropped by `masks`; log pi(a|x) [B] for
        the temperature step)."""
        x_pi, x_q = self.actor_inputs(x)
        a, log_prob = self.sample(x_pi, eps)
        q = self.actor_objective_q(x_q, a, members, masks)
        return (self.alpha.detach() * log_prob - q).mean(), log_prob

    def alpha_loss(self, log_prob: Tensor) -> Tensor:
        """-log(alpha) (log pi + target entropy), averaged: alpha grows while the entropy is below target."""
        return -(self.log_alpha * (log_prob + self.target_entropy)).mean()

    def update_actor(self, u: Updater, x: Tensor) -> dict:
        """Actor step on alpha log pi - Q (the critic's weights held fixed), then the temperature step."""
        actor = u.step(
            self.actor_loss,
            x,
            opt=self.actor_opt,
            max_norm=self.cfg.grad_clip,
            frozen=(self.critic,),
            after=self.actor_after,
            **self.actor_draws(len(x)),
        )
        log_prob = actor.aux
        alpha = u.step(self.alpha_loss, log_prob, opt=self.alpha_opt)
        return {
            "actor_loss": actor.loss,
            "alpha_loss": alpha.loss,
            "alpha": self.alpha.detach(),
            "entropy": -log_prob.mean(),
        }
