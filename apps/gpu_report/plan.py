"""What each part of the GPU report measures, in the order it measures it: the most wanted rows first, so a
part that runs out of time has measured those. `smoke=True` gives the CPU check's tiny rows (`make
gpu-report SMOKE=1`), one of each kind, which runs every code path of the parts but the CUDA-only ones.
Part 2 measures by default what the campaigns' projections price (`campaign_rows`); `full=True` (`FULL=1`)
every agent in every mode and precision besides (`full_rows`)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from iqrl.config.build import build_config, layered
from iqrl.config.run import ConfigError
from iqrl.core.registry import agent_class, agent_names
from iqrl.envs.tasks import TASK_GROUPS, TASK_LISTS
from iqrl.multiseed.refusals import unsupported
from slurm.spec import load_sweep

REPO = Path(__file__).resolve().parents[2]

#: The state task of the bench rows and of the learning check; DC-MPC's is the task of its CPU rows.
STATE_TASK = "walker-walk"
TASK_OF = {"dcwm": "cartpole-swingup"}
#: The pixel task of docs/performance.md's CPU pixel table, so that the two tables compare.
PIXEL_TASK = "cartpole-swingup"
MODES = ("false", "true", "cudagraphs")  # `make bench COMPILE=` values
MODE_NAMES = {"false": "eager", "true": "compiled", "cudagraphs": "graphs"}
DTYPES = ("fp32", "tf32", "bf16")
K_SEEDS = (4, 16)  # K = 1 is the plain row of the same agent
#: K of the compiled and graph-captured K-seed rows (iqrl.multiseed compile=true / cudagraphs=true).
K_SEEDS_COMPILED = (4, 16, 32)
#: The compile modes, fastest first (docs/performance.md, "On a GPU": captured, then compiled, then eager).
FASTEST_FIRST = ("cudagraphs", "true", "false")
#: The campaigns whose sweeps the projections price (`make sweep SWEEP=... DRY=1`): their agents are part 2's.
CAMPAIGN_SWEEPS = ("ablations/main.yaml", "ablations/sota.yaml", "ablations/network.yaml")
#: A campaign's five seeds per config train as K = 4 groups (and one left over): part 2's K.
CAMPAIGN_K = 4
#: Part 2's end-to-end rows: whole runs of this many env steps, their seed phase shortened to 1000 env steps
#: (E2E_KEYS) so that 2000 env steps (1000 agent steps) of updates make up most of the row's time: under the
#: part's 90 s a row (ROW_RESERVE_S) for iqrl, a few minutes for the high-UTD presets.
E2E_STEPS = 3000
E2E_KEYS = ("seed_steps=1000",)
#: The agents that cost a paper campaign most (the high-UTD presets: ablations/main.yaml's projection).
COSTLY_AGENTS = ("bro-utd10", "simbav2-utd8")
#: Pixel rows: sac-ae, iqrl, and sac with DrQ's random shift (docs/pixels.md: image_pad 4 gives DrQ).
PIXEL_AGENTS = (("sac-ae", ()), ("iqrl", ()), ("sac", ("agent.image_pad=4",)))
#: Discrete actions on Atari's frames (docs/discrete.md): MR.Q's and iQRL's updates at the paper sizes, whose
#: GPU rates the Atari sweeps' projection lacks (ablations/atari.yaml).
ATARI_TASK = "atari:Breakout"
ATARI_AGENTS = ("mrq", "iqrl")

#: Smoke sizes (tests/conftest.py's tiny runs): short seed phase, small networks and batches.
SMOKE_KEYS = ("seed_steps=100", "agent.mlp_dims=[32,32]", "agent.batch_size=16")
SMOKE_IQRL = SMOKE_KEYS + ("agent.latent_dim=8", "agent.enc_mlp_dims=[32]")
SMOKE_SAC_AE = SMOKE_KEYS + ("agent.feature_dim=8",)
#: The smoke's end-to-end row: 100 env steps of updates after its seed phase, evaluated once on the way.
SMOKE_E2E = ("episode_length=100", "eval_every=100", "eval_episodes=1", "diag_every=100")


@dataclass(frozen=True)
class BenchRow:
    """One `make bench` row (iqrl/bench/cli.py row_command); `packed` > 1 measures that many copies of it at
    once, sharing the device, as a packed job's side-by-side runs do (docs/sweeps.md)."""

    agent: str
    task: str
    dtype: str = "fp32"
    compile: str = "false"
    seeds: int = 1
    obs: str = "state"
    packed: int = 1
    image_size: int = 84
    extra: tuple[str, ...] = ()
    end_to_end: int = 0  # > 0: a whole run of that many env steps (`make bench --end-to-end`), not updates

    @property
    def key(self) -> str:
        """The row's name in result files and in the list of missing rows."""
        parts = [self.agent, self.task, self.obs, self.dtype, f"compile={self.compile}", f"K={self.seeds}"]
        if self.packed > 1:
            parts.append(f"packed={self.packed}")
        if self.end_to_end:
            parts.append(f"end-to-end={self.end_to_end}")
        return " ".join(parts + [k for k in self.extra if k.startswith("agent.image_pad")])

    @property
    def short(self) -> str:
        """What the row varies beside its agent, task and observations: "fp32 graphs", "fp32 eager K=4"."""
        parts = [self.dtype, MODE_NAMES[self.compile]]
        parts += [f"K={self.seeds}"] * (self.seeds > 1) + [f"{self.packed} packed"] * (self.packed > 1)
        parts += [f"end to end {self.end_to_end}"] * (self.end_to_end > 0)
        return " ".join(parts + [k for k in self.extra if k.startswith("agent.image_pad")])


@dataclass(frozen=True)
class HostRow:
    """A `make bench --host-share` or `--overlap STEPS` row of iqrl's K-seed group (iqrl/bench/hostshare.py,
    overlap.py: row kinds `host_share`, `overlap`), with the seconds it is expected to take on a GPU, which
    part 1 keeps for it beside its tests (HOST_ROWS_S)."""

    kind: str  # "host_share" or "overlap"
    task: str
    seeds: int
    expected_s: float
    steps: int = 0  # overlap: env steps per seed of each of its three jobs
    extra: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.kind} iqrl {self.task} K={self.seeds}" + f" steps={self.steps}" * (self.steps > 0)

    def argv(self, device: str, out: str) -> list[str]:
        """`python -m iqrl.bench`'s arguments that measure the row on `device`, its rows written to `out`."""
        what = ["--host-share"] if self.kind == "host_share" else ["--overlap", str(self.steps)]
        where = ["--tasks", self.task, "--seeds", str(self.seeds), "--device", device, "--out", out]
        return what + where + [f"--set={kv}" for kv in self.extra]


#: The overlap row's task: cartpole's episodes of 200 env steps at the demo's sizes, the overlap bench's own
#: (its jobs' seed phase, iqrl/bench/overlap.py SEED_STEPS, is one such episode).
OVERLAP_TASK = "cartpole-balance"


def host_rows(smoke: bool = False) -> list[HostRow]:
    """Part 1's bench rows of the host's share, before its tests: iqrl at paper size as a K = 16 group on the
    state task (acting ms and operators and syncs per agent step, per update, seconds per evaluation of the
    group), then the overlap of a K = 16 group's collection with its updates, two cohorts of 8, 600 env steps
    per job (400 of them updating). Expected seconds on an H200 (none measured yet): the host share builds 16
    paper-size agents and fills a replay (~30 s), acts 200 timed group steps (~10 ms each) and evaluates the
    group on the bench's 20-step episodes (~10 s); the overlap runs three K = 16 jobs at the demo's sizes
    (~20 s of start-up each: imports, 16 envs; ~20 ms per updating group step). `smoke`: a tiny K = 2
    host-share row only (an overlap row runs three jobs of at least 4 seeds: minutes on a CPU)."""
    if smoke:
        return [HostRow("host_share", STATE_TASK, 2, 0.0, extra=SMOKE_IQRL)]
    return [
        HostRow("host_share", STATE_TASK, 16, 60.0),
        HostRow("overlap", OVERLAP_TASK, 16, 150.0, steps=600),
    ]


#: Part 1's seconds kept for its host rows: its tests get the rest of its budget.
HOST_ROWS_S = sum(r.expected_s for r in host_rows())


@dataclass(frozen=True)
class LearnRun:
    """One training run of part 3: `seeds` > 1 trains them in one K-seed process (iqrl.multiseed)."""

    agent: str
    task: str
    keys: tuple[str, ...]
    seeds: int = 1

    @property
    def key(self) -> str:
        return f"{self.agent} {self.task} {'pixels' if 'obs=pixels' in self.keys else 'state'}"

    @property
    def mode(self) -> str:
        """How its updates run: the MODE_NAMES name of its compile keys, "K-seed" before it for a group
        ("K-seed", "K-seed compiled", ...: an eager group is "K-seed")."""
        compiled = "compile=true" in self.keys
        name = MODE_NAMES["cudagraphs" if "cudagraphs=true" in self.keys else str(compiled).lower()]
        if self.seeds > 1:
            return "K-seed" if name == MODE_NAMES["false"] else f"K-seed {name}"
        return name


def campaign_agents() -> list[str]:
    """The agents of CAMPAIGN_SWEEPS, in their order (each once)."""
    groups = {**TASK_GROUPS, **TASK_LISTS}
    return list(dict.fromkeys(a for f in CAMPAIGN_SWEEPS for a in load_sweep(REPO / f, groups).agents))


def task_of(agent: str) -> str:
    """The task of an agent's every-mode rows: walker-walk, or Breakout's frames for one without boxes."""
    if "box" not in agent_class(agent).ACTION_SPACES:
        return ATARI_TASK
    return TASK_OF.get(agent, STATE_TASK)


def obs_of(agent: str) -> str:
    return "pixels" if task_of(agent) == ATARI_TASK else "state"


def has_k_seed_mode(agent: str, mode: str = "false") -> bool:
    """Whether the K-seed mode takes the agent on its task in compile mode `mode` (`make bench COMPILE=`)."""
    argv = [f"agent={agent}", f"task={task_of(agent)}", f"obs={obs_of(agent)}"]
    argv += [f"compile={str(mode != 'false').lower()}"] + ["cudagraphs=true"] * (mode == "cudagraphs")
    try:
        return unsupported(build_config(argv)) is None
    except ConfigError:  # its task's suite is not installed here (ale-py on a bare GPU machine)
        return False


def k_seed_rows(agent: str, task: str, obs: str = "state") -> list[BenchRow]:
    """An agent's K-seed rows: compiled, then graph-captured, at K = 4, 16, 32, then eager at K = 4, 16."""
    rows = [BenchRow(agent, task, compile=m, seeds=k, obs=obs) for m in MODES[1:] for k in K_SEEDS_COMPILED]
    return rows + [BenchRow(agent, task, seeds=k, obs=obs) for k in K_SEEDS]


#: The ways of training a GPU model has verified before any test ran there: eager, one seed or a group.
EAGER_WAYS = frozenset({(False, "false"), (True, "false")})


def fastest_mode(ways, kseed: bool, agent: str | None = None) -> str:
    """The fastest compile mode (FASTEST_FIRST) among the verified `ways` ({(K-seed mode?, mode)}:
    parts.matching_ways of a GPU model's part-1 tests) of one seed (`kseed` False) or of a group; for a
    group of `agent`, among the modes its K-seed mode takes."""
    ok = [m for m in FASTEST_FIRST if (kseed, m) in ways]
    return next(m for m in ok if not (kseed and agent) or has_k_seed_mode(agent, m))


def campaign_rows(ways=EAGER_WAYS) -> list[BenchRow]:
    """What the campaigns' projections price (slurm/projection.py takes an end-to-end row first): each
    campaign agent (`campaign_agents`) end to end as a K = 4 group (one seed where the K-seed mode refuses
    it) in its fastest mode verified on the GPU model (`ways`), then iqrl's the same in the reduced
    precisions (DTYPES[1:]), which only iQRL's sweeps consider."""
    rows = []
    for a in campaign_agents():
        k = CAMPAIGN_K if has_k_seed_mode(a) else 1
        mode = fastest_mode(ways, k > 1, a)
        rows.append(BenchRow(a, task_of(a), "fp32", mode, k, obs_of(a), end_to_end=E2E_STEPS, extra=E2E_KEYS))
    iqrl = next(r for r in rows if r.agent == "iqrl")
    return rows + [replace(iqrl, dtype=d) for d in DTYPES[1:]]


def part2_rows(smoke: bool = False, full: bool = False, ways=EAGER_WAYS) -> list[BenchRow]:
    """The bench rows of part 2, most wanted first: the campaigns' end-to-end rows (`campaign_rows`, in the
    modes `ways` allows); with `full`, every row of `full_rows` after them. `smoke`: smoke_rows."""
    if smoke:
        return smoke_rows()
    rows = campaign_rows(ways) + (full_rows() if full else [])
    unique: dict[str, BenchRow] = {}
    for r in rows:
        unique.setdefault(r.key, r)  # the first of equal keys, where it first comes
    return list(unique.values())


def full_rows() -> list[BenchRow]:
    """Part 2's rows on request (`FULL=1`): iqrl's eager, compiled and graph-captured updates, its K-seed
    mode compiled, captured and eager (docs/sweeps.md, "Projecting a campaign"), the costliest agents
    (COSTLY_AGENTS) in every mode and their K-seed rows, td3's modes, iqrl's reduced precisions, a packed
    pair, the pixel rows, the Atari rows, DC-MPC, then every agent in every mode and precision and every
    K-seed row."""
    ww = STATE_TASK
    rows = [BenchRow("iqrl", ww, compile=m) for m in MODES]
    rows += k_seed_rows("iqrl", ww)
    for a in COSTLY_AGENTS:
        rows += [BenchRow(a, ww, compile=m) for m in MODES]
        rows += k_seed_rows(a, ww) if has_k_seed_mode(a) else []
    rows += [BenchRow("td3", ww, compile=m) for m in MODES]
    rows += [BenchRow("iqrl", ww, d, m) for d in DTYPES[1:] for m in MODES]
    rows += [BenchRow("iqrl", ww, packed=2)]
    rows += [BenchRow(a, PIXEL_TASK, obs="pixels", extra=extra) for a, extra in PIXEL_AGENTS]
    rows += [BenchRow(a, ATARI_TASK, obs="pixels") for a in ATARI_AGENTS]
    agents = sorted(agent_names(), key=lambda a: a != "dcwm")  # DC-MPC (MPPI) has never run on a GPU here
    rows += [BenchRow(a, task_of(a), d, m, obs=obs_of(a)) for d in DTYPES for a in agents for m in MODES]
    k_seed = [a for a in agents if has_k_seed_mode(a)]
    rows += [BenchRow(a, task_of(a), seeds=k, obs=obs_of(a)) for a in k_seed for k in K_SEEDS]
    return rows


def smoke_rows() -> list[BenchRow]:
    """One tiny row of each kind that runs on a CPU: K-seed, an eager packed pair, pixels (32 px), a K-seed
    group end to end.
    Compiled rows are left out (compiling takes 10-35 s a row on a CPU; tests/test_compile.py holds them to
    eager), as are tf32 and cudagraphs, which need CUDA."""
    ww = STATE_TASK
    return [
        BenchRow("iqrl", ww, seeds=2, extra=SMOKE_IQRL),
        BenchRow("iqrl", ww, packed=2, extra=SMOKE_IQRL),
        BenchRow("sac-ae", PIXEL_TASK, obs="pixels", image_size=32, extra=SMOKE_SAC_AE),
        BenchRow("iqrl", ww, seeds=2, end_to_end=200, extra=tuple(layered(E2E_KEYS, SMOKE_IQRL, SMOKE_E2E))),
    ]


#: Paper-scale learning runs of issues 48 and 60, DMC-hard at 1M env steps, five seeds in one K-seed process
#: each: hours each, longer than any part, so no part runs them; the report lists them as wanted until a
#: campaign has
#: (the full grids with projected GPU-hours: ablations/sota.yaml and ablations/network.yaml, `make sweep
#: DRY=1`). DR.Q's released curves (REFERENCE_DRQ=) hold dr-q's published numbers on both tasks, SimbaV2's
#: (REFERENCE_SIMBA=) TD-MPC2's; DroQ has none on DMC.
PAPER_SCALE_AGENTS = ("simbav2-utd8", "bro-utd10", "crossq", "iqrl", "dr-q", "tdmpc2", "droq")
PAPER_SCALE_TASKS = ("humanoid-run", "dog-run")


#: DreamerV3 (issue 80) at its paper's scale, the references of MR.Q's comparisons, five seeds each: DMC
#: from states at the settings of its released scores (danijar/dreamerv3@2411f7d configs.yaml: size12m,
#: train_ratio 512, action repeat 2, 500k env steps; docs/faithfulness.md DV3-8), DMC from pixels at the
#: code's default size (200m) and Atari 100k (400k frames) at e3f0224's settings; its released curves are
#: danijar/dreamerv3's scores/ (dmc_proprio, dmc_vision, atari100k). The seed phase is the code's (the run key
#: seed_steps left to DreamerV3Config.SEED_PHASE): 4,096 env steps with DMC's 16 envs, 4,352 on Atari 100k.
_DV3_PROPRIO = ("agent.size=12m", "agent.train_ratio=512", "steps=500000")
_DV3_FRAMES = ("image_size=64", "frame_stack=1")
_DV3_ATARI = ("protocol=atari100k", *_DV3_FRAMES, "steps=400000", "seed_steps=4352")
DREAMERV3_PAPER_SCALE = (
    ("walker-walk", _DV3_PROPRIO),
    ("cheetah-run", _DV3_PROPRIO),
    ("walker-walk", ("obs=pixels", *_DV3_FRAMES, "steps=1000000")),
    ("atari:Pong", _DV3_ATARI),
    ("atari:Breakout", _DV3_ATARI),
)


def paper_scale_runs() -> list[LearnRun]:
    runs = [
        LearnRun(a, t, (f"agent={a}", f"task={t}", "steps=1000000", "eval_every=20000"), seeds=5)
        for t in PAPER_SCALE_TASKS
        for a in PAPER_SCALE_AGENTS
    ]
    runs += [
        LearnRun("dreamerv3", t, ("agent=dreamerv3", f"task={t}", *keys, "eval_every=10000"), seeds=5)
        for t, keys in DREAMERV3_PAPER_SCALE
    ]
    return runs


#: The seeds of part 3's iqrl run in the K-seed mode.
PART3_SEEDS = 5


def part3_runs(kseed: bool, mode: str, smoke: bool = False) -> list[LearnRun]:
    """iqrl on walker-walk (five seeds in one K-seed process when `kseed`, else one seed; either with the
    `compile` mode `mode`) and a pixel sac-ae run on cartpole-swingup, both to 100k env steps or as far as
    the part's time goes. Evaluations every 5000 env steps, so that a few minutes' run has some. Then mrq on
    Breakout at MR.Q's protocol to 400k frames (100k agent steps, MR.Q's first released point after 0: 10.8
    over its 10 seeds), evaluated every 40k frames; not in the smoke check (ale-py)."""
    iqrl = ["agent=iqrl", f"task={STATE_TASK}", "steps=100000", "eval_every=5000", "checkpoint_every=100000"]
    sac_ae = ["agent=sac-ae", f"task={PIXEL_TASK}", "obs=pixels", "image_size=84"]
    sac_ae += ["steps=100000", "eval_every=5000", "checkpoint_every=100000"]
    if smoke:  # tiny runs, evaluated often; they still run until the part stops them
        tiny = ["episode_length=100", "eval_every=100", "eval_episodes=1", "diag_every=100"]
        iqrl = layered(iqrl, tiny, SMOKE_IQRL)
        sac_ae = layered(sac_ae, tiny, SMOKE_SAC_AE, ["image_size=32"])
    iqrl += [f"compile={mode != 'false'}".lower()] + (["cudagraphs=true"] if mode == "cudagraphs" else [])
    runs = [
        LearnRun("iqrl", STATE_TASK, tuple(iqrl), seeds=(2 if smoke else PART3_SEEDS) if kseed else 1),
        LearnRun("sac-ae", PIXEL_TASK, tuple(sac_ae)),
    ]
    if not smoke:
        mrq = ["agent=mrq", f"task={ATARI_TASK}", "obs=pixels", "steps=400000", "updates_per_step=0.25"]
        mrq += ["seed_steps=40000", "eval_every=40000", "eval_episodes=10", "checkpoint_every=400000"]
        runs.append(LearnRun("mrq", ATARI_TASK, tuple(mrq)))
    return runs
