"""What a run is doing, read from its folder (status.json, claim, lock) and the Slurm queue."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from iqrl.runfolder.status import read_status
from slurm.claim import Claim, RunLock, claim_alive, read_claim

# The states `make status` reports, in table order.
KINDS = ("done", "running", "pending", "waiting", "interrupted", "failed", "missing")


@dataclass(frozen=True)
class RunState:
    """``kind``: done | running (a live process trains it) | pending (a queued job will) | waiting (not
    started, and the run it starts from, its source, is not done: ``job`` says which and how it stands;
    ``source_job`` the source's live job id, if any) | interrupted (has
    progress, no live job: the next ``make sweep`` resumes it) | failed (the trainer recorded an error) |
    missing (nothing yet). ``stale_claim``: a claim whose job is gone (to be replaced by the next sweep)."""

    kind: str
    env_step: int = 0
    steps: int = 0
    error: str | None = None
    job: str = ""  # job id and what we know about it
    claim: Claim | None = None
    stale_claim: bool = False
    source_job: str | None = None


def is_done(run_dir: Path) -> bool:
    status = read_status(run_dir)
    return bool(status) and status.get("state") == "done"


def unreadable_status(run_dir: Path) -> str | None:
    """Why the run's status.json, which is there, cannot be read (its state, done or not, is unknown); None
    when it reads or is missing."""
    path = Path(run_dir) / "status.json"
    if read_status(run_dir) is not None or not path.is_file():
        return None
    try:
        json.loads(path.read_text())
    except (OSError, ValueError) as e:
        return f"{path} cannot be read ({type(e).__name__}: {e}), so whether the run is done is unknown"
    return f"{path} holds no JSON object, so whether the run is done is unknown"


def inspect_run(run_dir: Path, queue: Mapping[str, tuple[str, str]] | None) -> RunState:
    run_dir = Path(run_dir)
    status = read_status(run_dir) or {}
    progress = dict(env_step=int(status.get("env_step") or 0), steps=int(status.get("steps") or 0))
    if status.get("state") == "done":
        return RunState("done", **progress)
    if not run_dir.exists():
        return RunState("missing")
    lock = RunLock(run_dir)
    claim = read_claim(run_dir)
    alive, state, why = claim_alive(claim, queue) if claim else (False, "", "")
    if lock.held_elsewhere():
        holder = lock.holder()
        job = f"job {holder.get('job_id') or '?'} on {holder.get('host') or '?'}"
        return RunState("running", error=None, job=job, claim=claim, **progress)
    if claim and alive:
        running = state in ("RUNNING", "COMPLETING", "LOCAL")
        return RunState("running" if running else "pending", job=why, claim=claim, **progress)
    stale = claim is not None
    if status.get("state") == "failed":
        return RunState(
            "failed",
            error=status.get("error") or "(no error recorded)",
            job=why,
            claim=claim,
            stale_claim=stale,
            **progress,
        )
    if status or (run_dir / "checkpoint").exists() or (run_dir / "status.json").exists():
        error = unreadable_status(run_dir)  # shown instead of an env step it does not know
        return RunState("interrupted", error=error, job=why, claim=claim, stale_claim=stale, **progress)
    return RunState("missing", job=why, claim=claim, stale_claim=stale)


def inspect_runs(runs: Sequence[Any], results: Path, queue: Mapping[str, tuple[str, str]] | None) -> list:
    """(run, RunState) for sweep runs (slurm.spec.RunSpec): a run that starts from a source (``source``) and
    has not started yet is ``waiting`` until its source is done."""
    states = {r: inspect_run(r.run_dir(results), queue) for r in runs}
    for r in runs:
        if r.source is None or states[r].kind != "missing":
            continue
        src = states.get(r.source) or inspect_run(r.source.run_dir(results), queue)
        if src.kind != "done":
            live = src.kind in ("running", "pending") and src.claim is not None
            states[r] = RunState(
                "waiting",
                job=f"waiting for its source {r.source.key} ({src.kind})",
                source_job=src.claim.job_id if live else None,
            )
    return [(r, states[r]) for r in runs]
