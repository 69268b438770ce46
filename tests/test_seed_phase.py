"""Each agent's seed phase is its code's by default (iqrl.core.schedule.SeedPhase: the agent's config class,
or its registry entry's for a preset whose code seeds otherwise), resolved into the run key seed_steps in env
steps at the run's action repeat and episode length; a given seed_steps wins."""

from __future__ import annotations

import re

import pytest

from iqrl.config.build import build_config
from iqrl.core import registry
from iqrl.core.schedule import HARNESS_SEED_PHASE, SeedPhase
from iqrl.envs.tasks import suite_of

from conftest import agent_run

# owner/repo@commit then file:line (a line range or a list of lines may follow), or, for a setting known only
# from a paper, its arXiv id and the table, section or appendix (docs/extending.md)
SOURCE = re.compile(
    r"^(?:[\w.-]+/[\w.-]+@[0-9a-f]{7,40} \S+:\d+"
    r"|arXiv \d{4}\.\d{4,5}(?:v\d+)? (?:Table|Section|Appendix) [\w.]+)"
)


@pytest.mark.parametrize(
    "argv, env_steps",
    [
        (["agent=dr-q"], 20_000),  # 10,000 agent steps at DMC's action repeat 2 (DRQ.py:23)
        (["agent=mrq"], 20_000),  # MRQ.py:30
        (["agent=mrq", "task=gym:Hopper-v4"], 10_000),  # Gym: action repeat 1
        (["agent=mrq", "task=atari:Pong"], 40_000),  # Atari: frame skip 4
        (["agent=tdmpc2"], 5_000),  # max(1000, 5 x 500) agent steps = 2500 at action repeat 2
        (["agent=tdmpc2", "task=gym:Hopper-v4"], 5_000),  # max(1000, 5 x 1000) agent steps at repeat 1
        (["agent=tdmpc2", "task=metaworld:reach"], 2_000),  # max(1000, 5 x 100) agent steps at repeat 2
        (["agent=tdmpc2", "action_repeat=8"], 8_000),  # 1000 agent steps > 5 episodes of 125
        (["agent=td7"], 50_000),  # 25,000 steps of Gym's, as agent steps
        (["agent=td3-classic"], 50_000),  # the preset's own (sfujim/TD3), not td3's
        (["agent=td3"], 10_000),
        (["agent=iqrl"], 10_000),  # the code's 10 episodes: the harness's default on DMC
        (["agent=iqrl", "task=atari:Pong"], 10_000),
        (["agent=taco"], 4_000),  # frames, at any action repeat
        (["agent=taco", "action_repeat=4"], 4_000),
        (["agent=sac-ae"], 2_000),
        (["agent=dcwm", "task=metaworld:reach"], 2_000),  # 10 episodes of 200 env steps
        (["agent=bro"], 5_000),
        (["agent=dqn", "task=atari:Pong"], 80_000),  # Dopamine's 20,000 agent steps
        (["agent=drq-eps", "task=atari:Pong"], 6_400),  # DrQ_eps.gin's 1600: the preset's own
        (["agent=dr-q", "seed_steps=3000"], 3_000),  # a given seed_steps wins
        (["agent=dr-q", "seed_steps=0"], 0),
    ],
)
def test_seed_steps_default_to_the_agents_codes(argv, env_steps):
    assert build_config(argv).seed_steps == env_steps


def test_a_seed_phase_is_the_longest_of_its_forms():
    assert SeedPhase(agent_steps=1000, episodes=5).length(2, 1000) == 5000  # 5 episodes
    assert SeedPhase(agent_steps=1000, episodes=5).length(2, 200) == 2000  # 1000 agent steps
    assert SeedPhase(env_steps=4000).length(8, 1000) == 4000
    assert SeedPhase(agent_steps=10_000).length(4, 108_000) == 40_000
    assert HARNESS_SEED_PHASE.length(2, 1000) == HARNESS_SEED_PHASE.length(1, 100) == 10_000


def test_a_seed_phase_cites_a_code_line_or_a_papers_table():
    assert SOURCE.match("nicklashansen/tdmpc2@e9f5932 envs/__init__.py:82")
    assert SOURCE.match("arXiv 2406.02696 Table 3") and SOURCE.match("arXiv 2406.02696v2 Appendix B.1")
    assert not SOURCE.match("the TD-MPC2 paper") and not SOURCE.match(
        "nicklashansen/tdmpc2 envs/__init__.py:82"
    )


@pytest.mark.registry
def test_every_agent_seeds_as_its_declared_seed_phase_and_cites_its_code(agent):
    """The default of seed_steps is the agent's seed phase at its task's suite and its training envs; a seed
    phase other than the harness's names the lines of the code it comes from (owner/repo@commit file:line)."""
    cfg = build_config([f"agent={agent}", *agent_run(agent)])
    phase = registry.seed_phase(agent)
    assert cfg.seed_steps == phase.length(cfg.action_repeat, cfg.episode_length, cfg.train_envs)
    suite = suite_of(cfg.task)
    assert cfg.seed_steps == phase.length(suite.action_repeat, suite.episode_length, cfg.train_envs)
    if phase is not HARNESS_SEED_PHASE:
        assert SOURCE.match(phase.source), f"{agent}'s seed phase cites no code line: {phase.source!r}"
