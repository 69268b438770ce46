"""A suite protocol with a budget of its own is a run's default `steps` (docs/suites.md: Atari 100k is 100k
agent steps, 400k env steps); a run's own `steps` wins, and the other protocols keep the harness's."""

from __future__ import annotations

import importlib.util

import pytest

from iqrl.config.build import build_config
from iqrl.config.run import DEFAULT_STEPS
from iqrl.envs.tasks import ATARI_PROTOCOLS

pytestmark = pytest.mark.skipif(importlib.util.find_spec("ale_py") is None, reason="needs ale-py")


@pytest.mark.parametrize("protocol", ["atari100k", "atari100k-ale-cap"])
def test_atari_100k_runs_its_100k_agent_steps_unless_told_otherwise(protocol):
    keys = ["agent=dqn", "task=atari:Pong", f"protocol={protocol}"]
    cfg = build_config(keys)
    assert cfg.steps == ATARI_PROTOCOLS[protocol].steps == 100_000 * cfg.action_repeat == 400_000
    assert build_config([*keys, "steps=8000"]).steps == 8000


@pytest.mark.parametrize(
    "keys", [["task=atari:Pong"], ["task=atari:Pong", "protocol=mrq"], ["task=walker-walk"]]
)
def test_protocols_without_a_budget_keep_the_harness_default(keys):
    agent = "dqn" if keys[0] == "task=atari:Pong" else "td3"
    assert build_config([f"agent={agent}", *keys]).steps == DEFAULT_STEPS == 1_000_000


@pytest.mark.parametrize("protocol", ["atari100k", "atari100k-ale-cap"])
def test_atari_100k_at_another_frame_skip_is_refused_before_anything_is_written(protocol, tmp_path, capsys):
    """Atari 100k is 100k agent steps of 4 frames: at action_repeat=2 its 400k frames would be 200k agent
    steps, neither its interactions nor its frame skip. Other protocols take any action_repeat."""
    from iqrl.train import main

    argv = [
        "agent=dqn",
        "task=atari:Pong",
        f"protocol={protocol}",
        "action_repeat=2",
        f"out={tmp_path / 'run'}",
    ]
    assert main(argv) == 2
    assert capsys.readouterr().err == (
        f"error: protocol={protocol} is 100,000 agent steps of 4 frames (400,000 frames); action_repeat=2 "
        "would make them 200,000 agent steps of 2: leave action_repeat at 4, or choose another protocol "
        "(mrq)\n"
    )
    assert list(tmp_path.iterdir()) == []
    assert (
        build_config(["agent=dqn", "task=atari:Pong", "protocol=mrq", "action_repeat=2"]).action_repeat == 2
    )
