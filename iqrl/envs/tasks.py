"""Task names, suites, task groups and the evaluation env's seed: what sweeps and analysis need about tasks.

A task names its suite (docs/suites.md): `walker-walk` (no prefix) is DeepMind Control, `gym:Hopper-v4` a
Gymnasium MuJoCo env, `metaworld:reach` a Meta-World task, `myosuite:myoHandReachFixed-v0` a MyoSuite env.

Light on purpose: `slurm/` (on login nodes) and `analysis/` import it without dm_control or torch, so it
imports nothing. The environments themselves are iqrl/envs/make.py.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Suite:
    """How the harness runs a suite's tasks by default (the run keys action_repeat and episode_length, in
    env steps) and what it needs installed. Sources per suite in docs/suites.md."""

    example: str  # a task name, for messages
    action_repeat: int
    episode_length: int  # env steps
    max_episode_length: int  # the longest episode the suite's envs allow, env steps
    package: str = ""  # the module its envs import ("" = a core dependency)
    extra: str = ""  # the pyproject extra that installs it
    success: bool = False  # whether its envs report success (eval.csv's `success` column)
    actions: str = "box"  # the kind of its action spaces (iqrl.core.spaces): "box" or "discrete"
    observations: tuple[str, ...] = ("state",)  # the run key obs: its default first
    frame_stack: int = 3  # obs=pixels: frames per observation by default
    frame_channels: int = 3  # obs=pixels: channels of one frame (RGB; Atari's screens are grayscale)
    protocols: tuple[str, ...] = ("default",)  # the run key protocol: its default first
    # Whether evaluation episodes side by side reproduce the sequential loop's (iqrl.loop.evaluation): not
    # where the env draws at every step (Atari's sticky actions and evaluation epsilon).
    batched_eval: bool = True


@dataclass(frozen=True)
class AtariProtocol:
    """The settings of an Atari protocol (the run key `protocol`; iqrl/envs/atari.py, docs/suites.md), beside
    the run keys with suite defaults: action_repeat 4 (frame skip), episode_length 108000 frames, image_size
    84, frame_stack 4."""

    sticky_actions: float  # ALE's repeat_action_probability (per frame)
    terminal_on_life_loss: bool  # a life lost ends the training env's episode (never the evaluation env's)
    eval_epsilon: float  # probability of a uniformly random action per agent step in the evaluation env
    # MR.Q's code draws its evaluation epsilon in the training env too (its Env hands the builtin `eval`,
    # always true, to the preprocessing as `eval_env`): protocol mrq-code
    eval_epsilon_in_training: bool = False
    # No-op starts: a new game (not the next life of one), in the training and the evaluation env alike, first
    # plays n ~ U{0, ..., noop_max - 1} agent steps of action 0 (NOOP), their rewards dropped and their frames
    # outside the episode and the env-step budget; a game that ends during them is reset (n is not drawn
    # again). 0: none.
    noop_max: int = 0
    # Each no-op start a single frame instead of an agent step of `action_repeat` frames, the episode's first
    # observation the last of them alone (DreamerV3's code: embodied/envs/atari.py `Atari._reset`).
    noop_frames: bool = False
    # ALE's own cap on a game (its max_num_frames_per_episode): frames since the game's reset, no-op starts
    # included; a truncation. 0: none (the run key episode_length alone caps an episode).
    max_game_frames: int = 0
    # The training env's rewards as the learner sees them: each agent step's summed reward clipped to [-c, c]
    # (Step.learner_reward); the returns reported stay unclipped, the evaluation env's too. 0: unclipped.
    reward_clip: float = 0.0
    # An episode's frame history (a new game's, or the next life's where a lost life ends the episode) starts
    # as zeros with its first frame last, instead of copies of its first frame; the replay rebuilds the stacks
    # so (iqrl.core.replay.SequenceReplay's zero_history).
    zero_history: bool = False
    # The protocol's budget in env steps (frames), the default of a run's `steps`; 0: none (the harness's).
    steps: int = 0
    # The frames of the protocol's agent step (the run's action_repeat), where its budget counts agent steps:
    # Atari 100k is 100k agent steps of 4 frames; 0: any.
    budget_repeat: int = 0


# MR.Q: AtariHyperparameters in MRQ/env_preprocessing.py (facebookresearch/MRQ at 8a44a7d; max_noops 0).
# Atari 100k: as BBF's scores were made, on dopamine-rl 4.0.5 (google/dopamine at a34615c, the commit that set
# version 4.0.5): its Runner clips every agent's training rewards to [-1, 1] and sums the unclipped ones into
# the episode's return (dopamine/discrete_domains/run_experiment.py:174, 363-370) and caps a game at 27,000
# agent steps = 108,000 frames (run_experiment.py:173, 372-373; atari_lib.py:97-101 strips Gym's 100,000-frame
# TimeLimit for it); its agents start an episode's state as zeros with the first frame last
# (dopamine/jax/agents/dqn/dqn_agent.py:331, 368-370, 385-386, 397-398; full_rainbow/full_rainbow_agent.py:
# 365-367), also after a life lost (run_experiment.py:376-380). Dopamine's DrQ(eps) config for the rest (at
# 5873f54: dopamine/labs/atari_100k/configs/DrQ_eps.gin; atari_100k_runner.py, DataEfficientAtariRunner:
# max_noops=30 drawn by jax.random.randint(rng, (), 0, 30), i.e. 0 to 29, each an env.step(0)).
# atari100k-ale-cap adds the later Dopamine's ALE cap of 100,000 frames on a game (atari_lib.py at 5873f54,
# create_atari_environment: max_num_frames_per_episode=100_000). docs/suites.md cites each setting.
ATARI_100K = dict(
    sticky_actions=0.0,
    terminal_on_life_loss=True,
    eval_epsilon=1e-3,
    noop_max=30,
    reward_clip=1.0,
    zero_history=True,
    steps=400_000,  # 100k agent steps of 4 frames (Kaiser et al. 2019; Dopamine's 10 x 10k training steps)
    budget_repeat=4,
)
ATARI_PROTOCOLS: dict[str, AtariProtocol] = {
    "mrq": AtariProtocol(sticky_actions=0.25, terminal_on_life_loss=False, eval_epsilon=1e-3),
    "mrq-code": AtariProtocol(0.25, False, 1e-3, eval_epsilon_in_training=True),
    "atari100k": AtariProtocol(**ATARI_100K),
    "atari100k-ale-cap": AtariProtocol(**ATARI_100K, max_game_frames=100_000),
}


def protocol_steps(task: str, protocol: str | None) -> int:
    """The env-step budget of `task`'s suite protocol (AtariProtocol.steps: atari100k's 400,000 frames); 0
    where the protocol has none (or is none of the suite's: the config refuses it)."""
    known = ATARI_PROTOCOLS.get(protocol or "mrq")
    return known.steps if known is not None and split_task(task)[0] == "atari" else 0


def atari_protocol(name: str | None, changes: dict | None = None) -> AtariProtocol:
    """The Atari protocol `name` (None: the suite's default, mrq) with `changes` to its settings (the run key
    protocol_changes)."""
    return dataclasses.replace(ATARI_PROTOCOLS[name or "mrq"], **(changes or {}))


def protocol_changes(task: str, protocol: str | None, changes: dict) -> dict:
    """Of an agent's `changes` to the Atari protocols' settings (AgentConfig.PROTOCOL_CHANGES), those that
    change `protocol` on `task`: {} on another suite's task (or a protocol Atari lacks, which the run config
    refuses), and none the protocol has already."""
    if split_task(task)[0] != "atari" or protocol not in ATARI_PROTOCOLS:
        return {}
    base = atari_protocol(protocol)
    return {k: v for k, v in changes.items() if getattr(base, k) != v}


def zero_history(task: str, protocol: str | None, changes: dict | None = None) -> bool:
    """Whether the frame stacks of `task`'s episodes start from zeros under `protocol` (AtariProtocol) with
    `changes` (the run key protocol_changes)."""
    return split_task(task)[0] == "atari" and atari_protocol(protocol, changes).zero_history


SUITES: dict[str, Suite] = {
    "dmc": Suite("walker-walk", 2, 1000, 1000, observations=("state", "pixels")),
    # TD7 and MR.Q: action repeat 1, the 1000-step time limit of Gym's MuJoCo tasks
    "gym": Suite("gym:Hopper-v4", 1, 1000, 1000, "gymnasium", "gym"),
    # DC-MPC: action repeat 2, 100 agent steps (cfgs/env/metaworld.yaml, train.py max_steps at cc2a33a)
    "metaworld": Suite("metaworld:reach", 2, 200, 500, "metaworld", "metaworld", success=True),
    # DC-MPC: action repeat 1, 100 steps (cfgs/env/myosuite.yaml at cc2a33a)
    "myosuite": Suite("myosuite:myoHandReachFixed-v0", 1, 100, 1000, "myosuite", "myosuite", success=True),
    # MR.Q's AtariHyperparameters (8a44a7d): frame skip 4, 108 000 frames per game, 4 frames of history;
    # env steps are frames
    "atari": Suite(
        "atari:Pong",
        4,
        108_000,
        108_000,
        "ale_py",
        "atari",
        actions="discrete",
        observations=("pixels",),
        frame_stack=4,
        frame_channels=1,
        protocols=tuple(ATARI_PROTOCOLS),
        batched_eval=False,
    ),
    # MiniGrid: the env's own step limit ends episodes (DoorKey-5x5: 250); episode_length caps them besides
    "minigrid": Suite(
        "minigrid:MiniGrid-DoorKey-5x5-v0",
        1,
        10_000,
        10_000,
        "minigrid",
        "minigrid",
        success=True,
        actions="discrete",
        observations=("state", "pixels"),
        frame_stack=1,
    ),
}

# Atari 100k (Kaiser et al. 2019, arXiv 1903.00374, Table 1; the games of DrQ(eps), SPR, BBF)
ATARI_26 = [
    f"atari:{g}"
    for g in (
        "Alien Amidar Assault Asterix BankHeist BattleZone Boxing Breakout ChopperCommand CrazyClimber "
        "DemonAttack Freeway Frostbite Gopher Hero Jamesbond Kangaroo Krull KungFuMaster MsPacman Pong "
        "PrivateEye Qbert RoadRunner Seaquest UpNDown"
    ).split()
]
# The 57 games of Agent57 and MR.Q (facebookresearch/MRQ at 8a44a7d, results/atari_results.txt)
ATARI_57 = [
    f"atari:{g}"
    for g in (
        "Alien Amidar Assault Asterix Asteroids Atlantis BankHeist BattleZone BeamRider Berzerk Bowling "
        "Boxing Breakout Centipede ChopperCommand CrazyClimber Defender DemonAttack DoubleDunk Enduro "
        "FishingDerby Freeway Frostbite Gopher Gravitar Hero IceHockey Jamesbond Kangaroo Krull KungFuMaster "
        "MontezumaRevenge MsPacman NameThisGame Phoenix Pitfall Pong PrivateEye Qbert Riverraid RoadRunner "
        "Robotank Seaquest Skiing Solaris SpaceInvaders StarGunner Surround Tennis TimePilot Tutankham "
        "UpNDown Venture VideoPinball WizardOfWor YarsRevenge Zaxxon"
    ).split()
]
# A small navigation family of MiniGrid (docs/suites.md): keys, doors, rooms and corridors of growing size
MINIGRID = [
    f"minigrid:MiniGrid-{g}-v0"
    for g in (
        "DoorKey-5x5",
        "DoorKey-8x8",
        "MultiRoom-N2-S4",
        "MultiRoom-N4-S5",
        "KeyCorridorS3R1",
        "KeyCorridorS3R2",
    )
]
# Named task lists a sweep's `tasks:` may use beside the DMC groups (slurm/spec.py)
TASK_LISTS: dict[str, list[str]] = {"atari26": ATARI_26, "atari57": ATARI_57, "minigrid": MINIGRID}


def split_task(task: str) -> tuple[str, str]:
    """'gym:Hopper-v4' -> ('gym', 'Hopper-v4'); a name without a prefix is DMC: 'walker-walk' -> ('dmc',
    'walker-walk'). Raises ValueError naming the suites for an unknown prefix."""
    prefix, sep, name = task.partition(":")
    if not sep:
        return "dmc", task
    if prefix in SUITES and prefix != "dmc" and not name.strip():
        raise ValueError(
            f"task {task!r} names no {prefix} task: write {SUITES[prefix].example}, no space after ':'"
        )
    if prefix not in SUITES or prefix == "dmc":
        raise ValueError(f"unknown task {task!r}; a task is {suite_list()}")
    return prefix, name


def suite_list() -> str:
    """The task forms of every suite, for messages."""
    return "a DMC domain-task (walker-walk) or one of " + ", ".join(
        f"{k}:<name> ({s.example})" for k, s in SUITES.items() if k != "dmc"
    )


def suite_of(task: str) -> Suite:
    return SUITES[split_task(task)[0]]


#: DMC's dog and humanoid tasks, the "DMC-hard" set of BRO, SimbaV2 and MR.Q (dojeon-ai/SimbaV2 at 14fafb2,
#: `scale_rl/envs/dmc.py` DMC_HARD): a group of the figures beside TASK_GROUPS, whose "hard" group (the iQRL
#: code's) also holds cartpole-swingup_sparse.
DMC_HARD: tuple[str, ...] = (
    "dog-run",
    "dog-stand",
    "dog-trot",
    "dog-walk",
    "humanoid-run",
    "humanoid-stand",
    "humanoid-walk",
)

# Task groups (the iQRL code's cfgs/env/{easy,medium,hard}.yaml; cartpole-swingup, which the final code lacks,
# sits with the easy tasks as in the earlier code). Exploration-noise decay lengths per group live in the
# agents' task YAML.
TASK_GROUPS: dict[str, list[str]] = {
    "easy": [
        "cartpole-balance",
        "cartpole-swingup",
        "ball_in_cup-catch",
        "finger-spin",
        "hopper-stand",
        "pendulum-swingup",
        "walker-stand",
        "walker-walk",
    ],
    "medium": [
        "acrobot-swingup",
        "cheetah-run",
        "finger-turn_easy",
        "finger-turn_hard",
        "hopper-hop",
        "quadruped-run",
        "quadruped-walk",
        "walker-run",
        "fish-swim",
        "fish-upright",
        "reacher-easy",
        "reacher-hard",
    ],
    "hard": [*DMC_HARD, "cartpole-swingup_sparse"],
}

# eval env seed = train seed + this (agent.official_shared_eval_seed: + 0, as the official code)
EVAL_SEED_OFFSET = 10_000


def eval_seed(seed: int, shared: bool = False) -> int:
    """The evaluation env's seed: train seed + EVAL_SEED_OFFSET, or the train seed itself when `shared`
    (`agent.official_shared_eval_seed`, docs/faithfulness.md IQ-10)."""
    return seed if shared else seed + EVAL_SEED_OFFSET


def task_list(task: str | list[str]) -> list[str]:
    """The tasks of a run's `task` key: one name, or the list of a multi-task run."""
    return [task] if isinstance(task, str) else list(task)


def task_label(task: str | list[str]) -> str:
    """A run's task(s) as one name for folders and logs: the tasks of a multi-task run joined by '+'
    (`walker-stand+walker-walk`)."""
    return "+".join(task_list(task))


def label_tasks(label: str) -> str | list[str]:
    """The `task` value a label of `task_label` stands for: one name, or the list of a multi-task run."""
    tasks = label.split("+")
    return tasks[0] if len(tasks) == 1 else tasks


def task_folder(task: str | list[str]) -> str:
    """A run's task(s) as a folder name: `task_label` with each suite prefix's `:` written `-` (`atari:Pong`
    -> `atari-Pong`), as some file systems, archive tools and Slurm paths refuse `:`. config.yaml keeps the
    task itself; `folder_task` reads a folder name back."""
    return task_label(task).replace(":", "-")


def folder_task(name: str) -> str:
    """The task label a run folder's name stands for: `task_folder`'s (`atari-Pong` -> `atari:Pong`) or the
    label itself, as folders written with `:` are named. No DMC domain is named like a suite."""

    def task(part: str) -> str:
        prefix, sep, rest = part.partition("-")
        return f"{prefix}:{rest}" if sep and prefix in SUITES and prefix != "dmc" else part

    return "+".join(task(part) for part in name.split("+"))


def task_dir(parent: Path, task: str | list[str]) -> Path:
    """The folder of a task's runs under `parent`: parent/<task_folder>, or the one an earlier version named
    with `:` (parent/<task_label>) where only that one exists, so that a rerun of its command finds and
    resumes its runs (and a seed added to them joins them: a K-seed group's seeds share one folder)."""
    new, old = parent / task_folder(task), parent / task_label(task)
    return old if old != new and old.is_dir() and not new.exists() else new


def task_group(task: str) -> str | None:
    """The DMC group of a DMC task (TASK_GROUPS); the suite's name for a task of another suite (the agents'
    task files key suite-wide overrides by it)."""
    if ":" in task:
        return split_task(task)[0]
    for group, tasks in TASK_GROUPS.items():
        if task in tasks:
            return group
    return None
