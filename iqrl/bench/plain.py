"""A plain PyTorch implementation of iQRL's update: the baseline of `python -m iqrl.bench --plain`.

The same update as `IQRL.update` (iqrl/agent/iqrl.py) with the TD3 learner, from the same equations and
hyper-parameters (the agent's config), written the way one writes it without this project's
optimisations:
* FSQ's straight-through rounding as x + (round(x) - x).detach() (the form of the FSQ paper's code,
  arXiv 2309.15505, and the iQRL code), not the one-pass autograd Function of iqrl/nn/layers.py;
* one nn.Sequential per critic, evaluated in a Python loop, not the batched critic ensemble;
* PyTorch's default Adam and AdamW (a loop over parameters on the CPU), not the fused kernels;
* the critics frozen for the actor step by switching `requires_grad` off and on, targets updated one
  parameter at a time, the two n-step observations encoded in two passes.
Same matrix products, same random draws in the same order (tests/test_bench_plain.py: equal losses and
parameters after updates from the same weights and batches, equal FLOP counts), so the speed ratio in
`--plain` is the price of the implementation alone. Only the configuration the speed target is about:
iqrl's defaults (FSQ, cosine consistency, no heads, states, TD3); others are refused.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from iqrl.core.replay import SequenceBatch, nstep_targets

#: Keys of the agent config that the plain update implements only at these values.
SUPPORTED = {
    "quantizer_kind": "fsq",
    "fsq_symmetric": False,
    "consistency_loss": "cos",
    "tc_loss_sign": -1,
    "use_delta": True,
    "use_target_encoder": True,
    "use_projection": False,
    "use_rew_loss": False,
    "use_rec_loss": False,
    "use_tc_loss": True,
    "cumulative_mask": True,
    "rl_algo": "td3",
    "actor_q_reduce": "mean",
    "critic_loss_reduce": "mean",
    "grad_clip": 0.0,
    "official_nstep1_gamma_bug": False,
    "official_ignore_terminal": False,
}


def unsupported(cfg) -> list[str]:
    """The keys of an iqrl agent config that the plain update does not implement (empty: comparable)."""
    return [f"agent.{k}={getattr(cfg, k)!r}" for k, v in SUPPORTED.items() if getattr(cfg, k, v) != v]


def critic_from_ensemble(ensemble, k: int) -> nn.Sequential:
    """Member k of an `EnsembleMLP` (LayerNorm + Mish hidden layers) as a stand-alone nn.Sequential."""
    layers: list[nn.Module] = []
    for lin, norm in zip(ensemble.linears, ensemble.norms):
        linear = nn.Linear(*lin.weight.shape[1:])
        ln = nn.LayerNorm(lin.weight.shape[-1])
        with torch.no_grad():
            linear.weight.copy_(lin.weight[k].T)
            linear.bias.copy_(lin.bias[k, 0])
            ln.weight.copy_(norm.weight[k, 0])
            ln.bias.copy_(norm.bias[k, 0])
        layers += [linear, ln, nn.Mish()]
    out = nn.Linear(*ensemble.out.weight.shape[1:])
    with torch.no_grad():
        out.weight.copy_(ensemble.out.weight[k].T)
        out.bias.copy_(ensemble.out.bias[k, 0])
    return nn.Sequential(*layers, out)


class PlainIQRL:
    """iQRL's update (representation step, then TD3 on the re-encoded latent), starting from the weights
    and optimizer settings of an `IQRL` agent; `generator` supplies the TD3 draws."""

    def __init__(self, agent, generator: torch.Generator):
        bad = unsupported(agent.cfg) + ["obs=pixels"] * (agent.pixels is not None)
        if agent.cfg.name != "iqrl" or bad:
            raise ValueError(
                f"the plain update is iqrl's with its defaults; not implemented: {', '.join(bad)}"
            )
        c = self.cfg = agent.cfg
        self.generator = generator
        self.encoder = copy.deepcopy(agent.encoder)
        self.encoder_target = copy.deepcopy(agent.encoder_target)
        self.dynamics = copy.deepcopy(agent.dynamics)
        self.actor = copy.deepcopy(agent.learner.actor)
        self.actor_target = copy.deepcopy(agent.learner.actor_target)
        n = c.num_critics
        self.critics = nn.ModuleList(critic_from_ensemble(agent.learner.critic, k) for k in range(n))
        self.critic_targets = nn.ModuleList(
            critic_from_ensemble(agent.learner.critic_target, k) for k in range(n)
        )
        self.critic_targets.requires_grad_(False)
        device = agent.device
        for m in (self.critics, self.critic_targets):
            m.to(device)
        # FSQ's bound per channel, computed in float64 as iqrl/nn/quantizers.py does (the same float32
        # constants)
        levels = torch.tensor(c.fsq_levels, dtype=torch.float64)
        half_l = (levels - 1) * (1 + 1e-3) / 2
        offset = torch.where(levels % 2 == 0, 0.5, 0.0).double()
        self.half_l, self.offset = half_l.float().to(device), offset.float().to(device)
        self.shift = torch.atanh(offset / half_l).float().to(device)
        self.half_width = torch.floor(levels / 2).float().to(device)
        self.repr_params = [*self.encoder.parameters(), *self.dynamics.parameters()]
        self.repr_opt = torch.optim.AdamW(self.repr_params, lr=c.enc_lr, weight_decay=c.enc_weight_decay)
        self.critic_opt = torch.optim.Adam(self.critics.parameters(), lr=c.lr)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=c.lr)
        self.critic_steps = agent.learner.critic_steps

    # ------------------------------------------------------------------ FSQ (Mentzer et al. 2023)
    def fsq(self, y: Tensor) -> Tensor:
        """Bound each channel, round with a straight-through gradient, scale to [-1, 1]."""
        g = y.reshape(*y.shape[:-1], -1, len(self.cfg.fsq_levels))
        x = torch.tanh(g + self.shift) * self.half_l - self.offset
        q = x + (x.round() - x).detach()
        return (q / self.half_width).reshape(y.shape)

    @staticmethod
    def soft_update(target: nn.Module, online: nn.Module, tau: float) -> None:
        with torch.no_grad():
            for p_t, p in zip(target.parameters(), online.parameters()):
                p_t.lerp_(p, tau)

    # ------------------------------------------------------------------ the update
    def update(self, batch: SequenceBatch) -> dict:
        metrics = self.update_representation(batch)
        metrics.update(self.update_rl(batch))
        return metrics

    def update_representation(self, batch: SequenceBatch) -> dict:
        """L_rep = (1/H) sum_h rho^h mean_b(m_{h,b} * -cos(z_hat_{h+1}, z_bar_{h+1})); AdamW; EMA target."""
        c, H = self.cfg, self.cfg.horizon
        obs, act = batch.obs, batch.action
        with torch.no_grad():
            targets = self.fsq(self.encoder_target(obs[:, 1 : H + 1]))
        term = batch.terminal[:, :H].float()
        alive = torch.cumprod(torch.cat([torch.ones_like(term[:, :1]), 1.0 - term[:, :-1]], 1), 1)
        mask = batch.valid[:, :H] * alive
        z = self.fsq(self.encoder(obs[:, 0]))
        loss = 0.0
        for h in range(H):
            z = self.fsq(z + self.dynamics(torch.cat([z, act[:, h]], -1)))
            cos = F.cosine_similarity(z, targets[:, h], dim=-1, eps=1e-6)
            loss = loss + c.rho**h * (-cos * mask[:, h]).mean()
        loss = loss / H
        self.repr_opt.zero_grad()
        loss.backward()
        grad_norm = nn.utils.clip_grad_norm_(self.repr_params, c.enc_grad_clip)
        self.repr_opt.step()
        self.soft_update(self.encoder_target, self.encoder, c.enc_tau)
        return {"consistency_loss": loss.detach(), "enc_grad_norm": grad_norm}

    def random_critics(self) -> list[int]:
        """q_subsample distinct critic indices, as the agent draws them."""
        perm = torch.randperm(self.cfg.num_critics, generator=self.generator, device=self.generator.device)
        return perm[: self.cfg.q_subsample].tolist()

    def update_rl(self, batch: SequenceBatch) -> dict:
        """TD3 on the latent re-encoded by the updated encoder: critic step, EMA, every
        `actor_update_freq` steps an actor step and its EMA."""
        c = self.cfg
        ret, discount, boot = nstep_targets(batch.reward, batch.terminal, batch.valid, c.gamma, c.nstep)
        o_boot = batch.obs[torch.arange(len(batch), device=boot.device), boot]
        with torch.no_grad():
            x, x_next = self.fsq(self.encoder(batch.obs[:, 0])), self.fsq(self.encoder(o_boot))
            # y = R + discount * min over two random target critics of Q(x', clip(pi'(x') + eps))
            a_next = torch.tanh(self.actor_target(x_next))
            noise = torch.randn(a_next.shape, generator=self.generator, device=self.generator.device)
            noise = (noise.to(a_next.device) * c.policy_noise).clamp(-c.noise_clip, c.noise_clip)
            a_next = (a_next + noise).clamp(-1.0, 1.0)
            xa_next = torch.cat([x_next, a_next], -1)
            q_next = torch.stack([self.critic_targets[k](xa_next) for k in self.random_critics()])
            y = ret + discount * q_next.min(0).values.squeeze(-1)
        action = batch.action[:, 0]
        qs = [critic(torch.cat([x, action], -1)).squeeze(-1) for critic in self.critics]
        q_loss = sum(F.mse_loss(q, y) for q in qs) / len(qs)
        self.critic_opt.zero_grad()
        q_loss.backward()
        self.critic_opt.step()
        self.soft_update(self.critic_targets, self.critics, c.tau)
        self.critic_steps += 1
        metrics = {
            "q_loss": q_loss.detach(),
            "q_mean": torch.stack(qs).mean().detach(),
            "target_mean": y.mean(),
        }
        if self.critic_steps % c.actor_update_freq == 0:
            self.critics.requires_grad_(False)
            a = torch.tanh(self.actor(x))
            xa = torch.cat([x, a], -1)
            q = torch.stack([self.critics[k](xa) for k in self.random_critics()]).mean(0)
            actor_loss = -q.mean()
            self.actor_opt.zero_grad()
            actor_loss.backward()
            self.actor_opt.step()
            self.critics.requires_grad_(True)
            self.soft_update(self.actor_target, self.actor, c.tau)
            metrics["actor_loss"] = actor_loss.detach()
        return metrics
