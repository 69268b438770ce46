"""TD3 on raw observations, as the iQRL code runs it (baselines spec §2).

Differences from the original TD3 (Fujimoto et al. 2018), all taken from the iQRL code: LayerNorm +
Mish MLPs [512, 512] with orthogonal init, n-step returns (n = 3 on some tasks), target-smoothing clip
0.3, actor objective -min(Q1, Q2), critic EMA every critic step and actor EMA after each actor step,
exploration std decaying linearly 1.0 -> 0.1 over training episodes.
Harness deviation: 0.5 updates per env step (1 per stored transition, the same as iQRL) instead of the
iQRL-code TD3's 1 per env step (spec quirk Q-I1); set `updates_per_step=1.0` to reproduce it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from iqrl.actor_critic import ActorCriticConfig
from iqrl.actor_critic import TD3Learner, to_tensor
from iqrl.agents import Agent, AgentSpec
from iqrl.replay import nstep_targets


@dataclass
class TD3Config(ActorCriticConfig):
    name: str = "td3"
    num_critics: int = 2
    q_subsample: int = 2  # both critics: min(Q1, Q2)
    actor_q_reduce: str = "min"
    critic_loss_reduce: str = "sum"  # MSE(Q1, y) + MSE(Q2, y)
    init: str = "orthogonal"

    def validate(self) -> None:
        self.validate_rl()


class TD3(Agent):
    """Raw observations -> actor-critic learner; `sac` reuses this wiring with another learner."""

    learner_cls = TD3Learner

    def __init__(self, cfg: TD3Config, obs_dim: int, act_dim: int, device: torch.device, seed: int):
        self.cfg = cfg
        self.device = torch.device(device)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(seed)
        self.spec = AgentSpec(seq_len=cfg.nstep, batch_size=cfg.batch_size, updates_per_step=0.5,
                              warmup_with_policy=cfg.warmup_with_policy)
        self.ac = self.learner_cls(cfg, obs_dim, act_dim, self.generator).to(self.device)

    def update(self, replay, step: int) -> dict:
        c = self.cfg
        b = replay.sample(c.batch_size)
        ret, discount, boot = nstep_targets(b.reward, b.terminal, b.valid, c.gamma, c.nstep,
                                            unit_discount_n1=c.official_nstep1_gamma_bug,
                                            ignore_terminal=c.official_ignore_terminal)
        next_obs = b.obs[torch.arange(len(b), device=boot.device), boot]
        return self.ac.update(b.obs[:, 0], b.action[:, 0], ret, discount, next_obs)

    def on_episode_end(self) -> None:
        self.ac.episodes_trained += 1

    @torch.no_grad()
    def act(self, obs: np.ndarray, explore: bool) -> np.ndarray:
        return self.ac.act(to_tensor(obs, self.device), explore).cpu().numpy()

    def state_dict(self) -> dict:
        return {"ac": self.ac.state_dict(), "ac_extra": self.ac.extra_state(),
                "generator": self.generator.get_state()}

    def load_state_dict(self, s: dict) -> None:
        self.ac.load_state_dict(s["ac"])
        self.ac.load_extra_state(s["ac_extra"])
        self.generator.set_state(s["generator"].cpu())
