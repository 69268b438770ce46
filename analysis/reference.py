"""Published learning curves for overlaying on our per-task curves: from shared/reference-data, DMC returns
(`published_dmc.csv.gz`), Meta-World and MyoSuite success rates and returns (`published_suites.csv.gz`, whose
task names `published_name` maps ours onto); Gym MuJoCo and Atari returns from MR.Q's released per-seed
results (`read_mrq_results`, a file of a facebookresearch/MRQ checkout); the Atari 100k scores released with
BBF, one point per run after 100k agent steps (`read_bbf_scores`, a file of a google-research checkout); the
per-seed curves released with SimbaV2 (`read_simba_results`, the `results` folder of a dojeon-ai/SimbaV2
checkout: SimbaV2, BRO, Simba, TD-MPC2, MR.Q and SAC on DMC, Gym, Meta-World and MyoSuite; CrossQ, DroQ and
REDQ on Gym); and those released with DR.Q in the same layout (`read_drq_results`, the `results` folder of a
dmksjfl/DR.Q checkout: DR.Q on DMC from states and pixels and on Gym, beside SimbaV2, MR.Q and FOG)."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.errors import AnalysisError
from iqrl.core.tasks import ATARI_57

#: Default file, relative to the repository root (the shared folder sits beside the checkout).
DEFAULT_REFERENCE = (
    Path(__file__).resolve().parents[1] / ".." / "shared" / "reference-data" / "published_dmc.csv.gz"
)
#: The Meta-World and MyoSuite curves, beside the DMC file.
SUITES_REFERENCE = DEFAULT_REFERENCE.with_name("published_suites.csv.gz")
REFERENCE_COLUMNS = ("source", "algorithm", "ablation", "task", "env_step", "seed", "episode_return")


def resolve_reference(arg: str | None) -> Path | None:
    """CLI value -> file: None/'' -> no overlay; '1'/'default' -> DEFAULT_REFERENCE; else a path."""
    if not arg or arg == "0":
        return None
    path = DEFAULT_REFERENCE if arg in ("1", "default", "true", "yes") else Path(arg)
    if not path.is_file():
        raise AnalysisError(f"reference file {path} not found")
    return path.resolve()


def load_reference(path: Path) -> pd.DataFrame:
    """Read the published-curves file (empty `ablation` stays the empty string). AnalysisError (one line
    naming the file, its line and column) for an `env_step` or `seed` that is no whole number, or an
    `episode_return` or `success` that is text, nan or infinite; such a cell left empty means the source
    released no such number (published_suites.csv.gz: Meta-World returns) and reads as nan."""
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError) as exc:
        raise AnalysisError(f"cannot read reference file {path}: {exc}") from None
    if "ablation" not in df:  # published_suites.csv.gz holds main results only
        df["ablation"] = ""
    missing = [c for c in REFERENCE_COLUMNS if c not in df.columns]
    if missing:
        raise AnalysisError(f"reference file {path} lacks column(s) {', '.join(missing)}")
    df = df.set_axis(df.index + 2)  # the file's lines: the header is line 1
    where = f"reference file {path}"
    for column in ("env_step", "seed"):
        df[column] = parse_numbers(df[column], where, whole=True).astype("int64")
    for column in ("episode_return", "success"):
        if column in df:
            given = (df[column].str.strip() != "").to_numpy()
            values = np.full(len(df), np.nan)
            values[given] = parse_numbers(df[column][given], where)
            df[column] = values
    return df.reset_index(drop=True)


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


def read_text(path: Path, what: str) -> str:
    """The text of a released-curves file; AnalysisError (one line naming it) when it cannot be read or is not
    text (a binary file given by mistake)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise AnalysisError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    nul = data.find(b"\0")  # NUL decodes as UTF-8, but no text file holds one
    try:
        text = data[: nul if nul >= 0 else None].decode("utf-8")
    except UnicodeDecodeError as exc:  # a byte before the first NUL that is no UTF-8
        offset = exc.start
    else:
        if nul < 0:
            return text
        offset = nul
    raise AnalysisError(
        f"{what} {path} is not text (byte {offset} is 0x{data[offset]:02x}); give the released file"
    )


def parse_numbers(cells: pd.Series, where: str, whole: bool = False) -> np.ndarray:
    """The cells of one column of a released-curves file (strings, indexed by their line in the file, named by
    the column) -> floats. AnalysisError `<where> line <n>: <column> is '<cell>', not a finite number` for the
    first that is text, empty, nan or infinite (dropped, it would leave a seed out of a curve unseen);
    whole=True also refuses a negative or fractional value (`100000.0`, as pandas writes a step, is whole)."""
    values = pd.to_numeric(cells.str.strip(), errors="coerce").to_numpy(float)
    bad = ~np.isfinite(values)
    if whole:
        finite = np.where(bad, 0.0, values)
        bad |= (finite < 0) | (finite % 1 != 0)
    if bad.any():
        i = int(np.argmax(bad))
        raise AnalysisError(
            f"{where} line {cells.index[i]}: {cells.name} is {cells.iloc[i]!r}, not a "
            f"{'whole' if whole else 'finite'} number"
        )
    return values


BBF_SOURCE = "bbf-repo"
#: The per-seed Atari 100k scores released with BBF (google-research/google-research at 5e78683,
#: `bigger_better_faster/scores/`): a file's name -> the method it holds (another file keeps its name).
BBF_ALGORITHMS = {"RR8_BBF": "BBF"}
#: Their one evaluation, after 100k agent steps of 4 frames: the harness's env steps.
ATARI_100K_STEP = 400_000
BBF_COLUMNS = ("seed", "game", "GameScoreAverage")


def atari_game_task(game: str) -> str | None:
    """A game as BBF's scores name it (lower case, no separator: `upndown`, `montezumarevenge`) -> our task
    (`atari:UpNDown`); None for a game outside the 57 (iqrl.core.tasks.ATARI_57)."""
    tasks = {t.removeprefix("atari:").lower(): t for t in ATARI_57}
    return tasks.get(game.replace("_", "").replace(" ", "").lower())


def read_bbf_scores(path: Path) -> pd.DataFrame:
    """Atari 100k scores released with BBF (google-research/google-research at 5e78683:
    `bigger_better_faster/scores/RR8_BBF.csv`, the BBF of its paper's main table): rows `,seed,game,
    GameScoreAverage,GameScoreNormalized`, one per run (`seed`, a run's number) and game (`atari_game_task`),
    its mean evaluation return after 100k agent steps -> the published-curves layout (REFERENCE_COLUMNS), each
    run at env step 400 000 (ATARI_100K_STEP), algorithm by the file's name (BBF_ALGORITHMS), source
    `bbf-repo`. `GameScoreNormalized` is left out: our figures normalise the returns with our references
    (analysis.scores), as every published curve. Games outside the 57 are skipped."""
    path = Path(path)
    try:
        df = pd.read_csv(path)
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
    tasks = df["game"].astype(str).map(atari_game_task)
    keep = tasks.notna()
    if not keep.any():
        first = df["game"].iloc[0] if len(df) else "none"
        raise AnalysisError(f"{path} holds no score of an Atari game of the 57 (its first game: {first})")
    out = pd.DataFrame(
        {
            "task": tasks[keep],
            "env_step": ATARI_100K_STEP,
            "seed": seeds[keep].astype("int64"),
            "episode_return": returns[keep].astype(float),
        }
    )
    algorithm = BBF_ALGORITHMS.get(path.stem, path.stem)
    out = out.assign(source=BBF_SOURCE, algorithm=algorithm, ablation="")
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
    df["algorithm"] = [f"{n} (pixels)" if p else n for n, p in zip(names, pixels)]
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
        try:
            df = pd.read_csv(
                io.StringIO(read_text(path, what)), usecols=SIMBA_COLUMNS, dtype=str, keep_default_na=False
            )
        except ValueError as exc:  # a missing column, a line pandas cannot split
            raise AnalysisError(f"cannot read {what} {path}: {exc}") from None
        df = df.set_axis(df.index + 2)  # the file's lines: the header is line 1
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


def without_repeated_curves(
    curves: pd.DataFrame, kept: pd.DataFrame
) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    """`curves` less each (algorithm, task) curve that `kept` holds with the same numbers: the same seeds and
    steps, returns and success rates equal to 1e-6 (a copy written out again differs in the last digits).
    Two releases that carry one method's runs (DR.Q's `simbaV2_utd2.csv` is SimbaV2's) would draw it twice;
    a curve whose numbers differ stays, apart under its own source. Returns (those rows, the repeated curves'
    (algorithm, task))."""
    keys = ["algorithm", "task", "seed", "env_step"]
    values = ["episode_return", "success"]
    both = curves.merge(kept[keys + values], on=keys, how="left", suffixes=("", "_kept"), indicator=True)
    same = both["_merge"].eq("both")
    for v in values:
        same &= np.isclose(both[v], both[f"{v}_kept"], rtol=0, atol=1e-6, equal_nan=True)
    curve = ["algorithm", "task"]
    size = curves.groupby(curve).size()
    all_same = same.groupby([both[c] for c in curve]).all().reindex(size.index)
    repeated = all_same & size.eq(kept.groupby(curve).size().reindex(size.index))
    repeated = repeated[repeated]
    drop = curves.set_index(curve).index.isin(repeated.index)
    return curves[~drop].reset_index(drop=True), list(repeated.index)


def published_name(task: str) -> str:
    """Our task name -> the published files' name: DMC names are the same; `metaworld:reach` -> `mw-reach`;
    `myosuite:myoHandKeyTurnFixed-v0` -> `myo-hand-key-turn` (`...Random-v0` -> `...-hard`), the names of
    aidanscannell/dcmpc's results data."""
    suite, _, name = task.partition(":")
    if suite == "metaworld":
        return f"mw-{name}"
    m = re.fullmatch(r"myoHand(\w+?)(Fixed|Random)-v0", name) if suite == "myosuite" else None
    if m:
        words = re.sub(r"(?<!^)([A-Z])", r"-\1", m.group(1)).lower()
        return f"myo-hand-{words}" + ("-hard" if m.group(2) == "Random" else "")
    return task


def reference_label(source: str, algorithm: str) -> str:
    return f"{algorithm} [{source}]"


def select_reference(
    ref: pd.DataFrame, tasks, max_step: float | None = None, value: str = "episode_return"
) -> pd.DataFrame:
    """Main-result curves of column `value` (episode_return, or success) for `tasks` (our names, matched
    through `published_name`), averaged over each source's seeds.

    ref: the published table (columns as REFERENCE_COLUMNS). Keeps rows with an empty `ablation` (a
    paper's main result), a task in `tasks` and env_step <= max_step (when given); groups by source AND
    algorithm (SAC and TD-MPC appear in two sources). A source's seeds need not share evaluation steps:
    each seed is interpolated linearly onto every step of the curve inside its own first..last step, so
    the mean at a step averages every seed that covers it (not only those evaluated exactly there), and
    `std` is their sample standard deviation (0 where one seed covers the step).
    Returns columns source, algorithm, label, task, env_step, mean, std, n_seeds.
    """
    ours = {published_name(t): t for t in tasks}
    sel = ref[(ref["ablation"] == "") & ref["task"].isin(list(ours))]
    sel = sel[pd.to_numeric(sel[value], errors="coerce").notna()] if value in sel else sel.iloc[:0]
    sel = sel.assign(task=sel["task"].map(ours), **{value: pd.to_numeric(sel[value], errors="coerce")})
    if max_step is not None:
        sel = sel[sel["env_step"] <= max_step]
    rows = []
    for (source, algorithm, task), g in sel.groupby(["source", "algorithm", "task"], sort=True):
        steps = np.unique(g["env_step"].to_numpy(float))
        seeds = np.full((g["seed"].nunique(), len(steps)), np.nan)  # nan: a step outside the seed's range
        for k, (_, s) in enumerate(g.groupby("seed", sort=True)):
            s = s.groupby("env_step")[value].mean()  # a seed listed twice at a step: its mean
            x, y = s.index.to_numpy(float), s.to_numpy(float)
            inside = (steps >= x[0]) & (steps <= x[-1])
            seeds[k, inside] = np.interp(steps[inside], x, y)
        for step, column in zip(steps, seeds.T):
            covered = column[~np.isnan(column)]
            if len(covered):
                spread = covered.std(ddof=1) if len(covered) > 1 else 0.0
                rows.append((source, algorithm, task, step, covered.mean(), spread, len(covered)))
    columns = ["source", "algorithm", "task", "env_step", "mean", "std", "n_seeds"]
    out = pd.DataFrame(rows, columns=columns)
    out["env_step"] = out["env_step"].astype(sel["env_step"].dtype if len(sel) else "int64")
    out.insert(2, "label", [reference_label(s, a) for s, a in zip(out["source"], out["algorithm"])])
    return out


#: Our agent -> the algorithm name the published curves use for the same method (others: none published):
#: `published_dmc.csv.gz`'s names, and those the released results are read under (`tdmpc2`: TD-MPC2's own
#: results, source `tdmpc2-results`, and SimbaV2's copy; `dr-q`: DR.Q's release, `read_drq_results`; `droq`:
#: SimbaV2's `droq_utd20.csv`, Gym only, `read_simba_results`).
PUBLISHED_NAME = {
    "iqrl": "iQRL",
    "iqrl-official": "iQRL",
    "td3": "TD3",
    "sac": "SAC",
    "tcrl": "TCRL",
    "dcwm": "DCWM",
    "tdmpc2": "TD-MPC2",
    "dr-q": "DR.Q",
    "droq": "DroQ (UTD 20)",  # SimbaV2's released droq_utd20 curves (SIMBA_ALGORITHMS)
}


def published_at(ref: pd.DataFrame, tasks: list[str], step: int, tolerance: int = 1000) -> pd.DataFrame:
    """Main-result curves at `step`: per (task, source, algorithm) and seed, the return at the largest
    env_step <= step + tolerance, where that step is >= step - tolerance (a seed whose curve stops earlier
    is left out); then the mean over the seeds kept. A (task, source, algorithm) with no such seed has no
    row. Columns: task, source, algorithm, label, published, n_seeds (seeds kept), env_step (the largest
    step used)."""
    sel = ref[(ref["ablation"] == "") & ref["task"].isin(tasks) & (ref["env_step"] <= step + tolerance)]
    last = sel.sort_values("env_step").groupby(["task", "source", "algorithm", "seed"], sort=False).tail(1)
    last = last[last["env_step"] >= step - tolerance]
    cols = ["task", "source", "algorithm", "label", "published", "n_seeds", "env_step"]
    if last.empty:
        return pd.DataFrame(columns=cols)
    out = (
        last.groupby(["task", "source", "algorithm"], sort=True)
        .agg(published=("episode_return", "mean"), n_seeds=("seed", "size"), env_step=("env_step", "max"))
        .reset_index()
    )
    out["label"] = [reference_label(s, a) for s, a in zip(out["source"], out["algorithm"])]
    return out[cols]
