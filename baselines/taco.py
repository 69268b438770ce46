"""TACO: temporal latent-action-driven contrastive learning on a DrQ-v2 agent (Zheng et al. 2023).

Zheng et al., "TACO: Temporal Latent Action-Driven Contrastive Loss for Visual Reinforcement Learning",
NeurIPS 2023 (arXiv 2306.13229); code FrankZheng2022/TACO@84c38e3 (agents/taco.py, utils.py,
replay_buffer.py, cfgs/). A window o_t, a_t .. a_{t+L-1}, o_{t+L} (L = max(K, n)) per sample; per update,
in the code's order (`TACO.update`):

Backbone, DrQ-v2 (Yarats et al. 2021, arXiv 2107.09645), on randomly shifted images (pad 4):
1. h = f(aug(o_t)) with the encoder f (convolutions from pixels, an MLP from states); the critic and the actor
   each put their own trunk Linear -> LayerNorm -> tanh (width `feature_dim`) on h;
   the critic reads the action through the action encoder's single-step part: Q_k(h, ψ(a)), k = 1, 2.
2. critic:  y = R_t^(n) + γ^n min_k Q̄_k(h', ψ(a')),  h' = f(aug(o_{t+n})) (no gradient),
   a' = clip(μ(h') + clip(σ ε, -c, c)) (the online actor, no target actor);
   L_Q = Σ_k mean (Q_k(h, ψ(a_t)) - y)²  steps the critic and, through h and ψ, the encoder f and ψ;
3. actor on detached h:  L_π = -mean min_k Q_k(h, ψ(μ(h) + clip(σ ε, -c, c)))  steps the actor only;
4. EMA of the target critic (trunk and heads) with rate τ.
TACO's representation step (`update_taco`), after the encoder has taken its critic step:
5. z_t = g(f(aug(o_t))) with its own projection g (Linear -> LayerNorm -> tanh); u_t = φ(ψ(a_t), ..,
   ψ(a_{t+K-1})) the action-sequence encoding (φ: Linear -> LayerNorm -> tanh over the K concatenated
   latent actions); z_{t+K} = g(f(aug(o_{t+K}))) and z⁺_t = g(f(aug'(o_t))) without gradient;
6. TACO:   L_TACO = InfoNCE(logits_ij = h_θ(z_i, u_i)ᵀ W z_{j,t+K})   (h_θ: MLP on [z_t, u_t]);
   CURL:   L_CURL = InfoNCE(logits_ij = z_iᵀ W z⁺_j)   (the same bilinear W);
   reward: L_R = mean (r̂(z_t, u_t) - R_t^(n))²   (R_t^(n): the critic's n-step return);
   InfoNCE(l) = mean_i [logsumexp_j l_ij - l_ii], positives on the diagonal (`iqrl.nn.maths.info_nce`);
   one step of c_TACO L_TACO + c_CURL L_CURL + c_R L_R on f, ψ, φ, g, h_θ, r̂ and W.
The encoder f and ψ thus have two Adam optimizers (critic step, representation step), as in the code.
Exploration: μ(h) + σ ε (unclipped noise), clamped to (-1, 1); σ = linear(σ_0, σ_1, T) of the agent's
exploring steps (TACO-2). Evaluation: μ(h).

Hyper-parameters (TACOConfig below; task groups in iqrl/configs/taco_tasks.yaml):

| key | value | source (FrankZheng2022/TACO@84c38e3) |
|---|---|---|
| feature_dim | 50 | cfgs/config.yaml |
| mlp_dims (hidden_dim) | [1024, 1024] | cfgs/agent/taco.yaml |
| batch_size | 1024 | cfgs/agent/taco.yaml (over config.yaml's 256 and walker's 512: agent file last) |
| nstep | 3; 1 on walker-* | cfgs/config.yaml; cfgs/task/walker_*.yaml |
| gamma | 0.99 | cfgs/config.yaml |
| lr (actor, critic) | 1e-4 | cfgs/config.yaml |
| encoder_lr (encoder + action encoder, representation step) | 1e-4 | cfgs/config.yaml |
| tau | 0.01 | cfgs/agent/taco.yaml |
| std schedule | linear(1.0, 0.1, 100k / 500k / 2M agent steps) | cfgs/task/{easy,medium,hard}.yaml |
| std_clip | 0.3 | cfgs/agent/taco.yaml |
| augmentation | random shift, pad 4 | agents/taco.py:RandomShiftsAug |
| multistep K | 3 | cfgs/agent/taco.yaml |
| latent action width | int(1.25 \\|A\\|) + 1 ("none") | cfgs/agent/taco.yaml, agents/taco.py:TACOAgent |
| action encoder hidden | 64 (tanh) | utils.py:ActionEncoding |
| curl, reward | on (weights 1) | cfgs/agent/taco.yaml |
| W init | uniform [0, 1) | agents/taco.py:TACO |
| updates | 1 per 2 agent steps: 0.25 per env step at action repeat 2 | update_every_steps, taco.yaml |
| init | orthogonal (gain 1 Linear, relu gain conv), zero bias | utils.py:weight_init |

From states (obs=state, no original): the convolutions are replaced by an MLP (`state_enc_dims`, ReLU after
every layer, as after every convolution) and there is no augmentation; everything else is the same
(docs/agents.md, "taco").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from iqrl.core.checks import require
from iqrl.core.interface import Agent, AgentConfig, AgentSpec, Part, pixel_shape, to_tensor
from iqrl.core.replay import SequenceBatch, nstep_targets
from iqrl.core.schedule import PerStep, SeedPhase
from iqrl.nn.layers import ConvEncoder, EnsembleMLP, frozen_copy, init_linear_, mlp
from iqrl.nn.maths import (
    clipped_sample,
    info_nce,
    linear_decay,
    random_shift,
    shift_offsets,
)
from iqrl.nn.optim import adam


@dataclass
class TACOConfig(AgentConfig):
    # num_seed_frames: 4000 frames (env steps) of uniform actions
    SEED_PHASE: ClassVar[SeedPhase] = SeedPhase(
        env_steps=4000, source="FrankZheng2022/TACO@84c38e3 cfgs/config.yaml:13, train.py:123"
    )
    TINY: ClassVar[dict] = {
        "mlp_dims": [32, 32],
        "batch_size": 16,
        "state_enc_dims": [32],
        "feature_dim": 16,
        "action_hidden": 16,
    }
    name: str = "taco"
    # --- DrQ-v2 backbone ---
    feature_dim: int = 50  # width of the actor's, critic's and TACO's trunks (Linear -> LayerNorm -> tanh)
    mlp_dims: list[int] = field(default_factory=lambda: [1024, 1024])  # actor and critic hidden widths
    state_enc_dims: list[int] = field(default_factory=lambda: [256, 256])  # obs=state: the MLP encoder
    batch_size: int = 1024  # windows per gradient update
    nstep: int = 3  # 1 on walker-* (task YAML)
    gamma: float = 0.99  # discount
    lr: float = 1e-4  # actor and critic (Adam)
    encoder_lr: float = 1e-4  # encoder and action encoder (critic step) and the representation step
    tau: float = 0.01  # EMA rate of the target critic
    std_start: float = 1.0  # exploration std: linear(std_start, std_end, std_steps) of exploring steps
    std_end: float = 0.1  # the exploration std after std_steps
    std_steps: int = 100_000  # agent steps: 100k easy, 500k medium, 2M hard (task YAML)
    std_clip: float = 0.3  # clip of the target-action and actor-update noise (exploration: unclipped)
    image_pad: int = 4  # random shift (obs=pixels only)
    # --- TACO ---
    multistep: int = 3  # K: actions a_t .. a_{t+K-1} encoded, o_{t+K} predicted
    latent_a_dim: int = 0  # width of a latent action; 0: int(1.25 |A|) + 1, the code's heuristic
    action_hidden: int = 64  # hidden width of the single-step action encoder
    taco_coef: float = 1.0  # weight of the temporal contrastive term (0: DrQ-v2 with an action encoder)
    curl_coef: float = 1.0  # weight of the CURL term (0: the code's curl=false)
    reward_coef: float = 1.0  # weight of the reward-prediction term (0: the code's reward=false)

    def validate(self) -> None:
        checks = [
            (self.feature_dim >= 1, f"feature_dim must be >= 1, got {self.feature_dim}"),
            (
                len(self.mlp_dims) >= 1 and all(h >= 1 for h in self.mlp_dims),
                f"mlp_dims must be a non-empty list of positive ints, got {list(self.mlp_dims)}",
            ),
            (
                all(h >= 1 for h in self.state_enc_dims),
                f"state_enc_dims must be positive ints, got {list(self.state_enc_dims)}",
            ),
            (
                self.batch_size >= 2,
                f"batch_size must be >= 2 (InfoNCE needs negatives), got {self.batch_size}",
            ),
            (self.nstep >= 1, f"nstep must be >= 1, got {self.nstep}"),
            (0.0 < self.gamma <= 1.0, f"gamma must be in (0, 1], got {self.gamma}"),
            (self.lr > 0 and self.encoder_lr > 0, "lr and encoder_lr must be > 0"),
            (0.0 < self.tau <= 1.0, f"tau must be in (0, 1], got {self.tau}"),
            (self.std_start >= 0 and self.std_end >= 0, "std_start and std_end must be >= 0"),
            (self.std_steps >= 1, f"std_steps must be >= 1, got {self.std_steps}"),
            (self.std_clip > 0, f"std_clip must be > 0, got {self.std_clip}"),
            (self.image_pad >= 0, f"image_pad must be >= 0, got {self.image_pad}"),
            (self.multistep >= 1, f"multistep must be >= 1, got {self.multistep}"),
            (self.latent_a_dim >= 0, f"latent_a_dim must be >= 0 (0: automatic), got {self.latent_a_dim}"),
            (self.action_hidden >= 1, f"action_hidden must be >= 1, got {self.action_hidden}"),
            (
                min(self.taco_coef, self.curl_coef, self.reward_coef) >= 0,
                "taco_coef, curl_coef and reward_coef must be >= 0",
            ),
        ]
        require(checks)


def trunk(in_dim: int, out_dim: int) -> nn.Sequential:
    """Linear -> LayerNorm -> tanh (DrQ-v2's and TACO's trunks and TACO's state projection), orthogonal."""
    net = nn.Sequential(nn.Linear(in_dim, out_dim), nn.LayerNorm(out_dim), nn.Tanh())
    init_linear_(net, "orthogonal")
    return net


class StateEncoder(nn.Module):
    """obs=state: [N, obs_dim] -> [N, dims[-1]], Linear -> ReLU per width (ReLU after every layer, as the
    convolutional encoder ends each convolution); no widths: the identity."""

    def __init__(self, obs_dim: int, dims: list[int]):
        super().__init__()
        layers: list[nn.Module] = []
        d = obs_dim
        for h in dims:
            layers += [nn.Linear(d, h), nn.ReLU()]
            d = h
        self.net = nn.Sequential(*layers)
        init_linear_(self.net, "orthogonal")
        self.out_dim = d

    def forward(self, obs: Tensor) -> Tensor:
        return self.net(obs.float())


class ActionEncoder(nn.Module):
    """ψ: a [.., A] -> [.., d_a] (Linear -> tanh -> Linear); φ: K latent actions concatenated [B, K d_a] ->
    Linear -> LayerNorm -> tanh [B, K d_a] (utils.py:ActionEncoding)."""

    def __init__(self, act_dim: int, latent_a_dim: int, hidden: int, multistep: int):
        super().__init__()
        self.single = mlp(act_dim, [hidden], latent_a_dim, "orthogonal", act=nn.Tanh, norm=False)
        self.seq = trunk(latent_a_dim * multistep, latent_a_dim * multistep)

    def forward(self, action: Tensor) -> Tensor:
        return self.single(action)

    def sequence(self, actions: Tensor) -> Tensor:
        """u_t [B, K d_a] of a_t .. a_{t+K-1} [B, K, A]."""
        return self.seq(self.single(actions).flatten(1))


class Critic(nn.Module):
    """Twin Q on a shared trunk: (h [B, repr], ψ(a) [B, d_a]) -> [2, B] (ReLU heads, no LayerNorm)."""

    def __init__(self, repr_dim: int, latent_a_dim: int, feature_dim: int, mlp_dims: list[int]):
        super().__init__()
        self.trunk = trunk(repr_dim, feature_dim)
        self.heads = EnsembleMLP(
            2, feature_dim + latent_a_dim, mlp_dims, 1, "orthogonal", act=nn.ReLU, norm=False
        )

    def forward(self, h: Tensor, a_latent: Tensor) -> Tensor:
        return self.heads(torch.cat([self.trunk(h), a_latent], -1)).squeeze(-1)


class Actor(nn.Module):
    """μ(h) = tanh(ReLU-MLP(trunk(h))) [B, A]."""

    def __init__(self, repr_dim: int, act_dim: int, feature_dim: int, mlp_dims: list[int]):
        super().__init__()
        self.trunk = trunk(repr_dim, feature_dim)
        self.policy = mlp(feature_dim, mlp_dims, act_dim, "orthogonal", act=nn.ReLU, norm=False)

    def forward(self, h: Tensor) -> Tensor:
        return torch.tanh(self.policy(self.trunk(h)))


class TACOHeads(nn.Module):
    """TACO's own parameters: the state projection g, the predictor h_θ of [z_t, u_t], the reward head and
    the bilinear W of both contrastive terms (agents/taco.py:TACO)."""

    def __init__(self, repr_dim: int, feature_dim: int, u_dim: int, hidden: int):
        super().__init__()
        self.proj_s = trunk(repr_dim, feature_dim)
        self.proj_sa = mlp(feature_dim + u_dim, [hidden], feature_dim, "orthogonal", act=nn.ReLU, norm=False)
        self.reward = mlp(feature_dim + u_dim, [hidden], 1, "orthogonal", act=nn.ReLU, norm=False)
        self.W = nn.Parameter(torch.rand(feature_dim, feature_dim))  # uniform [0, 1), as the code

    def logits(self, query: Tensor, key: Tensor) -> Tensor:
        """[B, B] bilinear scores query_i W key_jᵀ, less each row's maximum (the code's; InfoNCE is
        unchanged by it)."""
        scores = query @ (self.W @ key.T)
        return scores - scores.detach().amax(1, keepdim=True)


class TACO(Agent):
    PIXELS = True
    STATE_OBJECTS = (
        "encoder",
        "action_encoder",
        "actor",
        "critic",
        "critic_target",
        "heads",
        "encoder_opt",
        "actor_opt",
        "critic_opt",
        "taco_opt",
    )
    STATE_VALUES = ("explore_steps",)
    # The encoder with the action encoder and the contrastive heads that train it (TACO's objective).
    TRANSFER_PARTS = {
        "representation": Part(("encoder", "action_encoder", "heads")),
        "actor": Part(("actor",)),
        "critic": Part(("critic", "critic_target")),
        "optimizers": Part(("encoder_opt", "actor_opt", "critic_opt", "taco_opt")),
    }

    def __init__(self, cfg: TACOConfig, obs_dim, act_dim: int, device: torch.device, seed: int):
        super().__init__(cfg, device, seed)
        # DrQ-v2's update_every_steps = 2: one update per 2 agent steps, during the episodes.
        self.spec = AgentSpec(
            seq_len=max(cfg.multistep, cfg.nstep),
            batch_size=cfg.batch_size,
            updates_per_step=0.25,
        )
        self.schedule = PerStep()
        shape = pixel_shape(obs_dim)
        self.pixels = shape is not None
        if self.pixels:
            self.encoder = ConvEncoder(shape[0], shape[1], init="orthogonal")
        else:
            self.encoder = StateEncoder(int(obs_dim), list(cfg.state_enc_dims))
        repr_dim = self.encoder.out_dim
        d_a = cfg.latent_a_dim or int(act_dim * 1.25) + 1
        self.act_dim, self.latent_a_dim = act_dim, d_a
        self.action_encoder = ActionEncoder(act_dim, d_a, cfg.action_hidden, cfg.multistep)
        self.actor = Actor(repr_dim, act_dim, cfg.feature_dim, cfg.mlp_dims)
        self.critic = Critic(repr_dim, d_a, cfg.feature_dim, cfg.mlp_dims)
        self.heads = TACOHeads(repr_dim, cfg.feature_dim, d_a * cfg.multistep, cfg.mlp_dims[0])
        for m in (self.encoder, self.action_encoder, self.actor, self.critic, self.heads):
            m.to(self.device)
        self.critic_target = frozen_copy(self.critic)
        shared = [*self.encoder.parameters(), *self.action_encoder.parameters()]
        self.encoder_opt = adam(shared, lr=cfg.encoder_lr)
        self.actor_opt = adam(self.actor.parameters(), lr=cfg.lr)
        self.critic_opt = adam(self.critic.parameters(), lr=cfg.lr)
        self.taco_opt = adam([*shared, *self.heads.parameters()], lr=cfg.encoder_lr)
        self.explore_steps = 0  # exploring actions taken: the clock of the std schedule (TACO-2)
        self.latent_width = cfg.feature_dim

    # ------------------------------------------------------------------ schedules and acting
    @property
    def std(self) -> float:
        c = self.cfg
        return linear_decay(c.std_start, c.std_end, c.std_steps, self.explore_steps)

    @property
    def exploration_sigma(self) -> float | None:
        return self.std

    def _batched(self, obs: np.ndarray | Tensor) -> tuple[Tensor, bool]:
        x = obs.to(self.device) if isinstance(obs, Tensor) else to_tensor(obs, self.device)
        single = x.dim() == (3 if self.pixels else 1)
        return (x[None] if single else x), single

    def act(self, obs: np.ndarray, explore: bool) -> np.ndarray:
        """Exploring: the truncated-normal sample mu + N(0, std^2) noise (unclipped) at the scheduled std;
        evaluating, mu. The draw first, then the policy through the updater (the K-seed mode acts for every
        seed in one forward)."""
        x, single = self._batched(obs)
        draws = {}
        if explore:
            g = self.generator
            draws["noise"] = torch.randn((x.shape[0], self.act_dim), generator=g, device=g.device) * self.std
            self.explore_steps += 1
        a = self.updater.act(self.policy_action, x, **draws).numpy()
        return a[0] if single else a

    def policy_action(self, x: Tensor, noise: Tensor | None = None) -> Tensor:
        mu = self.actor(self.encoder(x))
        return mu if noise is None else clipped_sample(mu, noise)

    @torch.no_grad()
    def latent(self, obs: Tensor) -> Tensor:
        """The critic's trunk features [n, feature_dim] (what its Q heads read)."""
        x, _ = self._batched(obs)
        return self.critic.trunk(self.encoder(x))

    @torch.no_grad()
    def probe_q(self, obs: Tensor, action: Tensor) -> Tensor:
        """The online critics' Q_k(h, psi(a)) [2, n] (the critic step's)."""
        x, _ = self._batched(obs)
        return self.q(self.encoder(x), action.to(self.device))

    @torch.no_grad()
    def probe_actor(self, obs: Tensor) -> Tensor:
        return self.policy_action(self._batched(obs)[0])

    # ------------------------------------------------------------------ update
    def draw(self, batch_size: int) -> tuple[Tensor | None, Tensor]:
        """The update's random numbers, drawn first from the agent's generator: the shift offsets of the five
        augmented batches [5, B, 2] (pixels; None from states: aug(o_t), aug(o_{t+n}) for the critic, then
        anchor, positive and aug(o_{t+K}) for TACO), then the N(0, std^2) noise [2, B, A] of the target action
        and the actor's action."""
        g = self.generator
        offsets = None
        if self.pixels:
            offsets = shift_offsets(5 * batch_size, self.cfg.image_pad, g).view(5, batch_size, 2)
        normal = torch.randn((2, batch_size, self.act_dim), generator=g, device=g.device).to(self.device)
        return offsets, normal * self.std

    def aug(self, obs: Tensor, offsets: Tensor | None) -> Tensor:
        return obs if offsets is None else random_shift(obs, self.cfg.image_pad, offsets)

    def update(self, replay, step: int) -> dict:
        c = self.cfg
        batch = replay.sample(c.batch_size)
        offsets, noise = self.draw(len(batch))
        off = [None] * 5 if offsets is None else list(offsets)
        w = self.window(batch)
        metrics = {"batch_reward": w["ret"].mean()}
        h, m = self.update_critic(
            self.aug(w["o_t"], off[0]),
            w["a_t"],
            w["ret"],
            w["discount"],
            self.aug(w["o_n"], off[1]),
            noise[0],
        )
        metrics.update(m)
        metrics.update(self.update_actor(h, noise[1]))
        self.updater.ema(self.critic_target, self.critic, c.tau)
        if c.taco_coef or c.curl_coef or c.reward_coef:
            metrics.update(
                self.update_taco(
                    self.aug(w["o_t"], off[2]),
                    self.aug(w["o_t"], off[3]),
                    w["a_seq"],
                    self.aug(w["o_K"], off[4]),
                    w["ret"],
                    w["mask"],
                )
            )
        return metrics

    def window(self, batch: SequenceBatch) -> dict[str, Tensor]:
        """What the losses read from a window [B, L+1] of observations: o_t, a_t, the n-step return R, its
        bootstrap discount and observation o_{t+n} (`nstep_targets`: a terminal ends the return), the
        action sequence a_t .. a_{t+K-1}, o_{t+K}, and the mask of windows whose K steps lie before any
        terminal (the code's windows never cross an episode's end; on DMC the mask is 1)."""
        c, K = self.cfg, self.cfg.multistep
        ret, discount, boot = nstep_targets(batch.reward, batch.terminal, batch.valid, c.gamma, c.nstep)
        rows = torch.arange(len(batch), device=boot.device)
        return {
            "o_t": batch.obs[:, 0],
            "a_t": batch.action[:, 0],
            "ret": ret,
            "discount": discount,
            "o_n": batch.obs[rows, boot],
            "a_seq": batch.action[:, :K],
            "o_K": batch.obs[:, K],
            "mask": batch.valid[:, K - 1],
        }

    def q(self, h: Tensor, action: Tensor) -> Tensor:
        """Q_k(h, ψ(a)) [2, B]."""
        return self.critic(h, self.action_encoder(action))

    def critic_loss(
        self, obs: Tensor, action: Tensor, ret: Tensor, discount: Tensor, obs_next: Tensor, *, noise: Tensor
    ) -> tuple[Tensor, tuple[Tensor, Tensor, Tensor]]:
        """(L_Q, (h, Q [2, B], y [B])): the sum over both critics of the MSE to y; `noise` [B, A] the target
        action's N(0, std^2) draw."""
        c = self.cfg
        with torch.no_grad():
            h_next = self.encoder(obs_next)
            a_next = clipped_sample(self.actor(h_next), noise, c.std_clip)
            q_next = self.critic_target(h_next, self.action_encoder(a_next)).amin(0)
            y = ret + discount * q_next
        h = self.encoder(obs)
        q = self.q(h, action)
        return ((q - y) ** 2).mean(1).sum(), (h, q, y)

    def update_critic(self, obs, action, ret, discount, obs_next, noise) -> tuple[Tensor, dict]:
        """Critic step on the critic, the encoder and the action encoder (encoder_opt); returns h
        (detached)."""
        opts = (self.critic_opt, self.encoder_opt)
        step = self.updater.step(
            self.critic_loss, obs, action, ret, discount, obs_next, opt=opts, noise=noise
        )
        h, q, y = step.aux
        return h, {"q_loss": step.loss, "q_mean": q.mean(), "target_mean": y.mean()}

    def actor_loss(self, h: Tensor, *, noise: Tensor) -> Tensor:
        """-mean min_k Q_k(h, ψ(a)), a = μ(h) + clipped noise (the actor's N(0, std^2) draw [B, A])."""
        a = clipped_sample(self.actor(h), noise, self.cfg.std_clip)
        return -self.q(h, a).amin(0).mean()

    def update_actor(self, h: Tensor, noise: Tensor) -> dict:
        """Actor step on detached features, the critic's and ψ's weights held fixed."""
        frozen = (self.critic, self.action_encoder)
        step = self.updater.step(self.actor_loss, h, opt=self.actor_opt, frozen=frozen, noise=noise)
        return {"actor_loss": step.loss}

    def taco_losses(
        self, anchor: Tensor, positive: Tensor, actions: Tensor, future: Tensor, ret: Tensor, mask: Tensor
    ) -> dict[str, Tensor]:
        """The three terms of the representation step: InfoNCE of (z_t, u_t) against z_{t+K} (`taco`),
        of z_t against z⁺_t (`curl`) and the reward MSE (`reward`); a term of weight 0 is not computed."""
        c, B = self.cfg, len(anchor)
        z = self.heads.proj_s(self.encoder(anchor))
        with torch.no_grad():  # the code's encode(..., ema=True): the online encoder, no gradient
            keys = self.heads.proj_s(self.encoder(torch.cat([positive, future], 0)))
        z_pos, z_future = keys[:B], keys[B:]
        u = self.action_encoder.sequence(actions)
        zu = torch.cat([z, u], -1)
        out = {}
        if c.taco_coef:
            out["taco"] = info_nce(self.heads.logits(self.heads.proj_sa(zu), z_future), mask)
        if c.curl_coef:
            out["curl"] = info_nce(self.heads.logits(z, z_pos))
        if c.reward_coef:
            err = (self.heads.reward(zu).squeeze(-1) - ret) ** 2
            out["reward"] = (err * mask).sum() / mask.sum().clamp(min=1.0)
        return out

    def taco_loss(self, anchor, positive, actions, future, ret, mask) -> tuple[Tensor, dict[str, Tensor]]:
        """(the weighted sum of `taco_losses`, the terms)."""
        c = self.cfg
        terms = self.taco_losses(anchor, positive, actions, future, ret, mask)
        coef = {"taco": c.taco_coef, "curl": c.curl_coef, "reward": c.reward_coef}
        return sum(coef[k] * v for k, v in terms.items()), terms

    def update_taco(self, anchor, positive, actions, future, ret, mask) -> dict:
        step = self.updater.step(
            self.taco_loss, anchor, positive, actions, future, ret, mask, opt=self.taco_opt
        )
        return {f"{k}_loss": v for k, v in step.aux.items()}
