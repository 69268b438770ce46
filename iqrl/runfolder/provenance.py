"""Where a run's numbers came from: package versions, the dependency lock, the git commit, and the `meta` of
its config.yaml.

It imports the standard library and the task groups (iqrl/envs/tasks.py); the run's parts come in as
arguments.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import platform
import shlex
import subprocess
import sys
from pathlib import Path

from iqrl.envs.tasks import split_task, suite_of, task_group, task_list


def package_versions(extra: tuple[str, ...] = ()) -> dict:
    """Versions of python, the core packages and the `extra` ones (a suite's: gymnasium, metaworld, ...)."""
    out = {"python": platform.python_version()}
    for pkg in ("torch", "numpy", "mujoco", "dm-control", "omegaconf", *extra):
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            out[pkg] = None
    return out


#: The lock of every dependency's version (make lock), in the checkout the code runs from.
LOCK_FILE = Path(__file__).resolve().parents[2] / "uv.lock"


def lock_hash() -> str | None:
    """The first 12 hex digits of uv.lock's sha256: which resolution of every package (not only those
    package_versions names) the run's environment was installed from; None outside a checkout."""
    try:
        return hashlib.sha256(LOCK_FILE.read_bytes()).hexdigest()[:12]
    except OSError:
        return None


def lock_change(saved_meta: dict | None) -> str | None:
    """One line when a run started under another uv.lock than this checkout's (its config.yaml's meta.lock,
    which stays as it was: the lock of its start); None when the two agree or either is unknown."""
    old, new = (saved_meta or {}).get("lock"), lock_hash()
    if old is None or new is None or old == new:
        return None
    return (
        f"it started under uv.lock {old} and resumes under {new}: its numbers from here on may come from "
        "other package versions (config.yaml's meta.lock keeps the lock of its start)"
    )


def git_commit() -> str:
    try:
        here = Path(__file__).resolve().parent
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=5,
        )
        if sha.returncode == 0:
            return sha.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return "unknown"


def suite_packages(task: str) -> tuple[str, ...]:
    """The packages a task's suite runs on besides the core ones (none for DMC)."""
    if split_task(task)[0] == "dmc":
        return ()
    return tuple(dict.fromkeys(("gymnasium", suite_of(task).package)))


#: The commands of the two modes a run trains in (config.yaml's `meta.mode`): a run alone, or a seed of a
#: K-seed group, whose updates are vectorised over the group's slots: their sums round differently, and a
#: seed's numbers depend on its slot among the group's (`meta.slot`: [its slot, the group's width];
#: iqrl/multiseed/group.py). A run resumes only in the mode and slot it started in
#: (iqrl.loop.preflight.check_mode).
MODES = {"single": "python -m iqrl.train", "kseed": "python -m iqrl.multiseed"}


def run_mode(argv: list[str], mode: str = "single", slot: tuple[int, int] | None = None) -> dict:
    """config.yaml's record of how a run computes: its mode, a K-seed seed's slot, and the command (`argv`
    as given) that trains it, and so resumes it exactly."""
    return {
        "mode": mode,
        **({"slot": list(slot)} if slot else {}),
        "command": shlex.join([*MODES[mode].split(), *argv]),
    }


def run_meta(cfg, parts, updates_per_step: float, how: dict | None = None) -> dict:
    """config.yaml's `meta` of the run `cfg` with its built `parts` (iqrl.loop.parts.RunParts) and its
    effective updates per env step: versions, commit, the sizes the agent was built with, effective values
    of keys left to the agent's defaults, and where and how the run was started (`how`: run_mode's; the
    command line of this process by default)."""
    env, agent = parts.env, parts.agent
    return {
        "versions": package_versions(suite_packages(task_list(cfg.task)[0])),
        "lock": lock_hash(),
        "git_commit": git_commit(),
        "obs_dim": env.obs_dim if cfg.obs == "state" else list(env.obs_shape),
        "act_dim": env.act_dim,  # a box's dims, or the number of discrete actions (see `discrete_actions`)
        **({"discrete_actions": True} if env.action_spec.is_discrete else {}),
        "task_group": task_group(cfg.task),
        "latent_width": agent.latent_width,
        "codebook_size": agent.codebook_size,
        "seq_len": agent.spec.seq_len,
        "updates_per_step": updates_per_step,
        "replay_capacity": parts.replay_capacity or 0,  # effective; 0 = unbounded, as the top-level key
        "eval_seed": parts.eval_seed,
        "device": str(parts.device),
        "host": platform.node(),
        **(how or run_mode(sys.argv[1:])),
    }
