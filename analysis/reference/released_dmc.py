"""Readers of the state-based DMC, Meta-World and MyoSuite curves that `published_dmc.csv.gz` and
`published_suites.csv.gz` hold (analysis.reference.table): DC-MPC's runs and TD-MPC2's released baselines as
re-packaged beside them (aidanscannell/dcmpc, `read_dcmpc_results`), TCRL's runs (zhaoyi11/tcrl,
`read_tcrl_results`) and the curves of an early iQRL draft with its baselines (aidanscannell/iqrl-minimal,
`read_iqrl_draft`). `make reference` builds the two tables with them (analysis.reference.build).

All of them are tables of one row per evaluation: `env` (`walker-walk`, `cup-catch`, `mw-reach`,
`myo-hand-reach`), `seed`, `env_step` (env steps: DC-MPC logs `step * action_repeat`, `train.py` lines 153,
176 and 216 at cc2a33a) and the evaluation return `episode_reward` (and `episode_success`). Numbers are read
exactly as written (analysis.reference.table.parse_numbers)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from analysis.errors import AnalysisError
from analysis.reference.table import REFERENCE_COLUMNS, parse_numbers, read_cells

DCWM_SOURCE = "dcwm-iclr25"
TDMPC2_SOURCE = "tdmpc2-results"
TCRL_SOURCE = "tcrl-repo"
IQRL_DRAFT_SOURCE = "iqrl-icml24-draft"
SUITES_COLUMNS = ("source", "algorithm", "suite", "task", "env_step", "seed", "episode_return", "success")
#: dm_control's domains (`dm_control.suite`); a task of another (ManiSkill's `lift-cube`, `pick-ycb` in
#: TD-MPC2's release) is no DMC task. TD-MPC2's own DMC variants (`cheetah-jump`, `walker-run-backwards`,
#: `reacher-three-easy`) keep their domain and a name of the same form, which matches no task of ours.
DMC_DOMAINS = frozenset(
    "acrobot ball_in_cup cartpole cheetah dog finger fish hopper humanoid humanoid_CMU lqr manipulator "
    "pendulum point_mass quadruped reacher stacker swimmer walker".split()
)
#: The releases' short names of dm_control's domains.
DMC_DOMAIN_ALIASES = {"cup": "ball_in_cup"}
#: TD-MPC2's released baselines as aidanscannell/dcmpc re-packages them (`results/data/baselines/<file>`).
TDMPC2_FILES = ("tdmpc2.csv", "tdmpc.csv", "sac.csv", "dreamerv3.csv")
#: The iQRL draft's curves (aidanscannell/iqrl-minimal at d8e6c32, `paper/figs/plotting/baseline-comparison/`)
#: and the tasks each is taken for: its `make_plot.py` (lines 140-148) draws REDQ at UTD 10 but on fish-swim,
#: where it takes UTD 1 ("redq with utd 10 fails to solve fish-swim").
IQRL_DRAFT_FILES = {
    "iqrl.csv": None,
    "alm_main.csv": None,
    "sac_main.csv": None,
    "td3_main.csv": None,
    "tdmpc_main.csv": None,
    "redq_utd10_main.csv": lambda env: env != "fish-swim",
    "redq_utd1_main.csv": lambda env: env == "fish-swim",
}


def dmc_task_name(env: str) -> str | None:
    """A release's DMC task -> ours (dm_control's names): `cup-catch` -> `ball_in_cup-catch`,
    `cartpole-balance-sparse` -> `cartpole-balance_sparse`, `finger-turn_easy` stays; None for a task of no
    dm_control domain (DMC_DOMAINS)."""
    domain, _, task = env.partition("-")
    domain = DMC_DOMAIN_ALIASES.get(domain, domain)
    return f"{domain}-{task.replace('-', '_')}" if domain in DMC_DOMAINS and task else None


def suite_of(env: str) -> str | None:
    """The suite of a release's task name: `mw-*` Meta-World, `myo-*` MyoSuite, else DMC (None: none here)."""
    if env.startswith("mw-"):
        return "metaworld"
    if env.startswith("myo-"):
        return "myosuite"
    return "dmc" if dmc_task_name(env) else None


def one_run_per_seed(df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """One run per seed label: where a (keys) group's env_step comes back to its first step, a new run began
    under the same label (TD-MPC2's release holds TD-MPC on dog-walk seeds 1 and 2 twice, a 14M-step run
    and a 4M-step one); the run with the most evaluations is kept, the later on a tie. A step repeated within
    the kept rows keeps its last row (TCRL's fish-swim seed 843 lists two runs' rows interleaved from 176k
    env steps on). Rows in file order."""
    df = df.reset_index(drop=True)
    groups = [df[k] for k in keys]
    restart = df["env_step"].eq(df.groupby(groups)["env_step"].transform("first"))
    run = restart.astype("int64").groupby(groups).cumsum()
    size = df.groupby([*groups, run])["env_step"].transform("size")
    rank = size * (len(df) + 1) + run  # (size, run) in one number: most evaluations, then the later run
    kept = df[rank.eq(rank.groupby(groups).transform("max"))]
    return kept.drop_duplicates([*keys, "env_step"], keep="last")


def read_curves(path: Path, what: str, returns: str = "required", success: bool = False) -> pd.DataFrame:
    """A release's table (`agent, env, seed, env_step, episode_reward[, episode_success]`; other columns are
    ignored) -> columns algorithm, env, seed, env_step (whole numbers), episode_return (finite; with
    returns="optional" an empty cell is nan: the source released none), success (finite or empty, when
    asked for). AnalysisError (one line naming the file and its line) otherwise."""
    columns = ["agent", "env", "seed", "env_step", "episode_reward"] + (
        ["episode_success"] if success else []
    )
    df = read_cells(path, what, columns)
    where = f"{what} {path}"
    out = pd.DataFrame({"algorithm": df["agent"], "env": df["env"]}, index=df.index)
    out["seed"] = parse_numbers(df["seed"], where, whole=True).astype("int64")
    out["env_step"] = parse_numbers(df["env_step"], where, whole=True).astype("int64")
    named = {"episode_return": ("episode_reward", returns == "optional")}
    if success:
        named["success"] = ("episode_success", True)
    for column, (cells, optional) in named.items():
        given = (df[cells].str.strip() != "").to_numpy() if optional else np.ones(len(df), bool)
        values = np.full(len(df), np.nan)
        values[given] = parse_numbers(df[cells][given], where)
        out[column] = values
    return out.reset_index(drop=True)


def dmc_rows(df: pd.DataFrame, source: str) -> pd.DataFrame:
    """Curves of DMC tasks (read_curves' columns) -> published_dmc.csv.gz's layout, one run per seed."""
    df = df.assign(task=df["env"].map(dmc_task_name))
    df = one_run_per_seed(df[df["task"].notna()], ["algorithm", "task", "seed"])
    return df.assign(source=source, ablation="")[list(REFERENCE_COLUMNS)]


def suite_rows(df: pd.DataFrame, source: str) -> pd.DataFrame:
    """Curves of Meta-World and MyoSuite tasks -> published_suites.csv.gz's layout (the releases' task names,
    `published_name` of ours), one run per seed."""
    df = df.assign(suite=df["env"].map(suite_of), task=df["env"])
    df = one_run_per_seed(df[df["suite"].isin(["metaworld", "myosuite"])], ["algorithm", "task", "seed"])
    return df.assign(source=source)[list(SUITES_COLUMNS)]


def read_dcmpc_results(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The curves of aidanscannell/dcmpc's results data (cc2a33a, `results/data/`): DC-MPC's own runs
    (`dmc-dcmpc.csv`, `mw-dcmpc.csv`, `myo-dcmpc.csv`, algorithm `DCWM`, source `dcwm-iclr25`) and TD-MPC2's
    released TD-MPC2, TD-MPC, SAC and DreamerV3 runs as re-packaged there (`baselines/<method>.csv`, source
    `tdmpc2-results`; its Meta-World runs released success rates only, their returns are empty; its ManiSkill
    tasks are dropped). Returns (the DMC curves, the Meta-World and MyoSuite curves)."""
    folder = Path(folder)
    what = "DC-MPC results file"
    own = read_curves(folder / "dmc-dcmpc.csv", what)
    suites = [read_curves(folder / f"{s}-dcmpc.csv", what, success=True) for s in ("mw", "myo")]
    baselines = pd.concat(
        [read_curves(folder / "baselines" / f, what, "optional", success=True) for f in TDMPC2_FILES],
        ignore_index=True,
    )
    dmc = baselines[baselines["env"].map(suite_of).eq("dmc")]
    if dmc["episode_return"].isna().any():
        row = dmc[dmc["episode_return"].isna()].iloc[0]
        raise AnalysisError(f"{what}: TD-MPC2's {row['algorithm']} on {row['env']} has an empty return")
    return (
        pd.concat([dmc_rows(own, DCWM_SOURCE), dmc_rows(dmc, TDMPC2_SOURCE)], ignore_index=True),
        pd.concat([suite_rows(s, DCWM_SOURCE) for s in suites] + [suite_rows(baselines, TDMPC2_SOURCE)]),
    )


def read_tcrl_results(path: Path) -> pd.DataFrame:
    """TCRL's released curves (zhaoyi11/tcrl at 9773d8e, `results/tcrl.csv`: 24 DMC tasks, 118 seed labels)
    -> published_dmc.csv.gz's layout, source `tcrl-repo`."""
    return dmc_rows(read_curves(Path(path), "TCRL results file"), TCRL_SOURCE)


def read_iqrl_draft(folder: Path) -> pd.DataFrame:
    """The curves of an early iQRL draft (aidanscannell/iqrl-minimal at d8e6c32,
    `paper/figs/plotting/baseline-comparison/`: iQRL, ALM, SAC, TD3, TD-MPC and REDQ on eight DMC tasks, the
    REDQ tasks as IQRL_DRAFT_FILES takes them) -> published_dmc.csv.gz's layout, source `iqrl-icml24-draft`.
    Its TCRL curves (`tcrl_main.csv`) are left out: TCRL's are read from TCRL's own release
    (`read_tcrl_results`)."""
    frames = []
    for name, keep in IQRL_DRAFT_FILES.items():
        df = read_curves(Path(folder) / name, "iQRL draft curves file")
        frames.append(df if keep is None else df[df["env"].map(keep)])
    return dmc_rows(pd.concat(frames, ignore_index=True), IQRL_DRAFT_SOURCE)
