"""The published curves `make figures` draws beside the runs, gathered once before anything is written.

`REFERENCE=1` is every table that ships in analysis/reference/data (analysis.reference.table.SHIPPED, built by
`make reference` from the sources' released files): each is drawn on the panels of the suites whose tasks
it holds. `REFERENCE=<folder>` reads the tables of another folder (`make reference REFERENCE_DIR=<folder>`),
`REFERENCE=<file>` one table. A source read from a checkout of its repository (`REFERENCE_GYM=`,
`REFERENCE_ATARI=`, `REFERENCE_BBF=`, `REFERENCE_SIMBA=`, `REFERENCE_DRQ=`, `REFERENCE_DREAMERV3=`: another
version of a source) stands in for that source's rows of the tables, or is drawn alone without REFERENCE."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.reference.released import (
    BBF_SOURCE,
    DREAMERV3_SOURCE,
    DRQ_SOURCE,
    MRQ_SOURCE,
    SIMBA_SOURCE,
    read_bbf_scores,
    read_dreamerv3_scores,
    read_drq_results,
    read_mrq_results,
    read_simba_results,
)
from analysis.reference.table import reference_tables
from iqrl.envs.tasks import split_task


@dataclass(frozen=True)
class Checkout:
    """A source `make figures` reads from a checkout of its repository: its reader, the `source` label of its
    rows, the suite it is given for (MR.Q's Gym and Atari files are two keys), and whether its rows are points
    (one evaluation per run: BBF's scores) rather than curves."""

    reader: Callable[[Path], pd.DataFrame]
    source: str
    suite: str | None = None
    points: bool = False

    def owns(self, table: pd.DataFrame) -> pd.Series:
        """The rows of `table` this source stands in for."""
        mine = table["source"].eq(self.source)
        return mine & table["task"].str.startswith(f"{self.suite}:") if self.suite else mine


#: The command line's keys (--reference-<key>, Makefile REFERENCE_<KEY>) -> the source each reads.
CHECKOUTS = {
    "gym": Checkout(read_mrq_results, MRQ_SOURCE, suite="gym"),
    "atari": Checkout(read_mrq_results, MRQ_SOURCE, suite="atari"),
    "bbf": Checkout(read_bbf_scores, BBF_SOURCE, points=True),
    "simba": Checkout(read_simba_results, SIMBA_SOURCE),
    "drq": Checkout(read_drq_results, DRQ_SOURCE),
    "dreamerv3": Checkout(read_dreamerv3_scores, DREAMERV3_SOURCE),
}


@dataclass(frozen=True)
class Overlays:
    """The published rows to draw: `curves` (per-task panels, the DMC-hard mean) and `points` (markers on the
    panels and rows of the score tables), each in the published-curves layout; None for none."""

    curves: pd.DataFrame | None = None
    points: pd.DataFrame | None = None


def gather_overlays(reference: Path | None, checkouts: dict[str, Path | None], note=None) -> Overlays:
    """The published rows of `reference` (analysis.reference.table.resolve_reference's path, or None) with
    each source of `checkouts` ({key of CHECKOUTS: its checkout's file or folder, or None}) read and put in
    place of that source's rows; then DR.Q's copies of SimbaV2's curves drawn once (`drawn_once`, a `note`
    says how many). AnalysisError (one line) for a table or released file that cannot be read."""
    curves, points = reference_tables(reference) if reference is not None else (None, None)
    for key, path in checkouts.items():
        if path is None:
            continue
        source = CHECKOUTS[key]
        rows = source.reader(Path(path))
        rows = rows[source.owns(rows)]
        table = points if source.points else curves
        table = rows if table is None else pd.concat([table[~source.owns(table)], rows], ignore_index=True)
        curves, points = (curves, table) if source.points else (table, points)
    return Overlays(drawn_once(curves, note or (lambda msg: None)) if curves is not None else None, points)


def drawn_once(curves: pd.DataFrame, note) -> pd.DataFrame:
    """`curves` less DR.Q's curves that SimbaV2's release holds with the same numbers (DR.Q's folder carries
    SimbaV2 UTD 2 again): each is drawn once, as `[simbav2-repo]`, and a note counts them; one whose numbers
    differ stays, labelled `[drq-repo]`."""
    drq, simba = curves["source"].eq(DRQ_SOURCE), curves["source"].eq(SIMBA_SOURCE)
    if not (drq.any() and simba.any()):
        return curves
    kept, repeated = without_repeated_curves(curves[drq], curves[simba])
    if repeated:
        methods = ", ".join(sorted({algorithm for algorithm, _ in repeated}))
        note(
            f"{len(repeated)} curves of the DR.Q results ({methods}) are SimbaV2's released ones, number "
            "for number: drawn once, as [simbav2-repo]"
        )
    return pd.concat([curves[~drq], kept], ignore_index=True)


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
    curves, kept = (t.assign(**{v: t[v] if v in t else np.nan for v in values}) for t in (curves, kept))
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


def of_suite(points: pd.DataFrame | None, suite: str) -> pd.DataFrame | None:
    """The rows of `points` on `suite`'s tasks (`atari:Pong` is Atari's), None when there are none."""
    if points is None:
        return None
    rows = points[points["task"].map(lambda t: split_task(t)[0]).eq(suite)]
    return rows if len(rows) else None
