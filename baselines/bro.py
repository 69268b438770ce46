"""BRO: Bigger, Regularized, Optimistic (Nauman et al., NeurIPS 2024, arXiv 2405.16158), as its code runs it
(naumix/BiggerRegularizedOptimistic at 5870a13: `jaxrl/bro/bro_learner.py`, `actor.py`, `critic.py`,
`temperature.py`, `jaxrl/networks/`, `configs/bro_default.py`, `train_parallel.py`).

SAC with BroNet networks (iqrl/nn/trunks.py: residual blocks of Linear -> LayerNorm -> ReLU pairs, every
Linear orthogonal with gain sqrt(2)), quantile critics, optimistic exploration by a second actor, and
resets. Networks: two critics BroNet(512, 2 blocks) -> 100 quantiles of Q(s, a); the actor BroNet(256, 1
block) -> mean and log-std (soft-bounded to [-10, 2]) of a tanh-Gaussian; the optimistic actor
BroNet(256, 1 block) on [s, mu_c(s)] -> a shift of the mean (a bias-free Linear, orthogonal gain 0.01).

Resets: when the replay first holds `reset_at` transitions, before that step's updates, every network and
scalar is drawn afresh and every optimizer's state forgotten. The code's steps: its loop stores transition i
(from 1), then calls `agent.update(..., i)`, which resets first when i is in `reset_list` =
[15001, 50001, 250001, 500001, 750001, 1000001, 1500001, 2000001] at UTD 10, only the first at UTD 2
(naumix/BiggerRegularizedOptimistic@5870a13:train_parallel.py, the loop of `main`;
naumix/BiggerRegularizedOptimistic@5870a13:jaxrl/bro/bro_learner.py, `BRO.__init__` and `BRO.update`):
`reset_at` holds those counts, so a reset comes at the code's step.

One update, in the code's order (`_update`), on a batch of 128 transitions:
1. critics: a' ~ pi(s'), Z' = (Z1'(s', a') + Z2'(s', a')) / 2 - beta_p |Z1' - Z2'| / 2 per quantile (target
   critics, pessimism beta_p = 0), y = r + gamma m (Z' - alpha log pi(a'|s')); the quantile Huber loss
   (kappa 1, levels tau_i = (2i + 1) / 200) of each critic to the 100 targets, summed over the two;
   then the EMA of the target critics (tau 0.005);
2. actor: mean of alpha log pi(a|s) - Q(s, a), a ~ pi(s), Q the mean over quantiles of the critics' mean
   (minus beta_p |Z1 - Z2| / 2), alpha held fixed;
3. optimistic actor: mu_o = mu_c(s) + shift(s, mu_c(s)), sigma_o = 0.75 sigma_c(s) (the actor's, held
   fixed), a ~ tanh N(mu_o, sigma_o); loss -mean Q_ub(s, a) + lambda KL(N(mu_o, sigma_o / 0.75) ||
   N(mu_c, sigma_c)), Q_ub = mean over quantiles of (Z1 + Z2) / 2 + beta_o |Z1 - Z2| / 2;
4. temperature: loss alpha (H - H_target), H the entropy estimate of step 2, H_target = -|A| / 2
   (Adam, lr 3e-4, beta1 0.5; the gradient through alpha = exp(log alpha), as jaxrl writes it);
5. optimism beta_o and KL weight lambda (each exp of a tanh-bounded log in [-10, 7.5], Adam lr 3e-5, beta1
   0.5): losses (beta_o - beta_p)(KL / |A| - 0.05) and -lambda (KL / |A| - 0.05), KL from step 3: the
   optimistic actor may drift from the actor by 0.05 nats per action dimension.
Actors and critics: AdamW (lr 3e-4, weight decay 1e-4 on every parameter, optax's default). Exploration
samples the optimistic actor; evaluation takes tanh(mu_c(s)).

Update-to-data ratio (`utd`): updates per stored transition, 2 (`bro`, the paper's "BRO (fast)") or 10
(`bro-utd10`, its default), after every agent step. The code acts on DMC at every physics step (action
repeat 1) with 2500 seed steps; here the harness's action repeat 2 and the code's 2500 transitions of
uniform random actions (BROConfig.SEED_PHASE: 5000 env steps), so `utd` is per agent step: `action_repeat=1`
runs the code's protocol.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from iqrl.core.checks import require
from iqrl.core.interface import Agent, AgentConfig, AgentSpec, Part, to_tensor
from iqrl.core.replay import nstep_transition
from iqrl.core.schedule import PerStep, SeedPhase
from iqrl.nn.layers import draw_seed, frozen_copy
from iqrl.nn.maths import quantile_huber_loss, quantile_midpoints, soft_bounded, tanh_gaussian
from iqrl.nn.optim import adam
from iqrl.nn.trunks import Dense, ResidualNet, Trunk, orthogonal_, residual_shape, residual_widths_check


@dataclass
class BROConfig(AgentConfig):
    # 2500 transitions of uniform actions (at the code's action repeat 1: its env steps)
    SEED_PHASE: ClassVar[SeedPhase] = SeedPhase(
        agent_steps=2500, source="naumix/BiggerRegularizedOptimistic@5870a13 train_parallel.py:28, 74"
    )
    # the tests' tiny sizes (AgentConfig.TINY): one update per two transitions, whatever the preset, and a
    # reset inside the tests' runs (at 300 transitions: 600 env steps), so that resuming crosses one
    TINY: ClassVar[dict] = {
        "mlp_dims": [32, 32],
        "actor_mlp_dims": [16],
        "num_quantiles": 8,
        "batch_size": 16,
        "utd": 0.5,
        "reset_at": [300],
    }

    name: str = "bro"
    mlp_dims: list[int] = field(default_factory=lambda: [512, 512])  # critics: BroNet blocks of this width
    actor_mlp_dims: list[int] = field(default_factory=lambda: [256])  # both actors
    num_quantiles: int = 100  # quantiles of each critic's return distribution (QR-DQN's loss)
    batch_size: int = 128  # transitions per gradient update
    gamma: float = 0.99  # discount
    tau: float = 0.005  # EMA rate of the target critics
    lr: float = 3e-4  # actors and critics (AdamW)
    weight_decay: float = 1e-4  # AdamW's decoupled weight decay of the actors and critics
    init_temperature: float = 1.0  # initial entropy temperature alpha
    alpha_lr: float = 3e-4  # temperature (Adam, beta1 0.5)
    target_entropy: float | None = None  # None: -|A| / 2
    adjust_lr: float = 3e-5  # optimism and KL weight (Adam, beta1 0.5)
    init_optimism: float = 1.0  # initial optimism beta_o of the optimistic actor's objective
    init_kl_weight: float = 0.25  # initial weight of the KL from the optimistic actor to the actor
    kl_target: float = 0.05  # nats per action dimension
    std_multiplier: float = 0.75  # the optimistic actor's std: this times the actor's
    pessimism: float = 0.0  # beta_p of the critics' target and the actor's objective
    log_std_min: float = -10.0  # lower soft bound of the actor's log std (tanh-scaled into [min, max])
    log_std_max: float = 2.0  # upper soft bound of the actor's log std
    utd: float = 2.0  # updates per stored transition (per agent step)
    UTD_KEY = "utd"  # updates_per_step may only agree with it (AgentConfig.UTD_KEY)
    # stored transitions (agent steps) at which every network, optimizer and scalar is reset, before that
    # step's updates: the code's steps (`reset_list` of naumix/BiggerRegularizedOptimistic@5870a13:
    # jaxrl/bro/bro_learner.py; its step i updates after storing transition i): only the first at UTD 2,
    # `bro-utd10` the code's list for UTD 10
    reset_at: list[int] = field(default_factory=lambda: [15_001])

    def validate(self) -> None:
        super().validate()
        require(
            [
                residual_widths_check("mlp_dims", self.mlp_dims),
                residual_widths_check("actor_mlp_dims", self.actor_mlp_dims),
                (self.num_quantiles >= 1, f"agent.num_quantiles must be >= 1, got {self.num_quantiles}"),
                (self.batch_size >= 1, f"agent.batch_size must be >= 1, got {self.batch_size}"),
                (0.0 < self.gamma <= 1.0, f"agent.gamma must be in (0, 1], got {self.gamma}"),
                (0.0 < self.tau <= 1.0, f"agent.tau must be in (0, 1], got {self.tau}"),
                (
                    min(self.lr, self.alpha_lr, self.adjust_lr) > 0,
                    f"agent.lr, alpha_lr and adjust_lr must be > 0, got {self.lr}, {self.alpha_lr} and "
                    f"{self.adjust_lr}",
                ),
                (self.weight_decay >= 0, f"agent.weight_decay must be >= 0, got {self.weight_decay}"),
                (
                    min(self.init_temperature, self.init_optimism, self.init_kl_weight) > 0,
                    "agent.init_temperature, init_optimism and init_kl_weight must be > 0",
                ),
                (
                    math.exp(ADJUST_LOW) < self.init_optimism < math.exp(ADJUST_HIGH)
                    and math.exp(ADJUST_LOW) < self.init_kl_weight < math.exp(ADJUST_HIGH),
                    f"agent.init_optimism and init_kl_weight must lie in (e^{ADJUST_LOW}, e^{ADJUST_HIGH})",
                ),
                (self.kl_target > 0, f"agent.kl_target must be > 0, got {self.kl_target}"),
                (self.std_multiplier > 0, f"agent.std_multiplier must be > 0, got {self.std_multiplier}"),
                (self.pessimism >= 0, f"agent.pessimism must be >= 0, got {self.pessimism}"),
                (
                    self.log_std_min < self.log_std_max,
                    f"agent.log_std_min must be < agent.log_std_max, got {self.log_std_min} and "
                    f"{self.log_std_max}",
                ),
                (self.utd > 0, f"agent.utd must be > 0, got {self.utd}"),
                (
                    all(r >= 1 for r in self.reset_at) and list(self.reset_at) == sorted(set(self.reset_at)),
                    f"agent.reset_at must be increasing positive counts, got {list(self.reset_at)}",
                ),
            ]
        )


# The optimism and the KL weight are exp(v), v = low + (high - low) (tanh(p) + 1) / 2 (`Adjustment`).
ADJUST_LOW, ADJUST_HIGH = -10.0, 7.5


def adjustment_parameter(value: float) -> float:
    """The raw parameter p at which an adjustment equals `value` (the code's `calculate_init_values`)."""
    return math.atanh((math.log(value) - ADJUST_LOW) / (0.5 * (ADJUST_HIGH - ADJUST_LOW)) - 1.0)


class Scalars(nn.Module):
    """BRO's learned scalars: log alpha (the temperature), and the raw parameters of the optimism beta_o and
    the KL weight lambda."""

    def __init__(self, c: BROConfig):
        super().__init__()
        self.log_alpha = nn.Parameter(torch.tensor(math.log(c.init_temperature)))
        self.optimism_p = nn.Parameter(torch.tensor(adjustment_parameter(c.init_optimism)))
        self.kl_weight_p = nn.Parameter(torch.tensor(adjustment_parameter(c.init_kl_weight)))

    def alpha(self) -> Tensor:
        return self.log_alpha.exp()

    def optimism(self) -> Tensor:
        return soft_bounded(self.optimism_p, ADJUST_LOW, ADJUST_HIGH).exp()

    def kl_weight(self) -> Tensor:
        return soft_bounded(self.kl_weight_p, ADJUST_LOW, ADJUST_HIGH).exp()


class Actor(nn.Module):
    """BroNet -> (mu, log_std soft-bounded to [low, high]) of the pre-tanh Gaussian."""

    def __init__(self, obs_dim: int, act_dim: int, dims: list[int], low: float, high: float):
        super().__init__()
        self.trunk = Trunk("bronet", obs_dim, *residual_shape(dims))
        self.mu = orthogonal_(Dense(self.trunk.width, act_dim), math.sqrt(2))
        self.log_std = orthogonal_(Dense(self.trunk.width, act_dim), 1.0)
        self.low, self.high = low, high

    def forward(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        h = self.trunk(obs)
        return self.mu(h), soft_bounded(self.log_std(h), self.low, self.high)


class OptimisticShift(nn.Module):
    """BRO's `DualTanhPolicy` without the std: BroNet([s, mu_c]) -> a bias-free shift of the mean, its
    Linear orthogonal with gain 0.01 (the optimistic actor starts at the actor's mean)."""

    def __init__(self, obs_dim: int, act_dim: int, dims: list[int]):
        super().__init__()
        self.trunk = Trunk("bronet", obs_dim + act_dim, *residual_shape(dims))
        self.shift = orthogonal_(Dense(self.trunk.width, act_dim, bias=False), 0.01)

    def forward(self, obs: Tensor, mu_c: Tensor) -> Tensor:
        return mu_c + self.shift(self.trunk(torch.cat([obs, mu_c], -1)))


class BRO(Agent):
    # the KL per action dimension divides by the actor's variance, about 3e-4 at initialisation (log-std
    # -4): compiled and eager rounding, 1e-7 apart, reach 4e-5 of it within 50 updates
    COMPILE_TOLERANCE = 1e-4
    STATE_VALUES = ("resets_done",)
    STATE_OBJECTS = (
        "actor",
        "optimistic",
        "critic",
        "critic_target",
        "scalars",
        "actor_opt",
        "optimistic_opt",
        "critic_opt",
        "alpha_opt",
        "adjust_opt",
    )
    TRANSFER_PARTS = {
        "actor": Part(("actor", "optimistic", "scalars")),
        "critic": Part(("critic", "critic_target"), ("num_quantiles",)),
        "optimizers": Part(("actor_opt", "optimistic_opt", "critic_opt", "alpha_opt", "adjust_opt")),
    }

    def __init__(self, cfg: BROConfig, obs_dim: int, act_dim: int, device: torch.device, seed: int):
        super().__init__(cfg, device, seed)
        c = cfg
        self.spec = AgentSpec(seq_len=1, batch_size=c.batch_size, updates_per_agent_step=c.utd)
        self.schedule = PerStep()  # the code updates after every env step
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.actor, self.optimistic, self.critic, self.scalars = self.build_networks()
        self.critic_target = frozen_copy(self.critic)
        self.actor_opt = adam(self.actor.parameters(), c.lr, c.weight_decay, decoupled=True)
        self.optimistic_opt = adam(self.optimistic.parameters(), c.lr, c.weight_decay, decoupled=True)
        self.critic_opt = adam(self.critic.parameters(), c.lr, c.weight_decay, decoupled=True)
        self.alpha_opt = adam([self.scalars.log_alpha], c.alpha_lr, betas=(0.5, 0.999))
        self.adjust_opt = adam(
            [self.scalars.optimism_p, self.scalars.kl_weight_p], c.adjust_lr, betas=(0.5, 0.999)
        )
        self.target_entropy = -act_dim / 2 if c.target_entropy is None else float(c.target_entropy)
        self.taus = quantile_midpoints(c.num_quantiles, self.device)
        self.resets_done = 0

    def build_networks(self) -> list[nn.Module]:
        """The actor, the optimistic actor, the two critics and the scalars, freshly initialised."""
        c, d = self.cfg, self.device
        width, blocks = residual_shape(c.mlp_dims)
        return [
            Actor(self.obs_dim, self.act_dim, c.actor_mlp_dims, c.log_std_min, c.log_std_max).to(d),
            OptimisticShift(self.obs_dim, self.act_dim, c.actor_mlp_dims).to(d),
            ResidualNet("bronet", self.obs_dim + self.act_dim, width, blocks, c.num_quantiles, n=2).to(d),
            Scalars(c).to(d),
        ]

    def reset(self) -> None:
        """BRO's reset: every network and scalar re-initialised (fresh draws), every optimizer's state
        forgotten, the target critics copied from the new critics (the code builds both from one key)."""
        u = self.updater
        nets = [self.actor, self.optimistic, self.critic, self.scalars]
        opts = (self.actor_opt, self.optimistic_opt, self.critic_opt, self.alpha_opt, self.adjust_opt)
        u.reset(nets, self.build_networks, opts, seed=draw_seed(self.generator))
        u.copy(self.critic_target, self.critic)

    # ------------------------------------------------------------------ the networks' values
    def quantiles(self, obs: Tensor, action: Tensor, target: bool = False) -> Tensor:
        """Z [2, B, N]: the two critics' quantiles of Q(s, a)."""
        return (self.critic_target if target else self.critic)(torch.cat([obs, action], -1))

    def value(self, z: Tensor, beta: Tensor | float) -> Tensor:
        """(Z1 + Z2) / 2 + beta |Z1 - Z2| / 2 [B, N]: the critics' mean, moved by beta times their spread
        (beta = -pessimism in the targets and the actor's objective; the optimism for the optimistic one)."""
        return z.mean(0) + beta * (z[0] - z[1]).abs() / 2

    def normal(self, *batch: int) -> Tensor:
        """eps ~ N(0, 1) [*batch, A]."""
        return torch.randn(*batch, self.act_dim, generator=self.generator, device=self.device)

    def optimistic_params(self, obs: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(mu_o, log sigma_o, mu_c, log sigma_c): the optimistic actor's Gaussian and the actor's."""
        mu_c, log_std_c = self.actor(obs)
        mu_o = self.optimistic(obs, mu_c)
        return mu_o, log_std_c + math.log(self.cfg.std_multiplier), mu_c, log_std_c

    # ------------------------------------------------------------------ the update, in the code's order
    def target_draws(self, batch_size: int) -> dict[str, Tensor]:
        return {"eps": self.normal(batch_size)}

    @torch.no_grad()
    def td_target(self, reward: Tensor, discount: Tensor, next_obs: Tensor, *, eps: Tensor) -> Tensor:
        """y [B, N] = r + discount (Z'(s', a') - alpha log pi(a'|s')), a' ~ pi(s') by eps."""
        a, log_prob = tanh_gaussian(*self.actor(next_obs), eps)
        z = self.value(self.quantiles(next_obs, a, target=True), -self.cfg.pessimism)
        soft = z - self.scalars.alpha() * log_prob.unsqueeze(-1)
        return reward.unsqueeze(-1) + discount.unsqueeze(-1) * soft

    def critic_loss(self, obs: Tensor, action: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """(the two critics' quantile Huber losses to y, summed; Q [2, B])."""
        z = self.quantiles(obs, action)
        loss = quantile_huber_loss(z[0], y, self.taus) + quantile_huber_loss(z[1], y, self.taus)
        return loss, z.mean(-1)

    def actor_draws(self, batch_size: int) -> dict[str, Tensor]:
        return {"eps": self.normal(batch_size)}

    def actor_loss(self, obs: Tensor, *, eps: Tensor) -> tuple[Tensor, Tensor]:
        """(mean of alpha log pi(a|s) - Q(s, a), a ~ pi(s) by eps; the entropy estimate -mean log pi)."""
        a, log_prob = tanh_gaussian(*self.actor(obs), eps)
        q = self.value(self.quantiles(obs, a), -self.cfg.pessimism).mean(-1)
        return (self.scalars.alpha().detach() * log_prob - q).mean(), -log_prob.mean()

    def optimistic_draws(self, batch_size: int) -> dict[str, Tensor]:
        return {"eps": self.normal(batch_size)}

    def optimistic_loss(self, obs: Tensor, *, eps: Tensor) -> tuple[Tensor, Tensor]:
        """(-mean Q_ub(s, a) + lambda mean KL, a ~ tanh N(mu_o, sigma_o) by eps; that KL per action
        dimension). The KL of N(mu_o, sigma_o / m) from N(mu_c, sigma_c), summed over dimensions (the
        code's formula; sigma_o / m = sigma_c, so only the means' term remains)."""
        c, s = self.cfg, self.scalars
        mu_o, log_std_o, mu_c, log_std_c = self.optimistic_params(obs)
        mu_c, log_std_c = mu_c.detach(), log_std_c.detach()  # the actor is held fixed here
        a, _ = tanh_gaussian(mu_o, log_std_o, eps)
        q_ub = self.value(self.quantiles(obs, a), s.optimism().detach()).mean(-1)
        std_c, std_o = log_std_c.exp(), log_std_o.exp() / c.std_multiplier
        kl = (
            (torch.log(std_c / std_o) + (std_o**2 + (mu_o - mu_c) ** 2) / (2 * std_c**2) - 0.5).sum(-1).mean()
        )
        return -q_ub.mean() + s.kl_weight().detach() * kl, kl.detach() / self.act_dim

    def temperature_loss(self, entropy: Tensor) -> Tensor:
        """alpha (H - H_target): alpha grows while the entropy is below its target."""
        return self.scalars.alpha() * (entropy - self.target_entropy)

    def adjustment_loss(self, kl: Tensor) -> Tensor:
        """(beta_o - beta_p)(KL - target) - lambda (KL - target): past the target KL the optimism shrinks and
        the KL weight grows."""
        c, s = self.cfg, self.scalars
        excess = kl - c.kl_target
        return (s.optimism() - c.pessimism) * excess - s.kl_weight() * excess

    def update(self, replay, step: int) -> dict:
        c, u = self.cfg, self.updater
        while self.resets_done < len(c.reset_at) and replay.size >= c.reset_at[self.resets_done]:
            self.reset()
            self.resets_done += 1
        obs, action, reward, discount, next_obs = nstep_transition(replay.sample(c.batch_size), c.gamma, 1)
        y = u.call(self.td_target, reward, discount, next_obs, **self.target_draws(len(obs)))
        critic = u.step(self.critic_loss, obs, action, y, opt=self.critic_opt)
        u.ema(self.critic_target, self.critic, c.tau)
        actor = u.step(
            self.actor_loss, obs, opt=self.actor_opt, frozen=(self.critic,), **self.actor_draws(len(obs))
        )
        optimistic = u.step(
            self.optimistic_loss,
            obs,
            opt=self.optimistic_opt,
            frozen=(self.critic, self.actor),
            **self.optimistic_draws(len(obs)),
        )
        temperature = u.step(self.temperature_loss, actor.aux, opt=self.alpha_opt)
        u.step(self.adjustment_loss, optimistic.aux, opt=self.adjust_opt)
        return {
            "q_loss": critic.loss,
            "q_mean": critic.aux.mean(),
            "actor_loss": actor.loss,
            "optimistic_loss": optimistic.loss,
            "entropy": actor.aux,
            "kl_per_dim": optimistic.aux,
            "alpha_loss": temperature.loss,
            "alpha": self.scalars.alpha().detach(),
            "optimism": self.scalars.optimism().detach(),
            "kl_weight": self.scalars.kl_weight().detach(),
        }

    # ------------------------------------------------------------------ acting
    def act(self, obs: np.ndarray, explore: bool) -> np.ndarray:
        """Exploring: a sample of the optimistic actor; else the actor's mean action tanh(mu_c). The draw
        first, then the policy through the updater (the K-seed mode acts for every seed in one forward)."""
        x = to_tensor(obs, self.device)
        draws = {"eps": self.normal(*x.shape[:-1])} if explore else {}
        return self.updater.act(self.policy, x, **draws).numpy()

    def policy(self, x: Tensor, eps: Tensor | None = None) -> Tensor:
        """tanh(u), u = mu_o(s) + sigma_o(s) eps with the draw eps, else tanh(mu_c(s))."""
        if eps is None:
            return torch.tanh(self.actor(x)[0])
        mu_o, log_std_o, _, _ = self.optimistic_params(x)
        return tanh_gaussian(mu_o, log_std_o, eps)[0]

    @torch.no_grad()
    def probe_q(self, obs: Tensor, action: Tensor) -> Tensor:
        """Q [n] as the target reads the critics: mean over quantiles of (Z1 + Z2 - beta_p |Z1 - Z2|) / 2."""
        z = self.quantiles(obs.to(self.device), action.to(self.device))
        return self.value(z, -self.cfg.pessimism).mean(-1)
