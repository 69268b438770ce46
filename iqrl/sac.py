"""Soft Actor-Critic learner with TD3Learner's call shape (used by `sac` and by `iqrl-sac`).

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

Hyper-parameters (SACConfig below + the shared ActorCriticConfig):

| key | value | source |
|---|---|---|
| lr (actor, critic), alpha_lr | 3e-4, 3e-4 (Adam) | SAC v2, Table 1 |
| batch_size | 256 | SAC v2 |
| tau | 0.005, every critic step | SAC v2 |
| gamma | 0.99 | SAC v2 |
| target_entropy | −\\|A\\| (null) | SAC v2 |
| init_temperature | 0.1 | SAC+AE (Yarats et al. 2019, arXiv 1910.01741) and pytorch_sac on DMC; SAC v2's code starts |
| | | at 1.0, which with DMC rewards of up to 2 per agent step swamps the reward in the first updates |
| log_std_min, log_std_max | −10, 2 (soft tanh bound) | SAC+AE |
| actor_update_freq | 1 for `sac` / `iqrl-sac` (α updated with the actor) | SAC v2 (SAC+AE: 2) |
| critics | 2, min (`sac`); iQRL's 5 with a random pair (`iqrl-sac`) | SAC v2 / iQRL spec §6.3 |

The TD3-only keys of ActorCriticConfig (policy_noise, noise_clip, expl_sigma_*) are not used by SAC.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from iqrl.actor_critic import ActorCriticConfig
from iqrl.nn import EnsembleMLP, ema_update_, frozen_copy, mlp

_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


@dataclass
class SACConfig(ActorCriticConfig):
    """ActorCriticConfig plus SAC's own keys (read only when the SAC learner is used)."""

    init_temperature: float = 0.1  # initial entropy temperature alpha
    alpha_lr: float = 3e-4  # Adam on log(alpha)
    log_std_min: float = -10.0  # soft bounds of the policy's log std
    log_std_max: float = 2.0
    target_entropy: float | None = None  # None: -|A|

    def validate_sac(self) -> None:
        checks = [
            (self.init_temperature > 0, f"init_temperature must be > 0, got {self.init_temperature}"),
            (self.alpha_lr > 0, f"alpha_lr must be > 0, got {self.alpha_lr}"),
            (self.log_std_min < self.log_std_max,
             f"log_std_min must be < log_std_max, got {self.log_std_min} and {self.log_std_max}"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ValueError(msg)


def tanh_log_det(u: Tensor) -> Tensor:
    """log(1 - tanh(u)^2) elementwise, computed stably as 2 (log 2 - u - softplus(-2u))."""
    return 2.0 * (math.log(2.0) - u - F.softplus(-2.0 * u))


class SACLearner(nn.Module):
    """Squashed-Gaussian actor, critic ensemble + EMA targets, temperature; acts on x [B, in_dim]."""

    def __init__(self, cfg: SACConfig, in_dim: int, act_dim: int, generator: torch.Generator):
        super().__init__()
        self.cfg = cfg
        self.act_dim = act_dim
        self.generator = generator
        self.actor = mlp(in_dim, cfg.mlp_dims, 2 * act_dim, cfg.init)  # (mu, s) per action dimension
        self.critic = EnsembleMLP(cfg.num_critics, in_dim + act_dim, cfg.mlp_dims, 1, cfg.init)
        self.critic_target = frozen_copy(self.critic)
        self.log_alpha = nn.Parameter(torch.tensor(math.log(cfg.init_temperature)))
        self.target_entropy = -float(act_dim) if cfg.target_entropy is None else float(cfg.target_entropy)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=cfg.lr)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=cfg.lr)
        self.alpha_opt = torch.optim.Adam([self.log_alpha], lr=cfg.alpha_lr)
        self.critic_steps = 0
        self.episodes_trained = 0  # kept for the agents' per-episode hook; SAC has no noise schedule

    @property
    def alpha(self) -> Tensor:
        return self.log_alpha.exp()

    # ------------------------------------------------------------------ policy
    def gaussian(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(mu, log_std) [B, A] of the pre-tanh Gaussian, log_std softly bounded."""
        c = self.cfg
        mu, s = self.actor(x).chunk(2, dim=-1)
        log_std = c.log_std_min + 0.5 * (c.log_std_max - c.log_std_min) * (torch.tanh(s) + 1.0)
        return mu, log_std

    def policy(self, x: Tensor) -> Tensor:
        """The mean action tanh(mu) (evaluation)."""
        return torch.tanh(self.gaussian(x)[0])

    def sample(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """a ~ pi(.|x) (reparameterised) and log pi(a|x) [B] with the tanh correction."""
        mu, log_std = self.gaussian(x)
        eps = torch.randn(mu.shape, generator=self.generator, device=mu.device)
        u = mu + log_std.exp() * eps
        log_prob = (-0.5 * eps ** 2 - log_std - _LOG_SQRT_2PI - tanh_log_det(u)).sum(-1)
        return torch.tanh(u), log_prob

    def act(self, x: Tensor, explore: bool) -> Tensor:
        return self.sample(x)[0] if explore else self.policy(x)

    # ------------------------------------------------------------------ critics
    def _random_subset(self, k: int, device) -> Tensor:
        n = self.cfg.num_critics
        if k == n:
            return torch.arange(n, device=device)
        return torch.randperm(n, generator=self.generator, device=self.generator.device)[:k].to(device)

    def q(self, x: Tensor, a: Tensor, members: Tensor | None = None, target: bool = False) -> Tensor:
        """Q-values [E, B] of the online (or target) critics `members` (all when None)."""
        return (self.critic_target if target else self.critic)(torch.cat([x, a], -1), members).squeeze(-1)

    # ------------------------------------------------------------------ learning
    @torch.no_grad()
    def td_target(self, ret: Tensor, discount: Tensor, x_next: Tensor) -> Tensor:
        """y = R + discount * (min over a random subset of target critics of Q(x', a') - alpha log pi(a'|x'))."""
        a, log_prob = self.sample(x_next)
        q_next = self.q(x_next, a, self._random_subset(self.cfg.q_subsample, a.device), target=True).amin(0)
        return ret + discount * (q_next - self.alpha * log_prob)

    def update(self, x: Tensor, action: Tensor, ret: Tensor, discount: Tensor, x_next: Tensor) -> dict:
        """One critic step (+ actor and temperature steps every `actor_update_freq`) on detached inputs."""
        c = self.cfg
        y = self.td_target(ret, discount, x_next)
        q = self.q(x, action)  # [E, B]
        per_critic = ((q - y) ** 2).mean(1)
        q_loss = per_critic.mean() if c.critic_loss_reduce == "mean" else per_critic.sum()
        self.critic_opt.zero_grad(set_to_none=True)
        q_loss.backward()
        self.critic_opt.step()
        ema_update_(self.critic_target.parameters(), self.critic.parameters(), c.tau)
        self.critic_steps += 1
        metrics = {"q_loss": q_loss.detach(), "q_mean": q.detach().mean(), "target_mean": y.mean()}
        if self.critic_steps % c.actor_update_freq == 0:
            metrics.update(self.update_actor_and_alpha(x))
        return metrics

    def update_actor_and_alpha(self, x: Tensor) -> dict:
        c = self.cfg
        a, log_prob = self.sample(x)
        q = self.q(x, a, self._random_subset(c.q_subsample, x.device))
        q = q.mean(0) if c.actor_q_reduce == "mean" else q.amin(0)
        actor_loss = (self.alpha.detach() * log_prob - q).mean()
        self.actor_opt.zero_grad(set_to_none=True)
        actor_loss.backward()
        self.actor_opt.step()
        alpha_loss = -(self.log_alpha * (log_prob.detach() + self.target_entropy)).mean()
        self.alpha_opt.zero_grad(set_to_none=True)
        alpha_loss.backward()
        self.alpha_opt.step()
        return {"actor_loss": actor_loss.detach(), "alpha_loss": alpha_loss.detach(),
                "alpha": self.alpha.detach(), "entropy": -log_prob.detach().mean()}

    # ------------------------------------------------------------------ state
    def extra_state(self) -> dict:
        return {"critic_steps": self.critic_steps, "episodes_trained": self.episodes_trained,
                "actor_opt": self.actor_opt.state_dict(), "critic_opt": self.critic_opt.state_dict(),
                "alpha_opt": self.alpha_opt.state_dict()}

    def load_extra_state(self, s: dict) -> None:
        self.critic_steps, self.episodes_trained = s["critic_steps"], s["episodes_trained"]
        self.actor_opt.load_state_dict(s["actor_opt"])
        self.critic_opt.load_state_dict(s["critic_opt"])
        self.alpha_opt.load_state_dict(s["alpha_opt"])
