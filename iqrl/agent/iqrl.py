"""iQRL: implicitly quantized representations + TD3 on the latent (Scannell et al., arXiv 2406.02696).

One update (`IQRL.update`), in the paper's order, on a window o_{t..t+L}, a_{t..t+L-1} of the replay:
1. Representation (`representation_loss`): z_0 = f(E_θ(o_t)) with f the quantizer (FSQ by default,
   `agent.quantizer`); open-loop rollout ẑ_{h+1} = f(ẑ_h + d_θ(ẑ_h, a_{t+h})) through the residual
   dynamics; targets z̄_{h+1} = f(E_θ̄(o_{t+h+1})) from the EMA target encoder; consistency loss
       L_rep = (1/H) Σ_{h<H} ρ^h (1/B) Σ_b m_{h,b} c(ẑ_{h+1}, z̄_{h+1}),   c = −cos (or MSE),
   m the mask of steps inside the episode. One AdamW step on encoder + dynamics, then θ̄ ← (1−τ) θ̄ + τ θ.
2. RL (`update_rl`): re-encode o_t and the n-step bootstrap observation with the updated online encoder
   under no_grad and run one TD3 update on the latent (iqrl/learners/td3.py): the actor and critic never
   send gradients into the encoder.

Variants by switch (same class; presets in iqrl/core/registry.py):
* `use_rec_loss` adds an MLP decoder (the paper's reconstruction ablation, `iqrl-ae`). With the consistency
  loss on it reconstructs o_{t+h} from the rollout latents ẑ_h for h < H, ρ^h weighted, masked and
  normalised like the consistency loss (the iqrl-minimal code summed both losses over the same H steps, so
  their ratio is kept). `use_tc_loss=false` turns the consistency loss off; the decoder then reconstructs
  o_t..o_{t+H-1} from their online-encoder latents (plain MSE: an autoencoder-only representation).
* `use_rew_loss` adds a reward head along the rollout; `use_projection` a projection head (and its EMA
  copy) before the consistency loss (the iQRL code's option, on for fish tasks).
* `iqrl-sac` (config `IQRLSACConfig`) runs the SAC learner (iqrl/learners/sac.py) on the same latent.

Multi-task runs (a task list, docs/transfer.md): the representation (encoder, dynamics, their targets) is the
single-task one, trained on windows of every task alike; the learner reads (z, task index) and is conditioned
on a learned task embedding or kept per task (`agent.task_heads`, iqrl/learners/multitask.py).

From pixels (`obs=pixels`, frame stacks [C, H, W] uint8): E_θ = mlp(enc_mlp_dims) over the features of the
shared convolutional stack (iqrl/nn/layers.py `ConvEncoder`: DrQ-v2's four 3x3 convolutions of 32 filters),
and its EMA copy is E_θ̄; the quantizer and everything after it are the state agent's. Each update first
shifts every frame stack of the window by its own random offset (DrQ's shift, `agent.image_pad` pixels, 0 =
off), so the consistency targets, the RL inputs and the bootstrap observations are all augmented views. The
official code's pixel encoder (a different stack, never run there) and why this one differs: docs/agents.md
and docs/faithfulness.md IQ-17 and IQ-18. `use_rec_loss` (iqrl-ae) is refused with pixels (no image decoder).

Discrete actions (Atari, MiniGrid; no public iQRL code has them): the representation is unchanged, the
stored actions reach the dynamics d_θ(ẑ_h, a) and the critics as one-hot vectors, and the TD3 learner's actor
is MR.Q's Gumbel-softmax actor (`GumbelTD3Learner`, iqrl/learners/td3.py: logits, the relaxation in the actor
loss, the target action by argmax); docs/discrete.md says why this head. `iqrl-sac` (class `IQRLSAC`) acts in
boxes only.

Correct behaviour is the default; each quirk of the official code has a named switch, listed in
docs/faithfulness.md, and the `iqrl-official` preset turns them all on.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from iqrl.agent.config import IQRLConfig
from iqrl.core.interface import Agent, AgentSpec, Part, learner_parts, pixel_shape
from iqrl.core.replay import SequenceBatch, nstep_transition, shift_window
from iqrl.core.spaces import ActionSpec
from iqrl.core.update import HostArray
from iqrl.learners.multitask import make_learner, with_task
from iqrl.learners.sac import SACLearner
from iqrl.learners.td3 import GumbelTD3Learner, TD3Learner
from iqrl.nn.layers import ConvEncoder, after_step, frozen_copy, mlp
from iqrl.nn.maths import one_hot
from iqrl.nn.optim import adam
from iqrl.nn.quantizers import VectorQuantizer, make_quantizer


class PixelEncoder(nn.Module):
    """E_θ from pixels: frame stacks [..., C, H, W] -> mlp(ConvEncoder features) [..., D] (any lead dims)."""

    def __init__(self, shape: tuple[int, int, int], hidden: list[int], out_dim: int, init: str):
        super().__init__()
        self.conv = ConvEncoder(shape[0], shape[1])
        self.head = mlp(self.conv.out_dim, hidden, out_dim, init)

    def forward(self, obs: Tensor) -> Tensor:
        lead = obs.shape[:-3]
        y = self.head(self.conv(obs.reshape(-1, *obs.shape[-3:])))
        return y.reshape(*lead, y.shape[-1])


# The keys that change what a representation of given shapes computes: the quantizer and its levels or
# groups, and whether the dynamics predict a residual. Transferring one needs them equal (transfer.py).
LATENT_KEYS = (
    "quantizer",
    "use_fsq",
    "fsq_levels",
    "fsq_symmetric",
    "quant_group_dim",
    "vq_dim",
    "use_delta",
    "official_nofsq_half_width",
)


class IQRL(Agent):
    PIXELS = True
    MULTITASK = True
    ACTION_SPACES = ("box", "discrete")
    STATE_OBJECTS = (
        "encoder",
        "encoder_target",
        "dynamics",
        "projection",
        "projection_target",
        "reward_head",
        "decoder",
        "ac=learner",
        "repr_opt",
        "ac_extra=learner.extra",
        "vq",  # the VQ codebook and its EMA statistics (quantizer=vq only)
    )
    # The representation: encoders, dynamics and what trains with them (heads, the VQ codebook).
    TRANSFER_PARTS = {
        "representation": Part(
            (
                "encoder",
                "encoder_target",
                "dynamics",
                "projection",
                "projection_target",
                "vq",
                "reward_head",
                "decoder",
            ),
            keys=LATENT_KEYS,
        ),
        **learner_parts(),
    }
    # A multi-task run's task embedding (the learner's input encoder) goes with the critics, whose loss
    # trains it; with task_heads=separate the learners are per task and transfer no actor or critic.
    TRANSFER_PARTS["critic"] = Part((*TRANSFER_PARTS["critic"].paths, "learner.encoder"))
    TRANSFER_PARTS["optimizers"] = Part(("repr_opt", *TRANSFER_PARTS["optimizers"].paths))

    def __init__(
        self,
        cfg: IQRLConfig,
        obs_dim: int,
        act_dim: int,
        device: torch.device,
        seed: int,
        num_tasks: int = 1,
        action_spec: ActionSpec | None = None,
    ):
        super().__init__(cfg, device, seed)
        self.discrete = action_spec is not None and action_spec.is_discrete  # n = act_dim actions
        self.act_dim = act_dim
        self.spec = AgentSpec(
            seq_len=max(cfg.horizon, cfg.nstep),
            batch_size=cfg.batch_size,
            updates_per_step=0.5,
            warmup_with_policy=cfg.warmup_with_policy,
        )
        D = self.latent_width = cfg.latent_width
        self.pixels = pixel_shape(obs_dim)  # (C, H, W) with obs=pixels, else None
        if self.pixels is not None:
            cfg.validate_pixels(self.pixels[1])
        self.quantizer = make_quantizer(cfg, D, self.generator).to(self.device)
        self.vq = self.quantizer if isinstance(self.quantizer, VectorQuantizer) else None
        self.codebook_size = self.quantizer.codebook_size
        # Representation: encoder, residual dynamics, optional heads; EMA target encoder.
        if self.pixels is None:
            self.encoder = mlp(obs_dim, cfg.enc_mlp_dims, D, cfg.init, network=cfg.network).to(self.device)
        else:
            self.encoder = PixelEncoder(self.pixels, cfg.enc_mlp_dims, D, cfg.init).to(self.device)
        self.dynamics = mlp(D + act_dim, cfg.mlp_dims, D, cfg.init).to(self.device)
        self.encoder_target = frozen_copy(self.encoder)
        self.encoder_after = after_step(self.encoder)  # SimbaV2's projection with network=simbav2
        repr_modules = [self.encoder, self.dynamics]
        self.projection = self.projection_target = self.reward_head = self.decoder = None
        if cfg.use_projection:
            self.projection = mlp(D, cfg.mlp_dims, cfg.projection_dim or max(D // 16, 1), cfg.init).to(
                self.device
            )
            self.projection_target = frozen_copy(self.projection)
            repr_modules.append(self.projection)
        if cfg.use_rew_loss:
            self.reward_head = mlp(D + act_dim, cfg.mlp_dims, 1, cfg.init).to(self.device)
            repr_modules.append(self.reward_head)
        if cfg.use_rec_loss:
            self.decoder = mlp(D, cfg.mlp_dims, obs_dim, cfg.init).to(self.device)
            repr_modules.append(self.decoder)
        self.repr_params = [p for m in repr_modules for p in m.parameters()]
        self.repr_opt = adam(
            self.repr_params, lr=cfg.enc_lr, weight_decay=cfg.enc_weight_decay, decoupled=True
        )
        self.rho_powers = cfg.rho ** torch.arange(cfg.horizon, dtype=torch.float32, device=self.device)
        # Actor-critic on the latent; in a multi-task run conditioned on the task
        # (iqrl/learners/multitask.py), the representation staying task-agnostic.
        learner = SACLearner if cfg.rl_algo == "sac" else TD3Learner
        if self.discrete:  # MR.Q's Gumbel-softmax actor on the TD3 learner (docs/discrete.md)
            learner = functools.partial(GumbelTD3Learner, tau=cfg.gumbel_tau)
        self.num_tasks = num_tasks
        self.learner = make_learner(
            learner, cfg.learner, cfg.multitask, D, act_dim, self.generator, num_tasks
        ).to(self.device)

    @property
    def exploration_sigma(self) -> float | None:
        return self.learner.expl_sigma

    # ------------------------------------------------------------------ representation
    def quantize(self, y: Tensor) -> Tensor:
        return self.quantizer(y)

    def encode(self, obs: Tensor, target: bool = False) -> Tensor:
        return self.quantize((self.encoder_target if target else self.encoder)(obs))

    def next_latent(self, z: Tensor, a: Tensor) -> Tensor:
        d = self.dynamics(
            torch.cat([z, a], -1)
        ).float()  # under bf16 autocast: the sum in float32, as the codes
        return self.quantize(z + d if self.cfg.use_delta else d)

    def horizon_mask(self, batch: SequenceBatch) -> Tensor:
        """[B, H] weights of each rollout step: 1 while the window is inside its episode.

        Cumulative (default): a step counts while no earlier step of the window terminated (the
        terminal transition itself still has a real next observation). Official (IQ-6): the
        per-step flag only, i.e. the terminal step is dropped; the official slices never run past an
        episode end, so the padded steps after it (`valid` = 0) do not count either.
        """
        H = self.cfg.horizon
        term, valid = batch.terminal[:, :H].float(), batch.valid[:, :H]
        if self.cfg.cumulative_mask:
            before = torch.cat([torch.ones_like(term[:, :1]), 1.0 - term[:, :-1]], 1)
            return valid * torch.cumprod(before, 1)
        return valid * (1.0 - term)

    def consistency_terms(self, pred: Tensor, target: Tensor) -> Tensor:
        """Per-sample consistency term c_h [B]: sign * cos(pred, target), or the MSE per feature."""
        pred, target = pred.float(), target.float()
        if self.cfg.consistency_loss == "cos":
            return self.cfg.tc_loss_sign * F.cosine_similarity(pred, target, dim=-1, eps=1e-6)
        return ((pred - target) ** 2).mean(-1)

    def representation_loss(self, batch: SequenceBatch) -> tuple[Tensor, dict]:
        """L_rep = (1/H) sum_h rho^h (1/B) sum_b m_{h,b} c_{h,b}  (+ the reward and reconstruction terms if
        on)."""
        c, H = self.cfg, self.cfg.horizon
        obs, act = batch.obs, batch.action
        if not c.use_tc_loss and self.reward_head is None:  # reconstruction only: no latent rollout
            rec_loss = self.reconstruction_loss(obs, self.horizon_mask(batch), [])
            return rec_loss, {"rec_loss": rec_loss.detach()}
        with torch.no_grad():
            enc = self.encoder_target if c.use_target_encoder else self.encoder
            targets = self.quantize(enc(obs[:, 1 : H + 1]))  # [B, H, D]
            if self.projection is not None:
                targets = self.projection_target(targets)
        mask = self.horizon_mask(batch)  # [B, H]
        y0 = self.encoder(obs[:, 0])
        z = self.quantize(y0)
        cons, rew, latents = [], [], [z]
        for h in range(H):
            z_prev = z
            z = self.next_latent(z, act[:, h])
            latents.append(z)
            pred = self.projection(z) if self.projection is not None else z
            cons.append(self.consistency_terms(pred, targets[:, h]))
            if self.reward_head is not None:
                z_r = z if c.reward_head_shifted_latent else z_prev
                r_hat = self.reward_head(torch.cat([z_r, act[:, h]], -1)).squeeze(-1)
                rew.append((r_hat - batch.reward[:, h]) ** 2)
        cons_t = torch.stack(cons, 1)  # [B, H]
        consistency = ((cons_t * mask).mean(0) * self.rho_powers).sum() / H
        loss, metrics = consistency, {"consistency_loss": consistency.detach()}
        if not c.use_tc_loss:  # reward head only
            loss, metrics = torch.zeros_like(consistency), {}
        if rew:
            reward_loss = ((torch.stack(rew, 1) * mask).mean(0) * self.rho_powers).sum() / H
            loss = loss + reward_loss
            metrics["reward_loss"] = reward_loss.detach()
        if self.decoder is not None:
            rec_loss = self.reconstruction_loss(obs, mask, latents)
            loss = loss + rec_loss
            metrics["rec_loss"] = rec_loss.detach()
        if self.vq is not None:  # the encoder commits to its codes (z_0 only: the rollout is not encoded)
            commitment = self.vq.commitment(y0)
            loss = loss + commitment
            metrics["vq_commitment"] = commitment.detach()
        return loss, metrics

    def reconstruction_loss(self, obs: Tensor, mask: Tensor, latents: list[Tensor]) -> Tensor:
        """Decoder MSE (the reconstruction ablation, `iqrl-ae`). obs [B, L+1, O], mask [B, H].

        With the consistency loss ("iQRL + REC"): along the rollout latents [ẑ_0 = z_0, ẑ_1 .. ẑ_{H-1}],
            L_rec = (1/H) sum_{h<H} rho^h (1/B) sum_b m'_{h,b} mse(dec(ẑ_h), o_{t+h}),  m'_0 = 1, m'_h =
            m_{h-1},
        the weighting of the consistency loss (iqrl-minimal summed both over the same H steps; o_{t+H} is not
        reconstructed there either).
        Reconstruction only (use_tc_loss=false): online-encoder latents of o_t .. o_{t+H-1},
            L_rec = (1/(B H)) sum_{h<H} sum_b m_{h,b} mse(dec(z_h), o_{t+h}).
        """
        H = self.cfg.horizon
        if self.cfg.use_tc_loss:
            z = torch.stack(latents[:H], 1)  # [B, H, D]: ẑ_0 .. ẑ_{H-1}
            weight = torch.cat([torch.ones_like(mask[:, :1]), mask[:, : H - 1]], 1)  # m'_h = m_{h-1}
            err = ((self.decoder(z) - obs[:, :H]) ** 2).mean(-1)  # [B, H]
            return ((err * weight).mean(0) * self.rho_powers).sum() / H
        err = ((self.decoder(self.encode(obs[:, :H])) - obs[:, :H]) ** 2).mean(-1)  # [B, H]
        return (err * mask).mean()

    def update_representation(self, batch: SequenceBatch) -> dict:
        """One AdamW step on L_rep, then the EMA target encoder (and projection) at rate enc_tau."""
        c, u = self.cfg, self.updater
        step = u.step(
            self.representation_loss,
            batch,
            opt=self.repr_opt,
            max_norm=c.enc_grad_clip,
            after=self.encoder_after,
        )
        u.ema(self.encoder_target, self.encoder, c.enc_tau)
        # the codebook follows the updated online encoder's outputs of o_t (the updater writes it, unless
        # frozen)
        if self.vq is not None:
            u.call(self.codebook_update, batch.obs[:, 0])
        if self.projection is not None:
            u.ema(self.projection_target, self.projection, c.enc_tau)
        return {**step.aux, "enc_grad_norm": step.grad_norm}

    @torch.no_grad()
    def codebook_update(self, obs: Tensor) -> None:
        """VQ's EMA codebook statistics after the online encoder's outputs of `obs` (quantizer=vq)."""
        self.vq.ema_update(self.encoder(obs))

    # ------------------------------------------------------------------ RL on the latent
    def update_rl(self, batch: SequenceBatch) -> dict:
        """The learner's steps on the window re-encoded by the updated encoder (detached)."""
        u = self.updater
        return self.learner.update(u, *u.call(self.rl_inputs, batch))

    def rl_inputs(self, batch: SequenceBatch) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """(z_t, a_t, n-step return, bootstrap discount, z_{t+m}): the learner's inputs, encoded by the online
        encoder under no_grad (detached codes: no RL gradient reaches the encoder)."""
        c = self.cfg
        x, action, ret, discount, x_next = nstep_transition(
            batch,
            c.gamma,
            c.nstep,
            encode=self.encode,
            unit_discount_n1=c.official_nstep1_gamma_bug,
            ignore_terminal=c.official_ignore_terminal,
        )
        if batch.task is None:
            return x, action, ret, discount, x_next
        return with_task(x, batch.task), action, ret, discount, with_task(x_next, batch.task)

    def augment(self, batch: SequenceBatch) -> SequenceBatch:
        """Discrete actions: their one-hot vectors [B, L, n] (what the dynamics and the critics read). Pixels:
        every frame stack o_{t+l} [B, L+1, C, H, W] shifted by its own offsets (`image_pad`), drawn from the
        agent's generator before any loss. States (or image_pad=0) in a box: the batch as it is."""
        if self.discrete:
            batch = dataclasses.replace(batch, action=self.actions(batch.action))
        return batch if self.pixels is None else shift_window(batch, self.cfg.image_pad, self.generator)

    def update(self, replay, step: int) -> dict:
        """The representation step, then the learner's steps on the same window."""
        batch = self.augment(replay.sample(self.spec.batch_size))
        metrics = self.update_representation(batch)
        metrics.update(self.update_rl(batch))
        return metrics

    def on_episode_end(self) -> None:
        self.learner.episodes_trained += 1

    # ------------------------------------------------------------------ acting and diagnostics
    def act(self, obs: np.ndarray, explore: bool) -> np.ndarray:
        """The learner's action from the encoded observation, its draws made first (acting through the
        updater: the K-seed mode acts for every seed in one forward, their observations moved at once)."""
        obs = np.asarray(obs)
        batch = obs.shape[: obs.ndim - (1 if self.pixels is None else 3)]
        draws = self.learner.act_draws(batch, explore)
        return self.updater.act(self.policy_action, HostArray(obs, self.device), self.task, **draws).numpy()

    def policy_action(self, obs: Tensor, task: int, **draws) -> Tensor:
        z = self.encode(obs)
        return self.learner.act(z if self.num_tasks == 1 else with_task(z, task), **draws)

    @torch.no_grad()
    def latent(self, obs: Tensor) -> Tensor:
        return self.encode(obs.to(self.device))

    @torch.no_grad()
    def codes(self, obs: Tensor) -> Tensor | None:
        if self.codebook_size is None:
            return None
        return self.quantizer.indices(self.encode(obs.to(self.device)))

    def actions(self, action: Tensor) -> Tensor:
        """Stored actions as the dynamics and critics read them: discrete ones as one-hot vectors."""
        return one_hot(action, self.act_dim) if self.discrete else action

    @torch.no_grad()
    def probe_q(self, obs: Tensor, action: Tensor) -> Tensor:
        z = self.encode(obs.to(self.device))
        z = z if self.num_tasks == 1 else with_task(z, self.task)
        return self.learner.probe_q(z, self.actions(action))

    @torch.no_grad()
    def probe_actor(self, obs: Tensor) -> Tensor:
        """The learner's evaluation action (its evaluation draws are none)."""
        obs = obs.to(self.device)
        return self.policy_action(obs, self.task, **self.learner.act_draws(obs.shape[:1], False))

    @torch.no_grad()
    def predict_latents(self, obs: Tensor, action: Tensor) -> tuple[Tensor, Tensor]:
        """The dynamics' rollout z_{t+1..t+H} from the online latent of o_t (the consistency loss's
        predictions) and the latents of o_{t+1..t+H} it is trained towards (the target encoder's, or the
        online one's with use_target_encoder=false; before any projection)."""
        H, a = self.cfg.horizon, self.actions(action)
        z, pred = self.encode(obs[:, 0]), []
        for h in range(H):
            z = self.next_latent(z, a[:, h])
            pred.append(z)
        target = self.encode(obs[:, 1 : H + 1].flatten(0, 1), target=self.cfg.use_target_encoder).view(
            -1, H, z.shape[-1]
        )
        return torch.stack(pred), target.transpose(0, 1)


class IQRLSAC(IQRL):
    """`iqrl-sac`: iQRL's representation under the SAC learner, which acts in boxes only."""

    ACTION_SPACES = ("box",)
