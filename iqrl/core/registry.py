"""The registry: agent names -> their class, config dataclass, preset and task-override file.

A new agent is one module, one line here and a task file in iqrl/configs (docs/extending.md);
tests/test_conformance.py runs every registered agent through the interface (iqrl/core/interface.py).
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass, field

import torch

from iqrl.core.interface import Agent
from iqrl.core.schedule import HARNESS_SEED_PHASE, SeedPhase
from iqrl.core.spaces import DISCRETE, ActionSpec, as_action_spec


@dataclass(frozen=True)
class AgentEntry:
    """How to build an agent: its class, its config dataclass, a preset and its task overrides."""

    cls: str  # "module:Class"
    config: str  # "module:ConfigDataclass"
    task_overrides: str = ""  # YAML file in iqrl/configs with per-group and per-task overrides; "": none
    preset: dict = field(default_factory=dict)  # overrides on top of the dataclass defaults
    description: str = ""
    # the preset's seed phase where its code's differs from its config class's SEED_PHASE (drq-eps: Dopamine's
    # Atari 100k config; td3-classic: the TD3 code); None: the config class's
    seed_phase: SeedPhase | None = None


REGISTRY: dict[str, AgentEntry] = {
    "iqrl": AgentEntry(
        "iqrl.agent.iqrl:IQRL",
        "iqrl.agent.config:IQRLConfig",
        "iqrl_tasks.yaml",
        description="iQRL (arXiv 2406.02696), paper intent: -cos consistency, gamma^n, cumulative mask",
    ),
    "iqrl-official": AgentEntry(
        "iqrl.agent.iqrl:IQRL",
        "iqrl.agent.config:IQRLConfig",
        "iqrl_tasks.yaml",
        preset={
            "tc_loss_sign": 1,
            "official_nstep1_gamma_bug": True,
            "official_ignore_terminal": True,
            "cumulative_mask": False,
            "reward_head_shifted_latent": True,
            "warmup_with_policy": True,
            "official_nofsq_half_width": True,
            "official_shared_eval_seed": True,
        },
        description="iQRL with the official code's quirks switched on (docs/faithfulness.md), the shared "
        "train/eval env seed included",
    ),
    "iqrl-ae": AgentEntry(
        "iqrl.agent.iqrl:IQRL",
        "iqrl.agent.config:IQRLConfig",
        "iqrl_tasks.yaml",
        preset={"use_rec_loss": True},
        description="iQRL + reconstruction decoder along the latent rollout (the paper's reconstruction "
        "ablation); agent.use_tc_loss=false gives the reconstruction-only autoencoder",
    ),
    "iqrl-sac": AgentEntry(
        "iqrl.agent.iqrl:IQRLSAC",
        "iqrl.agent.config:IQRLSACConfig",
        "iqrl_tasks.yaml",
        description="iQRL representation under a SAC actor-critic instead of TD3",
    ),
    "sac": AgentEntry(
        "baselines.sac:SAC",
        "baselines.sac:SACAgentConfig",
        "sac_tasks.yaml",
        description="SAC on raw observations (automatic temperature, twin critics)",
    ),
    "sac-ae": AgentEntry(
        "baselines.sac_ae:SACAE",
        "baselines.sac_ae:SACAEConfig",
        "sac_ae_tasks.yaml",
        description="SAC+AE (arXiv 1910.01741): SAC with a pixel autoencoder; the critic and the decoder "
        "train the encoder, the actor reads it detached (agent.use_decoder=false: SAC:pixel)",
    ),
    "td3": AgentEntry(
        "baselines.td3:TD3",
        "baselines.td3:TD3Config",
        "td3_tasks.yaml",
        description="TD3 on raw observations, as in the iQRL code (n-step, LN+Mish MLPs, sigma schedule)",
    ),
    "td3-classic": AgentEntry(
        "baselines.td3:ClassicTD3",
        "baselines.td3:TD3Config",
        "classic_tasks.yaml",
        preset={
            "mlp_dims": [256, 256],
            "init": "default",
            "nstep": 1,
            "noise_clip": 0.5,
            "expl_sigma_start": 0.1,
            "expl_sigma_end": 0.1,
        },
        description="TD3 as its paper and the TD7 / MR.Q baselines: ReLU [256, 256], no LayerNorm, constant "
        "exploration std 0.1, target-noise clip 0.5 (docs/agents.md)",
        seed_phase=SeedPhase(agent_steps=25_000, source="sfujim/TD3@34770cc main.py:41, 117"),
    ),
    "sac-classic": AgentEntry(
        "baselines.sac:ClassicSAC",
        "baselines.sac:SACAgentConfig",
        "classic_tasks.yaml",
        preset={"mlp_dims": [256, 256], "nstep": 1, "init_temperature": 1.0},
        description="SAC as its paper and the TD7 baseline: ReLU [256, 256], no LayerNorm (docs/agents.md)",
    ),
    "td7": AgentEntry(
        "baselines.td7:TD7",
        "baselines.td7:TD7Config",
        "td7_tasks.yaml",
        description="TD7 (SALE, LAP, value clipping, policy checkpoints), adapted to the DMC protocol",
    ),
    "mrq": AgentEntry(
        "baselines.mrq:MRQ",
        "baselines.mrq:MRQConfig",
        "mrq_tasks.yaml",
        description="MR.Q (model-based encoder, two-hot reward, LAP, reward-scaled TD3-like RL)",
    ),
    "dr-q": AgentEntry(
        "baselines.dr_q:DRQAgent",
        "baselines.dr_q:DRQConfig",
        "mrq_tasks.yaml",  # DR.Q's code halves the discrete noises as MR.Q's does (DRQ.py:82-85 at cc307a5)
        description="DR.Q (MR.Q's representation plus an InfoNCE term and faded prioritised replay)",
    ),
    "dqn": AgentEntry(
        "baselines.dqn:DQN",
        "baselines.dqn:DQNConfig",
        "dqn_tasks.yaml",
        description="Double DQN (arXiv 1509.06461) with the Nature CNN at Dopamine's DQN settings, Huber "
        "loss (discrete actions: Atari, MiniGrid)",
    ),
    "drq-eps": AgentEntry(
        "baselines.dqn:DQN",
        "baselines.dqn:DQNConfig",
        "dqn_tasks.yaml",
        preset={
            "nstep": 10,
            "target_update_every": 1,
            "dueling": True,
            "image_pad": 4,
            "lr": 1e-4,
            "eps_decay_steps": 5000,
            "updates_per_env_step": 0.25,
        },
        description="DrQ(eps) (arXiv 2004.13649, 2108.13264) for the Atari 100k protocol: Double DQN, "
        "n-step 10, target copied every update, dueling, random shifts, as Dopamine's DrQ_eps.gin",
        seed_phase=SeedPhase(
            agent_steps=1600, source="google/dopamine@5873f54 dopamine/labs/atari_100k/configs/DrQ_eps.gin:13"
        ),
    ),
    "tcrl": AgentEntry(
        "baselines.tcrl:TCRL",
        "baselines.tcrl:TCRLConfig",
        "tcrl_tasks.yaml",
        description="TCRL (arXiv 2306.09466): latent cosine temporal consistency + TD3-like AC on the latent",
    ),
    "taco": AgentEntry(
        "baselines.taco:TACO",
        "baselines.taco:TACOConfig",
        "taco_tasks.yaml",
        description="TACO (arXiv 2306.13229): DrQ-v2 + temporal action-driven contrastive loss (+ CURL, "
        "reward terms); pixels as the original, states with an MLP encoder",
    ),
    "dcwm": AgentEntry(
        "baselines.dcwm:DCWM",
        "baselines.dcwm:DCWMConfig",
        "dcwm_tasks.yaml",
        description="DC-MPC (arXiv 2503.00653): FSQ codebook world model, TD3 on codes, MPPI "
        "(mpc=false: DCWM-MF)",
    ),
    "tdmpc2": AgentEntry(
        "baselines.tdmpc2:TDMPC2",
        "baselines.tdmpc2:TDMPC2Config",
        "tdmpc2_tasks.yaml",
        description="TD-MPC2 (arXiv 2310.16828): SimNorm implicit world model, two-hot reward and Q "
        "ensemble, MPPI with a policy prior (mpc=false: the policy alone); model_size 1, 5, 19, 48 or 317",
    ),
    "bro": AgentEntry(
        "baselines.bro:BRO",
        "baselines.bro:BROConfig",
        "bro_tasks.yaml",
        description="BRO (arXiv 2405.16158): BroNet critics with quantiles, optimistic dual-actor "
        "exploration, resets; UTD 2 (the paper's BRO (fast))",
    ),
    "bro-utd10": AgentEntry(
        "baselines.bro:BRO",
        "baselines.bro:BROConfig",
        "bro_tasks.yaml",
        preset={
            "utd": 10.0,
            # the code's reset_list (naumix/BiggerRegularizedOptimistic@5870a13:jaxrl/bro/bro_learner.py)
            "reset_at": [15_001, 50_001, 250_001, 500_001, 750_001, 1_000_001, 1_500_001, 2_000_001],
        },
        description="BRO at its default update-to-data ratio 10, with its reset schedule",
    ),
    "crossq": AgentEntry(
        "baselines.crossq:CrossQ",
        "baselines.crossq:CrossQConfig",
        "crossq_tasks.yaml",
        description="CrossQ (arXiv 1902.05605): SAC with batch renormalisation, no target networks, a joint "
        "critic pass over (s, a) and (s', a'), Adam beta1 0.5",
    ),
    "simbav2": AgentEntry(
        "baselines.simbav2:SimbaV2",
        "baselines.simbav2:SimbaV2Config",
        "simbav2_tasks.yaml",
        description="SimbaV2 (arXiv 2502.15280): SAC on hyperspherical networks, a distributional critic, "
        "observation and reward normalisation; UTD 2",
    ),
    "simbav2-utd8": AgentEntry(
        "baselines.simbav2:SimbaV2",
        "baselines.simbav2:SimbaV2Config",
        "simbav2_tasks.yaml",
        preset={"utd": 8.0},
        description="SimbaV2 at UTD 8, its strongest released setting",
    ),
    "dreamerv3": AgentEntry(
        "baselines.dreamerv3:DreamerV3",
        "baselines.dreamerv3:DreamerV3Config",
        description="DreamerV3 (arXiv 2301.04104, danijar/dreamerv3 at e3f0224): RSSM world model with "
        "categorical latents and a block GRU, actor-critic in imagination; agent.size 1m..400m",
    ),
    "droq": AgentEntry(
        "baselines.droq:DroQ",
        "baselines.droq:DroQConfig",
        description="DroQ (arXiv 2110.02034): SAC, its two critics with dropout 0.01 and LayerNorm; UTD 20",
    ),
}


def _load(path: str):
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


def agent_names() -> list[str]:
    return sorted(REGISTRY)


def unknown_agent(name: str) -> str:
    """The one-line message for a name the registry lacks: the registered names closest to it, then all."""
    close = difflib.get_close_matches(name, agent_names(), n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    return f"unknown agent {name!r}{hint}; valid agents: {', '.join(agent_names())}"


def get_entry(name: str) -> AgentEntry:
    if name not in REGISTRY:
        raise KeyError(unknown_agent(name))
    return REGISTRY[name]


def config_class(name: str):
    return _load(get_entry(name).config)


def agent_class(name: str) -> type[Agent]:
    return _load(get_entry(name).cls)


def seed_phase(name: str) -> SeedPhase:
    """The seed phase of agent `name`'s code: its preset's, else its config class's, else the harness's."""
    return get_entry(name).seed_phase or config_class(name).SEED_PHASE or HARNESS_SEED_PHASE


def action_agents(kind: str) -> list[str]:
    """The registered agents that act in action spaces of `kind` ("box", "discrete"): Agent.ACTION_SPACES."""
    return [name for name in agent_names() if kind in agent_class(name).ACTION_SPACES]


def action_refusal(name: str, task: str, kind: str) -> str | None:
    """Why agent `name` cannot act in `task`, whose actions are of `kind`, in one line; None if it can."""
    spaces = agent_class(name).ACTION_SPACES
    if kind in spaces:
        return None
    able = ", ".join(action_agents(kind)) or "none registered"
    what = {"box": "continuous (box)", "discrete": "discrete"}
    return (
        f"agent {name} acts in {' and '.join(what[k] for k in spaces)} action spaces only and task {task} "
        f"has {what[kind]} actions; agents that can act in it: {able}"
    )


def make_agent(
    cfg, obs_dim: int, act_dim: int | ActionSpec, device: torch.device, seed: int, num_tasks: int = 1
) -> Agent:
    """Build the agent named cfg.name from its (resolved, validated) config dataclass; the AgentConfig keys
    go into its spec. `act_dim` is the task's ActionSpec, or an int for a box of that many dims. The agent
    gets the action's width as `act_dim`, and the spec itself as the keyword `action_spec` where its class
    lists "discrete" in ACTION_SPACES; a kind it lacks is a ValueError (the config refuses such runs before).
    `num_tasks` > 1 (a multi-task run) reaches only agents with MULTITASK = True."""
    cls = agent_class(cfg.name)
    action = as_action_spec(act_dim)
    if action.kind not in cls.ACTION_SPACES:
        raise ValueError(
            f"agent {cfg.name} cannot act in {action.describe()} (its ACTION_SPACES: {cls.ACTION_SPACES})"
        )
    keywords = {"num_tasks": num_tasks} if num_tasks > 1 else {}
    if DISCRETE in cls.ACTION_SPACES:
        keywords["action_spec"] = action
    agent = cls(cfg, obs_dim, action.width, device, seed, **keywords)
    agent.spec.shared_eval_seed = bool(cfg.official_shared_eval_seed)
    return agent
