"""The GPU-hours a sweep would take, printed by `make sweep ... DRY=1` (docs/sweeps.md, "Projecting a
campaign").

A run's work is its env steps, its updates (its env steps after the seed phase times its rate, as the trainer
counts them: the run's `updates_per_step`, else its agent's default at the run's action repeat; BRO's
update-to-data ratio of 10 per stored transition is 5 per env step at repeat 2) and its evaluation episodes'
env steps. It is priced from the measured rows of the GPU report (docs/gpu-results/, `make gpu-report`, rows
whose rates stand: no error, not stale, not flagged) that make its config cheapest per seed-GPU-hour: rows of
its agent, observations and precision, on CUDA, in any mode (eager, compiled, graph-captured: they train
alike) and any K up to its config's number of seeds, priced in this order and saying which:

1. end to end: a whole run of the agent at K (`make bench --end-to-end`, row kind `run`), its env steps/s per
   seed (collection, acting, updates, evaluation and writing as they ran) for a config at the agent's own
   update rate;
2. updates plus collection: the update row's updates/s per seed, with the env steps (training and
   evaluation) at the collection rate the same row measured for its K (a K = 1 row's env steps/s with the
   agent acting; a K-seed row's group collection per seed); a row that measured no collection prices the
   updates alone and says so;
3. the stand-in where nothing is measured: iqrl's eager updates/s on an H100 (docs/performance.md, "On a
   GPU"), one run per GPU, updates only.

A row's rates are per seed of K sharing one GPU, so a config's n seeds take ceil(n / K) GPUs for one seed's
time (GPU-hours per seed: one run's hours / K where K divides n). The rates hold on every task (measured on
walker-walk): tasks differ only in their work. A run whose networks differ from the bench's (`agent.network`,
other widths) and a run that pins a mode no row measured take the stand-in.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from slurm.spec import RunSpec, built_config, config_key, config_runs

REPO = Path(__file__).resolve().parents[1]
GPU_RESULTS = REPO / "docs" / "gpu-results"
#: The stand-in: iqrl's eager fp32 updates/s of one run alone on an H100, state observations
#: (docs/performance.md, "On a GPU": walker-walk, the slower of its two runs).
STAND_IN_RATE = 40.6
STAND_IN = "not measured: no row in docs/gpu-results, iqrl's eager H100 rate as a stand-in"
#: Overrides under which a measured rate no longer holds (the networks are not the measured ones).
NETWORK_KEYS = ("agent.network", "agent.mlp_dims", "agent.enc_mlp_dims", "agent.latent_dim")
MODE_NAMES = {"false": "eager", "true": "compiled", "cudagraphs": "graphs"}  # a bench row's `compile`
RULE = (
    "rule: each config at its agent's measured row (same observations and precision, CUDA, any mode, "
    "K <= its seeds) that costs least per seed: an end-to-end run's env steps/s, else the update row's "
    "updates/s plus its env steps (training and evaluation) at the collection rate measured at its K; n "
    "seeds at K per GPU take ceil(n/K) GPUs, each for one seed's time; the rates hold on every task; no row: "
    "the stand-in's updates only, one run per GPU"
)


@dataclass(frozen=True)
class Work:
    """One seed's work: env steps of training, gradient updates, env steps of its evaluation episodes."""

    steps: float
    updates: float
    eval_steps: float = 0.0


@dataclass(frozen=True)
class Rate:
    """Where a run's time comes from: a measured row (K seeds sharing one GPU, `seeds` = K x packed copies),
    end to end or updates plus collection, or the stand-in."""

    updates_per_s: float  # per seed
    seeds: int = 1  # runs sharing one GPU
    mode: str = "eager"
    row: str = (
        ""  # "NVIDIA H200 2026-11-26 `iqrl walker-walk state fp32 compile=true K=1`"; "" for the stand-in
    )
    env_steps_per_s: float | None = None  # collection per seed at K; None: not measured
    end_to_end: bool = False  # env_steps_per_s is a whole run's rate, updates and evaluation included

    @property
    def measured(self) -> bool:
        return bool(self.row)

    @property
    def how(self) -> str:
        """The mode and K: "compiled K=1", "eager K=4"."""
        return f"{self.mode} K={self.seeds}"

    @property
    def source(self) -> str:
        if not self.measured:
            return STAND_IN
        if self.end_to_end:
            return f"measured end to end: {self.row}"
        if self.env_steps_per_s is None:
            return f"measured: {self.row}, updates only (the row measured no collection)"
        return (
            f"measured: {self.row}, updates + collection and evaluation at {self.env_steps_per_s} env steps/s"
        )

    def seconds(self, work: Work) -> float:
        """One seed's time for `work` at this rate."""
        if self.end_to_end:
            return work.steps / self.env_steps_per_s
        collect = (
            0.0 if self.env_steps_per_s is None else (work.steps + work.eval_steps) / self.env_steps_per_s
        )
        return work.updates / self.updates_per_s + collect

    def gpu_hours(self, work: Work | float, n: int) -> float:
        """GPU-hours of a config's n seeds of `work` each (a number: updates alone): ceil(n / K) GPUs, each
        for one seed's time."""
        work = work if isinstance(work, Work) else Work(0.0, work)
        return math.ceil(n / self.seeds) * self.seconds(work) / 3600


STAND_IN_RATE_ROW = Rate(STAND_IN_RATE)


@dataclass(frozen=True)
class Projection:
    """The runs of one agent at one rate: their number, updates and GPU-hours."""

    agent: str
    runs: int
    updates: float
    rate: Rate
    gpu_hours: float

    @property
    def measured(self) -> bool:
        return self.rate.measured

    @property
    def source(self) -> str:
        return self.rate.source


def measured_rows(folder: Path = GPU_RESULTS) -> list[dict]:
    """The bench rows of docs/gpu-results/*.jsonl whose rates stand (no `error`, `stale` or `flag`: iqrl.
    gpu_report.results.rate_stands), each with its file's GPU and date."""
    from iqrl.gpu_report.results import rate_stands, run_row_stands

    rows = []
    for path in sorted(folder.glob("*.jsonl")):
        file_rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        machine = next((r for r in file_rows if r.get("kind") == "machine"), {})
        for r in file_rows:
            if (rate_stands(r) and r.get("updates_per_s")) or run_row_stands(r):
                rows.append(
                    {**r, "gpu": machine.get("gpu") or r.get("hardware"), "date": machine.get("date")}
                )
    return rows


def group_graphs_verified(folder: Path = GPU_RESULTS) -> bool:
    """Whether a GPU report (docs/gpu-results/) found a graph-captured K-seed group's update equal to the
    eager group's at paper sizes (16 seeds, 12 updates, every piece replayed: iqrl.gpu_report.results.
    GROUP_GRAPHS_TEST), its last outcome on some GPU a pass: until then a group is not captured by `auto`
    (slurm/pack.py, group_mode) however fast a captured row measured."""
    from iqrl.gpu_report.results import GROUP_GRAPHS_TEST, latest_test_outcomes, read_jsonl

    test = GROUP_GRAPHS_TEST
    outcomes = (latest_test_outcomes(read_jsonl(p)) for p in sorted(folder.glob("*.jsonl")))  # a file a GPU
    return any(o.get(test) == "passed" for o in outcomes)


def row_rate(row: dict) -> Rate:
    """A row's rate; its mode is what the bench recorded running (`compile`: false, true or cudagraphs); its
    collection rate per seed: a K = 1 row's env steps/s (the agent acting), a K-seed row's group collection
    over K; an end-to-end row's its whole run's."""
    where = f"{row['gpu']} {row['date']} `{row['key']}`"
    mode = MODE_NAMES[str(row.get("compile", False)).lower()]
    k = row["seeds"] * row.get("packed", 1)
    if row.get("kind") == "run":
        return Rate(0.0, k, mode, where, row["env_steps_per_s"], end_to_end=True)
    collect = row.get("env_steps_per_s") if row["seeds"] == 1 else row.get("group_env_steps_per_s")
    collect = None if not collect else round(collect / (1 if row["seeds"] == 1 else row["seeds"]), 1)
    return Rate(row["updates_per_s"], k, mode, where, collect)


def run_rate(run: RunSpec, cfg, n: int, rows: Sequence[dict], work: Work | None = None) -> Rate:
    """The rate of a config's runs (`cfg` the first's config, `n` its seeds in the sweep, `work` one seed's):
    the measured row that costs least per seed (module docstring), else the stand-in. End-to-end rows price
    a config at its agent's own update rate only (`updates_per_step` unset)."""
    from iqrl.envs.tasks import split_task

    keys = {o.split("=", 1)[0] for o in run.overrides}
    if keys & set(NETWORK_KEYS):
        return STAND_IN_RATE_ROW
    pinned = None  # a mode the run sets itself
    if keys & {"compile", "cudagraphs"}:
        pinned = "graphs" if cfg.cudagraphs else "compiled" if cfg.compile else "eager"
    suite = split_task(run.task)[0]
    fits = [
        row_rate(r)
        for r in rows
        if r["agent"] == run.agent
        and r.get("obs") == cfg.obs
        and r.get("dtype") == cfg.precision
        and r.get("device") == "cuda"
        and "agent."
        not in r["key"]  # rows with extra keys (the pixel rows' image_pad) measure another config
        and (cfg.obs == "state" or split_task(r["task"])[0] == suite)  # pixel rows: encoders differ per suite
    ]
    fits = [r for r in fits if r.seeds <= n and (pinned is None or r.mode == pinned)]
    if cfg.updates_per_step is not None:  # another rate than the whole runs measured
        fits = [r for r in fits if not r.end_to_end]
    work = work or Work(0.0, 1.0)
    return min(fits, key=lambda r: r.gpu_hours(work, n), default=STAND_IN_RATE_ROW)


def default_rate(cfg) -> float:
    """The agent's own updates per env step at the run's action repeat (`agent_spec`)."""
    from iqrl.envs.tasks import suite_of, task_list

    return agent_spec(cfg.agent, suite_of(task_list(cfg.task)[0]).actions).rate(cfg.action_repeat)


_SPECS: dict[tuple, object] = {}


def agent_spec(agent_cfg, kind: str):
    """The spec of an agent of config `agent_cfg` built on a tiny state task of action kind `kind`, its
    tensors on the meta device (iqrl.loop.memory.agent_on_meta: shapes only, no initialisation computed; a
    throwaway whose draws move no one's generators), once per distinct agent config and process: a sweep's
    tasks mostly share their agent's config."""
    key = (type(agent_cfg), repr(agent_cfg), kind)
    if key not in _SPECS:
        import torch

        from iqrl.core.spaces import ActionSpec
        from iqrl.loop.memory import agent_on_meta

        with torch.random.fork_rng():
            _SPECS[key] = agent_on_meta(agent_cfg, 4, ActionSpec(kind, 2), large=1).spec
    return _SPECS[key]


def evaluation_steps(cfg) -> float:
    """The env steps of a run's evaluation episodes: at 0, every `eval_every` and at the end, each episode of
    a DMC task its full length (DMC's episodes only end by the time limit); 0 on suites whose episodes end
    early (Gym, Meta-World, MyoSuite, Atari, MiniGrid: their length is not known before the run)."""
    from iqrl.envs.tasks import split_task, task_list

    if any(split_task(t)[0] != "dmc" for t in task_list(cfg.task)):
        return 0.0
    evaluations = cfg.steps // cfg.eval_every + 1 + (cfg.steps % cfg.eval_every > 0)
    return float(evaluations * cfg.eval_episodes * cfg.episode_length * len(task_list(cfg.task)))


def configs(runs: Sequence[RunSpec], results: Path) -> list[tuple[list[RunSpec], Work, object]]:
    """The runs by config (all but the seed), in the order configs first appear: (its runs, each run's work,
    its config, built once for validation and pricing alike: slurm.spec.config_runs)."""
    from iqrl.config.build import build_config

    members: dict[tuple, list[RunSpec]] = {}
    for r in runs:
        members.setdefault(config_key(r), []).append(r)
    out = []
    for key, r in config_runs(runs).items():
        cfg = built_config(build_config, tuple(r.argv(results)))
        rate = default_rate(cfg) if cfg.updates_per_step is None else cfg.updates_per_step
        work = Work(cfg.steps, max(cfg.steps - cfg.seed_steps, 0) * rate, evaluation_steps(cfg))
        out.append((members[key], work, cfg))
    return out


def project(runs: Sequence[RunSpec], results: Path, rates: Path = GPU_RESULTS) -> list[Projection]:
    """Per agent and rate, the runs' updates and GPU-hours, in the order agents first appear; `rates` the
    folder of the GPU report's result files."""
    rows = measured_rows(rates)
    groups: dict[tuple[str, Rate], list[float]] = {}
    for members, work, cfg in configs(runs, results):
        rate = run_rate(members[0], cfg, len(members), rows, work)
        g = groups.setdefault((members[0].agent, rate), [0, 0.0, 0.0])
        g[0] += len(members)
        g[1] += work.updates * len(members)
        g[2] += rate.gpu_hours(work, len(members))
    return [Projection(a, n, u, rate, h) for (a, rate), (n, u, h) in groups.items()]


def projection_lines(
    runs: Sequence[RunSpec], results: Path, budget: float | None = None, rates: Path = GPU_RESULTS
) -> list[str]:
    """The printout for DRY=1: the total, the rule, then a line per agent and rate; with a `budget` of
    GPU-hours, the mode and K per agent and whether the measured rows fit it (budget_lines)."""
    from iqrl.config.run import ConfigError

    if not runs:
        return ["projected GPU-hours: 0 (no run to start)"]
    try:
        rows = project(runs, results, rates)
    except ConfigError as e:  # only where the sweep was not validated (tests)
        return [f"projected GPU-hours: none ({e})"]
    total = sum(r.gpu_hours for r in rows)
    lines = [
        f"projected GPU-hours at the fastest measured rows (docs/gpu-results, docs/sweeps.md): {total:,.0f} "
        f"for {sum(r.runs for r in rows)} runs, {sum(r.updates for r in rows) / 1e6:,.1f}M updates",
        f"  ({RULE})",
    ]
    for r in rows:
        if r.rate.end_to_end:
            rate = f"{r.rate.how} at {r.rate.env_steps_per_s} env steps/s per seed end to end"
        else:
            rate = f"{r.rate.how} at {r.rate.updates_per_s} updates/s per seed"
        updates = f"{r.updates / 1e6:,.1f}M updates, {rate}"
        lines.append(f"  {r.agent}: {r.runs} runs, {updates} ({r.source}): {r.gpu_hours:,.0f} GPU-hours")
    return lines + ([] if budget is None else budget_lines(rows, budget))


def budget_lines(rows: Sequence[Projection], budget: float) -> list[str]:
    """GPU_HOURS=: a table of agent, its cheapest measured mode and K, GPU-hours; the total against the
    budget, counting measured rows only (an agent at the stand-in has no measured combination)."""
    per_agent: dict[str, list[Projection]] = {}
    for r in rows:
        per_agent.setdefault(r.agent, []).append(r)
    lines = [
        f"budget {budget:,.0f} GPU-hours, measured rows only: agent, fastest measured mode and K, GPU-hours"
    ]
    for agent, mine in per_agent.items():
        how = ", ".join(dict.fromkeys(p.rate.how if p.measured else "no measured row" for p in mine))
        lines.append(f"  {agent:<16} {how:<32} {sum(p.gpu_hours for p in mine):>10,.0f}")
    measured = sum(p.gpu_hours for p in rows if p.measured)
    unmeasured = sorted({p.agent for p in rows if not p.measured}, key=list(per_agent).index)
    total = sum(p.gpu_hours for p in rows)
    if unmeasured:
        lines.append(
            f"  no measured combination covers the sweep: {len(unmeasured)} agent(s) have no measured "
            f"row for some runs ({', '.join(unmeasured)}; {total - measured:,.0f} GPU-hours at the "
            f"stand-in); the measured runs' cheapest combination costs {measured:,.0f} of the "
            f"{budget:,.0f} ({'fits' if measured <= budget else 'over'})"
        )
    elif total <= budget:
        lines.append(f"  fits: {total:,.0f} of {budget:,.0f} GPU-hours in the modes and K above")
    else:
        lines.append(f"  none fits: the cheapest measured combination costs {total:,.0f} > {budget:,.0f}")
    return lines
