"""Double DQN (van Hasselt et al. 2016, arXiv 1509.06461) with the Nature CNN (Mnih et al. 2015), at
Dopamine's settings: the DQN-family baseline of the discrete suites (Atari, MiniGrid).

The update, in order: sample B windows of n transitions; clip each reward to [-1, 1] (Dopamine's runner,
`run_experiment.py`); the n-step target with the online network choosing the bootstrap action and the target
network valuing it,

    y = sum_{k<n} gamma^k clip(r_k) + gamma^n (1 - d) Q_target(s_n, argmax_a Q(s_n, a));

one Adam step on the Huber loss mean_B huber(Q(s, a) - y) (delta 1: Nature DQN's clipped TD error); every
`target_update_every` updates the target network is copied from the online one. Acting: epsilon-greedy,
epsilon decaying linearly from 1 to `eps_end` over `eps_decay_steps` of the agent's own (post-seeding) steps
(Dopamine's `linearly_decaying_epsilon`, its warm-up being the harness's seed phase); evaluation is greedy
(the env's protocol adds its evaluation epsilon: Atari's 1e-3).

Settings: Dopamine's JAX DQN (google/dopamine at 5873f54, `dopamine/jax/agents/dqn/configs/dqn.gin`: gamma
0.99, n = 1, batch 32, Adam lr 6.25e-5 eps 1.5e-4, one update per 4 agent steps, a target copy every 8000
agent steps = 2000 updates, epsilon 1 -> 0.01 over 250 000 agent steps, 20 000 agent steps of warm-up = the
default of the run's seed_steps (80 000 frames; drq-eps: 1600, 6400 frames), 1M transitions of replay), its
Nature CNN (`dopamine/jax/networks.py` NatureDQNNetwork: 32 8x8 /4, 64 4x4 /2, 64 3x3 /1, 512, Xavier-uniform
init, inputs / 255), the Double-DQN target of its full Rainbow agent (`double_dqn=True`) and the Huber loss of
its Nature-DQN form (`loss_type='huber'`; the JAX DQN's default is MSE: `agent.loss=mse`).
`agent.double_q=false` is the DQN target (max over the target network).
From state vectors (MiniGrid's symbolic view) the torso is the identity and the head an MLP.

The registry preset `drq-eps` is DrQ(eps) for the Atari 100k protocol (Kostrikov et al. 2020, arXiv
2004.13649; Agarwal et al. 2021, arXiv 2108.13264; Dopamine's `dopamine/labs/atari_100k/configs/DrQ_eps.gin`):
n = 10, a target copy every update, dueling heads, random shifts of 4 pixels, Adam lr 1e-4, epsilon 1 ->
0.01 over 5000 agent steps, one update per agent step. Not reproduced: its intensity augmentation.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from iqrl.core.checks import require
from iqrl.core.interface import Agent, AgentConfig, AgentSpec, Part, pixel_shape, to_tensor
from iqrl.core.replay import nstep_transition, shift_window
from iqrl.core.schedule import PerStep, SeedPhase
from iqrl.core.spaces import ActionSpec
from iqrl.nn.layers import Linear, frozen_copy
from iqrl.nn.maths import linear_decay
from iqrl.nn.optim import adam

LOSSES = ("huber", "mse")
INITS = ("xavier", "default")
# The Nature CNN's convolutions: (kernel, stride) of each of its three layers
NATURE_KERNELS = ((8, 4), (4, 2), (3, 1))


@dataclass
class DQNConfig(AgentConfig):
    # min_replay_history: 20 000 agent steps (drq-eps: its registry entry's 1600)
    SEED_PHASE: ClassVar[SeedPhase] = SeedPhase(
        agent_steps=20_000, source="google/dopamine@5873f54 dopamine/jax/agents/dqn/configs/dqn.gin:11"
    )
    # the tests' tiny sizes (AgentConfig.TINY)
    TINY: ClassVar[dict] = {"mlp_dims": [32, 32], "batch_size": 16, "target_update_every": 50}

    name: str = "dqn"
    conv_channels: list[int] = field(default_factory=lambda: [32, 64, 64])  # the Nature CNN's
    mlp_dims: list[int] = field(default_factory=lambda: [512])  # hidden layers of the head
    dueling: bool = False  # Q = V + A - mean(A) (Wang et al. 2016; DrQ(eps))
    init: str = "xavier"  # xavier (Dopamine's Xavier-uniform, zero biases) | default (PyTorch's)
    batch_size: int = 32  # transitions per gradient update
    gamma: float = 0.99  # discount
    nstep: int = 1  # n-step return length
    lr: float = 6.25e-5  # Adam's learning rate
    adam_eps: float = 1.5e-4  # Adam's epsilon (Dopamine's)
    loss: str = "huber"  # huber (delta 1) | mse
    double_q: bool = True  # Double DQN's target; false: DQN's max over the target network
    target_update_every: int = 2000  # updates between copies of the online network into the target
    reward_clip: float = 1.0  # rewards clipped to [-c, c] in the targets; 0 = unclipped
    eps_end: float = 0.01  # epsilon-greedy exploration: 1 -> eps_end ...
    eps_decay_steps: int = 250_000  # ... over this many of the agent's own steps (agent steps)
    image_pad: int = 0  # random shifts of the pixel windows (DrQ: 4); 0 = none
    # The default rate in updates per env step (the run key updates_per_step overrides it): one update per
    # 4 agent steps at Atari's frame skip 4. MiniGrid (action repeat 1) runs take updates_per_step=0.25.
    updates_per_env_step: float = 0.0625

    def validate(self) -> None:
        super().validate()
        require(
            [
                (
                    len(self.conv_channels) == 3 and all(c >= 1 for c in self.conv_channels),
                    f"conv_channels must be three positive widths (the Nature CNN's), "
                    f"got {list(self.conv_channels)}",
                ),
                (
                    len(self.mlp_dims) >= 1 and all(h >= 1 for h in self.mlp_dims),
                    f"mlp_dims must be a non-empty list of positive widths, got {list(self.mlp_dims)}",
                ),
                (self.init in INITS, f"init must be one of {', '.join(INITS)}, got {self.init!r}"),
                (self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}"),
                (0.0 < self.gamma <= 1.0, f"gamma must be in (0, 1], got {self.gamma}"),
                (self.nstep >= 1, f"nstep must be >= 1, got {self.nstep}"),
                (self.lr > 0, f"lr must be > 0, got {self.lr}"),
                (self.adam_eps > 0, f"adam_eps must be > 0, got {self.adam_eps}"),
                (self.loss in LOSSES, f"loss must be one of {', '.join(LOSSES)}, got {self.loss!r}"),
                (
                    self.target_update_every >= 1,
                    f"target_update_every must be >= 1, got {self.target_update_every}",
                ),
                (self.reward_clip >= 0, f"reward_clip must be >= 0 (0 = unclipped), got {self.reward_clip}"),
                (0.0 <= self.eps_end <= 1.0, f"eps_end must be in [0, 1], got {self.eps_end}"),
                (self.eps_decay_steps >= 1, f"eps_decay_steps must be >= 1, got {self.eps_decay_steps}"),
                (self.image_pad >= 0, f"image_pad must be >= 0 (0 = no augmentation), got {self.image_pad}"),
                (
                    self.updates_per_env_step > 0,
                    f"updates_per_env_step must be > 0, got {self.updates_per_env_step}",
                ),
            ]
        )

    def validate_pixels(self, image_size: int) -> None:
        size = nature_cnn_size(image_size)
        require([(size >= 1, f"the Nature CNN needs image_size >= 36, got {image_size}")])


def nature_cnn_size(image_size: int) -> int:
    """The side of the Nature CNN's last feature map for square frames of `image_size` (84 -> 7)."""
    for kernel, stride in NATURE_KERNELS:
        image_size = (image_size - kernel) // stride + 1
    return image_size


class NatureCNN(nn.Sequential):
    """Mnih et al. 2015's torso: uint8 frames [N, C, H, W] / 255 -> three ReLU convolutions -> flat."""

    def __init__(self, in_channels: int, channels: list[int]):
        layers: list[nn.Module] = []
        for out, (kernel, stride) in zip(channels, NATURE_KERNELS, strict=True):
            layers += [nn.Conv2d(in_channels, out, kernel, stride), nn.ReLU()]
            in_channels = out
        super().__init__(*layers, nn.Flatten())

    def forward(self, obs: Tensor) -> Tensor:
        return super().forward(obs.float() / 255.0)


class QNetwork(nn.Module):
    """Q(s, .) [N, n]: a torso (the Nature CNN from pixels, nothing from state vectors), ReLU hidden layers,
    then the n action values (dueling: a value and n advantages, Q = V + A - mean_a A)."""

    def __init__(self, obs_dim, n_actions: int, cfg: DQNConfig):
        super().__init__()
        shape = pixel_shape(obs_dim)
        if shape is None:
            self.torso, width = nn.Identity(), int(obs_dim)
        else:
            self.torso = NatureCNN(shape[0], cfg.conv_channels)
            width = cfg.conv_channels[-1] * nature_cnn_size(shape[1]) * nature_cnn_size(shape[2])
        hidden: list[nn.Module] = []
        for h in cfg.mlp_dims:
            hidden += [Linear(width, h), nn.ReLU()]
            width = h
        self.hidden = nn.Sequential(*hidden)
        self.dueling = cfg.dueling
        self.head = Linear(width, n_actions + int(cfg.dueling))
        if cfg.init == "xavier":
            for m in self.modules():
                if isinstance(m, (nn.Linear, nn.Conv2d)):
                    nn.init.xavier_uniform_(m.weight)
                    nn.init.zeros_(m.bias)

    def forward(self, obs: Tensor) -> Tensor:
        out = self.head(self.hidden(self.torso(obs)))
        if not self.dueling:
            return out
        value, advantage = out[..., :1], out[..., 1:]
        return value + advantage - advantage.mean(-1, keepdim=True)


class DQN(Agent):
    """Double DQN; the module's docstring has the update and its settings."""

    ACTION_SPACES = ("discrete",)
    PIXELS = True
    STATE_OBJECTS = ("q", "q_target", "opt")
    STATE_VALUES = ("acted",)
    TRANSFER_PARTS = {
        "representation": Part(("q.torso", "q_target.torso")),
        "critic": Part(("q.hidden", "q.head", "q_target.hidden", "q_target.head")),
        "optimizers": Part(("opt",)),
    }

    def __init__(self, cfg: DQNConfig, obs_dim, act_dim: int, device, seed: int, action_spec: ActionSpec):
        super().__init__(cfg, device, seed)
        self.n_actions = action_spec.n
        self.spec = AgentSpec(
            seq_len=cfg.nstep,
            batch_size=cfg.batch_size,
            updates_per_step=cfg.updates_per_env_step,
            replay_capacity=1_000_000,  # Dopamine's replay (the run key replay_capacity overrides it)
        )
        self.schedule = PerStep()  # Dopamine trains inside its agent's step
        self.obs_ndim = 1 if pixel_shape(obs_dim) is None else 3
        self.q = QNetwork(obs_dim, self.n_actions, cfg).to(self.device)
        self.q_target = frozen_copy(self.q)
        self.opt = adam(self.q.parameters(), cfg.lr, eps=cfg.adam_eps)
        self.acted = 0  # the agent's own exploring steps (the epsilon schedule's clock)

    # ------------------------------------------------------------------ acting
    @property
    def epsilon(self) -> float:
        """Epsilon of the next exploring step: 1 -> eps_end linearly over eps_decay_steps agent steps."""
        return linear_decay(1.0, self.cfg.eps_end, self.cfg.eps_decay_steps, self.acted)

    def act(self, obs: np.ndarray, explore: bool) -> np.ndarray:
        """argmax_a Q(s, a); exploring, a uniform action instead with probability epsilon. The draws first
        (which rows explore, their actions), then the greedy choice through the updater (the K-seed mode acts
        for every seed in one forward)."""
        x = to_tensor(obs, self.device)
        single = x.dim() == self.obs_ndim  # one observation, not a batch
        x = x[None] if single else x
        draws = {}
        if explore:
            n, g = x.shape[0], self.generator
            draws["explores"] = torch.rand(n, generator=g, device=self.device) < self.epsilon
            draws["random"] = torch.randint(self.n_actions, (n,), generator=g, device=self.device)
            self.acted += n
        action = self.updater.act(self.greedy_action, x, **draws).numpy().astype(np.int64)
        return action[0] if single else action

    def greedy_action(self, x: Tensor, explores: Tensor | None = None, random: Tensor | None = None):
        """argmax_a Q(x, a), or the drawn random action in the rows that explore."""
        action = self.q(x).argmax(-1)
        return action if explores is None else torch.where(explores, random, action)

    @torch.no_grad()
    def probe_q(self, obs: Tensor, action: Tensor) -> Tensor:
        """Q(s, a) [n] of the online network at the action indices taken."""
        return self.q(obs.to(self.device)).gather(-1, action.to(self.device).long()[:, None]).squeeze(-1)

    def value_rewards(self, rewards: np.ndarray) -> np.ndarray:
        """The rewards clipped to [-reward_clip, reward_clip] as the update clips them (0: unclipped)."""
        c = self.cfg.reward_clip
        return np.clip(rewards, -c, c) if c else rewards

    # ------------------------------------------------------------------ the update
    @torch.no_grad()
    def td_target(self, ret: Tensor, discount: Tensor, next_obs: Tensor) -> Tensor:
        """y = R + discount Q_target(s', a*), a* = argmax_a Q(s', a) (Double DQN) or of Q_target (DQN)."""
        q_next = self.q_target(next_obs)
        chooser = self.q(next_obs) if self.cfg.double_q else q_next
        best = chooser.argmax(-1, keepdim=True)
        return ret + discount * q_next.gather(-1, best).squeeze(-1)

    def q_loss(self, obs: Tensor, action: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """Huber (delta 1) or squared TD error of Q(s, a), averaged over the batch; and Q(s, a)."""
        q = self.q(obs).gather(-1, action[:, None]).squeeze(-1)
        loss = F.smooth_l1_loss(q, y) if self.cfg.loss == "huber" else F.mse_loss(q, y)
        return loss, q

    def update(self, replay, step: int) -> dict:
        c, u = self.cfg, self.updater
        batch = replay.sample(c.batch_size)
        if c.image_pad and self.obs_ndim == 3:  # random shifts of pixel windows (state runs ignore it)
            batch = shift_window(batch, c.image_pad, self.generator)
        if c.reward_clip:
            batch = dataclasses.replace(batch, reward=batch.reward.clamp(-c.reward_clip, c.reward_clip))
        obs, action, ret, discount, boot = nstep_transition(batch, c.gamma, c.nstep)
        y = u.call(self.td_target, ret, discount, boot)
        result = u.step(self.q_loss, obs, action, y, opt=self.opt)
        if (step + 1) % c.target_update_every == 0:
            u.copy(self.q_target, self.q)
        return {"q_loss": result.loss, "q_mean": result.aux.mean(), "epsilon": self.epsilon}
