"""The K-seed mode's runs: one Trainer and thread per seed around a `SeedGroup`, one stop decision, resume
from the checkpoints all seeds hold, and the command line.

    python -m iqrl.multiseed seeds=0,1,2,3 agent=iqrl task=walker-walk steps=1000000 out=ROOT [key=value ...]

writes ROOT/seed0 .. ROOT/seed3, each an ordinary run folder (the config.yaml of `python -m iqrl.train
... seed=k out=ROOT/seed<k>`), so sweeps, `make status` and `make figures` read them like any run. Each seed
has its own `Trainer` (envs, replay, generators, counters, run folder) in its own thread; their updates meet
in the group (iqrl/multiseed/group.py), which the main thread serves. With cohorts=C the seeds form C groups
of K / C, the first served by the main thread, each other by a thread of its own: nothing ties one cohort's
rounds to another's, so while one's vectorised update runs (torch releases the interpreter lock in its
operators; on a GPU its kernels run queued), another's envs step. Each seed computes as in a group of its
cohort's seeds alone, its random draws and replay writes in its own order, as in any group.

Resume: every seed checkpoints at the same env steps and keeps its previous checkpoint; a group that
was killed between two seeds' checkpoints resumes every seed from the latest env step all of them hold.
A resumed K-seed run is bitwise the uninterrupted one. Over a long run the seeds' trajectories drift from
their single-seed runs the way two machines' runs of one seed do: K-seed results are statistically, not
bitwise, those of single-seed runs.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from pathlib import Path

from iqrl.config.build import build_config
from iqrl.config.run import ConfigError
from iqrl.config.validate import warnings_of
from iqrl.core.checks import Refused
from iqrl.loop.preflight import check_device_type, check_machine, check_mode, check_run_folder, check_writable
from iqrl.loop.timing import summary_line
from iqrl.loop.trainer import Trainer
from iqrl.multiseed.envs import step_together
from iqrl.multiseed.group import SeedGroup
from iqrl.multiseed.refusals import KSeedRefused, cohort_refusal, unsupported
from iqrl.runfolder import checkpoints
from iqrl.runfolder.checkpoints import PREVIOUS as PREVIOUS_CHECKPOINT
from iqrl.runfolder.checkpoints import checkpoint_step
from iqrl.runfolder.errors import failure_line, print_traceback_for
from iqrl.runfolder.exits import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK
from iqrl.runfolder.layout import CHECKPOINT
from iqrl.runfolder.lock import training_lock
from iqrl.runfolder.provenance import run_mode
from iqrl.runfolder.status import write_status


# ---------------------------------------------------------------------- resume
def held_steps(run_dir: Path) -> frozenset[int]:
    """The env steps of the checkpoints a run folder holds (latest and previous; none for a fresh run)."""
    paths = (Path(run_dir) / CHECKPOINT, Path(run_dir) / PREVIOUS_CHECKPOINT)
    return frozenset(s for p in paths if (s := checkpoint_step(p)) is not None)


def resume_points(run_dirs: list[Path]) -> list[Path | None]:
    """The checkpoint each seed resumes from: the latest env step that every seed holds (latest or
    previous checkpoint); None everywhere for a fresh start, also when a seed holds no checkpoint yet
    (the group was stopped before that seed's first one: every seed starts again from step 0). A
    generation that cannot be read is set aside with one warning line (iqrl/runfolder/checkpoints.py); a seed
    with generations but none readable is a ConfigError (one line, nothing changed)."""
    found = [checkpoints.generations(d, "cpu", mmap=True) for d in run_dirs]
    for d, gens in zip(run_dirs, found):
        if gens and all(g.state is None for g in gens):
            raise ConfigError(checkpoints.no_readable_message(d, gens))
    held = [{checkpoints.step_of(g): g for g in gens if g.state is not None} for gens in found]
    if not all(held):
        if any(held):  # the others' progress is given up: say so (a deleted seed folder, or a seed killed
            # before its first checkpoint)
            lost = ", ".join(f"{d.name} at env_step {max(h)}" for d, h in zip(run_dirs, held) if h)
            empty = ", ".join(str(d) for d, h in zip(run_dirs, held) if not h)
            print(
                f"warning: {empty} holds no checkpoint (its folder deleted, or the group stopped before its "
                f"first one), so every seed starts again from env_step 0, the checkpoints of {lost} unused",
                file=sys.stderr,
                flush=True,
            )
        _set_aside_damaged(run_dirs, found, [None] * len(run_dirs))
        for d, gens in zip(run_dirs, found):  # the rows past env_step 0 that its restart writes again (a
            if all(g.state is not None for g in gens):  # damaged generation's fall_back moved them already)
                checkpoints.keep_rows_aside(d, "but no checkpoint" if not gens else "and checkpoints unused")
        return [None] * len(run_dirs)
    common = set.intersection(*(set(h) for h in held))
    if not common:
        raise ConfigError(
            "the seeds' checkpoints share no env step ("
            + "; ".join(f"{d}: {sorted(h)}" for d, h in zip(run_dirs, held))
            + "): resume them one by one with python -m iqrl.train"
        )
    step = max(common)
    _set_aside_damaged(run_dirs, found, [h[step] for h in held])
    return [h[step].path for h in held]


def _set_aside_damaged(run_dirs: list[Path], found: list, chosen: list) -> None:
    for d, gens, c in zip(run_dirs, found, chosen):
        for g in gens:
            if g.state is None:
                checkpoints.fall_back(d, g, c)


class GroupStop:
    """One stop decision for the whole group (Ctrl-C / SIGTERM). Each seed asks `should_stop` after each of
    its agent steps, and a signal can fall between two seeds' questions; so the first True fixes a target,
    the furthest env step at which any seed will next ask (the asking seed's own step, every other seed's
    last step asked + one agent step), and every seed stops when it gets there: all seeds then hold a
    checkpoint at the same env step and the group resumes from it. Seeds ask under the lock, so no seed is
    past the target when it is fixed."""

    def __init__(self, should_stop, trainers: list[GroupTrainer]):
        self.should_stop, self.trainers = should_stop, trainers
        self.lock = threading.Lock()
        self.target: int | None = None

    def for_seed(self, t: GroupTrainer):
        def stop() -> bool:
            with self.lock:
                t.asked = t.env_step
                if self.target is None and self.should_stop is not None and self.should_stop():
                    ahead = [u.asked + u.cfg.action_repeat for u in self.trainers if u is not t and u.running]
                    self.target = max([t.env_step, *ahead])
                return self.target is not None and t.env_step >= self.target

        return stop


class GroupTrainer(Trainer):
    """A seed's Trainer in a group: keeps its previous checkpoint, resumes from the one it is given, and
    checkpoints its slice of the group's optimizer states."""

    resume_from: Path | None = None
    asked = 0  # the env step at which it last asked whether to stop (GroupStop; the resumed step at first)
    running = False  # inside its loop (a seed that is done or failed no longer counts for the stop)
    group: SeedGroup
    seed_index: int
    in_sync_checked = False

    def run_updates(self, n: int) -> None:
        super().run_updates(n)
        if n and not self.in_sync_checked:  # once: an update that the group cannot vectorise fails here
            self.group.check_in_sync(self.seed_index)
            self.in_sync_checked = True

    def update_agent(self) -> dict:
        self.group.at_update(self.seed_index, self.updates)  # pieces pair by update number
        return super().update_agent()

    def _loop(self, should_stop, resumed: bool) -> int:
        self.running = True
        try:
            return super()._loop(should_stop, resumed)
        finally:
            self.running = False

    def save_checkpoint(self) -> None:
        self.group.write_optimizer_state(self.seed_index)
        super().save_checkpoint()  # keeps the one before as ckpt.prev.pt

    def try_resume(self) -> bool:
        if self.resume_from is None:
            return False
        try:
            state = checkpoints.verified(self.resume_from, self.device)
        except checkpoints.Unreadable as e:  # changed since resume_points verified it
            raise checkpoints.NoReadableCheckpoint(f"{self.resume_from} cannot be used ({e})") from None
        self.load_checkpoint(self.resume_from, state)
        return True


def group_line(trainers: list[GroupTrainer], first: list[int], seconds: float) -> str:
    """The group's rate: env steps per second in all and per seed over this process's training (each seed's
    steps from `first`, where this process took it up), and the split of the seeds' time (their phases
    summed: iqrl/loop/timing.py)."""
    steps = sum(t.env_step - f for t, f in zip(trainers, first))
    split = {p: sum(t.split.total[p] for t in trainers) for p in trainers[0].split.total}
    rate = steps / seconds if seconds > 0 else 0.0
    return (
        f"group of {len(trainers)} seeds: {steps} env steps in {seconds:.1f} s, {rate:.0f} env steps/s in "
        f"all, {rate / len(trainers):.0f} per seed; seeds' {summary_line(split)}"
    )


# ---------------------------------------------------------------------- command line
USAGE = """usage: python -m iqrl.multiseed seeds=0,1,2,3 agent=iqrl task=DOMAIN-TASK steps=N out=ROOT
[key=value ...]

Trains the seeds in one process with the networks vectorised over seeds; writes ROOT/seed<k> run folders
(the same as python -m iqrl.train ... seed=k out=ROOT/seed<k>). Re-running resumes; done seeds are skipped.
cohorts=C: the seeds in C groups of K / C, each on its own (one's envs step while another's update runs)."""


def cohort_slot(k: int, width: int, cohorts: int) -> tuple[int, int]:
    """Where the k-th of a command's `width` seeds computes: (its slot, its group's width). Cohort c is the
    command's seeds c * n .. (c + 1) * n - 1 for n = width / cohorts, each in its place among them, so a
    seed computes as in `seeds=` of its cohort's seeds alone (cohorts=1: the command's whole list)."""
    n = width // cohorts
    return k % n, n


def workers_help(k: int) -> bool:
    """env_workers's default for a group of k seeds: each env in a worker process of its own wherever the
    process may use two cores or more, every suite's. An env's Python (dm_control's task code, the other
    suites' whole steps) holds the interpreter lock, so in one process the k envs share one core's worth of
    it; in workers, each stepped through shared memory, a walker-walk group of 4 collects at about 1.5x one
    seed's wall rate on two cores for the CPU per env step of the group stepped together in the process, which
    collects at one seed's (docs/performance.md, "Environments of a K-seed group"). With one core, DMC's envs
    step together in the process (`steps_together`, iqrl/multiseed/envs.py), the others' in the seeds'
    threads."""
    return k > 1 and len(os.sched_getaffinity(0)) >= 2


def parse_seeds(argv: list[str]) -> tuple[list[int], Path, list[str]]:
    seeds, out, rest = None, None, []
    for key in ("seeds", "out"):  # the keys taken out here; build_config refuses the others given twice
        given = [a for a in argv if a.startswith(f"{key}=")]
        if len(given) > 1:
            raise ConfigError(f"{key} is given twice ({given[0]} and {given[1]}); give each key once")
    for a in argv:
        if a.startswith("seeds="):
            try:
                seeds = [int(s) for s in a[6:].strip("[]").split(",") if s.strip()]
            except ValueError:
                raise ConfigError(f"seeds must be a comma-separated list of ints, got {a[6:]!r}") from None
        elif a.startswith("out="):
            out = Path(a[4:])
        elif a.startswith("seed="):
            raise ConfigError("use seeds=0,1,... (the K-seed mode trains several seeds)")
        else:
            rest.append(a)
    if not seeds or len(set(seeds)) != len(seeds):
        raise ConfigError("seeds= must list at least one seed, each once (e.g. seeds=0,1,2,3)")
    if out is None:
        raise ConfigError("out=ROOT is required (runs go to ROOT/seed<k>)")
    return seeds, out, rest


def main(argv: list[str] | None = None, should_stop=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if any(a in ("-h", "--help") for a in argv):
        print(USAGE)
        return EXIT_OK
    try:
        seeds, root, rest = parse_seeds(argv)
        if not any(a.startswith("env_workers=") for a in rest):
            rest.append(f"env_workers={str(workers_help(len(seeds))).lower()}")
        cfgs = [build_config([*rest, f"seed={s}", f"out={root / f'seed{s}'}"]) for s in seeds]
        for line in warnings_of(cfgs[0]):
            print(f"warning: {line}", file=sys.stderr)
        if why := unsupported(cfgs[0]) or cohort_refusal(cfgs[0], len(seeds)):
            raise ConfigError(why)
        done = [check_run_folder(c) == "done" for c in cfgs]
        for c in (c for c, d in zip(cfgs, done) if d):  # a done seed's deleted logs, as python -m iqrl.train
            if restored := checkpoints.restore_logs(Path(c.out)):
                print(
                    f"{c.out}: already done, {' and '.join(restored)} written again from its last checkpoint"
                )
        slots = [k for k, d in enumerate(done) if not d]  # each seed's place among seeds=, done ones too
        cfgs = [c for c, d in zip(cfgs, done) if not d]
        if not cfgs:
            print(f"{root}: every seed is already done, nothing to do", flush=True)
            return EXIT_OK
        device = check_machine(cfgs[0], seeds=len(cfgs))  # the seeds differ in seed and out only
        for c, k in zip(cfgs, slots):
            check_device_type(c, device)
            check_writable(Path(c.out))
            check_mode(c, run_mode(argv, "kseed", cohort_slot(k, len(done), c.cohorts)))
    except (ConfigError, Refused) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    with contextlib.ExitStack() as locks:  # every seed's run lock, for the whole group
        try:
            for c in cfgs:
                locks.enter_context(training_lock(Path(c.out)))
            # another group sharing a seed may have finished it between the check above and its lock: a
            # seed done now is left as it is (its slot kept), never restarted with the others
            now = [check_run_folder(c) != "done" for c in cfgs]
            slots, cfgs = [k for k, n in zip(slots, now) if n], [c for c, n in zip(cfgs, now) if n]
            if not cfgs:
                print(f"{root}: every seed is already done, nothing to do", flush=True)
                return EXIT_OK
            points = resume_points([Path(c.out) for c in cfgs])
        except (ConfigError, Refused) as e:
            print(f"error: {e}", file=sys.stderr)
            return EXIT_BAD_INPUT
        return train_group(cfgs, points, should_stop, (slots, len(done)), argv)


def train_group(
    cfgs: list, points: list, should_stop, places: tuple[list[int], int] | None = None, argv: list[str] = ()
) -> int:
    """Train the seeds' runs as one vectorised group (their run locks held by the caller); the seeds' env
    workers (env_workers=true) end with it, however it ends. `places`: each seed's slot among the command's
    seeds and their number (SeedGroup), so that a seed resumed after others finished computes where it did;
    `argv`: the command's, recorded with them in each seed's config.yaml (provenance.run_mode)."""
    trainers: list[GroupTrainer] = []
    try:
        return _train_group(cfgs, points, should_stop, trainers, places, list(argv))
    finally:
        for t in trainers:
            t.close()


def _train_group(cfgs: list, points: list, should_stop, trainers: list, places=None, argv=()) -> int:
    slots, width = places or (list(range(len(cfgs))), len(cfgs))
    places_in = [cohort_slot(k, width, cfgs[0].cohorts) for k in slots]  # (slot, width) in its cohort
    for c, point, place in zip(
        cfgs, points, places_in
    ):  # one at a time: each seeds the global RNGs, then builds its nets
        t = GroupTrainer(c)
        t.resume_from = point
        t.asked = 0 if point is None else checkpoint_step(point)  # every seed's resume step is one
        t.how = run_mode(argv, "kseed", place)
        trainers.append(t)
    members: dict[int, list[int]] = {}  # cohort -> the indices of its trainers
    for i, k in enumerate(slots):
        members.setdefault(k // places_in[i][1], []).append(i)
    cohorts = list(members.values())
    try:
        groups = [
            SeedGroup([trainers[i].agent for i in c], [places_in[i][0] for i in c], places_in[c[0]][1])
            for c in cohorts
        ]
    except KSeedRefused as e:  # before anything is written
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    for group, c in zip(groups, cohorts):
        step_together([trainers[i] for i in c])  # their envs' steps in their group's rounds (DMC here)
        for i in c:
            trainers[i].group, trainers[i].seed_index = group, places_in[i][0]
    stop = GroupStop(should_stop, trainers)  # one stop for every cohort: all checkpoint at one env step
    codes = [EXIT_FAILED] * len(trainers)

    def run(k: int) -> None:
        t = trainers[k]
        try:
            codes[k] = t.run(stop.for_seed(t))
        except Refused as e:  # another process took the folder, or a checkpoint does not fit: nothing written
            print(f"error: {e}", file=sys.stderr)
            codes[k] = EXIT_BAD_INPUT
        except Exception as e:  # recorded in the seed's status.json, as python -m iqrl.train does
            print_traceback_for(e)
            msg = failure_line(e)
            with contextlib.suppress(OSError):  # a full or read-only disk may refuse the status too
                write_status(t.run_dir, "failed", t.env_step, t.cfg.steps, msg)
            print(f"error: {t.run_dir} failed: {msg}", file=sys.stderr)
        finally:
            t.group.leave(t.seed_index)

    # Daemon threads: from the command line, Ctrl-C stops every seed at one env step with a checkpoint; a
    # second Ctrl-C ends the process (every seed resumes from the checkpoints all hold).
    threads = [
        threading.Thread(target=run, args=(k,), name=f"seed{c.seed}", daemon=True) for k, c in enumerate(cfgs)
    ]

    def serve(group: SeedGroup, c: list[int], start=()) -> None:
        """The cohort's rounds in the calling thread; its seeds' threads (and `start`) started once it
        serves."""
        with trainers[c[0]].autocast:  # what each Trainer wraps its updates in
            group.serve(start=lambda: [th.start() for th in [*start, *(threads[i] for i in c)]])

    # the first cohort served in this thread (a graph-captured group's must be), every other in one of its own
    servers = [
        threading.Thread(target=serve, args=(g, c), name=f"cohort{n + 1}", daemon=True)
        for n, (g, c) in enumerate(zip(groups[1:], cohorts[1:]))
    ]
    # this process's share: from each seed's resume step (its trainer loads it in its own thread, later)
    started, first = time.perf_counter(), [t.asked for t in trainers]
    serve(groups[0], cohorts[0], servers)
    for th in [*servers, *threads]:
        th.join()
    print(group_line(trainers, first, time.perf_counter() - started), flush=True)
    return (
        EXIT_FAILED if EXIT_FAILED in codes else max(codes)
    )  # a failed seed is not hidden by interrupted ones
