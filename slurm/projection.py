"""The GPU-hours (CPU-hours on a CPU profile) a sweep would take, printed by `make sweep ... DRY=1`
(docs/sweeps.md, "Projecting a campaign").

A run's work is its env steps, its updates (its env steps after the seed phase times its rate, as the trainer
counts them: the run's `updates_per_step`, else its agent's default at the run's action repeat; BRO's
update-to-data ratio of 10 per stored transition is 5 per env step at repeat 2) and its evaluation episodes'
env steps. Each config is priced from what one of its updates costs (slurm/cost.py: its FLOPs, bytes and
kernel launches counted on the CPU) and the measured rows of the GPU report (docs/gpu-results/, `make
gpu-report`, rows whose rates stand: no error, not stale, not flagged), at the row that makes it cheapest per
seed-GPU-hour among its agent's rows of its observations and precision, on CUDA, in any mode (eager,
compiled, graph-captured: they train alike) and any K up to its config's number of seeds, saying which:

1. end to end: a whole run of the agent at K (`make bench --end-to-end`, row kind `run`), its env steps/s per
   seed (collection, acting, updates, evaluation and writing as they ran) for a config at the agent's own
   update rate;
2. updates plus collection: the update row's updates/s per seed, with the env steps (training and
   evaluation) at the collection rate the same row measured for its K (a K = 1 row's env steps/s with the
   agent acting; a K-seed row's group collection per seed); a row that measured no collection prices the
   updates alone and says so. A config whose counted update differs from the row's (a variant: wider
   latent, longer horizon, other networks) takes the row's rate times the ratio of the two updates' modeled
   seconds (slurm/cost.py's eager GPU fit), "modeled from" the row;
3. an agent with no row: eager, one run per GPU, its update's seconds from the eager GPU fit to every
   agent's eager K = 1 rows, its collection at the rows' env time per env step plus its action's launches at
   the rows' seconds per launch.

Each line gives its expected error: for a modeled line the largest error of the eager fit predicting each
of its rows from the others (`holdout_lines`). A row's rates are per seed of K sharing one GPU, so a
config's n seeds take ceil(n / K) GPUs for one seed's time (GPU-hours per seed: one run's hours / K where K
divides n). The rates hold on every task (measured on walker-walk): tasks differ only in their work.

On a CPU profile (device cpu) a run's CPU-hours are its updates at the CPU fit's seconds (slurm/cost.py, this
CPU's bench rows) and its env steps at the rows' collection rate.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from slurm.cost import Fit
from slurm.spec import RunSpec, built_config, config_key, config_runs

REPO = Path(__file__).resolve().parents[1]
GPU_RESULTS = REPO / "docs" / "gpu-results"
MODE_NAMES = {"false": "eager", "true": "compiled", "cudagraphs": "graphs"}  # a bench row's `compile`
RULE = (
    "rule: each config at its agent's measured row (same observations and precision, CUDA, any mode, "
    "K <= its seeds) that costs least per seed, times its counted update's modeled seconds against the "
    "row's: "
    "an end-to-end run's env steps/s, else the update row's updates/s plus its env steps (training and "
    "evaluation) at the collection rate measured at its K; n seeds at K per GPU take ceil(n/K) GPUs, each "
    "for one seed's time; the rates hold on every task; no row: eager K=1 at the eager GPU fit to every "
    "agent's rows (slurm/cost.py)"
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
    end to end or updates plus collection, its updates/s divided by `ratio` (the config's modeled update
    against the row's), or the eager GPU fit alone (`row` empty); `error`: the expected relative error of a
    modeled rate."""

    updates_per_s: float  # per seed
    seeds: int = 1  # runs sharing one GPU
    mode: str = "eager"
    row: str = ""  # "NVIDIA H200 2026-11-26 `iqrl walker-walk state fp32 compile=true K=1`"; "" for the fit
    env_steps_per_s: float | None = None  # collection per seed at K; None: not measured
    end_to_end: bool = False  # env_steps_per_s is a whole run's rate, updates and evaluation included
    ratio: float = 1.0
    error: float = 0.0
    fit: str = ""  # the rows of the eager GPU fit, where no row of the agent prices it

    @property
    def how(self) -> str:
        """The mode and K: "compiled K=1", "eager K=4"."""
        return f"{self.mode} K={self.seeds}"

    @property
    def source(self) -> str:
        collect = (
            ", updates only (the row measured no collection)"
            if self.env_steps_per_s is None
            else f", updates + collection and evaluation at {self.env_steps_per_s} env steps/s"
        )
        error = "not known (one row)" if math.isnan(self.error) else f"+-{self.error:.0%}"
        if not self.row:
            return f"modeled: the eager fit to {self.fit}{collect}; expected error {error}"
        if self.ratio != 1.0:
            return (
                f"modeled from {self.row}: its updates/s / {self.ratio:.2f}, this config's counted update "
                f"against the row's{collect}; expected error {error}"
            )
        if self.end_to_end:
            return f"measured end to end: {self.row}"
        return f"measured: {self.row}{collect}"

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


@dataclass(frozen=True)
class Projection:
    """The runs of one agent at one rate: their number, updates and GPU-hours."""

    agent: str
    runs: int
    updates: float
    rate: Rate
    gpu_hours: float
    variants: tuple[str, ...] = ("default",)

    @property
    def measured(self) -> bool:
        """Whether a measured row (its mode and K) prices these runs, scaled or not."""
        return bool(self.rate.row)

    @property
    def source(self) -> str:
        return self.rate.source


def measured_rows(folder: Path = GPU_RESULTS) -> list[dict]:
    """The bench rows of docs/gpu-results/*.jsonl whose rates stand (no `error`, `stale` or `flag`:
    iqrl.bench.gpu_rows.rate_stands), each with its file's GPU and date."""
    from iqrl.bench.gpu_rows import rate_stands, run_row_stands

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
    eager group's at paper sizes (16 seeds, 12 updates, every piece replayed: iqrl.bench.gpu_rows.
    GROUP_GRAPHS_TEST), its last outcome on some GPU a pass: until then a group is not captured by `auto`
    (slurm/pack.py, group_mode) however fast a captured row measured."""
    from iqrl.bench.gpu_rows import GROUP_GRAPHS_TEST, latest_test_outcomes, read_jsonl

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


def run_rate(
    run: RunSpec, cfg, n: int, rows: Sequence[dict], work: Work | None = None, model: Model | None = None
) -> Rate:
    """The rate of a config's runs (`cfg` the first's config, `n` its seeds in the sweep, `work` one seed's):
    its agent's measured row that costs least per seed, scaled by `model` (module docstring), else the
    model's eager fit (None: no model, where only the mode of the cheapest row is asked for; Rate(0) if
    none). End-to-end rows price a config at its agent's own update rate only
    (`updates_per_step` unset) and its agent's own update."""
    from iqrl.envs.tasks import split_task

    keys = {o.split("=", 1)[0] for o in run.overrides}
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
        and r.get("device") == (model.device if model else "cuda")
        and "agent."
        not in r["key"]  # rows with extra keys (the pixel rows' image_pad) measure another config
        and (cfg.obs == "state" or split_task(r["task"])[0] == suite)  # pixel rows: encoders differ per suite
    ]
    fits = [r for r in fits if r.seeds <= n and (pinned is None or r.mode == pinned)]
    if model is not None:
        fits = [model.scaled(r, run.agent, cfg, run.overrides) for r in fits]
    if cfg.updates_per_step is not None:  # another rate than the whole runs measured
        fits = [r for r in fits if not r.end_to_end]
    fits = [r for r in fits if not (r.end_to_end and r.ratio != 1.0)]
    work = work or Work(0.0, 1.0)
    if not fits:
        return Rate(0.0) if model is None else model.alone(run.agent, cfg, run.overrides)
    return min(fits, key=lambda r: r.gpu_hours(work, n))


@dataclass(frozen=True)
class Model:
    """The eager GPU fit (slurm/cost.py) to the eager K = 1 rows of every agent, its largest hold-one-out
    error, and the rows' collection: env seconds per env step (their collection less their acting, at
    walker-walk's action repeat 2) and acting seconds per launch."""

    fit: Fit | None  # None: no eager K = 1 row
    error: float  # nan: a single row
    env_s: float | None  # None: no row measured collection and acting
    act_s_per_launch: float
    device: str = "cuda"

    @classmethod
    def of(cls, rows: Sequence[dict], device: str = "cuda") -> Model:
        from slurm.cost import FEATURES, GPU_FEATURES, fit, holdout

        features = GPU_FEATURES if device == "cuda" else FEATURES
        eager = fit_rows(rows, device)
        samples = [(name, c, s) for name, c, s, _ in eager]
        errors = [abs(e) for *_, e in holdout(samples, features)] if len(samples) > 1 else [math.nan]
        acting = [(c, r) for _, c, _, r in eager if r.get("env_steps_per_s") and r.get("act_ms") is not None]
        env_s = (
            np.median([1 / r["env_steps_per_s"] - r["act_ms"] / 2000 for _, r in acting]) if acting else None
        )
        act = sum(r["act_ms"] / 1000 for _, r in acting) / max(sum(c.act_launches for c, _ in acting), 1)
        return cls(fit(samples, features) if samples else None, max(errors), env_s, act, device)

    def seconds(self, agent: str, cfg, overrides=()) -> float:
        from slurm.cost import counts_of

        return self.fit.seconds(counts_of(agent, cfg, overrides))

    def scaled(self, rate: Rate, agent: str, cfg, overrides) -> Rate:
        """`rate`, a row of `agent`'s bench config, for the config `cfg`: its updates/s over the ratio of
        their modeled update seconds (1 where the config's counts are the row's)."""
        from slurm.cost import bench_config

        if self.fit is None:
            return rate
        ratio = self.seconds(agent, cfg, overrides) / self.seconds(agent, bench_config(agent, obs=cfg.obs))
        ratio = 1.0 if abs(ratio - 1) < 1e-9 else ratio
        return replace(
            rate, updates_per_s=round(rate.updates_per_s / ratio, 3), ratio=ratio, error=self.error
        )

    def alone(self, agent: str, cfg, overrides) -> Rate:
        """An agent with no row: eager, one run per GPU, its update and its action's launches modeled."""
        from iqrl.config.run import ConfigError
        from slurm.cost import counts_of

        if self.fit is None:
            raise ConfigError(f"no eager K = 1 row on {self.device} to model {agent}'s updates from")
        act_s = counts_of(agent, cfg, overrides).act_launches * self.act_s_per_launch
        collect = None if self.env_s is None else round(1 / (self.env_s + act_s / cfg.action_repeat), 1)
        ups = round(1 / self.seconds(agent, cfg, overrides), 3)
        gpus = {name.split(" `")[0]: None for name in self.fit.rows}  # name: "<GPU> `<key>`"
        agents = ", ".join(name.split("`")[1].split()[0] for name in self.fit.rows)
        fit = f"{' and '.join(gpus)}'s eager K=1 rows of {agents}"
        return Rate(ups, env_steps_per_s=collect, error=self.error, fit=fit)


def fit_rows(rows: Sequence[dict], device: str = "cuda") -> list[tuple]:
    """The eager K = 1 rows on `device` of state observations in fp32, each as (its key, its config's
    counts, its seconds per update, the row)."""
    from slurm.cost import bench_config, counts_of

    out = []
    for r in rows:
        eager = r.get("kind") == "bench" and str(r.get("compile")).lower() == "false" and r["seeds"] == 1
        alone = r.get("packed", 1) == 1 and "agent." not in r["key"]  # the bench config of the agent
        if not (eager and alone and r.get("device") == device and r.get("obs") == "state"):
            continue
        if r.get("dtype") != "fp32":
            continue
        counts = counts_of(r["agent"], bench_config(r["agent"]))
        out.append((f"{r['gpu']} `{r['key']}`", counts, 1 / r["updates_per_s"], r))
    return out


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


def project(
    runs: Sequence[RunSpec], results: Path, rates: Path = GPU_RESULTS, device: str = "cuda"
) -> list[Projection]:
    """Per agent and rate, the runs' updates and GPU-hours (`device` cpu: CPU-hours at this CPU's bench rows,
    slurm/cost.py CPU_RESULTS), in the order agents first appear; `rates` the folder of the GPU report's
    result files."""
    from slurm.cost import cpu_rows

    device = "cpu" if device == "cpu" else "cuda"  # a profile's cuda:N or auto: the GPU's rows
    rows = measured_rows(rates) if device == "cuda" else cpu_rows()
    model = Model.of(rows, device)
    groups: dict[tuple[str, Rate], list] = {}
    for members, work, cfg in configs(runs, results):
        rate = run_rate(members[0], cfg, len(members), rows, work, model)
        g = groups.setdefault((members[0].agent, rate), [0, 0.0, 0.0, {}])
        g[0] += len(members)
        g[1] += work.updates * len(members)
        g[2] += rate.gpu_hours(work, len(members))
        g[3][members[0].variant] = None
    return [Projection(a, n, u, rate, h, tuple(v)) for (a, rate), (n, u, h, v) in groups.items()]


def projection_lines(
    runs: Sequence[RunSpec],
    results: Path,
    budget: float | None = None,
    rates: Path = GPU_RESULTS,
    device: str = "cuda",
) -> list[str]:
    """The printout for DRY=1: the total, the rule, then a line per agent and rate; with a `budget` of
    GPU-hours, the mode and K per agent and whether the measured rows fit it (budget_lines). `device` cpu:
    CPU-hours on this CPU."""
    from iqrl.config.run import ConfigError

    device = "cpu" if device == "cpu" else "cuda"
    unit = "GPU-hours" if device == "cuda" else "CPU-hours"
    if not runs:
        return [f"projected {unit}: 0 (no run to start)"]
    try:
        rows = project(runs, results, rates, device)
    except ConfigError as e:  # only where the sweep was not validated (tests)
        return [f"projected {unit}: none ({e})"]
    total = sum(r.gpu_hours for r in rows)
    where = "docs/gpu-results" if device == "cuda" else "this CPU's bench rows, docs/cpu-results.jsonl"
    lines = [
        f"projected {unit} at the fastest measured rows ({where}, docs/sweeps.md): {total:,.0f} "
        f"for {sum(r.runs for r in rows)} runs, {sum(r.updates for r in rows) / 1e6:,.1f}M updates",
        f"  ({RULE if device == 'cuda' else RULE.replace('CUDA', 'this CPU').replace('GPU', 'CPU')})",
    ]
    for r in rows:
        if r.rate.end_to_end:
            rate = f"{r.rate.how} at {r.rate.env_steps_per_s} env steps/s per seed end to end"
        else:
            rate = f"{r.rate.how} at {r.rate.updates_per_s} updates/s per seed"
        updates = f"{r.updates / 1e6:,.1f}M updates, {rate}"
        name = r.agent if r.variants == ("default",) else f"{r.agent} {', '.join(r.variants)}"
        lines.append(f"  {name}: {r.runs} runs, {updates} ({r.source}): {r.gpu_hours:,.0f} {unit}")
    return lines + ([] if budget is None else budget_lines(rows, budget))


def budget_lines(rows: Sequence[Projection], budget: float) -> list[str]:
    """GPU_HOURS=: a table of agent, its cheapest measured mode and K, GPU-hours; the total against the
    budget, counting measured rows only (an agent priced by the eager fit alone has no measured
    combination)."""
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
            f"eager fit); the measured runs' cheapest combination costs {measured:,.0f} of the "
            f"{budget:,.0f} ({'fits' if measured <= budget else 'over'})"
        )
    elif total <= budget:
        lines.append(f"  fits: {total:,.0f} of {budget:,.0f} GPU-hours in the modes and K above")
    else:
        lines.append(f"  none fits: the cheapest measured combination costs {total:,.0f} > {budget:,.0f}")
    return lines


def refuse_long_local(plan, results: Path) -> None:
    """A local sweep's runs still to run (slurm/submit.py's plan) of more than CPU_HOURS_LIMIT CPU-hours on
    this machine raise ProfileError (`error:`, exit 2) unless started with --yes."""
    from slurm.cost import CPU_HOURS_LIMIT
    from slurm.profiles import ProfileError

    runs = [r for r, _ in plan.todo + plan.waiting]
    hours = sum(p.gpu_hours for p in project(runs, results, device="cpu")) if runs else 0.0
    if hours > CPU_HOURS_LIMIT:
        raise ProfileError(
            f"{len(runs)} runs would take about {hours:,.0f} CPU-hours on this machine (over "
            f"{CPU_HOURS_LIMIT:g}; DRY=1 prints each agent's): add --yes (YES=1) to start them"
        )
