"""`python -m iqrl.train`: train (or resume) one run from `key=value` arguments.

    python -m iqrl.train agent=iqrl task=walker-walk seed=1 steps=1000000 out=RUN_DIR [agent.horizon=3 ...]

Bad input is one `error:` line and exit 2 before anything is written; a run stopped by Ctrl-C or SIGTERM
checkpoints after its current agent step (mid-episode too) and exits 3; re-running the command resumes it
(iqrl.runfolder.exits).
The checks before a run are iqrl/loop/preflight.py, the run folder opened or resumed iqrl/loop/resume.py,
the loop itself iqrl/loop/trainer.py.
"""

from __future__ import annotations

import contextlib
import signal
import sys
from pathlib import Path

from iqrl.config.build import build_config
from iqrl.config.run import ConfigError
from iqrl.config.validate import warnings_of
from iqrl.core.checks import Refused
from iqrl.loop.preflight import check_folder, check_machine, check_run_folder, preflight
from iqrl.loop.trainer import Trainer
from iqrl.runfolder.checkpoints import checkpoint_step, restore_logs
from iqrl.runfolder.errors import failure_line, print_traceback_for
from iqrl.runfolder.exits import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK
from iqrl.runfolder.layout import CHECKPOINT
from iqrl.runfolder.lock import training_lock
from iqrl.runfolder.provenance import run_mode
from iqrl.runfolder.status import write_status

USAGE = """usage: python -m iqrl.train agent=NAME task=DOMAIN-TASK seed=K steps=N out=RUN_DIR [key=value ...]

Tasks: DMC domain-task (walker-walk), gym:<id>, metaworld:<task>, myosuite:<id> (docs/suites.md).

Top-level keys: agent, task, seed, steps, out, seed_steps, updates_per_step, replay_capacity, eval_every,
eval_episodes,
diag_every, checkpoint_every, device, precision, episode_length, action_repeat, sweep, variant, overrides,
logger ([csv], add tensorboard / wandb), video_every (env steps; 0 = no videos).
Agent keys: agent.<key>=value (e.g. agent.horizon=3 agent.fsq_levels=[8,5,5,5]).
--check validates the config and exits. Re-running on a run folder resumes it; on a done run does nothing."""


def main(argv: list[str] | None = None, should_stop=None) -> int:
    """The run's start, in order: the arguments parsed, the config built and checked (`--check` stops
    there), then the run trained (train)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if any(a in ("-h", "--help") for a in argv):
        print(USAGE)
        return EXIT_OK
    check_only = "--check" in argv
    argv = [a for a in argv if a != "--check"]
    try:
        cfg = build_config(argv)
        if cfg.cohorts != 1:
            raise ConfigError(
                f"cohorts={cfg.cohorts} splits a K-seed group (python -m iqrl.multiseed seeds=...); a single "
                "run takes 1"
            )
        for line in warnings_of(cfg):
            print(f"warning: {line}", file=sys.stderr)
        if check_only:
            return checked(cfg)
        done = preflight(cfg)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if done:
        return finished(Path(cfg.out))
    return train(cfg, run_mode(argv), should_stop)


def checked(cfg) -> int:
    """`--check`: the run folder's checks of the real run and what the run checks of its values on this
    machine, writing nothing; one `ok:` line (ConfigError otherwise)."""
    what = check_folder(cfg)
    if what != "already done":
        check_machine(cfg)
    run = f"{cfg.agent.name} on {cfg.task}, seed {cfg.seed}, {cfg.steps} env steps"
    print(f"ok: {run} -> {cfg.out} ({what})")
    return EXIT_OK


def train(cfg, how: dict, should_stop=None) -> int:
    """Under the run folder's lock: the folder opened (resumed from its checkpoint, or fresh), the run
    trained, then closed. A failure is one `error:` line, and status.json `failed` with it."""
    trainer = None
    try:
        with training_lock(Path(cfg.out)):
            if check_run_folder(cfg) == "done":  # finished by another process between preflight and the lock
                return finished(Path(cfg.out))
            trainer = Trainer(cfg)
            trainer.how = how
            try:
                resumed = trainer.open_folder()
                return trainer.train(resumed, should_stop)
            finally:
                trainer.close()
    except (
        Refused
    ) as e:  # another process's folder, nothing to resume, a disk too full to lock: nothing written
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:  # a second Ctrl-C (stop_on_signals): the run, its evaluation and workers ended
        return aborted(cfg, trainer)
    except Exception as e:  # recorded in status.json so sweeps and `make status` can show it
        print_traceback_for(e)
        msg = failure_line(e)
        step = trainer.env_step if trainer is not None else 0
        with contextlib.suppress(OSError):  # a full or read-only disk may refuse the status too
            write_status(Path(cfg.out), "failed", step, cfg.steps, msg)
        print(f"error: run failed: {msg}", file=sys.stderr)
        return EXIT_FAILED


def aborted(cfg, trainer: Trainer | None) -> int:
    """A run aborted by a second Ctrl-C: status.json `interrupted` at its last checkpoint's env step (where
    the re-run resumes, as from any stop), saying so; one line; exit 3."""
    at = trainer.env_step if trainer is not None else 0
    held = checkpoint_step(Path(cfg.out) / CHECKPOINT) or 0
    msg = f"aborted by a second Ctrl-C at env step {at}; a re-run resumes from its checkpoint at env step "
    msg += str(held)
    with contextlib.suppress(OSError):
        write_status(Path(cfg.out), "interrupted", held, cfg.steps, msg)
    print(f"interrupted: {msg}", file=sys.stderr, flush=True)
    return EXIT_INTERRUPTED


def finished(run_dir: Path) -> int:
    """A finished run: nothing to do, or its eval.csv / train.csv, deleted since, written again from its last
    checkpoint (status.json stays `done` whatever happens)."""
    try:
        restored = restore_logs(run_dir)
    except Refused as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as e:  # a full disk
        print(f"error: {failure_line(e)}", file=sys.stderr)
        return EXIT_FAILED
    what = f"{' and '.join(restored)} written again from its last checkpoint" if restored else "nothing to do"
    print(f"{run_dir}: already done, {what}", flush=True)
    return EXIT_OK


def stop_on_signals(name: str):
    """For a command line: Ctrl-C or SIGTERM asks the run to stop after its current agent step with a
    checkpoint (exit 3, resumable); a second Ctrl-C aborts at once (the run then resumes from its last
    checkpoint). Installs the handlers and returns the `should_stop` callable for `Trainer.run`."""
    got: list[int] = []

    def stop_soon(signum, _frame):
        got.append(signum)
        # the second Ctrl-C's handler first: one that comes as soon as the line below is read must abort
        for s in (signal.SIGINT, signal.SIGTERM):
            signal.signal(s, signal.default_int_handler if s == signal.SIGINT else signal.SIG_DFL)
        print(
            f"[{name}] {signal.Signals(signum).name}: stopping after this agent step with a checkpoint "
            "(press Ctrl-C again to abort now)",
            file=sys.stderr,
            flush=True,
        )

    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, stop_soon)
    return lambda: bool(got)


if __name__ == "__main__":
    sys.exit(main(should_stop=stop_on_signals("iqrl.train")))
