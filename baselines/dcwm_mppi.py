"""MPPI planning in a learned latent model (as DC-MPC acts; Scannell et al. 2025, arXiv 2503.00653).

`mppi_plan` knows nothing about any agent: it takes the start latents and four callables.

    dynamics(z [N, S, D], a [N, S, A]) -> z' [N, S, D]      latent rollout step
    reward(z [N, S, D], a [N, S, A]) -> r [N, S]            predicted reward of (z_t, a_t)
    terminal_value(z [N, S, D]) -> V [N, S]                 value of the latent after the last step
    policy_prior(z [N, P, D]) -> a [N, P, A]                 (optional) prior actions, noise included

N is the number of environments planned for at once, S the number of action sequences. Per call:
the P = `num_pi_trajs` prior sequences are rolled out once and kept fixed; then `iterations` times the
other S - P sequences are drawn from N(mean, std^2) (clamped to [-1, 1]), each sequence gets the value
sum_{t<H} discount^t r_t + discount^H V(z_H) (NaN -> 0), the top `num_elites` are weighted
by softmax(temperature * value) and mean/std are refitted to them (std clamped to [min_std, max_std]).
std starts at max_std on every call; mean starts at zero, or at `prev_mean` shifted one step (last
step 0), which is how the caller warm-starts from its previous plan. The action returned is the first
step of one elite sequence drawn with probability proportional to its weight (not the mean).
All randomness comes from the `generator` passed in.

Cost: iterations x horizon x num_samples model evaluations per call (DC-MPC: 6 x 3 x 512 = 9216
dynamics + reward calls, plus 6 x 512 terminal values, per env step).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields

import torch
from torch import Tensor

from iqrl.core.checks import require
from iqrl.nn.maths import gumbel_noise


@dataclass(frozen=True)
class MPPIConfig:
    horizon: int = 3
    iterations: int = 6
    num_samples: int = 512  # sequences per iteration, the policy-prior ones included
    num_pi_trajs: int = 24
    num_elites: int = 64
    temperature: float = 0.5
    min_std: float = 0.05
    max_std: float = 2.0
    discount: float = 0.9  # per-step weight of the trajectory value (DC-MPC uses rho = 0.9, not gamma)

    @classmethod
    def from_keys(cls, cfg, **given) -> MPPIConfig:
        """The planner's settings from an agent config's keys of the same names (num_samples, num_elites,
        temperature, ...), with `given` for those the agent names otherwise or computes."""
        return cls(**{f.name: getattr(cfg, f.name) for f in fields(cls) if f.name not in given}, **given)

    def validate(self, keys: dict | None = None) -> None:
        """Raise ValueError naming the bad field; `keys` renames fields in the message (an agent's config
        keys)."""

        def k(field: str) -> str:
            return (keys or {}).get(field, field)

        checks = [
            (self.horizon >= 1, f"{k('horizon')} must be >= 1, got {self.horizon}"),
            (self.iterations >= 1, f"{k('iterations')} must be >= 1, got {self.iterations}"),
            (
                0 <= self.num_pi_trajs < self.num_samples,
                f"{k('num_pi_trajs')} must be in 0..{k('num_samples')} - 1 ({self.num_samples - 1}), "
                f"got {self.num_pi_trajs}",
            ),
            (
                1 <= self.num_elites <= self.num_samples,
                f"{k('num_elites')} must be in 1..{k('num_samples')} ({self.num_samples}), got "
                f"{self.num_elites}",
            ),
            (self.temperature > 0, f"{k('temperature')} must be > 0, got {self.temperature}"),
            (
                0 < self.min_std <= self.max_std,
                f"{k('min_std')} must be in (0, {k('max_std')}] ({self.max_std}), got {self.min_std}",
            ),
            (0 < self.discount <= 1, f"{k('discount')} must be in (0, 1], got {self.discount}"),
        ]
        require(checks)


@dataclass
class MPPIResult:
    action: Tensor  # [N, A] first action of the chosen elite sequence
    plan: Tensor  # [N, H, A] the chosen elite sequence
    value: Tensor  # [N] its value (from the last iteration)
    mean: Tensor  # [N, H, A] the refitted mean: the caller's warm start for the next step
    std: Tensor  # [N, H, A]
    elite_value: Tensor  # [N, K] values of the last iteration's elites, best first
    pick: Tensor  # [N] which elite was drawn (0 = the best)


def shift_plan(mean: Tensor) -> Tensor:
    """Warm start [N, H, A]: the previous plan moved one step earlier, last step 0."""
    out = torch.zeros_like(mean)
    out[:, :-1] = mean[:, 1:]
    return out


def trajectory_value(
    z0: Tensor,
    actions: Tensor,
    dynamics: Callable,
    reward: Callable,
    terminal_value: Callable,
    discount: float,
) -> Tensor:
    """sum_{t<H} discount^t r(z_t, a_t) + discount^H V(z_H) for z0 [N, D], actions [N, S, H, A] -> [N, S]."""
    N, S, H, _ = actions.shape
    z = z0.unsqueeze(1).expand(N, S, z0.shape[-1]).contiguous()  # one layout for compiled callables
    value, weight = 0.0, 1.0
    for t in range(H):
        a = actions[:, :, t]
        value = value + weight * reward(z, a)
        z = dynamics(z, a)
        weight *= discount
    return value + weight * terminal_value(z)


@torch.no_grad()
def mppi_plan(
    z0: Tensor,
    *,
    dynamics: Callable[[Tensor, Tensor], Tensor],
    reward: Callable[[Tensor, Tensor], Tensor],
    terminal_value: Callable[[Tensor], Tensor],
    act_dim: int,
    cfg: MPPIConfig,
    generator: torch.Generator,
    policy_prior: Callable[[Tensor], Tensor] | None = None,
    prev_mean: Tensor | None = None,
) -> MPPIResult:
    """Plan from latents z0 [N, D]; `prev_mean` [N, H, A] (None at an episode start) warm-starts the mean."""
    N, H, A, S = z0.shape[0], cfg.horizon, act_dim, cfg.num_samples
    P = cfg.num_pi_trajs if policy_prior is not None else 0
    dev, dtype = z0.device, z0.dtype
    actions = torch.empty(N, S, H, A, device=dev, dtype=dtype)
    if P:
        z = z0.unsqueeze(1).expand(N, P, z0.shape[-1]).contiguous()
        for t in range(H):
            actions[:, :P, t] = policy_prior(z)
            if t < H - 1:
                z = dynamics(z, actions[:, :P, t])
    mean = shift_plan(prev_mean) if prev_mean is not None else torch.zeros(N, H, A, device=dev, dtype=dtype)
    std = torch.full((N, H, A), cfg.max_std, device=dev, dtype=dtype)
    rows = torch.arange(N, device=dev)
    for _ in range(cfg.iterations):
        eps = torch.randn(N, S - P, H, A, generator=generator, device=dev, dtype=dtype)
        actions[:, P:] = (mean.unsqueeze(1) + std.unsqueeze(1) * eps).clamp(-1.0, 1.0)
        value = trajectory_value(z0, actions, dynamics, reward, terminal_value, cfg.discount).nan_to_num(0.0)
        elite_value, elite_idx = value.topk(cfg.num_elites, dim=1)  # [N, K]
        elite_actions = actions[rows[:, None], elite_idx]  # [N, K, H, A]
        score = torch.exp(cfg.temperature * (elite_value - elite_value.amax(1, keepdim=True)))
        score = score / score.sum(1, keepdim=True)
        w = score[:, :, None, None]
        mean = (w * elite_actions).sum(1) / (w.sum(1) + 1e-9)
        std = ((w * (elite_actions - mean.unsqueeze(1)) ** 2).sum(1) / (w.sum(1) + 1e-9)).sqrt()
        std = std.clamp(cfg.min_std, cfg.max_std)
    # An elite with probability = its weight, drawn as argmax(log w + Gumbel): the distribution of
    # torch.multinomial without its host-side checks of the weights, which stall a GPU on every action.
    pick = (score.log() + gumbel_noise(score.shape, generator, score.device, score.dtype)).argmax(1)
    plan = elite_actions[rows, pick]
    return MPPIResult(
        action=plan[:, 0],
        plan=plan,
        value=elite_value[rows, pick],
        mean=mean,
        std=std,
        elite_value=elite_value,
        pick=pick,
    )


class Planner:
    """What an agent that acts with `mppi_plan` keeps besides its declared state (DC-MPC, TD-MPC2): one
    generator per acting mode, explore=True (training) and explore=False (evaluation), seeded apart from the
    updates' generator so that acting never moves the updates' draws, and each mode's warm start (the mean of
    its previous plan). Both go into the checkpoint, so a resumed run plans as the uninterrupted one. The
    agent sets `device`, `act_dim` and `mppi_cfg` and calls `init_planner(seed)` in its constructor.
    Evaluation's acting state is more than its stream, so it evaluates in line (not `eval_beside`)."""

    evaluates_beside = False

    def init_planner(self, seed: int) -> None:
        self.init_act_generators(seed)
        self.plan_mean: dict[bool, Tensor | None] = {True: None, False: None}  # warm starts [N, H, A]

    def on_episode_start(self, training: bool) -> None:
        self.plan_mean[training] = None  # an episode's first plan starts afresh (TD-MPC2: tdmpc2.py:166)

    def planned(self, z: Tensor, explore: bool, generator: torch.Generator, **model: Callable) -> MPPIResult:
        """`mppi_plan` from z [N, D] with the mode's warm start (none when the number of envs changed: a new
        episode), which the result's mean becomes; `model`: its dynamics, reward, terminal_value and
        policy_prior."""
        prev = self.plan_mean[explore]
        if prev is not None and prev.shape[0] != z.shape[0]:
            prev = None
        result = mppi_plan(
            z, act_dim=self.act_dim, cfg=self.mppi_cfg, generator=generator, prev_mean=prev, **model
        )
        self.plan_mean[explore] = result.mean
        return result

    def state_dict(self) -> dict:
        """The declared state plus the acting generators and the warm starts."""
        return {
            **super().state_dict(),
            "act_generators": {k: g.get_state() for k, g in self.act_generators.items()},
            "plan_mean": {k: None if v is None else v.clone() for k, v in self.plan_mean.items()},
        }

    def load_state_dict(self, s: dict) -> None:
        super().load_state_dict(s)
        for k, g in self.act_generators.items():
            g.set_state(s["act_generators"][k].cpu())
        self.plan_mean = {k: None if v is None else v.to(self.device) for k, v in s["plan_mean"].items()}
