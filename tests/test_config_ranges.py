"""Range checks of every agent's config: a learning rate, hidden width, noise std or weight decay out of range
is a ConfigError (one line, exit 2 on the command line) from build_config, never a failure at run time."""

from dataclasses import fields

import pytest

from iqrl import agents as registry
from iqrl.config import ConfigError, build_config

BASE = ["task=cartpole-balance"]
NOISE_STDS = {"policy_noise", "noise_clip", "expl_noise", "expl_sigma_start", "expl_sigma_end", "sigma_start",
              "sigma_end"}


def bad_values(name: str) -> list[str]:
    """Values of agent key `name` that must be refused (none for keys this test does not cover)."""
    if name == "lr" or name.endswith("_lr"):
        return ["0", "-1e-4"]
    if name.endswith("mlp_dims"):
        return ["[0]", "[32,-1]"]
    if name in NOISE_STDS or name.endswith("weight_decay"):
        return ["-0.1"]
    return []


CASES = [(agent, f.name, v) for agent in registry.agent_names() for f in fields(registry.config_class(agent))
         for v in bad_values(f.name)]


def test_every_agent_has_cases():
    covered = {a for a, _, _ in CASES}
    assert covered == set(registry.agent_names())
    assert {k for a, k, _ in CASES if a == "mrq"} >= {"enc_lr", "value_lr", "policy_lr", "enc_mlp_dims"}


@pytest.mark.parametrize("agent, key, value", CASES)
def test_out_of_range_agent_value_is_a_config_error(agent, key, value):
    with pytest.raises(ConfigError, match=rf"agent\..*{key}"):
        build_config([f"agent={agent}", *BASE, f"agent.{key}={value}"])


@pytest.mark.parametrize("agent", registry.agent_names())
def test_defaults_pass(agent):
    build_config([f"agent={agent}", *BASE])


def test_seed_range_boundaries():
    assert build_config([*BASE, "seed=0"]).seed == 0
    assert build_config([*BASE, "seed=4294957295"]).seed == 4294957295  # + 10000 = 2**32 - 1
    for bad in ("-1", "4294957296"):
        with pytest.raises(ConfigError, match="seed must be in 0..4294957295"):
            build_config([*BASE, f"seed={bad}"])
