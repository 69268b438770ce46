"""The checks before a run trains, each a ConfigError with one line: the run folder holds this run or none,
the device, precision and compile keys fit the machine and the agent, the trackers are installed and a
renderer works where pixels or videos need one, and the run's estimated memory fits its device. Nothing is
written.

It imports torch, the run config, the registry (what an agent supports), the run folder's readers, the
trackers' package check, the renderer's probe and the memory estimate.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from dataclasses import replace
from pathlib import Path

import torch

from iqrl.config.run import MAX_UPDATES, ConfigError, RunConfig, to_yaml_dict
from iqrl.envs.render import RendererUnavailable, select_backend
from iqrl.envs.tasks import split_task, task_list
from iqrl.loop.device import resolve_device
from iqrl.loop.memory import check_memory, meta_agent, run_spaces
from iqrl.loop.transfer import built_agent, check_transfer
from iqrl.runfolder import checkpoints
from iqrl.runfolder.config_keys import INERT_REMOVED_KEYS, LEGACY_VALUES, config_diff
from iqrl.runfolder.errors import os_error_line
from iqrl.runfolder.layout import CHECKPOINT
from iqrl.runfolder.loggers import missing_packages
from iqrl.runfolder.provenance import MODES, run_mode
from iqrl.runfolder.status import read_status
from iqrl.runfolder.yamlfile import UnreadableConfig, read_config, read_yaml


def preflight(cfg: RunConfig) -> bool:
    """The checks before training `cfg` (ConfigError, one line, on failure); True if its folder holds it done.
    A finished run needs no device, so the device is checked only for a run still to train."""
    done = check_run_folder(cfg) == "done"
    if not done:
        device = check_machine(cfg)
        check_device_type(cfg, device)
        check_out(cfg)
    return done


def check_machine(cfg: RunConfig, seeds: int = 1) -> torch.device:
    """The checks of a run's values against this machine, made by the trainer, `--check` and the K-seed mode
    (`seeds` runs of `cfg` at once) before anything is written or allocated: the device exists, the precision
    and compile keys fit it, the trackers and a renderer are installed where the run needs them, and the
    run's estimated memory fits the device (iqrl.loop.memory). Returns the device."""
    device = resolve_device(cfg.device)
    check_precision(cfg, device)
    check_compile(cfg, device)
    check_watching(cfg)
    check_renderer(cfg)
    check_memory(cfg, device, seeds)
    spec = meta_agent(cfg, *run_spaces(cfg)).spec  # its agent built on the meta device, once for both checks
    check_update_count(cfg, spec)  # after the memory: memory_limit_gb lets a budget past the machine's RAM
    check_replay_windows(cfg, spec)
    return device


def check_replay_windows(cfg: RunConfig, spec) -> None:
    """Each training env's replay (a run of several holds the capacity split over them, iqrl.loop.parts)
    holds at least one sampled window of the agent's seq_len transitions: ConfigError (one line naming the
    smallest replay_capacity that does) otherwise. `spec`: the run's AgentSpec."""
    capacity = spec.replay_capacity if cfg.replay_capacity is None else cfg.replay_capacity
    envs, window = cfg.train_envs or 1, spec.seq_len
    if capacity and -(-capacity // envs) < window:
        each = (
            f" split over train_envs={envs} gives each env's replay {-(-capacity // envs)}"
            if envs > 1
            else ""
        )
        raise ConfigError(
            f"replay_capacity={capacity}{each} transitions, fewer than a sampled window of {window} "
            f"({cfg.agent.name}'s): set replay_capacity >= {(window - 1) * envs + 1} (or 0, unbounded)"
        )


def check_update_count(cfg: RunConfig, spec) -> None:
    """The gradient updates of a run at its agent's default rate (no key sets the rate: the run config checks
    those, iqrl.config.validate.validate_rate) are at most MAX_UPDATES: ConfigError (one line) otherwise."""
    if cfg.updates_per_step is not None or type(cfg.agent).UTD_KEY is not None:
        return
    rate = spec.rate(cfg.action_repeat)
    if rate * cfg.steps > MAX_UPDATES:
        raise ConfigError(
            f"steps={cfg.steps} at {cfg.agent.name}'s {rate:g} gradient updates per env step asks for "
            f"{rate * cfg.steps:.3g} updates, more than the {MAX_UPDATES:,} a run may take: lower steps"
        )


# ---------------------------------------------------------------------- the run folder's checks
def check_out(cfg: RunConfig) -> None:
    """The checks of a run folder that follow check_run_folder's: its path can hold a run trained alone, and
    the parts a transfer names can be read from its source."""
    check_not_a_group(Path(cfg.out))
    check_writable(Path(cfg.out))
    check_mode(cfg, run_mode([]))
    check_parts(cfg)


def check_not_a_group(out: Path) -> None:
    """A run alone does not train in the root of a K-seed group (its seed<k> run folders), where figures would
    read it as one more seed: ConfigError (one line naming the group) otherwise."""
    seeds = sorted(p.parent for p in out.glob("seed*/config.yaml") if p.parent.name[4:].isdigit())
    if seeds:
        meta = (read_yaml(seeds[0] / "config.yaml") or {}).get("meta") or {}
        by = f" trained by {meta['command']}" if meta.get("command") else ""
        names = ", ".join(p.name for p in seeds)
        raise ConfigError(
            f"out={out} holds a K-seed group ({names}){by}: a run alone there would be read as one more of "
            "its seeds; choose another out="
        )


def check_mode(cfg: RunConfig, how: dict) -> None:
    """A run resumes in the mode (and a K-seed seed in the slot) it started in (`how`: provenance.run_mode's),
    or another arithmetic would continue it silently: ConfigError (one line naming the command that resumes
    it exactly) otherwise. A folder written before config.yaml recorded its mode is accepted in either: its
    mode is unknown (its meta.command says python -m iqrl.train in both), and refusing it would strand it."""
    run_dir = Path(cfg.out)
    if not any((run_dir / p).exists() for p in (CHECKPOINT, checkpoints.PREVIOUS)):
        return  # a fresh start writes its own record
    saved = (read_yaml(run_dir / "config.yaml") or {}).get("meta") or {}
    if "mode" not in saved or (saved["mode"], saved.get("slot")) == (how["mode"], how.get("slot")):
        return
    raise ConfigError(
        f"{run_dir} was trained by {_mode_words(saved)} and would resume by {_mode_words(how)}, whose "
        f"updates round differently; resume it exactly with: {saved.get('command')}"
    )


def _mode_words(how: dict) -> str:
    slot = how.get("slot")
    return MODES.get(how["mode"], how["mode"]) + (f" in slot {slot[0]} of {slot[1]}" if slot else "")


def check_folder(cfg: RunConfig) -> str:
    """`--check`'s run-folder checks (ConfigError, one line): the trainer's own before it writes
    (check_run_folder, check_out), and the checkpoint it would resume from, verified as its resume verifies
    it (iqrl/runfolder/checkpoints.py; nothing is set aside). Returns what the run would do, in words."""
    if check_run_folder(cfg) == "done":
        return "already done"
    check_out(cfg)
    run_dir = Path(cfg.out)
    found = checkpoints.generations(run_dir, "cpu", mmap=True)
    good = [g for g in found if g.state is not None]
    if not found:
        return "a fresh run"
    if not good:
        raise ConfigError(checkpoints.no_readable_message(run_dir, found))
    aside = "".join(
        f"; {g.path.name} cannot be used ({g.reason}) and would be set aside"
        for g in found[: found.index(good[0])]
    )
    return f"resumes from {good[0].path.name} at env_step {checkpoints.step_of(good[0])}{aside}"


def check_parts(cfg: RunConfig) -> None:
    """freeze names parts this configuration of the agent has, and a fresh run's init_from can load its
    init_parts (iqrl/loop/transfer.py); a run resuming its own checkpoint never reads its source again."""
    resuming = (Path(cfg.out) / CHECKPOINT).exists()
    if cfg.freeze or (cfg.init_from and not resuming):
        check_transfer(cfg if not resuming else replace(cfg, init_from=""), built_agent(cfg))


def check_writable(run_dir: Path) -> None:
    """The run folder can hold a run: its path and its checkpoint folder are folders (or can be made), and a
    byte can be written to a file there (not a read-only file system, a full disk, a folder of another user,
    /proc).
    ConfigError (one line naming the path and the cause) otherwise; what the probe made is removed again."""
    for p in (run_dir, run_dir / CHECKPOINT.parent, *run_dir.parents):
        if p.exists() and not p.is_dir():
            raise ConfigError(f"out={run_dir}: {p} is a file where a folder is expected; choose another out=")
    made = [p for p in (run_dir, *run_dir.parents) if not p.exists()]
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=run_dir, prefix=".probe.") as probe:
            probe.write(b"\0")  # a full disk still makes an empty file, but takes no byte
            probe.flush()
    except OSError as e:
        raise ConfigError(f"out={run_dir} cannot be written: {os_error_line(e)}") from None
    finally:
        for p in made:  # deepest first
            with contextlib.suppress(OSError):
                p.rmdir()


def check_precision(cfg: RunConfig, device: torch.device) -> None:
    """precision=tf32 is a mode of CUDA's matrix units: ConfigError (one line) on another device."""
    if cfg.precision == "tf32" and device.type != "cuda":
        raise ConfigError(f"precision=tf32 needs a CUDA device (got device={device}); use fp32 or bf16")


def check_compile(cfg: RunConfig, device: torch.device) -> None:
    """cudagraphs=true needs a CUDA device: ConfigError (one line) otherwise. (compile=true works for every
    agent: it compiles the pieces of the agent's update, iqrl/core/update.py.)"""
    if cfg.cudagraphs and device.type != "cuda":
        raise ConfigError(f"cudagraphs=true needs a CUDA device (got device={device}); use compile=true only")


def check_device_type(cfg: RunConfig, device: torch.device) -> None:
    """A checkpoint resumes only on the device type it was written on: it holds the states of the agent's
    random generators, whose format differs between device types (5056 bytes on CPU, 16 on CUDA), and the
    same seed draws different numbers on each. ConfigError (one line) otherwise."""
    run_dir = Path(cfg.out)
    if not (run_dir / CHECKPOINT).exists():
        return
    saved = ((read_yaml(run_dir / "config.yaml") or {}).get("meta") or {}).get("device")
    if saved and torch.device(saved).type != device.type:
        raise ConfigError(
            f"{run_dir} was trained on {saved} and its checkpoint resumes only on a "
            f"{torch.device(saved).type} device (random-generator states differ between device "
            f"types); resume it with device={torch.device(saved).type} or use another out="
        )


def renders_physics(cfg: RunConfig) -> bool:
    """Whether the run's frames are rendered from a physics by OpenGL (DMC); Atari's are its screens."""
    return split_task(task_list(cfg.task)[0])[0] == "dmc"


def check_renderer(cfg: RunConfig) -> None:
    """obs=pixels on DMC needs a headless renderer (EGL, else OSMesa): ConfigError (one line) without one."""
    if cfg.obs == "pixels" and renders_physics(cfg):
        try:
            select_backend()
        except RendererUnavailable as e:
            raise ConfigError(f"obs=pixels needs a renderer: {e}") from None


def check_watching(cfg: RunConfig) -> None:
    """The trackers `logger` names are installed and, with `video_every`, a renderer works (ConfigError)."""
    missing = missing_packages(cfg.logger)
    if missing:
        raise ConfigError(
            f"logger {', '.join(missing)} is not installed: "
            "pip install 'iqrl-bench[tracking]' (or drop it from logger=)"
        )
    if cfg.video_every > 0 and renders_physics(cfg):
        try:
            select_backend()
        except RendererUnavailable as e:
            raise ConfigError(f"video_every needs a renderer: {e}") from None


# ---------------------------------------------------------------------- the run folder
_MISSING = object()


def _lookup(tree: dict, dotted: str):
    for part in dotted.split("."):
        tree = tree.get(part, _MISSING) if isinstance(tree, dict) else _MISSING
    return tree


def check_run_folder(cfg: RunConfig) -> str | None:
    """'done' if the folder holds this run finished; None to (re)start. ConfigError if it holds another
    run."""
    run_dir = Path(cfg.out)
    try:
        saved = read_config(run_dir)
    except UnreadableConfig as e:
        raise ConfigError(str(e)) from None
    if saved is None:
        if (run_dir / "eval.csv").exists() or (run_dir / CHECKPOINT).exists():
            raise ConfigError(f"{run_dir} holds results but no config.yaml; refusing to overwrite it")
        return None
    diffs, obsolete, added = config_diff(saved, to_yaml_dict(cfg))
    if diffs:
        raise ConfigError(
            f"{run_dir} holds a run with a different config (differs in {', '.join(diffs)}); "
            "use another out= or remove that folder"
        )
    status = read_status(run_dir)
    if status and status.get("state") == "done":
        return "done"  # finished by an older version with keys since removed or added: its results stand
    obsolete = [k for k in obsolete if k not in INERT_REMOVED_KEYS]
    if obsolete:
        raise ConfigError(
            f"{run_dir} holds an unfinished run of an older version whose config has keys this one "
            f"lacks ({', '.join(obsolete)}); finish it with that version or use another out="
        )
    current = to_yaml_dict(cfg)
    added = [k for k in added if _lookup(current, k) != LEGACY_VALUES.get(k, _MISSING)]
    if added:
        legacy = [f"{k}={json.dumps(LEGACY_VALUES[k])}" for k in added if k in LEGACY_VALUES]
        how = f"resume it with {' '.join(legacy)} (how that version ran), " * (len(legacy) == len(added))
        raise ConfigError(
            f"{run_dir} holds an unfinished run of an older version whose config lacks keys this one "
            f"has ({', '.join(added)}); {how}finish it with that version or use another out="
        )
    return None
