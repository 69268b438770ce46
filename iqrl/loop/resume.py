"""A run's checkpoint and resume: what a checkpoint of the loop holds (everything it needs, the open episode
included), saving it, loading the latest readable one, and opening the run folder for training (resumed from
its checkpoint, or fresh with its config.yaml written).

Resumable is the part of iqrl.loop.trainer.Trainer that reads and writes its state: it works on the
trainer's parts, counters and logs (Trainer.__init__ makes them), and the loop calls save_checkpoint when one
is due.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from iqrl.config.run import to_yaml_dict
from iqrl.loop.episode import OpenEpisode, random_states, set_random_states, take_up
from iqrl.loop.timing import TimeSplit
from iqrl.loop.transfer import load_parts
from iqrl.runfolder import checkpoints
from iqrl.runfolder.atomic import remove_stale_temp_files
from iqrl.runfolder.lock import check_lock
from iqrl.runfolder.provenance import lock_change, run_meta
from iqrl.runfolder.yamlfile import read_config, write_yaml

CHECKPOINT_FORMAT = checkpoints.CHECKPOINT_FORMAT
#: The loop's counters, checkpointed under these names.
COUNTERS = "env_step episode updates next_eval next_diag next_ckpt last_return".split()


class Resumable:
    """The checkpointed state of a Trainer, and its run folder opened from it."""

    def open_folder(self) -> bool:
        """Open the run folder for training: resumed from its latest readable checkpoint (True), or fresh
        (False) with its config.yaml written (and, for a run starting from parts of another, its first
        checkpoint)."""
        remove_stale_temp_files(self.run_dir)  # left by a writer killed mid-write (we hold the run's lock)
        resumed = self.try_resume()
        if resumed and (change := lock_change((read_config(self.run_dir) or {}).get("meta"))):
            print(f"warning: {self.run_dir}: {change}", file=sys.stderr, flush=True)
        if not resumed:
            config = to_yaml_dict(self.cfg)
            config["meta"] = run_meta(self.cfg, self.parts, self.credit.rate, self.how)
            if self.cfg.init_from:  # parts of another run; a checkpoint at once, so it never reads it again
                config["meta"]["init"] = load_parts(self.agent, self.cfg)
            write_yaml(self.run_dir / "config.yaml", config)
            if self.cfg.init_from:
                self.save_checkpoint()
        return resumed

    def state_dict(self) -> dict:
        assert self.beside is None, "a checkpoint taken with an evaluation under way beside training"
        return {
            "format": CHECKPOINT_FORMAT,
            "config": to_yaml_dict(self.cfg),
            "agent": self.agent.state_dict(),
            "replay": self.replay.state_dict(),
            "rng": random_states(self.rng, self.diag_generator),
            "envs": {  # per task (older checkpoints: the one task's states themselves), then train_envs > 1's
                "train": [env.get_state() for env in self.parts.envs],
                "eval": [env.get_state() for env in self.parts.eval_envs],
                "more_train": [env.get_state() for env in self.parts.more_envs],
            },
            "counters": {**{k: getattr(self, k) for k in COUNTERS}, "update_credit": self.credit.carried},
            # the training episode under way (None at an episode's end: every checkpoint of older versions)
            "open_episode": None if self.open is None else self.open.state_dict(),
            **({"lanes": self.lanes.state_dict(self.open)} if len(self.lanes) > 1 else {}),
            "unsynced": self.unsynced,  # metrics of updates not yet summed into a row, as they are
            "eval_rows": self.eval_rows,
            "train_rows": self.train_rows,
            "state_ring": self.state_ring.state_dict(),  # (the last pairs of observation and true state)
            "window": self.row_totals,  # (the checkpoint's key of old)
            "wall_time": self.wall_time(),
            "time_split": {"total": self.split.summary(), "window": dict(self.split.window)},
        }

    def load_state_dict(self, s: dict) -> None:
        self.agent.load_state_dict(s["agent"])
        self.replay.load_state_dict(s["replay"])
        p = self.parts
        for kind, kind_envs in (("train", p.envs), ("eval", p.eval_envs), ("more_train", p.more_envs)):
            states = s["envs"].get(kind, [])
            for env, state in zip(kind_envs, states if isinstance(states, list) else [states], strict=True):
                env.set_state(state)
        if len(self.lanes) > 1:
            self.lanes.take_up(self, s["lanes"])
        else:
            self.open = None if s.get("open_episode") is None else self.take_up(s["open_episode"])
        # the global generators after the replayed episode, which an env may have drawn from
        set_random_states(s["rng"], self.rng, self.diag_generator)
        self.unsynced = s.get("unsynced", ({}, {}))
        counters = dict(s["counters"])
        self.credit.carried = counters.pop("update_credit")
        for k, v in counters.items():
            setattr(self, k, v)
        self.eval_rows, self.train_rows, self.row_totals = s["eval_rows"], s["train_rows"], s["window"]
        self.state_ring.load_state_dict(s.get("state_ring"))  # a checkpoint of before the ring: empty
        self.wall_offset, self.t0 = s["wall_time"], time.time()
        # (a checkpoint of before the split: the summary counts from the resume on)
        self.split = TimeSplit(s.get("time_split", {}).get("total"))
        self.split.window.update(s.get("time_split", {}).get("window", {}))

    def take_up(self, saved: dict) -> OpenEpisode:
        """The open episode of a checkpoint in its task's (current) training env (iqrl.loop.episode)."""
        self.select_task(saved["task"])
        return take_up(self.env, saved, self.run_dir)

    def save_checkpoint(self) -> None:
        with self.split("write"):
            self._save_checkpoint()

    def _save_checkpoint(self) -> None:
        self.trackers.flush()  # what the checkpoint's rows were sent is on disk before a resume relies on it
        check_lock(self.run_dir)
        checkpoints.save(self.run_dir, self.state_dict())  # the latest generation; the one before is kept

    def try_resume(self) -> bool:
        """Load the latest readable checkpoint generation (iqrl/runfolder/checkpoints.py); False for a fresh
        run.
        Tensors land on the run's device; RNG states (CPU byte tensors for every generator, CUDA ones
        included) go back to the CPU where they are set (`.cpu()` at each set_state)."""
        chosen = checkpoints.resume_state(self.run_dir, self.device)
        if chosen is None:
            return False
        self.load_checkpoint(chosen.path, chosen.state)
        return True

    def load_checkpoint(self, path: Path, state: dict) -> None:
        """load_state_dict of verified checkpoint `path`; one line (NoReadableCheckpoint) when its tensors do
        not fit this run's agent, replay or envs (torch's many-line refusal)."""
        try:
            self.load_state_dict(state)
        except (RuntimeError, KeyError, ValueError, TypeError, IndexError) as e:
            raise checkpoints.NoReadableCheckpoint(
                f"{checkpoints.misfit(path, e)}, so the run cannot resume from it: delete the folder to "
                "start the run again, or choose another out="
            ) from None
