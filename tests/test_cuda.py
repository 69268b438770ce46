"""CUDA paths (skipped without a GPU: run them where `device` lends one).

Every agent trains on the GPU, stops at an episode boundary, resumes from its checkpoint and finishes with
the evaluation steps of an uninterrupted run; the rows written before the stop are kept as they were.
Returns are not compared with the uninterrupted run: CUDA kernels such as index_add's backward are not
bitwise deterministic, so bitwise resume equality is a CPU guarantee (tests/test_train.py).
"""

import math

import pytest
import torch

from iqrl import agents
from iqrl.train import EXIT_INTERRUPTED, EXIT_OK, main

from conftest import tiny_argv
from test_train import eval_numbers

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.mark.parametrize("agent", agents.agent_names())
def test_cuda_run_stops_resumes_and_finishes(agent, tmp_path):
    ref, run = tmp_path / "ref", tmp_path / "run"
    argv = lambda out: tiny_argv(agent, out, seed=3, extra=["device=cuda"])  # noqa: E731
    assert main(argv(ref)) == EXIT_OK
    calls = {"n": 0}

    def stop_after_three_episodes():
        calls["n"] += 1
        return calls["n"] == 3

    assert main(argv(run), should_stop=stop_after_three_episodes) == EXIT_INTERRUPTED
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


def test_cuda_update_and_act_never_synchronise():
    """The dispatch-level guard of tests/test_sync_free.py catches syncs the CPU shows too; CUDA's own
    sync debug mode also catches device-specific ones (e.g. a CPU tensor indexing a GPU one) in the updates.
    `act` is left out here: it ends by copying the action to the host for the environment, its one wait."""
    from test_sync_free import _agent_and_replay

    for name in agents.agent_names():
        agent, replay, _ = _agent_and_replay(name, device="cuda")
        for step in range(3):
            agent.update(replay, step)
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            for step in range(3, 9):
                agent.update(replay, step)
        finally:
            torch.cuda.set_sync_debug_mode("default")
