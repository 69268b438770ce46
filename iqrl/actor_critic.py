"""TD3-style actor-critic shared by iQRL (on its latent) and TD3 (on raw observations).

Paper order per update: n-step target with target-policy smoothing -> critic step (all critics) ->
every `actor_update_freq` critic steps an actor step -> EMA targets (critics every step, actor after
actor steps). The critic ensemble is one vectorised module; the target uses the minimum over a random
subset of `q_subsample` target critics (one draw per update), the actor a reduction (`min` or `mean`)
over another random subset of online critics (iQRL spec §6.3-6.4).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from iqrl.agents import AgentConfig
from iqrl.nn import EnsembleMLP, adam, ema_update_, frozen_copy, linear_schedule, mlp, no_param_grad


@dataclass
class ActorCriticConfig(AgentConfig):
    """RL hyper-parameters of the TD3 family (defaults: iQRL code, spec §6 and §11)."""

    mlp_dims: list[int] = field(default_factory=lambda: [512, 512])  # actor and critic hidden widths
    batch_size: int = 256
    nstep: int = 1  # n-step return length (3 on some tasks, see the task YAML)
    gamma: float = 0.99
    lr: float = 3e-4  # actor and critic (Adam)
    tau: float = 0.005  # EMA rate of target actor and critics
    num_critics: int = 5
    q_subsample: int = 2  # target = min over this many randomly drawn target critics
    actor_q_reduce: str = "mean"  # actor objective over another random subset: mean | min
    critic_loss_reduce: str = "mean"  # over critics: mean (iQRL) | sum (TD3)
    actor_update_freq: int = 2
    policy_noise: float = 0.2  # target-policy smoothing std
    noise_clip: float = 0.3
    expl_sigma_start: float = 1.0  # exploration std, linear over training episodes
    expl_sigma_end: float = 0.1
    expl_sigma_episodes: int = 50  # the code's default; per group 50 easy / 150 medium / 500 hard (task YAML)
    init: str = "default"  # default | orthogonal
    grad_clip: float = 0.0  # gradient-norm clip of the actor and the critic steps; 0 = none (DCWM: 20)
    # Official-code quirks (named switches, off by default; see README "Faithfulness"):
    official_nstep1_gamma_bug: bool = False  # n = 1 targets are undiscounted (gamma = 1)
    official_ignore_terminal: bool = False  # terminal flags ignored in the n > 1 path
    warmup_with_policy: bool = False  # seed episodes: untrained policy + sigma noise, not uniform

    def validate_rl(self) -> None:
        checks = [
            (self.nstep >= 1, f"nstep must be >= 1, got {self.nstep}"),
            (0.0 < self.gamma <= 1.0, f"gamma must be in (0, 1], got {self.gamma}"),
            (self.lr > 0, f"lr must be > 0, got {self.lr}"),
            (0.0 < self.tau <= 1.0, f"tau must be in (0, 1], got {self.tau}"),
            (self.num_critics >= 1, f"num_critics must be >= 1, got {self.num_critics}"),
            (1 <= self.q_subsample <= self.num_critics,
             f"q_subsample must be in 1..num_critics ({self.num_critics}), got {self.q_subsample}"),
            (self.actor_q_reduce in ("mean", "min"), f"actor_q_reduce must be mean or min, got {self.actor_q_reduce!r}"),
            (self.critic_loss_reduce in ("mean", "sum"),
             f"critic_loss_reduce must be mean or sum, got {self.critic_loss_reduce!r}"),
            (self.actor_update_freq >= 1, f"actor_update_freq must be >= 1, got {self.actor_update_freq}"),
            (self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}"),
            (self.policy_noise >= 0, f"policy_noise must be >= 0, got {self.policy_noise}"),
            (self.noise_clip >= 0, f"noise_clip must be >= 0, got {self.noise_clip}"),
            (self.expl_sigma_start >= 0 and self.expl_sigma_end >= 0,
             f"expl_sigma_start and expl_sigma_end must be >= 0, got {self.expl_sigma_start} and {self.expl_sigma_end}"),
            (self.expl_sigma_episodes >= 1, f"expl_sigma_episodes must be >= 1, got {self.expl_sigma_episodes}"),
            (self.init in ("default", "orthogonal"), f"init must be default or orthogonal, got {self.init!r}"),
            (self.grad_clip >= 0, f"grad_clip must be >= 0 (0 = no clipping), got {self.grad_clip}"),
            (all(h >= 1 for h in self.mlp_dims), f"mlp_dims must be positive widths (>= 1), got {list(self.mlp_dims)}"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ValueError(msg)


def latent_model_checks(fsq_levels, latent_dim: int, horizon: int, rho: float, enc_mlp_dims=(), enc_lr: float = 1.0,
                        enc_weight_decay: float = 0.0, fsq_symmetric: bool = False) -> list[tuple[bool, str]]:
    """Validation shared by the agents with an FSQ latent model rolled out over a horizon (iQRL, DCWM)."""
    levels = list(fsq_levels)
    return [
        (all(h >= 1 for h in enc_mlp_dims),
         f"agent.enc_mlp_dims must be positive widths (>= 1), got {list(enc_mlp_dims)}"),
        (enc_lr > 0, f"agent.enc_lr must be > 0, got {enc_lr}"),
        (enc_weight_decay >= 0, f"agent.enc_weight_decay must be >= 0, got {enc_weight_decay}"),
        (len(levels) >= 1 and all(int(v) >= 2 for v in levels),
         f"agent.fsq_levels must be a non-empty list of ints >= 2, got {levels}"),
        # The standard FSQ bound shifts a 2-level channel by atanh(0.5 / 0.5005) ~ 3.8 (nn.FSQ, docs/fsq.md).
        (fsq_symmetric or 2 not in levels,
         f"agent.fsq_levels={levels} has a level of 2, which the standard FSQ bound maps to one code for every "
         "pre-activation above -3.8, so the latent is constant at initialisation and gets almost no gradient; "
         "use agent.fsq_symmetric=true (levels symmetric about 0, arXiv 2411.19842) or levels >= 3"),
        (latent_dim >= 1, f"agent.latent_dim must be >= 1, got {latent_dim}"),
        (horizon >= 1, f"agent.horizon must be >= 1, got {horizon}"),
        (0.0 < rho <= 1.0, f"agent.rho must be in (0, 1], got {rho}"),
    ]


class CriticEnsembleLearner(nn.Module):
    """What every actor-critic here shares: a vectorised critic ensemble with an EMA target, random
    critic subsets, the critic step, and the counters and optimizer state a checkpoint needs.
    Subclasses add the actor: `td_target` (the bootstrap target) and `update_actor` (metrics dict)."""

    def __init__(self, cfg: ActorCriticConfig, in_dim: int, act_dim: int, generator: torch.Generator):
        super().__init__()
        self.cfg = cfg
        self.act_dim = act_dim
        self.generator = generator
        self.critic = EnsembleMLP(cfg.num_critics, in_dim + act_dim, cfg.mlp_dims, 1, cfg.init)
        self.critic_target = frozen_copy(self.critic)
        self.critic_opt = adam(self.critic.parameters(), lr=cfg.lr)
        self.critic_steps = 0
        self.episodes_trained = 0  # index into per-episode schedules (exploration noise)
        # Random draws handed in from outside (the K-seed mode of iqrl/multiseed.py draws each seed's
        # numbers from its own generator, in `predraw` order, then runs the update vectorised): when set,
        # `_random_subset` and `_randn` pop from this list instead of drawing.
        self.predrawn: list[Tensor] | None = None

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"critic_opt": self.critic_opt}

    def _random_subset(self, k: int, device) -> Tensor:
        if self.predrawn is not None:
            return self.predrawn.pop(0)
        n = self.cfg.num_critics
        if k == n:
            return torch.arange(n, device=device)
        return torch.randperm(n, generator=self.generator, device=self.generator.device)[:k].to(device)

    def _randn(self, shape, device) -> Tensor:
        if self.predrawn is not None:
            return self.predrawn.pop(0)
        return torch.randn(shape, generator=self.generator, device=device)

    def q(self, x: Tensor, a: Tensor, members: Tensor | None = None, target: bool = False) -> Tensor:
        """Q-values [E, B] of the online (or target) critics `members` (all when None)."""
        net = self.critic_target if target else self.critic
        return net(torch.cat([x, a], -1), members).squeeze(-1).float()

    def td_target(self, ret: Tensor, discount: Tensor, x_next: Tensor) -> Tensor:
        raise TypeError(f"{type(self).__name__} must define td_target")

    def update_actor(self, x: Tensor) -> dict:
        raise TypeError(f"{type(self).__name__} must define update_actor")

    def update(self, x: Tensor, action: Tensor, ret: Tensor, discount: Tensor, x_next: Tensor) -> dict:
        """One critic step on every critic (+ an actor step every `actor_update_freq`), detached inputs."""
        c = self.cfg
        y = self.td_target(ret, discount, x_next)
        q_loss, q = self.critic_loss(x, action, y)
        self.critic_opt.zero_grad(set_to_none=True)
        q_loss.backward()
        metrics = {"q_loss": q_loss.detach(), "q_mean": q.detach().mean(), "target_mean": y.mean()}
        if c.grad_clip > 0:
            metrics["q_grad_norm"] = nn.utils.clip_grad_norm_(self.critic.parameters(), c.grad_clip)
        self.critic_opt.step()
        ema_update_(self.critic_target.parameters(), self.critic.parameters(), c.tau)
        self.critic_steps += 1
        if self.critic_steps % c.actor_update_freq == 0:
            metrics.update(self.update_actor(x))
        return metrics

    def critic_loss(self, x: Tensor, action: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """(loss, Q [E, B]): per-critic MSE to the target y, reduced over critics by `critic_loss_reduce`."""
        q = self.q(x, action)
        per_critic = ((q - y) ** 2).mean(1)
        return (per_critic.mean() if self.cfg.critic_loss_reduce == "mean" else per_critic.sum()), q

    def actor_objective_q(self, x: Tensor, a: Tensor) -> Tensor:
        """Q [B] for the actor's objective: `actor_q_reduce` over a random subset of online critics."""
        c = self.cfg
        q = self.q(x, a, self._random_subset(c.q_subsample, x.device))
        return q.mean(0) if c.actor_q_reduce == "mean" else q.amin(0)

    def extra_state(self) -> dict:
        return {"critic_steps": self.critic_steps, "episodes_trained": self.episodes_trained,
                **{k: o.state_dict() for k, o in self.optimizers().items()}}

    def load_extra_state(self, s: dict) -> None:
        self.critic_steps, self.episodes_trained = s["critic_steps"], s["episodes_trained"]
        for k, o in self.optimizers().items():
            o.load_state_dict(s[k])


class TD3Learner(CriticEnsembleLearner):
    """TD3 actor (deterministic, target copy, target-policy smoothing) on the shared critic ensemble."""

    def __init__(self, cfg: ActorCriticConfig, in_dim: int, act_dim: int, generator: torch.Generator):
        super().__init__(cfg, in_dim, act_dim, generator)
        self.actor = mlp(in_dim, cfg.mlp_dims, act_dim, cfg.init)
        self.actor_target = frozen_copy(self.actor)
        self.actor_opt = adam(self.actor.parameters(), lr=cfg.lr)

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"actor_opt": self.actor_opt, "critic_opt": self.critic_opt}

    # ------------------------------------------------------------------ acting
    def policy(self, x: Tensor, target: bool = False) -> Tensor:
        return torch.tanh((self.actor_target if target else self.actor)(x))

    @property
    def expl_sigma(self) -> float:
        c = self.cfg
        return linear_schedule(c.expl_sigma_start, c.expl_sigma_end, c.expl_sigma_episodes, self.episodes_trained)

    def explore(self, action: Tensor) -> Tensor:
        noise = torch.randn(action.shape, generator=self.generator, device=action.device) * self.expl_sigma
        return (action + noise).clamp(-1.0, 1.0)

    def act(self, x: Tensor, explore: bool) -> Tensor:
        """Behaviour action: pi(x) plus the scheduled Gaussian noise when exploring, else pi(x)."""
        a = self.policy(x)
        return self.explore(a) if explore else a

    # ------------------------------------------------------------------ learning
    @torch.no_grad()
    def td_target(self, ret: Tensor, discount: Tensor, x_next: Tensor) -> Tensor:
        """y = R + discount * min over a random subset of target critics of Q(x', smoothed pi'(x'))."""
        c = self.cfg
        a = self.policy(x_next, target=True)
        noise = self._randn(a.shape, a.device) * c.policy_noise
        a = (a + noise.clamp(-c.noise_clip, c.noise_clip)).clamp(-1.0, 1.0)
        q_next = self.q(x_next, a, self._random_subset(c.q_subsample, a.device), target=True).amin(0)
        return ret + discount * q_next

    def update_actor(self, x: Tensor) -> dict:
        c = self.cfg
        # Only the actor is stepped: freeze the critic so backward skips its weight gradients.
        with no_param_grad(self.critic):
            loss = self.actor_loss(x)
            self.actor_opt.zero_grad(set_to_none=True)
            loss.backward()
        if c.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.actor.parameters(), c.grad_clip)
        self.actor_opt.step()
        ema_update_(self.actor_target.parameters(), self.actor.parameters(), c.tau)
        return {"actor_loss": loss.detach()}


    def actor_loss(self, x: Tensor) -> Tensor:
        return -self.actor_objective_q(x, self.policy(x)).mean()

    def predraw(self, batch_size: int) -> list[Tensor]:
        """The random draws of the next `update` call, in the order it makes them: the target-policy
        smoothing noise and the target critics in `td_target`, then the actor's critics if that call
        takes an actor step. Drawn from this learner's generator, so the stream is the same as drawing
        inside `update`."""
        c = self.cfg
        draws = [self._randn((batch_size, self.act_dim), self.generator.device),
                 self._random_subset(c.q_subsample, self.generator.device)]
        if (self.critic_steps + 1) % c.actor_update_freq == 0:
            draws.append(self._random_subset(c.q_subsample, self.generator.device))
        return draws


def to_tensor(obs: np.ndarray, device) -> Tensor:
    return torch.as_tensor(np.asarray(obs, dtype=np.float32), device=device)
