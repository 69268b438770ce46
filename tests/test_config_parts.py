"""Agent configs compose their parts (`compose`, iqrl/core/interface.py): every key is owned once, each part
validates only its own keys, and a piece (the learner) is handed its part, not the agent's whole config."""

from __future__ import annotations

import copy
from dataclasses import fields

import pytest
import torch

from iqrl.config.build import build_config
from iqrl.core import registry
from iqrl.core.interface import AgentConfig, compose
from iqrl.learners.sac import SACLearnerConfig
from iqrl.learners.td3 import TD3LearnerConfig

from conftest import agent_actions, agent_observations, tiny_keys


def preset_config(agent: str) -> AgentConfig:
    return registry.config_class(agent)(name=agent, **registry.get_entry(agent).preset)


def keys_read_by_validate(part) -> set[str]:
    """The attributes `part.validate()` reads (a copy of the part whose class records every lookup)."""
    names: set[str] = set()

    class Recording(type(part)):
        def __getattribute__(self, name):
            names.add(name)
            return super().__getattribute__(name)

    recording = copy.copy(part)
    recording.__class__ = Recording
    recording.validate()
    return names


@pytest.mark.registry
def test_every_key_is_owned_once(agent):
    cls = registry.config_class(agent)
    keys = [f.name for f in fields(cls)]
    owned = [f.name for f in fields(AgentConfig)] + [f.name for p in cls.PARTS.values() for f in fields(p)]
    assert len(keys) == len(set(keys)) and len(owned) == len(set(owned))
    assert set(owned) <= set(keys)
    assert not any(issubclass(p, AgentConfig) for p in cls.PARTS.values())  # parts compose, never inherit


@pytest.mark.registry
def test_each_part_validates_only_its_own_keys(agent):
    cfg = preset_config(agent)
    every_key = {f.name for f in fields(cfg)}
    for role, part_cls in cfg.PARTS.items():
        part = getattr(cfg, role)
        own = {f.name for f in fields(part_cls)}
        assert type(part) is part_cls and all(getattr(part, k) == getattr(cfg, k) for k in own)
        read = keys_read_by_validate(part) & every_key
        assert read & own and read <= own, f"{agent}: {role} reads {sorted(read - own)}"


def test_a_key_owned_twice_is_an_error_at_import():
    with pytest.raises(TypeError, match="key 'mlp_dims' of critic is also learner's"):

        @compose(learner=TD3LearnerConfig, critic=SACLearnerConfig)
        class TwoLearners(AgentConfig):
            pass

    with pytest.raises(TypeError, match="key 'num_critics' of learner is also Restated's"):

        @compose(learner=TD3LearnerConfig)
        class Restated(AgentConfig):  # a part's default is set by giving the part as an instance
            num_critics: int = 2


def test_a_part_given_as_an_instance_sets_the_agent_defaults():
    @compose(learner=TD3LearnerConfig(num_critics=2, mlp_dims=[64]))
    class Tiny(AgentConfig):
        name: str = "tiny"

    a, b = Tiny(), Tiny(lr=1e-4)
    assert (a.num_critics, a.mlp_dims, a.lr, b.lr) == (2, [64], 3e-4, 1e-4)
    assert a.mlp_dims is not b.mlp_dims  # each config its own list
    assert b.learner == TD3LearnerConfig(num_critics=2, mlp_dims=[64], lr=1e-4)


@pytest.mark.registry
def test_the_learner_is_handed_its_part(agent):
    cfg = build_config(tiny_keys(agent)).agent  # its tiny sizes (a pixel-only agent: its tiny frames)
    if "learner" not in cfg.PARTS:
        pytest.skip(f"{agent} composes no shared learner")
    obs = agent_observations(agent).dim
    built = registry.make_agent(cfg, obs, agent_actions(agent, 2), torch.device("cpu"), seed=0)
    assert type(built.learner.cfg) is cfg.PARTS["learner"] and built.learner.cfg == cfg.learner


@pytest.mark.registry
def test_config_yaml_holds_what_omegaconf_makes_of_the_config(agent):
    """to_yaml_dict (config.yaml's content) is OmegaConf's own conversion of the resolved config, key order
    and types included (a tuple or an enum would differ): for the agent's defaults on each suite it acts in,
    and with every run key of a list or mapping set."""
    import json

    from omegaconf import OmegaConf

    from iqrl.config.run import ConfigError, to_yaml_dict

    runs = [[f"task={t}"] for t in ("cartpole-balance", "atari:Pong", "minigrid:MiniGrid-Empty-5x5-v0")]
    runs.append(["task=[walker-stand,walker-walk]", "overrides=[agent.lr=1]", "logger=[csv]"])
    runs.append(["task=atari:Pong", "protocol_changes={reward_clip: 0.0}"])
    for keys in runs:
        try:
            cfg = build_config([f"agent={agent}", *keys])
        except ConfigError:  # an agent that does not act in the task's actions or learn several tasks
            continue
        mine, omegaconf = to_yaml_dict(cfg), OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True)
        assert mine == omegaconf and json.dumps(mine) == json.dumps(omegaconf), (agent, keys)
