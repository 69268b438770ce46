"""Transfer between runs (iqrl/loop/transfer.py): init_from / init_parts / freeze.

Pinned: every agent's parts cover its networks once; the loaded tensors are the source's; frozen parts and
their EMA targets do not move; every refusal is one line, exit 2, nothing written; a target resumes
bit-identically after its source is deleted.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from faults import flip
from torch import nn

from analysis.errors import AnalysisWarning
from analysis.figures import plots
from analysis.figures.make import make_figures
from analysis.runs.load import load_results
from iqrl.config.build import build_config
from iqrl.config.run import ConfigError
from iqrl.core.registry import make_agent
from iqrl.core.update import Updater
from iqrl.envs.tasks import TASK_GROUPS
from iqrl.loop.preflight import preflight
from iqrl.loop.trainer import Trainer
from iqrl.loop.transfer import load_parts
from iqrl.multiseed.refusals import unsupported
from iqrl.runfolder.exits import EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_OK
from iqrl.runfolder.layout import CHECKPOINT
from iqrl.runfolder.status import write_status
from iqrl.train import main
from slurm.spec import SweepError, load_sweep
from slurm.status import collect

from analysis_helpers import undocumented, write_run
from conftest import agent_actions, agent_observations, stop_after_steps, tiny_argv, tiny_keys
from sweep_helpers import sweep, write_files
from test_train import eval_numbers

REPR = ("encoder", "encoder_target", "dynamics")


def _parameter_ids(obj) -> list[int]:
    if isinstance(obj, nn.Module):
        return [id(p) for p in obj.parameters()]
    return [id(obj)] if isinstance(obj, torch.Tensor) else []


@pytest.mark.registry
def test_parts_cover_every_network_once(agent):
    """Each parameter of the agent's networks is in exactly one part; every optimizer in `optimizers`; the
    keys a part names are keys of the agent's config. An agent that declares no parts is told which to
    declare."""
    assert_parts_cover_every_network_once(agent, 1)


def test_parts_cover_a_multi_task_iqrls_task_embedding():
    assert_parts_cover_every_network_once("iqrl", 3)


def assert_parts_cover_every_network_once(name: str, num_tasks: int) -> None:
    cfg = build_config(tiny_keys(name))
    torch.manual_seed(0)
    obs = agent_observations(name).dim
    agent = make_agent(cfg.agent, obs, agent_actions(name, 2), torch.device("cpu"), 0, num_tasks=num_tasks)
    owner: dict[int, str] = {}
    for part in agent.TRANSFER_PARTS:
        for obj in agent.part_objects(part).values():
            for pid in _parameter_ids(obj):
                assert owner.setdefault(pid, part) == part, f"{name}: a parameter in {owner[pid]} and {part}"
        for key in agent.TRANSFER_PARTS[part].keys:
            assert hasattr(cfg.agent, key), f"{name}: part {part} names agent.{key}, which is not a key"
    networks = {pid for m in agent.networks().values() for pid in _parameter_ids(m)}
    holders = [h for h in (agent, getattr(agent, "learner", None)) if h is not None]
    found = {id(v) for h in holders for v in vars(h).values() if isinstance(v, torch.optim.Optimizer)}
    declared = (
        {id(o) for o in agent.part_objects("optimizers").values()}
        if "optimizers" in agent.TRANSFER_PARTS
        else set()
    )
    assert networks <= set(owner) and found <= declared, (
        f"{name}: parameters or optimizers in no part; declare them on {type(agent).__name__} "
        f"(iqrl/core/interface.py, Part), for instance: {suggested_parts(agent)}"
    )


def suggested_parts(agent) -> str:
    """TRANSFER_PARTS written out for an agent's STATE_OBJECTS: a part per network (its targets, named
    <network>_target, with it), and the optimizers."""
    paths = [entry.partition("=")[2] or entry for entry in agent.STATE_OBJECTS]
    objects = {path: getattr(agent, path, None) for path in paths}
    nets = [p for p, o in objects.items() if isinstance(o, nn.Module)]
    parts = {
        n: [n, *(t for t in nets if t != n and t.startswith(n) and "target" in t)]
        for n in nets
        if "target" not in n
    }
    parts["optimizers"] = [p for p, o in objects.items() if isinstance(o, torch.optim.Optimizer)]
    inner = ", ".join(f"{k!r}: Part({tuple(vs)!r})" for k, vs in parts.items())
    return f"TRANSFER_PARTS = {{{inner}}}"


# ---------------------------------------------------------------------- Updater.freeze
def test_frozen_modules_take_no_step_and_no_target_update():
    torch.manual_seed(0)
    a, b, target = nn.Linear(3, 2), nn.Linear(3, 2), nn.Linear(3, 2)
    opt = torch.optim.AdamW([*a.parameters(), *b.parameters()], lr=0.1, weight_decay=0.1)
    u = Updater()
    u.freeze([a, target])
    before_a, before_b, before_t = [[p.clone() for p in m.parameters()] for m in (a, b, target)]
    x = torch.randn(8, 3)
    step = u.step(lambda x: (a(x) + b(x)).pow(2).mean(), x, opt=opt, max_norm=1.0)
    assert step.grad_norm > 0
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), before_a))  # no step, no weight decay
    assert not all(torch.equal(p, q) for p, q in zip(b.parameters(), before_b))  # the other one trains
    u.ema(target, b, 0.5)
    u.copy(target, b)
    assert all(torch.equal(p, q) for p, q in zip(target.parameters(), before_t))
    # A loss of frozen weights only: no step at all, a zero norm.
    assert u.step(lambda x: a(x).pow(2).mean(), x, opt=opt, max_norm=1.0).grad_norm == 0
    assert u.is_frozen(a) and not u.is_frozen(b)


# ---------------------------------------------------------------------- end to end
SOURCE_STEPS = 800


def _argv(out, task="cartpole-swingup", extra=(), agent="iqrl", steps=800, seed=2):
    argv = tiny_argv(agent, out, steps=steps, seed=seed, extra=[f"task={task}", *extra])
    return argv


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """A done tiny iqrl run on cartpole-balance, pre-trained with the reward term."""
    out = tmp_path_factory.mktemp("transfer") / "source"
    assert main(_argv(out, "cartpole-balance", ["agent.use_rew_loss=true"], seed=1)) == EXIT_OK
    return out


def _agent_state(run: Path, name: str = "ckpt.pt") -> dict:
    return torch.load(run / CHECKPOINT.parent / name, map_location="cpu", weights_only=False)["agent"]


def test_loaded_parts_are_the_sources_tensors(source, tmp_path):
    cfg = build_config(
        _argv(tmp_path / "t", extra=[f"init_from={source}", "init_parts=[representation,critic]"])
    )
    trainer = Trainer(cfg)
    built_actor = trainer.agent.learner.actor.state_dict()
    meta = load_parts(trainer.agent, cfg)
    src = _agent_state(source)
    mine = trainer.agent.state_dict()
    for key in REPR:
        assert all(torch.equal(mine[key][k], v) for k, v in src[key].items()), key
    for k in ("critic", "critic_target"):
        assert all(
            torch.equal(mine["ac"][f"{k}.{n}"], v)
            for n, v in getattr(trainer.agent.learner, k).state_dict().items()
        )
        assert all(
            torch.equal(mine["ac"][f"{k}.{n}"], src["ac"][f"{k}.{n}"])
            for n in getattr(trainer.agent.learner, k).state_dict()
        )
    assert all(
        torch.equal(v, built_actor[k]) for k, v in trainer.agent.learner.actor.state_dict().items()
    )  # not loaded
    assert meta["loaded"] == {
        "representation": list(REPR),
        "critic": ["learner.critic", "learner.critic_target"],
    }
    assert meta["skipped"] == {"representation": ["reward_head"], "critic": []}
    assert meta["env_step"] == SOURCE_STEPS and meta["task"] == "cartpole-balance"
    assert meta["config_sha256"] == hashlib.sha256((source / "config.yaml").read_bytes()).hexdigest()


def test_frozen_representation_and_its_targets_do_not_move(source, tmp_path):
    out = tmp_path / "frozen"
    assert main(_argv(out, extra=[f"init_from={source}", "freeze=[representation]"])) == EXIT_OK
    src, mine = _agent_state(source), _agent_state(out)
    for key in REPR:  # the online encoder, its EMA target and the dynamics, after 400 updates
        assert all(torch.equal(mine[key][k], v) for k, v in src[key].items()), key
    assert not all(torch.equal(mine["ac"][k], v) for k, v in src["ac"].items())  # the actor-critic trained
    init = yaml.safe_load((out / "config.yaml").read_text())["meta"]["init"]
    assert init["frozen"] == ["representation"] and init["run"] == str(source.resolve())


def test_loaded_parts_keep_training_by_default(source, tmp_path):
    out = tmp_path / "tuned"
    assert main(_argv(out, steps=600, extra=[f"init_from={source}"])) == EXIT_OK
    src, mine = _agent_state(source), _agent_state(out)
    assert not all(torch.equal(mine["encoder"][k], v) for k, v in src["encoder"].items())


def test_target_resumes_bit_identically_after_its_source_is_deleted(source, tmp_path):
    copy = tmp_path / "source-copy"
    shutil.copytree(source, copy)
    ref, run = tmp_path / "ref", tmp_path / "run"
    argv = lambda out: _argv(out, extra=[f"init_from={copy}"])  # noqa: E731
    assert main(argv(ref)) == EXIT_OK
    assert main(argv(run), should_stop=stop_after_steps(237)) == EXIT_INTERRUPTED  # env step 474, mid-episode
    shutil.rmtree(copy)
    assert main(argv(run)) == EXIT_OK
    assert eval_numbers(run) == eval_numbers(ref)


# ---------------------------------------------------------------------- refusals
def _refused(argv, capsys) -> str:
    """The run is refused: exit 2, one `error:` line, its folder not made."""
    out = Path(next(a for a in argv if a.startswith("out=")).split("=", 1)[1])
    assert main(argv) == EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    assert not out.exists()
    return err[0]


def test_a_source_of_other_shapes_is_refused_naming_both_sides(source, tmp_path, capsys):
    line = _refused(_argv(tmp_path / "t", extra=[f"init_from={source}", "agent.latent_dim=16"]), capsys)
    assert "in the source" in line and "here" in line and "agent.latent_dim: 8 vs 16" in line


def test_a_source_of_another_agent_or_quantizer_is_refused(source, tmp_path, capsys):
    assert "source is a iqrl run and this is tcrl" in _refused(
        _argv(tmp_path / "a", agent="tcrl", extra=[f"init_from={source}"]), capsys
    )
    assert "agent.fsq_symmetric is False in the source and True here" in _refused(
        _argv(tmp_path / "b", extra=[f"init_from={source}", "agent.fsq_symmetric=true"]), capsys
    )


def test_a_part_the_agent_lacks_is_refused(source, tmp_path, capsys):
    assert "agent td3 with obs=state has no representation" in _refused(
        _argv(tmp_path / "a", agent="td3", extra=["freeze=[representation]"]), capsys
    )
    line = _refused(_argv(tmp_path / "b", extra=[f"init_from={source}", "init_parts=[encoder]"]), capsys)
    assert "init_parts: encoder is not a part of iqrl (its parts: representation, actor, critic" in line
    assert "optimizers hold no weights" in _refused(
        _argv(tmp_path / "c", extra=["freeze=[optimizers]"]), capsys
    )


def test_sources_that_cannot_be_read_are_refused(source, tmp_path, capsys):
    assert "does not exist" in _refused(
        _argv(tmp_path / "a", extra=[f"init_from={tmp_path}/nothing"]), capsys
    )
    assert "has no checkpoint at env step 123 (it has 800, 400)" in _refused(
        _argv(tmp_path / "b", extra=[f"init_from={source}@123"]), capsys
    )
    unfinished = tmp_path / "unfinished"
    shutil.copytree(source, unfinished)
    write_status(unfinished, "running", SOURCE_STEPS, 2 * SOURCE_STEPS)
    assert "not done (state running); name one of its checkpoints with @<env step>" in _refused(
        _argv(tmp_path / "c", extra=[f"init_from={unfinished}"]), capsys
    )
    preflight(build_config(_argv(tmp_path / "d", extra=[f"init_from={unfinished}@400"])))  # allowed


def test_a_source_checkpoint_that_fails_its_verification_is_refused(source, tmp_path, capsys):
    """init_from reads checkpoints as a resume does (iqrl/runfolder/checkpoints.py): a done source whose last
    checkpoint's bytes are not the recorded ones is refused, not silently replaced by the one before; that one
    can be named; a damaged checkpoint file is refused."""
    damaged = tmp_path / "damaged"
    shutil.copytree(source, damaged)
    flip(damaged / CHECKPOINT)
    line = _refused(_argv(tmp_path / "a", extra=[f"init_from={damaged}"]), capsys)
    assert f"its last checkpoint {damaged / CHECKPOINT} cannot be used (its bytes are not those" in line
    assert "name a usable one with @<env step> (it has env steps 400)" in line
    preflight(build_config(_argv(tmp_path / "b", extra=[f"init_from={damaged}@400"])))  # allowed
    line = _refused(_argv(tmp_path / "c", extra=[f"init_from={damaged / CHECKPOINT}"]), capsys)
    assert "cannot be used as a checkpoint (its bytes are not those checksums.json records" in line


def test_the_kseed_mode_refuses_transfer(source):
    assert "init_from or freeze" in unsupported(build_config(_argv("x", extra=[f"init_from={source}"])))
    with pytest.raises(ConfigError, match="init_from needs init_parts"):
        build_config(_argv("x", extra=[f"init_from={source}", "init_parts=[]"]))


# ---------------------------------------------------------------------- sweeps with sources
SWEEP_WITH_SOURCE = """name: tr
agents: [iqrl]
tasks: [cartpole-swingup]
seeds: [3]
steps: 800
fixed: {episode_length: 200, seed_steps: 400, eval_every: 400, eval_episodes: 2, diag_every: 400,
        checkpoint_every: 400, agent.mlp_dims: [32, 32], agent.batch_size: 16, agent.latent_dim: 8,
        agent.enc_mlp_dims: [32]}
sources:
  balance: {tasks: {cartpole-swingup: cartpole-balance}, steps: 800, overrides: {agent.use_rew_loss: true}}
variants:
  - {}
  - {init_from: balance}
"""


def _sweep_file(tmp_path, text=SWEEP_WITH_SOURCE) -> Path:
    path = tmp_path / "tr.yaml"
    path.write_text(text)
    return path


def test_a_sweep_lists_each_source_first_and_gives_its_folder_to_the_target(tmp_path):
    runs = load_sweep(_sweep_file(tmp_path), TASK_GROUPS).runs()
    assert [r.key for r in runs] == [
        "iqrl/cartpole-balance/source-balance/seed3",
        "iqrl/cartpole-swingup/default/seed3",
        "iqrl/cartpole-swingup/init_from=balance/seed3",
    ]
    source, scratch, target = runs
    assert target.source == source and scratch.source is None and source.steps == 800
    assert "agent.use_rew_loss=true" in source.overrides and "agent.use_rew_loss=true" not in target.overrides
    assert f"init_from={source.run_dir(tmp_path).absolute()}" in target.argv(tmp_path)
    assert "init_from=balance" in target.overrides  # recorded by its source's name


def test_a_variant_from_a_source_runs_only_on_the_tasks_the_source_serves(tmp_path):
    text = SWEEP_WITH_SOURCE.replace(
        "tasks: [cartpole-swingup]", "tasks: [cartpole-swingup, pendulum-swingup]"
    )
    keys = [r.key for r in load_sweep(_sweep_file(tmp_path, text), TASK_GROUPS).runs()]
    assert "iqrl/pendulum-swingup/default/seed3" in keys and "iqrl/cartpole-swingup/default/seed3" in keys
    assert [k for k in keys if "init_from" in k] == ["iqrl/cartpole-swingup/init_from=balance/seed3"]


@pytest.mark.parametrize(
    "variant, sources, message",
    [
        ("{init_from: walk}", "{}", "init_from 'walk' is neither a source of the sweep (none) nor a path"),
        (
            "{init_from: b}",
            "{b: {tasks: {walker-run: x}, steps: 10}}",
            "walker-run is not one of the sweep's tasks",
        ),
        ("{}", "{b: {tasks: {}, steps: 10, overrides: {init_from: a}}}", "'init_from' cannot be set here"),
    ],
)
def test_bad_sources_are_one_line(tmp_path, variant, sources, message):
    text = "agents: [iqrl]\ntasks: [cartpole-swingup]\nseeds: 1\nsteps: 10\n"
    text += f"sources: {sources}\nvariants: [{variant}]\n"
    with pytest.raises(SweepError, match=re.escape(message)):
        load_sweep(_sweep_file(tmp_path, text), TASK_GROUPS)


def test_a_local_sweep_runs_the_source_then_its_target(tmp_path):
    """DRY orders the source before the target that waits for it; `make status` shows the target waiting;
    the sweep runs both to done, the target from the source's final checkpoint. (Runs of seed episodes only:
    what is checked is the order and the hand-over, not learning.)"""
    text = SWEEP_WITH_SOURCE.replace("steps: 800", "steps: 400").replace("  - {}\n", "")
    sweep_file = _sweep_file(tmp_path, text)
    _, profile = write_files(tmp_path, "unused", 1, parallelism=2)
    rc, out = sweep(tmp_path, sweep_file, profile, entry="iqrl.train:main", dry=True)
    lines = out.splitlines()
    src = next(i for i, line in enumerate(lines) if "source-balance/seed3" in line and "python" not in line)
    then = next(
        i for i, line in enumerate(lines) if line.strip().startswith("then iqrl/cartpole-swingup/init_from")
    )
    assert (
        rc == 0 and src < then and "once its source has finished (source iqrl/cartpole-balance" in lines[then]
    )
    runs = load_sweep(sweep_file, TASK_GROUPS).runs()
    states = {r.key: st for r, st in collect(runs, tmp_path / "res", None)}
    assert states["iqrl/cartpole-swingup/init_from=balance/seed3"].kind == "waiting"
    assert (
        "waiting for its source iqrl/cartpole-balance/source-balance/seed3 (missing)"
        in states["iqrl/cartpole-swingup/init_from=balance/seed3"].job
    )
    rc, out = sweep(tmp_path, sweep_file, profile, entry="iqrl.train:main")
    assert rc == 0, out
    assert {st.kind for _, st in collect(runs, tmp_path / "res", None)} == {"done"}
    assert [r.key for r in runs] == [
        "iqrl/cartpole-balance/source-balance/seed3",
        "iqrl/cartpole-swingup/init_from=balance/seed3",
    ]
    init = yaml.safe_load((runs[1].run_dir(tmp_path / "res") / "config.yaml").read_text())["meta"]["init"]
    assert init["run"] == str(runs[0].run_dir(tmp_path / "res").resolve()) and init["env_step"] == 400
    assert init["skipped"] == {"representation": ["reward_head"]}


# ---------------------------------------------------------------------- figures
def _transfer_results(root: Path) -> None:
    """A transfer sweep's run folders: sources on walker-walk, targets on walker-run from scratch and from
    the sources (only their configs' identity and meta.init matter here)."""
    for seed in range(2):
        base = {"agent": {"name": "iqrl", "use_rew_loss": False}, "sweep": "tr", "seed": seed, "steps": 100}
        src = root / "tr" / "iqrl" / "walker-walk" / "source-walk" / f"seed{seed}"
        write_run(
            src,
            [(0, 0.0), (100, 900.0)],
            config={
                **base,
                "task": "walker-walk",
                "variant": "source-walk",
                "overrides": ["agent.use_rew_loss=true"],
            },
        )
        for variant, ret in (("default", 200.0), ("init_from=walk", 400.0)):
            config = {**base, "task": "walker-run", "variant": variant, "overrides": []}
            if variant != "default":
                config["meta"] = {
                    "init": {
                        "sweep": "tr",
                        "variant": "source-walk",
                        "run": str(src),
                        "parts": ["representation"],
                        "frozen": [],
                    }
                }
                config["overrides"] = ["init_from=walk"]
            write_run(
                root / "tr" / "iqrl" / "walker-run" / variant / f"seed{seed}",
                [(0, 0.0), (50, ret / 2 + seed), (100, ret + seed)],
                config=config,
            )


def _multi_task_run(root: Path, seed: int) -> None:
    """A multi-task run of the walker tasks in the same sweep: one eval.csv row per task and evaluation."""
    run = root / "tr" / "iqrl" / "walker-stand+walker-run" / "default" / f"seed{seed}"
    config = {"agent": {"name": "iqrl"}, "sweep": "tr", "seed": seed, "steps": 200, "variant": "default"}
    write_run(run, [(0, 0.0)], config={**config, "task": ["walker-stand", "walker-run"], "overrides": []})
    rows = [
        (step, ret, task)
        for step, ret in ((0, 0.0), (100, 300.0), (200, 600.0))
        for task in ("walker-stand", "walker-run")
    ]
    lines = ["env_step,episode_return,episode_return_std,n_episodes,wall_time_s,task"]
    lines += [f"{step},{ret + seed},0.0,1,1.0,{task}" for step, ret, task in rows]
    (run / "eval.csv").write_text("\n".join(lines) + "\n")


def test_figures_group_a_transfer_sweep_by_source_with_scratch_as_reference(tmp_path, monkeypatch):
    _transfer_results(tmp_path / "r")
    for seed in range(2):
        _multi_task_run(tmp_path / "r", seed)
    table = load_results(tmp_path / "r")[0].drop_duplicates("run").set_index("run")
    assert table.loc["tr/iqrl/walker-run/init_from=walk/seed0", "source"] == "tr:source-walk"
    assert table.loc["tr/iqrl/walker-run/init_from=walk/seed0", "source_parts"] == "representation"
    assert table.loc["tr/iqrl/walker-run/default/seed1", "source"] == ""
    seen = {}
    save = plots.save_figure

    def record(fig, out_dir, name):
        seen[name] = {t.get_text() for ax in fig.axes for t in ax.get_yticklabels() + ax.texts} | {
            t.get_text() for legend in fig.legends for t in legend.get_texts()
        }
        return save(fig, out_dir, name)

    monkeypatch.setattr(plots, "save_figure", record)
    with pytest.warns(AnalysisWarning):
        make_figures(
            tmp_path / "r", tmp_path / "o", steps=[100], reps_curve=20, reps_final=20, use_cache=False
        )
    arms = {"iqrl: scratch", "iqrl/init_from=walk: from tr:source-walk [representation]", "iqrl multi-task"}
    assert arms <= seen["transfer_tr_iqrl"] and arms <= seen["transfer_tr_iqrl_100"]
    assert not undocumented(seen)  # each figure is in docs/figures.md's table of outputs
    assert (
        "ablation_tr_iqrl_init_from" in seen and "ablation_tr_iqrl_use_rew_loss" not in seen
    )  # no source arm


def test_a_multi_task_runs_representation_starts_a_single_task_run(tmp_path):
    """The shared representation of a multi-task run is the single-task one: it transfers; its critic, which
    reads the task embedding, does not fit a single-task critic and is refused naming the shapes."""
    source = tmp_path / "multi"
    assert main(_argv(source, "[cartpole-balance,cartpole-swingup]", steps=800)) == EXIT_OK
    out = tmp_path / "single"
    assert main(_argv(out, steps=400, extra=[f"init_from={source}"])) == EXIT_OK
    init = yaml.safe_load((out / "config.yaml").read_text())["meta"]["init"]
    assert init["task"] == ["cartpole-balance", "cartpole-swingup"] and init["loaded"][
        "representation"
    ] == list(REPR)
    with pytest.raises(ConfigError, match=r"learner.critic.* in the source"):
        preflight(build_config(_argv(tmp_path / "c", extra=[f"init_from={source}", "init_parts=[critic]"])))


def test_a_checkpoint_file_is_a_source_too(source, tmp_path):
    """init_from=<checkpoint file>: inside a run folder it is that run's (its config.yaml hashed); copied out
    of one, its own config identifies it."""
    inside = source / CHECKPOINT.parent / "ckpt.prev.pt"
    cfg = build_config(_argv(tmp_path / "a", extra=[f"init_from={inside}"]))
    meta = load_parts(Trainer(cfg).agent, cfg)
    assert meta["env_step"] == 400 and meta["run"] == str(source.resolve())
    outside = tmp_path / "loose.pt"
    shutil.copy(inside, outside)
    cfg = build_config(_argv(tmp_path / "b", extra=[f"init_from={outside}"]))
    meta = load_parts(Trainer(cfg).agent, cfg)
    assert meta["run"] is None and meta["task"] == "cartpole-balance" and len(meta["config_sha256"]) == 64
