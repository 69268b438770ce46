"""The run config: its keys (`RunConfig`, a stable contract for sweeps and scripts), the one error a bad
config raises, and what a run reads off it (observation, perturbations, the YAML of config.yaml)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from iqrl.core import registry
from iqrl.envs.make import Observation
from iqrl.envs.perturb import Perturbations
from iqrl.envs.tasks import AtariProtocol, Suite, atari_protocol


class ConfigError(ValueError):
    """A bad run configuration; the message is one line meant for the user."""


DEFAULT_STEPS = 1_000_000  # a run's env-step budget where neither the run nor its suite's protocol gives one


@dataclass
class RunConfig:
    """Top-level run keys (a stable contract for sweeps and scripts). Step counts are env steps."""

    agent: Any = None  # the agent's config dataclass; `agent=NAME` on the command line picks it
    # dm_control `domain-task`, or suite:name for another suite (gym:Hopper-v4, metaworld:reach,
    # myosuite:myoHandReachFixed-v0; iqrl.envs.tasks.SUITES, docs/suites.md), or a list of tasks with the same
    # observation and action spaces for one multi-task run (`task=[walker-stand,walker-walk]`;
    # docs/transfer.md). Any: OmegaConf has no str | list.
    task: Any = "walker-walk"
    seed: int = 1  # the run's seed: the agent's generator, the envs and the seed-phase actions derive from it
    # env-step budget; None = the suite protocol's (protocol=atari100k: 400000, its 100k agent steps),
    # else 1000000 (DEFAULT_STEPS)
    steps: int | None = None
    out: str = ""  # run folder; default runs/<agent>/<task>/seed<seed>
    # env steps of seed (warm-up) episodes before learning starts; None = the agent's code's seed phase at the
    # run's action repeat and episode length (iqrl.core.registry.seed_phase: DR.Q and MR.Q 10,000 agent steps,
    # TD-MPC2 max(1000 agent steps, 5 episodes), ...; the harness's 10,000 env steps for agents without one)
    seed_steps: int | None = None
    updates_per_step: float | None = None  # gradient updates per env step; None = the agent's default
    # Transitions (agent steps) the learner samples from, newest first (a FIFO); None = the agent's
    # default (AgentSpec.replay_capacity: its code's, most unbounded; docs/configuration.md has each agent's),
    # 0 = unbounded.
    replay_capacity: int | None = None
    eval_every: int = 10_000  # env steps between evaluations (eval.csv rows)
    eval_episodes: int = 10  # episodes per evaluation
    # true: the evaluation episodes side by side, one `act` call per step for all of them
    # (iqrl.loop.evaluation.eval_batch)
    eval_batched: bool = True
    # each evaluation but the last runs in a thread beside training, on a snapshot of the agent; the
    # same numbers (iqrl.loop.beside). Planners and recurrent agents evaluate in line.
    eval_beside: bool = True
    # true: each evaluation starts from the run's seed and its env step alone (its episodes' initial states,
    # the agent's draws while evaluating: iqrl.loop.parts.RunParts.seed_evaluation), so its return is the same
    # for every eval_every and for a re-evaluation of its checkpoint; false (older versions): the evaluation
    # env's stream of initial states runs on from one evaluation to the next
    eval_reseed: bool = True
    diag_every: int = 10_000  # train.csv rows: metrics, latent rank, active codebook, throughput
    # false: train.csv rows without the representation diagnostics (latent rank, srank, dormant units,
    # codebook perplexity, k-step prediction error: docs/diagnostics.md); training is the same either way
    diagnostics: bool = True
    checkpoint_every: int = 50_000  # env steps between checkpoints
    device: str = "cpu"  # cpu | cuda | cuda:N | auto
    # fp32 | bf16 | tf32 (CUDA): the gradient updates' arithmetic (iqrl.loop.device.UpdatePrecision)
    precision: str = "fp32"
    compile: bool = False  # torch.compile the pieces of the update (Agent.compile; docs/performance.md)
    cudagraphs: bool = False  # with compile: replay them as CUDA graphs (CUDA only)
    # env steps per episode, and env steps per agent step; None = the suite's (DMC 1000 and 2, Gym 1000
    # and 1, Meta-World 200 and 2, MyoSuite 100 and 1: iqrl.envs.tasks.SUITES)
    episode_length: int | None = None
    action_repeat: int | None = None  # env steps per agent step; None = the suite's (see episode_length)
    sweep: str = ""  # set by sweeps: which sweep and variant a run belongs to
    variant: str = "default"  # set by sweeps: the variant of the sweep
    overrides: list[str] = field(default_factory=list)  # the variant's overrides, for analysis
    # Trackers beside eval.csv/train.csv (iqrl.runfolder.loggers): csv (always written), tensorboard, wandb.
    logger: list[str] = field(default_factory=lambda: ["csv"])
    video_every: int = 0  # env steps between evaluation videos (RUN/videos/, iqrl.envs.render); 0 = none
    # Stochastic and distracting environments, all off by default (iqrl.envs.perturb.Perturbations;
    # docs/configuration.md).
    obs_noise: float = 0.0  # std of Gaussian noise on every observation entry
    action_noise: float = 0.0  # std of Gaussian noise on the executed action
    sticky_actions: float = 0.0  # probability of executing the previous action again, per agent step
    distractor_dims: int = 0  # observation entries unrelated to the task
    distractor: str = "noise"  # noise (iid N(0, 1)) | signal (sinusoids drawn per episode)
    perturb_eval: bool = True  # false: evaluation without the noises and sticky actions (distractors stay)
    # What the agent sees (iqrl.envs.dmc.PixelEnv; docs/pixels.md): state vectors, or pixels: the last
    # frame_stack RGB frames of image_size x image_size, rendered after each agent step (Atari: grayscale
    # screens, docs/suites.md). None = the suite's (state; Atari: pixels, 4 frames).
    obs: str | None = None  # state | pixels
    # pixels: frame width and height; None = the agent's code's (AgentConfig.PIXEL_FRAMES: DreamerV3 64),
    # else 84 (SAC+AE, DrQ, TACO, MR.Q's Atari)
    image_size: int | None = None
    # pixels: frames per observation; None = the agent's code's (AgentConfig.PIXEL_FRAMES: DreamerV3 1),
    # else the suite's (SAC+AE, DrQ, TACO: 3; Atari: 4)
    frame_stack: int | None = None
    # The suite's protocol (iqrl.envs.tasks.Suite.protocols): Atari's mrq (default), mrq-code, atari100k or
    # atari100k-ale-cap (iqrl.envs.tasks.ATARI_PROTOCOLS); `default` elsewhere. None = the suite's first.
    protocol: str | None = None
    # Changes to the Atari protocol's settings (iqrl.envs.tasks.AtariProtocol's fields: {reward_clip: 0}):
    # None = those the agent's code makes (AgentConfig.PROTOCOL_CHANGES: DreamerV3 learns from unclipped
    # rewards after no-op starts of 0 to 30 single frames), {} = the protocol as every agent runs it. Other
    # suites: {}.
    protocol_changes: Any = None
    # Start from parts of another run (iqrl.loop.transfer; docs/transfer.md): its run folder (its latest
    # checkpoint), RUN@<env step> (that checkpoint generation), or a checkpoint file; "" = from scratch.
    init_from: str = ""
    init_parts: list[str] = field(default_factory=lambda: ["representation"])  # the parts init_from loads
    freeze: list[str] = field(default_factory=list)  # parts kept fixed: no optimizer step, no target update
    # GiB the run may take on its device; None = what the device has free when the run starts (CPU: the
    # available RAM; CUDA: the device's free memory). A run whose estimate exceeds it is refused before
    # anything is allocated (iqrl.loop.memory; docs/configuration.md).
    memory_limit_gb: float | None = None
    # true: the training env in a worker process of its own (iqrl.envs.workers), bitwise the in-process env,
    # its steps through shared memory. The K-seed mode turns it on for K > 1 seeds where the process may use
    # 2 cores or more, unless given: an env's Python holds the interpreter lock, so K envs in one process
    # share one core's worth of it (iqrl.multiseed.runs.workers_help; docs/performance.md). With false, a
    # K-seed group of DMC runs steps its envs together in its own process, their physics side by side on
    # threads where that pays (iqrl.multiseed.envs); the other suites' step in the seeds' threads.
    env_workers: bool = False
    # The K-seed mode's seeds in this many groups (cohorts) of K / cohorts seeds each, in one process, each
    # group stepping on its own: while one cohort's vectorised update runs, another's envs step, so collection
    # hides behind updates across seeds (iqrl.multiseed.runs; docs/performance.md). A seed computes as in a
    # group of its cohort's seeds (its slot in it: meta.slot). 1 = one group of all K; a single run takes 1.
    cohorts: int = 1
    # Training envs collected from at once, each with its own episodes, into one replay (iqrl/loop/lanes.py):
    # they take agent steps in turn, every env step of each counts toward `steps` and the update rate. None =
    # the agent's code's on the run's suite (AgentConfig.TRAIN_ENVS: DreamerV3 16 on DMC), else 1.
    train_envs: int | None = None


TOP_LEVEL_KEYS = [f.name for f in fields(RunConfig)]


# pixels: the frame size (the run key image_size) of agents whose code gives none (AgentConfig.PIXEL_FRAMES)
DEFAULT_IMAGE_SIZE = 84

# The gradient updates one run may ask for (steps x updates_per_step): 10 to 100 times the longest schedules
# published for the agents here (BRO's UTD 10 over 1M DMC steps: 1e7; DQN's 50M agent steps at 1 update per
# 4: 1.25e7), and some 12 days at 1 ms per update. More is a slip of the exponent (updates_per_step=1e6).
MAX_UPDATES = 10**9


def observation(run: RunConfig) -> Observation:
    """The run's observation settings (iqrl.envs.make.make_env)."""
    return Observation(run.obs, run.image_size, run.frame_stack)


def pixel_defaults(name: str, suite: Suite, obs: str) -> dict[str, int]:
    """The frame_stack and image_size a run of agent `name` on a task of `suite` takes where it leaves them
    unset: with obs=pixels the agent's code's where it has them (AgentConfig.PIXEL_FRAMES), else (and with
    obs=state, where they are inert, as configs have always recorded them) the suite's frame stack and 84."""
    own = registry.config_class(name).PIXEL_FRAMES if obs == "pixels" else {}
    return {"frame_stack": suite.frame_stack, "image_size": DEFAULT_IMAGE_SIZE, **own}


def protocol(run: RunConfig) -> str | AtariProtocol:
    """The run's protocol (iqrl.envs.make.make_env): its name, or with protocol_changes the Atari protocol's
    settings changed."""
    return atari_protocol(run.protocol, run.protocol_changes) if run.protocol_changes else run.protocol


def to_yaml_dict(run: RunConfig) -> dict:
    """Plain dict of the resolved config (what config.yaml holds, before `meta`): its fields in declaration
    order, the agent's nested. The values are plain YAML types already (build_config made them from
    OmegaConf's tree; tests/test_config_parts.py holds this to OmegaConf's own conversion), so no second
    OmegaConf tree is built: 0.15 ms against 10 ms per config, paid per existing run folder by a dry sweep."""
    return asdict(run)


def perturbations(run: RunConfig, evaluation: bool = False) -> Perturbations:
    """The env perturbations of a run; for evaluation with perturb_eval=false only the distractors (the
    observation keeps its width)."""
    if evaluation and not run.perturb_eval:
        return Perturbations(distractor_dims=run.distractor_dims, distractor=run.distractor)
    return Perturbations(
        run.obs_noise, run.action_noise, run.sticky_actions, run.distractor_dims, run.distractor
    )
