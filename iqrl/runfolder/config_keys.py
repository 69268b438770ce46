"""Config keys and how two run configs differ: the keys that do not change a run's results, the values that
reproduce older versions for keys added since, the keys older configs carried but never read. The trainer's
resume check and analysis/'s comparison of runs read them. It imports nothing of the harness.
"""

from __future__ import annotations

# Config keys that do not change a run's results: where it lives, what it runs on and may take of its memory,
# whether its env steps in a worker process and its evaluations run beside training (bitwise the same), how
# often its state is checkpointed (resume equality makes the results independent of the checkpoint cadence),
# the trackers and videos it writes beside its CSV files, and how many groups a K-seed job's seeds form (a
# seed's arithmetic is its slot's, meta.slot, which a resume keeps: preflight.check_mode). A run resumes
# whatever their values; analysis compares runs without them.
NOT_RESULT_KEYS = frozenset(
    "out device meta checkpoint_every logger video_every memory_limit_gb env_workers eval_beside"
    " diagnostics cohorts".split()
)

# Config keys added after run folders already existed, with the value that reproduces how those older
# versions behaved. The trainer resumes an unfinished older run (its config.yaml lacks the key) when the
# current value is that one and refuses it otherwise (e.g. iqrl-official, whose preset turns the key on);
# analysis reads a missing key as that value when it compares runs' configs.
LEGACY_VALUES = {
    "agent.official_shared_eval_seed": False,
    "agent.fsq_symmetric": False,
    "logger": ["csv"],
    "video_every": 0,
    # the quantizer family (iqrl/nn/quantizers.py): older runs used FSQ (or none, by use_fsq=false)
    "agent.quantizer": "fsq",
    "agent.quant_group_dim": 8,
    "agent.vq_codebook_size": 512,
    "agent.vq_dim": 8,
    "agent.vq_beta": 0.25,
    "agent.vq_decay": 0.99,
    # stochastic and distracting environments (iqrl.envs.perturb.Perturbations): older runs had none
    "obs_noise": 0.0,
    "action_noise": 0.0,
    "sticky_actions": 0.0,
    "distractor_dims": 0,
    "distractor": "noise",
    "perturb_eval": True,
    # batched evaluation (iqrl.loop.evaluation.eval_batch): older runs evaluated their episodes one by one
    "eval_batched": False,
    # compiled updates (Agent.compile): older runs ran eagerly
    "compile": False,
    "cudagraphs": False,
    # pixel observations (iqrl.envs.dmc.PixelEnv): older runs saw state vectors
    "obs": "state",
    "image_size": 84,
    "frame_stack": 3,
    # suite protocols (iqrl.envs.tasks.Suite.protocols; Atari's): older runs ran their suite's only one
    "protocol": "default",
    # an agent's changes to its Atari protocol (AgentConfig.PROTOCOL_CHANGES): older runs ran the protocol as
    # it is (a dreamerv3 atari100k run learned from clipped rewards)
    "protocol_changes": {},
    # transfer (iqrl.loop.transfer): older runs started from scratch
    "init_from": "",
    "init_parts": ["representation"],
    "freeze": [],
    # multi-task learners (iqrl/learners/multitask.py): inert in the single-task runs older versions made
    "agent.task_heads": "embedding",
    "agent.task_dim": 96,
    # the encoder head's last activation (iqrl/learners/encoders.py): older runs ended every head in tanh
    "agent.head_act": "tanh",
    # evaluations from (seed, env step) (iqrl.loop.parts.RunParts.seed_evaluation): older runs' evaluation
    # streams ran on from one evaluation to the next
    "eval_reseed": False,
    # training envs at once (iqrl/loop/lanes.py): older runs collected from one (DreamerV3 on DMC included)
    "train_envs": 1,
}

# Keys that older configs carried although the agent never read them: the SAC learner's keys in the configs
# of TD3-learner agents (iqrl, iqrl-official, iqrl-ae) and the TD3 actor's noise keys in the configs of
# SAC-learner agents (sac, iqrl-sac), before each agent's config was composed of its own learner's keys only.
# An unfinished older run whose config has them resumes without them; analysis ignores them.
INERT_REMOVED_KEYS = frozenset(
    f"agent.{k}"
    for k in (
        "init_temperature",
        "alpha_lr",
        "log_std_min",
        "log_std_max",
        "target_entropy",
        "policy_noise",
        "noise_clip",
        "expl_sigma_start",
        "expl_sigma_end",
        "expl_sigma_episodes",
    )
)


def config_diff(saved: dict, new: dict, prefix: str = "") -> tuple[list[str], list[str], list[str]]:
    """Two run configs (config.yaml's dicts) compared: (keys whose values differ, keys of `saved` that the
    current config no longer has, keys of the current config that `saved` lacks: added since the run was
    started)."""
    diffs, obsolete, added = [], [], []
    for k in sorted(set(saved) | set(new)):
        if not prefix and k in NOT_RESULT_KEYS:
            continue
        a, b = saved.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            d, o, n = config_diff(a, b, f"{prefix}{k}.")
            diffs, obsolete, added = diffs + d, obsolete + o, added + n
        elif k not in new:
            obsolete.append(f"{prefix}{k}")
        elif k not in saved:
            added.append(f"{prefix}{k}")
        elif a != b:
            diffs.append(f"{prefix}{k}")
    return diffs, obsolete, added
