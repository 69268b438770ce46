"""`make bench` input checks (throughput itself is measured by `make bench`, never in a test)."""

import pytest

from iqrl.bench import main


@pytest.mark.parametrize("args, message", [
    (["--seeds", "0"], "--seeds must be a comma-separated list of ints >= 1"),
    (["--seeds", "a,4"], "--seeds must be a comma-separated list of ints >= 1"),
    (["--agents", "nope"], "unknown agent"),
    (["--tasks", "walker-nope"], "walker-nope"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, args, message):
    assert main([*args, "--out", str(tmp_path / "b.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and message in err[0], err
    assert not (tmp_path / "b.json").exists()


def test_peak_rows_cover_both_dtypes_and_every_product():
    from iqrl.bench import PEAK_PRODUCTS, matmul_peak

    rows = matmul_peak("cpu", seconds=0.0)
    assert [(r["op"], r["dtype"]) for r in rows] == [(op, d) for d in ("fp32", "bf16") for op, _ in PEAK_PRODUCTS]
    assert rows[0]["shape"] == "256x1030x512" and all(r["gflop_per_s"] > 0 for r in rows)


def test_count_ops_counts_forward_and_backward_kernels_not_views():
    import torch

    from iqrl.bench import count_ops

    assert count_ops(lambda: (torch.ones(2, 3).t() * 2).sum()) == 3  # ones, mul, sum; the transpose is a view
    m, x = torch.nn.Linear(8, 8), torch.randn(4, 8)
    # forward addmm + sum; backward ones_like (the seed gradient), mm (weight), sum (bias)
    assert count_ops(lambda: m(x).sum().backward()) == 5
