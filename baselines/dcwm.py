"""DCWM / DC-MPC: a discrete codebook world model, TD3 on its codes, MPPI at act time.

Scannell et al., "Discrete Codebook World Models for Continuous Control", ICLR 2025 (arXiv 2503.00653);
code github.com/aidanscannell/dcmpc. Paper order per update: world-model step (encoder ->
FSQ codes [5, 3] per slot; the dynamics is a classifier over the K = 15 codes of every slot, trained
with cross-entropy against the code indices of the *online* encoder under stop-gradient (there is no
target encoder, DC-4); the rollout propagates straight-through Gumbel-softmax samples; bounded
reward head; rho-weighted over H = 5) -> re-encode o_0 and o_n with the updated encoder under no_grad
-> TD3 critic step on the codes (5 critics, target = min of a random pair) -> actor step every 2nd
critic step (mean of a random pair). The RL losses never reach the world model.

Acting: MPPI in the latent model (`baselines/dcwm_mppi.py`) with expected-code propagation,
a policy prior and a terminal value; `mpc=false` acts with pi(z) alone (DCWM-MF). The planner's warm
start (the previous plan) is reset at every episode start, kept separately for training and evaluation
acting, and checkpointed. Acting draws from its own generators (one for training, one for evaluation),
so evaluation does not change the training run.

Quirks (docs/faithfulness.md): DC-1 (unit bootstrap discount for n = 1) is `dcwm_legacy_unit_discount` (off:
gamma^n);
DC-2 default init is kept (`init=orthogonal` as an option); DC-3 (one prior-noise vector shared by the
24 prior trajectories, and noisy prior / terminal-value actions in evaluation) is reproduced by default
(`plan_shared_prior_noise`, `plan_noise_in_eval`); DC-4: plain fp32, no gradient scaler, AdamW's
library-default weight decay 0.01 kept as `enc_weight_decay`.
The first update call after the seed episodes runs the updates they earned (5000 with 10 seed episodes),
as the code (`seed_burst`, on); that call also advances the exploration schedule once.
Harness deviation: the model-loss mask is the window's `valid` flags (the code's per-step done flag
also drops an episode's final, time-limit transition).
"""

from __future__ import annotations

from dataclasses import replace
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from baselines.dcwm_mppi import MPPIConfig, Planner
from iqrl.core.checks import require
from iqrl.core.interface import Agent, AgentConfig, AgentSpec, Part, compose, learner_parts, to_tensor
from iqrl.core.replay import SequenceBatch, nstep_transition
from iqrl.core.schedule import PerEpisode, SeedBurst, SeedPhase
from iqrl.learners.latent_model import LatentModelConfig
from iqrl.learners.td3 import TD3Learner, TD3LearnerConfig
from iqrl.nn.layers import mlp
from iqrl.nn.maths import (
    add_clipped_noise,
    cross_entropy_last,
    gumbel_noise,
    gumbel_softmax_st,
    softmax_last,
    symlog,
)
from iqrl.nn.optim import adam
from iqrl.nn.quantizers import FSQ

PROPAGATION = ("sample", "sample_no_grad", "weighted_avg", "mode")


@compose(
    # --- TD3 + REDQ-style ensemble on the codes ---
    learner=TD3LearnerConfig(
        batch_size=512,
        num_critics=5,
        q_subsample=2,
        actor_q_reduce="mean",
        critic_loss_reduce="mean",
        expl_sigma_episodes=50,  # 50 easy / 150 medium / 500 hard (task YAML)
        init="default",  # DC-2: the code's init calls are no-ops
        grad_clip=20.0,
    ),
    # --- world model: latent_dim d slots (1024 for dog, humanoid); enc_mlp_dims, horizon, rho, enc_lr,
    # enc_weight_decay and enc_grad_clip with the defaults of LatentModelConfig ---
    latent=LatentModelConfig(fsq_levels=[5, 3]),
)
class DCWMConfig(AgentConfig):
    # 10 episodes of uniform actions, then the burst of their updates
    SEED_PHASE: ClassVar[SeedPhase] = SeedPhase(
        episodes=10, source="aidanscannell/dcmpc@cc2a33a config.py:38, train.py:193, 231"
    )
    # the tests' tiny sizes, MPPI's too (512 samples x 6 iterations are slow on CPU)
    TINY: ClassVar[dict] = {"num_samples": 32, "num_pi_trajs": 4, "num_elites": 8, "iterations": 2}
    name: str = "dcwm"
    dcwm_legacy_unit_discount: bool = False  # DC-1: n = 1 bootstraps with 1 instead of gamma
    # --- world model ---
    consistency_loss: str = "cross_entropy"  # cross_entropy | mse | cosine (on codes)
    consistency_coef: float = 1.0  # weight of the consistency term of the model loss
    reward_coef: float = 1.0  # weight of the reward term of the model loss
    train_propagation: str = "sample"  # sample (ST Gumbel) | sample_no_grad | weighted_avg | mode
    # Bounded reward head [reward_min, reward_max]: [0, action repeat] on DMC, as the code sets it; both
    # null (the task file's setting for Gym, Meta-World and MyoSuite, as the code's) = unbounded.
    reward_min: float | None = 0.0
    reward_max: float | None = 2.0  # upper bound of the reward head (null with reward_min: unbounded)
    # Learn from symlog(r) (rewards in the replay keep their values; the code symlogs the stored rewards
    # with its `scale_reward`, which its MyoSuite config turns on: the task file does here).
    symlog_reward: bool = False
    # After the 10 seed episodes, the code's first update call trains on all of them at once (10 x 500 =
    # 5000 updates) before the agent collects its first episode; false: the first updates follow
    # the first agent-collected episode, as iQRL, TD3 and TCRL.
    seed_burst: bool = True
    # --- MPPI at act time ---
    mpc: bool = True  # act by MPPI planning in the world model; false: by the policy alone (DCWM-MF)
    plan_horizon: int = 3  # H: agent steps of each planned action sequence
    iterations: int = 6  # MPPI refits of the sampling mean and std per act call
    num_samples: int = 512  # action sequences per iteration, the policy-prior ones included
    num_pi_trajs: int = 24  # of them, sequences from the policy prior (rolled out once per call)
    num_elites: int = 64  # best-valued sequences the mean and std are refitted to
    temperature: float = 0.5  # elites weighted by softmax(temperature * value)
    min_std: float = 0.05  # lower clamp of the refitted sampling std
    max_std: float = 2.0  # upper clamp of the refitted std, and its value at the start of each call
    plan_discount: float = 0.9  # the code discounts plans with rho, not gamma
    plan_propagation: str = "weighted_avg"  # how MPPI rolls the codes forward: weighted_avg | sample | mode
    plan_shared_prior_noise: bool = True  # DC-3: one noise vector per step for all prior trajectories
    plan_noise_in_eval: bool = True  # DC-3: prior and terminal-value actions noisy in evaluation too

    def validate(self) -> None:
        super().validate()
        self.latent.validate_fsq()  # the latent always goes through FSQ
        checks = [
            (
                self.consistency_loss in ("cross_entropy", "mse", "cosine"),
                f"agent.consistency_loss must be cross_entropy, mse or cosine, got {self.consistency_loss!r}",
            ),
            (
                self.train_propagation in PROPAGATION,
                f"agent.train_propagation must be one of {', '.join(PROPAGATION)}, got "
                f"{self.train_propagation!r}",
            ),
            (
                self.plan_propagation in PROPAGATION,
                f"agent.plan_propagation must be one of {', '.join(PROPAGATION)}, got "
                f"{self.plan_propagation!r}",
            ),
            (
                (self.reward_min is None) == (self.reward_max is None),
                "agent.reward_min and agent.reward_max must both be set (a bounded reward head) or both null",
            ),
            (
                self.reward_min is None or self.reward_max > self.reward_min,
                "agent.reward_max must be > agent.reward_min",
            ),
            (
                not self.official_nstep1_gamma_bug,
                "agent.official_nstep1_gamma_bug: for DCWM use agent.dcwm_legacy_unit_discount "
                "(docs/faithfulness.md)",
            ),
        ]
        require(checks)
        try:
            self.mppi().validate(keys={"horizon": "plan_horizon", "discount": "plan_discount"})
        except ValueError as e:
            raise ValueError(f"agent.{e}") from None

    @property
    def latent_width(self) -> int:
        """D, the width of the codes the dynamics, actor and critic read: the latent model's."""
        return self.latent.latent_width

    def mppi(self) -> MPPIConfig:
        return MPPIConfig.from_keys(self, horizon=self.plan_horizon, discount=self.plan_discount)


class DCWM(Planner, Agent):
    STATE_OBJECTS = (
        "encoder",
        "dynamics",
        "reward_head",
        "ac=learner",
        "model_opt",
        "ac_extra=learner.extra",
    )
    TRANSFER_PARTS = {
        "representation": Part(("encoder", "dynamics", "reward_head"), keys=("fsq_levels", "fsq_symmetric")),
        **learner_parts(),
    }
    TRANSFER_PARTS["optimizers"] = Part(("model_opt", *TRANSFER_PARTS["optimizers"].paths))

    def __init__(self, cfg: DCWMConfig, obs_dim: int, act_dim: int, device: torch.device, seed: int):
        super().__init__(
            cfg, device, seed
        )  # self.generator: the updates' Gumbel noise, TD3 noise, critic draws
        self.act_dim = act_dim
        # 500 updates per 1000-frame episode: 1 per agent step = 0.5 per env step.
        self.spec = AgentSpec(
            seq_len=max(cfg.horizon, cfg.nstep),
            batch_size=cfg.batch_size,
            updates_per_step=0.5,
            warmup_with_policy=cfg.warmup_with_policy,
        )
        self.schedule = SeedBurst() if cfg.seed_burst else PerEpisode()
        self.fsq = FSQ(cfg.fsq_levels, symmetric=cfg.fsq_symmetric).to(self.device)
        self.codebook_size = K = self.fsq.codebook_size
        self.codebook = self.fsq.codes_from_indices(torch.arange(K, device=self.device)[:, None])  # [K, c]
        D = self.latent_width = cfg.latent_width
        self.encoder = mlp(obs_dim, cfg.enc_mlp_dims, D, cfg.init).to(self.device)
        self.dynamics = mlp(D + act_dim, cfg.mlp_dims, cfg.latent_dim * K, cfg.init).to(self.device)  # logits
        self.reward_head = mlp(D + act_dim, cfg.mlp_dims, 1, cfg.init).to(self.device)
        self.model_params = [
            p for m in (self.encoder, self.dynamics, self.reward_head) for p in m.parameters()
        ]
        self.model_opt = adam(
            self.model_params, lr=cfg.enc_lr, weight_decay=cfg.enc_weight_decay, decoupled=True
        )
        self.rho_powers = cfg.rho ** torch.arange(cfg.horizon, dtype=torch.float32, device=self.device)
        self.learner = TD3Learner(cfg.learner, D, act_dim, self.generator).to(self.device)
        self.mppi_cfg = cfg.mppi()
        self.init_planner(seed)  # acting's generators and warm starts (Planner)

    # ------------------------------------------------------------------ world model
    def encode(self, obs: Tensor) -> Tensor:
        """FSQ codes z [..., d * c] (straight-through)."""
        return self.fsq(self.encoder(obs))

    def next_logits(self, z: Tensor, a: Tensor) -> Tensor:
        """Dynamics classifier: logits [..., d, K] over the codes of every slot."""
        return self.dynamics(torch.cat([z, a], -1)).unflatten(-1, (self.cfg.latent_dim, self.codebook_size))

    def propagate(self, logits: Tensor, mode: str, noise: Tensor | None) -> Tensor:
        """Next latent [..., d * c] from logits [..., d, K]: a code vector per slot, or their expectation.
        `noise`: Gumbel noise shaped like the logits for the sampling modes (`rollout_noise`), else None."""
        if mode == "sample":  # straight-through Gumbel-softmax: on the codebook, gradient via softmax
            weights = gumbel_softmax_st(logits, noise)
        elif mode == "weighted_avg":  # expected code (off the codebook, deterministic)
            weights = softmax_last(logits)
        else:
            if mode == "sample_no_grad":  # a Gumbel-max sample, no gradient through the rollout
                idx = (logits.detach() + noise.to(logits.dtype)).argmax(-1)
            else:  # mode
                idx = logits.detach().argmax(-1)
            return self.codebook[idx].flatten(-2)
        return (weights @ self.codebook).flatten(-2)

    def rollout_noise(self, lead: tuple[int, ...], mode: str, generator: torch.Generator) -> Tensor | None:
        """The Gumbel noise of one `propagate` step of latents [*lead, D] ([*lead, d, K]; None for the
        deterministic modes), drawn before the step so that the losses are pure functions of their inputs."""
        if mode not in ("sample", "sample_no_grad"):
            return None
        return gumbel_noise((*lead, self.cfg.latent_dim, self.codebook_size), generator, self.device)

    def reward(self, z: Tensor, a: Tensor) -> Tensor:
        """Bounded reward tanh(x) (r_max - r_min) / 2 + (r_max + r_min) / 2, [...]; x when unbounded."""
        c = self.cfg
        x = self.reward_head(torch.cat([z, a], -1)).squeeze(-1)
        if c.reward_min is None:
            return x
        return torch.tanh(x) * (c.reward_max - c.reward_min) / 2 + (c.reward_max + c.reward_min) / 2

    def consistency_terms(self, logits: Tensor, z_next: Tensor, k_target: Tensor, z_target: Tensor) -> Tensor:
        """Per-sample consistency term [B]: mean over slots of CE(logits, k*), or MSE / -cos on codes."""
        if self.cfg.consistency_loss == "cross_entropy":
            return cross_entropy_last(logits, k_target).mean(-1)
        if self.cfg.consistency_loss == "mse":
            return ((z_next - z_target) ** 2).mean(-1)
        return -F.cosine_similarity(z_next, z_target, dim=-1, eps=1e-6)

    def world_model_loss(self, batch: SequenceBatch, *, noise: list[Tensor | None]) -> tuple[Tensor, dict]:
        """L = c_c (1/H) sum_t rho^t mean_b[m CE_t] + c_r (1/H) sum_t rho^t mean_b[m (r^(z_t, a_t) -
        r_t)^2]; `noise[t]`: the Gumbel noise of rollout step t (`rollout_noise`)."""
        c, H = self.cfg, self.cfg.horizon
        obs, act = batch.obs, batch.action
        mask = batch.valid[:, :H]  # 1 inside the episode (the code masks with its per-step done flag)
        with torch.no_grad():  # targets: the ONLINE encoder under stop-gradient (no target encoder, DC-4)
            z_target = self.encode(obs[:, 1 : H + 1])  # [B, H, D]
            k_target = self.fsq.indices(z_target)  # [B, H, d]
        z = self.encode(obs[:, 0])  # gradient reaches the encoder through z_0 and the rollout only
        cons, rew = [], []
        for t in range(H):
            rew.append((self.reward(z, act[:, t]) - batch.reward[:, t]) ** 2)
            logits = self.next_logits(z, act[:, t])
            z = self.propagate(logits, c.train_propagation, noise[t])
            cons.append(self.consistency_terms(logits, z, k_target[:, t], z_target[:, t]))
        consistency = ((torch.stack(cons, 1) * mask).mean(0) * self.rho_powers).sum() / H
        reward = ((torch.stack(rew, 1) * mask).mean(0) * self.rho_powers).sum() / H
        loss = c.consistency_coef * consistency + c.reward_coef * reward
        return loss, {
            "consistency_loss": consistency.detach(),
            "reward_loss": reward.detach(),
            "repr_loss": loss.detach(),
        }

    def training_rollout_noise(self, batch: SequenceBatch) -> list[Tensor | None]:
        """The noise of the H rollout steps of `world_model_loss`, drawn from the updates' generator step by
        step (the stream of drawing it inside the loop)."""
        lead, mode = batch.obs.shape[:1], self.cfg.train_propagation
        return [self.rollout_noise(lead, mode, self.generator) for _ in range(self.cfg.horizon)]

    def update_world_model(self, batch: SequenceBatch) -> dict:
        """One AdamW step on the world-model loss, its rollout noise drawn first."""
        step = self.updater.step(
            self.world_model_loss,
            batch,
            opt=self.model_opt,
            max_norm=self.cfg.enc_grad_clip,
            noise=self.training_rollout_noise(batch),
        )
        return {**step.aux, "enc_grad_norm": step.grad_norm}

    # ------------------------------------------------------------------ actor-critic on the codes
    def rl_inputs(self, batch: SequenceBatch) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """(z_t, a_t, n-step return, bootstrap discount, z_{t+m}): the codes of o_t and o_{t+m} from the
        updated encoder under no_grad (no RL gradient reaches the world model); the bootstrap discount is
        gamma^n, or 1 for n = 1 under `dcwm_legacy_unit_discount`."""
        c = self.cfg
        return nstep_transition(
            batch,
            c.gamma,
            c.nstep,
            encode=self.encode,
            unit_discount_n1=c.dcwm_legacy_unit_discount,
            ignore_terminal=c.official_ignore_terminal,
        )

    def update_rl(self, batch: SequenceBatch) -> dict:
        """The TD3 learner's steps on the codes of the window, re-encoded by the updated encoder."""
        u = self.updater
        return self.learner.update(u, *u.call(self.rl_inputs, batch))

    def update(self, replay, step: int) -> dict:
        batch = replay.sample(self.cfg.batch_size)  # one batch feeds the world model and the RL step
        if self.cfg.symlog_reward:  # the reward head and the critic both learn symlog(r)
            batch = replace(batch, reward=symlog(batch.reward))
        metrics = self.update_world_model(batch)
        metrics.update(self.update_rl(batch))
        return metrics

    def on_episode_end(self) -> None:
        self.learner.episodes_trained += 1

    @property
    def exploration_sigma(self) -> float | None:
        return self.learner.expl_sigma

    # ------------------------------------------------------------------ acting (MPPI)
    def compile_acting(self) -> None:
        """compile=true: the planner's model evaluations, its random draws staying eager around them. They see
        inputs of several shapes (one env or a batch of evaluation envs, policy-prior or sampled sequences),
        so they are compiled with dynamic shapes, once for all of them; and never captured as CUDA graphs:
        each call feeds the next one's input, which graph replays would overwrite."""
        for name in ("reward", "next_latent", "noisy_policy", "critic_value"):
            setattr(self, name, torch.compile(getattr(self, name), dynamic=True))

    # Each piece of the planner's model is split into its random draws (eager, from the acting generator,
    # in the order the planner has always drawn them) and a pure function of the draws (`next_latent`,
    # `noisy_policy`, `critic_value`, `reward`: what compile=true compiles).
    def policy_prior(self, z: Tensor, generator: torch.Generator, noisy: bool) -> Tensor:
        """pi(z) [N, P, A] + N(0, sigma_expl^2), one noise vector per env shared by the P rows (DC-3) or
        not."""
        noise = None
        if noisy:
            lead = (z.shape[0], 1) if self.cfg.plan_shared_prior_noise else z.shape[:-1]
            noise = (
                torch.randn((*lead, self.act_dim), generator=generator, device=z.device)
                * self.learner.expl_sigma
            )
        return self.noisy_policy(z, noise)

    def noisy_policy(self, z: Tensor, noise: Tensor | None) -> Tensor:
        """clamp(pi(z) + noise, -1, 1), the noise already scaled by sigma (compiled with sigma as a float
        argument, it would recompile whenever the schedule moves it)."""
        a = self.learner.policy(z)
        return (a if noise is None else a + noise).clamp(-1.0, 1.0)

    def plan_step(self, z: Tensor, a: Tensor, generator: torch.Generator) -> Tensor:
        """The planner's next latents [N, S, D] (its noise, if any, from the acting generator)."""
        mode = self.cfg.plan_propagation
        return self.next_latent(z, a, mode, self.rollout_noise(z.shape[:-1], mode, generator))

    def next_latent(self, z: Tensor, a: Tensor, mode: str, noise: Tensor | None) -> Tensor:
        return self.propagate(self.next_logits(z, a), mode, noise)

    def terminal_value(self, z: Tensor, generator: torch.Generator, noisy: bool) -> Tensor:
        """Mean of a random pair of online critics at (z, prior action) [N, S]."""
        a = self.policy_prior(z, generator, noisy)
        members = torch.randperm(self.cfg.num_critics, generator=generator, device=self.device)[
            : self.cfg.q_subsample
        ]
        return self.critic_value(z, a, members)

    def critic_value(self, z: Tensor, a: Tensor, members: Tensor) -> Tensor:
        return self.learner.q(z.flatten(0, 1), a.flatten(0, 1), members).mean(0).view(z.shape[:2])

    def plan(self, z: Tensor, explore: bool, generator: torch.Generator) -> Tensor:
        c = self.cfg
        noisy = explore or c.plan_noise_in_eval
        result = self.planned(
            z,
            explore,
            generator,
            dynamics=lambda z_, a_: self.plan_step(z_, a_, generator),
            reward=self.reward,
            terminal_value=lambda z_: self.terminal_value(z_, generator, noisy),
            policy_prior=lambda z_: self.policy_prior(z_, generator, noisy),
        )
        return result.action

    @torch.no_grad()
    def act(self, obs: np.ndarray, explore: bool) -> np.ndarray:
        o = to_tensor(obs, self.device)
        single = o.dim() == 1
        z = self.encode(o.unsqueeze(0) if single else o)
        generator = self.act_generators[explore]
        a = self.plan(z, explore, generator) if self.cfg.mpc else self.learner.policy(z)
        if explore:
            a = add_clipped_noise(a, self.learner.expl_sigma, None, generator)
        return (a[0] if single else a).cpu().numpy()

    @torch.no_grad()
    def latent(self, obs: Tensor) -> Tensor:
        return self.encode(obs.to(self.device))

    @torch.no_grad()
    def codes(self, obs: Tensor) -> Tensor:
        return self.fsq.indices(self.encode(obs.to(self.device)))

    @torch.no_grad()
    def probe_q(self, obs: Tensor, action: Tensor) -> Tensor:
        return self.learner.q(self.encode(obs.to(self.device)), action)

    @torch.no_grad()
    def probe_actor(self, obs: Tensor) -> Tensor:
        return self.learner.policy(self.encode(obs.to(self.device)))

    @torch.no_grad()
    def predict_latents(self, obs: Tensor, action: Tensor) -> tuple[Tensor, Tensor]:
        """The dynamics' rollout from the code of o_t, each step its most likely code per slot (`mode`: no
        draw), against the online encoder's codes of o_{t+1..t+H} (the world model's targets)."""
        H, z, pred = self.cfg.horizon, self.encode(obs[:, 0]), []
        for t in range(H):
            z = self.next_latent(z, action[:, t], "mode", None)
            pred.append(z)
        return torch.stack(pred), self.encode(obs[:, 1 : H + 1]).transpose(0, 1)
