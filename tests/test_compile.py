"""Run keys `compile` and `cudagraphs` (Agent.compile): the compiled update computes the eager one.

compile=true runs every piece of the agent's update through torch.compile (iqrl/core/update.py); the optimizer
steps, target updates and random draws stay eager between them. The compiled arithmetic is fused differently,
so runs agree to rounding, not bit for bit: a run folder records the key and refuses to resume with the other
value.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from torch.utils._pytree import tree_flatten, tree_map

from iqrl.core.registry import agent_class
from iqrl.runfolder.exits import EXIT_BAD_INPUT
from iqrl.train import main

from agent_helpers import agent_and_replay, nonsmooth_hint, updates_to_step_every_optimizer
from conftest import inductor_check, tiny_argv

# Compiled with inductor (what compile=true runs) in the full suite too: one agent of each kind of update,
# iQRL's representation loss, DC-MPC's world-model loss, the TD3 and SAC learners, TD7's update (LAP
# priorities written back, hard target copies) for the agents with an update of their own. A cost choice,
# not a list of the agents checked: every registered agent is.
INDUCTOR_IN_FULL_SUITE = ("iqrl", "iqrl-sac", "dcwm", "td7")


@pytest.mark.registry
@pytest.mark.computes
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
        # 3 updates, or as many as it takes every optimizer to step (the actor's at any actor_update_freq)
        updates = max(3, updates_to_step_every_optimizer(agent))
        assert_compiled_matches_eager(
            agent, "cpu", False, tol, updates=updates, backend="aot_eager_decomp_partition"
        )


def assert_compiled_matches_eager(
    name: str,
    device: str,
    cudagraphs: bool,
    tol: float,
    updates: int = 50,
    backend: str | None = None,
    from_same_state: bool = False,
) -> None:
    """`updates` updates of the eager and the compiled agent side by side, on the same batches and draws:
    every metric within rtol `tol` (atol tol * (1 + |eager|)), then every parameter within tol relative to the
    tensor's largest entry (at least 1) and the generators at the same state. `from_same_state`: before each
    update the compiled agent is loaded with the eager one's state (weights, optimizer moments, counters,
    generator), and the parameters are compared after every update: each update's own error, where a free run
    compounds the rounding of the updates before it (on a GPU, whose eager kernels are not even bitwise
    deterministic, a chaotic training run drifts past any fixed tolerance given updates enough). A failure
    names the agent, the update and the metric or tensor."""
    (eager, replay_e, _), (compiled, replay_c, _) = (
        agent_and_replay(name, device),
        agent_and_replay(name, device),
    )
    what = f"{name} ({'cudagraphs' if cudagraphs else backend or 'inductor'} on {device})"
    # a preset of an agent tested before in this process (bro-utd10 after bro) reuses the same functions:
    # without a reset dynamo's cache would serve them and nothing would compile here
    torch._dynamo.reset()
    compiled.compile(cudagraphs=cudagraphs)
    if backend is not None:
        compiled.updater.options = {"backend": backend}
    frames = torch._dynamo.utils.counters["frames"]["ok"]
    for step in range(updates):
        if from_same_state:
            compiled.load_state_dict(copy.deepcopy(eager.state_dict()))
        m_e, m_c = eager.update(replay_e, step), compiled.update(replay_c, step)
        assert m_e.keys() == m_c.keys(), (
            f"{what}, update {step}: metrics {sorted(m_c)} vs eager {sorted(m_e)}"
        )
        for k in m_e:
            if (allowed := agent_class(name).NONSMOOTH_METRICS.get(k)) is not None:  # an accuracy, an argmax
                c, e = float(m_c[k]), float(m_e[k])
                assert abs(c - e) <= allowed, (
                    f"{what}, update {step}: {k} compiled {c}, eager {e} > {allowed}"
                )
                continue
            try:
                torch.testing.assert_close(m_c[k], m_e[k], rtol=tol, atol=tol * (1 + abs(float(m_e[k]))))
            except AssertionError as e:
                raise AssertionError(
                    f"{what}, update {step} of {updates}, metric {k}: compiled {float(m_c[k]):.7g}, eager "
                    f"{float(m_e[k]):.7g} (rtol {tol:g}){' from the same state' if from_same_state else ''}\n"
                    f"gradients left by the update: compiled {gradients_left(compiled)}; eager "
                    f"{gradients_left(eager)}\n{nonsmooth_hint(name, k)}\n{e}"
                ) from None
        if from_same_state:
            assert_same_state(eager, compiled, tol, f"{what}, after update {step} from the same state")
    assert torch._dynamo.utils.counters["frames"]["ok"] > frames, what  # the losses did run compiled
    assert_same_state(eager, compiled, tol, f"{what}, after {updates} updates")


def gradients_left(agent) -> str:
    """Per optimizer of the agent, its parameters with a gradient after the update (the last step of each
    optimizer leaves them), as `name: nonzero / zero / none of n`: where a compiled update's grad-norm metric
    disagrees, whether its backward reached the parameters at all."""
    opts = agent.part_objects("optimizers") if "optimizers" in agent.TRANSFER_PARTS else {}
    parts = []
    for name, opt in opts.items():
        grads = [p.grad for g in opt.param_groups for p in g["params"]]
        none = sum(g is None for g in grads)
        zero = sum(g is not None and not bool(g.any()) for g in grads)
        parts.append(
            f"{name}: {len(grads) - none - zero} nonzero / {zero} zero / {none} none of {len(grads)}"
        )
    return ", ".join(parts) or "no optimizers declared"


def assert_same_state(eager, compiled, tol: float, what: str) -> None:
    """Every parameter and buffer within tol relative to the tensor's largest entry (at least 1), integer
    ones equal; the random streams consumed alike (the next draws of both generators are equal)."""
    state_e, state_c = eager.state_dict(), compiled.state_dict()
    for net in eager.networks():
        for key, p in state_e[net].items():
            q = state_c[net][key]
            if p.is_floating_point():
                diff, bound = float((q - p).abs().max()), tol * max(float(p.abs().max()), 1.0)
                assert diff <= bound, f"{what}: {net}.{key} differs by {diff:.3g} > {bound:.3g}"
            else:
                assert torch.equal(q, p), f"{what}: {net}.{key}"
    assert torch.equal(eager.generator.get_state(), compiled.generator.get_state()), f"{what}: generator"


class GraphTreeOnTheCPU:
    """What CUDA graphs (`cudagraphs=true`: torch.compile's mode "reduce-overhead") do to a piece's outputs,
    on the CPU (docs: "CUDAGraph Trees"): a captured function returns tensors of the graphs' memory pool, and
    a new step of the tree overwrites them all, and the gradients the backward graph left on the parameters.
    A new step begins at torch.compiler.cudagraph_mark_step_begin() once it has been called, and before that
    at every call of a captured function (torch waits for a pending backward there; this is stricter). Here
    the pool's tensors are clones the emulation keeps, filled with NaN (floats) or -2**30 (integers) at each
    new step, so that one read after it shows in the metrics or the weights. Other torch.compile modes
    (DC-MPC's planner) run their function eagerly, unchanged."""

    def __init__(self, monkeypatch, parameters: list[torch.Tensor]):
        self.pool: list[torch.Tensor] = []
        self.parameters = parameters
        self.marked = self.new_step = False
        self.steps = self.marks = 0
        monkeypatch.setattr(torch, "compile", self.compile)
        monkeypatch.setattr(torch.compiler, "cudagraph_mark_step_begin", self.mark_step_begin)

    def mark_step_begin(self) -> None:
        self.marked = self.new_step = True
        self.marks += 1

    def overwrite(self) -> None:
        self.steps += 1
        with torch.no_grad():
            for t in [*self.pool, *(p.grad for p in self.parameters if p.grad is not None)]:
                if t.is_floating_point():
                    t.fill_(float("nan"))
                elif t.dtype != torch.bool:
                    t.fill_(-(2**30))
        self.pool = []

    def compile(self, fn, mode=None, **options):
        if mode != "reduce-overhead":
            return fn

        def replay(*args, **kwargs):
            if self.new_step or not self.marked:
                self.overwrite()
                self.new_step = False
            out = tree_map(lambda v: v.clone() if isinstance(v, torch.Tensor) else v, fn(*args, **kwargs))
            self.pool += [v for v in tree_flatten(out)[0] if isinstance(v, torch.Tensor)]
            return out

        return replay


@pytest.mark.registry
@pytest.mark.computes
def test_graph_captured_updates_keep_nothing_the_next_replay_overwrites(agent, monkeypatch):
    """cudagraphs=true on the CPU's stand-in for CUDA graphs (GraphTreeOnTheCPU): the metrics of every update,
    read only after the last (as the trainer sums them), and the weights after them are the eager agent's
    (to float32 rounding: a clone may lay a tensor out otherwise than the original). On CUDA, reading an
    overwritten output raises instead (the first GPU report's cudagraphs rows: the target y of td3's critic
    step, read after another replay, and the metrics); what only a GPU shows, the graphs' own arithmetic, is
    tests/test_cuda.py's."""
    (eager, replay_e, _), (graphs, replay_g, _) = agent_and_replay(agent), agent_and_replay(agent)
    tree = GraphTreeOnTheCPU(monkeypatch, [p for net in graphs.networks().values() for p in net.parameters()])
    graphs.compile(cudagraphs=True)
    updates = 6
    kept_e = [eager.update(replay_e, step) for step in range(updates)]
    kept_g = [graphs.update(replay_g, step) for step in range(updates)]
    assert tree.marks == updates and tree.steps == updates  # each update one step of the tree
    for step, (m_e, m_g) in enumerate(zip(kept_e, kept_g, strict=True)):
        for k in m_e:
            e, g = float(m_e[k]), float(m_g[k])
            if k in agent_class(agent).NONSMOOTH_METRICS:  # an accuracy, an argmax: a near-tie may flip
                assert abs(g - e) <= agent_class(agent).NONSMOOTH_METRICS[k], (agent, step, k, g, e)
                continue
            assert math.isclose(g, e, rel_tol=1e-6, abs_tol=1e-7) or math.isnan(e), (agent, step, k, g, e)
    assert_same_state(eager, graphs, 1e-6, f"{agent} after {updates} updates on the stand-in graph tree")


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
