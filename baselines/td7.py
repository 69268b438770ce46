"""TD7-style agent: SALE embeddings, LAP replay, value clipping and policy checkpoints (Fujimoto et al. 2023,
arXiv 2306.02451).

Fujimoto et al., "For SALE: State-Action Representation Learning for Deep RL" (NeurIPS 2023,
arXiv 2306.02451), code github.com/sfujim/TD7; LAP: Fujimoto et al. 2020 (arXiv 2007.06049).

One `update` is one gradient step of the code's `train()`, in this order:
  1. encoder    L_enc = mean (g(f(o), a) - sg[f(o')])^2                       online (f, g) only
  2. critic     a' = clip(pibar(o', fbar(o')) + clip(N(0, 0.2^2), +-0.5), -1, 1)
                y  = r + gamma (1 - d) clip(min_k Qbar_k(o', a', gbar(fbar(o'), a'), fbar(o')), m_lo, m_hi)
                delta_k = |Q_k(o, a, g_fix(f_fix(o), a), f_fix(o)) - y|,  L_Q = mean_b sum_k
                LAP-Huber(delta_k)
  3. LAP        p = max(max_k delta_k, 1)^0.4 written back to the sampled transitions
  4. actor      every 2nd step: J = -mean_{b,k} Q_k(o, pi(o, f_fix(o)), g_fix(f_fix(o), pi), f_fix(o))
  5. every 250 steps (hard): pibar <- pi, Qbar <- Q, (fbar, gbar) <- fixed, fixed <- online,
                LAP max priority <- max stored, (m_lo, m_hi) <- all-time (min y, max y).
Four encoder copies: online (trained), fixed (actor/critic inputs), fixed-target (TD target) and
checkpoint (evaluation). The critic and actor never train an encoder.

Policy checkpoints (`use_checkpoints`, on by default): training waits for episode ends (the schedule
`PolicyCheckpoints`); `updates_due` assesses the current policy over 1 episode (20 after
`steps_before_checkpointing` updates, when the best minimum return is also scaled by 0.9), stops an
assessment early once an episode return falls below the best minimum return, and at the end of each
assessment returns the number of updates to run (env steps collected since the last burst x the run's
`updates_per_step`). A policy that survived its assessment becomes the checkpoint (actor + fixed
encoder) that `act(obs, explore=False)` evaluates. Data are collected by the current actor with
the fixed encoder and N(0, 0.1^2) noise. With `use_checkpoints=false` TD7 trains after every agent
step at the harness's updates_per_step (`PerStep`) and evaluates the current actor.

Adaptation to the DMC protocol (docs/faithfulness.md TD7-1; the official code has Gym MuJoCo settings only):
action
repeat 2, and the code's seed phase of 25 000 steps as agent steps (TD7Config.SEED_PHASE: 50 000 env steps at
action repeat 2, 25 000 on Gym); a burst runs 0.5 updates per env step (= 1 per agent step, the code's UTD 1);
`steps_before_checkpointing` counts updates as in the code (750 000), so runs of 1M env steps (500k
updates) never reach it. The LAP-Huber loss jumps by 1/2 at delta = 1 (its gradient is Huber's).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from iqrl.core.checks import require
from iqrl.core.interface import Agent, AgentConfig, AgentSpec, Part, to_tensor
from iqrl.core.replay import lap_priority
from iqrl.core.schedule import Credit, EpisodeEnd, PerStep, SeedPhase, UpdateSchedule
from iqrl.nn.layers import EnsembleLinear, frozen_copy, mlp
from iqrl.nn.maths import avg_l1_norm, hard_update_, noisy_action
from iqrl.nn.optim import adam


@dataclass
class TD7Config(AgentConfig):
    # timesteps_before_training: uniform actions to the first episode end past 25 000 steps (Gym's)
    SEED_PHASE: ClassVar[SeedPhase] = SeedPhase(
        agent_steps=25_000, source="sfujim/TD7@c1c280d main.py:47, 99"
    )
    TINY: ClassVar[dict] = {
        "mlp_dims": [32, 32],
        "batch_size": 16,
        "zs_dim": 16,
        "enc_mlp_dims": [32, 32],
        "target_update_every": 50,
    }
    name: str = "td7"
    # --- TD3 ---
    batch_size: int = 256  # transitions per gradient update
    gamma: float = 0.99  # discount
    lr: float = 3e-4  # encoder, critic and actor (Adam)
    actor_update_freq: int = 2  # an actor step every this many critic steps
    policy_noise: float = 0.2  # target-policy smoothing std
    noise_clip: float = 0.5  # clip of the target-policy smoothing noise
    expl_noise: float = 0.1  # exploration std
    target_update_every: int = 250  # hard copies of targets and fixed encoders, LAP and value-clip resets
    # --- LAP ---
    lap_alpha: float = 0.4  # LAP's priority exponent: max(|delta|, min_priority)^alpha
    lap_min_priority: float = 1.0  # also the LAP-Huber threshold
    # --- policy checkpoints ---
    # policy checkpoints: train in bursts at episode ends after assessing the policy, evaluate the best
    # assessed checkpoint; false: train every agent step and evaluate the current actor
    use_checkpoints: bool = True
    steps_before_checkpointing: int = 750_000  # updates, then longer assessments
    max_eps_when_checkpointing: int = 20  # episodes per policy assessment after steps_before_checkpointing
    reset_weight: float = 0.9  # the best assessed return is scaled by this at steps_before_checkpointing
    # --- networks (PyTorch default init) ---
    zs_dim: int = 256  # width of z_s and z_sa
    enc_mlp_dims: list[int] = field(default_factory=lambda: [256, 256])  # hidden widths of f and g (ELU)
    mlp_dims: list[int] = field(default_factory=lambda: [256, 256])  # actor (ReLU) and critic (ELU) hidden
    warmup_with_policy: bool = False  # seed phase: the exploration policy instead of uniform actions

    def kseed_refusal(self) -> str | None:
        if self.use_checkpoints:  # each seed's own returns decide when its updates run
            return (
                "the K-seed mode trains seeds in lockstep, and TD7's policy checkpoints decide per seed when "
                "updates run: use agent.use_checkpoints=false or train its seeds one by one"
            )
        return None

    def validate(self) -> None:
        checks = [
            (self.batch_size >= 1, f"agent.batch_size must be >= 1, got {self.batch_size}"),
            (0.0 < self.gamma <= 1.0, f"agent.gamma must be in (0, 1], got {self.gamma}"),
            (self.lr > 0, f"agent.lr must be > 0, got {self.lr}"),
            (
                self.actor_update_freq >= 1,
                f"agent.actor_update_freq must be >= 1, got {self.actor_update_freq}",
            ),
            (
                self.policy_noise >= 0 and self.noise_clip >= 0 and self.expl_noise >= 0,
                "agent.policy_noise, agent.noise_clip and agent.expl_noise must be >= 0",
            ),
            (
                self.target_update_every >= 1,
                f"agent.target_update_every must be >= 1, got {self.target_update_every}",
            ),
            (self.lap_alpha >= 0, f"agent.lap_alpha must be >= 0, got {self.lap_alpha}"),
            (self.lap_min_priority > 0, f"agent.lap_min_priority must be > 0, got {self.lap_min_priority}"),
            (
                self.steps_before_checkpointing >= 0,
                f"agent.steps_before_checkpointing must be >= 0, got {self.steps_before_checkpointing}",
            ),
            (
                self.max_eps_when_checkpointing >= 1,
                f"agent.max_eps_when_checkpointing must be >= 1, got {self.max_eps_when_checkpointing}",
            ),
            (self.zs_dim >= 1, f"agent.zs_dim must be >= 1, got {self.zs_dim}"),
            (
                len(self.enc_mlp_dims) >= 1 and all(h >= 1 for h in self.enc_mlp_dims),
                f"agent.enc_mlp_dims must be a non-empty list of positive widths, got "
                f"{list(self.enc_mlp_dims)}",
            ),
            (
                len(self.mlp_dims) >= 1 and all(h >= 1 for h in self.mlp_dims),
                f"agent.mlp_dims must be a non-empty list of positive widths, got {list(self.mlp_dims)}",
            ),
        ]
        require(checks)


class SALE(nn.Module):
    """State encoder f: o -> z_s = AvgL1Norm(MLP(o)); state-action encoder g: (z_s, a) -> z_sa (raw)."""

    def __init__(self, obs_dim: int, act_dim: int, zs_dim: int, hidden: list[int]):
        super().__init__()
        self.f = mlp(obs_dim, hidden, zs_dim, act=nn.ELU, norm=False)
        self.g = mlp(zs_dim + act_dim, hidden, zs_dim, act=nn.ELU, norm=False)

    def zs(self, obs: Tensor) -> Tensor:
        return avg_l1_norm(self.f(obs))

    def zsa(self, zs: Tensor, action: Tensor) -> Tensor:
        return self.g(torch.cat([zs, action], -1))


class Actor(nn.Module):
    """pi(o, z_s) = tanh(MLP_ReLU([AvgL1Norm(W o), z_s]))."""

    def __init__(self, obs_dim: int, act_dim: int, zs_dim: int, hidden: list[int]):
        super().__init__()
        self.embed = nn.Linear(obs_dim, hidden[0])
        self.net = mlp(hidden[0] + zs_dim, hidden, act_dim, act=nn.ReLU, norm=False)

    def forward(self, obs: Tensor, zs: Tensor) -> Tensor:
        return torch.tanh(self.net(torch.cat([avg_l1_norm(self.embed(obs)), zs], -1)))


class Critic(nn.Module):
    """Two independent heads, vectorised: Q_k = MLP_ELU_k([AvgL1Norm(W_k [o, a]), z_sa, z_s]) -> [2, B]."""

    def __init__(self, obs_dim: int, act_dim: int, zs_dim: int, hidden: list[int], heads: int = 2):
        super().__init__()
        self.heads = heads
        self.embed = EnsembleLinear(heads, obs_dim + act_dim, hidden[0])
        dims = [hidden[0] + 2 * zs_dim, *hidden]
        self.hidden = nn.ModuleList(EnsembleLinear(heads, i, o) for i, o in zip(dims[:-1], dims[1:]))
        self.acts = nn.ModuleList(nn.ELU() for _ in self.hidden)  # modules, so the diagnostics see the units
        self.out = EnsembleLinear(heads, dims[-1], 1)

    def forward(self, obs: Tensor, action: Tensor, zsa: Tensor, zs: Tensor) -> Tensor:
        h = avg_l1_norm(self.embed(torch.cat([obs, action], -1)))  # [2, B, h]
        emb = torch.cat([zsa, zs], -1).expand(self.heads, -1, -1)
        x = torch.cat([h, emb], -1)
        for lin, act in zip(self.hidden, self.acts):
            x = act(lin(x))
        return self.out(x).squeeze(-1)


def lap_huber(delta: Tensor, min_priority: float = 1.0) -> Tensor:
    """LAP-Huber of absolute TD errors delta [heads, B]: 0.5 delta^2 below min_priority, else
    min_priority * delta; summed over heads, averaged over the batch."""
    per = torch.where(delta < min_priority, 0.5 * delta.pow(2), min_priority * delta)
    return per.sum(0).mean()


class PolicyCheckpoints(UpdateSchedule):
    """TD7's schedule: after each training episode, the updates `TD7.updates_due` says are due (the steps
    collected since the last burst, at the end of each policy assessment)."""

    def __init__(self, agent: TD7):
        self.agent = agent

    def after_episode(self, credit: Credit, episode: EpisodeEnd) -> int:
        return self.agent.updates_due(episode.episode_return, episode.env_steps, credit.rate)


class TD7(Agent):
    STATE_OBJECTS = (
        "encoder",
        "fixed_encoder",
        "fixed_encoder_target",
        "checkpoint_encoder",
        "actor",
        "actor_target",
        "checkpoint_actor",
        "critic",
        "critic_target",
        "encoder_opt",
        "actor_opt",
        "critic_opt",
    )
    STATE_VALUES = (
        "y_min",
        "y_max",
        "clip_lo",
        "clip_hi",
        "training_steps",
        "eps_since",
        "steps_since",
        "min_return",
        "best_min_return",
        "eps_per_assessment",
        "update_credit",
    )
    # The checkpoint networks go with what they copy; the value-normalisation bounds (y_min, y_max) and
    # the checkpoint counters stay the target run's own.
    TRANSFER_PARTS = {
        "representation": Part(("encoder", "fixed_encoder", "fixed_encoder_target", "checkpoint_encoder")),
        "actor": Part(("actor", "actor_target", "checkpoint_actor")),
        "critic": Part(("critic", "critic_target")),
        "optimizers": Part(("encoder_opt", "actor_opt", "critic_opt")),
    }

    def __init__(self, cfg: TD7Config, obs_dim: int, act_dim: int, device: torch.device, seed: int):
        super().__init__(cfg, device, seed)
        self.spec = AgentSpec(
            seq_len=1,
            batch_size=cfg.batch_size,
            updates_per_step=0.5,
            warmup_with_policy=cfg.warmup_with_policy,
            replay_capacity=1_000_000,  # the code's 1e6 FIFO
        )
        # training waits for the end of each policy assessment; without checkpoints, after every agent step
        self.schedule = PolicyCheckpoints(self) if cfg.use_checkpoints else PerStep()
        self.latent_width, self.act_dim = cfg.zs_dim, act_dim
        self.encoder = SALE(obs_dim, act_dim, cfg.zs_dim, cfg.enc_mlp_dims).to(self.device)
        self.fixed_encoder = frozen_copy(self.encoder)
        self.fixed_encoder_target = frozen_copy(self.encoder)
        self.checkpoint_encoder = frozen_copy(self.encoder)
        self.actor = Actor(obs_dim, act_dim, cfg.zs_dim, cfg.mlp_dims).to(self.device)
        self.actor_target = frozen_copy(self.actor)
        self.checkpoint_actor = frozen_copy(self.actor)
        self.critic = Critic(obs_dim, act_dim, cfg.zs_dim, cfg.mlp_dims).to(self.device)
        self.critic_target = frozen_copy(self.critic)
        self.encoder_opt = adam(self.encoder.parameters(), lr=cfg.lr)
        self.actor_opt = adam(self.actor.parameters(), lr=cfg.lr)
        self.critic_opt = adam(self.critic.parameters(), lr=cfg.lr)
        # Value clipping: all-time range of the TD targets, and the range in force (0, 0 at first).
        self.y_min = torch.tensor(math.inf, device=self.device)
        self.y_max = torch.tensor(-math.inf, device=self.device)
        self.clip_lo = torch.zeros((), device=self.device)
        self.clip_hi = torch.zeros((), device=self.device)
        self.training_steps = 0
        # Checkpoint assessment (the code's `maybe_train_and_checkpoint`).
        self.eps_since = 0
        self.steps_since = 0  # env steps collected since the last training burst
        self.min_return = math.inf
        self.best_min_return = -math.inf
        self.eps_per_assessment = 1
        self.update_credit = 0.0  # fractional burst updates carried over

    # ------------------------------------------------------------------ learning
    def encoder_loss(self, obs: Tensor, action: Tensor, next_obs: Tensor) -> Tensor:
        with torch.no_grad():
            target = self.encoder.zs(next_obs)  # online f, stop-gradient
        return F.mse_loss(self.encoder.zsa(self.encoder.zs(obs), action), target)

    def update_encoder(self, obs: Tensor, action: Tensor, next_obs: Tensor) -> Tensor:
        return self.updater.step(self.encoder_loss, obs, action, next_obs, opt=self.encoder_opt).loss

    def target_draws(self, batch_size: int) -> dict[str, Tensor]:
        """The draw of `td_target`: the target-policy smoothing noise N(0, 1) [B, A]."""
        g = self.generator
        return {"noise": torch.randn((batch_size, self.act_dim), generator=g, device=g.device)}

    @torch.no_grad()
    def td_target(
        self,
        reward: Tensor,
        not_done: Tensor,
        next_obs: Tensor,
        clip_lo: Tensor,
        clip_hi: Tensor,
        *,
        noise: Tensor,
    ) -> Tensor:
        """y = r + gamma (1 - d) clip(min_k Qbar_k(o', a'), m_lo, m_hi), a' = pibar(o') + clipped noise."""
        c = self.cfg
        zs = self.fixed_encoder_target.zs(next_obs)
        a = noisy_action(self.actor_target(next_obs, zs), noise * c.policy_noise, c.noise_clip)
        q = self.critic_target(next_obs, a, self.fixed_encoder_target.zsa(zs, a), zs).amin(0)
        return reward + c.gamma * not_done * q.clamp(clip_lo, clip_hi)

    @torch.no_grad()
    def fixed_features(self, obs: Tensor) -> Tensor:
        """z_s of the fixed encoder: the actor's and the critic's input."""
        return self.fixed_encoder.zs(obs)

    def critic_loss(
        self, obs: Tensor, action: Tensor, y: Tensor, zs: Tensor
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """(LAP-Huber loss of |delta| = |Q_k - y| on fixed-encoder inputs, (Q [2, B], |delta| [2, B]))."""
        with torch.no_grad():
            zsa = self.fixed_encoder.zsa(zs, action)
        q = self.critic(obs, action, zsa, zs)  # [2, B]
        delta = (q - y).abs()
        return lap_huber(delta, self.cfg.lap_min_priority), (q, delta)

    def update_critic(self, obs: Tensor, action: Tensor, y: Tensor, zs: Tensor) -> tuple[Tensor, dict]:
        """One LAP-Huber critic step on fixed-encoder inputs; returns |delta| [2, B] and metrics."""
        step = self.updater.step(self.critic_loss, obs, action, y, zs, opt=self.critic_opt)
        q, delta = step.aux
        return delta, {"q_loss": step.loss, "q_mean": q.mean(), "target_mean": y.mean()}

    def actor_loss(self, obs: Tensor, zs: Tensor) -> Tensor:
        """J = -mean over batch and both heads; the gradient passes through g_fix and Q into the action."""
        a = self.actor(obs, zs)
        return -self.critic(obs, a, self.fixed_encoder.zsa(zs, a), zs).mean()

    def update_actor(self, obs: Tensor, zs: Tensor) -> Tensor:
        """Actor step, the critic's weights held fixed."""
        return self.updater.step(self.actor_loss, obs, zs, opt=self.actor_opt, frozen=(self.critic,)).loss

    def sync_targets(self, replay) -> None:
        """Every `target_update_every` steps: hard copies of actor, critic and fixed encoder into their
        targets."""
        u = self.updater
        u.copy(self.actor_target, self.actor)
        u.copy(self.critic_target, self.critic)
        u.copy(self.fixed_encoder_target, self.fixed_encoder)
        u.copy(self.fixed_encoder, self.encoder)
        replay.reset_max_priority()
        self.clip_lo, self.clip_hi = self.y_min.clone(), self.y_max.clone()

    def update(self, replay, step: int) -> dict:
        c, u = self.cfg, self.updater
        if c.use_checkpoints and self.training_steps == c.steps_before_checkpointing:
            self.best_min_return *= c.reset_weight
            self.eps_per_assessment = c.max_eps_when_checkpointing
        self.training_steps += 1
        b = replay.sample(c.batch_size, 1, prioritized=True)
        obs, action, next_obs = b.obs[:, 0], b.action[:, 0], b.obs[:, 1]
        metrics = {"repr_loss": self.update_encoder(obs, action, next_obs)}
        not_done = 1.0 - b.terminal[:, 0].float()
        y = u.call(
            self.td_target,
            b.reward[:, 0],
            not_done,
            next_obs,
            self.clip_lo,
            self.clip_hi,
            **self.target_draws(len(b)),
        )
        self.y_max = torch.maximum(self.y_max, y.max())  # the all-time range of the targets
        self.y_min = torch.minimum(self.y_min, y.min())
        zs = u.call(self.fixed_features, obs)
        delta, critic_metrics = self.update_critic(obs, action, y, zs)
        metrics.update(critic_metrics)
        replay.update_priorities(b.index, lap_priority(delta.T, c.lap_alpha, c.lap_min_priority))
        if self.training_steps % c.actor_update_freq == 0:
            metrics["actor_loss"] = self.update_actor(obs, zs)
        if self.training_steps % c.target_update_every == 0:
            self.sync_targets(replay)
        return metrics

    # ------------------------------------------------------------------ policy checkpoints
    def updates_due(self, episode_return: float, episode_env_steps: int, updates_per_step: float) -> int:
        """After a training episode: the updates to run now (0 while the current policy is being assessed),
        at the run's rate `updates_per_step`."""
        self.eps_since += 1
        self.steps_since += episode_env_steps
        self.min_return = min(self.min_return, episode_return)
        if self.min_return < self.best_min_return:  # worse than the checkpoint: stop assessing early
            return self._end_assessment(updates_per_step)
        if self.eps_since == self.eps_per_assessment:  # survived the assessment: new checkpoint
            self.best_min_return = self.min_return
            hard_update_(self.checkpoint_actor.parameters(), self.actor.parameters())
            hard_update_(self.checkpoint_encoder.parameters(), self.fixed_encoder.parameters())
            return self._end_assessment(updates_per_step)
        return 0

    def _end_assessment(self, updates_per_step: float) -> int:
        credit = self.steps_since * updates_per_step + self.update_credit
        n = int(math.floor(credit + 1e-9))
        self.update_credit = credit - n
        self.eps_since, self.steps_since, self.min_return = 0, 0, math.inf
        return n

    # ------------------------------------------------------------------ acting and diagnostics
    def act(self, obs: np.ndarray, explore: bool) -> np.ndarray:
        """Exploring: pi(s, z_s) of the fixed encoder plus N(0, sigma_expl^2) noise; evaluating, the
        checkpoint policy (`use_checkpoints`) or the current one. The draw first, then the policy through the
        updater (the K-seed mode acts for every seed in one forward)."""
        o, g = to_tensor(obs, self.device), self.generator
        draws = {}
        if explore:
            noise = torch.randn((*o.shape[:-1], self.act_dim), generator=g, device=g.device)
            draws["noise"] = noise * self.cfg.expl_noise
        checkpoint = not explore and self.cfg.use_checkpoints
        return self.updater.act(self.policy_action, o, checkpoint, **draws).numpy()

    def policy_action(self, obs: Tensor, checkpoint: bool, noise: Tensor | None = None) -> Tensor:
        """The checkpoint policy's action, or clamp(pi(s, z_s) + noise, -1, 1) (pi(s, z_s) without noise)."""
        if checkpoint:
            return self.checkpoint_actor(obs, self.checkpoint_encoder.zs(obs))
        a = self.actor(obs, self.fixed_encoder.zs(obs))
        return a if noise is None else noisy_action(a, noise, None)

    @torch.no_grad()
    def latent(self, obs: Tensor) -> Tensor:
        """z_s of the fixed encoder (what the actor and critic consume)."""
        return self.fixed_encoder.zs(obs.to(self.device))

    @torch.no_grad()
    def probe_q(self, obs: Tensor, action: Tensor) -> Tensor:
        """Both online Q heads [2, n] on the fixed encoder's (z_sa, z_s), as the critic step reads them."""
        obs, action = obs.to(self.device), action.to(self.device)
        zs = self.fixed_encoder.zs(obs)
        return self.critic(obs, action, self.fixed_encoder.zsa(zs, action), zs)

    @torch.no_grad()
    def probe_actor(self, obs: Tensor) -> Tensor:
        """The current actor's pi(o, z_s) (what explores; evaluation may read the checkpoint policy)."""
        return self.policy_action(obs.to(self.device), checkpoint=False)

    @torch.no_grad()
    def predict_latents(self, obs: Tensor, action: Tensor) -> tuple[Tensor, Tensor]:
        """SALE's one-step prediction z_sa = g(f(o_t), a_t) [1, n, D] of the online encoder and the z_s =
        f(o_{t+1}) it is trained towards (the encoder loss's, online f)."""
        obs, action = obs.to(self.device), action.to(self.device)
        pred = self.encoder.zsa(self.encoder.zs(obs[:, 0]), action[:, 0])
        return pred[None], self.encoder.zs(obs[:, 1])[None]
