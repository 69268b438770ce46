"""`make bench` input checks (throughput itself is measured by `make bench`, never in a test)."""

import json
import time

import pytest
import torch

from iqrl.bench.cli import main
from iqrl.bench.measure import whole_periods


@pytest.mark.parametrize(
    "args, message",
    [
        (["--seeds", "0"], "--seeds must be a comma-separated list of ints >= 1"),
        (["--seeds", "a,4"], "--seeds must be a comma-separated list of ints >= 1"),
        (["--agents", "nope"], "unknown agent"),
        (["--tasks", "walker-nope"], "walker-nope"),
        (["--agents", "td7", "--seeds", "4"], "asks only for K-seed rows"),  # no row to measure
        (  # wrote [] and ended in a TypeError
            ["--agents", "iqrl", "--seeds", "2", "--obs", "pixels"],
            "error: --seeds 2 with --dtypes fp32,bf16, --compile false and --obs pixels asks only for "
            "K-seed rows, and the K-seed mode's rows are measured with --obs state only",
        ),
        (["--dtypes", "tf32"], "precision=tf32 needs a CUDA device"),
        (["--compile", "maybe"], "--compile must list values among false, true, cudagraphs"),
        (["--compile", "cudagraphs", "--agents", "td3"], "cudagraphs=true needs a CUDA device"),
        (["--obs", "pixels", "--agents", "mrq", "--image-size", "24"], "too small for MR.Q's image encoder"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, args, message):
    assert main([*args, "--out", str(tmp_path / "b.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and message in err[0], err
    assert not (tmp_path / "b.json").exists()


def test_rows_the_k_seed_mode_cannot_measure_are_named_one_line_each_and_the_rest_measured(
    tmp_path, capsys, monkeypatch
):
    """--seeds 1,2 --compile false,true: K = 1 and K = 2 rows eager and compiled; td7's K-seed rows, which
    the mode refuses, are left out with one warning line; every other row is measured and written."""
    import subprocess

    from iqrl.bench import cli
    from iqrl.bench.measure import FIELDS

    measured = []

    def fake_row(cmd, **_):  # the row's own process, answered without measuring
        agent, task, dtype = cmd[cmd.index("--one") + 1 : cmd.index("--one") + 4]
        k, mode = int(cmd[cmd.index("--group") + 1]) or 1, cmd[cmd.index("--one-compile") + 1]
        measured.append((agent, dtype, mode, k))
        row = dict.fromkeys(FIELDS, 1.0) | {"agent": agent, "task": task, "torch": "t", "hardware": "h"}
        return subprocess.CompletedProcess(cmd, 0, json.dumps(row) + "\n", "")

    monkeypatch.setattr(cli.subprocess, "run", fake_row)
    argv = ["--agents", "iqrl,td7", "--tasks", "walker-walk", "--dtypes", "fp32", "--compile", "false,true"]
    assert main([*argv, "--seeds", "1,2", "--out", str(tmp_path / "b.json")]) == 0
    assert measured == [
        ("iqrl", "fp32", "false", 1), ("iqrl", "fp32", "false", 2), ("iqrl", "fp32", "true", 1),
        ("iqrl", "fp32", "true", 2), ("td7", "fp32", "false", 1), ("td7", "fp32", "true", 1),
    ]  # fmt: skip
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("warning: skipped td7's K-seed rows (K=2): ")
    assert len(json.loads((tmp_path / "b.json").read_text())) == 6


def test_peak_rows_cover_both_dtypes_and_every_product():
    from iqrl.bench.matmul import PEAK_PRODUCTS, matmul_peak

    # tiny products: the structure is what is tested (the paper-sized ones take minutes in bf16 on a CPU)
    products = [("mm", (16, 24, 8)), ("bmm", (2, 16, 24, 8))]
    rows = list(matmul_peak("cpu", seconds=0.0, products=products))
    kernels = [("fp32", "torch"), ("fp32", "onednn"), ("bf16", "torch")]  # on CPU: oneDNN's fp32 too
    assert [(r["op"], r["dtype"], r["kernel"], r["shape"]) for r in rows] == [
        (op, d, k, "x".join(map(str, dims))) for d, k in kernels for op, dims in products
    ]
    assert all(r["gflop_per_s"] > 0 for r in rows)
    assert PEAK_PRODUCTS[0] == ("mm", (256, 1030, 512))  # the update's encoder product comes first


def test_count_ops_counts_forward_and_backward_kernels_not_views():

    from iqrl.bench.measure import count_ops

    assert count_ops(lambda: (torch.ones(2, 3).t() * 2).sum()) == 3  # ones, mul, sum; the transpose is a view
    m, x = torch.nn.Linear(8, 8), torch.randn(4, 8)
    # forward addmm + sum; backward ones_like (the seed gradient), mm (weight), sum (bias)
    assert count_ops(lambda: m(x).sum().backward()) == 5


def test_a_pixel_row_renders_frame_stacks_and_times_one_frame(renderer):
    """A row of `--obs pixels`: the agent is built for frame stacks and fed rendered data, and render_ms
    is the time of one frame (here td3 at 32 px, two updates, 100 seed steps and half a second of collection:
    `--set` and `--collect-s`; paper sizes otherwise)."""
    from iqrl.bench.measure import FIELDS, measure

    short = {"extra": ["seed_steps=100"], "collect_s": 0.5}
    row = measure("td3", "cartpole-swingup", "fp32", "cpu", 2, obs="pixels", image_size=32, **short)
    assert list(row) == FIELDS
    assert row["obs"] == "pixels" and row["render_ms"] > 0 and row["updates_per_s"] > 0
    state = measure("td3", "cartpole-swingup", "fp32", "cpu", 2, **short)
    assert state["obs"] == "state" and state["render_ms"] is None


def test_mrq_updates_are_timed_over_whole_encoder_periods():
    """MR.Q's 250 encoder steps run once every 250 RL updates: timing 20 updates after a warm-up missed
    them all (about 2x its real rate). The bench times whole cycles of its schedule (UpdateSchedule.cycle)."""
    from iqrl.config.build import build_config
    from iqrl.core.registry import make_agent

    cfg = build_config(["agent=mrq", "task=walker-walk"])
    assert make_agent(cfg.agent, 24, 6, "cpu", 0).schedule.cycle == cfg.agent.target_update_every == 250
    assert [whole_periods(n, 250) for n in (1, 20, 250, 251)] == [250, 250, 250, 500]
    assert [whole_periods(n, 1) for n in (1, 20)] == [1, 20]


def test_compare_prints_ratios_and_names_rows_in_one_file_only(tmp_path, capsys):
    row = dict(
        agent="iqrl",
        task="walker-walk",
        device="cpu",
        dtype="fp32",
        compile=False,
        seeds=1,
        updates_per_s=4.0,
    )
    (tmp_path / "old.json").write_text(json.dumps([row, {**row, "seeds": 4, "updates_per_s": 1.0}]))
    (tmp_path / "new.json").write_text(json.dumps([{**row, "updates_per_s": 6.0}, {**row, "dtype": "bf16"}]))
    assert main(["--compare", str(tmp_path / "old.json"), str(tmp_path / "new.json")]) == 0
    out = capsys.readouterr().out
    assert "1.50x" in out
    assert "only in the old file (1): iqrl walker-walk cpu fp32 K=4" in out
    assert "only in the new file (1): iqrl walker-walk cpu bf16 K=1" in out
    assert main(["--compare", str(tmp_path / "old.json"), str(tmp_path / "missing.json")]) == 2


def test_timer_measures_wall_time_on_the_cpu():
    import time

    from iqrl.bench.measure import Timer

    timer = Timer(torch.device("cpu"))
    timer.start()
    time.sleep(0.05)
    assert 0.05 <= timer.stop() < 1.0


def test_matmul_flops_count_onednn_products_from_their_shapes():
    """The profiler counts no FLOPs for oneDNN's product (compiled updates on CPU); `matmul_flops` takes
    2 M K N from its shapes, as the profiler counts aten::mm."""
    from torch.profiler import profile

    from iqrl.bench.matmul import MATMUL_OPS, matmul_flops
    from iqrl.nn.kernels import onednn_matmul

    a, b, c = torch.randn(8, 5), torch.randn(5, 3), torch.randn(4, 7, 6)
    with profile(with_flops=True, record_shapes=True) as prof:
        onednn_matmul(a, b), onednn_matmul(c, torch.randn(4, 6, 2)), torch.mm(a, b)
    rows = [e for e in prof.key_averages(group_by_input_shape=True) if e.key in MATMUL_OPS]
    by_op = {}
    for e in rows:
        by_op[e.key] = by_op.get(e.key, 0.0) + matmul_flops(e)
    onednn = 2 * 8 * 5 * 3 + 4 * (2 * 7 * 6 * 2)
    assert by_op == {"mkldnn::_linear_pointwise": onednn, "aten::mm": 2 * 8 * 5 * 3}


def test_matmul_split_counts_the_update_s_matrix_products(capsys):
    """--matmul-split: the GFLOP it reports are those of the update's matrix products (counted here with
    PyTorch's FlopCounterMode over the same updates of the same agent); the shares follow from the times."""
    from torch.utils.flop_counter import FlopCounterMode

    from iqrl.bench.measure import prepare

    assert main(["--matmul-split", "--agents", "td3", "--tasks", "cartpole-swingup", "--updates", "2"]) == 0
    row = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    b = prepare("td3", "cartpole-swingup", "fp32", "cpu")
    for n in (3, 2):  # matmul_split's warm-up and timed calls, then the profiled one counted here
        for i in range(n):
            b.agent.update(b.replay, i)
    with FlopCounterMode(display=False) as flops:
        for i in range(2):
            b.agent.update(b.replay, i)
    assert row["matmul_gflop"] == pytest.approx(flops.get_total_flops() / 2e9, abs=0.006)
    # Both times are positive; they come from two passes (the update timed alone, then profiled), so on a
    # loaded machine the profiled pass's matrix products can take longer than the whole timed update: their
    # order is no verdict. What matmul_ms counts (the matrix-product operators only) is pinned above.
    assert row["matmul_ms"] > 0 and row["update_ms"] > 0
    # The times are printed to 0.1 ms, the ratios from the unrounded times: each ratio lies in the range the
    # printed times allow (td3's update takes a few ms, so that range is a few per cent wide), plus its own
    # rounding.
    m, u = row["matmul_ms"], row["update_ms"]
    assert (m - 0.05) / (u + 0.05) - 0.0005 <= row["matmul_share"] <= (m + 0.05) / (u - 0.05) + 0.0005
    assert (u - 0.05) / (m + 0.05) - 0.005 <= row["max_speedup"] <= (u + 0.05) / (m - 0.05) + 0.005
    assert main(["--matmul-split", "--device", "cuda:0", "--agents", "td3", "--dtypes", "fp32"]) == 2
    assert capsys.readouterr().err.strip() == "error: --matmul-split profiles CPU time; use --device cpu"


def test_cpu_model_names_the_generation_and_vector_isa_of_the_first_cpu():
    from iqrl.bench.measure import cpu_model

    block = "processor\t: {}\nmodel name\t: AMD EPYC\ncpu family\t: {}\nmodel\t\t: {}\nflags\t\t: {}\n"
    zen4 = block.format(0, 25, 17, "fpu sse2 avx2 avx512f avx512_bf16") + "\n" + block.format(1, 0, 0, "fpu")
    assert cpu_model(zen4) == "AMD EPYC, family 25 model 17, AVX-512"
    assert cpu_model(block.format(0, 6, 85, "fpu avx avx2 fma")) == "AMD EPYC, family 6 model 85, AVX2"
    assert cpu_model("model name\t: Some CPU\nflags\t\t: fpu sse2\n") == "Some CPU"


def test_a_failed_rows_error_is_the_exceptions_type_and_first_line():
    """A row whose process ends in a traceback is reported by the exception's type and the first line of its
    message (of the last exception of a chain), not stderr's last line: the first GPU report's td3 cudagraphs
    row showed the middle of a message that quotes a stack trace."""
    from iqrl.bench.cli import failure_line

    message = (
        "RuntimeError: Error: accessing tensor output of CUDAGraphs that has been overwritten by a "
        'subsequent run. Stack trace: File "iqrl/learners/td3.py", line 128, in td_target\n'
        "    return ret + discount * q_next. To prevent overwriting, clone the tensor outside of "
        "torch.compile()"
    )
    stderr = (
        "warning: something first\n"
        "Traceback (most recent call last):\n"
        '  File "iqrl/bench/measure.py", line 209, in updates\n'
        "    a.update(replay, i)\n"
        "KeyError: 'x'\n\n"
        "During handling of the above exception, another exception occurred:\n\n"
        "Traceback (most recent call last):\n"
        '  File "iqrl/bench/measure.py", line 209, in updates\n'
        "    a.update(replay, i)\n"
        "    ^^^^^^^^^^^^^^^^^^^\n"
        f"{message}\n"
    )
    assert failure_line(stderr, 1) == message.splitlines()[0]
    assert failure_line("error: cudagraphs=true needs a CUDA device\n", 2) == (
        "error: cudagraphs=true needs a CUDA device"
    )
    assert failure_line("", -9) == "exit -9"


def test_a_k_seed_rows_collection_steps_its_envs_at_once_in_workers_and_in_threads():
    """The K-seed row's collection (group_collection): K envs stepped at once, in worker processes and in
    threads of the process, and the first against one env alone; every env steps and every worker ends."""
    from iqrl.bench.measure import FIELDS, GROUP_COLLECTION, group_collection, stepping_rate
    from iqrl.config.build import build_config

    cfg = build_config(["agent=td3", "task=cartpole-balance", "out=unused"])
    row = group_collection(cfg, 2, 0.6)
    assert list(row) == list(GROUP_COLLECTION) and set(GROUP_COLLECTION) <= set(FIELDS)
    assert row["group_env_steps_per_s"] > 0 and row["group_env_steps_per_s_threads"] > 0
    assert row["collect_vs_one"] > 0
    assert stepping_rate(cfg, 1, True, 0.1) > 0


def test_a_k_seed_row_whose_group_fails_raises_instead_of_timing_the_seeds_that_stopped(monkeypatch):
    """measure_seeds: a group update that fails in the timed rounds ends the row with its error. Before, the
    seeds' threads died quietly, the rounds returned early and the row said the group was fast (a bench
    subprocess's stderr is not shown on success)."""
    from iqrl.bench import measure
    from iqrl.multiseed.group import SeedGroup

    class FailsAfterWarmup(SeedGroup):
        def _run_round(self):
            if self.round >= 6:  # past the 3 warm-up updates of td3's pieces
                raise RuntimeError("a round failed")
            super()._run_round()

    monkeypatch.setattr(measure, "SeedGroup", FailsAfterWarmup)
    with pytest.raises(RuntimeError, match="a round failed"):
        measure.measure_seeds("td3", "cartpole-balance", "fp32", "cpu", 4, 2, collect_s=0.1)


TINY_TD3 = ["agent.mlp_dims=[32,32]", "agent.batch_size=16", "seed_steps=100"]


def test_a_captured_groups_rounds_are_served_by_the_main_thread_from_the_first(monkeypatch):
    """The race of issue 78: the seeds' threads started before the main thread served, so the last seed to
    hand in the first piece ran that round in its own thread, where a captured group fails. Flagged as
    captured (on the CPU its one effect: the main-thread check), the group's rounds all run in the main
    thread: every trial times its rows."""
    from iqrl.bench import measure
    from iqrl.multiseed.group import SeedGroup

    class Captured(SeedGroup):
        def __init__(self, agents):
            super().__init__(agents)
            self.updater.cudagraphs = True

    monkeypatch.setattr(measure, "SeedGroup", Captured)
    for _ in range(3):
        row = measure.measure_seeds("td3", "cartpole-balance", "fp32", "cpu", 4, 4, TINY_TD3, collect_s=0.1)
        assert row["timed_updates"] == 4 and row["updates_per_s"] > 0


def test_a_row_whose_seed_runs_no_update_is_an_error_with_its_cause(monkeypatch):
    """A seed whose `update` returns without running its pieces (the others then run theirs alone): the row is
    NotTimed naming that seed, never a rate. So is a one-seed row whose update runs nothing."""
    from iqrl.bench import measure
    from iqrl.multiseed.group import SeedGroup

    class SecondSeedIdle(SeedGroup):
        def __init__(self, agents):
            super().__init__(agents)
            agents[1].update = lambda replay, step: {}

    monkeypatch.setattr(measure, "SeedGroup", SecondSeedIdle)
    with pytest.raises(measure.NotTimed, match="seed 1's parameters did not change over its 4 timed updates"):
        measure.measure_seeds("td3", "cartpole-balance", "fp32", "cpu", 4, 2, TINY_TD3, collect_s=0.1)
    trainer = measure.prepare("td3", "cartpole-balance", "fp32", "cpu", extra=TINY_TD3)
    before = [measure.fingerprint(trainer.agent)]
    with pytest.raises(measure.NotTimed, match="seed 0 ran 3 of the 4 timed updates"):
        measure.check_timed([trainer.agent], before, [3], 4)


def test_the_memory_floor_counts_networks_stacks_and_adam_moments():
    """A one-seed row's floor: the networks and two Adam moments per trainable parameter; a group's: the K
    agents' own networks, then per slot a stacked copy and its moments. A peak below it is flagged."""
    from iqrl.bench import measure
    from iqrl.loop.memory import agent_tensors
    from iqrl.multiseed.group import SeedGroup

    agents = [
        measure.prepare("td3", "cartpole-balance", "fp32", "cpu", extra=TINY_TD3).agent for _ in range(3)
    ]
    ts = agent_tensors(agents[0])
    weights = sum(t.numel() * 4 for t in ts) / 2**20
    trainable = sum(t.numel() * 4 for t in ts if t.requires_grad) / 2**20
    assert measure.memory_floor_mb(agents[:1]) == pytest.approx(weights + 2 * trainable)
    group = SeedGroup(agents)
    assert measure.memory_floor_mb(agents, group) == pytest.approx(
        3 * weights + 3 * (weights + 2 * trainable)
    )
    assert "flag" not in measure.floor_fields(600.0, 541.0)
    assert measure.floor_fields(475.0, 541.0)["flag"].startswith("peak memory 475 MB below the 541 MB")


def test_an_end_to_end_row_is_a_whole_run_with_its_rates_and_time_split(tmp_path):
    """--end-to-end: one whole run (K = 1) and a K-seed group (K = 2) of 400 env steps each, at the run's
    own configuration and the --set keys; each row's rates, its split, its CPU seconds, and the group's rate
    in all against one seed's."""
    out = tmp_path / "e2e.json"
    keys = ["agent.mlp_dims=[32,32]", "agent.batch_size=16", "seed_steps=200", "episode_length=100"]
    keys += ["eval_every=400", "eval_episodes=1"]
    argv = ["--end-to-end", "400", "--agents", "td3", "--tasks", "cartpole-balance", "--seeds", "1,2"]
    assert main([*argv, "--dtypes", "fp32", *(f"--set={k}" for k in keys), "--out", str(out)]) == 0
    one, group = json.loads(out.read_text())
    assert [one["kind"], one["seeds"], group["seeds"]] == ["run", 1, 2] and one["env_steps"] == 400
    for r in (one, group):
        split = [r[f"time_{p}_s"] for p in ("collect", "act", "update", "evaluate", "write")]
        assert all(s >= 0 for s in split) and r["time_update_s"] > 0 and r["time_evaluate_s"] > 0
        # wall_s is rounded to 0.01 s (a tiny run's wall is ~0.4 s): within that rounding as well
        assert r["env_steps_per_s"] == pytest.approx(400 / r["wall_s"], rel=0.01 + 0.005 / r["wall_s"])
        assert r["group_env_steps_per_s"] == pytest.approx(r["seeds"] * r["env_steps_per_s"], rel=0.01)
        assert r["train_env_steps_per_s"] > r["group_env_steps_per_s"] and r["cpu_s"] > 0
    # vs_one_seed is rounded to 2 decimals: within half its last digit of the rates' own ratio
    ratio = group["group_env_steps_per_s"] / one["group_env_steps_per_s"]
    assert group["vs_one_seed"] == pytest.approx(ratio, abs=0.005 + 1e-9)


def test_an_end_to_end_rows_rate_is_over_the_slowest_seeds_loop():
    """Two seeds of 1000 env steps whose loops took 2 s and 1.6 s (their status.json's time_split): 500 env
    steps/s per seed, 1000 in all; without their evaluations (0.2 s and 0.4 s), 2000 / 1.8 s in all."""
    from iqrl.bench.endtoend import run_row, tree_cpu_s

    splits = [
        {"collect": 1.0, "act": 0.5, "update": 0.3, "evaluate": 0.2, "write": 0.0},
        {"collect": 0.8, "act": 0.2, "update": 0.2, "evaluate": 0.4, "write": 0.0},
    ]
    row = run_row("td3", "walker-walk", "fp32", torch.device("cpu"), "false", 2, [
        {"env_step": 1000, "time_split": s} for s in splits
    ])  # fmt: skip
    assert row["env_steps_per_s"] == 500.0 and row["group_env_steps_per_s"] == 1000.0
    assert row["train_env_steps_per_s"] == pytest.approx(2000 / 1.8, abs=0.1)
    assert row["time_collect_s"] == 0.9 and row["shares"]["evaluate"] == pytest.approx(0.3 / 1.8, abs=1e-3)
    assert tree_cpu_s() >= time.process_time() - 1e-3
