"""CUDA paths (skipped without a GPU: run them where `device` lends one).

Every agent trains on the GPU, stops after an agent step, resumes from its checkpoint and finishes with
the evaluation steps of an uninterrupted run; the rows written before the stop are kept as they were.
Returns are not compared with the uninterrupted run: CUDA kernels such as index_add's backward are not
bitwise deterministic, so bitwise resume equality is a CPU guarantee (tests/test_train.py).
"""

import math
import os
from dataclasses import replace

os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS: read when CUDA starts

import pytest  # noqa: E402
import torch  # noqa: E402

from iqrl.runfolder.exits import EXIT_INTERRUPTED, EXIT_OK
from iqrl.train import main  # noqa: E402

from conftest import missing_suite, render_for, stop_at_env_step, tiny_argv  # noqa: E402
from test_train import eval_numbers  # noqa: E402

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def skip_without_suite(agent: str) -> None:
    """Skip (with the package to install) an agent whose tiny task's suite this machine lacks: a GPU machine's
    wheels may not have every suite's package; the other agents still run."""
    if reason := missing_suite(agent):
        pytest.skip(reason)


@pytest.mark.registry
@pytest.mark.computes
def test_cuda_run_stops_resumes_and_finishes(agent, tmp_path, request):
    skip_without_suite(agent)
    render_for(agent, request)
    ref, run = tmp_path / "ref", tmp_path / "run"
    argv = lambda out: tiny_argv(agent, out, seed=3, extra=["device=cuda"])  # noqa: E731
    assert main(argv(ref)) == EXIT_OK
    assert main(argv(run), should_stop=stop_at_env_step(argv(run), 700)) == EXIT_INTERRUPTED
    before = eval_numbers(run)
    assert main(argv(run)) == EXIT_OK  # loads generator states saved on the GPU run (CPU byte tensors)
    after, expected = eval_numbers(run), eval_numbers(ref)
    assert after[: len(before)] == before
    assert [r["env_step"] for r in after] == [r["env_step"] for r in expected]
    assert all(math.isfinite(float(r["episode_return"])) for r in after)


@pytest.mark.parametrize("precision", ["bf16", "tf32"])
def test_cuda_reduced_precision_run(tmp_path, precision):
    assert (
        main(tiny_argv("iqrl", tmp_path / "run", extra=["device=cuda", f"precision={precision}"])) == EXIT_OK
    )
    assert torch.backends.cuda.matmul.fp32_precision != "tf32"  # tf32 only while an update runs


@pytest.mark.registry
@pytest.mark.computes
def test_cuda_update_and_act_never_synchronise(agent):
    """The dispatch-level guard of tests/test_sync_free.py catches syncs the CPU shows too; CUDA's own
    sync debug mode also catches device-specific ones (e.g. a CPU tensor indexing a GPU one) in the updates.
    `act` is left out here: it ends by copying the action to the host for the environment, its one wait."""
    from agent_helpers import agent_and_replay

    skip_without_suite(agent)
    model, replay, _ = agent_and_replay(agent, device="cuda")
    for step in range(3):
        model.update(replay, step)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for step in range(3, 9):
            model.update(replay, step)
    finally:
        torch.cuda.set_sync_debug_mode("default")


@pytest.mark.parametrize("cudagraphs", [False, True])
def test_cuda_compiled_and_graph_captured_updates_match_eager(cudagraphs):
    """compile=true, and with cudagraphs=true its CUDA-graph replay, against the eager update on the GPU:
    each of 50 updates from the eager agent's state (weights, optimizer moments, counters, generator), its
    metrics and the parameters after it within 1e-4 (GPU kernels round differently); then 5 updates run
    freely, as a run does. Free for 50, the two drift apart as
    chaotic training does, eager GPU kernels not being bitwise deterministic (the first GPU report). Every
    agent is checked before the test fails, and the failure names each agent, update and metric."""
    from test_compile import assert_compiled_matches_eager

    failures = []
    for name in ("iqrl", "iqrl-sac", "td3", "dcwm"):
        try:
            assert_compiled_matches_eager(name, "cuda", cudagraphs, tol=1e-4, from_same_state=True)
            assert_compiled_matches_eager(name, "cuda", cudagraphs, tol=1e-4, updates=5)
        except Exception as e:  # noqa: BLE001 (each agent's failure, an overwritten graph output's too)
            failures.append(f"{name}: {type(e).__name__}: {str(e).strip()}")
    assert not failures, "\n\n".join(failures)


@pytest.mark.parametrize("cudagraphs", [False, True])
def test_cuda_compiled_and_graph_captured_k_seed_group_matches_eager(cudagraphs):
    """The K-seed mode compiled (compile=true through inductor), and with cudagraphs=true its CUDA-graph
    replay, against the eager group on the GPU: 5 updates of a 2-seed iqrl group, every metric of each seed
    and its parameters after them within 1e-4. An H200 (2026-11-26) timed the captured group 7x faster
    per seed than the compiled one at K=4 (docs/performance.md): this says whether it computes the update."""
    from test_multiseed import assert_compiled_group_matches_eager

    assert_compiled_group_matches_eager(
        "iqrl", updates=5, backend=None, device="cuda", cudagraphs=cudagraphs, tol=1e-4
    )


def paper_size_agent_and_replay(name: str, task: str, seed: int, mode: str):
    """`name` at its paper configuration on `task`'s spaces (CUDA; `mode` eager, compiled: compile=true, or
    captured: compile=true cudagraphs=true) and a replay of 1000 random transitions; equal seeds give equal
    agents, draws and batches."""
    import numpy as np

    from iqrl.config.build import build_config
    from iqrl.core.registry import make_agent
    from iqrl.core.replay import SequenceReplay
    from iqrl.envs.make import task_spaces

    obs_dim, actions = task_spaces(task)
    torch.manual_seed(seed)
    agent = make_agent(build_config([f"agent={name}", f"task={task}"]).agent, obs_dim, actions, "cuda", seed)
    if mode != "eager":
        agent.compile(cudagraphs=mode == "captured")
    replay = SequenceReplay(obs_dim, actions, agent.spec.seq_len, torch.device("cuda"), seed + 1)
    rng = np.random.default_rng(seed)
    replay.start_episode(rng.normal(size=obs_dim).astype(np.float32))
    for t in range(1000):
        obs = rng.normal(size=obs_dim).astype(np.float32)
        replay.add(actions.sample(rng), float(rng.normal()), obs, False, t % 500 == 499)
        if t % 500 == 499 and t < 999:
            replay.start_episode(rng.normal(size=obs_dim).astype(np.float32))
    return agent, replay


def test_cuda_graph_captured_k_seed_group_replays_the_compiled_one_at_paper_sizes():
    """The captured K-seed group (compile=true cudagraphs=true) at iqrl's paper sizes on walker-walk's spaces:
    16 seeds, 12 updates, so that every piece, the actor's included, is recorded and then replayed several
    times. Against the compiled group (compile=true, the same inductor kernels, launched one by one): every
    metric of each seed at each update and its parameters after them as close as a second compiled group
    comes to the first (its `spread`), and within 1e-4 wherever that one agrees closer, relative to each
    tensor's scale. Against the eager group: the first update's metrics within 2e-3, from the same parameters.

    Why not eager over all 12 updates: at paper sizes the update's float rounding grows over updates. On an
    H200 (2026-11-27) the captured group met the eager one within 1e-4 for updates 0-3 and then drifted
    (seed 0, update 4: q_loss 1.08470 against 1.08521, 4.7e-4). The CPU shows the same with no graphs at all:
    the compiled group against the eager one at these sizes (2 seeds) differs by 2.4e-6 at update 0, 2.6e-4 at
    update 4 and 6e-4 at update 11, as much as two eager groups whose starting parameters differ by a relative
    1e-7 (Adam's normalised step turns gradients near zero into steps of the learning rate whichever sign the
    rounding gives them, and FSQ's rounding of the latent passes such changes on whole). Even the first update
    differs that way: on an H200 (2026-11-28) seed 6's first compiled update met eager's q_loss within 2.9e-4
    only (seeds 0-5 within 1e-4), one sample whose FSQ level a last-bit difference flips. The same run: seed 0
    met the compiled group at all 12 updates and in its parameters, seed 1 left it at update 3 (target_mean
    -0.121384 against -0.121214, 1.7e-4), which a fixed 1e-4 cannot tell from GPU kernels that round
    differently from one launch to the next: hence the second compiled group, whose spread is that rounding
    (none where the compiled group is bitwise reproducible). A recording or replay that reads or writes the
    wrong memory moves the numbers far beyond it.
    A captured group trains (slurm.pack's `auto`, part 3's mode) only after this passed on some GPU
    (slurm.projection.group_graphs_verified)."""
    import contextlib

    from test_multiseed import group_updates, params

    from iqrl.multiseed.group import SeedGroup

    k, updates, tol, first_tol = 16, 12, 1e-4, 2e-3
    metrics, agents = {}, {}
    for mode in ("eager", "compiled", "compiled again", "captured"):
        torch._dynamo.reset()  # each mode compiles afresh, as a run in that mode does
        n = 1 if mode == "eager" else updates
        built = "compiled" if mode == "compiled again" else mode
        pairs = [paper_size_agent_and_replay("iqrl", "walker-walk", s, built) for s in range(k)]
        agents[mode] = [a for a, _ in pairs]
        group = SeedGroup(agents[mode])
        serve = contextlib.nullcontext()  # the rounds in this (the main) thread, as the K-seed runner's
        metrics[mode] = group_updates(group, [r for _, r in pairs], n, serve_in=serve)

    def apart(mine: dict, theirs: dict) -> float:
        return max(abs(float(mine[key]) - float(v)) / (1 + abs(float(v))) for key, v in theirs.items())

    def tensor_apart(mine: torch.Tensor, theirs: torch.Tensor) -> float:
        scale = max(float(theirs.abs().max()), 1.0) if theirs.is_floating_point() else 1.0
        return float((mine.double() - theirs.double()).abs().max()) / scale

    # how far the compiled group is from itself, at each update and in each tensor after the last, any seed
    again, compiled, captured = metrics["compiled again"], metrics["compiled"], metrics["captured"]
    spread = [max(apart(again[s][i], compiled[s][i]) for s in range(k)) for i in range(updates)]
    compiled_params = [params(a) for a in agents["compiled"]]
    again_params = [params(a) for a in agents["compiled again"]]
    param_spread = {
        name: max(tensor_apart(again_params[s][name], compiled_params[s][name]) for s in range(k))
        for name in compiled_params[0]
    }
    for s in range(k):
        assert len(captured[s]) == updates
        eager = metrics["eager"][s][0]
        assert apart(captured[s][0], eager) <= first_tol, (
            f"seed {s} update 0: {captured[s][0]} vs eager {eager}"
        )
        for i in range(updates):
            mine, theirs = captured[s][i], compiled[s][i]
            assert apart(mine, theirs) <= max(tol, spread[i]), (
                f"seed {s} update {i}: {mine} vs {theirs}, {spread}"
            )
        mine = params(agents["captured"][s])
        for name, p in compiled_params[s].items():
            bound = max(tol, param_spread[name]) if p.is_floating_point() else 0.0
            assert tensor_apart(mine[name], p) <= bound, (
                f"seed {s}: {name} (the compiled group's spread {bound})"
            )


def test_cuda_compiled_planner_acts_as_the_eager_one():
    """DC-MPC's compiled planner pieces (dynamic shapes, not graph-captured) against the eager planner on the
    GPU: actions and warm starts within 1e-4, the acting generators drawn alike."""
    from test_compile import assert_compiled_planner_matches_eager

    assert_compiled_planner_matches_eager("cuda", tol=1e-4)


def test_cuda_resume_is_bitwise_under_deterministic_algorithms(tmp_path, finished_runs):
    """With deterministic kernels (and cuBLAS's fixed workspace, set before CUDA starts) a stopped and
    resumed GPU run ends with the evaluations of one never interrupted, as on the CPU."""
    from agent_helpers import assert_resume_matches

    torch.use_deterministic_algorithms(True)
    try:
        assert_resume_matches("iqrl", tmp_path, finished_runs, extra=["device=cuda"])
    finally:
        torch.use_deterministic_algorithms(False)


@pytest.mark.parametrize("flags", [["precision=tf32"], ["compile=true", "cudagraphs=true"]])
def test_cuda_runs_with_tf32_and_with_graphs_record_their_keys(tmp_path, flags):
    import yaml

    assert main(tiny_argv("iqrl", tmp_path / "run", extra=["device=cuda", *flags])) == EXIT_OK
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    for flag in flags:
        key, value = flag.split("=")
        assert str(saved[key]).lower() == value


def test_cuda_bench_rows(tmp_path):
    """make bench on the GPU: eager, compiled and graph-captured rows of one agent, timed with CUDA events
    over at least 500 updates, with the GPU's name and the hours per 1M env steps."""
    import json

    from iqrl.bench.cli import main as bench

    out = tmp_path / "b.json"
    argv = ["--device", "cuda", "--agents", "td3", "--tasks", "cartpole-balance", "--dtypes", "fp32"]
    assert bench([*argv, "--compile", "false,true,cudagraphs", "--updates", "5", "--out", str(out)]) == 0
    rows = json.loads(out.read_text())
    assert [r["compile"] for r in rows] == [False, True, "cudagraphs"]
    assert all(r["updates_per_s"] > 0 and r["hours_per_1m"] > 0 for r in rows)
    assert all(r["hardware"] == torch.cuda.get_device_name() for r in rows)


@pytest.mark.parametrize("agent", ["td3", "iqrl", "mrq"])
def test_cuda_memory_estimate_bounds_the_allocated_peak(agent):
    """iqrl.loop.memory's estimate of the weights, Adam state, gradients and an update's activations against
    PyTorch's allocated peak over a few paper-size updates on walker-walk (the bench's replay is two episodes,
    left out of both); it refuses a run on the device's free memory. docs/configuration.md, "Memory", says
    how far off the CPU measurements were: a GPU's ratio goes there."""
    from iqrl.bench.measure import prepare
    from iqrl.config.run import ConfigError
    from iqrl.loop import memory

    trainer = prepare(agent, "walker-walk", "fp32", "cuda")
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    for _ in range(3):
        trainer.agent.update(trainer.replay, trainer.env_step)
    torch.cuda.synchronize()
    measured = torch.cuda.max_memory_allocated() - before  # Adam state, gradients, activations
    est = memory.estimate(trainer.cfg)
    print(
        f"{agent}: allocated peak above the weights {measured / 2**20:.1f} MiB, estimated "
        f"{(est.training + est.activations) / 2**20:.1f} MiB"
    )
    assert 0.5 * measured <= est.training + est.activations <= 4 * measured
    with pytest.raises(ConfigError, match=r"GiB free on cuda"):
        memory.check_memory(replace(trainer.cfg, steps=10**12), torch.device("cuda"))
