"""MR.Q-style agent: model-based representation, model-free TD3-like RL (Fujimoto et al. 2025, arXiv
2501.16142).

Fujimoto et al., "Towards General-Purpose Model-Free Reinforcement Learning" (ICLR 2025,
arXiv 2501.16142), code github.com/facebookresearch/MRQ (state observations, continuous actions).

Networks (LN = LayerNorm without affine; every Linear Xavier-uniform with gain sqrt(2), zero bias):
  z_s = ELU(LN(MLP_ELU(o)))          z_a = ELU(W_a a)          z_sa = MLP_ELU([z_s, z_a])
  model W: z_sa -> [done (1), next z_s, reward logits (65 two-hot bins, symexp(linspace(-10, 10)))]
  value: two independent LN-ELU MLPs on z_sa;  policy: a = tanh(u), u = MLP_ReLU(z_s).
One `update` = one RL step; at RL steps 1, 251, 501, ... it first hard-copies policy,
value and encoder into their targets, sets s_bar <- s, s <- mean |r| over the buffer, and runs 250
encoder steps back to back, so the encoder the RL step reads only changes every 250 steps.
  encoder (H = 5, LAP batch, own predictions fed back, no rho discount; mask m_t stops after a terminal):
      L = sum_t [ 1.0 mean (zhat_{t+1} - sg[zbar_s(o_{t+1})])^2 m_t + 0.1 CE_twohot(lhat_t, r_t) m_t
                  + 0.1 (dhat_t - term_t)^2 m_t (only once the buffer has seen a terminal) ]
  RL (Q horizon 3, LAP batch):  a' = clip(pibar(zbar_s(o_3)) + clip(N(0, 0.2^2), +-0.3), -1, 1)
      y = (R + gamma^3 (1 - term) s_bar min_j Qbar_j(zbar_sa(o_3, a'))) / s
      L_Q = mean_j Huber_1(Q_j(z_sa(o_0, a_0)), y) (online encoder under no-grad), value grad-norm clip 20
      J = -mean_{b,j} Q_j(z_sa(z_s, tanh(u))) + 1e-5 mean u^2 (gradient through z_sa into the action only)
      LAP priorities max(max_j |Q_j - y|, 1)^0.4 written back (encoder batches never write priorities).
Encoder AdamW lr 1e-4, value and policy AdamW lr 3e-4, weight decay 1e-4 everywhere.
Exploration clip(pi(z_s) + N(0, 0.2^2), -1, 1); evaluation deterministic. One RL update per agent step
(`PerStep`, 0.5 updates per env step).

Quirk switches (off by default; MRQ-1 below):
  MRQ-2 `official_priority_from_policy_q`: the code (read at 0f0ed0e) writes LAP priorities from
  |Q_j(s, pi(s)) - y| (the
  Q of the policy's action, computed after the value step), not from the critic's TD error on the
  sampled action; the default uses the TD error |Q_j(s, a) - y| of the value step, as LAP intends.
From pixels (`obs=pixels`; the code's Dmc-visual tasks, read at 8a44a7d): z_s = ELU(LN(W flatten(CNN(o / 255
- 0.5)))), CNN = four 3x3 convolutions of 32 filters with strides 2, 2, 2, 1, each followed by ELU (32 x 7 x 7
= 1568 features at 84 x 84), Xavier-uniform init as every other layer; every other network and value as for
states. Each sampled window (the 250 encoder batches and the RL batch) has every frame stack shifted by its
own random offset of up to `image_pad` = 4 pixels (the code's pixel_augs / shift_aug), drawn from the agent's
generator before its loss. The code stacks 3 frames and repeats actions twice there (run keys
frame_stack, action_repeat).
Adaptations to the harness: the seed phase is the code's 10 000 agent steps by default (`seed_steps`
counts env steps: 20 000 at DMC's action repeat 2, MRQConfig.SEED_PHASE); the n-step return accumulates
the terminal step's reward and stops there (docs/faithfulness.md MRQ-1: the code at 8a44a7d drops it,
`official_drop_terminal_reward`; irrelevant on DMC). Replay: the code's 1M-transition FIFO
(AgentSpec.replay_capacity).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from baselines.mrq_nets import MrqCNN, MrqEncoder, mrq_mlp
from iqrl.core.checks import require
from iqrl.core.interface import Agent, AgentConfig, AgentSpec, Part, pixel_shape, to_tensor
from iqrl.core.replay import SequenceBatch, lap_priority, nstep_transition, shift_window
from iqrl.core.schedule import PerStep, SeedPhase
from iqrl.core.spaces import ActionSpec
from iqrl.nn.layers import after_step, frozen_copy
from iqrl.nn.maths import (
    gumbel_action,
    gumbel_noise,
    gumbel_softmax,
    noisy_action,
    one_hot,
    two_hot_bins,
    two_hot_cross_entropy,
)
from iqrl.nn.optim import adam
from iqrl.nn.trunks import NETWORKS, residual_widths_check


@dataclass
class MRQConfig(AgentConfig):
    # buffer_size_before_training: 10 000 transitions of uniform actions, on every suite
    SEED_PHASE: ClassVar[SeedPhase] = SeedPhase(
        agent_steps=10_000, source="facebookresearch/MRQ@8a44a7d MRQ/MRQ.py:30, 137-139"
    )
    TINY: ClassVar[dict] = {
        "mlp_dims": [32, 32],
        "batch_size": 16,
        "zs_dim": 16,
        "za_dim": 8,
        "zsa_dim": 16,
        "enc_mlp_dims": [32, 32],
        "target_update_every": 50,
    }
    name: str = "mrq"
    # --- generic / TD3 ---
    batch_size: int = 256  # transitions per gradient update
    gamma: float = 0.99  # discount
    target_update_every: int = 250  # hard target copies, reward-scale refresh and encoder burst length
    expl_noise: float = 0.2  # std of the constant, unclipped Gaussian exploration noise
    policy_noise: float = 0.2  # target-policy smoothing std
    noise_clip: float = 0.3  # clip of the target-policy smoothing noise
    q_horizon: int = 3  # n-step of the RL target
    # --- encoder loss ---
    enc_horizon: int = 5  # steps of the encoder's model rollout
    dyn_weight: float = 1.0  # weight of the next-z_s term of the encoder loss
    reward_weight: float = 0.1  # weight of the two-hot reward term
    done_weight: float = 0.1  # weight of the terminal term
    # --- LAP ---
    lap_alpha: float = 0.4  # LAP's priority exponent: max(|delta|, min_priority)^alpha
    lap_min_priority: float = 1.0  # LAP's priority floor (also the LAP-Huber threshold)
    # --- encoder model ---
    zs_dim: int = 512  # width of the state embedding z_s
    za_dim: int = 256  # width of the action embedding z_a
    zsa_dim: int = 512  # width of the state-action embedding z_sa
    enc_mlp_dims: list[int] = field(default_factory=lambda: [512, 512])  # z_s's and z_sa's hidden widths
    enc_lr: float = 1e-4  # the encoder's AdamW rate
    enc_weight_decay: float = 1e-4  # the encoder's AdamW weight decay
    # --- value and policy (hidden widths; the value net adds one more LN-ELU layer of mlp_dims[-1]) ---
    mlp_dims: list[int] = field(default_factory=lambda: [512, 512])  # hidden widths of the value and policy
    value_lr: float = 3e-4  # the value's AdamW rate
    value_weight_decay: float = 1e-4  # the value's AdamW weight decay
    value_grad_clip: float = 20.0  # gradient-norm clip of the value step; 0: no clipping (DR.Q)
    policy_lr: float = 3e-4  # the policy's AdamW rate
    policy_weight_decay: float = 1e-4  # the policy's AdamW weight decay
    pre_activ_weight: float = 1e-5  # weight of the penalty on the policy's pre-tanh activations squared
    gumbel_tau: float = 10.0  # discrete actions: temperature of the Gumbel-softmax actor
    # --- two-hot reward bins ---
    num_bins: int = 65  # reward bins: symexp(linspace(bins_lower, bins_upper, num_bins))
    bins_lower: float = -10.0  # lowest bin before symexp
    bins_upper: float = 10.0  # highest bin before symexp
    # --- pixels (obs=pixels only) ---
    image_pad: int = (
        4  # random shift by up to 4 pixels of every sampled frame stack (code: pixel_augs, pad 4)
    )
    # --- quirks and harness options ---
    official_priority_from_policy_q: bool = False  # MRQ-2: priorities from |Q(s, pi(s)) - y|
    official_drop_terminal_reward: bool = False  # MRQ-1: the n-step return leaves out the terminal reward
    official_gumbel_eval: bool = False  # MRQ-3: discrete evaluation acts by a Gumbel-softmax sample
    # the state encoder's, z_sa's, the value's and the policy's MLPs: mlp (MR.Q's) | simba | simbav2 | bronet
    network: str = "mlp"
    warmup_with_policy: bool = False  # seed phase: the untrained policy with its noise instead of uniform

    def validate_pixels(self, image_size: int) -> None:
        size = MrqCNN.feature_size(image_size)
        require([(size >= 1, f"image_size {image_size} is too small for MR.Q's image encoder (>= 31)")])

    def validate(self) -> None:
        checks = [
            (self.batch_size >= 1, f"agent.batch_size must be >= 1, got {self.batch_size}"),
            (0.0 < self.gamma <= 1.0, f"agent.gamma must be in (0, 1], got {self.gamma}"),
            (
                self.target_update_every >= 1,
                f"agent.target_update_every must be >= 1, got {self.target_update_every}",
            ),
            (
                self.policy_noise >= 0 and self.noise_clip >= 0 and self.expl_noise >= 0,
                "agent.policy_noise, agent.noise_clip and agent.expl_noise must be >= 0",
            ),
            (self.q_horizon >= 1, f"agent.q_horizon must be >= 1, got {self.q_horizon}"),
            (self.enc_horizon >= 1, f"agent.enc_horizon must be >= 1, got {self.enc_horizon}"),
            (self.lap_alpha >= 0, f"agent.lap_alpha must be >= 0, got {self.lap_alpha}"),
            (self.lap_min_priority > 0, f"agent.lap_min_priority must be > 0, got {self.lap_min_priority}"),
            (
                min(self.zs_dim, self.za_dim, self.zsa_dim) >= 1,
                "agent.zs_dim, za_dim and zsa_dim must be >= 1",
            ),
            (
                len(self.enc_mlp_dims) >= 1 and all(h >= 1 for h in self.enc_mlp_dims),
                f"agent.enc_mlp_dims must be a non-empty list of positive widths, got "
                f"{list(self.enc_mlp_dims)}",
            ),
            (
                len(self.mlp_dims) >= 1 and all(h >= 1 for h in self.mlp_dims),
                f"agent.mlp_dims must be a non-empty list of positive widths, got {list(self.mlp_dims)}",
            ),
            (self.num_bins >= 2, f"agent.num_bins must be >= 2, got {self.num_bins}"),
            (self.image_pad >= 0, f"agent.image_pad must be >= 0, got {self.image_pad}"),
            (self.gumbel_tau > 0, f"agent.gumbel_tau must be > 0, got {self.gumbel_tau}"),
            (self.bins_lower < self.bins_upper, "agent.bins_lower must be < agent.bins_upper"),
            (self.value_grad_clip >= 0, f"agent.value_grad_clip must be >= 0, got {self.value_grad_clip}"),
            (
                min(self.enc_lr, self.value_lr, self.policy_lr) > 0,
                f"agent.enc_lr, value_lr and policy_lr must be > 0, got {self.enc_lr}, {self.value_lr} and "
                f"{self.policy_lr}",
            ),
            (
                min(self.enc_weight_decay, self.value_weight_decay, self.policy_weight_decay) >= 0,
                "agent.enc_weight_decay, value_weight_decay and policy_weight_decay must be >= 0",
            ),
            (
                self.network in NETWORKS,
                f"agent.network must be one of {', '.join(NETWORKS)}, got {self.network!r}",
            ),
        ]
        if self.network != "mlp":
            checks += [
                residual_widths_check("enc_mlp_dims", self.enc_mlp_dims),
                residual_widths_check("mlp_dims", self.mlp_dims),
            ]
        require(checks)


class MRQ(Agent):
    PIXELS = True
    ACTION_SPACES = ("box", "discrete")
    STATE_OBJECTS = (
        "encoder",
        "encoder_target",
        "policy",
        "policy_target",
        "value",
        "value_target",
        "encoder_opt",
        "value_opt",
        "policy_opt",
    )
    STATE_VALUES = ("reward_scale", "target_reward_scale", "training_steps")
    # each encoder loss term and the config key of its weight
    TERM_WEIGHTS: ClassVar[dict[str, str]] = {
        "consistency_loss": "dyn_weight",
        "reward_loss": "reward_weight",
        "done_loss": "done_weight",
    }
    # The encoder trains the dynamics, reward and terminal heads that belong to it (MR.Q's model).
    TRANSFER_PARTS = {
        "representation": Part(("encoder", "encoder_target")),
        "actor": Part(("policy", "policy_target")),
        "critic": Part(("value", "value_target")),
        "optimizers": Part(("encoder_opt", "value_opt", "policy_opt")),
    }

    def __init__(
        self,
        cfg: MRQConfig,
        obs_dim: int,
        act_dim: int,
        device: torch.device,
        seed: int,
        action_spec: ActionSpec | None = None,
    ):
        super().__init__(cfg, device, seed)
        self.discrete = action_spec is not None and action_spec.is_discrete  # n = act_dim actions
        self.spec = AgentSpec(
            seq_len=max(cfg.enc_horizon, cfg.q_horizon),
            batch_size=cfg.batch_size,
            updates_per_step=0.5,
            warmup_with_policy=cfg.warmup_with_policy,
            replay_capacity=1_000_000,  # the code's 1e6 FIFO
        )
        self.schedule = PerStep(cycle=cfg.target_update_every)  # an encoder burst every 250 updates
        self.latent_width, self.act_dim = cfg.zs_dim, act_dim
        self.pixels = pixel_shape(obs_dim)  # (C, H, W) with obs=pixels, else None
        self.encoder = MrqEncoder(obs_dim, act_dim, cfg).to(self.device)
        self.policy = mrq_mlp(cfg.zs_dim, cfg.mlp_dims, act_dim, "relu", 0, cfg.network).to(self.device)
        self.value = mrq_mlp(cfg.zsa_dim, [*cfg.mlp_dims, cfg.mlp_dims[-1]], 1, "elu", 2, cfg.network).to(
            self.device
        )
        self.encoder_target = frozen_copy(self.encoder)
        # what runs after each network's step: SimbaV2's projection with network=simbav2, else nothing
        self.after = {k: after_step(getattr(self, k)) for k in ("encoder", "value", "policy")}
        self.policy_target = frozen_copy(self.policy)
        self.value_target = frozen_copy(self.value)
        self.encoder_opt = adam(
            self.encoder.parameters(), lr=cfg.enc_lr, weight_decay=cfg.enc_weight_decay, decoupled=True
        )
        self.value_opt = adam(
            self.value.parameters(), lr=cfg.value_lr, weight_decay=cfg.value_weight_decay, decoupled=True
        )
        self.policy_opt = adam(
            self.policy.parameters(), lr=cfg.policy_lr, weight_decay=cfg.policy_weight_decay, decoupled=True
        )
        self.bins = two_hot_bins(cfg.bins_lower, cfg.bins_upper, cfg.num_bins, self.device)
        self.reward_scale, self.target_reward_scale = 1.0, 0.0  # s and s_bar (code's initial values)
        self.training_steps = 0

    # ------------------------------------------------------------------ encoder
    def model_rollout(
        self, obs: Tensor, action: Tensor
    ) -> tuple[list[tuple[Tensor, Tensor, Tensor]], Tensor]:
        """The model unrolled H steps from z_s(o_0) on its own predictions along windows obs [B, L+1, ..],
        action [B, L, A]: [(dhat_t, zhat_{t+1}, reward logits_t)] for t < H, and the targets
        sg[zbar_s(o_{1..H})] [B, H, zs] of the target encoder."""
        H = self.cfg.enc_horizon
        with torch.no_grad():
            target = self.encoder_target.zs(obs[:, 1 : H + 1])  # [B, H, zs]
        zs, preds = self.encoder.zs(obs[:, 0]), []
        for t in range(H):
            d_hat, zs, r_logits = self.encoder.model_all(zs, action[:, t])
            preds.append((d_hat, zs, r_logits))
        return preds, target

    def model_terms(self, b: SequenceBatch, preds, target: Tensor, use_done: bool) -> dict[str, Tensor]:
        """MR.Q's three terms of the rollout, each summed over the horizon and masked by m_t (1 until and
        including the first terminal step): dynamics MSE, two-hot reward CE, terminal MSE (once the buffer has
        seen a terminal)."""
        mask = b.valid[:, : len(preds)]
        dyn = rew = done = torch.zeros((), device=self.device)
        for t, (d_hat, zs, r_logits) in enumerate(preds):
            m = mask[:, t]
            dyn = dyn + (((zs - target[:, t]) ** 2).mean(-1) * m).mean()
            rew = rew + (two_hot_cross_entropy(r_logits, b.reward[:, t], self.bins) * m).mean()
            if use_done:
                done = done + (((d_hat - b.terminal[:, t].float()) ** 2) * m).mean()
        return {"consistency_loss": dyn, "reward_loss": rew, "done_loss": done}

    def encoder_terms(self, b: SequenceBatch, use_done: bool) -> dict[str, Tensor]:
        """The encoder's loss terms by name (`TERM_WEIGHTS` names each one's weight)."""
        return self.model_terms(b, *self.model_rollout(b.obs, b.action), use_done)

    def encoder_loss(self, b: SequenceBatch, use_done: bool) -> tuple[Tensor, dict]:
        """L = sum_k w_k term_k over the terms, in their order."""
        terms = self.encoder_terms(b, use_done)
        loss = sum(getattr(self.cfg, self.TERM_WEIGHTS[k]) * v for k, v in terms.items())
        return loss, {"repr_loss": loss.detach(), **{k: v.detach() for k, v in terms.items()}}

    def update_encoder(self, b: SequenceBatch, use_done: bool = False) -> dict:
        return self.updater.step(
            self.encoder_loss, b, use_done, opt=self.encoder_opt, after=self.after["encoder"]
        ).aux

    # ------------------------------------------------------------------ RL
    def gumbel_draws(self, batch_size: int) -> dict[str, Tensor]:
        """Discrete actions: the Gumbel(0, 1) noise [B, n] of the actor's Gumbel-softmax; none in a box."""
        if not self.discrete:
            return {}
        g = self.generator
        return {"gumbel": gumbel_noise((batch_size, self.act_dim), g, g.device)}

    def target_draws(self, batch_size: int) -> dict[str, Tensor]:
        """The draws of `td_target`: discrete actions' Gumbel noise, then the target-policy smoothing noise
        N(0, 1) [B, A] (the code's order: the Gumbel-softmax sample, then the Gaussian)."""
        g = self.generator
        draws = self.gumbel_draws(batch_size)
        return {**draws, "noise": torch.randn((batch_size, self.act_dim), generator=g, device=g.device)}

    def target_action(self, zs_n: Tensor, noise: Tensor, gumbel: Tensor | None) -> Tensor:
        """The bootstrap action a' of the target policy: clip(tanh(u) + clip(sigma eps, +-c), -1, 1) in a box;
        with discrete actions the one-hot of argmax(gumbel_softmax(u, g, tau) + clip(sigma eps, +-c)) (the
        code's `realign`)."""
        c, u = self.cfg, self.policy_target(zs_n)
        if self.discrete:
            index = gumbel_action(u, gumbel, c.gumbel_tau, noise * c.policy_noise, c.noise_clip)
            return one_hot(index, self.act_dim, u.dtype)
        return noisy_action(torch.tanh(u), noise * c.policy_noise, c.noise_clip)

    @torch.no_grad()
    def td_target(
        self,
        b: SequenceBatch,
        target_scale: float,
        scale: float,
        *,
        noise: Tensor,
        gumbel: Tensor | None = None,
    ) -> Tensor:
        """y = (R + gamma^n (1 - term) s_bar min_j Qbar_j(zbar_sa(o_n, a')) / s, all from target networks;
        s_bar, s = `target_scale`, `scale` (the reward scales)."""
        c = self.cfg
        _, _, ret, discount, next_obs = nstep_transition(
            b, c.gamma, c.q_horizon, drop_terminal_reward=c.official_drop_terminal_reward
        )
        zs_n = self.encoder_target.zs(next_obs)
        a_n = self.target_action(zs_n, noise, gumbel)
        q_n = self.value_target(self.encoder_target.zsa(zs_n, a_n)).squeeze(-1).amin(0)
        return (ret + discount * target_scale * q_n) / scale

    @torch.no_grad()
    def features(self, obs: Tensor, action: Tensor) -> tuple[Tensor, Tensor]:
        """(z_s, z_sa) of the online encoder, without gradient: RL never trains the encoder."""
        zs = self.encoder.zs(obs)
        return zs, self.encoder.zsa(zs, action)

    def value_loss(self, zsa: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """(mean over both value heads of Huber_1(Q_j, y), Q [2, B])."""
        q = self.value(zsa).squeeze(-1)  # [2, B]
        return F.smooth_l1_loss(q, y.expand_as(q)), q

    def policy_loss(self, zs: Tensor, gumbel: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """(-mean Q(z_sa(z_s, pi(u))) + w mean u^2, Q of the policy's action [2, B]), pi(u) = tanh(u) in a
        box, the Gumbel-softmax softmax((u + g) / tau) with discrete actions; the gradient passes through z_sa
        and Q into the action only."""
        u = self.policy(zs)
        a = gumbel_softmax(u, gumbel, self.cfg.gumbel_tau) if self.discrete else torch.tanh(u)
        q_pi = self.value(self.encoder.zsa(zs, a)).squeeze(-1)
        return -q_pi.mean() + self.cfg.pre_activ_weight * u.pow(2).mean(), q_pi

    def update_rl(self, b: SequenceBatch) -> tuple[Tensor, dict]:
        """One value step and one policy step; returns |Q_j - y| [B, 2] for the LAP priorities."""
        c, u = self.cfg, self.updater
        scales = self.target_reward_scale, self.reward_scale
        y = u.call(self.td_target, b, *scales, **self.target_draws(len(b)))
        zs, zsa = u.call(self.features, b.obs[:, 0], b.action[:, 0])
        value = u.step(
            self.value_loss,
            zsa,
            y,
            opt=self.value_opt,
            max_norm=c.value_grad_clip,
            after=self.after["value"],
        )
        policy = u.step(
            self.policy_loss,
            zs,
            opt=self.policy_opt,
            frozen=(self.encoder, self.value),
            **self.gumbel_draws(len(b)),
            after=self.after["policy"],
        )
        td = policy.aux if c.official_priority_from_policy_q else value.aux
        metrics = {
            "q_loss": value.loss,
            "q_mean": value.aux.mean(),
            "target_mean": y.mean(),
            "actor_loss": policy.loss,
        }
        if value.grad_norm is not None:  # value_grad_clip = 0 steps without clipping or measuring the norm
            metrics["grad_norm_value"] = value.grad_norm
        return (td - y).abs().T, metrics

    # ------------------------------------------------------------------ schedule
    def sync_targets(self, replay) -> None:
        u = self.updater
        u.copy(self.policy_target, self.policy)
        u.copy(self.value_target, self.value)
        u.copy(self.encoder_target, self.encoder)
        self.target_reward_scale = self.reward_scale
        self.reward_scale = replay.reward_abs_mean()

    def sample(self, replay, horizon: int) -> SequenceBatch:
        """A prioritised window of `horizon` steps, discrete actions one-hot (as the code's replay stores
        them); from pixels every frame stack of it shifted by its own offsets (the code's
        maybe_augment_state), drawn from the agent's generator before the loss."""
        b = self.draw_window(replay, horizon)
        if self.discrete:
            b = dataclasses.replace(b, action=self.actions(b.action))
        return b if self.pixels is None else shift_window(b, self.cfg.image_pad, self.generator)

    def actions(self, action: Tensor) -> Tensor:
        """Stored actions as the networks read them: discrete ones one-hot."""
        return one_hot(action, self.act_dim) if self.discrete else action

    def draw_window(self, replay, horizon: int) -> SequenceBatch:
        """B windows of `horizon` steps drawn by their LAP priority."""
        return replay.sample(self.cfg.batch_size, horizon, prioritized=True)

    def encoder_burst(self, replay) -> dict:
        """`target_update_every` encoder steps on fresh prioritised batches; mean metrics."""
        c, sums = self.cfg, {}
        for _ in range(c.target_update_every):
            metrics = self.update_encoder(self.sample(replay, c.enc_horizon), replay.has_terminal)
            for k, v in metrics.items():
                sums[k] = sums.get(k, 0.0) + v
        return {k: v / c.target_update_every for k, v in sums.items()}

    def update(self, replay, step: int) -> dict:
        c = self.cfg
        self.training_steps += 1
        metrics = {}
        if (self.training_steps - 1) % c.target_update_every == 0:  # RL steps 1, 251, 501, ...
            self.sync_targets(replay)
            metrics.update(self.encoder_burst(replay))
        b = self.sample(replay, c.q_horizon)
        td, rl_metrics = self.update_rl(b)
        replay.update_priorities(b.index, lap_priority(td, c.lap_alpha, c.lap_min_priority))
        metrics.update(rl_metrics)
        return metrics

    # ------------------------------------------------------------------ acting and diagnostics
    def act(self, obs: np.ndarray, explore: bool) -> np.ndarray:
        """The behaviour (explore) or evaluation action: its draws first (`act_draws`), then the policy
        through the updater (the K-seed mode acts for every seed in one forward)."""
        o = to_tensor(obs, self.device)
        batch = o.shape[: o.dim() - (1 if self.pixels is None else 3)]
        return self.updater.act(self.policy_action, o, **self.act_draws(batch, explore)).numpy()

    def act_draws(self, batch: tuple[int, ...], explore: bool) -> dict[str, Tensor]:
        """The draws of `act` for observations of batch shape `batch`, in the code's order (select_action):
        discrete actions' Gumbel noise [*batch, n] when exploring or evaluating by samples
        (`official_gumbel_eval`, MRQ-3); then, exploring, N(0, sigma_expl^2) [*batch, n or A]."""
        c, g = self.cfg, self.generator
        shape, draws = (*batch, self.act_dim), {}
        if self.discrete and (explore or c.official_gumbel_eval):
            draws["gumbel"] = gumbel_noise(shape, g, g.device)
        if explore:
            draws["noise"] = torch.randn(shape, generator=g, device=g.device) * c.expl_noise
        return draws

    def policy_action(self, obs: Tensor, gumbel: Tensor | None = None, noise: Tensor | None = None) -> Tensor:
        """Discrete: argmax(gumbel_softmax(u, g, tau) + noise) with the Gumbel draw (`gumbel_action`), else
        argmax(u); a box: clamp(tanh(u) + noise, -1, 1) with the noise drawn, else tanh(u)."""
        u = self.policy(self.encoder.zs(obs))
        if self.discrete and gumbel is None:
            return u.argmax(-1)
        if self.discrete:
            return gumbel_action(u, gumbel, self.cfg.gumbel_tau, noise, None)
        a = torch.tanh(u)
        return a if noise is None else noisy_action(a, noise, None)

    @torch.no_grad()
    def latent(self, obs: Tensor) -> Tensor:
        return self.encoder.zs(obs.to(self.device))

    @torch.no_grad()
    def probe_q(self, obs: Tensor, action: Tensor) -> Tensor:
        """Both online value heads [2, n] at z_sa(z_s(o), a) of the online encoder (the value step's), in
        return units: the heads learn returns divided by the reward scale s (`td_target`), so times s."""
        q = self.value(self.features(obs.to(self.device), self.actions(action))[1]).squeeze(-1)
        return self.reward_scale * q

    @torch.no_grad()
    def probe_actor(self, obs: Tensor) -> Tensor:
        return self.policy_action(obs.to(self.device))

    @torch.no_grad()
    def predict_latents(self, obs: Tensor, action: Tensor) -> tuple[Tensor, Tensor]:
        """The model's rollout zhat_{t+1..t+H} on its own predictions from z_s(o_t) and the target encoder's
        zbar_s(o_{t+1..t+H}) (`model_rollout`'s predictions and targets), H = enc_horizon."""
        preds, target = self.model_rollout(obs.to(self.device), self.actions(action))
        return torch.stack([zs for _, zs, _ in preds]), target.transpose(0, 1)
