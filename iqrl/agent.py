"""iQRL: implicitly quantized representations + TD3 on the latent (arXiv 2406.02696).

Paper order per update (spec §5-§6): encode o_t and quantize with FSQ -> open-loop latent rollout
through the residual dynamics -> multi-step self-consistency loss against the EMA target encoder's
quantized latents (rho^h weighted) -> representation step, EMA target encoder -> re-encode with the
online encoder under no_grad -> n-step TD3 critic step -> actor step every 2nd critic step -> targets.
The actor and critic never send gradients into the encoder.

Variants by switch (same class, registry presets in iqrl/agents.py):
* `use_rec_loss` adds an MLP decoder (iQRL spec §12 "Reconstruction loss"; baselines spec §7.1). With the
  consistency loss on it is applied along the latent rollout, o_0 from z_0 and o_h from the predicted ẑ_h
  for h < H, rho^h weighted, masked and normalised like the consistency loss, (1/H) sum_h ("iQRL + REC",
  the `iqrl-ae` preset: the paper's reconstruction ablation adds the decoder to the iQRL loss; the
  iqrl-minimal code that had it summed both losses over the same H steps, so their ratio is kept). `use_tc_loss=false` turns the consistency
  loss off; the decoder then reconstructs the window's observations o_0..o_{H-1} from their online
  encoder latents (plain MSE: the autoencoder-only variant of baselines spec §7.1).
* `rl_algo=sac` swaps the TD3 learner for SAC (iqrl/sac.py) on the same latent (`iqrl-sac`).

Correct behaviour is the default; each quirk of the official code has a named switch (spec §15) and
the `iqrl-official` preset turns them all on.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from iqrl.actor_critic import TD3Learner, latent_model_checks, to_tensor
from iqrl.agents import Agent, AgentSpec
from iqrl.nn import FSQ, adam, ema_update_, frozen_copy, mlp
from iqrl.replay import SequenceBatch, nstep_targets
from iqrl.sac import SACConfig, SACLearner


@dataclass
class IQRLConfig(SACConfig):
    name: str = "iqrl"
    # --- representation (spec §3-§5) ---
    latent_dim: int = 512  # number of FSQ groups G (official meaning); latent width D = G * len(fsq_levels)
    fsq_levels: list[int] = field(default_factory=lambda: [8, 8])
    fsq_symmetric: bool = False  # True: the symmetric FSQ bound of arXiv 2411.19842 (nn.FSQ; needed for a level 2)
    use_fsq: bool = True
    enc_mlp_dims: list[int] = field(default_factory=lambda: [256])
    horizon: int = 5  # H
    rho: float = 0.9  # per-step weight rho^h of the consistency loss
    consistency_loss: str = "cos"  # cos | mse
    tc_loss_sign: int = -1  # cos only: -1 maximises cosine similarity (paper intent); +1 = official code
    use_delta: bool = True  # residual dynamics: z' = FSQ(z + d(z, a))
    use_target_encoder: bool = True  # False: consistency targets from the online encoder (stop-grad)
    use_projection: bool = False  # projection head (and its EMA copy) before the consistency loss
    projection_dim: int = 0  # 0 = D / 16
    use_rew_loss: bool = False  # reward head on (z_h, a_h), rho-weighted MSE
    enc_lr: float = 1e-4  # AdamW over encoder + dynamics (+ heads)
    enc_weight_decay: float = 0.01
    enc_tau: float = 0.005  # EMA rate of the target encoder (and target projection)
    enc_grad_clip: float = 20.0
    cumulative_mask: bool = True  # False: official per-step mask (spec §5.2, quirk 6)
    reward_head_shifted_latent: bool = False  # True: official reward head on (z_{h+1}, a_h) (quirk 4)
    official_nofsq_half_width: bool = False  # True: use_fsq=false gives width latent_dim (official switch)
    use_tc_loss: bool = True  # the multi-step latent consistency loss (False: reconstruction-only encoder)
    use_rec_loss: bool = False  # decoder mlp(D, mlp_dims, obs_dim) + reconstruction loss (iqrl-ae)
    rl_algo: str = "td3"  # actor-critic on the latent: td3 | sac (iqrl-sac; SAC keys in iqrl/sac.py)

    def validate(self) -> None:
        self.validate_rl()
        checks = latent_model_checks(self.fsq_levels, self.latent_dim, self.horizon, self.rho, self.enc_mlp_dims,
                                     self.enc_lr, self.enc_weight_decay,
                                     self.fsq_symmetric or not self.use_fsq) + [  # no FSQ: levels set the width only
            (self.consistency_loss in ("cos", "mse"),
             f"agent.consistency_loss must be cos or mse, got {self.consistency_loss!r}"),
            (self.tc_loss_sign in (-1, 1), f"agent.tc_loss_sign must be -1 or 1, got {self.tc_loss_sign}"),
            (0.0 < self.enc_tau <= 1.0, f"agent.enc_tau must be in (0, 1], got {self.enc_tau}"),
            (self.enc_grad_clip > 0, f"agent.enc_grad_clip must be > 0, got {self.enc_grad_clip}"),
            (self.projection_dim >= 0, f"agent.projection_dim must be >= 0, got {self.projection_dim}"),
            (self.rl_algo in ("td3", "sac"), f"agent.rl_algo must be td3 or sac, got {self.rl_algo!r}"),
            (self.use_tc_loss or self.use_rec_loss or self.use_rew_loss,
             "agent.use_tc_loss=false needs use_rec_loss=true or use_rew_loss=true (nothing would train the encoder)"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ValueError(msg)
        self.validate_sac()

    @property
    def latent_width(self) -> int:
        """D, the width of the latent vector fed to dynamics, actor and critic."""
        if not self.use_fsq and self.official_nofsq_half_width:
            return self.latent_dim
        return self.latent_dim * len(self.fsq_levels)


class IQRL(Agent):
    def __init__(self, cfg: IQRLConfig, obs_dim: int, act_dim: int, device: torch.device, seed: int):
        self.cfg = cfg
        self.device = torch.device(device)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(seed)
        self.spec = AgentSpec(seq_len=max(cfg.horizon, cfg.nstep), batch_size=cfg.batch_size,
                              updates_per_step=0.5, warmup_with_policy=cfg.warmup_with_policy)
        D = cfg.latent_width
        self.latent_width = D
        self.fsq = FSQ(cfg.fsq_levels, symmetric=cfg.fsq_symmetric).to(self.device)
        self.codebook_size = self.fsq.codebook_size if cfg.use_fsq else None
        # Representation: encoder, residual dynamics, optional heads; EMA target encoder.
        self.encoder = mlp(obs_dim, cfg.enc_mlp_dims, D, cfg.init).to(self.device)
        self.dynamics = mlp(D + act_dim, cfg.mlp_dims, D, cfg.init).to(self.device)
        self.encoder_target = frozen_copy(self.encoder)
        repr_modules = [self.encoder, self.dynamics]
        self.projection = self.projection_target = self.reward_head = self.decoder = None
        if cfg.use_projection:
            self.projection = mlp(D, cfg.mlp_dims, cfg.projection_dim or max(D // 16, 1), cfg.init).to(self.device)
            self.projection_target = frozen_copy(self.projection)
            repr_modules.append(self.projection)
        if cfg.use_rew_loss:
            self.reward_head = mlp(D + act_dim, cfg.mlp_dims, 1, cfg.init).to(self.device)
            repr_modules.append(self.reward_head)
        if cfg.use_rec_loss:
            self.decoder = mlp(D, cfg.mlp_dims, obs_dim, cfg.init).to(self.device)
            repr_modules.append(self.decoder)
        self.repr_params = [p for m in repr_modules for p in m.parameters()]
        self.repr_opt = adam(self.repr_params, lr=cfg.enc_lr, weight_decay=cfg.enc_weight_decay, decoupled=True)
        self.rho_powers = cfg.rho ** torch.arange(cfg.horizon, dtype=torch.float32, device=self.device)
        # Actor-critic on the latent.
        learner = SACLearner if cfg.rl_algo == "sac" else TD3Learner
        self.ac = learner(cfg, D, act_dim, self.generator).to(self.device)

    # ------------------------------------------------------------------ representation
    def quantize(self, y: Tensor) -> Tensor:
        return self.fsq(y) if self.cfg.use_fsq else y

    def encode(self, obs: Tensor, target: bool = False) -> Tensor:
        return self.quantize((self.encoder_target if target else self.encoder)(obs))

    def next_latent(self, z: Tensor, a: Tensor) -> Tensor:
        d = self.dynamics(torch.cat([z, a], -1)).float()  # under bf16 autocast: the sum in float32, as the codes
        return self.quantize(z + d if self.cfg.use_delta else d)

    def horizon_mask(self, batch: SequenceBatch) -> Tensor:
        """[B, H] weights of each rollout step: 1 while the window is inside its episode.

        Cumulative (default): a step counts while no earlier step of the window terminated (the
        terminal transition itself still has a real next observation). Official (spec quirk 6): the
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
        """L_rep = (1/H) sum_h rho^h (1/B) sum_b m_{h,b} c_{h,b}  (+ the reward and reconstruction terms if on)."""
        c, H = self.cfg, self.cfg.horizon
        obs, act = batch.obs, batch.action
        if not c.use_tc_loss and self.reward_head is None:  # reconstruction only: no latent rollout
            rec_loss = self.reconstruction_loss(obs, self.horizon_mask(batch), [])
            return rec_loss, {"rec_loss": rec_loss.detach()}
        with torch.no_grad():
            enc = self.encoder_target if c.use_target_encoder else self.encoder
            targets = self.quantize(enc(obs[:, 1: H + 1]))  # [B, H, D]
            if self.projection is not None:
                targets = self.projection_target(targets)
        mask = self.horizon_mask(batch)  # [B, H]
        z = self.encode(obs[:, 0])
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
        return loss, metrics

    def reconstruction_loss(self, obs: Tensor, mask: Tensor, latents: list[Tensor]) -> Tensor:
        """Decoder MSE (iQRL spec §12; baselines spec §7.1). obs [B, L+1, O], mask [B, H].

        With the consistency loss ("iQRL + REC"): along the rollout latents [ẑ_0 = z_0, ẑ_1 .. ẑ_{H-1}],
            L_rec = (1/H) sum_{h<H} rho^h (1/B) sum_b m'_{h,b} mse(dec(ẑ_h), o_{t+h}),  m'_0 = 1, m'_h = m_{h-1},
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
        loss, metrics = self.representation_loss(batch)
        self.repr_opt.zero_grad(set_to_none=True)
        loss.backward()
        metrics["enc_grad_norm"] = torch.nn.utils.clip_grad_norm_(self.repr_params, self.cfg.enc_grad_clip)
        self.repr_opt.step()
        ema_update_(self.encoder_target.parameters(), self.encoder.parameters(), self.cfg.enc_tau)
        if self.projection is not None:
            ema_update_(self.projection_target.parameters(), self.projection.parameters(), self.cfg.enc_tau)
        return metrics

    # ------------------------------------------------------------------ RL on the latent
    def update_rl(self, batch: SequenceBatch) -> dict:
        return self.ac.update(*self.rl_inputs(batch))

    def rl_inputs(self, batch: SequenceBatch) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """(z_t, a_t, n-step return, bootstrap discount, z_{t+n}): the actor-critic's detached inputs."""
        c = self.cfg
        ret, discount, boot = nstep_targets(batch.reward, batch.terminal, batch.valid, c.gamma, c.nstep,
                                            unit_discount_n1=c.official_nstep1_gamma_bug,
                                            ignore_terminal=c.official_ignore_terminal)
        B = len(batch)
        with torch.no_grad():  # online encoder, detached codes: no RL gradient reaches the encoder
            o = torch.cat([batch.obs[:, 0], batch.obs[torch.arange(B, device=boot.device), boot]], 0)
            z_all = self.encode(o)
        return z_all[:B], batch.action[:, 0], ret, discount, z_all[B:]

    def update(self, replay, step: int) -> dict:
        batch = replay.sample(self.spec.batch_size)
        metrics = self.update_representation(batch)
        metrics.update(self.update_rl(batch))
        return metrics

    def on_episode_end(self) -> None:
        self.ac.episodes_trained += 1

    # ------------------------------------------------------------------ acting and diagnostics
    @torch.no_grad()
    def act(self, obs: np.ndarray, explore: bool) -> np.ndarray:
        o = to_tensor(obs, self.device)
        return self.ac.act(self.encode(o), explore).cpu().numpy()

    @torch.no_grad()
    def latent(self, obs: Tensor) -> Tensor:
        return self.encode(obs.to(self.device))

    @torch.no_grad()
    def codes(self, obs: Tensor) -> Tensor | None:
        if not self.cfg.use_fsq:
            return None
        return self.fsq.indices(self.encode(obs.to(self.device)))

    # ------------------------------------------------------------------ state
    def _modules(self) -> dict[str, nn.Module | None]:
        return {"encoder": self.encoder, "encoder_target": self.encoder_target, "dynamics": self.dynamics,
                "projection": self.projection, "projection_target": self.projection_target,
                "reward_head": self.reward_head, "decoder": self.decoder, "ac": self.ac}

    def state_dict(self) -> dict:
        s = {k: m.state_dict() for k, m in self._modules().items() if m is not None}
        s["repr_opt"] = self.repr_opt.state_dict()
        s["ac_extra"] = self.ac.extra_state()
        s["generator"] = self.generator.get_state()
        return s

    def load_state_dict(self, s: dict) -> None:
        for k, m in self._modules().items():
            if m is not None:
                m.load_state_dict(s[k])
        self.repr_opt.load_state_dict(s["repr_opt"])
        self.ac.load_extra_state(s["ac_extra"])
        self.generator.set_state(s["generator"].cpu())
