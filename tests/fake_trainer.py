"""A stand-in trainer with the contract of `iqrl.train.main`, fast and dependency-free, for sweep tests.

argv: key=value as for iqrl.train (agent, task, seed, steps, out, episode_length, eval_every, ...; unknown
keys are ignored). Every episode (episode_length env steps) sleeps FAKE_TRAINER_EPISODE_S seconds (env var,
default 0.02), then checkpoints; eval rows are a deterministic function of (seed, env_step). At each start
it appends "start <env_step> <pid>" to starts.log, so tests can count how often a run was (re)started;
fail=true (or fail_seed=<its seed>) makes it record a failure instead; exit=K makes it return K at once,
writing nothing (as the real trainer does for bad input, exit 2). With FAKE_TRAINER_GATE=<path> it finishes
only once that file exists, so a test can look at a run that is still open without racing it.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

EXIT_INTERRUPTED = 3


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def _status(out: Path, state: str, step: int, steps: int, error: str | None = None) -> None:
    _write(
        out / "status.json",
        json.dumps(
            {"state": state, "env_step": step, "steps": steps, "error": error, "updated_at": time.time()}
        ),
    )


def main(argv, should_stop=None) -> int:
    cfg = dict(a.split("=", 1) for a in argv)
    if "exit" in cfg:
        return int(cfg["exit"])
    out = Path(cfg["out"].strip('"'))
    steps, seed = int(cfg["steps"]), int(cfg["seed"])
    episode = int(cfg.get("episode_length", 100))
    eval_every = int(cfg.get("eval_every", 1000))
    out.mkdir(parents=True, exist_ok=True)
    status_path = out / "status.json"
    if status_path.exists() and json.loads(status_path.read_text())["state"] == "done":
        return 0
    if cfg.get("fail") == "true" or cfg.get("fail_seed") == str(seed):
        _status(out, "failed", 0, steps, "ValueError: asked to fail")
        return 1
    ckpt = out / "checkpoint" / "ckpt.json"
    state = json.loads(ckpt.read_text()) if ckpt.exists() else {"env_step": 0, "rows": []}
    with open(out / "starts.log", "a") as f:
        f.write(f"start {state['env_step']} {os.getpid()}\n")
    sleep = float(os.environ.get("FAKE_TRAINER_EPISODE_S", "0.02"))
    while state["env_step"] < steps:
        time.sleep(sleep)
        state["env_step"] += episode
        if state["env_step"] % eval_every == 0 or state["env_step"] >= steps:
            state["rows"].append(f"{state['env_step']},{(seed * 7919 + state['env_step']) % 1000}")
        _write(out / "eval.csv", "env_step,episode_return\n" + "".join(r + "\n" for r in state["rows"]))
        ckpt.parent.mkdir(exist_ok=True)
        _write(ckpt, json.dumps(state))
        if state["env_step"] >= steps:
            break
        stop = should_stop is not None and should_stop()
        _status(out, "interrupted" if stop else "running", state["env_step"], steps)
        if stop:
            return EXIT_INTERRUPTED
    gate = os.environ.get("FAKE_TRAINER_GATE")
    while gate and not Path(gate).exists():  # a test holds the run open until it has looked at it
        time.sleep(0.05)
    _status(out, "done", state["env_step"], steps)
    return 0
