"""The training loop and the `python -m iqrl.train` command line.

    python -m iqrl.train agent=iqrl task=walker-walk seed=1 steps=1000000 out=RUN_DIR [agent.horizon=3 ...]

Loop (episode based, as in the official iQRL code): collect one episode (uniform random actions while
env_step < seed_steps), then, for episodes collected by the agent, run round(episode env steps x
updates_per_step) gradient updates (fractional credit carried over) and advance the agent's
per-episode schedules; evaluate every `eval_every` env steps (and at step 0 and at the end);
write a train.csv row every `diag_every` env steps; checkpoint every `checkpoint_every` env steps.
Checkpoints are taken at episode boundaries and hold everything the loop needs, so a run killed at
any moment and re-run with the same command ends with the same eval.csv as one never interrupted.
"""

from __future__ import annotations

import json
import math
import platform
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from iqrl.core import render
from iqrl.core.config import ConfigError, RunConfig, build_config, observation, perturbations, to_yaml_dict
from iqrl.core.diagnostics import active_codebook, latent_collapsed, rank_metrics
from iqrl.core.envs import DMCEnv, make_env
from iqrl.core.loggers import Trackers, missing_packages
from iqrl.core.registry import agent_class, make_agent
from iqrl.core.render import RendererUnavailable, select_backend
from iqrl.core.replay import SequenceReplay
from iqrl.core.runfolder import (
    CHECKPOINT,
    EVAL_COLUMNS,
    INERT_REMOVED_KEYS,
    LEGACY_VALUES,
    RunBusy,
    atomic_write,
    read_status,
    read_yaml,
    remove_stale_temp_files,
    training_lock,
    write_csv,
    write_status,
    write_yaml,
)
from iqrl.core.tasks import eval_seed, task_group

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 3
CHECKPOINT_FORMAT = 1


class NonFiniteLoss(FloatingPointError):
    pass


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} requested but CUDA is not available; use device=cpu")
    return torch.device(name)


class UpdatePrecision:
    """The arithmetic of the gradient updates (run key `precision`), entered around each update.

    fp32 changes nothing. bf16 autocasts the updates' matrix products to bfloat16 (losses, FSQ codes and
    single-output heads stay float32). tf32 (CUDA only) lets the updates' float32 matrix products and
    convolutions run on TensorFloat-32 tensor cores: inputs rounded to a 10-bit mantissa, float32
    accumulation and storage; acting and evaluation keep full float32. Reusable: `with` it every update."""

    def __init__(self, precision: str, device: torch.device):
        self.autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
        self.tf32 = precision == "tf32"
        self._saved: tuple[str, str] | None = None

    def __enter__(self) -> None:
        if self.tf32:
            matmul, conv = torch.backends.cuda.matmul, torch.backends.cudnn.conv
            self._saved = (matmul.fp32_precision, conv.fp32_precision)
            matmul.fp32_precision = conv.fp32_precision = "tf32"
        self.autocast.__enter__()

    def __exit__(self, *exc) -> None:
        self.autocast.__exit__(*exc)
        if self._saved is not None:
            torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision = self._saved
            self._saved = None


def check_precision(cfg: RunConfig, device: torch.device) -> None:
    """precision=tf32 is a mode of CUDA's matrix units: ConfigError (one line) on another device."""
    if cfg.precision == "tf32" and device.type != "cuda":
        raise ConfigError(f"precision=tf32 needs a CUDA device (got device={device}); use fp32 or bf16")


def check_compile(cfg: RunConfig, device: torch.device) -> None:
    """compile=true needs an agent that names its loss functions (Agent.COMPILED) and cudagraphs=true a CUDA
    device: ConfigError (one line) otherwise."""
    if cfg.cudagraphs and device.type != "cuda":
        raise ConfigError(f"cudagraphs=true needs a CUDA device (got device={device}); use compile=true only")
    if cfg.compile and not agent_class(cfg.agent.name).COMPILED:
        raise ConfigError(
            f"compile=true is not available for agent={cfg.agent.name} (docs/performance.md says why); "
            "run it with compile=false"
        )


def package_versions() -> dict:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("torch", "numpy", "mujoco", "dm-control", "omegaconf"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = None
    return out


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


def eval_episode(env: DMCEnv, agent, on_frame=None) -> float:
    """One deterministic evaluation episode; its return. `on_frame()` is called after the reset and after
    every step (videos record frames there)."""
    obs, total, done = env.reset(), 0.0, False
    agent.on_episode_start(training=False)
    while True:
        if on_frame is not None:
            on_frame()
        if done:
            return total
        step = env.step(agent.act(obs, explore=False))
        total += step.reward
        obs, done = step.obs, step.terminated or step.truncated


def eval_batch(envs: list, agent, on_frame=None) -> list[float]:
    """len(envs) deterministic evaluation episodes side by side; their returns.

    One `act` call per step for all of them (on a GPU one batched forward pass, or one batched MPPI plan,
    instead of N). Episode i starts from the task state that episode i of the sequential loop starts from:
    env i takes the task's random stream where env i-1's reset left it (the suite's tasks draw only at
    reset), and env 0, the run's evaluation env, ends holding the stream after all N resets, as the
    sequential loop leaves it. Returns agree with `eval_episode` run N times up to the rounding of batched
    kernels (docs/performance.md); an agent that samples while evaluating (MPPI) draws other numbers.
    `on_frame()` is called after env 0's reset and after each of its steps (videos).
    """
    obs = []
    for i, env in enumerate(envs):
        if i:
            env.set_state(envs[i - 1].get_state())
        obs.append(env.reset())
    envs[0].set_state(envs[-1].get_state())
    agent.on_episode_start(training=False)
    obs, totals, running = np.stack(obs), np.zeros(len(envs)), np.ones(len(envs), bool)
    frame = on_frame or (lambda: None)
    frame()
    while running.any():
        # every row acts, finished ones included, so an agent's per-row state (a warm-started plan) stays
        # aligned with its env
        actions = agent.act(obs, explore=False)
        for i in np.flatnonzero(running):
            step = envs[i].step(actions[i])
            totals[i] += step.reward
            obs[i], running[i] = step.obs, not (step.terminated or step.truncated)
            if i == 0:
                frame()
    return totals.tolist()


class Trainer:
    """Owns one run: envs, agent, replay, counters, and the run folder's files."""

    def __init__(self, cfg: RunConfig):
        self.cfg = cfg
        self.run_dir = Path(cfg.out)
        self.device = resolve_device(cfg.device)
        random.seed(cfg.seed)
        np.random.seed(cfg.seed)
        torch.manual_seed(cfg.seed)
        self.observation = observation(cfg)  # state vectors or pixel frame stacks
        self.env = make_env(
            cfg.task, cfg.seed, cfg.action_repeat, cfg.episode_length, perturbations(cfg), self.observation
        )
        self.agent = make_agent(cfg.agent, self.env.obs_dim, self.env.act_dim, self.device, cfg.seed)
        if cfg.compile:
            self.agent.compile_losses(cudagraphs=cfg.cudagraphs)
        spec = self.agent.spec
        self.eval_seed = eval_seed(cfg.seed, spec.shared_eval_seed)  # train seed + 10000, or the train seed
        self.eval_env = make_env(
            cfg.task,
            self.eval_seed,
            cfg.action_repeat,
            cfg.episode_length,
            perturbations(cfg, evaluation=True),
            self.observation,
        )
        # Batched evaluation needs the episodes' streams to be the sequential loop's: not so when the noises
        # and sticky actions of the evaluation env draw at every step (they stay sequential).
        self.batched_eval = cfg.eval_batched and not perturbations(cfg, evaluation=True).active
        self._eval_envs = [self.eval_env]  # + eval_episodes - 1 copies, made at the first evaluation
        # the effective FIFO size (None = unbounded): the run's replay_capacity, or the agent's default
        self.replay_capacity = (
            spec.replay_capacity if cfg.replay_capacity is None else (cfg.replay_capacity or None)
        )
        self.replay = SequenceReplay(
            self.env.obs_dim,
            self.env.act_dim,
            spec.seq_len,
            self.device,
            cfg.seed + 1,
            capacity=self.replay_capacity,
            frame_stack=cfg.frame_stack if cfg.obs == "pixels" else 1,
        )
        self.rng = np.random.default_rng(cfg.seed + 2)  # seed-phase actions
        self.diag_generator = torch.Generator(device=self.device)
        self.diag_generator.manual_seed(cfg.seed + 3)
        self.updates_per_step = (
            spec.updates_per_step if cfg.updates_per_step is None else cfg.updates_per_step
        )
        self.autocast = UpdatePrecision(cfg.precision, self.device)  # entered around every update
        # Counters (all env steps) and logs; everything here is checkpointed.
        self.env_step = 0
        self.episode = 0
        self.updates = 0
        self.update_credit = 0.0
        self.next_eval = 0
        self.next_diag = cfg.diag_every
        self.next_ckpt = cfg.checkpoint_every
        self.eval_rows: list[dict] = []
        self.train_rows: list[dict] = []
        self.window = self._new_window()
        self.pending: tuple[dict, dict] = ({}, {})  # metric sums/counts not yet synced to the host
        self.wall_offset = 0.0
        self.t0 = time.time()
        self.last_return = float("nan")
        self.trackers = Trackers()  # TensorBoard / W&B (logger=...): opened by run()

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _new_window() -> dict:
        return {
            "sums": {},
            "counts": {},
            "env_steps": 0,
            "env_time": 0.0,
            "updates": 0,
            "update_time": 0.0,
            "episodes": 0,
            "return_sum": 0.0,
        }

    def wall_time(self) -> float:
        return self.wall_offset + time.time() - self.t0

    def meta(self) -> dict:
        a = self.agent
        return {
            "versions": package_versions(),
            "git_commit": git_commit(),
            "obs_dim": self.env.obs_dim if self.cfg.obs == "state" else list(self.env.obs_shape),
            "act_dim": self.env.act_dim,
            "task_group": task_group(self.cfg.task),
            "latent_width": a.latent_width,
            "codebook_size": a.codebook_size,
            "seq_len": a.spec.seq_len,
            "updates_per_step": self.updates_per_step,
            "replay_capacity": self.replay_capacity or 0,  # effective; 0 = unbounded, as the top-level key
            "eval_seed": self.eval_seed,
            "device": str(self.device),
            "host": platform.node(),
            "command": "python -m iqrl.train " + " ".join(sys.argv[1:]) if sys.argv else "",
        }

    # ------------------------------------------------------------------ acting
    def collect_episode(self) -> tuple[float, bool]:
        """One training episode into the replay; returns (return, collected_by_agent)."""
        seeding = self.env_step < self.cfg.seed_steps
        uniform = seeding and not self.agent.spec.warmup_with_policy
        obs = self.env.reset()
        self.agent.on_episode_start(training=True)
        self.replay.start_episode(obs)
        ep_return, t = 0.0, time.time()
        while True:
            if uniform:
                action = self.rng.uniform(-1.0, 1.0, self.env.act_dim).astype(np.float32)
            else:
                action = self.agent.act(obs, explore=True)
            step = self.env.step(action)
            self.replay.add(action, step.reward, step.obs, step.terminated, step.truncated)
            ep_return += step.reward
            self.env_step += self.cfg.action_repeat
            self.window["env_steps"] += self.cfg.action_repeat
            obs = step.obs
            if not seeding and self.agent.spec.update_mode == "per_step":
                self.window["env_time"] += time.time() - t
                self.run_updates(self.credit(self.cfg.action_repeat))
                t = time.time()
            if step.terminated or step.truncated:
                break
        self.window["env_time"] += time.time() - t
        self.episode += 1
        return ep_return, not seeding

    def credit(self, env_steps: int) -> int:
        """Whole updates owed for `env_steps` new env steps (fractional credit carries over)."""
        self.update_credit += env_steps * self.updates_per_step
        n = int(math.floor(self.update_credit + 1e-9))
        self.update_credit -= n
        return n

    def run_updates(self, n: int) -> None:
        sums, counts = self.pending
        t = time.time()
        for _ in range(n):
            with self.autocast:
                metrics = self.agent.update(self.replay, self.updates)
            self.updates += 1
            for k, v in metrics.items():
                sums[k] = sums[k] + v if k in sums else v
                counts[k] = counts.get(k, 0) + 1
        self.window["updates"] += n
        self.window["update_time"] += time.time() - t

    def flush_metrics(self) -> None:
        """One host sync per episode: tensors -> floats, then the NaN/inf guard."""
        sums, counts = self.pending
        for k, v in sums.items():
            v = float(v)
            if not math.isfinite(v):
                raise NonFiniteLoss(f"non-finite {k} ({v}) in the updates ending at env_step {self.env_step}")
            self.window["sums"][k] = self.window["sums"].get(k, 0.0) + v
            self.window["counts"][k] = self.window["counts"].get(k, 0) + counts[k]
        self.pending = ({}, {})

    def train_after_episode(self, episode_env_steps: int, episode_return: float) -> None:
        mode = self.agent.spec.update_mode
        if mode == "per_episode":
            self.run_updates(self.credit(episode_env_steps))
        elif mode == "agent_decides":
            self.run_updates(
                int(self.agent.updates_due(episode_return, episode_env_steps, self.updates_per_step))
            )
        self.flush_metrics()
        self.agent.on_episode_end()

    def seed_burst_due(self) -> bool:
        """True after the last seed episode when the agent trains on the seed data at once (DCWM)."""
        spec = self.agent.spec
        return spec.seed_burst and spec.update_mode == "per_episode" and self.env_step >= self.cfg.seed_steps

    def video_due(self) -> bool:
        """At the evaluation at step 0 and the first one in each later block of `video_every` env steps."""
        every = self.cfg.video_every
        last = self.eval_rows[-1]["env_step"] if self.eval_rows else -1
        return every > 0 and (last < 0 or self.env_step // every > last // every)

    def evaluate(self) -> dict:
        returns = []
        recorder = None
        if self.video_due():  # the first episode on video (rendering leaves the episode and all RNGs alone)
            recorder = render.EpisodeRecorder(self.eval_env, render.TRAIN_VIDEO_SIZE)
        if self.batched_eval:
            returns = eval_batch(self.eval_envs(), self.agent, recorder and recorder.on_frame)
        else:
            returns = []
            for _ in range(self.cfg.eval_episodes):  # the first on video, if one is due
                returns.append(eval_episode(self.eval_env, self.agent, recorder and recorder.on_frame))
                if recorder is not None:
                    self.save_video(recorder, returns[0])
                    recorder = None
        if recorder is not None:
            self.save_video(recorder, returns[0])
        row = {
            "env_step": self.env_step,
            "episode_return": float(np.mean(returns)),
            "episode_return_std": float(np.std(returns)),
            "n_episodes": len(returns),
            "wall_time_s": round(self.wall_time(), 3),
        }
        self.eval_rows.append(row)
        self.trackers.log("eval", row)
        return row

    def eval_envs(self) -> list:
        """The evaluation env and eval_episodes - 1 copies of it for `eval_batch` (their streams are set
        there)."""
        cfg = self.cfg
        while len(self._eval_envs) < cfg.eval_episodes:
            env = make_env(
                cfg.task, self.eval_seed, cfg.action_repeat, cfg.episode_length, None, self.observation
            )
            self._eval_envs.append(env)
        return self._eval_envs

    def save_video(self, recorder, episode_return: float) -> None:
        recorder.save(self.run_dir / "videos" / render.video_name(self.env_step, episode_return))

    def diagnostics(self) -> dict:
        """Latent rank and active codebook on n = latent width observations drawn uniformly from the replay
        without replacement (repeated rows would cap the rank), with the diagnostics' own generator."""
        if self.replay.size == 0:
            return {}
        probe = self.agent.latent(self.replay.sample_obs(1, self.diag_generator))
        if probe is None:
            return {}
        obs = self.replay.sample_obs(probe.shape[1], self.diag_generator, replace=False)
        out = rank_metrics(self.agent.latent(obs).float())
        codes = self.agent.codes(obs)
        if codes is not None:
            out.update(active_codebook(codes, self.agent.codebook_size))
        out["latent_collapsed"] = int(
            latent_collapsed(out, self.agent.codebook_size if codes is not None else None)
        )
        return out

    def collapse_warning(self) -> str | None:
        """The run log's warning for a collapsed latent, at the first train.csv row that records one (so once
        per run: rows restored from a checkpoint count as seen)."""
        flagged = [r for r in self.train_rows if r.get("latent_collapsed")]
        if len(flagged) != 1 or flagged[0] is not self.train_rows[-1]:
            return None
        r = flagged[0]
        codes = (
            ""
            if r.get("active_codebook_pct_max") is None
            else f", at most {r['active_codebook_pct_max']:.3g}% of the codebook active in any group"
        )
        return (
            f"warning: collapsed latent at env_step {r['env_step']} (latent rank "
            f"{r['latent_rank']:.0f}{codes}): "
            "actor and critic see an almost constant input (train.csv column latent_collapsed; docs/fsq.md)"
        )

    def train_row(self) -> dict:
        w = self.window
        row = {"env_step": self.env_step, "episode": self.episode, "updates": self.updates}
        row.update({k: w["sums"][k] / w["counts"][k] for k in w["sums"]})
        row["train_return"] = w["return_sum"] / w["episodes"] if w["episodes"] else None
        expl = self.agent.exploration_sigma
        if expl is not None:
            row["expl_sigma"] = expl
        row.update(self.diagnostics())
        row["env_steps_per_s"] = w["env_steps"] / w["env_time"] if w["env_time"] > 0 else None
        row["updates_per_s"] = w["updates"] / w["update_time"] if w["update_time"] > 0 else None
        row["wall_time_s"] = round(self.wall_time(), 3)
        self.train_rows.append(row)
        self.trackers.log("train", row)
        self.window = self._new_window()
        return row

    # ------------------------------------------------------------------ files
    def write_logs(self) -> None:
        write_csv(self.run_dir / "eval.csv", self.eval_rows, EVAL_COLUMNS)
        if self.train_rows:
            write_csv(self.run_dir / "train.csv", self.train_rows)

    def state_dict(self) -> dict:
        return {
            "format": CHECKPOINT_FORMAT,
            "config": to_yaml_dict(self.cfg),
            "agent": self.agent.state_dict(),
            "replay": self.replay.state_dict(),
            "rng": {
                "python": random.getstate(),
                "numpy": np.random.get_state(),
                "torch": torch.get_rng_state(),
                "seed_actions": self.rng.bit_generator.state,
                "diag": self.diag_generator.get_state(),
            },
            "envs": {"train": self.env.get_state(), "eval": self.eval_env.get_state()},
            "counters": {
                k: getattr(self, k)
                for k in (
                    "env_step",
                    "episode",
                    "updates",
                    "update_credit",
                    "next_eval",
                    "next_diag",
                    "next_ckpt",
                    "last_return",
                )
            },
            "eval_rows": self.eval_rows,
            "train_rows": self.train_rows,
            "window": self.window,
            "wall_time": self.wall_time(),
        }

    def load_state_dict(self, s: dict) -> None:
        self.agent.load_state_dict(s["agent"])
        self.replay.load_state_dict(s["replay"])
        random.setstate(s["rng"]["python"])
        np.random.set_state(s["rng"]["numpy"])
        torch.set_rng_state(s["rng"]["torch"].cpu())
        self.rng.bit_generator.state = s["rng"]["seed_actions"]
        self.diag_generator.set_state(s["rng"]["diag"].cpu())
        self.env.set_state(s["envs"]["train"])
        self.eval_env.set_state(s["envs"]["eval"])
        for k, v in s["counters"].items():
            setattr(self, k, v)
        self.eval_rows, self.train_rows, self.window = s["eval_rows"], s["train_rows"], s["window"]
        self.wall_offset, self.t0 = s["wall_time"], time.time()

    def save_checkpoint(self) -> None:
        self.trackers.flush()  # what the checkpoint's rows were sent is on disk before a resume relies on it
        state = self.state_dict()
        atomic_write(self.run_dir / CHECKPOINT, lambda f: torch.save(state, f))

    def try_resume(self) -> bool:
        path = self.run_dir / CHECKPOINT
        if not path.exists():
            return False
        # Tensors land on the run's device; RNG states (CPU byte tensors for every generator, CUDA ones
        # included) go back to the CPU where they are set (`.cpu()` at each set_state).
        state = torch.load(path, map_location=self.device, weights_only=False)
        if state.get("format") != CHECKPOINT_FORMAT:
            raise RuntimeError(
                f"checkpoint {path} has format {state.get('format')}, expected {CHECKPOINT_FORMAT}"
            )
        self.load_state_dict(state)
        return True

    # ------------------------------------------------------------------ the loop
    def run(self, should_stop=None) -> int:
        remove_stale_temp_files(self.run_dir)  # left by a writer killed mid-write (we hold the run's lock)
        resumed = self.try_resume()
        if not resumed:
            config = to_yaml_dict(self.cfg)
            config["meta"] = self.meta()
            write_yaml(self.run_dir / "config.yaml", config)
        # rows after the checkpoint (or all, on a fresh start) are sent again: trackers drop earlier copies
        self.trackers = Trackers(
            self.cfg.logger, self.run_dir, to_yaml_dict(self.cfg), self.env_step + 1 if resumed else 0
        )
        try:
            return self._loop(should_stop, resumed)
        finally:
            self.trackers.close()

    def _loop(self, should_stop, resumed: bool) -> int:
        cfg = self.cfg
        self.write_logs()  # drop rows written after the checkpoint by an interrupted attempt
        write_status(self.run_dir, "running", self.env_step, cfg.steps)
        progress = Progress(cfg, self.env_step, resumed)
        if self.env_step == 0 and not self.eval_rows:
            progress.log_eval(self.evaluate())
            self.next_eval = cfg.eval_every
            self.write_logs()
        while self.env_step < cfg.steps:
            start = self.env_step
            ep_return, by_agent = self.collect_episode()
            self.last_return = ep_return
            self.window["episodes"] += 1
            self.window["return_sum"] += ep_return
            if by_agent:
                self.train_after_episode(self.env_step - start, ep_return)
            elif self.seed_burst_due():
                self.train_after_episode(self.env_step, ep_return)
            finished = self.env_step >= cfg.steps
            if self.env_step >= self.next_eval or finished:
                progress.log_eval(self.evaluate())
                while self.next_eval <= self.env_step:
                    self.next_eval += cfg.eval_every
            if self.env_step >= self.next_diag or finished:
                self.train_row()
                warning = self.collapse_warning()
                if warning:
                    progress.write(warning)
                while self.next_diag <= self.env_step:
                    self.next_diag += cfg.diag_every
            self.write_logs()
            progress.update(self.env_step, ep_return)
            if finished:
                break
            stop = should_stop is not None and should_stop()
            if self.env_step >= self.next_ckpt or stop:
                while self.next_ckpt <= self.env_step:  # first: the checkpoint holds the next due step
                    self.next_ckpt += cfg.checkpoint_every
                self.save_checkpoint()
            write_status(self.run_dir, "interrupted" if stop else "running", self.env_step, cfg.steps)
            if stop:
                progress.close(f"interrupted at env_step {self.env_step}; checkpoint saved, re-run to resume")
                return EXIT_INTERRUPTED
        self.save_checkpoint()
        write_status(self.run_dir, "done", self.env_step, cfg.steps)
        progress.close(f"done: {self.run_dir} (final return {self.eval_rows[-1]['episode_return']:.1f})")
        return EXIT_OK


class Progress:
    """tqdm on an interactive terminal, plain log lines otherwise."""

    def __init__(self, cfg: RunConfig, start: int, resumed: bool):
        self.cfg = cfg
        self.prefix = f"[{cfg.agent.name} {cfg.task} seed{cfg.seed}]"
        self.bar = None
        if sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=cfg.steps, initial=start, unit="step", desc=self.prefix, dynamic_ncols=True)
        if resumed:
            self.write(f"resumed from checkpoint at env_step {start}")

    def write(self, msg: str) -> None:
        line = f"{self.prefix} {msg}"
        if self.bar is not None:
            self.bar.write(line)
        else:
            print(line, flush=True)

    def log_eval(self, row: dict) -> None:
        self.write(
            f"eval env_step {row['env_step']}: return {row['episode_return']:.1f} "
            f"± {row['episode_return_std']:.1f} ({row['n_episodes']} episodes)"
        )

    def update(self, env_step: int, ep_return: float) -> None:
        if self.bar is not None:
            self.bar.n = env_step
            self.bar.set_postfix(train_return=f"{ep_return:.1f}", refresh=False)
            self.bar.refresh()

    def close(self, msg: str) -> None:
        self.write(msg)
        if self.bar is not None:
            self.bar.close()


# ---------------------------------------------------------------------- command line
USAGE = """usage: python -m iqrl.train agent=NAME task=DOMAIN-TASK seed=K steps=N out=RUN_DIR [key=value ...]

Top-level keys: agent, task, seed, steps, out, seed_steps, updates_per_step, replay_capacity, eval_every,
eval_episodes,
diag_every, checkpoint_every, device, precision, episode_length, action_repeat, sweep, variant, overrides,
logger ([csv], add tensorboard / wandb), video_every (env steps; 0 = no videos).
Agent keys: agent.<key>=value (e.g. agent.horizon=3 agent.fsq_levels=[8,5,5,5]).
--check validates the config and exits. Re-running on a run folder resumes it; on a done run does nothing."""


_MISSING = object()


def _lookup(tree: dict, dotted: str):
    for part in dotted.split("."):
        tree = tree.get(part, _MISSING) if isinstance(tree, dict) else _MISSING
    return tree


def _config_diff(saved: dict, new: dict, prefix: str = "") -> tuple[list[str], list[str], list[str]]:
    """(keys whose values differ, keys of `saved` that the current config no longer has, keys of the current
    config that `saved` lacks: added since the run was started)."""
    # Keys that do not change a run's results: where it lives, what it runs on, and how often its state is
    # checkpointed (resume equality makes the results independent of the checkpoint cadence).
    # So are the trackers and videos it writes beside its CSV files.
    ignore = {"out", "device", "meta", "checkpoint_every", "logger", "video_every"}
    diffs, obsolete, added = [], [], []
    for k in sorted(set(saved) | set(new)):
        if not prefix and k in ignore:
            continue
        a, b = saved.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            d, o, n = _config_diff(a, b, f"{prefix}{k}.")
            diffs, obsolete, added = diffs + d, obsolete + o, added + n
        elif k not in new:
            obsolete.append(f"{prefix}{k}")
        elif k not in saved:
            added.append(f"{prefix}{k}")
        elif a != b:
            diffs.append(f"{prefix}{k}")
    return diffs, obsolete, added


def check_run_folder(cfg: RunConfig) -> str | None:
    """'done' if the folder holds this run finished; None to (re)start. ConfigError if it holds another
    run."""
    run_dir = Path(cfg.out)
    saved = read_yaml(run_dir / "config.yaml")
    if saved is None:
        if (run_dir / "eval.csv").exists() or (run_dir / CHECKPOINT).exists():
            raise ConfigError(f"{run_dir} holds results but no config.yaml; refusing to overwrite it")
        return None
    diffs, obsolete, added = _config_diff(saved, to_yaml_dict(cfg))
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


def preflight(cfg: RunConfig) -> bool:
    """The checks before training `cfg` (ConfigError, one line, on failure); True if its folder holds it done.
    A finished run needs no device, so the device is checked only for a run still to train."""
    done = check_run_folder(cfg) == "done"
    if not done:
        device = resolve_device(cfg.device)
        check_device_type(cfg, device)
        check_precision(cfg, device)
        check_compile(cfg, device)
        check_watching(cfg)
        check_renderer(cfg)
    return done


def check_renderer(cfg: RunConfig) -> None:
    """obs=pixels needs a headless renderer (EGL, else OSMesa): ConfigError (one line) without one."""
    if cfg.obs == "pixels":
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
    if cfg.video_every > 0:
        try:
            select_backend()
        except RendererUnavailable as e:
            raise ConfigError(f"video_every needs a renderer: {e}") from None


def main(argv: list[str] | None = None, should_stop=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if any(a in ("-h", "--help") for a in argv):
        print(USAGE)
        return EXIT_OK
    check_only = "--check" in argv
    argv = [a for a in argv if a != "--check"]
    try:
        cfg = build_config(argv)
        if check_only:
            print(f"ok: {cfg.agent.name} on {cfg.task}, seed {cfg.seed}, {cfg.steps} env steps -> {cfg.out}")
            return EXIT_OK
        if preflight(cfg):
            print(f"{cfg.out}: already done, nothing to do", flush=True)
            return EXIT_OK
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    trainer = None
    try:
        with training_lock(Path(cfg.out)):
            trainer = Trainer(cfg)
            return trainer.run(should_stop)
    except RunBusy as e:  # the folder is another live process's: write nothing into it
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as e:  # recorded in status.json so sweeps and `make status` can show it
        import traceback

        traceback.print_exc()
        msg = f"{type(e).__name__}: {e}"
        step = trainer.env_step if trainer is not None else 0
        write_status(Path(cfg.out), "failed", step, cfg.steps, msg)
        print(f"error: run failed: {msg}", file=sys.stderr)
        return EXIT_FAILED


def stop_on_signals(name: str):
    """For a command line: Ctrl-C or SIGTERM asks the run to stop at the end of its episode with a
    checkpoint (exit 3, resumable); a second Ctrl-C aborts at once (the run then resumes from its last
    checkpoint). Installs the handlers and returns the `should_stop` callable for `Trainer.run`."""
    got: list[int] = []

    def stop_soon(signum, _frame):
        got.append(signum)
        print(
            f"[{name}] {signal.Signals(signum).name}: stopping at the end of this episode with a checkpoint "
            "(press Ctrl-C again to abort now)",
            file=sys.stderr,
            flush=True,
        )
        for s in (signal.SIGINT, signal.SIGTERM):
            signal.signal(s, signal.default_int_handler if s == signal.SIGINT else signal.SIG_DFL)

    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, stop_soon)
    return lambda: bool(got)


if __name__ == "__main__":
    sys.exit(main(should_stop=stop_on_signals("iqrl.train")))
