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


def test_cuda_bf16_run(tmp_path):
    assert main(tiny_argv("iqrl", tmp_path / "run", extra=["device=cuda", "precision=bf16"])) == EXIT_OK
