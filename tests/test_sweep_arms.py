"""Every arm of every shipped sweep file (ablations/*.yaml) builds an agent whose latent is not collapsed at
initialisation: on a batch of random observations its latent has rank > 0 and, quantized, more than one code
in some group (iqrl.core.diagnostics.latent_collapsed, the trainer's guard). A broken arm (the standard FSQ
bound with a level of 2 gives one code for every input) would otherwise be reported as a finding."""

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from iqrl.config.build import build_config
from iqrl.core.diagnostics import active_codebook, latent_collapsed, rank_metrics
from iqrl.core.registry import make_agent
from slurm.spec import load_sweep
from slurm.submit import default_task_groups

from conftest import agent_actions, agent_run

ROOT = Path(__file__).resolve().parents[1]
SWEEPS = sorted((ROOT / "ablations").glob("*.yaml"))
OBS_DIM, ACT_DIM, N_OBS = 12, 3, 64
# Actor, critic and dynamics widths do not touch the latent at initialisation: shrunk for speed. The
# encoder, the latent size and the quantizer stay as each arm sets them.
SMALL = {"mlp_dims": [16, 16]}


def arm_configs() -> dict[str, list[str]]:
    """{agent config (JSON): the arms (sweep:agent/variant) that share it}, over every shipped sweep.

    An arm is one agent x variant of a sweep, built for the sweep's first task and seed: its tasks change the
    agent config only through the task files (exploration schedule, n-step, target rate, projection head and,
    for dog and humanoid, latent_dim, whose widths latent_dim.yaml's arms cover), and each build_config costs
    ~60 ms (OmegaConf), too much for the ~450 (agent, task, variant) triples of the shipped sweeps."""
    configs: dict[str, list[str]] = {}
    for path in SWEEPS:
        sweep = load_sweep(path, default_task_groups())
        first = {}
        for run in sweep.runs():
            first.setdefault((run.agent, run.variant), run)
        for run in first.values():
            cfg = build_config(run.argv("/tmp/never-written")).agent
            small = {k: v for k, v in SMALL.items() if hasattr(cfg, k)}
            key = json.dumps(
                {"class": type(cfg).__name__, **dataclasses.asdict(dataclasses.replace(cfg, **small))},
                sort_keys=True,
            )
            configs.setdefault(key, []).append(f"{path.name}:{run.agent}/{run.variant}")
    return configs


def latent_metrics(agent) -> dict | None:
    obs = torch.randn(N_OBS, OBS_DIM, generator=torch.Generator().manual_seed(0))
    z = agent.latent(obs)
    if z is None:
        return None
    out = rank_metrics(z.float())
    codes = agent.codes(obs)
    if codes is not None:
        out.update(active_codebook(codes, agent.codebook_size))
    return out


def build(key: str):
    values = json.loads(key)
    cls_name = values.pop("class")
    name = values["name"]
    cfg = build_config([f"agent={name}", *agent_run(name)]).agent
    assert type(cfg).__name__ == cls_name
    actions = agent_actions(name, ACT_DIM)  # a discrete-only agent (Atari's arms) gets 3 discrete actions
    return make_agent(dataclasses.replace(cfg, **values), OBS_DIM, actions, torch.device("cpu"), seed=0)


def test_every_sweep_arm_has_a_latent_that_is_not_collapsed_at_initialisation():
    assert {p.name for p in SWEEPS} >= {"fsq_levels.yaml", "main.yaml", "smoke.yaml"}
    configs = arm_configs()
    checked, collapsed = 0, []
    for key, arms in configs.items():
        agent = build(key)
        m = latent_metrics(agent)
        if m is None:  # no latent (TD3, SAC on raw observations)
            continue
        checked += 1
        if latent_collapsed(m, agent.codebook_size):
            collapsed.append(
                f"{arms[0]} (+{len(arms) - 1} arms): latent rank {m['latent_rank']:.0f}, "
                f"active codebook max {m.get('active_codebook_pct_max')}%"
            )
    assert checked >= 10
    assert not collapsed, "collapsed latent at initialisation:\n" + "\n".join(collapsed)


def test_fsq_levels_binary_arm_uses_the_symmetric_bound():
    sweep = load_sweep(ROOT / "ablations" / "fsq_levels.yaml", default_task_groups())
    binary = [ov for ov in sweep.variants.values() if 2 in ov.get("agent.fsq_levels", [])]
    assert binary and all(ov.get("agent.fsq_symmetric") is True for ov in binary)


@pytest.mark.parametrize("symmetric, collapsed", [(False, True), (True, False)])
def test_the_check_catches_the_standard_bound_with_binary_levels(symmetric, collapsed):
    """The arm that fsq_levels.yaml shipped before (standard bound, [2, 2, 2, 2], which validation now
    refuses): built without validation, its latent is one code at initialisation; with the symmetric bound
    not."""
    cfg = build_config(["agent=iqrl", "agent.fsq_levels=[2,2,2,2]", "agent.fsq_symmetric=true"]).agent
    cfg = dataclasses.replace(cfg, fsq_symmetric=symmetric, **SMALL)
    agent = make_agent(cfg, OBS_DIM, ACT_DIM, torch.device("cpu"), seed=0)
    m = latent_metrics(agent)
    assert latent_collapsed(m, agent.codebook_size) is collapsed
    if collapsed:
        assert m["latent_rank"] == 0 and m["active_codebook_pct_max"] == 100 / 16


def sweep_latents(name: str) -> dict[str, set[tuple[tuple[int, ...], int, int]]]:
    """{variant: {(FSQ levels, latent width, latent_dim)} over the sweep's tasks} of a shipped sweep, as the
    trainer builds each run's agent config."""
    sweep = load_sweep(ROOT / "ablations" / name, default_task_groups())
    out: dict[str, set] = {}
    for run in sweep.runs():
        if run.seed == sweep.seeds[0]:
            cfg = build_config(run.argv("/tmp/never-written")).agent
            out.setdefault(run.variant, set()).add((tuple(cfg.fsq_levels), cfg.latent_width, cfg.latent_dim))
    return out


def test_fsq_levels_widens_the_latent_as_the_paper_and_its_companion_holds_it():
    """fsq_levels.yaml as the paper ran it: width = latent_dim x len(levels), 1024 to 3072; the equal-width
    sweep: 1024 for every arm on every task, and every layout of fsq_levels.yaml whose channel count
    divides 1024 is there."""
    paper = sweep_latents("fsq_levels.yaml")
    assert all(w == d * len(levels) for arms in paper.values() for levels, w, d in arms)
    assert {w for arms in paper.values() for _, w, _ in arms} == {1024, 1536, 2048, 2560, 3072}
    equal = sweep_latents("fsq_levels_equal_width.yaml")
    assert {w for arms in equal.values() for _, w, _ in arms} == {1024} and all(
        len(a) == 1 for a in equal.values()
    )
    layouts = {levels for arms in paper.values() for levels, _, _ in arms}
    assert {levels for arms in equal.values() for levels, _, _ in arms} == {
        levels for levels in layouts if 1024 % len(levels) == 0
    }
