"""Run folder files, all written atomically (write to a temporary file in the same folder, then rename).

Layout: config.yaml, eval.csv, train.csv, status.json, checkpoint/ckpt.pt (docs/run-folder.md). Also what
the trainer, slurm/ and analysis/ share about run folders: the run lock, the status reader, the keys of older
configs and a run's method label. slurm/ imports it at the top on login nodes, so it imports no torch and
nothing of the harness (the trainer writes its checkpoints with `atomic_write`).
"""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import json
import os
import re
import tempfile
import time
import traceback
from pathlib import Path

import yaml

from iqrl.envs.workers import EnvWorkerDied

EVAL_COLUMNS = ["env_step", "episode_return", "episode_return_std", "n_episodes", "wall_time_s"]
#: Where a run's wall time goes (iqrl/loop/timing.py): train.csv's columns time_<phase>_s, status.json's
#: time_split.
TIME_SPLIT_PHASES = ("collect", "act", "update", "evaluate", "write")
#: The columns of eval.csv and train.csv that measure time, not learning: all that may differ between two runs
#: of one config (a resumed run and one never interrupted, two evaluation cadences).
TIME_COLUMNS = frozenset(
    {"wall_time_s", "env_steps_per_s", "updates_per_s", *(f"time_{p}_s" for p in TIME_SPLIT_PHASES)}
)
# eval.csv's last column on suites that define success (Meta-World, MyoSuite): the fraction of evaluation
# episodes that succeeded; absent on DMC and Gym, and in run folders written before the suites.
SUCCESS_COLUMN = "success"
#: eval.csv's Q-bias columns (iqrl/core/diagnostics.py, q_bias), written with the diagnostics by agents with
#: a critic: the bias's mean and std over the evaluation's scored steps, normalised by |mean G_t| (REDQ), the
#: mean Q and return G_t there, and their count (alone where no step is scored).
Q_BIAS_COLUMNS = (
    "q_bias_mean",
    "q_bias_std",
    "q_bias_norm_mean",
    "q_bias_norm_std",
    "q_mean",
    "q_return_mean",
    "q_bias_steps",
)


def eval_columns(rows: list[dict]) -> list[str]:
    """eval.csv's columns: EVAL_COLUMNS, then success, all the Q-bias's (even where no step was scored) and
    task where the rows have them."""
    groups = ([SUCCESS_COLUMN], list(Q_BIAS_COLUMNS), ["task"])
    return EVAL_COLUMNS + [c for g in groups if any(g[-1] in r for r in rows) for c in g]


CHECKPOINT = Path("checkpoint") / "ckpt.pt"
#: The files of a run folder that hold its results (the checkpoint aside): what analysis/ reads, and all a
#: copy of a run needs to load as one (a GPU report commits its learning runs with these alone).
RESULT_FILES = ("config.yaml", "eval.csv", "train.csv", "status.json")
LOCK = ".lock"
_UMASK = os.umask(0)
os.umask(_UMASK)
# The atomic writer's temporary files: "." + name + "." + mkstemp's 8 random characters + ".tmp"
# (e.g. checkpoint/.ckpt.pt.k3x_9q2a.tmp).
_TMP_PREFIX, _TMP_SUFFIX = ".", ".tmp"
_TMP_NAME = re.compile(re.escape(_TMP_PREFIX) + r".+\.[a-z0-9_]{8}" + re.escape(_TMP_SUFFIX))

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


def method_label(agent: str, variant: str) -> str:
    """The method a run folder belongs to: the agent name for variant `default`, `agent/variant` otherwise
    (the figures' legends and the W&B group)."""
    return agent if variant in ("", "default") else f"{agent}/{variant}"


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


class RunFolderError(OSError):
    """A file of the run folder could not be written; str() is one line naming the file and the cause."""

    def __str__(self) -> str:
        return self.strerror or ""


# Causes of a failed write, as the one error line words them (others: the system's own words).
_CAUSES = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EIO: "input/output error",
    errno.ENOTDIR: "a file where a folder is expected",
    errno.EISDIR: "a folder where a file is expected",
}


def os_error_line(e: OSError, path: Path | str | None = None) -> str:
    """One line for a failed file operation: its cause and the file, e.g. `no space left on device while
    writing runs/x/eval.csv` (the cause in the system's words when it is not one of the usual ones)."""
    if isinstance(e, RunFolderError):
        return str(e)
    cause = _CAUSES.get(e.errno) or (e.strerror or str(e) or type(e).__name__).lower()
    target = path if path is not None else e.filename
    return f"{cause} while writing {target}" if target is not None else cause


def failure_line(e: BaseException) -> str:
    """What a failed run's status and its `error:` line say: a file operation's cause and file in one line
    (os_error_line), anything else as `Type: message`."""
    return os_error_line(e) if isinstance(e, OSError) else f"{type(e).__name__}: {e}"


def print_traceback_for(e: BaseException) -> None:
    """A failure at the run's boundary (an OSError: disk full, read-only, permissions; an env worker process
    that died: killed, out of memory) is its one line only; other failures, and every failure under
    IQRL_DEBUG=1, also print their traceback."""
    if os.environ.get("IQRL_DEBUG") == "1" or not isinstance(e, (OSError, EnvWorkerDied)):
        traceback.print_exception(e)


def atomic_write(path: Path, write, before_replace=None) -> None:
    """Call write(binary_file) on a temporary file beside `path`, fsync, call before_replace(tmp) if given,
    then rename it over `path`. A failure is a RunFolderError naming `path` (not the temporary file)."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f"{_TMP_PREFIX}{path.name}.", suffix=_TMP_SUFFIX)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the usual permissions
        if before_replace is not None:
            before_replace(Path(tmp))
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None:
            with contextlib.suppress(OSError):  # a failed clean-up must not hide the failure itself
                os.unlink(tmp)
        if isinstance(e, OSError) and not isinstance(e, RunFolderError):
            raise RunFolderError(e.errno, os_error_line(e, path)) from e
        raise


def remove_stale_temp_files(run_dir: Path) -> list[Path]:
    """Delete the temporary files the atomic writer left in `run_dir` and its checkpoint folder when its
    process was killed (SIGKILL, power loss) between creating and renaming them: a checkpoint's is as big
    as the checkpoint. Only names of the writer's own pattern go. Call it only while holding the run's
    lock: another live writer's temporary file would match too. Returns the paths removed."""
    removed = []
    for folder in (Path(run_dir), Path(run_dir) / CHECKPOINT.parent):
        if not folder.is_dir():
            continue
        for p in folder.iterdir():
            if _TMP_NAME.fullmatch(p.name) and p.is_file() and not p.is_symlink():
                p.unlink(missing_ok=True)
                removed.append(p)
    return removed


def atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def write_csv(path: Path, rows: list[dict], columns: list[str] | None = None) -> None:
    """Rows -> CSV; columns default to the union of keys in first-seen order (missing cells empty)."""
    if columns is None:
        columns = []
        for r in rows:
            columns += [k for k in r if k not in columns]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: _fmt(r.get(k)) for k in columns})
    atomic_write_text(path, buf.getvalue())


def _fmt(v):
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v)  # shortest exact float repr: identical runs give identical files
    return v


def write_status(
    run_dir: Path,
    state: str,
    env_step: int,
    steps: int,
    error: str | None = None,
    time_split: dict[str, float] | None = None,
    updates: int | None = None,
) -> None:
    """status.json; `time_split` (the trainer's seconds per phase so far, iqrl/loop/timing.py) and `updates`
    (the agent's so far) kept from the status before when not given, as a failure's status is written."""
    status = {
        "state": state,
        "env_step": int(env_step),
        "steps": int(steps),
        "error": error,
        "updated_at": time.time(),
        "pid": os.getpid(),
        "host": os.uname().nodename,
    }
    before = (read_status(run_dir) or {}) if None in (time_split, updates) else {}
    for key, value in (("time_split", time_split), ("updates", updates)):
        if (value := before.get(key) if value is None else value) is not None:
            status[key] = value
    atomic_write_text(Path(run_dir) / "status.json", json.dumps(status, indent=1) + "\n")


def read_status(run_dir: Path) -> dict | None:
    """The run's status.json as a dict; None when it is missing or unreadable (the one reader of the trainer,
    slurm/ and analysis/)."""
    try:
        data = json.loads((Path(run_dir) / "status.json").read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_yaml(path: Path, data: dict) -> None:
    atomic_write_text(path, yaml.safe_dump(data, sort_keys=False, default_flow_style=None))


# YAML's safe loader in libyaml's C where PyYAML was built with it (its wheels are): the same documents, read
# about ten times faster (a dry sweep reads every existing run folder's config.yaml).
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_yaml(path: Path) -> dict | None:
    p = Path(path)
    return yaml.load(p.read_text(), Loader=SAFE_LOADER) if p.exists() else None


class UnreadableConfig(ValueError):
    """A run folder's config.yaml that holds no run config; str() is one line naming the file."""


def read_config(run_dir: Path) -> dict | None:
    """The run's config.yaml as a dict; None when the folder has none; UnreadableConfig (one line naming the
    file and what it holds instead: bytes that are not text, a folder, a YAML list) otherwise."""
    path = Path(run_dir) / "config.yaml"
    if not os.path.lexists(path):
        return None
    try:
        data = yaml.load(path.read_bytes().decode(), Loader=SAFE_LOADER)
    except OSError as e:
        why = _CAUSES.get(e.errno) or (e.strerror or str(e)).lower()
    except UnicodeDecodeError:
        why = "bytes that are not UTF-8 text"
    except yaml.YAMLError as e:
        why = f"not YAML: {getattr(e, 'problem', None) or type(e).__name__}"
    else:
        if isinstance(data, dict):
            return data
        why = "empty" if data is None else f"a YAML {type(data).__name__}, not a mapping of keys"
    raise UnreadableConfig(f"{path} holds no run config ({why}); remove it or choose another out=")
