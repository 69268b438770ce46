"""A sweep's runs planned into jobs: which are done, live elsewhere, to run or waiting for their source
(slurm.state), claiming one to run, and the jobs (one run, a pack of runs, or a K-seed group: slurm/pack.py)
with the commands they start, as `make sweep` submits them and DRY=1 prints them.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from slurm.claim import Claim, release_claim, try_claim
from slurm.pack import Pack, group_mode, group_runs, seeds_argv, trainer_seeds_key
from slurm.profiles import Profile
from slurm.run import Run
from slurm.spec import RunSpec
from slurm.state import RunState, inspect_runs, is_done

Print = Callable[[str], None]
TRAINER = "iqrl.train:main"
Job = tuple[str, list[RunSpec]]  # (pack mode, runs): one array task or local job


@dataclass
class Plan:
    done: list[RunSpec] = field(default_factory=list)
    live: list[tuple[RunSpec, RunState]] = field(default_factory=list)  # running or pending elsewhere
    todo: list[tuple[RunSpec, RunState]] = field(default_factory=list)  # failed / interrupted / missing
    waiting: list[tuple[RunSpec, RunState]] = field(default_factory=list)  # their source is not done


def make_plan(runs: Sequence[RunSpec], results: Path, queue: Mapping[str, tuple[str, str]] | None) -> Plan:
    plan = Plan()
    for r, st in inspect_runs(runs, results, queue):
        if st.kind == "done":
            plan.done.append(r)
        elif st.kind in ("running", "pending"):
            plan.live.append((r, st))
        elif st.kind == "waiting":
            plan.waiting.append((r, st))
        else:
            plan.todo.append((r, st))
    return plan


def dependencies(
    waiting: Sequence[tuple[RunSpec, RunState]], job_of: Mapping[RunSpec, str]
) -> tuple[dict[str, list[tuple[RunSpec, RunState]]], list[tuple[RunSpec, RunState]]]:
    """The waiting runs whose source has a job (submitted now: `job_of`, or live), by that job id, and the
    runs left waiting."""
    by_job: dict[str, list[tuple[RunSpec, RunState]]] = {}
    left = []
    for r, st in waiting:
        job = job_of.get(r.source) or st.source_job
        if job:
            by_job.setdefault(job, []).append((r, st))
        else:
            left.append((r, st))
    return by_job, left


def claim_run(r: RunSpec, st: RunState, results: Path, backend: str, sweep: str) -> bool:
    """Claim a run judged free under the sweep lock (replacing a stale claim); False if it got done."""
    run_dir = r.run_dir(results)
    if st.stale_claim:
        release_claim(run_dir)
    if not try_claim(run_dir, Claim.new(backend, sweep)):
        return False
    if is_done(run_dir):  # finished by its old job after we looked
        release_claim(run_dir)
        return False
    return True


def describe_plan(plan: Plan, total: int, out: Print) -> None:
    kinds: dict[str, int] = {}
    for _, st in plan.todo:
        kinds[st.kind] = kinds.get(st.kind, 0) + 1
    todo = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) or "none"
    waiting = f", {len(plan.waiting)} waiting for their source" if plan.waiting else ""
    out(
        f"{total} runs: {len(plan.done)} done (skipped), {len(plan.live)} running or queued (skipped), "
        f"{len(plan.todo)} to run ({todo}){waiting}"
    )
    for r, st in plan.live[:20]:
        out(f"  skip {r.key}: {st.kind}, {st.job}")
    if len(plan.live) > 20:
        out(f"  ... and {len(plan.live) - 20} more (make status lists them)")


def run_argv(r: RunSpec, results: Path, profile: Profile) -> list[str]:  # as its job starts it
    return r.argv(results) + ([f"device={profile.device}"] if profile.device else [])


def _make_run(r: RunSpec, results: Path, profile: Profile, entry: str, extra: Sequence[str] = ()) -> Run:
    argv = run_argv(r, results, profile) + list(extra)
    return Run(
        str(r.run_dir(results).absolute()),
        tuple(argv),
        label=f"{r.sweep}/{r.key}",
        entry=entry,
        threads=profile.cpus,
    )


def plan_jobs(runs: Sequence[RunSpec], results: Path, profile: Profile, entry: str) -> list[Job]:
    """The runs in jobs of at most ``runs_per_job`` (slurm/pack.py); one run per job by default."""
    vectorise = profile.runs_per_job > 1 and profile.vectorise_seeds and entry == TRAINER
    key = trainer_seeds_key(results) if vectorise else (lambda r: None)
    return group_runs(runs, profile.runs_per_job, key)


def _job_runs(job: Job, results: Path, profile: Profile, entry: str) -> tuple[list[Run], str]:
    """A job's runs as they will train, and for a K-seed group the update mode it trains in and why."""
    mode, runs = job
    extra, how = (), ""
    if mode == "seeds" and len(runs) > 1:
        extra, how = group_mode(runs, results, profile.pack_mode, profile.device)
    return [_make_run(r, results, profile, entry, extra) for r in runs], how


def make_job(job: Job, results: Path, profile: Profile, entry: str) -> Run | Pack:
    made, _ = _job_runs(job, results, profile, entry)
    if len(made) == 1:
        return made[0]
    return Pack(tuple(made), mode=job[0], threads=profile.cpus)


def job_commands(job: Job, results: Path, profile: Profile, entry: str) -> list[str]:
    """What a job runs, for DRY=1: one line per run folder, then the command(s)."""
    mode, runs = job
    made, _ = _job_runs(job, results, profile, entry)
    lines = [f"{run.run_dir}" for run in made]
    if mode == "seeds" and len(runs) > 1:
        return lines + [f"    python -m iqrl.multiseed {shlex.join(seeds_argv([r.argv for r in made]))}"]
    return lines + [f"    python -m {entry.split(':')[0]} {shlex.join(run.argv)}" for run in made]


def describe_job(job: Job, results: Path, profile: Profile, entry: str) -> str:
    mode, runs = job
    if len(runs) == 1:
        return "1 run"
    how = (
        f"one vectorised multiseed process, {_job_runs(job, results, profile, entry)[1]}"
        if mode == "seeds"
        else f"{len(runs)} processes, {max(1, profile.cpus // len(runs))} thread(s) each"
    )
    return f"{len(runs)} runs, {how}"


def print_waiting(plan: Plan, out: Print, backend: str) -> None:
    """DRY=1: the runs waiting for their source, and when they would go in."""
    starting = {r for r, _ in plan.todo}
    for r, st in plan.waiting:
        if r.source in starting:
            when = (
                "in an array with --dependency=afterok:<its source's array task>"
                if backend == "slurm"
                else "once its source has finished"
            )
            out(f"  then {r.key}, {when} (source {r.source.key})")
        elif st.source_job and backend == "slurm":
            out(f"  then {r.key}, --dependency=afterok:{st.source_job} (source {r.source.key}, queued)")
        else:
            out(f"  wait {r.key}: {st.job}; a later make sweep starts it")
