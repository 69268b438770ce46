"""`make status`: done / running / pending / waiting / interrupted / failed / missing runs per agent and
variant."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from slurm.spec import RunSpec
from slurm.state import KINDS, RunState, inspect_runs


def collect(
    runs: Sequence[RunSpec], results: Path, queue: Mapping[str, tuple[str, str]] | None
) -> list[tuple[RunSpec, RunState]]:
    return inspect_runs(runs, results, queue)


def _pct(st: RunState) -> str:
    if not st.steps:
        return f"env_step {st.env_step}"
    return f"env_step {st.env_step}/{st.steps} ({100 * st.env_step / st.steps:.0f}%)"


def _log_hint(results: Path, sweep: str, job_id: str | None, run_dir: Path | None = None) -> str:
    """The run's own log when it ran in a packed job (``<run>/job.log``), else the job's stderr log:
    ``<jobid>/`` subfolders for Slurm jobs, flat for local ones."""
    if run_dir is not None and (run_dir / "job.log").exists():
        return f"; log {run_dir / 'job.log'}"
    if not job_id:
        return ""
    folder = results / ".submitit" / sweep
    for log in (folder / job_id / f"{job_id}_0_log.err", folder / f"{job_id}_0_log.err"):
        if log.exists():
            return f"; log {log}"
    return ""


def render(rows: list[tuple[RunSpec, RunState]], results: Path, sweep: str, slurm_known: bool) -> str:
    """The per-(agent, variant) count table, then one line per run that is not done or missing."""
    # the waiting column only for sweeps with runs that start from others (sources)
    kinds = [k for k in KINDS if k != "waiting" or any(st.kind == "waiting" for _, st in rows)]
    counts: dict[tuple[str, str], dict[str, int]] = {}
    for r, st in rows:
        counts.setdefault((r.agent, r.variant), dict.fromkeys(kinds, 0))[st.kind] += 1
    headers = ["agent", "variant", *kinds, "total"]
    table = [[a, v, *(str(c[k]) for k in kinds), str(sum(c.values()))] for (a, v), c in counts.items()]
    totals = {k: sum(c[k] for c in counts.values()) for k in kinds}
    table.append(["all", "", *(str(totals[k]) for k in kinds), str(len(rows))])
    widths = [max(len(h), *(len(row[i]) for row in table)) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))
        ).rstrip()

    out = [
        f"sweep {sweep}: {len(rows)} runs in {results / sweep}",
        line(headers),
        line(["-" * w for w in widths]),
        *(line(row) for row in table[:-1]),
        line(table[-1]),
    ]
    if not slurm_known:
        out.append("(Slurm queue not available: states come from run folders and local processes only)")
    sections = {
        "running": lambda r, st: f"{_pct(st)}  {st.job}",
        "pending": lambda r, st: f"{_pct(st) + '  ' if st.env_step else ''}{st.job}",
        "waiting": lambda r, st: st.job,
        "interrupted": lambda r, st: (
            f"{st.error or _pct(st)}  no live job ({st.job or 'never submitted'}); the next make sweep "
            "resumes it"
        ),
        "failed": lambda r, st: (
            f"{_pct(st)}  error: {st.error}"
            f"{_log_hint(results, sweep, st.claim.job_id if st.claim else None, r.run_dir(results))}"
        ),
    }
    for kind, fmt in sections.items():
        items = [(r, st) for r, st in rows if st.kind == kind]
        if items:
            out.append(f"\n{kind}:")
            out += [f"  {r.key}  {fmt(r, st)}" for r, st in items]
    return "\n".join(out + _packed_jobs(rows))


def _packed_jobs(rows: list[tuple[RunSpec, RunState]]) -> list[str]:
    """Jobs that hold (run or will run) several runs: packed jobs (``runs_per_job``), one line each."""
    held: dict[str, list[str]] = {}
    for r, st in rows:
        if st.kind in ("running", "pending") and st.claim and st.claim.job_id:
            held.setdefault(st.claim.job_id, []).append(r.key)
    packed = {job: keys for job, keys in held.items() if len(keys) > 1}
    if not packed:
        return []
    return ["\npacked jobs:", *(f"  job {job}: {', '.join(keys)}" for job, keys in packed.items())]
