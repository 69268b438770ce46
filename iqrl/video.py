"""`make video`: evaluation videos of a run's checkpoint.

    python -m iqrl.video RUN_DIR [--episodes 1] [--size 480] [--ckpt PATH]      (make video RUN=...)

plays deterministic evaluation episodes of a run's checkpoint in the run's evaluation env, built and seeded
as the trainer builds its own (iqrl.loop.parts.build_parts) and started, as the run's evaluation at the
checkpoint's step was (`eval_reseed`), from that step's states, and writes
RUN_DIR/videos/<env_step>-ep<k>-return<R>.mp4. The checkpoint is verified as a resume verifies it
(iqrl/runfolder/checkpoints.py): a latest generation that cannot be used is named in a warning and the
previous
one is shown; one that `--ckpt` names must pass. It only reads the run folder (no lock: checkpoints are
replaced by rename, so a running run can be watched too) and adds nothing but that file. Training writes
RUN_DIR/videos/<env_step>-return<R>.mp4 (`video_every`). The rendering is iqrl/envs/render.py.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import torch

from iqrl.config.build import from_yaml_dict
from iqrl.envs.render import EpisodeRecorder, select_backend, video_name
from iqrl.envs.tasks import split_task, task_list
from iqrl.loop.evaluation import eval_episode
from iqrl.loop.parts import build_parts
from iqrl.runfolder import checkpoints
from iqrl.runfolder.layout import CHECKPOINT
from iqrl.runfolder.yamlfile import read_config


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m iqrl.video", description=__doc__.split("\n\n")[0])
    p.add_argument("run", help="run folder")
    p.add_argument("--episodes", type=int, default=1)
    p.add_argument("--size", type=int, default=480, help="frame width and height in pixels (even)")
    p.add_argument("--ckpt", default="", help="checkpoint file (default: RUN/checkpoint/ckpt.pt)")
    args = p.parse_args(argv)
    try:
        return record_run(Path(args.run), args.episodes, args.size, args.ckpt)
    except (ValueError, RuntimeError) as e:  # ConfigError, RendererUnavailable, BlankFrames
        print(f"error: {e}", file=sys.stderr)
        return 2


def record_run(run_dir: Path, episodes: int, size: int, ckpt: str = "") -> int:
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    if size < 16 or size > 4096 or size % 2:
        raise ValueError(f"size must be an even number of pixels in 16..4096, got {size}")
    if not (run_dir / "config.yaml").is_file():
        raise ValueError(f"{run_dir} is not a run folder (no config.yaml)")
    if ckpt and not Path(ckpt).is_file():
        raise ValueError(f"no checkpoint {ckpt}")
    if not ckpt and not any((run_dir / p).is_file() for p in (checkpoints.LATEST, checkpoints.PREVIOUS)):
        raise ValueError(f"no checkpoint {run_dir / CHECKPOINT} (the run has not saved one yet)")
    select_backend()

    cfg = from_yaml_dict(read_config(run_dir))
    if (
        split_task(task_list(cfg.task)[0])[0] != "dmc"
    ):  # the renderer draws dm_control's physics (docs/suites.md)
        raise ValueError(f"videos are of DMC tasks only, not {cfg.task}")
    path, state = checkpoint_to_show(run_dir, Path(ckpt) if ckpt else None)
    env_step = int(state["counters"]["env_step"])
    # on the CPU and eager: acting needs neither a GPU nor compiled losses
    parts = build_parts(dataclasses.replace(cfg, compile=False, cudagraphs=False), torch.device("cpu"))
    env, agent = parts.eval_env, parts.agent
    try:
        agent.load_state_dict(state["agent"])
    except (RuntimeError, KeyError, ValueError, TypeError) as e:  # verified, but of another agent or size
        raise ValueError(checkpoints.misfit(path, e)) from None
    if (
        cfg.eval_reseed
    ):  # the first episodes of the run's evaluation at the checkpoint's step (its eval.csv row)
        parts.seed_evaluation(env_step)
    torch.manual_seed(parts.eval_seed)  # planners sample even when acting deterministically
    np.random.seed(parts.eval_seed)
    for k in range(1, episodes + 1):
        t = time.time()
        recorder = EpisodeRecorder(env, size)
        ret = eval_episode(env, agent, recorder.on_frame).ret
        out = recorder.save(run_dir / "videos" / video_name(env_step, ret, k))
        print(
            f"{out}: return {ret:.1f}, {len(recorder.frames)} frames {size}x{size}, "
            f"{time.time() - t:.1f} s ({select_backend()})",
            flush=True,
        )
    return 0


def checkpoint_to_show(run_dir: Path, ckpt: Path | None) -> tuple[Path, dict]:
    """`ckpt` and its verified state, else the run's latest usable generation (a warning names a latest that
    cannot be used); ValueError (one line) when there is none."""
    if ckpt is not None:
        try:
            return ckpt, checkpoints.verified(ckpt, "cpu")
        except checkpoints.Unreadable as e:
            raise ValueError(f"{ckpt} cannot be used ({e})") from None
    found = checkpoints.generations(run_dir, "cpu")
    good = [g for g in found if g.state is not None]
    if not good:
        why = "; ".join(f"{g.path.name}: {g.reason}" for g in found)
        raise ValueError(f"{run_dir} has no usable checkpoint ({why})")
    for bad in found[: found.index(good[0])]:
        print(
            f"warning: {bad.path} cannot be used ({bad.reason}); showing {good[0].path.name} "
            f"(env_step {checkpoints.step_of(good[0])})",
            file=sys.stderr,
            flush=True,
        )
    return good[0].path, good[0].state


if __name__ == "__main__":
    sys.exit(main())
