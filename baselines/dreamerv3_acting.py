"""DreamerV3's acting (baselines/dreamerv3.py; `Agent.policy`: dreamerv3/agent.py at e3f0224):
the posterior from the carried state (h, z, previous action; reset at each episode start), then a policy
sample, with the contexts of the training acts kept for the replay (`replay_context`); a carried state per
training env when the run collects from several (train_envs, iqrl/loop/lanes.py); the checkpoint of what
acting carries; and the encoder's embedding as the diagnostics' latent."""

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

    # ------------------------------------------------------------------ diagnostics
    # The latent is the encoder's embedding e(o) (the tokens the posterior reads): the model state (h, z)
    # that the heads read depends on the observations before o, which a probe of observations alone lacks.
    @property
    def latent_width(self) -> int:
        return self.encoder.out_dim

    @torch.no_grad()
    def latent(self, obs: torch.Tensor) -> torch.Tensor:
        return self.encoder(obs.to(self.device))

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
            carry = self.reset_carry(n)
        flags = torch.full((n,), reset, dtype=torch.bool, device=self.device)
        self.carry[explore], f, action = self.policy_step(o, carry, flags, explore)
        if explore and single and not reset and self.obs_count > 0:  # o's context, for the replay
            self.pending.append((self.stored_index(self.obs_count - 1, self.train_env), f))
        return (action[0] if single else action).cpu().numpy()

    @torch.no_grad()
    def act_train_envs(self, obs: list) -> list:
        """A training action for each of the run's envs in one policy step, each from its own carried state
        (the code's driver acts for all its envs at once: embodied/core/driver.py `Driver._step`)."""
        self.other_envs[self.train_env] = (self.carry[True], self.obs_count)
        states = [self.other_envs.get(i, (None, 0)) for i in range(len(obs))]
        rows = [self.reset_carry(1) if c is None else c for c, _ in states]
        carry = tuple(torch.cat(x) for x in zip(*rows))
        reset = torch.tensor([c is None for c, _ in states], device=self.device)
        new, f, action = self.policy_step(to_tensor(np.stack(obs), self.device), carry, reset, True)
        for i, (c, n) in enumerate(states):
            self.other_envs[i] = (tuple(x[i : i + 1] for x in new), n)
            if c is not None and n > 0:  # each observation's context, as `act` keeps it
                self.pending.append((self.stored_index(n - 1, i), f[i : i + 1]))
        self.carry[True], self.obs_count = self.other_envs.pop(self.train_env)
        return list(action.cpu().numpy())

    def reset_carry(self, n: int) -> tuple:
        """The state (h, z, previous action) before an episode's first observation, for n of them."""
        zeros = lambda *shape: torch.zeros(n, *shape, device=self.device)  # noqa: E731
        return zeros(self.D), zeros(self.S, self.C), zeros(self.act_dim)

    def policy_step(self, o, carry: tuple, reset, explore: bool) -> tuple:
        """One step of `Agent.policy` for observations o [n, ...]: the posterior from `carry` (zeroed where
        reset [n]), then the action. Returns (the new carry, the features f [n, F], the actions)."""
        sample, g = explore or self.cfg.dreamerv3_eval_sample, self.act_generators[explore]
        n = o.shape[0]
        u = torch.rand(n, self.S, generator=g, device=self.device) if sample else None
        deter, stoch, _ = self.rssm.observe_step(*carry, self.encoder(o), reset, u)
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
        if not self.discrete:
            action = action.clamp(-1.0, 1.0)  # the code's env clips (main.py wrap_env: ClipAction)
        return (deter, stoch, rssm_action), f, action

    def stored_index(self, i: int, env: int):
        """[1]: the replay's index of training env `env`'s stored observation i (iqrl/core/replay_lanes.py
        reads i E + env for E envs; one env's replay reads i)."""
        return torch.full((1,), i * self.train_envs + env, device=self.device)

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
