"""TCRL: latent temporal consistency + a model-free TD3-like actor-critic on the latent (Zhao et al. 2023,
arXiv 2306.09466).

Zhao et al., "Simplified Temporal Consistency Reinforcement Learning", ICML 2023 (arXiv 2306.09466);
code github.com/zhaoyi11/tcrl. Paper order per update: model step (encoder, latent dynamics and
reward head trained by a 5-step rho-weighted cosine consistency + reward loss against an EMA target
encoder) -> encode o_0 and o_n with the *online* encoder under no_grad -> critic step (shared-trunk twin
critic, n-step target from the *online* actor, no actor target) -> actor step (every update) -> EMA of
the target encoder and the target critic. The RL losses never reach the encoder.

One sigma_t serves as exploration std, target-action noise std and actor-update noise std; it follows
linear(start, end, episodes) of the *episode index*, the 10 random episodes counted (docs/faithfulness.md
TC-2, kept).
The episode index comes from the trainer's `on_episode_start(training=True)` calls; as in the code the
updates after episode k use sigma(k), and acting uses the value of the last update (sigma(0) before it).
Harness choices: targets are copies of the online nets at start (docs/faithfulness.md TC-1; the code's
independent
random init is `official_random_target_init`); windows come from the shared sequence replay (no loader
lag, TC-3); model-free only (the public code does not plan).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from iqrl.core.checks import require
from iqrl.core.interface import Agent, AgentConfig, AgentSpec, Part, learner_parts, to_tensor
from iqrl.core.replay import SequenceBatch, nstep_transition
from iqrl.core.update import Updater
from iqrl.nn.layers import frozen_copy, init_linear_, mlp
from iqrl.nn.maths import clipped_sample, linear_decay
from iqrl.nn.optim import adam


@dataclass
class TCRLConfig(AgentConfig):
    # The code's seed phase, 10 episodes of uniform actions (zhaoyi11/tcrl@9773d8e cfgs/default.yaml:24,
    # main.py:128), is the harness's 10,000 env steps on DMC, the one suite it runs: SEED_PHASE stays unset
    TINY: ClassVar[dict] = {
        "mlp_dims": [32, 32],
        "batch_size": 16,
        "latent_dim": 8,
        "enc_mlp_dims": [32],
        "horizon": 2,
    }
    name: str = "tcrl"
    # --- latent model ---
    latent_dim: int = 50  # d: 50 easy / medium, 100 hard (task YAML)
    enc_mlp_dims: list[int] = field(default_factory=lambda: [512, 512])  # the encoder's hidden widths
    mlp_dims: list[int] = field(default_factory=lambda: [512, 512])  # dynamics, reward, actor, critic
    horizon: int = 5  # H
    rho: float = 0.9  # per-step weight rho^h of the model loss
    consistency_coef: float = 1.0  # weight of the cosine consistency term of the model loss
    reward_coef: float = 1.0  # weight of the reward term of the model loss
    loss_clamp: float = 1e4  # per-sample clamp of each summed loss term
    model_lr: float = 3e-4  # one Adam over encoder, dynamics, reward head
    model_weight_decay: float = 1e-6  # coupled L2 (Adam, not AdamW)
    model_grad_clip: float = 10.0  # gradient-norm clip of the model step
    enc_tau: float = 0.005  # EMA rate of the target encoder
    # --- actor-critic ---
    batch_size: int = 512  # windows per gradient update
    nstep: int = 3  # 1 for humanoid (task YAML)
    gamma: float = 0.99  # discount
    lr: float = 3e-4  # actor and critic (Adam, no clipping)
    tau: float = 0.005  # EMA rate of the target critic
    # --- sigma schedule: linear(start, end, episodes) over the episode index ---
    sigma_start: float = 1.0  # exploration std of the first episode
    sigma_end: float = 0.1  # 0.2 hard
    sigma_episodes: int = 50  # 50 easy / 150 medium / 500 hard
    sigma_clip: float = 0.3  # clip of the target and actor-update noise (exploration noise is unclipped)
    init: str = "orthogonal"  # orthogonal | default
    official_random_target_init: bool = False  # TC-1: targets start from their own random init

    def validate(self) -> None:
        checks = [
            (self.latent_dim >= 1, f"latent_dim must be >= 1, got {self.latent_dim}"),
            (
                len(self.mlp_dims) >= 1 and all(h >= 1 for h in self.mlp_dims),
                f"mlp_dims must be a non-empty list of positive ints, got {list(self.mlp_dims)}",
            ),
            (
                len(self.enc_mlp_dims) >= 1 and all(h >= 1 for h in self.enc_mlp_dims),
                f"enc_mlp_dims must be a non-empty list of positive ints, got {list(self.enc_mlp_dims)}",
            ),
            (self.horizon >= 1, f"horizon must be >= 1, got {self.horizon}"),
            (0.0 < self.rho <= 1.0, f"rho must be in (0, 1], got {self.rho}"),
            (self.loss_clamp > 0, f"loss_clamp must be > 0, got {self.loss_clamp}"),
            (self.model_grad_clip > 0, f"model_grad_clip must be > 0, got {self.model_grad_clip}"),
            (self.model_lr > 0, f"model_lr must be > 0, got {self.model_lr}"),
            (self.model_weight_decay >= 0, f"model_weight_decay must be >= 0, got {self.model_weight_decay}"),
            (self.lr > 0, f"lr must be > 0, got {self.lr}"),
            (0.0 < self.enc_tau <= 1.0, f"enc_tau must be in (0, 1], got {self.enc_tau}"),
            (self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}"),
            (self.nstep >= 1, f"nstep must be >= 1, got {self.nstep}"),
            (0.0 < self.gamma <= 1.0, f"gamma must be in (0, 1], got {self.gamma}"),
            (0.0 < self.tau <= 1.0, f"tau must be in (0, 1], got {self.tau}"),
            (self.sigma_start >= 0 and self.sigma_end >= 0, "sigma_start and sigma_end must be >= 0"),
            (self.sigma_episodes >= 1, f"sigma_episodes must be >= 1, got {self.sigma_episodes}"),
            (self.sigma_clip > 0, f"sigma_clip must be > 0, got {self.sigma_clip}"),
            (
                self.init in ("default", "orthogonal"),
                f"init must be default or orthogonal, got {self.init!r}",
            ),
        ]
        require(checks)


class Actor(nn.Module):
    """mu(z) = tanh(EluMLP(tanh(LN(Linear(z))))): z -> Linear(d, h0) -> LayerNorm -> tanh -> ... -> tanh."""

    def __init__(self, latent_dim: int, mlp_dims: list[int], act_dim: int, init: str):
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(latent_dim, mlp_dims[0]), nn.LayerNorm(mlp_dims[0]), nn.Tanh())
        self.head = mlp(mlp_dims[0], mlp_dims[1:], act_dim, init, act=nn.ELU, norm=False)
        init_linear_(self.trunk, init)

    def forward(self, z: Tensor) -> Tensor:
        return torch.tanh(self.head(self.trunk(z)))


class Critic(nn.Module):
    """Twin Q with a shared trunk: [z, a] -> Linear -> LayerNorm -> tanh, then two EluMLP heads. -> [2, B]."""

    def __init__(self, latent_dim: int, act_dim: int, mlp_dims: list[int], init: str):
        super().__init__()
        self.trunk = nn.Sequential(
            nn.Linear(latent_dim + act_dim, mlp_dims[0]), nn.LayerNorm(mlp_dims[0]), nn.Tanh()
        )
        self.heads = nn.ModuleList(
            [mlp(mlp_dims[0], mlp_dims[1:], 1, init, act=nn.ELU, norm=False) for _ in range(2)]
        )
        init_linear_(self.trunk, init)

    def forward(self, z: Tensor, a: Tensor) -> Tensor:
        h = self.trunk(torch.cat([z, a], -1))
        return torch.stack([head(h).squeeze(-1) for head in self.heads])


class TCRLActorCritic(nn.Module):
    """Actor, twin critic and its EMA target, optimizers and the current sigma (no actor target)."""

    def __init__(self, cfg: TCRLConfig, act_dim: int, generator: torch.Generator):
        super().__init__()
        self.cfg, self.generator, self.act_dim = cfg, generator, act_dim
        self.actor = Actor(cfg.latent_dim, cfg.mlp_dims, act_dim, cfg.init)
        self.critic = Critic(cfg.latent_dim, act_dim, cfg.mlp_dims, cfg.init)
        if cfg.official_random_target_init:
            self.critic_target = Critic(cfg.latent_dim, act_dim, cfg.mlp_dims, cfg.init).requires_grad_(False)
        else:
            self.critic_target = frozen_copy(self.critic)
        self.actor_opt = adam(self.actor.parameters(), lr=cfg.lr)
        self.critic_opt = adam(self.critic.parameters(), lr=cfg.lr)
        self.sigma = linear_decay(cfg.sigma_start, cfg.sigma_end, cfg.sigma_episodes, 0)

    @property
    def expl_sigma(self) -> float:
        return self.sigma

    def sample(self, z: Tensor, clip: float | None, noise: Tensor) -> Tensor:
        """Truncated-normal action mu(z) + clip(noise), straight-through clamp (reparameterised)."""
        return clipped_sample(self.actor(z), noise, clip)

    def noise(self, *lead: int) -> Tensor:
        """The draw of an action sample: N(0, sigma^2) noise [*lead, A] from the agent's generator."""
        g = self.generator
        return torch.randn((*lead, self.act_dim), generator=g, device=g.device) * self.sigma

    @torch.no_grad()
    def td_target(self, ret: Tensor, discount: Tensor, z_next: Tensor, *, noise: Tensor) -> Tensor:
        """y = R + gamma^n min(Q1', Q2')(z_n, a'), a' = mu(z_n) + clipped noise from the online actor."""
        a_next = self.sample(z_next, self.cfg.sigma_clip, noise)
        return ret + discount * self.critic_target(z_next, a_next).amin(0)

    def critic_loss(self, z: Tensor, action: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """(sum over both heads of the MSE to y, Q [2, B])."""
        q = self.critic(z, action)
        return ((q - y) ** 2).sum(0).mean(), q

    def actor_loss(self, z: Tensor, *, noise: Tensor) -> Tensor:
        """J = -mean min(Q1, Q2)(z, mu(z) + clipped noise)."""
        return -self.critic(z, self.sample(z, self.cfg.sigma_clip, noise)).amin(0).mean()

    def update(
        self, u: Updater, z: Tensor, action: Tensor, ret: Tensor, discount: Tensor, z_next: Tensor
    ) -> dict:
        """Critic step, then an actor step (every update)."""
        y = u.call(self.td_target, ret, discount, z_next, noise=self.noise(len(z)))
        critic = u.step(self.critic_loss, z, action, y, opt=self.critic_opt)
        # The critic's weights are held fixed in the actor's step (the official code computes their
        # gradients and discards them).
        actor = u.step(
            self.actor_loss, z, opt=self.actor_opt, frozen=(self.critic,), noise=self.noise(len(z))
        )
        return {
            "q_loss": critic.loss,
            "q_mean": critic.aux.mean(),
            "target_mean": y.mean(),
            "actor_loss": actor.loss,
            "sigma": self.sigma,
        }


class TCRL(Agent):
    STATE_OBJECTS = (
        "encoder",
        "encoder_target",
        "dynamics",
        "reward_head",
        "ac=learner",
        "model_opt",
        "actor_opt=learner.actor_opt",
        "critic_opt=learner.critic_opt",
    )
    STATE_VALUES = ("sigma=learner.sigma", "train_episodes")
    TRANSFER_PARTS = {
        "representation": Part(("encoder", "encoder_target", "dynamics", "reward_head")),
        **learner_parts(),
    }
    TRANSFER_PARTS["optimizers"] = Part(("model_opt", *TRANSFER_PARTS["optimizers"].paths))

    def __init__(self, cfg: TCRLConfig, obs_dim: int, act_dim: int, device: torch.device, seed: int):
        super().__init__(cfg, device, seed)
        # 250 updates per 1000-frame episode: 0.5 per agent step = 0.25 per env step.
        self.spec = AgentSpec(
            seq_len=max(cfg.horizon, cfg.nstep), batch_size=cfg.batch_size, updates_per_step=0.25
        )
        d = cfg.latent_dim
        self.latent_width = d
        self.encoder = mlp(obs_dim, cfg.enc_mlp_dims, d, cfg.init, act=nn.ELU, norm=False).to(self.device)
        if cfg.official_random_target_init:
            self.encoder_target = (
                mlp(obs_dim, cfg.enc_mlp_dims, d, cfg.init, act=nn.ELU, norm=False)
                .requires_grad_(False)
                .to(self.device)
            )
        else:
            self.encoder_target = frozen_copy(self.encoder)
        self.dynamics = mlp(d + act_dim, cfg.mlp_dims, d, cfg.init, act=nn.ELU, norm=False).to(
            self.device
        )  # next latent, not residual
        self.reward_head = mlp(d + act_dim, cfg.mlp_dims, 1, cfg.init, act=nn.ELU, norm=False).to(self.device)
        self.model_params = [
            p for m in (self.encoder, self.dynamics, self.reward_head) for p in m.parameters()
        ]
        self.model_opt = adam(self.model_params, lr=cfg.model_lr, weight_decay=cfg.model_weight_decay)
        self.rho_powers = cfg.rho ** torch.arange(cfg.horizon, dtype=torch.float32, device=self.device)
        self.learner = TCRLActorCritic(cfg, act_dim, self.generator).to(self.device)
        self.train_episodes = 0  # training episodes started (random ones included): sigma's clock

    @property
    def exploration_sigma(self) -> float | None:
        return self.learner.expl_sigma

    # ------------------------------------------------------------------ latent model
    def model_loss(self, batch: SequenceBatch) -> tuple[Tensor, dict]:
        """L = mean_b[c_c min(sum_t rho^t (2 - 2cos(z^_{t+1}, sg[e'(o_{t+1})])), 1e4)
        + c_r min(sum_t rho^t (r^_t - r_t)^2, 1e4)]   (backward through L / H)."""
        c, H = self.cfg, self.cfg.horizon
        obs, act = batch.obs, batch.action
        mask = batch.valid[:, :H] * self.rho_powers  # windows lie inside one episode; valid is 1 on DMC
        with torch.no_grad():
            targets = self.encoder_target(obs[:, 1 : H + 1])  # [B, H, d]
        z = self.encoder(obs[:, 0])
        cons, rew = [], []
        for t in range(H):
            za = torch.cat([z, act[:, t]], -1)
            rew.append((self.reward_head(za).squeeze(-1) - batch.reward[:, t]) ** 2)
            z = self.dynamics(za)  # open loop: the prediction is fed back
            cons.append(2.0 - 2.0 * F.cosine_similarity(z, targets[:, t], dim=-1))
        consistency = (torch.stack(cons, 1) * mask).sum(1).clamp(max=c.loss_clamp).mean()
        reward = (torch.stack(rew, 1) * mask).sum(1).clamp(max=c.loss_clamp).mean()
        loss = c.consistency_coef * consistency + c.reward_coef * reward
        return loss, {
            "consistency_loss": consistency.detach(),
            "reward_loss": reward.detach(),
            "repr_loss": loss.detach(),
        }

    def model_objective(self, batch: SequenceBatch) -> tuple[Tensor, dict]:
        """L / H, what the model step minimises: the code scales the model's gradient by 1/H."""
        loss, metrics = self.model_loss(batch)
        return loss / self.cfg.horizon, metrics

    def update_model(self, batch: SequenceBatch) -> dict:
        step = self.updater.step(
            self.model_objective, batch, opt=self.model_opt, max_norm=self.cfg.model_grad_clip
        )
        return {**step.aux, "enc_grad_norm": step.grad_norm}

    # ------------------------------------------------------------------ actor-critic
    def update_rl(self, batch: SequenceBatch) -> dict:
        # online encoder after its update, detached: RL never trains it
        u = self.updater
        return self.learner.update(u, *u.call(self.rl_inputs, batch))

    def rl_inputs(self, batch: SequenceBatch) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """(z_0, a_0, n-step return, bootstrap discount, z_n), the latents from the online encoder under
        no_grad."""
        c = self.cfg
        return nstep_transition(batch, c.gamma, c.nstep, encode=self.encoder)

    def update(self, replay, step: int) -> dict:
        c = self.cfg
        # sigma of the current episode index (the code sets it at the start of every update)
        self.learner.sigma = linear_decay(
            c.sigma_start, c.sigma_end, c.sigma_episodes, self.train_episodes - 1
        )
        batch = replay.sample(c.batch_size)
        metrics = self.update_model(batch)
        metrics.update(self.update_rl(batch))
        self.updater.ema(self.encoder_target, self.encoder, c.enc_tau)
        self.updater.ema(self.learner.critic_target, self.learner.critic, c.tau)
        return metrics

    def on_episode_start(self, training: bool) -> None:
        if training:
            self.train_episodes += 1

    # ------------------------------------------------------------------ acting and diagnostics
    def act(self, obs: np.ndarray, explore: bool) -> np.ndarray:
        """Exploring: the truncated-normal sample mu(z) + N(0, sigma^2) noise (unclipped); evaluating, the
        mean mu(z). The draw first, then the policy through the updater (the K-seed mode acts for every seed
        in one forward)."""
        x = to_tensor(obs, self.device)
        draws = {"noise": self.learner.noise(*x.shape[:-1])} if explore else {}
        return self.updater.act(self.policy_action, x, **draws).numpy()

    def policy_action(self, obs: Tensor, noise: Tensor | None = None) -> Tensor:
        z = self.encoder(obs)
        return self.learner.actor(z) if noise is None else self.learner.sample(z, None, noise)

    @torch.no_grad()
    def latent(self, obs: Tensor) -> Tensor:
        return self.encoder(obs.to(self.device))

    @torch.no_grad()
    def probe_q(self, obs: Tensor, action: Tensor) -> Tensor:
        return self.learner.critic(self.encoder(obs.to(self.device)), action)

    @torch.no_grad()
    def probe_actor(self, obs: Tensor) -> Tensor:
        return self.policy_action(obs.to(self.device))

    @torch.no_grad()
    def predict_latents(self, obs: Tensor, action: Tensor) -> tuple[Tensor, Tensor]:
        """The dynamics' open-loop rollout from e(o_t) and the target encoder's e'(o_{t+1..t+H}), as in
        `model_loss`."""
        H, z, pred = self.cfg.horizon, self.encoder(obs[:, 0]), []
        for t in range(H):
            z = self.dynamics(torch.cat([z, action[:, t]], -1))
            pred.append(z)
        return torch.stack(pred), self.encoder_target(obs[:, 1 : H + 1]).transpose(0, 1)
