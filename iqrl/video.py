"""`make video`: evaluation videos of a run's checkpoint.

    python -m iqrl.video RUN_DIR [--episodes 1] [--size 480] [--ckpt PATH]      (make video RUN=...)

plays deterministic evaluation episodes of a run's checkpoint in the run's evaluation env, built and seeded
as the trainer builds its own (iqrl.core.parts.build_parts), and writes
RUN_DIR/videos/<env_step>-ep<k>-return<R>.mp4. It only reads the run folder (no lock: checkpoints are
replaced by rename, so a running run can be watched too) and adds nothing but that file. Training writes
RUN_DIR/videos/<env_step>-return<R>.mp4 (`video_every`). The rendering is iqrl/core/render.py.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import torch

from iqrl.core.config import from_yaml_dict
from iqrl.core.evaluation import eval_episode
from iqrl.core.parts import build_parts
from iqrl.core.render import EpisodeRecorder, select_backend, video_name
from iqrl.core.runfolder import CHECKPOINT, read_yaml
from iqrl.core.tasks import split_task, task_list


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
    path = Path(ckpt) if ckpt else run_dir / CHECKPOINT
    if not path.is_file():
        raise ValueError(f"no checkpoint {path}" + ("" if ckpt else " (the run has not saved one yet)"))
    select_backend()

    cfg = from_yaml_dict(read_yaml(run_dir / "config.yaml"))
    if (
        split_task(task_list(cfg.task)[0])[0] != "dmc"
    ):  # the renderer draws dm_control's physics (docs/suites.md)
        raise ValueError(f"videos are of DMC tasks only, not {cfg.task}")
    state = torch.load(path, map_location="cpu", weights_only=False)  # a renamed-over file stays readable
    env_step = int(state["counters"]["env_step"])
    # on the CPU and eager: acting needs neither a GPU nor compiled losses
    parts = build_parts(dataclasses.replace(cfg, compile=False, cudagraphs=False), torch.device("cpu"))
    env, agent = parts.eval_env, parts.agent
    agent.load_state_dict(state["agent"])
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


if __name__ == "__main__":
    sys.exit(main())
