"""Matrix products, the ceiling of an update's speed: `--peak` (the GFLOP/s of this machine at an update's
shapes) and `--matmul-split` (how much of an update is matrix products, and the most any implementation of
it could gain).

It imports torch, oneDNN's product (iqrl/nn/kernels.py) and the row set-up of iqrl/bench/measure.py.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator

import torch
from torch.profiler import ProfilerActivity, profile

from iqrl.bench.measure import hardware, prepare, whole_periods
from iqrl.nn.kernels import onednn_matmul

#: Matrix products of a walker-walk iQRL update (critic/dynamics first layer, hidden layer, dynamics output,
#: the critic ensemble's batched product) and a large square one, for `--peak`. The 1024- and 1032-wide
#: products beside the 1030-wide input (1024 latent + 6 action dimensions) show what splitting off the
#: action or padding the input would change.
PEAK_PRODUCTS = [
    ("mm", (256, 1030, 512)),
    ("mm", (256, 1024, 512)),
    ("mm", (256, 1032, 512)),
    ("mm", (256, 512, 512)),
    ("mm", (256, 512, 1024)),
    ("bmm", (5, 256, 1030, 512)),
    ("mm", (2048, 2048, 2048)),
]


def matmul_peak(device: str, seconds: float = 1.0, products=PEAK_PRODUCTS) -> Iterator[dict]:
    """GFLOP/s of fp32 and bf16 matrix products (`products`, PEAK_PRODUCTS by default; on CPU the fp32 ones
    also through oneDNN, as compiled updates multiply, `kernel`: onednn): the rate an update
    made of nothing but matrix products would reach here, i.e. the ceiling for updates/s (an iQRL walker
    update: ~19.6 GFLOP). Yields a row per product as it is measured: on a CPU without bf16 instructions
    the bf16 products run at about 1 GFLOP/s, and the large square one takes minutes."""
    dev = torch.device(device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    kernels = [("fp32", torch.float32, "torch", torch.matmul)]
    if dev.type == "cpu":  # what compile=true multiplies float32 with on CPU
        kernels.append(("fp32", torch.float32, "onednn", onednn_matmul))
    kernels.append(("bf16", torch.bfloat16, "torch", torch.matmul))
    for dtype, dt, kernel, matmul in kernels:
        for op, dims in products:
            *e, m, k, n = dims
            a = torch.randn(*e, m, k, dtype=dt, device=dev)
            b = torch.randn(*e, k, n, dtype=dt, device=dev)
            for _ in range(3):
                matmul(a, b)
            sync()
            reps, t = 0, time.perf_counter()
            while reps < 3 or time.perf_counter() - t < seconds:
                matmul(a, b)
                sync()
                reps += 1
            rate = 2 * math.prod(dims) * reps / (time.perf_counter() - t) / 1e9
            yield {
                "op": op,
                "shape": "x".join(map(str, dims)),
                "dtype": dtype,
                "kernel": kernel,
                "gflop_per_s": float(f"{rate:.4g}"),  # significant figures: a slow tiny product is not 0.0
                "threads": torch.get_num_threads(),
                "torch": torch.__version__,
                "hardware": hardware(dev),
            }


#: The matrix-product operators (their FLOPs are what the profiler's with_flops counts for an MLP update),
#: and oneDNN's, which compiled updates on CPU call (`iqrl.nn.kernels.onednn_matmul`; no FLOP count of its
#: own).
MATMUL_OPS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "mkldnn::_linear_pointwise")


def matmul_flops(event) -> float:
    """FLOPs of one profiler row of MATMUL_OPS (averaged over input shapes: `group_by_input_shape`)."""
    if event.key == "mkldnn::_linear_pointwise":  # x [M, K] times w.T, w [N, K]
        (m, k), (n, _) = event.input_shapes[:2]
        return 2.0 * m * k * n * event.count
    return event.flops


def matmul_split(agent: str, task: str, compile_mode: str = "false", n_updates: int = 10) -> dict:
    """Where an update's time goes on the CPU (fp32, paper config): update_ms (wall time, unprofiled),
    matmul_ms (the profiler's time inside the matrix-product operators), their GFLOP and rate, and
    max_speedup = update_ms / matmul_ms, the most any implementation of the same update can gain while
    its matrix products run at this rate (everything else free)."""
    b = prepare(agent, task, "fp32", "cpu", compile_mode)
    n = whole_periods(n_updates, b.agent.schedule.cycle)

    def updates(k: int) -> float:
        t = time.perf_counter()
        for i in range(k):
            b.agent.update(b.replay, i)
        return time.perf_counter() - t

    updates(3)  # warm-up (compiling, with compile=true)
    update_ms = updates(n) * 1000.0 / n
    with profile(activities=[ProfilerActivity.CPU], with_flops=True, record_shapes=True) as prof:
        updates(n)
    mm = [e for e in prof.key_averages(group_by_input_shape=True) if e.key in MATMUL_OPS]
    matmul_ms = sum(e.self_cpu_time_total for e in mm) / 1000.0 / n
    gflop = sum(matmul_flops(e) for e in mm) / 1e9 / n
    return {
        "agent": agent,
        "task": task,
        "compile": compile_mode == "true",
        "update_ms": round(update_ms, 1),
        "matmul_ms": round(matmul_ms, 1),
        "matmul_share": round(matmul_ms / update_ms, 3),
        "matmul_gflop": round(gflop, 2),
        "matmul_gflop_per_s": round(gflop / matmul_ms * 1000.0, 1),
        "max_speedup": round(update_ms / matmul_ms, 2),
        "torch": torch.__version__,
        "hardware": hardware(b.device),
    }
