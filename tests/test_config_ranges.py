"""Range checks of every agent's config: a learning rate, hidden width, noise std or weight decay out of range
is a ConfigError (one line, exit 2 on the command line) from build_config, never a failure at run time."""

import re
from dataclasses import dataclass, field, fields, replace

import numpy as np
import pytest
import torch

from iqrl.config.build import build_config, layered
from iqrl.config.run import ConfigError, RunConfig
from iqrl.config.validate import float_keys, validate_finite
from iqrl.core import registry
from iqrl.core.replay import SequenceReplay
from iqrl.loop import memory
from iqrl.nn.layers import ConvDecoder, ConvEncoder, EnsembleLinear

from conftest import agent_actions, agent_observations, agent_run, tiny_keys

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
            build_config(layered([f"agent={agent}", *BASE], agent_run(agent), [f"agent.{key}={value}"]))
        except ConfigError as e:
            assert re.search(rf"agent\..*{key}", str(e)), f"agent.{key}={value}: the error names no key: {e}"
        else:
            pytest.fail(f"{agent}: agent.{key}={value} was accepted; its validate() must refuse it")


def test_mrq_has_its_cases():
    assert {k for k, _ in cases("mrq")} >= {"enc_lr", "value_lr", "policy_lr", "enc_mlp_dims"}


@pytest.mark.registry
def test_defaults_pass(agent):
    build_config(layered([f"agent={agent}", *BASE], agent_run(agent)))


def test_seed_range_boundaries():
    assert build_config([*BASE, "seed=0"]).seed == 0
    assert build_config([*BASE, "seed=4294957295"]).seed == 4294957295  # + 10000 = 2**32 - 1
    for bad in ("-1", "4294957296"):
        with pytest.raises(ConfigError, match="seed must be in 0..4294957295"):
            build_config([*BASE, f"seed={bad}"])


@pytest.mark.registry
def test_every_task_file_key_belongs_to_an_agent_reading_that_file(agent):
    """A task file serves every preset of one agent and a preset lacking a key leaves it out (iqrl-sac has no
    exploration-noise schedule); so a misspelt key would be left out silently everywhere. Each key of the
    agent's task file must be a field of at least one config class that reads the file."""
    from iqrl.config.build import task_file

    name = registry.get_entry(agent).task_overrides
    keys = {
        f.name
        for a in registry.agent_names()
        if registry.get_entry(a).task_overrides == name
        for f in fields(registry.config_class(a))
    }
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


# ------------------------------------------------------------------------- every float finite
NONFINITE = ["inf", "-inf", "nan", "1e400"]  # YAML reads 1e400 as inf


def test_float_keys_follow_the_declared_types():
    @dataclass
    class Keys:
        a: float = 0.0
        b: float | None = None
        c: list[float] = field(default_factory=list)
        d: int = 0
        e: str = ""
        f: list[int] = field(default_factory=list)

    assert float_keys(Keys) == ["a", "b", "c"]
    assert set(float_keys(RunConfig)) == {
        "updates_per_step",
        "obs_noise",
        "action_noise",
        "sticky_actions",
        "memory_limit_gb",
    }


@pytest.mark.registry
def test_every_float_key_of_every_registered_agent_refuses_a_nonfinite_value(agent):
    """Derived from the config dataclass, so an agent registered later is covered without a line here: each
    float key, set to inf, -inf, nan in turn, is one ConfigError naming it."""
    run = build_config(layered([f"agent={agent}", *BASE], agent_run(agent)))
    keys = float_keys(type(run.agent))
    assert "gamma" in keys  # every agent discounts
    for i, key in enumerate(keys):
        bad = float(NONFINITE[i % 3])
        with pytest.raises(ConfigError, match=rf"^agent\.{key} must be a finite number, got {bad}$"):
            validate_finite(replace(run, agent=replace(run.agent, **{key: bad})))


@pytest.mark.parametrize(
    "argv",
    [
        ["action_noise=inf"],
        ["obs_noise=inf"],
        ["updates_per_step=1e400"],
        ["agent.lr=inf"],
        ["agent.lr=1e400"],
        ["agent.policy_noise=inf"],
        ["agent.noise_clip=inf"],
        ["agent=iqrl", "agent.enc_lr=inf"],
        ["agent=iqrl", "agent.expl_sigma_start=inf"],
        ["agent=sac", "agent.init_temperature=inf"],
        ["agent.gamma=nan"],
        ["agent.tau=-inf"],
    ],
)
def test_nonfinite_values_are_refused_by_build_config(argv):
    key = argv[-1].partition("=")[0]
    argv = argv if argv[0].startswith("agent=") else ["agent=td3", *argv]
    with pytest.raises(ConfigError, match=rf"^{re.escape(key)} must be a finite number, got (inf|-inf|nan)$"):
        build_config([*argv, *BASE])


# ------------------------------------------------------------------------- gradient updates per run
@pytest.mark.parametrize(
    "argv, key, total, unit",
    [
        (
            ["agent=mrq", "task=atari:Pong", "obs=pixels", "updates_per_step=1e6"],
            "updates_per_step",
            "1e+12",
            "env",
        ),
        (
            ["agent=td3", "task=metaworld:reach", "steps=10000", "updates_per_step=1e6"],
            "updates_per_step",
            "1e+10",
            "env",
        ),
        (["agent=bro", "task=dog-run", "agent.utd=4000"], "agent.utd", "2e+09", "agent"),  # 2000 per env step
    ],
)
def test_a_run_asking_for_more_than_a_billion_updates_is_refused_naming_the_key(argv, key, total, unit):
    """steps x the rate beyond MAX_UPDATES on any suite, the rate set by updates_per_step or by an agent's own
    update-to-data ratio; the largest schedules published (10 per step over 10M steps, 1000 per step over 1M)
    stay allowed."""
    steps = next((a.split("=")[1] for a in argv if a.startswith("steps=")), "1000000")
    value = float(argv[-1].split("=")[1])
    message = (
        f"{key}={value} over steps={steps} asks for {total} gradient updates, more than the 1,000,000,000 a "
        f"run may take: lower {key} (gradient updates per {unit} step)"
    )
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        build_config(argv)
    assert build_config(["agent=td3", "updates_per_step=1000"]).updates_per_step == 1000
    assert build_config(["agent=bro", "steps=10000000", "agent.utd=200"]).agent.utd == 200


@pytest.mark.parametrize(
    "argv, ratio, fix",
    [
        (  # the top-level key won without a word
            ["agent=bro", "agent.utd=10", "updates_per_step=0.25"],
            "updates_per_step=0.25 and agent.utd=10.0 disagree: bro's update-to-data ratio is agent.utd "
            "(updates per agent step; 10.0 is 5 per env step at action_repeat 2)",
            "agent.utd=0.5",
        ),
        (  # the preset's UTD 8
            ["agent=simbav2-utd8", "task=gym:Hopper-v4", "updates_per_step=1.0"],
            "updates_per_step=1.0 and agent.utd=8.0 disagree: simbav2-utd8's update-to-data ratio is "
            "agent.utd (updates per agent step; 8.0 is 8 per env step at action_repeat 1)",
            "agent.utd=1",
        ),
        (
            ["agent=crossq", "updates_per_step=1.0"],
            "updates_per_step=1.0 and agent.utd=1.0 disagree: crossq's update-to-data ratio is agent.utd "
            "(updates per agent step; 1.0 is 0.5 per env step at action_repeat 2)",
            "agent.utd=2",
        ),
    ],
)
def test_updates_per_step_that_disagrees_with_an_agents_own_utd_is_refused(argv, ratio, fix):
    message = (
        f"{ratio}, which updates_per_step would replace: set {fix} instead and leave updates_per_step out"
    )
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        build_config(argv)
    assert (
        build_config(["agent=bro", "agent.utd=10", "updates_per_step=5.0"]).updates_per_step == 5.0
    )  # agree
    assert build_config(["agent=crossq", "action_repeat=1", "updates_per_step=1.0"]).agent.utd == 1.0


# ------------------------------------------------------------------------- each key once
@pytest.mark.parametrize(
    "argv, first, second",
    [
        (["seed=1", "seed=2"], "seed=1", "seed=2"),
        (["agent=td3", "steps=10", "agent=sac"], "agent=td3", "agent=sac"),
        (["agent=td3", "agent.name=sac"], "agent=td3", "agent.name=sac"),
        (["agent.lr=0.001", "agent.lr=0.01"], "agent.lr=0.001", "agent.lr=0.01"),
    ],
)
def test_a_key_given_twice_is_refused(argv, first, second):
    key = first.partition("=")[0]
    with pytest.raises(
        ConfigError, match=rf"^{key} is given twice \({first} and {second}\); give each key once"
    ):
        build_config([*BASE, *argv])


def test_layered_lets_a_later_list_replace_a_key_in_its_place():
    assert layered(["agent=td3", "seed=1", "steps=5"], ["seed=2"], ["agent.name=sac", "x=1"]) == [
        "agent.name=sac",
        "seed=2",
        "steps=5",
        "x=1",
    ]


# ------------------------------------------------------------------------- keys without effect
@pytest.mark.parametrize(
    "argv, message",
    [
        (["init_parts=[actor]"], "init_parts=['actor'] names what init_from loads: set init_from too"),
        (
            ["distractor=signal"],
            "distractor=signal is the kind of the distractor entries: set distractor_dims",
        ),
        (["image_size=64"], "image_size and frame_stack shape pixel observations: set obs=pixels too"),
        (["frame_stack=2"], "image_size and frame_stack shape pixel observations: set obs=pixels too"),
        (["perturb_eval=false"], "perturb_eval=false evaluates without obs_noise, action_noise and sticky"),
    ],
)
def test_a_key_without_effect_is_refused(argv, message):
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}"):
        build_config(["agent=td3", *BASE, *argv])


def test_the_same_keys_with_what_they_act_on_pass():
    build_config(["agent=td3", *BASE, "distractor=signal", "distractor_dims=2", "sticky_actions=0.1"])
    build_config(["agent=td3", *BASE, "perturb_eval=false", "action_noise=0.1"])
    build_config(["agent=td3", *BASE, "obs=pixels", "image_size=64", "frame_stack=2"])


def test_an_empty_suite_task_name_is_one_line():
    for task in ("gym:", "gym: "):
        with pytest.raises(ConfigError, match=r"^task 'gym:\s?' names no gym task: write gym:Hopper-v4"):
            build_config([f"task={task}"])


# ------------------------------------------------------------------------- memory (iqrl.loop.memory)
@pytest.mark.registry
def test_the_meta_built_agent_has_the_real_agents_tensors(agent, monkeypatch):
    """The estimate builds every registered agent with its large tensors on the meta device (no storage;
    here every tensor of 64 elements or more, so that the tiny agent's weights are), and its tensors are the
    real agent's, in shape, dtype and whether they train."""
    monkeypatch.setattr(memory, "LARGE", 64)
    cfg, obs = build_config(tiny_keys(agent)), agent_observations(agent).dim
    real = registry.make_agent(cfg.agent, obs, agent_actions(agent, 2), torch.device("cpu"), 0)
    meta = memory.meta_agent(cfg, obs, agent_actions(agent, 2))
    real_t, meta_t = memory.agent_tensors(real), memory.agent_tensors(meta)
    assert all(t.is_meta for t in meta_t if t.numel() >= 64 and t.requires_grad)
    assert sum(t.numel() for t in meta_t if t.is_meta) > sum(t.numel() for t in meta_t) / 2
    assert [(t.shape, t.dtype, t.requires_grad) for t in meta_t] == [
        (t.shape, t.dtype, t.requires_grad) for t in real_t
    ]


@pytest.mark.registry
def test_an_agent_built_all_on_meta_has_the_real_agents_spec(agent):
    """What a dry sweep prices a run with (slurm.projection.agent_spec): the agent's spec, read off the agent
    built with every tensor on the meta device (no initialisation computed), is the real agent's."""
    cfg, obs = build_config(tiny_keys(agent)), agent_observations(agent).dim
    real = registry.make_agent(cfg.agent, obs, agent_actions(agent, 2), torch.device("cpu"), 0)
    meta = memory.agent_on_meta(cfg.agent, obs, agent_actions(agent, 2), large=1)
    assert all(t.is_meta for t in memory.agent_tensors(meta) if t.dim() >= 2 and t.requires_grad)  # weights
    assert meta.spec == real.spec


def test_sample_outputs_counts_every_weighted_layers_output_per_sample():
    encoder = ConvEncoder(6, 32, num_layers=2, num_filters=4)  # 32 -> 15 (stride 2) -> 13
    head = torch.nn.Sequential(
        torch.nn.Linear(encoder.out_dim, 7), torch.nn.LayerNorm(7), EnsembleLinear(3, 7, 2)
    )
    modules = [*encoder.modules(), *head.modules()]
    assert memory.sample_outputs(modules, (6, 32, 32)) == 4 * 15**2 + 4 * 13**2 + 7 + 3 * 2
    decoder = ConvDecoder(7, 6, 32, num_layers=2, num_filters=4)  # 7 -> 4 * 13^2, -> 15, -> 32 (6 channels)
    assert memory.sample_outputs(list(decoder.modules()), (6, 32, 32)) == 4 * 13**2 + 4 * 15**2 + 6 * 32**2


def test_replay_bytes_are_the_replays_arrays_after_the_run():
    """The formula against a SequenceReplay filled with 3 episodes of 2000 transitions (state vectors of 5,
    actions of 2): every array's storage, plus half the largest (the old storage while it doubles)."""
    replay = SequenceReplay(5, 2, 3, "cpu", 0)
    for _ in range(3):
        replay.start_episode(np.zeros(5, np.float32))
        for _ in range(2000):
            replay.add(np.zeros(2, np.float32), 0.0, np.zeros(5, np.float32), False, False)
    replay.sample(2, 3)  # uploads what add() staged
    arrays = [v for v in vars(replay).values() if isinstance(v, torch.Tensor) and v.dim() >= 1]
    stored = sum(t.nbytes for t in arrays)
    largest = max(t.nbytes for t in arrays)
    assert memory.replay_bytes(6000, 2000, 4 * 5, False, 2) == stored + largest // 2


def test_a_run_beyond_the_memory_limit_is_one_line_naming_the_estimate_and_the_keys():
    cfg = build_config(["agent=td3", *BASE, "agent.mlp_dims=[100000000,10]"])
    with pytest.raises(ConfigError) as e:
        memory.check_memory(cfg, torch.device("cpu"))
    msg = str(e.value)
    assert re.match(
        r"this run needs about [\d.]+ GiB of memory \(weights [\d.]+ GiB, gradients and Adam ", msg
    )
    assert "agent.mlp_dims" in msg and "memory_limit_gb=<GiB>" in msg and "\n" not in msg
    cfg = build_config(["agent=td3", *BASE, "agent.batch_size=1000000000000"])
    with pytest.raises(
        ConfigError, match=r"free on cpu; lower agent.batch_size \(1000000000000\) or the net"
    ):
        memory.check_memory(cfg, torch.device("cpu"))
    cfg = build_config(["agent=td3", *BASE, "steps=100000000000"])
    with pytest.raises(ConfigError, match="the replay keeps every transition: lower steps"):
        memory.check_memory(cfg, torch.device("cpu"))


@pytest.mark.parametrize("workers", [False, True])
def test_a_group_of_301_tiny_seeds_counts_each_seeds_envs_workers_and_trainer(workers, tmp_path):
    """Each seed's tensors are a MiB; its envs (in the process or each in a worker process) and its trainer
    are tens to hundreds of MiB (scripts/seed_memory.py): counted, a group of 301 no longer fits 4 GiB."""
    tiny = [
        "agent=td3",
        "task=cartpole-balance",
        "agent.mlp_dims=[32,32]",
        "episode_length=200",
        "steps=4000",
    ]
    cfg = build_config([*tiny, f"env_workers={str(workers).lower()}", f"out={tmp_path}", "memory_limit_gb=4"])
    one = memory.estimate(cfg)
    tensors_only = 301 * (one.total - one.overhead) + one.overhead
    assert tensors_only < 0.8 * memory.GIB  # what the check counted before: it let the group start
    in_process, in_workers = memory.seed_bytes(cfg)
    assert (in_process, in_workers) == ((7 * 2**20, 167 * 2**20) if workers else (24 * 2**20, 0))
    need = tensors_only + 300 * in_process + 301 * in_workers  # the first seed's in-process share: overhead
    before = {p: p.read_bytes() for p in tmp_path.rglob("*")}
    with pytest.raises(ConfigError) as refused:
        memory.check_memory(cfg, torch.device("cpu"), copies=301)
    assert str(refused.value).startswith(
        f"this run needs about {memory.gib(need)} of memory (301 seeds, each "
        f"{memory.gib(one.total - one.overhead + in_process + in_workers)} and one {one.parts()}, envs and "
        f"trainer {memory.gib(in_process + in_workers)} a seed), more than the 4.0 GiB memory_limit_gb; "
        f"train fewer seeds in one group (seeds=){' or env_workers=false' * workers}, or set memory_limit_gb"
    )
    assert memory.gib(need) == ("51.9 GiB" if workers else "7.8 GiB")
    assert {p: p.read_bytes() for p in tmp_path.rglob("*")} == before
    memory.check_memory(cfg, torch.device("cpu"))  # one such run fits


def test_memory_limit_gb_overrides_the_free_memory_and_counts_each_seed():
    cfg = build_config(["agent=td3", *BASE])
    one = memory.estimate(cfg)
    fits = (one.total + 1) / memory.GIB
    memory.check_memory(replace(cfg, memory_limit_gb=fits), torch.device("cpu"))
    with pytest.raises(
        ConfigError, match=r"\(3 seeds, each [\d.]+ GiB and one weights .* GiB memory_limit_gb; "
    ):
        memory.check_memory(replace(cfg, memory_limit_gb=fits), torch.device("cpu"), copies=3)
    big = build_config(["agent=td3", *BASE, "agent.mlp_dims=[100000000,10]", "memory_limit_gb=100000"])
    memory.check_memory(big, torch.device("cpu"))  # the user's limit stands
