"""CrossQ (Bhatt et al., "CrossQ: Batch Normalization in Deep Reinforcement Learning for Greater Sample
Efficiency and Simplicity", ICLR 2024, arXiv 1902.05605), as its code runs it (adityab/CrossQ at a318a26:
`train.py` `-algo crossq`, `sbx/sac/sac.py`, `sbx/sac/policies.py`).

SAC without target networks, whose critics and actor normalise every layer's input with batch
renormalisation (iqrl/nn/stats.py `BatchRenorm`: momentum 0.99, r_max 3, d_max 5, plain batch normalisation
for its first 100k training calls), and whose critic sees (s, a) and (s', a') in one forward pass, so both
halves are normalised by the statistics of the joint batch. Networks (ReLU, flax's lecun-normal init):
two critics BRN -> [Linear(2048) -> ReLU -> BRN] x 2 -> Linear(1) on [s, a]; the actor BRN -> [Linear(256)
-> ReLU -> BRN] x 2 -> mean and log-std (clipped to [-20, 2]) of a tanh-Gaussian.

One update (`SAC._train`, UTD 1, batch 256, gamma 0.99):
1. critics, in training mode (their statistics move): a' ~ pi(s') by the actor in evaluation mode, then
   Q_k([s; s'], [a; a']) in one pass, split into Q_k(s, a) and Q_k(s', a');
   y = r + gamma m (min_k Q_k(s', a') - alpha log pi(a'|s')) held fixed; loss 0.5 sum_k mean_b (y - Q_k)^2;
   no target update (`tau = 1`, the joint pass replaces the target networks);
2. every `policy_delay` = 3 critic steps: the actor in training mode (its statistics move), the critics in
   evaluation mode: loss mean(alpha log pi(a|s) - min_k Q_k(s, a)), a ~ pi(s); then the temperature:
   alpha (H - H_target), H = -mean log pi of that step, H_target = -|A| (its gradient through alpha, as
   BRO and jaxrl).
Adam with beta1 0.5 (actor, critics; lr 1e-3) and PyTorch's default betas for the temperature (lr 1e-3).
Acting: the actor in evaluation mode (running statistics), a ~ pi(s) exploring, tanh(mean) in evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from iqrl.core.checks import require
from iqrl.core.interface import Agent, AgentConfig, AgentSpec, Part, to_tensor
from iqrl.core.replay import nstep_transition
from iqrl.core.schedule import PerStep, SeedPhase
from iqrl.nn.layers import Temperature
from iqrl.nn.maths import tanh_gaussian
from iqrl.nn.optim import adam
from iqrl.nn.stats import BatchRenorm
from iqrl.nn.trunks import Dense, fan_in_normal_


@dataclass
class CrossQConfig(AgentConfig):
    # Stable-Baselines' learning_starts: 5000 transitions of uniform actions
    SEED_PHASE: ClassVar[SeedPhase] = SeedPhase(
        agent_steps=5000, source="adityab/CrossQ@a318a26 train.py:196"
    )
    # the tests' tiny sizes (AgentConfig.TINY): renormalisation from the 50th training call, one critic step
    # per two transitions
    TINY: ClassVar[dict] = {
        "mlp_dims": [32, 32],
        "actor_mlp_dims": [16, 16],
        "batch_size": 16,
        "bn_warmup": 50,
        "utd": 0.5,
    }

    name: str = "crossq"
    mlp_dims: list[int] = field(default_factory=lambda: [2048, 2048])  # each critic's hidden widths
    actor_mlp_dims: list[int] = field(default_factory=lambda: [256, 256])  # the actor's hidden widths
    num_critics: int = 2  # critics; the target and the actor's objective take their minimum
    batch_size: int = 256  # transitions per gradient update
    gamma: float = 0.99  # discount
    lr: float = 1e-3  # actor, critics and temperature
    adam_beta1: float = 0.5  # actor and critics (the temperature: 0.9)
    init_temperature: float = 1.0  # initial entropy temperature alpha
    target_entropy: float | None = None  # None: -|A|
    policy_delay: int = 3  # an actor and temperature step every this many critic steps
    bn_momentum: float = 0.99  # decay of the BatchRenorm layers' running statistics
    bn_warmup: int = 100_000  # training calls of a BatchRenorm layer before it renormalises
    log_std_min: float = -20.0  # lower clip of the actor's log std
    log_std_max: float = 2.0  # upper clip of the actor's log std
    utd: float = 1.0  # critic updates per stored transition (per agent step)
    UTD_KEY = "utd"  # updates_per_step may only agree with it (AgentConfig.UTD_KEY)

    def validate(self) -> None:
        super().validate()
        widths = [*self.mlp_dims, *self.actor_mlp_dims]
        require(
            [
                (
                    len(self.mlp_dims) >= 1 and len(self.actor_mlp_dims) >= 1 and min(widths) >= 1,
                    f"agent.mlp_dims and actor_mlp_dims must be non-empty lists of positive widths, got "
                    f"{list(self.mlp_dims)} and {list(self.actor_mlp_dims)}",
                ),
                (self.num_critics >= 1, f"agent.num_critics must be >= 1, got {self.num_critics}"),
                (
                    self.batch_size >= 2,
                    f"agent.batch_size must be >= 2 (batch statistics), got {self.batch_size}",
                ),
                (0.0 < self.gamma <= 1.0, f"agent.gamma must be in (0, 1], got {self.gamma}"),
                (self.lr > 0, f"agent.lr must be > 0, got {self.lr}"),
                (0.0 <= self.adam_beta1 < 1.0, f"agent.adam_beta1 must be in [0, 1), got {self.adam_beta1}"),
                (
                    self.init_temperature > 0,
                    f"agent.init_temperature must be > 0, got {self.init_temperature}",
                ),
                (self.policy_delay >= 1, f"agent.policy_delay must be >= 1, got {self.policy_delay}"),
                (
                    0.0 <= self.bn_momentum < 1.0,
                    f"agent.bn_momentum must be in [0, 1), got {self.bn_momentum}",
                ),
                (self.bn_warmup >= 0, f"agent.bn_warmup must be >= 0, got {self.bn_warmup}"),
                (
                    self.log_std_min < self.log_std_max,
                    f"agent.log_std_min must be < agent.log_std_max, got {self.log_std_min} and "
                    f"{self.log_std_max}",
                ),
                (self.utd > 0, f"agent.utd must be > 0, got {self.utd}"),
            ]
        )


class RenormMLP(nn.Module):
    """CrossQ's network body: BatchRenorm on the input, then per width Linear -> ReLU -> BatchRenorm;
    [B, in] -> [B, hidden[-1]]. Linear layers lecun-normal with zero bias (flax's Dense)."""

    def __init__(self, in_dim: int, hidden: list[int], momentum: float, warmup: int):
        super().__init__()
        layers: list[nn.Module] = [BatchRenorm(in_dim, momentum, warmup_steps=warmup)]
        for d_in, d_out in zip([in_dim, *hidden[:-1]], hidden):
            layers += [
                fan_in_normal_(Dense(d_in, d_out), 1.0),
                nn.ReLU(),
                BatchRenorm(d_out, momentum, warmup_steps=warmup),
            ]
        self.body = nn.Sequential(*layers)
        self.out_dim = hidden[-1]

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)


class Critics(nn.Module):
    """`num_critics` critics, each with statistics of its own: [B, obs + act] -> Q [K, B]."""

    def __init__(self, in_dim: int, c: CrossQConfig):
        super().__init__()
        self.bodies = nn.ModuleList(
            RenormMLP(in_dim, c.mlp_dims, c.bn_momentum, c.bn_warmup) for _ in range(c.num_critics)
        )
        self.heads = nn.ModuleList(
            fan_in_normal_(Dense(c.mlp_dims[-1], 1), 1.0) for _ in range(c.num_critics)
        )

    def forward(self, x: Tensor) -> Tensor:
        return torch.stack([head(body(x)).squeeze(-1) for body, head in zip(self.bodies, self.heads)])


class Actor(nn.Module):
    """RenormMLP -> (mean, log-std clipped to [low, high]) of the pre-tanh Gaussian."""

    def __init__(self, obs_dim: int, act_dim: int, c: CrossQConfig):
        super().__init__()
        self.body = RenormMLP(obs_dim, c.actor_mlp_dims, c.bn_momentum, c.bn_warmup)
        self.mu = fan_in_normal_(Dense(self.body.out_dim, act_dim), 1.0)
        self.log_std = fan_in_normal_(Dense(self.body.out_dim, act_dim), 1.0)
        self.low, self.high = c.log_std_min, c.log_std_max

    def forward(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        h = self.body(obs)
        return self.mu(h), self.log_std(h).clamp(self.low, self.high)


class CrossQ(Agent):
    STATE_OBJECTS = ("actor", "critic", "temperature", "actor_opt", "critic_opt", "alpha_opt")
    STATE_VALUES = ("updates",)
    TRANSFER_PARTS = {
        "actor": Part(("actor", "temperature")),
        "critic": Part(("critic",)),
        "optimizers": Part(("actor_opt", "critic_opt", "alpha_opt")),
    }

    def __init__(self, cfg: CrossQConfig, obs_dim: int, act_dim: int, device: torch.device, seed: int):
        super().__init__(cfg, device, seed)
        c = cfg
        self.spec = AgentSpec(seq_len=1, batch_size=c.batch_size, updates_per_agent_step=c.utd)
        self.schedule = PerStep()  # Stable-Baselines' train_freq of one step
        self.act_dim = act_dim
        self.actor = Actor(obs_dim, act_dim, c).to(self.device)
        self.critic = Critics(obs_dim + act_dim, c).to(self.device)
        self.temperature = Temperature(c.init_temperature).to(self.device)
        betas = (c.adam_beta1, 0.999)
        self.actor_opt = adam(self.actor.parameters(), c.lr, betas=betas)
        self.critic_opt = adam(self.critic.parameters(), c.lr, betas=betas)
        self.alpha_opt = adam(self.temperature.parameters(), c.lr)
        self.target_entropy = -float(act_dim) if c.target_entropy is None else float(c.target_entropy)
        self.updates = 0
        self.evaluation_mode()

    def evaluation_mode(self) -> None:
        """Both networks on their running statistics: how CrossQ acts, and how each loss reads the network it
        does not train."""
        self.actor.eval()
        self.critic.eval()

    def normal(self, *batch: int) -> Tensor:
        """eps ~ N(0, 1) [*batch, A]."""
        return torch.randn(*batch, self.act_dim, generator=self.generator, device=self.device)

    # ------------------------------------------------------------------ the update
    def critic_draws(self, batch_size: int) -> dict[str, Tensor]:
        return {"eps": self.normal(batch_size)}

    def critic_loss(
        self, obs: Tensor, action: Tensor, reward: Tensor, discount: Tensor, next_obs: Tensor, *, eps: Tensor
    ) -> tuple[Tensor, Tensor]:
        """(0.5 sum_k mean_b (y - Q_k(s, a))^2, Q [K, B]) with Q(s, a) and Q(s', a') from one pass of the
        critics over the joint batch (training mode: its statistics move) and y held fixed."""
        with torch.no_grad():
            next_action, log_prob = tanh_gaussian(*self.actor(next_obs), eps)  # the actor in evaluation mode
        q_all = self.critic(torch.cat([torch.cat([obs, action], -1), torch.cat([next_obs, next_action], -1)]))
        q, q_next = q_all.chunk(2, dim=-1)
        soft = q_next.amin(0) - self.temperature().detach() * log_prob
        y = (reward + discount * soft).detach()
        return 0.5 * ((y - q) ** 2).mean(-1).sum(), q

    def actor_draws(self, batch_size: int) -> dict[str, Tensor]:
        return {"eps": self.normal(batch_size)}

    def actor_loss(self, obs: Tensor, *, eps: Tensor) -> tuple[Tensor, Tensor]:
        """(mean alpha log pi(a|s) - min_k Q_k(s, a), a ~ pi(s) by eps, the actor in training mode and the
        critics in evaluation mode; the entropy estimate -mean log pi)."""
        a, log_prob = tanh_gaussian(*self.actor(obs), eps)
        q = self.critic(torch.cat([obs, a], -1)).amin(0)
        return (self.temperature().detach() * log_prob - q).mean(), -log_prob.mean()

    def temperature_loss(self, entropy: Tensor) -> Tensor:
        """alpha (H - H_target): alpha grows while the entropy is below its target."""
        return self.temperature() * (entropy - self.target_entropy)

    def update(self, replay, step: int) -> dict:
        c, u = self.cfg, self.updater
        obs, action, reward, discount, next_obs = nstep_transition(replay.sample(c.batch_size), c.gamma, 1)
        self.critic.train()
        critic = u.step(
            self.critic_loss,
            obs,
            action,
            reward,
            discount,
            next_obs,
            opt=self.critic_opt,
            **self.critic_draws(len(obs)),
        )
        self.critic.eval()
        self.updates += 1
        metrics = {"q_loss": critic.loss, "q_mean": critic.aux.mean(), "alpha": self.temperature().detach()}
        if self.updates % c.policy_delay == 0:
            self.actor.train()
            actor = u.step(
                self.actor_loss, obs, opt=self.actor_opt, frozen=(self.critic,), **self.actor_draws(len(obs))
            )
            self.actor.eval()
            temperature = u.step(self.temperature_loss, actor.aux, opt=self.alpha_opt)
            metrics |= {"actor_loss": actor.loss, "entropy": actor.aux, "alpha_loss": temperature.loss}
        return metrics

    # ------------------------------------------------------------------ acting
    def act(self, obs: np.ndarray, explore: bool) -> np.ndarray:
        """Exploring: a ~ pi(s); else tanh of the mean. The draw first, then the policy through the updater
        (the K-seed mode acts for every seed in one forward)."""
        x = to_tensor(obs, self.device)
        draws = {"eps": self.normal(*x.shape[:-1])} if explore else {}
        return self.updater.act(self.policy, x, **draws).numpy()

    def policy(self, x: Tensor, eps: Tensor | None = None) -> Tensor:
        """tanh(u), u = mu(s) + sigma(s) eps with the draw eps, else tanh(mu(s)); the actor in evaluation
        mode (its running statistics)."""
        mu, log_std = self.actor(x)
        return torch.tanh(mu) if eps is None else tanh_gaussian(mu, log_std, eps)[0]

    @torch.no_grad()
    def probe_q(self, obs: Tensor, action: Tensor) -> Tensor:
        """Q [K, n] of the critics on their running statistics (evaluation mode, as between updates)."""
        return self.critic(torch.cat([obs.to(self.device), action.to(self.device)], -1))
