"""Projected GPU-hours of a sweep's runs, what `make sweep DRY=1` prints (docs/sweeps.md, "Projecting a
campaign"): per run, its updates (env steps x the run's updates per env step: the `updates_per_step` key, or
the agent's default at the run's action repeat) over an update rate, one run per GPU.

The rates are measured eager updates per second of one run on an NVIDIA H100 (docs/performance.md, "On a
GPU"): iqrl's 40.6 and td3's 158.6. Every other agent, and a run whose networks differ from the measured
config (`agent.network`, other widths), stands in with iqrl's rate and is named as such in the printout: a
projection, not a measurement, until `make gpu-report` measures those rows. Environment stepping and the
K-seed mode's packing (docs/sweeps.md) are left out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from slurm.spec import RunSpec

#: Eager updates/s of one run on an H100 at the paper config (docs/performance.md): the measured agents.
MEASURED_H100 = {"iqrl": 40.6, "td3": 158.6}
STAND_IN = "iqrl"
#: Overrides under which a measured rate no longer holds (the networks are not the measured ones).
NETWORK_KEYS = ("agent.network", "agent.mlp_dims", "agent.enc_mlp_dims", "agent.latent_dim")


@dataclass(frozen=True)
class Projection:
    agent: str
    runs: int
    updates: float
    rate: float  # updates/s
    measured: bool

    @property
    def gpu_hours(self) -> float:
        return self.updates / self.rate / 3600


def run_rate(run: RunSpec) -> tuple[float, bool]:
    """(updates/s, whether measured) of a run: its agent's H100 rate, or the stand-in's."""
    changed = any(o.split("=", 1)[0] in NETWORK_KEYS for o in run.overrides)
    if run.agent in MEASURED_H100 and not changed:
        return MEASURED_H100[run.agent], True
    return MEASURED_H100[STAND_IN], False


def updates_per_env_step(run: RunSpec) -> float:
    """The run's updates per env step: its `updates_per_step` override, else its agent's default at its action
    repeat (the agent built from the run's config: `AgentSpec.rate`)."""
    for o in run.overrides:
        key, _, value = o.partition("=")
        if key == "updates_per_step" and value not in ("null", "None", ""):
            return float(value)
    return _default_rate(run.agent, run.task, run.overrides)


_RATES: dict[tuple, float] = {}


def _default_rate(agent: str, task: str, overrides: tuple[str, ...]) -> float:
    from iqrl.core.tasks import task_group

    first = task.split("+")[0]  # a multi-task run's rate is one task's
    key = (agent, task_group(first) or first, overrides)  # task files set keys per group
    if key not in _RATES:
        import torch

        from iqrl.core.config import build_config
        from iqrl.core.registry import make_agent

        argv = [f"agent={agent}", f"task={first}", *[o for o in overrides if not o.startswith("init_from")]]
        cfg = build_config(argv)
        with torch.random.fork_rng():  # a throwaway agent: its draws must not move anyone's generators
            spec = make_agent(cfg.agent, 4, 2, torch.device("cpu"), 0).spec
        _RATES[key] = spec.rate(cfg.action_repeat)
    return _RATES[key]


def project(runs: Sequence[RunSpec]) -> list[Projection]:
    """Per agent and rate source, the runs' updates and GPU-hours, in the order agents first appear."""
    groups: dict[tuple[str, float, bool], list[float]] = {}
    for run in runs:
        rate, measured = run_rate(run)
        groups.setdefault((run.agent, rate, measured), []).append(run.steps * updates_per_env_step(run))
    return [Projection(a, len(u), sum(u), rate, measured) for (a, rate, measured), u in groups.items()]


def projection_lines(runs: Sequence[RunSpec]) -> list[str]:
    """The printout: the total, then a line per agent and rate source."""
    rows = project(runs)
    if not rows:
        return []
    total = sum(r.gpu_hours for r in rows)
    lines = [
        f"projected GPU-hours, one run per GPU (an H100's eager updates/s, docs/sweeps.md): {total:,.0f} for "
        f"{sum(r.runs for r in rows)} runs, {sum(r.updates for r in rows) / 1e6:,.1f}M updates"
    ]
    for r in rows:
        source = "measured" if r.measured else f"not measured: {STAND_IN}'s rate as a stand-in"
        lines.append(
            f"  {r.agent}: {r.runs} runs, {r.updates / 1e6:,.1f}M updates at {r.rate} updates/s ({source}): "
            f"{r.gpu_hours:,.0f} GPU-hours"
        )
    return lines
