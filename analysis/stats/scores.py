"""Each suite's score: what figures pool across a suite's tasks (docs/suites.md, "Scores").

Raw returns are not comparable across suites, nor across Gym tasks, so aggregates (IQM, profiles,
probability of improvement) run per suite on that suite's score:

- DMC: episode return / 1000 (returns lie in [0, 1000]; rliable's convention and the iQRL paper's).
- Gym MuJoCo: the TD3-normalised score of MR.Q (arXiv 2501.16142, Appendix B.3),
  (return - random) / (TD3 - random), with the random-policy and TD3-at-1M-steps returns MR.Q takes from
  TD7 (arXiv 2306.02451, Table 1 for TD3). 1 = TD3 after 1M steps; MR.Q's released curves average 1.46.
- Meta-World, MyoSuite, MiniGrid: the evaluation success rate in [0, 1], as DC-MPC and TD-MPC2 plot it.
- Atari: the human-normalised score (return - random) / (human - random) per game (Mnih et al. 2015), with
  the random and human returns of the 57 games that DQN Zoo tabulates (google-deepmind/dqn_zoo at 45061f4,
  `dqn_zoo/atari_data.py`). 0 = a uniformly random policy, 1 = the professional human tester.

Light: pandas and numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from iqrl.envs.tasks import split_task

#: MR.Q's reference returns for the TD3-normalised Gym score (arXiv 2501.16142, Appendix B.3): per -v4 task,
#: (random policy, TD3 after 1M env steps).
GYM_REFERENCE: dict[str, tuple[float, float]] = {
    "Ant-v4": (-70.288, 3942.0),
    "HalfCheetah-v4": (-289.415, 10574.0),
    "Hopper-v4": (18.791, 3226.0),
    "Humanoid-v4": (120.423, 5165.0),
    "Walker2d-v4": (2.791, 3946.0),
}

#: The random and human returns of the human-normalised Atari score, per game (our `atari:<Game>` names):
#: DQN Zoo's table of the 57 games (google-deepmind/dqn_zoo at 45061f4, `dqn_zoo/atari_data.py`: a uniformly
#: random policy and a professional human tester, each averaged over at least 3 episodes of at most 108k
#: frames begun with 1 to 30 no-ops).
ATARI_REFERENCE: dict[str, tuple[float, float]] = {
    "Alien": (227.8, 7127.7),
    "Amidar": (5.8, 1719.5),
    "Assault": (222.4, 742.0),
    "Asterix": (210.0, 8503.3),
    "Asteroids": (719.1, 47388.7),
    "Atlantis": (12850.0, 29028.1),
    "BankHeist": (14.2, 753.1),
    "BattleZone": (2360.0, 37187.5),
    "BeamRider": (363.9, 16926.5),
    "Berzerk": (123.7, 2630.4),
    "Bowling": (23.1, 160.7),
    "Boxing": (0.1, 12.1),
    "Breakout": (1.7, 30.5),
    "Centipede": (2090.9, 12017.0),
    "ChopperCommand": (811.0, 7387.8),
    "CrazyClimber": (10780.5, 35829.4),
    "Defender": (2874.5, 18688.9),
    "DemonAttack": (152.1, 1971.0),
    "DoubleDunk": (-18.6, -16.4),
    "Enduro": (0.0, 860.5),
    "FishingDerby": (-91.7, -38.7),
    "Freeway": (0.0, 29.6),
    "Frostbite": (65.2, 4334.7),
    "Gopher": (257.6, 2412.5),
    "Gravitar": (173.0, 3351.4),
    "Hero": (1027.0, 30826.4),
    "IceHockey": (-11.2, 0.9),
    "Jamesbond": (29.0, 302.8),
    "Kangaroo": (52.0, 3035.0),
    "Krull": (1598.0, 2665.5),
    "KungFuMaster": (258.5, 22736.3),
    "MontezumaRevenge": (0.0, 4753.3),
    "MsPacman": (307.3, 6951.6),
    "NameThisGame": (2292.3, 8049.0),
    "Phoenix": (761.4, 7242.6),
    "Pitfall": (-229.4, 6463.7),
    "Pong": (-20.7, 14.6),
    "PrivateEye": (24.9, 69571.3),
    "Qbert": (163.9, 13455.0),
    "Riverraid": (1338.5, 17118.0),
    "RoadRunner": (11.5, 7845.0),
    "Robotank": (2.2, 11.9),
    "Seaquest": (68.4, 42054.7),
    "Skiing": (-17098.1, -4336.9),
    "Solaris": (1236.3, 12326.7),
    "SpaceInvaders": (148.0, 1668.7),
    "StarGunner": (664.0, 10250.0),
    "Surround": (-10.0, 6.5),
    "Tennis": (-23.8, -8.3),
    "TimePilot": (3568.0, 5229.2),
    "Tutankham": (11.4, 167.6),
    "UpNDown": (533.4, 11693.2),
    "Venture": (0.0, 1187.5),
    "VideoPinball": (16256.9, 17667.9),
    "WizardOfWor": (563.5, 4756.5),
    "YarsRevenge": (3092.9, 54576.9),
    "Zaxxon": (32.5, 9173.3),
}

#: The suites whose score normalises returns by two reference returns per task: (column, {task name: (return
#: scored 0, return scored 1)}).
NORMALIZED: dict[str, tuple[str, dict[str, tuple[float, float]]]] = {
    "gym": ("td3_normalized", GYM_REFERENCE),
    "atari": ("human_normalized", ATARI_REFERENCE),
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
    # thresholds 0 to 8, as rliable's Atari 200M profiles (its README, google-research/rliable)
    "atari": Score("human_normalized", 1.0, "Human-normalised score", "human = 1", np.linspace(0, 8, 161), 3),
    "minigrid": Score("success", 1.0, "Success rate", "0-1", np.linspace(0, 1, 101), 3),
}


def normalized(task: str, episode_return, suite: str):
    """The return(s) of `task` on `suite`'s normalised score, (return - zero) / (one - zero) with the task's
    reference returns (NORMALIZED); NaN for a task of another suite or without reference returns."""
    task_suite, name = split_task(task)
    references = NORMALIZED[suite][1]
    if task_suite != suite or name not in references:
        return np.full(np.shape(episode_return), np.nan) if np.ndim(episode_return) else float("nan")
    zero, one = references[name]
    return (np.asarray(episode_return, dtype=float) - zero) / (one - zero)


def td3_normalized(task: str, episode_return):
    """MR.Q's TD3-normalised score of a Gym task's return(s); NaN for a task without reference returns."""
    return normalized(task, episode_return, "gym")


def human_normalized(task: str, episode_return):
    """The human-normalised score of an Atari game's return(s); NaN for a task without reference returns."""
    return normalized(task, episode_return, "atari")


def add_scores(evals: pd.DataFrame) -> pd.DataFrame:
    """The evaluation rows with the derived score columns (`td3_normalized` on Gym rows, `human_normalized`
    on Atari rows; NaN elsewhere)."""
    out = evals.copy()
    for column, _ in NORMALIZED.values():
        out[column] = np.nan
    for task, rows in out.groupby("task").groups.items():
        suite = split_task(task)[0]
        if suite in NORMALIZED:
            column = NORMALIZED[suite][0]
            out.loc[rows, column] = normalized(task, out.loc[rows, "episode_return"].to_numpy(), suite)
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
