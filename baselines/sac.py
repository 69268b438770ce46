"""SAC on raw observations (Haarnoja et al. 2018, arXiv 1801.01290 and 1812.05905).

The learner (squashed-Gaussian actor, twin critics with min, automatic temperature with target entropy
-|A|, EMA target critics, no target actor) and its hyper-parameters with their sources are in
iqrl/sac.py. This module only wires it to raw observations and the replay.

Adaptations to the harness's DMC protocol, shared with `td3`: LayerNorm + Mish MLPs [512, 512] (the SAC
paper: ReLU [256, 256]); n-step returns available (`agent.nstep`, default 1 as in SAC); updates after each
episode at 0.5 updates per env step (= 1 per agent step, SAC's ratio, run in per-episode bursts); 10k
env steps of uniform random actions before learning (the harness's `seed_steps`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from iqrl.actor_critic import to_tensor
from iqrl.agents import Agent, AgentSpec
from iqrl.replay import nstep_targets
from iqrl.sac import SACConfig, SACLearner


@dataclass
class SACAgentConfig(SACConfig):
    name: str = "sac"
    num_critics: int = 2
    q_subsample: int = 2  # both critics: min(Q1, Q2)
    actor_q_reduce: str = "min"
    critic_loss_reduce: str = "sum"  # MSE(Q1, y) + MSE(Q2, y)
    actor_update_freq: int = 1  # actor and temperature every critic step

    def validate(self) -> None:
        self.validate_rl()
        self.validate_sac()


class SAC(Agent):
    def __init__(self, cfg: SACAgentConfig, obs_dim: int, act_dim: int, device: torch.device, seed: int):
        self.cfg = cfg
        self.device = torch.device(device)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(seed)
        self.spec = AgentSpec(seq_len=cfg.nstep, batch_size=cfg.batch_size, updates_per_step=0.5,
                              warmup_with_policy=cfg.warmup_with_policy)
        self.ac = SACLearner(cfg, obs_dim, act_dim, self.generator).to(self.device)

    def update(self, replay, step: int) -> dict:
        c = self.cfg
        b = replay.sample(c.batch_size)
        ret, discount, boot = nstep_targets(b.reward, b.terminal, b.valid, c.gamma, c.nstep)
        next_obs = b.obs[torch.arange(len(b), device=boot.device), boot]
        return self.ac.update(b.obs[:, 0], b.action[:, 0], ret, discount, next_obs)

    @torch.no_grad()
    def act(self, obs: np.ndarray, explore: bool) -> np.ndarray:
        return self.ac.act(to_tensor(obs, self.device), explore).cpu().numpy()

    def state_dict(self) -> dict:
        return {"ac": self.ac.state_dict(), "ac_extra": self.ac.extra_state(),
                "generator": self.generator.get_state()}

    def load_state_dict(self, s: dict) -> None:
        self.ac.load_state_dict(s["ac"])
        self.ac.load_extra_state(s["ac_extra"])
        self.generator.set_state(s["generator"])
