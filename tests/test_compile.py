"""Run keys `compile` and `cudagraphs` (Agent.compile): the compiled update computes the eager one.

compile=true runs every piece of the agent's update through torch.compile (iqrl/core/update.py); the optimizer
steps, target updates and random draws stay eager between them. The compiled arithmetic is fused differently,
so runs agree to rounding, not bit for bit: a run folder records the key and refuses to resume with the other
value.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from iqrl.core.config import build_config
from iqrl.core.exits import EXIT_BAD_INPUT
from iqrl.core.registry import agent_class
from iqrl.multiseed.group import unsupported
from iqrl.train import main

from agent_helpers import agent_and_replay
from conftest import inductor_check, tiny_argv

# Compiled with inductor (what compile=true runs) in the full suite too: one agent of each kind of update,
# iQRL's representation loss, DC-MPC's world-model loss, the TD3 and SAC learners, TD7's update (LAP
# priorities written back, hard target copies) for the agents with an update of their own. A cost choice,
# not a list of the agents checked: every registered agent is.
INDUCTOR_IN_FULL_SUITE = ("iqrl", "iqrl-sac", "dcwm", "td7")


@pytest.mark.registry
def test_compiled_update_agrees_with_eager(agent, request):
    """Every registered agent's update compiles and computes the eager one: the same batches (replay
    generator) and draws (agent generator) through both, every metric of every update and every parameter
    after the last agree within the tolerance the agent declares (Agent.COMPILE_TOLERANCE, 1e-5 by default)
    relative to the tensor's largest entry. With inductor over 50 updates for the agents above, and for any
    agent in `make test-agent` (or --compile-check inductor); else through dynamo and AOT autograd with
    inductor's decompositions and partitioner but no code generation (aot_eager_decomp_partition: what fails
    for a new agent, tracing, functionalisation and the backward graph, in seconds rather than minutes of
    C++ compilation on CI's two cores), over 3 updates."""
    tol = agent_class(agent).COMPILE_TOLERANCE
    if agent in INDUCTOR_IN_FULL_SUITE or inductor_check(request.config):
        assert_compiled_matches_eager(agent, "cpu", cudagraphs=False, tol=tol)
    else:
        assert_compiled_matches_eager(
            agent, "cpu", False, tol, updates=3, backend="aot_eager_decomp_partition"
        )


def assert_compiled_matches_eager(
    name: str, device: str, cudagraphs: bool, tol: float, updates: int = 50, backend: str | None = None
) -> None:
    (eager, replay_e, _), (compiled, replay_c, _) = (
        agent_and_replay(name, device),
        agent_and_replay(name, device),
    )
    # a preset of an agent tested before in this process (bro-utd10 after bro) reuses the same functions:
    # without a reset dynamo's cache would serve them and nothing would compile here
    torch._dynamo.reset()
    compiled.compile(cudagraphs=cudagraphs)
    if backend is not None:
        compiled.updater.options = {"backend": backend}
    frames = torch._dynamo.utils.counters["frames"]["ok"]
    for step in range(updates):
        m_e, m_c = eager.update(replay_e, step), compiled.update(replay_c, step)
        assert m_e.keys() == m_c.keys()
        for k in m_e:
            torch.testing.assert_close(m_c[k], m_e[k], rtol=tol, atol=tol * (1 + abs(float(m_e[k]))))
    assert torch._dynamo.utils.counters["frames"]["ok"] > frames  # the losses did run compiled
    state_e, state_c = eager.state_dict(), compiled.state_dict()
    for net in eager.networks():
        for key, p in state_e[net].items():
            q = state_c[net][key]
            if p.is_floating_point():
                assert float((q - p).abs().max()) <= tol * max(float(p.abs().max()), 1.0), (net, key)
            else:
                assert torch.equal(q, p), (net, key)
    # the random streams were consumed alike: the next draws of both generators are equal
    assert torch.equal(eager.generator.get_state(), compiled.generator.get_state())


def test_compiled_planner_acts_as_the_eager_one():
    """DC-MPC's MPPI with its model pieces compiled (DCWM.compile_acting: `reward`, `next_latent`,
    `noisy_policy`, `critic_value`): the same actions to rounding, exploring (one env) and evaluating (a
    batch of three, with the planner's warm start), and the acting generators drawn alike."""
    assert_compiled_planner_matches_eager("cpu", tol=1e-5)


def assert_compiled_planner_matches_eager(device: str, tol: float) -> None:
    (eager, replay, _), (compiled, _, _) = agent_and_replay("dcwm", device), agent_and_replay("dcwm", device)
    for step in range(3):  # trained a little, so that the plans are not those of an untrained value
        eager.update(replay, step)
    compiled.load_state_dict(eager.state_dict())
    compiled.compile()
    frames = torch._dynamo.utils.counters["frames"]["ok"]
    rng = np.random.default_rng(1)
    for explore, batch in ((True, ()), (False, (3,))):
        for agent in (eager, compiled):
            agent.on_episode_start(explore)
        for _ in range(3):
            obs = rng.normal(size=(*batch, 5)).astype(np.float32)
            np.testing.assert_allclose(compiled.act(obs, explore), eager.act(obs, explore), rtol=0, atol=tol)
    assert torch._dynamo.utils.counters["frames"]["ok"] > frames  # the planner's pieces did run compiled
    for explore in (True, False):
        assert torch.equal(
            eager.act_generators[explore].get_state(), compiled.act_generators[explore].get_state()
        )
        torch.testing.assert_close(compiled.plan_mean[explore], eager.plan_mean[explore], rtol=0, atol=tol)


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:"), err
    return err[0]


@pytest.mark.parametrize(
    "agent, extra, message",
    [
        ("td3", ["cudagraphs=true", "compile=true", "device=cpu"], "cudagraphs=true needs a CUDA device"),
        ("td3", ["cudagraphs=true"], "set compile=true too"),
    ],
)
def test_compile_keys_refused_with_one_line_before_writing(tmp_path, capsys, agent, extra, message):
    assert main(tiny_argv(agent, tmp_path / "run", extra=extra)) == EXIT_BAD_INPUT
    assert message in _one_error_line(capsys) and not (tmp_path / "run").exists()


def test_a_run_resumes_only_with_the_compile_value_it_started_with(tmp_path, capsys):
    """compile changes the rounding of the updates, so it is part of a run's config: a run started eagerly
    and rerun with compile=true is refused (the config check runs before anything is compiled or written)."""
    run = tmp_path / "run"
    assert main(tiny_argv("td3", run, steps=400)) == 0
    assert main(tiny_argv("td3", run, steps=400, extra=["compile=true"])) == EXIT_BAD_INPUT
    assert "differs in compile" in _one_error_line(capsys)


def test_the_k_seed_mode_refuses_compile():
    cfg = build_config(["agent=iqrl", "compile=true"])
    assert "compile=true" in unsupported(cfg)
