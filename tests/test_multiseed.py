"""The K-seed mode (iqrl/multiseed/): seeds of one config trained together, networks vectorised over
seeds."""

from __future__ import annotations

import contextlib
import copy
import csv
import importlib.util
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from iqrl.config.build import build_config, layered
from iqrl.core import registry
from iqrl.core.checks import require
from iqrl.core.interface import Agent, AgentConfig, AgentSpec, to_tensor
from iqrl.core.registry import AgentEntry, make_agent
from iqrl.core.replay import SequenceReplay
from iqrl.multiseed.group import SeedGroup
from iqrl.multiseed.refusals import unsupported
from iqrl.multiseed.runs import PREVIOUS_CHECKPOINT, checkpoint_step, main, resume_points, workers_help
from iqrl.multiseed.vectorise import Networks, vmap_tree
from iqrl.nn.layers import frozen_copy, mlp
from iqrl.nn.maths import add_clipped_noise
from iqrl.nn.optim import adam
from iqrl.runfolder.exits import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK
from iqrl.runfolder.layout import CHECKPOINT
from iqrl.train import main as train_main

from agent_helpers import assert_metric_agrees, nonsmooth_hint, optimizers, updates_to_step_every_optimizer
from conftest import (
    TINY_AGENT,
    TINY_RUN,
    agent_actions,
    agent_observations,
    open_episode,
    pixel_observations,
    pixels_only,
    stop_after_steps,
    tiny_keys,
    tiny_pixels,
    wait_for,
)

ROOT = Path(__file__).resolve().parents[1]
TINY = ["agent=iqrl", *TINY_RUN, *TINY_AGENT["iqrl"]]
# The uninterrupted group that the kill, Ctrl-C and env-worker tests compare with (session's finished_runs)
GROUP = [*TINY, "steps=800", "seeds=3,4", "env_workers=true"]


def eval_numbers(run: Path) -> list[dict]:
    with open(run / "eval.csv") as f:
        return [{k: v for k, v in r.items() if k != "wall_time_s"} for r in csv.DictReader(f)]


def train_numbers(run: Path) -> list[dict]:
    """train.csv without the columns that measure time."""
    with open(run / "train.csv") as f:
        return [
            {k: v for k, v in r.items() if "time" not in k and "_per_s" not in k} for r in csv.DictReader(f)
        ]


def agent_and_replay(extra: list[str], seed: int, actions=None, device: str = "cpu"):
    """A tiny agent of `extra`'s config (5-dim states, or a pixel-only agent's tiny frames) and a replay of
    one random 100-step episode, on `device`; `actions` defaults to one continuous action, or 3 discrete ones
    for an agent without boxes."""
    name = next((a[6:] for a in extra if a.startswith("agent=")), "iqrl")
    rest = [a for a in extra if not a.startswith("agent=")]
    cfg = build_config(tiny_keys(name, rest)).agent
    torch.manual_seed(seed)
    actions = actions or agent_actions(name, 1)
    obs = agent_observations(name)
    agent = make_agent(cfg, obs.dim, actions, torch.device(device), seed)
    replay = obs.replay(actions, agent.spec.seq_len, torch.device(device), seed + 1)
    rng = np.random.default_rng(seed)
    replay.start_episode(obs.sample(rng))
    for t in range(100):
        replay.add(actions.sample(rng), float(rng.normal()), obs.sample(rng), False, t == 99)
    return agent, replay


def group_updates(group: SeedGroup, replays, n: int, first=None, serve_in=None) -> list[list[dict]]:
    """n updates of every seed, each seed's `agent.update` in its own thread (the group runs their pieces),
    seed k's numbered from first[k] on (default 0); a seed leaves the group when it is done, as a trainer's
    does, and every seed takes part in the next call again. `serve_in`: a context (autocast) in which this
    thread serves the rounds, as the K-seed runner does; else they run in the seed threads."""
    out = [[] for _ in replays]
    group.active = set(range(group.K))

    def seed(k):
        try:
            for i in range(n):
                group.at_update(k, i + (first[k] if first else 0))
                out[k].append(group.agents[k].update(replays[k], i))
        finally:
            group.leave(k)

    threads = [threading.Thread(target=seed, args=(k,)) for k in range(len(replays))]
    if (
        serve_in is not None
    ):  # the rounds in this thread from the first, inside `serve_in` (the runner's autocast)
        with serve_in:
            group.serve(start=lambda: [t.start() for t in threads])
    else:
        [t.start() for t in threads]
    [t.join() for t in threads]
    return out


def assert_group_matches_plain(plain: list, grouped: list, n: int, first=None) -> SeedGroup:
    """n updates of each seed's own agent (`plain`: (agent, replay) pairs) and of the same seeds in one group
    (`grouped`; seed k's numbered from first[k] on): the same metrics (to 1e-4) and parameters (to float
    rounding: each tensor within 2e-5 of its largest entry, at least 1; Adam divides each entry's gradient
    by that entry's own running scale, so an entry whose gradient is a near cancellation steps its rounding
    at full size, and how far depends on the CPU's vector width: iqrl-official's critic parted by 1.01e-5 on
    an AVX-512 Xeon, under 1e-5 on AVX2 EPYCs). Returns the group."""
    group = SeedGroup([a for a, _ in grouped])
    metrics = group_updates(group, [r for _, r in grouped], n, first)
    for k, (agent, replay) in enumerate(plain):
        for i in range(n):
            m = agent.update(replay, i)
            assert m.keys() == metrics[k][i].keys()
            for name in m:
                where = f"{agent.cfg.name} seed {k} update {i}, the K-seed group"
                assert_metric_agrees(agent.cfg.name, name, metrics[k][i][name], m[name], where)
        mine, theirs = params(agent), params(grouped[k][0])
        for name in mine:
            diff = float((theirs[name] - mine[name]).abs().max())
            bound = 2e-5 * max(float(mine[name].abs().max()), 1)
            assert diff <= bound, f"seed {k}: {name} differs by {diff:.3g} > {bound:.3g}"
    return group


def group_slices(group: SeedGroup, param: str) -> tuple[torch.optim.Optimizer, list[torch.Tensor]]:
    """The group's optimizer over the stacked parameter `param` (a name in the agent's networks), and the
    slices of that parameter it steps (one per slot)."""
    g = next(g for names, g in group.opts.items() if f"parts.{param}" in names)
    return g.opt, g.slices[g.names.index(f"parts.{param}")]


def params(agent) -> dict[str, torch.Tensor]:
    return {f"{m}.{n}": p for m, mod in agent.networks().items() for n, p in mod.state_dict().items()}


@pytest.mark.registry
@pytest.mark.computes
def test_every_agent_trains_in_the_k_seed_mode_or_is_refused_in_one_line(agent, tmp_path, capsys):
    """The group has no code of any agent: every registered agent's group update is its plain update per
    seed, or its config says why not (AgentConfig.kseed_refusal) and the command line refuses it in that one
    line before anything is built."""
    tiny = tiny_keys(agent)
    if why := unsupported(build_config(tiny)):
        assert main([*tiny, "seeds=0,1", f"out={tmp_path}"]) == EXIT_BAD_INPUT
        assert capsys.readouterr().err.strip().splitlines() == [f"error: {why}"]
        assert not tmp_path.joinpath("seed0").exists()
        return
    n = updates_to_step_every_optimizer(agent)  # the actor's step included, at any actor_update_freq
    assert_group_update_matches_plain([f"agent={agent}"], max(4, n))
    assert_compiled_group_matches_eager(agent, updates=max(2, n))


def compiled_and_eager_groups(
    name: str, backend: str | None, extra=(), device: str = "cpu", cudagraphs: bool = False
) -> tuple[SeedGroup, list, SeedGroup, list]:
    """Two 2-seed groups of `name` on `device` and the same batches and draws: one of compiled agents
    (compile=true: its vectorised pieces through torch.compile, `backend` if given; with `cudagraphs`, each
    group update one step of the CUDA-graph tree) and one eager."""
    eager = [agent_and_replay([f"agent={name}", *extra], s, device=device) for s in (0, 1)]
    compiled = [agent_and_replay([f"agent={name}", *extra], s, device=device) for s in (0, 1)]
    torch._dynamo.reset()
    for a, _ in compiled:
        a.compile(cudagraphs=cudagraphs)
    group = SeedGroup([a for a, _ in compiled])
    if backend is not None:
        group.updater.options = {**group.updater.options, "backend": backend}
    return group, compiled, SeedGroup([a for a, _ in eager]), eager


def assert_compiled_group_matches_eager(
    name: str,
    updates: int = 3,
    backend: str | None = "aot_eager_decomp_partition",
    device: str = "cpu",
    cudagraphs: bool = False,
    tol: float | None = None,
) -> None:
    """A compiled group's updates (iqrl/multiseed/pieces.py: the group's vectorised pieces compiled, as
    compile=true runs them) agree with the eager group's per update within `tol` (default the agent's
    COMPILE_TOLERANCE), as the compiled single-seed update does with the eager one (tests/test_compile.py); on
    CI's CPU through the cheap backend (what fails for a new agent: tracing vmap and grad, functionalisation),
    on a GPU (tests/test_cuda.py) through inductor and its CUDA graphs."""
    tol = tol or registry.agent_class(name).COMPILE_TOLERANCE
    group, compiled, eager_group, eager = compiled_and_eager_groups(
        name, backend, device=device, cudagraphs=cudagraphs
    )
    frames = torch._dynamo.utils.counters["frames"]["ok"]
    # the rounds in this (the main) thread, as the K-seed runner serves them: CUDA-graph trees need it
    m_c = group_updates(group, [r for _, r in compiled], updates, serve_in=contextlib.nullcontext())
    m_e = group_updates(eager_group, [r for _, r in eager], updates, serve_in=contextlib.nullcontext())
    assert torch._dynamo.utils.counters["frames"]["ok"] > frames  # the pieces did run compiled
    for k in range(2):
        for i in range(updates):
            assert m_c[k][i].keys() == m_e[k][i].keys()
            for key, v in m_e[k][i].items():
                c, e = float(m_c[k][i][key]), float(v)
                allowed = registry.agent_class(name).NONSMOOTH_METRICS.get(key, tol * (1 + abs(e)))
                assert abs(c - e) <= allowed, (
                    f"{name} seed {k} update {i} {key}: compiled group {c} vs eager group {e}. "
                    f"{nonsmooth_hint(name, key)}"
                )
        mine, theirs = params(compiled[k][0]), params(eager[k][0])
        for n, p in theirs.items():
            if p.is_floating_point():
                diff, bound = float((mine[n] - p).abs().max()), tol * max(float(p.abs().max()), 1.0)
                assert diff <= bound, f"{name} seed {k}: {n} differs by {diff:.3g} > {bound:.3g}"
            else:
                assert torch.equal(mine[n], p), n


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_graph_captured_group_runs_its_rounds_only_in_the_main_thread():
    """cudagraphs=true: CUDA-graph trees assert in a Python thread other than the main one (torch 2.11 on the
    H200, pytorch/pytorch#123177), so a round a seed's thread would run fails with one clear line, and the
    rounds the main thread serves (as the K-seed runner does) run."""
    pairs = [agent_and_replay(["agent=td3"], s) for s in (0, 1)]
    group = SeedGroup([a for a, _ in pairs])
    group.updater.cudagraphs = True  # its one effect on the CPU: the thread check and the step marks
    out = group_updates(group, [r for _, r in pairs], 1)  # each seed's thread raises the group's error
    assert out == [[], []]
    assert "must run its rounds in the main thread" in str(group.error)
    group = SeedGroup([a for a, _ in pairs])
    group.updater.cudagraphs = True
    out = group_updates(group, [r for _, r in pairs], 2, serve_in=contextlib.nullcontext())
    assert [len(m) for m in out] == [2, 2] and group.error is None


def test_a_compiled_group_resumed_from_its_seeds_checkpoints_updates_as_the_uninterrupted_one():
    """compile=true: 2 more updates of a compiled group built from its seeds' checkpoints equal 2 more of the
    compiled group that wrote them, bit for bit."""
    group, grouped, _, _ = compiled_and_eager_groups("td3", "aot_eager_decomp_partition")
    group_updates(group, [r for _, r in grouped], 2)
    states = []
    for k, (a, r) in enumerate(grouped):
        group.write_optimizer_state(k)
        states.append(copy.deepcopy((a.state_dict(), r.state_dict())))
    resumed_group, resumed, _, _ = compiled_and_eager_groups("td3", "aot_eager_decomp_partition")
    for (a, r), (agent_state, replay_state) in zip(resumed, states):
        a.load_state_dict(agent_state)
        r.load_state_dict(replay_state)
    group_updates(resumed_group, [r for _, r in resumed], 2)
    group_updates(group, [r for _, r in grouped], 2)
    for (a, _), (b, _) in zip(grouped, resumed):
        mine, theirs = params(a), params(b)
        assert all(torch.equal(mine[n], theirs[n]) for n in mine)


@pytest.mark.parametrize("agent", ["iqrl", "td3"])
def test_bf16_group_update_matches_the_plain_bf16_update_of_each_seed(agent):
    """precision=bf16 (CPU autocast around the updates, as the K-seed runner enters it): the group's updates
    are each seed's own bf16 updates to bfloat16's rounding, LayerNorm's batched backward included
    (iqrl.nn.kernels.over_seeds computes it in float32 there), and not the float32 ones."""
    extra = [f"agent={agent}"]
    plain = [agent_and_replay(extra, s) for s in (0, 1)]
    grouped = [agent_and_replay(extra, s) for s in (0, 1)]
    fp32 = [agent_and_replay(extra, s) for s in (0, 1)]
    group_updates(SeedGroup([a for a, _ in fp32]), [r for _, r in fp32], 3)
    bf16 = torch.autocast("cpu", dtype=torch.bfloat16)
    metrics = group_updates(SeedGroup([a for a, _ in grouped]), [r for _, r in grouped], 3, serve_in=bf16)
    with bf16:
        for k, (a, r) in enumerate(plain):
            for i in range(3):
                for key, v in a.update(r, i).items():
                    assert float(metrics[k][i][key]) == pytest.approx(float(v), rel=0.1, abs=0.1), (k, i, key)
    for k in range(2):
        mine, theirs, full = params(plain[k][0]), params(grouped[k][0]), params(fp32[k][0])
        for n, p in mine.items():
            bound = 1e-2 * max(float(p.abs().max()), 1.0)
            assert float((theirs[n] - p).abs().max()) <= bound, n
        assert any(not torch.equal(theirs[n], full[n]) for n in full)  # it did compute in bfloat16


def test_bf16_group_runs_to_done_and_resumes_after_sigkill_as_uninterrupted(tmp_path):
    """Killed once both seeds checkpointed at 600, 200 env steps of bf16 updates in; resumed to 800."""
    argv = layered(TINY, ["precision=bf16", "steps=800", "checkpoint_every=200"])
    assert "resumed from checkpoint" in assert_killed_group_resumes_as_uninterrupted(
        tmp_path, argv, (0, 1), 600
    )
    for s in (0, 1):
        st = json.loads((tmp_path / "run" / f"seed{s}" / "status.json").read_text())
        assert st["state"] == "done"
        assert build_config([*argv, f"seed={s}"]).precision == "bf16"


@pytest.mark.parametrize(
    "extra",
    [
        [
            "agent.use_projection=true",
            "agent.projection_dim=4",
            "agent.use_rew_loss=true",
            "agent.grad_clip=5",
        ],
        ["agent.use_rec_loss=true", "agent.q_subsample=5"],
        # VQ's codebook EMA comes out of its piece per seed (iqrl/nn/stats.py)
        ["agent.quantizer=vq", "agent.vq_dim=4", "agent.vq_codebook_size=8"],
        ["agent=iqrl-sac", "agent.grad_clip=5", "agent.q_subsample=5"],
        ["agent=sac", "agent.actor_update_freq=1"],
        ["agent=td7", "agent.use_checkpoints=false"],
        # a reset at the first update; batch renormalisation past its warm-up; a learning-rate schedule
        ["agent=bro", "agent.reset_at=[50]"],
        ["agent=crossq", "agent.policy_delay=2", "agent.bn_warmup=2"],
        ["agent=simbav2", "agent.num_critics=2", "agent.lr_decay_transitions=1"],
    ],
)
def test_group_update_of_switch_variants_matches_the_plain_update_of_each_seed(extra):
    assert_group_update_matches_plain(extra)


def assert_group_update_matches_plain(extra: list[str], updates: int = 4) -> None:
    """`updates` updates (4: 2 actor steps at actor_update_freq 2) of a 3-seed group vs each seed's own
    agent.update: same losses and parameters up to float rounding, and far from the other seeds' (so a
    mixed-up seed would fail)."""
    plain = [agent_and_replay(extra, s) for s in (0, 1, 2)]
    grouped = [agent_and_replay(extra, s) for s in (0, 1, 2)]
    group = assert_group_matches_plain(plain, grouped, updates)
    for k, (agent, _) in enumerate(plain):
        mine = params(agent)
        other = params(grouped[(k + 1) % 3][0])
        assert max((other[n] - mine[n]).abs().max() for n in mine) > 1e-2
        if hasattr(agent, "ac") and hasattr(agent.learner, "critic_steps"):
            assert agent.learner.critic_steps == grouped[k][0].learner.critic_steps == updates
    assert group.round > updates  # the pieces ran vectorised, several per update


@pytest.mark.parametrize("extra", [["agent=td3"], ["agent=sac", "agent.actor_update_freq=2"], []])
def test_seeds_at_different_update_counts_update_as_their_plain_agents(extra):
    """A group resumed at one env step after episodes of different lengths: seed 0 has run one update more
    than seed 1 (so it steps its actor, every 2nd update, when seed 1 does not, and their Adam step counts
    differ). Seed 0 waits while seed 1 runs its update 1 alone, then they pair update by update: every
    seed's numbers are its plain agent's."""
    plain = [agent_and_replay(extra, s) for s in (0, 1)]
    grouped = [agent_and_replay(extra, s) for s in (0, 1)]
    for agent, replay in (plain[0], grouped[0]):
        agent.update(replay, 0)
    group = assert_group_matches_plain(plain, grouped, 5, first=[1, 0])
    assert group.round > 5 * 3  # pieces ran in rounds: most of them for both seeds at once


def test_a_metric_that_jumps_is_compared_within_what_its_agent_declares(monkeypatch):
    """The K-seed test's comparison of one metric (agent_helpers.assert_metric_agrees): to 1e-4 relative,
    with a failure that names the declaration to write where the metric is not smooth; a metric the agent
    names in NONSMOOTH_METRICS within the difference it declares, and no further."""
    from baselines.td3 import TD3

    with pytest.raises(AssertionError) as e:
        assert_metric_agrees("td3", "accuracy", 0.5625, 0.625, "td3 seed 1 update 2, the K-seed group")
    assert str(e.value).startswith(
        "td3 seed 1 update 2, the K-seed group: accuracy is 0.5625, the plain update's 0.625 (rel 0.0001). "
        "If accuracy is not smooth in the parameters (an accuracy, an argmax: a sum in another order flips a "
        "near-tie and the value jumps), declare the difference it may show: "
        "baselines.td3.TD3.NONSMOOTH_METRICS = {'accuracy': <difference>} (Agent.NONSMOOTH_METRICS, "
        "iqrl/core/interface.py)"
    )
    assert_metric_agrees("td3", "q_loss", 1.00001, 1.0, "close")  # smooth: to rounding
    monkeypatch.setattr(TD3, "NONSMOOTH_METRICS", {"accuracy": 0.125})
    assert_metric_agrees("td3", "accuracy", 0.5625, 0.625, "within")
    with pytest.raises(AssertionError, match="more than the 0.125 its NONSMOOTH_METRICS allows"):
        assert_metric_agrees("td3", "accuracy", 0.4375, 0.625, "beyond")


def test_a_seed_computes_the_same_in_any_group():
    """Seed 1 alone (one seed, padded to two slots) and in a group of 3: the same numbers after 6 updates,
    up to rounding (vectorised sums may group differently for another number of slots)."""
    alone = [agent_and_replay([], 1)]
    group_updates(SeedGroup([a for a, _ in alone]), [r for _, r in alone], 6)
    three = [agent_and_replay([], s) for s in (0, 1, 2)]
    group_updates(SeedGroup([a for a, _ in three]), [r for _, r in three], 6)
    a, b = params(alone[0][0]), params(three[1][0])
    for n in a:
        torch.testing.assert_close(b[n], a[n], rtol=1e-6, atol=1e-7, msg=n)


def act_in_group(agents: list, asks: list[list[tuple[np.ndarray, bool]]]) -> tuple[list[list], list]:
    """Each seed's `act` calls (`asks[k]`: observation, explore) in its own thread, the rounds served by this
    thread as the K-seed runner does; (each seed's actions, the seeds of each acting round)."""
    group, rounds = SeedGroup(agents), []
    act = group._act
    group._act = lambda live, pieces: rounds.append(list(live)) or act(live, pieces)
    out = [[] for _ in agents]

    def seed(k):
        try:
            out[k] = [agents[k].act(o, explore=e) for o, e in asks[k]]
        finally:
            group.leave(k)

    threads = [threading.Thread(target=seed, args=(k,)) for k in range(len(agents))]
    group.serve(start=lambda: [t.start() for t in threads])
    [t.join() for t in threads]
    return out, rounds


@pytest.mark.parametrize(
    "name", ["iqrl", "td3", "sac", "simbav2", "bro", "mrq", "td7", "tcrl", "taco", "dqn", "crossq"]
)
def test_a_group_acts_for_its_seeds_in_one_forward_as_each_seed_alone(name):
    """Acting through the updater (`Updater.act`): the seeds' actions in one round, one forward over the
    stacked networks, each the action its seed computes alone (its own draws, in its own order) up to the
    rounding of batched kernels; a training step's exploring action, then a batch of evaluation episodes."""
    agents = [agent_and_replay([f"agent={name}"], seed)[0] for seed in (0, 1, 2)]
    rng = np.random.default_rng(0)
    asks = [
        [(o, True), (o, True), (rng.standard_normal((4, 5)).astype(np.float32), False)]
        for o in rng.standard_normal((3, 5)).astype(np.float32)
    ]
    before = [a.generator.get_state() for a in agents]
    alone = [[a.act(o, explore=e) for o, e in ask] for a, ask in zip(agents, asks)]
    after = [a.generator.get_state() for a in agents]
    for a, state in zip(agents, before):
        a.generator.set_state(state)
    grouped, rounds = act_in_group(agents, asks)
    assert rounds == [[0, 1, 2]] * 3
    for k in range(3):
        assert torch.equal(agents[k].generator.get_state(), after[k])  # the same draws
        for got, want in zip(grouped[k], alone[k], strict=True):
            assert got.shape == want.shape and got.dtype == want.dtype
            # batched kernels round otherwise: ~1e-6 through two layers, 1.6e-5 through TACO's encoder and
            # actor (another seed's networks would be off by far more)
            np.testing.assert_allclose(got, want, rtol=5e-5, atol=1e-6)
        assert not torch.equal(after[k], before[k])  # the exploring acts drew


def test_seeds_acting_in_other_forms_act_in_rounds_of_their_own():
    """A seed evaluating a batch of episodes while the others explore: one round for it, one for them."""
    agents = [agent_and_replay(["agent=td3"], seed)[0] for seed in (0, 1, 2)]
    o = np.zeros(5, np.float32)
    grouped, rounds = act_in_group(
        agents, [[(np.zeros((4, 5), np.float32), False)], [(o, True)], [(o, True)]]
    )
    assert rounds == [[0], [1, 2]] and [g[0].shape for g in grouped] == [(4, 1), (1,), (1,)]


@pytest.mark.parametrize("agent", ["sac", "iqrl-sac"])
def test_checkpoint_of_a_sac_seed_carries_its_temperature_and_its_optimizer(agent):
    """The learner's optimizers (critic, actor, temperature) are checkpointed as the seed's own slice: a plain
    agent loaded from it holds the group's log(alpha) and Adam moments, and trains on."""
    grouped = [agent_and_replay([f"agent={agent}", "agent.actor_update_freq=1"], s) for s in (0, 1)]
    group = SeedGroup([a for a, _ in grouped])
    group_updates(group, [r for _, r in grouped], 2)
    group.write_optimizer_state(1)  # what a seed's checkpoint does first
    state = grouped[1][0].state_dict()
    alpha_opt, log_alpha = group_slices(group, "ac.log_alpha")
    assert state["ac"]["log_alpha"] == log_alpha[1] != log_alpha[0]
    assert state["ac_extra"]["alpha_opt"]["state"][0]["exp_avg"] == alpha_opt.state[log_alpha[1]]["exp_avg"]
    assert float(state["ac_extra"]["alpha_opt"]["state"][0]["step"]) == 2
    plain, replay = agent_and_replay([f"agent={agent}", "agent.actor_update_freq=1"], 1)
    plain.load_state_dict(copy.deepcopy(state))
    assert all(torch.equal(params(plain)[n], params(grouped[1][0])[n]) for n in params(plain))
    assert plain.update(replay, 2)["alpha"] > 0


@pytest.mark.parametrize("agent", ["sac", "iqrl"])
def test_a_group_resumed_from_its_seeds_checkpoints_updates_as_the_uninterrupted_group(agent):
    """Every seed's optimizer state goes back into the group on resume, 0-d parameters' moments included
    (SAC's log alpha: its Adam moments are 0-d like it, and once every seed got seed 0's): 3 more updates of
    a group built from the seeds' checkpoints equal 3 more of the group that wrote them, bit for bit."""
    extra = [f"agent={agent}", "agent.actor_update_freq=1"] if agent == "sac" else []
    grouped = [agent_and_replay(extra, s) for s in (0, 1)]
    group = SeedGroup([a for a, _ in grouped])
    group_updates(group, [r for _, r in grouped], 2)
    states = []
    for k, (a, r) in enumerate(grouped):
        group.write_optimizer_state(k)  # what a seed's checkpoint does first
        states.append(copy.deepcopy((a.state_dict(), r.state_dict())))
    resumed = [agent_and_replay(extra, s) for s in (0, 1)]
    for (a, r), (agent_state, replay_state) in zip(resumed, states):
        a.load_state_dict(agent_state)
        r.load_state_dict(replay_state)
    group_updates(SeedGroup([a for a, _ in resumed]), [r for _, r in resumed], 3)
    group_updates(group, [r for _, r in grouped], 3)
    for (a, _), (b, _) in zip(grouped, resumed):
        mine, theirs = params(a), params(b)
        assert all(torch.equal(mine[n], theirs[n]) for n in mine)


def test_checkpoint_of_a_seed_is_its_slice_and_loads_into_a_plain_agent():
    grouped = [agent_and_replay([], s) for s in (0, 1)]
    group = SeedGroup([a for a, _ in grouped])
    group_updates(group, [r for _, r in grouped], 2)
    group.write_optimizer_state(1)  # what a seed's checkpoint does first
    state = grouped[1][0].state_dict()
    enc = state["encoder"]["0.weight"]
    assert enc.untyped_storage().nbytes() == enc.numel() * 4  # its own tensor, not a view of the stack
    assert torch.equal(enc, group.stacked["parts.encoder.0.weight"][1])
    repr_opt, weight = group_slices(group, "encoder.0.weight")
    assert torch.equal(state["repr_opt"]["state"][0]["exp_avg"], repr_opt.state[weight[1]]["exp_avg"])
    plain, replay = agent_and_replay([], 1)
    plain.load_state_dict(copy.deepcopy(state))
    assert all(torch.equal(params(plain)[n], params(grouped[1][0])[n]) for n in params(plain))
    assert plain.update(replay, 2)  # a plain agent trains on from a seed of a group


def test_configs_whose_seeds_cannot_run_in_lockstep_are_refused_up_front():
    """TD7's policy checkpoints decide per seed when its updates run: its config says so before anything is
    built (AgentConfig.kseed_refusal)."""
    td7 = build_config(["agent=td7", *TINY_RUN, *TINY_AGENT["td7"]])
    assert "policy checkpoints" in unsupported(td7)
    assert unsupported(build_config(["agent=td7", "agent.use_checkpoints=false"])) is None
    assert unsupported(build_config(["agent=iqrl", "agent.quantizer=vq"])) is None


def test_cli_seeds_match_plain_single_seed_runs(tmp_path, finished_runs):
    """seeds=3,4 in one process (GROUP, the session's) vs `python -m iqrl.train seed=k` for each: the same
    until the first updates (env steps 0 and 400) up to the rounding of the group's batched acting, then the
    same update schedule."""
    group = finished_runs.copy(GROUP, tmp_path / "group", group=True)
    for s in (3, 4):
        plain_run = finished_runs.get([*TINY, "steps=800", f"seed={s}"])
        grouped, plain = eval_numbers(group / f"seed{s}"), eval_numbers(plain_run)
        assert [r["env_step"] for r in grouped] == ["0", "400", "800"]
        for g, p in zip(
            grouped[:2], plain[:2]
        ):  # the seeds act in one forward: other kernels, other rounding
            assert (
                g.keys() == p.keys() and g["env_step"] == p["env_step"] and g["n_episodes"] == p["n_episodes"]
            )
            assert float(g["episode_return"]) == pytest.approx(float(p["episode_return"]), rel=1e-5)
            assert g["q_bias_steps"] == p["q_bias_steps"] != ""  # each seed's Q-bias, as its own run's
        # After 100 updates the returns of the vectorised and the plain update differ by float rounding that
        # the policy amplifies by an amount no tolerance bounds on every machine: the learning itself is
        # pinned update by update (test_group_update_matches_the_plain_update_of_each_seed); here the same
        # schedule: the same number of updates, evaluated at the same step over the same episodes.
        assert grouped[2]["n_episodes"] == plain[2]["n_episodes"]
        group_row, plain_row = (
            _last_train_row(group / f"seed{s}"),
            _last_train_row(plain_run),
        )
        assert group_row["updates"] == plain_row["updates"]
        assert group_row["latent_state_r2"] and plain_row["latent_state_r2"]  # each seed's own state ring
        assert json.loads((group / f"seed{s}" / "status.json").read_text())["state"] == "done"
        assert float(_last_train_row(group / f"seed{s}")["q_loss"]) > 0
    assert eval_numbers(group / "seed3") != eval_numbers(group / "seed4")
    assert main([*GROUP, f"out={group}"]) == EXIT_OK  # all done: nothing to do


def test_env_workers_give_the_in_process_group_bitwise_and_resume_bitwise(tmp_path, finished_runs):
    """A group whose envs step in worker processes (env_workers=true) writes the eval.csv and train.csv of the
    group whose envs step in its own threads; stopped mid-episode with a checkpoint (its open episode
    replayed in the workers on resume) it ends as the uninterrupted group. The default follows the cores."""
    ref = finished_runs.get(GROUP, group=True)  # env_workers=true
    threads, run = tmp_path / "threads", tmp_path / "run"
    argv = [a for a in GROUP if not a.startswith("env_workers=")]
    assert main([*argv, "env_workers=false", f"out={threads}"]) == EXIT_OK
    # 650 questions of the two seeds together: both stop near env step 650, mid-episode, past the seed steps
    assert main([*GROUP, f"out={run}"], should_stop=stop_after_steps(650)) == 3
    assert all(open_episode(run / f"seed{s}") for s in (3, 4))
    assert main([*argv, f"out={run}"]) == EXIT_OK  # resumed with the default, whichever it is here
    cores = len(os.sched_getaffinity(0))
    assert [workers_help(k) for k in (1, 2, 4, 16)] == [False] + [cores >= 2] * 3
    for s in (3, 4):
        assert yaml_key(ref / f"seed{s}", "env_workers") is True
        assert yaml_key(threads / f"seed{s}", "env_workers") is False
        for other in (threads, run):
            assert eval_numbers(other / f"seed{s}") == eval_numbers(ref / f"seed{s}")
            assert train_numbers(other / f"seed{s}") == train_numbers(ref / f"seed{s}")
        assert train_numbers(ref / f"seed{s}")[-1]["latent_state_r2"]  # true states from the workers


def yaml_key(run: Path, key: str):
    import yaml

    return yaml.safe_load((run / "config.yaml").read_text())[key]


def _last_train_row(run: Path) -> dict:
    with open(run / "train.csv") as f:
        return list(csv.DictReader(f))[-1]


def _latest_step(run: Path) -> int:
    return checkpoint_step(run / CHECKPOINT) or 0


def assert_killed_group_resumes_as_uninterrupted(tmp_path, argv, seeds, step, before_resume=None) -> str:
    """The group of `argv` run whole (ref), and again SIGKILLed once every seed has a checkpoint at `step` or
    later, `before_resume(run)` done to its folders, then resumed: every seed's eval.csv and train.csv are the
    uninterrupted group's. Returns the resume's output."""
    ref, run = tmp_path / "ref", tmp_path / "run"
    assert main([*argv, f"seeds={','.join(map(str, seeds))}", f"out={ref}"]) == EXIT_OK
    cmd = [sys.executable, "-m", "iqrl.multiseed", *argv, f"seeds={','.join(map(str, seeds))}", f"out={run}"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    wait_for(lambda: all(_latest_step(run / f"seed{s}") >= step for s in seeds), p, f"checkpoints at {step}")
    p.send_signal(signal.SIGKILL)
    p.wait()
    if before_resume is not None:
        before_resume(run)
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    for s in seeds:
        assert train_numbers(run / f"seed{s}") == train_numbers(ref / f"seed{s}")
        assert eval_numbers(run / f"seed{s}") == eval_numbers(ref / f"seed{s}")
    return r.stdout + r.stderr


def test_sigkill_after_updates_then_resume_matches(tmp_path):
    """sac (its temperature's Adam moments are 0-d) killed once both seeds checkpointed at 800, 400 env steps
    of updates in; as if the kill fell between the two seeds' checkpoints, seed 4's latest is gone, so both
    resume from 600: every seed's eval.csv and train.csv as the uninterrupted group's."""
    argv = layered(["agent=sac", *TINY_RUN, *TINY_AGENT["sac"]], ["steps=1200", "checkpoint_every=200"])

    def lose_seed4s_latest(run: Path) -> None:
        (run / "seed4" / CHECKPOINT).unlink()  # seed 4 holds 600 (its previous) only
        points = resume_points([run / "seed3", run / "seed4"])
        assert [checkpoint_step(p) for p in points] == [600, 600]

    out = assert_killed_group_resumes_as_uninterrupted(tmp_path, argv, (3, 4), 800, lose_seed4s_latest)
    assert "resumed from checkpoint at env_step 600" in out


@pytest.mark.skipif(importlib.util.find_spec("minigrid") is None, reason="minigrid is not installed")
def test_a_group_of_episodes_of_different_lengths_resumes_after_sigkill(tmp_path):
    """drq-eps in a MiniGrid room: the seeds' episodes end at their own steps (the goal reached or not), yet
    every seed checkpoints at the same env steps (mid-episode where they fall), so a group killed after
    both passed env step 600 resumes and ends as the uninterrupted group (its seeds at different update
    counts there)."""
    keys = ["eval_every=300", "checkpoint_every=300", "diag_every=300", "seed_steps=200"]
    argv = [*tiny_keys("drq-eps", keys), "steps=1200"]

    def mid_episode(run: Path) -> None:
        assert any(open_episode(run / f"seed{s}") for s in (0, 1))  # some seed stopped mid-episode

    assert_killed_group_resumes_as_uninterrupted(tmp_path, argv, (0, 1), 600, mid_episode)


def test_ctrl_c_stops_every_seed_at_one_env_step_and_resume_matches(tmp_path, finished_runs):
    ref, run = finished_runs.get(GROUP, group=True), tmp_path / "run"
    cmd = [sys.executable, "-m", "iqrl.multiseed", *GROUP, f"out={run}"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    wait_for(
        lambda: all((run / f"seed{s}" / "eval.csv").exists() for s in (3, 4)), p, "both step-0 evaluations"
    )
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=180)
    assert p.returncode == 3, err
    steps = [json.loads((run / f"seed{s}" / "status.json").read_text())["env_step"] for s in (3, 4)]
    # both at one env step (one decision for the group, even if the signal falls between two seeds'
    # questions), so their stop checkpoints share that step and the resume starts there
    assert 0 < steps[0] == steps[1] < 800 and steps[0] % 2 == 0
    assert subprocess.run(cmd, env=env, capture_output=True).returncode == 0
    for s in (3, 4):
        assert eval_numbers(run / f"seed{s}") == eval_numbers(ref / f"seed{s}")


def test_group_stop_is_one_decision_at_one_env_step_for_every_seed():
    """The first seed to see the signal fixes the target: the furthest step any seed asks at next (its own
    step, the others' last asked + one agent step); each seed stops there, never past it."""
    from types import SimpleNamespace

    from iqrl.multiseed.runs import GroupStop

    def seed(step):
        return SimpleNamespace(env_step=step, asked=step, running=True, cfg=SimpleNamespace(action_repeat=2))

    signal_seen = {"v": False}
    a, b = seed(400), seed(400)
    stop = GroupStop(lambda: signal_seen["v"], [a, b])
    a.env_step = 402
    assert not stop.for_seed(a)()  # no signal yet: a goes on
    signal_seen["v"] = True  # Ctrl-C while b steps to 402 and a is on its way to 404
    b.env_step = 402
    assert stop.for_seed(b)() is False and stop.target == 404  # a asked at 402: its next question is at 404
    b.env_step = a.env_step = 404
    assert stop.for_seed(a)() and stop.for_seed(b)()  # both stop at 404
    # a seed behind catches up; one that is done no longer counts
    c, d, done = seed(600), seed(596), seed(1000)
    done.running = False
    late = GroupStop(lambda: True, [c, d, done])
    assert late.for_seed(c)() and late.target == 600
    d.env_step = 598
    assert not late.for_seed(d)()
    d.env_step = 600
    assert late.for_seed(d)()
    assert GroupStop(None, [c]).for_seed(c)() is False


def test_a_seed_without_any_checkpoint_restarts_the_group_with_a_warning(tmp_path, capsys, finished_runs):
    ref = finished_runs.get(GROUP, group=True)  # GROUP checkpoints every 400 env steps
    run = finished_runs.copy(GROUP, tmp_path / "run", group=True)
    for s in (3, 4):  # as if killed mid-run: not done yet
        st = json.loads((run / f"seed{s}" / "status.json").read_text())
        (run / f"seed{s}" / "status.json").write_text(json.dumps({**st, "state": "running"}))
    for p in (CHECKPOINT, PREVIOUS_CHECKPOINT):  # seed 4 was killed before its first checkpoint
        (run / "seed4" / p).unlink(missing_ok=True)
    assert resume_points([run / "seed3", run / "seed4"]) == [None, None]
    assert capsys.readouterr().err.splitlines() == [
        f"warning: {run / 'seed4'} holds no checkpoint (its folder deleted, or the group stopped before its "
        "first one), so every seed starts again from env_step 0, the checkpoints of seed3 at env_step 800 "
        "unused",
        *(
            f"warning: {run / f'seed{s}'} holds rows up to env_step 800 {why}; starting from env_step 0 "
            "(rows after it moved to eval.csv.after-0, train.csv.after-0)"
            for s, why in ((3, "and checkpoints unused"), (4, "but no checkpoint"))
        ),
    ]
    aside = {s: (run / f"seed{s}" / "eval.csv.after-0").read_text() for s in (3, 4)}
    assert main([*GROUP, f"out={run}"]) == EXIT_OK
    for s in (3, 4):
        assert eval_numbers(run / f"seed{s}") == eval_numbers(ref / f"seed{s}")
        lines = (ref / f"seed{s}" / "eval.csv").read_text().splitlines(keepends=True)  # rows past 0, kept
        assert aside[s] == "".join([lines[0], *lines[2:]])


def test_a_seed_another_group_finishes_before_its_lock_is_taken_is_left_as_it_finished(
    tmp_path, monkeypatch, finished_runs
):
    """Group A (seeds 3,4) finishes seed 4 while group B (seeds 2,4: seed 4 in its slot of A's) has decided
    that seed 4 is not done and waits for its lock: B looks again under the lock and trains seed 2 alone in
    its slot, leaving every byte of A's seed 4 as A finished it (not restarting it from env_step 0 because
    seed 2 holds no checkpoint)."""
    import iqrl.multiseed.runs as runs

    run = finished_runs.copy(GROUP, tmp_path / "run", group=True)
    status = run / "seed4" / "status.json"
    finished = {p: p.read_bytes() for p in (run / "seed4").rglob("*") if p.is_file()}
    status.write_text(json.dumps({**json.loads(finished[status]), "state": "running"}))  # A still training it
    lock, taken = runs.training_lock, []

    @contextlib.contextmanager
    def a_finishes_first(run_dir: Path):
        if run_dir.name == "seed4":  # B has decided; A writes its last status and lets the lock go
            status.write_bytes(finished[status])
        with lock(run_dir):
            taken.append(run_dir.name)
            yield

    monkeypatch.setattr(runs, "training_lock", a_finishes_first)
    argv = [a for a in GROUP if not a.startswith("seeds=")]
    assert main([*argv, "seeds=2,4", f"out={run}"]) == EXIT_OK
    assert taken == ["seed2", "seed4"]
    assert {p: p.read_bytes() for p in (run / "seed4").rglob("*") if p.is_file() and p.name != ".lock"} == {
        p: b for p, b in finished.items() if p.name != ".lock"
    }
    assert json.loads((run / "seed2" / "status.json").read_text())["state"] == "done"


def unfinished_copy(finished_runs, argv: list[str], dest: Path, group: bool = False) -> Path:
    """A copy of a finished run (or group) whose status.json says `running`, as if killed after its last
    checkpoint: a re-run resumes it."""
    run = finished_runs.copy(argv, dest, group=group)
    for status in run.rglob("status.json"):
        status.write_text(json.dumps({**json.loads(status.read_text()), "state": "running"}))
    return run


def test_a_run_resumes_only_in_the_mode_and_slot_it_started_in(tmp_path, capsys, finished_runs):
    """A run trained alone, resumed as a group's seed; a group's seed resumed alone, or in another slot: each
    refused in one line naming the command that resumes it exactly (config.yaml's meta), every byte of its
    folder as it was."""
    alone = unfinished_copy(finished_runs, [*TINY, "steps=800", "seed=3"], tmp_path / "alone" / "seed3")
    group = unfinished_copy(finished_runs, GROUP, tmp_path / "group", group=True)
    meta = {s: yaml_key(d, "meta") for s, d in (("alone", alone), ("seed4", group / "seed4"))}
    assert meta["alone"]["mode"] == "single" and "slot" not in meta["alone"]
    assert meta["seed4"]["mode"] == "kseed" and meta["seed4"]["slot"] == [1, 2]
    made = ["python", "-m", "iqrl.multiseed", *GROUP, f"out={finished_runs.get(GROUP, group=True)}"]
    assert meta["seed4"]["command"] == shlex.join(made)  # where the copied group was trained
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    single = [a for a in GROUP if not a.startswith("seeds=")]
    cases = [
        (
            lambda: main([*single, "seeds=3", f"out={alone.parent}"]),
            alone,
            "alone",
            "python -m iqrl.multiseed in slot 0 of 1",
        ),
        (
            lambda: train_main([*single, "seed=4", f"out={group / 'seed4'}"]),
            group / "seed4",
            "seed4",
            "python -m iqrl.train",
        ),
        (
            lambda: main([*single, "seeds=4", f"out={group}"]),
            group / "seed4",
            "seed4",
            "python -m iqrl.multiseed in slot 0 of 1",
        ),
    ]
    for resume, run, name, now in cases:
        assert resume() == EXIT_BAD_INPUT
        was = "python -m iqrl.train" if name == "alone" else "python -m iqrl.multiseed in slot 1 of 2"
        assert capsys.readouterr().err.splitlines() == [
            f"error: {run} was trained by {was} and would resume by {now}, whose updates round differently; "
            f"resume it exactly with: {meta[name]['command']}"
        ]
        assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


def test_a_run_alone_in_a_groups_root_is_refused_naming_the_group(tmp_path, capsys, finished_runs):
    """Figures would read a run trained beside the seed folders as one more seed of the group."""
    group = finished_runs.copy(GROUP, tmp_path / "group", group=True)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    single = [a for a in GROUP if not a.startswith("seeds=")]
    for check in ([], ["--check"]):
        assert train_main([*single, "seed=1", f"out={group}", *check]) == EXIT_BAD_INPUT
        assert capsys.readouterr().err.splitlines() == [
            f"error: out={group} holds a K-seed group (seed3, seed4) trained by "
            f"{yaml_key(group / 'seed3', 'meta')['command']}: a run alone there would be read as one more of "
            "its seeds; choose another out="
        ]
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


def test_a_run_folder_that_records_no_mode_resumes_in_either(tmp_path, finished_runs):
    """Folders written before config.yaml recorded the mode: unknown, so accepted by both commands."""
    from iqrl.loop.preflight import check_mode
    from iqrl.runfolder.provenance import run_mode
    from iqrl.runfolder.yamlfile import read_yaml, write_yaml

    run = unfinished_copy(finished_runs, [*TINY, "steps=800", "seed=3"], tmp_path / "seed3")
    config = read_yaml(run / "config.yaml")
    write_yaml(
        run / "config.yaml", {**config, "meta": {k: v for k, v in config["meta"].items() if k != "mode"}}
    )
    cfg = build_config([*TINY, "steps=800", "seed=3", f"out={run}"])
    for how in (run_mode([]), run_mode([], "kseed", (0, 2))):
        check_mode(cfg, how)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["agent=td7", "seeds=0,1"], "policy checkpoints decide per seed"),
        (["agent=iqrl", "init_from=x", "seeds=0,1"], "init_from or freeze"),
        (["agent=iqrl", "agent.rl_algo=sac", "seeds=0,1"], "agent=iqrl-sac"),
        (["agent=iqrl", "seeds=0,0"], "each once"),
        (["agent=iqrl", "seeds=a,b"], "comma-separated list of ints"),
        (["agent=iqrl", "seed=1"], "use seeds="),
        (["agent=iqrl", "seeds=0,1", "agent.horizon=0"], "horizon"),
        (["agent=iqrl", "seeds=0,1", "agent.mlp_dims=[32,32"], "agent.mlp_dims: '[32,32' is not valid YAML"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, argv, message):
    assert main([*TINY_RUN, *argv, f"out={tmp_path}"]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and message in err[0]


def test_a_seed_locked_by_another_process_stops_the_group_before_anything_is_written(tmp_path, capsys):
    from test_train import HOLD_LOCK

    (tmp_path / "seed1").mkdir()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(tmp_path / "seed1")], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert main([*TINY_RUN, "agent=iqrl", "seeds=0,1", f"out={tmp_path}"]) == EXIT_BAD_INPUT
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "seed1 is being trained by another process" in err[0]
        assert not any(p.name != ".lock" for p in tmp_path.rglob("*") if p.is_file())  # seed0 untouched too
    finally:
        holder.kill()
        holder.wait()


# ---------------------------------------------------------------------------------- pixels
# Augmentation on where an agent leaves it off by default (td3's and sac-ae's image_pad: DrQ's shift), so that
# the pixel test draws and applies it
PIXEL_EXTRA = {"td3": ["agent.image_pad=2"], "sac": ["agent.image_pad=2"]}


def pixel_agent_and_replay(name: str, seed: int, extra=()):
    """A tiny agent built for 2 stacked frames (32 pixels, or its smallest size above: conftest's
    tiny_pixels) and a replay of one random 60-step episode."""
    obs = pixel_observations(name)
    cfg = build_config(tiny_keys(name, [*tiny_pixels(name), *extra])).agent
    torch.manual_seed(seed)
    actions = agent_actions(name, 1)
    agent = make_agent(cfg, obs.dim, actions, torch.device("cpu"), seed)
    replay = obs.replay(actions, agent.spec.seq_len, torch.device("cpu"), seed + 1)
    rng = np.random.default_rng(seed)
    replay.start_episode(obs.sample(rng))
    for t in range(60):
        replay.add(actions.sample(rng), float(rng.normal()), obs.sample(rng), False, t == 59)
    return agent, replay


@pytest.mark.registry
@pytest.mark.computes
def test_pixel_seeds_match_their_plain_updates(agent):
    """Every agent built for pixels, from tiny frame stacks: each seed's random shifts or crops and its other
    draws (dequantisation noise) come from its own generator, drawn in its own thread, so its updates in the
    group are its plain updates. (A pixel-only agent's K-seed test above runs from pixels already.)"""
    from iqrl.config.validate import pixel_agents

    if agent not in pixel_agents():
        pytest.skip(f"{agent} is not built for pixels")
    if pixels_only(agent):
        pytest.skip(f"{agent} learns from pixels only: its K-seed test runs from pixels")
    extra = PIXEL_EXTRA.get(agent, [])
    if why := unsupported(build_config(tiny_keys(agent, [*tiny_pixels(agent), *extra]))):
        pytest.skip(f"refused in the K-seed mode (its K-seed test checks the line): {why}")
    plain = [pixel_agent_and_replay(agent, s, extra) for s in (0, 1)]
    grouped = [pixel_agent_and_replay(agent, s, extra) for s in (0, 1)]
    metrics = group_updates(SeedGroup([a for a, _ in grouped]), [r for _, r in grouped], 2)
    for k, (model, replay) in enumerate(plain):
        for i in range(2):
            m = model.update(replay, i)
            assert m.keys() == metrics[k][i].keys()
            for key in m:
                where = f"{agent} from pixels, seed {k} update {i}, the K-seed group"
                assert_metric_agrees(agent, key, metrics[k][i][key], m[key], where)
        # The vectorised convolutions' backward sums in another order, and Adam's first, normalised steps
        # carry that into the weights at about 1e-5 of their scale: bounded at 5e-5. A weight whose gradient
        # is zero but for rounding (a delta-orthogonal kernel's zero taps) takes Adam's normalised step in
        # either direction in each run: the two runs part by at most both runs' largest steps (sac's 3e-4
        # learning rate: 8e-5 seen; taco's 1e-4: 2.0e-4 seen).
        mine, theirs = params(model), params(grouped[k][0])
        flip = 2 * max(
            g["lr"] * sum(adam_step_bound(g["betas"], t) for t in (1, 2))
            for opt in optimizers(model).values()
            for g in opt.param_groups
        )
        for p in mine:
            bound = max(5e-5 * max(float(mine[p].abs().max()), 1.0), flip)
            assert float((theirs[p] - mine[p]).abs().max()) <= bound, p


def adam_step_bound(betas: tuple[float, float], t: int) -> float:
    """The largest |m_t| / sqrt(v_t) of Adam's t-th step (bias-corrected, eps aside) over any gradients: m_t
    and v_t weigh the gradients g_i by a_i and c_i, so by Cauchy-Schwarz the ratio is at most
    sqrt(sum a_i^2 / c_i) (1 at t = 1, 1.0013 at t = 2 with betas (0.9, 0.999))."""
    b1, b2 = betas
    a = [(1 - b1) * b1 ** (t - i) / (1 - b1**t) for i in range(1, t + 1)]
    c = [(1 - b2) * b2 ** (t - i) / (1 - b2**t) for i in range(1, t + 1)]
    return sum(x * x / y for x, y in zip(a, c)) ** 0.5


# ---------------------------------------------------------------------------------- a new agent
@dataclass
class TinyConfig(AgentConfig):
    name: str = "tiny"
    batch_size: int = 16
    lr: float = 1e-3
    gamma: float = 0.99
    tau: float = 0.05

    def validate(self) -> None:
        require([(self.lr > 0, f"agent.lr must be > 0, got {self.lr}")])


class TinyAgent(Agent):
    """A new agent written against the interface alone (DDPG on raw observations): no code of the K-seed mode;
    its update runs its networks through its updater."""

    STATE_OBJECTS = ("actor", "critic", "critic_target", "actor_opt", "critic_opt")

    def __init__(self, cfg: TinyConfig, obs_dim: int, act_dim: int, device, seed: int):
        super().__init__(cfg, device, seed)
        self.spec = AgentSpec(seq_len=1, batch_size=cfg.batch_size)
        self.actor = mlp(obs_dim, [16], act_dim).to(self.device)
        self.critic = mlp(obs_dim + act_dim, [16], 1).to(self.device)
        self.critic_target = frozen_copy(self.critic)
        self.actor_opt = adam(self.actor.parameters(), lr=cfg.lr)
        self.critic_opt = adam(self.critic.parameters(), lr=cfg.lr)

    @torch.no_grad()
    def act(self, obs, explore: bool):
        a = torch.tanh(self.actor(to_tensor(obs, self.device)))
        return (add_clipped_noise(a, 0.1, None, self.generator) if explore else a).cpu().numpy()

    def q(self, obs, action):
        return self.critic(torch.cat([obs, action], -1)).squeeze(-1)

    @torch.no_grad()
    def td_target(self, reward, discount, next_obs):
        return reward + discount * self.q(next_obs, torch.tanh(self.actor(next_obs)))

    def critic_loss(self, obs, action, y):
        return ((self.q(obs, action) - y) ** 2).mean()

    def actor_loss(self, obs):
        return -self.q(obs, torch.tanh(self.actor(obs))).mean()

    def update(self, replay, step: int) -> dict:
        u, b = self.updater, replay.sample(self.cfg.batch_size)
        obs, action, next_obs = b.obs[:, 0], b.action[:, 0], b.obs[:, 1]
        discount = self.cfg.gamma * (1.0 - b.terminal[:, 0].float())
        y = u.call(self.td_target, b.reward[:, 0], discount, next_obs)
        critic = u.step(self.critic_loss, obs, action, y, opt=self.critic_opt)
        actor = u.step(self.actor_loss, obs, opt=self.actor_opt, frozen=(self.critic,))
        u.ema(self.critic_target, self.critic, self.cfg.tau)
        return {"q_loss": critic.loss, "actor_loss": actor.loss}


class CountingAgent(TinyAgent):
    """TinyAgent that also counts its updates in a buffer of its networks, in place in its own code: a buffer
    the updater cannot account for."""

    STATE_OBJECTS = (*TinyAgent.STATE_OBJECTS, "stats")

    def __init__(self, *args):
        super().__init__(*args)
        self.stats = torch.nn.Module()
        self.stats.register_buffer("updates", torch.zeros(()))

    def update(self, replay, step: int) -> dict:
        metrics = super().update(replay, step)
        self.stats.updates.add_(1)
        return metrics


class BatchNormAgent(TinyAgent):
    """TinyAgent whose critic holds a plain nn.BatchNorm1d, which updates its running statistics in place."""

    def __init__(self, cfg, obs_dim: int, act_dim: int, device, seed: int):
        super().__init__(cfg, obs_dim, act_dim, device, seed)
        self.critic = torch.nn.Sequential(
            torch.nn.Linear(obs_dim + act_dim, 16), torch.nn.BatchNorm1d(16), torch.nn.Linear(16, 1)
        )
        self.critic_target = frozen_copy(self.critic)
        self.critic_opt = adam(self.critic.parameters(), lr=cfg.lr)


class DecayingAgent(TinyAgent):
    """TinyAgent that shrinks a weight in place in its own code, outside its updater's pieces: found only
    once it has happened."""

    def update(self, replay, step: int) -> dict:
        metrics = super().update(replay, step)
        with torch.no_grad():
            self.critic[0].bias.mul_(0.99)
        return metrics


@pytest.fixture
def scratch_registry(monkeypatch):
    """The registry with the agents above added (their task overrides: td3's file, whose keys they lack)."""
    monkeypatch.setitem(
        registry.REGISTRY,
        "tiny",
        AgentEntry(f"{__name__}:TinyAgent", f"{__name__}:TinyConfig", "td3_tasks.yaml"),
    )
    for name, cls in (
        ("counting", "CountingAgent"),
        ("batchnorm", "BatchNormAgent"),
        ("decaying", "DecayingAgent"),
    ):
        monkeypatch.setitem(
            registry.REGISTRY,
            name,
            AgentEntry(f"{__name__}:{cls}", f"{__name__}:TinyConfig", "td3_tasks.yaml"),
        )


TINY_NEW = [*(a for a in TINY_RUN if not a.startswith("agent.")), "steps=800"]  # no agent keys: its own


def test_a_new_agent_trains_in_the_k_seed_mode_with_no_code_of_its_own(scratch_registry, tmp_path):
    """An agent registered in a scratch registry: its group updates are its plain updates per seed, and
    `python -m iqrl.multiseed` trains its seeds to the end, identical to single-seed runs until the first
    update."""
    cfg = build_config(["agent=tiny"]).agent
    pairs = []
    for _ in range(2):
        for s in (0, 1):
            torch.manual_seed(s)
            agent = make_agent(cfg, 5, 1, torch.device("cpu"), s)
            replay = SequenceReplay(5, 1, 1, torch.device("cpu"), s)
            rng = np.random.default_rng(s)
            replay.start_episode(rng.normal(size=5).astype(np.float32))
            for t in range(40):
                a = rng.uniform(-1, 1, 1).astype(np.float32)
                replay.add(a, float(rng.normal()), rng.normal(size=5).astype(np.float32), False, t == 39)
            pairs.append((agent, replay))
    plain, grouped = pairs[:2], pairs[2:]
    group = SeedGroup([a for a, _ in grouped])
    metrics = group_updates(group, [r for _, r in grouped], 3)
    assert group.round == 3 * 4  # target, critic step, actor step, EMA: each vectorised
    for k, (agent, replay) in enumerate(plain):
        for i in range(3):
            m = agent.update(replay, i)
            assert all(float(metrics[k][i][n]) == pytest.approx(float(m[n]), rel=1e-5) for n in m)
        mine, theirs = params(agent), params(grouped[k][0])
        assert all(torch.allclose(theirs[n], mine[n], rtol=1e-5, atol=1e-7) for n in mine)
    assert main([*TINY_NEW, "agent=tiny", "seeds=0,1", f"out={tmp_path / 'group'}"]) == EXIT_OK
    for s in (0, 1):
        assert train_main([*TINY_NEW, "agent=tiny", f"seed={s}", f"out={tmp_path / f'plain{s}'}"]) == EXIT_OK
        assert json.loads((tmp_path / "group" / f"seed{s}" / "status.json").read_text())["state"] == "done"
        grouped_eval, plain_eval = (
            eval_numbers(tmp_path / "group" / f"seed{s}"),
            eval_numbers(tmp_path / f"plain{s}"),
        )
        assert grouped_eval[:2] == plain_eval[:2] and len(grouped_eval) == len(plain_eval) == 3


@pytest.mark.parametrize(
    "agent, message",
    [
        (
            "batchnorm",
            "K-seed mode: batchnorm's critic.1 (BatchNorm1d) updates running statistics in place; "
            "use iqrl.nn.stats.BatchNorm (or BatchRenorm), which returns them",
        ),
        (
            "counting",
            "K-seed mode: counting's stats.updates (Module) is a buffer the updater cannot account for",
        ),
    ],
)
def test_networks_with_state_changed_in_place_are_refused_when_the_group_is_built(
    scratch_registry, tmp_path, capsys, agent, message
):
    """A plain BatchNorm1d (or any persistent buffer outside iqrl.nn.stats' layers): one error line naming the
    module, exit 2, before the seed phase and before anything is written."""
    assert main([*TINY_NEW, f"agent={agent}", "seeds=0,1", f"out={tmp_path}"]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {message}")
    assert not any(p.name != ".lock" for p in tmp_path.rglob("*") if p.is_file())


def test_a_new_agent_that_changes_its_networks_outside_its_updater_is_refused_in_one_line(
    scratch_registry, tmp_path, capsys
):
    """DecayingAgent's in-place change of a weight cannot be vectorised: its seeds stop at their first update
    with one error line each that names the tensor and says what to do, and their status says failed."""
    assert main([*TINY_NEW, "agent=decaying", "seeds=0,1", f"out={tmp_path}"]) == EXIT_FAILED
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 2 and all("changed critic.0.bias" in e and "one by one" in e for e in errors)
    for s in (0, 1):
        status = json.loads((tmp_path / f"seed{s}" / "status.json").read_text())
        assert status["state"] == "failed" and "outside its updater" in status["error"]


def test_functional_call_ties_weights_only_where_a_tensor_has_two_names():
    """Networks.ties decides functional_call's tie_weights: a module held twice (its weight under two names,
    stacked once) is tied, separate modules are not; no registered agent ties weights (TINY's iqrl here)."""
    shared = torch.nn.Linear(2, 2)
    assert Networks({"a": shared, "b": torch.nn.Sequential(shared)}).ties()
    assert not Networks({"a": shared, "b": torch.nn.Linear(2, 2)}).ties()
    agent, _ = agent_and_replay(TINY[1:], 0)
    assert not SeedGroup([agent, agent_and_replay(TINY[1:], 1)[0]]).ties


def test_vmap_tree_maps_the_tensors_and_passes_every_other_leaf_as_it_is():
    """Each slot's slice of every tensor, the other leaves (numbers, None) as given, out as they came back."""
    w, x = torch.arange(6.0).reshape(3, 2), torch.tensor([1.0, 2.0, 3.0])
    out = vmap_tree(lambda d, v, n, none: ({"y": d["w"] * v + n, "n": n}, none), {"w": w}, x, 5, None)
    assert torch.equal(out[0]["y"], w * x[:, None] + 5) and out[0]["n"] == 5 and out[1] is None
