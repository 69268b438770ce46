"""DreamerV3 (Hafner, Pasukonis, Ba, Lillicrap, "Mastering diverse control tasks through world models",
Nature 2025, arXiv 2301.04104): a recurrent state-space model (RSSM) learned from replayed sequences, and an
actor-critic trained on its imagined rollouts; the same settings on states and pixels, boxes and discrete
actions.

Reference code: github.com/danijar/dreamerv3 at e3f0224, cited as `file: name` (dreamerv3/agent.py
`Agent.loss`, dreamerv3/configs.yaml line n, ...); its networks are baselines/dreamerv3_nets.py. One update
(`Agent.train` / `Agent.loss`), one loss and one optimizer step over every network, on B windows of L + 1
observations o_t .. o_{t+L} (the code's sequences of replay_context + batch_length steps):
  1. the window's start: the state the agent last computed after o_t (its replayed context: written when
     it acted on o_t, rewritten by every update that replayed it; `_apply_replay_context`), or, at an
     episode's first observation (or where none was written), the posterior from the reset state, which is
     then trained as the code trains an episode's first step;
  2. world model (`RSSM.loss`, `Agent.loss`): the posterior over the window, h_t = GRU(h, z, a), z_t ~ q(z |
     h_t, e_t); per step the reconstruction loss (symlog squared error of states, squared error of pixels),
     the reward's symexp two-hot cross-entropy, the continue flag's log-loss (target (1 - terminal) gamma:
     `contdisc`), and the KL balance max(1, KL(sg(q) || p)) + 0.1 max(1, KL(q || sg(p)));
  3. imagination (`RSSM.imagine`, `imag_loss`): from every posterior state, H = imag_length steps of the
     prior under policy samples; lambda-returns from the reward and continue heads and the critic; returns
     normalised by the EMA of their 5th-95th percentile range (at least 1); the policy's REINFORCE loss with
     an entropy bonus, weighted by the cumulative continue probabilities; the critic's two-hot loss to the
     returns plus a regulariser towards the slow critic's predictions;
  4. the critic on the replayed states too (`repl_loss`): lambda-returns of the true rewards bootstrapped
     from the imagined returns, weight 0.3, its gradient reaching the world model (`repval_grad`);
  5. one LaProp step with adaptive gradient clipping (iqrl.nn.optim.LaProp), then the slow critic <- EMA.
Acting (`Agent.policy`): the posterior from the carried state (h, z, previous action; reset at each episode
start) and a policy sample; with `explore=False` the latent's and the policy's modes (DV3-2).

Settings (the defaults of `DreamerV3Config`), from dreamerv3/configs.yaml at e3f0224 unless named:
| key | value | where |
|---|---|---|
| size: deter, hidden, classes, depth, units | 1m from states, 200m from pixels | lines 91-101, 120-187 |
| stoch, blocks, unimix, free_nats | 32, 8, 0.01, 1; SiLU, RMSNorm eps 1e-4 | line 91; nets.py Norm |
| imglayers, obslayers, dynlayers | 2, 1, 1 | line 91 |
| encoder, decoder | 3 layers; depth x (2, 3, 4, 4), kernel 5, max-pool; bspace 8 | lines 93-97 |
| reward, continue, policy, critic | 1, 1, 3, 3 layers; outscale 0, 1, 0.01, 0; 255 bins | lines 98-101 |
| minstd, maxstd | 0.1, 1: (max - min) sigmoid(s + 2) + min | line 100; heads.py |
| *_scale | rec 1, rew 1, con 1, dyn 1, rep 0.1, policy 1, value 1, repval 0.3 | line 86 |
| lr, eps, beta1, beta2, agc, warmup | 4e-5, 1e-20, 0.9, 0.999, 0.3, 1000 | line 87; agent.py _make_opt |
| imag_length, gamma, lam, actent, slowreg | 15, 1 - 1/333, 0.95, 3e-4, 1 | lines 105-108 |
| slow_rate | 0.02, every update; returns bootstrap from the online critic | lines 108-110 |
| retnorm_* | percentiles 5, 95, rate 0.01, scale >= 1, no debiasing | line 111 |
| batch_size, batch_length, replay_context | 16, 64, 1 | lines 10-15 |
| train_ratio | 1024 from states, 256 from pixels | lines 172, 182, 187 |
| replay_size, online_replay | 5e6, uniform with the online queue | lines 39-42 |
| envs (the run key train_envs) | 16 on DMC, 1 on Atari 100k (and elsewhere) | lines 55, 172 |

Quirks (docs/faithfulness.md): DV3-1 (the code's discrete policy ignores its unimix setting; here mixed, as
the paper says; `dreamerv3_actor_no_unimix=true` for the code's), DV3-2 (the code's evaluation samples as
training does; here the modes, `dreamerv3_eval_sample=true` for the code's), DV3-3 (BlockLinear's init reads
the fan-in of all blocks; here a block's own, `dreamerv3_block_full_fan_in=true` for the code's).
Harness deviations (DV3-4..12): float32 (the code computes in bfloat16); windows never cross an episode's
end, so the losses past a terminal are masked and an episode's first observation is trained only by the
windows that start there; the online queue tiles each episode; the seed phase acts with the policy and
lasts the run's `seed_steps`, by default the code's 1088 agent steps in whole episodes, 2048 with 16 envs
(DV3-7); its envs are its code's where the harness can be (PIXEL_FRAMES, PROTOCOL_CHANGES; DV3-9, DV3-11);
its 16 DMC envs (TRAIN_ENVS) step in turn with the updates after each env's transition, as the code's
(DV3-12).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import Tensor

from baselines.dreamerv3_acting import DreamerV3Acting
from baselines.dreamerv3_nets import RSSM, Decoder, Encoder, Head, Policy, ReturnNorm, binary_log_prob, feat
from iqrl.core.checks import require
from iqrl.core.interface import Agent, AgentConfig, AgentSpec, Part, pixel_shape
from iqrl.core.schedule import PerStep, SeedPhase
from iqrl.core.spaces import ActionSpec
from iqrl.nn.maths import lambda_return, one_hot, symexp_bins, two_hot_cross_entropy, two_hot_mean
from iqrl.nn.optim import LaProp

# configs.yaml lines 120-153 (`size*`) and 91-101 (the defaults: 200m): RSSM deter, hidden, classes; encoder
# and decoder depth; every MLP's units
SIZES: dict[str, dict[str, int]] = {
    "1m": {"deter": 512, "hidden": 64, "classes": 4, "depth": 4, "units": 64},
    "12m": {"deter": 2048, "hidden": 256, "classes": 16, "depth": 16, "units": 256},
    "25m": {"deter": 3072, "hidden": 384, "classes": 24, "depth": 24, "units": 384},
    "50m": {"deter": 4096, "hidden": 512, "classes": 32, "depth": 32, "units": 512},
    "100m": {"deter": 6144, "hidden": 768, "classes": 48, "depth": 48, "units": 768},
    "200m": {"deter": 8192, "hidden": 1024, "classes": 64, "depth": 64, "units": 1024},
    "400m": {"deter": 12288, "hidden": 1536, "classes": 96, "depth": 96, "units": 1536},
}
SIZE_KEYS = ("deter", "hidden", "classes", "depth", "units")
# configs.yaml: dmc_proprio (line 178: size1m, train_ratio 1024); dmc_vision and atari100k (lines 170, 184:
# the default size, train_ratio 256)
STATE_DEFAULTS, PIXEL_DEFAULTS = {"size": "1m", "train_ratio": 1024.0}, {"size": "200m", "train_ratio": 256.0}


@dataclass
class DreamerV3Config(AgentConfig):
    # training waits, acting, for 16 x 64 sequences of 65 steps, each env's stream yielding one per step from
    # its 65th on: 1024 + 64 agent steps for one env, 1024 + 16 x 64 for 16 (DV3-7)
    SEED_PHASE: ClassVar[SeedPhase] = SeedPhase(
        agent_steps=16 * 64,
        env_agent_steps=64,
        source="danijar/dreamerv3@e3f0224 embodied/run/train.py:24, 71-73, embodied/core/replay.py add",
    )
    # its frames (configs.yaml lines 33, 36: `size`), no stack (the RSSM's state carries the history)
    PIXEL_FRAMES: ClassVar[dict[str, int]] = {"frame_stack": 1, "image_size": 64}
    # its Atari env (configs.yaml line 33; embodied/envs/atari.py): unclipped rewards (`clip_reward: False`,
    # lines 154-155), which its symlog heads exist to learn; 0 to 30 no-op frames (`noops: 30`, lines 130-147)
    PROTOCOL_CHANGES: ClassVar[dict] = {"reward_clip": 0.0, "noop_max": 31, "noop_frames": True}
    # its envs at once: 16 (configs.yaml line 55, `run.envs`) on DMC (dmc_proprio, dmc_vision: lines 178-187
    # keep it); atari100k sets 1 (line 172); the run key train_envs (iqrl/loop/lanes.py; DV3-12)
    TRAIN_ENVS: ClassVar[dict[str, int]] = {"dmc": 16}
    # the tests' tiny sizes (two image stages: 32 x 32 frames of the pixel tests)
    TINY: ClassVar[dict] = {
        "size": "1m",
        "deter": 16,
        "hidden": 8,
        "classes": 4,
        "stoch": 4,
        "blocks": 4,
        "units": 16,
        "depth": 2,
        "mults": [2, 3],
        "bspace": 2,
        "bins": 15,
        "batch_size": 4,
        "batch_length": 4,
        "imag_length": 2,
        "train_ratio": 8.0,  # 0.5 updates per agent step at these batches
    }
    name: str = "dreamerv3"
    # --- sizes (configs.yaml lines 91-101, 120-153) ---
    # The code's model size: 1m, 12m, 25m, 50m, 100m, 200m or 400m; null: 1m from states (dmc_proprio),
    # 200m from pixels (dmc_vision, atari100k)
    size: str | None = None
    deter: int | None = None  # the RSSM's deterministic state (GRU) width; null: the size's
    hidden: int | None = None  # the RSSM's hidden layers' width; null: the size's
    classes: int | None = None  # classes of each categorical latent; null: the size's
    depth: int | None = None  # channels of the first image layer (times `mults`); null: the size's
    units: int | None = None  # width of the encoder, decoder and head MLPs; null: the size's
    stoch: int = 32  # categorical latents of the stochastic state
    blocks: int = 8  # blocks of the block-diagonal GRU (deter must be a multiple)
    unimix: float = 0.01  # share of the uniform mixed into every latent categorical
    free_nats: float = 1.0  # free bits: the KL losses are at least this (no gradient below it)
    imglayers: int = 2  # hidden layers of the prior
    obslayers: int = 1  # hidden layers of the posterior
    dynlayers: int = 1  # block-linear hidden layers of the GRU's input
    absolute: bool = False  # the posterior reads the observation's tokens alone (not the GRU state)
    rssm_outscale: float = 1.0  # init scale of the prior's and posterior's output layers
    enc_layers: int = 3  # MLP layers of the state encoder
    dec_layers: int = 3  # MLP layers of the state decoder
    mults: list[int] = field(default_factory=lambda: [2, 3, 4, 4])  # image layers' channels / depth
    kernel: int = 5  # image convolutions' kernel size
    bspace: int = 8  # blocks of the image decoder's first (block-linear) layer
    dec_outscale: float = 1.0  # init scale of the decoder's output layer
    symlog_inputs: bool = True  # the state encoder reads symlog(obs)
    rew_layers: int = 1  # hidden layers of the reward head
    con_layers: int = 1  # hidden layers of the continue head
    policy_layers: int = 3  # hidden layers of the policy
    value_layers: int = 3  # hidden layers of the critic
    bins: int = 255  # two-hot bins of reward and critic, symexp(linspace(-20, 20))
    minstd: float = 0.1  # the continuous policy's lowest std
    maxstd: float = 1.0  # the continuous policy's highest std
    policy_unimix: float = 0.01  # share of the uniform mixed into the discrete policy (DV3-1)
    policy_outscale: float = 0.01  # init scale of the policy's output layers
    # --- losses (line 86) ---
    rec_scale: float = 1.0  # weight of the reconstruction loss
    rew_scale: float = 1.0  # weight of the reward loss
    con_scale: float = 1.0  # weight of the continue loss
    dyn_scale: float = 1.0  # weight of the dynamics KL, KL(sg(posterior) || prior)
    rep_scale: float = 0.1  # weight of the representation KL, KL(posterior || sg(prior))
    policy_scale: float = 1.0  # weight of the policy loss
    value_scale: float = 1.0  # weight of the critic loss on imagined states
    repval_scale: float = 0.3  # weight of the critic loss on replayed states
    # --- actor-critic (lines 105-111) ---
    imag_length: int = 15  # H: imagined steps from each replayed state
    gamma: float = 1.0 - 1.0 / 333  # the discount, 1 - 1/horizon of the code's horizon 333
    lam: float = 0.95  # lambda of the lambda-returns
    actent: float = 3e-4  # weight of the policy's entropy bonus
    slowreg: float = 1.0  # weight of the critic's regulariser towards the slow critic
    slow_rate: float = 0.02  # EMA rate of the slow critic (every update)
    retnorm_rate: float = 0.01  # EMA rate of the return percentiles
    retnorm_limit: float = 1.0  # the return scale is at least this
    retnorm_low: float = 5.0  # lower percentile of the return scale
    retnorm_high: float = 95.0  # upper percentile of the return scale
    # --- optimizer (line 87; embodied/jax/opt.py) ---
    lr: float = 4e-5  # LaProp's learning rate
    eps: float = 1e-20  # LaProp's epsilon
    beta1: float = 0.9  # LaProp's momentum
    beta2: float = 0.999  # LaProp's second-moment decay
    agc: float = 0.3  # adaptive gradient clipping: |g| <= agc max(1e-3, |p|) per tensor (0: off)
    warmup: int = 1000  # updates of the learning rate's linear warm-up from 0
    # --- replay (lines 10-15, 39-42, 172-187) ---
    batch_size: int = 16  # windows per update
    batch_length: int = 64  # trained steps per window (the window holds one observation more)
    # replayed steps (batch_size x batch_length per update) per agent step; null: 1024 from states, 256 from
    # pixels
    train_ratio: float | None = None
    replay_context: bool = True  # start windows from the replayed state (false: from the reset state)
    online_replay: bool = True  # every new window is replayed first (the code's online queue)
    replay_size: int = 5_000_000  # the replay's FIFO capacity in transitions
    # --- quirks of the code (docs/faithfulness.md) ---
    dreamerv3_actor_no_unimix: bool = False  # DV3-1: the discrete policy without its unimix (the code)
    dreamerv3_eval_sample: bool = False  # DV3-2: evaluation samples latents and actions (the code)
    dreamerv3_block_full_fan_in: bool = False  # DV3-3: block-linear init from all blocks' fan-in (the code)

    def resolved(self, pixels: bool) -> dict:
        """The size's widths (each key's own value where set), the size and train_ratio, for states or
        pixels."""
        auto = PIXEL_DEFAULTS if pixels else STATE_DEFAULTS
        size = self.size or auto["size"]
        preset = SIZES.get(size, SIZES["200m"])
        widths = {k: preset[k] if getattr(self, k) is None else getattr(self, k) for k in SIZE_KEYS}
        ratio = auto["train_ratio"] if self.train_ratio is None else self.train_ratio
        return {**widths, "size": size, "train_ratio": ratio}

    # train_ratio counts replayed steps per agent step; an update replays batch_size x batch_length of them
    UTD_KEY: ClassVar[str] = "train_ratio"
    UTD_UNIT: ClassVar[str] = "replayed steps per agent step, batch_size x batch_length per update"

    def updates_per_agent_step(self, pixels: bool = False) -> float:
        return self.resolved(pixels)["train_ratio"] / (self.batch_size * self.batch_length)

    def utd_key_value(self, updates_per_agent_step: float) -> float:
        return updates_per_agent_step * self.batch_size * self.batch_length

    def validate(self) -> None:
        super().validate()
        counts = ["stoch", "blocks", "kernel", "bspace", "bins", "imag_length", "batch_size"]
        counts += ["batch_length", "replay_size", "warmup"]
        layers = ["imglayers", "obslayers", "dynlayers", "enc_layers", "dec_layers", "rew_layers"]
        layers += ["con_layers", "policy_layers", "value_layers"]
        weights = ["rec_scale", "rew_scale", "con_scale", "dyn_scale", "rep_scale", "policy_scale"]
        weights += ["value_scale", "repval_scale", "actent", "slowreg", "free_nats", "agc", "eps"]
        weights += ["rssm_outscale", "dec_outscale", "policy_outscale"]
        rates = ["slow_rate", "retnorm_rate"]
        v = lambda k: getattr(self, k)  # noqa: E731
        require(
            [
                (self.size is None or self.size in SIZES, f"agent.size must be one of {', '.join(SIZES)}"),
                *[
                    (v(k) is None or v(k) >= 1, f"agent.{k} must be >= 1 or null, got {v(k)}")
                    for k in SIZE_KEYS
                ],
                *[(v(k) >= 1, f"agent.{k} must be >= 1, got {v(k)}") for k in counts if k != "warmup"],
                *[(v(k) >= 0, f"agent.{k} must be >= 0, got {v(k)}") for k in [*layers, *weights, "warmup"]],
                *[(0.0 < v(k) <= 1.0, f"agent.{k} must be in (0, 1], got {v(k)}") for k in rates],
                *[
                    (0.0 <= v(k) < 1.0, f"agent.{k} must be in [0, 1), got {v(k)}")
                    for k in ("unimix", "policy_unimix")
                ],
                (0.0 <= self.lam <= 1.0, f"agent.lam must be in [0, 1], got {self.lam}"),
                (0.0 < self.gamma <= 1.0, f"agent.gamma must be in (0, 1], got {self.gamma}"),
                (self.lr > 0, f"agent.lr must be > 0, got {self.lr}"),
                (
                    0.0 <= self.beta1 < 1.0 and 0.0 <= self.beta2 < 1.0,
                    "agent.beta1 and agent.beta2 must be in [0, 1)",
                ),
                (
                    0.0 < self.minstd <= self.maxstd,
                    "agent.minstd and agent.maxstd must satisfy 0 < minstd <= maxstd",
                ),
                (self.bins >= 2, f"agent.bins must be >= 2, got {self.bins}"),
                (self.batch_length >= 2, f"agent.batch_length must be >= 2, got {self.batch_length}"),
                (self.kernel % 2 == 1, f"agent.kernel must be odd ('same' padding), got {self.kernel}"),
                (
                    len(self.mults) >= 1 and all(m >= 1 for m in self.mults),
                    f"agent.mults must be a non-empty list of positive multipliers, got {list(self.mults)}",
                ),
                (
                    0.0 <= self.retnorm_low < self.retnorm_high <= 100.0,
                    "agent.retnorm_low and agent.retnorm_high must satisfy 0 <= low < high <= 100",
                ),
                (
                    self.train_ratio is None or self.train_ratio > 0,
                    f"agent.train_ratio must be > 0 or null, got {self.train_ratio}",
                ),
            ]
        )
        deters = {self.resolved(pixels)["deter"] for pixels in (False, True)}
        bad = [f"agent.deter ({d}) must be a multiple of agent.blocks ({self.blocks})" for d in deters]
        require([(d % self.blocks == 0, msg) for d, msg in zip(deters, bad)])

    def validate_pixels(self, image_size: int) -> None:
        """The code's image encoder halves the frames once per entry of `mults` down to 3..16 pixels
        (rssm.py Encoder); its decoder's first layer splits deter and the last depth into `bspace` blocks."""
        n, r = len(self.mults), self.resolved(True)
        side = image_size // 2**n
        require(
            [
                (
                    image_size % 2**n == 0 and 3 <= side <= 16,
                    f"image_size {image_size} must be a multiple of {2**n} in {2**n * 3}..{2**n * 16} for "
                    f"DreamerV3's {n} image stages (agent.mults; the code's frames: image_size=64)",
                ),
                (
                    r["deter"] % self.bspace == 0 and (r["depth"] * self.mults[-1]) % self.bspace == 0,
                    f"agent.deter ({r['deter']}) and the last image depth ({r['depth'] * self.mults[-1]}) "
                    f"must be multiples of agent.bspace ({self.bspace})",
                ),
            ]
        )


class DreamerV3(DreamerV3Acting, Agent):
    ACTION_SPACES = ("box", "discrete")
    evaluates_beside = False  # evaluation carries a recurrent state of its own (`carry[False]`)
    PIXELS = True
    STATE_OBJECTS = (
        "encoder",
        "rssm",
        "decoder",
        "reward_head",
        "cont_head",
        "policy",
        "value",
        "slow_value",
        "retnorm",
        "optim",
    )
    STATE_VALUES = ("obs_count",)
    TRANSFER_PARTS = {
        "representation": Part(
            ("encoder", "rssm", "decoder", "reward_head", "cont_head"),
            keys=("unimix", "bins", "symlog_inputs"),
        ),
        "actor": Part(("policy",), keys=("minstd", "maxstd")),
        "critic": Part(("value", "slow_value", "retnorm"), keys=("bins",)),
        "optimizers": Part(("optim",)),
    }

    def __init__(
        self, cfg: DreamerV3Config, obs_dim, act_dim: int, device, seed: int, action_spec: ActionSpec
    ):
        super().__init__(cfg, device, seed)
        pixels = pixel_shape(obs_dim)
        obs_shape = pixels if pixels else (int(obs_dim),)
        r = cfg.resolved(pixels is not None)
        self.size = r["size"]
        self.discrete, self.act_dim = action_spec.is_discrete, act_dim
        self.context_dim = r["deter"] + cfg.stoch * r["classes"]
        # updates per agent step: train_ratio replayed steps of batch_size x batch_length each (train.py)
        self.spec = AgentSpec(
            seq_len=cfg.batch_length,
            batch_size=cfg.batch_size,
            updates_per_agent_step=cfg.updates_per_agent_step(pixels is not None),
            warmup_with_policy=True,  # the code acts with its policy from the first step (train.py)
            replay_capacity=cfg.replay_size,
            context_dim=self.context_dim if cfg.replay_context else 0,
            context_dtype=torch.bfloat16,  # the code's entries are its compute dtype's values
            online_replay=cfg.online_replay,
            # the memory estimate's activations: imagination runs (L + 1) B starts for H + 1 steps through the
            # dynamics and every head
            network_samples=dict.fromkeys(
                ("rssm", "reward_head", "cont_head", "policy", "value", "slow_value"),
                (cfg.batch_length + 1) * cfg.batch_size * (cfg.imag_length + 1),
            ),
        )
        self.schedule = PerStep()
        sizes = dataclasses.replace(cfg, **{k: r[k] for k in SIZE_KEYS})  # the nets read the resolved widths
        self.encoder = Encoder(sizes, obs_shape)
        self.rssm = RSSM(sizes, act_dim, self.encoder.out_dim)
        stoch_flat, F = cfg.stoch * r["classes"], self.context_dim
        self.decoder = Decoder(sizes, obs_shape, r["deter"], stoch_flat)
        units = r["units"]
        self.reward_head = Head(F, cfg.rew_layers, units, (cfg.bins,), 0.0)
        self.cont_head = Head(F, cfg.con_layers, units, (1,), 1.0)
        self.policy = Policy(F, cfg.policy_layers, units, act_dim, self.discrete, cfg)
        self.value = Head(F, cfg.value_layers, units, (cfg.bins,), 0.0)
        self.slow_value = Head(F, cfg.value_layers, units, (cfg.bins,), 0.0)
        self.slow_value.load_state_dict(self.value.state_dict())  # the slow critic starts as the critic
        self.slow_value.requires_grad_(False)
        self.retnorm = ReturnNorm(cfg.retnorm_rate, cfg.retnorm_limit, cfg.retnorm_low, cfg.retnorm_high)
        nets = [getattr(self, k) for k in self.STATE_OBJECTS[:-1]]
        for m in nets:
            m.to(self.device)
        self.bins = symexp_bins(cfg.bins, device=self.device)
        # one optimizer over every network but the slow critic, one loss (agent.py: Agent.__init__ `self.opt`)
        self.optim = LaProp(
            [p for m in nets[:7] for p in m.parameters()],
            lr=cfg.lr,
            betas=(cfg.beta1, cfg.beta2),
            eps=cfg.eps,
            agc=cfg.agc,
            warmup=cfg.warmup,
        )
        self.S, self.C, self.D = cfg.stoch, r["classes"], r["deter"]
        self.obs_shape = obs_shape
        self.discount = cfg.gamma
        # acting: a generator per mode (training, evaluation) apart from the updates', each mode's carried
        # state (h, z, previous action; None: an episode starts) and, from training acts, the contexts not
        # yet written into the replay
        self.init_act_generators(seed)
        self.carry: dict[bool, tuple[Tensor, Tensor, Tensor] | None] = {True: None, False: None}
        self.obs_count = 0  # training observations seen (`observe`): the replay's index of the next one
        self.pending: list[tuple[Tensor, Tensor]] = []  # (stored index [1], context [1, F]) of acted ones
        # train_envs > 1: the training carry and observation count of each env but the current one
        self.other_envs: dict[int, tuple] = {}

    # ------------------------------------------------------------------ the update
    def embed(self, action: Tensor) -> Tensor:
        """Replayed actions as the RSSM reads them: a box's as they are, discrete indices one-hot."""
        return one_hot(action, self.act_dim) if self.discrete else action

    def loss_draws(self, B: int) -> dict:
        """The update's draws: uniforms of the posterior samples [L + 1, B, S] and of the imagined prior
        samples [H, N, S], and the policy's draws [H + 1, N(, A)], N = (L + 1) B starts."""
        c, g, dev = self.cfg, self.generator, self.device
        L1, H = c.batch_length + 1, c.imag_length
        N = L1 * B
        shape = (H + 1, N) if self.discrete else (H + 1, N, self.act_dim)
        return {
            "u_post": torch.rand(L1, B, self.S, generator=g, device=dev),
            "u_imag": torch.rand(H, N, self.S, generator=g, device=dev),
            "policy_draws": (torch.rand if self.discrete else torch.randn)(shape, generator=g, device=dev),
        }

    def start(self, tokens0: Tensor, context: Tensor, has_context: Tensor, u0: Tensor):
        """The window's first step: the posterior of o_t from the reset state (h, z, a = 0), replaced by the
        replayed context [B, F] where there is one (`_apply_replay_context`). Returns (h, z, logits)."""
        B = tokens0.shape[0]
        zeros = tokens0.new_zeros
        reset = torch.ones(B, dtype=torch.bool, device=tokens0.device)
        act = zeros(B, self.act_dim)
        deter, stoch, logits = self.rssm.observe_step(
            zeros(B, self.D), zeros(B, self.S, self.C), act, tokens0, reset, u0
        )
        keep = has_context.unsqueeze(-1)
        ctx_deter, ctx_stoch = context.split([self.D, self.S * self.C], -1)
        deter = torch.where(keep, ctx_deter, deter)
        stoch = torch.where(keep.unsqueeze(-1), ctx_stoch.unflatten(-1, (self.S, self.C)), stoch)
        return deter, stoch, logits

    def imagine(self, deter: Tensor, stoch: Tensor, u_imag: Tensor, policy_draws: Tensor):
        """H prior steps under policy samples from the starts (h, z) [N, ...] (`RSSM.imagine`, then the last
        state's action: `Agent.loss`): features [H + 1, N, F], the actions taken at them [H + 1, N(, A)]."""
        feats, acts = [], []
        for h in range(u_imag.shape[0] + 1):
            f = feat(deter, stoch)
            rssm_action, action = self.policy.sample(f, policy_draws[h])
            feats.append(f)
            acts.append(action)
            if h < u_imag.shape[0]:
                deter, stoch = self.rssm.imagine_step(deter, stoch, rssm_action, u_imag[h])
        return torch.stack(feats), torch.stack(acts)

    def mean(self, head, f: Tensor) -> Tensor:
        """A two-hot head's expected value [...] (symmetric sum: exactly 0 at init)."""
        return two_hot_mean(head(f)[0], self.bins)

    def loss(self, obs, actions, reward, terminal, valid, context, has_context, u_post, u_imag, policy_draws):
        """The whole loss (`Agent.loss`), time-major: obs [L + 1, B, ...] (o_t .. o_{t+L}), actions [L, B, A]
        (embedded), reward, terminal, valid [L, B] (of the transitions into o_{t+1} .. o_{t+L}), context
        [B, F], has_context [B]. Returns (loss, (h [L + 1, B, D], z [L + 1, B, S, C], metrics))."""
        c = self.cfg
        L1, B = obs.shape[:2]
        # 1-2. the posterior over the window from its start, and the world model's losses
        tokens = self.encoder(obs)
        d0, s0, post0 = self.start(tokens[0], context, has_context, u_post[0])
        no_reset = torch.zeros(L1 - 1, B, dtype=torch.bool, device=obs.device)
        deter, stoch, post = self.rssm.observe(d0, s0, actions, tokens[1:], no_reset, u_post[1:])
        deter, stoch, post = (torch.cat([x0[None], x]) for x0, x in ((d0, deter), (s0, stoch), (post0, post)))
        f = feat(deter, stoch)
        zero = reward.new_zeros(1, B)
        rew_t, term_t = torch.cat([zero, reward]), torch.cat([zero, terminal])
        w = torch.cat([(~has_context).float()[None], valid])  # the trained steps: step 0 from the reset only
        n = B * (L1 - 1)  # the code's trained steps per batch, B x batch_length
        dyn, rep = self.rssm.kl_losses(post, self.rssm.prior(deter))
        con_target = (1.0 - term_t) * self.discount  # contdisc
        wm = {
            "rec": self.decoder.loss(self.decoder(deter, stoch), obs),
            "rew": two_hot_cross_entropy(self.reward_head(f)[0], rew_t, self.bins),
            "con": -binary_log_prob(self.cont_head(f)[0].squeeze(-1), con_target),
            "dyn": dyn,
            "rep": rep,
        }
        losses = {k: (w * v).sum() / n for k, v in wm.items()}
        # 3. imagination from every posterior state (no gradient reaches the world model through it)
        starts = w.flatten()
        with torch.no_grad():
            feats, acts = self.imagine(
                deter.detach().flatten(0, 1), stoch.detach().flatten(0, 1), u_imag, policy_draws
            )
            rew = self.mean(self.reward_head, feats)
            con = torch.sigmoid(self.cont_head(feats)[0].squeeze(-1))
            val, slow = self.mean(self.value, feats), self.mean(self.slow_value, feats)
            weight = torch.cumprod(con, 0)  # disc = 1 with contdisc
            ret = lambda_return(torch.zeros_like(con).T, (1.0 - con).T, rew.T, val.T, 1.0, c.lam).T  # [H, N]
        scale = self.retnorm.update(ret)
        adv = (ret - val[:-1]) / scale
        logp, ent = self.policy.log_prob_entropy(feats[:-1], acts[:-1])
        policy = weight[:-1] * -(logp * adv + c.actent * ent)
        v_logits = self.value(feats[:-1])[0]
        v_loss = two_hot_cross_entropy(v_logits, ret, self.bins)
        v_loss = v_loss + c.slowreg * two_hot_cross_entropy(v_logits, slow[:-1], self.bins)
        losses["policy"] = (policy.mean(0) * starts).sum() / n
        losses["value"] = ((weight[:-1] * v_loss).mean(0) * starts).sum() / n
        # 4. the critic on the replayed states: true rewards, bootstrapped from the imagined returns
        with torch.no_grad():
            boot = ret[0].reshape(L1, B)
            rep_ret = lambda_return(term_t.T, term_t.T, rew_t.T, boot.T, self.discount, c.lam).T  # [L, B]
            rep_slow = self.mean(self.slow_value, f[:-1])
        r_logits = self.value(f[:-1])[0]  # gradient into the world model (repval_grad)
        r_loss = two_hot_cross_entropy(r_logits, rep_ret, self.bins)
        r_loss = r_loss + c.slowreg * two_hot_cross_entropy(r_logits, rep_slow, self.bins)
        losses["repval"] = (w[:-1] * (1.0 - term_t[:-1]) * r_loss).sum() / (B * max(L1 - 2, 1))
        total = sum(getattr(c, f"{k}_scale") * v for k, v in losses.items())
        # the critic's loss is every agent's q_loss in train.csv
        metrics = {f"{'q' if k == 'value' else k}_loss": v for k, v in losses.items()}
        metrics.update(policy_entropy=ent.mean(), return_scale=scale, imagined_return=ret.mean())
        return total, (deter.detach(), stoch.detach(), metrics)

    def update(self, replay, step: int) -> dict:
        c, u = self.cfg, self.updater
        contexts = getattr(replay, "contexts", None) is not None
        self.flush_contexts(replay if contexts else None)
        batch = replay.sample(c.batch_size)
        B = len(batch)
        tm = lambda x: x.transpose(0, 1)  # noqa: E731 (time-major, as the code's scans)
        context = batch.context if contexts else batch.reward.new_zeros(B, self.context_dim)
        has_context = batch.has_context if contexts else torch.zeros(B, dtype=torch.bool, device=self.device)
        out = u.step(
            self.loss,
            tm(batch.obs),
            self.embed(tm(batch.action)),
            tm(batch.reward).float(),
            tm(batch.terminal).float(),
            tm(batch.valid).float(),
            context,
            has_context,
            opt=self.optim,
            **self.loss_draws(B),
        )
        u.ema(self.slow_value, self.value, c.slow_rate)  # after the step (`Agent.train`: slowval.update)
        deter, stoch, metrics = out.aux
        if contexts:  # the trained steps' new states back into the replay (`outs['replay']`)
            ctx = feat(deter, stoch)[1:].transpose(0, 1)  # [B, L, F]: a later window's write wins
            replay.write_context(batch.obs_index[:, 1:], ctx, keep=batch.valid.bool())
        return {"loss": out.loss, **metrics}

    def flush_contexts(self, replay) -> None:
        """The contexts of the training acts since the last update into the replay (none without one)."""
        if self.pending and replay is not None:
            index, values = (torch.cat(x) for x in zip(*self.pending))
            replay.write_context(index, values)
        self.pending = []
