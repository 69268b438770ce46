"""`make sweep`: expand a sweep, skip done and live runs, claim the rest and run them through submitit.

* Slurm profiles: one job array per chunk of at most MaxArraySize runs (``--array=0-(n-1)%parallelism``),
  submitted, recorded in each run's claim, and the command returns (it never waits on jobs).
* The ``local`` profile (the default when Slurm is not installed): submitit's LocalExecutor, ``parallelism``
  runs at a time; the command stays in the foreground until all have finished.

Runs are classified by ``slurm.state.inspect_runs``: done (never touched), running / pending (a live job owns
it: skipped), failed / interrupted / missing (submitted; a stale claim is replaced), waiting (a run that
starts from a source run not done yet). All claim decisions are made under the sweep lock, so concurrent
``make sweep`` invocations never submit a run twice.

A waiting run goes in once its source is on its way: on Slurm, in an array of its own with
``--dependency=afterok:<the source's job>`` when the source is submitted in the same call or is queued or
running from an earlier one; locally, when its source has finished in the same ``make sweep``. Otherwise it
waits for a later ``make sweep`` (``make status`` shows it waiting for its source).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from iqrl.envs.tasks import TASK_GROUPS, TASK_LISTS
from slurm import cluster
from slurm.claim import release_claim, set_claim_job, sweep_lock
from slurm.jobs import (
    Job,
    Print,
    claim_run,
    dependencies,
    describe_job,
    describe_plan,
    job_commands,
    make_job,
    make_plan,
    plan_jobs,
    print_waiting,
    run_argv,
)
from slurm.local import local_outcome, stop_local_jobs
from slurm.profiles import Profile, ProfileError, available, check_run_devices, load_profile
from slurm.projection import projection_lines, refuse_long_local
from slurm.spec import (
    RunSpec,
    Sweep,
    SweepError,
    built_config,
    config_key,
    config_runs,
    load_sweep,
    validate_runs,
)
from slurm.state import RunState, inspect_run, is_done


class SubmitError(RuntimeError):
    """sbatch refused a job array; the message is one line (with sbatch's own error)."""


def jobs_dir(results: Path, sweep: str) -> Path:
    """submitit's folder for a sweep (pickles, sbatch scripts, logs) and its sweep lock."""
    return Path(results) / ".submitit" / sweep


# ---------------------------------------------------------------------------------------------- loading
def default_task_groups() -> Mapping[str, Sequence[str]]:
    return {**TASK_GROUPS, **TASK_LISTS}


def trainer_validator(runs: Sequence[RunSpec], results: Path, where: str) -> None:
    """Check every run with the trainer's own config code before anything is submitted: unknown agents,
    unknown keys, invalid values, and existing run folders that hold a run with a different config."""
    # here, not at the top: these import torch (~3 s); the CLI's other commands (status, --help) need none
    from iqrl.config.build import build_config
    from iqrl.config.run import ConfigError
    from iqrl.core.registry import agent_names
    from iqrl.loop.preflight import check_run_folder

    validate_runs(runs, results, build_config, ConfigError, registered=agent_names(), where=where)
    configs = config_runs(runs)
    for r in runs:
        if (r.run_dir(results) / "config.yaml").exists():
            try:
                check_run_folder(run_config(r, configs, results, build_config))
            except ConfigError as e:
                raise SweepError(f"{where}: run {r.key}: {e}") from None


def run_config(r: RunSpec, configs: Mapping[tuple, RunSpec], results: Path, build_config) -> Any:
    """The trainer's config of run `r`: that of its config's run in `configs` (slurm.spec.config_runs, built
    once) with `r`'s own seed and folder, the only keys in which a config's runs differ; a run that starts
    from a source (its init_from names the source's folder of its seed) is built whole."""
    if r.source is not None:
        return build_config(r.argv(results))
    built = built_config(build_config, tuple(configs[config_key(r)].argv(results)))
    return replace(built, seed=r.seed, out=str(r.run_dir(results).absolute()))


def load(
    sweep_path: str | Path,
    results: Path,
    agents: Sequence[str] | None = None,
    task_groups: Mapping[str, Sequence[str]] | None = None,
    validator: Callable[[Sequence[RunSpec], Path, str], None] | None = trainer_validator,
) -> tuple[Sweep, list[RunSpec]]:
    sweep = load_sweep(sweep_path, default_task_groups() if task_groups is None else task_groups)
    if agents:
        unknown = sorted(set(agents) - set(sweep.agents))
        if unknown:
            raise SweepError(
                f"{sweep_path}: AGENTS names {', '.join(unknown)}, not in the sweep's agents "
                f"({', '.join(sweep.agents)})"
            )
    runs = sweep.runs(agents)
    if validator is not None:
        validator(runs, results, str(sweep_path))
    return sweep, runs


def choose_profile(name: str | None) -> Profile:
    """The named profile; with none, ``local`` when Slurm is absent (on a Slurm machine: ask)."""
    if name:
        return load_profile(name)
    if cluster.slurm_present():
        raise ProfileError(
            "Slurm is installed here: choose a cluster profile with CLUSTER=<name> "
            f"(available: {', '.join(available())}), or CLUSTER=local to run on this machine"
        )
    return load_profile("local")


# ---------------------------------------------------------------------------------------------- entry point
def run_sweep(
    sweep_path: str | Path,
    results: str | Path = "results",
    cluster_name: str | None = None,
    dry: bool = False,
    agents: Sequence[str] | None = None,
    out: Print = print,
    entry: str = "iqrl.train:main",
    gpu_hours: float | None = None,
    yes: bool = False,
    **load_kw: Any,
) -> int:
    """`dry`: print what would run, then its projected GPU- or CPU-hours; `yes`: a long local sweep starts."""
    results = Path(results).absolute()
    sweep, runs = load(sweep_path, results, agents, **load_kw)
    profile = choose_profile(cluster_name)
    if load_kw.get("validator", trainer_validator) is not None:  # the trainer's checks of the device's keys
        check_run_devices([(r.key, run_argv(r, results, profile)) for r in runs], profile, str(sweep_path))
    out(
        f"sweep {sweep.name} ({sweep_path}) -> {results / sweep.name}; cluster profile {profile.name} "
        f"({profile.executor})"
    )
    if profile.executor == "local" and not (dry or yes) and entry == "iqrl.train:main":
        refuse_long_local(make_plan(runs, results, cluster.queue()), results)
    run = _run_slurm if profile.executor == "slurm" else _run_local
    rc = run(sweep, runs, results, profile, dry, out, entry)
    if dry:  # the projected GPU-hours (CPU-hours) of the runs still to run (slurm/projection.py)
        plan = make_plan(runs, results, cluster.queue())
        todo = [r for r, _ in plan.todo + plan.waiting]
        for line in projection_lines(todo, results, gpu_hours, device=profile.device):
            out(line)
    return rc


def _run_slurm(
    sweep: Sweep, runs: list[RunSpec], results: Path, profile: Profile, dry: bool, out: Print, entry: str
) -> int:
    if not cluster.slurm_present() and not dry:
        raise ProfileError(f"profile {profile.name} needs Slurm, but sbatch/squeue are not installed here")
    folder = jobs_dir(results, sweep.name)
    size = profile.max_array_size or cluster.max_array_size() or 1001
    params = profile.slurm_parameters(job_name=f"iqrl-{sweep.name}")
    if dry:  # no lock, no claims: nothing on disk changes
        queue = cluster.queue()
        plan = make_plan(runs, results, queue)
        describe_plan(plan, len(runs), out)
        if queue is None:
            out("(the Slurm controller does not answer: queued jobs cannot be seen)")
        jobs = plan_jobs([r for r, _ in plan.todo], results, profile, entry)
        batches = cluster.chunks(jobs, size) if jobs else []
        _print_dry_slurm(batches, results, profile, params, folder, size, out, entry)
        print_waiting(plan, out, "slurm")
        return 0
    with sweep_lock(folder / "sweep.lock"):
        queue = cluster.queue()
        if queue is None:
            raise ProfileError("the Slurm controller does not answer (squeue failed); is the cluster up?")
        plan = make_plan(runs, results, queue)
        describe_plan(plan, len(runs), out)
        if not plan.todo and not plan.waiting:
            out("nothing to submit")
            return 0
        import submitit

        executor = submitit.SlurmExecutor(folder=folder / "%j", max_num_timeout=profile.max_num_timeout)
        executor.update_parameters(**params)  # before claiming: a rejected parameter leaves no claims
        claimed: list[RunSpec] = []
        submitted: list[RunSpec] = []
        job_of: dict[RunSpec, str] = {}  # run -> its array task's job id

        def submit(todo: Sequence[tuple[RunSpec, RunState]]) -> list[list[Job]]:
            mine = [r for r, st in todo if claim_run(r, st, results, "slurm", sweep.name)]
            claimed.extend(mine)
            batches = cluster.chunks(plan_jobs(mine, results, profile, entry), size) if mine else []
            for batch in batches:
                job_of.update(
                    _submit_array(
                        executor, batch, results, profile, entry, folder, out, len(claimed), submitted
                    )
                )
            return batches

        try:
            batches = submit(plan.todo)
            by_job, left = dependencies(plan.waiting, job_of)
            for job_id, todo in by_job.items():  # each source's dependents: an array of their own
                executor.update_parameters(dependency=f"afterok:{job_id}")
                batches += submit(todo)
                out(f"  (after source job {job_id}: {', '.join(r.key for r, _ in todo)})")
            for r, st in left:
                out(f"  wait {r.key}: {st.job}; a later make sweep submits it")
        finally:
            for r in set(claimed) - set(submitted):  # a failed sbatch must not leave runs claimed by nobody
                release_claim(r.run_dir(results))
    jobs = [job for batch in batches for job in batch]
    packed = f" ({len(jobs)} jobs of up to {profile.runs_per_job} runs)" if len(jobs) != len(claimed) else ""
    out(
        f"submitted {len(submitted)} runs in {len(batches)} array job(s){packed}; logs in {folder}; "
        f"watch with: make status SWEEP={sweep.path} RESULTS={results}"
    )
    return 0


def _submit_array(
    executor: Any,
    batch: list[Job],
    results: Path,
    profile: Profile,
    entry: str,
    folder: Path,
    out: Print,
    n_claimed: int,
    submitted: list[RunSpec],
) -> dict[RunSpec, str]:
    """Submit one array (one task per job of `batch`), record each run's job in its claim, and append its
    runs to `submitted`; each run's job id. SubmitError (one line) when sbatch refuses it or its reply
    cannot be read."""
    from submitit.core.utils import FailedJobError, FailedSubmissionError

    runs_in = [r for _, group in batch for r in group]
    try:
        array = executor.submit_array([make_job(job, results, profile, entry) for job in batch])
    except FailedJobError as e:  # sbatch refused: bad partition, QOS limit...
        sbatch = "; ".join(line.strip() for line in str(e).splitlines() if line.strip())
        raise SubmitError(
            f"sbatch failed: {sbatch or type(e).__name__} ({len(submitted)} of "
            f"{n_claimed} runs submitted before; the other claims are released)"
        ) from None
    except FailedSubmissionError as e:  # sbatch ran, but its reply (the job id) could not be read
        raise SubmitError(
            f"sbatch's reply could not be read ({(str(e).strip().splitlines() or [''])[0]}); "
            f"that array may be queued anyway: check squeue before re-running (a second "
            f"job for a run finds it locked or done and exits); {len(submitted)} of "
            f"{n_claimed} runs submitted before, the other claims are released"
        ) from None
    job_of = {r: job.job_id for (_, group), job in zip(batch, array) for r in group}
    for r, job_id in job_of.items():
        set_claim_job(r.run_dir(results), job_id)
    submitted += runs_in
    array_id = array[0].job_id.split("_")[0]
    _log_submission(folder, array_id, batch)
    tasks = f" in {len(batch)} array tasks" if len(batch) != len(runs_in) else ""
    out(f"submitted array {array_id}: {len(runs_in)} runs{tasks} ({runs_in[0].key} ... {runs_in[-1].key})")
    return job_of


def _log_submission(folder: Path, array_id: str, batch: list[Job]) -> None:
    """One line per array: its runs, and the runs of each array task (index k: job ``<array>_<k>``)."""
    with open(folder / "submissions.jsonl", "a") as f:
        f.write(
            json.dumps(
                {
                    "time": dt.datetime.now().isoformat(timespec="seconds"),
                    "array": array_id,
                    "runs": [r.key for _, group in batch for r in group],
                    "tasks": [[r.key for r in group] for _, group in batch],
                }
            )
            + "\n"
        )


def _print_dry_slurm(
    batches: list[list[Job]],
    results: Path,
    profile: Profile,
    params: dict[str, Any],
    folder: Path,
    size: int,
    out: Print,
    entry: str,
) -> None:
    from submitit.slurm.slurm import _make_sbatch_string

    n_runs = sum(len(group) for batch in batches for _, group in batch)
    n_jobs = sum(map(len, batches))
    packed = f" as {n_jobs} array tasks of up to {profile.runs_per_job} runs" if n_jobs != n_runs else ""
    out(
        f"DRY RUN: nothing claimed or submitted. {n_runs} runs{packed} in {len(batches)} array job(s) "
        f"(MaxArraySize {size}), at most {profile.array_parallelism} running at once per array, "
        f"requeued up to {profile.max_num_timeout} times after time limits"
    )
    for i, batch in enumerate(batches):
        script = _make_sbatch_string(
            command="<python -m submitit.core._submit ...>",
            folder=folder / "%j",
            map_count=len(batch) if len(batch) > 1 else None,
            **params,
        )
        flags = [
            line for line in script.splitlines() if line.startswith("#SBATCH") or line.startswith("module")
        ]
        runs = sum(len(group) for _, group in batch)
        out(
            f"array {i + 1}/{len(batches)}: {runs} runs"
            + (f" in {len(batch)} tasks" if runs != len(batch) else "")
        )
        for line in flags + [f"# setup: {s}" for s in profile.setup]:
            out(f"  {line}")
        for k, job in enumerate(batch):
            lines = job_commands(job, results, profile, entry)
            if len(job[1]) > 1:
                out(f"  [{k}] {describe_job(job, results, profile, entry)}:")
                out("\n".join(f"      {line}" for line in lines))
            else:
                out(f"  [{k}] {lines[0]}")
                out(f"      {lines[1].strip()}")


def _run_local(
    sweep: Sweep, runs: list[RunSpec], results: Path, profile: Profile, dry: bool, out: Print, entry: str
) -> int:
    folder = jobs_dir(results, sweep.name)
    parallel = profile.local_parallelism()
    plan = make_plan(runs, results, cluster.queue())
    describe_plan(plan, len(runs), out)
    if dry:
        unit = "run(s)" if profile.runs_per_job == 1 else f"job(s) of up to {profile.runs_per_job} runs"
        out(
            f"DRY RUN: nothing claimed or started. Local executor: {parallel} {unit} at a time, "
            f"{profile.cpus} thread(s) each, {profile.time_min} min per attempt"
        )
        for job in plan_jobs([r for r, _ in plan.todo], results, profile, entry):
            lines = job_commands(job, results, profile, entry)
            if len(job[1]) > 1:
                out(f"  job of {describe_job(job, results, profile, entry)}:")
            out("\n".join(f"  {line}" for line in lines))
        print_waiting(plan, out, "local")
        return 0
    if not plan.todo:
        out("nothing to run" + (" now (the waiting runs' sources are not done)" if plan.waiting else ""))
        return 0
    import submitit

    executor = submitit.LocalExecutor(folder=folder, max_num_timeout=profile.max_num_timeout)
    # submitit's local controller answers a SIGINT by SIGKILLing its job 1 s later (Controller.kill_tasks),
    # whatever the job is doing; a terminal's Ctrl-C reaches it with the job. Started with SIGINT ignored
    # (inherited by the job, where Run installs its own handler), it leaves the job to stop itself after
    # its current agent step with a checkpoint, however long that step's updates take.
    executor.update_parameters(
        timeout_min=profile.time_min, signal_delay_s=profile.signal_delay_s, setup=["trap '' INT"]
    )
    queue = plan_jobs([r for r, _ in plan.todo], results, profile, entry)
    waiting = [r for r, _ in plan.waiting]
    active: dict[Any, list[RunSpec]] = {}
    failures = 0
    try:
        while True:
            ready = [r for r in waiting if is_done(r.source.run_dir(results))]
            if ready:  # their sources finished: they go in after the jobs already queued
                waiting = [r for r in waiting if r not in ready]
                queue += plan_jobs(ready, results, profile, entry)
            if not queue and not active:
                break
            while queue and len(active) < parallel:
                mode, group = queue.pop(0)
                with sweep_lock(folder / "sweep.lock"):
                    mine = []
                    for r in group:
                        st = inspect_run(r.run_dir(results), cluster.queue())  # another sweep may own it
                        if st.kind in ("done", "running", "pending"):
                            out(f"skip {r.key}: {st.kind} {st.job}".rstrip())
                        elif claim_run(r, st, results, "local", sweep.name):
                            mine.append(r)
                    if not mine:
                        continue
                    try:
                        job = executor.submit(make_job((mode, mine), results, profile, entry))
                    except BaseException:
                        for r in mine:
                            release_claim(r.run_dir(results))
                        raise
                    for r in mine:
                        set_claim_job(r.run_dir(results), job.job_id)
                active[job] = mine
                keys = ", ".join(r.key for r in mine)
                out(f"started {keys} (local job {job.job_id}{', ' + mode if len(mine) > 1 else ''})")
            for job in [j for j in active if j.done()]:
                group = active.pop(job)
                ok, message = local_outcome(job)
                if len(group) == 1:
                    failures += not ok
                    out(f"{'finished' if ok else 'FAILED'} {group[0].key}: {message}")
                    continue
                for r in group:  # a packed job: each run's own outcome, from its folder
                    st = inspect_run(r.run_dir(results), None)
                    failures += st.kind == "failed"
                    what = {"done": "finished", "failed": "FAILED"}.get(st.kind, "stopped")
                    detail = f"error: {st.error}" if st.error else f"{st.kind}, env_step {st.env_step}"
                    out(f"{what} {r.key}: {detail}")
            time.sleep(0.5)
    except KeyboardInterrupt:
        out(
            "interrupted: stopping local jobs after their current agent step (Ctrl-C again to stop waiting); "
            "they resume from their checkpoints on the next make sweep"
        )
        stop_local_jobs(active, results)
        return 130
    for r in waiting:
        out(f"wait {r.key}: its source {r.source.key} is not done; a later make sweep starts it")
    out(f"all runs handled ({failures} failed); see: make status SWEEP={sweep.path} RESULTS={results}")
    return 1 if failures else 0
