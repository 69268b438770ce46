"""Packed jobs: up to ``runs_per_job`` runs in one Slurm array task (or one local job), each still its own.

A cluster charges by the GPU-hour, and one run of the paper config leaves a modern GPU mostly idle (its
networks are small: the GPU waits on the host). A profile's ``runs_per_job: K`` makes `make sweep` put up to
K runs in each job. A packed job runs them in one of two ways:

* **seeds**: runs that differ only in their seed, of a config the vectorised K-seed mode supports
  (``iqrl.multiseed.refusals.unsupported``) and whose checkpoints hold the same env steps (``held_steps``:
  fresh runs hold none), train as one ``iqrl.multiseed`` process with the networks vectorised over seeds.
  The job's CPUs all go to that process. Its numbers are those of single-seed runs up to floating-point
  rounding (docs/sweeps.md, "Packed jobs").
* **processes**: any other runs train side by side, one child process per run (``python -m slurm.pack``,
  each an ordinary ``slurm.run.Run``), sharing the job's GPU; the job's CPUs are split evenly between them
  (``cpus // K`` torch/OpenMP threads each, at least 1). Each child writes its output to ``<run>/job.log``.
  A run trained this way gives the eval.csv of the same run in a job of its own.

Either way every run keeps its own folder, claim (naming the job), run lock, status, checkpoint and log, so
`make status`, `make figures`, resume and resubmission see runs exactly as unpacked ones. Signals reach the
job's process; it forwards USR2 / SIGTERM / SIGINT to every child still running, so each run stops after its
current agent step with a checkpoint. After USR2 (the time limit is near, or preemption) the job asks
submitit to requeue it with the runs that are neither done nor failed: a run that finished early is not
rerun, and does not keep the others from being checkpointed and requeued. A run that fails does not stop
its neighbours; the job reports the failure once all have ended.
"""

from __future__ import annotations

import ctypes
import importlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from iqrl.runfolder.exits import EXIT_INTERRUPTED
from iqrl.runfolder.status import read_status
from slurm.claim import RunLock, release_claim
from slurm.run import Run, RunFailed, _job_id, _record_failure, _StopFlag, set_threads
from slurm.state import is_done

SIGNALS = (signal.SIGUSR2, signal.SIGTERM, signal.SIGINT)
JOB_LOG = "job.log"  # a packed run's own output, in its run folder (appended, one header per attempt)


# ---------------------------------------------------------------------------------------------- grouping
def group_runs(
    runs: Sequence[Any], k: int, seeds_key: Callable[[Any], Hashable | None]
) -> list[tuple[str, list]]:
    """Split ``runs`` into jobs of at most ``k``: ``("seeds", runs)`` for runs sharing a non-None
    ``seeds_key`` (one vectorised process), ``("processes", runs)`` for the rest, in the order given; a seed
    group's remainder of one joins the process jobs (it gains nothing from the vectorised mode)."""
    if k <= 1:
        return [("processes", [r]) for r in runs]
    by_key: dict[Hashable, list] = {}
    rest: list = []
    for r in runs:
        key = seeds_key(r)
        (by_key.setdefault(key, []) if key is not None else rest).append(r)
    jobs: list[tuple[str, list]] = []
    for members in by_key.values():
        for i in range(0, len(members), k):
            chunk = members[i : i + k]
            if len(chunk) > 1:
                jobs.append(("seeds", chunk))
            else:
                rest.extend(chunk)
    order = {id(r): i for i, r in enumerate(runs)}
    rest.sort(key=lambda r: order[id(r)])
    jobs += [("processes", rest[i : i + k]) for i in range(0, len(rest), k)]
    jobs.sort(key=lambda job: order[id(job[1][0])])
    return jobs


def trainer_seeds_key(results: Path) -> Callable[[Any], Hashable | None]:
    """For the real trainer: runs of one config (all but the seed) that the K-seed mode supports, with the
    same checkpointed env steps, share a key. ``iqrl.multiseed`` resumes a group from the latest env step
    all its seeds hold, so seeds interrupted at different steps must not be grouped."""
    # here, not at the top: these import torch (~3 s), which the sweep commands need only for real runs
    from iqrl.config.build import build_config
    from iqrl.multiseed.refusals import unsupported
    from iqrl.multiseed.runs import held_steps

    def key(r: Any) -> Hashable | None:
        if unsupported(build_config(r.argv(results))):
            return None
        return (r.agent, r.task, r.variant, r.steps, r.overrides, held_steps(r.run_dir(results)))

    return key


# The update modes a K-seed group can train in, and the overrides that select them.
GROUP_MODES = {"eager": (), "compiled": ("compile=true",), "graphs": ("compile=true", "cudagraphs=true")}


def group_mode(
    runs: Sequence[Any], results: Path, pack_mode: str, device: str
) -> tuple[tuple[str, ...], str]:
    """The overrides that set the update mode a packed job's K-seed group trains in, and the mode with its
    reason (one phrase, for DRY=1).

    In order: the mode the runs' own overrides pin (`compile=`, `cudagraphs=`); the mode a run of the group
    began in (its config.yaml: `compile` is part of a run's identity, so a run resumes in the mode it started
    in whatever was measured since); the profile's `pack_mode` unless it is `auto`; on CUDA, the mode of the
    fastest measured bench row for the agent at K <= the group's seeds (slurm/projection.py), else compiled
    (it removes the host's per-operator cost, the bottleneck of small networks on a GPU; graph capture only
    where a row measured it, and only once a GPU report found a captured group's update equal to the eager
    group's: `group_graphs_verified`); on the CPU, eager. A mode the K-seed mode refuses for this config
    falls back to eager."""
    from iqrl.config.build import build_config
    from iqrl.multiseed.refusals import unsupported
    from iqrl.runfolder.yamlfile import read_config
    from slurm.projection import group_graphs_verified, measured_rows, run_rate

    first = runs[0]
    argv = [*first.argv(results), f"device={device}"]
    if {o.split("=", 1)[0] for o in first.overrides} & {"compile", "cudagraphs"}:
        return (), "as the sweep sets it"
    for r in runs:
        saved = read_config(r.run_dir(results))
        if saved is not None:
            mode = "graphs" if saved.get("cudagraphs") else "compiled" if saved.get("compile") else "eager"
            return GROUP_MODES[mode], f"{mode} ({r.key} began so)"
    if pack_mode != "auto":
        mode, why = pack_mode, "the profile's pack_mode"
    elif device != "cuda":
        mode, why = "eager", "auto on the CPU"
    else:
        rows = measured_rows()
        if not group_graphs_verified():  # a captured group is not trained in until a GPU checked it
            rows = [r for r in rows if str(r.get("compile")).lower() != "cudagraphs"]
        rate = run_rate(first, build_config(argv), len(runs), rows)
        mode = rate.mode if rate.row else "compiled"
        why = f"fastest measured: {rate.row}" if rate.row else "auto on CUDA, no measured row"
    if mode != "eager" and unsupported(build_config([*argv, *GROUP_MODES[mode]])):
        return (), f"eager (the K-seed mode refuses {mode} for this config)"
    return GROUP_MODES[mode], f"{mode} ({why})"


# ---------------------------------------------------------------------------------------------- the job
@dataclass(frozen=True)
class Pack:
    """Several runs in one job (see the module docstring). ``mode``: ``seeds`` or ``processes``; ``threads``:
    the job's CPUs."""

    runs: tuple[Run, ...]
    mode: str = "processes"
    threads: int | None = None
    seeds_entry: str = "iqrl.multiseed.runs:main"
    # processes: each run's threads, fixed when the job is made (the job's CPUs // its runs) and kept when it
    # is rerun or requeued with fewer runs left: its float sums depend on its threads.
    run_threads: int | None = None

    def __post_init__(self) -> None:
        if self.run_threads is None:
            object.__setattr__(self, "run_threads", max(1, (self.threads or 1) // max(1, len(self.runs))))

    def checkpoint(self, *args: Any, **kwargs: Any):
        """submitit's requeue hook: the runs that are neither done nor failed (their state is on disk); in
        seeds mode the done ones too, whose places among the seeds the others keep (`_train_seeds`)."""
        from submitit.helpers import DelayedSubmission

        kept = ("interrupted", "done") if self.mode == "seeds" else ("interrupted",)
        left = tuple(r for r in self.runs if _outcome(Path(r.run_dir)) in kept)
        return DelayedSubmission(replace(self, runs=left))

    def __call__(self) -> str:
        flag = _StopFlag()
        children: list[subprocess.Popen] = []

        def on_signal(signum: int, frame: Any) -> None:
            flag.handler(signum, frame)
            forward_signal(children, signum)

        saved = {s: signal.getsignal(s) for s in SIGNALS}
        for s in SIGNALS:
            signal.signal(s, on_signal)
        try:
            if self.mode == "seeds":
                self._train_seeds(flag)
            else:
                self._train_processes(children)
        finally:
            for s, h in saved.items():
                signal.signal(s, h)
        outcomes = {r.label or r.run_dir: _outcome(Path(r.run_dir)) for r in self.runs}
        summary = ", ".join(f"{name}: {what}" for name, what in outcomes.items())
        if flag.signum == signal.SIGUSR2 and "interrupted" in outcomes.values():
            if callable(saved[signal.SIGUSR2]):
                saved[signal.SIGUSR2](signal.SIGUSR2, None)  # submitit: checkpoint(), requeue, exit
        if "failed" in outcomes.values():
            raise RunFailed(summary)
        return summary

    # ------------------------------------------------------------------ processes
    def _train_processes(self, children: list[subprocess.Popen]) -> None:
        """One child process per run not done yet, each with its share of the job's threads."""
        runs = [r for r in self.runs if not is_done(Path(r.run_dir))]
        threads = self.run_threads
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
        job = _job_id()
        for run in runs:
            spec = json.dumps({**asdict(replace(run, threads=threads)), "argv": list(run.argv)})
            Path(run.run_dir).mkdir(parents=True, exist_ok=True)
            log = open(Path(run.run_dir) / JOB_LOG, "a")  # noqa: SIM115 (the child holds it from here)
            log.write(
                f"\n=== job {job} on {socket.gethostname()}, {time.strftime('%Y-%m-%d %H:%M:%S')} ===\n"
            )
            log.flush()
            # The signals stay blocked in the child (the mask survives exec) until its Run has installed
            # its handler: a USR2 arriving while the child still imports torch would otherwise kill it.
            old = signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
            try:
                children.append(
                    subprocess.Popen(
                        [sys.executable, "-u", "-m", "slurm.pack", spec],
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        env=env,
                    )
                )
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, old)
                log.close()
            print(f"[slurm.pack] started {run.label}: pid {children[-1].pid}, log {log.name}", flush=True)
        for run, p in zip(runs, children):
            rc = p.wait()
            print(f"[slurm.pack] {run.label}: exit code {rc}", flush=True)

    # ------------------------------------------------------------------ seeds
    def _train_seeds(self, flag: _StopFlag) -> None:
        """The runs that are not done and not held by another process, as one ``iqrl.multiseed`` process."""
        job = _job_id()
        info = {"job_id": job, "host": socket.gethostname(), "pid": os.getpid(), "started": time.time()}
        locks, mine = [], []
        try:
            for run in self.runs:
                lock = RunLock(Path(run.run_dir))
                if is_done(Path(run.run_dir)):
                    continue
                if not lock.acquire(info):
                    print(f"[slurm.pack] skip {run.label}: another process is running it", flush=True)
                    continue
                locks.append(lock)
                if is_done(Path(run.run_dir)):  # finished by another job between the check and the lock
                    continue
                mine.append(run)
            if not mine:
                return
            # the done runs too, which the K-seed command skips, keeping their places: each seed computes in
            # its slot among the pack's seeds in every job that trains it (iqrl.multiseed.group.SeedGroup)
            argv = seeds_argv([r.argv for r in self.runs if r in mine or is_done(Path(r.run_dir))])
            module, _, func = self.seeds_entry.partition(":")
            print(f"[slurm.pack] {len(mine)} seeds: {module} {' '.join(argv)}", flush=True)
            set_threads(self.threads, before_import=True)
            try:
                main = getattr(importlib.import_module(module), func)
                set_threads(self.threads)
                rc = int(main(argv, should_stop=flag))
            except Exception as e:  # the group could not even start
                for run in mine:
                    _record_failure(Path(run.run_dir), f"{type(e).__name__}: {e}")
                raise
            for run in mine:
                d = Path(run.run_dir)
                if is_done(d):
                    release_claim(d, job)
                elif rc not in (0, EXIT_INTERRUPTED) and _outcome(d) != "failed":
                    _record_failure(d, f"{module} exit code {rc} (see the job log {job})")
        finally:
            for lock in locks:
                lock.release()


def seeds_argv(argvs: Sequence[Sequence[str]]) -> list[str]:
    """The ``iqrl.multiseed`` command line of runs that differ only in ``seed=`` and ``out=ROOT/seed<k>``."""
    seeds, roots, rests = [], set(), set()
    for argv in argvs:
        seeds += [a[5:] for a in argv if a.startswith("seed=")]
        roots |= {str(Path(a[4:].strip('"')).parent) for a in argv if a.startswith("out=")}
        rests.add(tuple(a for a in argv if not a.startswith(("seed=", "out="))))
    if len(roots) != 1 or len(rests) != 1 or len(seeds) != len(argvs):
        raise ValueError(f"not the seeds of one config: {argvs}")
    return [*next(iter(rests)), f"seeds={','.join(seeds)}", f"out={roots.pop()}"]


def forward_signal(children: Sequence[subprocess.Popen], signum: int) -> None:
    """`signum` to each child still running, whose Run then stops after its current agent step. A child whose
    exit the job's `wait` has just collected is passed by: the handler runs between that wait's system call
    and its return, when `poll` cannot take the wait's lock and says None of a process that is gone."""
    for p in children:
        if p.poll() is None:
            try:
                os.kill(p.pid, signum)
            except ProcessLookupError:
                pass


def _outcome(run_dir: Path) -> str:
    """done | failed | interrupted (resumable: anything else)."""
    state = (read_status(run_dir) or {}).get("state")
    return state if state in ("done", "failed") else "interrupted"


# ---------------------------------------------------------------------------------------------- the child
def _die_with_parent() -> None:
    """Ask Linux for a SIGTERM when the job's process dies (SIGKILL, OOM): the run then stops at its episode
    boundary with a checkpoint instead of training on, orphaned. Best effort: elsewhere it does nothing."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the parent died before the request was made
        os.kill(os.getpid(), signal.SIGTERM)


def _child(spec: str) -> int:
    """One run of a process-mode pack: 0 done (or skipped), 3 interrupted, 1 failed."""
    _die_with_parent()
    fields = json.loads(spec)
    run = Run(**{**fields, "argv": tuple(fields["argv"])})
    try:
        message = run()
    except RunFailed as e:
        print(f"[slurm.pack] {e}", file=sys.stderr, flush=True)
        return 1
    print(f"[slurm.pack] {message}", flush=True)
    return EXIT_INTERRUPTED if "interrupted" in message else 0


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1]))
