"""DreamerV3's acting (baselines/dreamerv3.py; `Agent.policy`: dreamerv3/agent.py at e3f0224):
the posterior from the carried state (h, z, previous action; reset at each episode start), then a policy
sample, with the contexts of the training acts kept for the replay (`replay_context`); a carried state per
training env when the run collects from several (train_envs, iqrl/loop/lanes.py); and the checkpoint of
what acting carries."""

from __future__ import annotations

import numpy as np
import torch

from baselines.dreamerv3_nets import feat
from iqrl.core.interface import to_tensor


class DreamerV3Acting:
    """The acting half of `DreamerV3` (a mixin before `Agent`: its networks, generators and carry are the
    agent's)."""

    def select_train_env(self, i: int) -> None:
        """Act for training env i (iqrl/loop/lanes.py): its carried state and its count of observations (its
        replay's index of the next one) in place of the current env's."""
        self.other_envs[self.train_env] = (self.carry[True], self.obs_count)
        self.carry[True], self.obs_count = self.other_envs.pop(i, (None, 0))
        self.train_env = i

    def on_episode_start(self, training: bool) -> None:
        self.carry[training] = None  # the next act resets the state (is_first)

    def observe(self, obs, reward=None, done=False) -> None:
        self.obs_count += 1

    @torch.no_grad()
    def act(self, obs: np.ndarray, explore: bool) -> np.ndarray:
        """`Agent.policy`: the posterior from the carried state, then a policy sample (training; evaluation
        with `dreamerv3_eval_sample`) or the modes of latent and policy (evaluation, DV3-2)."""
        o = to_tensor(obs, self.device)
        single = o.dim() == len(self.obs_shape)
        o = o.unsqueeze(0) if single else o
        n, carry = o.shape[0], self.carry[explore]
        reset = carry is None or carry[0].shape[0] != n  # an episode starts (or a batch of another size)
        if reset:
            carry = (
                o.new_zeros(n, self.D, dtype=torch.float32),
                o.new_zeros(n, self.S, self.C, dtype=torch.float32),
            )
            carry = (*carry, o.new_zeros(n, self.act_dim, dtype=torch.float32))
        sample, g = explore or self.cfg.dreamerv3_eval_sample, self.act_generators[explore]
        u = torch.rand(n, self.S, generator=g, device=self.device) if sample else None
        flags = torch.full((n,), reset, dtype=torch.bool, device=self.device)
        deter, stoch, _ = self.rssm.observe_step(*carry, self.encoder(o), flags, u)
        f = feat(deter, stoch)
        if sample:
            draw = (
                torch.rand(n, generator=g, device=self.device)
                if self.discrete
                else torch.randn(n, self.act_dim, generator=g, device=self.device)
            )
            rssm_action, action = self.policy.sample(f, draw)
        else:
            rssm_action, action = self.policy.mode(f)
        self.carry[explore] = (deter, stoch, rssm_action)
        if explore and single and not reset and self.obs_count > 0:  # o's context, for the replay
            index = (
                self.obs_count - 1
            ) * self.train_envs + self.train_env  # (LaneReplay's, for several envs)
            self.pending.append((torch.full((1,), index, device=self.device), f))
        if not self.discrete:
            action = action.clamp(-1.0, 1.0)  # the code's env clips (main.py wrap_env: ClipAction)
        return (action[0] if single else action).cpu().numpy()

    # ------------------------------------------------------------------ checkpoint
    def state_dict(self) -> dict:
        """The declared state, the acting generators, the carried states and the pending contexts."""
        return {
            **super().state_dict(),
            "act_generators": {k: g.get_state() for k, g in self.act_generators.items()},
            "carry": {k: None if v is None else [x.clone() for x in v] for k, v in self.carry.items()},
            "pending": [[i.clone(), v.clone()] for i, v in self.pending],
            **({"train_envs": self.train_envs_state()} if self.train_envs > 1 else {}),
        }

    def train_envs_state(self) -> dict:
        """train_envs > 1: the current training env, and each other's carry and observation count."""
        other = {
            i: (None if c is None else [x.clone() for x in c], n) for i, (c, n) in self.other_envs.items()
        }
        return {"current": self.train_env, "other": other}

    def load_state_dict(self, s: dict) -> None:
        super().load_state_dict(s)
        for k, g in self.act_generators.items():
            g.set_state(s["act_generators"][k].cpu())
        self.carry = {
            k: None if v is None else tuple(x.to(self.device) for x in v) for k, v in s["carry"].items()
        }
        self.pending = [(i.to(self.device), v.to(self.device)) for i, v in s["pending"]]
        if "train_envs" in s:
            self.train_env = s["train_envs"]["current"]
            self.other_envs = {
                i: (None if c is None else tuple(x.to(self.device) for x in c), n)
                for i, (c, n) in s["train_envs"]["other"].items()
            }
