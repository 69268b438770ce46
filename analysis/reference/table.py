"""The published-curves table: its layout, the tables that ship with the harness, and what the figures take
from them.

Every published curve the harness draws is a row set in one layout (REFERENCE_COLUMNS, plus `success` where
the suite has it): `source` (where the numbers come from), `algorithm` (the source's name for the method),
`ablation` ('' for a paper's main result), `task` (`published_name` of ours), `env_step` (environment steps,
action repeat included), `seed` (the source's run label) and `episode_return`. The tables built from the
sources' released files (`make reference`, analysis.reference.build) ship in analysis/reference/data/, with
PROVENANCE.md saying where each number comes from; `REFERENCE=1` draws them all (analysis.reference.overlays).
The readers of the released files themselves are in analysis.reference.released and
analysis.reference.released_dmc."""

from __future__ import annotations

import functools
import io
import re
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.errors import AnalysisError

#: The tables that ship with the harness (built by `make reference`; analysis/reference/data/PROVENANCE.md).
SHIPPED = Path(__file__).resolve().parent / "data"
#: The tables of a reference folder: file -> what it holds. Curves are drawn on the per-task panels of the
#: suites whose tasks they have; points (one evaluation per run) are markers there and rows of score tables.
CURVE_TABLES = {
    "published_dmc.csv.gz": "DMC curves of DC-MPC, TD-MPC2's release (TD-MPC2, TD-MPC, SAC, DreamerV3), TCRL "
    "and the iQRL draft (TD3, SAC, REDQ, ALM, TD-MPC)",
    "published_suites.csv.gz": "Meta-World and MyoSuite curves of DC-MPC and TD-MPC2's release",
    "simbav2.csv.gz": "SimbaV2's release: SimbaV2, BRO, Simba, TD-MPC2, MR.Q, SAC; CrossQ, DroQ, REDQ (Gym)",
    "drq.csv.gz": "DR.Q's release: DR.Q (states, pixels), FOG, SimbaV2 UTD 2",
    "mrq.csv.gz": "MR.Q's release: Gym MuJoCo and Atari",
    "dreamerv3.csv.gz": "DreamerV3's release: DMC proprio, vision (and CURL, DrQ-v2, SAC, PPO), Atari 100k",
}
POINT_TABLES = {"bbf.csv.gz": "BBF's Atari 100k scores, one evaluation per run at 400k env steps"}
REFERENCE_COLUMNS = ("source", "algorithm", "ablation", "task", "env_step", "seed", "episode_return")
#: The shipped DMC table (make validate, make demo, the GPU report compare with its curves).
DEFAULT_REFERENCE = SHIPPED / "published_dmc.csv.gz"


def resolve_reference(arg: str | None) -> Path | None:
    """CLI value -> where the published curves are: None/''/'0' -> none; '1' (or default, true, yes) -> the
    shipped tables (SHIPPED); else a folder of such tables (`make reference REFERENCE_DIR=`) or one table
    file. AnalysisError (one line) when that path does not exist."""
    if not arg or arg == "0":
        return None
    path = SHIPPED if arg in ("1", "default", "true", "yes") else Path(arg)
    if not path.exists():
        raise AnalysisError(
            f"reference file {path} not found (REFERENCE=1 draws the shipped tables; REFERENCE= may also "
            "name a folder of tables, as `make reference` writes, or one table)"
        )
    return path.resolve()


def reference_tables(path: Path) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    """The published curves and points at `path` (`resolve_reference`): a folder's CURVE_TABLES and
    POINT_TABLES concatenated (those present; AnalysisError when it holds none), or one table file as curves.
    (curves, points), None for none."""
    if path.is_file():
        return load_reference(path), None
    found = {name: path / name for name in (*CURVE_TABLES, *POINT_TABLES) if (path / name).is_file()}
    if not found:
        raise AnalysisError(
            f"{path} holds none of the reference tables ({', '.join((*CURVE_TABLES, *POINT_TABLES))}): "
            "build them with `make reference REFERENCE_DIR=<folder>`"
        )
    curves = [load_reference(p) for name, p in found.items() if name in CURVE_TABLES]
    points = [load_reference(p) for name, p in found.items() if name in POINT_TABLES]
    return (
        pd.concat(curves, ignore_index=True) if curves else None,
        pd.concat(points, ignore_index=True) if points else None,
    )


def load_reference(path: Path) -> pd.DataFrame:
    """Read a published-curves table (empty `ablation` stays the empty string; a table without the column
    holds main results only). AnalysisError (one line naming the file, its line and column) for an `env_step`
    or `seed` that is no whole number, or an `episode_return` or `success` that is text, nan or infinite; such
    a cell left empty means the source released no such number (Meta-World returns of TD-MPC2's release,
    success rates outside Meta-World and MyoSuite) and reads as nan. A shipped table is read once a run."""
    path = Path(path).resolve()
    if path.parent == SHIPPED:
        return _read_shipped(path).copy()
    return _read_table(path)


@functools.cache
def _read_shipped(path: Path) -> pd.DataFrame:
    return _read_table(path)


TEXT_COLUMNS = ("source", "algorithm", "ablation", "task", "suite")
NUMBER_COLUMNS = ("episode_return", "success")


def _read_table(path: Path) -> pd.DataFrame:
    try:
        df = pd.read_csv(
            path,
            dtype=dict.fromkeys(TEXT_COLUMNS, str),
            keep_default_na=False,
            na_values=dict.fromkeys(NUMBER_COLUMNS, [""]),
            float_precision="round_trip",
        )
    except (OSError, ValueError, EOFError, zlib.error) as exc:  # EOFError, zlib.error: a damaged .gz
        raise AnalysisError(f"cannot read reference file {path}: {exc}") from None
    if _well_formed(df):  # the shipped tables: read typed, 4 times faster than cell by cell
        return df.assign(ablation=df["ablation"] if "ablation" in df else "")
    df = pd.read_csv(path, dtype=str, keep_default_na=False)  # again as text, to name the cell that is wrong
    if "ablation" not in df:
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


def _well_formed(df: pd.DataFrame) -> bool:
    """A table read typed is as `_read_table` would leave it: every column of REFERENCE_COLUMNS, steps and
    seeds whole numbers >= 0, returns and success rates numbers (an empty cell: nan; text such as `nan` or
    `inf` leaves the column text)."""
    if any(c not in df for c in REFERENCE_COLUMNS if c != "ablation"):
        return False
    whole = all(df[c].dtype == np.int64 and (df[c] >= 0).all() for c in ("env_step", "seed"))
    numbers = [df[c] for c in NUMBER_COLUMNS if c in df]
    return whole and all(v.dtype == np.float64 and not np.isinf(v).any() for v in numbers)


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


def read_cells(path: Path, what: str, columns: list[str]) -> pd.DataFrame:
    """The cells of `columns` of a released CSV file, as text, indexed by their line in the file (the header
    is line 1), for `parse_numbers` to name the line of a bad one. AnalysisError (one line naming the file)
    when it is not text (`read_text`), lacks a column or has a line pandas cannot split."""
    try:
        df = pd.read_csv(
            io.StringIO(read_text(path, what)), usecols=columns, dtype=str, keep_default_na=False
        )
    except ValueError as exc:  # a missing column, a line pandas cannot split
        raise AnalysisError(f"cannot read {what} {path}: {exc}") from None
    return df.set_axis(df.index + 2)


def parse_numbers(cells: pd.Series, where: str, whole: bool = False) -> np.ndarray:
    """The cells of one column of a released-curves file (strings, indexed by their line in the file, named by
    the column) -> floats. AnalysisError `<where> line <n>: <column> is '<cell>', not a finite number` for the
    first that is text, empty, nan or infinite (dropped, it would leave a seed out of a curve unseen);
    whole=True also refuses a negative or fractional value (`100000.0`, as pandas writes a step, is whole).
    The values are the doubles nearest the cells' decimals: a table written back carries them exactly."""
    values = pd.to_numeric(cells.str.strip(), errors="coerce").to_numpy(float)
    bad = ~np.isfinite(values)
    # the numbers exactly as written: pandas' own parser may be 1 ulp off; Python's float() is exact
    values[~bad] = cells[~bad].astype(float).to_numpy()
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
#: SimbaV2's `droq_utd20.csv`, Gym only, `read_simba_results`; `mrq`: MR.Q's release and SimbaV2's copy;
#: `dreamerv3`: DreamerV3's release, `read_dreamerv3_scores`, and TD-MPC2's). A method's curves learnt from
#: pixels carry ` (pixels)` after the name (PIXELS_SUFFIX), apart from those from states.
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
    "mrq": "MR.Q",
    "dreamerv3": "DreamerV3",
}
PIXELS_SUFFIX = " (pixels)"


def published_algorithm(agent: str, pixels: bool = False) -> str | None:
    """The algorithm name of our `agent`'s method in the published tables (PUBLISHED_NAME), with PIXELS_SUFFIX
    for a run from pixels; None for a method without published curves."""
    name = PUBLISHED_NAME.get(agent)
    return None if name is None else name + (PIXELS_SUFFIX if pixels else "")


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
