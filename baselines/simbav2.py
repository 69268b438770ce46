"""SimbaV2 (Lee et al., "Hyperspherical Normalization for Scalable Deep Reinforcement Learning", ICML 2025,
arXiv 2502.15280), as its code runs it (dojeon-ai/SimbaV2 at 14fafb2: `scale_rl/agents/simbaV2/`,
`scale_rl/agents/wrappers/normalization.py`, `configs/agent/simbaV2.yaml`, `configs/online_rl.yaml`,
`run_online.py`).

SAC on hyperspherical networks (iqrl/nn/trunks.py): every feature and every weight row on the unit sphere,
residual blocks that interpolate on it, learned per-feature scalers; a distributional critic of 101 bins on
[-5, 5]; observations normalised by running statistics, rewards scaled by a running estimate of the return's
spread. Networks: the actor, 1 block of width 128, two heads (HyperLinear -> Scaler -> HyperLinear + bias) for
the mean and the soft-bounded log-std ([-10, 2]) of a tanh-Gaussian; the critic, 2 blocks of width 512 on
[s, a], a head of the same form giving the bins' logits. One critic on DMC; on Gym (the code's `episodic`
suites) two, their clipped double Q (the task file).

Data statistics (`observe`, every collected observation, seed steps included): observations fold into a
running mean and variance (iqrl/nn/stats.py `RunningNorm`), each before the agent acts on it (the final
observation of an episode, never acted on, is not folded; nor is the run's first, as the code's loop
starts on it); rewards update G <- gamma (1 - done) G + r, a running variance of G and max |G|; a batch's
rewards are divided by max(sqrt(var(G) + 1e-8), max|G| / 5).

One update (`_update_simbav2_networks`), on a batch of 256 normalised transitions, in the code's order:
1. actor: mean(alpha log pi(a|s) - Q(s, a)), a ~ pi(s), Q the critics' expected value (their minimum with
   two), alpha held fixed; then its weights back on the sphere;
2. temperature: alpha (H - H_target), H = -mean log pi of step 1, H_target = -|A| / 2 (its gradient through
   alpha, as BRO and CrossQ);
3. critic, with the actor and temperature of steps 1-2: a' ~ pi(s'); the target critic's distribution (of
   the critic whose expected value is lower, with two) on the atoms clip(r + gamma m (z_i - alpha log
   pi(a'|s')), -5, 5) projected onto the bins (C51); loss: its cross-entropy with the critic's, summed over
   the critics; then its weights back on the sphere;
4. the target critic's EMA (tau 0.005).
Adam for all three, the learning rate decayed linearly from 1e-4 to 5e-5 over the run's updates. UTD
(`utd`, updates per stored transition) 2 (`simbav2`) or 8 (`simbav2-utd8`), after every agent step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from iqrl.core.checks import require
from iqrl.core.interface import Agent, AgentConfig, AgentSpec, Part, to_tensor
from iqrl.core.replay import nstep_transition
from iqrl.core.schedule import PerStep, SeedPhase
from iqrl.nn.layers import Temperature, frozen_copy
from iqrl.nn.maths import (
    categorical_cross_entropy,
    categorical_projection,
    linear_decay,
    soft_bounded,
    tanh_gaussian,
)
from iqrl.nn.optim import adam
from iqrl.nn.stats import RunningNorm
from iqrl.nn.trunks import (
    HyperHead,
    ResidualNet,
    Trunk,
    project_to_sphere,
    residual_shape,
    residual_widths_check,
)


@dataclass
class SimbaV2Config(AgentConfig):
    # the buffer's min_length: 5000 transitions of uniform actions
    SEED_PHASE: ClassVar[SeedPhase] = SeedPhase(
        agent_steps=5000,
        source="dojeon-ai/SimbaV2@14fafb2 configs/buffer/numpy_uniform.yaml:7, run_online.py:106",
    )
    # the tests' tiny sizes (AgentConfig.TINY): one update per two transitions, whatever the preset
    TINY: ClassVar[dict] = {
        "mlp_dims": [32, 32],
        "actor_mlp_dims": [16],
        "num_bins": 11,
        "batch_size": 16,
        "utd": 0.5,
    }

    name: str = "simbav2"
    mlp_dims: list[int] = field(default_factory=lambda: [512, 512])  # the critic: a block per entry
    actor_mlp_dims: list[int] = field(default_factory=lambda: [128])  # the actor: a block per entry
    num_critics: int = 1  # 2 on Gym (the task file): clipped double Q
    num_bins: int = 101  # atoms of the categorical critic on [-g_max, g_max]
    g_max: float = 5.0  # the critic's support [-g_max, g_max] and the reward scale's floor max|G| / g_max
    c_shift: float = 3.0  # the constant appended to the input before its normalisation
    batch_size: int = 256  # transitions per gradient update
    gamma: float = 0.99  # 0.995 on Gym (the task file): the code's heuristic of the effective episode length
    tau: float = 0.005  # EMA rate of the target critic
    lr: float = 1e-4  # actor, critic and temperature (Adam), decayed linearly to lr_end
    lr_end: float = 5e-5  # the learning rate at the end of the decay, kept after it
    lr_decay_transitions: int = 500_000  # stored transitions (agent steps) the decay spans: a 1M-env-step run
    init_temperature: float = 0.01  # initial entropy temperature alpha
    target_entropy: float | None = None  # None: -|A| / 2
    log_std_min: float = -10.0  # lower soft bound of the actor's log std (tanh-scaled into [min, max])
    log_std_max: float = 2.0  # upper soft bound of the actor's log std
    normalize_observations: bool = True  # observations through a running mean and variance (RSNorm)
    # rewards divided by max(sqrt(var(G) + 1e-8), max|G| / g_max) of the discounted returns G seen so far
    normalize_rewards: bool = True
    utd: float = 2.0  # updates per stored transition (per agent step)
    UTD_KEY = "utd"  # updates_per_step may only agree with it (AgentConfig.UTD_KEY)

    def validate(self) -> None:
        super().validate()
        require(
            [
                residual_widths_check("mlp_dims", self.mlp_dims),
                residual_widths_check("actor_mlp_dims", self.actor_mlp_dims),
                (self.num_critics >= 1, f"agent.num_critics must be >= 1, got {self.num_critics}"),
                (self.num_bins >= 2, f"agent.num_bins must be >= 2, got {self.num_bins}"),
                (self.g_max > 0, f"agent.g_max must be > 0, got {self.g_max}"),
                (self.c_shift > 0, f"agent.c_shift must be > 0, got {self.c_shift}"),
                (self.batch_size >= 1, f"agent.batch_size must be >= 1, got {self.batch_size}"),
                (0.0 < self.gamma <= 1.0, f"agent.gamma must be in (0, 1], got {self.gamma}"),
                (0.0 < self.tau <= 1.0, f"agent.tau must be in (0, 1], got {self.tau}"),
                (
                    self.lr > 0 and self.lr_end > 0,
                    f"agent.lr and lr_end must be > 0, got {self.lr} and {self.lr_end}",
                ),
                (
                    self.lr_decay_transitions >= 1,
                    f"agent.lr_decay_transitions must be >= 1, got {self.lr_decay_transitions}",
                ),
                (
                    self.init_temperature > 0,
                    f"agent.init_temperature must be > 0, got {self.init_temperature}",
                ),
                (
                    self.log_std_min < self.log_std_max,
                    f"agent.log_std_min must be < agent.log_std_max, got {self.log_std_min} and "
                    f"{self.log_std_max}",
                ),
                (self.utd > 0, f"agent.utd must be > 0, got {self.utd}"),
            ]
        )


class HyperActor(nn.Module):
    """SimbaV2's actor: a hyperspherical trunk and two HyperHeads, the mean and the log-std soft-bounded to
    [low, high] of the pre-tanh Gaussian."""

    def __init__(self, obs_dim: int, act_dim: int, c: SimbaV2Config):
        super().__init__()
        width, blocks = residual_shape(c.actor_mlp_dims)
        self.trunk = Trunk("simbav2", obs_dim, width, blocks, c_shift=c.c_shift)
        self.mu, self.log_std = HyperHead(width, act_dim), HyperHead(width, act_dim)
        self.low, self.high = c.log_std_min, c.log_std_max

    def forward(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        z = self.trunk(obs)
        return self.mu(z), soft_bounded(self.log_std(z), self.low, self.high)

    def project(self) -> None:
        project_to_sphere(self)


class SimbaV2(Agent):
    STATE_OBJECTS = (
        "actor",
        "critic",
        "critic_target",
        "temperature",
        "obs_stats",
        "return_stats",
        "actor_opt",
        "critic_opt",
        "alpha_opt",
    )
    STATE_VALUES = ("updates", "discounted_return", "max_abs_return", "observed_any")
    TRANSFER_PARTS = {
        "representation": Part(("obs_stats",)),  # the input normalisation the actor and critic read
        "actor": Part(("actor", "temperature")),
        "critic": Part(("critic", "critic_target", "return_stats"), ("num_bins", "g_max")),
        "optimizers": Part(("actor_opt", "critic_opt", "alpha_opt")),
    }

    def __init__(self, cfg: SimbaV2Config, obs_dim: int, act_dim: int, device: torch.device, seed: int):
        super().__init__(cfg, device, seed)
        c = cfg
        self.spec = AgentSpec(seq_len=1, batch_size=c.batch_size, updates_per_agent_step=c.utd)
        self.schedule = PerStep()  # the code updates after every env step
        self.act_dim = act_dim
        self.actor = HyperActor(obs_dim, act_dim, c).to(self.device)
        width, blocks = residual_shape(c.mlp_dims)
        self.critic = ResidualNet(
            "simbav2", obs_dim + act_dim, width, blocks, c.num_bins, n=c.num_critics
        ).to(self.device)
        self.critic_target = frozen_copy(self.critic)
        self.temperature = Temperature(c.init_temperature).to(self.device)
        self.obs_stats = RunningNorm(obs_dim).to(self.device)
        self.return_stats = RunningNorm(1).to(self.device)
        self.actor_opt = adam(self.actor.parameters(), c.lr)
        self.critic_opt = adam(self.critic.parameters(), c.lr)
        self.alpha_opt = adam(self.temperature.parameters(), c.lr)
        self.bins = torch.linspace(-c.g_max, c.g_max, c.num_bins, device=self.device)
        self.target_entropy = -act_dim / 2 if c.target_entropy is None else float(c.target_entropy)
        self.updates = 0
        self.discounted_return, self.max_abs_return, self.observed_any = 0.0, 0.0, False

    # ------------------------------------------------------------------ data statistics
    def observe(self, obs: np.ndarray, reward: float | None = None, done: bool = False) -> None:
        """G <- gamma (1 - done) G + r and its statistics; the observation into the running statistics unless
        it ends an episode (the code folds what its agent acts on next) or is the run's first."""
        if reward is not None:
            self.discounted_return = self.cfg.gamma * (1.0 - float(done)) * self.discounted_return + reward
            self.return_stats.update(torch.tensor([self.discounted_return], device=self.device))
            self.max_abs_return = max(self.max_abs_return, abs(self.discounted_return))
        if (reward is None and self.observed_any) or (reward is not None and not done):
            self.obs_stats.update(to_tensor(obs, self.device))
        self.observed_any = True

    def normalize(self, obs: Tensor) -> Tensor:
        return self.obs_stats(obs) if self.cfg.normalize_observations else obs

    def reward_scale(self) -> Tensor | float:
        """max(sqrt(var(G) + 1e-8), max|G| / g_max), the rewards' divisor (1 without normalize_rewards); a
        tensor on the device, so that an update never waits for the host to read the variance."""
        if not self.cfg.normalize_rewards:
            return 1.0
        spread = (self.return_stats.var[0] + 1e-8).sqrt()
        return spread.clamp(min=self.max_abs_return / self.cfg.g_max)

    # ------------------------------------------------------------------ the networks' values
    def logits(self, obs: Tensor, action: Tensor, target: bool = False) -> Tensor:
        """[K, B, bins] of the K critics."""
        return (self.critic_target if target else self.critic)(torch.cat([obs, action], -1))

    def q(self, logits: Tensor) -> Tensor:
        """The critics' expected values [K, B]."""
        return (F.softmax(logits, -1) * self.bins).sum(-1)

    def normal(self, *batch: int) -> Tensor:
        """eps ~ N(0, 1) [*batch, A]."""
        return torch.randn(*batch, self.act_dim, generator=self.generator, device=self.device)

    # ------------------------------------------------------------------ the update, in the code's order
    def actor_draws(self, batch_size: int) -> dict[str, Tensor]:
        return {"eps": self.normal(batch_size)}

    def actor_loss(self, obs: Tensor, *, eps: Tensor) -> tuple[Tensor, Tensor]:
        """(mean alpha log pi(a|s) - min_k Q_k(s, a), a ~ pi(s) by eps; the entropy estimate -mean log pi)."""
        a, log_prob = tanh_gaussian(*self.actor(obs), eps)
        q = self.q(self.logits(obs, a)).amin(0)
        return (self.temperature().detach() * log_prob - q).mean(), -log_prob.mean()

    def temperature_loss(self, entropy: Tensor) -> Tensor:
        """alpha (H - H_target): alpha grows while the entropy is below its target."""
        return self.temperature() * (entropy - self.target_entropy)

    def target_draws(self, batch_size: int) -> dict[str, Tensor]:
        return {"eps": self.normal(batch_size)}

    @torch.no_grad()
    def target_distribution(
        self, reward: Tensor, discount: Tensor, next_obs: Tensor, *, eps: Tensor
    ) -> Tensor:
        """[B, bins]: the target critic's distribution at (s', a'), a' ~ pi(s') by eps (of the critic whose
        expected value is lower, with two), moved to the atoms r + discount (z - alpha log pi(a'|s')), clipped
        to the support, and projected back onto the bins."""
        c = self.cfg
        a, log_prob = tanh_gaussian(*self.actor(next_obs), eps)
        logits = self.logits(next_obs, a, target=True)  # [K, B, bins]
        lowest = self.q(logits).argmin(0)  # [B]
        probs = F.softmax(logits, -1).gather(0, lowest[None, :, None].expand(1, *logits.shape[1:]))[0]
        atoms = reward[:, None] + discount[:, None] * (self.bins - self.temperature() * log_prob[:, None])
        return categorical_projection(probs, atoms, -c.g_max, c.g_max)

    def critic_loss(self, obs: Tensor, action: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        """(the critics' cross-entropies with the target distribution, summed; Q [K, B])."""
        logits = self.logits(obs, action)
        loss = sum(categorical_cross_entropy(F.log_softmax(logit, -1), target) for logit in logits)
        return loss, self.q(logits)

    def set_learning_rates(self) -> None:
        """The code's optax.linear_schedule(lr, lr_end, lr_decay_transitions * utd) at this update."""
        c = self.cfg
        lr = linear_decay(c.lr, c.lr_end, c.lr_decay_transitions * c.utd, self.updates)
        for opt in (self.actor_opt, self.critic_opt, self.alpha_opt):
            opt.param_groups[0]["lr"] = lr

    def update(self, replay, step: int) -> dict:
        c, u = self.cfg, self.updater
        self.set_learning_rates()
        obs, action, reward, discount, next_obs = nstep_transition(replay.sample(c.batch_size), c.gamma, 1)
        obs, next_obs, reward = self.normalize(obs), self.normalize(next_obs), reward / self.reward_scale()
        actor = u.step(
            self.actor_loss,
            obs,
            opt=self.actor_opt,
            frozen=(self.critic,),
            after=self.actor.project,
            **self.actor_draws(len(obs)),
        )
        temperature = u.step(self.temperature_loss, actor.aux, opt=self.alpha_opt)
        y = u.call(self.target_distribution, reward, discount, next_obs, **self.target_draws(len(obs)))
        critic = u.step(self.critic_loss, obs, action, y, opt=self.critic_opt, after=self.critic.project)
        u.ema(self.critic_target, self.critic, c.tau)
        self.updates += 1
        return {
            "q_loss": critic.loss,
            "q_mean": critic.aux.mean(),
            "actor_loss": actor.loss,
            "entropy": actor.aux,
            "alpha_loss": temperature.loss,
            "alpha": self.temperature().detach(),
        }

    # ------------------------------------------------------------------ acting
    def act(self, obs: np.ndarray, explore: bool) -> np.ndarray:
        """Exploring: a ~ pi(s) (the code's temperature 1); else tanh of the mean (temperature 0). The draw
        first, then the policy through the updater (the K-seed mode acts for every seed in one forward)."""
        x = to_tensor(obs, self.device)
        draws = {"eps": self.normal(*x.shape[:-1])} if explore else {}
        return self.updater.act(self.policy, x, **draws).numpy()

    def policy(self, x: Tensor, eps: Tensor | None = None) -> Tensor:
        """tanh(u), u = mu(s) + sigma(s) eps with the draw eps, else tanh(mu(s)) (s normalised)."""
        mu, log_std = self.actor(self.normalize(x))
        return torch.tanh(mu) if eps is None else tanh_gaussian(mu, log_std, eps)[0]

    @torch.no_grad()
    def probe_q(self, obs: Tensor, action: Tensor) -> Tensor:
        """The critics' expected values [K, n] times the current reward divisor: Q in the env's reward units
        (the critics learn returns of rewards divided by `reward_scale`)."""
        logits = self.logits(self.normalize(obs.to(self.device)), action.to(self.device))
        return self.q(logits) * self.reward_scale()
