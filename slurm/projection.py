"""The GPU-hours a sweep would take, printed by `make sweep ... DRY=1` (docs/sweeps.md, "Projecting a
campaign").

A run's updates are its env steps after the seed phase times its rate (the run's `updates_per_step`, else its
agent's default), as the trainer counts them;
its GPU time is those updates over the updates per second of one run alone on one NVIDIA H100, eager fp32,
as docs/performance.md measured them ("On a GPU"). An agent not measured there, and every pixel run (no
pixel row has run on a GPU yet), takes iqrl's rate as a stand-in, and the projection names them. One run per
GPU: packing seeds (`runs_per_job`) changes the figure by the ratios docs/sweeps.md gives, not counted here;
environment stepping and evaluation are left out.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from slurm.spec import RunSpec

#: Updates per second of one run alone on an H100, fp32 eager, state observations (docs/performance.md, "On a
#: GPU": walker-walk; iqrl's the slower of its two runs).
H100_UPDATES_PER_S = {"iqrl": 40.6, "td3": 158.6}
STAND_IN = "iqrl"


def agent_default_rate(agent_cfg, kind: str) -> float:
    """The agent's own updates per env step (AgentSpec.updates_per_step), read off an agent built on a tiny
    state task of the run's action kind."""
    from iqrl.core.registry import make_agent
    from iqrl.core.spaces import ActionSpec

    return make_agent(agent_cfg, 4, ActionSpec(kind, 2), "cpu", 0).spec.updates_per_step


def project(runs: Sequence[RunSpec], results: Path) -> tuple[float, float, list[str]]:
    """(updates, GPU-hours, the agents whose rate is iqrl's stand-in) of `runs`."""
    from iqrl.core.config import build_config
    from iqrl.core.tasks import suite_of, task_list

    rates: dict[tuple[str, str], float] = {}
    updates = hours = 0.0
    stand_ins: set[str] = set()
    for r in runs:
        cfg = build_config(r.argv(results))
        kind = suite_of(task_list(cfg.task)[0]).actions
        if cfg.updates_per_step is None and (r.agent, kind) not in rates:
            rates[r.agent, kind] = agent_default_rate(cfg.agent, kind)
        rate = rates[r.agent, kind] if cfg.updates_per_step is None else cfg.updates_per_step
        measured = H100_UPDATES_PER_S.get(r.agent) if cfg.obs == "state" else None
        if measured is None:
            stand_ins.add(r.agent if cfg.obs == "state" else f"{r.agent} (pixels)")
        n = max(cfg.steps - cfg.seed_steps, 0) * rate
        updates += n
        hours += n / (measured or H100_UPDATES_PER_S[STAND_IN]) / 3600
    return updates, hours, sorted(stand_ins)


def projection_line(runs: Sequence[RunSpec], results: Path) -> str:
    """One line for DRY=1: the runs' updates and GPU-hours, and which agents' rates are stand-ins."""
    from iqrl.core.config import ConfigError

    if not runs:
        return "projected GPU-hours: 0 (no run to start)"
    try:
        updates, hours, stand_ins = project(runs, results)
    except ConfigError as e:  # only where the sweep was not validated (tests)
        return f"projected GPU-hours: none ({e})"
    rates = ", ".join(f"{a} {u}" for a, u in H100_UPDATES_PER_S.items())
    line = (
        f"projected GPU-hours: {hours:,.0f} for {len(runs)} runs of {updates / 1e6:,.1f}M updates, one run "
        f"per H100 at the measured updates/s ({rates}; docs/sweeps.md)"
    )
    if stand_ins:
        line += f"; at iqrl's rate, not measured on a GPU: {', '.join(stand_ins)}"
    return line
