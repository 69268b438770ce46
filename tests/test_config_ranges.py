"""Range checks of every agent's config: a learning rate, hidden width, noise std or weight decay out of range
is a ConfigError (one line, exit 2 on the command line) from build_config, never a failure at run time."""

import re
from dataclasses import fields

import pytest

from iqrl.core import registry
from iqrl.core.config import ConfigError, build_config

BASE = ["task=cartpole-balance"]
NOISE_STDS = {
    "policy_noise",
    "noise_clip",
    "expl_noise",
    "expl_sigma_start",
    "expl_sigma_end",
    "sigma_start",
    "sigma_end",
}


def bad_values(name: str) -> list[str]:
    """Values of agent key `name` that must be refused (none for keys this test does not cover)."""
    if name == "lr" or name.endswith("_lr"):
        return ["0", "-1e-4"]
    if name.endswith("mlp_dims"):
        return ["[0]", "[32,-1]", "[]"]  # [] would build networks without a hidden layer
    if name in NOISE_STDS or name.endswith("weight_decay"):
        return ["-0.1"]
    return []


def cases(agent: str) -> list[tuple[str, str]]:
    """(key, bad value) for every key of the agent's config that this test covers."""
    return [(f.name, v) for f in fields(registry.config_class(agent)) for v in bad_values(f.name)]


@pytest.mark.registry
def test_out_of_range_agent_values_are_config_errors(agent):
    """Each bad value of each covered key (there is at least one: every agent has a learning rate or a
    hidden width) is a ConfigError naming `agent.<key>`."""
    assert cases(agent), f"{agent}: no key named like a learning rate, width list, noise std or weight decay"
    for key, value in cases(agent):
        try:
            build_config([f"agent={agent}", *BASE, f"agent.{key}={value}"])
        except ConfigError as e:
            assert re.search(rf"agent\..*{key}", str(e)), f"agent.{key}={value}: the error names no key: {e}"
        else:
            pytest.fail(f"{agent}: agent.{key}={value} was accepted; its validate() must refuse it")


def test_mrq_has_its_cases():
    assert {k for k, _ in cases("mrq")} >= {"enc_lr", "value_lr", "policy_lr", "enc_mlp_dims"}


@pytest.mark.registry
def test_defaults_pass(agent):
    build_config([f"agent={agent}", *BASE])


def test_seed_range_boundaries():
    assert build_config([*BASE, "seed=0"]).seed == 0
    assert build_config([*BASE, "seed=4294957295"]).seed == 4294957295  # + 10000 = 2**32 - 1
    for bad in ("-1", "4294957296"):
        with pytest.raises(ConfigError, match="seed must be in 0..4294957295"):
            build_config([*BASE, f"seed={bad}"])


def test_every_task_file_key_belongs_to_an_agent_reading_that_file():
    """A task file serves every preset of one agent and a preset lacking a key leaves it out (iqrl-sac has no
    exploration-noise schedule); so a misspelt key would be left out silently everywhere. Each key must be a
    field of at least one config class that reads the file."""
    from iqrl.core.config import task_file

    readers: dict[str, set[str]] = {}
    for agent in registry.agent_names():
        entry = registry.get_entry(agent)
        readers.setdefault(entry.task_overrides, set()).update(
            f.name for f in fields(registry.config_class(agent))
        )
    for name, keys in readers.items():
        data = task_file(name)
        layers = [*(data.get("groups") or {}).values(), *(data.get("tasks") or {}).values()]
        unknown = {k for layer in layers for k in (layer or {})} - keys
        assert not unknown, f"{name}: keys no agent reading it has: {sorted(unknown)}"


def test_iqrl_sac_leaves_out_the_noise_schedule_of_the_shared_task_file():
    """iqrl and iqrl-sac read iqrl_tasks.yaml: iqrl takes the hard group's 500-episode noise schedule,
    iqrl-sac (SAC explores by sampling) has no such key but still takes the task's latent_dim and nstep."""
    iqrl = build_config(["agent=iqrl", "task=dog-run"]).agent
    sac = build_config(["agent=iqrl-sac", "task=dog-run"]).agent
    assert iqrl.expl_sigma_episodes == 500 and not hasattr(sac, "expl_sigma_episodes")
    assert iqrl.latent_dim == sac.latent_dim == 1024 and iqrl.nstep == sac.nstep == 3
    assert not hasattr(iqrl, "init_temperature") and sac.init_temperature == 0.1
