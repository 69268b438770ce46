"""Readers of the per-run results other projects released, one per source, each into the published-curves
layout (analysis.reference.table): MR.Q's Gym and Atari curves (`read_mrq_results`), BBF's Atari 100k scores
(`read_bbf_scores`), the curves released with SimbaV2 (`read_simba_results`) and DR.Q (`read_drq_results`) and
DreamerV3's scores with its pixel baselines (`read_dreamerv3_scores`). `make reference` builds the shipped
tables with them (analysis.reference.build), and `make figures REFERENCE_<SOURCE>=<checkout>` reads another
version of a source with the same reader."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.errors import AnalysisError
from analysis.reference.table import (
    PIXELS_SUFFIX,
    REFERENCE_COLUMNS,
    parse_numbers,
    published_name,
    read_cells,
    read_text,
)
from analysis.stats.scores import human_normalized
from iqrl.envs.tasks import ATARI_26, ATARI_57

MRQ_SOURCE = "mrq-repo"

#: MR.Q's released results (facebookresearch/MRQ at 8a44a7d, `results/<suite>_results.txt`): its env prefix ->
#: (our suite, the harness's env steps per MR.Q time step). The time step is one call of its env's `step`:
#: Gym runs without action repeat; an Atari step is 4 frames (`AtariHyperparameters.action_repeat` in
#: `MRQ/env_preprocessing.py`) and the harness counts Atari env steps in frames (docs/discrete.md).
MRQ_SUITES = {"Gym": ("gym", 1), "Atari": ("atari", 4)}


def mrq_task(env: str) -> tuple[str, int] | None:
    """MR.Q's env name -> (our task, env steps per MR.Q time step): `Gym-Hopper-v4` -> (`gym:Hopper-v4`, 1),
    `Atari-Pong-v5` -> (`atari:Pong`, 4); None for another suite's name."""
    prefix, _, name = env.partition("-")
    if prefix not in MRQ_SUITES or not name:
        return None
    suite, steps = MRQ_SUITES[prefix]
    return f"{suite}:{name.removesuffix('-v5') if suite == 'atari' else name}", steps


def read_mrq_results(path: Path) -> pd.DataFrame:
    """MR.Q's released curves (facebookresearch/MRQ at 8a44a7d: `results/gym_results.txt`, 10 seeds every 5k
    env steps; `results/atari_results.txt`, 57 games, 10 seeds every 100k agent steps to 2.5M): per task an
    `Env: <Suite>-<id>` line, then per evaluation a tab-separated line of the time step and one return per
    seed -> the published-curves layout (REFERENCE_COLUMNS), tasks named as ours (`gym:Hopper-v4`,
    `atari:Pong`), `env_step` in the harness's env steps (MRQ_SUITES: an Atari time step is 4 frames),
    algorithm `MR.Q`, source `mrq-repo`. Blocks of other suites (DMC) are skipped. AnalysisError (one line
    naming the file and its line) for a file that is not text, an `Env:` line without a name, or a line of a
    Gym or Atari block whose time step is no whole number or whose return is no finite number: a curve is
    never drawn without its rows (the released files hold none of these)."""
    rows, task, per_step = [], None, 1
    what = "MR.Q results file"
    for n, line in enumerate(read_text(path, what).splitlines(), 1):
        if line.startswith("Env:"):
            words = line.split()
            if len(words) < 2:
                raise AnalysisError(f"{what} {path} line {n}: 'Env:' names no environment")
            task, per_step = mrq_task(words[1]) or (None, 1)
        elif task and line.strip() and not line.startswith(("Timestep", "---")):
            step, *returns = [v.strip() for v in line.split("\t") if v.strip()]
            rows += [(n, task, per_step, step, seed, r) for seed, r in enumerate(returns)]
    if not rows:
        raise AnalysisError(
            f"{path} is not an MR.Q results file (no 'Env: Gym-<id>' or 'Env: Atari-<game>-v5' block with "
            "returns)"
        )
    columns = ["line", "task", "per_step", "time step", "seed", "return"]
    cells = pd.DataFrame(rows, columns=columns).set_index("line")
    steps = (
        parse_numbers(cells["time step"], f"{what} {path}", whole=True).astype("int64") * cells["per_step"]
    )
    df = cells[["task", "seed"]].assign(
        env_step=steps, episode_return=parse_numbers(cells["return"], f"{what} {path}")
    )
    df = df.reset_index(drop=True).assign(source=MRQ_SOURCE, algorithm="MR.Q", ablation="")
    return df[list(REFERENCE_COLUMNS)]


BBF_SOURCE = "bbf-repo"
#: The per-run Atari 100k scores released with BBF (google-research/google-research at 5e78683,
#: `bigger_better_faster/scores/`): a file's name -> the method it holds (another file keeps its name).
BBF_ALGORITHMS = {"RR8_BBF": "BBF"}
#: A file's row groups, told apart by the run numbers in its `seed` column: (first, last, method, games kept).
#: `RR8_BBF.csv` at 5e78683 holds two experiments of BBF at replay ratio 8: runs 29598-31481, the 26 games of
#: Atari 100k with 32 to 40 runs each (their per-game means give median 0.914 and mean 2.254 on BBF's own
#: normalisation, the 0.917 and 2.245 of the paper's Atari 100k table), and runs 11623-12716, all 55 games of
#: its runner with 16 to 20 runs each (on the 26: median 0.824). The first is the Atari 100k agent and is the
#: only one kept on those 26 games; the second is kept on the other games only, under its own name, so the two
#: never pool.
BBF_GROUPS = {
    "RR8_BBF": (
        (29598, 31481, "BBF", frozenset(ATARI_26)),
        (11623, 12716, "BBF (55-game runs)", frozenset(ATARI_57) - frozenset(ATARI_26)),
    )
}
#: Their one evaluation, after 100k agent steps of 4 frames: the harness's env steps.
ATARI_100K_STEP = 400_000
BBF_COLUMNS = ("seed", "game", "GameScoreAverage")


def atari_game_task(game: str) -> str | None:
    """A game as BBF's or DreamerV3's scores name it (`upndown`, `montezumarevenge`, `up_n_down`) -> our task
    (`atari:UpNDown`); None for a game outside the 57 (iqrl.envs.tasks.ATARI_57)."""
    tasks = {t.removeprefix("atari:").lower(): t for t in ATARI_57}
    return tasks.get(game.replace("_", "").replace(" ", "").lower())


def read_bbf_scores(path: Path) -> pd.DataFrame:
    """Atari 100k scores released with BBF (google-research/google-research at 5e78683:
    `bigger_better_faster/scores/RR8_BBF.csv`): rows `,seed,game,GameScoreAverage,GameScoreNormalized`, one
    per run (`seed`, a run's number) and game (`atari_game_task`), its mean evaluation return after 100k agent
    steps -> the published-curves layout (REFERENCE_COLUMNS), each run at env step 400 000 (ATARI_100K_STEP),
    source `bbf-repo`, the method by the file's row groups (BBF_GROUPS: the Atari 100k runs are `BBF`), else
    by its name (BBF_ALGORITHMS). Games outside the 57 are skipped.

    Our figures normalise the returns with our references (analysis.stats.scores), as every published curve; a
    game whose `GameScoreNormalized` they do not give (to 1e-4) was normalised by BBF with other reference
    returns, and is left out, so that every BBF score drawn is BBF's own: at 5e78683 VideoPinball, which BBF
    scores from a random return of 0 where DQN Zoo's table has 16256.9 (its runs' 1.68 and 1.77 would read
    9.54 and 10.61), in the 55-game group only."""
    path = Path(path)
    try:
        df = pd.read_csv(path, float_precision="round_trip")
    except (OSError, ValueError) as exc:
        raise AnalysisError(f"cannot read BBF scores file {path}: {exc}") from None
    missing = [c for c in BBF_COLUMNS if c not in df.columns]
    if missing:
        raise AnalysisError(
            f"{path} is not a BBF scores file: no column {', '.join(missing)} (expected ,seed,game,"
            "GameScoreAverage,GameScoreNormalized as bigger_better_faster/scores/RR8_BBF.csv)"
        )
    returns = pd.to_numeric(df["GameScoreAverage"], errors="coerce")
    seeds = pd.to_numeric(df["seed"], errors="coerce")
    bad = df.index[returns.isna() | seeds.isna()]
    if len(bad):
        row = df.loc[bad[0], list(BBF_COLUMNS)].tolist()
        raise AnalysisError(f"{path}: line {bad[0] + 2} holds no seed and GameScoreAverage numbers: {row}")
    out = pd.DataFrame(
        {"task": df["game"].astype(str).map(atari_game_task), "seed": seeds, "return": returns}
    )
    if not out["task"].notna().any():
        first = df["game"].iloc[0] if len(df) else "none"
        raise AnalysisError(f"{path} holds no score of an Atari game of the 57 (its first game: {first})")
    out["algorithm"] = BBF_ALGORITHMS.get(path.stem, path.stem)
    groups = BBF_GROUPS.get(path.stem)
    if groups:
        out["algorithm"] = None
        for first, last, name, games in groups:
            mine = out["seed"].between(first, last) & out["task"].isin(games)
            out.loc[mine, "algorithm"] = name
    out = out[out["task"].notna() & out["algorithm"].notna()]
    if "GameScoreNormalized" in df:
        theirs = pd.to_numeric(df.loc[out.index, "GameScoreNormalized"], errors="coerce")
        ours = pd.Series(
            [human_normalized(t, r) for t, r in zip(out["task"], out["return"])], index=out.index, dtype=float
        )
        other = set(out.loc[~np.isclose(ours, theirs, rtol=1e-4, atol=1e-6), "task"])
        out = out[~out["task"].isin(other)]
    out = out.assign(
        env_step=ATARI_100K_STEP,
        seed=out["seed"].astype("int64"),
        episode_return=out["return"].astype(float),
        source=BBF_SOURCE,
        ablation="",
    )
    return out[list(REFERENCE_COLUMNS)].reset_index(drop=True)


SIMBA_SOURCE = "simbav2-repo"
#: The SimbaV2 results' run names (`exp_name`) -> the methods' names; a name not listed is kept as it is.
SIMBA_ALGORITHMS = {
    "simbav2_utd1": "SimbaV2 (UTD 1)",
    "simbav2_utd2": "SimbaV2 (UTD 2)",
    "simbav2_utd4": "SimbaV2 (UTD 4)",
    "simbav2_utd8": "SimbaV2 (UTD 8)",
    "simba_utd2": "Simba (UTD 2)",
    "bro_utd2": "BRO (UTD 2)",
    "bro_utd10": "BRO (UTD 10)",
    "tdmpc2": "TD-MPC2",
    "mrq": "MR.Q",
    "sac": "SAC",
    "crossq": "CrossQ",
    "droq_utd20": "DroQ (UTD 20)",
    "redq_utd20": "REDQ (UTD 20)",
}
#: The SimbaV2 results' metric -> our column: returns, and success rates where the suite has them.
SIMBA_METRICS = {"avg_return": "episode_return", "avg_success": "success"}
SIMBA_FILES = ("baseline/*.csv", "simbaV2_utd*.csv")
SIMBA_COLUMNS = ["exp_name", "env_name", "seed", "metric", "env_step", "value"]


def simba_task_name(env_name: str) -> str | None:
    """A task name of the SimbaV2 results -> ours, or None for a HumanoidBench task (`h1-*`, `h1hand-*`: no
    suite here).
    One task is spelt several ways across its files (`ball_in_cup-catch`, `ball-in-cup-catch`,
    `ball_in_cup_catch`, TD-MPC2's `cup-catch`). Gym: `Humanoid_v4` -> `gym:Humanoid-v4`; Meta-World:
    `assembly-v2-goal-observable` or `mw-assembly` -> `metaworld:assembly`; MyoSuite: `myo-key-turn` ->
    `myosuite:myoHandKeyTurnFixed-v0`, `...-hard` -> `...Random-v0`; DMC: `domain-task` with dm_control's
    underscores (`finger-turn_easy`, `ball_in_cup-catch`). TD-MPC2's custom DMC and ManiSkill tasks keep a
    name of that form, which matches no task of ours."""
    name = env_name.replace("_", "-")
    if name[:1].isupper():
        return f"gym:{name}"
    if name.startswith(("h1-", "h1hand-")):
        return None
    if name.startswith("mw-") or name.endswith("-v2-goal-observable"):
        return "metaworld:" + name.removeprefix("mw-").removesuffix("-v2-goal-observable")
    if name.startswith("myo-"):
        words = name.removeprefix("myo-").removesuffix("-hard").split("-")
        variant = "Random" if name.endswith("-hard") else "Fixed"
        return f"myosuite:myoHand{''.join(w.capitalize() for w in words)}{variant}-v0"
    if name == "cup-catch":  # TD-MPC2's name of ball_in_cup-catch
        name = "ball-in-cup-catch"
    domain, rest = (
        ("ball_in_cup", name.removeprefix("ball-in-cup-"))
        if name.startswith("ball-in-cup-")
        else (name.split("-", 1) + [""])[:2]
    )
    return f"{domain}-{rest.replace('-', '_')}"


def read_simba_results(folder: Path) -> pd.DataFrame:
    """The per-seed curves released with SimbaV2 (dojeon-ai/SimbaV2 at 14fafb2: `results/baseline/*.csv`
    and `results/simbaV2_utd*.csv`, rows `exp_name, env_name, seed, metric, env_step, value`, the metrics
    `avg_return` and, on Meta-World, MyoSuite and HumanoidBench, `avg_success`) -> the published-curves
    layout (REFERENCE_COLUMNS and `success`), tasks named as the other published files name them
    (`published_name` of ours, `simba_task_name`; HumanoidBench dropped), algorithms as SIMBA_ALGORITHMS
    names them, source `simbav2-repo`.

    Steps are env steps in every file: its MR.Q DMC curves are MR.Q's released ones (facebookresearch/MRQ,
    `results/dmc_results.txt`, agent steps at action repeat 2) with the steps doubled, checked value for
    value (docs/suites.md). A (method, task, seed, step, metric) listed more than once keeps its last row:
    `simbaV2_utd8.csv` and `simbaV2_utd1.csv` repeat their dog, humanoid and HumanoidBench runs under
    permuted seed labels, and `results/simbaV2_utd2.csv` and `utd8` are copies of those in `baseline/`. An
    empty file (`mad-td_utd8.csv` at 14fafb2 is not stored) is skipped."""
    df = read_release_rows(folder, SIMBA_FILES, "SimbaV2 results")
    df["algorithm"] = [SIMBA_ALGORITHMS.get(e.lower(), e) for e in df["exp_name"]]
    df["task"] = df["env_name"].map(simba_task_name)
    return release_curves(df, SIMBA_SOURCE)


DRQ_SOURCE = "drq-repo"
#: DR.Q's results (dmksjfl/DR.Q at cc307a5, `results/*.csv`): its run names -> the methods' names; the
#: baselines beside DR.Q are named as in SimbaV2's release, whose layout DR.Q's files follow.
DRQ_ALGORITHMS = {**SIMBA_ALGORITHMS, "drq": "DR.Q", "fog": "FOG"}
#: DR.Q's prefix of a DMC task learnt from pixels (`visual_dog_run`; `Dmc-visual-dog-run` in its README).
DRQ_PIXELS = "visual_"


def read_drq_results(folder: Path) -> pd.DataFrame:
    """The per-seed curves released with DR.Q (Lyu et al., ICML 2026, arXiv 2605.11711; dmksjfl/DR.Q at
    cc307a5: `results/drq.csv` and its baselines `mrq.csv`, `simbaV2_utd2.csv`, `fog.csv`, each in the layout
    of SimbaV2's files) -> the published-curves layout as `read_simba_results`, source `drq-repo`, algorithms
    as DRQ_ALGORITHMS names them (`drq` -> `DR.Q`).

    Task names are underscored throughout (`ball_in_cup_catch`, `cartpole_balance_sparse`, `Humanoid_v4`,
    `h1hand_run_v0`): `simba_task_name` reads them as ours. A DMC task learnt from pixels (`visual_dog_run`)
    is the dm_control task with the method's name marked `(pixels)` (`DR.Q (pixels)`, the code's `-visual`
    env: `DRQ/env_preprocessing.py` lines 145-146), so it is never averaged with the state runs;
    HumanoidBench is dropped. Steps are env steps: DR.Q's code runs DMC, states and pixels, for 500k agent
    steps at action repeat 2 (`DRQ/main.py` line 23, `DRQ/env_preprocessing.py` line 128) and the file's DMC
    curves end at 1M; Gym runs 1M steps without action repeat (`main.py` line 26) and ends at 1M; its
    `simbaV2_utd2.csv` equals SimbaV2's own release at the same env steps (docs/suites.md)."""
    df = read_release_rows(folder, ("*.csv",), "DR.Q results")
    pixels = df["env_name"].str.startswith(DRQ_PIXELS)
    names = [DRQ_ALGORITHMS.get(e.lower(), e) for e in df["exp_name"]]
    df["algorithm"] = [n + PIXELS_SUFFIX if p else n for n, p in zip(names, pixels)]
    df["task"] = df["env_name"].str.removeprefix(DRQ_PIXELS).map(simba_task_name)
    return release_curves(df, DRQ_SOURCE)


def read_release_rows(folder: Path, patterns: tuple[str, ...], what: str) -> pd.DataFrame:
    """The rows of the non-empty files matching `patterns` under `folder`, in SimbaV2's released layout
    (SIMBA_COLUMNS, pandas' index first), with the metrics of SIMBA_METRICS; seed and env_step as integers,
    value as float. AnalysisError (one line naming the file and its line) for a file that is not text, lacks a
    column, or holds a seed or step that is no whole number or a value that is no finite number; and for a
    folder without such a file."""
    folder = Path(folder)
    paths = sorted({p for pattern in patterns for p in folder.glob(pattern) if p.stat().st_size > 0})
    if not paths:
        raise AnalysisError(f"{folder} holds no {what} ({' or '.join(patterns)})")
    frames, what = [], f"{what} file"
    for path in paths:
        df = read_cells(path, what, SIMBA_COLUMNS)
        df = df[df["metric"].isin(list(SIMBA_METRICS))].copy()
        for column in ("seed", "env_step", "value"):
            df[column] = parse_numbers(df[column], f"{what} {path}", whole=column != "value")
        frames.append(df)
    return pd.concat(frames, ignore_index=True).astype({"seed": "int64", "env_step": "int64"})


def release_curves(df: pd.DataFrame, source: str) -> pd.DataFrame:
    """Released rows (`read_release_rows`) with our `algorithm` and `task` (None: a task of no suite here,
    dropped) -> the published-curves layout (REFERENCE_COLUMNS and `success`) of `source`, tasks as the
    published files name them (`published_name`). A (method, task, seed, step, metric) listed more than once
    keeps its last row."""
    df = df[df["task"].notna()]
    df = df.assign(task=df["task"].map(published_name))
    keys = ["algorithm", "task", "seed", "env_step"]
    df = df.drop_duplicates([*keys, "metric"], keep="last")
    wide = df.pivot_table(index=keys, columns="metric", values="value", aggfunc="last").reset_index()
    wide = wide.rename(columns=SIMBA_METRICS).rename_axis(columns=None)
    for column in SIMBA_METRICS.values():
        if column not in wide:
            wide[column] = np.nan
    wide = wide.assign(source=source, ablation="")
    return wide[[*REFERENCE_COLUMNS, "success"]].sort_values(keys, ignore_index=True)


DREAMERV3_SOURCE = "dreamerv3-repo"
#: The suites of DreamerV3's released scores read here (danijar/dreamerv3 at e3f0224, `scores/<suite>-<method>
#: .json.gz`) -> whether its runs learn from pixels. The files of other suites (atari57, dmlab30, crafter,
#: minecraft_diamond, procgen) have no suite here, or another budget, and are skipped.
DREAMERV3_SUITES = {"dmc_proprio": False, "dmc_vision": True, "atari100k": False}
#: Their methods' file names -> the methods' names; a name not listed is kept as it is.
DREAMERV3_METHODS = {
    "dreamerv3": "DreamerV3",
    "curl": "CURL",
    "drqv2": "DrQ-v2",
    "sac": "SAC",
    "ppo_fixhp": "PPO",
    "d4pg": "D4PG",
    "ddpg": "DDPG",
    "dmpo": "DMPO",
    "mpo": "MPO",
}
#: What a figure that draws a source's curves of a suite says of how they were made, where it differs from our
#: runs' protocol (docs/figures.md): DreamerV3's Atari 100k scores come from the settings of 2411f7d, the code
#: that committed them (`dreamerv3/configs.yaml` `env.atari100k`), not from e3f0224's.
PROTOCOL_NOTES = {
    (DREAMERV3_SOURCE, "atari"): "DreamerV3's released Atari 100k curves are the returns of its training "
    "episodes, in runs with the full action set and no no-op starts (danijar/dreamerv3 at 2411f7d: `actions: "
    "all, noops: 0`), unclipped rewards and RGB frames; our runs take the minimal action set and the "
    "protocol's no-op starts, and evaluate episodes of their own (docs/faithfulness.md DV3-2, DV3-9)",
}
#: dm_control's domains whose names hold an underscore (`dmc_ball_in_cup_catch`).
DMC_COMPOUND_DOMAINS = ("ball_in_cup", "point_mass")


def dreamerv3_task(task: str) -> str | None:
    """A task as DreamerV3's scores name it -> ours: `dmc_cartpole_balance_sparse` ->
    `cartpole-balance_sparse`, `dmc_ball_in_cup_catch` -> `ball_in_cup-catch`, `atari_up_n_down` ->
    `atari:UpNDown`; None otherwise."""
    if task.startswith("atari_"):
        return atari_game_task(task.removeprefix("atari_"))
    if not task.startswith("dmc_"):
        return None
    name = task.removeprefix("dmc_")
    domain = next((d for d in DMC_COMPOUND_DOMAINS if name.startswith(d + "_")), name.split("_", 1)[0])
    rest = name.removeprefix(domain + "_")
    return f"{domain}-{rest}" if rest and rest != name else None


def read_dreamerv3_scores(folder: Path) -> pd.DataFrame:
    """The per-run curves released with DreamerV3 (danijar/dreamerv3 at e3f0224, `scores/`): each file of a
    suite of DREAMERV3_SUITES holds a JSON list of runs `{task, method, seed, xs, ys}`, `xs` the env steps
    (action repeat included: Atari 100k's end at 400k frames, 100k agent steps of 4) and `ys` the returns
    there -> the published-curves layout (REFERENCE_COLUMNS), tasks named as ours (`dreamerv3_task`), the
    method as DREAMERV3_METHODS names it with PIXELS_SUFFIX on `dmc_vision` (`DreamerV3 (pixels)`, `DrQ-v2
    (pixels)`), source `dreamerv3-repo`. AnalysisError (one line naming the file) for a file that is no
    gzipped JSON list of such runs, a run whose xs and ys differ in length, a step that is no whole number or
    a return that is no finite number; and for a folder without such a file. JSON numbers are read exactly."""
    folder = Path(folder)
    paths = sorted(p for p in folder.glob("*.json.gz") if p.name.split("-", 1)[0] in DREAMERV3_SUITES)
    if not paths:
        files = ", ".join(f"{s}-<method>.json.gz" for s in DREAMERV3_SUITES)
        raise AnalysisError(f"{folder} holds no DreamerV3 scores ({files})")
    frames = []
    for path in paths:
        suite, _, method = path.name.removesuffix(".json.gz").partition("-")
        try:
            runs = json.loads(gzip.decompress(path.read_bytes()))
            frames += [dreamerv3_run(run, suite, method) for run in runs]
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
            raise AnalysisError(
                f"{path} is not a DreamerV3 scores file ({type(exc).__name__}: {exc})"
            ) from None
    df = pd.concat(frames, ignore_index=True)
    df = df[df["task"].notna()].assign(source=DREAMERV3_SOURCE, ablation="")
    return df[list(REFERENCE_COLUMNS)].reset_index(drop=True)


def dreamerv3_run(run: dict, suite: str, method: str) -> pd.DataFrame:
    """One run of a DreamerV3 scores file -> its rows (ValueError for steps and returns that cannot be)."""
    steps, returns = np.asarray(run["xs"], dtype=float), np.asarray(run["ys"], dtype=float)
    if steps.shape != returns.shape or steps.ndim != 1:
        raise ValueError(f"run {run['task']} seed {run['seed']}: {len(steps)} steps, {len(returns)} returns")
    if not (np.isfinite(steps).all() and (steps % 1 == 0).all() and np.isfinite(returns).all()):
        raise ValueError(
            f"run {run['task']} seed {run['seed']}: a step or return is no finite (whole) number"
        )
    name = DREAMERV3_METHODS.get(method, method) + (PIXELS_SUFFIX if DREAMERV3_SUITES[suite] else "")
    return pd.DataFrame(
        {
            "algorithm": name,
            "task": dreamerv3_task(str(run["task"])),
            "seed": int(run["seed"]),
            "env_step": steps.astype("int64"),
            "episode_return": returns,
        }
    )
