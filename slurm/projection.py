"""The GPU-hours a sweep would take, printed by `make sweep ... DRY=1` (docs/sweeps.md, "Projecting a
campaign").

A run's updates are its env steps after the seed phase times its rate, as the trainer counts them: the run's
`updates_per_step`, else its agent's default at the run's action repeat (AgentSpec.rate: BRO's update-to-data
ratio of 10 per stored transition is 5 per env step at repeat 2). Its GPU time is those updates over the
eager fp32 updates per second of one run alone on one NVIDIA H100, as docs/performance.md measured them ("On
a GPU"). Every other agent, every pixel run (no pixel row has run on a GPU yet) and a run whose networks
differ from the measured config (`agent.network`, other widths) takes iqrl's rate as a stand-in, and the
printout names it: a projection, not a measurement, until `make gpu-report` measures those rows. One run per
GPU: packing seeds (`runs_per_job`) changes the figure by the ratios docs/sweeps.md gives, not counted here;
environment stepping and evaluation are left out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from slurm.spec import RunSpec

#: Eager fp32 updates/s of one run alone on an H100, state observations (docs/performance.md, "On a GPU":
#: walker-walk; iqrl's the slower of its two runs).
MEASURED_H100 = {"iqrl": 40.6, "td3": 158.6}
STAND_IN = "iqrl"
#: Overrides under which a measured rate no longer holds (the networks are not the measured ones).
NETWORK_KEYS = ("agent.network", "agent.mlp_dims", "agent.enc_mlp_dims", "agent.latent_dim")


@dataclass(frozen=True)
class Projection:
    """The runs of one agent at one rate source: their number, updates and the updates/s they take."""

    agent: str
    runs: int
    updates: float
    rate: float  # updates/s
    measured: bool

    @property
    def gpu_hours(self) -> float:
        return self.updates / self.rate / 3600

    @property
    def source(self) -> str:
        return "measured" if self.measured else f"not measured: {STAND_IN}'s rate as a stand-in"


def run_rate(run: RunSpec, obs: str) -> tuple[float, bool]:
    """(updates/s, whether measured) of a run: its agent's H100 rate, or the stand-in's."""
    changed = any(o.split("=", 1)[0] in NETWORK_KEYS for o in run.overrides)
    if run.agent in MEASURED_H100 and obs == "state" and not changed:
        return MEASURED_H100[run.agent], True
    return MEASURED_H100[STAND_IN], False


def default_rate(cfg) -> float:
    """The agent's own updates per env step at the run's action repeat, read off an agent built on a tiny
    state task of the run's action kind (a throwaway: its draws move no one's generators)."""
    import torch

    from iqrl.core.registry import make_agent
    from iqrl.core.spaces import ActionSpec
    from iqrl.core.tasks import suite_of, task_list

    kind = suite_of(task_list(cfg.task)[0]).actions
    with torch.random.fork_rng():
        spec = make_agent(cfg.agent, 4, ActionSpec(kind, 2), torch.device("cpu"), 0).spec
    return spec.rate(cfg.action_repeat)


def run_updates(runs: Sequence[RunSpec], results: Path) -> list[tuple[RunSpec, float, str]]:
    """(run, its updates, its observations) of each run; seeds of one arm share one config build."""
    from iqrl.core.config import build_config

    built: dict[tuple, tuple[float, str]] = {}
    out = []
    for r in runs:
        key = (r.agent, r.task, r.steps, r.overrides)
        if key not in built:
            cfg = build_config(r.argv(results))
            rate = default_rate(cfg) if cfg.updates_per_step is None else cfg.updates_per_step
            built[key] = max(cfg.steps - cfg.seed_steps, 0) * rate, cfg.obs
        out.append((r, *built[key]))
    return out


def project(runs: Sequence[RunSpec], results: Path) -> list[Projection]:
    """Per agent and rate source, the runs' updates and GPU-hours, in the order agents first appear."""
    groups: dict[tuple[str, float, bool], list[float]] = {}
    for run, updates, obs in run_updates(runs, results):
        rate, measured = run_rate(run, obs)
        groups.setdefault((run.agent, rate, measured), []).append(updates)
    return [Projection(a, len(u), sum(u), rate, measured) for (a, rate, measured), u in groups.items()]


def projection_lines(runs: Sequence[RunSpec], results: Path) -> list[str]:
    """The printout for DRY=1: the total, then a line per agent and rate source."""
    from iqrl.core.config import ConfigError

    if not runs:
        return ["projected GPU-hours: 0 (no run to start)"]
    try:
        rows = project(runs, results)
    except ConfigError as e:  # only where the sweep was not validated (tests)
        return [f"projected GPU-hours: none ({e})"]
    total = sum(r.gpu_hours for r in rows)
    lines = [
        f"projected GPU-hours, one run per GPU (an H100's eager updates/s, docs/sweeps.md): {total:,.0f} for "
        f"{sum(r.runs for r in rows)} runs, {sum(r.updates for r in rows) / 1e6:,.1f}M updates"
    ]
    for r in rows:
        updates = f"{r.updates / 1e6:,.1f}M updates at {r.rate} updates/s"
        lines.append(f"  {r.agent}: {r.runs} runs, {updates} ({r.source}): {r.gpu_hours:,.0f} GPU-hours")
    return lines
