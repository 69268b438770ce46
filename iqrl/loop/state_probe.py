"""The linear probe of the environment's true state (train.csv columns latent_state_r2, obs_state_r2): a ring
of the last (observation, true state) pairs the training envs gave, and the ridge R^2 of the state from the
agent's latent of those observations (and from the observations themselves, where they are state vectors).

The true state is the env's `true_state()` (iqrl/envs: DMC's and the MuJoCo suites' qpos, qvel and act,
MiniGrid's agent position and direction, Atari's RAM); an env without one (None, or no such method) leaves
the ring empty. The ring is filled after every agent step of the training envs (seed steps included) and saved
in the checkpoint; it draws from no generator and changes nothing the agent or the replay hold, so training
is the same with it or without it.
The maths are iqrl/core/diagnostics.py `ridge_r2`.

It imports numpy, torch, that module and the agent interface (to tell an agent with a latent); the agent and
the env come in as arguments.
"""

from __future__ import annotations

import numpy as np
import torch

from iqrl.core.diagnostics import probe_fit_rows, ridge_r2
from iqrl.core.interface import Agent

#: Pairs the ring keeps of state observations (8192 env steps at action repeat 2: eight DMC episodes): the
#: probe fits on half of them, 2048 rows, more than the default latent widths (iQRL's and DC-MPC's 1024;
#: not dog's and humanoid's 2048: `probe_columns` leaves the column out there).
RING_SIZE = 4096
#: Pairs kept of pixel observations (uint8 frame stacks, 63.5 kB each at 9 x 84 x 84): 32.5 MB in memory and
#: in each checkpoint; the probe fits on 256, so it reads latents narrower than that (the pixel
#: encoders' 50-wide features of SAC+AE, DrQ and CURL).
PIXEL_RING_SIZE = 512
#: Observations per call of the agent's `latent` (bounds a pixel encoder's activations).
CHUNK = 256


def state_ring(agent, on: bool) -> StateRing:
    """The run's ring: filled where `on` (diagnostics on, one task) and its agent has a latent, else empty."""
    return StateRing(on and type(agent).latent is not Agent.latent)


class StateRing:
    """The last `size` (observation, true state) pairs, in the order they came; `size` by the observation's
    kind (RING_SIZE, PIXEL_RING_SIZE for frame stacks), chosen at the first pair."""

    def __init__(self, on: bool = True):
        self.on = on
        self.obs: np.ndarray | None = None
        self.state: np.ndarray | None = None
        self.count = 0  # pairs recorded in all (the next one goes to count % size)
        self.stateless = not on  # off, or the env gave no true state: not asked again (its class stays)

    def record(self, obs: np.ndarray, env) -> None:
        """The pair of `obs` and the true state of `env` (which just returned it) into the ring."""
        if self.stateless:
            return
        state = env.true_state() if hasattr(env, "true_state") else None
        if state is None:
            self.stateless = True
            return
        if self.obs is None:
            size = PIXEL_RING_SIZE if np.ndim(obs) > 1 else RING_SIZE
            self.obs = np.empty((size, *np.shape(obs)), np.asarray(obs).dtype)
            self.state = np.empty((size, len(state)), np.float32)
        i = self.count % len(self.obs)
        self.obs[i], self.state[i] = obs, state
        self.count += 1

    def order(self) -> np.ndarray:
        """The slots of the pairs held, oldest first."""
        size = 0 if self.obs is None else len(self.obs)
        n = min(self.count, size)
        return (np.arange(n) + self.count - n) % max(size, 1)

    def pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """The pairs held, oldest first."""
        order = self.order()
        return self.obs[order], self.state[order]

    def state_dict(self) -> dict:
        """The pairs oldest first, the ring's size and the count (an empty ring: the count alone)."""
        if self.obs is None:
            return {"count": 0}
        obs, state = self.pairs()
        return {"count": self.count, "size": len(self.obs), "obs": obs, "state": state}

    def load_state_dict(self, s: dict | None) -> None:
        """A ring saved by `state_dict`, each pair back in its slot; None (a checkpoint of before the ring):
        an empty ring."""
        self.__init__(self.on)
        if s is None or not s["count"]:
            return
        obs, state = np.asarray(s["obs"]), np.asarray(s["state"], np.float32)
        self.obs = np.empty((s["size"], *obs.shape[1:]), obs.dtype)
        self.state = np.empty((s["size"], state.shape[1]), np.float32)
        self.count = s["count"]
        order = self.order()
        self.obs[order], self.state[order] = obs, state


@torch.no_grad()
def probe_columns(agent, ring: StateRing, device) -> dict:
    """latent_state_r2 (the ridge probe from `agent.latent` of the ring's observations, oldest first) and, for
    state observations, obs_state_r2 (from the observations themselves: the baseline the latent is read
    against), for an agent with a latent. A column is left out while its features are at least as many as the
    probe's fit rows (a linear map fits any targets there, and its R^2 on the scored rows says nothing: so the
    columns come once the ring holds about twice the width, and stay), and where no state dimension varies."""
    if ring.count == 0:
        return {}
    obs, state = ring.pairs()
    fit = int(probe_fit_rows(len(obs)).sum())
    x = torch.as_tensor(obs, device=device)
    features = {"obs_state_r2": x} if obs.ndim == 2 else {}
    if (getattr(agent, "latent_width", None) or 0) < fit:  # (else left out below: spare the encoder's pass)
        features["latent_state_r2"] = torch.cat(
            [agent.latent(x[i : i + CHUNK]) for i in range(0, len(x), CHUNK)]
        )
    y = torch.as_tensor(state, device=x.device)
    columns = {k: ridge_r2(f, y) for k, f in features.items() if f[0].numel() < fit}
    return {k: v for k, v in columns.items() if v == v}  # nan: no dimension varies
