"""Each suite's score: what figures pool across a suite's tasks (docs/suites.md, "Scores").

Raw returns are not comparable across suites, nor across Gym tasks, so aggregates (IQM, profiles,
probability of improvement) run per suite on that suite's score:

- DMC: episode return / 1000 (returns lie in [0, 1000]; rliable's convention and the iQRL paper's).
- Gym MuJoCo: the TD3-normalised score of MR.Q (arXiv 2501.16142, Appendix B.3),
  (return - random) / (TD3 - random), with the random-policy and TD3-at-1M-steps returns MR.Q takes from
  TD7 (arXiv 2306.02451, Table 1 for TD3). 1 = TD3 after 1M steps; MR.Q's released curves average 1.46.
- Meta-World, MyoSuite: the evaluation success rate in [0, 1], as DC-MPC and TD-MPC2 plot it.

Light: pandas and numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from iqrl.core.tasks import split_task

#: MR.Q's reference returns for the TD3-normalised Gym score (arXiv 2501.16142, Appendix B.3): per -v4 task,
#: (random policy, TD3 after 1M env steps).
GYM_REFERENCE: dict[str, tuple[float, float]] = {
    "Ant-v4": (-70.288, 3942.0),
    "HalfCheetah-v4": (-289.415, 10574.0),
    "Hopper-v4": (18.791, 3226.0),
    "Humanoid-v4": (120.423, 5165.0),
    "Walker2d-v4": (2.791, 3946.0),
}


@dataclass(frozen=True)
class Score:
    """A suite's score: `column` of the evaluation rows (added by `add_scores` where derived), `scale` (the
    estimators work on column / scale and report back times scale), how figures and tables name it, the
    thresholds of its performance profiles (on the normalised scale, column / scale) and the digits its
    tables print."""

    column: str
    scale: float
    label: str
    unit: str
    taus: np.ndarray
    digits: int


SCORES: dict[str, Score] = {
    "dmc": Score("episode_return", 1000.0, "Episode return", "0-1000", np.linspace(0.0, 1.0, 101), 1),
    "gym": Score("td3_normalized", 1.0, "TD3-normalised score", "TD3 at 1M = 1", np.linspace(0, 2, 101), 3),
    "metaworld": Score("success", 1.0, "Success rate", "0-1", np.linspace(0, 1, 101), 3),
    "myosuite": Score("success", 1.0, "Success rate", "0-1", np.linspace(0, 1, 101), 3),
}


def td3_normalized(task: str, episode_return):
    """MR.Q's TD3-normalised score of a Gym task's return(s); NaN for a task without reference returns."""
    suite, name = split_task(task)
    if suite != "gym" or name not in GYM_REFERENCE:
        return np.full(np.shape(episode_return), np.nan) if np.ndim(episode_return) else float("nan")
    random, td3 = GYM_REFERENCE[name]
    return (np.asarray(episode_return, dtype=float) - random) / (td3 - random)


def add_scores(evals: pd.DataFrame) -> pd.DataFrame:
    """The evaluation rows with the derived score columns (today: `td3_normalized` on Gym rows)."""
    out = evals.copy()
    out["td3_normalized"] = np.nan
    for task, rows in out.groupby("task").groups.items():
        if split_task(task)[0] == "gym":
            out.loc[rows, "td3_normalized"] = td3_normalized(task, out.loc[rows, "episode_return"].to_numpy())
    return out


def one_suite_score(evals: pd.DataFrame) -> tuple[pd.DataFrame, Score] | None:
    """Rows of one suite -> (the rows that have its score, with the derived score columns; its Score). None
    when the rows span several suites, whose scores are not comparable (transfer and ablation figures)."""
    suites = {split_task(t)[0] for t in evals["task"].unique()}
    if len(suites) != 1:
        return None
    score = SCORES[suites.pop()]
    scored = add_scores(evals)
    if score.column not in scored:
        return scored.iloc[:0], score
    return scored[scored[score.column].notna()], score


def measure_name(score: Score) -> str:
    """'Success rate' -> 'success rate' ('TD3-normalised score' keeps its acronym): the score in running text
    and axis labels."""
    label = score.label
    return label if label[1:2].isupper() else label[0].lower() + label[1:]
