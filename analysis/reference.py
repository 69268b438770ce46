"""Published DMC learning curves (shared/reference-data) for overlaying on our per-task curves."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from analysis.load import AnalysisError

#: Default file, relative to the repository root (the shared folder sits beside the checkout).
DEFAULT_REFERENCE = Path(__file__).resolve().parents[1] / ".." / "shared" / "reference-data" / "published_dmc.csv.gz"
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
    """Read the published-curves file (empty `ablation` stays the empty string)."""
    try:
        df = pd.read_csv(path, dtype={"ablation": str}, keep_default_na=False)
    except (OSError, ValueError) as exc:
        raise AnalysisError(f"cannot read reference file {path}: {exc}") from None
    missing = [c for c in REFERENCE_COLUMNS if c not in df.columns]
    if missing:
        raise AnalysisError(f"reference file {path} lacks column(s) {', '.join(missing)}")
    return df


def reference_label(source: str, algorithm: str) -> str:
    return f"{algorithm} [{source}]"


def select_reference(ref: pd.DataFrame, tasks, max_step: float | None = None) -> pd.DataFrame:
    """Main-result curves for `tasks`, averaged over each source's seeds.

    ref: the published table (columns as REFERENCE_COLUMNS). Keeps rows with an empty `ablation` (a
    paper's main result), a task in `tasks` and env_step <= max_step (when given); groups by source AND
    algorithm (SAC and TD-MPC appear in two sources). Returns columns source, algorithm, label, task,
    env_step, mean, n_seeds.
    """
    sel = ref[(ref["ablation"] == "") & ref["task"].isin(list(tasks))]
    if max_step is not None:
        sel = sel[sel["env_step"] <= max_step]
    out = (sel.groupby(["source", "algorithm", "task", "env_step"], sort=True)["episode_return"]
           .agg(mean="mean", n_seeds="size").reset_index())
    out.insert(2, "label", [reference_label(s, a) for s, a in zip(out["source"], out["algorithm"])])
    return out
